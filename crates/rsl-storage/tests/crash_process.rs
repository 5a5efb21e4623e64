//! Crash tests against real files: a child process (`rsl-storage-crash-child`) appends
//! and syncs, printing the last slot of every batch whose sync returned; the parent kills it
//! with SIGKILL at random points, then recovers the log and checks that every acknowledged
//! record is there, and that nothing is there that was never written.

use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rsl_storage::testkit::{ballot_for, length_for, payload};
use rsl_storage::{FsMedia, Log, LogOptions, Rng, SegmentLog};

const SEGMENT_BYTES: u64 = 65536;
const PAYLOAD_BYTES_MAX: usize = 3000; // the child's CRASH_PAYLOAD_BYTES_MAX
const BATCH_RECORDS_MAX: u64 = 7; // the child writes batches of 1..=7 records
const KILLS_MAX: u32 = 40;
const TEST_TIME_MAX: Duration = Duration::from_secs(25);

/// Recover the log in `dir` and check it against `acked` (the highest slot whose sync the
/// child reported). Returns the log's last slot.
fn recover_and_check(dir: &std::path::Path, acked: Option<u64>, kill: u32) -> Option<u64> {
    let options = LogOptions { segment_bytes_max: SEGMENT_BYTES };
    let (mut log, report) = SegmentLog::open(FsMedia::open(dir).unwrap(), options).unwrap();
    assert!(!report.has_corruption(), "kill {kill}: a crash was taken for corruption: {report:?}");
    let last = log.last_slot();
    if let Some(acked) = acked {
        let last = last.unwrap_or_else(|| panic!("kill {kill}: acknowledged slot {acked} lost"));
        assert!(last >= acked, "kill {kill}: last slot {last} < acknowledged {acked}");
        assert!(last <= acked + BATCH_RECORDS_MAX, "kill {kill}: slot {last} was never written");
    }
    let last = last?;
    assert_eq!(log.first_slot(), Some(0));
    let mut next = 0;
    while next <= last {
        let records = log.read_range(next, last + 1, 4 << 20).unwrap();
        for r in &records {
            assert_eq!(r.slot, next, "kill {kill}: slots are contiguous");
            let ballot = ballot_for(r.slot);
            assert_eq!(r.ballot, ballot, "kill {kill}: ballot of slot {}", r.slot);
            let want = payload(r.slot, ballot, length_for(r.slot, PAYLOAD_BYTES_MAX));
            assert_eq!(&r.payload[..], &want[..], "kill {kill}: payload of slot {}", r.slot);
            next += 1;
        }
    }
    Some(last)
}

#[test]
fn sigkill_at_random_points_never_loses_a_synced_record() {
    let exe = env!("CARGO_BIN_EXE_rsl-storage-crash-child");
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng::new(0x5EED_C4A5);
    let start = Instant::now();
    let mut acked: Option<u64> = None;
    let mut kills = 0;
    let mut kills_mid_run = 0;
    while kills < KILLS_MAX && start.elapsed() < TEST_TIME_MAX {
        let mut child = Command::new(exe)
            .arg("--dir")
            .arg(dir.path())
            .args(["--segment-bytes", &SEGMENT_BYTES.to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn crash child");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        // Kill after 0..40 acknowledged batches (0: during the child's own recovery), plus a
        // random spin so the kill lands anywhere inside a batch.
        let wait_for = rng.below(40);
        for _ in 0..wait_for {
            match lines.next() {
                Some(line) => acked = acked.max(Some(line.unwrap().trim().parse().unwrap())),
                None => panic!("crash child exited early: {:?}", child.wait()),
            }
        }
        let spin = Duration::from_micros(rng.below(4000));
        let t = Instant::now();
        while t.elapsed() < spin {
            std::hint::spin_loop();
        }
        child.kill().unwrap(); // SIGKILL
                               // Lines the child flushed before it died were acknowledged too.
        for line in lines {
            acked = acked.max(Some(line.unwrap().trim().parse().unwrap()));
        }
        let status = child.wait().unwrap();
        assert_eq!(status.signal(), Some(libc::SIGKILL), "child died of the kill: {status:?}");
        kills += 1;
        kills_mid_run += u32::from(wait_for > 0);
        let last = recover_and_check(dir.path(), acked, kills);
        assert!(last >= acked);
    }
    assert!(kills >= 10 && kills_mid_run >= 5, "too few kills: {kills} ({kills_mid_run})");
    assert!(acked.unwrap_or(0) > 100, "the children made progress: {acked:?}");
}
