//! Media: the small file-system interface every storage structure is written against.
//!
//! The write-ahead log, the metadata store and the checkpoint store are each implemented once,
//! generic over [`Media`]; the three backends are three media:
//!
//! * [`FsMedia`]: a directory of ordinary files (`pwrite`, `fdatasync`, `rename`, directory
//!   `fsync`). The default.
//! * [`MemMedia`]: an in-memory disk that keeps what was *written* apart from what is *durable*,
//!   with seeded crashes and fault injection. The deterministic simulator's storage twin.
//! * [`PmemMedia`]: files mapped into memory; durability by cache-line write-back and a fence
//!   on a DAX file system, by `msync` elsewhere.
//!
//! Contract of every medium (the conformance suite checks the structures built on it):
//! a `write_at` is only durable after `sync` on that file returned `Ok`; a created, renamed or
//! removed name is only durable after `sync_dir` returned `Ok`; `rename` replaces its target
//! atomically; a crash may keep any subset of undurable writes, in any state between old and
//! new bytes (torn), but never changes durable bytes (bit rot aside, which checksums catch).

mod fs;
mod mem;
mod pmem;

pub use fs::{FsFile, FsMedia};
pub use mem::{CrashMode, MemDisk, MemDiskStats, MemFile, MemMedia, RAM_SPARE_BUFFERS_MAX};
pub use pmem::{cpu_flush, dir_is_dax, DaxMode, FlushKind, PmemFile, PmemMedia};

use crate::error::Result;

/// A flat directory of named files.
pub trait Media: Send + std::fmt::Debug {
    /// Open file handle type.
    type File: MediaFile;

    /// Names of all files in the directory (any order).
    fn list(&mut self) -> Result<Vec<String>>;
    /// Create `name` empty (truncating it if it exists). `capacity` is a size hint: mapped
    /// media preallocate it, others ignore it.
    fn create(&mut self, name: &str, capacity: u64) -> Result<Self::File>;
    /// Open an existing file for reading and writing.
    fn open(&mut self, name: &str) -> Result<Self::File>;
    /// Remove `name` (durable after `sync_dir`).
    fn remove(&mut self, name: &str) -> Result<()>;
    /// Atomically rename `from` to `to`, replacing `to` (durable after `sync_dir`).
    fn rename(&mut self, from: &str, to: &str) -> Result<()>;
    /// Make every earlier create, rename and remove durable.
    fn sync_dir(&mut self) -> Result<()>;
    /// A short name for reports ("file", "memory", "pmem").
    fn kind(&self) -> &'static str;
}

/// One open file.
pub trait MediaFile: Send + std::fmt::Debug {
    /// Size of the file in bytes (for mapped media: the mapped capacity).
    fn len(&mut self) -> Result<u64>;
    /// True if the file is empty.
    fn is_empty(&mut self) -> Result<bool> {
        Ok(self.len()? == 0)
    }
    /// Write `data` at `offset` (extending the file if needed). Not durable until `sync`.
    fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<()>;
    /// Read exactly `buf.len()` bytes at `offset`; reading past the end is an error.
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<()>;
    /// Make every earlier `write_at` and `truncate` of this file durable.
    fn sync(&mut self) -> Result<()>;
    /// Discard bytes at and after `len` (mapped media zero them instead of shrinking).
    fn truncate(&mut self, len: u64) -> Result<()>;
}
