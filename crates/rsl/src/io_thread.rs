//! The I/O thread: applies the core's writes in order and makes each batch durable with one
//! sync (group commit), then reports `Durable { seq }` to the consensus thread; reads log
//! ranges back for lagging peers after the writes queued before them.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};
use rsl_core::{Input, Write};
use rsl_storage::{Log, MetaStore};
use rsl_store::StorageDisk;

use crate::channels::{ToConsensus, ToIo};
use crate::shared::Shared;

/// A replica's storage as the I/O thread owns it: the core's writes mapped onto a log and a
/// metadata blob (`rsl_store`, the same code the simulator runs), on files, mapped files or
/// memory.
pub(crate) type Store<L, M> = StorageDisk<L, M>;

/// The I/O thread: applies each batch of writes, syncs once, reports the highest seq.
/// Every batch queued while the previous sync ran joins the next one (group commit).
pub(crate) fn run<L: Log + 'static, M: MetaStore + 'static>(
    mut disk: Store<L, M>,
    jobs: Receiver<ToIo>,
    events: Sender<ToConsensus>,
    shared: Arc<Shared>,
) {
    let mut batch: Vec<Write> = Vec::new();
    let mut seq = 0;
    let mut loads = Vec::new();
    // The commit hint's interval runs on this clock (the store takes time as an input).
    let epoch = Instant::now();
    while let Ok(first) = jobs.recv() {
        for job in std::iter::once(first).chain(jobs.try_iter()) {
            match job {
                ToIo::Writes(writes) => {
                    for (s, w) in writes {
                        assert!(s > seq, "writes out of seq order: {s} after {seq}");
                        seq = s;
                        batch.push(w);
                    }
                }
                ToIo::Load { token, from, to } => loads.push((token, from, to)),
            }
        }
        if !batch.is_empty() {
            let started = Instant::now();
            let now_ms = u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
            let result = disk.persist(&batch, now_ms);
            shared.histograms.sync.record_micros(started.elapsed().as_micros() as u64);
            shared.counters.syncs.fetch_add(1, Ordering::Relaxed);
            if let Err(e) = result {
                // A replica that cannot persist must not vote: stop it rather than lie.
                tracing::error!(error = %e, "storage failed; stopping this replica");
                let _ = events.send(ToConsensus::Stop);
                return;
            }
            batch.clear();
            if events.send(ToConsensus::Durable { seq }).is_err() {
                return;
            }
        }
        for (token, from, to) in loads.drain(..) {
            let entries = disk.load_log(from, to).unwrap_or_else(|e| {
                tracing::warn!(error = %e, "could not read the log back for a peer");
                Vec::new()
            });
            let _ = events.send(ToConsensus::Core(Input::LogLoaded { token, entries }));
        }
    }
}
