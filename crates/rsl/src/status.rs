//! What a replica reports about itself: role, primary, ballot, slots, health, peers and
//! counters ([`Status`]), and the small part callers wait on ([`View`]). Data only: it
//! imports none of the thread modules.

/// A replica's role, as status pages show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Started, not yet stepped by the consensus thread.
    Starting,
    /// Follows a primary (or waits for one to be elected).
    Follower,
    /// Runs an election.
    Candidate,
    /// Leads: proposes, and serves linearizable reads under its lease.
    Primary,
    /// Learns chosen values without voting.
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

/// Whether a replica is serving, and if it stopped, why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Health {
    /// Running normally.
    #[default]
    Ok,
    /// Its disk is full: writes are refused with [`crate::ReplicateError::DiskFull`], reads
    /// are still served, and it resumes by itself once space is freed.
    DiskFull,
    /// It stopped and serves nothing more; [`Status::stop_reason`] says why in words.
    Stopped(StopCause),
}

impl std::fmt::Display for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Health::Ok => f.write_str("ok"),
            Health::DiskFull => f.write_str("disk-full"),
            Health::Stopped(cause) => write!(f, "stopped ({cause})"),
        }
    }
}

/// Why a replica stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopCause {
    /// [`crate::Node::shutdown`] was called (or the node was dropped).
    Shutdown,
    /// The application's state machine panicked; its state can no longer be trusted.
    StateMachinePanic,
    /// Storage failed in a way that is not a full disk (an I/O error on write or sync): a
    /// replica that cannot persist must not vote.
    StorageFailure,
    /// A membership change removed this replica and the new voters have executed it: the
    /// cluster no longer needs it (its data directory may be deleted).
    Removed,
}

impl std::fmt::Display for StopCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StopCause::Shutdown => "shut down",
            StopCause::StateMachinePanic => "state machine panicked",
            StopCause::StorageFailure => "storage failed",
            StopCause::Removed => "removed from the membership",
        })
    }
}

/// One peer's health as this replica sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerHealth {
    /// The peer's replica id.
    pub id: u32,
    /// Whether the transport has a connection to it now (`None`: the transport cannot tell).
    pub connected: Option<bool>,
    /// Slots it is behind this replica's commit point, by its last acknowledgement (known at
    /// the primary; 0 elsewhere).
    pub lag_slots: u64,
    /// Milliseconds since its last acknowledgement to this replica as primary, if any.
    pub last_contact_ms: Option<u64>,
}

/// A replica's status: a consistent copy, taken when [`crate::Node::status`] is called.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// This replica's id.
    pub id: u32,
    /// Its role.
    pub role: Role,
    /// The primary it follows (itself when primary), if it knows one.
    pub primary: Option<u32>,
    /// Round of the ballot it follows.
    pub ballot_round: u64,
    /// Replica that owns the ballot it follows.
    pub ballot_replica: u32,
    /// Highest slot it knows chosen (at least `executed`).
    pub committed: u64,
    /// Highest slot its state machine executed.
    pub executed: u64,
    /// Slot of the newest checkpoint saved here or installed from a peer (0: none yet).
    pub checkpoint: u64,
    /// First slot its log still holds (1 until a checkpoint lets it truncate,
    /// `storage.log_kept_slots` behind the checkpoint): a peer that needs an earlier slot is
    /// sent the checkpoint instead.
    pub log_first: u64,
    /// The voters of the membership it follows.
    pub members: Vec<u32>,
    /// Every member of that membership (voters first), with role, address and data.
    pub membership: Vec<crate::members::ClusterMember>,
    /// Started to join a running cluster ([`crate::NodeConfig::join`]) and not added yet.
    pub joining: bool,
    /// Rebuilding after a disk loss (`storage.disk_lost`): it neither promises, votes nor
    /// stands for election until the rebuild completes (docs/protocol.md, "Disk loss").
    pub rebuilding: bool,
    /// Serving, refusing writes on a full disk, or stopped.
    pub health: Health,
    /// Why it stopped or refuses writes, in words (`None` while healthy).
    pub stop_reason: Option<String>,
    /// Every other member, with the transport's and the core's view of it.
    pub peers: Vec<PeerHealth>,
    /// The replica's counters.
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
            checkpoint: 0,
            log_first: 1,
            members: Vec::new(),
            membership: Vec::new(),
            joining: false,
            rebuilding: false,
            health: Health::Ok,
            stop_reason: None,
            peers: Vec::new(),
            counters: CounterValues::default(),
        }
    }

    /// Peer health: every other member, with the transport's view (`connected`) and, at the
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
        self.checkpoint = core.checkpoint.0;
        self.log_first = core.truncated.0 + 1;
        self.members = core.membership.voters.iter().map(|v| v.0).collect();
        self.membership = crate::members::members_of(&core.membership);
        self.joining = core.joining;
        self.rebuilding = core.rebuilding;
    }
}

/// The counters' values at one moment. Every counter only grows over a replica's life.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CounterValues {
    /// Requests proposed here (taken by the consensus thread).
    pub proposals: u64,
    /// Slots executed here.
    pub slots_committed: u64,
    /// Requests executed here, the requests of those slots' batches (per slot: how many
    /// requests share a slot).
    pub requests_committed: u64,
    /// Calls refused as overloaded (the replica's queue or the core's was full).
    pub overloaded: u64,
    /// Calls that ended with [`crate::ReplicateError::Timeout`].
    pub timeouts: u64,
    /// Bytes of payloads sent to peers (envelopes included).
    pub bytes_sent: u64,
    /// Bytes of payloads received from peers (envelopes included).
    pub bytes_received: u64,
    /// Payloads or frames from peers rejected (malformed, unauthenticated, lying).
    pub rejected_messages: u64,
    /// Group commits: one sync each.
    pub syncs: u64,
    /// Microseconds spent in group commits (writes plus sync), summed.
    pub sync_micros_total: u64,
    /// Group commits that failed on a full disk (each is retried).
    pub disk_full: u64,
    /// Linearizable reads served under the primary's lease straight by the executor,
    /// without a round trip through the consensus thread (the others went through it).
    pub lease_reads: u64,
    /// Reads at a given index ([`crate::ReadConsistency::AtLeast`]) of a
    /// [`crate::Node::read_batch`], handed straight to the executor (which serves them once
    /// it has executed the index), without a round trip through the consensus thread. A
    /// follower serving linearizable reads by read index ([`crate::Node::read_index`]) makes
    /// these.
    pub index_reads: u64,
}

/// The part of a replica's state that callers wait on ([`crate::Node::watch`]): published on
/// every change of role, primary, ballot, rebuilding, health, the newest checkpoint or the
/// log's first slot (and the full [`Status`] with it: after a change here, `status()` agrees).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct View {
    /// Its role (`None` before the consensus thread first published).
    pub role: Option<Role>,
    /// The primary it follows, if it knows one.
    pub primary: Option<u32>,
    /// Round of the ballot it follows.
    pub ballot_round: u64,
    /// Rebuilding after a disk loss (see [`Status::rebuilding`]).
    pub rebuilding: bool,
    /// Joining a running cluster, not added yet (see [`Status::joining`]).
    pub joining: bool,
    /// Serving, refusing writes on a full disk, or stopped (and why).
    pub health: Health,
    /// The first slot its log still holds (see [`Status::log_first`]): it moves when the log
    /// is truncated behind a durable checkpoint, so a caller can await that.
    pub log_first: u64,
    /// The slot of its newest checkpoint, saved here or installed from a peer (see
    /// [`Status::checkpoint`]; 0: none yet), so a caller can await one.
    pub checkpoint: u64,
}

impl View {
    pub(crate) fn of(core: &rsl_core::Status, health: Health) -> View {
        let mut s = Status::starting(core.id.0);
        s.update(core);
        View {
            role: Some(s.role),
            primary: s.primary,
            ballot_round: s.ballot_round,
            rebuilding: s.rebuilding,
            joining: s.joining,
            health,
            log_first: s.log_first,
            checkpoint: s.checkpoint,
        }
    }
}

/// What a primary says is chosen ([`crate::Node::chosen`], learned elsewhere with
/// [`crate::Node::learn_chosen`]): every slot up to `through`, at the ballot of round
/// `ballot_round` that `primary` leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chosen {
    /// The primary that says it (the ballot's owner).
    pub primary: u32,
    /// Its ballot's round.
    pub ballot_round: u64,
    /// Every slot up to this one is chosen.
    pub through: u64,
}
