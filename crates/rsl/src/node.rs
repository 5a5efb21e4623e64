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
//! - the **shipping thread** (`shipping`, file-backed replicas only) streams checkpoints to
//!   and from lagging peers; the checkpoint writer (`checkpoint`) writes each snapshot out on
//!   a short-lived thread of its own.
//!
//! Every `replicate` call ends in exactly one outcome: the consensus thread keeps the
//! caller's reply channel until the core either executes the request (the reply moves with
//! the value to the executor) or refuses it.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use crossbeam_channel::{Receiver, Sender, TrySendError};
use rsl_core::{Driver, Input, ReadMode, Recovered, ReplicaId, Slot};
use rsl_net::Transport;
use rsl_storage::{Log, MetaStore};
use tokio::sync::oneshot;

use crate::channels::{ToConsensus, ToExecutor, ToIo};
use crate::checkpoint::{Checkpointer, Checkpoints};
use crate::consensus::{Consensus, Router};
use crate::error::{ReplicateError, StartError};
use crate::io_thread::Store;
use crate::metrics::Histograms;
use crate::shared::Shared;
use crate::shipping::Shipping;
use crate::state_machine::StateMachine;
use crate::status::{Status, View};

/// A running replica. Cheap to share behind an `Arc`; all methods take `&self`.
pub struct Node {
    id: u32,
    events: Sender<ToConsensus>,
    shared: Arc<Shared>,
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
pub(crate) struct Parts<S: StateMachine, L: Log, M: MetaStore> {
    pub(crate) core: rsl_core::Config,
    pub(crate) tick: Duration,
    pub(crate) machine: S,
    pub(crate) disk: Store<L, M>,
    pub(crate) transport: Arc<dyn Transport>,
    pub(crate) recovered: Recovered,
    pub(crate) events: (Sender<ToConsensus>, Receiver<ToConsensus>),
    pub(crate) checkpointer: Option<Box<dyn Checkpointer>>,
    /// Where checkpoints live, for shipping them to lagging peers (none: no shipping).
    pub(crate) checkpoints: Option<Checkpoints>,
}

impl Node {
    pub(crate) fn spawn<S, L, M>(parts: Parts<S, L, M>) -> Result<Node, StartError>
    where
        S: StateMachine,
        L: Log + 'static,
        M: MetaStore + 'static,
    {
        let id = parts.core.id.0;
        let shared = Arc::new(Shared::new(id, parts.recovered.checkpoint.0));
        let (events_tx, events_rx) = parts.events;
        let (io_tx, io_rx) = crossbeam_channel::unbounded::<ToIo>();
        let (exec_tx, exec_rx) = crossbeam_channel::unbounded::<ToExecutor>();

        let mut threads = Vec::new();
        let (disk, durable, io_shared) = (parts.disk, events_tx.clone(), shared.clone());
        threads.push(spawn_named(format!("rsl-io-{id}"), move || {
            crate::io_thread::run(disk, io_rx, durable, io_shared)
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
        let router = Router {
            transport: parts.transport,
            shipping,
            io: io_tx,
            exec: exec_tx,
            shared: shared.clone(),
            writes: Vec::new(),
        };
        let consensus = Consensus::new(driver, router, parts.tick);
        threads.push(spawn_named(format!("rsl-consensus-{id}"), move || consensus.run(events_rx))?);
        Ok(Node {
            id,
            events: events_tx,
            shared,
            threads: Mutex::new(threads),
            on_shutdown: Mutex::new(Vec::new()),
        })
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
        self.push(ToConsensus::Propose { payload, exclusive, reply })?;
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
        self.push(ToConsensus::Read { request, mode, reply })?;
        rx.await.unwrap_or(Err(ReplicateError::ShuttingDown))
    }

    fn push(&self, event: ToConsensus) -> Result<(), ReplicateError> {
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
        let _ = self.events.send(ToConsensus::Core(input));
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
        let _ = self.events.send(ToConsensus::CheckpointNow);
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
    pub fn histograms(&self) -> &Histograms {
        &self.shared.histograms
    }

    /// Stops the replica: pending calls end with `ShuttingDown`, the threads exit.
    pub fn shutdown(&self) {
        if self.shared.stopped.swap(true, Ordering::AcqRel) {
            return;
        }
        let _ = self.events.send(ToConsensus::Stop);
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
}

impl Drop for Node {
    fn drop(&mut self) {
        self.shutdown();
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
