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

    // Leases and timing margins.
    /// The lease runs from the newest heartbeat round *sent*, not the newest a quorum
    /// acknowledged: a cut-off primary keeps renewing its own lease.
    LeaseFromNewestRound,
    /// The lease lasts `election_ticks_min - 1` of the primary's ticks: as long as the
    /// followers' guard at nominal speed, with no allowance for a slow primary clock.
    LeaseIgnoresDrift,
    /// A follower refuses rival candidates for only half an election timeout after hearing
    /// the primary (shorter than the lease it granted).
    ShortStickiness,
    /// A primary whose transfer timed out resumes at its ballot (and serves lease reads)
    /// instead of relinquishing, though the target may be preparing with its consent.
    TransferTimeoutResumes,
    /// A transferring primary keeps taking linearizable reads and serving them under its
    /// lease.
    LeaseReadDuringTransfer,
    /// Learners' heartbeat acknowledgements count toward the lease's quorum.
    LeaseCountsLearners,

    // Durability at the cause.
    /// Phase 1 completes before the candidate's own promise is durable.
    Phase1BeforeOwnPromiseDurable,
    /// An acceptor raises its promise for a prepare in memory only (no write) and answers.
    PromiseNotPersisted,
    /// The primary counts votes that carry another of its ballots (late votes of an earlier
    /// primacy) toward its in-flight slots.
    CountVotesFromOtherBallots,
    /// An acceptor asked to accept at a higher ballot the value it already holds skips the
    /// write ("nothing changed") and votes: its durable record stays at the older ballot.
    SameValueNotRewritten,
    /// A follower marks chosen every entry up to the primary's commit point, whatever ballot
    /// it accepted it at.
    LearnCommitAtAnyBallot,

    // Configurations.
    /// The quorum of an even number of voters is half of them.
    EvenQuorumIsHalf,
    /// Learners' votes count toward a slot's quorum.
    CountLearnerVotes,

    // Checkpoints.
    /// A checkpoint installed from a peer behind what was already executed moves the
    /// executed point back.
    InstallMovesExecutedBack,
    /// Proposals whose slots an installed checkpoint skipped are refused as superseded
    /// (definitely not executed) instead of with an unknown outcome.
    InstalledOutcomeSuperseded,

    // Rare paths.
    /// Phase 1 re-proposes the lowest-ballot value reported for a slot, not the highest.
    Phase1PicksLowestBallot,
    /// Phase 1 ignores slots reported unknown (corrupt) and fills them as if empty.
    Phase1IgnoresUnknown,
    /// A truncated promise counts as complete.
    TruncatedPromiseCounts,
    /// Phase 1 judges a slot reported unknown (corrupt) under the candidate's executed
    /// membership (did every voter answer, did fewer than a quorum lose it), not under the
    /// membership a configuration among the open slots before it installs (seed 77049783
    /// with `--reconfig`).
    UnknownUnderExecutedMembership,
    /// The primary takes a learner for caught up on any acknowledgement near its commit
    /// point, however old and whether or not the learner knows itself a member (seed
    /// 75002710 with `--reconfig`: removed replicas added back while cut off were made the
    /// voters and never learned it). A liveness bug.
    PromoteOnStaleAcks,
    /// Recovery ignores the slots lost between an older checkpoint it fell back to and its
    /// persisted commit point (in neither its log nor its checkpoint) and promises them as
    /// empty, instead of reporting them corrupt (seed 74099885 with `--reconfig`).
    RecoveryIgnoresLostSlots,
    /// A linearizable read's index is the commit point even before the new primary's
    /// phase 1 re-proposals executed.
    ReadIndexIgnoresRecovery,

    // Membership operations.
    /// A membership operation the primary refuses (not primary, another change in flight,
    /// no quorum, a learner not caught up, ...) is dropped without an answer, as if refusing
    /// were answering: its caller waits forever.
    RefusalNotAnswered,
    /// A primary proposes a configuration at once, behind slots still in flight, instead of
    /// once every slot before it has executed: a later primary may choose another
    /// configuration in one of those slots, and this one, computed from the older
    /// membership, then installs a membership no operation asked for (default seed 84907746:
    /// removed replicas made the voters).
    ConfigBehindUndecided,

    // Limits.
    /// Accepts (new slots and resends) are split by `catchup_entries_max` only, not by
    /// bytes: several large values go out in one message above `message_bytes_max` (issue 8:
    /// a 1 MiB value wedged the cluster when the transport refused such a frame).
    AcceptsNotSplitByBytes,
}

/// The planted bugs of one run (usually none or one).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bugs(pub Vec<Bug>);

impl Bugs {
    pub fn has(&self, bug: Bug) -> bool {
        self.0.contains(&bug)
    }
}
