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

/// Why a replica could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("storage in {dir}: {message}")]
    Storage { dir: PathBuf, message: String },
    #[error("network: {0}")]
    Network(String),
    #[error("loading checkpoint: {0}")]
    Checkpoint(std::io::Error),
}
