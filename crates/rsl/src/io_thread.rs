//! The I/O thread: applies the core's writes in order and makes each batch durable with one
//! sync (group commit), then sends the promises and votes that waited for those writes
//! (`rsl_core::Action::SendWhenDurable`: they leave from here, without a hand-over back to
//! the consensus thread first) and reports `Durable { seq }` to the consensus thread; reads
//! log ranges back for lagging peers after the writes queued before them.
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
use rsl_net::Transport;
use rsl_storage::{DurableEnd, Log, MetaStore};
use rsl_store::{StorageDisk, StoreError};

use crate::channels::{SendWhenDurable, ToConsensus, ToIo};
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

/// The I/O thread: applies each batch of writes, syncs once, sends what waited for the
/// sync, reports the highest seq. Every batch queued while the previous sync ran joins the
/// next one (group commit).
pub(crate) fn run<L: Log + 'static, M: MetaStore + 'static>(
    disk: Store<L, M>,
    reopen: Reopen<L, M>,
    jobs: Receiver<ToIo>,
    events: Sender<ToConsensus>,
    transport: Arc<dyn Transport>,
    shared: Arc<Shared>,
) {
    let mut io = Io { disk, reopen, poisoned: None, shared, epoch: Instant::now() };
    let mut batch: Vec<Write> = Vec::new();
    let mut sends: Vec<SendWhenDurable> = Vec::new();
    let mut seq = 0;
    let mut loads = Vec::new();
    while let Ok(first) = jobs.recv() {
        for job in std::iter::once(first).chain(jobs.try_iter()) {
            match job {
                ToIo::Writes { writes, sends: waiting } => {
                    for (s, w) in writes {
                        assert!(s > seq, "writes out of seq order: {s} after {seq}");
                        seq = s;
                        batch.push(w);
                    }
                    // Each rests on a write queued with it or before it (the core issued
                    // that write before the message): durable once this batch is.
                    for send in &waiting {
                        assert!(send.seq <= seq, "a send waits for write {} of {seq}", send.seq);
                    }
                    sends.extend(waiting);
                }
                ToIo::Load { token, from, to } => loads.push((token, from, to)),
            }
        }
        let synced = !batch.is_empty();
        if synced {
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
        }
        // Every write up to `seq` is durable now (this batch's sync, or an earlier one's):
        // what waited for them leaves first, then the core hears of the sync.
        crate::envelope::send_sealed_all(&*transport, sends.drain(..).map(|s| (s.to, s.sealed)));
        if synced && events.send(ToConsensus::Durable { seq }).is_err() {
            return;
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use bytes::Bytes;
    use rsl_core::{Ballot, ReplicaId};
    use rsl_net::SendError;
    use rsl_storage::{LogOptions, MemDisk, MetaFiles, SegmentLog};

    use super::*;
    use crate::envelope::Sealed;

    /// A transport that records, for each payload sent, how many syncs its disk had made.
    struct SyncsAtSend {
        disk: MemDisk,
        sent: Mutex<Vec<(u32, Bytes, u64)>>,
    }

    impl Transport for SyncsAtSend {
        fn id(&self) -> u32 {
            1
        }
        fn send(&self, to: u32, payload: Bytes) -> Result<(), SendError> {
            let syncs = self.disk.stats().file_syncs;
            self.sent.lock().unwrap().push((to, payload, syncs));
            Ok(())
        }
        fn peer_status(&self, _peer: u32) -> Option<rsl_net::PeerStatus> {
            None
        }
    }

    fn open(
        mem: &MemDisk,
    ) -> Store<SegmentLog<rsl_storage::MemMedia>, MetaFiles<rsl_storage::MemMedia>> {
        let (log, report) = SegmentLog::open(mem.media(), LogOptions::default()).unwrap();
        StorageDisk::new(log, &report, MetaFiles::open(mem.media()), true, 0).unwrap()
    }

    /// A promise or a vote handed to the I/O thread leaves only after the sync that makes
    /// its write durable, and before the consensus thread hears of that sync; one whose write
    /// is durable already leaves without another sync.
    #[test]
    fn what_waits_for_a_write_leaves_after_its_sync_and_before_the_report() {
        let mem = MemDisk::new(1);
        let disk = open(&mem);
        let transport = Arc::new(SyncsAtSend { disk: mem.clone(), sent: Mutex::default() });
        let (jobs_tx, jobs) = crossbeam_channel::unbounded();
        let (events, reports) = crossbeam_channel::unbounded();
        let shared = Arc::new(Shared::new(1, 0, BTreeMap::new(), Duration::from_secs(1)));
        let reopen_mem = mem.clone();
        let reopen =
            Reopen { place: "memory".to_string(), open: Box::new(move |_| Ok(open(&reopen_mem))) };
        let thread_transport: Arc<dyn Transport> = transport.clone();
        let io =
            std::thread::spawn(move || run(disk, reopen, jobs, events, thread_transport, shared));

        let syncs_before = mem.stats().file_syncs;
        let vote = |seq| SendWhenDurable {
            seq,
            to: 2,
            sealed: Sealed::Whole(Bytes::from(vec![seq as u8])),
        };
        let promise = Write::Promise(Ballot::new(1, ReplicaId(2)));
        jobs_tx.send(ToIo::Writes { writes: vec![(1, promise)], sends: vec![vote(1)] }).unwrap();
        let reported = reports.recv().unwrap();
        assert!(matches!(reported, ToConsensus::Durable { seq: 1 }));
        {
            let sent = transport.sent.lock().unwrap();
            assert_eq!(sent.len(), 1, "sent before the report");
            assert!(
                sent[0].2 > syncs_before,
                "sent after the sync ({} syncs before)",
                syncs_before
            );
        }
        // Write 1 is durable: a message resting on it leaves with no write and no sync.
        let syncs = mem.stats().file_syncs;
        jobs_tx.send(ToIo::Writes { writes: Vec::new(), sends: vec![vote(1)] }).unwrap();
        drop(jobs_tx);
        io.join().unwrap();
        let sent = transport.sent.lock().unwrap();
        assert_eq!(sent.len(), 2);
        assert_eq!(mem.stats().file_syncs, syncs, "no sync for a write durable already");
        assert!(reports.try_recv().is_err(), "no report without a sync");
    }
}
