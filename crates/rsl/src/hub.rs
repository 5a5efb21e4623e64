//! An in-process network between the replicas of one process ([`LocalHub`]), with switches to
//! cut links: the transport of [`crate::LocalCluster`]. Each replica's end implements the same
//! [`rsl_net::Transport`] as TCP does, so the runtime has one transport interface; a send
//! never blocks (a full inbox drops the payload, as a full TCP queue does).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;
use rsl_net::{PeerStatus, SendError, Transport};

use crate::peer_call::Inbox;

/// An in-process network between the replicas of one process, with switches to cut links.
/// Cloning it gives another handle to the same network.
#[derive(Debug, Default, Clone)]
pub struct LocalHub {
    inner: Arc<HubInner>,
}

#[derive(Debug, Default)]
struct HubInner {
    inboxes: RwLock<HashMap<u32, Inbox>>,
    /// Every replica ever registered: a stopped one is still a peer, only unreachable.
    known: Mutex<std::collections::BTreeSet<u32>>,
    cut: Mutex<Vec<(u32, u32)>>,
}

impl LocalHub {
    /// A network with no replica on it yet.
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

    /// Replica `me`'s end of the network.
    pub(crate) fn end(&self, me: u32) -> Arc<dyn Transport> {
        Arc::new(HubEnd { me, hub: self.clone() })
    }

    fn severed(&self, a: u32, b: u32) -> bool {
        let cut = self.inner.cut.lock().expect("hub lock");
        cut.iter().any(|&(x, y)| (x, y) == (a, b) || (y, x) == (a, b))
    }
}

/// One replica's end of a [`LocalHub`].
#[derive(Debug)]
struct HubEnd {
    me: u32,
    hub: LocalHub,
}

impl HubEnd {
    /// Delivers a payload of `bytes` to `to` with `deliver`, unless it is too large or the
    /// link is cut.
    fn deliver(
        &self,
        to: u32,
        bytes: usize,
        deliver: impl FnOnce(&Inbox, u32) -> bool,
    ) -> Result<(), SendError> {
        // The same limit as TCP's frames, so that LocalCluster tests what a deployment does.
        if bytes > rsl_net::limits::FRAME_PAYLOAD_BYTES_MAX {
            return Err(SendError::PayloadTooLarge { bytes });
        }
        if self.hub.severed(self.me, to) {
            // A cut link loses what is sent over it, as a partition does.
            return Ok(());
        }
        // Delivered outside the lock: a peer call's handler may answer at once, through it.
        let inbox = self.hub.inner.inboxes.read().expect("hub lock").get(&to).cloned();
        match inbox {
            Some(inbox) if deliver(&inbox, self.me) => Ok(()),
            Some(_) => Err(SendError::QueueFull(to)),
            None => Err(SendError::UnknownPeer(to)),
        }
    }
}

impl Transport for HubEnd {
    fn id(&self) -> u32 {
        self.me
    }

    fn send(&self, to: u32, payload: Bytes) -> Result<(), SendError> {
        self.deliver(to, payload.len(), |inbox, me| inbox.deliver(me, payload))
    }

    /// The shared tail is not copied for each receiver, as the default (`head` and `tail`
    /// concatenated) would: a consensus message reaches the receiver in its two pieces, the
    /// tail in one buffer that every receiver shares (`Inbox::deliver_shared`).
    fn send_shared(
        &self,
        to: u32,
        head: Bytes,
        tail: Arc<rsl_net::SharedPayload>,
    ) -> Result<(), SendError> {
        let bytes = head.len() + tail.len();
        self.deliver(to, bytes, |inbox, me| inbox.deliver_shared(me, head, &tail))
    }

    fn peer_status(&self, peer: u32) -> Option<PeerStatus> {
        if !self.hub.inner.known.lock().expect("hub lock").contains(&peer) {
            return None;
        }
        let up = self.hub.inner.inboxes.read().expect("hub lock").contains_key(&peer);
        Some(PeerStatus {
            connected: up && !self.hub.severed(self.me, peer),
            last_contact_ago: None,
            queued_frames: 0,
        })
    }
}
