//! The protocol's vocabulary as types: replicas, ballots, slots, requests, values and log
//! entries. See docs/protocol.md for the glossary.
//!
//! Every other module of the core imports from here and nothing here imports them back, so
//! the boundary types (`io`) and the wire format (`message`) share these without a circle.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;

/// A replica's identity, unique in the cluster for its whole life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ReplicaId(pub u32);

/// A position in the replicated log (RSL's decree). Slot 0 is never used: the first value
/// lives in slot 1, so `Slot(0)` means "nothing yet".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Slot(pub u64);

impl Slot {
    pub const ZERO: Slot = Slot(0);

    pub fn next(self) -> Slot {
        Slot(self.0.checked_add(1).expect("slot overflow"))
    }
}

/// A ballot: (round, replica). Totally ordered by round, then replica id, so two replicas
/// never own the same ballot. `Ballot::ZERO` is below every ballot a replica can own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Ballot {
    pub round: u64,
    pub replica: u32,
}

impl Ballot {
    pub const ZERO: Ballot = Ballot { round: 0, replica: 0 };

    pub fn new(round: u64, replica: ReplicaId) -> Ballot {
        Ballot { round, replica: replica.0 }
    }

    pub fn owner(self) -> ReplicaId {
        ReplicaId(self.replica)
    }

    /// Packs the ballot into an opaque 128-bit tag for storage, preserving order.
    pub fn to_u128(self) -> u128 {
        (u128::from(self.round) << 32) | u128::from(self.replica)
    }

    pub fn from_u128(tag: u128) -> Ballot {
        Ballot { round: (tag >> 32) as u64, replica: tag as u32 }
    }
}

/// Identifies one client request for its whole life. The driver assigns ids and guarantees
/// they are unique across the cluster and across restarts (e.g. the proposer's id, an
/// incarnation number drawn at start, and a counter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId {
    pub proposer: ReplicaId,
    pub incarnation: u64,
    pub seq: u64,
}

/// One client request: opaque bytes for the state machine.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Request {
    pub id: RequestId,
    pub payload: Bytes,
}

/// What a membership records of one member besides its id and role: where the driver
/// reaches it (`addr`, for the runtime a `host:port`) and what the application attached
/// (`data`, for rsl-kv its client address). Opaque to the core, which only carries them:
/// every replica learns them from the configuration value that added the member.
#[derive(Debug, Clone, PartialEq, Eq, Default, Hash)]
pub struct MemberInfo {
    pub addr: String,
    pub data: Bytes,
}

/// The replicas of a configuration: voters form quorums; learners receive the log but do
/// not vote and cannot become primary (new replicas catch up as learners first). `info`
/// holds what is known of each member (its address, the application's data); a member may
/// have none (a membership written before members carried it, or the simulator's).
#[derive(Debug, Clone, PartialEq, Eq, Default, Hash)]
pub struct Membership {
    pub voters: Vec<ReplicaId>,
    pub learners: Vec<ReplicaId>,
    pub info: BTreeMap<ReplicaId, MemberInfo>,
}

impl Membership {
    pub fn new(voters: impl IntoIterator<Item = u32>) -> Membership {
        let voters = voters.into_iter().map(ReplicaId).collect();
        Membership { voters, learners: Vec::new(), info: BTreeMap::new() }
    }

    /// The number of voters that make a majority.
    pub fn quorum(&self) -> usize {
        self.voters.len() / 2 + 1
    }

    pub fn is_voter(&self, id: ReplicaId) -> bool {
        self.voters.contains(&id)
    }

    pub fn is_learner(&self, id: ReplicaId) -> bool {
        self.learners.contains(&id)
    }

    /// A voter or a learner.
    pub fn contains(&self, id: ReplicaId) -> bool {
        self.is_voter(id) || self.is_learner(id)
    }

    /// Every replica that receives the log: voters and learners.
    pub fn replicas(&self) -> impl Iterator<Item = ReplicaId> + '_ {
        self.voters.iter().chain(self.learners.iter()).copied()
    }

    /// Keeps the info of members only, and fills in what `known` knows of a member this
    /// membership has no info for (a change names its new members' info; the others keep
    /// theirs).
    pub fn with_info_from(mut self, known: &Membership) -> Membership {
        let members: Vec<ReplicaId> = self.replicas().collect();
        self.info.retain(|id, _| members.contains(id));
        for id in members {
            if let Some(i) = known.info.get(&id).filter(|_| !self.info.contains_key(&id)) {
                self.info.insert(id, i.clone());
            }
        }
        self
    }
}

/// The value of one slot.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Value {
    /// Fills a gap found by phase 1; executes nothing.
    Noop,
    /// Client requests, executed in order. Shared, not copied, when the value is cloned: the
    /// log, the write to storage, each follower's accept and the executor each hold the slot's
    /// value, and a batch holds up to `batch_requests_max` requests.
    Batch(Arc<[Request]>),
    /// A configuration change; the new membership governs the slots after this one.
    Config(Membership),
}

/// One accepted log entry: the value a replica accepted for a slot, and at which ballot. The
/// unit of the log in storage, of promises and of catch-up replies.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LogEntry {
    pub slot: Slot,
    pub ballot: Ballot,
    pub value: Value,
}

/// A slot's proposed value, as an accept carries it (the ballot is the accept's).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SlotValue {
    pub slot: Slot,
    pub value: Value,
}

/// A slot a replica accepted something in, at `ballot`, but whose value it lost (a corrupt
/// record): it must report the slot in its promises rather than promise as if it never
/// accepted there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UnknownValue {
    pub slot: Slot,
    pub ballot: Ballot,
}
