//! The storage error type: every operating error (full disk, I/O failure, corruption found on
//! read) is a value of [`StorageError`]; programmer errors (a broken invariant) panic.

use std::io;

/// Result alias for this crate.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// Everything that can go wrong in storage while the program itself is correct.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The device is full (ENOSPC). Nothing was made durable by the failing call.
    #[error("disk full (ENOSPC) during {op}")]
    NoSpace {
        /// The operation that failed.
        op: &'static str,
    },
    /// Any other I/O failure.
    #[error("I/O error during {op}: {source}")]
    Io {
        /// The operation that failed.
        op: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A log record's identity is known (its header is intact) but its payload is corrupt.
    #[error("corrupt log record: slot {slot} ballot {ballot}")]
    CorruptRecord {
        /// Slot of the corrupt record.
        slot: u64,
        /// Ballot of the corrupt record.
        ballot: u128,
    },
    /// Bytes on the medium failed validation.
    #[error("corrupt data in {file} at offset {offset}: {reason}")]
    Corrupt {
        /// File name (relative to the storage directory).
        file: String,
        /// Byte offset of the bad data.
        offset: u64,
        /// What check failed.
        reason: &'static str,
    },
    /// The caller passed a value outside a named limit.
    #[error("{what} is {value}, limit is {limit}")]
    LimitExceeded {
        /// The limited quantity.
        what: &'static str,
        /// The value given.
        value: u64,
        /// The limit.
        limit: u64,
    },
    /// An earlier write or sync of this log failed, so what reached the medium is unknown;
    /// the log refuses further use. Reopen it: recovery finds the durable state.
    #[error("log unusable after a failed {op}; reopen it to recover")]
    Poisoned {
        /// The operation that failed first.
        op: &'static str,
    },
    /// The memory backend crashed (or was wiped) after this handle was opened; reopen.
    #[error("the simulated device crashed; this handle is stale")]
    Crashed,
}

impl StorageError {
    /// Wrap an `io::Error`, turning ENOSPC into [`StorageError::NoSpace`].
    pub fn io(op: &'static str, source: io::Error) -> Self {
        if source.raw_os_error() == Some(libc::ENOSPC)
            || source.kind() == io::ErrorKind::StorageFull
        {
            StorageError::NoSpace { op }
        } else {
            StorageError::Io { op, source }
        }
    }

    /// True for errors that mean data on the medium is bad (as opposed to the medium failing).
    pub fn is_corruption(&self) -> bool {
        matches!(self, StorageError::CorruptRecord { .. } | StorageError::Corrupt { .. })
    }
}

impl From<StorageError> for io::Error {
    fn from(e: StorageError) -> io::Error {
        match e {
            StorageError::Io { source, .. } => source,
            StorageError::NoSpace { .. } => io::Error::from_raw_os_error(libc::ENOSPC),
            other if other.is_corruption() => io::Error::new(io::ErrorKind::InvalidData, other),
            other => io::Error::other(other),
        }
    }
}
