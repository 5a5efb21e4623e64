//! [`PmemMedia`]: files mapped into memory, made durable by cache-line write-back.
//!
//! Role: the persistent-memory backend, which exists to cut commit latency. A file is created
//! at its full capacity and mapped once; `write_at` is a `memcpy` into the mapping and `sync`
//! makes the written range durable:
//!
//! * on a DAX file system (the mapping *is* the persistent memory), by writing back every
//!   cache line of the range (`clwb`, else `clflushopt`, else `clflush`, chosen at run time
//!   by CPU feature detection) followed by one `sfence`. No system call.
//! * elsewhere (the page cache sits between the mapping and the disk), by `msync(MS_SYNC)` of
//!   the range: the portable fallback, as durable as `fdatasync` of the same pages.
//!
//! DAX is detected from the `dax` mount option of the file system holding the directory
//! (`/proc/mounts`), or forced by [`DaxMode`]. Forcing DAX on a non-DAX file system is unsafe
//! (the page cache is never written back by a cache-line flush) and only meant for measuring.
//! Because a file's length is its capacity, readers find the end of data by content (an
//! all-zero record header), never by file length.
//!
//! Metadata and checkpoints do not go through this medium (they use [`super::FsMedia`] in the
//! same directory): only the log sits on the commit path.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use memmap2::MmapMut;

use super::{Media, MediaFile};
use crate::error::{Result, StorageError};
use crate::limits::CACHE_LINE_BYTES;

/// Whether the directory is on a DAX file system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DaxMode {
    /// Read the mount options of the file system holding the directory.
    Detect,
    /// Treat as DAX: flush cache lines and fence (unsafe where the mount is not DAX).
    On,
    /// Treat as not DAX: `msync` the written range.
    Off,
}

/// How `sync` makes a mapped range durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushKind {
    /// `clwb` per cache line, then `sfence` (DAX).
    Clwb,
    /// `clflushopt` per cache line, then `sfence` (DAX, older CPUs).
    ClflushOpt,
    /// `clflush` per cache line, then `sfence` (DAX, oldest CPUs).
    Clflush,
    /// `msync(MS_SYNC)` of the range (not DAX, or not x86-64).
    Msync,
}

/// A directory whose files are memory-mapped.
#[derive(Debug, Clone)]
pub struct PmemMedia {
    dir: PathBuf,
    flush: FlushKind,
}

/// An open, mapped file.
#[derive(Debug)]
pub struct PmemFile {
    /// Kept open for the lifetime of the mapping.
    _file: File,
    map: Option<MmapMut>,
    flush: FlushKind,
    dirty_lo: usize,
    dirty_hi: usize,
}

/// True if the file system holding `dir` is mounted with a `dax` option.
pub fn dir_is_dax(dir: &Path) -> bool {
    let Ok(dir) = std::fs::canonicalize(dir) else { return false };
    let Ok(mounts) = std::fs::read_to_string("/proc/mounts") else { return false };
    mounts_say_dax(&mounts, &dir)
}

/// Whether, in a `/proc/mounts` text, the mount holding `dir` (the longest mount point that
/// is a prefix of it, component-wise) has the `dax` or `dax=always` option.
pub fn mounts_say_dax(mounts: &str, dir: &Path) -> bool {
    let mut best: Option<(usize, bool)> = None;
    for line in mounts.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 4 {
            continue;
        }
        let (mount_point, options) = (fields[1], fields[3]);
        if dir.starts_with(mount_point) && best.is_none_or(|(len, _)| mount_point.len() >= len) {
            let dax = options.split(',').any(|o| o == "dax" || o == "dax=always");
            best = Some((mount_point.len(), dax));
        }
    }
    best.is_some_and(|(_, dax)| dax)
}

fn cpu_flush_kind() -> FlushKind {
    #[cfg(target_arch = "x86_64")]
    {
        // `is_x86_feature_detected!` does not know clwb/clflushopt: read CPUID leaf 7
        // (EBX bit 23: CLFLUSHOPT, bit 24: CLWB) after checking the leaf exists.
        use core::arch::x86_64::{__cpuid, __cpuid_count};
        #[allow(unused_unsafe)]
        // SAFETY: CPUID exists on every x86-64 CPU.
        let (max_leaf, ebx7) = unsafe {
            let max_leaf = __cpuid(0).eax;
            (max_leaf, if max_leaf >= 7 { __cpuid_count(7, 0).ebx } else { 0 })
        };
        let _ = max_leaf;
        if ebx7 & (1 << 24) != 0 {
            return FlushKind::Clwb;
        }
        if ebx7 & (1 << 23) != 0 {
            return FlushKind::ClflushOpt;
        }
        FlushKind::Clflush
    }
    #[cfg(not(target_arch = "x86_64"))]
    FlushKind::Msync
}

/// The cache-line flush this CPU supports (what `sync` uses on DAX).
pub fn cpu_flush() -> FlushKind {
    cpu_flush_kind()
}

impl PmemMedia {
    /// Use (and create if missing) `dir`, with DAX detected or forced by `dax`.
    pub fn open(dir: impl AsRef<Path>, dax: DaxMode) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir).map_err(|e| StorageError::io("create_dir", e))?;
        let is_dax = match dax {
            DaxMode::Detect => dir_is_dax(&dir),
            DaxMode::On => true,
            DaxMode::Off => false,
        };
        let flush = if is_dax { cpu_flush_kind() } else { FlushKind::Msync };
        Ok(PmemMedia { dir, flush })
    }

    /// How `sync` makes data durable on this directory.
    pub fn flush_kind(&self) -> FlushKind {
        self.flush
    }

    fn map(&self, file: File) -> Result<PmemFile> {
        let len = file.metadata().map_err(|e| StorageError::io("stat", e))?.len();
        let map = if len == 0 {
            None
        } else {
            // SAFETY: the file is private to this log (one writer, no other process maps it
            // while the log is open); the mapping lives as long as `PmemFile` owns the file.
            Some(unsafe { MmapMut::map_mut(&file) }.map_err(|e| StorageError::io("mmap", e))?)
        };
        Ok(PmemFile { _file: file, map, flush: self.flush, dirty_lo: usize::MAX, dirty_hi: 0 })
    }
}

impl Media for PmemMedia {
    type File = PmemFile;

    fn list(&mut self) -> Result<Vec<String>> {
        super::FsMedia::open(&self.dir)?.list()
    }

    fn create(&mut self, name: &str, capacity: u64) -> Result<PmemFile> {
        assert!(capacity > 0, "a mapped file needs a capacity");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(self.dir.join(name))
            .map_err(|e| StorageError::io("create", e))?;
        // Reserve the blocks now (so a full disk shows up here, not as SIGBUS on a store),
        // and make the size durable once, so that later syncs only write data.
        // SAFETY: plain syscall on an owned, open descriptor.
        let rc = unsafe {
            libc::posix_fallocate(std::os::fd::AsRawFd::as_raw_fd(&file), 0, capacity as i64)
        };
        if rc != 0 {
            return Err(StorageError::io("fallocate", std::io::Error::from_raw_os_error(rc)));
        }
        file.sync_all().map_err(|e| StorageError::io("fsync", e))?;
        self.map(file)
    }

    fn open(&mut self, name: &str) -> Result<PmemFile> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(self.dir.join(name))
            .map_err(|e| StorageError::io("open", e))?;
        self.map(file)
    }

    fn remove(&mut self, name: &str) -> Result<()> {
        std::fs::remove_file(self.dir.join(name)).map_err(|e| StorageError::io("remove", e))
    }

    fn rename(&mut self, from: &str, to: &str) -> Result<()> {
        std::fs::rename(self.dir.join(from), self.dir.join(to))
            .map_err(|e| StorageError::io("rename", e))
    }

    fn sync_dir(&mut self) -> Result<()> {
        super::FsMedia::open(&self.dir)?.sync_dir()
    }

    fn kind(&self) -> &'static str {
        "pmem"
    }
}

/// Write back the cache lines covering `[ptr, ptr+len)` with `flush`, then fence.
///
/// # Safety
/// The range must be mapped and `flush` must be supported by this CPU.
#[cfg(target_arch = "x86_64")]
unsafe fn flush_lines(flush: FlushKind, ptr: *const u8, len: usize) {
    use core::arch::asm;
    let start = (ptr as usize) & !(CACHE_LINE_BYTES - 1);
    let end = ptr as usize + len;
    let mut line = start;
    while line < end {
        let p = line as *const u8;
        // SAFETY: caller guarantees the range is mapped and the instruction exists.
        unsafe {
            match flush {
                FlushKind::Clwb => asm!("clwb [{0}]", in(reg) p, options(nostack, preserves_flags)),
                FlushKind::ClflushOpt => {
                    asm!("clflushopt [{0}]", in(reg) p, options(nostack, preserves_flags))
                }
                FlushKind::Clflush => core::arch::x86_64::_mm_clflush(p),
                FlushKind::Msync => unreachable!("msync is not a cache-line flush"),
            }
        }
        line += CACHE_LINE_BYTES;
    }
    // SAFETY: sfence is part of SSE, present on every x86-64 CPU.
    unsafe { core::arch::x86_64::_mm_sfence() };
}

impl PmemFile {
    fn map_len(&self) -> usize {
        self.map.as_ref().map_or(0, |m| m.len())
    }

    fn check_range(&self, offset: u64, len: usize) -> Result<usize> {
        let end = offset as usize + len;
        if end > self.map_len() {
            return Err(StorageError::io(
                "pmem",
                std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "beyond mapped capacity"),
            ));
        }
        Ok(end)
    }

    /// How this file is made durable.
    pub fn flush_kind(&self) -> FlushKind {
        self.flush
    }
}

impl MediaFile for PmemFile {
    fn len(&mut self) -> Result<u64> {
        Ok(self.map_len() as u64)
    }

    fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<()> {
        let end = self.check_range(offset, data.len())?;
        let map = self.map.as_mut().expect("checked non-empty");
        map[offset as usize..end].copy_from_slice(data);
        self.dirty_lo = self.dirty_lo.min(offset as usize);
        self.dirty_hi = self.dirty_hi.max(end);
        Ok(())
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let end = self.check_range(offset, buf.len())?;
        if buf.is_empty() {
            return Ok(());
        }
        let map = self.map.as_ref().expect("checked non-empty");
        buf.copy_from_slice(&map[offset as usize..end]);
        Ok(())
    }

    fn sync(&mut self) -> Result<()> {
        if self.dirty_hi <= self.dirty_lo {
            return Ok(());
        }
        let (lo, hi) = (self.dirty_lo, self.dirty_hi);
        let map = self.map.as_ref().expect("dirty implies mapped");
        assert!(hi <= map.len());
        match self.flush {
            FlushKind::Msync => {
                map.flush_range(lo, hi - lo).map_err(|e| StorageError::io("msync", e))?
            }
            #[cfg(target_arch = "x86_64")]
            kind => {
                // SAFETY: [lo, hi) is inside the mapping; `kind` was chosen by feature
                // detection in `cpu_flush_kind`.
                unsafe { flush_lines(kind, map.as_ptr().add(lo), hi - lo) }
            }
            #[cfg(not(target_arch = "x86_64"))]
            _ => unreachable!("only msync off x86-64"),
        }
        self.dirty_lo = usize::MAX;
        self.dirty_hi = 0;
        Ok(())
    }

    fn truncate(&mut self, len: u64) -> Result<()> {
        // The capacity stays; the discarded range reads as zero (the end-of-data mark).
        let total = self.map_len();
        if (len as usize) < total {
            let map = self.map.as_mut().expect("non-empty");
            map[len as usize..].fill(0);
            self.dirty_lo = self.dirty_lo.min(len as usize);
            self.dirty_hi = total;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dax_is_read_from_the_mount_holding_the_directory() {
        let mounts = "/dev/vda / ext4 rw,relatime 0 0\n\
                      /dev/pmem0 /mnt/pmem ext4 rw,dax=always 0 0\n\
                      /dev/pmem1 /mnt/pmem/plain xfs rw,dax=never 0 0\n\
                      /dev/pmem2 /mnt/pmem2 xfs rw,dax 0 0\n";
        assert!(mounts_say_dax(mounts, Path::new("/mnt/pmem/log")));
        assert!(mounts_say_dax(mounts, Path::new("/mnt/pmem2")));
        assert!(!mounts_say_dax(mounts, Path::new("/mnt/pmem/plain/log")), "longest prefix wins");
        assert!(!mounts_say_dax(mounts, Path::new("/mnt/pmemx/log")), "component-wise prefix");
        assert!(!mounts_say_dax(mounts, Path::new("/work")));
        assert!(!mounts_say_dax("", Path::new("/work")));
    }

    #[test]
    fn mapped_file_reads_back_and_truncate_zeroes() {
        for dax in [DaxMode::Off, DaxMode::On] {
            let dir = tempfile::tempdir().unwrap();
            let mut media = PmemMedia::open(dir.path(), dax).unwrap();
            let mut f = media.create("seg", 8192).unwrap();
            assert_eq!(f.len().unwrap(), 8192, "created at full capacity");
            f.write_at(100, b"hello").unwrap();
            f.sync().unwrap();
            f.truncate(102).unwrap();
            f.sync().unwrap();
            drop(f);
            let mut f = media.open("seg").unwrap();
            let mut b = [0u8; 5];
            f.read_at(100, &mut b).unwrap();
            assert_eq!(&b, b"he\0\0\0");
            assert!(f.write_at(8190, b"abc").is_err(), "no write past the capacity");
        }
    }
}
