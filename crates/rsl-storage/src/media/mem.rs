//! [`MemDisk`] / [`MemMedia`]: an in-memory disk that separates *written* from *durable*.
//!
//! Role: the backend for tests and benchmarks, and the deterministic simulator's storage twin.
//! It has no threads, no clocks and no OS randomness: every fault is drawn from the seed given
//! to [`MemDisk::new`], so a run replays exactly.
//!
//! Model (stricter than a real file system, never looser):
//! * every file has durable bytes and a list of pending operations (writes, truncations) made
//!   since its last `sync`; reads see the pending operations applied;
//! * every directory operation (create, remove, rename) is pending until `sync_dir`;
//! * [`MemDisk::crash`] throws away pending state according to a [`CrashMode`]: all of it,
//!   a seeded-random prefix (the last kept write possibly torn at a random byte), or a
//!   seeded-random subset of 512-byte sectors (a disk that reorders its writes). Every handle
//!   opened before the crash then fails with [`StorageError::Crashed`].
//!
//! [`MemDisk::ram`] is the same disk without the model: every write is durable as it lands, so
//! a file is one copy of its bytes with no pending operations, and `sync` does nothing. It is
//! rsl's memory backend (`storage.backend = "memory"`: nothing outlives the process, so there
//! is no crash to model), which then costs one copy per write rather than three (the written
//! bytes, the pending operation, the durable bytes at sync) that it cost when it ran the model.
//!
//! Fault hooks map to real disk faults (docs/storage.md has the table): a torn write
//! (`CrashMode::RandomPrefix`), a write that lands corrupted (`corrupt_next_write`), a read
//! that returns bad bytes (`corrupt_next_read`), bit rot at rest (`flip_byte`), a lost disk
//! (`wipe`) and a full disk (`set_capacity_bytes`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use super::{Media, MediaFile};
use crate::error::{Result, StorageError};
use crate::limits::SIMULATED_SECTOR_BYTES as SECTOR_BYTES;
use crate::rng::Rng;

/// The most a ram disk reserves for a new file (its `create` capacity hint, bounded).
const RAM_RESERVE_MAX: usize = 1 << 30;

/// What a crash keeps of the writes that were never synced. In the two random modes, one
/// crash in four also keeps a file's new size without its lost data (zeros), as file systems
/// that persist the size before the data do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashMode {
    /// Every unsynced write and directory operation is lost.
    LoseAll,
    /// Per file, a seeded-random prefix of the unsynced writes survives, and the first lost
    /// write may be torn (a random prefix of its bytes survives). Directory operations too
    /// keep a random prefix.
    RandomPrefix,
    /// Per unsynced write, each 512-byte sector independently survives or not (seeded):
    /// a disk with a volatile cache that reorders writes. Directory operations keep a
    /// random prefix.
    RandomSectors,
}

/// Counters of a [`MemDisk`], for tests that check how many syncs an operation issued.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemDiskStats {
    /// Calls to `MediaFile::write_at`.
    pub writes: u64,
    /// Bytes passed to `write_at`.
    pub bytes_written: u64,
    /// Calls to `MediaFile::sync` (the fdatasync twin).
    pub file_syncs: u64,
    /// Calls to `Media::sync_dir`.
    pub dir_syncs: u64,
    /// Crashes so far.
    pub crashes: u64,
    /// Files a ram disk created in a removed file's buffer (its pages already mapped).
    pub buffers_reused: u64,
}

#[derive(Debug)]
enum FileOp {
    Write { offset: u64, data: Vec<u8> },
    Truncate(u64),
}

#[derive(Debug, Default)]
struct FileState {
    durable: Vec<u8>,
    view: Vec<u8>,
    pending: Vec<FileOp>,
}

#[derive(Debug, Clone)]
enum DirOp {
    Bind(String, u64),
    Unbind(String),
}

#[derive(Debug)]
struct DiskState {
    generation: u64,
    rng: Rng,
    next_id: u64,
    files: BTreeMap<u64, FileState>,
    names: BTreeMap<String, u64>,
    durable_names: BTreeMap<String, u64>,
    pending_dir: Vec<DirOp>,
    capacity_bytes: Option<u64>,
    /// The next write lands with a byte flipped at or after this offset of its data.
    corrupt_next_write: Option<u64>,
    corrupt_next_read: bool,
    crash_countdown: Option<(u64, CrashMode)>,
    stats: MemDiskStats,
    /// Writes are durable as they land ([`MemDisk::ram`]).
    ram: bool,
    /// A ram disk's buffers of removed files, emptied, for the next files created: their
    /// pages stay mapped, so a log that rolls over to a new segment after dropping an old one
    /// writes into memory the kernel need not fault in and zero again (at a million requests
    /// a second that was a third of the process's time: docs/benchmarks.md).
    spare: Vec<Vec<u8>>,
}

/// The most removed files' buffers a ram disk keeps for reuse.
pub const RAM_SPARE_BUFFERS_MAX: usize = 4;

/// The shared state of one simulated disk; clone it to keep a handle across crashes.
#[derive(Debug, Clone)]
pub struct MemDisk {
    inner: Arc<Mutex<DiskState>>,
}

/// A [`Media`] over a [`MemDisk`]; stale after the disk crashes.
#[derive(Debug, Clone)]
pub struct MemMedia {
    disk: MemDisk,
    generation: u64,
}

/// An open file of a [`MemMedia`].
#[derive(Debug)]
pub struct MemFile {
    disk: MemDisk,
    generation: u64,
    id: u64,
    name: String,
}

fn apply_op(bytes: &mut Vec<u8>, op: &FileOp) {
    match op {
        FileOp::Write { offset, data } => write_into(bytes, *offset, data),
        FileOp::Truncate(len) => bytes.resize(*len as usize, 0),
    }
}

fn write_into(bytes: &mut Vec<u8>, offset: u64, data: &[u8]) {
    let offset = offset as usize;
    if bytes.len() < offset {
        // A hole before the write reads as zeros, as in a sparse file.
        bytes.resize(offset, 0);
    }
    // Overwrites what is there, then appends the rest: the appended bytes are written once
    // (a log's appends, nearly every write, were zero-filled and then copied over).
    let inside = (bytes.len() - offset).min(data.len());
    bytes[offset..offset + inside].copy_from_slice(&data[..inside]);
    bytes.extend_from_slice(&data[inside..]);
}

fn apply_dir(names: &mut BTreeMap<String, u64>, op: &DirOp) {
    match op {
        DirOp::Bind(name, id) => {
            names.insert(name.clone(), *id);
        }
        DirOp::Unbind(name) => {
            names.remove(name);
        }
    }
}

impl DiskState {
    fn crash(&mut self, mode: CrashMode) {
        if self.ram {
            // Everything written is durable: files and names survive as they are.
            for f in self.files.values_mut() {
                f.durable.clone_from(&f.view);
            }
            self.durable_names.clone_from(&self.names);
            self.pending_dir.clear();
        }
        let mut names = self.durable_names.clone();
        let pending_dir = std::mem::take(&mut self.pending_dir);
        let keep = match mode {
            CrashMode::LoseAll => 0,
            _ => self.rng.below(pending_dir.len() as u64 + 1) as usize,
        };
        for op in &pending_dir[..keep] {
            apply_dir(&mut names, op);
        }
        let mut files = BTreeMap::new();
        for id in names.values() {
            if let Some(mut f) = self.files.remove(id) {
                DiskState::crash_file(&mut self.rng, mode, &mut f);
                files.insert(*id, f);
            }
        }
        self.files = files;
        self.names = names.clone();
        self.durable_names = names;
        self.generation += 1;
        self.stats.crashes += 1;
        self.corrupt_next_read = false;
        self.corrupt_next_write = None;
        self.crash_countdown = None;
    }

    /// Count one mutating operation; crash instead of doing it if the countdown ran out.
    fn tick(&mut self) -> Result<()> {
        match self.crash_countdown {
            Some((0, mode)) => {
                self.crash(mode);
                Err(StorageError::Crashed)
            }
            Some((n, mode)) => {
                self.crash_countdown = Some((n - 1, mode));
                Ok(())
            }
            None => Ok(()),
        }
    }

    fn check(&self, generation: u64) -> Result<()> {
        if generation == self.generation {
            Ok(())
        } else {
            Err(StorageError::Crashed)
        }
    }

    fn used_bytes(&self) -> u64 {
        self.files.values().map(|f| f.view.len() as u64).sum()
    }

    fn file(&mut self, id: u64, name: &str) -> Result<&mut FileState> {
        self.files.get_mut(&id).ok_or_else(|| {
            StorageError::io(
                "mem",
                std::io::Error::new(std::io::ErrorKind::NotFound, name.to_string()),
            )
        })
    }

    /// Drop file states no name (current or durable) refers to.
    fn collect_garbage(&mut self) {
        let live: std::collections::BTreeSet<u64> =
            self.names.values().chain(self.durable_names.values()).copied().collect();
        let dead: Vec<u64> = self.files.keys().filter(|id| !live.contains(id)).copied().collect();
        for id in dead {
            let file = self.files.remove(&id).expect("listed above");
            if self.ram && self.spare.len() < RAM_SPARE_BUFFERS_MAX && file.view.capacity() > 0 {
                let mut buffer = file.view;
                buffer.clear();
                self.spare.push(buffer);
            }
        }
    }

    fn crash_file(rng: &mut Rng, mode: CrashMode, file: &mut FileState) {
        let mut bytes = std::mem::take(&mut file.durable);
        let pending = std::mem::take(&mut file.pending);
        match mode {
            CrashMode::LoseAll => {}
            CrashMode::RandomPrefix => {
                let keep = rng.below(pending.len() as u64 + 1) as usize;
                for op in &pending[..keep] {
                    apply_op(&mut bytes, op);
                }
                if let Some(FileOp::Write { offset, data }) = pending.get(keep) {
                    if !data.is_empty() && rng.coin() {
                        let torn = rng.below(data.len() as u64) as usize;
                        write_into(&mut bytes, *offset, &data[..torn]);
                    }
                }
            }
            CrashMode::RandomSectors => {
                for op in &pending {
                    match op {
                        FileOp::Truncate(_) => {
                            if rng.coin() {
                                apply_op(&mut bytes, op)
                            }
                        }
                        FileOp::Write { offset, data } => {
                            let mut start = 0usize;
                            while start < data.len() {
                                let abs = *offset as usize + start;
                                let end =
                                    (abs / SECTOR_BYTES + 1) * SECTOR_BYTES - *offset as usize;
                                let end = end.min(data.len());
                                if rng.coin() {
                                    write_into(&mut bytes, abs as u64, &data[start..end]);
                                }
                                start = end;
                            }
                        }
                    }
                }
            }
        }
        // A file system may persist a file's new size without its data (the lost range then
        // reads as zeros): model it for every mode that keeps anything unsynced.
        if mode != CrashMode::LoseAll && rng.below(4) == 0 {
            let size = pending.iter().map(|op| match op {
                FileOp::Write { offset, data } => *offset as usize + data.len(),
                FileOp::Truncate(len) => *len as usize,
            });
            if let Some(size) = size.max().filter(|&n| n > bytes.len()) {
                bytes.resize(size, 0);
            }
        }
        file.view = bytes.clone();
        file.durable = bytes;
    }
}

impl MemDisk {
    /// An empty disk whose faults are drawn from `seed`.
    pub fn new(seed: u64) -> Self {
        MemDisk::with_model(seed, false)
    }

    /// An empty disk on which every write is durable as it lands (module comment): no
    /// pending state, one copy of each file, a `sync` that does nothing, and a crash that
    /// loses nothing. The fault hooks still work.
    pub fn ram(seed: u64) -> Self {
        MemDisk::with_model(seed, true)
    }

    fn with_model(seed: u64, ram: bool) -> Self {
        MemDisk {
            inner: Arc::new(Mutex::new(DiskState {
                generation: 0,
                rng: Rng::new(seed),
                next_id: 1,
                files: BTreeMap::new(),
                names: BTreeMap::new(),
                durable_names: BTreeMap::new(),
                pending_dir: Vec::new(),
                capacity_bytes: None,
                corrupt_next_write: None,
                corrupt_next_read: false,
                crash_countdown: None,
                stats: MemDiskStats::default(),
                ram,
                spare: Vec::new(),
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, DiskState> {
        // A panic while holding the lock means a test already failed; keep the state usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A media handle valid until the next crash or wipe.
    pub fn media(&self) -> MemMedia {
        let generation = self.lock().generation;
        MemMedia { disk: self.clone(), generation }
    }

    /// Simulate power loss: unsynced state is lost according to `mode`; all handles go stale.
    pub fn crash(&self, mode: CrashMode) {
        self.lock().crash(mode);
    }

    /// Power loss at a chosen point: the `ops`-th mutating operation from now (0: the next
    /// one) does not happen; instead the disk crashes with `mode` and the operation fails
    /// with [`StorageError::Crashed`]. Mutating operations: write, truncate, sync, create,
    /// remove, rename, directory sync. Lets a test try every crash point of a procedure.
    pub fn crash_after_ops(&self, ops: u64, mode: CrashMode) {
        self.lock().crash_countdown = Some((ops, mode));
    }

    /// Lose the whole disk (a replaced or wiped drive); all handles go stale.
    pub fn wipe(&self) {
        let mut s = self.lock();
        s.files.clear();
        s.names.clear();
        s.durable_names.clear();
        s.pending_dir.clear();
        s.generation += 1;
    }

    /// Make writes fail with [`StorageError::NoSpace`] once the disk would hold more than
    /// `bytes` (None: unlimited).
    pub fn set_capacity_bytes(&self, bytes: Option<u64>) {
        self.lock().capacity_bytes = bytes;
    }

    /// The next `write_at` (to any file) lands with one byte flipped at a seeded position.
    pub fn corrupt_next_write(&self) {
        self.corrupt_next_write_after(0);
    }

    /// The next `write_at` lands with one byte flipped at a seeded position at or after
    /// `skip` bytes into its data (e.g. past a record header, so the damage hits a payload);
    /// a write not longer than `skip` lands intact and the next one is tried.
    pub fn corrupt_next_write_after(&self, skip: u64) {
        self.lock().corrupt_next_write = Some(skip);
    }

    /// The next `read_at` (from any file) returns one byte flipped at a seeded position;
    /// the stored bytes stay intact.
    pub fn corrupt_next_read(&self) {
        self.lock().corrupt_next_read = true;
    }

    /// Bit rot at rest: flip all bits of the byte at `offset` of file `name`, in both the
    /// durable and the written state. Returns false if there is no such byte.
    pub fn flip_byte(&self, name: &str, offset: u64) -> bool {
        let mut s = self.lock();
        let Some(&id) = s.names.get(name) else { return false };
        let f = s.files.get_mut(&id).expect("named file exists");
        let mut hit = false;
        for bytes in [&mut f.durable, &mut f.view] {
            if let Some(b) = bytes.get_mut(offset as usize) {
                *b ^= 0xFF;
                hit = true;
            }
        }
        hit
    }

    /// Names of the files as the running program sees them, sorted.
    pub fn file_names(&self) -> Vec<String> {
        self.lock().names.keys().cloned().collect()
    }

    /// Length of file `name` as the running program sees it.
    pub fn file_len(&self, name: &str) -> Option<u64> {
        let s = self.lock();
        let id = s.names.get(name)?;
        Some(s.files.get(id)?.view.len() as u64)
    }

    /// Counters so far.
    pub fn stats(&self) -> MemDiskStats {
        self.lock().stats
    }

    /// A seeded random number, so tests can draw from the disk's own generator.
    pub fn random_below(&self, n: u64) -> u64 {
        self.lock().rng.below(n)
    }
}

impl MemMedia {
    fn state_mut(&self) -> Result<MutexGuard<'_, DiskState>> {
        let mut s = self.state()?;
        s.tick()?;
        Ok(s)
    }

    /// The disk this media lives on.
    pub fn disk(&self) -> &MemDisk {
        &self.disk
    }

    fn state(&self) -> Result<MutexGuard<'_, DiskState>> {
        let s = self.disk.lock();
        s.check(self.generation)?;
        Ok(s)
    }

    fn bind(&self, s: &mut DiskState, name: &str, id: u64) {
        let op = DirOp::Bind(name.to_string(), id);
        apply_dir(&mut s.names, &op);
        s.pending_dir.push(op);
    }
}

impl Media for MemMedia {
    type File = MemFile;

    fn list(&mut self) -> Result<Vec<String>> {
        Ok(self.state()?.names.keys().cloned().collect())
    }

    fn create(&mut self, name: &str, capacity: u64) -> Result<MemFile> {
        let mut s = self.state_mut()?;
        let id = s.next_id;
        s.next_id += 1;
        let mut file = FileState::default();
        if s.ram {
            // The capacity reserved up front (a removed file's buffer when one is big enough):
            // a growing log segment is never copied into a larger allocation.
            let want = usize::try_from(capacity).unwrap_or(0).min(RAM_RESERVE_MAX);
            match s.spare.iter().position(|b| b.capacity() >= want) {
                Some(at) => {
                    file.view = s.spare.swap_remove(at);
                    s.stats.buffers_reused += 1;
                }
                None => file.view.reserve(want),
            }
        }
        s.files.insert(id, file);
        self.bind(&mut s, name, id);
        Ok(MemFile { disk: self.disk.clone(), generation: self.generation, id, name: name.into() })
    }

    fn open(&mut self, name: &str) -> Result<MemFile> {
        let s = self.state()?;
        let Some(&id) = s.names.get(name) else {
            return Err(StorageError::io(
                "open",
                std::io::Error::new(std::io::ErrorKind::NotFound, name.to_string()),
            ));
        };
        Ok(MemFile { disk: self.disk.clone(), generation: self.generation, id, name: name.into() })
    }

    fn remove(&mut self, name: &str) -> Result<()> {
        let mut s = self.state_mut()?;
        if !s.names.contains_key(name) {
            return Err(StorageError::io(
                "remove",
                std::io::Error::new(std::io::ErrorKind::NotFound, name.to_string()),
            ));
        }
        let op = DirOp::Unbind(name.to_string());
        apply_dir(&mut s.names, &op);
        s.pending_dir.push(op);
        Ok(())
    }

    fn rename(&mut self, from: &str, to: &str) -> Result<()> {
        let mut s = self.state_mut()?;
        let Some(&id) = s.names.get(from) else {
            return Err(StorageError::io(
                "rename",
                std::io::Error::new(std::io::ErrorKind::NotFound, from.to_string()),
            ));
        };
        // One pending entry per half, kept or lost together only if the crash prefix covers
        // both; a crash between them leaves both names bound, as a real journal replay can.
        self.bind(&mut s, to, id);
        let op = DirOp::Unbind(from.to_string());
        apply_dir(&mut s.names, &op);
        s.pending_dir.push(op);
        Ok(())
    }

    fn sync_dir(&mut self) -> Result<()> {
        let mut s = self.state_mut()?;
        s.durable_names = s.names.clone();
        s.pending_dir.clear();
        s.stats.dir_syncs += 1;
        s.collect_garbage();
        Ok(())
    }

    fn kind(&self) -> &'static str {
        "memory"
    }
}

impl MemFile {
    fn state_mut(&self) -> Result<MutexGuard<'_, DiskState>> {
        let mut s = self.state()?;
        s.tick()?;
        Ok(s)
    }

    fn state(&self) -> Result<MutexGuard<'_, DiskState>> {
        let s = self.disk.lock();
        s.check(self.generation)?;
        Ok(s)
    }
}

impl MediaFile for MemFile {
    fn len(&mut self) -> Result<u64> {
        let mut s = self.state()?;
        Ok(s.file(self.id, &self.name)?.view.len() as u64)
    }

    fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<()> {
        let mut s = self.state_mut()?;
        let old_len = s.file(self.id, &self.name)?.view.len() as u64;
        let growth = (offset + data.len() as u64).saturating_sub(old_len);
        if let Some(cap) = s.capacity_bytes {
            if s.used_bytes() + growth > cap {
                return Err(StorageError::NoSpace { op: "write" });
            }
        }
        // Copied only when it must be changed (a corrupted write) or kept (a pending one).
        let mut data = std::borrow::Cow::Borrowed(data);
        if let Some(skip) = s.corrupt_next_write.filter(|&k| (data.len() as u64) > k) {
            s.corrupt_next_write = None;
            let at = (skip + s.rng.below(data.len() as u64 - skip)) as usize;
            data.to_mut()[at] ^= 0xFF;
        }
        s.stats.writes += 1;
        s.stats.bytes_written += data.len() as u64;
        let ram = s.ram;
        let f = s.file(self.id, &self.name)?;
        write_into(&mut f.view, offset, &data);
        if !ram {
            f.pending.push(FileOp::Write { offset, data: data.into_owned() });
        }
        Ok(())
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let mut s = self.state()?;
        let f = s.file(self.id, &self.name)?;
        let end = offset as usize + buf.len();
        if end > f.view.len() {
            return Err(StorageError::io(
                "read",
                std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "read past end"),
            ));
        }
        buf.copy_from_slice(&f.view[offset as usize..end]);
        if s.corrupt_next_read && !buf.is_empty() {
            s.corrupt_next_read = false;
            let at = s.rng.below(buf.len() as u64) as usize;
            buf[at] ^= 0xFF;
        }
        Ok(())
    }

    fn sync(&mut self) -> Result<()> {
        let mut s = self.state_mut()?;
        s.stats.file_syncs += 1;
        if s.ram {
            return Ok(());
        }
        let f = s.file(self.id, &self.name)?;
        // Apply the pending operations instead of copying the file: O(bytes written).
        let pending = std::mem::take(&mut f.pending);
        for op in &pending {
            apply_op(&mut f.durable, op);
        }
        debug_assert!(f.durable == f.view, "durable state equals written state after sync");
        Ok(())
    }

    fn truncate(&mut self, len: u64) -> Result<()> {
        let mut s = self.state_mut()?;
        let ram = s.ram;
        let f = s.file(self.id, &self.name)?;
        f.view.resize(len as usize, 0);
        if !ram {
            f.pending.push(FileOp::Truncate(len));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    /// The simulator's storage twin must stay deterministic: no clocks, threads or OS
    /// randomness in this file or in the generator it draws from.
    #[test]
    fn no_clocks_threads_or_os_randomness() {
        let sources = [include_str!("mem.rs"), include_str!("../rng.rs")];
        // Spelled in pieces so this test does not find itself.
        let forbidden = [
            ["Inst", "ant"],
            ["System", "Time"],
            ["thread", "::"],
            ["getr", "andom"],
            ["Random", "State"],
            ["Hash", "Map"],
        ];
        for source in sources {
            for piece in forbidden {
                let word = piece.concat();
                assert!(!source.contains(&word), "`{word}` in the deterministic memory backend");
            }
        }
    }

    proptest::proptest! {
        /// A write lands as a file's would, wherever it falls: over the bytes there, past
        /// the end, or after a hole (zeros). The model: grow with zeros, then copy.
        #[test]
        fn a_write_lands_as_over_a_zero_extended_file(
            before in proptest::collection::vec(proptest::num::u8::ANY, 0..64),
            offset in 0u64..96,
            data in proptest::collection::vec(proptest::num::u8::ANY, 0..64),
        ) {
            let mut model = before.clone();
            let end = offset as usize + data.len();
            if model.len() < end {
                model.resize(end, 0);
            }
            model[offset as usize..end].copy_from_slice(&data);
            let mut bytes = before;
            super::write_into(&mut bytes, offset, &data);
            proptest::prop_assert_eq!(bytes, model);
        }
    }
}
