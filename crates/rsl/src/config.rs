//! A replica's configuration: read from TOML, every field defaulted where a default makes
//! sense, and validated with errors that name the bad field.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The default of `consensus.call_timeout_ms`: several elections' worth, so that a call
/// rides out a failover and still ends when a majority is gone.
pub const CALL_TIMEOUT_MS_DEFAULT: u64 = 5_000;
/// The largest `consensus.call_timeout_ms` (one hour).
pub const CALL_TIMEOUT_MS_MAX: u64 = 3_600_000;

/// One member of the cluster as the configuration names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Member {
    /// The replica's id, unique for the cluster's life.
    pub id: u32,
    /// Where its peers reach it (replica-to-replica port).
    pub addr: SocketAddr,
}

/// Mutual TLS between replicas: PEM files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// The cluster's certificate authority.
    pub ca: PathBuf,
    /// This replica's certificate (its id in the subject alt name).
    pub cert: PathBuf,
    /// This replica's private key.
    pub key: PathBuf,
}

/// Which storage backend keeps the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// Segment files with group-committed fdatasync (the default).
    #[default]
    File,
    /// In memory: nothing survives the process (tests, benchmarks).
    Memory,
    /// A memory-mapped log made durable with cache-line flushes (DAX) or msync.
    Pmem,
}

/// Consensus knobs (see rsl_core::Config for their meaning).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Consensus {
    /// Milliseconds per core tick.
    pub tick_ms: u64,
    pub heartbeat_ticks: u32,
    pub election_ticks_min: u32,
    pub election_ticks_max: u32,
    pub lease_ticks: u32,
    pub clock_drift_permille: u32,
    pub pipeline_slots_max: u64,
    pub batch_requests_max: usize,
    pub batch_bytes_max: usize,
    pub proposals_queued_max: usize,
    pub reads_queued_max: usize,
    /// Milliseconds a `replicate` or `read` call waits at most, unless the call sets its
    /// own deadline; then it ends with `ReplicateError::Timeout`.
    pub call_timeout_ms: u64,
}

impl Default for Consensus {
    fn default() -> Self {
        let core = rsl_core::Config::new(1, [1]);
        Consensus {
            tick_ms: 10,
            heartbeat_ticks: core.heartbeat_ticks,
            election_ticks_min: core.election_ticks_min,
            election_ticks_max: core.election_ticks_max,
            lease_ticks: core.lease_ticks,
            clock_drift_permille: core.clock_drift_permille,
            pipeline_slots_max: core.pipeline_slots_max,
            batch_requests_max: core.batch_requests_max,
            batch_bytes_max: core.batch_bytes_max,
            proposals_queued_max: core.proposals_queued_max,
            reads_queued_max: core.reads_queued_max,
            call_timeout_ms: CALL_TIMEOUT_MS_DEFAULT,
        }
    }
}

impl Consensus {
    /// Checks the knobs the runtime reads itself (the core checks its own when it starts);
    /// the error names the field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.tick_ms == 0 || self.tick_ms > 1000 {
            return Err(invalid("consensus.tick_ms", "must be between 1 and 1000"));
        }
        if !(1..=CALL_TIMEOUT_MS_MAX).contains(&self.call_timeout_ms) {
            return Err(invalid(
                "consensus.call_timeout_ms",
                format!("must be between 1 and {CALL_TIMEOUT_MS_MAX}"),
            ));
        }
        let mut core = rsl_core::Config::new(1, [1]);
        self.apply(&mut core);
        core.validate().map_err(|e| invalid(&format!("consensus.{}", e.field), e.reason))
    }

    /// Copies the knobs into the core's configuration.
    pub(crate) fn apply(&self, core: &mut rsl_core::Config) {
        core.heartbeat_ticks = self.heartbeat_ticks;
        core.election_ticks_min = self.election_ticks_min;
        core.election_ticks_max = self.election_ticks_max;
        core.lease_ticks = self.lease_ticks;
        core.clock_drift_permille = self.clock_drift_permille;
        core.pipeline_slots_max = self.pipeline_slots_max;
        core.batch_requests_max = self.batch_requests_max;
        core.batch_bytes_max = self.batch_bytes_max;
        core.proposals_queued_max = self.proposals_queued_max;
        core.reads_queued_max = self.reads_queued_max;
    }
}

/// Storage knobs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Storage {
    pub backend: Backend,
    /// Make writes durable with fdatasync. Off only for benchmarks that say so.
    pub fsync: bool,
    pub segment_bytes_max: u64,
    /// Take a checkpoint every this many executed slots (0: never automatically).
    pub checkpoint_interval_slots: u64,
    /// Checkpoints kept on disk; the log before the oldest is deleted.
    pub checkpoints_kept: usize,
    /// Slots of log kept behind the newest checkpoint, so lagging peers catch up from the
    /// log; a peer further behind is sent the checkpoint.
    pub log_kept_slots: u64,
    /// This replica lost its disk: its data directory is new, but it took part in the cluster
    /// before (it may have promised and voted). It then rebuilds from its peers before it
    /// promises or votes again (docs/protocol.md, "Disk loss"). Read only when the data
    /// directory is empty; starting a replica that lost its disk without it can lose
    /// acknowledged writes. Never set it when bootstrapping a new cluster.
    pub disk_lost: bool,
}

impl Default for Storage {
    fn default() -> Self {
        Storage {
            backend: Backend::File,
            fsync: true,
            segment_bytes_max: 64 << 20,
            checkpoint_interval_slots: 100_000,
            checkpoints_kept: 2,
            log_kept_slots: 10_000,
            disk_lost: false,
        }
    }
}

/// A replica's whole configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// This replica's id; must be one of `members`.
    pub id: u32,
    /// Where this replica keeps its log, metadata and checkpoints.
    pub data_dir: PathBuf,
    /// The cluster's initial voters (used when bootstrapping).
    pub members: Vec<Member>,
    /// Address to listen on for peers; defaults to this member's `addr`.
    #[serde(default)]
    pub listen: Option<SocketAddr>,
    /// Mutual TLS between replicas; absent means plaintext (loopback tests only).
    #[serde(default)]
    pub tls: Option<TlsFiles>,
    /// Prometheus metrics endpoint (`GET /metrics`); absent means none.
    #[serde(default)]
    pub metrics_addr: Option<SocketAddr>,
    #[serde(default)]
    pub consensus: Consensus,
    #[serde(default)]
    pub storage: Storage,
}

/// A configuration that cannot be used, naming the field.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("configuration file {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid configuration: {field}: {reason}")]
    Invalid { field: String, reason: String },
}

fn invalid(field: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { field: field.to_string(), reason: reason.into() }
}

impl NodeConfig {
    /// Reads and validates a TOML configuration file.
    pub fn from_file(path: &Path) -> Result<NodeConfig, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        NodeConfig::from_toml(&text).map_err(|e| match e {
            ConfigError::Parse { message, .. } => {
                ConfigError::Parse { path: path.to_path_buf(), message }
            }
            other => other,
        })
    }

    /// Parses and validates a TOML configuration.
    pub fn from_toml(text: &str) -> Result<NodeConfig, ConfigError> {
        let config: NodeConfig = toml::from_str(text)
            .map_err(|e| ConfigError::Parse { path: PathBuf::new(), message: e.to_string() })?;
        config.validate()?;
        Ok(config)
    }

    /// The address this replica listens on for its peers.
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen.unwrap_or_else(|| self.member(self.id).expect("validated").addr)
    }

    pub fn member(&self, id: u32) -> Option<&Member> {
        self.members.iter().find(|m| m.id == id)
    }

    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.members.is_empty() || self.members.len() > 9 {
            return Err(invalid("members", "needs 1 to 9 members"));
        }
        for (i, m) in self.members.iter().enumerate() {
            if self.members[..i].iter().any(|o| o.id == m.id) {
                return Err(invalid("members", format!("id {} appears twice", m.id)));
            }
            if self.members[..i].iter().any(|o| o.addr == m.addr) {
                return Err(invalid("members", format!("address {} appears twice", m.addr)));
            }
        }
        if self.member(self.id).is_none() {
            return Err(invalid("id", format!("{} is not one of the members", self.id)));
        }
        if self.data_dir.as_os_str().is_empty() {
            return Err(invalid("data_dir", "must not be empty"));
        }
        self.consensus.validate()?;
        if self.storage.checkpoints_kept == 0 {
            return Err(invalid("storage.checkpoints_kept", "must be at least 1"));
        }
        if self.storage.segment_bytes_max < 4096 {
            return Err(invalid("storage.segment_bytes_max", "must be at least 4096"));
        }
        self.core_config(0)
            .validate()
            .map_err(|e| invalid(&format!("consensus.{}", e.field), e.reason))
    }

    /// The core's configuration for this replica.
    pub fn core_config(&self, rng_seed: u64) -> rsl_core::Config {
        let mut core = rsl_core::Config::new(self.id, self.members.iter().map(|m| m.id));
        self.consensus.apply(&mut core);
        core.checkpoint_interval_slots = self.storage.checkpoint_interval_slots;
        core.log_kept_slots = self.storage.log_kept_slots;
        core.rng_seed = rng_seed;
        core
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
        id = 2
        data_dir = "/tmp/rsl-2"
        members = [
            { id = 1, addr = "127.0.0.1:7001" },
            { id = 2, addr = "127.0.0.1:7002" },
            { id = 3, addr = "127.0.0.1:7003" },
        ]
    "#;

    #[test]
    fn defaults_fill_everything_but_the_cluster() {
        let c = NodeConfig::from_toml(GOOD).unwrap();
        assert_eq!(c.listen_addr(), "127.0.0.1:7002".parse().unwrap());
        assert_eq!(c.storage.backend, Backend::File);
        assert!(c.storage.fsync);
        assert_eq!(c.consensus.tick_ms, 10);
        assert_eq!(c.core_config(7).membership.voters.len(), 3);
    }

    fn error_of(text: &str) -> String {
        NodeConfig::from_toml(text).unwrap_err().to_string()
    }

    #[test]
    fn errors_name_the_bad_field() {
        let e = error_of(&GOOD.replacen("id = 2", "id = 9", 1));
        assert!(e.contains("id: 9 is not one of the members"), "{e}");
        let e = error_of(&GOOD.replace("7003", "7002"));
        assert!(e.contains("members: address"), "{e}");
        let e = error_of(&format!("{GOOD}\n[consensus]\nelection_ticks_min = 3\n"));
        assert!(e.contains("consensus.election_ticks_min"), "{e}");
        let e = error_of(&format!("{GOOD}\n[storage]\nbackend = \"tape\"\n"));
        assert!(e.contains("tape"), "{e}");
        let e = error_of(&format!("{GOOD}\n[storage]\nfsnyc = false\n"));
        assert!(e.contains("fsnyc"), "{e}");
        let e = error_of(&format!("{GOOD}\n[consensus]\ntick_ms = 0\n"));
        assert!(e.contains("consensus.tick_ms"), "{e}");
    }
}
