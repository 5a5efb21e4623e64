//! Starting a replica for real: storage on disk, TCP (with mutual TLS) between replicas,
//! checkpoints, metrics. `Node::start` is the production entry point; `LocalCluster` is the
//! in-process one for tests.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use crossbeam_channel::Sender;
use rsl_core::{Membership, Slot, Write};
use rsl_net::{Security, TcpTransport, TlsIdentity, Transport, TransportConfig};
use rsl_storage::{
    CheckpointFiles, CheckpointOptions, CheckpointStore, FsMedia, Log, LogOptions, Media,
    MetaFiles, PmemMedia, RecoveryReport, SegmentLog,
};

use crate::checkpoint::Checkpointer;
use crate::config::{Backend, NodeConfig};
use crate::disk::{Disk, MemoryDisk};
use crate::error::StartError;
use crate::node::{checkpoint_saved, Event, Node, Parts, EVENTS_QUEUED_MAX};
use crate::state_machine::{Snapshot, StateMachine};
use crate::store::StorageDisk;
use crate::wire::Wire;

/// The name every replica of a cluster carries in its transport hello.
pub const CLUSTER_NAME: &str = "rsl";

fn storage_err(dir: &Path, e: impl std::fmt::Display) -> StartError {
    StartError::Storage { dir: dir.to_path_buf(), message: e.to_string() }
}

impl Node {
    /// Starts a replica from its configuration: recovers its disk (or bootstraps an empty
    /// data directory with the configured members), loads the newest valid checkpoint into
    /// `machine`, connects to its peers, and begins taking part in consensus.
    pub fn start<M: StateMachine>(config: NodeConfig, mut machine: M) -> Result<Node, StartError> {
        config.validate()?;
        let dir = config.data_dir.clone();
        for sub in ["log", "meta", "checkpoints"] {
            std::fs::create_dir_all(dir.join(sub)).map_err(|e| storage_err(&dir, e))?;
        }
        let checkpoints = open_checkpoints(&config)?;
        let checkpoint = load_checkpoint(&checkpoints, &mut machine, &dir)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(format!("rsl-net-{}", config.id))
            .enable_all()
            .build()
            .map_err(|e| StartError::Network(e.to_string()))?;
        let transport_config = transport_config(&config)?;
        let (transport, incoming) =
            block_on_outside(&runtime, TcpTransport::start(transport_config))
                .map_err(|e| StartError::Network(e.to_string()))?;
        let events = crossbeam_channel::bounded(EVENTS_QUEUED_MAX);
        let wire = NetWire { transport: transport.clone() };
        let node = match config.storage.backend {
            Backend::File => {
                let log = open_log(FsMedia::open(dir.join("log")), &config)?;
                start_with(config.clone(), machine, log, checkpoint, wire, events, &checkpoints)?
            }
            Backend::Pmem => {
                let media = PmemMedia::open(dir.join("log"), rsl_storage::DaxMode::Detect);
                let log = open_log(media, &config)?;
                start_with(config.clone(), machine, log, checkpoint, wire, events, &checkpoints)?
            }
            Backend::Memory => {
                let disk = MemoryDisk::default();
                start_parts(config.clone(), machine, disk, checkpoint, wire, events, &checkpoints)?
            }
        };
        forward_incoming(&runtime, incoming, node.inbox());
        watch_disconnects(&runtime, &transport, &node);
        let stats_source = transport.clone();
        *node.metrics_source().extra_metrics.lock().expect("metrics lock") =
            Some(Box::new(move || transport_metrics(&stats_source.stats())));
        count_rejections(&runtime, transport.clone(), &node);
        if let Some(addr) = config.metrics_addr {
            serve_metrics(&runtime, &node, addr)?;
        }
        node.at_shutdown(Box::new(move || {
            block_on_outside(&runtime, transport.shutdown());
            runtime.shutdown_background();
        }));
        Ok(node)
    }
}

/// Runs `future` to completion on `runtime` from a thread of its own, so that `Node::start`
/// and shutdown work whether or not the caller is itself inside an async runtime.
fn block_on_outside<F: std::future::Future + Send>(
    runtime: &tokio::runtime::Runtime,
    future: F,
) -> F::Output
where
    F::Output: Send,
{
    std::thread::scope(|s| s.spawn(|| runtime.block_on(future)).join().expect("block_on thread"))
}

fn open_log<M: Media>(
    media: rsl_storage::Result<M>,
    config: &NodeConfig,
) -> Result<(SegmentLog<M>, RecoveryReport), StartError> {
    let dir = config.data_dir.join("log");
    let media = media.map_err(|e| storage_err(&dir, e))?;
    let options = LogOptions { segment_bytes_max: config.storage.segment_bytes_max };
    let (log, report) = SegmentLog::open(media, options).map_err(|e| storage_err(&dir, e))?;
    if let Some(torn) = &report.torn {
        tracing::warn!(records = torn.records.len(), "recovery discarded a torn tail");
    }
    if report.has_corruption() {
        tracing::error!(
            records = report.corrupt.len(),
            regions = report.corrupt_regions.len(),
            "the log has corrupt records; they will be repaired from peers"
        );
    }
    Ok((log, report))
}

use crate::transfer::Checkpoints;

fn open_checkpoints(config: &NodeConfig) -> Result<Checkpoints, StartError> {
    let dir = config.data_dir.join("checkpoints");
    let media = FsMedia::open(&dir).map_err(|e| storage_err(&dir, e))?;
    let options = CheckpointOptions { kept_max: config.storage.checkpoints_kept };
    let store = CheckpointFiles::open(media, options).map_err(|e| storage_err(&dir, e))?;
    Ok(Arc::new(Mutex::new(store)))
}

/// Loads the newest checkpoint that verifies into `machine`; returns its slot.
fn load_checkpoint<M: StateMachine>(
    checkpoints: &Checkpoints,
    machine: &mut M,
    dir: &Path,
) -> Result<Slot, StartError> {
    let mut store = checkpoints.lock().expect("checkpoint lock");
    let newest = store.open_newest().map_err(|e| storage_err(dir, e))?;
    for (slot, error) in &newest.skipped {
        tracing::error!(slot, %error, "checkpoint is corrupt; falling back to an older one");
    }
    let Some((info, mut reader)) = newest.found else { return Ok(Slot::ZERO) };
    machine.load_checkpoint(&mut reader).map_err(StartError::Checkpoint)?;
    tracing::info!(slot = info.slot, bytes = info.data_bytes, "loaded checkpoint");
    Ok(Slot(info.slot))
}

fn start_with<M: StateMachine, L: Log + 'static>(
    config: NodeConfig,
    machine: M,
    (log, report): (L, RecoveryReport),
    checkpoint: Slot,
    wire: NetWire,
    events: (Sender<Event>, crossbeam_channel::Receiver<Event>),
    checkpoints: &Checkpoints,
) -> Result<Node, StartError> {
    let dir = config.data_dir.join("meta");
    let meta = MetaFiles::open(FsMedia::open(&dir).map_err(|e| storage_err(&dir, e))?);
    let mut disk = StorageDisk::new(log, &report, meta, config.storage.fsync)
        .map_err(|e| storage_err(&dir, e))?;
    let recovered = disk.recover().map_err(|e| storage_err(&dir, e))?;
    if recovered.membership.is_none() {
        // Bootstrap: an empty data directory joins the configured cluster, once.
        let members = Membership::new(config.members.iter().map(|m| m.id));
        disk.set_membership(members).map_err(|e| storage_err(&dir, e))?;
        if config.storage.disk_lost {
            // It took part before and forgot its promises and votes: the durable marker makes
            // it rebuild from its peers before it promises or votes (docs/protocol.md, "Disk
            // loss"), and keeps it rebuilding across crashes until the rebuild completes.
            tracing::warn!(id = config.id, "starting after a disk loss: rebuilding from peers");
            disk.persist(&[Write::Rebuilding(true)]).map_err(|e| storage_err(&dir, e))?;
        }
    } else if config.storage.disk_lost {
        tracing::warn!(
            id = config.id,
            "storage.disk_lost is set but the data directory holds state; ignoring it"
        );
    }
    start_parts(config, machine, disk, checkpoint, wire, events, checkpoints)
}

fn start_parts<M: StateMachine, D: Disk>(
    config: NodeConfig,
    machine: M,
    mut disk: D,
    checkpoint: Slot,
    wire: NetWire,
    events: (Sender<Event>, crossbeam_channel::Receiver<Event>),
    checkpoints: &Checkpoints,
) -> Result<Node, StartError> {
    let mut recovered = disk.recover().map_err(|e| storage_err(&config.data_dir, e))?;
    recovered.checkpoint = checkpoint;
    recovered.log.retain(|e| e.slot > checkpoint);
    recovered.commit = recovered.commit.max(checkpoint);
    let core = config.core_config(rand_seed(config.id));
    let checkpointer: Box<dyn Checkpointer> = Box::new(FileCheckpointer {
        store: checkpoints.clone(),
        busy: Arc::new(std::sync::atomic::AtomicBool::new(false)),
    });
    Ok(Node::spawn(Parts {
        core,
        tick: Duration::from_millis(config.consensus.tick_ms),
        machine,
        disk,
        wire,
        recovered,
        events,
        checkpointer: Some(checkpointer),
        checkpoints: Some(checkpoints.clone()),
    }))
}

/// The core's seed: drawn here, by the driver, since the core has no randomness.
fn rand_seed(id: u32) -> u64 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    nanos.map(|d| d.as_nanos() as u64).unwrap_or(0).rotate_left(17) ^ u64::from(id)
}

fn transport_config(config: &NodeConfig) -> Result<TransportConfig, StartError> {
    let peers: BTreeMap<u32, _> =
        config.members.iter().filter(|m| m.id != config.id).map(|m| (m.id, m.addr)).collect();
    let mut t = TransportConfig::new(CLUSTER_NAME, config.id, config.listen_addr(), peers);
    if let Some(tls) = &config.tls {
        let identity = TlsIdentity::from_pem_files(&tls.ca, &tls.cert, &tls.key)
            .map_err(|e| StartError::Network(format!("tls: {e}")))?;
        t.security = Security::MutualTls(identity);
    }
    Ok(t)
}

/// Peer messages from the transport into the consensus thread's channel (peer calls to
/// their own module).
fn forward_incoming(
    runtime: &tokio::runtime::Runtime,
    mut incoming: tokio::sync::mpsc::Receiver<rsl_net::Incoming>,
    inbox: crate::peer_call::Inbox,
) {
    runtime.spawn(async move {
        while let Some(m) = incoming.recv().await {
            // A full channel drops the message: Paxos retransmits what matters.
            inbox.deliver(m.from, m.payload);
        }
    });
}

/// Ends the peer calls waiting on a member as soon as the connection to it breaks, rather
/// than at their deadlines.
fn watch_disconnects(runtime: &tokio::runtime::Runtime, transport: &TcpTransport, node: &Node) {
    for peer in transport.stats().peers.iter().map(|p| p.id) {
        let (transport, calls) = (transport.clone(), node.peer_calls().clone());
        runtime.spawn(async move {
            loop {
                transport.wait_connected(peer, true).await;
                transport.wait_connected(peer, false).await;
                calls.peer_lost(peer);
            }
        });
    }
}

/// Adds the transport's rejected frames and handshakes (an unauthenticated, malformed or
/// oversized connection attempt) to the replica's `rejected_messages` counter, so that
/// `rsl_rejected_messages_total` counts what its help text says: messages or frames rejected.
fn count_rejections(runtime: &tokio::runtime::Runtime, transport: TcpTransport, node: &Node) {
    let shared = node.metrics_source();
    runtime.spawn(async move {
        let mut seen = 0;
        loop {
            transport.wait_rejections(seen + 1).await;
            let stats = transport.stats();
            let now = stats.rejected_frames + stats.rejected_handshakes;
            shared
                .counters
                .rejected_messages
                .fetch_add(now - seen, std::sync::atomic::Ordering::Relaxed);
            seen = now;
        }
    });
}

fn serve_metrics(
    runtime: &tokio::runtime::Runtime,
    node: &Node,
    addr: std::net::SocketAddr,
) -> Result<(), StartError> {
    let listener = block_on_outside(runtime, tokio::net::TcpListener::bind(addr))
        .map_err(|e| StartError::Network(format!("metrics address {addr}: {e}")))?;
    let metrics = node.metrics_source();
    runtime.spawn(crate::metrics::serve(metrics, listener));
    Ok(())
}

/// The transport's counters in the Prometheus text format.
fn transport_metrics(s: &rsl_net::Stats) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let counters = [
        ("rsl_net_frames_sent_total", "Data frames written to peers", s.frames_sent),
        ("rsl_net_bytes_sent_total", "Wire bytes written to peers", s.bytes_sent),
        ("rsl_net_frames_received_total", "Data frames received from peers", s.frames_received),
        ("rsl_net_bytes_received_total", "Wire bytes received from peers", s.bytes_received),
        ("rsl_net_rejected_frames_total", "Frames that closed their connection (malformed, bad checksum, oversized, unauthenticated)", s.rejected_frames),
        ("rsl_net_rejected_handshakes_total", "Inbound connections refused before a valid hello (TLS or timeout)", s.rejected_handshakes),
        ("rsl_net_reconnects_total", "Connections re-established to a peer", s.reconnects),
        ("rsl_net_queue_full_drops_total", "Sends dropped because a peer's queue was full", s.queue_full_drops),
    ];
    for (name, help, value) in counters {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}");
    }
    out
}

/// The TCP transport as the consensus thread's wire.
struct NetWire {
    transport: TcpTransport,
}

impl Wire for NetWire {
    fn connected(&self, peer: u32) -> Option<bool> {
        self.transport.peer_status(peer).map(|s| s.connected)
    }

    fn peer_link(&self) -> Arc<dyn Transport> {
        Arc::new(self.transport.clone())
    }

    fn side_sender(&self) -> crate::transfer::SideSender {
        let transport = self.transport.clone();
        Arc::new(move |to, payload| {
            let _ = transport.send(to, payload);
        })
    }

    fn send(&mut self, to: u32, payload: Bytes) {
        // Refused sends (queue full, peer down) are dropped and counted by the transport.
        let _ = self.transport.send(to, payload);
    }
}

/// Writes checkpoints to the checkpoint store on a thread of their own, one at a time.
struct FileCheckpointer {
    store: Checkpoints,
    busy: Arc<std::sync::atomic::AtomicBool>,
}

impl Checkpointer for FileCheckpointer {
    fn start(&mut self, slot: Slot, snapshot: Box<dyn Snapshot>, events: Sender<Event>) {
        use std::sync::atomic::Ordering;
        if self.busy.swap(true, Ordering::AcqRel) {
            tracing::debug!(slot = slot.0, "a checkpoint is already being written; skipped");
            return;
        }
        let store = self.store.clone();
        let busy = self.busy.clone();
        let spawned = std::thread::Builder::new().name("rsl-checkpoint".into()).spawn(move || {
            match write_checkpoint(&store, slot, snapshot.as_ref()) {
                Ok(bytes) => {
                    tracing::info!(slot = slot.0, bytes, "checkpoint saved");
                    checkpoint_saved(&events, slot);
                }
                Err(e) => tracing::error!(slot = slot.0, error = %e, "checkpoint failed"),
            }
            busy.store(false, Ordering::Release);
        });
        if spawned.is_err() {
            self.busy.store(false, Ordering::Release);
        }
    }
}

fn write_checkpoint(
    store: &Checkpoints,
    slot: Slot,
    snapshot: &dyn Snapshot,
) -> Result<u64, String> {
    let mut writer =
        store.lock().expect("checkpoint lock").begin(slot.0, b"").map_err(|e| e.to_string())?;
    snapshot.write_to(&mut writer).map_err(|e| e.to_string())?;
    let info = store.lock().expect("checkpoint lock").commit(writer).map_err(|e| e.to_string())?;
    Ok(info.data_bytes)
}
