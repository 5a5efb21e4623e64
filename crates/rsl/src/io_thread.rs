//! The I/O thread: applies the core's writes in order and makes each batch durable with one
//! sync (group commit), then reports `Durable { seq }` to the consensus thread; reads log
//! ranges back for lagging peers after the writes queued before them.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};
use rsl_core::{Input, Write};

use crate::channels::{ToConsensus, ToIo};
use crate::disk::Disk;
use crate::shared::Shared;

/// The I/O thread: applies each batch of writes, syncs once, reports the highest seq.
/// Every batch queued while the previous sync ran joins the next one (group commit).
pub(crate) fn run<D: Disk>(
    mut disk: D,
    jobs: Receiver<ToIo>,
    events: Sender<ToConsensus>,
    shared: Arc<Shared>,
) {
    let mut batch: Vec<Write> = Vec::new();
    let mut seq = 0;
    let mut loads = Vec::new();
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
            let result = disk.persist(&batch);
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
