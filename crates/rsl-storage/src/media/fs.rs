//! [`FsMedia`]: a directory of ordinary files, the default backend.
//!
//! Durability: `MediaFile::sync` is one `fdatasync(2)`; `sync_dir` is one `fsync(2)` of the
//! directory. Writes are positional (`pwrite`), reads positional (`pread`).

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::{Media, MediaFile};
use crate::error::{Result, StorageError};

/// A directory of ordinary files.
#[derive(Debug, Clone)]
pub struct FsMedia {
    dir: PathBuf,
}

impl FsMedia {
    /// Use (and create if missing) the directory `dir`.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir).map_err(|e| StorageError::io("create_dir", e))?;
        Ok(FsMedia { dir })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// An open ordinary file.
#[derive(Debug)]
pub struct FsFile {
    file: File,
}

impl FsFile {
    /// The underlying file.
    pub fn file(&self) -> &File {
        &self.file
    }
}

pub(crate) fn fdatasync(file: &File) -> std::io::Result<()> {
    file.sync_data()
}

impl Media for FsMedia {
    type File = FsFile;

    fn list(&mut self) -> Result<Vec<String>> {
        let mut names = Vec::new();
        let entries = std::fs::read_dir(&self.dir).map_err(|e| StorageError::io("read_dir", e))?;
        for entry in entries {
            let entry = entry.map_err(|e| StorageError::io("read_dir", e))?;
            if let Some(name) = entry.file_name().to_str() {
                names.push(name.to_string());
            }
        }
        Ok(names)
    }

    fn create(&mut self, name: &str, _capacity: u64) -> Result<FsFile> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(self.dir.join(name))
            .map_err(|e| StorageError::io("create", e))?;
        Ok(FsFile { file })
    }

    fn open(&mut self, name: &str) -> Result<FsFile> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(self.dir.join(name))
            .map_err(|e| StorageError::io("open", e))?;
        Ok(FsFile { file })
    }

    fn remove(&mut self, name: &str) -> Result<()> {
        std::fs::remove_file(self.dir.join(name)).map_err(|e| StorageError::io("remove", e))
    }

    fn rename(&mut self, from: &str, to: &str) -> Result<()> {
        std::fs::rename(self.dir.join(from), self.dir.join(to))
            .map_err(|e| StorageError::io("rename", e))
    }

    fn sync_dir(&mut self) -> Result<()> {
        let dir = File::open(&self.dir).map_err(|e| StorageError::io("open_dir", e))?;
        dir.sync_all().map_err(|e| StorageError::io("fsync_dir", e))
    }

    fn kind(&self) -> &'static str {
        "file"
    }
}

impl MediaFile for FsFile {
    fn len(&mut self) -> Result<u64> {
        Ok(self.file.metadata().map_err(|e| StorageError::io("stat", e))?.len())
    }

    fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<()> {
        self.file.write_all_at(data, offset).map_err(|e| StorageError::io("pwrite", e))
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.file.read_exact_at(buf, offset).map_err(|e| StorageError::io("pread", e))
    }

    fn sync(&mut self) -> Result<()> {
        fdatasync(&self.file).map_err(|e| StorageError::io("fdatasync", e))
    }

    fn truncate(&mut self, len: u64) -> Result<()> {
        self.file.set_len(len).map_err(|e| StorageError::io("ftruncate", e))
    }
}
