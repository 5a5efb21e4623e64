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
    /// In memory (`rsl_storage::MemDisk::ram`: one copy of each write, `sync` does nothing):
    /// nothing survives the process (tests, benchmarks). A replica of several restarted on it
    /// in a data directory where it ran before has forgotten its promises and votes: it
    /// starts as after a disk loss (`disk_lost`), rebuilding from its peers before it votes.
    /// The whole log is held in memory until a checkpoint cuts it (`checkpoint_interval_slots`,
    /// then `log_kept_slots` behind it): under load, lower both to bound the replica's memory
    /// (docs/benchmarks.md, "A bounded memory log").
    Memory,
    /// A memory-mapped log made durable with cache-line flushes (DAX) or msync.
    Pmem,
}

/// The default `consensus.request_bytes_max`: the largest request (and read query) a cluster
/// carries unless configured lower, 16 MiB (docs/limits.md).
pub const REQUEST_BYTES_MAX_DEFAULT: usize = rsl_core::limits::REQUEST_BYTES_MAX_DEFAULT;

/// Consensus knobs (`[consensus]`). Times are in ticks of `tick_ms` unless the name says
/// otherwise; the defaults are the core's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Consensus {
    /// Milliseconds per core tick.
    pub tick_ms: u64,
    /// The primary sends a heartbeat after this many ticks without another message.
    pub heartbeat_ticks: u32,
    /// A follower that hears no primary starts an election after a random timeout drawn
    /// between `election_ticks_min` and `election_ticks_max`.
    pub election_ticks_min: u32,
    /// See `election_ticks_min`.
    pub election_ticks_max: u32,
    /// How long a primary's read lease lasts (below `election_ticks_min`, drift included).
    pub lease_ticks: u32,
    /// The clock drift the leases allow for, in thousandths.
    pub clock_drift_permille: u32,
    /// Slots the primary keeps in flight at most.
    pub pipeline_slots_max: u64,
    /// Value bytes the primary keeps in flight at most (a slot alone always goes).
    pub pipeline_bytes_max: usize,
    /// Requests batched into one slot at most.
    pub batch_requests_max: usize,
    /// Request bytes batched into one slot at most.
    pub batch_bytes_max: usize,
    /// Proposals queued at the primary before new ones are refused as overloaded.
    pub proposals_queued_max: usize,
    /// Payload bytes of the queued proposals before new ones are refused as overloaded.
    pub proposals_queued_bytes_max: usize,
    /// Reads waiting for freshness before new ones are refused as overloaded.
    pub reads_queued_max: usize,
    /// Milliseconds a `replicate` or `read` call waits at most, unless the call sets its
    /// own deadline; then it ends with `ReplicateError::Timeout`.
    pub call_timeout_ms: u64,
    /// The largest request (and read query) in bytes; a larger one is refused with
    /// `ReplicateError::TooLarge`. At most what the transport's frame carries (16 MiB by
    /// default, the most the frame allows with the default batching knobs).
    pub request_bytes_max: usize,
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
            pipeline_bytes_max: core.pipeline_bytes_max,
            batch_requests_max: core.batch_requests_max,
            batch_bytes_max: core.batch_bytes_max,
            proposals_queued_max: core.proposals_queued_max,
            proposals_queued_bytes_max: core.proposals_queued_bytes_max,
            reads_queued_max: core.reads_queued_max,
            call_timeout_ms: CALL_TIMEOUT_MS_DEFAULT,
            request_bytes_max: core.request_bytes_max,
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
        core.validate().map_err(|e| self.core_error(e))
    }

    /// The core's refusal of these knobs, named by the knob a user sets.
    fn core_error(&self, e: rsl_core::ConfigError) -> ConfigError {
        match e.field {
            // Not a knob of its own: it is the transport's frame, which bounds the request.
            "message_bytes_max" => invalid(
                "consensus.request_bytes_max",
                format!(
                    "{} bytes (with batch_bytes_max {}) does not fit the transport's frame of {} \
                     bytes with its framing",
                    self.request_bytes_max,
                    self.batch_bytes_max,
                    rsl_net::limits::FRAME_PAYLOAD_BYTES_MAX
                ),
            ),
            field => invalid(&format!("consensus.{field}"), e.reason),
        }
    }

    /// Copies the knobs into the core's configuration.
    pub(crate) fn apply(&self, core: &mut rsl_core::Config) {
        core.heartbeat_ticks = self.heartbeat_ticks;
        core.election_ticks_min = self.election_ticks_min;
        core.election_ticks_max = self.election_ticks_max;
        core.lease_ticks = self.lease_ticks;
        core.clock_drift_permille = self.clock_drift_permille;
        core.pipeline_slots_max = self.pipeline_slots_max;
        core.pipeline_bytes_max = self.pipeline_bytes_max;
        core.batch_requests_max = self.batch_requests_max;
        core.batch_bytes_max = self.batch_bytes_max;
        core.proposals_queued_max = self.proposals_queued_max;
        core.proposals_queued_bytes_max = self.proposals_queued_bytes_max;
        core.reads_queued_max = self.reads_queued_max;
        core.request_bytes_max = self.request_bytes_max;
        // Not a knob: the consensus thread ends each turn of events with `EndOfTurn`, so the
        // proposals of a turn share slots.
        core.propose_at_turn_end = true;
        // Not a knob: a promise or a vote leaves from the I/O thread right after its sync.
        core.held_sends_to_driver = true;
        // Not a knob: the transport's frame, less the envelope, bounds every message.
        core.message_bytes_max = crate::envelope::MESSAGE_BYTES_MAX;
    }
}

/// Storage knobs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Storage {
    /// Where the log lives: segment files (the default), mapped files, or memory.
    pub backend: Backend,
    /// Make writes durable with fdatasync. Off only for benchmarks that say so.
    pub fsync: bool,
    /// A log segment rolls over once the next record would make it larger than this.
    pub segment_bytes_max: u64,
    /// Take a checkpoint every this many executed slots (0: never automatically).
    pub checkpoint_interval_slots: u64,
    /// Checkpoints kept on disk; the log before the oldest is deleted.
    pub checkpoints_kept: usize,
    /// Slots of log kept behind the newest checkpoint, so lagging peers catch up from the
    /// log; a peer further behind is sent the checkpoint.
    pub log_kept_slots: u64,
    /// Bytes of executed values kept in memory to answer lagging peers from; older ones are
    /// read back from the log when a peer asks. At least `consensus.pipeline_slots_max`
    /// entries stay whatever their size (0: only those). Bounds a replica's memory under load
    /// between checkpoints.
    pub log_memory_bytes_max: usize,
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
            log_memory_bytes_max: rsl_core::limits::LOG_MEMORY_BYTES_MAX_DEFAULT,
            disk_lost: false,
        }
    }
}

/// A replica's whole configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// This replica's id; must be one of `members` (unless it joins: then it must not be).
    pub id: u32,
    /// Where this replica keeps its log, metadata and checkpoints.
    pub data_dir: PathBuf,
    /// The cluster's initial voters (used when bootstrapping). For a replica that joins, the
    /// members it first contacts (any of the running cluster's; it learns the real membership
    /// from the log).
    pub members: Vec<Member>,
    /// This replica joins a running cluster instead of bootstrapping one: it starts as no
    /// member, waits until the primary adds it ([`crate::Node::add_learner`]), then catches
    /// up as a learner. Requires `listen`. Read only until it was added (its data directory
    /// then records it).
    #[serde(default)]
    pub join: bool,
    /// Address to listen on for peers; defaults to this member's `addr` (required when
    /// joining).
    #[serde(default)]
    pub listen: Option<SocketAddr>,
    /// Mutual TLS between replicas; absent means plaintext (loopback tests only).
    #[serde(default)]
    pub tls: Option<TlsFiles>,
    /// Prometheus metrics endpoint (`GET /metrics`); absent means none.
    #[serde(default)]
    pub metrics_addr: Option<SocketAddr>,
    /// Consensus knobs (`[consensus]`).
    #[serde(default)]
    pub consensus: Consensus,
    /// Storage knobs (`[storage]`).
    #[serde(default)]
    pub storage: Storage,
}

/// A configuration that cannot be used, naming the field.
#[derive(Debug, thiserror::Error)]
#[allow(missing_docs)] // The fields are what the messages say.
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read configuration file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    /// The file is not valid TOML for this schema (an unknown or mistyped field).
    #[error("configuration file {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    /// A field's value is not allowed; `field` names it (`consensus.tick_ms`).
    #[error("invalid configuration: {field}: {reason}")]
    Invalid { field: String, reason: String },
}

fn invalid(field: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { field: field.to_string(), reason: reason.into() }
}

impl Member {
    /// A member with id `id`, reached by its peers at `addr`.
    pub fn new(id: u32, addr: SocketAddr) -> Member {
        Member { id, addr }
    }
}

impl NodeConfig {
    /// A configuration with every knob at its default: replica `id` of the cluster
    /// `members`, keeping its state in `data_dir`. Set fields to change the rest, then
    /// [`NodeConfig::validate`] (which [`crate::Node::start`] also runs).
    ///
    /// ```
    /// use rsl::{Member, NodeConfig};
    ///
    /// let members = (1..=3).map(|id| Member::new(id, format!("10.0.0.{id}:7001").parse().unwrap()));
    /// let mut config = NodeConfig::new(2, "/var/lib/rsl/2", members.collect());
    /// config.consensus.call_timeout_ms = 2_000;
    /// config.metrics_addr = Some("127.0.0.1:9102".parse().unwrap());
    /// config.validate().expect("valid");
    /// assert_eq!(config.listen_addr(), "10.0.0.2:7001".parse().unwrap());
    ///
    /// // The same, as the TOML a replica reads from its configuration file.
    /// let toml = r#"
    ///     id = 2
    ///     data_dir = "/var/lib/rsl/2"
    ///     metrics_addr = "127.0.0.1:9102"
    ///     members = [
    ///         { id = 1, addr = "10.0.0.1:7001" },
    ///         { id = 2, addr = "10.0.0.2:7001" },
    ///         { id = 3, addr = "10.0.0.3:7001" },
    ///     ]
    ///     [consensus]
    ///     call_timeout_ms = 2000
    /// "#;
    /// assert_eq!(NodeConfig::from_toml(toml).unwrap(), config);
    /// ```
    pub fn new(id: u32, data_dir: impl Into<PathBuf>, members: Vec<Member>) -> NodeConfig {
        NodeConfig {
            id,
            data_dir: data_dir.into(),
            members,
            join: false,
            listen: None,
            tls: None,
            metrics_addr: None,
            consensus: Consensus::default(),
            storage: Storage::default(),
        }
    }

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

    /// A configuration for replica `id` joining the running cluster whose members include
    /// `members`, listening for peers on `listen`.
    pub fn joining(
        id: u32,
        data_dir: impl Into<PathBuf>,
        members: Vec<Member>,
        listen: SocketAddr,
    ) -> NodeConfig {
        let mut config = NodeConfig::new(id, data_dir, members);
        config.join = true;
        config.listen = Some(listen);
        config
    }

    /// The member with id `id`, if the configuration names it.
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
        if self.join {
            if self.member(self.id).is_some() {
                return Err(invalid("id", format!("{} joins, so it is not a member", self.id)));
            }
            if self.listen.is_none() {
                return Err(invalid("listen", "a joining replica needs its listen address"));
            }
        } else if self.member(self.id).is_none() {
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
        self.core_config(0).validate().map_err(|e| self.consensus.core_error(e))
    }

    /// The core's configuration for this replica.
    pub(crate) fn core_config(&self, rng_seed: u64) -> rsl_core::Config {
        let mut core = rsl_core::Config::new(self.id, self.members.iter().map(|m| m.id));
        self.consensus.apply(&mut core);
        core.joining = self.join;
        core.checkpoint_interval_slots = self.storage.checkpoint_interval_slots;
        core.log_kept_slots = self.storage.log_kept_slots;
        core.log_memory_bytes_max = self.storage.log_memory_bytes_max;
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
