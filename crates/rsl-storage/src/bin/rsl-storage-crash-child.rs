//! `rsl-storage-crash-child`: the child process of the crash tests (tests/crash_process.rs).
//! It appends and syncs to the file log in `--dir` forever, printing the last slot of every
//! batch whose sync returned, until it is killed or its stdout closes.
//!
//! It is its own binary, apart from `rsl-storage-bench`, so that the crash tests run without
//! the bench feature and its dependencies: `rsl-storage-crash-child --dir DIR
//! [--segment-bytes N]`.

use std::io::Write;
use std::path::{Path, PathBuf};

use rsl_storage::testkit::{ballot_for, length_for, payload};
use rsl_storage::{FsMedia, Log, LogOptions, SegmentLog, StorageError};

/// Payload length bound in the crash test (the test's `PAYLOAD_BYTES_MAX`).
const CRASH_PAYLOAD_BYTES_MAX: usize = 3000;
/// Slots a crash child writes at most (a guard against a runaway child).
const CRASH_SLOTS_MAX: u64 = 10_000_000;
/// The segment size when `--segment-bytes` is not given (small, to exercise rollover).
const SEGMENT_BYTES_DEFAULT: u64 = 65536;

fn crash_child(dir: &Path, segment_bytes: u64) -> Result<(), StorageError> {
    let options = LogOptions { segment_bytes_max: segment_bytes };
    let (mut log, report) = SegmentLog::open(FsMedia::open(dir)?, options)?;
    assert!(!report.has_corruption(), "crash child found corruption: {report:?}");
    let mut next = log.last_slot().map_or(0, |s| s + 1);
    let stdout = std::io::stdout();
    while next < CRASH_SLOTS_MAX {
        let batch = 1 + next % 7;
        for slot in next..next + batch {
            let ballot = ballot_for(slot);
            let bytes = payload(slot, ballot, length_for(slot, CRASH_PAYLOAD_BYTES_MAX));
            log.append(slot, ballot, &bytes)?;
        }
        log.sync()?;
        next += batch;
        let mut out = stdout.lock();
        // A closed pipe (the parent is gone) ends the child.
        if writeln!(out, "{}", next - 1).and_then(|()| out.flush()).is_err() {
            return Ok(());
        }
    }
    Ok(())
}

/// Parses `--dir DIR [--segment-bytes N]`; the caller is a test, so errors are plain text.
fn parse(mut args: impl Iterator<Item = String>) -> Result<(PathBuf, u64), String> {
    let (mut dir, mut segment_bytes) = (None, SEGMENT_BYTES_DEFAULT);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--dir" => dir = Some(PathBuf::from(value)),
            "--segment-bytes" => {
                segment_bytes = value.parse().map_err(|e| format!("--segment-bytes: {e}"))?
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok((dir.ok_or("--dir is required")?, segment_bytes))
}

fn main() {
    let (dir, segment_bytes) = parse(std::env::args().skip(1)).unwrap_or_else(|e| {
        eprintln!("rsl-storage-crash-child: {e}");
        std::process::exit(2);
    });
    if let Err(e) = crash_child(&dir, segment_bytes) {
        eprintln!("rsl-storage-crash-child: {e}");
        std::process::exit(1);
    }
}
