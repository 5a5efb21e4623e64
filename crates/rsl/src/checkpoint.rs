//! The checkpoint writer: the executor hands over a cheap snapshot and a [`Checkpointer`]
//! writes it out on a thread of its own, then tells the core `CheckpointSaved` (after which
//! the core truncates the log behind it). It never blocks the executor.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crossbeam_channel::Sender;
use rsl_core::{Membership, Slot};
use rsl_storage::{CheckpointFiles, CheckpointStore, FsMedia, Media};

use crate::channels::{checkpoint_saved, ToConsensus};
use crate::state_machine::Snapshot;

/// The checkpoint store shared by the checkpoint writer and checkpoint shipping: files in
/// the data directory (`C = FsMedia`), or memory (`MemMedia`, a `LocalCluster`'s replicas).
pub(crate) type Checkpoints<C = FsMedia> = Arc<Mutex<CheckpointFiles<C>>>;

/// Writes snapshots durably. Implementations must not block the caller.
pub(crate) trait Checkpointer: Send + 'static {
    /// Starts writing `snapshot`, the state after `slot`, under `membership` (the membership
    /// in effect after `slot`, kept in the checkpoint's header); reports back through
    /// `events`.
    fn start(
        &mut self,
        slot: Slot,
        membership: &Membership,
        snapshot: Box<dyn Snapshot>,
        events: Sender<ToConsensus>,
    );
}

/// Writes checkpoints to the checkpoint store on a thread of their own, one at a time.
pub(crate) struct FileCheckpointer<C: Media = FsMedia> {
    store: Checkpoints<C>,
    busy: Arc<AtomicBool>,
}

impl<C: Media> FileCheckpointer<C> {
    pub(crate) fn new(store: Checkpoints<C>) -> FileCheckpointer<C> {
        FileCheckpointer { store, busy: Arc::new(AtomicBool::new(false)) }
    }
}

impl<C: Media + 'static> Checkpointer for FileCheckpointer<C> {
    fn start(
        &mut self,
        slot: Slot,
        membership: &Membership,
        snapshot: Box<dyn Snapshot>,
        events: Sender<ToConsensus>,
    ) {
        if self.busy.swap(true, Ordering::AcqRel) {
            tracing::debug!(slot = slot.0, "a checkpoint is already being written; skipped");
            return;
        }
        let store = self.store.clone();
        let busy = self.busy.clone();
        let header = rsl_store::encode_checkpoint_header(membership);
        let spawned = std::thread::Builder::new().name("rsl-checkpoint".into()).spawn(move || {
            match write_checkpoint(&store, slot, &header, snapshot.as_ref()) {
                Ok(bytes) => {
                    tracing::info!(slot = slot.0, bytes, "checkpoint saved");
                    checkpoint_saved(&events, slot);
                }
                Err(e) => tracing::error!(slot = slot.0, error = %e, "checkpoint failed"),
            }
            busy.store(false, Ordering::Release);
        });
        if spawned.is_err() {
            self.busy.store(false, Ordering::Release);
        }
    }
}

fn write_checkpoint<C: Media>(
    store: &Checkpoints<C>,
    slot: Slot,
    header: &[u8],
    snapshot: &dyn Snapshot,
) -> Result<u64, String> {
    let mut writer =
        store.lock().expect("checkpoint lock").begin(slot.0, header).map_err(|e| e.to_string())?;
    snapshot.write_to(&mut writer).map_err(|e| e.to_string())?;
    let info = store.lock().expect("checkpoint lock").commit(writer).map_err(|e| e.to_string())?;
    Ok(info.data_bytes)
}
