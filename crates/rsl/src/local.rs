//! A whole cluster in one process: replicas with in-memory disks joined by a [`LocalHub`].
//! Used by tests and by the embedded benchmark; the same consensus, I/O and executor
//! threads run as in a real deployment, only the disk and the wire differ.

use std::time::Duration;

use rsl_storage::{LogOptions, MemDisk, MetaFiles, SegmentLog};
use rsl_store::StorageDisk;

use crate::channels::EVENTS_QUEUED_MAX;
use crate::hub::LocalHub;
use crate::node::{Node, Parts};
use crate::state_machine::StateMachine;
use crate::status::Role;

/// Options of a local cluster.
#[derive(Debug, Clone)]
pub struct LocalOptions {
    pub replicas: u32,
    pub tick: Duration,
    /// Adjusts each replica's core configuration (knobs, seeds).
    pub tune: fn(&mut rsl_core::Config),
}

impl Default for LocalOptions {
    fn default() -> Self {
        LocalOptions { replicas: 3, tick: Duration::from_millis(10), tune: |_| {} }
    }
}

/// Replicas in one process.
#[derive(Debug)]
pub struct LocalCluster {
    pub hub: LocalHub,
    pub nodes: Vec<Node>,
}

impl LocalCluster {
    /// Starts `options.replicas` replicas with ids 1..=n, each with `machine(id)`.
    pub fn start<M: StateMachine>(options: LocalOptions, machine: impl Fn(u32) -> M) -> Self {
        let hub = LocalHub::new();
        let ids: Vec<u32> = (1..=options.replicas).collect();
        let nodes = ids
            .iter()
            .map(|&id| {
                let mut core = rsl_core::Config::new(id, ids.iter().copied());
                // Fixed seeds: these replicas start once, on fresh memory disks, and never
                // rebuild (a rebuilding replica needs a seed it never had before: start.rs).
                core.rng_seed = 0x9e37_79b9_7f4a_7c15 ^ u64::from(id);
                (options.tune)(&mut core);
                let mem = MemDisk::new(u64::from(id));
                let (log, report) =
                    SegmentLog::open(mem.media(), LogOptions::default()).expect("memory log");
                let meta = MetaFiles::open(mem.media());
                let mut disk =
                    StorageDisk::new(log, &report, meta, true, 0).expect("memory metadata");
                let recovered = disk.recover().expect("memory disk");
                let events = crossbeam_channel::bounded(EVENTS_QUEUED_MAX);
                hub.register(id, events.0.clone());
                Node::spawn(Parts {
                    core,
                    tick: options.tick,
                    machine: machine(id),
                    disk,
                    transport: hub.end(id),
                    recovered,
                    events,
                    checkpointer: None,
                    checkpoints: None,
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
