//! Mutual TLS between replicas: certificate generation, loading, and identity checks.
//!
//! Each cluster has its own CA. Each replica holds a certificate signed by that CA whose
//! subject alternative name is `replica-<id>.rsl` ([`replica_server_name`]), usable both as a
//! server and as a client certificate. The invariants this module gives the transport:
//!
//! - the listener accepts a TLS session only from a client that presents a certificate chaining
//!   to the cluster's CA (rustls `WebPkiClientVerifier`);
//! - the dialer accepts a session only from a server whose certificate chains to the CA and
//!   names the replica it meant to reach;
//! - [`cert_names_replica`] lets the listener check that the id a client claims in its hello is
//!   the id in its certificate, so a member cannot impersonate another member.
//!
//! Only TLS 1.3 is offered, with the `ring` provider chosen explicitly (not the process default,
//! which another crate in the same binary may have set differently).

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::verify_server_name;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::{ParsedCertificate, WebPkiClientVerifier};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use thiserror::Error;

use crate::ReplicaId;

/// File name of the cluster CA's certificate in a certificate directory.
pub const CA_CERT_FILE: &str = "ca.pem";
/// File name of the cluster CA's private key (keep it offline in production).
pub const CA_KEY_FILE: &str = "ca.key.pem";

/// File name of the client certificate (for client ports; it names no replica).
pub const CLIENT_CERT_FILE: &str = "client.pem";
/// File name of the client certificate's private key.
pub const CLIENT_KEY_FILE: &str = "client.key.pem";

/// The DNS name in replica `id`'s certificate: `replica-<id>.rsl`.
pub fn replica_server_name(id: ReplicaId) -> String {
    format!("replica-{id}.rsl")
}

/// File name of replica `id`'s certificate.
pub fn replica_cert_file(id: ReplicaId) -> String {
    format!("replica-{id}.pem")
}

/// File name of replica `id`'s private key.
pub fn replica_key_file(id: ReplicaId) -> String {
    format!("replica-{id}.key.pem")
}

/// Why certificates could not be generated, loaded or used.
#[derive(Debug, Error)]
pub enum TlsError {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A PEM file holds no certificate or no private key.
    #[error("{0}: no certificate or private key found")]
    Missing(PathBuf),
    /// A PEM file could not be parsed.
    #[error("{path}: {source}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: rustls::pki_types::pem::Error,
    },
    /// rcgen refused to build a certificate.
    #[cfg(feature = "certgen")]
    #[error("certificate generation: {0}")]
    Generate(#[from] rcgen::Error),
    /// rustls refused a certificate, key or configuration.
    #[error("tls configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// The client-certificate verifier could not be built.
    #[error("client verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}

/// One replica's TLS identity: the cluster CA it trusts, its certificate chain and its key.
pub struct TlsIdentity {
    ca: CertificateDer<'static>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl Clone for TlsIdentity {
    fn clone(&self) -> Self {
        TlsIdentity { ca: self.ca.clone(), chain: self.chain.clone(), key: self.key.clone_key() }
    }
}

impl fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the key.
        f.debug_struct("TlsIdentity").field("chain_len", &self.chain.len()).finish_non_exhaustive()
    }
}

impl TlsIdentity {
    /// Loads replica `id`'s identity from a directory written by `generate_cluster_certs`
    /// (feature `certgen`) or laid out the same way.
    pub fn load(dir: &Path, id: ReplicaId) -> Result<TlsIdentity, TlsError> {
        TlsIdentity::from_pem_files(
            &dir.join(CA_CERT_FILE),
            &dir.join(replica_cert_file(id)),
            &dir.join(replica_key_file(id)),
        )
    }

    /// Loads an identity from three PEM files: the CA certificate, this replica's certificate
    /// chain (leaf first), and its private key.
    pub fn from_pem_files(ca: &Path, cert: &Path, key: &Path) -> Result<TlsIdentity, TlsError> {
        let read = |path: &Path| {
            fs::read(path).map_err(|source| TlsError::Io { path: path.to_owned(), source })
        };
        let ca_der = read_certs(&read(ca)?, ca)?.swap_remove(0);
        let chain = read_certs(&read(cert)?, cert)?;
        let key_der = match PrivateKeyDer::from_pem_slice(&read(key)?) {
            Ok(key_der) => key_der,
            Err(pem::Error::NoItemsFound) => return Err(TlsError::Missing(key.to_owned())),
            Err(source) => return Err(TlsError::Pem { path: key.to_owned(), source }),
        };
        Ok(TlsIdentity { ca: ca_der, chain, key: key_der })
    }

    /// The rustls server configuration: this identity's certificate, and client certificates
    /// required and verified against the cluster CA.
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, TlsError> {
        let provider = provider();
        let verifier =
            WebPkiClientVerifier::builder_with_provider(self.roots()?, provider.clone()).build()?;
        let config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.chain.clone(), self.key.clone_key())?;
        Ok(Arc::new(config))
    }

    /// The rustls client configuration: servers verified against the cluster CA, and this
    /// identity presented as the client certificate.
    pub fn client_config(&self) -> Result<Arc<ClientConfig>, TlsError> {
        let config = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_root_certificates(self.roots()?)
            .with_client_auth_cert(self.chain.clone(), self.key.clone_key())?;
        Ok(Arc::new(config))
    }

    fn roots(&self) -> Result<Arc<RootCertStore>, TlsError> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.clone())?;
        assert_eq!(roots.len(), 1);
        Ok(Arc::new(roots))
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_certs(pem: &[u8], path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Pem { path: path.to_owned(), source })?;
    if certs.is_empty() {
        return Err(TlsError::Missing(path.to_owned()));
    }
    Ok(certs)
}

/// True if `cert` (an end-entity certificate, already verified against the CA by rustls) names
/// replica `id` in its subject alternative names.
pub fn cert_names_replica(cert: &CertificateDer<'_>, id: ReplicaId) -> bool {
    let Ok(parsed) = ParsedCertificate::try_from(cert) else {
        return false;
    };
    let name = ServerName::try_from(replica_server_name(id)).expect("replica names are DNS names");
    verify_server_name(&parsed, &name).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate_cluster_certs;

    #[test]
    fn generated_certificates_load_and_name_their_replica() {
        let dir = tempfile::tempdir().unwrap();
        generate_cluster_certs(dir.path(), "unit", &[1, 2]).unwrap();
        for id in [1, 2] {
            let identity = TlsIdentity::load(dir.path(), id).unwrap();
            assert_eq!(identity.chain.len(), 1);
            assert!(cert_names_replica(&identity.chain[0], id));
            assert!(!cert_names_replica(&identity.chain[0], id + 1));
            assert!(!cert_names_replica(&identity.chain[0], id + 10));
            identity.server_config().unwrap();
            identity.client_config().unwrap();
        }
        assert!(!cert_names_replica(&CertificateDer::from(vec![1, 2, 3]), 1));
        assert!(matches!(TlsIdentity::load(dir.path(), 3), Err(TlsError::Io { .. })));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.path().join(replica_key_file(1))).unwrap().permissions();
            assert_eq!(mode.mode() & 0o777, 0o600);
        }
    }

    #[test]
    fn extra_hosts_are_named_and_the_client_certificate_names_no_replica() {
        let dir = tempfile::tempdir().unwrap();
        let hosts = ["localhost".to_string(), "127.0.0.1".to_string()];
        crate::generate_certs(dir.path(), "unit", &[1, 2], &hosts).unwrap();
        let one = TlsIdentity::load(dir.path(), 1).unwrap();
        let parsed = ParsedCertificate::try_from(&one.chain[0]).unwrap();
        for name in ["localhost", "127.0.0.1", "replica-1.rsl"] {
            let name = ServerName::try_from(name).unwrap();
            assert!(verify_server_name(&parsed, &name).is_ok(), "{name:?}");
        }
        let other = ServerName::try_from("127.0.0.2").unwrap();
        assert!(verify_server_name(&parsed, &other).is_err());
        let client = TlsIdentity::from_pem_files(
            &dir.path().join(CA_CERT_FILE),
            &dir.path().join(CLIENT_CERT_FILE),
            &dir.path().join(CLIENT_KEY_FILE),
        )
        .unwrap();
        for id in [1, 2] {
            assert!(!cert_names_replica(&client.chain[0], id));
        }
        client.client_config().unwrap();
        let mut written: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        written.sort();
        let mut expected = crate::cert_file_names(&[1, 2]);
        expected.sort();
        assert_eq!(written, expected);
    }

    #[test]
    fn a_file_without_pem_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        generate_cluster_certs(dir.path(), "unit", &[1]).unwrap();
        fs::write(dir.path().join(replica_key_file(1)), b"not pem").unwrap();
        assert!(matches!(TlsIdentity::load(dir.path(), 1), Err(TlsError::Missing(_))));
    }
}
