//! Keepalive: an idle connection carries pings, pings alone keep it open, and a peer that goes
//! silent is disconnected after the idle timeout (TCP alone can take minutes to notice).

mod common;

use std::time::{Duration, Instant};

use bytes::BytesMut;
use common::*;
use rsl_net::frame::{decode_frame, FrameKind, Hello};
use rsl_net::{Security, TcpTransport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const PING_INTERVAL: Duration = Duration::from_millis(50);
const IDLE_TIMEOUT: Duration = Duration::from_millis(1000);

/// Replica 2 with a short ping interval and idle timeout; replica 1 is played by the test.
fn target() -> (TcpTransport, tokio::sync::mpsc::Receiver<rsl_net::Incoming>) {
    let (mut listeners, addrs) = bind(&[1, 2]);
    let mut config = config(2, &addrs, Security::Plaintext);
    config.ping_interval = PING_INTERVAL;
    config.idle_timeout = IDLE_TIMEOUT;
    TcpTransport::start_with_listener(config, listeners.remove(1)).unwrap()
}

/// Decodes every whole frame in `bytes`.
fn frames(bytes: &[u8]) -> Vec<rsl_net::Frame> {
    let mut buf = BytesMut::from(bytes);
    std::iter::from_fn(|| decode_frame(&mut buf).unwrap()).collect()
}

#[tokio::test]
async fn pings_keep_a_quiet_connection_open_and_silence_closes_it() {
    let (target, mut rx) = target();
    let mut stream = TcpStream::connect(target.local_addr()).await.unwrap();
    stream.write_all(&hello_frame(CLUSTER, 1)).await.unwrap();
    wait_connected(&target, 1, true).await;

    // Play a live but quiet peer for twice the idle timeout: ping at the target's interval.
    let ping = rsl_net::frame::frame_bytes(FrameKind::Ping, b"");
    let live_until = Instant::now() + 2 * IDLE_TIMEOUT;
    let mut received = Vec::new();
    while Instant::now() < live_until {
        stream.write_all(&ping).await.unwrap();
        let mut chunk = [0u8; 1024];
        if let Ok(read) = tokio::time::timeout(PING_INTERVAL, stream.read(&mut chunk)).await {
            let n = read.unwrap();
            assert!(n > 0, "the target closed a connection that was pinging");
            received.extend_from_slice(&chunk[..n]);
        }
    }
    assert_eq!(target.stats().connects, 1, "{:?}", target.stats());
    assert!(target.stats().peers[0].connected);

    // Fall silent: the target must close the connection after its idle timeout.
    let silent_from = Instant::now();
    received.extend(read_until_closed(&mut stream).await);
    // The last ping left at most one ping interval before `silent_from`.
    assert!(silent_from.elapsed() >= IDLE_TIMEOUT / 2, "closed long before the idle timeout");
    wait_connected(&target, 1, false).await;

    let frames = frames(&received);
    assert_eq!(frames[0].kind, FrameKind::Hello);
    assert_eq!(Hello::decode(&frames[0].payload).unwrap().id, 2);
    let pings = frames[1..].iter().filter(|f| f.kind == FrameKind::Ping).count();
    assert_eq!(pings, frames.len() - 1, "only pings follow the hello");
    assert!(pings >= 2, "an idle target must ping: {pings} pings");
    let stats = target.stats();
    assert!(stats.pings_sent >= pings as u64);
    assert_eq!(stats.rejected_frames + stats.rejected_handshakes, 0, "silence is not hostile");
    assert_eq!(stats.frames_received, 0, "pings are not delivered");
    assert!(rx.try_recv().is_err());
}
