//! The executor thread: the only place the application's state machine is touched. It
//! executes chosen slots in order and answers their proposers, serves reads once the core
//! says they are fresh, takes snapshots for the checkpoint writer, and loads checkpoints
//! received from peers.
//!
//! A state machine that panics stops the replica visibly: its state can no longer be trusted,
//! so the replica records the cause (`Health::Stopped(StateMachinePanic)` in `status()` and
//! `watch()`), answers the callers of the slot that panicked and of everything queued behind
//! it with `ReplicateError::Stopped`, and never calls the state machine again.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};
use rsl_core::{Input, Slot, Value};

use bytes::Bytes;

use crate::channels::{BatchReply, Install, Reply, ToConsensus, ToExecutor, Waiter};
use crate::checkpoint::Checkpointer;
use crate::shared::Shared;
use crate::state_machine::{Notification, StateMachine};
use crate::status::StopCause;

/// The executor's state.
struct Executor<S: StateMachine> {
    machine: S,
    shared: Arc<Shared>,
    events: Sender<ToConsensus>,
    checkpointer: Option<Box<dyn Checkpointer>>,
    /// The last slot executed (or installed from a checkpoint).
    last: u64,
    /// Lease reads (and reads at an index) waiting for `last` to reach their index (each
    /// caller has its deadline).
    waiting: Vec<(u64, LeaseReads)>,
    /// The length of `waiting` at which abandoned reads are next swept out.
    sweep_at: usize,
}

/// The least length of the waiting reads at which abandoned ones are swept out.
const WAITING_SWEEP_MIN: usize = 1024;

/// One caller's lease reads: a read, or a batch answered in one reply.
enum LeaseReads {
    One(Bytes, Reply),
    Batch(Vec<Bytes>, BatchReply),
}

impl LeaseReads {
    /// Whether the caller gave up waiting.
    fn abandoned(&self) -> bool {
        match self {
            LeaseReads::One(_, reply) => reply.is_closed(),
            LeaseReads::Batch(_, reply) => reply.is_closed(),
        }
    }

    /// Tells the caller the replica stopped.
    fn stopped(self, shared: &Shared) {
        match self {
            LeaseReads::One(_, reply) => {
                let _ = reply.send(Err(shared.stop_error()));
            }
            LeaseReads::Batch(requests, reply) => {
                let _ = reply.send(requests.iter().map(|_| Err(shared.stop_error())).collect());
            }
        }
    }
}

/// The executor thread's loop, until `Stop` or the consensus thread is gone.
pub(crate) fn run<S: StateMachine>(
    machine: S,
    items: Receiver<ToExecutor>,
    shared: Arc<Shared>,
    events: Sender<ToConsensus>,
    checkpointer: Option<Box<dyn Checkpointer>>,
) {
    let last = shared.executed.load(Ordering::Acquire);
    let waiting = Vec::new();
    let sweep_at = WAITING_SWEEP_MIN;
    let mut executor = Executor { machine, shared, events, checkpointer, last, waiting, sweep_at };
    while let Ok(item) = items.recv() {
        match executor.handle(item) {
            Flow::Continue => {}
            Flow::Stop => return,
            Flow::Panicked(reason) => return executor.stop_after_panic(reason, items),
        }
    }
}

enum Flow {
    Continue,
    Stop,
    Panicked(String),
}

impl<S: StateMachine> Executor<S> {
    fn handle(&mut self, item: ToExecutor) -> Flow {
        match item {
            ToExecutor::Execute { slot, .. } if slot.0 <= self.last => {
                // Covered by a checkpoint installed from a peer meanwhile.
            }
            ToExecutor::LeaseRead { request, index, reply } if index > self.last => {
                self.wait(index, LeaseReads::One(request, reply));
            }
            ToExecutor::LeaseRead { request, reply, .. } => return self.serve_read(request, reply),
            ToExecutor::LeaseReadBatch { requests, index, reply } if index > self.last => {
                self.wait(index, LeaseReads::Batch(requests, reply));
            }
            ToExecutor::LeaseReadBatch { requests, reply, .. } => {
                return self.serve_batch(requests, reply)
            }
            ToExecutor::Execute { slot, value, mut replies } => {
                assert!(slot.0 == self.last + 1, "executed slot {} after {}", slot.0, self.last);
                // Published before the replies go out: a caller that has its answer and then
                // reads `status().executed` must see at least its own slot.
                self.last = slot.0;
                self.shared.executed.store(self.last, Ordering::Release);
                let executed = catch_unwind(AssertUnwindSafe(|| {
                    execute_slot(&mut self.machine, slot, value, &mut replies, &self.shared)
                }));
                if let Err(panic) = executed {
                    let reason = format!(
                        "the state machine panicked executing slot {}: {}",
                        slot.0,
                        panic_message(&panic)
                    );
                    self.record_stop(&reason);
                    answer_stopped(replies.into_iter().flatten(), &self.shared);
                    return Flow::Panicked(reason);
                }
                self.shared.applied.store(self.last, Ordering::Release);
                return self.serve_waiting();
            }
            ToExecutor::Read { request, reply } => return self.serve_read(request, reply),
            ToExecutor::Checkpoint { slot, .. } if slot.0 != self.last => {
                // A checkpoint installed from a peer took the state past `slot` (the core
                // has not heard of it yet): that checkpoint is in the store already, and
                // this state's membership is not the one the request carries.
                tracing::debug!(slot = slot.0, last = self.last, "checkpoint request skipped");
            }
            ToExecutor::Checkpoint { slot, membership } => {
                let snapshot = catch_unwind(AssertUnwindSafe(|| self.machine.snapshot()));
                match snapshot {
                    Ok(snapshot) => {
                        if let Some(c) = self.checkpointer.as_mut() {
                            c.start(slot, &membership, snapshot, self.events.clone());
                        }
                    }
                    Err(panic) => {
                        let reason = format!(
                            "the state machine panicked taking a snapshot: {}",
                            panic_message(&panic)
                        );
                        self.record_stop(&reason);
                        return Flow::Panicked(reason);
                    }
                }
            }
            ToExecutor::Install(install) => {
                let installed = catch_unwind(AssertUnwindSafe(|| self.install_checkpoint(install)));
                match installed {
                    Ok(true) => {
                        self.shared.executed.store(self.last, Ordering::Release);
                        self.shared.applied.store(self.last, Ordering::Release);
                        return self.serve_waiting();
                    }
                    Ok(false) => {}
                    Err(panic) => {
                        let reason = format!(
                            "the state machine panicked loading a checkpoint: {}",
                            panic_message(&panic)
                        );
                        self.record_stop(&reason);
                        return Flow::Panicked(reason);
                    }
                }
            }
            ToExecutor::Notify(n) => {
                if let Err(panic) = catch_unwind(AssertUnwindSafe(|| self.machine.notify(n))) {
                    let reason =
                        format!("the state machine panicked in notify: {}", panic_message(&panic));
                    self.record_stop(&reason);
                    return Flow::Panicked(reason);
                }
            }
            ToExecutor::Stop => return Flow::Stop,
        }
        Flow::Continue
    }

    /// Keeps reads until the state has executed `index`. Reads whose callers gave up (their
    /// deadline passed) are dropped whenever the list has doubled since the last such sweep:
    /// a replica far behind the index it was given (a follower serving reads by read index
    /// while it catches up) keeps no more than the reads still waiting, plus as many.
    fn wait(&mut self, index: u64, reads: LeaseReads) {
        if self.waiting.len() >= self.sweep_at {
            self.waiting.retain(|(_, reads)| !reads.abandoned());
            self.sweep_at = (2 * self.waiting.len()).max(WAITING_SWEEP_MIN);
        }
        self.waiting.push((index, reads));
    }

    /// Serves a read against the state as it is now.
    fn serve_read(&mut self, request: Bytes, reply: Reply) -> Flow {
        if reply.is_closed() {
            // The caller gave up (its deadline passed): nothing to compute.
            return Flow::Continue;
        }
        match catch_unwind(AssertUnwindSafe(|| self.machine.read(&request))) {
            Ok(response) => {
                let _ = reply.send(Ok(response));
                Flow::Continue
            }
            Err(panic) => {
                let reason =
                    format!("the state machine panicked serving a read: {}", panic_message(&panic));
                self.record_stop(&reason);
                let _ = reply.send(Err(self.shared.stop_error()));
                Flow::Panicked(reason)
            }
        }
    }

    /// Serves reads sent together against the state as it is now, answering them in one
    /// reply, in order.
    fn serve_batch(&mut self, requests: Vec<Bytes>, reply: BatchReply) -> Flow {
        if reply.is_closed() {
            return Flow::Continue;
        }
        let machine = &self.machine;
        let served = catch_unwind(AssertUnwindSafe(|| {
            requests.iter().map(|r| Ok(machine.read(r))).collect::<Vec<_>>()
        }));
        match served {
            Ok(responses) => {
                let _ = reply.send(responses);
                Flow::Continue
            }
            Err(panic) => {
                let reason =
                    format!("the state machine panicked serving a read: {}", panic_message(&panic));
                self.record_stop(&reason);
                LeaseReads::Batch(requests, reply).stopped(&self.shared);
                Flow::Panicked(reason)
            }
        }
    }

    /// Serves the lease reads whose index the state has now executed.
    fn serve_waiting(&mut self) -> Flow {
        if self.waiting.iter().all(|(index, _)| *index > self.last) {
            return Flow::Continue;
        }
        let (ready, waiting) =
            std::mem::take(&mut self.waiting).into_iter().partition(|(i, _)| *i <= self.last);
        self.waiting = waiting;
        let ready: Vec<(u64, LeaseReads)> = ready;
        let mut ready = ready.into_iter();
        for (_, reads) in ready.by_ref() {
            let flow = match reads {
                LeaseReads::One(request, reply) => self.serve_read(request, reply),
                LeaseReads::Batch(requests, reply) => self.serve_batch(requests, reply),
            };
            if let Flow::Panicked(reason) = flow {
                for (_, reads) in ready.chain(self.waiting.drain(..)) {
                    reads.stopped(&self.shared);
                }
                return Flow::Panicked(reason);
            }
        }
        Flow::Continue
    }

    /// Records the panic as the replica's stop cause and tells the consensus thread to stop
    /// (it answers every caller still waiting there).
    fn record_stop(&self, reason: &str) {
        self.shared.stop(StopCause::StateMachinePanic, reason.to_string());
        let _ = self.events.send(ToConsensus::Stop);
    }

    /// After a panic: answer every caller still queued here with the stop, touch the state
    /// machine no more, and exit when the consensus thread says so.
    fn stop_after_panic(mut self, reason: String, items: Receiver<ToExecutor>) {
        tracing::error!(reason, "the executor stopped; no more requests are executed");
        for (_, reads) in self.waiting.drain(..) {
            reads.stopped(&self.shared);
        }
        while let Ok(item) = items.recv() {
            match item {
                ToExecutor::Execute { replies, .. } => {
                    answer_stopped(replies.into_iter().flatten(), &self.shared)
                }
                ToExecutor::Read { reply, .. } | ToExecutor::LeaseRead { reply, .. } => {
                    let _ = reply.send(Err(self.shared.stop_error()));
                }
                ToExecutor::LeaseReadBatch { requests, reply, .. } => {
                    LeaseReads::Batch(requests, reply).stopped(&self.shared)
                }
                ToExecutor::Stop => return,
                ToExecutor::Checkpoint { .. } | ToExecutor::Install(_) | ToExecutor::Notify(_) => {}
            }
        }
    }

    /// Loads a checkpoint received from a peer, unless execution already passed it.
    fn install_checkpoint(&mut self, mut install: Install) -> bool {
        if install.slot <= self.last {
            return false;
        }
        if let Err(e) = self.machine.load_checkpoint(&mut install.reader) {
            tracing::error!(slot = install.slot, error = %e, "loading a received checkpoint failed");
            return false;
        }
        self.last = install.slot;
        let (slot, membership) = (Slot(install.slot), install.membership);
        let _ =
            self.events.send(ToConsensus::Core(Input::CheckpointInstalled { slot, membership }));
        true
    }
}

/// Executes one slot, answering each waiting caller as its request executes; `replies` keeps
/// the callers not answered yet (if the state machine panics, they are answered with the
/// stop).
fn execute_slot<S: StateMachine>(
    machine: &mut S,
    slot: Slot,
    value: Value,
    replies: &mut [Option<Waiter>],
    shared: &Shared,
) {
    match value {
        Value::Batch(requests) => {
            machine.before_batch(slot.0);
            debug_assert_eq!(requests.len(), replies.len());
            // The clock is read once a slot, at its first waiting caller: a slot's requests
            // execute within microseconds, and a read per request was 2 % of the engine's
            // time with batched callers (docs/benchmarks.md).
            let mut now = None;
            for (i, request) in requests.iter().enumerate() {
                let response = machine.execute(slot.0, &request.payload);
                if let Some(waiter) = replies.get_mut(i).and_then(Option::take) {
                    let now = *now.get_or_insert_with(Instant::now);
                    let micros = now.saturating_duration_since(waiter.since).as_micros() as u64;
                    shared.metrics.commit.record_micros(micros);
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

fn answer_stopped(waiters: impl Iterator<Item = Waiter>, shared: &Shared) {
    for waiter in waiters {
        let _ = waiter.reply.send(Err(shared.stop_error()));
    }
}

/// The message a panic carried, if it is text.
fn panic_message(panic: &Box<dyn Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "(a panic without a message)".to_string()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use rsl_core::{ReplicaId, Request, RequestId};
    use tokio::sync::oneshot;

    use super::*;
    use crate::state_machine::Snapshot;

    /// Counts executed requests; a read answers the count.
    struct Count(u64);

    impl StateMachine for Count {
        fn execute(&mut self, _slot: u64, _request: &[u8]) -> Bytes {
            self.0 += 1;
            Bytes::new()
        }
        fn read(&self, _request: &[u8]) -> Bytes {
            Bytes::from(self.0.to_string())
        }
        fn snapshot(&self) -> Box<dyn Snapshot> {
            unreachable!("no checkpoint in this test")
        }
        fn load_checkpoint(&mut self, _input: &mut dyn std::io::Read) -> std::io::Result<()> {
            unreachable!("no checkpoint in this test")
        }
    }

    fn one_request(seq: u64) -> Value {
        let id = RequestId { proposer: ReplicaId(1), incarnation: 0, seq };
        Value::Batch(vec![Request { id, payload: Bytes::new() }].into())
    }

    /// A lease read that reaches the executor before the slots up to its index is served
    /// only once they are executed (in the runtime it can: the caller sends it straight
    /// here, while the consensus thread may still be handing the executes over). Proven by
    /// a planted bug: serving a lease read at once whatever its index answers "0".
    #[test]
    fn a_lease_read_waits_for_its_index() {
        let shared = Arc::new(Shared::new(1, 0, BTreeMap::new(), Duration::from_secs(1)));
        let (tx, rx) = crossbeam_channel::unbounded();
        let (events, _events_rx) = crossbeam_channel::unbounded();
        let thread = std::thread::spawn(move || run(Count(0), rx, shared, events, None));
        let (early, early_rx) = oneshot::channel();
        tx.send(ToExecutor::LeaseRead { request: Bytes::new(), index: 2, reply: early }).unwrap();
        let (now, now_rx) = oneshot::channel();
        tx.send(ToExecutor::LeaseRead { request: Bytes::new(), index: 0, reply: now }).unwrap();
        for slot in 1..=2 {
            let (value, replies) = (one_request(slot), vec![None]);
            tx.send(ToExecutor::Execute { slot: Slot(slot), value, replies }).unwrap();
        }
        tx.send(ToExecutor::Stop).unwrap();
        thread.join().unwrap();
        assert_eq!(now_rx.blocking_recv().unwrap().unwrap(), "0", "index 0: at once");
        assert_eq!(early_rx.blocking_recv().unwrap().unwrap(), "2", "index 2: after slot 2");
    }
    /// The executor's bound on reads waiting for their index: reads whose callers gave up
    /// are swept out when the list reaches `WAITING_SWEEP_MIN` (1,024 waiting: none swept;
    /// the 1,025th: the abandoned ones go, the live ones stay), and the next sweep waits for
    /// twice the live ones. Proven by planted bugs: sweeping only above the bound (`>` for
    /// `>=`) keeps 1,025; the next sweep at the live count (no doubling) leaves `sweep_at`
    /// at 1,024.
    #[test]
    fn abandoned_waiting_reads_are_swept_at_the_bound() {
        let shared = Arc::new(Shared::new(1, 0, BTreeMap::new(), Duration::from_secs(1)));
        let (events, _events_rx) = crossbeam_channel::unbounded();
        let mut e = Executor {
            machine: Count(0),
            shared,
            events,
            checkpointer: None,
            last: 0,
            waiting: Vec::new(),
            sweep_at: WAITING_SWEEP_MIN,
        };
        let mut live = Vec::new();
        for i in 0..WAITING_SWEEP_MIN {
            let (reply, rx) = oneshot::channel();
            if i % 4 != 0 {
                live.push(rx); // three in four callers still wait
            }
            e.wait(5, LeaseReads::One(Bytes::new(), reply));
        }
        assert_eq!(e.waiting.len(), WAITING_SWEEP_MIN, "swept before the bound");
        let (reply, rx) = oneshot::channel();
        live.push(rx);
        e.wait(5, LeaseReads::One(Bytes::new(), reply));
        assert_eq!(e.waiting.len(), live.len(), "abandoned reads kept past the bound");
        assert!(e.waiting.iter().all(|(_, r)| !r.abandoned()), "a live read swept");
        assert_eq!(e.sweep_at, 2 * (live.len() - 1), "the next sweep not at twice the live");
    }
}
