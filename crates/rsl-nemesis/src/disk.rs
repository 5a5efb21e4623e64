//! Each replica's data directory on a small filesystem of its own: a size-limited tmpfs.
//!
//! A **full disk** is made by remounting the tmpfs with its size cut down to what it already
//! holds, so the replica's next write fails with ENOSPC, and healed by remounting it with its
//! full size: no ballast file, no memory spent on filling it. tmpfs keeps its contents when a
//! process dies, so a replica killed with SIGKILL restarts on the same disk (a machine crash,
//! which would lose unsynced writes, is the simulator's fault, not this suite's). Its fsync
//! costs nothing, which makes the replicas faster than on a real disk; the faults and the
//! checkers do not depend on that.

use std::ffi::CString;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

/// How many times a fill is tried while the replica keeps writing (a remount below what the
/// filesystem holds fails, so the size is read again).
const FILL_TRIES_MAX: u32 = 50;

fn c_path(path: &Path) -> anyhow::Result<CString> {
    CString::new(path.as_os_str().as_encoded_bytes()).context("a path with a NUL byte")
}

fn mount_tmpfs(point: &Path, flags: libc::c_ulong, size_bytes: u64) -> std::io::Result<()> {
    let point = CString::new(point.as_os_str().as_encoded_bytes())?;
    let data = CString::new(format!("size={size_bytes},mode=0755"))?;
    // SAFETY: every pointer is a valid NUL-terminated string that outlives the call.
    let rc = unsafe {
        libc::mount(
            c"rsl-nemesis".as_ptr(),
            point.as_ptr(),
            c"tmpfs".as_ptr(),
            flags,
            data.as_ptr().cast(),
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Detaches the filesystem mounted at `point`, ignoring errors (used in cleanup).
pub fn unmount(point: &Path) {
    if let Ok(point) = c_path(point) {
        // SAFETY: a valid NUL-terminated path.
        unsafe { libc::umount2(point.as_ptr(), libc::MNT_DETACH) };
    }
}

/// Bytes used on the filesystem holding `path`, and its size.
pub fn usage(path: &Path) -> anyhow::Result<(u64, u64)> {
    let c = c_path(path)?;
    // SAFETY: statvfs fills the zeroed struct; the path is valid.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 {
        return Err(std::io::Error::last_os_error()).context("statvfs");
    }
    let block = s.f_frsize as u64;
    Ok(((s.f_blocks - s.f_bfree) as u64 * block, s.f_blocks as u64 * block))
}

/// One replica's small filesystem.
#[derive(Debug)]
pub struct Disk {
    point: PathBuf,
    size_bytes: u64,
    full: bool,
    mounted: bool,
}

impl Disk {
    /// Mounts a tmpfs of `size_bytes` at `point` (created if missing).
    pub fn mount(point: &Path, size_bytes: u64) -> anyhow::Result<Disk> {
        std::fs::create_dir_all(point)?;
        mount_tmpfs(point, 0, size_bytes)
            .with_context(|| format!("mounting a tmpfs at {} (needs root)", point.display()))?;
        Ok(Disk { point: point.to_path_buf(), size_bytes, full: false, mounted: true })
    }

    /// The replica's data directory on it.
    pub fn data_dir(&self) -> PathBuf {
        self.point.join("data")
    }

    /// Whether it is full now.
    pub fn is_full(&self) -> bool {
        self.full
    }

    /// Bytes used and the current size.
    pub fn usage(&self) -> anyhow::Result<(u64, u64)> {
        usage(&self.point)
    }

    /// Cuts the size down to what the filesystem holds now; returns the new size.
    pub fn fill(&mut self) -> anyhow::Result<u64> {
        for _ in 0..FILL_TRIES_MAX {
            let (used, _) = self.usage()?;
            match mount_tmpfs(&self.point, libc::MS_REMOUNT, used.max(4096)) {
                Ok(()) => {
                    self.full = true;
                    return Ok(used);
                }
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => continue,
                Err(e) => return Err(e).context("remounting the tmpfs smaller"),
            }
        }
        bail!("{} kept growing; could not fill it", self.point.display())
    }

    /// Gives the filesystem its full size back.
    pub fn free(&mut self) -> anyhow::Result<()> {
        mount_tmpfs(&self.point, libc::MS_REMOUNT, self.size_bytes)
            .context("remounting the tmpfs at its full size")?;
        self.full = false;
        Ok(())
    }

    /// Unmounts it (its contents are gone). Idempotent.
    pub fn unmount(&mut self) {
        if std::mem::replace(&mut self.mounted, false) {
            unmount(&self.point);
        }
    }
}

impl Drop for Disk {
    fn drop(&mut self) {
        self.unmount();
    }
}
