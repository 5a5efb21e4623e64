//! The I/O thread's view of storage: apply the core's writes in order and make them durable
//! with one sync per batch (group commit), recover what the disk holds at start, and read
//! log ranges back for catch-up.

use std::collections::BTreeMap;

use rsl_core::{Ballot, LogEntry, Membership, Recovered, Slot, Write};

/// A storage failure the I/O thread cannot work around (the replica stops: a replica that
/// cannot persist must not vote).
pub type DiskError = String;

/// Durable storage as the runtime uses it.
pub trait Disk: Send + 'static {
    /// Applies `writes` in order, then makes all of them durable with one sync.
    fn persist(&mut self, writes: &[Write]) -> Result<(), DiskError>;
    /// What the disk holds, for `Replica::new`.
    fn recover(&mut self) -> Result<Recovered, DiskError>;
    /// Accepted entries with slots in `from..=to`, ascending.
    fn load_log(&mut self, from: Slot, to: Slot) -> Result<Vec<LogEntry>, DiskError>;
}

/// A disk in memory: durable for the life of the process only (tests, benchmarks).
#[derive(Debug, Default)]
pub struct MemoryDisk {
    promised: Ballot,
    membership: Option<Membership>,
    commit: Slot,
    log: BTreeMap<Slot, LogEntry>,
    rebuilding: bool,
}

impl Disk for MemoryDisk {
    fn persist(&mut self, writes: &[Write]) -> Result<(), DiskError> {
        for write in writes {
            match write {
                Write::Promise(b) => {
                    assert!(*b >= self.promised, "promise went down");
                    self.promised = *b;
                }
                Write::Accept(e) => {
                    self.log.insert(e.slot, e.clone());
                }
                Write::Commit(s) => self.commit = self.commit.max(*s),
                Write::TruncateSuffix { from } => {
                    self.log.split_off(from);
                }
                Write::TruncatePrefix { before } => {
                    self.log = self.log.split_off(before);
                }
                Write::Rebuilding(on) => self.rebuilding = *on,
            }
        }
        Ok(())
    }

    fn recover(&mut self) -> Result<Recovered, DiskError> {
        Ok(Recovered {
            promised: self.promised,
            membership: self.membership.clone(),
            checkpoint: Slot::ZERO,
            commit: self.commit,
            log: self.log.values().cloned().collect(),
            corrupt: Vec::new(),
            rebuilding: self.rebuilding,
        })
    }

    fn load_log(&mut self, from: Slot, to: Slot) -> Result<Vec<LogEntry>, DiskError> {
        Ok(self.log.range(from..=to).map(|(_, e)| e.clone()).collect())
    }
}
