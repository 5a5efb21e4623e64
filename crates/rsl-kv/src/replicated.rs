//! The replicated engine: every replica's server executes through an [`rsl::Node`].
//!
//! Writes go through [`Node::replicate`] and reads through [`Node::read`] at
//! [`ReadConsistency::Linearizable`], so every answer is linearizable wherever the client is
//! connected (or, with `kv.reads = "local"`, at `AtLeast(0)` on the replica the client is
//! connected to: fast, possibly stale, never forwarded). Any replica accepts any command: when the local replica is not the primary,
//! the request (already encoded by the server) is forwarded to the primary's client port as
//! `RSL.FORWARD WRITE|READ <request>`, over a few persistent, pipelined connections per
//! primary. The primary executes it locally only (never forwards again, so there is no
//! forwarding loop) and answers with the state machine's reply wrapped as one bulk string, or
//! with `-RSLNOTPRIMARY <id|->` when it is not (or no longer) the primary, which sends the
//! forwarder to try again.
//!
//! Retries: a request that found no primary (an election in progress), a deposed one, or a
//! superseded slot (none of which executed it) tries again when the replica's view of the
//! primary changes or after a short pause, for at most [`limits::PRIMARY_WAIT_MS_MAX`]; then
//! the client hears `-TRYAGAIN`. A forwarded write whose connection breaks after it was sent
//! is not retried, since it may have been executed: the client hears that the outcome is
//! unknown. Reads are always safe to retry.
//!
//! Admin commands answered here: `RSL.STATUS [ALL]` (this replica's status, or every
//! member's as each one reports it), `RSL.TRANSFER <id>` and `RSL.CHECKPOINT`.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rsl::View;
use rsl::{Node, ReadConsistency, ReplicateError, Role};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::client::{describe, Client};
use crate::config::Reads;
use crate::engine::{Engine, EngineError, EngineReply};
use crate::hub::Hub;
use crate::limits;
use crate::request::{Request, WriteOp};
use crate::resp::{encode_command, parse_i64, parse_reply, Reply};
use crate::server::Clock;

/// The error code a primary answers a forwarded request with when it is not the primary.
pub const ERR_NOT_PRIMARY_CODE: &str = "RSLNOTPRIMARY";

/// What a replicated engine needs besides its replica.
#[derive(Clone)]
pub struct ReplicatedOptions {
    /// Every member's client address, by replica id (this one's included).
    pub clients: BTreeMap<u32, SocketAddr>,
    /// The members' client password, used to authenticate forwarding connections.
    pub requirepass: Option<String>,
    /// The clock that stamps tick writes and bounds forwarded stamps.
    pub clock: Clock,
    /// How reads are served.
    pub reads: Reads,
}

impl std::fmt::Debug for ReplicatedOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicatedOptions").field("clients", &self.clients).finish_non_exhaustive()
    }
}

/// An [`Engine`] over an rsl replica whose state machine is a [`crate::KvMachine`].
#[derive(Debug, Clone)]
pub struct ReplicatedEngine {
    inner: Arc<Inner>,
}

struct Inner {
    node: Arc<Node>,
    id: u32,
    view: watch::Receiver<View>,
    options: ReplicatedOptions,
    /// Forwarding connections, by primary id, made on first use.
    pools: Mutex<HashMap<u32, Arc<Pool>>>,
    /// The hub of the node's machine.
    hub: Hub,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner").field("id", &self.id).finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Write,
    Read,
}

impl Kind {
    fn word(self) -> &'static str {
        match self {
            Kind::Write => "WRITE",
            Kind::Read => "READ",
        }
    }
}

/// The end of one try at a request.
enum Attempt {
    /// The request's outcome (a reply, or an error that ends it).
    Done(Result<Bytes, EngineError>),
    /// The request was not executed; try again, at `hint` if it names the primary.
    Retry { hint: Option<u32> },
}

impl ReplicatedEngine {
    /// An engine over `node`. Call from within a tokio runtime. Pub/sub and blocking pops
    /// need the hub of the node's machine: see [`ReplicatedEngine::with_hub`].
    pub fn new(node: Arc<Node>, options: ReplicatedOptions) -> ReplicatedEngine {
        ReplicatedEngine::with_hub(node, options, Hub::new())
    }

    /// An engine over `node`, whose machine delivers to `hub` ([`crate::KvMachine::with_hub`]).
    pub fn with_hub(node: Arc<Node>, options: ReplicatedOptions, hub: Hub) -> ReplicatedEngine {
        assert!(options.clients.contains_key(&node.id()), "this replica has a client address");
        let inner = Inner {
            id: node.id(),
            view: node.watch(),
            node,
            options,
            pools: Mutex::new(HashMap::new()),
            hub,
        };
        ReplicatedEngine { inner: Arc::new(inner) }
    }

    /// The replica.
    pub fn node(&self) -> &Arc<Node> {
        &self.inner.node
    }

    /// Proposes a clock tick every `period` while this replica is primary, so that keys
    /// expire even when no client writes. Runs until the runtime stops.
    pub fn start_ticks(&self, period: Duration) {
        assert!(!period.is_zero());
        let inner = Arc::clone(&self.inner);
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(period);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                if !inner.node.is_running() {
                    return;
                }
                if inner.is_primary() {
                    let tick =
                        Request::Write { stamp_ms: (inner.options.clock)(), op: WriteOp::Tick };
                    let _ = inner.node.replicate(tick.encode()).await;
                }
            }
        });
    }

    /// Starts the request's first try before returning, so that requests reach the replica
    /// (or the forwarding connection) in the order the server submits them: a connection's
    /// pipelined commands execute in order, as Redis promises. Retries, if any, run later.
    fn submit(&self, kind: Kind, request: Bytes) -> EngineReply {
        let (first, target) = self.inner.start_attempt(kind, request.clone(), None);
        self.spawn(|inner| async move { inner.execute(kind, request, first, target).await })
    }

    fn spawn<F>(&self, f: impl FnOnce(Arc<Inner>) -> F) -> EngineReply
    where
        F: std::future::Future<Output = Result<Bytes, EngineError>> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let future = f(Arc::clone(&self.inner));
        tokio::spawn(async move {
            let _ = tx.send(future.await); // The client may have gone.
        });
        rx
    }
}

impl Engine for ReplicatedEngine {
    fn write(&self, request: Bytes) -> EngineReply {
        self.submit(Kind::Write, request)
    }

    fn read(&self, request: Bytes) -> EngineReply {
        if self.inner.options.reads == Reads::Local {
            let inner = Arc::clone(&self.inner);
            let read = started(async move { inner.read_local(request).await });
            return self.spawn(|_| read);
        }
        self.submit(Kind::Read, request)
    }

    fn is_primary(&self) -> bool {
        self.inner.is_primary()
    }

    fn hub(&self) -> Option<Hub> {
        Some(self.inner.hub.clone())
    }

    fn command(&self, args: &[Bytes]) -> Option<EngineReply> {
        let name = args[0].to_ascii_lowercase();
        let args: Vec<Bytes> = args.to_vec();
        let reply = match &name[..] {
            b"rsl.forward" => {
                let forwarded = self.inner.forwarded(&args);
                self.spawn(|_| forwarded)
            }
            b"rsl.status" => self.spawn(|inner| async move { inner.status_command(&args).await }),
            b"rsl.transfer" => self.spawn(|inner| async move { inner.transfer(&args).await }),
            b"rsl.checkpoint" => self.spawn(|inner| async move { Ok(inner.checkpoint(&args)) }),
            b"rsl.members" => self.spawn(|inner| async move {
                let (clients, password) =
                    (&inner.options.clients, inner.options.requirepass.as_deref());
                Ok(crate::members::command(&inner.node, clients, password, &args).await.to_bytes())
            }),
            _ => return None,
        };
        Some(reply)
    }

    fn info(&self) -> String {
        let s = self.inner.node.status();
        format!(
            "# Rsl\r\nrsl_replica_id:{}\r\nrsl_role:{}\r\nrsl_primary:{}\r\nrsl_ballot:{}.{}\r\n\
             rsl_committed_slot:{}\r\nrsl_executed_slot:{}\r\nrsl_members:{}\r\n",
            s.id,
            s.role,
            s.primary.map_or("-".to_string(), |p| p.to_string()),
            s.ballot_round,
            s.ballot_replica,
            s.committed,
            s.executed,
            join_ids(&s.members),
        )
    }
}

fn join_ids(ids: &[u32]) -> String {
    ids.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
}

fn error_bytes(text: impl AsRef<str>) -> Bytes {
    Reply::error(text).to_bytes()
}

impl Inner {
    fn is_primary(&self) -> bool {
        self.view.borrow().role == Some(Role::Primary)
    }

    /// Serves one client request from its first try on: locally if primary, else
    /// forwarded, retrying while no primary is known, for at most
    /// [`limits::PRIMARY_WAIT_MS_MAX`].
    async fn execute(
        self: Arc<Self>,
        kind: Kind,
        request: Bytes,
        first: AttemptFuture,
        first_target: Option<u32>,
    ) -> Result<Bytes, EngineError> {
        let deadline = Instant::now() + Duration::from_millis(limits::PRIMARY_WAIT_MS_MAX);
        let mut view = self.node.watch();
        view.borrow_and_update();
        let (mut attempt, mut target) = (first, first_target);
        loop {
            let mut hint = match attempt.await {
                Attempt::Done(outcome) => return outcome,
                Attempt::Retry { hint } => hint.filter(|&p| Some(p) != target),
            };
            let now = Instant::now();
            if now >= deadline {
                let primary = view.borrow().primary.and_then(|p| self.options.clients.get(&p));
                return Err(EngineError::NotPrimary { primary: primary.map(|a| a.to_string()) });
            }
            if hint.is_none() {
                // Wait for the view to change (an election's outcome), or a short pause.
                let pause = Duration::from_millis(limits::RETRY_PAUSE_MS_MAX).min(deadline - now);
                let _ = tokio::time::timeout(pause, view.changed()).await;
            }
            view.borrow_and_update();
            (attempt, target) = self.start_attempt(kind, request.clone(), hint.take());
        }
    }

    /// Starts one try: at `hint`, else at the primary this replica knows. Whatever must
    /// happen in submission order (the proposal reaching the replica, the request entering
    /// the forwarding connection) has happened when this returns.
    fn start_attempt(
        self: &Arc<Self>,
        kind: Kind,
        request: Bytes,
        hint: Option<u32>,
    ) -> (AttemptFuture, Option<u32>) {
        let seen = *self.view.borrow();
        let known = if seen.role == Some(Role::Primary) { Some(self.id) } else { seen.primary };
        let target = hint.or(known);
        let attempt = match target {
            Some(p) if p == self.id => {
                let inner = Arc::clone(self);
                started(async move { inner.local(kind, request).await })
            }
            Some(p) => {
                let sent = self.send_forward(p, kind, &request);
                Box::pin(async move { await_forward(kind, sent).await })
            }
            None => Box::pin(std::future::ready(Attempt::Retry { hint: None })),
        };
        (attempt, target)
    }

    /// A read from this replica's own state, whatever its role (`kv.reads = "local"`).
    async fn read_local(&self, request: Bytes) -> Result<Bytes, EngineError> {
        match self.node.read(request, ReadConsistency::AtLeast(0)).await {
            Ok(reply) => Ok(reply),
            Err(ReplicateError::Overloaded) => Err(EngineError::Overloaded),
            Err(ReplicateError::ShuttingDown) => Err(EngineError::ShuttingDown),
            Err(e) => Err(EngineError::Internal(e.to_string())),
        }
    }

    /// One try on the local replica.
    async fn local(&self, kind: Kind, request: Bytes) -> Attempt {
        let outcome = match kind {
            Kind::Write => self.node.replicate(request).await,
            Kind::Read => self.node.read(request, ReadConsistency::Linearizable).await,
        };
        match outcome {
            Ok(reply) => Attempt::Done(Ok(reply)),
            // Neither was executed: safe to try again.
            Err(ReplicateError::NotPrimary { primary, .. })
            | Err(ReplicateError::Superseded { primary, .. }) => Attempt::Retry { hint: primary },
            Err(ReplicateError::Overloaded) => Attempt::Done(Err(EngineError::Overloaded)),
            Err(ReplicateError::ShuttingDown) => Attempt::Done(Err(EngineError::ShuttingDown)),
            // It may have executed (or the replica stopped): retrying could apply it twice.
            Err(e) => Attempt::Done(Err(EngineError::Internal(e.to_string()))),
        }
    }

    /// Puts the request into the forwarding connection to `primary`'s client port.
    fn send_forward(
        &self,
        primary: u32,
        kind: Kind,
        request: &Bytes,
    ) -> Result<ForwardReceiver, Attempt> {
        if request.len() > limits::FORWARD_BYTES_MAX {
            let text = "ERR request too large to forward; send it to the primary";
            return Err(Attempt::Done(Ok(error_bytes(text))));
        }
        let Some(&addr) = self.options.clients.get(&primary) else {
            return Err(Attempt::Retry { hint: None });
        };
        let mut frame = BytesMut::new();
        encode_command(&[b"RSL.FORWARD".as_slice(), kind.word().as_bytes(), request], &mut frame);
        self.pool(primary, addr).call(frame.freeze()).map_err(|e| Attempt::Done(Err(e)))
    }

    fn pool(&self, primary: u32, addr: SocketAddr) -> Arc<Pool> {
        let mut pools = self.pools.lock().expect("the pool lock is not poisoned");
        let pool = pools
            .entry(primary)
            .or_insert_with(|| Arc::new(Pool::start(addr, self.options.requirepass.clone())));
        Arc::clone(pool)
    }

    /// `RSL.FORWARD WRITE|READ <request>`: executes a request another member forwarded, here
    /// only, and wraps the reply as one bulk string. The local try starts before this
    /// returns, so forwarded requests keep the order they arrived in.
    fn forwarded(
        self: &Arc<Self>,
        args: &[Bytes],
    ) -> Pin<Box<dyn Future<Output = Result<Bytes, EngineError>> + Send>> {
        let reply = |bytes: Bytes| -> Pin<Box<dyn Future<Output = _> + Send>> {
            Box::pin(std::future::ready(Ok(bytes)))
        };
        let [_, kind, request] = args else {
            return reply(error_bytes("ERR wrong number of arguments for 'rsl.forward' command"));
        };
        let kind = match kind.to_ascii_uppercase().as_slice() {
            b"WRITE" => Kind::Write,
            b"READ" => Kind::Read,
            _ => return reply(error_bytes("ERR RSL.FORWARD takes WRITE or READ")),
        };
        if let Err(reason) = self.check_forwarded(kind, request) {
            return reply(error_bytes(format!("ERR bad forwarded request: {reason}")));
        }
        let inner = Arc::clone(self);
        let request = request.clone();
        let attempt = started(async move { inner.local(kind, request).await });
        Box::pin(async move {
            Ok(match attempt.await {
                Attempt::Done(Ok(reply)) => Reply::Bulk(reply).to_bytes(),
                Attempt::Done(Err(e)) => e.to_reply().to_bytes(),
                Attempt::Retry { hint } => {
                    let hint = hint.map_or("-".to_string(), |p| p.to_string());
                    error_bytes(format!("{ERR_NOT_PRIMARY_CODE} {hint}"))
                }
            })
        })
    }

    fn check_forwarded(&self, kind: Kind, request: &[u8]) -> Result<(), String> {
        let request = Request::decode(request).map_err(|e| e.to_string())?;
        // WRITE carries anything that goes through the log (a read behind a write too).
        if kind == Kind::Read && request.is_write() {
            return Err("a write sent as READ".into());
        }
        if let Request::Write { stamp_ms, .. } = request {
            let limit = (self.options.clock)().saturating_add(limits::FORWARD_STAMP_AHEAD_MS_MAX);
            if stamp_ms > limit {
                return Err("its stamp is too far in the future".into());
            }
        }
        Ok(())
    }

    /// This replica's status as `field:value` lines.
    fn status_text(&self) -> String {
        let s = self.node.status();
        let c = &s.counters;
        let client = self.options.clients[&self.id];
        format!(
            "id:{}\r\nhealth:ok\r\nclient_addr:{client}\r\nrole:{}\r\nprimary:{}\r\n\
             ballot:{}.{}\r\ncommitted:{}\r\nexecuted:{}\r\nmembers:{}\r\nproposals:{}\r\n\
             slots_committed:{}\r\noverloaded:{}\r\nrejected_messages:{}\r\nrebuilding:{}\r\n",
            s.id,
            s.role,
            s.primary.map_or("-".to_string(), |p| p.to_string()),
            s.ballot_round,
            s.ballot_replica,
            s.committed,
            s.executed,
            join_ids(&s.members),
            c.proposals,
            c.slots_committed,
            c.overloaded,
            c.rejected_messages,
            u8::from(s.rebuilding),
        )
    }

    /// `RSL.STATUS`: this replica's status; `RSL.STATUS ALL`: every member's, as an array.
    async fn status_command(self: &Arc<Self>, args: &[Bytes]) -> Result<Bytes, EngineError> {
        match args {
            [_] => Ok(Reply::Bulk(Bytes::from(self.status_text())).to_bytes()),
            [_, all] if all.eq_ignore_ascii_case(b"all") => {
                let mut tasks = tokio::task::JoinSet::new();
                for (&id, &addr) in &self.options.clients {
                    let inner = Arc::clone(self);
                    tasks.spawn(async move { (id, inner.member_status(id, addr).await) });
                }
                let mut reports: Vec<(u32, String)> = tasks.join_all().await;
                reports.sort();
                let items = reports.into_iter().map(|(_, text)| Reply::Bulk(Bytes::from(text)));
                Ok(Reply::Array(items.collect()).to_bytes())
            }
            _ => Ok(error_bytes("ERR syntax error: RSL.STATUS [ALL]")),
        }
    }

    async fn member_status(&self, id: u32, addr: SocketAddr) -> String {
        if id == self.id {
            return self.status_text();
        }
        let unreachable = |why: String| {
            format!("id:{id}\r\nhealth:unreachable ({why})\r\nclient_addr:{addr}\r\n")
        };
        match self.ask_member(addr, &[b"RSL.STATUS".as_slice()]).await {
            Ok(Reply::Bulk(text)) => String::from_utf8_lossy(&text).into_owned(),
            Ok(other) => unreachable(describe(&other)),
            Err(e) => unreachable(e.to_string()),
        }
    }

    /// Sends one command to another member's client port, bounded in time.
    async fn ask_member(&self, addr: SocketAddr, args: &[&[u8]]) -> std::io::Result<Reply> {
        let wait = Duration::from_millis(limits::ADMIN_PEER_WAIT_MS_MAX);
        let password = self.options.requirepass.as_deref();
        let mut client = Client::connect_auth(addr, password, wait).await?;
        client.cmd(args).await
    }

    /// `RSL.TRANSFER <id>`: hands primacy to replica `id` and waits until it has it.
    async fn transfer(&self, args: &[Bytes]) -> Result<Bytes, EngineError> {
        let [_, to] = args else {
            return Ok(error_bytes("ERR wrong number of arguments for 'rsl.transfer' command"));
        };
        let Some(to) = parse_i64(to).and_then(|n| u32::try_from(n).ok()) else {
            return Ok(error_bytes("ERR the replica id is not an integer"));
        };
        if !self.options.clients.contains_key(&to) {
            return Ok(error_bytes(format!("ERR replica {to} is not a member")));
        }
        let seen = *self.view.borrow();
        if seen.role != Some(Role::Primary) {
            let Some(primary) = seen.primary else {
                return Ok(error_bytes("TRYAGAIN no primary is known"));
            };
            // Only the primary can hand primacy over: ask it.
            let addr = self.options.clients[&primary];
            let to = to.to_string();
            return Ok(match self.ask_member(addr, &[b"RSL.TRANSFER", to.as_bytes()]).await {
                Ok(reply) => reply.to_bytes(),
                Err(e) => error_bytes(format!("ERR the primary {primary} did not answer: {e}")),
            });
        }
        if to == self.id {
            return Ok(
                Reply::Simple(Bytes::from(format!("OK replica {to} is the primary"))).to_bytes()
            );
        }
        let mut view = self.node.watch();
        self.node.transfer_primacy(Some(to));
        let wait = Duration::from_millis(limits::TRANSFER_WAIT_MS_MAX);
        let done = tokio::time::timeout(wait, view.wait_for(|v| v.primary == Some(to))).await;
        Ok(match done {
            Ok(Ok(_)) => Reply::Simple(Bytes::from(format!("OK replica {to} is the primary"))),
            _ => Reply::error(format!("ERR replica {to} did not take over within {wait:?}")),
        }
        .to_bytes())
    }

    /// `RSL.CHECKPOINT`: takes a checkpoint of this replica's state now.
    fn checkpoint(&self, args: &[Bytes]) -> Bytes {
        if args.len() != 1 {
            return error_bytes("ERR wrong number of arguments for 'rsl.checkpoint' command");
        }
        let executed = self.node.status().executed;
        self.node.checkpoint_now();
        let text = format!("OK checkpoint of replica {} requested at slot {executed}", self.id);
        Reply::Simple(Bytes::from(text)).to_bytes()
    }
}

/// Waits for the primary's answer to a forwarded request.
async fn await_forward(kind: Kind, sent: Result<ForwardReceiver, Attempt>) -> Attempt {
    let receiver = match sent {
        Ok(receiver) => receiver,
        Err(attempt) => return attempt,
    };
    let wait = Duration::from_millis(limits::FORWARD_REPLY_WAIT_MS_MAX);
    let outcome = tokio::time::timeout(wait, receiver).await;
    let unknown = |e: EngineError| match kind {
        Kind::Read => Attempt::Retry { hint: None },
        Kind::Write => Attempt::Done(Err(e)),
    };
    match outcome {
        Err(_) => unknown(EngineError::Timeout),
        Ok(Err(_)) | Ok(Ok(Err(Forward::Lost))) => unknown(EngineError::Dropped),
        Ok(Ok(Err(Forward::NotSent))) => Attempt::Retry { hint: None },
        Ok(Ok(Ok(reply))) => forwarded_reply(reply),
    }
}

type AttemptFuture = Pin<Box<dyn Future<Output = Attempt> + Send>>;

/// A waker that does nothing, for the first poll of a request's future.
static NOOP_WAKER: LazyLock<Waker> = LazyLock::new(|| {
    struct Noop;
    impl Wake for Noop {
        fn wake(self: Arc<Self>) {}
    }
    Waker::from(Arc::new(Noop))
});

/// Boxes `future` and polls it once now, so that its synchronous start (pushing a proposal
/// or a read into the replica's queue) happens in the caller's order; the task that awaits
/// it later polls it again with its own waker.
fn started<T: Send + 'static>(
    future: impl Future<Output = T> + Send + 'static,
) -> Pin<Box<dyn Future<Output = T> + Send>> {
    let mut future: Pin<Box<dyn Future<Output = T> + Send>> = Box::pin(future);
    match future.as_mut().poll(&mut Context::from_waker(&NOOP_WAKER)) {
        Poll::Ready(output) => Box::pin(std::future::ready(output)),
        Poll::Pending => future,
    }
}

/// Decodes the primary's answer to `RSL.FORWARD`.
fn forwarded_reply(reply: Reply) -> Attempt {
    match reply {
        Reply::Bulk(bytes) => Attempt::Done(Ok(bytes)),
        Reply::Error(text) if text.starts_with(ERR_NOT_PRIMARY_CODE.as_bytes()) => {
            let hint = text.get(ERR_NOT_PRIMARY_CODE.len() + 1..).and_then(parse_i64);
            Attempt::Retry { hint: hint.and_then(|p| u32::try_from(p).ok()) }
        }
        // The primary's own error (overloaded, a wrong password): the client's answer.
        Reply::Error(text) => Attempt::Done(Ok(Reply::Error(text).to_bytes())),
        other => Attempt::Done(Err(EngineError::Internal(format!(
            "unexpected forwarding reply {}",
            describe(&other)
        )))),
    }
}

/// Why a forwarded request got no reply.
#[derive(Debug)]
enum Forward {
    /// It never left: the connection could not be made. Safe to retry.
    NotSent,
    /// The connection broke after it was sent: it may or may not have been executed.
    Lost,
}

type ForwardReply = oneshot::Sender<Result<Reply, Forward>>;
type ForwardReceiver = oneshot::Receiver<Result<Reply, Forward>>;

struct Call {
    frame: Bytes,
    reply: ForwardReply,
}

/// A few persistent connections to one member's client port; calls go round robin.
struct Pool {
    connections: Vec<mpsc::Sender<Call>>,
    next: AtomicUsize,
}

impl Pool {
    fn start(addr: SocketAddr, password: Option<String>) -> Pool {
        let connections = (0..limits::FORWARD_CONNECTIONS_MAX)
            .map(|_| {
                let (tx, rx) = mpsc::channel(limits::FORWARD_QUEUED_MAX);
                tokio::spawn(run_connection(addr, password.clone(), rx));
                tx
            })
            .collect();
        Pool { connections, next: AtomicUsize::new(0) }
    }

    fn call(&self, frame: Bytes) -> Result<ForwardReceiver, EngineError> {
        let (reply, receiver) = oneshot::channel();
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.connections.len();
        match self.connections[i].try_send(Call { frame, reply }) {
            Ok(()) => Ok(receiver),
            Err(mpsc::error::TrySendError::Full(_)) => Err(EngineError::Overloaded),
            Err(mpsc::error::TrySendError::Closed(_)) => {
                Err(EngineError::Internal("the forwarding connection stopped".into()))
            }
        }
    }
}

/// One forwarding connection: (re)connects when a call comes, then pipelines calls and
/// matches replies to them in order until the connection breaks.
async fn run_connection(
    addr: SocketAddr,
    password: Option<String>,
    mut calls: mpsc::Receiver<Call>,
) {
    while let Some(first) = calls.recv().await {
        let wait = Duration::from_millis(limits::ADMIN_PEER_WAIT_MS_MAX);
        match Client::connect_auth(addr, password.as_deref(), wait).await {
            Ok(client) => {
                let (stream, input) = client.into_parts();
                pipeline(stream, input, first, &mut calls).await;
            }
            Err(e) => {
                tracing::debug!(%addr, error = %e, "cannot reach the primary to forward");
                let _ = first.reply.send(Err(Forward::NotSent));
                while let Ok(call) = calls.try_recv() {
                    let _ = call.reply.send(Err(Forward::NotSent));
                }
            }
        }
    }
}

async fn pipeline(
    mut stream: TcpStream,
    mut input: BytesMut,
    first: Call,
    calls: &mut mpsc::Receiver<Call>,
) {
    let (mut reader, mut writer) = stream.split();
    let mut inflight: VecDeque<ForwardReply> = VecDeque::new();
    let mut output = BytesMut::new();
    output.extend_from_slice(&first.frame);
    inflight.push_back(first.reply);
    loop {
        if !output.is_empty() {
            if writer.write_all(&output).await.is_err() {
                break;
            }
            output.clear();
        }
        let room = inflight.len() < limits::FORWARD_INFLIGHT_MAX;
        tokio::select! {
            call = calls.recv(), if room => {
                let Some(call) = call else { break };
                output.extend_from_slice(&call.frame);
                inflight.push_back(call.reply);
                while inflight.len() < limits::FORWARD_INFLIGHT_MAX {
                    let Ok(call) = calls.try_recv() else { break };
                    output.extend_from_slice(&call.frame);
                    inflight.push_back(call.reply);
                }
            }
            read = reader.read_buf(&mut input) => {
                if !matches!(read, Ok(n) if n > 0) {
                    break;
                }
                if !deliver(&mut input, &mut inflight) {
                    break;
                }
            }
        }
    }
    for reply in inflight {
        let _ = reply.send(Err(Forward::Lost));
    }
}

/// Hands the complete replies in `input` to the calls waiting in order; false if the stream
/// cannot be trusted any more (a malformed reply, or a reply nobody asked for).
fn deliver(input: &mut BytesMut, inflight: &mut VecDeque<ForwardReply>) -> bool {
    loop {
        match parse_reply(input) {
            Ok(Some(reply)) => match inflight.pop_front() {
                Some(waiter) => {
                    let _ = waiter.send(Ok(reply));
                }
                None => return false,
            },
            Ok(None) => return true,
            Err(_) => return false,
        }
    }
}
