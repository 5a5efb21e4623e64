//! The core's only boundary: [`Input`]s in, [`Action`]s out.
//!
//! The driver (production runtime or simulator) owns every side effect. It feeds inputs to
//! `Replica::step` and carries out the returned actions **in order**. Two rules make the
//! protocol safe whatever the driver's timing:
//!
//! 1. `Action::Persist` writes are made durable in `seq` order, and the driver reports
//!    progress with `Input::Durable { seq }` (every write with a smaller or equal seq is
//!    durable). The core never emits a message whose promise depends on a write before that
//!    write is reported durable: such messages are held inside the core and released by
//!    `Input::Durable`. So no driver can send a promise or a vote too early. With
//!    `Config::held_sends_to_driver` the core hands such a message over at once as
//!    `Action::SendWhenDurable { seq, .. }`, and the driver, which knows first when its
//!    storage is durable, must hold it until every write up to `seq` is.
//! 2. `Action::Execute` comes in strictly increasing slot order, each slot once.

use bytes::Bytes;

use crate::message::Message;
use crate::types::{Ballot, LogEntry, MemberInfo, Membership, ReplicaId, RequestId, Slot, Value};

/// Identifies one read request, assigned by the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ReadId(pub u64);

/// How fresh a read must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReadMode {
    /// Linearizable: served by the primary under its lease, or after a quorum round.
    Linearizable,
    /// RSL's fast read: any replica, once it has executed at least this slot.
    AtLeast(Slot),
}

/// Everything the core can be told.
#[derive(Debug, Clone, Hash)]
pub enum Input {
    /// One unit of time passed (the driver decides how long a tick is).
    Tick,
    /// A message from a peer (already authenticated and checksum-verified by the transport).
    Receive(Message),
    /// Every `Persist` with `seq <= seq` is durable.
    Durable { seq: u64 },
    /// A client request to replicate. `exclusive` puts it alone in its slot. With
    /// `Config::propose_at_turn_end` it only queues, until the turn's [`Input::EndOfTurn`].
    Propose { id: RequestId, payload: Bytes, exclusive: bool },
    /// The driver handled every input that arrived together (one turn of its event loop):
    /// the proposals queued since go into slots while the pipeline has room. Without
    /// `Config::propose_at_turn_end` nothing waits for it.
    EndOfTurn,
    /// A read-only request waiting for the state to be fresh enough.
    Read { id: ReadId, mode: ReadMode },
    /// Ask the primary to hand primacy to `to` (or to any suitable replica if `None`).
    TransferPrimacy { to: Option<ReplicaId> },
    /// Whether this replica may stand for election (the application's can-become-primary).
    SetCanBecomePrimary(bool),
    /// Propose a new membership (at most one change in flight). New voters are staged as
    /// learners first and promoted once caught up; nothing answers this input (the
    /// simulator's random changes use it). [`Input::Reconfigure`] is the answered form.
    ChangeMembership(Membership),
    /// One membership operation, checked against the current membership and proposed by the
    /// primary once every slot before it has executed (at once on an idle pipeline); answered
    /// by exactly one [`Action::Reconfigured`] with the same `id` (assigned by the driver).
    Reconfigure { id: u64, op: MembershipOp },
    /// The state machine's state after executing `slot` is durably checkpointed; the log at
    /// and below it may be truncated.
    CheckpointSaved { slot: Slot },
    /// The log entries the core asked for with `Action::LoadLog`.
    LogLoaded { token: u64, entries: Vec<LogEntry> },
    /// A peer's checkpoint was installed: the state now reflects every slot up to `slot`,
    /// under `membership`, the membership in effect after `slot` that the checkpoint carries
    /// (`None`: a checkpoint written before checkpoints carried it; the replica keeps its own).
    /// An install at or below the executed point (the state machine loaded it while the core
    /// executed past it) changes nothing; the simulator checks that on a copy of the core
    /// (`Replica::handled_on_copy`).
    CheckpointInstalled { slot: Slot, membership: Option<Membership> },
    /// The primary `from`, at `ballot`, said every slot up to `commit` is chosen: what a
    /// heartbeat of that ballot says, heard another way (with a read index it answered; the
    /// runtime's `Node::learn_chosen`). Learned as a heartbeat's commit point is (a slot this
    /// replica accepted at that very ballot and that is at or below `commit` is chosen, with
    /// the value accepted), without what else a heartbeat means (no contact, no lease, no
    /// answer). Must come from the primary of `ballot` while it was primary at it, as a
    /// heartbeat does; late is fine (chosen stays chosen).
    Chosen { from: ReplicaId, ballot: Ballot, commit: Slot },
}

/// One change to the membership (`Input::Reconfigure`). Each is a single configuration
/// value; replacing a member by a new replica is an `AddLearner`, then (once it caught up)
/// a `Replace`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MembershipOp {
    /// Add a replica that is not a member as a learner, reached at `info.addr`.
    AddLearner { id: ReplicaId, info: MemberInfo },
    /// Make a learner that has caught up a voter.
    Promote { id: ReplicaId },
    /// Remove a voter or a learner.
    Remove { id: ReplicaId },
    /// Make the learner `new`, which has caught up, a voter in place of the voter `old`, in
    /// one change (the number of voters stays the same).
    Replace { old: ReplicaId, new: ReplicaId },
}

/// Why the primary refused a membership operation, or what became of it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ReconfigRefusal {
    /// This replica is not primary (or hands primacy over); `primary` is the one it follows.
    NotPrimary { primary: Option<ReplicaId> },
    /// Another change is not yet executed (at most one change in flight).
    InFlight,
    /// The replica is not a member (or not a learner, for a promotion or a replacement; not
    /// a voter, for the replica a replacement removes).
    UnknownMember { id: ReplicaId },
    /// The replica is a member already.
    AlreadyMember { id: ReplicaId },
    /// The learner is `lag` slots behind the primary's commit point, more than
    /// `Config::catchup_entries_max`: promoting it would make a voter that cannot vote yet.
    NotCaughtUp { id: ReplicaId, lag: u64 },
    /// The new voters that answered the primary within an election timeout (`live`, the
    /// primary included) would not be a quorum (`quorum`): the cluster would stop.
    NoQuorum { live: usize, quorum: usize },
    /// The member's address or data is larger than the limits allow, or the membership
    /// would exceed the voter or learner limit.
    Invalid { reason: &'static str },
    /// The change was proposed, but another value was chosen in its slot: it was not made.
    Superseded { primary: Option<ReplicaId> },
    /// Whether the change was made is unknown here (this replica skipped its slot by
    /// installing a checkpoint); the membership says.
    OutcomeUnknown,
}

/// What must be written durably before the core may rely on it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Write {
    /// The promised ballot (kept in metadata, replaced atomically).
    Promise(Ballot),
    /// An accepted value for a slot (a log record; a later record for the same slot wins).
    Accept(LogEntry),
    /// Every slot up to here is chosen (a hint that saves relearning it after a restart).
    Commit(Slot),
    /// Remove every log record at or above `from` (an unchosen tail being overridden).
    TruncateSuffix { from: Slot },
    /// Remove log records below `before` (covered by a checkpoint).
    TruncatePrefix { before: Slot },
    /// The disk-loss marker (kept in metadata, replaced atomically): `true` while this
    /// replica rebuilds after losing its disk (it must not promise or vote), `false` once
    /// rebuilt. Recovery reports it in `Recovered::rebuilding`. See docs/protocol.md,
    /// "Disk loss".
    Rebuilding(bool),
    /// This replica, which joined a running cluster, became a member at `slot` (it executed
    /// the configuration that added it). Kept in metadata; recovery reports it in
    /// `Recovered::member_since`, so that a restart tells a replica still catching up to its
    /// own addition from one that was removed.
    MemberSince(Slot),
}

/// Why a proposal or read was refused. Every proposal ends in exactly one of: executed
/// (its request appears in an `Action::Execute` on this replica) or refused with one of these.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// This replica is not primary; `primary` is the one it follows, if known.
    NotPrimary { primary: Option<ReplicaId> },
    /// Too many proposals are queued; try later.
    Overloaded,
    /// The replica is shutting down.
    ShuttingDown,
    /// The request was proposed but a different value was chosen for its slot (this
    /// replica lost primacy); it was definitely not executed.
    Superseded { primary: Option<ReplicaId> },
    /// Whether the request executed is unknown: this replica skipped its slot by installing
    /// a peer's checkpoint, whose state may or may not include it. Do not retry blindly.
    OutcomeUnknown,
    /// The request's payload is larger than `Config::request_bytes_max`; it was not proposed.
    /// (The runtime refuses it before it reaches the core; the core refuses it too.)
    TooLarge { size: usize, max: usize },
}

/// What the core tells the application (the runtime passes each on as `rsl::Notification`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Notification {
    BecamePrimary {
        ballot: Ballot,
    },
    /// Everything earlier primaries committed has been executed here.
    PrimaryRecovered,
    LostPrimacy {
        primary: Option<ReplicaId>,
    },
    ConfigurationChanged {
        slot: Slot,
        membership: Membership,
    },
    /// A configuration executed at `slot` removed this replica, and a quorum of the new
    /// voters have executed it: nothing needs this replica any more, and it may stop.
    Removed {
        slot: Slot,
    },
}

/// Everything the core asks the driver to do, in the order it must be done.
#[derive(Debug, Clone)]
pub enum Action {
    /// Send `msg` to `to`. May be lost; the protocol retries what matters.
    Send { to: ReplicaId, msg: Message },
    /// Send `msg` to `to` once every `Persist` with a seq up to `seq` is durable, and not
    /// before (a promise or a vote that rests on those writes). Only with
    /// `Config::held_sends_to_driver`: the driver sends it as soon as its storage has made
    /// the writes durable, without waiting for the core to step `Input::Durable` (the
    /// runtime's I/O thread sends it right after its sync). Otherwise the core holds such a
    /// message and emits a plain `Send` once `Input::Durable` covers `seq`. Lost with the
    /// process on a crash, as any message not yet sent.
    SendWhenDurable { seq: u64, to: ReplicaId, msg: Message },
    /// Make `write` durable, in `seq` order, then report `Input::Durable`.
    Persist { seq: u64, write: Write },
    /// Apply a chosen value to the state machine. Strictly increasing slots, each once.
    Execute { slot: Slot, value: Value },
    /// A proposal this replica took is refused.
    Refuse { id: RequestId, reason: Refusal },
    /// The read `id` may now be served from local state (after all earlier `Execute`s).
    ReadReady { id: ReadId },
    /// The read `id` cannot be served here.
    ReadRefused { id: ReadId, reason: Refusal },
    /// Tell the application something happened.
    Notify(Notification),
    /// Read committed entries `from..=to` from storage and return them with
    /// `Input::LogLoaded { token }` (used when entries are no longer in memory).
    LoadLog { token: u64, from: Slot, to: Slot },
    /// Stream the newest checkpoint to `to` (it needs slots this replica no longer has).
    SendCheckpoint { to: ReplicaId },
    /// Take a checkpoint of the state after `slot`, the last executed slot, whose membership
    /// (the membership in effect after it) the checkpoint must carry: a replica that loads
    /// or installs it skips the configurations up to `slot` (docs/protocol.md, "Checkpoints
    /// and the membership"). A driver whose state machine is already past `slot` (it
    /// installed a newer checkpoint the core has not heard of yet) skips the request.
    TakeCheckpoint { slot: Slot, membership: Membership },
    /// The answer to `Input::Reconfigure { id }`: the change was chosen in `slot` and made
    /// `membership`, or refused.
    Reconfigured { id: u64, outcome: Result<(Slot, Membership), ReconfigRefusal> },
}
