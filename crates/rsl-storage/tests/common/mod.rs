//! The conformance suite: generic checks every backend must pass, instantiated per backend by
//! `conformance!` in tests/conformance.rs. Each check takes factories for fresh media handles
//! on the same storage (so "reopen" means dropping every handle and opening again).

#![allow(dead_code)]

use std::io::{Read, Write};

use rsl_storage::codec::record_bytes;
use rsl_storage::limits::{RECORD_PAYLOAD_BYTES_MAX, SEGMENT_HEADER_BYTES};
use rsl_storage::{
    CheckpointFiles, CheckpointOptions, CheckpointStore, Log, LogOptions, Media, MediaFile,
    MetaFiles, MetaStore, SegmentLog, StorageError,
};

pub use rsl_storage::testkit::payload;

pub fn len_for(slot: u64) -> usize {
    [0usize, 1, 7, 8, 9, 63, 64, 100, 1000, 4000][(slot % 10) as usize]
}

pub fn ballot_for(slot: u64) -> u128 {
    (u128::from(slot) << 64) | 0xABCD
}

fn opts(segment_bytes_max: u64) -> LogOptions {
    LogOptions { segment_bytes_max }
}

pub fn open_log<M: Media>(media: M, segment_bytes_max: u64) -> SegmentLog<M> {
    let (log, report) = SegmentLog::open(media, opts(segment_bytes_max)).expect("open log");
    assert!(!report.has_corruption(), "clean reopen reports no corruption: {report:?}");
    assert!(report.torn.is_none(), "clean reopen has no torn tail: {report:?}");
    log
}

pub fn check_slot<L: Log>(log: &mut L, slot: u64, ballot: u128, len: usize) {
    let r = log.read(slot).expect("read").unwrap_or_else(|| panic!("slot {slot} missing"));
    assert_eq!((r.slot, r.ballot), (slot, ballot), "identity of slot {slot}");
    assert_eq!(&r.payload[..], &payload(slot, ballot, len)[..], "payload of slot {slot}");
}

pub fn append_read_survives_reopen<M: Media>(media: &dyn Fn() -> M) {
    let mut log = open_log(media(), 1 << 20);
    assert_eq!((log.first_slot(), log.last_slot()), (None, None));
    assert!(log.read(0).unwrap().is_none());
    for slot in 0..300 {
        log.append(slot, ballot_for(slot), &payload(slot, ballot_for(slot), len_for(slot)))
            .unwrap();
        // Readable at once, before the sync (from the write buffer).
        check_slot(&mut log, slot, ballot_for(slot), len_for(slot));
    }
    log.sync().unwrap();
    for slot in 0..300 {
        check_slot(&mut log, slot, ballot_for(slot), len_for(slot));
    }
    drop(log);
    let mut log = open_log(media(), 1 << 20);
    assert_eq!((log.first_slot(), log.last_slot()), (Some(0), Some(299)));
    for slot in 0..300 {
        check_slot(&mut log, slot, ballot_for(slot), len_for(slot));
    }
    assert!(log.read(300).unwrap().is_none());
    // Appending after a reopen continues the log; a second reopen sees both parts.
    log.append(300, 1, &payload(300, 1, 10)).unwrap();
    log.sync().unwrap();
    drop(log);
    let mut log = open_log(media(), 1 << 20);
    check_slot(&mut log, 300, 1, 10);
    check_slot(&mut log, 299, ballot_for(299), len_for(299));
}

pub fn later_record_supersedes<M: Media>(media: &dyn Fn() -> M) {
    let mut log = open_log(media(), 4096);
    log.append(5, 1, &payload(5, 1, 50)).unwrap();
    log.append(6, 1, &payload(6, 1, 50)).unwrap();
    log.sync().unwrap();
    for i in 0..40 {
        log.append(100 + i, 1, &payload(100 + i, 1, 200)).unwrap(); // pushes across segments
    }
    log.append(5, 2, &payload(5, 2, 70)).unwrap();
    check_slot(&mut log, 5, 2, 70);
    log.sync().unwrap();
    drop(log);
    let mut log = open_log(media(), 4096);
    check_slot(&mut log, 5, 2, 70);
    check_slot(&mut log, 6, 1, 50);
}

pub fn rollover_and_prefix_truncation<M: Media>(media: &dyn Fn() -> M) {
    let mut log = open_log(media(), 4096);
    for slot in 0..200 {
        log.append(slot, 1, &payload(slot, 1, 100)).unwrap();
        if slot % 16 == 15 {
            log.sync().unwrap();
        }
    }
    // Slot 3 re-accepted late: its newest record lives in the last segment.
    log.append(3, 2, &payload(3, 2, 30)).unwrap();
    log.sync().unwrap();
    let before = log.segment_count();
    assert!(before >= 5, "4 KiB segments must roll over ({before})");
    let bytes_before = log.bytes_on_disk();
    log.truncate_prefix(150).unwrap();
    assert!(log.segment_count() < before, "whole segments below the bound are deleted");
    assert!(log.bytes_on_disk() < bytes_before);
    assert_eq!(log.first_slot(), Some(150));
    assert!(log.read(3).unwrap().is_none(), "slot 3 is below the bound even though re-accepted");
    assert!(log.read(149).unwrap().is_none());
    check_slot(&mut log, 150, 1, 100);
    let names: Vec<String> = media().list().unwrap();
    assert_eq!(names.iter().filter(|n| n.starts_with("wal-")).count(), log.segment_count());
    drop(log);
    let mut log = open_log(media(), 4096);
    assert_eq!((log.first_slot(), log.last_slot()), (Some(150), Some(199)));
    assert!(log.read(3).unwrap().is_none(), "truncation survives reopen");
    for slot in 150..200 {
        check_slot(&mut log, slot, 1, 100);
    }
    log.append(200, 1, &payload(200, 1, 5)).unwrap();
    log.sync().unwrap();
    drop(log);
    let mut log = open_log(media(), 4096);
    check_slot(&mut log, 200, 1, 5);
}

pub fn suffix_truncation<M: Media>(media: &dyn Fn() -> M) {
    let mut log = open_log(media(), 4096);
    for slot in 0..50 {
        log.append(slot, 1, &payload(slot, 1, 64)).unwrap();
    }
    log.sync().unwrap();
    log.truncate_suffix(30).unwrap();
    assert_eq!(log.last_slot(), Some(29));
    assert!(log.read(35).unwrap().is_none());
    log.append(30, 9, &payload(30, 9, 3)).unwrap();
    log.sync().unwrap();
    drop(log);
    let mut log = open_log(media(), 4096);
    assert_eq!(log.last_slot(), Some(30));
    check_slot(&mut log, 30, 9, 3);
    check_slot(&mut log, 29, 1, 64);
    for slot in 31..50 {
        assert!(log.read(slot).unwrap().is_none(), "slot {slot} stays truncated");
    }
}

pub fn read_range_is_ordered_and_bounded<M: Media>(media: &dyn Fn() -> M) {
    let mut log = open_log(media(), 4096);
    for slot in (0..100).rev() {
        log.append(slot * 2, 1, &payload(slot * 2, 1, 100)).unwrap();
    }
    log.sync().unwrap();
    let all = log.read_range(10, 60, usize::MAX).unwrap();
    let slots: Vec<u64> = all.iter().map(|r| r.slot).collect();
    assert_eq!(slots, (5..30).map(|s| s * 2).collect::<Vec<_>>());
    for r in &all {
        assert_eq!(&r.payload[..], &payload(r.slot, 1, 100)[..]);
    }
    let some = log.read_range(0, 200, 250).unwrap();
    assert_eq!(some.len(), 2, "stops before exceeding bytes_max");
    let one = log.read_range(0, 200, 1).unwrap();
    assert_eq!(one.len(), 1, "always at least one record");
    assert!(log.read_range(201, 300, usize::MAX).unwrap().is_empty());
    // The iterator reads in bounded chunks and yields the same records.
    let iterated: Vec<u64> = log.iter_range(10, 60, 250).map(|r| r.unwrap().slot).collect();
    assert_eq!(iterated, (5..30).map(|s| s * 2).collect::<Vec<_>>());
    assert_eq!(log.iter_range(0, u64::MAX, 1).count(), 100);
    assert!(log.read_range(60, 10, usize::MAX).unwrap().is_empty());
}

pub fn oversized_records<M: Media>(media: &dyn Fn() -> M) {
    let mut log = open_log(media(), 4096);
    // Larger than a segment: gets a segment of its own.
    log.append(1, 1, &payload(1, 1, 10_000)).unwrap();
    log.append(2, 1, &payload(2, 1, 10)).unwrap();
    log.sync().unwrap();
    let err = log.append(3, 1, &vec![0u8; RECORD_PAYLOAD_BYTES_MAX + 1]).unwrap_err();
    assert!(matches!(err, StorageError::LimitExceeded { .. }), "{err}");
    drop(log);
    let mut log = open_log(media(), 4096);
    check_slot(&mut log, 1, 1, 10_000);
    check_slot(&mut log, 2, 1, 10);
}

/// The record limit at its edge: a payload of exactly `RECORD_PAYLOAD_BYTES_MAX` bytes is
/// appended, survives a reopen (recovery) and reads back whole, alone and through
/// `read_range`; one byte more is refused (`oversized_records`).
pub fn a_record_at_the_maximum_survives_reopen<M: Media>(media: &dyn Fn() -> M) {
    let mut log = open_log(media(), 1 << 20);
    log.append(1, 1, &payload(1, 1, 10)).unwrap();
    log.append(2, 1, &payload(2, 1, RECORD_PAYLOAD_BYTES_MAX)).unwrap();
    log.append(3, 1, &payload(3, 1, 10)).unwrap();
    log.sync().unwrap();
    drop(log);
    let mut log = open_log(media(), 1 << 20);
    check_slot(&mut log, 1, 1, 10);
    check_slot(&mut log, 2, 1, RECORD_PAYLOAD_BYTES_MAX);
    check_slot(&mut log, 3, 1, 10);
    // A read of a small byte budget still returns the one maximal record.
    let range = log.read_range(2, 4, 1).unwrap();
    assert_eq!(range.len(), 1);
    assert_eq!(range[0].payload.len(), RECORD_PAYLOAD_BYTES_MAX);
}

/// Offset of the record with index `i` in the first segment when record `j` has `lens[j]`.
fn offset_of(lens: &[usize], i: usize) -> u64 {
    (SEGMENT_HEADER_BYTES + lens[..i].iter().map(|&l| record_bytes(l)).sum::<usize>()) as u64
}

fn xor_byte<M: Media>(media: &mut M, name: &str, offset: u64) {
    let mut f = media.open(name).unwrap();
    let mut b = [0u8; 1];
    f.read_at(offset, &mut b).unwrap();
    b[0] ^= 0x5A;
    f.write_at(offset, &b).unwrap();
    f.sync().unwrap();
}

const SEG0: &str = "wal-0000000000000000.seg";

/// Ten 100-byte records (slots 0..10) synced, then one more batch (slot 10) synced.
fn two_batches<M: Media>(media: &dyn Fn() -> M) -> Vec<usize> {
    let mut log = open_log(media(), 1 << 20);
    for slot in 0..10 {
        log.append(slot, 1, &payload(slot, 1, 100)).unwrap();
    }
    log.sync().unwrap();
    log.append(10, 1, &payload(10, 1, 100)).unwrap();
    log.sync().unwrap();
    vec![100; 11]
}

pub fn corrupt_payload_is_reported_with_identity<M: Media>(media: &dyn Fn() -> M) {
    let lens = two_batches(media);
    xor_byte(&mut media(), SEG0, offset_of(&lens, 5) + 64 + 10);
    let (mut log, report) = SegmentLog::open(media(), opts(1 << 20)).unwrap();
    assert!(report.torn.is_none(), "acknowledged data is never taken for a torn tail");
    assert_eq!(report.corrupt.len(), 1, "{report:?}");
    assert_eq!((report.corrupt[0].slot, report.corrupt[0].ballot), (5, 1));
    assert_eq!(log.corrupt_slots(), vec![(5, 1)]);
    assert!(matches!(log.read(5), Err(StorageError::CorruptRecord { slot: 5, ballot: 1 })));
    // Nothing after the corrupt record was truncated.
    for slot in (0..5).chain(6..11) {
        check_slot(&mut log, slot, 1, 100);
    }
    let in_range = log.read_range(0, 11, usize::MAX);
    assert!(matches!(in_range, Err(StorageError::CorruptRecord { slot: 5, .. })), "{in_range:?}");
    assert_eq!(log.read_range(6, 11, usize::MAX).unwrap().len(), 5, "read around it");
    // Repair from a peer: a fresh record for the slot.
    log.repair(5, 2, &payload(5, 2, 40)).unwrap();
    assert!(log.corrupt_slots().is_empty());
    check_slot(&mut log, 5, 2, 40);
    drop(log);
    let mut log = open_log(media(), 1 << 20);
    check_slot(&mut log, 5, 2, 40);
    check_slot(&mut log, 10, 1, 100);
}

pub fn corrupt_header_is_reported_as_region<M: Media>(media: &dyn Fn() -> M) {
    let lens = two_batches(media);
    xor_byte(&mut media(), SEG0, offset_of(&lens, 4) + 20); // inside slot 4's header
    let (mut log, report) = SegmentLog::open(media(), opts(1 << 20)).unwrap();
    assert!(report.torn.is_none());
    assert_eq!(report.corrupt_regions.len(), 1, "{report:?}");
    let region = report.corrupt_regions[0];
    assert_eq!((region.slot_before, region.slot_after), (Some(3), Some(5)));
    assert_eq!((region.seq_lo, region.seq_hi), (4, 5));
    assert!(log.read(4).unwrap().is_none(), "identity unknown: not in the index");
    for slot in (0..4).chain(5..11) {
        check_slot(&mut log, slot, 1, 100);
    }
}

pub fn torn_tail_is_discarded<M: Media>(media: &dyn Fn() -> M) {
    let lens = two_batches(media);
    // A write in flight at the crash: half a record header after the last record.
    let end = offset_of(&lens, 11);
    {
        let mut m = media();
        let mut f = m.open(SEG0).unwrap();
        let mut junk = [0u8; 40];
        junk[..4].copy_from_slice(b"RSLR");
        junk[10] = 7;
        f.write_at(end, &junk).unwrap();
        f.sync().unwrap();
    }
    let (mut log, report) = SegmentLog::open(media(), opts(1 << 20)).unwrap();
    assert!(!report.has_corruption(), "{report:?}");
    let torn = report.torn.expect("torn tail found");
    assert_eq!(torn.offset, end);
    for slot in 0..11 {
        check_slot(&mut log, slot, 1, 100);
    }
    log.append(11, 1, &payload(11, 1, 100)).unwrap();
    log.sync().unwrap();
    drop(log);
    let mut log = open_log(media(), 1 << 20);
    check_slot(&mut log, 11, 1, 100);
}

pub fn meta_roundtrip_and_newest_wins<M: Media>(media: &dyn Fn() -> M) {
    let mut meta = MetaFiles::open(media());
    assert_eq!(meta.load().unwrap(), None);
    for i in 0..7u32 {
        meta.store(format!("promise {i}").as_bytes()).unwrap();
        let mut fresh = MetaFiles::open(media());
        assert_eq!(fresh.load().unwrap().unwrap(), format!("promise {i}").as_bytes());
        assert_eq!(fresh.version(), u64::from(i) + 1);
    }
    // A store without a prior load continues the version count.
    let mut other = MetaFiles::open(media());
    other.store(b"").unwrap();
    assert_eq!(MetaFiles::open(media()).load().unwrap().unwrap(), b"");
    let err = other.store(&vec![0u8; rsl_storage::limits::META_BLOB_BYTES_MAX + 1]).unwrap_err();
    assert!(matches!(err, StorageError::LimitExceeded { .. }));
}

pub fn meta_falls_back_to_the_other_copy<M: Media>(media: &dyn Fn() -> M) {
    let mut meta = MetaFiles::open(media());
    meta.store(b"one").unwrap(); // version 1 -> meta.1
    meta.store(b"two").unwrap(); // version 2 -> meta.0
    xor_byte(&mut media(), "meta.0", 33);
    assert_eq!(MetaFiles::open(media()).load().unwrap().unwrap(), b"one");
    xor_byte(&mut media(), "meta.1", 3);
    let err = MetaFiles::open(media()).load().unwrap_err();
    assert!(err.is_corruption(), "both copies bad is an error, not an empty store: {err}");
    // Storing again recovers.
    let mut meta = MetaFiles::open(media());
    meta.store(b"three").unwrap();
    assert_eq!(MetaFiles::open(media()).load().unwrap().unwrap(), b"three");
}

fn write_checkpoint<M: Media>(store: &mut CheckpointFiles<M>, slot: u64, len: usize) -> Vec<u8> {
    let data = payload(slot, 77, len);
    let mut w = store.begin(slot, format!("hdr{slot}").as_bytes()).unwrap();
    for chunk in data.chunks(7919) {
        w.write_all(chunk).unwrap();
    }
    let info = store.commit(w).unwrap();
    assert_eq!((info.slot, info.data_bytes), (slot, len as u64));
    data
}

pub fn checkpoint_roundtrip_and_retention<M: Media>(media: &dyn Fn() -> M) {
    let mut store = CheckpointFiles::open(media(), CheckpointOptions { kept_max: 2 }).unwrap();
    assert!(store.open_newest().unwrap().found.is_none());
    write_checkpoint(&mut store, 10, 0);
    write_checkpoint(&mut store, 20, 200_000);
    let data30 = write_checkpoint(&mut store, 30, 65_536);
    assert_eq!(store.list().unwrap(), vec![30, 20], "keeps the 2 newest");
    // An abandoned checkpoint is never listed.
    let mut w = store.begin(40, b"x").unwrap();
    w.write_all(b"partial").unwrap();
    drop(w);
    let mut store = CheckpointFiles::open(media(), CheckpointOptions { kept_max: 2 }).unwrap();
    let newest = store.open_newest().unwrap();
    assert!(newest.skipped.is_empty());
    let (info, mut reader) = newest.found.unwrap();
    assert_eq!((info.slot, &info.header[..], info.data_bytes), (30, &b"hdr30"[..], 65_536));
    let mut back = Vec::new();
    reader.read_to_end(&mut back).unwrap();
    assert_eq!(back, data30);
    let info20 = store.verify(20).unwrap();
    assert_eq!(info20.data_bytes, 200_000);
}

pub fn corrupt_checkpoint_falls_back<M: Media>(media: &dyn Fn() -> M) {
    let mut store = CheckpointFiles::open(media(), CheckpointOptions { kept_max: 3 }).unwrap();
    let data10 = write_checkpoint(&mut store, 10, 100_000);
    write_checkpoint(&mut store, 20, 100_000);
    xor_byte(&mut media(), "ckpt-00000000000000000020.ckpt", 70_000);
    let newest = store.open_newest().unwrap();
    assert_eq!(newest.skipped.len(), 1);
    assert_eq!(newest.skipped[0].0, 20);
    assert!(newest.skipped[0].1.is_corruption());
    let (info, mut reader) = newest.found.expect("falls back to slot 10");
    assert_eq!(info.slot, 10);
    let mut back = Vec::new();
    reader.read_to_end(&mut back).unwrap();
    assert_eq!(back, data10);
    // Streaming the corrupt one fails cleanly instead of returning bad data.
    let (_, mut bad) = store.open(20).unwrap();
    let err = bad.read_to_end(&mut Vec::new()).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
}

/// Random operations (appends, re-accepts, syncs, truncations, reopens) against a model map;
/// after every reopen and at the end the log must equal the model.
pub fn random_operations_match_a_model<M: Media>(media: &dyn Fn() -> M) {
    use std::collections::BTreeMap;
    let mut rng = rsl_storage::Rng::new(0xD1CE);
    let mut model: BTreeMap<u64, (u128, usize)> = BTreeMap::new();
    let mut log = open_log(media(), 4096);
    let mut ballot = 0u128;
    let check = |log: &mut SegmentLog<M>, model: &BTreeMap<u64, (u128, usize)>| {
        let got: Vec<(u64, u128, usize)> = log
            .iter_range(0, u64::MAX, 5000)
            .map(|r| {
                let r = r.unwrap();
                assert_eq!(&r.payload[..], &payload(r.slot, r.ballot, r.payload.len())[..]);
                (r.slot, r.ballot, r.payload.len())
            })
            .collect();
        let want: Vec<(u64, u128, usize)> = model.iter().map(|(s, (b, l))| (*s, *b, *l)).collect();
        assert_eq!(got, want);
        assert_eq!(log.first_slot(), model.keys().next().copied());
        assert_eq!(log.last_slot(), model.keys().next_back().copied());
    };
    for _ in 0..600 {
        match rng.below(20) {
            0..=11 => {
                let slot = rng.below(200);
                ballot += 1;
                let len = [0, 3, 64, 500, 2000][rng.below(5) as usize];
                log.append(slot, ballot, &payload(slot, ballot, len)).unwrap();
                model.insert(slot, (ballot, len));
            }
            12..=15 => log.sync().unwrap(),
            16 => {
                let below = rng.below(100);
                log.truncate_prefix(below).unwrap();
                model = model.split_off(&below);
            }
            17 => {
                let from = 100 + rng.below(100);
                log.truncate_suffix(from).unwrap();
                model.split_off(&from);
            }
            _ => {
                log.sync().unwrap();
                drop(log);
                log = open_log(media(), 4096);
                check(&mut log, &model);
            }
        }
    }
    check(&mut log, &model);
}
