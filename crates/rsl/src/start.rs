//! Starting a replica for real (`Node::start`): lock the data directory, recover the log and
//! metadata (or bootstrap an empty directory), load the newest checkpoint that verifies, start
//! the transport, then the threads. Every failure is returned as a [`StartError`]; nothing
//! here panics on an operating error.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rsl_core::{Membership, Recovered, Slot, Write};
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
use crate::net::{transport_metrics, NetRuntime};
use crate::node::{Node, Parts};
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
    pub fn start<S: StateMachine>(config: NodeConfig, mut machine: S) -> Result<Node, StartError> {
        config.validate()?;
        let lock = DataDirLock::acquire(&config.data_dir)?;
        let checkpoints = open_checkpoints(&config)?;
        let checkpoint = load_checkpoint(&checkpoints, &mut machine, &config.data_dir)?;
        let meta_dir = config.data_dir.join("meta");
        let log_dir = config.data_dir.join("log");
        match config.storage.backend {
            Backend::File => {
                let log = open_log(FsMedia::open(&log_dir), &config)?;
                let meta = MetaFiles::open(
                    FsMedia::open(&meta_dir).map_err(|e| storage_err(&meta_dir, e))?,
                );
                let store = open_store(log, meta, &config)?;
                launch(config, machine, store, checkpoint, checkpoints, lock)
            }
            Backend::Pmem => {
                let log =
                    open_log(PmemMedia::open(&log_dir, rsl_storage::DaxMode::Detect), &config)?;
                let meta = MetaFiles::open(
                    FsMedia::open(&meta_dir).map_err(|e| storage_err(&meta_dir, e))?,
                );
                let store = open_store(log, meta, &config)?;
                launch(config, machine, store, checkpoint, checkpoints, lock)
            }
            Backend::Memory => {
                // Nothing survives the process: a fresh memory disk every start.
                let disk = MemDisk::new(u64::from(config.id));
                let log = open_log(Ok(disk.media()), &config)?;
                let store = open_store(log, MetaFiles::open(disk.media()), &config)?;
                launch(config, machine, store, checkpoint, checkpoints, lock)
            }
        }
    }
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
    let members = Membership::new(config.members.iter().map(|m| m.id));
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

/// Loads the newest checkpoint that verifies into `machine`; returns its slot.
fn load_checkpoint<S: StateMachine>(
    checkpoints: &Checkpoints,
    machine: &mut S,
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

/// Starts the transport and the threads over opened storage.
fn launch<S: StateMachine, L: Log + 'static, M: MetaStore + 'static>(
    config: NodeConfig,
    machine: S,
    (store, mut recovered): Opened<L, M>,
    checkpoint: Slot,
    checkpoints: Checkpoints,
    lock: DataDirLock,
) -> Result<Node, StartError> {
    recovered.checkpoint = checkpoint;
    recovered.log.retain(|e| e.slot > checkpoint);
    recovered.commit = recovered.commit.max(checkpoint);
    let net = NetRuntime::new(config.id)?;
    let events = crossbeam_channel::bounded(EVENTS_QUEUED_MAX);
    let transport = net.start_transport(&config, events.0.clone())?;
    let node = Node::spawn(Parts {
        core: config.core_config(rand_seed(config.id)),
        tick: Duration::from_millis(config.consensus.tick_ms),
        machine,
        disk: store,
        transport: Arc::new(transport.clone()),
        recovered,
        events,
        checkpointer: Some(Box::new(FileCheckpointer::new(checkpoints.clone()))),
        checkpoints: Some(checkpoints),
    })?;
    let stats = transport.clone();
    *node.metrics_source().extra_metrics.lock().expect("metrics lock") =
        Some(Box::new(move || transport_metrics(&stats.stats())));
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
