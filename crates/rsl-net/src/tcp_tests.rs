//! Unit tests of the TCP transport's write batching.

use super::*;

fn queue_of(payloads: &[Bytes]) -> (mpsc::Receiver<Bytes>, AtomicUsize) {
    let (tx, rx) = mpsc::channel(payloads.len().max(1));
    for payload in payloads {
        tx.try_send(payload.clone()).unwrap();
    }
    (rx, AtomicUsize::new(payloads.iter().map(Bytes::len).sum()))
}

fn decode_batch(batch: &BytesMut) -> Vec<Bytes> {
    let mut buf = batch.clone();
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
    let mut batch = BytesMut::new();
    assert_eq!(fill_batch(payloads[0].clone(), &mut rx, &mut batch, &queued), 100);
    assert_eq!(decode_batch(&batch), payloads);
    assert_eq!(queued.load(Relaxed), 0);
    assert!(rx.try_recv().is_err());
}

#[test]
fn a_batch_stops_near_the_byte_maximum() {
    let payload = Bytes::from(vec![7u8; WRITE_BATCH_BYTES_MAX / 4]);
    let payloads = vec![payload.clone(); 10];
    let (mut rx, queued) = queue_of(&payloads[1..]);
    queued.fetch_add(payload.len(), Relaxed);
    let mut batch = BytesMut::new();
    let frames = fill_batch(payload.clone(), &mut rx, &mut batch, &queued);
    // Four payloads plus their headers reach the maximum: the fifth starts a new batch.
    assert_eq!(frames, 4);
    assert!(batch.len() >= WRITE_BATCH_BYTES_MAX);
    assert_eq!(decode_batch(&batch).len(), 4);
    assert_eq!(queued.load(Relaxed), 6 * payload.len());
    let first = rx.try_recv().unwrap();
    assert_eq!(fill_batch(first, &mut rx, &mut batch, &queued), 4);
    let first = rx.try_recv().unwrap();
    assert_eq!(fill_batch(first, &mut rx, &mut batch, &queued), 2);
    assert_eq!(queued.load(Relaxed), 0);
}
