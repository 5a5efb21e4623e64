//! The I/O thread: applies the core's writes in order and makes each batch durable with one
//! sync (group commit), then reports `Durable { seq }` to the consensus thread; reads log
//! ranges back for lagging peers after the writes queued before them.
//!
//! A full disk (ENOSPC) neither wedges nor silently stops the replica: the I/O thread marks
//! it (`Health::DiskFull`: writes are refused at the door with `ReplicateError::DiskFull`,
//! reads are still served), then retries the failed batch with backoff. The log refuses use
//! after a failed write ("fsyncgate": what reached the medium is unknown), so each retry
//! discards what lies after the log's durable end (the end of its last successful sync: even
//! bytes a failed fsync left readable in the page cache go), reopens the storage, whose
//! recovery then finds exactly the acknowledged state, and applies the whole batch again
//! (every write is idempotent: a slot written twice at one ballot keeps one value). Nothing was reported durable, so nothing is lost; once the batch is durable the
//! replica resumes by itself. Any other storage error (EIO on fsync) stops the replica.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use rsl_core::{Input, Write};
use rsl_storage::{DurableEnd, Log, MetaStore};
use rsl_store::{StorageDisk, StoreError};

use crate::channels::{ToConsensus, ToIo};
use crate::shared::Shared;
use crate::status::StopCause;

/// A replica's storage as the I/O thread owns it: the core's writes mapped onto a log and a
/// metadata blob (`rsl_store`, the same code the simulator runs), on files, mapped files or
/// memory.
pub(crate) type Store<L, M> = StorageDisk<L, M>;

/// Opens the replica's storage again after a failed write: first discards what lies after
/// the failed log's durable end (`None`: unknown, recovery alone decides), then recovers.
pub(crate) struct Reopen<L: Log, M: MetaStore> {
    /// Where the storage lives, for the full-disk message (a data directory, or "memory").
    pub(crate) place: String,
    #[allow(clippy::type_complexity)]
    pub(crate) open: Box<dyn FnMut(Option<DurableEnd>) -> Result<Store<L, M>, StoreError> + Send>,
}

/// The first wait before a batch that failed on a full disk is tried again.
pub(crate) const DISK_FULL_RETRY_MS_MIN: u64 = 10;
/// The longest wait between two tries (the wait doubles from the first up to this).
pub(crate) const DISK_FULL_RETRY_MS_MAX: u64 = 1_000;

/// The I/O thread: applies each batch of writes, syncs once, reports the highest seq.
/// Every batch queued while the previous sync ran joins the next one (group commit).
pub(crate) fn run<L: Log + 'static, M: MetaStore + 'static>(
    disk: Store<L, M>,
    reopen: Reopen<L, M>,
    jobs: Receiver<ToIo>,
    events: Sender<ToConsensus>,
    shared: Arc<Shared>,
) {
    let mut io = Io { disk, reopen, poisoned: None, shared, epoch: Instant::now() };
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
            if let Err(e) = io.persist(&batch) {
                if io.shared.is_running() {
                    // A replica that cannot persist must not vote: stop it, visibly, rather
                    // than lie.
                    io.shared.stop(StopCause::StorageFailure, format!("storage failed: {e}"));
                    let _ = events.send(ToConsensus::Stop);
                }
                return;
            }
            batch.clear();
            if events.send(ToConsensus::Durable { seq }).is_err() {
                return;
            }
        }
        for (token, from, to) in loads.drain(..) {
            let entries = io.disk.load_log(from, to).unwrap_or_else(|e| {
                tracing::warn!(error = %e, "could not read the log back for a peer");
                Vec::new()
            });
            let _ = events.send(ToConsensus::Core(Input::LogLoaded { token, entries }));
        }
    }
}

/// The I/O thread's storage and what it needs to retry on a full disk.
struct Io<L: Log, M: MetaStore> {
    disk: Store<L, M>,
    reopen: Reopen<L, M>,
    /// A write failed: the storage must be reopened before it is used again, after
    /// discarding what lies after the failed log's durable end (kept from the failure).
    poisoned: Option<Option<DurableEnd>>,
    shared: Arc<Shared>,
    /// The commit hint's interval runs on this clock (the store takes time as an input).
    epoch: Instant,
}

impl<L: Log + 'static, M: MetaStore + 'static> Io<L, M> {
    /// Makes `batch` durable, retrying on a full disk until it succeeds, the replica stops,
    /// or another error ends it.
    fn persist(&mut self, batch: &[Write]) -> Result<(), StoreError> {
        let mut wait = Duration::from_millis(DISK_FULL_RETRY_MS_MIN);
        loop {
            match self.try_persist(batch) {
                Ok(()) => {
                    if self.shared.disk_full_error().is_some() {
                        tracing::info!(place = self.reopen.place, "space freed: writes resume");
                        self.shared.set_disk_full(None);
                    }
                    return Ok(());
                }
                Err(e) if e.is_no_space() => {
                    self.shared.metrics.counters.disk_full.inc();
                    if self.shared.disk_full_error().is_none() {
                        let reason = format!("{e} in {}", self.reopen.place);
                        tracing::error!(reason, "disk full: writes refused until space is freed");
                        self.shared.set_disk_full(Some(reason));
                    }
                }
                Err(e) => return Err(e),
            }
            if !self.pause(wait) {
                return Err(StoreError::Storage(rsl_storage::StorageError::NoSpace {
                    op: "retry (the replica stopped)",
                }));
            }
            wait = (wait * 2).min(Duration::from_millis(DISK_FULL_RETRY_MS_MAX));
        }
    }

    fn try_persist(&mut self, batch: &[Write]) -> Result<(), StoreError> {
        if let Some(end) = self.poisoned {
            self.disk = (self.reopen.open)(end)?;
            self.poisoned = None;
        }
        let started = Instant::now();
        let now_ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        let result = self.disk.persist(batch, now_ms);
        let micros = started.elapsed().as_micros() as u64;
        self.shared.metrics.sync.record_micros(micros);
        self.shared.metrics.counters.syncs.inc();
        self.shared.metrics.counters.sync_micros_total.inc_by(micros);
        if result.is_err() {
            self.poisoned = Some(self.disk.log().durable_end());
        }
        result
    }

    /// Waits `wait` before the next try, in short steps so that a shutdown is not held up;
    /// false if the replica stopped meanwhile.
    fn pause(&self, wait: Duration) -> bool {
        let until = Instant::now() + wait;
        while Instant::now() < until {
            if !self.shared.is_running() {
                return false;
            }
            std::thread::sleep((until - Instant::now()).min(Duration::from_millis(20)));
        }
        self.shared.is_running()
    }
}
