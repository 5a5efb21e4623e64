//! The bugs a test can plant, by name (`--bug NAME`): the core's (`rsl_core::bugs`, feature
//! `planted-bugs`) and the storage's ([`StorageBug`]: one in the simulator's host, no feature
//! needed; the others in `rsl-storage`'s real recovery code, feature `planted-bugs`).

#[cfg(feature = "planted-bugs")]
use rsl_core::bugs::Bug;

/// Every planted bug in the core. `exhaustive` fails to compile when the core adds one, so
/// this list cannot fall behind.
#[cfg(feature = "planted-bugs")]
pub const ALL: [Bug; 32] = [
    Bug::AcceptorIgnoresPromise,
    Bug::SkipPhase1Reproposal,
    Bug::CountOwnVoteBeforeDurable,
    Bug::SendBeforePersist,
    Bug::CommitOnMinority,
    Bug::ExecuteOutOfOrder,
    Bug::WipedReplicaVotes,
    Bug::LeaseFromNewestRound,
    Bug::LeaseIgnoresDrift,
    Bug::ShortStickiness,
    Bug::TransferTimeoutResumes,
    Bug::LeaseReadDuringTransfer,
    Bug::LeaseCountsLearners,
    Bug::Phase1BeforeOwnPromiseDurable,
    Bug::PromiseNotPersisted,
    Bug::CountVotesFromOtherBallots,
    Bug::SameValueNotRewritten,
    Bug::LearnCommitAtAnyBallot,
    Bug::EvenQuorumIsHalf,
    Bug::CountLearnerVotes,
    Bug::InstallMovesExecutedBack,
    Bug::InstalledOutcomeSuperseded,
    Bug::Phase1PicksLowestBallot,
    Bug::Phase1IgnoresUnknown,
    Bug::TruncatedPromiseCounts,
    Bug::ReadIndexIgnoresRecovery,
    Bug::AcceptsNotSplitByBytes,
    Bug::UnknownUnderExecutedMembership,
    Bug::RecoveryIgnoresLostSlots,
    Bug::PromoteOnStaleAcks,
    Bug::RefusalNotAnswered,
    Bug::ConfigBehindUndecided,
];

#[cfg(feature = "planted-bugs")]
#[allow(dead_code)]
fn exhaustive(bug: Bug) {
    match bug {
        Bug::AcceptorIgnoresPromise
        | Bug::SkipPhase1Reproposal
        | Bug::CountOwnVoteBeforeDurable
        | Bug::SendBeforePersist
        | Bug::CommitOnMinority
        | Bug::ExecuteOutOfOrder
        | Bug::WipedReplicaVotes
        | Bug::LeaseFromNewestRound
        | Bug::LeaseIgnoresDrift
        | Bug::ShortStickiness
        | Bug::TransferTimeoutResumes
        | Bug::LeaseReadDuringTransfer
        | Bug::LeaseCountsLearners
        | Bug::Phase1BeforeOwnPromiseDurable
        | Bug::PromiseNotPersisted
        | Bug::CountVotesFromOtherBallots
        | Bug::SameValueNotRewritten
        | Bug::LearnCommitAtAnyBallot
        | Bug::EvenQuorumIsHalf
        | Bug::CountLearnerVotes
        | Bug::InstallMovesExecutedBack
        | Bug::InstalledOutcomeSuperseded
        | Bug::Phase1PicksLowestBallot
        | Bug::Phase1IgnoresUnknown
        | Bug::TruncatedPromiseCounts
        | Bug::ReadIndexIgnoresRecovery
        | Bug::AcceptsNotSplitByBytes
        | Bug::UnknownUnderExecutedMembership
        | Bug::RecoveryIgnoresLostSlots
        | Bug::PromoteOnStaleAcks
        | Bug::RefusalNotAnswered
        | Bug::ConfigBehindUndecided => {}
    }
}

/// A core bug's name.
#[cfg(feature = "planted-bugs")]
pub fn name(bug: Bug) -> String {
    format!("{bug:?}")
}

/// A core bug by its name (case-insensitive).
#[cfg(feature = "planted-bugs")]
pub fn parse(name: &str) -> Option<Bug> {
    ALL.into_iter().find(|b| format!("{b:?}").eq_ignore_ascii_case(name))
}

/// A bug planted in the storage (not in the core): selectable by name like the core's
/// planted bugs (`--bug NAME`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageBug {
    /// A write is reported durable (`Input::Durable`) as soon as it is written, before its
    /// fsync completes; a machine crash still loses it. Planted in the simulator's host; no
    /// feature needed.
    AckBeforeSync,
    /// A promise or a vote handed over to leave once its write is durable
    /// (`Action::SendWhenDurable`) leaves at once, as a runtime I/O thread that sent before
    /// its sync would. Planted in the simulator's host; no feature needed.
    SendBeforeSync,
    /// Recovery treats the first bad record as the end of the log: it discards it and every
    /// later record (on the medium too) and reports nothing corrupt (what protocol-aware
    /// recovery forbids). Planted in `SegmentLog` recovery (feature `planted-bugs`).
    TruncateAtCorruption,
    /// Recovery "repairs" a torn record whose header survived (zero-fills the lost bytes,
    /// checksums it again) instead of discarding it as a torn tail: a value nobody proposed
    /// at that ballot. Planted in `SegmentLog` recovery (feature `planted-bugs`).
    KeepTornWrite,
    /// The host labels a checkpoint of the state after slot `s` as the state after `s - 1`
    /// (a replica that loads it executes slot `s` twice). Planted in the simulator's host;
    /// no feature needed.
    CheckpointSlotOffByOne,
    /// The host writes checkpoints without the membership (an empty header, as before they
    /// carried it): a replica that loads or installs one over a configuration slot keeps
    /// the membership it had. Planted in the simulator's host; no feature needed.
    CheckpointWithoutMembership,
}

impl StorageBug {
    pub const ALL: [StorageBug; 6] = [
        StorageBug::AckBeforeSync,
        StorageBug::SendBeforeSync,
        StorageBug::TruncateAtCorruption,
        StorageBug::KeepTornWrite,
        StorageBug::CheckpointSlotOffByOne,
        StorageBug::CheckpointWithoutMembership,
    ];

    pub fn name(self) -> String {
        format!("{self:?}")
    }

    /// A storage bug by its name (case-insensitive).
    pub fn parse(name: &str) -> Option<StorageBug> {
        StorageBug::ALL.into_iter().find(|b| b.name().eq_ignore_ascii_case(name))
    }

    /// Whether it is planted in the simulator's host (every build can plant it), not in the
    /// storage's recovery.
    pub fn in_host(self) -> bool {
        matches!(
            self,
            StorageBug::AckBeforeSync
                | StorageBug::SendBeforeSync
                | StorageBug::CheckpointSlotOffByOne
                | StorageBug::CheckpointWithoutMembership
        )
    }

    /// Whether this build can plant it (the recovery bugs need the `planted-bugs` feature).
    pub fn available(self) -> bool {
        self.in_host() || cfg!(feature = "planted-bugs")
    }

    #[cfg(feature = "planted-bugs")]
    pub(crate) fn in_recovery(bug: Option<StorageBug>) -> Option<rsl_storage::bugs::PlantedBug> {
        use rsl_storage::bugs::PlantedBug;
        match bug? {
            StorageBug::AckBeforeSync
            | StorageBug::SendBeforeSync
            | StorageBug::CheckpointSlotOffByOne
            | StorageBug::CheckpointWithoutMembership => None,
            StorageBug::TruncateAtCorruption => Some(PlantedBug::TruncateAtCorruption),
            StorageBug::KeepTornWrite => Some(PlantedBug::KeepTornWrite),
        }
    }
}
