//! The segmented write-ahead log: [`Log`] (the interface) and [`SegmentLog`] (its one
//! implementation, generic over the [`Media`] it is stored on).
//!
//! Role: keep every (slot, ballot, payload) the caller appends, durably after `sync`, and give
//! it back by slot. The log knows nothing of Paxos: a ballot is an opaque `u128`.
//!
//! Invariants:
//! * Records are appended in *append order*, not slot order; the newest record of a slot
//!   supersedes older ones (a re-accept at a higher ballot, or a repair).
//! * Every record has a sequence number `seq` (0, 1, 2, ... never reused) and carries
//!   `durable_seq`: every record with a smaller `seq` was durable when it was written. Recovery
//!   uses it to tell a torn tail (never acknowledged) from corruption of acknowledged data.
//! * One `sync` makes every earlier append durable: it writes the buffer out and issues one
//!   data sync per segment written since the last sync (one, except across a rollover), plus
//!   one directory sync when segments were created or removed.
//! * Payloads stay on disk; memory holds an index slot -> (segment, offset, length, ballot).
//! * After a failed write or sync the log is poisoned (what reached the disk is unknown,
//!   "fsyncgate"); the caller must reopen it and let recovery decide.
//!
//! Recovery (scanning the segments at open, classifying bad spots, rebuilding the index) is
//! in the `recovery` submodule; this module is the interface, the append and sync path and
//! reads.

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::codec::{
    decode_record, encode_record, record_bytes, segment_name, Decoded, RecordHeader, RecordKind,
    SegmentHeader,
};
use crate::error::{Result, StorageError};
use crate::limits::{
    READ_RUN_BYTES_MAX, RECORD_ALIGN_BYTES, RECORD_HEADER_BYTES, RECORD_PAYLOAD_BYTES_MAX,
    SEGMENT_BYTES_DEFAULT, SEGMENT_HEADER_BYTES, WRITE_BUFFER_BYTES_MAX, ZEROS_AHEAD_BYTES,
    ZEROS_AHEAD_WRITE_MAX,
};
use crate::media::{Media, MediaFile};

mod recovery;
#[cfg(test)]
mod tests;

pub use recovery::{CorruptRecord, CorruptRegion, RecoveryReport, TornTail};

/// One record as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The slot.
    pub slot: u64,
    /// The ballot the caller appended with (opaque to storage).
    pub ballot: u128,
    /// The payload.
    pub payload: Bytes,
}

/// The write-ahead log interface. Used from one I/O thread: `Send`, not `Sync`.
pub trait Log: Send {
    /// Buffer a record for `slot`. It supersedes earlier records of the slot at once (reads
    /// see it), and is durable once a later `sync` returns `Ok`.
    fn append(&mut self, slot: u64, ballot: u128, payload: &[u8]) -> Result<()>;
    /// Make every earlier append durable (group commit: one data sync for all of them).
    fn sync(&mut self) -> Result<()>;
    /// Hand every earlier append to the medium (the page cache) without making it durable:
    /// the `pwrite` half of `sync`. A crash before the next `sync` may lose or tear it.
    fn write_out(&mut self) -> Result<()>;
    /// The newest record of `slot`, or None if the log has none. A record found corrupt
    /// (at recovery or on this read) is [`StorageError::CorruptRecord`].
    fn read(&mut self, slot: u64) -> Result<Option<Record>>;
    /// Records of slots in `from..to`, in slot order, newest record per slot, stopping once
    /// the payloads returned reach `bytes_max` (at least one record if any is in range).
    /// A corrupt record in the range fails the call with [`StorageError::CorruptRecord`]
    /// naming it; read around it with a narrower range until it is repaired.
    fn read_range(&mut self, from: u64, to: u64, bytes_max: usize) -> Result<Vec<Record>>;
    /// Lowest slot that has a record.
    fn first_slot(&self) -> Option<u64>;
    /// Highest slot that has a record.
    fn last_slot(&self) -> Option<u64>;
    /// Drop every slot below `below` (after a checkpoint), durably, and delete the segments
    /// that hold nothing else.
    fn truncate_prefix(&mut self, below: u64) -> Result<()>;
    /// Drop every slot at or above `from`, durably.
    fn truncate_suffix(&mut self, from: u64) -> Result<()>;
    /// Slots whose newest record is corrupt (slot, ballot), until repaired by an append.
    fn corrupt_slots(&self) -> Vec<(u64, u128)>;
    /// Overwrite (repair) `slot` with a fresh record and make it durable: `append` then
    /// `sync`, named for the protocol-aware-recovery step that uses it (the value comes
    /// from peers after recovery reported the slot corrupt).
    fn repair(&mut self, slot: u64, ballot: u128, payload: &[u8]) -> Result<()> {
        self.append(slot, ballot, payload)?;
        self.sync()
    }
    /// Bytes of log kept on the medium (all segments).
    fn bytes_on_disk(&self) -> u64;
    /// Where the durable prefix of the log ends: everything after it was never made
    /// durable by a `sync` (`None`: unknown). After a failed write or sync, discarding what
    /// lies after it ([`SegmentLog::discard_after`]) before reopening leaves exactly the
    /// acknowledged state, whatever a failed sync left in the page cache.
    fn durable_end(&self) -> Option<DurableEnd> {
        None
    }
}

/// The end of a log's durable prefix: `offset` bytes into segment `segment` (later segments
/// hold nothing durable). An `offset` inside the segment header means the segment itself was
/// never made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DurableEnd {
    /// The last segment with durable records.
    pub segment: u64,
    /// Where its durable bytes end.
    pub offset: u64,
}

impl DurableEnd {
    /// A log with nothing durable: every segment may go.
    pub const EMPTY: DurableEnd = DurableEnd { segment: 0, offset: 0 };
}

/// Knobs of the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogOptions {
    /// A segment rolls over once the next record would make it larger than this.
    pub segment_bytes_max: u64,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions { segment_bytes_max: SEGMENT_BYTES_DEFAULT }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Loc {
    segment: u64,
    offset: u64,
    seq: u64,
    payload_len: u32,
    ballot: u128,
    corrupt: bool,
}

#[derive(Debug)]
struct Segment<F> {
    file: F,
    first_seq: u64,
    /// Bytes written to the file (the tail segment's buffer is beyond this).
    written: u64,
    /// The file holds written bytes (records, then zeros) up to here: `written` or more.
    zeroed: u64,
    /// Capacity: rollover before exceeding it.
    capacity: u64,
    /// Highest slot (or marker bound) of any record in it.
    slot_max: Option<u64>,
    /// Written since its last data sync.
    dirty: bool,
}

/// Writes zeros to `file` from `from` to `to`, a chunk at a time.
fn write_zeros<F: MediaFile>(file: &mut F, from: u64, to: u64) -> Result<()> {
    static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];
    let mut at = from;
    while at < to {
        let n = (to - at).min(ZEROS.len() as u64);
        file.write_at(at, &ZEROS[..n as usize])?;
        at += n;
    }
    Ok(())
}

/// The segmented write-ahead log over a medium `M`.
#[derive(Debug)]
pub struct SegmentLog<M: Media> {
    media: M,
    options: LogOptions,
    fixed_capacity: bool,
    segments: BTreeMap<u64, Segment<M::File>>,
    index: BTreeMap<u64, Loc>,
    /// Appends not yet written to the tail segment; they start at the tail's `written`.
    buf: Vec<u8>,
    next_seq: u64,
    synced_seq: u64,
    dir_dirty: bool,
    poisoned: Option<&'static str>,
    /// Where the durable prefix ends, as of the last successful sync (or the open).
    durable_end: DurableEnd,
    /// The largest `durable_seq` of any record applied (scanned or appended).
    durable_seq_max: u64,
    /// A bug planted in recovery (tests only: proves the simulator's checkers catch it).
    #[cfg(feature = "planted-bugs")]
    planted: Option<crate::bugs::PlantedBug>,
}

#[cfg(feature = "planted-bugs")]
type PlantedBugArg = crate::bugs::PlantedBug;
#[cfg(not(feature = "planted-bugs"))]
type PlantedBugArg = std::convert::Infallible;

/// Where a record lies on the medium (for fault-injection tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordPlace {
    /// Name of the segment file.
    pub file: String,
    /// Offset of the record header in it.
    pub offset: u64,
    /// Payload bytes (the payload starts right after the 64-byte header).
    pub payload_len: u32,
    /// Sequence number of the record.
    pub seq: u64,
}

impl<M: Media> SegmentLog<M> {
    /// Record one scanned record in the index and its segment's bookkeeping.
    fn apply(&mut self, segment: u64, offset: u64, h: &RecordHeader, corrupt: bool) {
        self.durable_seq_max = self.durable_seq_max.max(h.durable_seq);
        let seg = self.segments.get_mut(&segment).expect("scanned segment is open");
        seg.slot_max = Some(seg.slot_max.map_or(h.slot, |m| m.max(h.slot)));
        match h.kind {
            RecordKind::Entry => {
                let (payload_len, ballot, seq) = (h.payload_len, h.ballot, h.seq);
                let loc = Loc { segment, offset, seq, payload_len, ballot, corrupt };
                self.index.insert(h.slot, loc);
            }
            RecordKind::TruncatePrefix => self.index = self.index.split_off(&h.slot),
            RecordKind::TruncateSuffix => drop(self.index.split_off(&h.slot)),
        }
    }

    fn check_poison(&self) -> Result<()> {
        match self.poisoned {
            Some(op) => Err(StorageError::Poisoned { op }),
            None => Ok(()),
        }
    }

    fn poison<T>(&mut self, op: &'static str, r: Result<T>) -> Result<T> {
        if r.is_err() && self.poisoned.is_none() {
            self.poisoned = Some(op);
        }
        r
    }

    /// Where the bytes handed to the medium end (nothing buffered counts).
    fn tail_end(&self) -> DurableEnd {
        match self.segments.iter().next_back() {
            Some((id, seg)) => DurableEnd { segment: *id, offset: seg.written },
            None => DurableEnd::EMPTY,
        }
    }

    /// Offset in the tail segment where the next record goes.
    fn tail_position(&self) -> Option<(u64, u64)> {
        let (id, seg) = self.segments.iter().next_back()?;
        Some((*id, seg.written + self.buf.len() as u64))
    }

    fn flush_buffer(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let (_, tail) = self.segments.iter_mut().next_back().expect("buffer implies a tail");
        assert!(
            tail.written.is_multiple_of(RECORD_ALIGN_BYTES as u64),
            "flush at a record boundary"
        );
        assert!(tail.written == 0 || tail.written >= SEGMENT_HEADER_BYTES as u64);
        tail.file.write_at(tail.written, &self.buf)?;
        tail.written += self.buf.len() as u64;
        tail.dirty = true;
        let small = self.buf.len() < ZEROS_AHEAD_WRITE_MAX;
        self.buf.clear();
        if !self.fixed_capacity && tail.written > tail.zeroed && small {
            // Zeros ahead of the records (ZEROS_AHEAD_BYTES): recovery reads zeros after the
            // last record as the end of the data, as in mapped segments.
            let end = (tail.written + ZEROS_AHEAD_BYTES).min(tail.capacity).max(tail.written);
            write_zeros(&mut tail.file, tail.written, end)?;
            tail.zeroed = end;
        }
        Ok(())
    }

    fn roll_over(&mut self, record_len: u64) -> Result<()> {
        self.flush_buffer()?;
        assert!(self.buf.is_empty(), "the old tail is written out before the new one starts");
        let id = self.segments.keys().next_back().map_or(0, |id| id + 1);
        let capacity = self.options.segment_bytes_max.max(SEGMENT_HEADER_BYTES as u64 + record_len);
        let file = self.media.create(&segment_name(id), capacity)?;
        let header = SegmentHeader { segment_id: id, first_seq: self.next_seq };
        self.buf.extend_from_slice(&header.encode());
        let segment = Segment {
            file,
            first_seq: self.next_seq,
            written: 0,
            zeroed: 0,
            capacity,
            slot_max: None,
            dirty: true,
        };
        let previous = self.segments.insert(id, segment);
        assert!(previous.is_none(), "segment ids are never reused");
        assert_eq!(self.buf.len(), SEGMENT_HEADER_BYTES);
        self.dir_dirty = true;
        Ok(())
    }

    fn append_record(
        &mut self,
        kind: RecordKind,
        slot: u64,
        ballot: u128,
        payload: &[u8],
    ) -> Result<()> {
        self.check_poison()?;
        if payload.len() > RECORD_PAYLOAD_BYTES_MAX {
            return Err(StorageError::LimitExceeded {
                what: "record payload bytes",
                value: payload.len() as u64,
                limit: RECORD_PAYLOAD_BYTES_MAX as u64,
            });
        }
        let len = record_bytes(payload.len()) as u64;
        let must_roll = match self.tail_position() {
            None => true,
            // An empty tail takes any record, except a mapped one (its capacity is fixed).
            Some((id, pos)) => {
                pos + len > self.segments[&id].capacity
                    && (pos > SEGMENT_HEADER_BYTES as u64 || self.fixed_capacity)
            }
        };
        if must_roll {
            let r = self.roll_over(len);
            self.poison("rollover", r)?;
        }
        let (segment, offset) = self.tail_position().expect("a tail exists after rollover");
        assert_eq!(offset % RECORD_ALIGN_BYTES as u64, 0, "records are aligned");
        let header = RecordHeader {
            kind,
            payload_len: payload.len() as u32,
            slot,
            ballot,
            seq: self.next_seq,
            durable_seq: self.synced_seq,
            payload_crc: 0,
        };
        let before = self.buf.len();
        encode_record(&mut self.buf, header, payload);
        assert_eq!((self.buf.len() - before) as u64, len, "record size as computed");
        assert!(offset + len <= self.segments[&segment].capacity || !self.fixed_capacity);
        self.apply(segment, offset, &header, false);
        self.next_seq += 1;
        if self.buf.len() >= WRITE_BUFFER_BYTES_MAX {
            let r = self.flush_buffer();
            self.poison("write", r)?;
        }
        Ok(())
    }

    fn sync_inner(&mut self) -> Result<()> {
        self.flush_buffer()?;
        for seg in self.segments.values_mut().filter(|s| s.dirty) {
            seg.file.sync()?;
            seg.dirty = false;
        }
        if self.dir_dirty {
            self.media.sync_dir()?;
            self.dir_dirty = false;
        }
        assert!(self.buf.is_empty() && self.segments.values().all(|s| !s.dirty));
        Ok(())
    }

    fn read_loc(&mut self, slot: u64, loc: Loc) -> Result<Record> {
        if loc.corrupt {
            return Err(StorageError::CorruptRecord { slot, ballot: loc.ballot });
        }
        let total = record_bytes(loc.payload_len as usize);
        let seg = self.segments.get_mut(&loc.segment).expect("index points at a live segment");
        let mut bytes = vec![0u8; total];
        if loc.offset >= seg.written {
            // Still in the write buffer (only the tail segment has one).
            let at = (loc.offset - seg.written) as usize;
            bytes.copy_from_slice(&self.buf[at..at + total]);
        } else {
            seg.file.read_at(loc.offset, &mut bytes)?;
        }
        check_record(slot, loc, Bytes::from(bytes))
    }

    /// Read the records `run` (adjacent on disk, in one segment, none buffered or corrupt)
    /// with one read.
    fn read_run(&mut self, run: &[(u64, Loc)], out: &mut Vec<Record>) -> Result<()> {
        let (first, last) = (run[0].1, run[run.len() - 1].1);
        let end = last.offset + record_bytes(last.payload_len as usize) as u64;
        let seg = self.segments.get_mut(&first.segment).expect("index points at a live segment");
        assert!(end <= seg.written, "a run is on the medium, not in the buffer");
        let mut chunk = vec![0u8; (end - first.offset) as usize];
        seg.file.read_at(first.offset, &mut chunk)?;
        let chunk = Bytes::from(chunk);
        for &(slot, loc) in run {
            let at = (loc.offset - first.offset) as usize;
            let bytes = chunk.slice(at..at + record_bytes(loc.payload_len as usize));
            out.push(check_record(slot, loc, bytes)?);
        }
        Ok(())
    }

    /// Length of the run of records starting at `locs[0]` that `read_run` can read at once,
    /// within `bytes_max` of payload (counting from `bytes`).
    fn run_length(&self, locs: &[(u64, Loc)], mut bytes: usize, bytes_max: usize) -> usize {
        let first = locs[0].1;
        let written = self.segments[&first.segment].written;
        let mut end = first.offset;
        let mut n = 0;
        for &(_, l) in locs {
            let next_end = l.offset + record_bytes(l.payload_len as usize) as u64;
            let fits = n == 0 || bytes + l.payload_len as usize <= bytes_max;
            if l.segment != first.segment
                || l.offset != end
                || l.corrupt
                || next_end > written
                || next_end - first.offset > READ_RUN_BYTES_MAX as u64
                || !fits
            {
                break;
            }
            bytes += l.payload_len as usize;
            end = next_end;
            n += 1;
        }
        n
    }

    /// Check the bookkeeping invariants (cheap ones always, the index walk in debug builds).
    fn check_invariants(&self) {
        assert!(self.synced_seq <= self.next_seq, "synced_seq ahead of next_seq");
        if let Some((_, tail)) = self.segments.iter().next_back() {
            assert!(tail.written % RECORD_ALIGN_BYTES as u64 == 0 || tail.written == 0);
        } else {
            assert!(self.buf.is_empty(), "buffered bytes without a segment");
        }
        if cfg!(debug_assertions) {
            for loc in self.index.values() {
                assert!(
                    self.segments.contains_key(&loc.segment),
                    "index points at a deleted segment"
                );
                assert!(loc.offset >= SEGMENT_HEADER_BYTES as u64);
            }
        }
    }

    /// Where the newest record of `slot` lies (fault-injection tests corrupt it there).
    pub fn locate(&self, slot: u64) -> Option<RecordPlace> {
        let loc = self.index.get(&slot)?;
        let (file, offset, seq) = (segment_name(loc.segment), loc.offset, loc.seq);
        Some(RecordPlace { file, offset, payload_len: loc.payload_len, seq })
    }

    /// The largest `durable_seq` of any record in the log: recovery classifies a bad record
    /// with a smaller `seq` as corrupt (reported), one at or above it as torn (discarded).
    pub fn durable_floor(&self) -> u64 {
        self.durable_seq_max
    }

    /// The medium (for tests that inspect it).
    pub fn media(&self) -> &M {
        &self.media
    }

    /// Number of segment files.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Iterate over the records of slots in `from..to`, in slot order, reading
    /// `chunk_bytes_max` of payload per disk pass (for replay and catch-up with bounded
    /// memory). Stops after the first error.
    pub fn iter_range(&mut self, from: u64, to: u64, chunk_bytes_max: usize) -> RangeIter<'_, M> {
        RangeIter {
            log: self,
            next: from,
            to,
            chunk_bytes_max,
            chunk: Vec::new().into_iter(),
            failed: false,
        }
    }
}

/// Iterator over a slot range of a [`SegmentLog`], see [`SegmentLog::iter_range`].
#[derive(Debug)]
pub struct RangeIter<'a, M: Media> {
    log: &'a mut SegmentLog<M>,
    next: u64,
    to: u64,
    chunk_bytes_max: usize,
    chunk: std::vec::IntoIter<Record>,
    failed: bool,
}

impl<M: Media> Iterator for RangeIter<'_, M> {
    type Item = Result<Record>;

    fn next(&mut self) -> Option<Result<Record>> {
        if let Some(r) = self.chunk.next() {
            return Some(Ok(r));
        }
        if self.failed || self.next >= self.to {
            return None;
        }
        match self.log.read_range(self.next, self.to, self.chunk_bytes_max) {
            Ok(records) => {
                let last = records.last()?.slot;
                assert!(last >= self.next && last < self.to, "read_range stays in range");
                self.next = last + 1;
                self.chunk = records.into_iter();
                self.chunk.next().map(Ok)
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

/// Check that `bytes` is a valid record with the identity the index expects at `loc`.
fn check_record(slot: u64, loc: Loc, bytes: Bytes) -> Result<Record> {
    match decode_record(&bytes) {
        Decoded::Valid(h)
            if h.slot == slot && h.ballot == loc.ballot && h.payload_len == loc.payload_len =>
        {
            let payload =
                bytes.slice(RECORD_HEADER_BYTES..RECORD_HEADER_BYTES + h.payload_len as usize);
            Ok(Record { slot, ballot: h.ballot, payload })
        }
        _ => Err(StorageError::CorruptRecord { slot, ballot: loc.ballot }),
    }
}

impl<M: Media> Log for SegmentLog<M> {
    fn append(&mut self, slot: u64, ballot: u128, payload: &[u8]) -> Result<()> {
        self.append_record(RecordKind::Entry, slot, ballot, payload)?;
        debug_assert!(self.index.get(&slot).is_some_and(|l| l.ballot == ballot && !l.corrupt));
        Ok(())
    }

    fn write_out(&mut self) -> Result<()> {
        self.check_poison()?;
        let r = self.flush_buffer();
        self.poison("write", r)
    }

    fn sync(&mut self) -> Result<()> {
        self.check_poison()?;
        let r = self.sync_inner();
        self.poison("sync", r)?;
        self.synced_seq = self.next_seq;
        self.durable_end = self.tail_end();
        assert!(self.buf.is_empty(), "sync leaves nothing buffered");
        self.check_invariants();
        Ok(())
    }

    fn read(&mut self, slot: u64) -> Result<Option<Record>> {
        self.check_poison()?;
        let Some(&loc) = self.index.get(&slot) else { return Ok(None) };
        let record = self.read_loc(slot, loc)?;
        assert_eq!(record.slot, slot);
        assert_eq!(record.payload.len(), loc.payload_len as usize);
        Ok(Some(record))
    }

    fn read_range(&mut self, from: u64, to: u64, bytes_max: usize) -> Result<Vec<Record>> {
        self.check_poison()?;
        let locs: Vec<(u64, Loc)> =
            self.index.range(from..to.max(from)).map(|(s, l)| (*s, *l)).collect();
        let mut out = Vec::new();
        let mut bytes = 0usize;
        let mut i = 0;
        while i < locs.len() {
            let (slot, loc) = locs[i];
            if !out.is_empty() && bytes + loc.payload_len as usize > bytes_max {
                break;
            }
            // Records appended in slot order lie next to each other: read them in one go.
            let run = self.run_length(&locs[i..], bytes, bytes_max);
            let before = out.len();
            if run >= 2 {
                self.read_run(&locs[i..i + run], &mut out)?;
                i += run;
            } else {
                out.push(self.read_loc(slot, loc)?);
                i += 1;
            }
            bytes += out[before..].iter().map(|r| r.payload.len()).sum::<usize>();
        }
        debug_assert!(out.windows(2).all(|w| w[0].slot < w[1].slot), "slot order");
        debug_assert!(out.len() <= 1 || bytes <= bytes_max, "payload bound");
        Ok(out)
    }

    fn first_slot(&self) -> Option<u64> {
        self.index.keys().next().copied()
    }

    fn last_slot(&self) -> Option<u64> {
        self.index.keys().next_back().copied()
    }

    fn truncate_prefix(&mut self, below: u64) -> Result<()> {
        self.append_record(RecordKind::TruncatePrefix, below, 0, &[])?;
        self.sync()?;
        assert!(self.first_slot().is_none_or(|s| s >= below));
        // Delete whole segments (never the tail) whose records are all below `below`.
        let deletable: Vec<u64> = self
            .segments
            .iter()
            .take(self.segments.len().saturating_sub(1))
            .take_while(|(_, s)| s.slot_max.is_none_or(|m| m < below))
            .map(|(id, _)| *id)
            .collect();
        for id in &deletable {
            assert!(self.index.values().all(|l| l.segment != *id), "deleting a live segment");
            self.segments.remove(id);
            let r = self.media.remove(&segment_name(*id));
            self.poison("remove", r)?;
        }
        if !deletable.is_empty() {
            let r = self.media.sync_dir();
            self.poison("sync_dir", r)?;
        }
        self.check_invariants();
        Ok(())
    }

    fn truncate_suffix(&mut self, from: u64) -> Result<()> {
        self.append_record(RecordKind::TruncateSuffix, from, 0, &[])?;
        self.sync()?;
        assert!(self.last_slot().is_none_or(|s| s < from));
        Ok(())
    }

    fn corrupt_slots(&self) -> Vec<(u64, u128)> {
        self.index.iter().filter(|(_, l)| l.corrupt).map(|(s, l)| (*s, l.ballot)).collect()
    }

    fn durable_end(&self) -> Option<DurableEnd> {
        Some(self.durable_end)
    }

    fn bytes_on_disk(&self) -> u64 {
        self.segments.values().map(|s| s.written).sum::<u64>() + self.buf.len() as u64
    }
}
