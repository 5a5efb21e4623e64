//! What a replica reports about itself: role, primary, ballot, slots, counters.

use std::sync::atomic::{AtomicU64, Ordering};

/// A replica's role, as status pages show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Starting,
    Follower,
    Candidate,
    Primary,
    Learner,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self {
            Role::Starting => "starting",
            Role::Follower => "follower",
            Role::Candidate => "candidate",
            Role::Primary => "primary",
            Role::Learner => "learner",
        };
        f.write_str(s)
    }
}

/// One peer's health as this replica sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerHealth {
    pub id: u32,
    /// Whether the transport has a connection to it now (`None`: the wire cannot tell).
    pub connected: Option<bool>,
    /// Slots it is behind this replica's commit point, by its last acknowledgement (known at
    /// the primary; 0 elsewhere).
    pub lag_slots: u64,
    /// Milliseconds since its last acknowledgement to this replica as primary, if any.
    pub last_contact_ms: Option<u64>,
}

/// A replica's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub id: u32,
    pub role: Role,
    pub primary: Option<u32>,
    pub ballot_round: u64,
    pub ballot_replica: u32,
    pub committed: u64,
    pub executed: u64,
    pub members: Vec<u32>,
    /// Rebuilding after a disk loss (`storage.disk_lost`): it neither promises, votes nor
    /// stands for election until the rebuild completes (docs/protocol.md, "Disk loss").
    pub rebuilding: bool,
    pub peers: Vec<PeerHealth>,
    pub counters: CounterValues,
}

impl Status {
    pub(crate) fn starting(id: u32) -> Status {
        Status {
            id,
            role: Role::Starting,
            primary: None,
            ballot_round: 0,
            ballot_replica: 0,
            committed: 0,
            executed: 0,
            members: Vec::new(),
            rebuilding: false,
            peers: Vec::new(),
            counters: CounterValues::default(),
        }
    }

    /// Peer health: every other member, with the wire's view (`connected`) and, at the
    /// primary, the core's (lag, last acknowledgement); `tick_ms` turns ticks into ms.
    pub(crate) fn update_peers(
        &mut self,
        core: &rsl_core::Status,
        tick_ms: u64,
        connected: impl Fn(u32) -> Option<bool>,
    ) {
        let ids = core.membership.replicas().filter(|id| *id != core.id);
        self.peers = ids
            .map(|id| {
                let seen = core.peers.iter().find(|p| p.id == id);
                PeerHealth {
                    id: id.0,
                    connected: connected(id.0),
                    lag_slots: seen.map_or(0, |p| core.commit.0.saturating_sub(p.commit.0)),
                    last_contact_ms: seen
                        .and_then(|p| p.last_contact)
                        .map(|t| core.now.saturating_sub(t) * tick_ms),
                }
            })
            .collect();
    }

    pub(crate) fn update(&mut self, core: &rsl_core::Status) {
        self.role = match core.role {
            rsl_core::Role::Follower => Role::Follower,
            rsl_core::Role::Candidate => Role::Candidate,
            rsl_core::Role::Primary => Role::Primary,
            rsl_core::Role::Learner => Role::Learner,
        };
        self.primary = core.primary.map(|p| p.0);
        self.ballot_round = core.ballot.round;
        self.ballot_replica = core.ballot.replica;
        self.committed = core.commit.0;
        self.members = core.membership.voters.iter().map(|v| v.0).collect();
        self.rebuilding = core.rebuilding;
    }
}

/// Counters, updated with relaxed atomics on the hot path.
#[derive(Debug, Default)]
pub struct Counters {
    pub proposals: AtomicU64,
    pub slots_committed: AtomicU64,
    pub overloaded: AtomicU64,
    pub bytes_sent: AtomicU64,
    pub bytes_received: AtomicU64,
    pub rejected_messages: AtomicU64,
    pub syncs: AtomicU64,
    pub sync_micros_total: AtomicU64,
}

/// The counters' values at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CounterValues {
    pub proposals: u64,
    pub slots_committed: u64,
    pub overloaded: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub rejected_messages: u64,
    pub syncs: u64,
    pub sync_micros_total: u64,
}

impl Counters {
    pub fn snapshot(&self) -> CounterValues {
        let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
        CounterValues {
            proposals: r(&self.proposals),
            slots_committed: r(&self.slots_committed),
            overloaded: r(&self.overloaded),
            bytes_sent: r(&self.bytes_sent),
            bytes_received: r(&self.bytes_received),
            rejected_messages: r(&self.rejected_messages),
            syncs: r(&self.syncs),
            sync_micros_total: r(&self.sync_micros_total),
        }
    }
}

/// The part of a replica's state that callers wait on ([`crate::Node::watch`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct View {
    pub role: Option<Role>,
    pub primary: Option<u32>,
    pub ballot_round: u64,
    /// Rebuilding after a disk loss (see `Status::rebuilding`).
    pub rebuilding: bool,
}

impl View {
    pub(crate) fn of(core: &rsl_core::Status) -> View {
        let mut s = Status::starting(core.id.0);
        s.update(core);
        View {
            role: Some(s.role),
            primary: s.primary,
            ballot_round: s.ballot_round,
            rebuilding: s.rebuilding,
        }
    }
}
