//! Helpers shared by the integration tests: loopback clusters on ephemeral ports, bounded
//! waits (every wait is an event with a timeout as its failure bound, never a sleep), and raw
//! frame building for hostile clients.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use rsl_net::frame::{frame_bytes, FrameKind, Hello};
use rsl_net::{BackoffConfig, Incoming, Security, TcpTransport, TlsIdentity, TransportConfig};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc::Receiver;

/// The failure bound of every wait.
pub const WAIT: Duration = Duration::from_secs(10);

pub const CLUSTER: &str = "test-cluster";

pub type Node = (TcpTransport, Receiver<Incoming>);

/// Binds one loopback listener per id on an ephemeral port.
pub fn bind(ids: &[u32]) -> (Vec<std::net::TcpListener>, BTreeMap<u32, SocketAddr>) {
    let listeners: Vec<_> =
        ids.iter().map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap()).collect();
    let addrs = ids.iter().zip(&listeners).map(|(&id, l)| (id, l.local_addr().unwrap())).collect();
    (listeners, addrs)
}

/// A test configuration for `id` among `addrs`: fast backoff, short handshake timeout.
pub fn config(id: u32, addrs: &BTreeMap<u32, SocketAddr>, security: Security) -> TransportConfig {
    let mut peers = addrs.clone();
    let listen = peers.remove(&id).expect("own address");
    let mut config = TransportConfig::new(CLUSTER, id, listen, peers);
    config.backoff =
        BackoffConfig { initial: Duration::from_millis(5), max: Duration::from_millis(100) };
    config.handshake_timeout = Duration::from_secs(5);
    config.security = security;
    config
}

/// Starts one transport per id, in plaintext or with the identities in `certs`.
pub fn start_cluster(ids: &[u32], certs: Option<&Path>) -> (Vec<Node>, BTreeMap<u32, SocketAddr>) {
    let (listeners, addrs) = bind(ids);
    let nodes = ids
        .iter()
        .zip(listeners)
        .map(|(&id, listener)| {
            let config = config(id, &addrs, security(certs, id));
            TcpTransport::start_with_listener(config, listener).unwrap()
        })
        .collect();
    (nodes, addrs)
}

pub fn security(certs: Option<&Path>, id: u32) -> Security {
    match certs {
        None => Security::Plaintext,
        Some(dir) => Security::MutualTls(TlsIdentity::load(dir, id).unwrap()),
    }
}

/// Waits for the next incoming payload; panics after [`WAIT`].
pub async fn recv(rx: &mut Receiver<Incoming>) -> Incoming {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("timed out waiting for a payload")
        .expect("transport stopped")
}

/// Waits until `transport` sees `peer` connected (or disconnected); panics after [`WAIT`].
pub async fn wait_connected(transport: &TcpTransport, peer: u32, connected: bool) {
    let known = tokio::time::timeout(WAIT, transport.wait_connected(peer, connected))
        .await
        .unwrap_or_else(|_| panic!("peer {peer} never became connected={connected}"));
    assert!(known);
}

/// Waits until `transport` has rejected at least `count` frames and handshakes in total.
pub async fn wait_rejections(transport: &TcpTransport, count: u64) {
    tokio::time::timeout(WAIT, transport.wait_rejections(count))
        .await
        .unwrap_or_else(|_| panic!("never saw {count} rejections: {:?}", transport.stats()));
}

/// Reads until the other end closes the connection (EOF or reset); returns what was read.
/// Panics after [`WAIT`].
pub async fn read_until_closed(stream: &mut (impl AsyncRead + Unpin)) -> Vec<u8> {
    let mut read = Vec::new();
    let until_closed = async {
        let mut chunk = [0u8; 4096];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => read.extend_from_slice(&chunk[..n]),
            }
        }
    };
    tokio::time::timeout(WAIT, until_closed).await.expect("the connection was not closed");
    read
}

pub fn hello_frame(cluster: &str, id: u32) -> Bytes {
    frame_bytes(FrameKind::Hello, &Hello { cluster: cluster.into(), id }.encode())
}

pub fn data_frame(payload: &[u8]) -> Bytes {
    frame_bytes(FrameKind::Data, payload)
}

/// A raw frame with explicit header fields, for frames the encoder refuses to build.
pub fn raw_frame(length: u32, crc: u32, kind: u8, payload: &[u8]) -> Bytes {
    let mut out = BytesMut::new();
    out.put_u32_le(length);
    out.put_u32_le(crc);
    out.put_u8(kind);
    out.put_slice(payload);
    out.freeze()
}
