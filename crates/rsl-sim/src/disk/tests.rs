use rsl_core::{ReplicaId, Request, RequestId, Value};

use super::*;

fn accept(slot: u64, round: u64) -> Write {
    let id = RequestId { proposer: ReplicaId(1), incarnation: 1, seq: slot * 100 + round };
    Write::Accept(LogEntry {
        slot: Slot(slot),
        ballot: Ballot::new(round, ReplicaId(1)),
        value: Value::Batch(vec![Request { id, payload: vec![7u8; 24].into() }].into()),
    })
}

fn slots(r: &Recovered) -> Vec<u64> {
    r.log.iter().map(|e| e.slot.0).collect()
}

#[test]
fn only_synced_writes_survive_a_machine_crash() {
    let mut disk = Disk::new();
    disk.write(1, Write::Promise(Ballot::new(1, ReplicaId(1))));
    disk.write(2, accept(1, 1));
    assert_eq!(disk.begin_sync(), Some(2));
    disk.write(3, accept(2, 1));
    assert_eq!(disk.begin_sync(), None, "one fsync at a time");
    let (seq, done) = disk.complete_sync(0).unwrap();
    assert_eq!((seq, done.len()), (2, 2));
    disk.write(4, Write::Commit(Slot(2)));
    disk.write(5, accept(3, 1));
    disk.crash(Some(CrashMode::LoseAll)).unwrap();
    let r = disk.recover().unwrap();
    assert_eq!(r.promised, Ballot::new(1, ReplicaId(1)));
    // Slot 2 was written before the sync of slots ..1 completed: the real sync covers it.
    assert_eq!(slots(&r), vec![1, 2]);
    assert_eq!(r.commit, Slot::ZERO);
    // A new incarnation starts its seqs again.
    disk.write(1, accept(3, 2));
}

#[test]
fn a_process_crash_keeps_every_write_and_recovery_reports_the_survivors() {
    let mut disk = Disk::new();
    for s in 1..=4 {
        disk.write(s, accept(s, 1));
    }
    disk.write(5, Write::TruncateSuffix { from: Slot(3) });
    disk.write(6, accept(3, 2));
    assert_eq!(disk.read_log(Slot(1), Slot(9)).len(), 3);
    let survived = disk.crash(None).unwrap();
    assert_eq!(survived.iter().map(|e| e.slot.0).collect::<Vec<_>>(), vec![1, 2, 3]);
    let r = disk.recover().unwrap();
    assert_eq!(slots(&r), vec![1, 2, 3]);
    assert_eq!(r.log[2].ballot.round, 2);
}

#[test]
fn torn_machine_crashes_keep_a_prefix_and_lose_no_acknowledged_record() {
    for seed in 0..40 {
        let mode = [CrashMode::RandomPrefix, CrashMode::RandomSectors][seed as usize % 2];
        let mut disk = Disk::with(seed, None, DiskFaults::default());
        for s in 1..=10 {
            disk.write(s, accept(s, 1));
            if s == 5 {
                disk.begin_sync();
                disk.complete_sync(0);
            }
        }
        disk.crash(Some(mode)).expect("recovery keeps every acknowledged record");
        let r = disk.recover().unwrap();
        let got = slots(&r);
        assert!(got.len() >= 5 && got.iter().copied().eq(1..=got.len() as u64), "{seed}: {got:?}");
        // Identities read in the discarded tail are suspects (possibly acknowledged, as far
        // as recovery can tell): reported, never among the acknowledged slots.
        assert!(r.corrupt.iter().all(|(s, _)| s.0 > 5 && s.0 > got.len() as u64), "{seed}");
    }
}

#[test]
fn corruption_at_rest_and_on_write_is_reported_never_returned() {
    let mut disk = Disk::new();
    disk.write(1, accept(1, 1));
    disk.write(2, accept(1, 3));
    disk.write(3, accept(2, 1));
    disk.begin_sync();
    disk.complete_sync(0);
    // In the last acknowledged batch: recovery takes the damage for a torn write and discards
    // the batch from there, but the identities it read are reported, not forgotten.
    assert!(disk.corrupt(Slot(2)));
    let r = disk.recover().unwrap();
    assert_eq!(slots(&r), vec![1]);
    assert_eq!(r.corrupt, vec![(Slot(2), Ballot::new(1, ReplicaId(1)))]);
    disk.write(1, accept(2, 2));
    disk.write(2, accept(3, 1));
    disk.begin_sync();
    disk.complete_sync(0);
    // Covered by a later sync: corruption proper, reported by the log itself.
    assert!(disk.corrupt(Slot(1)));
    assert!(!disk.corrupt(Slot(9)));
    let r = disk.recover().unwrap();
    assert_eq!(slots(&r), vec![2, 3]);
    assert_eq!(r.corrupt, vec![(Slot(1), Ballot::new(3, ReplicaId(1)))]);
    // On write: the record lands with a bad payload byte; reads stop before it.
    let faults = DiskFaults { write_corrupt_permille: 1000, read_corrupt_permille: 0 };
    disk.faults = faults;
    disk.write(1, accept(4, 1));
    disk.faults = DiskFaults::default();
    disk.write(2, accept(5, 1));
    disk.write(3, accept(6, 1));
    disk.begin_sync();
    disk.complete_sync(0);
    assert_eq!(disk.read_log(Slot(4), Slot(5)), vec![]);
    let r = disk.recover().unwrap();
    assert!(r.corrupt.iter().any(|(s, _)| *s == Slot(4)), "{:?}", r.corrupt);
    assert_eq!(disk.stats.writes_corrupted, 1);
}

#[test]
fn read_corruption_is_caught_by_the_checksums() {
    let faults = DiskFaults { write_corrupt_permille: 0, read_corrupt_permille: 1000 };
    let mut disk = Disk::with(9, None, faults);
    for s in 1..=6 {
        disk.write(s, accept(s, 1));
    }
    disk.begin_sync();
    disk.complete_sync(0);
    for _ in 0..10 {
        let entries = disk.read_log(Slot(1), Slot(6));
        assert_eq!(entries[..], disk.durable().log.values().cloned().collect::<Vec<_>>()[..]);
    }
    for _ in 0..5 {
        let r = disk.recover().expect("nothing acknowledged lost");
        assert_eq!((r.log.len(), r.corrupt.len()), (6, 0));
    }
    assert_eq!(disk.stats.reads_corrupted, 15);
}

#[test]
#[should_panic(expected = "persist seq")]
fn seqs_must_increase() {
    let mut disk = Disk::new();
    disk.write(2, accept(1, 1));
    disk.write(2, accept(2, 1));
}
