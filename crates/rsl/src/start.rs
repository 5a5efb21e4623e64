//! Starting a replica for real (`Node::start`): lock the data directory, recover the log and
//! metadata (or bootstrap an empty directory), load the newest checkpoint that verifies, start
//! the transport, then the threads. Every failure is returned as a [`StartError`]; nothing
//! here panics on an operating error.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rsl_core::{MemberInfo, Membership, Recovered, ReplicaId, Slot, Write};
use rsl_storage::{
    CheckpointFiles, CheckpointOptions, CheckpointStore, FsMedia, Log, LogOptions, Media, MemDisk,
    MetaFiles, MetaStore, PmemMedia, SegmentLog,
};
use rsl_store::{StorageDisk, StoreError};

use crate::channels::EVENTS_QUEUED_MAX;
use crate::checkpoint::{Checkpoints, FileCheckpointer};
use crate::config::{Backend, NodeConfig};
use crate::data_dir::DataDirLock;
use crate::error::StartError;
use crate::io_thread::Reopen;
use crate::net::{transport_counters, NetRuntime};
use crate::node::{Node, Parts};
use crate::peer_call::{Inbox, PeerCalls};
use crate::state_machine::StateMachine;

fn storage_err(dir: &Path, e: impl Into<StoreError>) -> StartError {
    StartError::Storage { dir: dir.to_path_buf(), source: e.into() }
}

impl Node {
    /// Starts a replica from its configuration: takes the data directory's lock, recovers
    /// its disk (or bootstraps an empty data directory with the configured members), loads
    /// the newest valid checkpoint into `machine`, connects to its peers, and begins taking
    /// part in consensus.
    ///
    /// It may be called from inside an async runtime or outside one. Every failure is
    /// returned: an invalid configuration, a data directory another replica holds, storage
    /// that cannot be recovered, a taken peer or metrics port, unreadable TLS files.
    ///
    /// A cluster of one, restarted on its data directory (a real cluster lists three or five
    /// members, each started on its own machine with the same list):
    ///
    /// ```
    /// # use std::io;
    /// # use std::sync::{Arc, Mutex};
    /// # use bytes::Bytes;
    /// # use rsl::{Snapshot, StateMachine};
    /// # /// A list of every request executed, shared with the example.
    /// # #[derive(Clone, Default)]
    /// # struct Journal(Arc<Mutex<Vec<Vec<u8>>>>);
    /// # struct Copy(Vec<Vec<u8>>);
    /// # impl Snapshot for Copy {
    /// #     fn write_to(&self, out: &mut dyn io::Write) -> io::Result<()> {
    /// #         for r in &self.0 { out.write_all(&[r.len() as u8])?; out.write_all(r)?; }
    /// #         Ok(())
    /// #     }
    /// # }
    /// # impl StateMachine for Journal {
    /// #     fn execute(&mut self, _slot: u64, request: &[u8]) -> Bytes {
    /// #         let mut j = self.0.lock().unwrap();
    /// #         j.push(request.to_vec());
    /// #         Bytes::from(j.len().to_string())
    /// #     }
    /// #     fn read(&self, _request: &[u8]) -> Bytes { Bytes::from(self.0.lock().unwrap().len().to_string()) }
    /// #     fn snapshot(&self) -> Box<dyn Snapshot> { Box::new(Copy(self.0.lock().unwrap().clone())) }
    /// #     fn load_checkpoint(&mut self, input: &mut dyn io::Read) -> io::Result<()> {
    /// #         let mut all = Vec::new();
    /// #         input.read_to_end(&mut all)?;
    /// #         let mut j = self.0.lock().unwrap();
    /// #         let mut rest = &all[..];
    /// #         while let Some((&n, tail)) = rest.split_first() { j.push(tail[..n as usize].to_vec()); rest = &tail[n as usize..]; }
    /// #         Ok(())
    /// #     }
    /// # }
    /// use std::time::Duration;
    /// use rsl::{Member, Node, NodeConfig, ReadConsistency};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = tempfile::tempdir()?;
    /// let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    /// let config = NodeConfig::new(1, dir.path(), vec![Member::new(1, port)]);
    ///
    /// let node = Node::start(config.clone(), Journal::default())?;
    /// let mut view = node.watch();
    /// view.wait_for(|v| v.primary == Some(1)).await?;
    /// assert_eq!(node.replicate(Bytes::from_static(b"hello")).await?, Bytes::from("1"));
    /// // A second replica on the same directory is refused while the first runs.
    /// assert!(Node::start(config.clone(), Journal::default()).is_err());
    /// node.shutdown();
    ///
    /// // Restarted on its directory, it recovers what it executed from its log.
    /// let again = Journal::default();
    /// let node = Node::start(config, again.clone())?;
    /// node.watch().wait_for(|v| v.primary == Some(1)).await?;
    /// let executed = node.replicate(Bytes::from_static(b"again")).await?;
    /// assert_eq!(executed, Bytes::from("2"));
    /// assert_eq!(again.0.lock().unwrap()[0], b"hello");
    /// # Ok(())
    /// # }
    /// ```
    pub fn start<S: StateMachine>(config: NodeConfig, mut machine: S) -> Result<Node, StartError> {
        config.validate()?;
        let lock = DataDirLock::acquire(&config.data_dir)?;
        let config = memory_restart_as_disk_lost(config)?;
        let checkpoints = open_checkpoints(&config)?;
        let (checkpoint, membership) =
            load_checkpoint(&checkpoints, &mut machine, &config.data_dir)?;
        let meta_dir = config.data_dir.join("meta");
        let log_dir = config.data_dir.join("log");
        let open = StartParts { machine, checkpoint, membership, checkpoints, lock };
        match config.storage.backend {
            Backend::File => {
                let meta = move || FsMedia::open(&meta_dir);
                start_on(config, move || FsMedia::open(&log_dir), meta, open)
            }
            Backend::Pmem => {
                let meta = move || FsMedia::open(&meta_dir);
                let log = move || PmemMedia::open(&log_dir, rsl_storage::DaxMode::Detect);
                start_on(config, log, meta, open)
            }
            Backend::Memory => {
                // Nothing survives the process: a fresh memory disk every start.
                let disk = MemDisk::ram(u64::from(config.id));
                let meta_disk = disk.clone();
                start_on(config, move || Ok(disk.media()), move || Ok(meta_disk.media()), open)
            }
        }
    }
}

/// The file in a data directory that says a replica ran there on the memory backend.
const MEMORY_RAN_HERE: &str = "memory-backend-ran-here";

/// A replica of several on the memory backend that ran in this data directory before has
/// forgotten every promise and vote it made (its log and metadata were in the process's
/// memory): starting it as if new could let it vote against a promise and lose acknowledged
/// writes. It is started as after a disk loss instead (`storage.disk_lost`: it rebuilds from
/// its peers before it promises or votes, docs/protocol.md "Disk loss"), its checkpoints
/// dropped with the rest of that state. The first start in a directory (a new cluster), and a
/// replica alone in its cluster (nobody to rebuild from, no one else's promises at stake),
/// start as configured. The directory's lock is held.
fn memory_restart_as_disk_lost(mut config: NodeConfig) -> Result<NodeConfig, StartError> {
    if config.storage.backend != Backend::Memory {
        return Ok(config);
    }
    let marker = config.data_dir.join(MEMORY_RAN_HERE);
    if marker.exists() && config.members.len() > 1 {
        tracing::warn!(
            id = config.id,
            "restarted on the memory backend: its promises and votes are gone; rebuilding \
             from peers as after a disk loss"
        );
        config.storage.disk_lost = true;
        let checkpoints = config.data_dir.join("checkpoints");
        if checkpoints.exists() {
            std::fs::remove_dir_all(&checkpoints)
                .map_err(|source| StartError::DataDir { dir: checkpoints.clone(), source })?;
        }
    }
    std::fs::write(&marker, b"this replica ran here on the memory backend\n")
        .map_err(|source| StartError::DataDir { dir: config.data_dir.clone(), source })?;
    Ok(config)
}

/// What `Node::start` prepared before it opens the log: the state machine with its
/// checkpoint loaded, the checkpoint store, the data directory's lock.
struct StartParts<S> {
    machine: S,
    checkpoint: Slot,
    /// The membership the checkpoint carries (`None`: none loaded, or one written before
    /// checkpoints carried it).
    membership: Option<Membership>,
    checkpoints: Checkpoints,
    lock: DataDirLock,
}

/// Opens the log and the metadata on the media `log_media` and `meta_media` make (again on
/// every full-disk retry), recovers them, and launches the replica.
fn start_on<S, Lm, Mm>(
    config: NodeConfig,
    log_media: impl Fn() -> rsl_storage::Result<Lm> + Send + 'static,
    meta_media: impl Fn() -> rsl_storage::Result<Mm> + Send + 'static,
    parts: StartParts<S>,
) -> Result<Node, StartError>
where
    S: StateMachine,
    Lm: Media + 'static,
    Mm: Media + 'static,
{
    let meta_dir = config.data_dir.join("meta");
    let log = open_log(log_media(), &config)?;
    let meta = MetaFiles::open(meta_media().map_err(|e| storage_err(&meta_dir, e))?);
    let opened = open_store(log, meta, &config)?;
    let options = LogOptions { segment_bytes_max: config.storage.segment_bytes_max };
    let fsync = config.storage.fsync;
    let reopen = Reopen {
        place: config.data_dir.display().to_string(),
        open: Box::new(move |end| {
            let mut media = log_media()?;
            if let Some(end) = end {
                SegmentLog::discard_after(&mut media, end)?;
            }
            let (log, report) = SegmentLog::open(media, options)?;
            StorageDisk::new(log, &report, MetaFiles::open(meta_media()?), fsync, 0)
        }),
    };
    launch(config, opened, reopen, parts)
}

/// Storage opened and recovered, with what it holds.
type Opened<L, M> = (StorageDisk<L, M>, Recovered);

fn open_log<M: Media>(
    media: rsl_storage::Result<M>,
    config: &NodeConfig,
) -> Result<(SegmentLog<M>, rsl_storage::RecoveryReport), StartError> {
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

/// Wraps the log and the metadata into the store and recovers it; bootstraps an empty data
/// directory into the configured cluster (once).
fn open_store<L: Log, M: MetaStore>(
    (log, report): (L, rsl_storage::RecoveryReport),
    meta: M,
    config: &NodeConfig,
) -> Result<Opened<L, M>, StartError> {
    let dir = &config.data_dir;
    let mut store = StorageDisk::new(log, &report, meta, config.storage.fsync, 0)
        .map_err(|e| storage_err(dir, e))?;
    let recovered = store.recover().map_err(|e| storage_err(dir, e))?;
    if recovered.membership.is_some() {
        if config.storage.disk_lost {
            tracing::warn!(
                id = config.id,
                "storage.disk_lost is set but the data directory holds state; ignoring it"
            );
        }
        return Ok((store, recovered));
    }
    // Each member's address goes into the membership, so that replicas added later learn
    // where every member is from the log.
    let mut members = Membership::new(config.members.iter().map(|m| m.id));
    for m in &config.members {
        let info = MemberInfo { addr: m.addr.to_string(), data: Default::default() };
        members.info.insert(ReplicaId(m.id), info);
    }
    store.set_membership(members).map_err(|e| storage_err(dir, e))?;
    if config.storage.disk_lost {
        // It took part before and forgot its promises and votes: the durable marker makes
        // it rebuild from its peers before it promises or votes (docs/protocol.md, "Disk
        // loss"), and keeps it rebuilding across crashes until the rebuild completes.
        tracing::warn!(id = config.id, "starting after a disk loss: rebuilding from peers");
        store.persist(&[Write::Rebuilding(true)], 0).map_err(|e| storage_err(dir, e))?;
    }
    let recovered = store.recover().map_err(|e| storage_err(dir, e))?;
    Ok((store, recovered))
}

fn open_checkpoints(config: &NodeConfig) -> Result<Checkpoints, StartError> {
    let dir = config.data_dir.join("checkpoints");
    let media = FsMedia::open(&dir).map_err(|e| storage_err(&dir, e))?;
    let options = CheckpointOptions { kept_max: config.storage.checkpoints_kept };
    let store = CheckpointFiles::open(media, options).map_err(|e| storage_err(&dir, e))?;
    Ok(Arc::new(Mutex::new(store)))
}

/// Loads the newest checkpoint that verifies into `machine`; returns its slot and the
/// membership it carries.
fn load_checkpoint<S: StateMachine>(
    checkpoints: &Checkpoints,
    machine: &mut S,
    dir: &Path,
) -> Result<(Slot, Option<Membership>), StartError> {
    let mut store = checkpoints.lock().expect("checkpoint lock");
    let newest = store.open_newest().map_err(|e| storage_err(dir, e))?;
    for (slot, error) in &newest.skipped {
        tracing::error!(slot, %error, "checkpoint is corrupt; falling back to an older one");
    }
    let Some((info, mut reader)) = newest.found else { return Ok((Slot::ZERO, None)) };
    let membership = rsl_store::decode_checkpoint_header(&info.header)
        .map_err(|e| storage_err(&dir.join("checkpoints"), e))?;
    machine.load_checkpoint(&mut reader).map_err(StartError::Checkpoint)?;
    tracing::info!(slot = info.slot, bytes = info.data_bytes, "loaded checkpoint");
    Ok((Slot(info.slot), membership))
}

/// Starts the transport and the threads over opened storage.
fn launch<S: StateMachine, L: Log + 'static, M: MetaStore + 'static>(
    config: NodeConfig,
    (store, mut recovered): Opened<L, M>,
    reopen: Reopen<L, M>,
    parts: StartParts<S>,
) -> Result<Node, StartError> {
    let StartParts { machine, checkpoint, membership, checkpoints, lock } = parts;
    recovered.checkpoint = checkpoint;
    // The log up to the checkpoint is skipped, with the configurations in it: the membership
    // after them is the one the checkpoint carries, not the metadata's (written at
    // bootstrap). A checkpoint from before they carried it leaves the metadata's.
    if membership.is_some() {
        recovered.membership = membership;
    }
    recovered.log.retain(|e| e.slot > checkpoint);
    recovered.commit = recovered.commit.max(checkpoint);
    let net = NetRuntime::new(config.id)?;
    let events = crossbeam_channel::bounded(EVENTS_QUEUED_MAX);
    let peer_calls = PeerCalls::new(config.id);
    let inbox = Inbox { events: events.0.clone(), calls: peer_calls.clone() };
    let transport = net.start_transport(&config, inbox)?;
    let node = Node::spawn(Parts {
        core: config.core_config(rand_seed(config.id)),
        tick: Duration::from_millis(config.consensus.tick_ms),
        machine,
        disk: store,
        reopen,
        transport: Arc::new(transport.clone()),
        recovered,
        events,
        checkpointer: Some(Box::new(FileCheckpointer::new(checkpoints.clone()))),
        checkpoints: Some(checkpoints),
        members: config.members.iter().map(|m| (m.id, Some(m.addr))).collect(),
        call_timeout: Duration::from_millis(config.consensus.call_timeout_ms),
        peer_calls,
    })?;
    net.watch_disconnects(&transport, node.peer_calls());
    let stats = Box::new(transport_counters(transport.clone()));
    node.metrics_source().metrics.register_collector(stats);
    net.count_rejections(transport.clone(), node.metrics_source());
    if let Some(addr) = config.metrics_addr {
        net.serve_metrics(addr, node.metrics_source())?;
    }
    tracing::info!(id = config.id, dir = %lock.dir().display(), "replica started");
    node.at_shutdown(Box::new(move || {
        net.block_on(transport.shutdown());
        drop(net);
        // Released last: the directory is free once nothing of this replica touches it.
        drop(lock);
    }));
    Ok(node)
}

/// The core's seed: drawn here, by the driver, since the core has no randomness.
fn rand_seed(id: u32) -> u64 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    nanos.map(|d| d.as_nanos() as u64).unwrap_or(0).rotate_left(17) ^ u64::from(id)
}
