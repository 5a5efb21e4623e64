//! The configuration of one replicated rsl-kv server (`rsl-kv run --config FILE`).
//!
//! The file is the rsl replica's own TOML configuration ([`rsl::NodeConfig`]: `id`,
//! `data_dir`, `members`, `tls`, `metrics_addr`, `[consensus]`, `[storage]`) plus one `[kv]`
//! table for the client side: where this server listens for Redis clients, every member's
//! client address (for forwarding to the primary), an optional password and the clock tick.
//! Both parts are validated; an error names the bad field (`kv.clients`, `members`, ...).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use rsl::NodeConfig;
use serde::{Deserialize, Serialize};

use crate::tls::{AuthClients, ClientTls, ServerTlsFiles, TlsSetupError, CONFIG_NAMES};

/// One member's client (Redis protocol) address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientAddr {
    /// The member's replica id, as in `members`.
    pub id: u32,
    /// Where Redis clients (and other members forwarding to it) reach it.
    pub addr: SocketAddr,
}

/// The `[kv]` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KvSection {
    /// The address this server listens on for clients; defaults to its own entry in `clients`.
    #[serde(default)]
    pub listen: Option<SocketAddr>,
    /// Every member's client address, this one's included.
    pub clients: Vec<ClientAddr>,
    /// The password clients (and forwarding members) must give with AUTH.
    #[serde(default)]
    pub requirepass: Option<String>,
    /// How often the primary proposes a clock tick so that keys expire without other
    /// writes, in milliseconds (0: never).
    #[serde(default = "tick_ms_default")]
    pub tick_ms: u64,
    /// How reads are served.
    #[serde(default)]
    pub reads: Reads,
    /// TLS on the client port (then TLS only): this server's certificate chain (Redis's
    /// `tls-cert-file`). It also serves as the client certificate when this replica relays an
    /// admin command to another member, so it must allow client authentication too.
    #[serde(default)]
    pub tls_cert_file: Option<PathBuf>,
    /// Its private key (`tls-key-file`).
    #[serde(default)]
    pub tls_key_file: Option<PathBuf>,
    /// The CA that client certificates, and other members' certificates when this replica
    /// relays to them, chain to (`tls-ca-cert-file`).
    #[serde(default)]
    pub tls_ca_cert_file: Option<PathBuf>,
    /// Whether clients must present a certificate (`tls-auth-clients`: yes, no, optional).
    #[serde(default)]
    pub tls_auth_clients: AuthClients,
}

/// How a replicated server serves reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reads {
    /// Linearizable wherever the client is connected: by the primary under its lease (or
    /// after a quorum round), by a follower from its own state once it has executed the
    /// primary's read index (asked for after the read arrived); a follower that gets no index,
    /// or is behind it, forwards the read to the primary.
    #[default]
    Linearizable,
    /// By whichever replica the client is connected to, from its own state, which may lag
    /// the primary's (RSL's fast read). Never forwarded.
    Local,
}

fn tick_ms_default() -> u64 {
    100
}

/// A replicated server's whole configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvConfig {
    /// The replica's configuration, handed to [`rsl::Node::start`].
    pub node: NodeConfig,
    /// The client side.
    pub kv: KvSection,
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KvConfigError {
    /// The file cannot be read.
    #[error("cannot read configuration file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The text is not TOML of the expected shape.
    #[error("configuration is not valid: {0}")]
    Parse(String),
    /// A field has a value that cannot be used.
    #[error("invalid configuration: {field}: {reason}")]
    Invalid {
        /// The field, dotted (`kv.clients`).
        field: String,
        /// Why.
        reason: String,
    },
    /// The replica's part is invalid (the message names the field).
    #[error(transparent)]
    Node(#[from] rsl::config::ConfigError),
}

fn invalid(field: &str, reason: impl Into<String>) -> KvConfigError {
    KvConfigError::Invalid { field: field.into(), reason: reason.into() }
}

impl KvConfig {
    /// Reads and validates a configuration file.
    pub fn from_file(path: &Path) -> Result<KvConfig, KvConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| KvConfigError::Read { path: path.to_path_buf(), source })?;
        KvConfig::from_toml(&text)
    }

    /// Parses and validates a configuration.
    pub fn from_toml(text: &str) -> Result<KvConfig, KvConfigError> {
        let mut table: toml::Table =
            text.parse().map_err(|e: toml::de::Error| KvConfigError::Parse(e.to_string()))?;
        let kv = table.remove("kv").ok_or_else(|| invalid("kv", "the [kv] table is missing"))?;
        let kv =
            KvSection::deserialize(kv).map_err(|e| KvConfigError::Parse(format!("kv: {e}")))?;
        let node = NodeConfig::deserialize(toml::Value::Table(table))
            .map_err(|e| KvConfigError::Parse(e.to_string()))?;
        let config = KvConfig { node, kv };
        config.validate()?;
        Ok(config)
    }

    /// The TOML text of this configuration (what [`KvConfig::from_toml`] reads back).
    pub fn to_toml(&self) -> String {
        let mut table = toml::Table::try_from(&self.node).expect("a node config is a table");
        let kv = toml::Value::try_from(&self.kv).expect("the kv section is a table");
        table.insert("kv".into(), kv);
        toml::to_string(&table).expect("a table serializes")
    }

    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), KvConfigError> {
        self.node.validate()?;
        let clients = &self.kv.clients;
        for (i, c) in clients.iter().enumerate() {
            if clients[..i].iter().any(|o| o.id == c.id) {
                return Err(invalid("kv.clients", format!("id {} appears twice", c.id)));
            }
            if clients[..i].iter().any(|o| o.addr == c.addr) {
                return Err(invalid("kv.clients", format!("address {} appears twice", c.addr)));
            }
            // A replica that joins names its own client address; it is no member yet.
            let joining_self = self.node.join && c.id == self.node.id;
            if self.node.member(c.id).is_none() && !joining_self {
                return Err(invalid(
                    "kv.clients",
                    format!("id {} is not one of the members", c.id),
                ));
            }
            if self.node.members.iter().any(|m| m.addr == c.addr) {
                let reason = format!("address {} is also a replica (peer) address", c.addr);
                return Err(invalid("kv.clients", reason));
            }
        }
        if let Some(m) = self.node.members.iter().find(|m| !clients.iter().any(|c| c.id == m.id)) {
            return Err(invalid("kv.clients", format!("member {} has no client address", m.id)));
        }
        if self.node.join && !clients.iter().any(|c| c.id == self.node.id) {
            let reason = format!("the joining replica {} has no client address", self.node.id);
            return Err(invalid("kv.clients", reason));
        }
        if self.kv.requirepass.as_deref() == Some("") {
            return Err(invalid("kv.requirepass", "must not be empty (leave it out for none)"));
        }
        if self.kv.tick_ms > 60_000 {
            return Err(invalid("kv.tick_ms", "must be at most 60000 (0: never)"));
        }
        let kv = &self.kv;
        match (&kv.tls_cert_file, &kv.tls_key_file, &kv.tls_ca_cert_file) {
            (None, None, None) if kv.tls_auth_clients == AuthClients::default() => {}
            (None, _, _) => {
                return Err(invalid("kv.tls_cert_file", "required with the other kv.tls_* fields"))
            }
            (_, None, _) => {
                return Err(invalid("kv.tls_key_file", "required with kv.tls_cert_file"))
            }
            (_, _, None) => {
                let why = "required with kv.tls_cert_file (replicas relay to each other with it)";
                return Err(invalid("kv.tls_ca_cert_file", why));
            }
            (Some(_), Some(_), Some(_)) => {}
        }
        if let Some(listen) = self.kv.listen {
            if Some(listen) == self.node.metrics_addr {
                return Err(invalid("kv.listen", "is also the metrics address"));
            }
        }
        Ok(())
    }

    /// The address to listen on for clients.
    pub fn listen_addr(&self) -> SocketAddr {
        self.kv.listen.unwrap_or_else(|| self.client_addrs()[&self.node.id])
    }

    /// The client port's TLS files, if it speaks TLS.
    pub fn server_tls(&self) -> Option<ServerTlsFiles> {
        let kv = &self.kv;
        Some(ServerTlsFiles {
            cert: kv.tls_cert_file.clone()?,
            key: kv.tls_key_file.clone()?,
            ca: kv.tls_ca_cert_file.clone(),
            auth_clients: kv.tls_auth_clients,
        })
    }

    /// How this replica reaches other members' TLS client ports (its own certificate as the
    /// client's), if they speak TLS.
    pub fn relay_tls(&self) -> Result<Option<ClientTls>, TlsSetupError> {
        let kv = &self.kv;
        let (Some(cert), Some(key), Some(ca)) =
            (&kv.tls_cert_file, &kv.tls_key_file, &kv.tls_ca_cert_file)
        else {
            return Ok(None);
        };
        ClientTls::new(ca, Some((cert, key)), None, CONFIG_NAMES).map(Some)
    }

    /// Every member's client address, by replica id.
    pub fn client_addrs(&self) -> BTreeMap<u32, SocketAddr> {
        self.kv.clients.iter().map(|c| (c.id, c.addr)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
        id = 2
        data_dir = "/tmp/rsl-kv-2"
        members = [
            { id = 1, addr = "127.0.0.1:7001" },
            { id = 2, addr = "127.0.0.1:7002" },
            { id = 3, addr = "127.0.0.1:7003" },
        ]
        metrics_addr = "127.0.0.1:9102"

        [consensus]
        tick_ms = 10

        [kv]
        clients = [
            { id = 1, addr = "127.0.0.1:6381" },
            { id = 2, addr = "127.0.0.1:6382" },
            { id = 3, addr = "127.0.0.1:6383" },
        ]
        requirepass = "secret"
    "#;

    fn error_of(text: &str) -> String {
        KvConfig::from_toml(text).unwrap_err().to_string()
    }

    #[test]
    fn a_good_file_parses_with_defaults_and_round_trips() {
        let c = KvConfig::from_toml(GOOD).unwrap();
        assert_eq!(c.listen_addr(), "127.0.0.1:6382".parse().unwrap());
        assert_eq!(c.kv.tick_ms, 100);
        assert_eq!(c.kv.reads, Reads::Linearizable);
        let local = KvConfig::from_toml(&GOOD.replace("[kv]", "[kv]\nreads = \"local\"")).unwrap();
        assert_eq!(local.kv.reads, Reads::Local);
        assert_eq!(c.kv.requirepass.as_deref(), Some("secret"));
        assert_eq!(c.node.id, 2);
        assert_eq!(c.client_addrs().len(), 3);
        assert_eq!(KvConfig::from_toml(&c.to_toml()).unwrap(), c);
    }

    #[test]
    fn the_readme_example_is_a_valid_configuration() {
        let readme = include_str!("../README.md");
        let section = &readme[readme.find("### The configuration file").unwrap()..];
        let start = section.find("```toml\n").unwrap() + "```toml\n".len();
        let example = &section[start..start + section[start..].find("```").unwrap()];
        let c = KvConfig::from_toml(example).unwrap();
        assert_eq!(c.node.members.len(), 3);
        assert_eq!(c.listen_addr(), "10.0.0.1:6379".parse().unwrap());
        assert!(c.node.tls.is_some() && c.node.storage.fsync);
    }

    #[test]
    fn errors_name_the_bad_field() {
        let e = error_of(&GOOD.replace("{ id = 3, addr = \"127.0.0.1:6383\" },", ""));
        assert!(e.contains("kv.clients: member 3 has no client address"), "{e}");
        let e = error_of(&GOOD.replace("127.0.0.1:6383", "127.0.0.1:6382"));
        assert!(e.contains("kv.clients: address 127.0.0.1:6382 appears twice"), "{e}");
        let e = error_of(&GOOD.replace(
            "{ id = 3, addr = \"127.0.0.1:6383\" }",
            "{ id = 4, addr = \"127.0.0.1:6383\" }",
        ));
        assert!(e.contains("kv.clients: id 4 is not one of the members"), "{e}");
        let e = error_of(&GOOD.replace("127.0.0.1:6383", "127.0.0.1:7003"));
        assert!(e.contains("kv.clients: address 127.0.0.1:7003 is also a replica"), "{e}");
        let e = error_of(&GOOD.replace("\"secret\"", "\"\""));
        assert!(e.contains("kv.requirepass"), "{e}");
        let e = error_of(&GOOD.replace("requirepass = \"secret\"", "requirepas = \"x\""));
        assert!(e.contains("requirepas"), "{e}");
        let e = error_of(&GOOD.replace("id = 2\n", "id = 9\n"));
        assert!(e.contains("id: 9 is not one of the members"), "{e}");
        let e = error_of(&GOOD.replace("tick_ms = 10", "tick_ms = 0"));
        assert!(e.contains("consensus.tick_ms"), "{e}");
        let e = error_of(&GOOD.replace("[kv]", "[kv]\nreads = \"stale\""));
        assert!(e.contains("kv:") && e.contains("stale"), "{e}");
        let e = error_of(&GOOD.replace("[kv]", "[kvv]"));
        assert!(e.contains("kv"), "{e}");
        let e = error_of(&GOOD.replace("127.0.0.1:6381", "localhost"));
        assert!(e.contains("kv:"), "{e}");
        let tls = |fields: &str| error_of(&GOOD.replace("[kv]", &format!("[kv]\n{fields}")));
        let e = tls("tls_key_file = \"k\"\ntls_ca_cert_file = \"c\"");
        assert!(e.contains("kv.tls_cert_file: required"), "{e}");
        let e = tls("tls_cert_file = \"c\"\ntls_ca_cert_file = \"c\"");
        assert!(e.contains("kv.tls_key_file: required"), "{e}");
        let e = tls("tls_cert_file = \"c\"\ntls_key_file = \"k\"");
        assert!(e.contains("kv.tls_ca_cert_file: required"), "{e}");
        let e = tls("tls_auth_clients = \"no\"");
        assert!(e.contains("kv.tls_cert_file: required"), "{e}");
        let e = tls("tls_auth_clients = \"maybe\"");
        assert!(e.contains("maybe"), "{e}");
        let all = "tls_cert_file = \"c\"\ntls_key_file = \"k\"\ntls_ca_cert_file = \"a\"";
        let c = KvConfig::from_toml(&GOOD.replace("[kv]", &format!("[kv]\n{all}"))).unwrap();
        assert_eq!(c.server_tls().unwrap().auth_clients, AuthClients::Yes);
        assert_eq!(KvConfig::from_toml(&c.to_toml()).unwrap(), c);
    }
}
