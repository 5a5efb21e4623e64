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

use crossbeam_channel::{Receiver, Sender};
use rsl_core::{Input, Slot, Value};

use crate::channels::{Install, ToConsensus, ToExecutor, Waiter};
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
    let mut executor = Executor { machine, shared, events, checkpointer, last };
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
            }
            ToExecutor::Read { request, reply } => {
                match catch_unwind(AssertUnwindSafe(|| self.machine.read(&request))) {
                    Ok(response) => {
                        let _ = reply.send(Ok(response));
                    }
                    Err(panic) => {
                        let reason = format!(
                            "the state machine panicked serving a read: {}",
                            panic_message(&panic)
                        );
                        self.record_stop(&reason);
                        let _ = reply.send(Err(self.shared.stop_error()));
                        return Flow::Panicked(reason);
                    }
                }
            }
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
                    Ok(true) => self.shared.executed.store(self.last, Ordering::Release),
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

    /// Records the panic as the replica's stop cause and tells the consensus thread to stop
    /// (it answers every caller still waiting there).
    fn record_stop(&self, reason: &str) {
        self.shared.stop(StopCause::StateMachinePanic, reason.to_string());
        let _ = self.events.send(ToConsensus::Stop);
    }

    /// After a panic: answer every caller still queued here with the stop, touch the state
    /// machine no more, and exit when the consensus thread says so.
    fn stop_after_panic(self, reason: String, items: Receiver<ToExecutor>) {
        tracing::error!(reason, "the executor stopped; no more requests are executed");
        while let Ok(item) = items.recv() {
            match item {
                ToExecutor::Execute { replies, .. } => {
                    answer_stopped(replies.into_iter().flatten(), &self.shared)
                }
                ToExecutor::Read { reply, .. } => {
                    let _ = reply.send(Err(self.shared.stop_error()));
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
            for (i, request) in requests.iter().enumerate() {
                let response = machine.execute(slot.0, &request.payload);
                if let Some(waiter) = replies.get_mut(i).and_then(Option::take) {
                    let micros = waiter.since.elapsed().as_micros() as u64;
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
