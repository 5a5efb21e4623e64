//! Request/response calls between members, over the replica-to-replica transport.
//!
//! An application sometimes needs to ask another member something: rsl-kv hands a client's
//! request to the primary this way. Doing it over the replica-to-replica transport means the
//! call is authenticated with the cluster's own credentials (under mutual TLS, the transport
//! tags each payload with the sender's certified id), travels on the connection the replicas
//! already keep, and needs no port or password of its own.
//!
//! The caller: [`crate::Node::call_peer`] sends one request to a member and returns a future of its
//! response, bounded by a deadline the caller gives. The callee: the application registers one
//! handler with [`crate::Node::serve_peer_calls`]; it is called with the caller's authenticated id, the
//! request and a [`PeerResponder`] to answer with, later, from any thread.
//!
//! Calls travel in envelopes of their own channel (`crate::envelope`, `Channel::Calls`), and
//! are told apart where payloads arrive ([`Inbox::deliver`]), before the consensus thread's
//! queue: the consensus thread never sees one, and a burst of calls cannot crowd protocol
//! messages out of its queue.
//!
//! Frames, little-endian:
//!
//! | bytes | call | reply |
//! | --- | --- | --- |
//! | 1 | envelope: `Channel::Calls` | envelope: `Channel::Calls` |
//! | 1 | [`CALL_KIND`] | [`REPLY_KIND`] |
//! | 8 | call id (the caller's) | the call's id |
//! | 1 | 0 | status: 0 answered, 1 no handler, 2 overloaded, 3 dropped, 4 answer too large |
//! | rest | the request | the response (status 0 only) |
//!
//! Guarantees and bounds:
//!
//! - The handler is called on the thread that receives payloads, in the order calls arrive
//!   from each member, which is the order that member sent them (the transport keeps order per
//!   peer): a handler that starts its work before returning keeps the caller's order.
//! - A call is sent when [`crate::Node::call_peer`] returns, or refused then (not connected, too large,
//!   too many calls waiting) with an error that says it was not sent.
//! - Every call ends in exactly one outcome: the response, or a [`PeerCallError`] that says
//!   whether the callee may have handled it ([`PeerCallError::maybe_handled`]). A call waits
//!   at most its deadline; when the transport loses its connection to the callee, the calls
//!   waiting on it end at once as [`PeerCallError::Lost`].
//! - At most [`PEER_CALLS_WAITING_MAX`] calls wait for replies, and at most
//!   [`PEER_CALLS_SERVING_MAX`] calls are being handled at once; past that the callee answers
//!   "overloaded" without calling the handler. Requests and responses are at most
//!   [`PEER_CALL_BYTES_MAX`] bytes.
//! - A reply is accepted only from the member the call went to; a malformed frame, or a reply
//!   from another member, is dropped and counted in `rejected_messages`.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use crossbeam_channel::Sender;
use rsl_net::{SendError, Transport};
use tokio::sync::oneshot;

use crate::channels::{inbound, ToConsensus};
use crate::envelope::{open, Channel};
use crate::shared::Shared;

/// The first byte of every call and reply frame: their envelope's channel.
const PEER_CALL_CHANNEL: u8 = Channel::Calls as u8;
/// The second byte of a call frame.
pub const CALL_KIND: u8 = 1;
/// The second byte of a reply frame.
pub const REPLY_KIND: u8 = 2;
/// Bytes of a call or reply frame before its body: channel, kind, call id, status.
pub const PEER_CALL_HEADER_BYTES: usize = 1 + 1 + 8 + 1;
/// The largest request or response of one call, in bytes: a frame holds the header and it.
pub const PEER_CALL_BYTES_MAX: usize =
    rsl_net::limits::FRAME_PAYLOAD_BYTES_MAX - PEER_CALL_HEADER_BYTES;
/// Calls this replica has sent that wait for their reply; more are refused, not sent.
pub const PEER_CALLS_WAITING_MAX: usize = 4096;
/// Calls from other members being handled here at once; more are answered "overloaded".
pub const PEER_CALLS_SERVING_MAX: usize = 4096;

const _: () = assert!(
    PEER_CALL_BYTES_MAX + PEER_CALL_HEADER_BYTES <= rsl_net::limits::FRAME_PAYLOAD_BYTES_MAX
);

/// The status byte of a reply frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Status {
    Answered = 0,
    NoHandler = 1,
    Overloaded = 2,
    Dropped = 3,
    AnswerTooLarge = 4,
}

impl Status {
    fn from_byte(byte: u8) -> Option<Status> {
        Some(match byte {
            0 => Status::Answered,
            1 => Status::NoHandler,
            2 => Status::Overloaded,
            3 => Status::Dropped,
            4 => Status::AnswerTooLarge,
            _ => return None,
        })
    }
}

/// Why a peer call has no response. [`PeerCallError::maybe_handled`] says whether the callee
/// may have acted on it (so whether sending it again could act twice).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerCallError {
    /// The id names no other member (or this replica itself). Not sent.
    #[error("replica {to} is not a peer")]
    UnknownPeer {
        /// The id called.
        to: u32,
    },
    /// The transport has no connection to the member now. Not sent.
    #[error("replica {to} is not connected; the call was not sent")]
    NotConnected {
        /// The member called.
        to: u32,
    },
    /// The request is larger than [`PEER_CALL_BYTES_MAX`]. Not sent.
    #[error("a call of {size} bytes exceeds the maximum of {max} bytes")]
    TooLarge {
        /// The request's size.
        size: usize,
        /// [`PEER_CALL_BYTES_MAX`].
        max: usize,
    },
    /// Too many calls wait for replies here, or the transport's queue to the member is full.
    /// Not sent.
    #[error("too many calls in flight to replica {to}; the call was not sent")]
    Overloaded {
        /// The member called.
        to: u32,
    },
    /// The member handles too many calls already. Not handled.
    #[error("replica {to} is overloaded; the call was not handled")]
    PeerOverloaded {
        /// The member called.
        to: u32,
    },
    /// The member serves no calls (no handler is registered). Not handled.
    #[error("replica {to} serves no peer calls")]
    NoHandler {
        /// The member called.
        to: u32,
    },
    /// No reply within the deadline. It may or may not have been handled.
    #[error(
        "no reply from replica {to} within {wait_ms} ms; the call may or may not have been handled"
    )]
    Timeout {
        /// The member called.
        to: u32,
        /// The deadline, in milliseconds after the call.
        wait_ms: u64,
    },
    /// The connection to the member broke while the call waited. It may or may not have been
    /// handled.
    #[error("the connection to replica {to} broke; the call may or may not have been handled")]
    Lost {
        /// The member called.
        to: u32,
    },
    /// The member's handler dropped the call without answering. It may or may not have acted.
    #[error(
        "replica {to} dropped the call without an answer; it may or may not have been handled"
    )]
    Dropped {
        /// The member called.
        to: u32,
    },
    /// The member's answer was larger than [`PEER_CALL_BYTES_MAX`]; it was handled.
    #[error(
        "the answer of replica {to} exceeded the maximum of {max} bytes; the call was handled"
    )]
    AnswerTooLarge {
        /// The member called.
        to: u32,
        /// [`PEER_CALL_BYTES_MAX`].
        max: usize,
    },
    /// This replica is shutting down.
    #[error("shutting down")]
    ShuttingDown,
}

impl PeerCallError {
    /// Whether the callee may have acted on the call: false when it was never sent or was
    /// refused before the handler saw it.
    pub fn maybe_handled(&self) -> bool {
        matches!(
            self,
            PeerCallError::Timeout { .. }
                | PeerCallError::Lost { .. }
                | PeerCallError::Dropped { .. }
                | PeerCallError::AnswerTooLarge { .. }
                | PeerCallError::ShuttingDown
        )
    }
}

/// What the application does with a call from another member: `handler(from, request,
/// responder)`. It runs on the thread that receives peer payloads, so it must not block:
/// start the work (spawn it, or push it to a queue) and answer through the responder later.
pub type PeerCallHandler = dyn Fn(u32, Bytes, PeerResponder) + Send + Sync;

/// The way back to the caller of one call. Answer with [`PeerResponder::respond`]; dropping it
/// unanswered tells the caller [`PeerCallError::Dropped`].
pub struct PeerResponder {
    calls: Arc<PeerCalls>,
    to: u32,
    id: u64,
    answered: bool,
}

impl std::fmt::Debug for PeerResponder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerResponder").field("caller", &self.to).field("id", &self.id).finish()
    }
}

impl PeerResponder {
    /// The authenticated id of the member that made the call.
    pub fn caller(&self) -> u32 {
        self.to
    }

    /// Sends `response` to the caller. A response larger than [`PEER_CALL_BYTES_MAX`] reaches
    /// the caller as [`PeerCallError::AnswerTooLarge`].
    pub fn respond(mut self, response: Bytes) {
        self.answered = true;
        if response.len() > PEER_CALL_BYTES_MAX {
            tracing::warn!(
                caller = self.to,
                bytes = response.len(),
                "a peer call's answer is too large to send"
            );
            self.calls.reply(self.to, self.id, Status::AnswerTooLarge, &[]);
        } else {
            self.calls.reply(self.to, self.id, Status::Answered, &response);
        }
    }
}

impl Drop for PeerResponder {
    fn drop(&mut self) {
        if !self.answered {
            self.calls.reply(self.to, self.id, Status::Dropped, &[]);
        }
        let before = self.calls.serving.fetch_sub(1, Ordering::AcqRel);
        assert!(before > 0, "more calls answered than served");
    }
}

/// A call waiting for its reply.
struct Waiting {
    to: u32,
    reply: oneshot::Sender<Result<Bytes, PeerCallError>>,
}

/// One replica's calls: those it sent (waiting for replies) and those it serves. Made before
/// the transport (whose incoming payloads it receives) and bound to it and to the replica's
/// shared state once the node is spawned; frames that arrive before are dropped.
pub(crate) struct PeerCalls {
    id: u32,
    bound: OnceLock<Bound>,
    next_id: AtomicU64,
    waiting: Mutex<HashMap<u64, Waiting>>,
    handler: RwLock<Option<Arc<PeerCallHandler>>>,
    serving: AtomicUsize,
    stopped: AtomicBool,
}

/// What a replica's calls use once it runs.
struct Bound {
    link: Arc<dyn Transport>,
    shared: Arc<Shared>,
}

impl PeerCalls {
    pub(crate) fn new(id: u32) -> Arc<PeerCalls> {
        Arc::new(PeerCalls {
            id,
            bound: OnceLock::new(),
            next_id: AtomicU64::new(1),
            waiting: Mutex::new(HashMap::new()),
            handler: RwLock::new(None),
            serving: AtomicUsize::new(0),
            stopped: AtomicBool::new(false),
        })
    }

    /// Binds the calls to the replica's transport and shared state (once, at spawn).
    pub(crate) fn bind(&self, link: Arc<dyn Transport>, shared: Arc<Shared>) {
        let fresh = self.bound.set(Bound { link, shared }).is_ok();
        assert!(fresh, "peer calls bound twice");
    }

    fn waiting(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Waiting>> {
        self.waiting.lock().expect("peer call lock")
    }

    /// Sends a call now; the receiver resolves to its outcome (the guard forgets the call if
    /// its waiter goes away first).
    fn send_call(
        self: &Arc<Self>,
        to: u32,
        request: &[u8],
    ) -> Result<(oneshot::Receiver<Result<Bytes, PeerCallError>>, Forget), PeerCallError> {
        let Some(bound) = self.bound.get().filter(|_| !self.stopped.load(Ordering::Acquire)) else {
            return Err(PeerCallError::ShuttingDown);
        };
        if request.len() > PEER_CALL_BYTES_MAX {
            return Err(PeerCallError::TooLarge { size: request.len(), max: PEER_CALL_BYTES_MAX });
        }
        match bound.link.peer_status(to).filter(|_| to != self.id) {
            None => return Err(PeerCallError::UnknownPeer { to }),
            Some(status) if !status.connected => return Err(PeerCallError::NotConnected { to }),
            Some(_) => {}
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (reply, receiver) = oneshot::channel();
        {
            let mut waiting = self.waiting();
            if waiting.len() >= PEER_CALLS_WAITING_MAX {
                return Err(PeerCallError::Overloaded { to });
            }
            waiting.insert(id, Waiting { to, reply });
        }
        let forget = Forget { calls: Arc::clone(self), id };
        let mut frame = BytesMut::with_capacity(PEER_CALL_HEADER_BYTES + request.len());
        frame.put_u8(PEER_CALL_CHANNEL);
        frame.put_u8(CALL_KIND);
        frame.put_u64_le(id);
        frame.put_u8(0);
        frame.put_slice(request);
        match bound.link.send(to, frame.freeze()) {
            Ok(()) => Ok((receiver, forget)),
            // The guard removes the entry: the call was never queued.
            Err(SendError::QueueFull(_)) => Err(PeerCallError::Overloaded { to }),
            Err(SendError::UnknownPeer(_)) => Err(PeerCallError::UnknownPeer { to }),
            Err(SendError::PayloadTooLarge { .. }) => {
                Err(PeerCallError::TooLarge { size: request.len(), max: PEER_CALL_BYTES_MAX })
            }
            Err(SendError::Shutdown) => Err(PeerCallError::ShuttingDown),
        }
    }

    /// Sends a reply frame (best effort: a lost reply makes the caller time out).
    fn reply(&self, to: u32, id: u64, status: Status, body: &[u8]) {
        debug_assert!(body.len() <= PEER_CALL_BYTES_MAX);
        let mut frame = BytesMut::with_capacity(PEER_CALL_HEADER_BYTES + body.len());
        frame.put_u8(PEER_CALL_CHANNEL);
        frame.put_u8(REPLY_KIND);
        frame.put_u64_le(id);
        frame.put_u8(status as u8);
        frame.put_slice(body);
        let Some(bound) = self.bound.get() else { return };
        if let Err(e) = bound.link.send(to, frame.freeze()) {
            tracing::debug!(to, id, error = %e, "a peer call's reply was not sent");
        }
    }

    /// Handles one call or reply frame from `from` (already authenticated by the transport).
    fn receive(self: &Arc<Self>, from: u32, payload: Bytes) {
        let Some((kind, id, status, body)) = decode(&payload) else {
            return self.reject(from, "a malformed peer call frame");
        };
        match kind {
            CALL_KIND if status == 0 => self.serve(from, id, body),
            REPLY_KIND => match Status::from_byte(status) {
                Some(status) => self.settle(from, id, status, body),
                None => self.reject(from, "a peer call reply with an unknown status"),
            },
            _ => self.reject(from, "a peer call frame of an unknown kind, or a call with a status"),
        }
    }

    fn reject(&self, from: u32, what: &'static str) {
        if let Some(bound) = self.bound.get() {
            bound.shared.metrics.counters.rejected_messages.inc();
        }
        tracing::warn!(from, "rejected {what}");
    }

    fn serve(self: &Arc<Self>, from: u32, id: u64, request: Bytes) {
        let handler = self.handler.read().expect("peer call handler lock").clone();
        let Some(handler) = handler else {
            return self.reply(from, id, Status::NoHandler, &[]);
        };
        if self.serving.fetch_add(1, Ordering::AcqRel) >= PEER_CALLS_SERVING_MAX {
            self.serving.fetch_sub(1, Ordering::AcqRel);
            return self.reply(from, id, Status::Overloaded, &[]);
        }
        // From here the responder owns the count: it gives it back when answered or dropped.
        let responder = PeerResponder { calls: Arc::clone(self), to: from, id, answered: false };
        // The body is a slice of the connection's read buffer, which holds every frame read
        // with it; a handler that keeps the body (rsl-kv proposes a forwarded request, and the
        // log keeps it in memory) would keep the whole buffer alive. Its own copy holds only
        // its bytes (docs/benchmarks.md, "rsl-kv memory at 1,000,000 keys").
        handler(from, Bytes::copy_from_slice(&request), responder);
    }

    fn settle(&self, from: u32, id: u64, status: Status, body: Bytes) {
        let mut waiting = self.waiting();
        match waiting.get(&id) {
            // A reply to a call that already ended (deadline, lost connection): nobody waits.
            None => return,
            Some(w) if w.to != from => {
                drop(waiting);
                return self.reject(from, "a peer call reply from a replica that was not called");
            }
            Some(_) => {}
        }
        let w = waiting.remove(&id).expect("checked above");
        drop(waiting);
        let to = w.to;
        let outcome = match status {
            Status::Answered => Ok(body),
            Status::NoHandler => Err(PeerCallError::NoHandler { to }),
            Status::Overloaded => Err(PeerCallError::PeerOverloaded { to }),
            Status::Dropped => Err(PeerCallError::Dropped { to }),
            Status::AnswerTooLarge => {
                Err(PeerCallError::AnswerTooLarge { to, max: PEER_CALL_BYTES_MAX })
            }
        };
        let _ = w.reply.send(outcome); // The caller may have stopped waiting.
    }

    /// Ends every call waiting on `peer` as lost (its connection broke).
    pub(crate) fn peer_lost(&self, peer: u32) {
        let lost: Vec<Waiting> = {
            let mut waiting = self.waiting();
            let ids: Vec<u64> =
                waiting.iter().filter(|(_, w)| w.to == peer).map(|(id, _)| *id).collect();
            ids.into_iter().filter_map(|id| waiting.remove(&id)).collect()
        };
        for w in lost {
            let _ = w.reply.send(Err(PeerCallError::Lost { to: peer }));
        }
    }

    /// Stops: no more calls are sent or served; waiting ones end as `ShuttingDown`. Drops the
    /// handler, which may hold the node (an application's engine usually does).
    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        self.handler.write().expect("peer call handler lock").take();
        let all: Vec<Waiting> = self.waiting().drain().map(|(_, w)| w).collect();
        for w in all {
            let _ = w.reply.send(Err(PeerCallError::ShuttingDown));
        }
    }
}

/// Removes a call from the waiting set when its waiter is gone (answered, timed out, dropped).
struct Forget {
    calls: Arc<PeerCalls>,
    id: u64,
}

impl Drop for Forget {
    fn drop(&mut self) {
        self.calls.waiting().remove(&self.id);
    }
}

/// Splits a call or reply frame (its envelope included) into kind, id, status and body;
/// `None` if it is malformed.
fn decode(payload: &Bytes) -> Option<(u8, u64, u8, Bytes)> {
    let (Channel::Calls, body) = open(payload)? else { return None };
    if body.len() < PEER_CALL_HEADER_BYTES - 1 {
        return None;
    }
    let kind = body[0];
    let id = u64::from_le_bytes(body[1..9].try_into().expect("8 bytes"));
    let status = body[9];
    Some((kind, id, status, body.slice(PEER_CALL_HEADER_BYTES - 1..)))
}

/// Whether `payload` is in a peer-call envelope (by its channel byte).
fn is_peer_call(payload: &[u8]) -> bool {
    payload.first() == Some(&PEER_CALL_CHANNEL)
}

/// Where a replica's incoming peer payloads go: calls and replies to this module, everything
/// else to the consensus thread. Every wire delivers through one.
#[derive(Clone)]
pub(crate) struct Inbox {
    pub(crate) events: Sender<ToConsensus>,
    pub(crate) calls: Arc<PeerCalls>,
}

impl std::fmt::Debug for Inbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("inbox")
    }
}

impl Inbox {
    /// Delivers one payload from `from`; false if the consensus thread's queue was full.
    pub(crate) fn deliver(&self, from: u32, payload: Bytes) -> bool {
        if is_peer_call(&payload) {
            self.calls.receive(from, payload);
            return true;
        }
        inbound(&self.events, from, payload)
    }

    /// Delivers a payload that is `head` followed by `tail` (`Transport::send_shared`); a
    /// consensus message goes to the consensus thread in its two pieces, its body `tail`'s
    /// one buffer, shared by every receiver; anything else as [`Inbox::deliver`] does.
    pub(crate) fn deliver_shared(
        &self,
        from: u32,
        head: Bytes,
        tail: &rsl_net::SharedPayload,
    ) -> bool {
        if head.first() != Some(&(crate::envelope::Channel::Consensus as u8)) {
            return self.deliver(from, tail.concat_after(&head));
        }
        let body = tail.contiguous();
        self.events.try_send(ToConsensus::ReceiveParts { from, head, body }).is_ok()
    }
}

impl PeerCalls {
    /// [`crate::Node::call_peer`].
    pub(crate) fn call(
        self: &Arc<Self>,
        to: u32,
        request: Bytes,
        wait: Duration,
    ) -> impl Future<Output = Result<Bytes, PeerCallError>> + Send + 'static {
        let sent = self.send_call(to, &request);
        let deadline = std::time::Instant::now() + wait;
        async move {
            let (receiver, _forget) = sent?;
            match crate::deadline::until(deadline.into(), receiver).await {
                Ok(Ok(outcome)) => outcome,
                // The sender went with the waiting set: the replica stopped.
                Ok(Err(_)) => Err(PeerCallError::ShuttingDown),
                Err(_) => Err(PeerCallError::Timeout { to, wait_ms: wait.as_millis() as u64 }),
            }
        }
    }

    /// [`crate::Node::serve_peer_calls`].
    pub(crate) fn set_handler(&self, handler: Arc<PeerCallHandler>) {
        if !self.stopped.load(Ordering::Acquire) {
            *self.handler.write().expect("peer call handler lock") = Some(handler);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// A transport that records what is sent; replicas 2 and 3 are connected peers.
    #[derive(Default)]
    struct Recorder(Mutex<Vec<(u32, Bytes)>>);

    impl Transport for Recorder {
        fn id(&self) -> u32 {
            1
        }
        fn send(&self, to: u32, payload: Bytes) -> Result<(), SendError> {
            self.0.lock().unwrap().push((to, payload));
            Ok(())
        }
        fn peer_status(&self, peer: u32) -> Option<rsl_net::PeerStatus> {
            let connected = true;
            (peer == 2 || peer == 3).then_some(rsl_net::PeerStatus {
                connected,
                last_contact_ago: None,
                queued_frames: 0,
            })
        }
    }

    fn frame(kind: u8, id: u64, status: u8, body: &[u8]) -> Bytes {
        Bytes::from([&[PEER_CALL_CHANNEL, kind][..], &id.to_le_bytes(), &[status], body].concat())
    }

    #[test]
    fn frames_shorter_than_the_header_are_malformed_and_tags_are_recognised() {
        let short = frame(CALL_KIND, 7, 0, b"");
        assert!(decode(&short.slice(..PEER_CALL_HEADER_BYTES - 1)).is_none());
        let reply = frame(REPLY_KIND, 7, 3, b"body");
        assert_eq!(decode(&reply), Some((REPLY_KIND, 7, 3, Bytes::from_static(b"body"))));
        assert!(is_peer_call(&reply) && is_peer_call(&[PEER_CALL_CHANNEL]));
        assert!(
            !is_peer_call(&[Channel::Consensus as u8]) && !is_peer_call(&[Channel::Shipping as u8])
        );
        assert!(!is_peer_call(&[]));
        for byte in 0..=u8::MAX {
            assert_eq!(Status::from_byte(byte).map(|s| s as u8), (byte <= 4).then_some(byte));
        }
    }

    #[test]
    fn only_the_called_member_can_answer_and_bad_frames_are_counted() {
        let link = Arc::new(Recorder::default());
        let shared = Arc::new(Shared::new(1, 0, BTreeMap::new(), Duration::from_secs(1)));
        let calls = PeerCalls::new(1);
        calls.bind(link.clone(), shared.clone());
        let (mut receiver, _forget) = calls.send_call(2, b"ask").unwrap();
        let (to, sent) = link.0.lock().unwrap()[0].clone();
        assert_eq!((to, &sent[..]), (2, &frame(CALL_KIND, 1, 0, b"ask")[..]));
        let rejected = || shared.metrics.counters.rejected_messages.get();

        // Replica 3 answers a call that went to replica 2: rejected, the call still waits.
        calls.receive(3, frame(REPLY_KIND, 1, 0, b"forged"));
        assert_eq!(rejected(), 1);
        assert!(receiver.try_recv().is_err());
        // Malformed, an unknown status, a call frame with a status: each rejected, counted.
        calls.receive(2, Bytes::from_static(&[PEER_CALL_CHANNEL, REPLY_KIND, 1, 0]));
        calls.receive(2, frame(REPLY_KIND, 1, 9, b""));
        calls.receive(2, frame(CALL_KIND, 5, 1, b""));
        assert_eq!(rejected(), 4);
        assert!(receiver.try_recv().is_err());
        // The called member's answer settles it; a duplicate finds nobody and is ignored.
        calls.receive(2, frame(REPLY_KIND, 1, 0, b"answer"));
        assert_eq!(receiver.try_recv().unwrap(), Ok(Bytes::from_static(b"answer")));
        calls.receive(2, frame(REPLY_KIND, 1, 0, b"again"));
        assert_eq!(rejected(), 4);
        assert!(calls.waiting().is_empty());

        // A call without a handler is answered "no handler" and never reaches one.
        calls.receive(3, frame(CALL_KIND, 42, 0, b"call"));
        assert_eq!(link.0.lock().unwrap().last().unwrap(), &(3, frame(REPLY_KIND, 42, 1, b"")));
    }
}
