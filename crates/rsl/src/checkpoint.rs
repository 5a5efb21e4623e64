//! Writing checkpoints off the consensus path: the executor hands over a cheap snapshot and
//! a checkpointer writes it out on its own thread, then tells the core `CheckpointSaved`.

use crossbeam_channel::Sender;
use rsl_core::Slot;

use crate::node::Event;
use crate::state_machine::Snapshot;

/// Writes snapshots durably. Implementations must not block the caller.
pub(crate) trait Checkpointer: Send + 'static {
    /// Starts writing `snapshot`, the state after `slot`; reports back through `events`.
    fn start(&mut self, slot: Slot, snapshot: Box<dyn Snapshot>, events: Sender<Event>);
}
