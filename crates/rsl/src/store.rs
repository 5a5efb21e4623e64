//! The runtime's disk over `rsl-storage`: [`rsl_store::StorageDisk`] (the core's writes
//! mapped onto the log and the metadata blob, shared with the simulator) given the runtime's
//! clock for the commit hint's interval.

use std::time::Instant;

use rsl_core::{LogEntry, Membership, Recovered, Slot, Write};
use rsl_storage::{Log, MetaStore, RecoveryReport};
pub use rsl_store::{decode_value, encode_value, Meta, COMMIT_HINT_INTERVAL_MS, LOAD_BYTES_MAX};

use crate::disk::{Disk, DiskError};

/// A disk made of a log and a metadata store, on the wall clock.
#[derive(Debug)]
pub struct StorageDisk<L: Log, M: MetaStore> {
    inner: rsl_store::StorageDisk<L, M>,
    epoch: Instant,
}

impl<L: Log, M: MetaStore> StorageDisk<L, M> {
    /// Wraps opened storage (`report`: what the log's recovery found). `fsync: false` skips
    /// the log's syncs (benchmarks only).
    pub fn new(log: L, report: &RecoveryReport, meta: M, fsync: bool) -> Result<Self, DiskError> {
        let inner = rsl_store::StorageDisk::new(log, report, meta, fsync, 0)?;
        Ok(StorageDisk { inner, epoch: Instant::now() })
    }

    /// Sets the membership kept in metadata (bootstrap and configuration changes).
    pub fn set_membership(&mut self, membership: Membership) -> Result<(), DiskError> {
        self.inner.set_membership(membership)
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

impl<L: Log + 'static, M: MetaStore + 'static> Disk for StorageDisk<L, M> {
    fn persist(&mut self, writes: &[Write]) -> Result<(), DiskError> {
        let now = self.now_ms();
        self.inner.persist(writes, now)
    }

    fn recover(&mut self) -> Result<Recovered, DiskError> {
        self.inner.recover()
    }

    fn load_log(&mut self, from: Slot, to: Slot) -> Result<Vec<LogEntry>, DiskError> {
        self.inner.load_log(from, to)
    }
}
