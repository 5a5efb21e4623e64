//! rsl-net: the transport between replicas.
//!
//! It moves opaque byte payloads between replicas identified by `u32` ids and knows nothing of
//! Paxos: what a payload means is the core's business, and the core tolerates every failure
//! this crate reports by dropping (loss is a normal event for Paxos).
//!
//! - [`frame`]: the wire format (length, crc32c, kind, payload) and its incremental decoder.
//! - [`SharedPayload`]: a payload in parts, built once and sent to several peers by
//!   reference ([`Transport::send_shared`]): written with vectored writes, checksummed once.
//! - [`TcpTransport`]: one TCP connection per pair of replicas, bounded per-peer queues with
//!   backpressure ([`SendError::QueueFull`]), batched writes, a burst of small frames to an
//!   idle peer written by the sending thread itself ([`Transport::send_all`]), reconnection
//!   with capped,
//!   jittered exponential backoff, and optional mutual TLS ([`Security::MutualTls`]).
//! - [`tls`]: loading a replica's certificates and checking identities; with the `certgen`
//!   feature, `generate_cluster_certs` writes a cluster's CA, replica and client certificates
//!   (`generate_certs` with extra host names in the replica certificates).
//! - [`Transport`]: the interface the engine uses, so that the simulator's network and a future
//!   RDMA transport can stand in for TCP.
//! - [`limits`]: every bound, in one place.
//!
//! The driver loop, with two replicas on loopback:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::collections::BTreeMap;
//! use rsl_net::{TcpTransport, Transport, TransportConfig};
//!
//! // Bind first, so that each replica's configuration can name the others' ephemeral ports.
//! let bind = || std::net::TcpListener::bind("127.0.0.1:0");
//! let listeners = [bind()?, bind()?];
//! let addrs: BTreeMap<u32, _> =
//!     [(1, listeners[0].local_addr()?), (2, listeners[1].local_addr()?)].into();
//! let mut ends = Vec::new();
//! for (listener, id) in listeners.into_iter().zip([1, 2]) {
//!     let mut peers = addrs.clone();
//!     let listen = peers.remove(&id).unwrap();
//!     let config = TransportConfig::new("doc", id, listen, peers);
//!     ends.push(TcpTransport::start_with_listener(config, listener)?);
//! }
//! let (one, _rx1) = &ends[0];
//! one.send(2, bytes::Bytes::from_static(b"prepare 7"))?; // queued, never blocks
//! let incoming = ends[1].1.recv().await.expect("transport running");
//! assert_eq!((incoming.from, &incoming.payload[..]), (1, &b"prepare 7"[..]));
//! # Ok(())
//! # }
//! ```
//!
//! # How an RDMA transport would plug in
//!
//! The engine sees only [`Transport`] (send and peer status) and a receiver of [`Incoming`].
//! An RDMA transport would implement the same trait:
//!
//! - **One reliable-connected queue pair per peer**, set up once through an out-of-band TCP
//!   (or `rdma_cm`) exchange that carries the same hello: cluster, replica id, and under TLS the
//!   certificate check, so membership and authentication stay identical.
//! - **Registered buffers**: each peer gets a ring of send buffers and a ring of receive
//!   buffers registered with the NIC at start, sized by the same `queue_frames_max` and
//!   [`limits::FRAME_BYTES_MAX`]. `send` copies the payload into the next free send slot (or
//!   returns `QueueFull` when the ring is full: the same backpressure contract) and posts a
//!   send work request; a batch of queued slots is posted with one doorbell, the equivalent of
//!   the TCP writer's batched write.
//! - **Frames unchanged**: each slot holds one [`frame`], checksum included, so the decoder and
//!   its hostile-input rules apply as they are (the NIC's CRC protects the link, not against a
//!   buggy or malicious peer).
//! - **Receive**: a completion-queue poller turns each completed receive into an
//!   [`Incoming`], reposts the buffer once the payload has been copied or released, and feeds
//!   the same bounded channel; when the channel is full it stops reposting, which stalls the
//!   sender through RNR flow control just as a full TCP window does.
//! - **Failure**: a queue pair in the error state is the equivalent of a closed socket: the
//!   peer is marked disconnected and reconnected with the same backoff.

#![warn(missing_docs)]

#[cfg(feature = "certgen")]
mod certgen;
pub mod config;
mod crc;
mod direct;
pub mod frame;
pub mod limits;
mod parts;
mod ports;
pub mod stats;
pub mod tcp;
pub mod tls;

use std::time::Duration;

use bytes::Bytes;
use thiserror::Error;

#[cfg(feature = "certgen")]
pub use certgen::{cert_file_names, generate_certs, generate_cluster_certs};
pub use config::{BackoffConfig, ConfigError, Security, TransportConfig};
pub use frame::{Frame, FrameError, FrameKind, SharedPayload};
pub use parts::Payload;
pub use ports::free_loopback_ports;
pub use stats::{PeerStats, Stats};
pub use tcp::{Incoming, StartError, TcpTransport};
pub use tls::{TlsError, TlsIdentity};

/// A replica's id, unique within a cluster.
pub type ReplicaId = u32;

/// Why `send` refused a payload. The payload is dropped; Paxos retries by its own timers.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum SendError {
    /// The peer's queue holds its maximum of frames or bytes: the network or the peer is
    /// slower than the sender, or the peer is unreachable.
    #[error("queue to replica {0} is full")]
    QueueFull(ReplicaId),
    /// The id is not a configured peer (or is this replica's own id).
    #[error("replica {0} is not a peer")]
    UnknownPeer(ReplicaId),
    /// The payload is larger than [`limits::FRAME_PAYLOAD_BYTES_MAX`].
    #[error("payload of {bytes} bytes exceeds the frame maximum")]
    PayloadTooLarge {
        /// The payload's size.
        bytes: usize,
    },
    /// The transport has shut down.
    #[error("transport is shut down")]
    Shutdown,
}

/// What the engine needs to know about one peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerStatus {
    /// Whether a connection is established now.
    pub connected: bool,
    /// Time since bytes last arrived from the peer; `None` if they never did.
    pub last_contact_ago: Option<Duration>,
    /// Frames waiting in the peer's queue.
    pub queued_frames: usize,
}

/// The interface between the engine and any transport: TCP here, the simulator's network in
/// tests, RDMA where the hardware exists.
///
/// Contract: `send` never blocks and never waits on the network; a payload it accepts is
/// delivered at most once, in order with the other payloads to the same peer, or lost (when
/// the connection fails). Received payloads arrive on the receiver the transport's
/// constructor returned, each tagged with its authenticated sender.
pub trait Transport: Send + Sync {
    /// This replica's id.
    fn id(&self) -> ReplicaId;

    /// Queues `payload` for `to`; fails at once if it cannot be queued. The TCP transport's
    /// writer for the peer batches what every sender queued into its writes. Payloads sent
    /// from one thread (by this and by [`Transport::send_all`]) arrive in the order sent.
    fn send(&self, to: ReplicaId, payload: Bytes) -> Result<(), SendError>;

    /// Queues the payload `head` followed by `tail` for `to`, as one payload (the receiver
    /// gets the concatenation, as if it had been sent whole). A sender that sends one large
    /// payload to several peers builds `tail` once and passes it to each: the TCP transport
    /// writes its parts from where they are and checksums it once, whatever the number of
    /// peers. The default concatenates (one copy) and calls [`Transport::send`].
    fn send_shared(
        &self,
        to: ReplicaId,
        head: Bytes,
        tail: std::sync::Arc<SharedPayload>,
    ) -> Result<(), SendError> {
        self.send(to, tail.concat_after(&head))
    }

    /// Sends `payloads` to `to`, in order, as [`Transport::send`] and
    /// [`Transport::send_shared`] would one after another, and fails with the first refusal
    /// (the payloads before it are sent, those after it are not). For a thread whose sends
    /// come in bursts and wait on nobody else's (the engine's consensus thread at the end of
    /// a turn, its I/O thread after a sync): the TCP transport writes them at once, with one
    /// non-blocking write from the caller's thread, when the peer is idle (nothing queued,
    /// nothing being written), and queues them otherwise. The default sends them one by one.
    fn send_all(&self, to: ReplicaId, payloads: Vec<Payload>) -> Result<(), SendError> {
        for payload in payloads {
            match payload {
                Payload::Whole(bytes) => self.send(to, bytes)?,
                Payload::Shared { head, tail } => self.send_shared(to, head, tail)?,
            }
        }
        Ok(())
    }

    /// Makes `peers` the peer set, as the membership changes (see
    /// [`TcpTransport::set_peers`]). A transport that routes by id alone (an in-process
    /// hub, the simulator's network) keeps the default, which accepts any set.
    fn set_peers(
        &self,
        _peers: &std::collections::BTreeMap<ReplicaId, std::net::SocketAddr>,
    ) -> Result<(), ConfigError> {
        Ok(())
    }

    /// The status of a configured peer; `None` for an unknown id.
    fn peer_status(&self, peer: ReplicaId) -> Option<PeerStatus>;
}
