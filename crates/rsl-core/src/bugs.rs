//! Known bugs that tests can plant in the core, to prove the simulator's checkers catch them.
//! Compiled only with the `planted-bugs` feature; a normal build has no trace of them.

/// A bug to plant. Each breaks one safety argument of docs/protocol.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Bug {
    /// The acceptor accepts a value for a slot even when it promised a higher ballot, and
    /// overwrites what it accepted before.
    AcceptorIgnoresPromise,
    /// A new primary does not re-propose the highest-ballot value that promises reported;
    /// it fills every open slot with a no-op (or its own requests) instead.
    SkipPhase1Reproposal,
    /// The primary counts its own vote for a slot before its own write is durable.
    CountOwnVoteBeforeDurable,
    /// An acceptor sends its promise or vote before the write it depends on is durable.
    SendBeforePersist,
    /// A slot counts as chosen with a minority of votes (quorum = n / 2).
    CommitOnMinority,
    /// A replica executes a chosen slot even when an earlier slot is not yet executed.
    ExecuteOutOfOrder,
    /// A replica that lost its disk skips the rebuild: it promises and votes at once, as if
    /// it had never voted (its lost promises and votes may have been counted).
    WipedReplicaVotes,
}

/// The planted bugs of one run (usually none or one).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bugs(pub Vec<Bug>);

impl Bugs {
    pub fn has(&self, bug: Bug) -> bool {
        self.0.contains(&bug)
    }
}
