//! Every backend runs the same conformance suite (tests/common/mod.rs).

mod common;

use rsl_storage::{DaxMode, FsMedia, MemDisk, PmemMedia};

macro_rules! conformance {
    ($backend:ident, $setup:expr) => {
        mod $backend {
            #[allow(unused_imports)]
            use super::*;

            macro_rules! check {
                ($name:ident) => {
                    #[test]
                    fn $name() {
                        let (_guard, log_media, other_media) = $setup;
                        common::$name(&log_media);
                        let _ = &other_media;
                    }
                };
                ($name:ident, other) => {
                    #[test]
                    fn $name() {
                        let (_guard, _log_media, other_media) = $setup;
                        common::$name(&other_media);
                    }
                };
            }

            check!(append_read_survives_reopen);
            check!(later_record_supersedes);
            check!(rollover_and_prefix_truncation);
            check!(suffix_truncation);
            check!(read_range_is_ordered_and_bounded);
            check!(oversized_records);
            check!(a_record_at_the_maximum_survives_reopen);
            check!(corrupt_payload_is_reported_with_identity);
            check!(corrupt_header_is_reported_as_region);
            check!(torn_tail_is_discarded);
            check!(random_operations_match_a_model);
            check!(meta_roundtrip_and_newest_wins, other);
            check!(meta_falls_back_to_the_other_copy, other);
            check!(checkpoint_roundtrip_and_retention, other);
            check!(corrupt_checkpoint_falls_back, other);
        }
    };
}

conformance!(file, {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let path2 = path.clone();
    (dir, move || FsMedia::open(&path).unwrap(), move || FsMedia::open(&path2).unwrap())
});

conformance!(memory, {
    let disk = MemDisk::new(7);
    let (d1, d2) = (disk.clone(), disk.clone());
    (disk, move || d1.media(), move || d2.media())
});

// rsl's memory backend: the same disk without the crash model (every write durable as it lands).
conformance!(ram, {
    let disk = MemDisk::ram(7);
    let (d1, d2) = (disk.clone(), disk.clone());
    (disk, move || d1.media(), move || d2.media())
});

// The persistent-memory backend keeps metadata and checkpoints in ordinary files beside the
// mapped log, so its "other" media is the file medium of the same directory.
conformance!(pmem, {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let path2 = path.clone();
    (
        dir,
        move || PmemMedia::open(&path, DaxMode::Detect).unwrap(),
        move || FsMedia::open(&path2).unwrap(),
    )
});

// The DAX code path (clwb or clflushopt, then sfence) forced on this non-DAX directory: not
// durable here, but it runs the cache-line flush code against the same suite.
conformance!(pmem_forced_dax, {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let path2 = path.clone();
    (
        dir,
        move || PmemMedia::open(&path, DaxMode::On).unwrap(),
        move || FsMedia::open(&path2).unwrap(),
    )
});
