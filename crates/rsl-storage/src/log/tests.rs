//! The durable end of a log, and discarding what lies after it before a reopen: the retry
//! path of a failed write or sync (a full disk) starts from exactly the acknowledged state.

use super::*;
use crate::media::{FsMedia, MemDisk};

fn payload(slot: u64) -> Vec<u8> {
    vec![slot as u8; 300]
}

/// Appends `slots` at ballot 1 and writes them out to the medium (the page cache) without a
/// sync: readable by the next open, not durable.
fn written_not_synced<M: Media>(log: &mut SegmentLog<M>, slots: std::ops::RangeInclusive<u64>) {
    for slot in slots {
        log.append(slot, 1, &payload(slot)).unwrap();
    }
    log.write_out().unwrap();
}

fn slots<M: Media>(log: &SegmentLog<M>) -> Vec<u64> {
    log.index.keys().copied().collect()
}

/// Checks both media: after a sync at slot 3 and unsynced writes up to slot 40 (across
/// several segment rollovers), reopening after `discard_after(durable_end)` finds slots 1..=3
/// exactly, with no torn tail or corruption reported; reopening without it would have taken
/// the unsynced records for durable ones.
fn discard_leaves_the_durable_prefix<M: Media>(media: impl Fn() -> M) {
    let options = LogOptions { segment_bytes_max: crate::limits::SEGMENT_BYTES_MIN };
    let (mut log, _) = SegmentLog::open(media(), options).unwrap();
    assert_eq!(log.durable_end(), Some(DurableEnd::EMPTY));
    written_not_synced(&mut log, 1..=3);
    log.sync().unwrap();
    let end = log.durable_end().unwrap();
    assert_eq!(end, log.tail_end());
    written_not_synced(&mut log, 4..=40);
    assert!(log.segment_count() > 2, "the unsynced records span new segments");
    assert_eq!(log.durable_end(), Some(end), "only a sync moves the durable end");
    drop(log);

    let (control, _) = SegmentLog::open(media(), options).unwrap();
    assert_eq!(slots(&control).len(), 40, "a plain reopen keeps what was only written out");
    drop(control);

    SegmentLog::discard_after(&mut media(), end).unwrap();
    let (mut log, report) = SegmentLog::open(media(), options).unwrap();
    assert_eq!(slots(&log), vec![1, 2, 3]);
    assert!(report.torn.is_none() && !report.has_corruption(), "{report:?}");
    assert_eq!(log.read(2).unwrap().unwrap().payload, payload(2));
    // The log goes on from there: a retried batch is appended and synced as usual.
    written_not_synced(&mut log, 4..=5);
    log.sync().unwrap();
    drop(log);
    let (log, _) = SegmentLog::open(media(), options).unwrap();
    assert_eq!(slots(&log), vec![1, 2, 3, 4, 5]);
}

#[test]
fn discarding_after_the_durable_end_leaves_the_durable_prefix_on_files() {
    let dir = tempfile::tempdir().unwrap();
    discard_leaves_the_durable_prefix(|| FsMedia::open(dir.path()).unwrap());
}

#[test]
fn discarding_after_the_durable_end_leaves_the_durable_prefix_in_memory() {
    let disk = MemDisk::new(7);
    discard_leaves_the_durable_prefix(|| disk.media());
}

#[test]
fn discarding_everything_when_nothing_was_durable() {
    let disk = MemDisk::new(8);
    let (mut log, _) = SegmentLog::open(disk.media(), LogOptions::default()).unwrap();
    written_not_synced(&mut log, 1..=3);
    drop(log);
    SegmentLog::discard_after(&mut disk.media(), DurableEnd::EMPTY).unwrap();
    let (log, report) = SegmentLog::open(disk.media(), LogOptions::default()).unwrap();
    assert_eq!(log.segment_count(), 0);
    assert!(slots(&log).is_empty() && report.torn.is_none());
}

/// The tail segment's file holds written zeros `ZEROS_AHEAD_BYTES` past its records (blocks
/// the file has, not a hole), so the syncs of small batches change neither its size nor its
/// blocks; recovery takes the zeros for the end of the data, and appends resume after the
/// last record.
#[test]
fn the_tail_segment_is_zero_filled_ahead_of_its_records() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(segment_name(0));
    let stat = || std::fs::metadata(&file).unwrap();
    let (mut log, _) =
        SegmentLog::open(FsMedia::open(dir.path()).unwrap(), LogOptions::default()).unwrap();
    log.append(1, 1, &payload(1)).unwrap();
    log.sync().unwrap();
    let written = log.tail_end().offset;
    let len = stat().len();
    assert_eq!(len, written + ZEROS_AHEAD_BYTES);
    assert!(stat().blocks() * 512 >= len, "the zeros are written, not a hole");
    // 500 more records of 364 bytes, one sync each: 182,000 bytes, within the zeros.
    for slot in 2..=501 {
        log.append(slot, 1, &payload(slot)).unwrap();
        log.sync().unwrap();
        assert_eq!(stat().len(), len, "slot {slot}: a sync within the zeros changed the size");
    }
    // Past the zeros' end in one large write out (1.3 MB): no zeros after it (the write
    // pays its own journal commit); then a small one writes zeros ahead again.
    for slot in 502..=4000 {
        log.append(slot, 1, &payload(slot)).unwrap();
    }
    log.sync().unwrap();
    assert!(log.tail_end().offset > len);
    assert_eq!(stat().len(), log.tail_end().offset);
    log.append(4001, 1, &payload(4001)).unwrap();
    log.sync().unwrap();
    let written = log.tail_end().offset;
    assert_eq!(stat().len(), written + ZEROS_AHEAD_BYTES);
    drop(log);
    // Recovery: every record, no bad spot; the zeros are cut off, and appends resume at the
    // last record's end (not after the zeros, which would hide them from the next recovery).
    let (mut log, report) =
        SegmentLog::open(FsMedia::open(dir.path()).unwrap(), LogOptions::default()).unwrap();
    assert_eq!(slots(&log), (1..=4001).collect::<Vec<_>>());
    assert!(report.torn.is_none() && !report.has_corruption(), "{report:?}");
    assert_eq!(stat().len(), written);
    log.append(4002, 1, &payload(4002)).unwrap();
    log.sync().unwrap();
    drop(log);
    let (mut log, report) =
        SegmentLog::open(FsMedia::open(dir.path()).unwrap(), LogOptions::default()).unwrap();
    assert_eq!(slots(&log).len(), 4002);
    assert!(report.torn.is_none() && !report.has_corruption(), "{report:?}");
    assert_eq!(log.read(4002).unwrap().unwrap().payload, payload(4002));
}

/// The limits of the zeros ahead: a first write out (segment header and one record) of
/// `ZEROS_AHEAD_WRITE_MAX - 8` bytes writes zeros after it, one of exactly
/// `ZEROS_AHEAD_WRITE_MAX` bytes writes none; and the zeros stop at the segment's capacity.
#[test]
fn zeros_ahead_stop_at_their_write_size_and_at_the_segment_capacity() {
    use crate::limits::SEGMENT_BYTES_MIN;
    let first_write_out = |payload: usize, segment_bytes_max: u64| {
        let dir = tempfile::tempdir().unwrap();
        let options = LogOptions { segment_bytes_max };
        let (mut log, _) = SegmentLog::open(FsMedia::open(dir.path()).unwrap(), options).unwrap();
        log.append(1, 1, &vec![7u8; payload]).unwrap();
        log.sync().unwrap();
        let written = log.tail_end().offset;
        (written, std::fs::metadata(dir.path().join(segment_name(0))).unwrap().len())
    };
    let header = SEGMENT_HEADER_BYTES + RECORD_HEADER_BYTES;
    let at_max = ZEROS_AHEAD_WRITE_MAX - header;
    let (written, len) = first_write_out(at_max - 8, SEGMENT_BYTES_DEFAULT);
    assert_eq!(written, ZEROS_AHEAD_WRITE_MAX as u64 - 8);
    assert_eq!(len, written + ZEROS_AHEAD_BYTES, "one aligned step under the size: zeros");
    let (written, len) = first_write_out(at_max, SEGMENT_BYTES_DEFAULT);
    assert_eq!(written, ZEROS_AHEAD_WRITE_MAX as u64);
    assert_eq!(len, written, "a write out of the size itself: no zeros");
    let (written, len) = first_write_out(100, SEGMENT_BYTES_MIN);
    assert!(written < SEGMENT_BYTES_MIN);
    assert_eq!(len, SEGMENT_BYTES_MIN, "zeros up to the capacity, not past it");
}
