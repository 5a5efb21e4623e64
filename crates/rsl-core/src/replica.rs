//! The replica state machine: acceptor, proposer (primary) and learner in one struct.

use crate::config::Config;
use crate::io::{Action, Input, LogEntry};
use crate::types::{Ballot, Membership, ReplicaId, Slot};

/// What a replica finds on its disk at start.
#[derive(Debug, Clone, Default)]
pub struct Recovered {
    /// The highest ballot it promised.
    pub promised: Ballot,
    /// Its membership as last persisted, if any (otherwise the config's).
    pub membership: Option<Membership>,
    /// The slot of the checkpoint the state machine was loaded from (`Slot::ZERO` if none):
    /// execution resumes after it.
    pub checkpoint: Slot,
    /// The persisted commit hint.
    pub commit: Slot,
    /// Accepted entries above `checkpoint`, ascending by slot, the latest ballot per slot.
    pub log: Vec<LogEntry>,
    /// Slots whose records were found corrupt: the replica accepted something there at this
    /// ballot but lost the value. It must not vote as if it never accepted them.
    pub corrupt: Vec<(Slot, Ballot)>,
}

/// A replica's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Follower,
    Candidate,
    Primary,
    Learner,
}

/// A snapshot of a replica's state, for status pages and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub id: ReplicaId,
    pub role: Role,
    pub primary: Option<ReplicaId>,
    pub ballot: Ballot,
    pub promised: Ballot,
    pub commit: Slot,
    pub executed: Slot,
    pub membership: Membership,
}

/// One replica of the cluster.
#[derive(Debug)]
pub struct Replica {
    config: Config,
}

impl Replica {
    /// Starts a replica from what its disk holds. Panics on an invalid config.
    pub fn new(config: Config, recovered: Recovered) -> Replica {
        config.validate().expect("invalid config");
        let _ = recovered;
        Replica { config }
    }

    /// Takes one input and appends the resulting actions to `out`.
    pub fn step(&mut self, input: Input, out: &mut Vec<Action>) {
        let _ = (input, out, &self.config);
        unimplemented!("core")
    }

    /// Checks every invariant of the replica's state; panics on a violation.
    pub fn invariants(&self) {}

    pub fn status(&self) -> Status {
        unimplemented!("core")
    }
}
