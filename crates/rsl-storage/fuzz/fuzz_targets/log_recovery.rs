//! Recovery over an arbitrary segment image must not panic, and a recovered log must accept
//! appends.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rsl_storage::{Log, LogOptions, Media, MediaFile, MemDisk, SegmentLog};

fuzz_target!(|data: &[u8]| {
    let disk = MemDisk::new(0);
    let mut f = disk.media().create("wal-0000000000000000.seg", 0).unwrap();
    f.write_at(0, data).unwrap();
    f.sync().unwrap();
    if let Ok((mut log, _)) = SegmentLog::open(disk.media(), LogOptions::default()) {
        let _ = log.read_range(0, u64::MAX, usize::MAX);
        log.append(u64::MAX, 1, b"x").unwrap();
        log.sync().unwrap();
    }
});
