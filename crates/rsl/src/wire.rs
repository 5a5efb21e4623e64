//! How the consensus thread reaches its peers: one small trait, so that TCP (with TLS), an
//! in-process hub (tests, the embedded benchmark) and, one day, RDMA sit behind the same
//! interface. Sends never block: a wire that cannot take a message drops it (Paxos
//! retransmits what matters) and counts the drop.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;

use crate::peer_call::Inbox;

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
    /// The transport as peer calls (`peer_call.rs`) use it from any thread: sends that report
    /// refusals, and whether a peer is connected.
    fn peer_link(&self) -> Arc<dyn rsl_net::Transport>;
}

/// An in-process network between the replicas of one process, with switches to cut links.
#[derive(Debug, Default, Clone)]
pub struct LocalHub {
    inner: Arc<HubInner>,
}

#[derive(Debug, Default)]
struct HubInner {
    inboxes: RwLock<HashMap<u32, Inbox>>,
    /// Every replica ever registered (a stopped one is still a peer, only unreachable).
    known: Mutex<std::collections::BTreeSet<u32>>,
    cut: Mutex<Vec<(u32, u32)>>,
}

impl LocalHub {
    pub fn new() -> LocalHub {
        LocalHub::default()
    }

    pub(crate) fn register(&self, id: u32, inbox: Inbox) {
        self.inner.inboxes.write().expect("hub lock").insert(id, inbox);
        self.inner.known.lock().expect("hub lock").insert(id);
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

    /// Whether `peer` is registered and the link between it and `me` is not cut.
    fn link_up(&self, me: u32, peer: u32) -> bool {
        let cut = self.inner.cut.lock().expect("hub lock");
        let severed = cut.iter().any(|&(a, b)| (a, b) == (me, peer) || (b, a) == (me, peer));
        let up = self.inner.inboxes.read().expect("hub lock").contains_key(&peer);
        up && !severed
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
    fn deliver(hub: &LocalHub, me: u32, to: u32, payload: Bytes) -> bool {
        let cut = hub.inner.cut.lock().expect("hub lock");
        if cut.iter().any(|&(a, b)| (a, b) == (me, to) || (b, a) == (me, to)) {
            return false;
        }
        drop(cut);
        let inbox = hub.inner.inboxes.read().expect("hub lock").get(&to).cloned();
        // Delivered outside the lock: a peer call's handler may answer at once, through it.
        inbox.is_some_and(|inbox| inbox.deliver(me, payload))
    }
}

/// One replica's end of a [`LocalHub`] as peer calls use it (`Wire::peer_link`).
#[derive(Debug)]
struct HubLink {
    me: u32,
    hub: LocalHub,
}

impl rsl_net::Transport for HubLink {
    fn id(&self) -> u32 {
        self.me
    }

    fn send(&self, to: u32, payload: Bytes) -> Result<(), rsl_net::SendError> {
        if to == self.me {
            return Err(rsl_net::SendError::UnknownPeer(to));
        }
        // A cut link loses the payload, as a broken connection would.
        HubWire::deliver(&self.hub, self.me, to, payload);
        Ok(())
    }

    fn peer_status(&self, peer: u32) -> Option<rsl_net::PeerStatus> {
        if peer == self.me || !self.hub.inner.known.lock().expect("hub lock").contains(&peer) {
            return None;
        }
        let connected = self.hub.link_up(self.me, peer);
        Some(rsl_net::PeerStatus { connected, last_contact_ago: None, queued_frames: 0 })
    }
}

impl Wire for HubWire {
    fn connected(&self, peer: u32) -> Option<bool> {
        Some(self.hub.link_up(self.me, peer))
    }

    fn peer_link(&self) -> Arc<dyn rsl_net::Transport> {
        Arc::new(HubLink { me: self.me, hub: self.hub.clone() })
    }

    fn side_sender(&self) -> crate::transfer::SideSender {
        let (hub, me) = (self.hub.clone(), self.me);
        Arc::new(move |to, payload| {
            HubWire::deliver(&hub, me, to, payload);
        })
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
                inbox.deliver(self.me, payload);
            }
        }
    }
}
