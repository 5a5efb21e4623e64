//! Recovery of the segmented log at open: scan every segment, classify each bad spot as a
//! torn tail (writes no `sync` acknowledged: discarded) or corruption of acknowledged data
//! (reported in the [`RecoveryReport`], never truncated away), and rebuild the index. The
//! rules are in docs/storage.md; the append and sync path is in the parent module.

use std::collections::BTreeMap;

use super::{DurableEnd, LogOptions, PlantedBugArg, Segment, SegmentLog};
use crate::codec::{
    decode_record, encode_record, parse_segment_name, segment_name, Decoded, RecordHeader,
    RecordKind, SegmentHeader,
};
use crate::error::{Result, StorageError};
use crate::limits::{
    RECORD_ALIGN_BYTES, RECORD_HEADER_BYTES, RECOVERY_REREADS_MAX as REREADS_MAX,
    SEGMENT_BYTES_MAX, SEGMENT_BYTES_MIN, SEGMENT_HEADER_BYTES,
};
use crate::media::{Media, MediaFile};

/// A record whose header is intact but whose payload is corrupt: the caller had accepted
/// `ballot` at `slot` and must repair the slot (from peers) rather than forget it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CorruptRecord {
    /// Slot of the record.
    pub slot: u64,
    /// Ballot of the record.
    pub ballot: u128,
    /// Sequence number of the record.
    pub seq: u64,
    /// Segment holding it.
    pub segment: u64,
    /// Offset in the segment.
    pub offset: u64,
}

/// Bytes whose headers are unreadable, before acknowledged records: records were lost there
/// and their slots are unknown; `slot_before`/`slot_after` are the neighbours' slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CorruptRegion {
    /// Segment holding the bytes.
    pub segment: u64,
    /// Offset of the first bad byte.
    pub offset: u64,
    /// Length of the bad bytes (up to the next readable header).
    pub bytes: u64,
    /// Sequence numbers `seq_lo..seq_hi` were lost (empty only for a bad segment header).
    pub seq_lo: u64,
    /// Exclusive end of the lost sequence numbers.
    pub seq_hi: u64,
    /// Slot of the last good record before the region.
    pub slot_before: Option<u64>,
    /// Slot of the first good record after it.
    pub slot_after: Option<u64>,
}

/// The torn tail discarded by recovery: writes in flight at the crash, never acknowledged by
/// a `sync`, with one ambiguity spelled out in docs/storage.md (bit rot in the last synced
/// batch when nothing was written after it looks the same).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    /// Segment where the discarded bytes start.
    pub segment: u64,
    /// Offset where they start.
    pub offset: u64,
    /// Identities (slot, ballot) of discarded records whose headers were readable.
    pub records: Vec<(u64, u128)>,
}

/// What recovery found when the log was opened.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Valid records scanned (including superseded ones).
    pub records: u64,
    /// Bytes of segments scanned.
    pub bytes_scanned: u64,
    /// Segments read again because two reads differed (transient read errors).
    pub reread_segments: u64,
    /// Corrupt records with a known identity (the caller must repair these slots).
    pub corrupt: Vec<CorruptRecord>,
    /// Corrupt regions with unknown identity.
    pub corrupt_regions: Vec<CorruptRegion>,
    /// The discarded torn tail, if the last write was torn.
    pub torn: Option<TornTail>,
}

impl RecoveryReport {
    /// True if recovery found corruption that only peers can repair.
    pub fn has_corruption(&self) -> bool {
        !self.corrupt.is_empty() || !self.corrupt_regions.is_empty()
    }
}

/// State of the recovery scan across segments.
#[derive(Debug, Default)]
struct ScanState {
    /// The `seq` the next record should have, if known.
    expected: Option<u64>,
    /// Events from the first bad spot on, waiting for classification.
    deferred: Vec<Scanned>,
    /// Last record applied (seq, slot).
    last_seq: Option<u64>,
    last_slot: Option<u64>,
    /// Where each segment's data ends (zeros may follow).
    data_ends: BTreeMap<u64, u64>,
}

/// An event of the recovery scan, in log order.
#[derive(Debug)]
enum Scanned {
    Good { segment: u64, offset: u64, header: RecordHeader },
    Bad { segment: u64, offset: u64, bytes: u64, header: Option<RecordHeader> },
}

impl Scanned {
    fn position(&self) -> (u64, u64) {
        match self {
            Scanned::Good { segment, offset, .. } | Scanned::Bad { segment, offset, .. } => {
                (*segment, *offset)
            }
        }
    }
}

fn all_zero(b: &[u8]) -> bool {
    b.iter().all(|&x| x == 0)
}

/// Scan one segment's bytes into events; returns where its data ends (only zeros follow).
fn scan_segment(id: u64, data: &[u8], emit: &mut dyn FnMut(Scanned)) -> u64 {
    let header = SegmentHeader::decode(data).filter(|h| h.segment_id == id);
    if header.is_none() {
        // Records are self-describing: keep scanning after a bad segment header, so that a
        // corrupt header of a full segment is reported, not taken for a torn creation.
        let bytes = data.len().min(SEGMENT_HEADER_BYTES) as u64;
        emit(Scanned::Bad { segment: id, offset: 0, bytes, header: None });
    }
    let mut pos = SEGMENT_HEADER_BYTES;
    while pos < data.len() {
        let rest = &data[pos..];
        match decode_record(rest) {
            Decoded::Valid(h) => {
                emit(Scanned::Good { segment: id, offset: pos as u64, header: h });
                pos += h.record_bytes();
            }
            Decoded::BadPayload(h) => {
                let bytes = h.record_bytes() as u64;
                emit(Scanned::Bad { segment: id, offset: pos as u64, bytes, header: Some(h) });
                pos += h.record_bytes();
            }
            Decoded::Truncated(h) => {
                let bytes = rest.len() as u64;
                emit(Scanned::Bad { segment: id, offset: pos as u64, bytes, header: Some(h) });
                pos = data.len();
                break;
            }
            Decoded::End if all_zero(rest) => break,
            Decoded::End | Decoded::BadHeader(_) | Decoded::ShortHeader => {
                let next = resync(data, pos);
                let bytes = (next - pos) as u64;
                emit(Scanned::Bad { segment: id, offset: pos as u64, bytes, header: None });
                pos = next;
            }
        }
    }
    pos.min(data.len()) as u64
}

/// The next aligned offset after `pos` holding a decodable record header, or the end.
fn resync(data: &[u8], pos: usize) -> usize {
    let mut q = pos + RECORD_ALIGN_BYTES;
    while q + RECORD_HEADER_BYTES <= data.len() {
        let head: &[u8; RECORD_HEADER_BYTES] =
            data[q..q + RECORD_HEADER_BYTES].try_into().expect("64 bytes");
        if RecordHeader::decode(head).is_ok() {
            return q;
        }
        q += RECORD_ALIGN_BYTES;
    }
    data.len()
}

impl<M: Media> SegmentLog<M> {
    /// Open (or create) the log on `media`, running recovery. Returns the log and what
    /// recovery found. Never truncates the log at a corrupt record; only a torn tail (writes
    /// that no `sync` acknowledged) is discarded.
    pub fn open(media: M, options: LogOptions) -> Result<(Self, RecoveryReport)> {
        Self::open_inner(media, options, None)
    }

    /// [`SegmentLog::open`] with a bug planted in recovery (feature `planted-bugs`, never
    /// on in a normal build): the simulator proves its checkers catch a recovery that breaks
    /// the rules of protocol-aware recovery.
    #[cfg(feature = "planted-bugs")]
    pub fn open_planted(
        media: M,
        options: LogOptions,
        bug: Option<crate::bugs::PlantedBug>,
    ) -> Result<(Self, RecoveryReport)> {
        Self::open_inner(media, options, bug)
    }

    fn open_inner(
        mut media: M,
        options: LogOptions,
        #[cfg_attr(not(feature = "planted-bugs"), allow(unused_variables))] bug: Option<
            PlantedBugArg,
        >,
    ) -> Result<(Self, RecoveryReport)> {
        if !(SEGMENT_BYTES_MIN..=SEGMENT_BYTES_MAX).contains(&options.segment_bytes_max) {
            return Err(StorageError::LimitExceeded {
                what: "segment_bytes_max",
                value: options.segment_bytes_max,
                limit: SEGMENT_BYTES_MAX,
            });
        }
        let fixed_capacity = media.kind() == "pmem";
        let mut ids: Vec<u64> =
            media.list()?.iter().filter_map(|n| parse_segment_name(n)).collect();
        ids.sort_unstable();
        let mut log = SegmentLog {
            media,
            options,
            fixed_capacity,
            segments: BTreeMap::new(),
            index: BTreeMap::new(),
            buf: Vec::new(),
            next_seq: 0,
            synced_seq: 0,
            dir_dirty: false,
            poisoned: None,
            durable_end: DurableEnd::EMPTY,
            durable_seq_max: 0,
            #[cfg(feature = "planted-bugs")]
            planted: bug,
        };
        let mut report = RecoveryReport::default();
        let mut scan = ScanState::default();
        // One buffer for all segments: one segment in memory at a time, allocated once.
        let mut buffer = Vec::new();
        for (i, &id) in ids.iter().enumerate() {
            let mut file = log.media.open(&segment_name(id))?;
            let len = file.len()?;
            if buffer.len() < len as usize {
                buffer.resize(len as usize, 0);
            }
            let data = &mut buffer[..len as usize];
            file.read_at(0, data)?;
            let mut events = Vec::new();
            let mut end = scan_segment(id, data, &mut |event| events.push(event));
            // A bad spot may be a transient read error (a bus or cache fault), not bad bytes
            // on the medium: read the segment again, and classify what two reads agree on.
            // Discarding a "torn tail" that was only misread would lose acknowledged records.
            for _ in 0..REREADS_MAX {
                if !events.iter().any(|e| matches!(e, Scanned::Bad { .. })) {
                    break;
                }
                let mut again = vec![0u8; len as usize];
                file.read_at(0, &mut again)?;
                if again[..] == buffer[..len as usize] {
                    break;
                }
                report.reread_segments += 1;
                buffer[..len as usize].copy_from_slice(&again);
                events.clear();
                end = scan_segment(id, &buffer[..len as usize], &mut |e| events.push(e));
            }
            let data = &buffer[..len as usize];
            report.bytes_scanned += len;
            let header = SegmentHeader::decode(data).filter(|h| h.segment_id == id);
            let first_seq = header.map_or(0, |h| h.first_seq);
            if i == 0 {
                scan.expected = header.map(|h| h.first_seq);
            }
            let capacity = if fixed_capacity { len } else { options.segment_bytes_max };
            let (written, zeroed) = (len, len);
            let segment = Segment {
                file,
                first_seq,
                written,
                zeroed,
                capacity,
                slot_max: None,
                dirty: false,
            };
            log.segments.insert(id, segment);
            for event in events {
                log.feed(&mut scan, event, &mut report);
            }
            scan.data_ends.insert(id, end);
        }
        log.recover(scan, &mut report)?;
        log.check_invariants();
        Ok((log, report))
    }

    /// Take one scanned event in log order. Records before the first bad spot are applied at
    /// once (they are good whatever comes later); from the first bad spot on, events wait for
    /// `recover`, which needs the largest `durable_seq` after them to classify the bad spots.
    /// A jump in `seq` (a lost segment) becomes a bad spot without identity.
    fn feed(&mut self, scan: &mut ScanState, event: Scanned, report: &mut RecoveryReport) {
        match &event {
            Scanned::Good { segment, offset, header } => {
                if scan.expected.is_some_and(|x| header.seq > x) {
                    let gap =
                        Scanned::Bad { segment: *segment, offset: *offset, bytes: 0, header: None };
                    scan.deferred.push(gap);
                }
                scan.expected = Some(header.seq + 1);
            }
            // After unreadable bytes the next sequence number is unknown; the region's
            // report covers whatever was lost in it.
            Scanned::Bad { header, .. } => scan.expected = header.map(|h| h.seq + 1),
        }
        match event {
            Scanned::Good { segment, offset, header } if scan.deferred.is_empty() => {
                assert!(scan.last_seq.is_none_or(|s| header.seq > s), "seq increases");
                report.records += 1;
                self.apply(segment, offset, &header, false);
                scan.last_seq = Some(header.seq);
                scan.last_slot = Some(header.slot);
            }
            other => scan.deferred.push(other),
        }
    }

    /// Classify the deferred events, discard a torn tail, and finish rebuilding the index.
    fn recover(&mut self, scan: ScanState, report: &mut RecoveryReport) -> Result<()> {
        let events = scan.deferred;
        // Everything below `durable_floor` was acknowledged durable by some sync. (Records
        // applied before the first bad spot cannot raise it above that spot's seq.)
        let durable_floor = events
            .iter()
            .filter_map(|e| match e {
                Scanned::Good { header, .. } | Scanned::Bad { header: Some(header), .. } => {
                    Some(header.durable_seq)
                }
                Scanned::Bad { header: None, .. } => None,
            })
            .max()
            .unwrap_or(0);
        let (mut last_seq, mut last_slot) = (scan.last_seq, scan.last_slot);
        let mut data_ends = scan.data_ends;
        let mut cut: Option<usize> = None;
        let mut silent = false;
        for (i, event) in events.iter().enumerate() {
            let expected = last_seq.map_or(0, |s| s + 1);
            match event {
                Scanned::Good { segment, offset, header } => {
                    report.records += 1;
                    self.apply(*segment, *offset, header, false);
                    last_seq = Some(header.seq);
                    last_slot = Some(header.slot);
                }
                Scanned::Bad { header, .. } => {
                    let seq = header.map_or(expected, |h| h.seq);
                    let torn = seq >= durable_floor;
                    if torn && self.planted_keep_torn() {
                        if let Some(h) = header.filter(|h| h.kind == RecordKind::Entry) {
                            self.keep_torn(event, h, &mut data_ends)?;
                            report.records += 1;
                            last_seq = Some(h.seq);
                            cut = (i + 1 < events.len()).then_some(i + 1);
                            break;
                        }
                    }
                    if torn || self.planted_truncate_at_corruption() {
                        // The planted bug cuts a corrupt record off and says nothing of it.
                        silent = !torn;
                        cut = Some(i);
                        break;
                    }
                    let rest = &events[i + 1..];
                    if let Some(s) = self.corrupt_spot(event, rest, seq, last_slot, report) {
                        last_seq = Some(s);
                    }
                }
            }
        }
        // Only corrupt records that are still their slot's newest need repair.
        report.corrupt.retain(|c| {
            self.index
                .get(&c.slot)
                .is_some_and(|l| l.corrupt && (l.segment, l.offset) == (c.segment, c.offset))
        });
        if let Some(i) = cut {
            let tail = self.discard_tail(&events[i..])?;
            report.torn = (!silent).then_some(tail);
        }
        self.next_seq = last_seq.map_or_else(
            || self.segments.values().next_back().map_or(0, |s| s.first_seq),
            |s| s + 1,
        );
        self.finish_open(&data_ends)
    }

    #[cfg(feature = "planted-bugs")]
    fn planted_keep_torn(&self) -> bool {
        self.planted == Some(crate::bugs::PlantedBug::KeepTornWrite)
    }

    #[cfg(not(feature = "planted-bugs"))]
    fn planted_keep_torn(&self) -> bool {
        false
    }

    #[cfg(feature = "planted-bugs")]
    fn planted_truncate_at_corruption(&self) -> bool {
        self.planted == Some(crate::bugs::PlantedBug::TruncateAtCorruption)
    }

    #[cfg(not(feature = "planted-bugs"))]
    fn planted_truncate_at_corruption(&self) -> bool {
        false
    }

    /// The planted `KeepTornWrite` bug: "repair" a torn record whose header survived by
    /// zero-filling its lost bytes and checksumming it again, instead of discarding it.
    fn keep_torn(
        &mut self,
        event: &Scanned,
        h: RecordHeader,
        data_ends: &mut BTreeMap<u64, u64>,
    ) -> Result<()> {
        let (segment, offset) = event.position();
        let total = h.record_bytes() as u64;
        let seg = self.segments.get_mut(&segment).expect("scanned segment is open");
        let have = seg.file.len()?.saturating_sub(offset).min(total);
        let mut bytes = vec![0u8; total as usize];
        seg.file.read_at(offset, &mut bytes[..have as usize])?;
        let payload = &bytes[RECORD_HEADER_BYTES..RECORD_HEADER_BYTES + h.payload_len as usize];
        let mut record = Vec::with_capacity(total as usize);
        encode_record(&mut record, h, payload);
        seg.file.write_at(offset, &record)?;
        seg.file.sync()?;
        seg.written = seg.written.max(offset + total);
        seg.zeroed = seg.zeroed.max(seg.written);
        let end = data_ends.entry(segment).or_insert(0);
        *end = (*end).max(offset + total);
        self.apply(segment, offset, &h, false);
        Ok(())
    }

    /// Report a bad spot classified as corrupt (`seq` below the durable floor); `rest` are
    /// the events after it. Returns the last `seq` the spot accounts for, if any.
    fn corrupt_spot(
        &mut self,
        event: &Scanned,
        rest: &[Scanned],
        seq: u64,
        last_slot: Option<u64>,
        report: &mut RecoveryReport,
    ) -> Option<u64> {
        let Scanned::Bad { segment, offset, bytes, header } = *event else {
            unreachable!("only bad spots are corrupt")
        };
        if let Some(h) = header {
            let (slot, ballot) = (h.slot, h.ballot);
            report.corrupt.push(CorruptRecord { slot, ballot, seq: h.seq, segment, offset });
            // The corrupt record is the newest the replica accepted for its slot, unless a
            // later record supersedes it.
            self.apply(segment, offset, &h, true);
            return Some(h.seq);
        }
        // A bad segment header alone loses no record (seq_hi may equal seq_lo); bad bytes at
        // a record position lose at least one.
        let lost_min = if offset == 0 { seq } else { seq + 1 };
        let seq_hi = next_known_seq(rest).unwrap_or(lost_min).max(lost_min);
        report.corrupt_regions.push(CorruptRegion {
            segment,
            offset,
            bytes,
            seq_lo: seq,
            seq_hi,
            slot_before: last_slot,
            slot_after: next_known_slot(rest),
        });
        (seq_hi > seq).then(|| seq_hi - 1)
    }

    /// Physically discard the torn tail starting at `events[0]`; returns what was discarded.
    fn discard_tail(&mut self, events: &[Scanned]) -> Result<TornTail> {
        let (segment, offset) = events[0].position();
        assert!(
            offset < SEGMENT_HEADER_BYTES as u64
                || offset.is_multiple_of(RECORD_ALIGN_BYTES as u64)
        );
        let records = events
            .iter()
            .filter_map(|e| match e {
                Scanned::Good { header, .. } | Scanned::Bad { header: Some(header), .. } => {
                    (header.kind == RecordKind::Entry).then_some((header.slot, header.ballot))
                }
                Scanned::Bad { header: None, .. } => None,
            })
            .collect();
        let later: Vec<u64> = self.segments.range(segment + 1..).map(|(id, _)| *id).collect();
        for id in later {
            self.segments.remove(&id);
            self.media.remove(&segment_name(id))?;
        }
        if offset < SEGMENT_HEADER_BYTES as u64 {
            self.segments.remove(&segment);
            self.media.remove(&segment_name(segment))?;
        } else {
            let seg = self.segments.get_mut(&segment).expect("torn segment is open");
            seg.file.truncate(offset)?;
            seg.file.sync()?;
            seg.written = offset;
            seg.zeroed = offset;
        }
        self.media.sync_dir()?;
        // Nothing applied to the index lies in the discarded bytes (they were never applied).
        debug_assert!(self.index.values().all(|l| (l.segment, l.offset) < (segment, offset)));
        Ok(TornTail { segment, offset, records })
    }

    /// Set segment bookkeeping after recovery and make the recovered state durable (after a
    /// process crash the recovered bytes may still be only in the page cache).
    fn finish_open(&mut self, data_ends: &BTreeMap<u64, u64>) -> Result<()> {
        if let Some((id, tail)) = self.segments.iter_mut().next_back() {
            // Appends resume right after the last record, not at the file's length: mapped
            // segments are zero up to their capacity, and a file system may have persisted a
            // file's size without its data (zeros after the last record). Appending after
            // such zeros would hide the new records from the next recovery.
            // (A discarded torn tail already lowered `written` to where it started.)
            let end = data_ends[id].min(tail.written);
            assert!(end >= SEGMENT_HEADER_BYTES as u64, "recovery keeps no headerless tail");
            if end < tail.written && !self.fixed_capacity {
                // The zeros go (the next flush writes zeros ahead again).
                tail.file.truncate(end)?;
                tail.zeroed = end;
            }
            tail.written = end;
            tail.file.sync()?;
        }
        self.media.sync_dir()?;
        self.synced_seq = self.next_seq;
        self.durable_end = self.tail_end();
        Ok(())
    }

    /// Discards from `media` everything after `end` (segments after its segment, bytes after
    /// its offset), so that the next [`SegmentLog::open`] finds exactly the durable prefix a
    /// failed log had: what a failed write or sync left behind, even bytes a failed sync left
    /// readable in the page cache without writing them, is gone, as a torn tail would be.
    /// Nothing after `end` was acknowledged, so nothing acknowledged is lost. Mapped media
    /// (fixed capacity) are left to recovery.
    pub fn discard_after(media: &mut M, end: DurableEnd) -> Result<()> {
        if media.kind() == "pmem" {
            return Ok(());
        }
        let mut ids: Vec<u64> =
            media.list()?.iter().filter_map(|n| parse_segment_name(n)).collect();
        ids.sort_unstable();
        for id in ids {
            let whole =
                id > end.segment || (id == end.segment && end.offset < SEGMENT_HEADER_BYTES as u64);
            if whole {
                media.remove(&segment_name(id))?;
            } else if id == end.segment {
                let mut file = media.open(&segment_name(id))?;
                if file.len()? > end.offset {
                    file.truncate(end.offset)?;
                    file.sync()?;
                }
            }
        }
        media.sync_dir()
    }
}

fn next_known_seq(events: &[Scanned]) -> Option<u64> {
    events.iter().find_map(|e| match e {
        Scanned::Good { header, .. } | Scanned::Bad { header: Some(header), .. } => {
            Some(header.seq)
        }
        _ => None,
    })
}

fn next_known_slot(events: &[Scanned]) -> Option<u64> {
    events.iter().find_map(|e| match e {
        Scanned::Good { header, .. } => Some(header.slot),
        _ => None,
    })
}
