//! Loopback throughput of the transport: replica 1 sends N 64-byte payloads to replica 2 as
//! fast as its queue accepts them, and replica 2 receives them all. On `QueueFull` the sender
//! pauses 1 ms and retries (spinning instead would steal the CPU the writer needs on a small
//! machine; the engine itself drops and lets Paxos retransmit).
//! Prints messages per second and payload megabytes per second, in plaintext and over mutual
//! TLS, measured side by side in the same run.
//!
//! Run: `cargo run --release -p rsl-net --example net_bench -- [messages]` (default 2,000,000).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rsl_net::{
    generate_cluster_certs, Security, SendError, TcpTransport, TlsIdentity, Transport,
    TransportConfig,
};

const PAYLOAD_BYTES: usize = 64;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let messages: u64 = match std::env::args().nth(1) {
        Some(arg) => arg.parse()?,
        None => 2_000_000,
    };
    let certs = tempfile::tempdir()?;
    generate_cluster_certs(certs.path(), "bench", &[1, 2])?;
    println!("{messages} messages of {PAYLOAD_BYTES} bytes, replica 1 -> replica 2 on 127.0.0.1");
    for tls in [false, true] {
        let elapsed = run(messages, tls.then(|| certs.path())).await?;
        let seconds = elapsed.as_secs_f64();
        let rate = messages as f64 / seconds;
        let megabytes = rate * PAYLOAD_BYTES as f64 / 1e6;
        let mode = if tls { "mutual TLS" } else { "plaintext" };
        println!("{mode:>10}: {seconds:.3} s, {rate:>12.0} messages/s, {megabytes:>8.1} MB/s");
    }
    Ok(())
}

async fn run(
    messages: u64,
    certs: Option<&std::path::Path>,
) -> Result<Duration, Box<dyn std::error::Error>> {
    let listeners =
        [std::net::TcpListener::bind("127.0.0.1:0")?, std::net::TcpListener::bind("127.0.0.1:0")?];
    let addrs: BTreeMap<u32, _> =
        [(1, listeners[0].local_addr()?), (2, listeners[1].local_addr()?)].into();
    let mut ends = Vec::new();
    for (listener, id) in listeners.into_iter().zip([1u32, 2]) {
        let mut peers = addrs.clone();
        let listen = peers.remove(&id).expect("own address");
        let mut config = TransportConfig::new("bench", id, listen, peers);
        if let Some(dir) = certs {
            config.security = Security::MutualTls(TlsIdentity::load(dir, id)?);
        }
        ends.push(TcpTransport::start_with_listener(config, listener)?);
    }
    let (receiver, mut rx) = ends.pop().expect("two ends");
    let (sender, _sender_rx) = ends.pop().expect("two ends");
    let payload = Bytes::from(vec![0xa5u8; PAYLOAD_BYTES]);
    let start = Instant::now();
    let sending = tokio::spawn({
        let sender = sender.clone();
        async move {
            let mut full = 0u64;
            for _ in 0..messages {
                loop {
                    match sender.send(2, payload.clone()) {
                        Ok(()) => break,
                        Err(SendError::QueueFull(_)) => {
                            full += 1;
                            tokio::time::sleep(Duration::from_millis(1)).await;
                        }
                        Err(error) => panic!("send failed: {error}"),
                    }
                }
            }
            full
        }
    });
    for _ in 0..messages {
        let incoming = rx.recv().await.expect("transport running");
        assert_eq!(incoming.payload.len(), PAYLOAD_BYTES);
    }
    let elapsed = start.elapsed();
    let full = sending.await?;
    let stats = sender.stats();
    assert!(stats.frames_sent >= messages.min(1));
    assert_eq!(receiver.stats().frames_received, messages);
    eprintln!(
        "    sender: {} writes for {} frames ({:.0} frames per write), {full} queue-full pauses",
        stats.write_batches,
        stats.frames_sent,
        stats.frames_sent as f64 / stats.write_batches.max(1) as f64
    );
    sender.shutdown().await;
    receiver.shutdown().await;
    Ok(elapsed)
}
