//! Hostile input from raw TCP clients against a plaintext transport. Each case must close the
//! connection, be counted, deliver nothing, and leave the transport serving.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use rsl_net::limits::{FRAME_PAYLOAD_BYTES_MAX, HELLO_PAYLOAD_BYTES_MAX};
use rsl_net::{Incoming, Security, Stats, TcpTransport, Transport};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc::Receiver;

/// The transport under attack: id 2, peers 1 (may dial it) and 3 (must be dialed by it; its
/// address accepts TCP but never answers).
struct Target {
    transport: TcpTransport,
    rx: Receiver<Incoming>,
    _silent_peer: std::net::TcpListener,
}

fn target() -> Target {
    target_with(HANDSHAKE_TIMEOUT)
}

/// Generous, so that a loaded machine never turns a frame rejection into a timeout; the
/// silent-connection case uses its own short timeout.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

fn target_with(handshake_timeout: Duration) -> Target {
    let (mut listeners, mut addrs) = bind(&[1, 2]);
    let silent = listeners.remove(0);
    let silent_peer = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    addrs.insert(3, silent_peer.local_addr().unwrap());
    let mut config = config(2, &addrs, Security::Plaintext);
    config.handshake_timeout = handshake_timeout;
    let (transport, rx) = TcpTransport::start_with_listener(config, listeners.remove(0)).unwrap();
    drop(silent);
    Target { transport, rx, _silent_peer: silent_peer }
}

/// Sends `bytes` (then a FIN if `eof`), waits for the target to close the connection and to
/// count a rejection, checks nothing was delivered, and returns the counters.
async fn attack(bytes: &[u8], eof: bool) -> Stats {
    attack_target(target(), bytes, eof).await
}

async fn attack_target(mut target: Target, bytes: &[u8], eof: bool) -> Stats {
    let mut stream = TcpStream::connect(target.transport.local_addr()).await.unwrap();
    // The target may close before reading everything; a failed write is part of the test.
    let _ = stream.write_all(bytes).await;
    if eof {
        let _ = stream.shutdown().await;
    }
    read_until_closed(&mut stream).await;
    wait_rejections(&target.transport, 1).await;
    assert!(target.rx.try_recv().is_err(), "a rejected connection delivered a payload");
    let stats = target.transport.stats();
    assert_eq!(stats.frames_received, 0);
    stats
}

/// An attack refused before the hello completes: never counted as a connection.
async fn frame_attack(bytes: &[u8], eof: bool) {
    let stats = attack(bytes, eof).await;
    assert_eq!((stats.rejected_frames, stats.rejected_handshakes), (1, 0), "{stats:?}");
    assert_eq!(stats.connects, 0, "a rejected hello counted as a connection");
}

/// An attack after a valid plaintext hello (claiming peer 1): the connection was established,
/// and the bad frame closes it.
async fn post_hello_attack(bytes: &[u8], eof: bool) {
    let stats = attack(&cat(&[&hello_frame(CLUSTER, 1), bytes]), eof).await;
    assert_eq!((stats.rejected_frames, stats.rejected_handshakes), (1, 0), "{stats:?}");
    assert_eq!(stats.connects, 1);
}

async fn handshake_attack(bytes: &[u8], eof: bool) {
    let target = target_with(Duration::from_millis(300));
    let stats = attack_target(target, bytes, eof).await;
    assert_eq!((stats.rejected_frames, stats.rejected_handshakes), (0, 1), "{stats:?}");
    assert_eq!(stats.connects, 0);
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn with_valid_crc(kind: u8, payload: &[u8]) -> Bytes {
    let crc = crc32c::crc32c_append(crc32c::crc32c(&[kind]), payload);
    raw_frame(payload.len() as u32, crc, kind, payload)
}

#[tokio::test]
async fn data_before_hello_is_unauthenticated() {
    frame_attack(&data_frame(b"inject"), false).await;
}

#[tokio::test]
async fn hello_from_another_cluster_is_rejected() {
    frame_attack(&cat(&[&hello_frame("other", 1), &data_frame(b"inject")]), false).await;
}

#[tokio::test]
async fn hello_from_a_stranger_id_is_rejected() {
    frame_attack(&cat(&[&hello_frame(CLUSTER, 9), &data_frame(b"inject")]), false).await;
}

#[tokio::test]
async fn hello_claiming_the_targets_own_id_is_rejected() {
    frame_attack(&cat(&[&hello_frame(CLUSTER, 2), &data_frame(b"inject")]), false).await;
}

#[tokio::test]
async fn hello_from_a_higher_id_is_rejected_because_the_target_dials_it() {
    frame_attack(&cat(&[&hello_frame(CLUSTER, 3), &data_frame(b"inject")]), false).await;
}

#[tokio::test]
async fn malformed_hello_payload_is_rejected() {
    frame_attack(&with_valid_crc(1, b"this is not a hello"), false).await;
}

#[tokio::test]
async fn oversized_first_frame_is_rejected_from_its_header() {
    let header = raw_frame(HELLO_PAYLOAD_BYTES_MAX as u32 + 1, 0, 1, b"");
    frame_attack(&header, false).await;
}

#[tokio::test]
async fn truncated_hello_is_rejected() {
    let hello = hello_frame(CLUSTER, 1);
    frame_attack(&hello[..hello.len() - 3], true).await;
}

#[tokio::test]
async fn bad_checksum_after_hello_is_rejected() {
    let mut bad = data_frame(b"payload").to_vec();
    *bad.last_mut().unwrap() ^= 0x40;
    post_hello_attack(&bad, false).await;
}

#[tokio::test]
async fn oversized_frame_after_hello_is_rejected() {
    let header = raw_frame(FRAME_PAYLOAD_BYTES_MAX as u32 + 1, 0, 2, b"");
    post_hello_attack(&header, false).await;
}

#[tokio::test]
async fn truncated_frame_after_hello_is_rejected() {
    let data = data_frame(b"cut short");
    post_hello_attack(&data[..data.len() - 4], true).await;
}

#[tokio::test]
async fn unknown_kind_after_hello_is_rejected() {
    post_hello_attack(&with_valid_crc(7, b"x"), false).await;
}

#[tokio::test]
async fn ping_with_a_payload_is_rejected() {
    post_hello_attack(&with_valid_crc(3, b"x"), false).await;
}

#[tokio::test]
async fn second_hello_is_rejected() {
    let hello = hello_frame(CLUSTER, 1);
    post_hello_attack(&cat(&[&hello, &data_frame(b"inject")]), false).await;
}

#[tokio::test]
async fn random_garbage_is_rejected() {
    let garbage: Vec<u8> =
        (0..64u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let stats = attack(&garbage, true).await;
    assert_eq!(stats.rejected_frames + stats.rejected_handshakes, 1, "{stats:?}");
    assert_eq!(stats.connects, 0);
}

#[tokio::test]
async fn a_silent_connection_times_out() {
    handshake_attack(b"", false).await;
}

#[tokio::test]
async fn a_connection_closed_before_any_byte_is_counted() {
    handshake_attack(b"", true).await;
}

/// Frames before the bad one were authenticated and whole, so they are delivered; nothing
/// after the bad one is.
#[tokio::test]
async fn frames_after_a_corrupted_frame_are_never_delivered() {
    let mut target = target();
    let mut bad = data_frame(b"corrupted").to_vec();
    bad[10] ^= 1;
    let bytes =
        cat(&[&hello_frame(CLUSTER, 1), &data_frame(b"first"), &bad, &data_frame(b"after")]);
    let mut stream = TcpStream::connect(target.transport.local_addr()).await.unwrap();
    stream.write_all(&bytes).await.unwrap();
    read_until_closed(&mut stream).await;
    let first = recv(&mut target.rx).await;
    assert_eq!((first.from, &first.payload[..]), (1, &b"first"[..]));
    wait_rejections(&target.transport, 1).await;
    wait_connected(&target.transport, 1, false).await;
    assert!(target.rx.try_recv().is_err(), "a frame after the corrupted one was delivered");
    let stats = target.transport.stats();
    assert_eq!((stats.rejected_frames, stats.frames_received, stats.connects), (1, 1, 1));
}

/// A barrage of rejected connections leaves a real pair of replicas working.
#[tokio::test]
async fn the_target_keeps_serving_its_real_peer_after_attacks() {
    let (mut nodes, _) = start_cluster(&[1, 2], None);
    let (two, mut rx2) = nodes.pop().unwrap();
    let (one, mut rx1) = nodes.pop().unwrap();
    let attacks: Vec<Vec<u8>> = vec![
        data_frame(b"inject").to_vec(),
        cat(&[&hello_frame("other", 1), &data_frame(b"inject")]),
        cat(&[&hello_frame(CLUSTER, 9), &data_frame(b"inject")]),
        raw_frame(u32::MAX, 0, 2, b"").to_vec(),
    ];
    for bytes in &attacks {
        let mut stream = TcpStream::connect(two.local_addr()).await.unwrap();
        let _ = stream.write_all(bytes).await;
        read_until_closed(&mut stream).await;
    }
    wait_rejections(&two, attacks.len() as u64).await;
    one.send(2, Bytes::from_static(b"still here")).unwrap();
    let incoming = recv(&mut rx2).await;
    assert_eq!((incoming.from, &incoming.payload[..]), (1, &b"still here"[..]));
    two.send(1, Bytes::from_static(b"and back")).unwrap();
    assert_eq!(&recv(&mut rx1).await.payload[..], b"and back");
    assert!(rx2.try_recv().is_err(), "an attack delivered a payload");
    let stats = two.stats();
    assert_eq!(stats.rejected_frames, attacks.len() as u64);
    assert_eq!(stats.frames_received, 1);
}
