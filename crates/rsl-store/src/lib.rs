//! rsl-store: the protocol core's writes mapped onto `rsl-storage`, shared by the runtime
//! (`rsl`, on files) and the simulator (`rsl-sim`, on the seeded in-memory disk), so the
//! simulator runs the storage code production runs.
//!
//! Accepted values go to the write-ahead log; the promised ballot, the membership and the
//! commit hint go to the metadata blob. [`StorageDisk::write`] applies writes (log appends
//! reach the medium's page cache, not yet durable); [`StorageDisk::sync`] makes everything
//! written durable with one log sync, then stores the metadata if it changed (group commit:
//! the runtime's I/O thread calls both once per batch, the simulator calls `sync` when its
//! simulated fsync completes). [`StorageDisk::recover`] rebuilds the core's `Recovered` at
//! start, following protocol-aware recovery: a record that cannot be read is reported in
//! `Recovered::corrupt`, never silently dropped.
//!
//! The commit hint is a hint: it is written with the promise, and at most once per
//! [`COMMIT_HINT_INTERVAL_MS`] of the caller's clock after a sync, so a restart relearns at
//! most that much from peers; and before a prefix truncation, which it must cover (recovery
//! takes slots up to it that are in neither the log nor the checkpoint for lost). Time is an input (milliseconds from any origin), so the
//! simulator stays deterministic.

use std::collections::BTreeMap;

use rsl_core::message::DecodeError;
use rsl_core::{Ballot, LogEntry, Membership, Recovered, ReplicaId, Slot, Value, Write};
use rsl_storage::{Log, MetaStore, RecoveryReport, StorageError};

mod checkpoint_header;
pub use checkpoint_header::{
    decode_checkpoint_header, encode_checkpoint_header, CHECKPOINT_HEADER_BYTES_MAX,
    CHECKPOINT_HEADER_VERSION,
};

/// Why the store could not do what was asked. A replica that cannot persist must not vote:
/// the runtime stops it, except on a full disk ([`StoreError::is_no_space`]), where it
/// refuses writes and retries the same sync until space is freed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The log, the metadata or the medium failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The metadata blob does not decode.
    #[error("metadata blob is malformed")]
    MalformedMeta,
    /// A checkpoint's header (the membership it carries) is of an unknown version or does
    /// not decode.
    #[error("checkpoint header of version {version} is malformed or of an unknown version")]
    MalformedCheckpointHeader {
        /// The version byte found.
        version: u8,
    },
    /// A log payload passed its checksum but is not a value (corruption).
    #[error("log value does not decode: {0}")]
    ValueDoesNotDecode(#[from] DecodeError),
    /// Recovery found unreadable regions whose slots are unknown: this replica cannot know
    /// what it accepted there and must be rebuilt from its peers.
    #[error("the log has {regions} unreadable regions of unknown slots: rebuild this replica")]
    UnreadableRegions {
        /// How many regions.
        regions: usize,
    },
}

impl StoreError {
    /// True for a full disk (ENOSPC): nothing is lost, and the same sync succeeds once space
    /// is freed.
    pub fn is_no_space(&self) -> bool {
        matches!(self, StoreError::Storage(StorageError::NoSpace { .. }))
    }
}

/// Results of the store.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// How often the commit hint is rewritten into metadata (each rewrite costs a few syncs).
pub const COMMIT_HINT_INTERVAL_MS: u64 = 500;
/// Bytes of log read per chunk of a catch-up load.
pub const LOAD_BYTES_MAX: usize = 4 << 20;
/// Further chunks a catch-up load reads after the first (a chunk ends early when a read had
/// to be retried).
pub const LOAD_RETRIES_MAX: usize = 4;
const META_VERSION: u8 = 4;
/// Slots kept as suspects in the metadata blob at most (a torn tail is one batch).
pub const SUSPECTS_MAX: usize = 1 << 16;
/// The largest metadata blob `Meta::encode` writes (version 4): the header, every suspect,
/// the rebuilding flag, the slot the replica became a member in, and the membership as a
/// configuration value with its version byte and every member's info.
pub const META_BYTES_MAX: usize =
    25 + 4 + 24 * SUSPECTS_MAX + 1 + 9 + 4 + 1 + rsl_core::limits::CONFIG_VALUE_BYTES_MAX;

// Every value the core can produce under a valid configuration fits one log record
// (docs/limits.md), and the largest metadata blob fits the metadata store.
const _: () =
    assert!(rsl_core::limits::VALUE_BYTES_MAX <= rsl_storage::limits::RECORD_PAYLOAD_BYTES_MAX);
const _: () = assert!(META_BYTES_MAX <= rsl_storage::limits::META_BLOB_BYTES_MAX);

/// The metadata blob: what the replica promised and believes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Meta {
    pub promised: Ballot,
    pub commit: Slot,
    pub membership: Option<Membership>,
    /// Suspects: (slot, ballot) read in a torn tail that recovery discarded. Possibly
    /// acknowledged (docs/storage.md, "the ambiguity"), so reported corrupt at every start
    /// until the slot is written again; kept here because the discarded bytes are gone.
    pub suspects: BTreeMap<u64, u128>,
    /// The disk-loss marker (`Write::Rebuilding`, version 3): the replica lost its disk and
    /// must rebuild before it promises or votes (docs/protocol.md, "Disk loss").
    pub rebuilding: bool,
    /// For a replica that joined a running cluster, the slot of the configuration that made
    /// it a member (`Write::MemberSince`, version 4).
    pub member_since: Option<u64>,
}

impl Meta {
    pub fn encode(&self) -> Vec<u8> {
        assert!(self.suspects.len() <= SUSPECTS_MAX, "suspects bounded");
        let mut b = vec![META_VERSION];
        b.extend_from_slice(&self.promised.to_u128().to_le_bytes());
        b.extend_from_slice(&self.commit.0.to_le_bytes());
        b.extend_from_slice(&(self.suspects.len() as u32).to_le_bytes());
        for (slot, ballot) in &self.suspects {
            b.extend_from_slice(&slot.to_le_bytes());
            b.extend_from_slice(&ballot.to_le_bytes());
        }
        b.push(u8::from(self.rebuilding));
        match self.member_since {
            Some(slot) => {
                b.push(1);
                b.extend_from_slice(&slot.to_le_bytes());
            }
            None => b.push(0),
        }
        // Version 4: the membership as the core encodes a configuration value, so that it
        // keeps every member's info (address, the application's data).
        if let Some(m) = &self.membership {
            let value = encode_value(&Value::Config(m.clone()));
            b.extend_from_slice(&(value.len() as u32).to_le_bytes());
            b.extend_from_slice(&value);
        }
        b
    }

    pub fn decode(b: &[u8]) -> Result<Meta> {
        let bad = || StoreError::MalformedMeta;
        if b.len() < 25 || !(1..=META_VERSION).contains(&b[0]) {
            return Err(bad());
        }
        let promised = Ballot::from_u128(u128::from_le_bytes(b[1..17].try_into().unwrap()));
        let commit = Slot(u64::from_le_bytes(b[17..25].try_into().unwrap()));
        let mut rest = &b[25..];
        let mut suspects = BTreeMap::new();
        if b[0] >= 2 {
            let n = rest.get(..4).ok_or_else(bad)?;
            let n = u32::from_le_bytes(n.try_into().unwrap()) as usize;
            if n > SUSPECTS_MAX {
                return Err(bad());
            }
            let bytes = rest.get(4..4 + 24 * n).ok_or_else(bad)?;
            for c in bytes.chunks(24) {
                let slot = u64::from_le_bytes(c[..8].try_into().unwrap());
                suspects.insert(slot, u128::from_le_bytes(c[8..].try_into().unwrap()));
            }
            rest = &rest[4 + 24 * n..];
        }
        let mut rebuilding = false;
        if b[0] >= 3 {
            rebuilding = match rest.first() {
                Some(0) => false,
                Some(1) => true,
                _ => return Err(bad()),
            };
            rest = &rest[1..];
        }
        let mut member_since = None;
        if b[0] >= 4 {
            member_since = match rest.first() {
                Some(0) => None,
                Some(1) => {
                    let slot = rest.get(1..9).ok_or_else(bad)?;
                    Some(u64::from_le_bytes(slot.try_into().unwrap()))
                }
                _ => return Err(bad()),
            };
            rest = &rest[if member_since.is_some() { 9 } else { 1 }..];
            let membership = match rest.len() {
                0 => None,
                _ => {
                    let n = rest.get(..4).ok_or_else(bad)?;
                    let n = u32::from_le_bytes(n.try_into().unwrap()) as usize;
                    let value = rest.get(4..).filter(|v| v.len() == n).ok_or_else(bad)?;
                    match decode_value(value) {
                        Ok(Value::Config(m)) => Some(m),
                        _ => return Err(bad()),
                    }
                }
            };
            return Ok(Meta { promised, commit, membership, suspects, rebuilding, member_since });
        }
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
            2 => Some(Membership {
                voters: lists[0].clone(),
                learners: lists[1].clone(),
                info: Default::default(),
            }),
            _ => return Err(bad()),
        };
        Ok(Meta { promised, commit, membership, suspects, rebuilding, member_since })
    }
}

/// The largest encoding buffer kept from one accept to the next.
const SCRATCH_KEPT_BYTES_MAX: usize = 1 << 20;

/// Encodes a slot's value as a log payload.
pub fn encode_value(value: &Value) -> Vec<u8> {
    rsl_core::message::encode_value(value)
}

/// Decodes a log payload; a payload that does not decode is corruption.
pub fn decode_value(payload: &[u8]) -> Result<Value> {
    Ok(rsl_core::message::decode_value(payload)?)
}

/// A disk made of a log and a metadata store.
#[derive(Debug)]
pub struct StorageDisk<L: Log, M: MetaStore> {
    log: L,
    meta: M,
    state: Meta,
    fsync: bool,
    /// Unreadable regions before acknowledged records (their slots are unknown).
    regions: usize,
    meta_dirty: bool,
    hint_dirty: bool,
    hint_written_ms: u64,
    /// An accept's value is encoded here, then appended: one buffer kept for every write.
    scratch: Vec<u8>,
}

impl<L: Log, M: MetaStore> StorageDisk<L, M> {
    /// Wraps opened storage; `report` is what the log's recovery found when it was opened.
    /// `fsync: false` skips the log's syncs (benchmarks only). `now_ms` starts the commit
    /// hint's interval. Identities readable in a discarded torn tail become suspects, stored
    /// in the metadata before this returns.
    pub fn new(
        log: L,
        report: &RecoveryReport,
        mut meta: M,
        fsync: bool,
        now_ms: u64,
    ) -> Result<Self> {
        let state = match meta.load()? {
            Some(blob) => Meta::decode(&blob)?,
            None => Meta::default(),
        };
        let regions = report.corrupt_regions.len();
        let mut disk = StorageDisk {
            log,
            meta,
            state,
            fsync,
            regions,
            meta_dirty: false,
            hint_dirty: false,
            hint_written_ms: now_ms,
            scratch: Vec::new(),
        };
        let torn = report.torn.as_ref().map_or(&[][..], |t| &t.records[..]);
        let mut new = false;
        for &(slot, ballot) in torn {
            let known = disk.state.suspects.get(&slot).copied();
            if known.is_none_or(|b| b < ballot) && disk.state.suspects.len() < SUSPECTS_MAX {
                disk.state.suspects.insert(slot, ballot);
                new = true;
            }
        }
        if new {
            disk.store_meta(now_ms)?;
        }
        Ok(disk)
    }

    fn store_meta(&mut self, now_ms: u64) -> Result<()> {
        self.meta.store(&self.state.encode())?;
        self.hint_written_ms = now_ms;
        self.hint_dirty = false;
        self.meta_dirty = false;
        Ok(())
    }

    fn apply(&mut self, write: &Write) -> Result<()> {
        match write {
            Write::Promise(b) => {
                assert!(*b >= self.state.promised, "a promise never goes down");
                self.state.promised = *b;
                self.meta_dirty = true;
            }
            Write::Accept(e) => {
                if self.state.suspects.get(&e.slot.0).is_some_and(|b| *b <= e.ballot.to_u128()) {
                    // Written again: once this sync returns, the suspect is settled.
                    self.state.suspects.remove(&e.slot.0);
                    self.meta_dirty = true;
                }
                rsl_core::message::encode_value_into(&e.value, &mut self.scratch);
                let payload = &self.scratch;
                debug_assert!(decode_value(payload).is_ok_and(|v| v == e.value), "round-trips");
                self.log.append(e.slot.0, e.ballot.to_u128(), payload)?;
                if self.scratch.capacity() > SCRATCH_KEPT_BYTES_MAX {
                    // A large value's buffer is not kept for the small ones after it.
                    self.scratch = Vec::new();
                }
            }
            Write::Commit(s) => {
                if *s > self.state.commit {
                    self.state.commit = *s;
                    self.hint_dirty = true;
                }
            }
            Write::TruncateSuffix { from } => {
                self.log.truncate_suffix(from.0)?;
                self.meta_dirty |= !self.state.suspects.split_off(&from.0).is_empty();
            }
            Write::TruncatePrefix { before } => {
                // The slots below a truncation are chosen and held by a checkpoint: the
                // commit hint covers them durably before they leave the log. Recovery takes
                // a slot up to the hint found in neither the log nor the checkpoint it loaded
                // for lost (a newer checkpoint rotted); with the hint behind the truncation
                // it promised such slots as empty (the default swarm's checkpoint fallbacks,
                // seed 157: a quorum without their other holders filled one with a no-op).
                // The log is synced first: the metadata never runs ahead of it.
                let floor = Slot(before.0.saturating_sub(1));
                if floor > self.state.commit {
                    self.state.commit = floor;
                    self.hint_dirty = true;
                }
                if self.hint_dirty {
                    if self.fsync {
                        self.log.sync()?;
                    }
                    self.store_meta(self.hint_written_ms)?;
                }
                self.log.truncate_prefix(before.0)?;
                let kept = self.state.suspects.split_off(&before.0);
                self.meta_dirty |= !self.state.suspects.is_empty();
                self.state.suspects = kept;
            }
            Write::MemberSince(slot) => {
                self.state.member_since = Some(slot.0);
                self.meta_dirty = true;
            }
            Write::Rebuilding(on) => {
                // Kept in the metadata, stored after the log's sync: a cleared marker comes
                // with the entries and the commit hint written before it.
                self.state.rebuilding = *on;
                self.meta_dirty = true;
            }
        }
        Ok(())
    }

    /// Applies `writes` in order and hands the log appends to the medium (its page cache):
    /// written, not yet durable. A promise is kept for the next `sync`.
    pub fn write(&mut self, writes: &[Write]) -> Result<()> {
        for w in writes {
            self.apply(w)?;
        }
        Ok(self.log.write_out()?)
    }

    /// Makes everything written durable: one log sync, then the metadata if a promise
    /// changed or the commit hint is due (`now_ms` is the caller's clock).
    pub fn sync(&mut self, now_ms: u64) -> Result<()> {
        if self.fsync {
            self.log.sync()?;
        }
        let hint_due = self.hint_dirty
            && now_ms.saturating_sub(self.hint_written_ms) >= COMMIT_HINT_INTERVAL_MS;
        if self.meta_dirty || hint_due {
            self.store_meta(now_ms)?;
        }
        Ok(())
    }

    /// `write` then `sync`: one batch, one sync (the runtime's I/O thread).
    pub fn persist(&mut self, writes: &[Write], now_ms: u64) -> Result<()> {
        self.write(writes)?;
        self.sync(now_ms)
    }

    /// Sets the membership kept in metadata (bootstrap and configuration changes).
    pub fn set_membership(&mut self, membership: Membership) -> Result<()> {
        self.state.membership = Some(membership);
        let now = self.hint_written_ms;
        self.store_meta(now)
    }

    /// The log (tests and fault injection).
    pub fn log(&self) -> &L {
        &self.log
    }

    /// What the disk holds, for `Replica::new`. A record that fails its checksum when read
    /// here is read once more (a read error may be transient); if it fails again, or its
    /// value does not decode, it is reported corrupt. Suspects (identities read in a discarded
    /// torn tail) are reported corrupt too unless a newer readable record supersedes them.
    /// Unreadable regions of unknown slots are an error: the replica cannot know what it
    /// accepted there and must be rebuilt from peers.
    pub fn recover(&mut self) -> Result<Recovered> {
        if self.regions > 0 {
            return Err(StoreError::UnreadableRegions { regions: self.regions });
        }
        let mut corrupt: BTreeMap<u64, u128> = self.log.corrupt_slots().into_iter().collect();
        let mut log: BTreeMap<u64, LogEntry> = BTreeMap::new();
        if let (Some(first), Some(last)) = (self.log.first_slot(), self.log.last_slot()) {
            let mut from = first;
            while from <= last {
                let (entries, bad) = self.read_entries(from, last)?;
                let end = entries.last().map(|e| e.slot.0).max(bad.map(|(s, _)| s));
                for e in entries {
                    log.insert(e.slot.0, e);
                }
                if let Some((slot, ballot)) = bad {
                    corrupt.insert(slot, ballot);
                }
                let Some(end) = end else { break };
                from = end + 1;
            }
        }
        for (&slot, &ballot) in &self.state.suspects {
            let newer = log.get(&slot).map(|e| e.ballot.to_u128()).max(corrupt.get(&slot).copied());
            if newer.is_none_or(|b| b < ballot) {
                log.remove(&slot);
                corrupt.insert(slot, ballot);
            }
        }
        for slot in corrupt.keys() {
            log.remove(slot);
        }
        Ok(Recovered {
            promised: self.state.promised,
            membership: self.state.membership.clone(),
            checkpoint: Slot::ZERO,
            commit: self.state.commit,
            log: log.into_values().collect(),
            corrupt: corrupt.into_iter().map(|(s, b)| (Slot(s), Ballot::from_u128(b))).collect(),
            rebuilding: self.state.rebuilding,
            member_since: self.state.member_since.map(Slot),
        })
    }

    /// Reads entries of slots `from..=to` (up to `LOAD_BYTES_MAX`), stopping at the first
    /// record that stays unreadable after one retry; returns it as `(slot, ballot)`.
    #[allow(clippy::type_complexity)]
    fn read_entries(&mut self, from: u64, to: u64) -> Result<(Vec<LogEntry>, Option<(u64, u128)>)> {
        let mut bad = None;
        let records = match self.log.read_range(from, to + 1, LOAD_BYTES_MAX) {
            Ok(records) => records,
            Err(StorageError::CorruptRecord { slot, ballot }) => {
                // Read up to the bad record, then the bad record alone once more.
                let mut records = match slot > from {
                    true => {
                        let records = self.log.read_range(from, slot, LOAD_BYTES_MAX);
                        records?
                    }
                    false => Vec::new(),
                };
                let complete = records.last().is_none_or(|r| r.slot + 1 >= slot);
                if complete {
                    match self.log.read(slot) {
                        Ok(Some(r)) => records.push(r),
                        _ => bad = Some((slot, ballot)),
                    }
                }
                records
            }
            Err(e) => return Err(e.into()),
        };
        let mut entries = Vec::with_capacity(records.len());
        for r in records {
            match decode_value(&r.payload) {
                Ok(value) => entries.push(LogEntry {
                    slot: Slot(r.slot),
                    ballot: Ballot::from_u128(r.ballot),
                    value,
                }),
                Err(_) => {
                    // It passed its checksum but is not a value: report it, do not use it.
                    bad = Some((r.slot, r.ballot));
                    break;
                }
            }
        }
        Ok((entries, bad))
    }

    /// Accepted entries with slots in `from..=to`, ascending, for catch-up. Stops before a
    /// record that cannot be read (after one retry): the caller gets a shorter range and asks
    /// again later, it never gets bad bytes.
    pub fn load_log(&mut self, from: Slot, to: Slot) -> Result<Vec<LogEntry>> {
        let (mut entries, bad) = self.read_entries(from.0, to.0)?;
        // A read that failed once and succeeded on retry ends the chunk early: read on.
        let mut retries = 0;
        while bad.is_none() && retries < LOAD_RETRIES_MAX {
            let Some(next) = entries.last().map(|e| e.slot.0 + 1).filter(|&n| n <= to.0) else {
                break;
            };
            let (more, bad) = self.read_entries(next, to.0)?;
            if more.is_empty() || bad.is_some() {
                entries.extend(more);
                break;
            }
            entries.extend(more);
            retries += 1;
        }
        Ok(entries)
    }
}

#[cfg(test)]
mod tests;
