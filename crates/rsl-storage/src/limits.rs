//! Every limit of the storage layer, in one place.
//!
//! Names follow the project rule: `*_max` or `*_min` with the unit last. Knobs that a caller
//! may change live in the option structs (`LogOptions`, `CheckpointOptions`); their defaults and
//! bounds are here, with compile-time assertions on how they relate.

/// Bytes of a record header (one cache line, so that a header never straddles two lines).
pub const RECORD_HEADER_BYTES: usize = 64;
/// Bytes of a segment header at offset 0 of every segment file.
pub const SEGMENT_HEADER_BYTES: usize = 64;
/// Records start at offsets that are multiples of this (so recovery can search for the next
/// valid header after a corrupt one, and so headers stay cache-line aligned in pmem).
pub const RECORD_ALIGN_BYTES: usize = 8;
/// Largest payload of one log record.
pub const RECORD_PAYLOAD_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Default rollover size of a segment file.
pub const SEGMENT_BYTES_DEFAULT: u64 = 64 * 1024 * 1024;
/// Smallest allowed `segment_bytes_max` knob (tests use small segments to force rollover).
pub const SEGMENT_BYTES_MIN: u64 = 4096;
/// Largest allowed `segment_bytes_max` knob (offsets inside a segment are u32 in the index).
pub const SEGMENT_BYTES_MAX: u64 = 1 << 31;
/// Appends are buffered in memory and written out when the buffer exceeds this, or at `sync`.
pub const WRITE_BUFFER_BYTES_MAX: usize = 1024 * 1024;
/// The tail segment is kept zero-filled this far past its last record (in the file, not
/// only in its size), so that a sync overwrites blocks the file already has: no block to
/// allocate, no size to change, so no journal commit on ext4 (docs/storage.md, "Zeros ahead
/// of the tail"). Written when the records reach the zeros' end in a write out of fewer than
/// `ZEROS_AHEAD_WRITE_MAX` bytes: a larger write pays for its journal commit itself, and the
/// zeros' own write would double its bytes and slow its sync (p99 of 64 KiB syncs 0.7-1.2 ms
/// -> 2.0-2.5 ms, docs/benchmarks.md).
pub const ZEROS_AHEAD_BYTES: u64 = 1024 * 1024;
/// See [`ZEROS_AHEAD_BYTES`].
pub const ZEROS_AHEAD_WRITE_MAX: usize = 64 * 1024;
/// `read_range` reads records that lie next to each other on disk with one read of at most
/// this many bytes.
pub const READ_RUN_BYTES_MAX: usize = 1024 * 1024;
/// Largest metadata blob (promised ballot, configuration).
pub const META_BLOB_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Bytes of a metadata file header.
pub const META_HEADER_BYTES: usize = 32;
/// Bytes of the checkpoint file header (before the caller's header bytes).
pub const CHECKPOINT_HEADER_BYTES: usize = 64;
/// Largest caller header inside a checkpoint.
pub const CHECKPOINT_CALLER_HEADER_BYTES_MAX: usize = 1024 * 1024;
/// Data bytes per checksummed checkpoint block.
pub const CHECKPOINT_BLOCK_BYTES_MAX: usize = 64 * 1024;
/// A checkpoint being written is synced every this many bytes, so its write-back is spread
/// out instead of one burst at commit that would stall the log's own syncs on the same disk.
pub const CHECKPOINT_SYNC_INTERVAL_BYTES: u64 = 4 * 1024 * 1024;
/// Bytes of a checkpoint block header (length and crc).
pub const CHECKPOINT_BLOCK_HEADER_BYTES: usize = 8;
/// Bytes of the checkpoint trailer.
pub const CHECKPOINT_TRAILER_BYTES: usize = 32;
/// Default number of checkpoints kept.
pub const CHECKPOINTS_KEPT_DEFAULT: usize = 2;
/// Largest number of checkpoints kept.
pub const CHECKPOINTS_KEPT_MAX: usize = 64;
/// Sector size of the memory backend's `CrashMode::RandomSectors` (each sector of an unsynced
/// write survives a crash or not, independently).
pub const SIMULATED_SECTOR_BYTES: usize = 512;
/// Times recovery re-reads a segment in which it found a bad spot, to tell a transient read
/// error (the bytes differ between reads) from bad bytes on the medium.
pub const RECOVERY_REREADS_MAX: usize = 2;
/// Cache line size assumed by the persistent-memory flush loop.
pub const CACHE_LINE_BYTES: usize = 64;

const _: () = assert!(RECORD_HEADER_BYTES.is_multiple_of(RECORD_ALIGN_BYTES));
const _: () = assert!(SEGMENT_HEADER_BYTES.is_multiple_of(RECORD_ALIGN_BYTES));
const _: () = assert!(RECORD_HEADER_BYTES == CACHE_LINE_BYTES);
const _: () = assert!(SEGMENT_BYTES_MIN >= (SEGMENT_HEADER_BYTES + RECORD_HEADER_BYTES) as u64);
const _: () = assert!(SEGMENT_BYTES_MIN <= SEGMENT_BYTES_DEFAULT);
const _: () = assert!(SEGMENT_BYTES_DEFAULT <= SEGMENT_BYTES_MAX);
// A segment holding a single record of maximal size must still be addressable with u32 offsets.
const _: () = assert!(
    (SEGMENT_HEADER_BYTES + RECORD_HEADER_BYTES + RECORD_PAYLOAD_BYTES_MAX) as u64
        <= SEGMENT_BYTES_MAX
);
const _: () = assert!(CHECKPOINT_BLOCK_BYTES_MAX < u32::MAX as usize);
const _: () =
    assert!(CHECKPOINTS_KEPT_DEFAULT >= 1 && CHECKPOINTS_KEPT_DEFAULT <= CHECKPOINTS_KEPT_MAX);
const _: () = assert!(META_BLOB_BYTES_MAX < u32::MAX as usize);
