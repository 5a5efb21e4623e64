//! Errors at the public API boundary.

use std::path::PathBuf;

/// Why a `replicate` or `read` call did not produce a response. Every call ends in exactly
/// one response or one of these.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplicateError {
    /// This replica is not primary; `primary` is the one it follows, if it knows.
    #[error("not primary (primary: {primary:?})")]
    NotPrimary { primary: Option<u32> },
    /// A different value was chosen for the request's slot: it was not executed.
    #[error("superseded: the request was not chosen (primary: {primary:?})")]
    Superseded { primary: Option<u32> },
    /// Whether the request was executed is unknown (this replica caught up from a peer's
    /// checkpoint past its slot). Retrying may execute it twice.
    #[error("outcome unknown: the request may or may not have been executed")]
    OutcomeUnknown,
    /// Too many requests are waiting; retry later.
    #[error("overloaded")]
    Overloaded,
    /// The replica is shutting down or has shut down.
    #[error("shutting down")]
    ShuttingDown,
}

impl From<rsl_core::Refusal> for ReplicateError {
    fn from(r: rsl_core::Refusal) -> Self {
        use rsl_core::Refusal;
        match r {
            Refusal::NotPrimary { primary } => {
                ReplicateError::NotPrimary { primary: primary.map(|p| p.0) }
            }
            Refusal::Superseded { primary } => {
                ReplicateError::Superseded { primary: primary.map(|p| p.0) }
            }
            Refusal::OutcomeUnknown => ReplicateError::OutcomeUnknown,
            Refusal::Overloaded => ReplicateError::Overloaded,
            Refusal::ShuttingDown => ReplicateError::ShuttingDown,
        }
    }
}

/// Why a replica could not start. `Node::start` returns every one of these; it never panics
/// on an operating error.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration is invalid (the error names the field).
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The data directory cannot be created or its lock file opened.
    #[error("data directory {dir}: {source}")]
    DataDir { dir: PathBuf, source: std::io::Error },
    /// Another replica (in this process or another) holds the data directory.
    #[error("data directory {dir} is in use: another replica holds its lock ({dir}/LOCK)")]
    DataDirLocked { dir: PathBuf },
    /// Storage in `dir` cannot be opened or recovered.
    #[error("storage in {dir}: {source}")]
    Storage { dir: PathBuf, source: crate::StoreError },
    /// The checkpoint found on disk did not load into the state machine.
    #[error("loading checkpoint: {0}")]
    Checkpoint(std::io::Error),
    /// The transport did not start (the peer port is taken, the TLS files are bad, ...).
    #[error("transport: {0}")]
    Transport(#[from] rsl_net::StartError),
    /// The TLS files could not be read.
    #[error("tls: {0}")]
    Tls(#[from] rsl_net::TlsError),
    /// The metrics address could not be bound.
    #[error("metrics address {addr}: {source}")]
    Metrics { addr: std::net::SocketAddr, source: std::io::Error },
    /// A thread or the network runtime could not be started.
    #[error("starting threads: {0}")]
    Threads(std::io::Error),
}
