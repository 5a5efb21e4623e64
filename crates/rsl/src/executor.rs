//! The executor thread: the only place the application's state machine is touched. It
//! executes chosen slots in order and answers their proposers, serves reads once the core
//! says they are fresh, takes snapshots for the checkpoint writer, and loads checkpoints
//! received from peers.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};
use rsl_core::{Input, Slot, Value};

use crate::channels::{Install, ToConsensus, ToExecutor, Waiter};
use crate::checkpoint::Checkpointer;
use crate::metrics::Histograms;
use crate::shared::Shared;
use crate::state_machine::{Notification, StateMachine};

/// The executor thread's loop, until `Stop` or the consensus thread is gone.
pub(crate) fn run<M: StateMachine>(
    mut machine: M,
    items: Receiver<ToExecutor>,
    shared: Arc<Shared>,
    events: Sender<ToConsensus>,
    mut checkpointer: Option<Box<dyn Checkpointer>>,
) {
    let mut last = shared.executed.load(Ordering::Acquire);
    while let Ok(item) = items.recv() {
        match item {
            ToExecutor::Execute { slot, .. } if slot.0 <= last => {
                // Covered by a checkpoint installed from a peer meanwhile.
            }
            ToExecutor::Execute { slot, value, replies } => {
                assert!(slot.0 == last + 1, "executed slot {} after {}", slot.0, last);
                // Published before the replies go out: a caller that has its answer and then
                // reads `status().executed` must see at least its own slot.
                last = slot.0;
                shared.executed.store(last, Ordering::Release);
                execute_slot(&mut machine, slot, value, replies, &shared.histograms);
            }
            ToExecutor::Read { request, reply } => {
                let _ = reply.send(Ok(machine.read(&request)));
            }
            ToExecutor::Checkpoint => {
                if let Some(c) = checkpointer.as_mut() {
                    c.start(Slot(last), machine.snapshot(), events.clone());
                }
            }
            ToExecutor::Install(install) => {
                if install_checkpoint(&mut machine, install, &mut last, &events) {
                    shared.executed.store(last, Ordering::Release);
                }
            }
            ToExecutor::Notify(n) => machine.notify(n),
            ToExecutor::Stop => return,
        }
    }
}

/// Loads a checkpoint received from a peer, unless execution already passed it.
fn install_checkpoint<M: StateMachine>(
    machine: &mut M,
    mut install: Install,
    last: &mut u64,
    events: &Sender<ToConsensus>,
) -> bool {
    if install.slot <= *last {
        return false;
    }
    if let Err(e) = machine.load_checkpoint(&mut install.reader) {
        tracing::error!(slot = install.slot, error = %e, "loading a received checkpoint failed");
        return false;
    }
    *last = install.slot;
    let _ = events.send(ToConsensus::Core(Input::CheckpointInstalled { slot: Slot(install.slot) }));
    true
}

fn execute_slot<M: StateMachine>(
    machine: &mut M,
    slot: Slot,
    value: Value,
    replies: Vec<Option<Waiter>>,
    histograms: &Histograms,
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
