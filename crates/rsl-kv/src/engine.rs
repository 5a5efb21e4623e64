//! The boundary between the RESP server and whatever executes requests.
//!
//! The server encodes each data command as a [`crate::request::Request`] and hands it to an
//! [`Engine`]: writes to [`Engine::write`], reads to [`Engine::read`]. Each call returns at
//! once with an [`EngineReply`], a future that resolves, later, to exactly one outcome: the
//! state machine's reply bytes (a complete RESP reply, errors such as a bad INCR included),
//! or an [`EngineError`] saying why the request was not executed. Whatever must happen in
//! submission order has happened when the call returns; the connection then awaits its
//! replies in command order, in its own task (no task per command). Because the calls do not
//! wait, a connection submits pipelined commands back to back and the engine may batch them
//! into one slot; the commands read together come in one call ([`Engine::batch`]), which the
//! replicated engine hands to its replica at once (`Node::replicate_batch`,
//! `Node::read_batch`) or, at a replica that is not the primary, to the primary as one
//! forwarding call ([`crate::forward`]).
//!
//! [`LocalEngine`] is the unreplicated engine: it runs a [`KvMachine`] under a mutex in the
//! caller's thread. Tests use it, and it is the baseline that replication is measured against.
//! [`crate::replicated::ReplicatedEngine`] is the replicated one, over an [`rsl::Node`].
//!
//! A replicated engine, in outline: it runs an rsl replica whose state machine is a
//! [`KvMachine`]; [`Engine::write`] proposes the request bytes unchanged and resolves with the
//! bytes `KvMachine::execute` returned on this replica for that request (or with
//! [`EngineError::NotPrimary`] and the primary's client address); [`Engine::read`] runs
//! `StateMachine::read` with the request at the chosen consistency (or proposes it like a
//! write, since `execute` answers reads too, for a read through the log). While the replica is
//! primary it should also propose a [`crate::request::WriteOp::Tick`] now and then (the
//! `local-server` does every 100 ms), because reads and expiry follow the machine's clock,
//! which only writes advance. [`EngineError::Overloaded`] is the answer to a full queue.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use rsl::StateMachine;
use tokio::sync::oneshot;

use crate::hub::Hub;
use crate::machine::KvMachine;
use crate::resp::Reply;

/// The pending outcome of one request: a future the connection awaits (in command order,
/// in its own task). An engine answers at once ([`EngineReply::ready`]), with the rest of the
/// request's work as a future ([`EngineReply::new`]: it progresses only while awaited, so
/// whatever must happen in submission order must have happened before the engine's call
/// returns), or through a channel ([`EngineReply::channel`], for work a task of its own
/// does). A reply whose sender is dropped unanswered resolves to [`EngineError::Dropped`].
#[must_use = "a reply does nothing unless awaited"]
pub struct EngineReply(ReplyState);

enum ReplyState {
    Ready(Option<Result<Bytes, EngineError>>),
    Pending(Pin<Box<dyn Future<Output = Result<Bytes, EngineError>> + Send>>),
}

/// The sending side of [`EngineReply::channel`].
pub type EngineSender = oneshot::Sender<Result<Bytes, EngineError>>;

impl EngineReply {
    /// A reply known now.
    pub fn ready(outcome: Result<Bytes, EngineError>) -> EngineReply {
        EngineReply(ReplyState::Ready(Some(outcome)))
    }

    /// A reply that `future` computes as the connection awaits it.
    pub fn new(
        future: impl Future<Output = Result<Bytes, EngineError>> + Send + 'static,
    ) -> EngineReply {
        EngineReply(ReplyState::Pending(Box::pin(future)))
    }

    /// A reply sent later through the returned sender (from another task or thread).
    pub fn channel() -> (EngineSender, EngineReply) {
        let (tx, rx) = oneshot::channel();
        (tx, EngineReply::new(async move { rx.await.unwrap_or(Err(EngineError::Dropped)) }))
    }

    /// The outcome if it is known now, without waiting (the future is polled once, with a
    /// waker that does nothing: whoever awaits it later polls it again with its own).
    pub fn try_take(&mut self) -> Option<Result<Bytes, EngineError>> {
        match Pin::new(self).poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(outcome) => Some(outcome),
            Poll::Pending => None,
        }
    }
}

/// One future per element of the vector `batch` resolves to, in order: the parts share
/// `batch` (whichever part is polled drives it, with its own waker) and each resolves to its
/// own element (`None` if the vector is shorter). A connection awaits its replies in order in
/// one task, so the shared state is never contended.
pub(crate) fn split<T: Send + 'static>(
    batch: impl Future<Output = Vec<T>> + Send + 'static,
    n: usize,
) -> Vec<SplitPart<T>> {
    let split = Split { batch: Some(Box::pin(batch)), outcomes: Vec::new() };
    let shared = Arc::new(Mutex::new(split));
    (0..n).map(|i| SplitPart { shared: Arc::clone(&shared), i }).collect()
}

/// A batch's future and, once it resolved, its outcomes not yet taken.
struct Split<T> {
    batch: Option<Pin<Box<dyn Future<Output = Vec<T>> + Send>>>,
    outcomes: Vec<Option<T>>,
}

/// The `i`-th outcome of a batch ([`split`]).
pub(crate) struct SplitPart<T> {
    shared: Arc<Mutex<Split<T>>>,
    i: usize,
}

impl<T> Future for SplitPart<T> {
    type Output = Option<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut split = self.shared.lock().expect("a batch's lock is not poisoned");
        if let Some(batch) = split.batch.as_mut() {
            let outcomes = std::task::ready!(batch.as_mut().poll(cx));
            split.outcomes = outcomes.into_iter().map(Some).collect();
            split.batch = None;
        }
        Poll::Ready(split.outcomes.get_mut(self.i).and_then(Option::take))
    }
}

impl Future for EngineReply {
    type Output = Result<Bytes, EngineError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.0 {
            ReplyState::Ready(outcome) => {
                Poll::Ready(outcome.take().unwrap_or(Err(EngineError::Dropped)))
            }
            ReplyState::Pending(future) => {
                let outcome = std::task::ready!(future.as_mut().poll(cx));
                self.0 = ReplyState::Ready(None);
                Poll::Ready(outcome)
            }
        }
    }
}

impl std::fmt::Debug for EngineReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            ReplyState::Ready(_) => f.write_str("EngineReply(ready)"),
            ReplyState::Pending(_) => f.write_str("EngineReply(pending)"),
        }
    }
}

/// Why the engine did not execute a request. The request had no effect, except for
/// [`EngineError::Timeout`] and [`EngineError::Dropped`], after which it may or may not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// This replica is not the primary; `primary` is the primary's client address if known.
    #[error("not primary")]
    NotPrimary {
        /// The current primary's client address, if known.
        primary: Option<String>,
    },
    /// The engine refused the request because too many are in flight.
    #[error("overloaded")]
    Overloaded,
    /// The engine is shutting down.
    #[error("shutting down")]
    ShuttingDown,
    /// The request's outcome is unknown after waiting too long.
    #[error("timed out")]
    Timeout,
    /// The engine dropped the request without answering; its outcome is unknown.
    #[error("the engine dropped the request")]
    Dropped,
    /// The request is larger than the engine replicates (`request_bytes_max`): its keys and
    /// values do not fit one request. It was refused before reaching the log.
    #[error("request of {size} bytes exceeds the maximum of {max}")]
    TooLarge {
        /// The encoded request's size.
        size: usize,
        /// The engine's `request_bytes_max`.
        max: usize,
    },
    /// Any other failure, described.
    #[error("internal error: {0}")]
    Internal(String),
}

impl EngineError {
    /// The RESP error reply a client receives for this error.
    pub fn to_reply(&self) -> Reply {
        match self {
            EngineError::NotPrimary { primary: Some(addr) } => {
                Reply::error(format!("TRYAGAIN not primary; the primary is {addr}"))
            }
            EngineError::NotPrimary { primary: None } => {
                Reply::error("TRYAGAIN not primary; no primary is known")
            }
            EngineError::Overloaded => Reply::error("ERR overloaded, retry later"),
            EngineError::ShuttingDown => Reply::error("ERR shutting down"),
            EngineError::Timeout => Reply::error("TRYAGAIN timed out, the outcome is unknown"),
            EngineError::Dropped => Reply::error("ERR request dropped, the outcome is unknown"),
            EngineError::TooLarge { size, max } => Reply::error(format!(
                "ERR key or value too large: the request takes {size} bytes, above the maximum \
                 of {max} (request_bytes_max)"
            )),
            EngineError::Internal(text) => Reply::error(format!("ERR internal error: {text}")),
        }
    }
}

/// Executes the requests of a RESP server. Implementations must be cheap to call from many
/// connection tasks at once and must resolve every returned receiver exactly once (or drop it).
pub trait Engine: Send + Sync + 'static {
    /// Replicates a request through the log and resolves to the state machine's reply bytes
    /// (`execute`'s). Usually a write; the server also sends a read this way when it follows
    /// an unanswered write of its connection. Requests handed over one after the other must
    /// reach the log in that order.
    fn write(&self, request: Bytes) -> EngineReply;

    /// Serves a read request against local state and resolves to the reply bytes. The
    /// consistency (linearizable, or any replica) is the engine's choice.
    fn read(&self, request: Bytes) -> EngineReply;

    /// Hands over several requests that arrived together (a connection's pipelined commands
    /// read at once), in order, each through the log if `logged` (as [`Engine::write`]) or
    /// as a read (as [`Engine::read`]); one reply per request, in order, each with its own
    /// outcome. Requests must reach the log in the order given, as if handed over one after
    /// the other; an engine may hand a run of them to its replica at once. By default, one
    /// call per request.
    fn batch(&self, requests: Vec<Submitted>) -> Vec<EngineReply> {
        requests
            .into_iter()
            .map(|s| if s.logged { self.write(s.request) } else { self.read(s.request) })
            .collect()
    }

    /// The largest encoded request the engine replicates or serves, in bytes; the server
    /// refuses a larger one with [`EngineError::TooLarge`] before handing it over.
    fn request_bytes_max(&self) -> usize {
        crate::limits::REQUEST_BYTES_MAX
    }

    /// Whether this replica is the primary, for INFO's `role` field.
    fn is_primary(&self) -> bool {
        true
    }

    /// Carries out an engine command: one whose name starts with `RSL.` (the replicated
    /// engine's forwarding and admin commands). The server has checked authentication; the
    /// engine checks the arguments. `None` if the engine has no command of that name, which
    /// the client hears as an unknown command.
    fn command(&self, _args: &[Bytes]) -> Option<EngineReply> {
        None
    }

    /// The hub of this replica's state machine (pub/sub and blocked pops), if it has one.
    /// Without one, SUBSCRIBE is refused and blocking pops do not block.
    fn hub(&self) -> Option<Hub> {
        None
    }

    /// Extra INFO text, appended after the server's sections: zero or more sections, each a
    /// `# Title` line followed by `field:value` lines, every line ending in CRLF.
    fn info(&self) -> String {
        String::new()
    }
}

/// One request of a batch ([`Engine::batch`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submitted {
    /// The encoded request.
    pub request: Bytes,
    /// Through the log (a write, or a read behind one), else a read.
    pub logged: bool,
}

/// An in-process, unreplicated engine: executes each request directly on a [`KvMachine`].
#[derive(Debug)]
pub struct LocalEngine {
    inner: Mutex<LocalState>,
}

#[derive(Debug)]
struct LocalState {
    machine: KvMachine,
    /// Every write gets its own slot.
    slot_next: u64,
}

impl LocalEngine {
    /// An engine over an empty machine.
    pub fn new() -> LocalEngine {
        LocalEngine::with_machine(KvMachine::new())
    }

    /// An engine over `machine` (for instance one loaded from a checkpoint).
    pub fn with_machine(machine: KvMachine) -> LocalEngine {
        LocalEngine { inner: Mutex::new(LocalState { machine, slot_next: 1 }) }
    }

    /// Runs `f` on the machine, under the lock.
    pub fn with<T>(&self, f: impl FnOnce(&KvMachine) -> T) -> T {
        f(&self.inner.lock().expect("the machine lock is not poisoned").machine)
    }
}

impl Default for LocalEngine {
    fn default() -> Self {
        LocalEngine::new()
    }
}

impl Engine for LocalEngine {
    fn write(&self, request: Bytes) -> EngineReply {
        let reply = {
            let mut state = self.inner.lock().expect("the machine lock is not poisoned");
            let slot = state.slot_next;
            state.slot_next += 1;
            state.machine.execute(slot, &request)
        };
        EngineReply::ready(Ok(reply))
    }

    fn read(&self, request: Bytes) -> EngineReply {
        EngineReply::ready(Ok(self.with(|machine| machine.read(&request))))
    }

    fn hub(&self) -> Option<Hub> {
        Some(self.with(|m| m.hub().clone()))
    }

    fn info(&self) -> String {
        let now_ms = self.with(|m| m.now_ms());
        format!("# Engine\r\nengine:local\r\nmachine_now_ms:{now_ms}\r\n")
    }
}
