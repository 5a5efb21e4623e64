//! A replica's data directory: its layout (`log/`, `meta/`, `checkpoints/`) and the lock that
//! keeps a second replica off it. Two replicas on one directory would each believe they own
//! the promises and votes stored there, which breaks Paxos as surely as a lost disk; the lock
//! (`flock` on `LOCK`, released by the kernel when the process dies) makes the second one
//! fail to start instead.

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::error::StartError;

/// The lock file's name inside the data directory.
pub(crate) const LOCK_FILE: &str = "LOCK";

/// The held lock on a data directory; released when dropped (or when the process dies).
#[derive(Debug)]
pub(crate) struct DataDirLock {
    _file: File,
    dir: PathBuf,
}

impl DataDirLock {
    /// Creates the directory's layout if missing and takes its lock, or fails naming the
    /// directory if another replica (in this process or another) holds it.
    pub(crate) fn acquire(dir: &Path) -> Result<DataDirLock, StartError> {
        let io = |source: std::io::Error| StartError::DataDir { dir: dir.to_path_buf(), source };
        for sub in ["log", "meta", "checkpoints"] {
            std::fs::create_dir_all(dir.join(sub)).map_err(io)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(LOCK_FILE))
            .map_err(io)?;
        // Called through the trait: from Rust 1.89 `File` has an inherent `try_lock` of its
        // own, and the MSRV (1.88) must behave the same as newer toolchains.
        match fs4::FileExt::try_lock(&file) {
            Ok(()) => Ok(DataDirLock { _file: file, dir: dir.to_path_buf() }),
            Err(fs4::TryLockError::WouldBlock) => {
                Err(StartError::DataDirLocked { dir: dir.to_path_buf() })
            }
            Err(fs4::TryLockError::Error(source)) => Err(io(source)),
        }
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }
}
