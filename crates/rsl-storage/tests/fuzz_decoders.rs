//! Fuzzing of the log, metadata and checkpoint decoders with proptest: arbitrary bytes and
//! random corruption of valid images never panic, and never yield wrong data; they end in
//! clean errors (or, for the log, in reported corruption).

use std::io::Write;

use proptest::prelude::*;
use rsl_storage::codec::{decode_record, encode_record, Decoded, RecordHeader, SegmentHeader};
use rsl_storage::meta::{decode_meta, encode_meta};
use rsl_storage::testkit::payload;
use rsl_storage::{
    decode_checkpoint, CheckpointFiles, CheckpointOptions, CheckpointStore, Log, LogOptions, Media,
    MediaFile, MemDisk, SegmentLog,
};

const SEG0: &str = "wal-0000000000000000.seg";

fn file_bytes(disk: &MemDisk, name: &str) -> Vec<u8> {
    let mut f = disk.media().open(name).unwrap();
    let mut b = vec![0u8; f.len().unwrap() as usize];
    f.read_at(0, &mut b).unwrap();
    b
}

fn checkpoint_image(slot: u64, header: &[u8], data: &[u8]) -> Vec<u8> {
    let disk = MemDisk::new(0);
    let mut store = CheckpointFiles::open(disk.media(), CheckpointOptions::default()).unwrap();
    let mut w = store.begin(slot, header).unwrap();
    w.write_all(data).unwrap();
    store.commit(w).unwrap();
    file_bytes(&disk, &format!("ckpt-{slot:020}.ckpt"))
}

/// A log of `n` records in batches of 5, plus one more synced batch, on a fresh disk.
fn valid_log(n: u64) -> MemDisk {
    let disk = MemDisk::new(1);
    let (mut log, _) = SegmentLog::open(disk.media(), LogOptions::default()).unwrap();
    for slot in 0..n {
        log.append(slot, 3, &payload(slot, 3, (slot as usize * 37) % 300)).unwrap();
        if slot % 5 == 4 {
            log.sync().unwrap();
        }
    }
    log.sync().unwrap();
    log.append(n, 3, b"last").unwrap();
    log.sync().unwrap();
    disk
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    #[test]
    fn record_decoder_never_panics_and_valid_means_reencodable(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        if bytes.len() >= 64 {
            let head: [u8; 64] = bytes[..64].try_into().unwrap();
            let _ = RecordHeader::decode(&head);
        }
        let _ = SegmentHeader::decode(&bytes);
        if let Decoded::Valid(h) = decode_record(&bytes) {
            let mut again = Vec::new();
            let payload = &bytes[64..64 + h.payload_len as usize];
            encode_record(&mut again, h, payload);
            prop_assert_eq!(&again[..], &bytes[..again.len()]);
        }
    }

    #[test]
    fn any_single_byte_change_of_a_record_is_caught(len in 0usize..300, at in any::<prop::sample::Index>(), x in 1u8..=255) {
        let mut bytes = Vec::new();
        let h = RecordHeader {
            kind: rsl_storage::codec::RecordKind::Entry, payload_len: len as u32, slot: 9,
            ballot: 77, seq: 5, durable_seq: 2, payload_crc: 0,
        };
        encode_record(&mut bytes, h, &payload(9, 77, len));
        let i = at.index(bytes.len());
        bytes[i] ^= x;
        let ok = matches!(decode_record(&bytes), Decoded::Valid(_));
        prop_assert!(!ok, "a change at byte {} went unnoticed", i);
    }

    #[test]
    fn meta_decoder_rejects_garbage_and_any_change(blob in proptest::collection::vec(any::<u8>(), 0..200), at in any::<prop::sample::Index>(), x in 1u8..=255, garbage in proptest::collection::vec(any::<u8>(), 0..100)) {
        let _ = decode_meta(&garbage);
        let mut b = encode_meta(3, &blob);
        prop_assert_eq!(decode_meta(&b), Some((3, blob.clone())));
        let i = at.index(b.len());
        b[i] ^= x;
        prop_assert_eq!(decode_meta(&b), None);
    }

    #[test]
    fn checkpoint_decoder_never_panics_on_garbage(garbage in proptest::collection::vec(any::<u8>(), 0..400)) {
        prop_assert!(decode_checkpoint(&garbage).is_err());
    }

    #[test]
    fn any_single_byte_change_of_a_checkpoint_is_caught(
        data in proptest::collection::vec(any::<u8>(), 0..150_000),
        header in proptest::collection::vec(any::<u8>(), 0..50),
        at in any::<prop::sample::Index>(),
        x in 1u8..=255,
    ) {
        let mut image = checkpoint_image(42, &header, &data);
        let (slot, h, d) = decode_checkpoint(&image).unwrap();
        prop_assert_eq!((slot, &h, &d), (42, &header, &data));
        let i = at.index(image.len());
        image[i] ^= x;
        prop_assert!(decode_checkpoint(&image).is_err(), "a change at byte {} went unnoticed", i);
        // A cut anywhere is caught too.
        prop_assert!(decode_checkpoint(&image[..i]).is_err());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, .. ProptestConfig::default() })]

    #[test]
    fn log_recovery_of_arbitrary_segment_bytes_never_panics(
        garbage in proptest::collection::vec(any::<u8>(), 0..3000),
        keep_header in any::<bool>(),
    ) {
        let disk = MemDisk::new(2);
        let mut bytes = Vec::new();
        if keep_header {
            bytes.extend_from_slice(&SegmentHeader { segment_id: 0, first_seq: 0 }.encode());
        }
        bytes.extend_from_slice(&garbage);
        let mut f = disk.media().create(SEG0, 0).unwrap();
        f.write_at(0, &bytes).unwrap();
        f.sync().unwrap();
        if let Ok((mut log, _report)) = SegmentLog::open(disk.media(), LogOptions::default()) {
            let _ = log.read_range(0, u64::MAX, usize::MAX);
            log.append(1 << 40, 1, b"after").unwrap();
            log.sync().unwrap();
            prop_assert_eq!(&log.read(1 << 40).unwrap().unwrap().payload[..], b"after");
        }
    }

    #[test]
    fn corrupted_log_never_returns_wrong_data(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..6),
    ) {
        let n = 40;
        let disk = valid_log(n);
        let len = disk.file_len(SEG0).unwrap();
        let mut bytes = file_bytes(&disk, SEG0);
        for (at, x) in &flips {
            let i = at.index(len as usize);
            bytes[i] ^= x;
        }
        let mut f = disk.media().open(SEG0).unwrap();
        f.write_at(0, &bytes).unwrap();
        f.sync().unwrap();
        let (mut log, report) = SegmentLog::open(disk.media(), LogOptions::default()).unwrap();
        let mut missing = 0;
        for slot in 0..n {
            match log.read(slot) {
                Ok(Some(r)) => {
                    prop_assert_eq!(r.ballot, 3);
                    prop_assert_eq!(&r.payload[..], &payload(slot, 3, (slot as usize * 37) % 300)[..]);
                }
                Ok(None) | Err(_) => missing += 1,
            }
        }
        // Batched reads (one read for adjacent records) check every record too.
        if let Ok(records) = log.read_range(0, n, usize::MAX) {
            for r in records {
                prop_assert_eq!(&r.payload[..], &payload(r.slot, 3, (r.slot as usize * 37) % 300)[..]);
            }
        }
        // Whatever was lost is accounted for in the report, never dropped silently.
        if missing > 0 {
            prop_assert!(report.has_corruption() || report.torn.is_some(), "{:?}", report);
        }
    }
}
