//! The replicated engine: every replica's server executes through an [`rsl::Node`].
//!
//! Writes go through [`Node::replicate`] and reads through [`Node::read`] at
//! [`ReadConsistency::Linearizable`], so every answer is linearizable wherever the client is
//! connected (or, with `kv.reads = "local"`, at `AtLeast(0)` on the replica the client is
//! connected to: fast, possibly stale, never forwarded). Any replica accepts any command:
//! when the local replica is not the primary, the request (already encoded by the server) is
//! forwarded to the primary as a call between members over the replicas' own authenticated
//! transport ([`crate::forward`]); no client can forward. Plain reads are the exception: a
//! follower serves them itself at the primary's read index, asked for after they arrived
//! (module `read_index`), and holds its writes behind them. A plain read whose slot this
//! replica has already executed (a primary under its lease, a follower past the read index)
//! is served on the connection's task straight from the machine's keyspace
//! ([`crate::KvReader`], [`Node::read_here`]), without a message to the executor.
//!
//! Retries: a request that found no primary (an election in progress), a deposed one, or a
//! superseded slot (none of which executed it) tries again when the replica's view of the
//! primary changes or after a short pause, for at most [`limits::PRIMARY_WAIT_MS_MAX`]; then
//! the client hears `-TRYAGAIN`. A forwarded request waiting on a primary that this replica
//! learns was deposed is tried again at the new primary if it is a read; a write, which may
//! have been executed, answers that its outcome is unknown ([`crate::forward`]).
//!
//! A refusal by the runtime reaches the client as an error that names its cause and the
//! replica (`-ERR disk full on replica 2: writes refused until space is freed`).
//!
//! Admin commands answered here (module `admin`): `RSL.STATUS [ALL]` (this replica's status,
//! or every member's as each one reports it), `RSL.TRANSFER <id>` and `RSL.CHECKPOINT`.
//! `RSL.STATUS` and INFO's `# Rsl` section are the same `rsl_*` fields
//! ([`crate::admin::status_fields`]).

mod admin;
mod follower;
mod forwarded;
mod read_index;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use bytes::Bytes;
use rsl::{Node, ReadConsistency, ReplicateError, Role, View};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::admin::render_fields;
use crate::config::Reads;
use crate::engine::{Engine, EngineError, EngineReply, Submitted};
use crate::forward::{self, error_bytes, Attempt, Kind};
use crate::hub::Hub;
use crate::limits;
use crate::request::{Request, WriteOp};
use crate::server::Clock;
use follower::Run;
use read_index::Coalescer;

/// What a replicated engine needs besides its replica.
#[derive(Clone)]
pub struct ReplicatedOptions {
    /// Every member's client address, by replica id (this one's included).
    pub clients: BTreeMap<u32, SocketAddr>,
    /// The members' client password, used by admin commands that ask another member.
    pub requirepass: Option<String>,
    /// The clock that stamps tick writes and bounds forwarded stamps.
    pub clock: Clock,
    /// How reads are served.
    pub reads: Reads,
    /// How to reach another member's client port when it speaks TLS (admin commands relayed
    /// to it); the server name is set per member (`replica-<id>.rsl`).
    pub tls: Option<crate::tls::ClientTls>,
    /// The node's machine's keyspace ([`crate::KvMachine::reader`]): plain reads are then
    /// served from it on the connection's task whenever the replica allows
    /// (`Node::read_here`: a primary under its lease, or a follower that has executed the
    /// read index), with no message to the executor. `None`: every read goes through the
    /// node.
    pub reader: Option<crate::KvReader>,
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
    /// The runtime the engine was made in: forwarded requests arrive on the transport's
    /// thread and run here.
    runtime: tokio::runtime::Handle,
    /// The hub of the node's machine.
    hub: Hub,
    /// Linearizable reads served here by read index while another replica is primary, and
    /// this replica's writes held behind them (module `read_index`).
    reads: Arc<Coalescer<Run>>,
    /// Plain reads served on the caller's task from the machine's keyspace
    /// (`rsl_reads_here_total`).
    reads_here: std::sync::atomic::AtomicU64,
    /// The highest commit point this replica reached by learning what a read-index answer
    /// said is chosen (module `follower`, `ask_read_index`).
    known_chosen: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner").field("id", &self.id).finish_non_exhaustive()
    }
}

impl ReplicatedEngine {
    /// An engine over `node`; it serves the requests other members forward here. Call from
    /// within a tokio runtime. Pub/sub and blocking pops need the hub of the node's machine:
    /// see [`ReplicatedEngine::with_hub`].
    pub fn new(node: Arc<Node>, options: ReplicatedOptions) -> ReplicatedEngine {
        ReplicatedEngine::with_hub(node, options, Hub::new())
    }

    /// An engine over `node`, whose machine delivers to `hub` ([`crate::KvMachine::with_hub`]).
    pub fn with_hub(node: Arc<Node>, options: ReplicatedOptions, hub: Hub) -> ReplicatedEngine {
        assert!(options.clients.contains_key(&node.id()), "this replica has a client address");
        let runtime = tokio::runtime::Handle::current();
        let inner = Arc::new_cyclic(|weak: &std::sync::Weak<Inner>| {
            let (asker, handler) = (weak.clone(), weak.clone());
            let ask: read_index::Ask = Box::new(move || match asker.upgrade() {
                Some(inner) => inner.ask_read_index(),
                None => Box::pin(std::future::ready(None)),
            });
            let hand_over: read_index::HandOver<Run> = Box::new(move |index, runs| {
                if let Some(inner) = handler.upgrade() {
                    inner.hand_over(index, runs);
                }
            });
            Inner {
                id: node.id(),
                view: node.watch(),
                node,
                options,
                runtime: runtime.clone(),
                hub,
                reads: Arc::new(Coalescer::new(ask, hand_over, runtime)),
                reads_here: std::sync::atomic::AtomicU64::new(0),
                known_chosen: std::sync::atomic::AtomicU64::new(0),
            }
        });
        // Weak: the node keeps its handler until it shuts down, and the engine keeps the node.
        let weak = Arc::downgrade(&inner);
        inner.node.serve_peer_calls(move |from, call, responder| {
            // Gone with its engine: the dropped responder tells the caller.
            if let Some(inner) = weak.upgrade() {
                inner.forwarded(from, call, responder);
            }
        });
        ReplicatedEngine { inner }
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
    /// (or the call to the primary) in the order the server submits them: a connection's
    /// pipelined commands execute in order, as Redis promises. The rest (waiting for the
    /// outcome, retries if any) runs as the connection awaits the reply, in its task: no
    /// task or channel of its own per command.
    fn submit(&self, kind: Kind, request: Bytes) -> EngineReply {
        let (first, target) = self.inner.start_attempt(kind, request.clone(), None);
        let inner = Arc::clone(&self.inner);
        EngineReply::new(async move { inner.execute(kind, request, first, target).await })
    }

    /// A run of requests of one kind that arrived together, at a primary: handed to the
    /// replica at once before this returns ([`Inner::start_run`]). Each request's reply takes
    /// its own outcome from the batch's; one the replica refused for want of primacy tries
    /// again alone, as [`ReplicatedEngine::submit`]'s do.
    fn submit_run(&self, kind: Kind, requests: Vec<Bytes>) -> Vec<EngineReply> {
        let parts = self.inner.start_run_parts(kind, requests.clone());
        let me = Some(self.inner.id);
        parts
            .into_iter()
            .zip(requests)
            .map(|(part, request)| {
                let inner = Arc::clone(&self.inner);
                // One future per request, which leaves its part only on a refusal (most are
                // answered by the batch: no retry state set up for them).
                EngineReply::new(async move {
                    match inner.part_attempt(kind, part.await) {
                        Attempt::Done(outcome) => outcome,
                        refused => {
                            let first: AttemptFuture = Box::pin(std::future::ready(refused));
                            inner.execute(kind, request, first, me).await
                        }
                    }
                })
            })
            .collect()
    }

    /// Requests that arrived together at a replica that is not the primary (`primary` is
    /// the one it knows): forwarded as batch calls (`crate::forward`), each as large as a
    /// call may be, sent before this returns. Local reads (`kv.reads = "local"`) are served
    /// here. Each request's reply takes its own outcome from its call's answer; one the
    /// primary refused for want of primacy (not executed) tries again alone.
    fn forward_batch(&self, primary: u32, requests: Vec<Submitted>) -> Vec<EngineReply> {
        let local_reads = self.inner.options.reads == Reads::Local;
        let mut replies = Vec::with_capacity(requests.len());
        let mut run: Vec<(Kind, Bytes)> = Vec::new();
        let mut run_bytes = forward::BATCH_HEADER_BYTES;
        let mut reads: Vec<Bytes> = Vec::new();
        for s in requests {
            if !s.logged && local_reads {
                self.flush_forwarded(primary, &mut run, &mut replies);
                run_bytes = forward::BATCH_HEADER_BYTES;
                replies.push(self.read(s.request));
                continue;
            }
            if !s.logged {
                // A plain read: served here by read index, with the reads next to it.
                self.flush_forwarded(primary, &mut run, &mut replies);
                run_bytes = forward::BATCH_HEADER_BYTES;
                reads.push(s.request);
                continue;
            }
            if !reads.is_empty() {
                replies.extend(self.read_by_index(std::mem::take(&mut reads)));
            }
            let size = forward::BATCH_MEMBER_BYTES + s.request.len();
            if run_bytes + size > forward::BATCH_BYTES_MAX {
                self.flush_forwarded(primary, &mut run, &mut replies);
                run_bytes = forward::BATCH_HEADER_BYTES;
            }
            run_bytes += size;
            run.push((Kind::Write, s.request));
        }
        if !reads.is_empty() {
            replies.extend(self.read_by_index(reads));
        }
        self.flush_forwarded(primary, &mut run, &mut replies);
        replies
    }

    /// Sends `run` to `primary` (a single request as a single call, so that one too large to
    /// forward is refused as such) and pushes its replies.
    fn flush_forwarded(
        &self,
        primary: u32,
        run: &mut Vec<(Kind, Bytes)>,
        replies: &mut Vec<EngineReply>,
    ) {
        let members = std::mem::take(run);
        if members.len() < 2 {
            replies.extend(members.into_iter().map(|(kind, request)| self.submit(kind, request)));
            return;
        }
        let kinds: Vec<Kind> = members.iter().map(|(kind, _)| *kind).collect();
        let answers = self.inner.send_batch_call(primary, &members, kinds);
        let parts = crate::engine::split(answers, members.len());
        for (part, (kind, request)) in parts.into_iter().zip(members) {
            let inner = Arc::clone(&self.inner);
            let first: AttemptFuture =
                Box::pin(
                    async move { part.await.unwrap_or(Attempt::Done(Err(EngineError::Dropped))) },
                );
            let target = Some(primary);
            replies.push(EngineReply::new(async move {
                inner.execute(kind, request, first, target).await
            }));
        }
    }

    /// A reply computed by `f` as the connection awaits it.
    fn later<F>(&self, f: impl FnOnce(Arc<Inner>) -> F) -> EngineReply
    where
        F: std::future::Future<Output = Result<Bytes, EngineError>> + Send + 'static,
    {
        EngineReply::new(f(Arc::clone(&self.inner)))
    }
}

impl Engine for ReplicatedEngine {
    fn write(&self, request: Bytes) -> EngineReply {
        self.submit(Kind::Write, request)
    }

    /// Runs of writes, and of linearizable reads, go to a primary's replica at once
    /// (`submit_run`); at a replica that knows another primary, the requests go to it as
    /// batch calls (`forward_batch`); anything else (a single request, no primary known,
    /// local reads) as [`Engine::write`] and [`Engine::read`] do, in order.
    fn batch(&self, requests: Vec<Submitted>) -> Vec<EngineReply> {
        let local_reads = self.inner.options.reads == Reads::Local;
        let seen = *self.inner.view.borrow();
        let primary = seen.role == Some(Role::Primary);
        if requests.len() >= 2 && !primary {
            if let Some(p) = seen.primary.filter(|&p| p != self.inner.id) {
                return self.forward_batch(p, requests);
            }
        }
        if requests.len() < 2 || !primary {
            let one =
                |s: Submitted| if s.logged { self.write(s.request) } else { self.read(s.request) };
            return requests.into_iter().map(one).collect();
        }
        let mut replies = Vec::with_capacity(requests.len());
        let mut requests = requests.into_iter().peekable();
        while let Some(first) = requests.next() {
            if !first.logged && local_reads {
                replies.push(self.read(first.request));
                continue;
            }
            let mut run = vec![first.request];
            while let Some(next) = requests.next_if(|s| s.logged == first.logged) {
                run.push(next.request);
            }
            let kind = if first.logged { Kind::Write } else { Kind::Read };
            if kind == Kind::Read {
                if let Some(answers) = self.inner.read_here(ReadConsistency::Linearizable, &run) {
                    replies.extend(answers.into_iter().map(|a| EngineReply::ready(Ok(a))));
                    continue;
                }
            }
            match run.len() {
                1 => replies.push(self.submit(kind, run.pop().expect("one"))),
                _ => replies.extend(self.submit_run(kind, run)),
            }
        }
        replies
    }

    fn read(&self, request: Bytes) -> EngineReply {
        if self.inner.options.reads == Reads::Local {
            let inner = Arc::clone(&self.inner);
            let read = started(async move { inner.read_local(request).await });
            return EngineReply::new(read);
        }
        if self.reads_by_index() {
            let mut reply = self.read_by_index(vec![request]);
            return reply.pop().expect("one reply");
        }
        let one = std::slice::from_ref(&request);
        if let Some(mut answer) = self.inner.read_here(ReadConsistency::Linearizable, one) {
            return EngineReply::ready(Ok(answer.pop().expect("one answer")));
        }
        self.submit(Kind::Read, request)
    }

    fn is_primary(&self) -> bool {
        self.inner.is_primary()
    }

    fn request_bytes_max(&self) -> usize {
        self.inner.node.request_bytes_max()
    }

    fn hub(&self) -> Option<Hub> {
        Some(self.inner.hub.clone())
    }

    fn command(&self, args: &[Bytes]) -> Option<EngineReply> {
        let name = args[0].to_ascii_lowercase();
        let args: Vec<Bytes> = args.to_vec();
        let reply = match &name[..] {
            b"rsl.status" => self.later(|inner| async move { inner.status_command(&args).await }),
            b"rsl.transfer" => self.later(|inner| async move { inner.transfer(&args).await }),
            b"rsl.checkpoint" => self.later(|inner| async move { Ok(inner.checkpoint(&args)) }),
            b"rsl.members" => self.later(|inner| async move {
                let options = &inner.options;
                let (clients, password) = (&options.clients, options.requirepass.as_deref());
                let reach = crate::client::Reach { password, tls: options.tls.as_ref() };
                Ok(crate::members::command(&inner.node, clients, reach, &args).await.to_bytes())
            }),
            _ => return None,
        };
        Some(reply)
    }

    fn info(&self) -> String {
        format!("# Rsl\r\n{}", render_fields(&self.inner.status_fields()))
    }
}

impl Inner {
    fn is_primary(&self) -> bool {
        self.view.borrow().role == Some(Role::Primary)
    }

    /// Serves plain reads on the caller's task from the machine's keyspace, under one hold
    /// of its lock, if the replica allows it now ([`Node::read_here`] at `consistency`, asked
    /// while the lock is held) and the machine is not executing a request this instant; else
    /// `None`, and they go through the node.
    fn read_here(&self, consistency: ReadConsistency, requests: &[Bytes]) -> Option<Vec<Bytes>> {
        let reader = self.options.reader.as_ref()?;
        let fresh = || self.node.read_here(consistency, requests.len());
        let answers = reader.read_all_if(requests, fresh)?;
        let n = requests.len() as u64;
        self.reads_here.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        Some(answers)
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
        let (mut attempt, mut target) = (first, first_target);
        // The deadline and the view are set up only once the first try did not settle the
        // request (most are settled by it): the wait for a primary counts from its refusal.
        let mut retrying: Option<(Instant, watch::Receiver<View>)> = None;
        loop {
            let mut hint = match attempt.await {
                Attempt::Done(outcome) => return outcome,
                Attempt::Retry { hint } => hint.filter(|&p| Some(p) != target),
                // Alone, to the same replica, at once: a single call is never answered so.
                Attempt::Resend => {
                    (attempt, target) = self.start_attempt(kind, request.clone(), target);
                    continue;
                }
            };
            let (deadline, view) = retrying.get_or_insert_with(|| {
                let deadline = Instant::now() + Duration::from_millis(limits::PRIMARY_WAIT_MS_MAX);
                (deadline, self.node.watch())
            });
            let deadline = *deadline;
            let now = Instant::now();
            if now >= deadline {
                let primary = view.borrow().primary.and_then(|p| self.member_client_addr(p));
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
    /// happen in submission order (the proposal reaching the replica, the call to the
    /// primary being sent) has happened when this returns.
    fn start_attempt(
        self: &Arc<Self>,
        kind: Kind,
        request: Bytes,
        hint: Option<u32>,
    ) -> (AttemptFuture, Option<u32>) {
        let seen = *self.view.borrow();
        let known = if seen.role == Some(Role::Primary) { Some(self.id) } else { seen.primary };
        let target = hint.or(known);
        let inner = Arc::clone(self);
        let start = move || -> AttemptFuture {
            match target {
                Some(p) if p == inner.id => {
                    let me = Arc::clone(&inner);
                    started(async move { me.local(kind, request).await })
                }
                Some(p) => inner.send_forward(p, kind, &request),
                None => Box::pin(std::future::ready(Attempt::Retry { hint: None })),
            }
        };
        let attempt = match kind {
            // Behind the reads this replica serves by read index that arrived before it.
            Kind::Write => self.write_in_order(start, || Attempt::Done(Err(EngineError::Dropped))),
            Kind::Read => start(),
        };
        (attempt, target)
    }

    /// Hands a run of requests of one kind to the local replica at once, before this
    /// returns (`Node::replicate_batch`: one message to the consensus thread;
    /// `Node::read_batch`: under the lease one check, one executor message, one reply): one
    /// first try per request, in order, each taking its own outcome from the batch's.
    fn start_run(self: &Arc<Self>, kind: Kind, requests: Vec<Bytes>) -> Vec<AttemptFuture> {
        self.start_run_parts(kind, requests)
            .into_iter()
            .map(|part| {
                let inner = Arc::clone(self);
                Box::pin(async move { inner.part_attempt(kind, part.await) }) as AttemptFuture
            })
            .collect()
    }

    /// [`Inner::start_run`]'s batch, handed to the replica before this returns, and each
    /// request's part of its outcome (`None`: the batch was dropped).
    fn start_run_parts(
        &self,
        kind: Kind,
        requests: Vec<Bytes>,
    ) -> Vec<crate::engine::SplitPart<Result<Bytes, ReplicateError>>> {
        let n = requests.len();
        let node = Arc::clone(&self.node);
        let start = move || {
            started(async move {
                match kind {
                    Kind::Write => node.replicate_batch(requests).await,
                    Kind::Read => node.read_batch(requests, ReadConsistency::Linearizable).await,
                }
            })
        };
        let batch = match kind {
            // Behind runs served by read index that came first (it followed until just now).
            Kind::Write => self.write_in_order(start, move || {
                (0..n).map(|_| Err(ReplicateError::ShuttingDown)).collect()
            }),
            Kind::Read => start(),
        };
        crate::engine::split(batch, n)
    }

    /// What a request's part of a run's outcome means for it: done, or refused (then
    /// [`Inner::refused`] says whether and where to try again).
    fn part_attempt(&self, kind: Kind, part: Option<Result<Bytes, ReplicateError>>) -> Attempt {
        match part {
            Some(Ok(reply)) => Attempt::Done(Ok(reply)),
            Some(Err(e)) => self.refused(kind, e),
            None => Attempt::Done(Err(EngineError::Dropped)),
        }
    }

    /// A read from this replica's own state, whatever its role (`kv.reads = "local"`).
    async fn read_local(&self, request: Bytes) -> Result<Bytes, EngineError> {
        match self.node.read(request, ReadConsistency::AtLeast(0)).await {
            Ok(reply) => Ok(reply),
            Err(e) => match self.refused(Kind::Read, e) {
                Attempt::Done(outcome) => outcome,
                // Not expected of a local read; the client may try again.
                Attempt::Retry { .. } | Attempt::Resend => {
                    Ok(error_bytes("TRYAGAIN the read was refused"))
                }
            },
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
            Err(e) => self.refused(kind, e),
        }
    }

    /// What a refusal by this replica's runtime means for the request: a retry when it was
    /// not executed for want of primacy, else the client's answer, naming the cause.
    fn refused(&self, kind: Kind, error: ReplicateError) -> Attempt {
        match error {
            // Neither was executed: safe to try again.
            ReplicateError::NotPrimary { primary, .. }
            | ReplicateError::Superseded { primary, .. } => Attempt::Retry { hint: primary },
            ReplicateError::Overloaded => Attempt::Done(Err(EngineError::Overloaded)),
            // Too large for the engine's request_bytes_max: the client's error names it.
            ReplicateError::TooLarge { size, max } => {
                Attempt::Done(Err(EngineError::TooLarge { size, max }))
            }
            other => Attempt::Done(Ok(error_bytes(refusal_text(self.id, kind, &other)))),
        }
    }

    /// Hands the request to the primary as a call between members; it is sent (or refused)
    /// before this returns, so requests keep their order.
    fn send_forward(&self, primary: u32, kind: Kind, request: &Bytes) -> AttemptFuture {
        if request.len() > limits::FORWARD_BYTES_MAX {
            let text = format!(
                "ERR request of {} bytes is too large to forward (at most {}); send it to the \
                 primary",
                request.len(),
                limits::FORWARD_BYTES_MAX
            );
            return Box::pin(std::future::ready(Attempt::Done(Ok(error_bytes(text)))));
        }
        let wait = self.node.call_timeout();
        let call = self.node.call_peer(primary, forward::encode_call(kind, request), wait);
        Box::pin(forward::await_answer(kind, primary, call, self.node.watch()))
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

/// The client's error for a refusal by replica `id`'s runtime, naming its cause and whether
/// a write may have been applied.
fn refusal_text(id: u32, kind: Kind, error: &ReplicateError) -> String {
    match error {
        ReplicateError::DiskFull { .. } => {
            format!("ERR disk full on replica {id}: writes refused until space is freed")
        }
        ReplicateError::Timeout { after } => match kind {
            Kind::Read => {
                format!("TRYAGAIN replica {id} timed out after {after:?}; the read had no effect")
            }
            Kind::Write => format!(
                "ERR outcome unknown: replica {id} timed out after {after:?}; the write may or \
                 may not have been applied"
            ),
        },
        ReplicateError::Stopped { reason } => {
            format!("ERR replica {id} has stopped and serves nothing more: {reason}")
        }
        ReplicateError::ShuttingDown => format!("ERR replica {id} is shutting down"),
        ReplicateError::OutcomeUnknown => format!(
            "ERR outcome unknown: replica {id} caught up from a checkpoint past the write; it \
             may or may not have been applied"
        ),
        // Refusals added later (a request too large, ...) are told apart by their text.
        other => refusal_text_of(id, kind, &other.to_string()),
    }
}

/// The client's error for a refusal known only by its text.
fn refusal_text_of(id: u32, kind: Kind, text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    if lower.contains("disk full") || lower.contains("no space") {
        format!("ERR disk full on replica {id}: writes refused until space is freed")
    } else if lower.contains("too large") || lower.contains("exceeds the maximum") {
        format!("ERR request refused by replica {id}: {text}")
    } else if lower.contains("timed out") || lower.contains("timeout") {
        match kind {
            Kind::Read => format!("TRYAGAIN replica {id} timed out; the read had no effect"),
            Kind::Write => format!(
                "ERR outcome unknown: replica {id} timed out; the write may or may not have \
                 been applied"
            ),
        }
    } else if lower.contains("outcome unknown") {
        format!(
            "ERR outcome unknown: replica {id} caught up from a checkpoint past the write; it \
             may or may not have been applied"
        )
    } else if lower.contains("stopped") {
        format!("ERR replica {id} has stopped and serves nothing more: {text}")
    } else if lower.contains("shutting down") {
        format!("ERR replica {id} is shutting down")
    } else {
        format!("ERR replica {id} refused the request: {text}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_name_their_cause_and_the_replica() {
        let text = |kind, e: ReplicateError| refusal_text(2, kind, &e);
        assert_eq!(
            text(Kind::Write, ReplicateError::ShuttingDown),
            "ERR replica 2 is shutting down"
        );
        let full = ReplicateError::DiskFull { reason: "no space left on device".into() };
        assert_eq!(
            text(Kind::Write, full),
            "ERR disk full on replica 2: writes refused until space is freed"
        );
        let after = Duration::from_secs(5);
        let write = text(Kind::Write, ReplicateError::Timeout { after });
        assert!(write.starts_with("ERR outcome unknown: replica 2 timed out after 5s"), "{write}");
        let read = text(Kind::Read, ReplicateError::Timeout { after });
        assert!(read.starts_with("TRYAGAIN replica 2 timed out after 5s"), "{read}");
        let stopped = ReplicateError::Stopped { reason: "state machine panicked: boom".into() };
        assert_eq!(
            text(Kind::Read, stopped),
            "ERR replica 2 has stopped and serves nothing more: state machine panicked: boom"
        );
        let unknown = text(Kind::Write, ReplicateError::OutcomeUnknown);
        assert!(unknown.starts_with("ERR outcome unknown: replica 2 "), "{unknown}");
        // The texts of the refusals the runtime adds (issue 8): each client error names its
        // cause, and a write's unknown outcome is never a TRYAGAIN.
        let of = |kind, text| refusal_text_of(3, kind, text);
        assert_eq!(
            of(Kind::Write, "disk full, writes refused: no space left on device (os error 28)"),
            "ERR disk full on replica 3: writes refused until space is freed"
        );
        let large = of(Kind::Write, "request of 17 bytes exceeds the maximum of 16 bytes (x)");
        assert_eq!(
            large,
            "ERR request refused by replica 3: request of 17 bytes exceeds the maximum of 16 \
             bytes (x)"
        );
        let timeout = "timed out after 5s: a write may still execute";
        assert!(of(Kind::Write, timeout).starts_with("ERR outcome unknown: replica 3 timed out"));
        assert!(of(Kind::Read, timeout).starts_with("TRYAGAIN replica 3 timed out"));
        let stopped = of(Kind::Read, "replica stopped: state machine panicked");
        assert!(stopped.starts_with("ERR replica 3 has stopped") && stopped.contains("panicked"));
        assert_eq!(
            of(Kind::Write, "something new"),
            "ERR replica 3 refused the request: something new"
        );
    }
}
