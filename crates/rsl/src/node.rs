//! A running replica: the public handle ([`Node`]) and how its threads are started.
//!
//! A replica runs on four threads of its own, each in its own module, which share only the
//! channels of `channels` and the state of `shared`:
//!
//! - the **consensus thread** (`consensus`) owns the core through the driver the simulator
//!   also runs, and routes the core's actions to the others;
//! - the **I/O thread** (`io_thread`) applies writes in order, one sync per batch (group
//!   commit), and reports `Durable { seq }`;
//! - the **executor thread** (`executor`) owns the application's state machine;
//! - the **shipping thread** (`shipping`) streams checkpoints to
//!   and from lagging peers; the checkpoint writer (`checkpoint`) writes each snapshot out on
//!   a short-lived thread of its own.
//!
//! Every `replicate` call ends in exactly one outcome: the consensus thread keeps the
//! caller's reply channel until the core either executes the request (the reply moves with
//! the value to the executor) or refuses it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use crossbeam_channel::{Receiver, Sender, TrySendError};
use rsl_core::{Driver, Input, ReadMode, Recovered, ReplicaId, Slot};
use rsl_net::Transport;
use rsl_storage::{FsMedia, Log, Media, MetaStore};
use tokio::sync::oneshot;

use crate::channels::{ToConsensus, ToExecutor, ToIo};
use crate::checkpoint::{Checkpointer, Checkpoints};
use crate::consensus::{Consensus, Router};
use crate::error::{MembershipError, ReplicateError, StartError};
use crate::io_thread::{Reopen, Store};
use crate::peer_call::{PeerCallError, PeerCalls, PeerResponder};
use crate::shared::Shared;
use crate::shipping::Shipping;
use crate::state_machine::StateMachine;
use crate::status::{Chosen, Status, StopCause, View};

/// A running replica: the application's handle on it. Cheap to share behind an `Arc`; every
/// method takes `&self` and may be called from any thread.
///
/// Start one with [`Node::start`] (storage on disk, TCP between replicas) or as part of a
/// [`crate::LocalCluster`] (in one process, for tests). It runs until [`Node::shutdown`], until
/// it is dropped, or until it stops on a failure ([`Node::is_running`] says which).
pub struct Node {
    id: u32,
    /// Requests and read queries above this many bytes are refused at once.
    request_bytes_max: usize,
    events: Sender<ToConsensus>,
    /// The executor's queue, for linearizable reads served under the published lease.
    exec: Sender<ToExecutor>,
    shared: Arc<Shared>,
    /// Calls to and from other members (`peer_call`).
    peer_calls: Arc<PeerCalls>,
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
pub(crate) struct Parts<S: StateMachine, L: Log, M: MetaStore, C: Media = FsMedia> {
    pub(crate) core: rsl_core::Config,
    pub(crate) tick: Duration,
    pub(crate) machine: S,
    pub(crate) disk: Store<L, M>,
    /// Opens the storage again after a failed write (full-disk retries).
    pub(crate) reopen: Reopen<L, M>,
    pub(crate) transport: Arc<dyn Transport>,
    pub(crate) recovered: Recovered,
    pub(crate) events: (Sender<ToConsensus>, Receiver<ToConsensus>),
    pub(crate) checkpointer: Option<Box<dyn Checkpointer>>,
    /// Where checkpoints live, for shipping them to lagging peers (none: no shipping).
    pub(crate) checkpoints: Option<Checkpoints<C>>,
    /// Calls to and from other members; the transport already delivers to them.
    pub(crate) peer_calls: Arc<PeerCalls>,
    /// Every member, with its peer address where known.
    pub(crate) members: BTreeMap<u32, Option<SocketAddr>>,
    /// How long a call waits unless it says otherwise.
    pub(crate) call_timeout: Duration,
}

impl Node {
    pub(crate) fn spawn<S, L, M, C>(parts: Parts<S, L, M, C>) -> Result<Node, StartError>
    where
        S: StateMachine,
        L: Log + 'static,
        M: MetaStore + 'static,
        C: Media + 'static,
    {
        let id = parts.core.id.0;
        let request_bytes_max = parts.core.request_bytes_max;
        assert!(
            parts.core.message_bytes_max <= crate::envelope::MESSAGE_BYTES_MAX,
            "the core's message limit {} exceeds what the transport carries",
            parts.core.message_bytes_max
        );
        let shared = Arc::new(Shared::new(
            id,
            parts.recovered.checkpoint.0,
            parts.members.clone(),
            parts.call_timeout,
        ));
        let (events_tx, events_rx) = parts.events;
        parts.peer_calls.bind(parts.transport.clone(), shared.clone());
        let (io_tx, io_rx) = crossbeam_channel::unbounded::<ToIo>();
        let (exec_tx, exec_rx) = crossbeam_channel::unbounded::<ToExecutor>();

        let mut threads = Vec::new();
        let (disk, reopen) = (parts.disk, parts.reopen);
        let (durable, io_shared) = (events_tx.clone(), shared.clone());
        let io_transport = parts.transport.clone();
        threads.push(spawn_named(format!("rsl-io-{id}"), move || {
            crate::io_thread::run(disk, reopen, io_rx, durable, io_transport, io_shared)
        })?);

        let (machine, exec_shared, exec_events) =
            (parts.machine, shared.clone(), events_tx.clone());
        let checkpointer = parts.checkpointer;
        threads.push(spawn_named(format!("rsl-exec-{id}"), move || {
            crate::executor::run(machine, exec_rx, exec_shared, exec_events, checkpointer)
        })?);

        let mut shipping = None;
        if let Some(store) = parts.checkpoints {
            let (tx, rx) = crossbeam_channel::unbounded();
            let transport = parts.transport.clone();
            let s = Shipping::new(store, transport, shared.clone(), events_tx.clone());
            threads.push(spawn_named(format!("rsl-shipping-{id}"), move || s.run(rx))?);
            shipping = Some(tx);
        }
        let mut driver = Driver::new(parts.core, parts.recovered, incarnation());
        // The per-step invariant walk and the refused-id set are for tests and the simulator.
        driver.set_checking(false);
        let configured = parts.members.iter().filter_map(|(id, a)| Some((*id, (*a)?)));
        let changes = crate::members::Changes::new(configured.collect());
        let router = Router {
            changes,
            transport: parts.transport,
            shipping,
            io: io_tx,
            exec: exec_tx.clone(),
            exec_out: Vec::new(),
            shared: shared.clone(),
            writes: Vec::new(),
            sends_when_durable: Vec::new(),
            outbox: Vec::new(),
            sealer: Default::default(),
        };
        let consensus = Consensus::new(driver, router, parts.tick);
        threads.push(spawn_named(format!("rsl-consensus-{id}"), move || consensus.run(events_rx))?);
        Ok(Node {
            id,
            request_bytes_max,
            events: events_tx,
            exec: exec_tx,
            shared,
            peer_calls: parts.peer_calls,
            threads: Mutex::new(threads),
            on_shutdown: Mutex::new(Vec::new()),
        })
    }

    /// This replica's id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// True while the replica serves; false once it has shut down or stopped on a failure
    /// (then [`Node::status`] and [`Node::watch`] say why: [`crate::Health::Stopped`]).
    pub fn is_running(&self) -> bool {
        self.shared.is_running()
    }

    /// Replicates `request` and resolves to the state machine's response once it is
    /// executed on this replica (it is then chosen: every replica executes it in the same
    /// slot, in the same order), or to an error saying why not. Requests are batched into
    /// slots. The call ends after `consensus.call_timeout_ms` at the latest
    /// ([`ReplicateError::Timeout`]: a write that timed out may still execute).
    ///
    /// Call it from a tokio runtime (its deadline uses tokio's timer). On a replica that is
    /// not primary it ends at once with [`ReplicateError::NotPrimary`], naming the primary.
    pub async fn replicate(&self, request: Bytes) -> Result<Bytes, ReplicateError> {
        self.replicate_with(request, ReplicateOptions::default()).await
    }

    /// Like [`Node::replicate`], but the request is alone in its slot.
    pub async fn replicate_exclusive(&self, request: Bytes) -> Result<Bytes, ReplicateError> {
        self.replicate_with(request, ReplicateOptions::default().exclusive()).await
    }

    /// [`Node::replicate`] with options: a deadline of the call's own, alone in its slot.
    pub async fn replicate_with(
        &self,
        request: Bytes,
        options: ReplicateOptions,
    ) -> Result<Bytes, ReplicateError> {
        self.check_size(&request)?;
        // A full disk refuses writes at the door (a stopped replica says it stopped).
        if let Some(full) = self.shared.disk_full_error().filter(|_| self.shared.is_running()) {
            return Err(full);
        }
        let timeout = options.timeout.unwrap_or(self.shared.call_timeout);
        let (reply, rx) = oneshot::channel();
        let exclusive = options.exclusive;
        self.push(ToConsensus::Propose { payload: request, exclusive, reply })?;
        self.wait(rx, timeout).await
    }

    /// Replicates `requests` in order, handed to the consensus thread in one message (the
    /// requests of one turn share slots), and resolves to one outcome per request, in
    /// order: each as [`Node::replicate`] would give it (a request too large is refused
    /// alone; the others go). The requests reach the log in the order given, after every
    /// request submitted before this call on the same thread, and every request shares the
    /// call's one deadline (`consensus.call_timeout_ms`).
    ///
    /// The proposals are handed over at the future's first poll, in full.
    pub async fn replicate_batch(
        &self,
        requests: Vec<Bytes>,
    ) -> Vec<Result<Bytes, ReplicateError>> {
        let timeout = self.shared.call_timeout;
        let mut outcomes: Vec<Option<Result<Bytes, ReplicateError>>> =
            Vec::with_capacity(requests.len());
        let full = self.shared.disk_full_error().filter(|_| self.shared.is_running());
        let mut proposals = Vec::with_capacity(requests.len());
        let mut waits = Vec::with_capacity(requests.len());
        for request in requests {
            let refused = match (self.check_size(&request), &full) {
                (Err(e), _) => Some(e),
                (Ok(()), Some(full)) => Some(full.clone()),
                (Ok(()), None) => None,
            };
            if refused.is_none() {
                let (reply, rx) = oneshot::channel();
                proposals.push((request, reply));
                waits.push((outcomes.len(), rx));
            }
            outcomes.push(refused.map(Err));
        }
        if !proposals.is_empty() {
            if let Err(e) = self.push(ToConsensus::ProposeBatch { proposals }) {
                for (i, _) in waits.drain(..) {
                    outcomes[i] = Some(Err(e.clone()));
                }
            }
        }
        self.wait_all(waits, &mut outcomes, timeout).await;
        outcomes.into_iter().map(|o| o.expect("every outcome set")).collect()
    }

    /// Reads `requests` as [`Node::read`] would, one outcome per request, in order. Under
    /// the primary's lease (linearizable reads) they take one lease check, one message to
    /// the executor and one reply: they are served together, against the same state, once
    /// it has executed the lease's index. At [`ReadConsistency::AtLeast`], at any replica,
    /// they take the same path without a lease check: one message to the executor, which
    /// serves them together once it has executed that slot ([`Status::counters`]'
    /// `index_reads` counts them). Otherwise (a linearizable read without the lease) each
    /// goes through the consensus thread as a read of its own. Every read shares the call's
    /// one deadline: a replica that has not executed the index by then answers
    /// [`ReplicateError::Timeout`].
    pub async fn read_batch(
        &self,
        requests: Vec<Bytes>,
        consistency: ReadConsistency,
    ) -> Vec<Result<Bytes, ReplicateError>> {
        let timeout = self.shared.call_timeout;
        let mode = match consistency {
            ReadConsistency::Linearizable => ReadMode::Linearizable,
            ReadConsistency::AtLeast(slot) => ReadMode::AtLeast(Slot(slot)),
        };
        let mut outcomes: Vec<Option<Result<Bytes, ReplicateError>>> =
            requests.iter().map(|r| self.check_size(r).err().map(Err)).collect();
        let n = requests.len();
        let sized: Vec<(usize, Bytes)> =
            requests.into_iter().enumerate().filter(|(i, _)| outcomes[*i].is_none()).collect();
        if sized.is_empty() {
            return outcomes.into_iter().map(|o| o.expect("refused")).collect();
        }
        let direct = match mode {
            ReadMode::AtLeast(slot) => Some((slot.0, &self.shared.metrics.counters.index_reads)),
            ReadMode::Linearizable => {
                self.lease_index(mode).map(|i| (i, &self.shared.metrics.counters.lease_reads))
            }
        };
        if let Some((index, counter)) = direct {
            let (reply, rx) = oneshot::channel();
            let (at, requests): (Vec<usize>, Vec<Bytes>) = sized.into_iter().unzip();
            let sent = match self.shared.is_running() {
                false => Err(self.shared.stop_error()),
                true => {
                    counter.inc_by(at.len() as u64);
                    let read = ToExecutor::LeaseReadBatch { requests, index, reply };
                    self.exec.send(read).map_err(|_| self.shared.stop_error())
                }
            };
            let answers = match sent {
                Err(e) => vec![Err(e); at.len()],
                Ok(()) => match crate::deadline::within(timeout, rx).await {
                    Ok(Ok(answers)) if answers.len() == at.len() => answers,
                    Ok(_) => vec![Err(self.shared.stop_error()); at.len()],
                    Err(_) => {
                        self.shared.metrics.counters.timeouts.inc_by(at.len() as u64);
                        vec![Err(ReplicateError::Timeout { after: timeout }); at.len()]
                    }
                },
            };
            for (i, answer) in at.into_iter().zip(answers) {
                outcomes[i] = Some(answer);
            }
        } else {
            let mut waits = Vec::with_capacity(n);
            for (i, request) in sized {
                let (reply, rx) = oneshot::channel();
                match self.push(ToConsensus::Read { request, mode, reply }) {
                    Ok(()) => waits.push((i, rx)),
                    Err(e) => outcomes[i] = Some(Err(e)),
                }
            }
            self.wait_all(waits, &mut outcomes, timeout).await;
        }
        outcomes.into_iter().map(|o| o.expect("every outcome set")).collect()
    }

    /// Waits for each of `waits` (its index in `outcomes`, its reply), all under one deadline
    /// `timeout` from now; a timer is set only for a reply not in yet.
    async fn wait_all(
        &self,
        waits: Vec<(usize, oneshot::Receiver<Result<Bytes, ReplicateError>>)>,
        outcomes: &mut [Option<Result<Bytes, ReplicateError>>],
        timeout: Duration,
    ) {
        let mut deadline = None;
        for (i, mut rx) in waits {
            let answer = match rx.try_recv() {
                Ok(answer) => Ok(answer),
                Err(oneshot::error::TryRecvError::Closed) => Err(()),
                Err(oneshot::error::TryRecvError::Empty) => {
                    let at = *deadline.get_or_insert_with(|| tokio::time::Instant::now() + timeout);
                    match crate::deadline::until(at, rx).await {
                        Ok(Ok(answer)) => Ok(answer),
                        Ok(Err(_)) => Err(()),
                        Err(_) => {
                            self.shared.metrics.counters.timeouts.inc();
                            Ok(Err(ReplicateError::Timeout { after: timeout }))
                        }
                    }
                }
            };
            outcomes[i] = Some(answer.unwrap_or_else(|()| Err(self.shared.stop_error())));
        }
    }

    /// A read-only request served by the state machine's [`StateMachine::read`] at the
    /// chosen consistency ([`ReadConsistency`]). It never changes the state. The call ends
    /// after `consensus.call_timeout_ms` at the latest ([`ReplicateError::Timeout`]).
    ///
    /// A linearizable read at a primary that holds its lease (as the consensus thread last
    /// published it, checked with one clock read) goes straight to the executor, which serves
    /// it once it has executed the commit point published with the lease; otherwise it goes
    /// through the consensus thread (docs/protocol.md, "Lease reads without the consensus
    /// thread"). [`Status::counters`]' `lease_reads` counts the first kind.
    pub async fn read(
        &self,
        request: Bytes,
        consistency: ReadConsistency,
    ) -> Result<Bytes, ReplicateError> {
        self.read_with(request, consistency, self.shared.call_timeout).await
    }

    /// [`Node::read`] with a deadline of the call's own.
    pub async fn read_with(
        &self,
        request: Bytes,
        consistency: ReadConsistency,
        timeout: Duration,
    ) -> Result<Bytes, ReplicateError> {
        let mode = match consistency {
            ReadConsistency::Linearizable => ReadMode::Linearizable,
            ReadConsistency::AtLeast(slot) => ReadMode::AtLeast(Slot(slot)),
        };
        self.check_size(&request)?;
        let (reply, rx) = oneshot::channel();
        match self.lease_index(mode) {
            // Under the primary's lease the read goes straight to the executor, which serves
            // it once it has executed the index (docs/protocol.md, "Leases and reads").
            Some(index) => self.push_lease_read(request, index, reply)?,
            None => self.push(ToConsensus::Read { request, mode, reply })?,
        }
        self.wait(rx, timeout).await
    }

    /// The read index: the slot a linearizable read starting now must wait for, if this
    /// replica is a primary holding its lease now (as the consensus thread last published it,
    /// checked with one clock read); `None` otherwise (not primary, not recovered yet, handing
    /// primacy over, or the lease ran out).
    ///
    /// A state that has executed this slot reflects every write acknowledged before this
    /// call, by any replica. So another replica can serve a linearizable read without the
    /// primary reading it: it asks the primary for its read index *after* the read arrived,
    /// and serves the read from its own state once that has executed the index
    /// ([`Node::read_batch`] at [`ReadConsistency::AtLeast`]), as etcd and Raft do ("read
    /// index"). An answer to a question asked before the read arrived must not be reused for
    /// it: a write acknowledged in between could be missed. docs/protocol.md, "Leases and
    /// reads", has the lease's argument.
    ///
    /// It is the lease's index or the slot this primary has executed, whichever is higher:
    /// the primary's executor answers a write's caller as soon as it executes it, which may
    /// be before the consensus thread publishes a commit point that covers it (a read at the
    /// primary itself needs no more, since its executor already has the write; another
    /// replica does).
    pub fn read_index(&self) -> Option<u64> {
        let index = self.lease_index(ReadMode::Linearizable)?;
        Some(index.max(self.executed()))
    }

    /// What this replica, if primary, says is chosen: every slot up to its commit point, at
    /// its ballot, as its heartbeats say (as the consensus thread last published them, with
    /// its lease, after every turn: both from one state of the core, under one lock); `None`
    /// if it is not a primary holding its lease. Another replica that
    /// accepted those slots at that ballot learns from it that they are chosen
    /// ([`Node::learn_chosen`]) without waiting for this primary's next message: a follower
    /// that asks for a [`Node::read_index`] gets it with the index, so that it can serve its
    /// reads at once rather than wait up to a heartbeat for the primary to say its newest
    /// slots are chosen.
    pub fn chosen(&self) -> Option<Chosen> {
        let published = *self.shared.chosen.lock().expect("chosen lock");
        published.map(|(ballot_round, through)| Chosen { primary: self.id, ballot_round, through })
    }

    /// Learns what a primary said is chosen ([`Node::chosen`], from the peer `chosen.primary`
    /// named; the transport authenticated it): every slot up to `chosen.through` that this
    /// replica accepted at that primary's ballot is chosen, as a heartbeat of that ballot
    /// would tell it (docs/protocol.md, "Read index"). Resolves to this replica's commit
    /// point afterwards (the executor then executes up to it without waiting for anything
    /// else), or `None` if the replica stopped or its queue is full. Learning something old
    /// is harmless: chosen stays chosen.
    pub async fn learn_chosen(&self, chosen: Chosen) -> Option<u64> {
        let (reply, rx) = oneshot::channel();
        self.push(ToConsensus::Learn { chosen, reply }).ok()?;
        rx.await.ok()
    }

    /// The last slot this replica's executor has executed (or installed from a checkpoint):
    /// a [`Node::read_batch`] at [`ReadConsistency::AtLeast`] of it or below is served at
    /// once. One atomic load.
    pub fn executed(&self) -> u64 {
        self.shared.executed.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Whether `reads` reads at `consistency` starting now may be served by the caller
    /// itself, on its own thread, from the state machine's state as it stands: for a state
    /// machine that shares its state with the application (behind a lock it takes to
    /// execute), so that a read costs no message to the executor and no wake-up of it.
    ///
    /// True if the state machine has finished executing the slot the read must see (and the
    /// replica is running): at [`ReadConsistency::Linearizable`], the lease's index of a
    /// primary holding its lease now (checked as [`Node::read`] checks it, with one clock
    /// read); at [`ReadConsistency::AtLeast`], that slot. The state read under the
    /// application's lock, taken after this returns true or held while it is asked, reflects
    /// every slot up to that one: every write acknowledged before the call by any replica (a
    /// linearizable read), or the slot's state or a later one. False means: serve it with [`Node::read`] (which waits for the
    /// slot, or goes through the consensus thread). [`Status::counters`] count the `reads`
    /// of a true answer as [`Node::read_batch`] would (`lease_reads`, `index_reads`).
    /// docs/protocol.md, "Reads on the caller's thread".
    ///
    /// The state machine's side of the bargain: each [`StateMachine::execute`] makes its
    /// request's effects visible to the application's readers before it returns, whole (it
    /// changes the shared state under the lock the readers take), since a write's caller may
    /// hear back as soon as it returns.
    pub fn read_here(&self, consistency: ReadConsistency, reads: usize) -> bool {
        let (slot, counter) = match consistency {
            ReadConsistency::Linearizable => match self.lease_index(ReadMode::Linearizable) {
                Some(index) => (index, &self.shared.metrics.counters.lease_reads),
                None => return false,
            },
            ReadConsistency::AtLeast(slot) => (slot, &self.shared.metrics.counters.index_reads),
        };
        // `applied` is published after the slot's execution (release): its effects are in
        // the state the caller then reads.
        let ready = self.shared.applied.load(std::sync::atomic::Ordering::Acquire) >= slot
            && self.shared.is_running();
        if ready {
            counter.inc_by(reads as u64);
        }
        ready
    }

    /// The slot a linearizable read starting now must wait for, if this replica is a primary
    /// holding its lease now (as the consensus thread last published it).
    fn lease_index(&self, mode: ReadMode) -> Option<u64> {
        match mode {
            ReadMode::Linearizable => self.shared.lease.check(std::time::Instant::now()),
            ReadMode::AtLeast(_) => None,
        }
    }

    fn push_lease_read(
        &self,
        request: Bytes,
        index: u64,
        reply: crate::channels::Reply,
    ) -> Result<(), ReplicateError> {
        if !self.shared.is_running() {
            return Err(self.shared.stop_error());
        }
        self.shared.metrics.counters.lease_reads.inc();
        let read = ToExecutor::LeaseRead { request, index, reply };
        self.exec.send(read).map_err(|_| self.shared.stop_error())
    }

    /// Waits for a call's answer until `timeout`; a dropped reply means the replica stopped.
    async fn wait(
        &self,
        rx: oneshot::Receiver<Result<Bytes, ReplicateError>>,
        timeout: Duration,
    ) -> Result<Bytes, ReplicateError> {
        match crate::deadline::within(timeout, rx).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err(self.shared.stop_error()),
            Err(_) => {
                self.shared.metrics.counters.timeouts.inc();
                Err(ReplicateError::Timeout { after: timeout })
            }
        }
    }

    /// How long a call waits unless it says otherwise (`consensus.call_timeout_ms`): the
    /// deadline an application's own calls on the replica's behalf should keep too (rsl-kv
    /// forwards a request to the primary for as long).
    pub fn call_timeout(&self) -> Duration {
        self.shared.call_timeout
    }

    /// Refuses a request larger than the cluster carries, before it reaches the core (which
    /// would refuse it too): it never reaches the log.
    fn check_size(&self, request: &Bytes) -> Result<(), ReplicateError> {
        let (size, max) = (request.len(), self.request_bytes_max);
        if size > max {
            return Err(ReplicateError::TooLarge { size, max });
        }
        Ok(())
    }

    /// The largest request (and read query) this replica takes, in bytes.
    pub fn request_bytes_max(&self) -> usize {
        self.request_bytes_max
    }

    pub(crate) fn push(&self, event: ToConsensus) -> Result<(), ReplicateError> {
        if !self.shared.is_running() {
            return Err(self.shared.stop_error());
        }
        match self.events.try_send(event) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => {
                self.shared.metrics.counters.overloaded.inc();
                Err(ReplicateError::Overloaded)
            }
            Err(TrySendError::Disconnected(_)) => Err(self.shared.stop_error()),
        }
    }

    fn control(&self, input: Input) {
        let _ = self.events.send(ToConsensus::Core(input));
    }

    /// Asks the primary to hand primacy to `to` (any suitable replica if `None`). A replica
    /// that is not primary ignores it; [`Node::watch`] shows the outcome.
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
        let _ = self.events.send(ToConsensus::CheckpointNow);
    }

    /// Proposes a new set of voters (at most one change in flight; the primary proposes it,
    /// a follower ignores it). Refuses, proposing nothing, a list that is empty, names a
    /// replica twice, or names a replica this replica knows no address for (adding a
    /// replica with its address is a later feature).
    pub fn change_membership(&self, voters: Vec<u32>) -> Result<(), MembershipError> {
        if voters.is_empty() {
            return Err(MembershipError::Empty);
        }
        for (i, id) in voters.iter().enumerate() {
            if voters[..i].contains(id) {
                return Err(MembershipError::Duplicate { id: *id });
            }
            if !self.shared.knows_member(*id) {
                return Err(MembershipError::UnknownMember { id: *id });
            }
        }
        if !self.shared.is_running() {
            return Err(MembershipError::Stopped);
        }
        self.control(Input::ChangeMembership(rsl_core::Membership::new(voters)));
        Ok(())
    }

    /// Role, primary, ballot and health, updated on every change: `changed().await` to wait
    /// for one (no polling).
    pub fn watch(&self) -> tokio::sync::watch::Receiver<View> {
        self.shared.view.subscribe()
    }

    /// A consistent view of the replica: role, primary, ballot, slots, health, peers,
    /// counters.
    pub fn status(&self) -> Status {
        self.shared.status()
    }

    /// The replica's metrics in the Prometheus text format (what `metrics_addr` serves).
    pub fn metrics(&self) -> String {
        self.shared.metrics_text()
    }

    /// What the metrics endpoint reads (it outlives no replica: it stops with it).
    pub(crate) fn metrics_source(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    /// Stops the replica: every pending call ends with [`ReplicateError::ShuttingDown`] (or
    /// [`ReplicateError::Stopped`] if it had already stopped on a failure), the threads and
    /// the transport stop, and the data directory's lock is released. Idempotent; dropping
    /// the node does the same.
    pub fn shutdown(&self) {
        self.shared.stop(StopCause::Shutdown, "shut down".to_string());
        let _ = self.events.send(ToConsensus::Stop);
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

    /// This replica's calls to and from other members.
    pub(crate) fn peer_calls(&self) -> &Arc<PeerCalls> {
        &self.peer_calls
    }

    /// Calls member `to` with `request` (`crate::peer_call`): the call is sent (or refused,
    /// with an error saying it was not sent) before this returns, so calls made one after the
    /// other reach `to` in that order. The returned future resolves to the response of `to`'s
    /// handler ([`Node::serve_peer_calls`]), or to an error once `wait` has passed, the
    /// connection broke, or `to` refused. Await it within a tokio runtime (it uses tokio's
    /// timer).
    pub fn call_peer(
        &self,
        to: u32,
        request: Bytes,
        wait: Duration,
    ) -> impl std::future::Future<Output = Result<Bytes, PeerCallError>> + Send + 'static {
        self.peer_calls.call(to, request, wait)
    }

    /// Registers the handler of calls from other members, replacing any earlier one:
    /// `handler(caller, request, responder)`, called on the thread that receives peer
    /// payloads, in the order each member sent its calls; it must not block (answer through
    /// the responder later, from any thread). Until one is registered, callers hear
    /// [`PeerCallError::NoHandler`]. It is dropped when the replica shuts down.
    pub fn serve_peer_calls(
        &self,
        handler: impl Fn(u32, Bytes, PeerResponder) + Send + Sync + 'static,
    ) {
        self.peer_calls.set_handler(Arc::new(handler));
    }

    /// Runs `hook` at shutdown, after the replica's threads have stopped.
    pub(crate) fn at_shutdown(&self, hook: Box<dyn FnOnce() + Send>) {
        self.on_shutdown.lock().expect("hooks lock").push(hook);
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// How fresh a read must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadConsistency {
    /// Linearizable: served by the primary under its lease, or after a quorum round. A
    /// replica that is not primary refuses it with [`ReplicateError::NotPrimary`].
    Linearizable,
    /// RSL's fast read: any replica, once it has executed at least this slot (a slot a
    /// caller saw in [`Status::executed`] makes the read see that state or later).
    AtLeast(u64),
}

/// Options of one [`Node::replicate_with`] call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplicateOptions {
    /// The call's deadline; `None` uses `consensus.call_timeout_ms`.
    pub timeout: Option<Duration>,
    /// Put the request alone in its slot.
    pub exclusive: bool,
}

impl ReplicateOptions {
    /// Sets the call's deadline.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Puts the request alone in its slot.
    pub fn exclusive(mut self) -> Self {
        self.exclusive = true;
        self
    }
}

/// Spawns a named thread. If it fails, the threads spawned before it exit on their own once
/// the caller drops the channels' senders.
fn spawn_named(
    name: String,
    f: impl FnOnce() + Send + 'static,
) -> Result<JoinHandle<()>, StartError> {
    std::thread::Builder::new().name(name).spawn(f).map_err(StartError::Threads)
}

/// A number that differs between two lives of this process, so request ids never repeat.
fn incarnation() -> u64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    now.map(|d| d.as_nanos() as u64).unwrap_or(0) ^ u64::from(std::process::id())
}
