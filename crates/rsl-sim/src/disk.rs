//! A replica's simulated disk: the **real** storage stack (`rsl_store::StorageDisk` over
//! `rsl_storage::SegmentLog` and `MetaFiles`) on a seeded in-memory `MemDisk`, the same code
//! the runtime runs on files.
//!
//! `Action::Persist` writes go to the storage at once (the log record reaches the medium's
//! page cache: *written*, not durable) and join the unsynced queue in seq order. An fsync
//! takes everything queued when it starts and, after a simulated delay, runs the storage's
//! `sync` (one log sync, then the metadata: group commit); the queued writes are then
//! acknowledged. A **process crash** loses nothing written (the page cache survives); a
//! **machine crash** crashes the `MemDisk`: unsynced bytes are lost, all of them or a seeded
//! prefix with the last write torn, or a seeded subset of sectors (`CrashMode`). A restart
//! runs the real recovery (`SegmentLog::open`: a torn tail is discarded, corruption
//! reported) and the real adapter that rebuilds `Recovered`.
//!
//! A **shadow** of the acknowledged state (promise, newest record per slot) is kept beside
//! the real storage, for the checkers ("committed durably") and to cross-check every
//! recovery: recovery must return every acknowledged record, or report it corrupt. A
//! violation is a storage bug ([`Check::Storage`](crate::checker::Check::Storage)).
//!
//! Storage faults drawn per seed ([`DiskFaults`]): records corrupted on write (a payload
//! byte), at rest (at a machine crash), and on read (a log read for catch-up or the
//! recovery scan returns a flipped byte once); the checksums must catch every one.
//!
//! [`StorageBug`] plants a storage bug: `AckBeforeSync` in the simulator's host (durable
//! reported before the sync), the other two in the real recovery code (`rsl-storage`'s
//! feature `planted-bugs`).

use std::collections::{BTreeMap, VecDeque};

use rsl_core::{Ballot, LogEntry, Recovered, Slot, Write};
use rsl_storage::{
    CheckpointFiles, CheckpointOptions, CheckpointStore, CrashMode, Log, LogOptions, MemDisk,
    MemMedia, MetaFiles, SegmentLog,
};
use rsl_store::StorageDisk;

use crate::bugs::StorageBug;
use crate::checker::value_digest;
use crate::rng::Rng;

/// The storage faults of one disk (drawn per seed; zero on disks outside the faulty set).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiskFaults {
    /// Chance (per mille) that an accepted record lands with a corrupt payload byte.
    pub write_corrupt_permille: u32,
    /// Chance (per mille) that a log read (catch-up, or the recovery at a restart) returns
    /// one flipped byte.
    pub read_corrupt_permille: u32,
}

/// Counters of the storage faults a disk saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiskStats {
    pub writes_corrupted: u64,
    pub reads_corrupted: u64,
    pub rests_corrupted: u64,
    /// Records recovery reported corrupt (`Recovered::corrupt`).
    pub reported_corrupt: u64,
    /// Recoveries that discarded a torn tail.
    pub torn_tails: u64,
    /// Checkpoints saved, and corrupted at rest.
    pub checkpoints_saved: u64,
    pub checkpoints_corrupted: u64,
    /// Checkpoints found corrupt when loading the newest one (fell back to an older one).
    pub checkpoints_skipped: u64,
}

/// The acknowledged state, as the simulator knows it (the shadow of the real storage).
#[derive(Debug, Clone, Default)]
pub struct DiskState {
    pub promised: Ballot,
    pub log: BTreeMap<Slot, LogEntry>,
    pub commit: Slot,
    /// Records the last recovery reported corrupt: (slot, ballot).
    pub corrupt: BTreeMap<Slot, Ballot>,
    /// The disk-loss marker (`Write::Rebuilding`).
    pub rebuilding: bool,
    /// Slots a restart found in neither the log nor the checkpoint it loaded (a fallback to
    /// an older checkpoint past the log's truncation): lost data until written again, kept
    /// across crashes (the storage does not know them; the core reports them corrupt).
    pub lost: BTreeMap<Slot, Ballot>,
}

impl DiskState {
    fn apply(&mut self, write: &Write) {
        match write {
            Write::Promise(ballot) => self.promised = *ballot,
            Write::Accept(entry) => {
                self.corrupt.remove(&entry.slot);
                self.lost.remove(&entry.slot);
                self.log.insert(entry.slot, entry.clone());
            }
            Write::Commit(slot) => self.commit = *slot,
            Write::TruncateSuffix { from } => {
                self.log.split_off(from);
                self.corrupt.split_off(from);
            }
            Write::TruncatePrefix { before } => {
                self.log = self.log.split_off(before);
                self.corrupt = self.corrupt.split_off(before);
                self.lost = self.lost.split_off(before);
            }
            Write::Rebuilding(on) => self.rebuilding = *on,
            // No checker reads it; the real storage keeps it in the metadata.
            Write::MemberSince(_) => {}
        }
    }

    fn from_recovered(r: &Recovered) -> DiskState {
        DiskState {
            promised: r.promised,
            log: r.log.iter().map(|e| (e.slot, e.clone())).collect(),
            commit: r.commit,
            corrupt: r.corrupt.iter().copied().collect(),
            rebuilding: r.rebuilding,
            lost: BTreeMap::new(),
        }
    }
}

type Store = StorageDisk<SegmentLog<MemMedia>, MetaFiles<MemMedia>>;

/// One replica's disk.
#[derive(Debug)]
pub struct Disk {
    mem: MemDisk,
    store: Store,
    /// Every accepted record ever written to this disk: (slot, ballot) -> value digest.
    ever: BTreeMap<(Slot, Ballot), u64>,
    /// The checkpoint store (the real one) on the same medium.
    checkpoints: CheckpointFiles<MemMedia>,
    /// The acknowledged state.
    durable: DiskState,
    /// Written, not yet acknowledged, in seq order.
    /// (Each with whether a later truncation, durable at once, already removed it.)
    unsynced: VecDeque<(u64, Write, bool)>,
    /// The fsync in flight covers writes up to this seq.
    syncing_to: Option<u64>,
    /// The last seq written by the current incarnation (seqs restart with a new one).
    last_seq: u64,
    /// Scripted: fsyncs are not started while held.
    pub held: bool,
    /// A planted storage bug (see [`StorageBug`]).
    pub bug: Option<StorageBug>,
    pub faults: DiskFaults,
    pub stats: DiskStats,
    /// Cross-check every recovery against the acknowledged state (see [`Disk::crash`]).
    pub check: bool,
    /// A record rotted at rest since the last recovery: the damage the next recovery will
    /// report in `DiskState::corrupt` (see [`Disk::lost_data`]).
    rotted: bool,
    /// A checkpoint rotted at rest since the last restart: the restart may fall back to an
    /// older one and lose slots (`DiskState::lost`); lost data until then.
    checkpoint_rotted: bool,
    rng: Rng,
}

impl Disk {
    /// A fault-free disk without bugs.
    pub fn new() -> Disk {
        Disk::with(0, None, DiskFaults::default())
    }

    /// A disk whose faults are drawn from `seed`, with a planted storage bug (or none).
    pub fn with(seed: u64, bug: Option<StorageBug>, faults: DiskFaults) -> Disk {
        let mem = MemDisk::new(seed);
        let (store, _) = open(&mem, bug).expect("a new disk opens");
        let checkpoints = CheckpointFiles::open(mem.media(), CheckpointOptions::default())
            .expect("the checkpoint store opens");
        Disk {
            mem,
            store,
            checkpoints,
            ever: BTreeMap::new(),
            durable: DiskState::default(),
            unsynced: VecDeque::new(),
            syncing_to: None,
            last_seq: 0,
            held: false,
            bug,
            faults,
            stats: DiskStats::default(),
            check: true,
            rotted: false,
            checkpoint_rotted: false,
            rng: Rng::new(seed ^ 0x4449_534b),
        }
    }

    /// The empty disk that replaces a lost one, holding only the disk-loss marker (what an
    /// operator's "rejoin" leaves: the replica restarts rebuilding).
    pub fn wiped(seed: u64, bug: Option<StorageBug>, faults: DiskFaults) -> Disk {
        let mut disk = Disk::with(seed, bug, faults);
        disk.write(1, Write::Rebuilding(true));
        disk.begin_sync();
        disk.complete_sync(0);
        disk.last_seq = 0;
        disk
    }

    /// The acknowledged state (what the core was told is durable, or recovery returned).
    pub fn durable(&self) -> &DiskState {
        &self.durable
    }

    /// Whether this disk lost data: it holds records recovery reported corrupt, or a record
    /// that rotted since (a crashed replica's damage, which its recovery will find only at
    /// its restart), or it was wiped and its replica has not finished rebuilding (the
    /// marker is still there).
    pub fn lost_data(&self) -> bool {
        let lost = !self.durable.lost.is_empty() || self.checkpoint_rotted;
        !self.durable.corrupt.is_empty() || self.durable.rebuilding || self.rotted || lost
    }

    /// Slots the restart found lost (see `DiskState::lost`); the rotted checkpoint that lost
    /// them has been found.
    pub fn note_lost(&mut self, slots: impl IntoIterator<Item = Slot>, ballot: Ballot) {
        self.checkpoint_rotted = false;
        self.durable.lost.extend(slots.into_iter().map(|s| (s, ballot)));
    }

    pub fn unsynced(&self) -> usize {
        self.unsynced.len()
    }

    /// Writes to the storage (page cache). Seqs of one incarnation must strictly increase.
    pub fn write(&mut self, seq: u64, write: Write) {
        assert!(seq > self.last_seq, "persist seq {seq} after {}", self.last_seq);
        self.last_seq = seq;
        // A new segment's first write carries its header: corrupt only appends to a tail.
        let tail = self.store.log().bytes_on_disk() > 0;
        if matches!(write, Write::Accept(_))
            && tail
            && self.rng.chance(self.faults.write_corrupt_permille)
        {
            // A payload byte: the record header (its identity) stays readable.
            self.mem.corrupt_next_write_after(64);
            self.stats.writes_corrupted += 1;
        }
        if let Write::Accept(e) = &write {
            self.ever.insert((e.slot, e.ballot), value_digest(&e.value));
        }
        self.store.write(std::slice::from_ref(&write)).expect("the simulated disk writes");
        if matches!(write, Write::TruncatePrefix { .. } | Write::TruncateSuffix { .. }) {
            // The log makes a truncation durable at once (a marker record and a sync), and it
            // removes the records written before it too, acknowledged or not.
            self.durable.apply(&write);
            for (_, earlier, removed) in &mut self.unsynced {
                let covered = match (&write, &*earlier) {
                    (Write::TruncatePrefix { before }, Write::Accept(e)) => e.slot < *before,
                    (Write::TruncateSuffix { from }, Write::Accept(e)) => e.slot >= *from,
                    _ => false,
                };
                *removed |= covered;
            }
        }
        self.unsynced.push_back((seq, write, false));
    }

    /// Starts an fsync if none is in flight and something is queued; returns its last seq.
    pub fn begin_sync(&mut self) -> Option<u64> {
        if self.held || self.syncing_to.is_some() {
            return None;
        }
        let last = self.unsynced.back()?.0;
        self.syncing_to = Some(last);
        Some(last)
    }

    /// Completes the fsync in flight (the storage's `sync` at simulated time `now_ms`, in
    /// milliseconds): its writes are acknowledged. Returns the highest seq acknowledged and
    /// the writes, in order.
    pub fn complete_sync(&mut self, now_ms: u64) -> Option<(u64, Vec<Write>)> {
        let to = self.syncing_to.take()?;
        self.store.sync(now_ms).expect("the simulated disk syncs");
        let mut done = Vec::new();
        while self.unsynced.front().is_some_and(|(seq, _, _)| *seq <= to) {
            let (_, write, removed) = self.unsynced.pop_front().expect("front exists");
            if !removed {
                self.durable.apply(&write);
                done.push(write);
            }
        }
        Some((to, done))
    }

    /// A crash: `machine` crashes the medium (unsynced bytes lost as `mode` says); a process
    /// crash keeps everything written. Runs recovery at once to learn what survived; returns
    /// the accepted entries durable now that were not acknowledged before, or a storage
    /// contract violation.
    pub fn crash(&mut self, machine: Option<CrashMode>) -> Result<Vec<LogEntry>, String> {
        if let Some(mode) = machine {
            self.mem.crash(mode);
        }
        // What recovery may return beyond the acknowledged state: writes never acknowledged.
        let written: Vec<LogEntry> = (self.unsynced.iter())
            .filter_map(|(_, w, removed)| match w {
                Write::Accept(e) if !removed => Some(e.clone()),
                _ => None,
            })
            .collect();
        self.unsynced.clear();
        self.syncing_to = None;
        self.last_seq = 0;
        let before = self.durable.log.clone();
        self.reopen(&written)?;
        let survived = self.durable.log.iter().filter(|(s, e)| before.get(s) != Some(e));
        Ok(survived.map(|(_, e)| e.clone()).collect())
    }

    /// Bit rot at rest: flips a payload byte of the record of `slot` (its header, its
    /// identity, stays readable). Returns whether there was such a record. In the last
    /// acknowledged batch, recovery cannot tell the damage from a torn write (the ambiguity of
    /// docs/storage.md) and discards the batch from there, whose readable identities the
    /// adapter then reports corrupt.
    pub fn corrupt(&mut self, slot: Slot) -> bool {
        if !self.durable.log.contains_key(&slot) {
            return false;
        }
        let Some(place) = self.store.log().locate(slot.0) else { return false };
        if place.payload_len == 0 {
            return false;
        }
        let at = place.offset + 64 + self.rng.below(u64::from(place.payload_len));
        let hit = self.mem.flip_byte(&place.file, at);
        self.stats.rests_corrupted += u64::from(hit);
        self.rotted |= hit;
        hit
    }

    /// Recovery at a restart: the real recovery over what the medium holds (a read of it may
    /// be corrupted, per the faults), cross-checked against the acknowledged state.
    pub fn recover(&mut self) -> Result<Recovered, String> {
        self.unsynced.clear();
        self.syncing_to = None;
        self.last_seq = 0;
        if self.rng.chance(self.faults.read_corrupt_permille) {
            self.mem.corrupt_next_read();
            self.stats.reads_corrupted += 1;
        }
        self.reopen(&[])
    }

    /// Opens the storage again (recovery) and checks it returned every acknowledged record.
    fn reopen(&mut self, written: &[LogEntry]) -> Result<Recovered, String> {
        let (mut store, torn) = open(&self.mem, self.bug)?;
        let recovered = store.recover().map_err(|e| e.to_string())?;
        // The medium's old handles died with the crash: the checkpoint store reopens too.
        self.checkpoints = CheckpointFiles::open(self.mem.media(), CheckpointOptions::default())
            .map_err(|e| format!("the checkpoint store does not open: {e}"))?;
        self.stats.torn_tails += u64::from(torn);
        self.stats.reported_corrupt += recovered.corrupt.len() as u64;
        let mut now = DiskState::from_recovered(&recovered);
        // Lost slots stay lost until written again (the storage does not know them).
        now.lost = self.durable.lost.clone();
        now.lost.retain(|slot, _| !now.log.contains_key(slot));
        let lost = match self.check {
            true => self.check_covers(&now).and_then(|()| self.check_written(&now, written)),
            false => Ok(()),
        };
        self.store = store;
        self.durable = now;
        // What rotted is now in `durable.corrupt` (or was discarded with a torn tail and
        // reported there too).
        self.rotted = false;
        lost.map(|()| recovered)
    }

    /// Every acknowledged record is in `now` (the same or a newer ballot), or reported
    /// corrupt; the promise did not go down.
    fn check_covers(&self, now: &DiskState) -> Result<(), String> {
        if now.promised < self.durable.promised {
            let (was, is) = (self.durable.promised, now.promised);
            return Err(format!("recovery lost the promise {was:?} (found {is:?})"));
        }
        for (slot, e) in &self.durable.log {
            let kept = match (now.log.get(slot), now.corrupt.get(slot)) {
                (Some(n), _) => n.ballot > e.ballot || n == e,
                (None, Some(b)) => *b >= e.ballot,
                (None, None) => false,
            };
            if !kept {
                let found = now.log.get(slot).map(|n| (n.ballot, &n.value));
                return Err(format!(
                    "recovery lost acknowledged slot {} at {:?} ({:?}): found {found:?}",
                    slot.0, e.ballot, e.value
                ));
            }
        }
        Ok(())
    }

    /// Every record recovery returns was written: acknowledged, or among `written` (never
    /// acknowledged, possibly survived), or written once and truncated since (a record
    /// below a truncation that comes back is stale, not invented: the checkpoint it lies
    /// under holds its chosen value, which `check_covers` and the checkers keep). Recovery
    /// must never invent a value.
    fn check_written(&self, now: &DiskState, written: &[LogEntry]) -> Result<(), String> {
        for (slot, e) in &now.log {
            let once = self.ever.get(&(e.slot, e.ballot)) == Some(&value_digest(&e.value));
            if self.durable.log.get(slot) != Some(e) && !written.contains(e) && !once {
                return Err(format!(
                    "recovery returned slot {} at {:?} with a value never written: {:?}",
                    slot.0, e.ballot, e.value
                ));
            }
        }
        Ok(())
    }

    /// Reads log entries `from..=to` as written (durable or not), as the runtime's I/O
    /// thread does for catch-up; a read may come back corrupted (per the faults), which the
    /// checksums catch: the entries stop before the bad record.
    pub fn read_log(&mut self, from: Slot, to: Slot) -> Vec<LogEntry> {
        if self.rng.chance(self.faults.read_corrupt_permille) {
            self.mem.corrupt_next_read();
            self.stats.reads_corrupted += 1;
        }
        let entries = self.store.load_log(from, to).expect("the simulated disk reads");
        assert!(entries.iter().all(|e| e.slot >= from && e.slot <= to), "entries in range");
        entries
    }
}

impl Disk {
    /// Saves a checkpoint of the state after `slot`, with its `header` (the membership after
    /// `slot`, `rsl_store::encode_checkpoint_header`): written, synced, verified and renamed
    /// into place by the real checkpoint store, durable when this returns.
    pub fn save_checkpoint(
        &mut self,
        slot: Slot,
        header: &[u8],
        data: &[u8],
    ) -> Result<(), String> {
        use std::io::Write as _;
        let mut writer = self.checkpoints.begin(slot.0, header).map_err(|e| e.to_string())?;
        writer.write_all(data).map_err(|e| e.to_string())?;
        self.checkpoints.commit(writer).map_err(|e| e.to_string())?;
        self.stats.checkpoints_saved += 1;
        Ok(())
    }

    /// The newest checkpoint that verifies, with its header and data; corrupt newer ones are
    /// skipped (and counted), as at a restart.
    pub fn newest_checkpoint(&mut self) -> Option<(Slot, Vec<u8>, Vec<u8>)> {
        use std::io::Read as _;
        let newest = self.checkpoints.open_newest().expect("the checkpoint store lists");
        self.stats.checkpoints_skipped += newest.skipped.len() as u64;
        let (info, mut reader) = newest.found?;
        let mut data = Vec::new();
        reader.read_to_end(&mut data).expect("a verified checkpoint reads");
        Some((Slot(info.slot), info.header, data))
    }

    /// The slots of the checkpoints in the store, newest first (corrupt ones too).
    pub fn checkpoint_slots(&mut self) -> Vec<u64> {
        self.checkpoints.list().unwrap_or_default()
    }

    /// Bit rot at rest in the newest checkpoint file: flips one byte past its header (a
    /// block header or data: its checksums must catch it). Returns whether there was one.
    pub fn corrupt_checkpoint(&mut self) -> bool {
        let Some(slot) = self.checkpoints.list().ok().and_then(|l| l.first().copied()) else {
            return false;
        };
        let name = format!("ckpt-{slot:020}.ckpt");
        let Some(len) = self.mem.file_len(&name).filter(|l| *l > 64) else { return false };
        let at = 64 + self.rng.below(len - 64);
        let hit = self.mem.flip_byte(&name, at);
        self.stats.checkpoints_corrupted += u64::from(hit);
        self.checkpoint_rotted |= hit;
        hit
    }
}

impl Default for Disk {
    fn default() -> Disk {
        Disk::new()
    }
}

/// Opens the storage on `mem` (recovery); returns it and whether a torn tail was discarded.
fn open(mem: &MemDisk, bug: Option<StorageBug>) -> Result<(Store, bool), String> {
    let options = LogOptions::default();
    #[cfg(feature = "planted-bugs")]
    let opened = SegmentLog::open_planted(mem.media(), options, StorageBug::in_recovery(bug));
    #[cfg(not(feature = "planted-bugs"))]
    let opened = {
        assert!(bug.is_none_or(StorageBug::available), "{bug:?} needs feature planted-bugs");
        SegmentLog::open(mem.media(), options)
    };
    let (log, report) = opened.map_err(|e| format!("the log does not open: {e}"))?;
    let meta = MetaFiles::open(mem.media());
    let store = StorageDisk::new(log, &report, meta, true, 0).map_err(|e| e.to_string())?;
    Ok((store, report.torn.is_some()))
}

#[cfg(test)]
mod tests;
