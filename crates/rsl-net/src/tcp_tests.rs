//! Unit tests of the TCP transport's write batching.

use super::*;
use crate::limits::{PART_COPY_BYTES_MAX, WRITE_BATCH_BYTES_MAX};

fn queue_of(payloads: &[Bytes]) -> (mpsc::Receiver<Payload>, AtomicUsize) {
    let (tx, rx) = mpsc::channel(payloads.len().max(1));
    for payload in payloads {
        tx.try_send(Payload::Whole(payload.clone())).unwrap();
    }
    (rx, AtomicUsize::new(payloads.iter().map(Bytes::len).sum()))
}

/// What the batch writes: its stretches, in order.
fn written(batch: &mut Batch) -> BytesMut {
    let len = batch.len();
    let out: BytesMut = batch.stretches().drain(..).flat_map(|s| s.to_vec()).collect();
    assert_eq!(out.len(), len);
    out
}

fn decode_batch(batch: &mut Batch) -> Vec<Bytes> {
    let mut buf = written(batch);
    let mut out = Vec::new();
    while let Some(frame) = decode_frame(&mut buf).unwrap() {
        assert_eq!(frame.kind, FrameKind::Data);
        out.push(frame.payload);
    }
    assert!(buf.is_empty());
    out
}

#[test]
fn one_batch_takes_every_queued_frame_in_order() {
    let payloads: Vec<Bytes> = (0..100u32).map(|i| Bytes::from(i.to_le_bytes().to_vec())).collect();
    let (mut rx, queued) = queue_of(&payloads[1..]);
    queued.fetch_add(payloads[0].len(), Relaxed);
    let mut batch = Batch::new();
    assert_eq!(fill_batch(Payload::Whole(payloads[0].clone()), &mut rx, &mut batch, &queued), 100);
    assert_eq!(decode_batch(&mut batch), payloads);
    assert_eq!(queued.load(Relaxed), 0);
    assert!(rx.try_recv().is_err());
}

#[test]
fn a_batch_stops_near_the_byte_maximum() {
    let payload = Bytes::from(vec![7u8; WRITE_BATCH_BYTES_MAX / 4]);
    let payloads = vec![payload.clone(); 10];
    let (mut rx, queued) = queue_of(&payloads[1..]);
    queued.fetch_add(payload.len(), Relaxed);
    let mut batch = Batch::new();
    let frames = fill_batch(Payload::Whole(payload.clone()), &mut rx, &mut batch, &queued);
    // Four payloads plus their headers reach the maximum: the fifth starts a new batch.
    assert_eq!(frames, 4);
    assert!(batch.len() >= WRITE_BATCH_BYTES_MAX);
    assert_eq!(decode_batch(&mut batch).len(), 4);
    assert_eq!(queued.load(Relaxed), 6 * payload.len());
    let first = rx.try_recv().unwrap();
    assert_eq!(fill_batch(first, &mut rx, &mut batch, &queued), 4);
    let first = rx.try_recv().unwrap();
    assert_eq!(fill_batch(first, &mut rx, &mut batch, &queued), 2);
    assert_eq!(queued.load(Relaxed), 0);
}

/// A payload shared by two peers' frames: each frame carries its own head, the large part is
/// neither copied into the batch nor into a second allocation (the same memory in both
/// batches), small parts are copied, and the bytes written are the frames of the
/// concatenated payloads, as if each had been sent whole.
#[test]
fn a_shared_payload_is_written_from_where_it_is_in_every_batch() {
    let big = Bytes::from(vec![0xB1; PART_COPY_BYTES_MAX + 1]);
    let small = Bytes::from(vec![0x5A; PART_COPY_BYTES_MAX]);
    let tail = Arc::new(SharedPayload::new(vec![small.clone(), big.clone(), small.clone()]));
    for head in [&b"to peer 2"[..], b"to peer 3"] {
        let (tx, mut rx) = mpsc::channel(2);
        let after = Bytes::from_static(b"a heartbeat");
        tx.try_send(Payload::Whole(after.clone())).unwrap();
        let shared = Payload::Shared { head: Bytes::copy_from_slice(head), tail: tail.clone() };
        let queued = AtomicUsize::new(shared.len() + after.len());
        let mut batch = Batch::new();
        assert_eq!(fill_batch(shared, &mut rx, &mut batch, &queued), 2);
        assert_eq!(queued.load(Relaxed), 0);
        assert!(batch.shares(&big), "the large part was copied");
        assert!(!batch.shares(&small), "a small part takes an entry of the vector");
        let whole = tail.concat_after(head);
        assert_eq!(decode_batch(&mut batch), [whole, after]);
    }
}
