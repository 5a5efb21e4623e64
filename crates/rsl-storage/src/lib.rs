//! rsl-storage: the durable state of one replica, knowing nothing of Paxos.
//!
//! Three structures, each written once against the small [`media::Media`] interface:
//!
//! * [`Log`] ([`SegmentLog`]): the segmented write-ahead log of (slot, ballot, payload)
//!   records, group-committed by [`Log::sync`], recovered on open following
//!   protocol-aware recovery (a torn tail is discarded, any other bad record is reported
//!   in the [`RecoveryReport`], never silently truncated);
//! * [`MetaStore`] ([`MetaFiles`]): one blob (promised ballot, configuration) written
//!   atomically in two alternating copies;
//! * [`CheckpointStore`] ([`CheckpointFiles`]): streamed, block-checksummed, verified
//!   checkpoints, keeping the newest few and falling back past corrupt ones.
//!
//! and three backends (media): [`FsMedia`] (files, the default), [`MemMedia`] over a
//! [`MemDisk`] (in memory, with seeded crashes and faults: the simulator's twin) and
//! [`PmemMedia`] (the log in memory-mapped files, flushed by cache-line write-back on DAX).
//! The formats, the fsync order and what each crash leaves behind are in `docs/storage.md`.
//!
//! Every limit is named in [`limits`]. Operating errors are [`StorageError`] values
//! (a full disk is [`StorageError::NoSpace`]); broken invariants panic.
//!
//! # The driver loop
//!
//! The runtime calls the log from one I/O thread: append a batch, sync once, then tell the
//! protocol core "durable up to here". Recovery first:
//!
//! ```
//! use rsl_storage::{FsMedia, Log, LogOptions, MetaFiles, MetaStore, SegmentLog};
//!
//! # fn main() -> Result<(), rsl_storage::StorageError> {
//! let dir = tempfile::tempdir().unwrap();
//! let (mut log, report) = SegmentLog::open(FsMedia::open(dir.path())?, LogOptions::default())?;
//! // Corrupt records are slots this replica accepted but cannot read: repair them from peers.
//! assert!(!report.has_corruption());
//! let mut meta = MetaFiles::open(FsMedia::open(dir.path())?);
//! assert_eq!(meta.load()?, None); // a new replica: it never promised anything
//! meta.store(b"promised ballot 1")?; // before answering the prepare
//!
//! // One batch of accepts from the core: append all, then one sync (group commit).
//! let ballot = 1u128;
//! for slot in 0..10u64 {
//!     log.append(slot, ballot, format!("value {slot}").as_bytes())?;
//! }
//! log.sync()?;
//! // Now, and only now, the core may send "accepted" for slots 0..10.
//! assert_eq!(&log.read(3)?.unwrap().payload[..], b"value 3");
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

#[cfg(feature = "planted-bugs")]
pub mod bugs;
pub mod checkpoint;
pub mod codec;
pub mod error;
pub mod limits;
pub mod log;
pub mod media;
pub mod meta;
mod rng;
pub mod testkit;

pub use checkpoint::{
    decode_checkpoint, CheckpointFiles, CheckpointInfo, CheckpointOptions, CheckpointReader,
    CheckpointStore, CheckpointWriter, NewestCheckpoint,
};
pub use error::{Result, StorageError};
pub use log::{
    CorruptRecord, CorruptRegion, DurableEnd, Log, LogOptions, RangeIter, Record, RecordPlace,
    RecoveryReport, SegmentLog, TornTail,
};
pub use media::{
    CrashMode, DaxMode, FlushKind, FsMedia, Media, MediaFile, MemDisk, MemDiskStats, MemMedia,
    PmemMedia, RAM_SPARE_BUFFERS_MAX,
};
pub use meta::{MetaFiles, MetaStore};
pub use rng::Rng;

/// The log on ordinary files (the default backend).
pub type FileLog = SegmentLog<FsMedia>;
/// The log on the in-memory simulated disk.
pub type MemLog = SegmentLog<MemMedia>;
/// The log in memory-mapped files (persistent memory where the mount is DAX).
pub type PmemLog = SegmentLog<PmemMedia>;

// The driver moves each structure to its I/O thread: they must be `Send`.
const _: () = {
    const fn assert_send<T: Send>() {}
    assert_send::<FileLog>();
    assert_send::<MemLog>();
    assert_send::<PmemLog>();
    assert_send::<MetaFiles<FsMedia>>();
    assert_send::<CheckpointFiles<FsMedia>>();
    assert_send::<CheckpointWriter<media::FsFile>>();
};
