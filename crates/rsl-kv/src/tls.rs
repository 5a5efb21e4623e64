//! TLS on the client (Redis) port: the server's side (a rustls acceptor built from PEM files
//! named like Redis's `tls-*` options) and the client's side (what `rsl-kv` subcommands, the
//! tests and a replica relaying an admin command to another member use).
//!
//! With TLS configured the client port speaks TLS only, as a Redis server with `port 0` and a
//! `tls-port`. Whether a client must present a certificate is Redis's `tls-auth-clients`:
//! `yes` (the default: one chaining to the CA file), `optional` (verified if presented) or
//! `no`. TLS 1.2 and 1.3 are offered (Redis's default `tls-protocols`), with the `ring`
//! provider chosen explicitly, as the replica transport does (`rsl_net::tls`).
//!
//! Invariants: a handshake that fails (a plaintext client, a missing or foreign client
//! certificate when one is required) closes the connection before any command is read; a
//! file that cannot be used is refused at start with an error that names the option and the
//! file.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// Whether clients of a TLS client port must present a certificate (Redis's
/// `tls-auth-clients`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum AuthClients {
    /// A certificate chaining to the CA file is required.
    #[default]
    Yes,
    /// No certificate is asked for.
    No,
    /// A certificate is verified if the client presents one.
    Optional,
}

impl fmt::Display for AuthClients {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AuthClients::Yes => "yes",
            AuthClients::No => "no",
            AuthClients::Optional => "optional",
        })
    }
}

/// The files of a TLS client port and how clients are authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerTlsFiles {
    /// The server's certificate chain, leaf first (Redis's `tls-cert-file`).
    pub cert: PathBuf,
    /// Its private key (`tls-key-file`).
    pub key: PathBuf,
    /// The CA that client certificates must chain to (`tls-ca-cert-file`); required unless
    /// `auth_clients` is `no`.
    pub ca: Option<PathBuf>,
    /// Whether clients must present a certificate (`tls-auth-clients`).
    pub auth_clients: AuthClients,
}

/// The names a user gave the TLS options, so that an error names the one to fix.
#[derive(Debug, Clone, Copy)]
pub struct OptionNames {
    /// The certificate option (`kv.tls_cert_file`, `--tls-cert-file`).
    pub cert: &'static str,
    /// The key option.
    pub key: &'static str,
    /// The CA option.
    pub ca: &'static str,
}

/// The option names of the `[kv]` table.
pub const CONFIG_NAMES: OptionNames =
    OptionNames { cert: "kv.tls_cert_file", key: "kv.tls_key_file", ca: "kv.tls_ca_cert_file" };

/// The option names of command-line flags.
pub const FLAG_NAMES: OptionNames =
    OptionNames { cert: "--tls-cert-file", key: "--tls-key-file", ca: "--tls-ca-cert-file" };

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    /// A file could not be read.
    #[error("{option}: cannot read {}: {source}", path.display())]
    Read {
        /// The option that names the file.
        option: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A file holds no certificate, or no private key, in PEM.
    #[error("{option}: {} holds no {what} in PEM", path.display())]
    Missing {
        /// The option that names the file.
        option: &'static str,
        /// The file.
        path: PathBuf,
        /// What was looked for.
        what: &'static str,
    },
    /// A file's PEM could not be parsed.
    #[error("{option}: {}: {source}", path.display())]
    Pem {
        /// The option that names the file.
        option: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: pem::Error,
    },
    /// A required option is absent (or has no usable value).
    #[error("{option}: {why}")]
    Required {
        /// The option.
        option: &'static str,
        /// When it is required.
        why: &'static str,
    },
    /// rustls refused the certificate, key or CA (a key that does not match, ...).
    #[error("TLS configuration ({}, {}): {source}", cert.display(), key.display())]
    Rustls {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// Why.
        source: rustls::Error,
    },
    /// The client-certificate verifier could not be built from the CA.
    #[error("{option}: {}: {source}", path.display())]
    Verifier {
        /// The CA option.
        option: &'static str,
        /// The CA file.
        path: PathBuf,
        /// Why.
        source: rustls::server::VerifierBuilderError,
    },
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(option: &'static str, path: &Path) -> Result<Vec<u8>, TlsSetupError> {
    std::fs::read(path).map_err(|source| TlsSetupError::Read { option, path: path.into(), source })
}

fn certs(option: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    let certs = CertificateDer::pem_slice_iter(&read(option, path)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsSetupError::Pem { option, path: path.into(), source })?;
    if certs.is_empty() {
        return Err(TlsSetupError::Missing { option, path: path.into(), what: "certificate" });
    }
    Ok(certs)
}

fn key(option: &'static str, path: &Path) -> Result<PrivateKeyDer<'static>, TlsSetupError> {
    match PrivateKeyDer::from_pem_slice(&read(option, path)?) {
        Ok(key) => Ok(key),
        Err(pem::Error::NoItemsFound) => {
            Err(TlsSetupError::Missing { option, path: path.into(), what: "private key" })
        }
        Err(source) => Err(TlsSetupError::Pem { option, path: path.into(), source }),
    }
}

fn roots(option: &'static str, path: &Path) -> Result<Arc<RootCertStore>, TlsSetupError> {
    let mut roots = RootCertStore::empty();
    for cert in certs(option, path)? {
        roots.add(cert).map_err(|source| TlsSetupError::Rustls {
            cert: path.into(),
            key: path.into(),
            source,
        })?;
    }
    Ok(Arc::new(roots))
}

impl ServerTlsFiles {
    /// Reads the files and builds the acceptor of the client port.
    pub fn acceptor(&self, names: OptionNames) -> Result<TlsAcceptor, TlsSetupError> {
        let chain = certs(names.cert, &self.cert)?;
        let key = key(names.key, &self.key)?;
        let rustls_error = |source| TlsSetupError::Rustls {
            cert: self.cert.clone(),
            key: self.key.clone(),
            source,
        };
        let builder = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(rustls_error)?;
        let builder = match (self.auth_clients, &self.ca) {
            (AuthClients::No, _) => builder.with_no_client_auth(),
            (_, None) => {
                let why = "required unless tls-auth-clients is no";
                return Err(TlsSetupError::Required { option: names.ca, why });
            }
            (auth, Some(ca)) => {
                let verifier_error =
                    |source| TlsSetupError::Verifier { option: names.ca, path: ca.clone(), source };
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(roots(names.ca, ca)?, provider());
                let verifier = match auth {
                    AuthClients::Optional => verifier.allow_unauthenticated(),
                    _ => verifier,
                };
                builder.with_client_cert_verifier(verifier.build().map_err(verifier_error)?)
            }
        };
        let config = builder.with_single_cert(chain, key).map_err(rustls_error)?;
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}

/// How a client reaches a TLS client port: the CA it trusts, the certificate it presents (if
/// any) and the server name it verifies (if not the address it dials).
#[derive(Clone)]
pub struct ClientTls {
    connector: TlsConnector,
    server_name: Option<ServerName<'static>>,
}

impl fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTls").field("server_name", &self.server_name).finish_non_exhaustive()
    }
}

impl ClientTls {
    /// Trusts the CA in `ca`, presents `cert_key` (certificate chain and key files) if given,
    /// and verifies `server_name` if given, else the IP address dialled.
    pub fn new(
        ca: &Path,
        cert_key: Option<(&Path, &Path)>,
        server_name: Option<&str>,
        names: OptionNames,
    ) -> Result<ClientTls, TlsSetupError> {
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|source| TlsSetupError::Rustls { cert: ca.into(), key: ca.into(), source })?
            .with_root_certificates(roots(names.ca, ca)?);
        let config = match cert_key {
            None => builder.with_no_client_auth(),
            Some((cert, key_file)) => builder
                .with_client_auth_cert(certs(names.cert, cert)?, key(names.key, key_file)?)
                .map_err(|source| TlsSetupError::Rustls {
                    cert: cert.into(),
                    key: key_file.into(),
                    source,
                })?,
        };
        let server_name = match server_name {
            None => None,
            Some(name) => Some(ServerName::try_from(name.to_string()).map_err(|_| {
                TlsSetupError::Required { option: "--sni", why: "not a DNS name or an IP address" }
            })?),
        };
        Ok(ClientTls { connector: TlsConnector::from(Arc::new(config)), server_name })
    }

    /// The same, verifying `name` (say `replica-2.rsl`, which every replica certificate
    /// names) instead.
    pub fn with_server_name(&self, name: ServerName<'static>) -> ClientTls {
        ClientTls { connector: self.connector.clone(), server_name: Some(name) }
    }

    /// Runs the handshake over `stream`.
    pub async fn connect(
        &self,
        stream: TcpStream,
    ) -> io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
        let name = match &self.server_name {
            Some(name) => name.clone(),
            None => ServerName::IpAddress(stream.peer_addr()?.ip().into()),
        };
        self.connector.connect(name, stream).await
    }
}

/// The flags of `rsl-kv` subcommands that talk to a TLS client port, named as redis-cli's.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TlsArgs {
    /// Connect with TLS.
    #[arg(long, global = true)]
    pub tls: bool,
    /// The CA certificate file that the server's certificate must chain to (with --tls).
    #[arg(long, global = true, value_name = "FILE")]
    pub cacert: Option<PathBuf>,
    /// The client certificate to present (with --tls, when the server requires one).
    #[arg(long, global = true, value_name = "FILE")]
    pub cert: Option<PathBuf>,
    /// The client certificate's private key.
    #[arg(long, global = true, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// The server name to verify (default: the IP address of --addr).
    #[arg(long, global = true, value_name = "NAME")]
    pub sni: Option<String>,
}

/// The names of [`TlsArgs`]' flags.
const CLI_NAMES: OptionNames = OptionNames { cert: "--cert", key: "--key", ca: "--cacert" };

impl TlsArgs {
    /// The client TLS these flags ask for, if any.
    pub fn client_tls(&self) -> Result<Option<ClientTls>, TlsSetupError> {
        if !self.tls {
            return Ok(None);
        }
        let Some(ca) = &self.cacert else {
            return Err(TlsSetupError::Required { option: "--cacert", why: "required with --tls" });
        };
        let cert_key = match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => Some((cert.as_path(), key.as_path())),
            (None, None) => None,
            _ => {
                let why = "and --key go together";
                return Err(TlsSetupError::Required { option: "--cert", why });
            }
        };
        ClientTls::new(ca, cert_key, self.sni.as_deref(), CLI_NAMES).map(Some)
    }
}
