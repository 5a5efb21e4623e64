//! Unit tests of a sender's direct write: a frame the socket takes only in part is finished
//! by the writer before anything else, and nothing is written directly past it.

use tokio::io::AsyncReadExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};

use super::*;
use bytes::BytesMut;

use crate::frame::decode_frame;

/// A connected pair on loopback: the write half of one end, and the other end (not read).
async fn pair() -> (OwnedWriteHalf, TcpStream, OwnedReadHalf) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dialed = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
    let (accepted, _) = listener.accept().await.unwrap();
    let (read, write) = dialed.into_split();
    (write, accepted, read)
}

/// The payload of frame `i`: large enough to fill the socket's buffers in a few hundred.
fn payload(i: u32) -> Bytes {
    let mut bytes = vec![(i % 251) as u8; 60 * 1024];
    bytes[..4].copy_from_slice(&i.to_le_bytes());
    Bytes::from(bytes)
}

/// Every frame in `bytes`, which must end at a frame's end.
fn frames(bytes: &[u8]) -> Vec<Bytes> {
    let mut buf = BytesMut::from(bytes);
    let mut out = Vec::new();
    while let Some(frame) = decode_frame(&mut buf).expect("the stream decodes") {
        out.push(frame.payload);
    }
    assert!(buf.is_empty(), "the stream ends inside a frame");
    out
}

/// Sends frames 0, 1, ... directly to a peer that reads nothing until the socket takes one
/// only in part; returns that frame's number.
fn send_until_begun(side: &WriteSide, unwritten: &AtomicUsize) -> u32 {
    for sent in 0..10_000 {
        match side.try_send(&[Payload::Whole(payload(sent))], unwritten) {
            Direct::Written => {}
            Direct::Begun => return sent,
            other => panic!("frame {sent}: {other:?}"),
        }
    }
    panic!("the socket never filled");
}

#[tokio::test]
async fn a_frame_begun_is_finished_first_and_nothing_is_written_past_it() {
    let (socket, mut peer, _read) = pair().await;
    let side = WriteSide::default();
    let unwritten = AtomicUsize::new(0);
    assert_eq!(side.try_send(&[Payload::Whole(payload(0))], &unwritten), Direct::Queue);
    side.attach(Box::new(socket));

    // Nobody reads the peer: the socket's buffers fill and one frame goes in part.
    let begun = send_until_begun(&side, &unwritten);
    assert_eq!(unwritten.load(Ordering::Relaxed), 1, "the rest counts as unwritten");
    // While the rest waits, a sender must queue, whatever the socket would take.
    assert_eq!(
        side.try_send(&[Payload::Whole(Bytes::from_static(b"x"))], &unwritten),
        Direct::Queue
    );

    let reader = tokio::spawn(async move {
        let mut all = Vec::new();
        peer.read_to_end(&mut all).await.unwrap();
        all
    });
    // The writer finishes the rest, then writes a batch of its own after it.
    side.resumed().await;
    let mut batch: VecDeque<Bytes> = [frame_of(&payload(begun + 1))].into();
    side.write(&mut batch, &unwritten).await.unwrap();
    assert!(batch.is_empty());
    assert_eq!(unwritten.load(Ordering::Relaxed), 0);
    // The peer idle again, a sender writes directly.
    assert_eq!(side.try_send(&[Payload::Whole(payload(begun + 2))], &unwritten), Direct::Written);

    side.detach(&unwritten);
    drop(_read);
    let received = frames(&reader.await.unwrap());
    let expected: Vec<Bytes> = (0..=begun + 2).map(payload).collect();
    assert_eq!(received.len(), expected.len());
    assert!(received == expected, "frames out of order or cut");
}

#[tokio::test]
async fn a_connection_that_ends_drops_the_rest_and_its_count() {
    let (socket, _peer, _read) = pair().await;
    let side = WriteSide::default();
    let unwritten = AtomicUsize::new(0);
    side.attach(Box::new(socket));
    send_until_begun(&side, &unwritten);
    assert_eq!(unwritten.load(Ordering::Relaxed), 1);
    side.detach(&unwritten);
    assert_eq!(unwritten.load(Ordering::Relaxed), 0);
    assert_eq!(side.try_send(&[Payload::Whole(payload(0))], &unwritten), Direct::Queue);
}

#[tokio::test]
async fn a_busy_peer_or_a_large_frame_queues() {
    let (socket, _peer, _read) = pair().await;
    let side = WriteSide::default();
    let unwritten = AtomicUsize::new(0);
    side.attach(Box::new(socket));
    let limit = DIRECT_FRAME_BYTES_MAX - FRAME_HEADER_BYTES;
    let at_limit = Payload::Whole(Bytes::from(vec![1; limit]));
    let over = Payload::Whole(Bytes::from(vec![1; limit + 1]));
    assert_eq!(side.try_send(&[over], &unwritten), Direct::Queue);
    assert_eq!(side.try_send(std::slice::from_ref(&at_limit), &unwritten), Direct::Written);
    unwritten.store(1, Ordering::Relaxed);
    assert_eq!(
        side.try_send(std::slice::from_ref(&at_limit), &unwritten),
        Direct::Queue,
        "a frame is queued"
    );
}

fn frame_of(payload: &Bytes) -> Bytes {
    crate::frame::frame_bytes(crate::frame::FrameKind::Data, payload)
}
