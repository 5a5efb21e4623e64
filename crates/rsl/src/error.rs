//! Errors at the public API boundary.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Why a `replicate` or `read` call did not produce a response. Every call ends in exactly
/// one response or one of these; the comment on each variant says whether the request may
/// have been executed (and so whether retrying it elsewhere may execute it twice).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
#[allow(missing_docs)] // The fields are described with their variants.
pub enum ReplicateError {
    /// This replica is not primary: the request was not executed. `primary` is the replica
    /// it follows, if it knows one, and `primary_addr` that replica's peer address, if the
    /// configuration names one (send the request to the application's endpoint there).
    #[error("not primary: {}", whom(primary, primary_addr))]
    NotPrimary { primary: Option<u32>, primary_addr: Option<SocketAddr> },
    /// A different value was chosen for the request's slot: it was not executed.
    #[error("superseded: the request was not chosen; {}", whom(primary, primary_addr))]
    Superseded { primary: Option<u32>, primary_addr: Option<SocketAddr> },
    /// Whether the request was executed is unknown (this replica caught up from a peer's
    /// checkpoint past its slot). Retrying may execute it twice.
    #[error("outcome unknown: the request may or may not have been executed")]
    OutcomeUnknown,
    /// Too many requests are waiting: it was not executed; retry later.
    #[error("overloaded")]
    Overloaded,
    /// The call's deadline passed first (`consensus.call_timeout_ms`, or the call's own). A
    /// write that timed out **may still execute**: its outcome is unknown, as with
    /// `OutcomeUnknown`. A read that timed out had no effect.
    #[error("timed out after {after:?}: a write may still execute")]
    Timeout { after: Duration },
    /// This replica's disk is full: the write was not executed. Reads are still served, and
    /// the replica resumes by itself once space is freed.
    #[error("disk full, writes refused: {reason}")]
    DiskFull { reason: String },
    /// The replica stopped on a failure (its state machine panicked, its storage failed); it
    /// serves nothing more. A write may or may not have executed before the stop.
    #[error("replica stopped: {reason}")]
    Stopped { reason: String },
    /// The replica is shutting down or has shut down ([`crate::Node::shutdown`]).
    #[error("shutting down")]
    ShuttingDown,
    /// The request is larger than the cluster carries (`consensus.request_bytes_max`): it was
    /// refused before it reached the log, on any replica. Retrying cannot help.
    #[error("request of {size} bytes exceeds the maximum of {max} bytes (request_bytes_max)")]
    TooLarge { size: usize, max: usize },
}

/// The primary a refusal names, in words: "no primary is known" rather than `None at None`.
fn whom(primary: &Option<u32>, addr: &Option<SocketAddr>) -> String {
    match (primary, addr) {
        (None, _) => "no primary is known (an election may be under way)".to_string(),
        (Some(id), None) => format!("the primary is replica {id}"),
        (Some(id), Some(addr)) => format!("the primary is replica {id} at {addr}"),
    }
}

/// Why a membership call ([`crate::Node::add_learner`], `promote`, `remove_member`,
/// `replace_member`, `change_membership`) did not make its change. Unless the variant says
/// otherwise, nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
#[allow(missing_docs)] // The fields are described with their variants.
pub enum MembershipError {
    /// This replica is not primary (or is handing primacy over); `primary` is the replica it
    /// follows, if it knows one, and `primary_addr` its peer address, if known. Ask it.
    #[error("not primary: {}", whom(primary, primary_addr))]
    NotPrimary { primary: Option<u32>, primary_addr: Option<SocketAddr> },
    /// Another membership change is not yet executed (one at a time).
    #[error("another membership change is in flight")]
    InFlight,
    /// The replica is a member already.
    #[error("replica {id} is a member already")]
    AlreadyMember { id: u32 },
    /// The learner is `lag` slots behind the primary (or not answering it) and did not catch
    /// up before the call's deadline.
    #[error("replica {id} has not caught up ({lag} slots behind)")]
    NotCaughtUp { id: u32, lag: u64 },
    /// The voters after the change that answer the primary (`live`) would not be a quorum
    /// (`quorum`): the cluster would stop.
    #[error("would leave no quorum: {live} live voters after the change, {quorum} needed")]
    NoQuorum { live: usize, quorum: usize },
    /// The change is invalid (the member's address or data too long, too many members).
    #[error("invalid membership change: {reason}")]
    Invalid { reason: String },
    /// The change was proposed but another value was chosen in its slot: it was not made.
    #[error("superseded: the change was not made; {}", whom(primary, primary_addr))]
    Superseded { primary: Option<u32>, primary_addr: Option<SocketAddr> },
    /// Whether the change was made is unknown (this replica skipped its slot by installing
    /// a checkpoint); [`crate::Node::members`] says.
    #[error("outcome unknown: the membership says whether the change was made")]
    OutcomeUnknown,
    /// The call's deadline passed first: the change **may still be made** (see
    /// [`crate::Node::members`]), or the learner did not catch up in time.
    #[error("timed out after {after:?}: the change may still be made")]
    Timeout { after: Duration },
    /// The list of voters is empty.
    #[error("a membership needs at least one voter")]
    Empty,
    /// A voter appears twice.
    #[error("replica {id} appears twice")]
    Duplicate { id: u32 },
    /// The replica is not a member (for a promotion or a replacement's new voter: not a
    /// learner; for a replacement's old voter: not a voter; for `change_membership`: not a
    /// member this replica knows an address for).
    #[error("replica {id} is not a member in the role the change needs")]
    UnknownMember { id: u32 },
    /// The replica has stopped.
    #[error("the replica has stopped")]
    Stopped,
}

/// Why a replica could not start. `Node::start` returns every one of these; it never panics
/// on an operating error.
#[derive(Debug, thiserror::Error)]
#[allow(missing_docs)] // The fields are described with their variants.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_names_the_primary_in_words() {
        let none = MembershipError::NotPrimary { primary: None, primary_addr: None };
        assert_eq!(
            none.to_string(),
            "not primary: no primary is known (an election may be under way)"
        );
        let addr: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        let known = ReplicateError::Superseded { primary: Some(3), primary_addr: Some(addr) };
        assert_eq!(
            known.to_string(),
            "superseded: the request was not chosen; the primary is replica 3 at 127.0.0.1:4000"
        );
        let no_addr = ReplicateError::NotPrimary { primary: Some(2), primary_addr: None };
        assert_eq!(no_addr.to_string(), "not primary: the primary is replica 2");
    }
}
