use rsl_core::{Request, RequestId};
use rsl_storage::{CrashMode, LogOptions, MemDisk, MemMedia, MetaFiles, SegmentLog};

use super::*;

type MemStore = StorageDisk<SegmentLog<MemMedia>, MetaFiles<MemMedia>>;

fn open(disk: &MemDisk) -> MemStore {
    let (log, report) = SegmentLog::open(disk.media(), LogOptions::default()).expect("open");
    StorageDisk::new(log, &report, MetaFiles::open(disk.media()), true, 0).expect("meta")
}

fn accept(slot: u64, round: u64, token: u8) -> Write {
    let id = RequestId { proposer: ReplicaId(1), incarnation: 1, seq: slot };
    let request = Request { id, payload: vec![token; 20].into() };
    Write::Accept(LogEntry {
        slot: Slot(slot),
        ballot: Ballot::new(round, ReplicaId(1)),
        value: Value::Batch(vec![request].into()),
    })
}

#[test]
fn meta_round_trips_and_rejects_garbage() {
    let m = Meta {
        promised: Ballot { round: 7, replica: 3 },
        commit: Slot(99),
        membership: Some(Membership::new([1, 2, 3])),
        suspects: BTreeMap::new(),
        rebuilding: true,
        member_since: Some(42),
    };
    assert_eq!(Meta::decode(&m.encode()).unwrap(), m);
    // A membership whose members carry addresses and data keeps them.
    let mut with_info = Membership::new([1, 2]);
    let info = rsl_core::MemberInfo { addr: "10.0.0.2:7001".into(), data: vec![7].into() };
    with_info.info.insert(ReplicaId(2), info);
    let rich = Meta { membership: Some(with_info), member_since: None, ..m.clone() };
    assert_eq!(Meta::decode(&rich.encode()).unwrap(), rich);
    let bare = Meta { membership: None, ..m.clone() };
    assert_eq!(Meta::decode(&bare.encode()).unwrap(), bare);
    assert!(Meta::decode(&m.encode()[..20]).is_err());
    let mut wrong = m.encode();
    wrong[0] = 9;
    assert!(Meta::decode(&wrong).is_err());
}

#[test]
fn synced_writes_and_the_promise_survive_a_crash_unsynced_ones_do_not() {
    let disk = MemDisk::new(1);
    let mut store = open(&disk);
    let promise = Write::Promise(Ballot::new(2, ReplicaId(1)));
    store.persist(&[promise, accept(1, 2, 1), accept(2, 2, 2), Write::Commit(Slot(1))], 0).unwrap();
    store.write(&[accept(3, 2, 3), Write::Promise(Ballot::new(3, ReplicaId(2)))]).unwrap();
    disk.crash(CrashMode::LoseAll);
    let r = open(&disk).recover().unwrap();
    assert_eq!(r.promised, Ballot::new(2, ReplicaId(1)));
    assert_eq!(r.log.iter().map(|e| e.slot.0).collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(r.commit, Slot(1), "the commit hint goes with the promise");
    assert!(r.corrupt.is_empty());
}

#[test]
fn the_commit_hint_is_rewritten_at_most_once_per_interval() {
    let disk = MemDisk::new(2);
    let mut store = open(&disk);
    store.persist(&[accept(1, 1, 1), Write::Commit(Slot(1))], COMMIT_HINT_INTERVAL_MS - 1).unwrap();
    assert_eq!(open(&disk).recover().unwrap().commit, Slot::ZERO, "not due yet");
    store.persist(&[Write::Commit(Slot(1))], COMMIT_HINT_INTERVAL_MS).unwrap();
    assert_eq!(open(&disk).recover().unwrap().commit, Slot(1));
}

/// The slots below a prefix truncation are in a checkpoint, not the log: the durable commit
/// hint must cover them, or a restart that finds that checkpoint corrupt and falls back to
/// an older one cannot tell it lost them (default swarm seed 157, docs/testing.md "What the
/// simulator has found").
#[test]
fn a_prefix_truncation_makes_the_commit_hint_cover_the_slots_it_drops() {
    let disk = MemDisk::new(4);
    let mut store = open(&disk);
    for s in 1..=5 {
        store.persist(&[accept(s, 1, s as u8), Write::Commit(Slot(s))], 1).unwrap();
    }
    assert_eq!(open(&disk).recover().unwrap().commit, Slot::ZERO, "the hint is not due yet");
    store.persist(&[Write::TruncatePrefix { before: Slot(4) }], 2).unwrap();
    let r = open(&disk).recover().unwrap();
    assert_eq!(r.log.first().map(|e| e.slot), Some(Slot(4)));
    assert_eq!(r.commit, Slot(5), "the hint covers the truncated slots (and what was known)");
}

#[test]
fn a_record_corrupt_at_rest_is_reported_and_never_returned() {
    let disk = MemDisk::new(3);
    let mut store = open(&disk);
    for s in 1..=3 {
        store.persist(&[accept(s, 1, s as u8)], 0).unwrap();
    }
    let place = store.log().locate(2).unwrap();
    assert!(place.seq < store.log().durable_floor(), "a later sync covers slot 2");
    assert!(disk.flip_byte(&place.file, place.offset + 64 + 3));
    let mut store = open(&disk);
    let r = store.recover().unwrap();
    assert_eq!(r.log.iter().map(|e| e.slot.0).collect::<Vec<_>>(), vec![1, 3]);
    assert_eq!(r.corrupt, vec![(Slot(2), Ballot::new(1, ReplicaId(1)))]);
    assert_eq!(store.load_log(Slot(1), Slot(3)).unwrap().len(), 1, "stops before the bad one");
}

#[test]
fn a_transient_read_error_is_retried_at_recovery_and_in_catch_up() {
    let disk = MemDisk::new(4);
    let mut store = open(&disk);
    for s in 1..=3 {
        store.persist(&[accept(s, 1, s as u8)], 0).unwrap();
    }
    // During the recovery scan: the segment is read again, nothing is lost or reported.
    disk.corrupt_next_read();
    let (log, report) = SegmentLog::open(disk.media(), LogOptions::default()).unwrap();
    assert_eq!(report.reread_segments, 1);
    assert!(!report.has_corruption() && report.torn.is_none());
    let mut store = StorageDisk::new(log, &report, MetaFiles::open(disk.media()), true, 0).unwrap();
    // During a catch-up read: the checksum catches it, the read is retried.
    for _ in 0..3 {
        disk.corrupt_next_read();
        let entries = store.load_log(Slot(1), Slot(3)).unwrap();
        assert!(entries.iter().map(|e| e.slot.0).eq(1..=entries.len() as u64));
        assert!(!entries.is_empty());
    }
    disk.corrupt_next_read();
    let r = store.recover().unwrap();
    assert_eq!((r.log.len(), r.corrupt.len()), (3, 0));
}

#[test]
fn identities_in_a_discarded_tail_are_reported_corrupt_not_forgotten() {
    let disk = MemDisk::new(5);
    let mut store = open(&disk);
    store.persist(&[accept(1, 1, 1)], 0).unwrap();
    // The last acknowledged batch lands with a bad byte and nothing follows it: recovery
    // cannot tell it from a torn write (docs/storage.md, "the ambiguity") and discards it.
    disk.corrupt_next_write();
    store.persist(&[accept(2, 1, 2), accept(3, 1, 3)], 0).unwrap();
    let r = open(&disk).recover().unwrap();
    assert_eq!(r.log.iter().map(|e| e.slot.0).collect::<Vec<_>>(), vec![1]);
    let slots: Vec<u64> = r.corrupt.iter().map(|(s, _)| s.0).collect();
    assert!(!slots.is_empty() && slots.iter().all(|s| [2, 3].contains(s)), "{slots:?}");
    // The discarded bytes are gone, but the suspects are in the metadata: still reported at
    // the next start (regression: found by the simulator's safety-only mode, a replica
    // forgot an acknowledged vote at its second restart), until the slots are written again.
    let mut store = open(&disk);
    assert_eq!(store.recover().unwrap().corrupt, r.corrupt, "remembered across restarts");
    let rewrite: Vec<Write> = slots.iter().map(|s| accept(*s, 2, 9)).collect();
    store.persist(&rewrite, 0).unwrap();
    let r = open(&disk).recover().unwrap();
    assert!(r.corrupt.is_empty(), "settled by the rewrite: {:?}", r.corrupt);
    assert_eq!(r.log.len(), 1 + slots.len());
}

#[test]
fn suspects_round_trip_in_the_metadata_and_old_blobs_still_decode() {
    let mut m = Meta { promised: Ballot::new(3, ReplicaId(2)), ..Meta::default() };
    m.suspects.insert(7, Ballot::new(3, ReplicaId(2)).to_u128());
    m.membership = Some(Membership::new([1, 2, 3]));
    assert_eq!(Meta::decode(&m.encode()).unwrap(), m);
    // Version 1 had no suspects: promised, commit, membership.
    let mut v1 = vec![1u8];
    v1.extend_from_slice(&m.promised.to_u128().to_le_bytes());
    v1.extend_from_slice(&5u64.to_le_bytes());
    let old = Meta::decode(&v1).unwrap();
    assert_eq!((old.promised, old.commit, old.suspects.len()), (m.promised, Slot(5), 0));
}

#[test]
fn the_disk_loss_marker_round_trips_and_version_2_blobs_have_none() {
    let mut m = Meta { promised: Ballot::new(3, ReplicaId(2)), ..Meta::default() };
    m.suspects.insert(7, Ballot::new(3, ReplicaId(2)).to_u128());
    m.membership = Some(Membership::new([1, 2, 3]));
    for rebuilding in [false, true] {
        let m = Meta { rebuilding, ..m.clone() };
        assert_eq!(Meta::decode(&m.encode()).unwrap(), m);
    }
    // Version 2: the version 3 layout without the marker byte (after the suspects).
    let mut v2 = legacy_blob(&m);
    v2[0] = 2;
    v2.remove(1 + 16 + 8 + 4 + 24);
    assert_eq!(Meta::decode(&v2).unwrap(), m);
    // A marker byte other than 0 or 1 is malformed.
    let mut bad = Meta { rebuilding: true, ..m }.encode();
    bad[1 + 16 + 8 + 4 + 24] = 2;
    assert!(Meta::decode(&bad).is_err());
}

#[test]
fn the_disk_loss_marker_survives_a_restart_and_is_cleared_durably() {
    let disk = MemDisk::new(5);
    let mut store = open(&disk);
    store.recover().unwrap();
    store.persist(&[Write::Rebuilding(true)], 0).unwrap();
    assert!(open(&disk).recover().unwrap().rebuilding);
    let mut store = open(&disk);
    store.recover().unwrap();
    store.persist(&[Write::Rebuilding(false)], 0).unwrap();
    assert!(!open(&disk).recover().unwrap().rebuilding);
}

/// `m` as version 3 wrote it: no member-since flag, the membership as two lists of ids.
fn legacy_blob(m: &Meta) -> Vec<u8> {
    let mut b = vec![3u8];
    b.extend_from_slice(&m.promised.to_u128().to_le_bytes());
    b.extend_from_slice(&m.commit.0.to_le_bytes());
    b.extend_from_slice(&(m.suspects.len() as u32).to_le_bytes());
    for (slot, ballot) in &m.suspects {
        b.extend_from_slice(&slot.to_le_bytes());
        b.extend_from_slice(&ballot.to_le_bytes());
    }
    b.push(u8::from(m.rebuilding));
    if let Some(membership) = &m.membership {
        for ids in [&membership.voters, &membership.learners] {
            b.push(ids.len() as u8);
            for id in ids {
                b.extend_from_slice(&id.0.to_le_bytes());
            }
        }
    }
    b
}

#[test]
fn a_version_3_metadata_blob_still_decodes() {
    let mut membership = Membership::new([1, 2, 3]);
    membership.learners.push(ReplicaId(4));
    let m = Meta {
        promised: Ballot::new(5, ReplicaId(2)),
        commit: Slot(7),
        membership: Some(membership),
        ..Meta::default()
    };
    let old = Meta::decode(&legacy_blob(&m)).unwrap();
    assert_eq!(old, m);
    assert_eq!(old.member_since, None);
}

#[test]
fn the_slot_a_joined_replica_became_a_member_survives_a_restart() {
    let disk = MemDisk::new(9);
    let mut store = open(&disk);
    assert_eq!(store.recover().unwrap().member_since, None);
    store.persist(&[accept(1, 1, 1), Write::MemberSince(Slot(1))], 0).unwrap();
    disk.crash(CrashMode::LoseAll);
    assert_eq!(open(&disk).recover().unwrap().member_since, Some(Slot(1)));
}

/// `META_BYTES_MAX` bounds the largest blob `Meta::encode` writes (every suspect, the widest
/// membership the core makes: the most voters, and as learners the most learners plus the
/// voters a change stages, each with the longest address and data), so the compile-time check
/// against the metadata store's limit covers every blob.
#[test]
fn the_largest_metadata_blob_is_within_meta_bytes_max() {
    use rsl_core::limits::{
        LEARNERS_MAX, LIST_LEN_BYTES_MAX, MEMBER_ADDR_BYTES_MAX, MEMBER_DATA_BYTES_MAX, VOTERS_MAX,
    };
    let ids = |n: usize, top: u32| (0..n as u32).map(|i| ReplicaId(top - i)).collect::<Vec<_>>();
    let voters = ids(VOTERS_MAX, u32::MAX);
    let learners = ids(LEARNERS_MAX + VOTERS_MAX, u32::MAX - 100);
    let info = rsl_core::MemberInfo {
        addr: "a".repeat(MEMBER_ADDR_BYTES_MAX),
        data: vec![7u8; MEMBER_DATA_BYTES_MAX].into(),
    };
    let info = voters.iter().chain(&learners).map(|id| (*id, info.clone())).collect();
    let m = Meta {
        promised: Ballot { round: u64::MAX, replica: u32::MAX },
        commit: Slot(u64::MAX),
        membership: Some(Membership { voters, learners, info }),
        suspects: (0..SUSPECTS_MAX as u64).map(|s| (s, u128::MAX)).collect(),
        rebuilding: true,
        member_since: Some(u64::MAX),
    };
    let blob = m.encode();
    // Only the three list lengths may take fewer bytes than the bound allows.
    assert!(blob.len() <= META_BYTES_MAX, "{} > {META_BYTES_MAX}", blob.len());
    assert!(META_BYTES_MAX - blob.len() < 3 * LIST_LEN_BYTES_MAX, "{}", blob.len());
    assert_eq!(Meta::decode(&blob).unwrap(), m);
}

/// Accepted values are encoded into one buffer kept from write to write: a large value after
/// a small one, and a small one after it, each reads back as written (the buffer holds no
/// bytes of an earlier value), and a buffer grown past `SCRATCH_KEPT_BYTES_MAX` is not kept.
#[test]
fn the_encoding_buffer_is_reused_but_not_kept_large() {
    let disk = MemDisk::new(1);
    let mut store = open(&disk);
    let value = |slot: u64, len: usize| {
        let id = RequestId { proposer: ReplicaId(1), incarnation: 1, seq: slot };
        let request = Request { id, payload: vec![slot as u8; len].into() };
        LogEntry {
            slot: Slot(slot),
            ballot: Ballot::new(1, ReplicaId(1)),
            value: Value::Batch(vec![request].into()),
        }
    };
    let small = value(1, 100);
    let large = value(2, SCRATCH_KEPT_BYTES_MAX + 1);
    let after = value(3, 50);
    store.persist(&[Write::Accept(small.clone())], 0).unwrap();
    assert!(store.scratch.capacity() > 0, "the buffer is kept");
    store.persist(&[Write::Accept(large.clone())], 0).unwrap();
    assert_eq!(store.scratch.capacity(), 0, "a buffer past the maximum is dropped");
    store.persist(&[Write::Accept(after.clone())], 0).unwrap();
    assert!(store.scratch.capacity() <= SCRATCH_KEPT_BYTES_MAX);
    let loaded = store.load_log(Slot(1), Slot(4)).unwrap();
    assert_eq!(loaded, vec![small, large, after]);
}
