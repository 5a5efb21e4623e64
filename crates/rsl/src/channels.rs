//! What the runtime's threads tell each other: one message type per receiving thread
//! ([`ToConsensus`], [`ToIo`], [`ToExecutor`], [`ToShipping`]) and the reply channel a caller
//! waits on. This module holds data only; it imports none of the thread modules, so every
//! thread can import it without an import circle.

use std::io::Read;
use std::time::Instant;

use bytes::Bytes;
use crossbeam_channel::Sender;
use rsl_core::{Input, Membership, MembershipOp, ReadMode, Slot, Value, Write};
use tokio::sync::oneshot;

use crate::error::ReplicateError;
use crate::state_machine::Notification;

/// Events queued for the consensus thread before new proposals are refused as overloaded.
pub(crate) const EVENTS_QUEUED_MAX: usize = 1 << 16;

/// The reply channel of one `replicate` or `read` call.
pub(crate) type Reply = oneshot::Sender<Result<Bytes, ReplicateError>>;

/// The reply channel of one `read_batch` call served under the lease: one answer per
/// request, in order.
pub(crate) type BatchReply = oneshot::Sender<Vec<Result<Bytes, ReplicateError>>>;

/// A proposal's reply channel and when it was proposed (for the commit latency histogram).
pub(crate) struct Waiter {
    pub(crate) reply: Reply,
    pub(crate) since: Instant,
}

/// What the consensus thread is told, on its one bounded channel.
pub(crate) enum ToConsensus {
    /// A caller's request to replicate.
    Propose { payload: Bytes, exclusive: bool, reply: Reply },
    /// A caller's requests to replicate, in order, in one message (`Node::replicate_batch`).
    ProposeBatch { proposals: Vec<(Bytes, Reply)> },
    /// A caller's read at the given consistency.
    Read { request: Bytes, mode: ReadMode, reply: Reply },
    /// A payload from peer `from` (authenticated by the transport), still in its envelope.
    Receive { from: u32, payload: Bytes },
    /// A consensus message from peer `from` in two pieces, as an in-process transport
    /// delivers a shared encoding: `head`, the envelope's channel byte and the message's
    /// header, and `body`, the rest, the same memory for every receiver.
    ReceiveParts { from: u32, head: Bytes, body: Bytes },
    /// The I/O thread made every write up to `seq` durable.
    Durable { seq: u64 },
    /// An input for the core as it is (control calls, loaded log, saved checkpoints).
    Core(Input),
    /// What a primary said is chosen (`Node::learn_chosen`): learned by the core, then the
    /// commit point answered on `reply`.
    Learn { chosen: crate::status::Chosen, reply: oneshot::Sender<u64> },
    /// A membership operation; answered on `reply` once made, or refused.
    Reconfigure { op: MembershipOp, reply: crate::members::ChangeReply },
    /// Take a checkpoint now (admin request).
    CheckpointNow,
    /// A checkpoint received from a peer, verified, ready to load.
    Install(Install),
    /// Stop: answer every waiting caller and end the threads.
    Stop,
}

impl ToConsensus {
    /// The event's name, for the log.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            ToConsensus::Propose { .. } => "a proposal",
            ToConsensus::ProposeBatch { .. } => "a batch of proposals",
            ToConsensus::Read { .. } => "a read",
            ToConsensus::Receive { .. } | ToConsensus::ReceiveParts { .. } => "a peer message",
            ToConsensus::Durable { .. } => "a durable report",
            ToConsensus::Core(_) => "a core input",
            ToConsensus::Learn { .. } => "what a primary said is chosen",
            ToConsensus::Reconfigure { .. } => "a membership operation",
            ToConsensus::CheckpointNow => "a checkpoint request",
            ToConsensus::Install(_) => "a checkpoint install",
            ToConsensus::Stop => "a stop",
        }
    }
}

/// What the I/O thread is told, in order.
pub(crate) enum ToIo {
    /// Apply `writes` and make them durable; then send `sends` (each once the writes up to
    /// its seq are durable: all of them then, as each rests on a write queued with or before
    /// it) and report the highest seq.
    Writes { writes: Vec<(u64, Write)>, sends: Vec<SendWhenDurable> },
    /// Read log entries back for a lagging peer; answer with `Input::LogLoaded`.
    Load { token: u64, from: Slot, to: Slot },
}

/// A promise or a vote sealed for the transport, to leave once the writes up to `seq` are
/// durable (`rsl_core::Action::SendWhenDurable`): the I/O thread sends it right after its
/// sync, a hand-over to the consensus thread sooner than the core could.
pub(crate) struct SendWhenDurable {
    pub(crate) seq: u64,
    pub(crate) to: u32,
    pub(crate) sealed: crate::envelope::Sealed,
}

/// What the executor thread is told, in order.
pub(crate) enum ToExecutor {
    /// Execute a chosen slot; `replies[i]` waits for the response of request `i`.
    Execute { slot: Slot, value: Value, replies: Vec<Option<Waiter>> },
    /// Serve a read against the state as it is now (the core said it is fresh enough).
    Read { request: Bytes, reply: Reply },
    /// A linearizable read sent by its caller under the primary's published lease, without
    /// the consensus thread: serve it once the state has executed `index` (at once if it
    /// has).
    LeaseRead { request: Bytes, index: u64, reply: Reply },
    /// Linearizable reads sent together under the lease (`Node::read_batch`): served
    /// together once the state has executed `index`, answered in one reply.
    LeaseReadBatch { requests: Vec<Bytes>, index: u64, reply: BatchReply },
    /// Take a snapshot of the state after `slot` and hand it to the checkpoint writer, with
    /// the membership in effect after `slot` (skipped if a checkpoint installed from a peer
    /// took the state past `slot`).
    Checkpoint { slot: Slot, membership: Membership },
    /// Load a checkpoint received from a peer.
    Install(Install),
    /// Tell the state machine.
    Notify(Notification),
    /// No more work.
    Stop,
}

/// What the checkpoint-shipping thread is told.
pub(crate) enum ToShipping {
    /// The core wants `to` to get this replica's newest checkpoint.
    Offer { to: u32 },
    /// A shipping frame from a peer (the envelope already removed).
    Frame { from: u32, payload: Bytes },
}

/// A verified checkpoint received from a peer, ready for the executor to load.
pub(crate) struct Install {
    pub(crate) slot: u64,
    /// The membership in effect after `slot` (`None`: a checkpoint from before they carried
    /// it).
    pub(crate) membership: Option<Membership>,
    pub(crate) reader: Box<dyn Read + Send>,
}

/// Tells the consensus thread that the checkpoint after `slot` is durable.
pub(crate) fn checkpoint_saved(events: &Sender<ToConsensus>, slot: Slot) {
    let _ = events.send(ToConsensus::Core(Input::CheckpointSaved { slot }));
}

/// Hands a payload from a peer to the consensus thread; false if its queue is full (the
/// payload is dropped: Paxos retransmits what matters) or it has stopped.
pub(crate) fn inbound(events: &Sender<ToConsensus>, from: u32, payload: Bytes) -> bool {
    events.try_send(ToConsensus::Receive { from, payload }).is_ok()
}
