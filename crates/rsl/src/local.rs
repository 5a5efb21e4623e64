//! A whole cluster in one process: replicas with in-memory disks joined by a [`LocalHub`].
//! Used by tests and by the embedded benchmark; the same consensus, I/O and executor
//! threads run as in a real deployment, only the disk and the wire differ.

use std::time::Duration;

use std::sync::{Arc, Mutex};

use rsl_storage::{
    CheckpointFiles, CheckpointOptions, DurableEnd, LogOptions, MemDisk, MetaFiles, SegmentLog,
};
use rsl_store::{StorageDisk, StoreError};

use crate::channels::EVENTS_QUEUED_MAX;
use crate::checkpoint::FileCheckpointer;
use crate::config::{Consensus, Storage};
use crate::hub::LocalHub;
use crate::io_thread::Reopen;
use crate::node::{Node, Parts};
use crate::peer_call::{Inbox, PeerCalls};
use crate::state_machine::StateMachine;
use crate::status::Role;

/// Options of a local cluster: how many replicas, the same consensus knobs as a replica's
/// configuration (`[consensus]` in [`crate::NodeConfig`]; `tick_ms` is the tick and
/// `call_timeout_ms` the calls' default deadline), and when a replica checkpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalOptions {
    /// Replicas, with ids `1..=replicas`.
    pub replicas: u32,
    /// Consensus knobs, as in a replica's configuration.
    pub consensus: Consensus,
    /// A replica checkpoints every this many executed slots (0: never), into memory, and
    /// then drops its log below the checkpoint but `log_kept_slots`: as
    /// `[storage] checkpoint_interval_slots` does for a replica on files. Without
    /// checkpoints a replica's memory disk holds every slot it ever wrote.
    pub checkpoint_interval_slots: u64,
    /// Slots of log a replica keeps below its newest checkpoint, for peers that lag a little
    /// (`[storage] log_kept_slots`); a peer further behind is sent the checkpoint.
    pub log_kept_slots: u64,
}

impl Default for LocalOptions {
    fn default() -> Self {
        let storage = Storage::default();
        LocalOptions {
            replicas: 3,
            consensus: Consensus::default(),
            checkpoint_interval_slots: storage.checkpoint_interval_slots,
            log_kept_slots: storage.log_kept_slots,
        }
    }
}

/// Replicas in one process, joined by an in-process network with switches to cut links.
/// Dropping it shuts every replica down.
#[derive(Debug)]
pub struct LocalCluster {
    /// The network between the replicas (cut and heal links with it).
    pub hub: LocalHub,
    /// The replicas, in id order (`nodes[0]` is replica 1).
    pub nodes: Vec<Node>,
}

impl LocalCluster {
    /// Starts `options.replicas` replicas with ids 1..=n, each with `machine(id)`.
    ///
    /// # Panics
    ///
    /// If `options` are invalid (the message names the knob) or a thread cannot be started:
    /// this is a test harness, and a test should fail there.
    pub fn start<M: StateMachine>(options: LocalOptions, machine: impl Fn(u32) -> M) -> Self {
        // Nothing outlives the process and a stopped replica never starts again on its disk:
        // no crash to model, so the plain memory disk (one copy a write, `sync` a no-op), as
        // a replica on `storage.backend = "memory"` has.
        let disks = (1..=options.replicas).map(|id| MemDisk::ram(u64::from(id))).collect();
        LocalCluster::start_on(options, machine, disks)
    }

    /// [`LocalCluster::start`] on the given memory disks (`disks[i]` for replica `i + 1`), so
    /// that a test can fill one up or fail it.
    pub(crate) fn start_on<M: StateMachine>(
        options: LocalOptions,
        machine: impl Fn(u32) -> M,
        disks: Vec<MemDisk>,
    ) -> Self {
        if let Err(e) = options.consensus.validate() {
            panic!("invalid LocalOptions: {e}");
        }
        assert_eq!(disks.len(), options.replicas as usize, "one disk per replica");
        let hub = LocalHub::new();
        let ids: Vec<u32> = (1..=options.replicas).collect();
        let nodes = ids
            .iter()
            .zip(disks)
            .map(|(&id, mem)| {
                let mut core = rsl_core::Config::new(id, ids.iter().copied());
                options.consensus.apply(&mut core);
                core.checkpoint_interval_slots = options.checkpoint_interval_slots;
                core.log_kept_slots = options.log_kept_slots;
                // Fixed seeds: these replicas start once, on fresh memory disks, and never
                // rebuild (a rebuilding replica needs a seed it never had before: start.rs).
                core.rng_seed = 0x9e37_79b9_7f4a_7c15 ^ u64::from(id);
                let open = move |end: Option<DurableEnd>| -> Result<_, StoreError> {
                    let mut media = mem.media();
                    if let Some(end) = end {
                        SegmentLog::discard_after(&mut media, end)?;
                    }
                    let (log, report) = SegmentLog::open(media, LogOptions::default())?;
                    StorageDisk::new(log, &report, MetaFiles::open(mem.media()), true, 0)
                };
                let mut disk = open(None).expect("a memory disk opens");
                let recovered = disk.recover().expect("a memory disk recovers");
                let reopen =
                    Reopen { place: format!("memory of replica {id}"), open: Box::new(open) };
                // Checkpoints in memory of their own (a disk apart from the log's), written
                // and shipped to lagging peers as a file-backed replica's are.
                let kept_max = Storage::default().checkpoints_kept;
                let store = CheckpointFiles::open(
                    MemDisk::ram(u64::from(id)).media(),
                    CheckpointOptions { kept_max },
                )
                .expect("an empty memory disk opens as a checkpoint store");
                let checkpoints = Arc::new(Mutex::new(store));
                let events = crossbeam_channel::bounded(EVENTS_QUEUED_MAX);
                let peer_calls = PeerCalls::new(id);
                hub.register(id, Inbox { events: events.0.clone(), calls: peer_calls.clone() });
                Node::spawn(Parts {
                    core,
                    tick: Duration::from_millis(options.consensus.tick_ms),
                    machine: machine(id),
                    disk,
                    reopen,
                    transport: hub.end(id),
                    recovered,
                    events,
                    checkpointer: Some(Box::new(FileCheckpointer::new(checkpoints.clone()))),
                    checkpoints: Some(checkpoints),
                    peer_calls,
                    members: ids.iter().map(|&id| (id, None)).collect(),
                    call_timeout: Duration::from_millis(options.consensus.call_timeout_ms),
                })
                .expect("start a local replica")
            })
            .collect();
        LocalCluster { hub, nodes }
    }

    /// The live replica that says it is primary, if exactly one does.
    pub fn primary(&self) -> Option<&Node> {
        let mut primaries =
            self.nodes.iter().filter(|n| n.is_running() && n.status().role == Role::Primary);
        let first = primaries.next();
        if primaries.next().is_some() {
            return None;
        }
        first
    }

    /// Waits (bounded by `timeout`) until exactly one live replica is primary and every
    /// other live replica follows it; returns the primary. Awaits role changes, no polling.
    pub async fn wait_for_primary(&self, timeout: Duration) -> Option<&Node> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut watches: Vec<_> = self.nodes.iter().map(|n| n.watch()).collect();
        loop {
            if let Some(p) = self.settled_primary() {
                return Some(p);
            }
            let changes = watches.iter_mut().map(|w| Box::pin(w.changed()));
            let any = futures_util::future::select_all(changes);
            if tokio::time::timeout_at(deadline, any).await.is_err() {
                return None;
            }
        }
    }

    fn settled_primary(&self) -> Option<&Node> {
        let live: Vec<&Node> = self.nodes.iter().filter(|n| n.is_running()).collect();
        let views: Vec<_> = live.iter().map(|n| *n.watch().borrow()).collect();
        let p = live.iter().zip(&views).find(|(_, v)| v.role == Some(Role::Primary))?.0;
        let agreed = views.iter().filter(|v| v.primary == Some(p.id())).count();
        (agreed * 2 > self.nodes.len()).then_some(*p)
    }

    /// Stops replica `id` (it stays stopped; its memory disk is gone).
    pub fn stop(&self, id: u32) {
        self.hub.unregister(id);
        if let Some(n) = self.nodes.iter().find(|n| n.id() == id) {
            n.shutdown();
        }
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        for n in &self.nodes {
            n.shutdown();
        }
    }
}

#[cfg(test)]
#[path = "local/checkpoint_tests.rs"]
mod checkpoint_tests;
#[cfg(test)]
mod tests;
