//! The TCP transport: one connection per pair of replicas, bounded per-peer queues, batched
//! writes, reconnection with backoff, optional mutual TLS.
//!
//! Tasks, all on the caller's tokio runtime:
//!
//! - one **listener** task accepts sockets and runs each handshake (TLS, hello) in its own
//!   short-lived task, bounded by [`HANDSHAKES_PENDING_MAX`] and the handshake timeout;
//! - one **peer** task per configured peer owns that peer's queue receiver and its current
//!   connection, and runs the connection's reader and writer side by side; the writer shares
//!   the connection's write side with senders that write directly (`crate::direct`). The peer set
//!   changes at run time ([`TcpTransport::set_peers`], as the membership changes): a new
//!   peer gets its task, a dropped one's task is aborted with its connection and queue.
//!
//! Invariants:
//!
//! - **One connection per pair.** The replica with the lower id dials, the higher accepts; a
//!   listener refuses a hello from a higher id. When a newer connection from the same peer is
//!   accepted (the peer restarted before the old one was seen to fail), it replaces the old.
//! - **`send` never waits on the network.** It pushes onto a bounded queue (`send_all`, to an
//!   idle peer, writes a burst of small frames at once from the sender's own thread with one
//!   non-blocking write instead: `crate::direct`; what the socket does not take, the peer's
//!   writer finishes first), and fails with
//!   [`SendError::QueueFull`] when the frame or byte bound is reached. Frames queued while the
//!   peer is disconnected stay queued (up to the bound) and go out after reconnection. Either
//!   way, the frames sent from one thread leave in the order they were sent.
//! - **Nothing unauthenticated reaches the application.** Data frames are delivered only from
//!   a connection whose hello named this cluster and a configured peer (and, with TLS, matched
//!   the certificate). Any malformed, oversized, truncated or unexpected frame closes its
//!   connection, is counted and logged, and delivers nothing after it.
//! - **No panics on input.** Every decode error is a value; panics are reserved for broken
//!   internal invariants.
//! - **A dead peer is noticed.** A connection with nothing to send writes a ping every ping
//!   interval, and a connection that receives nothing for the idle timeout is closed (and, on
//!   the dialing side, redialed with backoff).

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::{AcqRel, Relaxed, Release};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tracing::{debug, info, warn};

use crate::config::{Backoff, ConfigError, Security, TransportConfig};
use crate::direct::{Direct, Sink, WriteSide};
use crate::frame::SharedPayload;
use crate::frame::{
    decode_eof, decode_frame, frame_bytes, FrameError, FrameKind, Hello, HelloError,
};
use crate::limits::{
    ACCEPT_ERROR_PAUSE, FRAME_HEADER_BYTES, FRAME_PAYLOAD_BYTES_MAX, HANDSHAKES_PENDING_MAX,
    HELLO_PAYLOAD_BYTES_MAX, READ_CHUNK_BYTES_MIN,
};
use crate::parts::{fill_batch, Batch, Payload};
use crate::stats::{Counters, PeerCounters, PeerStats, Stats};
use crate::tls::{cert_names_replica, replica_server_name, TlsError};
use crate::{PeerStatus, ReplicaId, SendError, Transport};

/// One payload received from a peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Incoming {
    /// The authenticated sender.
    pub from: ReplicaId,
    /// The payload, exactly as the sender passed it to `send`.
    pub payload: Bytes,
}

/// Why a transport could not start.
#[derive(Debug, Error)]
pub enum StartError {
    /// The configuration is invalid.
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    /// The TLS identity could not be turned into rustls configurations.
    #[error("tls: {0}")]
    Tls(#[from] TlsError),
    /// The listen address could not be bound or the listener could not be used.
    #[error("listener: {0}")]
    Listen(#[from] io::Error),
}

/// Why a connection was refused or closed. Logged, counted, never surfaced to `send`.
#[derive(Debug, Error)]
enum ConnError {
    #[error("io: {0}")]
    Io(#[from] io::Error),
    #[error("timed out")]
    Timeout,
    #[error("tls handshake: {0}")]
    Tls(io::Error),
    #[error("closed before the hello")]
    ClosedBeforeHello,
    #[error("frame: {0}")]
    Frame(#[from] FrameError),
    #[error("hello: {0}")]
    Hello(#[from] HelloError),
    #[error("expected a hello frame, got {0:?}")]
    NotHello(FrameKind),
    #[error("hello frame of {0} bytes is too large")]
    HelloTooLarge(usize),
    #[error("a second hello on an established connection")]
    SecondHello,
    #[error("a ping frame with a {0}-byte payload")]
    PingPayload(usize),
    #[error("nothing received for the idle timeout")]
    Idle,
    #[error("hello names cluster {0:?}")]
    WrongCluster(String),
    #[error("hello names replica {0}, which is not a peer")]
    UnknownPeer(ReplicaId),
    #[error("hello names replica {claimed} but replica {expected} was dialed")]
    WrongPeer { claimed: ReplicaId, expected: ReplicaId },
    #[error("replica {0} has the higher id and must be dialed, not dial")]
    WrongDirection(ReplicaId),
    #[error("hello names replica {0} but the certificate does not")]
    CertificateMismatch(ReplicaId),
}

impl ConnError {
    /// True for errors caused by the bytes a peer sent (counted in `rejected_frames`).
    fn is_frame_rejection(&self) -> bool {
        !matches!(
            self,
            ConnError::Io(_)
                | ConnError::Timeout
                | ConnError::Tls(_)
                | ConnError::ClosedBeforeHello
                | ConnError::Idle
        )
    }
}

/// A byte stream: plaintext TCP or TLS over TCP.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send {
    /// The TCP stream itself if the connection is plaintext.
    fn into_plain(self: Box<Self>) -> Result<TcpStream, Box<dyn Stream>>;
}
impl Stream for TcpStream {
    fn into_plain(self: Box<Self>) -> Result<TcpStream, Box<dyn Stream>> {
        Ok(*self)
    }
}
impl Stream for tokio_rustls::server::TlsStream<TcpStream> {
    fn into_plain(self: Box<Self>) -> Result<TcpStream, Box<dyn Stream>> {
        Err(self)
    }
}
impl Stream for tokio_rustls::client::TlsStream<TcpStream> {
    fn into_plain(self: Box<Self>) -> Result<TcpStream, Box<dyn Stream>> {
        Err(self)
    }
}
type Conn = Box<dyn Stream>;

/// An established connection: the stream and any bytes read past the hello.
struct Established {
    conn: Conn,
    buffered: BytesMut,
}

struct Peer {
    id: ReplicaId,
    addr: SocketAddr,
    queue: mpsc::Sender<Payload>,
    queued_bytes: AtomicUsize,
    /// Frames queued or being written, each counted out once it is written whole: a sender
    /// writes directly only when there are none (`crate::direct`).
    unwritten: AtomicUsize,
    /// The connection's write side, for a sender's direct write (`crate::direct`).
    side: WriteSide,
    accepted: mpsc::Sender<Established>,
    counters: PeerCounters,
}

struct Tls {
    acceptor: TlsAcceptor,
    connector: TlsConnector,
}

struct Shared {
    /// The configuration at start; its `peers` are the first peer set only.
    config: TransportConfig,
    /// The current peers (see `TcpTransport::set_peers`).
    peers: RwLock<BTreeMap<ReplicaId, Arc<Peer>>>,
    /// When the transport started (the peers' contact times count from it).
    epoch: Instant,
    counters: Counters,
    tls: Option<Tls>,
    incoming: mpsc::Sender<Incoming>,
}

struct Inner {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
    /// The listener's task.
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// Each peer's task, aborted when the peer is dropped from the set.
    peer_tasks: Mutex<BTreeMap<ReplicaId, JoinHandle<()>>>,
    /// The runtime the transport started on, where peers added later get their tasks.
    runtime: tokio::runtime::Handle,
}

impl Drop for Inner {
    fn drop(&mut self) {
        for task in self.tasks.get_mut().expect("task list lock").drain(..) {
            task.abort();
        }
        for task in std::mem::take(self.peer_tasks.get_mut().expect("peer task lock")).into_values()
        {
            task.abort();
        }
    }
}

impl Shared {
    fn peer(&self, id: ReplicaId) -> Option<Arc<Peer>> {
        self.peers.read().expect("peers lock").get(&id).cloned()
    }

    fn has_peer(&self, id: ReplicaId) -> bool {
        self.peers.read().expect("peers lock").contains_key(&id)
    }
}

/// A new peer and the receivers its task owns.
fn new_peer(
    config: &TransportConfig,
    epoch: Instant,
    id: ReplicaId,
    addr: SocketAddr,
) -> (Arc<Peer>, mpsc::Receiver<Payload>, mpsc::Receiver<Established>) {
    let (queue, queue_rx) = mpsc::channel(config.queue_frames_max);
    let (accepted, accepted_rx) = mpsc::channel(2);
    let counters = PeerCounters::new(epoch);
    let queued_bytes = AtomicUsize::new(0);
    let (unwritten, side) = (AtomicUsize::new(0), WriteSide::default());
    let peer =
        Arc::new(Peer { id, addr, queue, queued_bytes, unwritten, side, accepted, counters });
    (peer, queue_rx, accepted_rx)
}

/// The TCP transport. Cheap to clone; the tasks stop when the last clone is dropped or on
/// [`TcpTransport::shutdown`].
#[derive(Clone)]
pub struct TcpTransport {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for TcpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpTransport")
            .field("id", &self.inner.shared.config.id)
            .field("local_addr", &self.inner.local_addr)
            .finish_non_exhaustive()
    }
}

impl TcpTransport {
    /// Binds `config.listen` and starts the transport. Returns the handle and the receiver of
    /// every payload the peers send. Must be called within a tokio runtime.
    pub async fn start(
        config: TransportConfig,
    ) -> Result<(TcpTransport, mpsc::Receiver<Incoming>), StartError> {
        config.validate()?;
        let listener = TcpListener::bind(config.listen).await?;
        TcpTransport::start_inner(config, listener)
    }

    /// Starts the transport on a listener bound by the caller (so that tests and launchers
    /// can pick ephemeral ports before the peers' addresses are known). `config.listen` is
    /// ignored. Must be called within a tokio runtime.
    pub fn start_with_listener(
        config: TransportConfig,
        listener: std::net::TcpListener,
    ) -> Result<(TcpTransport, mpsc::Receiver<Incoming>), StartError> {
        config.validate()?;
        listener.set_nonblocking(true)?;
        TcpTransport::start_inner(config, TcpListener::from_std(listener)?)
    }

    fn start_inner(
        config: TransportConfig,
        listener: TcpListener,
    ) -> Result<(TcpTransport, mpsc::Receiver<Incoming>), StartError> {
        let local_addr = listener.local_addr()?;
        let tls = match &config.security {
            Security::Plaintext => None,
            Security::MutualTls(identity) => Some(Tls {
                acceptor: TlsAcceptor::from(identity.server_config()?),
                connector: TlsConnector::from(identity.client_config()?),
            }),
        };
        let (incoming, incoming_rx) = mpsc::channel(config.incoming_frames_max);
        let epoch = Instant::now();
        let mut peers = BTreeMap::new();
        let mut receivers = Vec::new();
        for (&id, &addr) in &config.peers {
            let (peer, queue_rx, accepted_rx) = new_peer(&config, epoch, id, addr);
            peers.insert(id, peer.clone());
            receivers.push((peer, queue_rx, accepted_rx));
        }
        let counters = Counters::default();
        let peers = RwLock::new(peers);
        let shared = Arc::new(Shared { config, peers, epoch, counters, tls, incoming });
        let tasks = vec![tokio::spawn(listen(shared.clone(), listener))];
        let mut peer_tasks = BTreeMap::new();
        for (peer, queue_rx, accepted_rx) in receivers {
            let task = tokio::spawn(run_peer(shared.clone(), peer.clone(), queue_rx, accepted_rx));
            peer_tasks.insert(peer.id, task);
        }
        info!(id = shared.config.id, %local_addr, peers = peer_tasks.len(), "transport started");
        let inner = Arc::new(Inner {
            shared,
            local_addr,
            tasks: Mutex::new(tasks),
            peer_tasks: Mutex::new(peer_tasks),
            runtime: tokio::runtime::Handle::current(),
        });
        Ok((TcpTransport { inner }, incoming_rx))
    }

    /// Makes `peers` the peer set: a peer not in it any more is dropped (its task aborted,
    /// its connection closed, its queued frames discarded; a hello naming it is refused from
    /// then on), a new one gets its task (dialed or awaited as for a peer configured at
    /// start), and a peer whose address changed starts over at the new one. Callable from
    /// any thread. Refuses, changing nothing, a set that names this replica or has more than
    /// [`crate::limits::PEERS_MAX`] peers.
    pub fn set_peers(&self, peers: &BTreeMap<ReplicaId, SocketAddr>) -> Result<(), ConfigError> {
        let shared = &self.inner.shared;
        if peers.contains_key(&shared.config.id) {
            return Err(ConfigError::SelfInPeers(shared.config.id));
        }
        if peers.len() > crate::limits::PEERS_MAX {
            return Err(ConfigError::TooManyPeers(peers.len()));
        }
        let mut tasks = self.inner.peer_tasks.lock().expect("peer task lock");
        let mut current = shared.peers.write().expect("peers lock");
        let stale: Vec<ReplicaId> = current
            .iter()
            .filter(|(id, p)| peers.get(id) != Some(&p.addr))
            .map(|(id, _)| *id)
            .collect();
        for id in stale {
            current.remove(&id);
            if let Some(task) = tasks.remove(&id) {
                task.abort();
            }
            info!(peer = id, "peer dropped");
        }
        for (&id, &addr) in peers {
            if current.contains_key(&id) {
                continue;
            }
            let (peer, queue_rx, accepted_rx) = new_peer(&shared.config, shared.epoch, id, addr);
            current.insert(id, peer.clone());
            let task = run_peer(shared.clone(), peer, queue_rx, accepted_rx);
            tasks.insert(id, self.inner.runtime.spawn(task));
            info!(peer = id, %addr, "peer added");
        }
        debug_assert!(current.len() == peers.len() && tasks.len() == peers.len());
        Ok(())
    }

    /// The current peers and their addresses.
    pub fn peers(&self) -> BTreeMap<ReplicaId, SocketAddr> {
        let peers = self.inner.shared.peers.read().expect("peers lock");
        peers.iter().map(|(id, p)| (*id, p.addr)).collect()
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    /// Stops every task and closes every socket (listener included) before returning, so the
    /// listen address can be bound again at once. Frames still queued are dropped.
    pub async fn shutdown(self) {
        let mut tasks = std::mem::take(&mut *self.inner.tasks.lock().expect("task list lock"));
        let peers = std::mem::take(&mut *self.inner.peer_tasks.lock().expect("peer task lock"));
        tasks.extend(peers.into_values());
        for task in &tasks {
            task.abort();
        }
        for task in tasks {
            let result = task.await;
            assert!(result.is_err_and(|e| e.is_cancelled()), "transport tasks run until aborted");
        }
    }

    /// A snapshot of the counters, readable from any thread without blocking the transport.
    pub fn stats(&self) -> Stats {
        let shared = &self.inner.shared;
        let peers = shared.peers.read().expect("peers lock");
        let peers: Vec<PeerStats> = peers.values().map(|p| peer_stats(p)).collect();
        shared.counters.snapshot(peers)
    }

    /// Waits until the connection to `peer` is (`connected = true`) or is not established.
    /// Returns `false` at once for an unknown peer. Bound it with a timeout.
    pub async fn wait_connected(&self, peer: ReplicaId, connected: bool) -> bool {
        let Some(peer) = self.inner.shared.peer(peer) else {
            return false;
        };
        loop {
            let notified = peer.counters.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if peer.counters.connected() == connected {
                return true;
            }
            notified.await;
        }
    }

    /// Waits until at least `count` frames and handshakes have been rejected in total. For
    /// tests and monitoring; bound it with a timeout.
    pub async fn wait_rejections(&self, count: u64) {
        let counters = &self.inner.shared.counters;
        loop {
            let notified = counters.rejection.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if counters.rejected() >= count {
                return;
            }
            notified.await;
        }
    }
}

fn peer_stats(peer: &Peer) -> PeerStats {
    let queued = peer.queue.max_capacity() - peer.queue.capacity();
    peer.counters.snapshot(peer.id, queued)
}

impl Transport for TcpTransport {
    fn id(&self) -> ReplicaId {
        self.inner.shared.config.id
    }

    fn send(&self, to: ReplicaId, payload: Bytes) -> Result<(), SendError> {
        self.enqueue(to, Payload::Whole(payload))
    }

    fn send_shared(
        &self,
        to: ReplicaId,
        head: Bytes,
        tail: Arc<SharedPayload>,
    ) -> Result<(), SendError> {
        self.enqueue(to, Payload::Shared { head, tail })
    }

    fn send_all(&self, to: ReplicaId, payloads: Vec<Payload>) -> Result<(), SendError> {
        self.enqueue_all(to, payloads)
    }

    fn set_peers(&self, peers: &BTreeMap<ReplicaId, SocketAddr>) -> Result<(), ConfigError> {
        TcpTransport::set_peers(self, peers)
    }

    fn peer_status(&self, peer: ReplicaId) -> Option<PeerStatus> {
        let peer = self.inner.shared.peer(peer)?;
        let stats = peer_stats(&peer);
        Some(PeerStatus {
            connected: stats.connected,
            last_contact_ago: stats.last_contact_ago,
            queued_frames: stats.queued_frames,
        })
    }
}

impl TcpTransport {
    /// Queues one payload for `to` for the peer's writer, which batches what every sender
    /// queued, within the frame and queue bounds.
    fn enqueue(&self, to: ReplicaId, payload: Payload) -> Result<(), SendError> {
        let peer = self.inner.shared.peer(to).ok_or(SendError::UnknownPeer(to))?;
        self.queue(&peer, payload)
    }

    /// Writes `payloads` for `to` at once, with one write, if the peer is idle and they are
    /// small together (`crate::direct`), else queues them one by one, within the frame and
    /// queue bounds: the first refused stops the rest.
    fn enqueue_all(&self, to: ReplicaId, payloads: Vec<Payload>) -> Result<(), SendError> {
        let shared = &self.inner.shared;
        let peer = shared.peer(to).ok_or(SendError::UnknownPeer(to))?;
        if payloads.is_empty() {
            return Ok(());
        }
        let too_large = payloads.iter().position(|p| p.len() > FRAME_PAYLOAD_BYTES_MAX);
        if too_large.is_none() {
            match peer.side.try_send(&payloads, &peer.unwritten) {
                Direct::Queue => {}
                // A failed socket loses the frames, as a batch begun on it is lost.
                Direct::Failed => return Ok(()),
                Direct::Written | Direct::Begun => {
                    let frames = payloads.len() as u64;
                    let bytes: usize = payloads.iter().map(|p| FRAME_HEADER_BYTES + p.len()).sum();
                    let counters = &shared.counters;
                    counters.frames_sent.fetch_add(frames, Relaxed);
                    counters.bytes_sent.fetch_add(bytes as u64, Relaxed);
                    counters.write_batches.fetch_add(1, Relaxed);
                    counters.direct_writes.fetch_add(frames, Relaxed);
                    peer.counters.frames_sent.fetch_add(frames, Relaxed);
                    return Ok(());
                }
            }
        }
        for payload in payloads {
            self.queue(&peer, payload)?;
        }
        Ok(())
    }

    /// Queues one payload for `peer`, within the frame and queue bounds.
    fn queue(&self, peer: &Peer, payload: Payload) -> Result<(), SendError> {
        let shared = &self.inner.shared;
        let bytes = payload.len();
        if bytes > FRAME_PAYLOAD_BYTES_MAX {
            return Err(SendError::PayloadTooLarge { bytes });
        }
        let to = peer.id;
        peer.unwritten.fetch_add(1, AcqRel);
        let queued = peer.queued_bytes.fetch_add(bytes, Relaxed);
        let result = if queued + bytes > shared.config.queue_bytes_max {
            Err(SendError::QueueFull(to))
        } else {
            peer.queue.try_send(payload).map_err(|error| match error {
                mpsc::error::TrySendError::Full(_) => SendError::QueueFull(to),
                mpsc::error::TrySendError::Closed(_) => SendError::Shutdown,
            })
        };
        if result.is_err() {
            peer.queued_bytes.fetch_sub(bytes, Relaxed);
            peer.unwritten.fetch_sub(1, Release);
        }
        if matches!(result, Err(SendError::QueueFull(_))) {
            shared.counters.queue_full_drops.fetch_add(1, Relaxed);
            peer.counters.queue_full_drops.fetch_add(1, Relaxed);
        }
        result
    }
}

/// Accepts sockets and hands each to its own handshake task.
async fn listen(shared: Arc<Shared>, listener: TcpListener) {
    let mut handshakes = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, addr)) if handshakes.len() < HANDSHAKES_PENDING_MAX => {
                    handshakes.spawn(accept_one(shared.clone(), stream, addr));
                }
                Ok((_, addr)) => {
                    warn!(%addr, "too many pending handshakes, connection refused");
                    shared.counters.reject_handshake();
                }
                Err(error) => {
                    // Out of file descriptors and similar: pause instead of spinning.
                    warn!(%error, "accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                }
            },
            Some(_) = handshakes.join_next() => {}
        }
    }
}

/// Runs one inbound handshake and hands the connection to its peer's task.
async fn accept_one(shared: Arc<Shared>, stream: TcpStream, addr: SocketAddr) {
    let timeout = shared.config.handshake_timeout;
    let result = match tokio::time::timeout(timeout, handshake_accept(&shared, stream)).await {
        Ok(result) => result,
        Err(_) => Err(ConnError::Timeout),
    };
    match result {
        Ok((id, established)) => {
            debug!(peer = id, %addr, "accepted");
            // The peer task takes it promptly; if the transport is shutting down or the peer
            // was dropped meanwhile, drop it.
            if let Some(peer) = shared.peer(id) {
                let _ = peer.accepted.send(established).await;
            }
        }
        Err(error) => {
            if error.is_frame_rejection() {
                shared.counters.reject_frame();
            } else {
                shared.counters.reject_handshake();
            }
            warn!(%addr, %error, "inbound connection rejected");
        }
    }
}

async fn handshake_accept(
    shared: &Shared,
    stream: TcpStream,
) -> Result<(ReplicaId, Established), ConnError> {
    stream.set_nodelay(true)?;
    let (mut conn, cert): (Conn, _) = match &shared.tls {
        None => (Box::new(stream), None),
        Some(tls) => {
            let stream = tls.acceptor.accept(stream).await.map_err(ConnError::Tls)?;
            let cert = stream.get_ref().1.peer_certificates().and_then(|c| c.first()).cloned();
            // The verifier requires a client certificate, so a session without one is a bug.
            assert!(cert.is_some(), "mutual TLS session without a client certificate");
            (Box::new(stream), cert)
        }
    };
    let (hello, buffered) = read_hello(&mut conn).await?;
    let config = &shared.config;
    if hello.cluster != config.cluster {
        return Err(ConnError::WrongCluster(hello.cluster));
    }
    if !shared.has_peer(hello.id) {
        return Err(ConnError::UnknownPeer(hello.id));
    }
    if hello.id > config.id {
        return Err(ConnError::WrongDirection(hello.id));
    }
    assert_ne!(hello.id, config.id, "own id is never a peer");
    if let Some(cert) = cert {
        if !cert_names_replica(&cert, hello.id) {
            return Err(ConnError::CertificateMismatch(hello.id));
        }
    }
    write_hello(shared, &mut conn).await?;
    Ok((hello.id, Established { conn, buffered }))
}

/// Dials `peer`, runs TLS and the hello exchange.
async fn dial(shared: &Shared, peer: &Peer) -> Result<Established, ConnError> {
    let stream = TcpStream::connect(peer.addr).await?;
    stream.set_nodelay(true)?;
    let mut conn: Conn = match &shared.tls {
        None => Box::new(stream),
        Some(tls) => {
            let name = rustls::pki_types::ServerName::try_from(replica_server_name(peer.id))
                .expect("replica names are DNS names");
            Box::new(tls.connector.connect(name, stream).await.map_err(ConnError::Tls)?)
        }
    };
    write_hello(shared, &mut conn).await?;
    let (hello, buffered) = read_hello(&mut conn).await?;
    if hello.cluster != shared.config.cluster {
        return Err(ConnError::WrongCluster(hello.cluster));
    }
    if hello.id != peer.id {
        return Err(ConnError::WrongPeer { claimed: hello.id, expected: peer.id });
    }
    Ok(Established { conn, buffered })
}

/// How a connection ended.
enum ConnectionEnd {
    /// The peer dialed again; continue with the new connection.
    Replaced(Established),
    /// The connection failed or was closed.
    Closed(Result<(), ConnError>),
}

/// Owns one peer's queue: obtains a connection (dialing with backoff, or waiting for the
/// listener to hand one over), runs it until it ends, and starts again.
async fn run_peer(
    shared: Arc<Shared>,
    peer: Arc<Peer>,
    mut queue: mpsc::Receiver<Payload>,
    mut accepted: mpsc::Receiver<Established>,
) {
    let (id, peer) = (peer.id, &*peer);
    let dials = shared.config.id < id;
    let mut backoff = Backoff::new(shared.config.backoff, seed(shared.config.id, id));
    let mut next: Option<Established> = None;
    loop {
        let established = match next.take() {
            Some(established) => established,
            None if dials => dial_until_connected(&shared, peer, &mut backoff).await,
            None => match accepted.recv().await {
                Some(established) => established,
                None => return,
            },
        };
        let connected_at = Instant::now();
        let end = run_connection(&shared, peer, established, &mut queue, &mut accepted).await;
        peer.counters.set_connected(false);
        // A connection that lived at least the backoff cap proves the peer healthy; one that
        // failed sooner (a flapping peer) keeps the delay growing.
        if connected_at.elapsed() >= shared.config.backoff.max {
            backoff.reset();
        }
        match end {
            ConnectionEnd::Replaced(established) => {
                info!(peer = id, "connection replaced by a newer one");
                next = Some(established);
            }
            ConnectionEnd::Closed(result) => {
                match result {
                    Ok(()) => info!(peer = id, "connection closed by peer"),
                    Err(error) => warn!(peer = id, %error, "connection closed"),
                }
                if dials {
                    tokio::time::sleep(backoff.next_delay()).await;
                }
            }
        }
    }
}

/// Dials `peer` until a connection is established, waiting a backoff delay after each failure.
async fn dial_until_connected(shared: &Shared, peer: &Peer, backoff: &mut Backoff) -> Established {
    assert!(shared.config.id < peer.id, "only the lower id dials");
    loop {
        let timeout = shared.config.handshake_timeout;
        let error = match tokio::time::timeout(timeout, dial(shared, peer)).await {
            Ok(Ok(established)) => return established,
            Ok(Err(error)) => error,
            Err(_) => ConnError::Timeout,
        };
        shared.counters.dial_failures.fetch_add(1, Relaxed);
        if error.is_frame_rejection() {
            shared.counters.reject_frame();
        }
        debug!(peer = peer.id, %error, "dial failed");
        tokio::time::sleep(backoff.next_delay()).await;
    }
}

fn connected(shared: &Shared, peer: &Peer) {
    let before = peer.counters.connects.fetch_add(1, Relaxed);
    shared.counters.connects.fetch_add(1, Relaxed);
    if before > 0 {
        shared.counters.reconnects.fetch_add(1, Relaxed);
    }
    peer.counters.touch();
    peer.counters.set_connected(true);
    info!(peer = peer.id, reconnect = before > 0, "connected");
}

fn seed(me: ReplicaId, peer: ReplicaId) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(me);
    hasher.write_u32(peer);
    hasher.finish()
}

#[path = "tcp_conn.rs"]
mod conn;
use conn::run_connection;

#[path = "tcp_hello.rs"]
mod hello;
use hello::{read_hello, write_hello};

#[cfg(test)]
#[path = "tcp_tests.rs"]
mod tests;
