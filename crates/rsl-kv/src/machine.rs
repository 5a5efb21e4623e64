//! The key-value state machine that every replica runs.
//!
//! [`KvMachine`] holds the keyspace ([`Db`]: strings, hashes, lists, sets, sorted sets, with
//! expiry) and implements [`rsl::StateMachine`]: it executes [`Request`]s in slot order and
//! answers each with the reply bytes, in the protocol the request names, that the server
//! writes back to the client. The commands themselves are in [`crate::commands`].
//!
//! Determinism: execution depends only on the requests, never on the local clock, on hash
//! order or on randomness. Time comes from the requests: every write carries its proposer's
//! wall-clock stamp, and the machine's "now" is the largest stamp executed so far (so it never
//! goes back, even if proposers' clocks disagree). A key with deadline `at` is gone once
//! `now > at` (Redis's rule). Expired keys are removed eagerly, in the step that advances
//! `now`, so after each write no stored key is expired. A read carries its server's clock too
//! and sees the keyspace at `max(now, stamp)`, so a key is never returned after its deadline;
//! a read changes nothing. Random choices draw from a seed kept in the replicated state.
//!
//! Requests in format version 1, written before requests carried the command itself, are
//! still executed as that version did ([`crate::request_v1`]), so that a replica upgraded in
//! place replays its own log.
//!
//! A transaction (`MULTI ... EXEC`) is one request: the machine checks the watched keys'
//! versions, then runs every queued command back to back, so no other request interleaves
//! and every replica aborts or commits it alike.
//!
//! The maps are persistent (`imbl`), so [`StateMachine::snapshot`] is an O(1) clone and the
//! checkpoint ([`crate::checkpoint`]) is written from it on another thread while execution
//! continues.
//!
//! The keyspace sits behind a lock that the machine takes for each request it executes, so
//! that the server can serve a plain read on the connection's own task when the replica
//! allows it ([`KvReader`], `rsl::Node::read_here`), without a message to the executor.

use std::io::{self, Read};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use bytes::Bytes;
use rsl::{Snapshot, StateMachine};

use crate::checkpoint::{read_checkpoint, CheckpointError, KvSnapshot};
use crate::commands::{self, scripting::Scripting, Ctx, View};
use crate::db::Db;
use crate::hub::Hub;
use crate::request::{ReadOp, Request, Watch, WriteOp};
use crate::request_v1;
use crate::resp::{Proto, Reply};

/// The replicated key-value state machine.
#[derive(Debug, Default)]
pub struct KvMachine {
    /// The keyspace, shared with the [`KvReader`]s: written under the lock, one request at
    /// a time, so that a reader sees every request executed before it took the lock.
    db: Arc<RwLock<Db>>,
    /// The last slot executed, to check the engine's ordering contract.
    slot_last: u64,
    /// Where published messages and ready keys go (this replica's server).
    hub: Hub,
    /// The Lua interpreter, made on the first script (not replicated state).
    scripts: Scripting,
}

impl KvMachine {
    /// An empty machine whose clock is at 0, with a hub of its own.
    pub fn new() -> KvMachine {
        KvMachine::default()
    }

    /// An empty machine that delivers pub/sub messages and key wake-ups to `hub`.
    pub fn with_hub(hub: Hub) -> KvMachine {
        KvMachine { hub, ..KvMachine::default() }
    }

    /// The hub this machine delivers to.
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// A handle on this machine's keyspace, for reads served outside the executor.
    pub fn reader(&self) -> KvReader {
        KvReader { db: Arc::clone(&self.db) }
    }

    /// The keyspace, to read. A panic while it was written (the replica then stops) leaves
    /// the lock poisoned; the machine's own calls go on regardless, as before the lock.
    fn db(&self) -> RwLockReadGuard<'_, Db> {
        self.db.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The keyspace, to write.
    fn db_mut(&self) -> RwLockWriteGuard<'_, Db> {
        self.db.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// The machine's clock: the largest write stamp executed so far, in Unix milliseconds.
    pub fn now_ms(&self) -> u64 {
        self.db().now_ms
    }

    /// The number of stored keys (none of them expired as of [`KvMachine::now_ms`]).
    pub fn len(&self) -> usize {
        self.db().keys.len()
    }

    /// The number of stored keys that have an expiry.
    pub fn expiring_len(&self) -> usize {
        self.db().expiries.len()
    }

    /// Whether no key is stored.
    pub fn is_empty(&self) -> bool {
        self.db().keys.is_empty()
    }

    /// The number of write requests executed (WATCH's modification count).
    pub fn mods(&self) -> u64 {
        self.db().mods
    }

    /// Executes a decoded request; a read is answered as of this point in the slot order.
    pub fn apply(&mut self, request: &Request) -> (Reply, Proto) {
        match request {
            Request::Write { stamp_ms, op } => {
                let KvMachine { db, hub, scripts, .. } = self;
                let mut db = db.write().unwrap_or_else(PoisonError::into_inner);
                db.begin_write(*stamp_ms);
                let reply = apply_write(&mut db, hub, scripts, op);
                debug_assert!(db.expiries.get_min().is_none_or(|(at, _)| *at >= db.now_ms));
                reply
            }
            Request::Read(op) => (self.query(op), op.proto),
        }
    }

    /// Executes a request in format version 1 (one written before the upgrade to version 2,
    /// replayed from the log) as version 1 did; see [`crate::request_v1`].
    pub fn apply_v1(&mut self, request: &request_v1::Request) -> Reply {
        match request {
            request_v1::Request::Write { stamp_ms, op } => {
                let mut db = self.db_mut();
                db.begin_write(*stamp_ms);
                request_v1::apply_write(&mut db, op)
            }
            request_v1::Request::Read(op) => request_v1::query(&self.db(), op),
        }
    }

    /// Answers a read as of `max(now, the read's stamp)`.
    pub fn query(&self, op: &ReadOp) -> Reply {
        query(&self.db(), op)
    }

    /// A copy of the keyspace, for the crate's tests.
    #[cfg(test)]
    pub(crate) fn db_copy(&self) -> Db {
        self.db().clone()
    }

    /// Checks the state's invariants; panics if one is broken. O(n): for tests.
    pub fn check_invariants(&self) {
        self.db().check_invariants();
    }
}

/// Answers a read as of `max(now, the read's stamp)`.
fn query(db: &Db, op: &ReadOp) -> Reply {
    let view = View { db, now_ms: db.now_ms.max(op.stamp_ms), proto: op.proto };
    commands::query(&view, &op.args)
}

/// Serves an encoded read request against `db`: the machine's [`StateMachine::read`], and a
/// [`KvReader`]'s.
fn read_request(db: &Db, request: &[u8]) -> Bytes {
    if request.first() == Some(&request_v1::FORMAT_VERSION) {
        return match request_v1::Request::decode(request) {
            Ok(request_v1::Request::Read(op)) => request_v1::query(db, &op).to_bytes(),
            Ok(request_v1::Request::Write { .. }) => {
                Reply::error("ERR a write request on the read path").to_bytes()
            }
            Err(e) => Reply::error(format!("ERR malformed request: {e}")).to_bytes(),
        };
    }
    match Request::decode(request) {
        Ok(Request::Read(op)) => query(db, &op).to_bytes_in(op.proto),
        Ok(Request::Write { .. }) => {
            Reply::error("ERR a write request on the read path").to_bytes()
        }
        Err(e) => Reply::error(format!("ERR malformed request: {e}")).to_bytes(),
    }
}

/// A handle on a [`KvMachine`]'s keyspace ([`KvMachine::reader`]): serves encoded read
/// requests as the machine's [`StateMachine::read`] does, on the caller's thread, against the
/// keyspace as it stands (every request the machine has finished executing, no part of one).
/// The caller decides that the state is fresh enough for the read (rsl-kv's server asks
/// `rsl::Node::read_here`).
#[derive(Debug, Clone)]
pub struct KvReader {
    db: Arc<RwLock<Db>>,
}

impl KvReader {
    /// Serves `requests` in order under one hold of the keyspace's lock, one reply each, if
    /// `fresh()`, asked while the lock is held, says the keyspace holds what they must see
    /// (a slot published as executed after its requests released the lock is in it). `None`,
    /// with nothing served, if the machine is executing a request now (the caller's thread
    /// never waits for it: the reads take the executor's path instead), if a panic broke off
    /// a write to the keyspace (its state may be half changed; the replica has stopped), or
    /// if `fresh()` said no.
    pub fn read_all_if(
        &self,
        requests: &[Bytes],
        fresh: impl FnOnce() -> bool,
    ) -> Option<Vec<Bytes>> {
        let db = self.db.try_read().ok()?;
        if !fresh() {
            return None;
        }
        Some(requests.iter().map(|request| read_request(&db, request)).collect())
    }
}

/// Executes a write's commands (a transaction's as one, if its watched keys are unchanged).
fn apply_write(db: &mut Db, hub: &Hub, scripts: &mut Scripting, op: &WriteOp) -> (Reply, Proto) {
    let (proto, commands, watch) = match op {
        WriteOp::Tick => return (Reply::ok(), Proto::Resp2),
        WriteOp::Command { proto, args } => (*proto, std::slice::from_ref(args), None),
        WriteOp::Exec { proto, watch, commands } => (*proto, &commands[..], Some(watch)),
    };
    let mut ctx = Ctx { db, proto, hub, scripts, in_script: false };
    let Some(watch) = watch else { return (commands::execute(&mut ctx, &commands[0]), proto) };
    if watch.as_ref().is_some_and(|w| watched_changed(ctx.db, w)) {
        return (Reply::NullArray, proto);
    }
    let replies = commands.iter().map(|args| commands::execute(&mut ctx, args)).collect();
    (Reply::Array(replies), proto)
}

fn watched_changed(db: &Db, watch: &Watch) -> bool {
    watch.keys.iter().any(|key| db.changed_since(key, watch.since))
}

impl StateMachine for KvMachine {
    fn execute(&mut self, slot: u64, request: &[u8]) -> Bytes {
        assert!(slot >= self.slot_last, "slots execute in order: {slot} after {}", self.slot_last);
        self.slot_last = slot;
        if request.first() == Some(&request_v1::FORMAT_VERSION) {
            return match request_v1::Request::decode(request) {
                Ok(request) => self.apply_v1(&request).to_bytes(),
                Err(e) => Reply::error(format!("ERR malformed request: {e}")).to_bytes(),
            };
        }
        match Request::decode(request) {
            Ok(request) => {
                let (reply, proto) = self.apply(&request);
                reply.to_bytes_in(proto)
            }
            Err(e) => Reply::error(format!("ERR malformed request: {e}")).to_bytes(),
        }
    }

    fn read(&self, request: &[u8]) -> Bytes {
        read_request(&self.db(), request)
    }

    fn snapshot(&self) -> Box<dyn Snapshot> {
        Box::new(KvSnapshot { db: self.db().clone() })
    }

    fn load_checkpoint(&mut self, input: &mut dyn Read) -> io::Result<()> {
        let db = read_checkpoint(input).map_err(|e| match e {
            CheckpointError::Io(io) => io,
            other => io::Error::new(io::ErrorKind::InvalidData, other),
        })?;
        *self.db_mut() = db;
        self.slot_last = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use rsl::StateMachine;

    use super::KvMachine;
    use crate::request::Request;
    use crate::resp::{Proto, Reply};

    fn args(words: &[&str]) -> Vec<Bytes> {
        words.iter().map(|w| Bytes::copy_from_slice(w.as_bytes())).collect()
    }

    /// A reader serves what the machine executed, only if `fresh` says so, and never waits
    /// for the machine: while a request holds the keyspace (the executor mid-request) it
    /// declines at once, without asking `fresh`, and the caller takes the executor's path.
    #[test]
    fn a_reader_serves_what_was_executed_and_never_waits_for_the_machine() {
        let mut machine = KvMachine::new();
        let set = Request::command(1, Proto::Resp2, args(&["SET", "k", "v"])).encode();
        assert_eq!(machine.execute(1, &set), Reply::ok().to_bytes());
        let reader = machine.reader();
        let get = [Request::read(1, Proto::Resp2, args(&["GET", "k"])).encode()];
        let value = Reply::Bulk(Bytes::from_static(b"v")).to_bytes();
        assert_eq!(reader.read_all_if(&get, || true), Some(vec![value]));
        assert_eq!(reader.read_all_if(&get, || false), None, "not fresh: nothing served");

        let executing = machine.db_mut();
        // On another thread, so that a reader that waits for the lock fails the test (at the
        // deadline) instead of hanging it.
        let (tx, rx) = std::sync::mpsc::channel();
        let (r, g) = (reader.clone(), get.clone());
        let waiter = std::thread::spawn(move || {
            let mut asked = false;
            let served = r.read_all_if(&g, || {
                asked = true;
                true
            });
            let _ = tx.send((served, asked));
        });
        let answer = rx.recv_timeout(std::time::Duration::from_secs(10));
        drop(executing);
        waiter.join().unwrap();
        let (served, asked) = answer.expect("the reader waited for the machine's request");
        assert_eq!(served, None, "served while the machine held the keyspace");
        assert!(!asked, "freshness asked without the lock");
        assert!(reader.read_all_if(&get, || true).is_some());
    }
}
