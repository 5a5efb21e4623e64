//! The runtime's disk over `rsl-storage`: the core's writes mapped onto the log (accepted
//! values), the metadata blob (promised ballot, membership, commit hint) and the checkpoint
//! store, for any storage medium.
//!
//! The commit hint is a hint: it is written with the promise, and at most once per
//! `COMMIT_HINT_INTERVAL` after a sync, so a restart relearns at most that much from peers.

use std::time::{Duration, Instant};

use rsl_core::{Ballot, LogEntry, Membership, Recovered, ReplicaId, Slot, Value, Write};
use rsl_storage::{Log, MetaStore};

use crate::disk::{Disk, DiskError};

/// How often the commit hint is rewritten into metadata (each rewrite costs a few syncs).
pub const COMMIT_HINT_INTERVAL: Duration = Duration::from_millis(500);
/// Bytes of log read per catch-up load.
pub const LOAD_BYTES_MAX: usize = 4 << 20;
const META_VERSION: u8 = 1;

/// The metadata blob: what the replica promised and believes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Meta {
    pub promised: Ballot,
    pub commit: Slot,
    pub membership: Option<Membership>,
}

impl Meta {
    pub fn encode(&self) -> Vec<u8> {
        let mut b = vec![META_VERSION];
        b.extend_from_slice(&self.promised.to_u128().to_le_bytes());
        b.extend_from_slice(&self.commit.0.to_le_bytes());
        if let Some(m) = &self.membership {
            for ids in [&m.voters, &m.learners] {
                b.push(u8::try_from(ids.len()).expect("at most 255 replicas"));
                for id in ids.iter() {
                    b.extend_from_slice(&id.0.to_le_bytes());
                }
            }
        }
        b
    }

    pub fn decode(b: &[u8]) -> Result<Meta, DiskError> {
        let bad = || "metadata blob is malformed".to_string();
        if b.len() < 25 || b[0] != META_VERSION {
            return Err(bad());
        }
        let promised = Ballot::from_u128(u128::from_le_bytes(b[1..17].try_into().unwrap()));
        let commit = Slot(u64::from_le_bytes(b[17..25].try_into().unwrap()));
        let mut rest = &b[25..];
        let mut lists = Vec::new();
        while !rest.is_empty() {
            let n = rest[0] as usize;
            let bytes = rest.get(1..1 + 4 * n).ok_or_else(bad)?;
            let ids = bytes.chunks(4).map(|c| ReplicaId(u32::from_le_bytes(c.try_into().unwrap())));
            lists.push(ids.collect::<Vec<_>>());
            rest = &rest[1 + 4 * n..];
        }
        let membership = match lists.len() {
            0 => None,
            2 => Some(Membership { voters: lists[0].clone(), learners: lists[1].clone() }),
            _ => return Err(bad()),
        };
        Ok(Meta { promised, commit, membership })
    }
}

/// Encodes a slot's value as a log payload.
pub fn encode_value(value: &Value) -> Vec<u8> {
    rsl_core::message::encode_value(value)
}

/// Decodes a log payload; a payload that does not decode is corruption.
pub fn decode_value(payload: &[u8]) -> Result<Value, DiskError> {
    rsl_core::message::decode_value(payload).map_err(|e| format!("log value does not decode: {e}"))
}

/// A disk made of a log and a metadata store.
#[derive(Debug)]
pub struct StorageDisk<L: Log, M: MetaStore> {
    log: L,
    meta: M,
    state: Meta,
    fsync: bool,
    hint_written: Instant,
    hint_dirty: bool,
}

impl<L: Log, M: MetaStore> StorageDisk<L, M> {
    /// Wraps opened storage. `fsync: false` skips the log's syncs (benchmarks only).
    pub fn new(log: L, mut meta: M, fsync: bool) -> Result<Self, DiskError> {
        let state = match meta.load().map_err(|e| e.to_string())? {
            Some(blob) => Meta::decode(&blob)?,
            None => Meta::default(),
        };
        Ok(StorageDisk { log, meta, state, fsync, hint_written: Instant::now(), hint_dirty: false })
    }

    fn store_meta(&mut self) -> Result<(), DiskError> {
        self.meta.store(&self.state.encode()).map_err(|e| e.to_string())?;
        self.hint_written = Instant::now();
        self.hint_dirty = false;
        Ok(())
    }

    fn apply(&mut self, write: &Write) -> Result<bool, DiskError> {
        let err = |e: rsl_storage::StorageError| e.to_string();
        match write {
            Write::Promise(b) => {
                assert!(*b >= self.state.promised, "a promise never goes down");
                self.state.promised = *b;
                return Ok(true);
            }
            Write::Accept(e) => self
                .log
                .append(e.slot.0, e.ballot.to_u128(), &encode_value(&e.value))
                .map_err(err)?,
            Write::Commit(s) => {
                if *s > self.state.commit {
                    self.state.commit = *s;
                    self.hint_dirty = true;
                }
            }
            Write::TruncateSuffix { from } => self.log.truncate_suffix(from.0).map_err(err)?,
            Write::TruncatePrefix { before } => self.log.truncate_prefix(before.0).map_err(err)?,
        }
        Ok(false)
    }

    /// Sets the membership kept in metadata (bootstrap and configuration changes).
    pub fn set_membership(&mut self, membership: Membership) -> Result<(), DiskError> {
        self.state.membership = Some(membership);
        self.store_meta()
    }
}

impl<L: Log + 'static, M: MetaStore + 'static> Disk for StorageDisk<L, M> {
    fn persist(&mut self, writes: &[Write]) -> Result<(), DiskError> {
        let mut meta_changed = false;
        for w in writes {
            meta_changed |= self.apply(w)?;
        }
        if self.fsync {
            self.log.sync().map_err(|e| e.to_string())?;
        }
        let hint_due = self.hint_dirty && self.hint_written.elapsed() >= COMMIT_HINT_INTERVAL;
        if meta_changed || hint_due {
            self.store_meta()?;
        }
        Ok(())
    }

    fn recover(&mut self) -> Result<Recovered, DiskError> {
        let corrupt: Vec<(Slot, Ballot)> = self
            .log
            .corrupt_slots()
            .into_iter()
            .map(|(s, b)| (Slot(s), Ballot::from_u128(b)))
            .collect();
        let mut log = Vec::new();
        if let (Some(first), Some(last)) = (self.log.first_slot(), self.log.last_slot()) {
            let mut from = first;
            while from <= last {
                let records = self.log.read_range(from, last + 1, LOAD_BYTES_MAX);
                let records = records.map_err(|e| e.to_string())?;
                let Some(end) = records.last().map(|r| r.slot) else { break };
                for r in records {
                    let value = decode_value(&r.payload)?;
                    log.push(LogEntry {
                        slot: Slot(r.slot),
                        ballot: Ballot::from_u128(r.ballot),
                        value,
                    });
                }
                from = end + 1;
            }
        }
        Ok(Recovered {
            promised: self.state.promised,
            membership: self.state.membership.clone(),
            checkpoint: Slot::ZERO,
            commit: self.state.commit,
            log,
            corrupt,
        })
    }

    fn load_log(&mut self, from: Slot, to: Slot) -> Result<Vec<LogEntry>, DiskError> {
        let records = self.log.read_range(from.0, to.0 + 1, LOAD_BYTES_MAX);
        let records = records.map_err(|e| e.to_string())?;
        records
            .into_iter()
            .map(|r| {
                let value = decode_value(&r.payload)?;
                Ok(LogEntry { slot: Slot(r.slot), ballot: Ballot::from_u128(r.ballot), value })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_round_trips_and_rejects_garbage() {
        let m = Meta {
            promised: Ballot { round: 7, replica: 3 },
            commit: Slot(99),
            membership: Some(Membership::new([1, 2, 3])),
        };
        assert_eq!(Meta::decode(&m.encode()).unwrap(), m);
        let bare = Meta { membership: None, ..m.clone() };
        assert_eq!(Meta::decode(&bare.encode()).unwrap(), bare);
        assert!(Meta::decode(&m.encode()[..20]).is_err());
        let mut wrong = m.encode();
        wrong[0] = 9;
        assert!(Meta::decode(&wrong).is_err());
    }
}
