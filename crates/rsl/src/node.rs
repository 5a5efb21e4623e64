//! A running replica: the public handle ([`Node`]) and the three threads behind it.
//!
//! - The **consensus thread** owns the core through the driver the simulator also runs
//!   (`rsl_core::Driver`, which keeps the waiting callers). It takes events (client
//!   proposals and reads, peer messages, durability reports, ticks) from one channel, steps
//!   the core, and routes the actions: sends to the wire, writes to the I/O thread, executes
//!   and reads to the executor thread, refusals straight to the waiting callers. It never
//!   blocks on disk, network, the state machine or a status reader.
//! - The **I/O thread** applies writes in order and makes each batch durable with one sync
//!   (group commit), then reports `Durable { seq }`.
//! - The **executor thread** owns the application's state machine: it executes chosen slots
//!   in order, answers the proposers, serves reads once the core says they are fresh, and
//!   takes checkpoints (the snapshot is cheap; it is written out on yet another thread).
//!
//! Every `replicate` call ends in exactly one outcome: the consensus thread keeps the
//! caller's reply channel until the core either executes the request (the reply moves with
//! the value to the executor) or refuses it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use crossbeam_channel::{Receiver, Sender, TrySendError};
use rsl_core::{
    Driver, Host, Input, Message, ReadMode, Recovered, Refusal, ReplicaId, Slot, Value, Write,
};
use tokio::sync::oneshot;

use crate::disk::Disk;
use crate::error::ReplicateError;
use crate::state_machine::{Notification, StateMachine};
use crate::status::{Counters, Status};
use crate::wire::Wire;

/// The reply channel of one `replicate` or `read` call.
pub(crate) type Reply = oneshot::Sender<Result<Bytes, ReplicateError>>;

/// A proposal's reply channel and when it was proposed (for the commit latency histogram).
pub(crate) struct Waiter {
    reply: Reply,
    since: Instant,
}

/// Events queued for `events_queued_max` before new proposals are refused as overloaded.
pub const EVENTS_QUEUED_MAX: usize = 1 << 16;
/// Ticks delivered at once after a stall; more than any lease or election timeout.
pub const TICKS_CATCH_UP_MAX: u32 = 1_000;
/// Events the consensus thread handles before it flushes actions (bounds batching latency).
pub const EVENTS_PER_TURN_MAX: usize = 4096;

/// What the consensus thread is told.
pub(crate) enum Event {
    Propose {
        payload: Bytes,
        exclusive: bool,
        reply: Reply,
    },
    Read {
        request: Bytes,
        mode: ReadMode,
        reply: Reply,
    },
    Receive {
        from: u32,
        payload: Bytes,
    },
    Durable {
        seq: u64,
    },
    Core(Input),
    /// Take a checkpoint now (admin request).
    CheckpointNow,
    /// A checkpoint received from a peer, verified, ready to load.
    Install(crate::transfer::Install),
    Stop,
}

/// What the I/O thread is told, in order.
pub(crate) enum IoJob {
    /// Apply and make durable; then report the highest seq.
    Writes(Vec<(u64, Write)>),
    /// Read log entries back for a lagging peer; answer with `Input::LogLoaded`.
    Load { token: u64, from: Slot, to: Slot },
}

/// What the executor thread is told, in order.
enum Exec {
    Execute { slot: Slot, value: Value, replies: Vec<Option<Waiter>> },
    Read { request: Bytes, reply: Reply },
    Checkpoint,
    Install(crate::transfer::Install),
    Notify(Notification),
    Stop,
}

/// Where a replica's parts are shared between threads.
pub(crate) struct Shared {
    pub(crate) status: Mutex<Status>,
    /// Role, primary and ballot, published on every change so callers can await them.
    pub(crate) view: tokio::sync::watch::Sender<View>,
    pub(crate) counters: Counters,
    pub(crate) histograms: crate::metrics::Histograms,
    /// More metrics text (the transport's counters), rendered on each scrape.
    pub(crate) extra_metrics: Mutex<Option<Box<dyn Fn() -> String + Send + Sync>>>,
    pub(crate) stopped: AtomicBool,
    pub(crate) executed: AtomicU64,
}

impl Shared {
    pub(crate) fn status(&self) -> Status {
        let mut status = self.status.lock().expect("status lock").clone();
        status.executed = self.executed.load(Ordering::Acquire);
        // The full status is published once per tick; what is executed is chosen, so the
        // commit point is at least the live executed slot.
        status.committed = status.committed.max(status.executed);
        status.counters = self.counters.snapshot();
        status
    }

    pub(crate) fn is_running(&self) -> bool {
        !self.stopped.load(Ordering::Acquire)
    }
}

/// A running replica. Cheap to share behind an `Arc`; all methods take `&self`.
pub struct Node {
    id: u32,
    events: Sender<Event>,
    shared: Arc<Shared>,
    /// Calls to and from other members (`peer_call.rs`).
    peer_calls: Arc<crate::peer_call::PeerCalls>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// Run once at shutdown, after the threads stopped (transport, runtime).
    on_shutdown: Mutex<Vec<Box<dyn FnOnce() + Send>>>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node").field("id", &self.id).finish_non_exhaustive()
    }
}

/// Everything a node needs to start, already opened.
pub(crate) struct Parts<M: StateMachine, D: Disk, W: Wire> {
    pub(crate) core: rsl_core::Config,
    pub(crate) tick: Duration,
    pub(crate) machine: M,
    pub(crate) disk: D,
    pub(crate) wire: W,
    pub(crate) recovered: Recovered,
    pub(crate) events: (Sender<Event>, Receiver<Event>),
    pub(crate) checkpointer: Option<Box<dyn crate::checkpoint::Checkpointer>>,
    /// Where checkpoints live, for sending them to lagging peers (none: no transfers).
    pub(crate) checkpoints: Option<crate::transfer::Checkpoints>,
}

impl Node {
    pub(crate) fn spawn<M: StateMachine, D: Disk, W: Wire>(parts: Parts<M, D, W>) -> Node {
        let id = parts.core.id.0;
        let shared = Arc::new(Shared {
            status: Mutex::new(Status::starting(id)),
            view: tokio::sync::watch::Sender::new(View::default()),
            counters: Counters::default(),
            histograms: crate::metrics::Histograms::default(),
            extra_metrics: Mutex::new(None),
            stopped: AtomicBool::new(false),
            executed: AtomicU64::new(parts.recovered.checkpoint.0),
        });
        let (events_tx, events_rx) = parts.events;
        let (io_tx, io_rx) = crossbeam_channel::unbounded::<IoJob>();
        let (exec_tx, exec_rx) = crossbeam_channel::unbounded::<Exec>();

        let mut threads = Vec::new();
        let disk = parts.disk;
        let durable = events_tx.clone();
        let io_shared = shared.clone();
        threads.push(spawn_named(format!("rsl-io-{id}"), move || {
            io_loop(disk, io_rx, durable, io_shared)
        }));

        let machine = parts.machine;
        let exec_shared = shared.clone();
        let exec_events = events_tx.clone();
        let checkpointer = parts.checkpointer;
        threads.push(spawn_named(format!("rsl-exec-{id}"), move || {
            exec_loop(machine, exec_rx, exec_shared, exec_events, checkpointer)
        }));

        let peer_calls =
            crate::peer_call::PeerCalls::new(id, parts.wire.peer_link(), shared.clone());
        let transfer = parts.checkpoints.map(|store| {
            let (tx, rx) = crossbeam_channel::unbounded();
            let t = crate::transfer::Transfer::new(
                store,
                parts.wire.side_sender(),
                shared.clone(),
                events_tx.clone(),
            );
            threads.push(spawn_named(format!("rsl-transfer-{id}"), move || t.run(rx)));
            tx
        });
        let mut driver = Driver::new(parts.core, parts.recovered, incarnation());
        // The per-step invariant walk and the refused-id set are for tests and the simulator.
        driver.set_checking(false);
        // What the core recovered is the status until the first tick publishes more.
        shared.status.lock().expect("status lock").update(&driver.status());
        shared.view.send_replace(View::of(&driver.status()));
        let router = Router {
            wire: parts.wire,
            transfer,
            io: io_tx,
            exec: exec_tx,
            shared: shared.clone(),
            writes: Vec::new(),
        };
        let consensus = Consensus { driver, router, tick: parts.tick };
        threads.push(spawn_named(format!("rsl-consensus-{id}"), move || consensus.run(events_rx)));
        Node {
            id,
            events: events_tx,
            shared,
            peer_calls,
            threads: Mutex::new(threads),
            on_shutdown: Mutex::new(Vec::new()),
        }
    }

    /// This replica's id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// False once the replica has shut down (or stopped on a storage failure).
    pub fn is_running(&self) -> bool {
        !self.shared.stopped.load(Ordering::Acquire)
    }

    /// Replicates `request`: resolves to the state machine's response once it is executed
    /// here, or to an error saying why not. Requests are batched into slots.
    pub async fn replicate(&self, request: Bytes) -> Result<Bytes, ReplicateError> {
        self.submit(request, false).await
    }

    /// Like [`Node::replicate`], but the request is alone in its slot.
    pub async fn replicate_exclusive(&self, request: Bytes) -> Result<Bytes, ReplicateError> {
        self.submit(request, true).await
    }

    async fn submit(&self, payload: Bytes, exclusive: bool) -> Result<Bytes, ReplicateError> {
        let (reply, rx) = oneshot::channel();
        self.push(Event::Propose { payload, exclusive, reply })?;
        rx.await.unwrap_or(Err(ReplicateError::ShuttingDown))
    }

    /// A read-only request against the local state, at the chosen consistency.
    pub async fn read(
        &self,
        request: Bytes,
        consistency: ReadConsistency,
    ) -> Result<Bytes, ReplicateError> {
        let mode = match consistency {
            ReadConsistency::Linearizable => ReadMode::Linearizable,
            ReadConsistency::AtLeast(slot) => ReadMode::AtLeast(Slot(slot)),
        };
        let (reply, rx) = oneshot::channel();
        self.push(Event::Read { request, mode, reply })?;
        rx.await.unwrap_or(Err(ReplicateError::ShuttingDown))
    }

    fn push(&self, event: Event) -> Result<(), ReplicateError> {
        if self.shared.stopped.load(Ordering::Acquire) {
            return Err(ReplicateError::ShuttingDown);
        }
        match self.events.try_send(event) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => {
                self.shared.counters.overloaded.fetch_add(1, Ordering::Relaxed);
                Err(ReplicateError::Overloaded)
            }
            Err(TrySendError::Disconnected(_)) => Err(ReplicateError::ShuttingDown),
        }
    }

    fn control(&self, input: Input) {
        let _ = self.events.send(Event::Core(input));
    }

    /// Asks the primary to hand primacy to `to` (any suitable replica if `None`).
    pub fn transfer_primacy(&self, to: Option<u32>) {
        self.control(Input::TransferPrimacy { to: to.map(ReplicaId) });
    }

    /// Gives up primacy (same as a transfer to whichever replica is best placed).
    pub fn relinquish_primacy(&self) {
        self.transfer_primacy(None);
    }

    /// Keeps this replica out of elections (or lets it back in).
    pub fn set_can_become_primary(&self, allowed: bool) {
        self.control(Input::SetCanBecomePrimary(allowed));
    }

    /// Takes a checkpoint of the state after the last executed slot now (it is written on a
    /// background thread; the log behind it is truncated once it is durable).
    pub fn checkpoint_now(&self) {
        let _ = self.events.send(Event::CheckpointNow);
    }

    /// Proposes a new set of voters (at most one change in flight).
    pub fn change_membership(&self, voters: Vec<u32>) {
        self.control(Input::ChangeMembership(rsl_core::Membership::new(voters)));
    }

    /// Role, primary and ballot, updated on every change: `changed().await` to wait for one.
    pub fn watch(&self) -> tokio::sync::watch::Receiver<View> {
        self.shared.view.subscribe()
    }

    /// A consistent view of the replica: role, primary, ballot, slots, counters.
    pub fn status(&self) -> Status {
        self.shared.status()
    }

    /// What the metrics endpoint reads (it outlives no replica: it stops with it).
    pub(crate) fn metrics_source(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    /// Latency histograms (commit, sync), for metrics.
    pub fn histograms(&self) -> &crate::metrics::Histograms {
        &self.shared.histograms
    }

    /// Stops the replica: pending calls end with `ShuttingDown`, the threads exit.
    pub fn shutdown(&self) {
        if self.shared.stopped.swap(true, Ordering::AcqRel) {
            return;
        }
        let _ = self.events.send(Event::Stop);
        self.peer_calls.stop();
        let threads: Vec<_> = self.threads.lock().expect("threads lock").drain(..).collect();
        for t in threads {
            let _ = t.join();
        }
        let hooks: Vec<_> = self.on_shutdown.lock().expect("hooks lock").drain(..).collect();
        for hook in hooks {
            hook();
        }
    }

    /// Runs `hook` at shutdown, after the replica's threads have stopped.
    pub(crate) fn at_shutdown(&self, hook: Box<dyn FnOnce() + Send>) {
        self.on_shutdown.lock().expect("hooks lock").push(hook);
    }

    /// The sender of the consensus thread's events (for the transport and checkpointer).
    pub(crate) fn events(&self) -> Sender<Event> {
        self.events.clone()
    }

    /// Where the wires deliver this replica's incoming payloads.
    pub(crate) fn inbox(&self) -> crate::peer_call::Inbox {
        crate::peer_call::Inbox { events: self.events(), calls: self.peer_calls.clone() }
    }

    /// This replica's calls to and from other members.
    pub(crate) fn peer_calls(&self) -> &Arc<crate::peer_call::PeerCalls> {
        &self.peer_calls
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The part of a replica's state that callers wait on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct View {
    pub role: Option<crate::status::Role>,
    pub primary: Option<u32>,
    pub ballot_round: u64,
    /// Rebuilding after a disk loss (see `Status::rebuilding`).
    pub rebuilding: bool,
}

impl View {
    fn of(core: &rsl_core::Status) -> View {
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

/// How fresh a read must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadConsistency {
    /// Linearizable: served by the primary under its lease, or after a quorum round.
    Linearizable,
    /// RSL's fast read: any replica, once it has executed at least this slot.
    AtLeast(u64),
}

fn spawn_named(name: String, f: impl FnOnce() + Send + 'static) -> JoinHandle<()> {
    std::thread::Builder::new().name(name).spawn(f).expect("spawn thread")
}

/// A number that differs between two lives of this process, so request ids never repeat.
fn incarnation() -> u64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    now.map(|d| d.as_nanos() as u64).unwrap_or(0) ^ u64::from(std::process::id())
}

/// The consensus thread's state: the shared driver (`rsl_core::Driver`, the same code the
/// simulator runs) and the router that carries out its actions on this process's threads.
struct Consensus<W: Wire> {
    driver: Driver<Waiter>,
    router: Router<W>,
    tick: Duration,
}

/// The consensus thread's [`Host`]: sends go to the wire, writes to the I/O thread (handed
/// over once per turn), executions and reads to the executor thread, refusals straight to
/// the waiting caller.
struct Router<W: Wire> {
    wire: W,
    transfer: Option<Sender<crate::transfer::Job>>,
    io: Sender<IoJob>,
    exec: Sender<Exec>,
    shared: Arc<Shared>,
    writes: Vec<(u64, Write)>,
}

impl<W: Wire> Consensus<W> {
    fn run(mut self, events: Receiver<Event>) {
        let mut next_tick = Instant::now() + self.tick;
        loop {
            let first = match events.recv_deadline(next_tick) {
                Ok(e) => Some(e),
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => None,
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return,
            };
            // Time first: after a stall (the process paused, the machine overloaded) the
            // ticks that passed must age the lease and the timers before any event that
            // arrived meanwhile is handled, or a paused primary would serve a lease read it
            // no longer holds.
            self.catch_up_ticks(&mut next_tick);
            let mut stop = false;
            if let Some(e) = first {
                stop |= self.handle(e);
                for e in events.try_iter().take(EVENTS_PER_TURN_MAX) {
                    stop |= self.handle(e);
                }
            }
            self.flush();
            if stop {
                self.stop();
                return;
            }
        }
    }

    /// Steps the core once per tick that has passed, up to `TICKS_CATCH_UP_MAX` (beyond that
    /// every lease and timeout has expired anyway).
    fn catch_up_ticks(&mut self, next_tick: &mut Instant) {
        let now = Instant::now();
        let mut ticks = 0;
        while *next_tick <= now && ticks < TICKS_CATCH_UP_MAX {
            self.step(Input::Tick);
            *next_tick += self.tick;
            ticks += 1;
        }
        if *next_tick <= now {
            *next_tick = now + self.tick;
        }
        if ticks > 0 {
            self.publish_status();
        }
    }

    /// Handles one event; returns true on stop.
    fn handle(&mut self, event: Event) -> bool {
        match event {
            Event::Propose { payload, exclusive, reply } => {
                self.router.shared.counters.proposals.fetch_add(1, Ordering::Relaxed);
                let waiter = Waiter { reply, since: Instant::now() };
                self.driver.propose(payload, exclusive, waiter, &mut self.router);
            }
            Event::Read { request, mode, reply } => {
                let waiter = Waiter { reply, since: Instant::now() };
                self.driver.read(request, mode, waiter, &mut self.router);
            }
            Event::Receive { from, payload } => self.receive(from, payload),
            Event::Durable { seq } => self.step(Input::Durable { seq }),
            Event::Core(input) => self.step(input),
            Event::CheckpointNow => {
                let _ = self.router.exec.send(Exec::Checkpoint);
            }
            Event::Install(install) => {
                let _ = self.router.exec.send(Exec::Install(install));
            }
            Event::Stop => return true,
        }
        false
    }

    fn receive(&mut self, from: u32, payload: Bytes) {
        let counters = &self.router.shared.counters;
        counters.bytes_received.fetch_add(payload.len() as u64, Ordering::Relaxed);
        if payload.first() == Some(&crate::transfer::TRANSFER_TAG) {
            if let Some(t) = &self.router.transfer {
                let _ = t.send(crate::transfer::Job::Frame { from, payload });
            }
            return;
        }
        match Message::decode(&payload) {
            // The transport authenticated `from`; a message claiming another sender is hostile.
            Ok(msg) if msg.from.0 == from => self.step(Input::Receive(msg)),
            Ok(_) | Err(_) => {
                counters.rejected_messages.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    from,
                    "rejected a message that does not decode or lies about its sender"
                );
            }
        }
    }

    fn step(&mut self, input: Input) {
        self.driver.step(input, &mut self.router);
    }

    /// Hands the turn's writes to the I/O thread and publishes the status.
    fn flush(&mut self) {
        self.router.flush_writes();
        self.router.wire.flush();
        let core = self.driver.status();
        let view = View::of(&core);
        if self.router.shared.view.send_if_modified(|v| std::mem::replace(v, view) != view) {
            self.publish_status();
        }
    }

    /// Publishes the full status (every tick, and on role changes). Never waits for a reader.
    fn publish_status(&mut self) {
        let core = self.driver.status();
        if let Ok(mut status) = self.router.shared.status.try_lock() {
            status.update(&core);
            let tick_ms = self.tick.as_millis() as u64;
            status.update_peers(&core, tick_ms, |p| self.router.wire.connected(p));
        }
    }

    fn stop(&mut self) {
        let router = &mut self.router;
        router.shared.stopped.store(true, Ordering::Release);
        for waiter in self.driver.drain_callers() {
            let _ = waiter.reply.send(Err(ReplicateError::ShuttingDown));
        }
        let _ = router.exec.send(Exec::Notify(Notification::ShuttingDown));
        let _ = router.exec.send(Exec::Stop);
        // Dropping the sender lets the I/O thread drain what it has and exit.
        router.io = crossbeam_channel::bounded(0).0;
    }
}

impl<W: Wire> Router<W> {
    fn flush_writes(&mut self) {
        if !self.writes.is_empty() {
            let writes = std::mem::take(&mut self.writes);
            let _ = self.io.send(IoJob::Writes(writes));
        }
    }
}

impl<W: Wire> Host<Waiter> for Router<W> {
    fn send(&mut self, to: ReplicaId, msg: Message) {
        let bytes = Bytes::from(msg.encode());
        self.shared.counters.bytes_sent.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        self.wire.send(to.0, bytes);
    }

    fn persist(&mut self, seq: u64, write: Write) {
        self.writes.push((seq, write));
    }

    fn load_log(&mut self, token: u64, from: Slot, to: Slot) {
        // Reads go through the I/O thread, after the writes queued before them.
        self.flush_writes();
        let _ = self.io.send(IoJob::Load { token, from, to });
    }

    fn execute(&mut self, slot: Slot, value: Value, callers: Vec<Option<Waiter>>) {
        self.shared.counters.slots_committed.fetch_add(1, Ordering::Relaxed);
        let _ = self.exec.send(Exec::Execute { slot, value, replies: callers });
    }

    fn read(&mut self, caller: Waiter, query: Bytes) {
        let _ = self.exec.send(Exec::Read { request: query, reply: caller.reply });
    }

    fn refused(&mut self, caller: Waiter, reason: Refusal) {
        let _ = caller.reply.send(Err(reason.into()));
    }

    fn notify(&mut self, event: rsl_core::Event) {
        if let Some(n) = notification(event) {
            let _ = self.exec.send(Exec::Notify(n));
        }
    }

    fn send_checkpoint(&mut self, to: ReplicaId) {
        match &self.transfer {
            Some(t) => {
                let _ = t.send(crate::transfer::Job::Offer { to: to.0 });
            }
            None => tracing::warn!(to = to.0, "a peer needs a checkpoint; none kept here"),
        }
    }

    fn take_checkpoint(&mut self) {
        let _ = self.exec.send(Exec::Checkpoint);
    }

    fn contract_broken(&mut self, what: String) {
        // Every such report is a bug in the core; the simulator fails on it. Here the caller
        // concerned has already been answered (or never was), so log it loudly and go on.
        tracing::error!(what, "the consensus core broke its boundary contract");
    }
}

fn notification(event: rsl_core::Event) -> Option<Notification> {
    use rsl_core::Event as E;
    Some(match event {
        E::BecamePrimary { ballot } => Notification::BecamePrimary { ballot_round: ballot.round },
        E::PrimaryRecovered => Notification::PrimaryRecovered,
        E::LostPrimacy { primary } => Notification::LostPrimacy { primary: primary.map(|p| p.0) },
        E::ConfigurationChanged { slot, membership } => Notification::ConfigurationChanged {
            slot: slot.0,
            members: membership.voters.iter().map(|v| v.0).collect(),
        },
    })
}

/// The I/O thread: applies each batch of writes, syncs once, reports the highest seq.
/// Every batch queued while the previous sync ran joins the next one (group commit).
fn io_loop<D: Disk>(
    mut disk: D,
    jobs: Receiver<IoJob>,
    events: Sender<Event>,
    shared: Arc<Shared>,
) {
    let mut batch: Vec<Write> = Vec::new();
    let mut seq = 0;
    let mut loads = Vec::new();
    while let Ok(first) = jobs.recv() {
        for job in std::iter::once(first).chain(jobs.try_iter()) {
            match job {
                IoJob::Writes(writes) => {
                    for (s, w) in writes {
                        assert!(s > seq, "writes out of seq order: {s} after {seq}");
                        seq = s;
                        batch.push(w);
                    }
                }
                IoJob::Load { token, from, to } => loads.push((token, from, to)),
            }
        }
        if !batch.is_empty() {
            let started = Instant::now();
            let result = disk.persist(&batch);
            shared.histograms.sync.record_micros(started.elapsed().as_micros() as u64);
            shared.counters.syncs.fetch_add(1, Ordering::Relaxed);
            if let Err(e) = result {
                // A replica that cannot persist must not vote: stop it rather than lie.
                tracing::error!(error = %e, "storage failed; stopping this replica");
                let _ = events.send(Event::Stop);
                return;
            }
            batch.clear();
            if events.send(Event::Durable { seq }).is_err() {
                return;
            }
        }
        for (token, from, to) in loads.drain(..) {
            let entries = disk.load_log(from, to).unwrap_or_else(|e| {
                tracing::warn!(error = %e, "could not read the log back for a peer");
                Vec::new()
            });
            let _ = events.send(Event::Core(Input::LogLoaded { token, entries }));
        }
    }
}

/// The executor thread: the only place the state machine is touched.
fn exec_loop<M: StateMachine>(
    mut machine: M,
    items: Receiver<Exec>,
    shared: Arc<Shared>,
    events: Sender<Event>,
    mut checkpointer: Option<Box<dyn crate::checkpoint::Checkpointer>>,
) {
    let mut last = shared.executed.load(Ordering::Acquire);
    while let Ok(item) = items.recv() {
        match item {
            Exec::Execute { slot, .. } if slot.0 <= last => {
                // Covered by a checkpoint installed from a peer meanwhile.
            }
            Exec::Execute { slot, value, replies } => {
                assert!(slot.0 == last + 1, "executed slot {} after {}", slot.0, last);
                // Published before the replies go out: a caller that has its answer and then
                // reads `status().executed` must see at least its own slot.
                last = slot.0;
                shared.executed.store(last, Ordering::Release);
                execute_slot(&mut machine, slot, value, replies, &shared.histograms);
            }
            Exec::Read { request, reply } => {
                let _ = reply.send(Ok(machine.read(&request)));
            }
            Exec::Checkpoint => {
                if let Some(c) = checkpointer.as_mut() {
                    c.start(Slot(last), machine.snapshot(), events.clone());
                }
            }
            Exec::Install(install) => {
                if install_checkpoint(&mut machine, install, &mut last, &events) {
                    shared.executed.store(last, Ordering::Release);
                }
            }
            Exec::Notify(n) => machine.notify(n),
            Exec::Stop => return,
        }
    }
}

/// Loads a checkpoint received from a peer, unless execution already passed it.
fn install_checkpoint<M: StateMachine>(
    machine: &mut M,
    mut install: crate::transfer::Install,
    last: &mut u64,
    events: &Sender<Event>,
) -> bool {
    if install.slot <= *last {
        return false;
    }
    if let Err(e) = machine.load_checkpoint(&mut install.reader) {
        tracing::error!(slot = install.slot, error = %e, "loading a received checkpoint failed");
        return false;
    }
    *last = install.slot;
    let _ = events.send(Event::Core(Input::CheckpointInstalled { slot: Slot(install.slot) }));
    true
}

fn execute_slot<M: StateMachine>(
    machine: &mut M,
    slot: Slot,
    value: Value,
    replies: Vec<Option<Waiter>>,
    histograms: &crate::metrics::Histograms,
) {
    match value {
        Value::Batch(requests) => {
            machine.before_batch(slot.0);
            debug_assert_eq!(requests.len(), replies.len());
            let mut replies = replies.into_iter();
            for request in requests {
                let response = machine.execute(slot.0, &request.payload);
                if let Some(Some(waiter)) = replies.next() {
                    histograms.commit.record_micros(waiter.since.elapsed().as_micros() as u64);
                    let _ = waiter.reply.send(Ok(response));
                }
            }
            machine.after_batch(slot.0);
        }
        Value::Noop => {}
        Value::Config(membership) => machine.notify(Notification::ConfigurationChanged {
            slot: slot.0,
            members: membership.voters.iter().map(|v| v.0).collect(),
        }),
    }
}

/// Sends `CheckpointSaved` back to the consensus thread once a checkpoint is durable.
pub(crate) fn checkpoint_saved(events: &Sender<Event>, slot: Slot) {
    let _ = events.send(Event::Core(Input::CheckpointSaved { slot }));
}

/// Wraps inbound peer messages as events (used by the wires).
pub(crate) fn inbound(events: &Sender<Event>, from: u32, payload: Bytes) -> bool {
    events.try_send(Event::Receive { from, payload }).is_ok()
}
