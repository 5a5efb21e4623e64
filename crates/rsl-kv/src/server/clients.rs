//! The registry of connected clients, for CLIENT LIST, CLIENT INFO and INFO clients: each
//! connection publishes what Redis shows about it (address, name, age, idle time, last
//! command, protocol, subscriptions, transaction and blocked state).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;

use super::Shared;

/// What one connection shows of itself.
#[derive(Debug)]
pub(super) struct ClientInfo {
    pub id: u64,
    addr: String,
    laddr: String,
    created: Instant,
    /// When the last command arrived, in the server clock's milliseconds.
    last_ms: AtomicU64,
    cmd: Mutex<&'static str>,
    pub name: Mutex<Option<Bytes>>,
    pub lib: Mutex<(String, String)>,
    pub resp: AtomicU8,
    pub sub: AtomicUsize,
    pub psub: AtomicUsize,
    /// Commands queued in MULTI, or -1 outside one.
    pub multi: AtomicI64,
    pub blocked: AtomicBool,
}

impl ClientInfo {
    pub(super) fn new(
        id: u64,
        addr: Option<SocketAddr>,
        laddr: Option<SocketAddr>,
        shared: &Shared,
    ) -> ClientInfo {
        let show = |a: Option<SocketAddr>| a.map_or_else(String::new, |a| a.to_string());
        ClientInfo {
            id,
            addr: show(addr),
            laddr: show(laddr),
            created: Instant::now(),
            last_ms: AtomicU64::new((shared.config.clock)()),
            cmd: Mutex::new("NULL"),
            name: Mutex::new(None),
            lib: Mutex::new((String::new(), String::new())),
            resp: AtomicU8::new(2),
            sub: AtomicUsize::new(0),
            psub: AtomicUsize::new(0),
            multi: AtomicI64::new(-1),
            blocked: AtomicBool::new(false),
        }
    }

    /// Records the last command (its name, or "" for an unknown one) and when it came.
    pub(super) fn touch(&self, name: &'static str, now_ms: u64) {
        self.last_ms.store(now_ms, Ordering::Relaxed);
        *self.cmd.lock().expect("the client lock is not poisoned") =
            if name.is_empty() { "NULL" } else { name };
    }

    /// The client's name, if set.
    pub(super) fn name(&self) -> Option<Bytes> {
        self.name.lock().expect("the client lock is not poisoned").clone()
    }

    /// The CLIENT LIST line, in Redis 7.0's fields (the buffer sizes are not tracked: 0).
    pub(super) fn line(&self, shared: &Shared) -> String {
        let now_ms = (shared.config.clock)();
        let idle = now_ms.saturating_sub(self.last_ms.load(Ordering::Relaxed)) / 1000;
        let name =
            self.name().map(|n| String::from_utf8_lossy(&n).into_owned()).unwrap_or_default();
        let (sub, psub) = (self.sub.load(Ordering::Relaxed), self.psub.load(Ordering::Relaxed));
        let multi = self.multi.load(Ordering::Relaxed);
        let mut flags = String::new();
        if self.blocked.load(Ordering::Relaxed) {
            flags.push('b');
        }
        if sub + psub > 0 {
            flags.push('P');
        }
        if multi >= 0 {
            flags.push('x');
        }
        if flags.is_empty() {
            flags.push('N');
        }
        let cmd = *self.cmd.lock().expect("the client lock is not poisoned");
        format!(
            "id={} addr={} laddr={} fd=-1 name={name} age={} idle={idle} flags={flags} db=0 sub={sub} psub={psub} ssub=0 multi={multi} qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem=0 tot-mem=0 events=r cmd={cmd} user=default redir=-1 resp={}",
            self.id,
            self.addr,
            self.laddr,
            self.created.elapsed().as_secs(),
            self.resp.load(Ordering::Relaxed),
        )
    }
}

/// Every connected client, by id.
#[derive(Debug, Default)]
pub(super) struct Registry {
    clients: Mutex<BTreeMap<u64, Arc<ClientInfo>>>,
}

impl Registry {
    pub(super) fn insert(&self, info: Arc<ClientInfo>) {
        self.lock().insert(info.id, info);
    }

    pub(super) fn remove(&self, id: u64) {
        self.lock().remove(&id);
    }

    /// Every client, in id order.
    pub(super) fn all(&self) -> Vec<Arc<ClientInfo>> {
        self.lock().values().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Arc<ClientInfo>>> {
        self.clients.lock().expect("the registry lock is not poisoned")
    }
}
