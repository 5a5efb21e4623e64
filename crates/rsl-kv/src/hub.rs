//! The hub between one replica's state machine and its client connections: pub/sub
//! deliveries and the wake-ups of blocked pops.
//!
//! The machine executes PUBLISH in slot order on every replica and hands each message to its
//! replica's hub, which passes it to the local subscribers of the channel (and of matching
//! patterns). So every subscriber, whichever replica it is connected to, receives every
//! message once and in the log's order. Likewise, when a write adds elements to a key, the
//! machine tells the hub the key is ready, and the hub wakes the connections blocked on it
//! (BLPOP and friends), which then try their pop again as a replicated write.
//!
//! The hub is not replicated state and never influences it: the machine only calls into it.
//! A subscriber that falls [`limits::SUBSCRIBER_QUEUED_MAX`] messages behind is dropped (its
//! connection closes), as Redis drops a pub/sub client past its output buffer limit.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::{mpsc, Notify};

use crate::glob::glob_match;
use crate::limits;

/// One message as a subscriber receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The pattern that matched, for a pattern subscription.
    pub pattern: Option<Bytes>,
    /// The channel it was published to.
    pub channel: Bytes,
    /// The payload.
    pub payload: Bytes,
}

/// A subscriber's identity in the hub (the connection's client id).
pub type SubscriberId = u64;

/// Shared by one replica's machine and server; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Hub {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    subs: Mutex<Subscriptions>,
    /// How many keys have blocked waiters; the machine skips the lookup when none do.
    waited_keys: AtomicUsize,
    waiters: Mutex<HashMap<Bytes, Vec<Arc<Notify>>>>,
}

#[derive(Debug, Default)]
struct Subscriptions {
    senders: HashMap<SubscriberId, mpsc::Sender<Message>>,
    channels: HashMap<Bytes, BTreeSet<SubscriberId>>,
    patterns: HashMap<Bytes, BTreeSet<SubscriberId>>,
}

impl Subscriptions {
    fn deliver(
        &mut self,
        id: SubscriberId,
        message: Message,
        dropped: &mut Vec<SubscriberId>,
    ) -> bool {
        let Some(sender) = self.senders.get(&id) else { return false };
        match sender.try_send(message) {
            Ok(()) => true,
            Err(_) => {
                dropped.push(id);
                false
            }
        }
    }
}

impl Hub {
    /// An empty hub.
    pub fn new() -> Hub {
        Hub::default()
    }

    /// Registers a subscriber's queue; its messages arrive on the returned receiver.
    pub fn connect(&self, id: SubscriberId) -> mpsc::Receiver<Message> {
        let (tx, rx) = mpsc::channel(limits::SUBSCRIBER_QUEUED_MAX);
        self.subs().senders.insert(id, tx);
        rx
    }

    /// Forgets a subscriber and all its subscriptions.
    pub fn disconnect(&self, id: SubscriberId) {
        let mut guard = self.subs();
        let subs = &mut *guard;
        subs.senders.remove(&id);
        for map in [&mut subs.channels, &mut subs.patterns] {
            map.retain(|_, ids| {
                ids.remove(&id);
                !ids.is_empty()
            });
        }
    }

    fn subs(&self) -> std::sync::MutexGuard<'_, Subscriptions> {
        self.inner.subs.lock().expect("the hub lock is not poisoned")
    }

    /// Subscribes `id` to a channel (`pattern` false) or a pattern.
    pub fn subscribe(&self, id: SubscriberId, name: Bytes, pattern: bool) {
        let mut subs = self.subs();
        let map = if pattern { &mut subs.patterns } else { &mut subs.channels };
        map.entry(name).or_default().insert(id);
    }

    /// Unsubscribes `id` from a channel or a pattern.
    pub fn unsubscribe(&self, id: SubscriberId, name: &[u8], pattern: bool) {
        let mut subs = self.subs();
        let map = if pattern { &mut subs.patterns } else { &mut subs.channels };
        if let Some(ids) = map.get_mut(name) {
            ids.remove(&id);
            if ids.is_empty() {
                map.remove(name);
            }
        }
    }

    /// Delivers a published message to every local subscriber of the channel and of every
    /// matching pattern; returns how many received it (PUBLISH's answer).
    pub fn publish(&self, channel: &Bytes, payload: &Bytes) -> usize {
        let mut subs = self.subs();
        let mut received = 0;
        let mut dropped = Vec::new();
        let direct: Vec<SubscriberId> =
            subs.channels.get(channel).map(|ids| ids.iter().copied().collect()).unwrap_or_default();
        for id in direct {
            let message =
                Message { pattern: None, channel: channel.clone(), payload: payload.clone() };
            received += usize::from(subs.deliver(id, message, &mut dropped));
        }
        let mut matched: Vec<(Bytes, SubscriberId)> = Vec::new();
        for (pattern, ids) in &subs.patterns {
            if glob_match(pattern, channel, false) {
                matched.extend(ids.iter().map(|id| (pattern.clone(), *id)));
            }
        }
        matched.sort();
        for (pattern, id) in matched {
            let message = Message {
                pattern: Some(pattern),
                channel: channel.clone(),
                payload: payload.clone(),
            };
            received += usize::from(subs.deliver(id, message, &mut dropped));
        }
        for id in dropped {
            // Dropping the sender closes the subscriber's queue: its connection ends.
            subs.senders.remove(&id);
        }
        received
    }

    /// The channels with at least one subscriber matching `pattern` (PUBSUB CHANNELS).
    pub fn channels(&self, pattern: Option<&[u8]>) -> Vec<Bytes> {
        let subs = self.subs();
        let mut names: Vec<Bytes> = subs
            .channels
            .keys()
            .filter(|c| pattern.is_none_or(|p| glob_match(p, c, false)))
            .cloned()
            .collect();
        names.sort();
        names
    }

    /// The number of subscribers of `channel` (PUBSUB NUMSUB).
    pub fn numsub(&self, channel: &[u8]) -> usize {
        self.subs().channels.get(channel).map_or(0, BTreeSet::len)
    }

    /// The number of patterns subscribed to (PUBSUB NUMPAT).
    pub fn numpat(&self) -> usize {
        self.subs().patterns.len()
    }

    /// Registers interest in `keys`: the returned waiter is woken once any of them is ready.
    /// Register before trying the pop, so that a push in between is not missed.
    pub fn wait_keys(&self, keys: &[Bytes]) -> KeyWaiter {
        let notify = Arc::new(Notify::new());
        let mut waiters = self.inner.waiters.lock().expect("the hub lock is not poisoned");
        for key in keys {
            let list = waiters.entry(key.clone()).or_default();
            if list.is_empty() {
                self.inner.waited_keys.fetch_add(1, Ordering::SeqCst);
            }
            list.push(Arc::clone(&notify));
        }
        KeyWaiter { hub: self.clone(), keys: keys.to_vec(), notify }
    }

    /// Whether any connection waits for a key (a cheap check for the machine).
    pub fn has_waiters(&self) -> bool {
        self.inner.waited_keys.load(Ordering::SeqCst) > 0
    }

    /// Wakes the connections waiting for `key`.
    pub fn key_ready(&self, key: &[u8]) {
        let waiters = self.inner.waiters.lock().expect("the hub lock is not poisoned");
        if let Some(list) = waiters.get(key) {
            for notify in list {
                notify.notify_one();
            }
        }
    }
}

/// A registration for blocked keys; dropping it unregisters.
#[derive(Debug)]
pub struct KeyWaiter {
    hub: Hub,
    keys: Vec<Bytes>,
    notify: Arc<Notify>,
}

impl KeyWaiter {
    /// Resolves once one of the keys was ready after the registration (at once if one was
    /// already).
    pub async fn ready(&self) {
        self.notify.notified().await;
    }
}

impl Drop for KeyWaiter {
    fn drop(&mut self) {
        let mut waiters = self.hub.inner.waiters.lock().expect("the hub lock is not poisoned");
        for key in &self.keys {
            if let Some(list) = waiters.get_mut(key) {
                list.retain(|n| !Arc::ptr_eq(n, &self.notify));
                if list.is_empty() {
                    waiters.remove(key);
                    self.hub.inner.waited_keys.fetch_sub(1, Ordering::SeqCst);
                }
            }
        }
    }
}
