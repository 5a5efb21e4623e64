//! How the consensus thread reaches its peers: one small trait, so that TCP (with TLS), an
//! in-process hub (tests, the embedded benchmark) and, one day, RDMA sit behind the same
//! interface. Sends never block: a wire that cannot take a message drops it (Paxos
//! retransmits what matters) and counts the drop.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;
use crossbeam_channel::Sender;

use crate::node::{inbound, Event};

/// A replica's outgoing half of the network.
pub trait Wire: Send + 'static {
    /// Queues `payload` for replica `to`. Never blocks.
    fn send(&mut self, to: u32, payload: Bytes);
    /// Called at the end of each consensus turn: push out what was queued.
    fn flush(&mut self) {}
    /// A sender usable from other threads (checkpoint transfer), bypassing the turn queue.
    fn side_sender(&self) -> crate::transfer::SideSender;
    /// Whether a connection to `peer` is up, if the wire can tell.
    fn connected(&self, _peer: u32) -> Option<bool> {
        None
    }
}

/// An in-process network between the replicas of one process, with switches to cut links.
#[derive(Debug, Default, Clone)]
pub struct LocalHub {
    inner: Arc<HubInner>,
}

#[derive(Debug, Default)]
struct HubInner {
    inboxes: RwLock<HashMap<u32, SenderDebug>>,
    cut: Mutex<Vec<(u32, u32)>>,
}

struct SenderDebug(Sender<Event>);

impl std::fmt::Debug for SenderDebug {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("inbox")
    }
}

impl LocalHub {
    pub fn new() -> LocalHub {
        LocalHub::default()
    }

    pub(crate) fn register(&self, id: u32, inbox: Sender<Event>) {
        self.inner.inboxes.write().expect("hub lock").insert(id, SenderDebug(inbox));
    }

    pub(crate) fn unregister(&self, id: u32) {
        self.inner.inboxes.write().expect("hub lock").remove(&id);
    }

    /// Drops every message between `a` and `b`, both ways, until [`LocalHub::heal`].
    pub fn cut(&self, a: u32, b: u32) {
        self.inner.cut.lock().expect("hub lock").push((a, b));
    }

    /// Restores every link.
    pub fn heal(&self) {
        self.inner.cut.lock().expect("hub lock").clear();
    }

    /// Isolates `a` from every other replica.
    pub fn isolate(&self, a: u32) {
        let ids: Vec<u32> = self.inner.inboxes.read().expect("hub lock").keys().copied().collect();
        for b in ids.into_iter().filter(|b| *b != a) {
            self.cut(a, b);
        }
    }

    pub(crate) fn wire(&self, me: u32) -> HubWire {
        HubWire { me, hub: self.clone(), queued: Vec::new() }
    }
}

/// One replica's end of a [`LocalHub`].
#[derive(Debug)]
pub struct HubWire {
    me: u32,
    hub: LocalHub,
    queued: Vec<(u32, Bytes)>,
}

impl HubWire {
    fn deliver(hub: &LocalHub, me: u32, to: u32, payload: Bytes) {
        let cut = hub.inner.cut.lock().expect("hub lock");
        if cut.iter().any(|&(a, b)| (a, b) == (me, to) || (b, a) == (me, to)) {
            return;
        }
        drop(cut);
        if let Some(inbox) = hub.inner.inboxes.read().expect("hub lock").get(&to) {
            inbound(&inbox.0, me, payload);
        }
    }
}

impl Wire for HubWire {
    fn connected(&self, peer: u32) -> Option<bool> {
        let cut = self.hub.inner.cut.lock().expect("hub lock");
        let me = self.me;
        let severed = cut.iter().any(|&(a, b)| (a, b) == (me, peer) || (b, a) == (me, peer));
        let up = self.hub.inner.inboxes.read().expect("hub lock").contains_key(&peer);
        Some(up && !severed)
    }

    fn side_sender(&self) -> crate::transfer::SideSender {
        let (hub, me) = (self.hub.clone(), self.me);
        Arc::new(move |to, payload| HubWire::deliver(&hub, me, to, payload))
    }

    fn send(&mut self, to: u32, payload: Bytes) {
        self.queued.push((to, payload));
    }

    fn flush(&mut self) {
        if self.queued.is_empty() {
            return;
        }
        let cut = self.hub.inner.cut.lock().expect("hub lock").clone();
        let inboxes = self.hub.inner.inboxes.read().expect("hub lock");
        for (to, payload) in self.queued.drain(..) {
            if cut.iter().any(|&(a, b)| (a, b) == (self.me, to) || (b, a) == (self.me, to)) {
                continue;
            }
            if let Some(inbox) = inboxes.get(&to) {
                inbound(&inbox.0, self.me, payload);
            }
        }
    }
}
