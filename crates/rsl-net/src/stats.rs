//! Counters for observability.
//!
//! Every counter is an atomic updated with `Relaxed` ordering on the hot path (no locks, no
//! allocation); [`crate::TcpTransport::stats`] reads them into a plain [`Stats`] snapshot from
//! any thread. A snapshot is not atomic across counters: each value is exact, but two values
//! may have been read a few operations apart.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::ReplicaId;

/// A snapshot of the transport's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Data frames written to sockets.
    pub frames_sent: u64,
    /// Wire bytes (headers included) of the data frames written.
    pub bytes_sent: u64,
    /// Socket writes of data; below `frames_sent` when queued frames were batched.
    pub write_batches: u64,
    /// Data frames written by the sending thread itself, the peer being idle (counted in
    /// `frames_sent` and `write_batches` too; see [`crate::TcpTransport`]'s `send`).
    pub direct_writes: u64,
    /// Data frames received and handed to the application.
    pub frames_received: u64,
    /// Wire bytes (headers included) of the data frames received.
    pub bytes_received: u64,
    /// Frames that closed their connection: malformed, bad checksum, oversized, truncated,
    /// unexpected kind, or a hello that fails authentication (cluster, id, certificate).
    pub rejected_frames: u64,
    /// Inbound connections closed before a valid hello arrived for another reason: TLS
    /// handshake failure (no or untrusted certificate), timeout, or closed early.
    pub rejected_handshakes: u64,
    /// Outbound connection attempts that failed (refused, timed out, handshake refused).
    pub dial_failures: u64,
    /// Connections established (hello exchanged), to any peer.
    pub connects: u64,
    /// Connections established to a peer that had been connected before.
    pub reconnects: u64,
    /// `send` calls refused because the peer's queue was full.
    pub queue_full_drops: u64,
    /// Ping frames written on idle connections.
    pub pings_sent: u64,
    /// One entry per configured peer, by ascending id.
    pub peers: Vec<PeerStats>,
}

/// The state and counters of one peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerStats {
    /// The peer's replica id.
    pub id: ReplicaId,
    /// Whether a connection to it is established now.
    pub connected: bool,
    /// Time since the last bytes arrived from it; `None` if nothing ever did.
    pub last_contact_ago: Option<Duration>,
    /// Data frames written to it.
    pub frames_sent: u64,
    /// Data frames received from it.
    pub frames_received: u64,
    /// Connections established to it.
    pub connects: u64,
    /// `send` calls to it refused because its queue was full.
    pub queue_full_drops: u64,
    /// Frames waiting in its queue now.
    pub queued_frames: usize,
}

/// Transport-wide counters.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) frames_sent: AtomicU64,
    pub(crate) bytes_sent: AtomicU64,
    pub(crate) write_batches: AtomicU64,
    pub(crate) direct_writes: AtomicU64,
    pub(crate) frames_received: AtomicU64,
    pub(crate) bytes_received: AtomicU64,
    pub(crate) rejected_frames: AtomicU64,
    pub(crate) rejected_handshakes: AtomicU64,
    pub(crate) dial_failures: AtomicU64,
    pub(crate) connects: AtomicU64,
    pub(crate) reconnects: AtomicU64,
    pub(crate) queue_full_drops: AtomicU64,
    pub(crate) pings_sent: AtomicU64,
    /// Woken on every rejection, for [`crate::TcpTransport::wait_rejections`].
    pub(crate) rejection: Notify,
}

impl Counters {
    pub(crate) fn rejected(&self) -> u64 {
        self.rejected_frames.load(Relaxed) + self.rejected_handshakes.load(Relaxed)
    }

    pub(crate) fn reject_frame(&self) {
        self.rejected_frames.fetch_add(1, Relaxed);
        self.rejection.notify_waiters();
    }

    pub(crate) fn reject_handshake(&self) {
        self.rejected_handshakes.fetch_add(1, Relaxed);
        self.rejection.notify_waiters();
    }

    pub(crate) fn snapshot(&self, peers: Vec<PeerStats>) -> Stats {
        Stats {
            frames_sent: self.frames_sent.load(Relaxed),
            bytes_sent: self.bytes_sent.load(Relaxed),
            write_batches: self.write_batches.load(Relaxed),
            direct_writes: self.direct_writes.load(Relaxed),
            frames_received: self.frames_received.load(Relaxed),
            bytes_received: self.bytes_received.load(Relaxed),
            rejected_frames: self.rejected_frames.load(Relaxed),
            rejected_handshakes: self.rejected_handshakes.load(Relaxed),
            dial_failures: self.dial_failures.load(Relaxed),
            connects: self.connects.load(Relaxed),
            reconnects: self.reconnects.load(Relaxed),
            queue_full_drops: self.queue_full_drops.load(Relaxed),
            pings_sent: self.pings_sent.load(Relaxed),
            peers,
        }
    }
}

/// Per-peer counters.
#[derive(Debug)]
pub(crate) struct PeerCounters {
    connected: AtomicBool,
    /// Microseconds from `epoch` to the last contact, plus one; zero means never.
    last_contact_micros: AtomicU64,
    pub(crate) frames_sent: AtomicU64,
    pub(crate) frames_received: AtomicU64,
    pub(crate) connects: AtomicU64,
    pub(crate) queue_full_drops: AtomicU64,
    /// Woken on every change of `connected`, for [`crate::TcpTransport::wait_connected`].
    pub(crate) changed: Notify,
    epoch: Instant,
}

impl PeerCounters {
    pub(crate) fn new(epoch: Instant) -> PeerCounters {
        PeerCounters {
            connected: AtomicBool::new(false),
            last_contact_micros: AtomicU64::new(0),
            frames_sent: AtomicU64::new(0),
            frames_received: AtomicU64::new(0),
            connects: AtomicU64::new(0),
            queue_full_drops: AtomicU64::new(0),
            changed: Notify::new(),
            epoch,
        }
    }

    pub(crate) fn connected(&self) -> bool {
        self.connected.load(Relaxed)
    }

    pub(crate) fn set_connected(&self, connected: bool) {
        let was = self.connected.swap(connected, Relaxed);
        assert_ne!(was, connected, "peer connection state must alternate");
        self.changed.notify_waiters();
    }

    pub(crate) fn touch(&self) {
        let micros = self.epoch.elapsed().as_micros() as u64 + 1;
        self.last_contact_micros.fetch_max(micros, Relaxed);
    }

    pub(crate) fn snapshot(&self, id: ReplicaId, queued_frames: usize) -> PeerStats {
        let last = self.last_contact_micros.load(Relaxed);
        let last_contact_ago = (last > 0).then(|| {
            let at = Duration::from_micros(last - 1);
            self.epoch.elapsed().saturating_sub(at)
        });
        PeerStats {
            id,
            connected: self.connected(),
            last_contact_ago,
            frames_sent: self.frames_sent.load(Relaxed),
            frames_received: self.frames_received.load(Relaxed),
            connects: self.connects.load(Relaxed),
            queue_full_drops: self.queue_full_drops.load(Relaxed),
            queued_frames,
        }
    }
}
