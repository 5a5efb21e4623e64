//! The clients: tasks in the root namespace, each with one connection to one replica and one
//! operation outstanding at a time, recording every operation's invocation before it is sent
//! and its completion when the reply comes.
//!
//! Client `c` connects to replica `c mod n + 1` (so the load is spread over every replica), or
//! to the next one that accepts a connection while its own is down. Small operations go to the
//! list keys of the current **generation**: every [`WorkloadOptions::ops_per_generation`]
//! operations the clients move on to fresh keys, which keeps each key's history short enough
//! for the linearizability search however long the run. The **big client** writes the
//! largest values on request from the nemesis (see [`BigJob`]).
//!
//! An error reply is a definite failure only when rsl-kv documents that the request had no
//! effect ([`definite_failure`]); any other error, a timeout or a broken connection leaves
//! the outcome unknown. The live plants (`--plant`) make client 0 lie, to show that the
//! checkers catch a client that reports a stale read or a write it never sent.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use rsl_kv::client::{describe, Client};
use rsl_kv::resp::Reply;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::cluster::Clock;
use crate::history::{
    big_value, list_element, parse_big, parse_list, sight, token, KeyClass, Kind, Outcome, Record,
    Sightings, Value, ELEMENT_BYTES, PAD_BYTE,
};

/// How long a client waits to connect before it tries another replica.
pub const CONNECT_WAIT: Duration = Duration::from_secs(1);

/// The pause after every replica refused a connection.
pub const RECONNECT_PAUSE: Duration = Duration::from_millis(100);

/// How long a client stays connected to another replica than its own before it tries its
/// own again.
pub const HOME_AGAIN_AFTER: Duration = Duration::from_secs(2);

/// The pause after an error reply, so that a replica answering every request with an error
/// at once does not fill the history with millions of them.
pub const ERROR_PAUSE: Duration = Duration::from_millis(50);

/// A lie a client tells, to prove the checkers catch it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LivePlant {
    /// Client 0 reports, for a key it wrote since, the value it read before its write.
    StaleRead,
    /// Client 0 reports every 20th APPEND as acknowledged without sending it.
    PhantomAck,
}

/// How the clients behave.
#[derive(Debug, Clone)]
pub struct WorkloadOptions {
    /// Concurrent small-operation clients.
    pub clients: u32,
    /// List keys in use at once.
    pub keys_per_generation: u32,
    /// Operations before the clients move on to fresh keys.
    pub ops_per_generation: u64,
    /// How long a small operation may take before its outcome is unknown.
    pub op_timeout: Duration,
    /// How long a big operation may take.
    pub big_timeout: Duration,
    /// Percent of reads, appends and sets (the rest).
    pub read_percent: u32,
    /// Percent of appends.
    pub append_percent: u32,
    /// Operations per second the clients start, in all, at most (0: as fast as they can).
    pub rate: u32,
    /// The seed of the clients' choices.
    pub seed: u64,
    /// A lie to plant, if any.
    pub plant: Option<LivePlant>,
}

/// One operation of a big job.
#[derive(Debug, Clone)]
pub struct BigOp {
    /// What to do.
    pub kind: Kind,
    /// The value's size (writes).
    pub bytes: usize,
    /// The replica to send it to; `None`: the primary, as the replicas say when it starts.
    pub replica: Option<u32>,
    /// Only if the previous write of the job was acknowledged (the probe past the limit
    /// must find the value at exactly the limit).
    pub after_ack: bool,
}

/// A sequence of big operations on one fresh big key.
#[derive(Debug, Clone)]
pub struct BigJob {
    /// The key (`b<n>`).
    pub key: String,
    /// The operations, in order.
    pub ops: Vec<BigOp>,
}

/// The shared history, appended to by every client, and every token any read returned.
#[derive(Debug, Clone, Default)]
pub struct Recorder {
    records: Arc<Mutex<Vec<Record>>>,
    sightings: Arc<Mutex<Sightings>>,
}

impl Recorder {
    /// Records an invocation; returns its index.
    pub fn invoke(&self, record: Record) -> usize {
        let mut records = self.records.lock().expect("the history lock is not poisoned");
        records.push(record);
        records.len() - 1
    }

    /// Records the completion of operation `index`.
    pub fn complete(&self, index: usize, ret_us: u64, outcome: Outcome) {
        let mut records = self.records.lock().expect("the history lock is not poisoned");
        records[index].ret_us = Some(ret_us);
        records[index].outcome = outcome;
    }

    /// Notes the tokens a read returned at `ret_us`.
    pub fn observe(&self, tokens: &[u64], ret_us: u64) {
        let mut sightings = self.sightings.lock().expect("the token lock is not poisoned");
        sight(&mut sightings, tokens, ret_us);
    }

    /// Every token some read returned, with its first sighting.
    pub fn sightings(&self) -> Sightings {
        self.sightings.lock().expect("the token lock is not poisoned").clone()
    }

    /// A copy of the history so far.
    pub fn snapshot(&self) -> Vec<Record> {
        self.records.lock().expect("the history lock is not poisoned").clone()
    }

    /// How many operations were invoked.
    pub fn len(&self) -> usize {
        self.records.lock().expect("the history lock is not poisoned").len()
    }

    /// Whether nothing was invoked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Whether an error reply means, by rsl-kv's documented contract, that the request had no
/// effect. Anything that says the outcome is unknown, and any error not listed, is unknown.
/// A full disk's refusal is one (crates/rsl-kv/README.md: the primary refuses the write at
/// its door, `rsl::ReplicateError::DiskFull`); counted as unknown until 2026-12-07, it gave a
/// client that retried at once hundreds of unknown writes on one key, and the search over
/// them ran out of memory (test.sh's nemesis on `39eb4fb`: 449 on one key, 24 GB).
pub fn definite_failure(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    if t.contains("unknown") {
        return false;
    }
    t.starts_with("tryagain not primary")
        || t.starts_with("err overloaded")
        || t.starts_with("err disk full on replica")
        || t.contains("too large")
        || t.contains("exceeds maximum")
        || t.starts_with("err protocol error")
        || t.starts_with("noauth")
}

/// The outcome of `kind` on `key` given the reply (or the error getting it).
pub fn classify(kind: Kind, key: &str, reply: &io::Result<Reply>) -> Outcome {
    let reply = match reply {
        Err(e) => return Outcome::Unknown(e.to_string()),
        Ok(Reply::Error(text)) => {
            let text = String::from_utf8_lossy(text).into_owned();
            return if definite_failure(&text) {
                Outcome::Failed(text)
            } else {
                Outcome::Unknown(text)
            };
        }
        Ok(reply) => reply,
    };
    match (kind, reply) {
        (Kind::Set, Reply::Simple(s)) if &s[..] == b"OK" => Outcome::Ok,
        (Kind::Append, Reply::Integer(n)) if *n >= 0 => Outcome::Len(*n as u64),
        (Kind::Get, Reply::Null) => Outcome::Value(Value::EMPTY),
        (Kind::Get, Reply::Bulk(bytes)) => match KeyClass::of(key) {
            KeyClass::List => match parse_list(bytes) {
                Ok(tokens) => Outcome::Value(Value::of_list(&tokens)),
                Err(why) => Outcome::Corrupt(why),
            },
            KeyClass::Big => match parse_big(bytes) {
                Ok((token, size)) => Outcome::Value(Value::of_big(token, size)),
                Err(why) => Outcome::Corrupt(why),
            },
        },
        (kind, other) => {
            Outcome::Unknown(format!("unexpected reply to {}: {}", kind.word(), describe(other)))
        }
    }
}

/// The tokens a successful GET reply shows (for the checker's pruning of unknown writes).
pub fn observed_tokens(key: &str, reply: &io::Result<Reply>) -> Vec<u64> {
    match (KeyClass::of(key), reply) {
        (KeyClass::List, Ok(Reply::Bulk(bytes))) => parse_list(bytes).unwrap_or_default(),
        (KeyClass::Big, Ok(Reply::Bulk(bytes))) => {
            parse_big(bytes).map(|(t, _)| vec![t]).unwrap_or_default()
        }
        _ => Vec::new(),
    }
}

struct Shared {
    options: WorkloadOptions,
    addrs: Vec<SocketAddr>,
    recorder: Recorder,
    clock: Clock,
    ops: AtomicU64,
}

/// The running clients.
#[derive(Debug)]
pub struct Workload {
    recorder: Recorder,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
    big: mpsc::UnboundedSender<BigJob>,
}

impl Workload {
    /// Starts the clients against `addrs` (replica `i + 1` at `addrs[i]`).
    pub fn start(options: WorkloadOptions, addrs: Vec<SocketAddr>, clock: Clock) -> Workload {
        let recorder = Recorder::default();
        let (stop, stopped) = watch::channel(false);
        let shared = Arc::new(Shared {
            options: options.clone(),
            addrs,
            recorder: recorder.clone(),
            clock,
            ops: AtomicU64::new(0),
        });
        let mut tasks = JoinSet::new();
        for client in 0..options.clients {
            tasks.spawn(run_client(Arc::clone(&shared), client, stopped.clone()));
        }
        let (big, jobs) = mpsc::unbounded_channel();
        tasks.spawn(run_big_client(Arc::clone(&shared), options.clients, jobs, stopped));
        Workload { recorder, stop, tasks, big }
    }

    /// The history being recorded.
    pub fn recorder(&self) -> &Recorder {
        &self.recorder
    }

    /// Hands a job to the big client.
    pub fn big_job(&self, job: BigJob) {
        let _ = self.big.send(job);
    }

    /// Stops the clients: each finishes its operation in flight, for at most `drain`; the
    /// ones still waiting then are abandoned with an unknown outcome. Returns the history.
    pub async fn stop(mut self, drain: Duration) -> Vec<Record> {
        let _ = self.stop.send(true);
        let _ =
            tokio::time::timeout(drain, async { while self.tasks.join_next().await.is_some() {} })
                .await;
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
        self.recorder.snapshot()
    }
}

/// Connects within [`CONNECT_WAIT`]; every call on the connection is bounded by `timeout`.
async fn connect_one(addr: SocketAddr, timeout: Duration) -> io::Result<Client> {
    match tokio::time::timeout(CONNECT_WAIT, Client::connect(addr, timeout)).await {
        Ok(connected) => connected,
        Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "connecting timed out")),
    }
}

async fn connect(addrs: &[SocketAddr], home: usize, timeout: Duration) -> Option<(Client, u32)> {
    for i in 0..addrs.len() {
        let at = (home + i) % addrs.len();
        if let Ok(client) = connect_one(addrs[at], timeout).await {
            return Some((client, at as u32 + 1));
        }
    }
    None
}

/// What client 0 remembers to tell its stale-read lie.
#[derive(Default)]
struct Liar {
    /// Per key: the first value it read, and whether it wrote since.
    first_read: HashMap<String, (Outcome, bool)>,
    appends: u64,
}

async fn run_client(shared: Arc<Shared>, client: u32, stop: watch::Receiver<bool>) {
    let options = &shared.options;
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(options.seed ^ (u64::from(client) << 32));
    let home = client as usize % shared.addrs.len();
    let mut connection: Option<(Client, u32)> = None;
    let mut seq = 0u64;
    let mut liar = (client == 0).then(Liar::default).filter(|_| options.plant.is_some());
    // Each client starts one operation per `pace` at most, so that all start `rate` a second.
    let pace = (options.rate > 0)
        .then(|| Duration::from_secs_f64(f64::from(options.clients) / f64::from(options.rate)));
    let mut next = tokio::time::Instant::now();
    let mut connected_at = next;
    while !*stop.borrow() {
        if let Some(pace) = pace {
            tokio::time::sleep_until(next).await;
            next = next.max(tokio::time::Instant::now() - pace) + pace;
        }
        // A client that had to go elsewhere goes home again after a while, so that the
        // clients stay spread over the replicas after a replica comes back.
        let away = connection.as_ref().is_some_and(|(_, r)| *r as usize != home + 1);
        if away && connected_at.elapsed() >= HOME_AGAIN_AFTER {
            connection = None;
        }
        if connection.is_none() {
            connection = connect(&shared.addrs, home, options.op_timeout).await;
            connected_at = tokio::time::Instant::now();
            if connection.is_none() {
                tokio::time::sleep(RECONNECT_PAUSE).await;
                continue;
            }
        }
        let (conn, replica) = connection.as_mut().expect("connected");
        let n = shared.ops.fetch_add(1, Ordering::Relaxed);
        let generation = n / options.ops_per_generation;
        let key = format!("n{generation}.{}", rng.random_range(0..options.keys_per_generation));
        let roll = rng.random_range(0..100);
        let kind = if roll < options.read_percent {
            Kind::Get
        } else if roll < options.read_percent + options.append_percent {
            Kind::Append
        } else {
            Kind::Set
        };
        let tok = if kind == Kind::Get { 0 } else { token(client, seq) };
        seq += u64::from(kind.is_write());
        let (call_us, replica) = (shared.clock.now_us(), *replica);
        let mut record = Record {
            client,
            replica,
            kind,
            key: key.clone(),
            token: tok,
            bytes: if kind == Kind::Get { 0 } else { ELEMENT_BYTES as u64 },
            call_us,
            ret_us: None,
            outcome: Outcome::Unknown("pending when the run ended".into()),
        };
        if let Some(outcome) = liar.as_mut().and_then(|l| l.phantom(options.plant, kind)) {
            record.ret_us = Some(shared.clock.now_us());
            record.outcome = outcome;
            shared.recorder.invoke(record);
            continue;
        }
        let index = shared.recorder.invoke(record);
        let value = list_element(tok);
        let reply = match kind {
            Kind::Get => conn.cmd(&[&b"GET"[..], key.as_bytes()]).await,
            Kind::Set => conn.cmd(&[&b"SET"[..], key.as_bytes(), &value]).await,
            Kind::Append => conn.cmd(&[&b"APPEND"[..], key.as_bytes(), &value]).await,
        };
        let ret_us = shared.clock.now_us();
        let mut outcome = classify(kind, &key, &reply);
        if kind == Kind::Get {
            shared.recorder.observe(&observed_tokens(&key, &reply), ret_us);
        }
        if let Some(l) = liar.as_mut() {
            outcome = l.stale(options.plant, kind, &key, outcome);
        }
        let failed = !outcome.is_ok();
        shared.recorder.complete(index, ret_us, outcome);
        if reply.is_err() {
            connection = None;
        }
        if failed {
            tokio::time::sleep(ERROR_PAUSE).await;
        }
    }
}

impl Liar {
    /// With `PhantomAck`, every 20th APPEND is reported acknowledged and never sent.
    fn phantom(&mut self, plant: Option<LivePlant>, kind: Kind) -> Option<Outcome> {
        if plant != Some(LivePlant::PhantomAck) || kind != Kind::Append {
            return None;
        }
        self.appends += 1;
        self.appends.is_multiple_of(20).then_some(Outcome::Len(ELEMENT_BYTES as u64))
    }

    /// With `StaleRead`, a read of a key this client wrote since its first read of it reports
    /// that first read's value.
    fn stale(
        &mut self,
        plant: Option<LivePlant>,
        kind: Kind,
        key: &str,
        outcome: Outcome,
    ) -> Outcome {
        if plant != Some(LivePlant::StaleRead) || !outcome.is_ok() {
            return outcome;
        }
        match (kind, self.first_read.get_mut(key)) {
            (Kind::Get, None) => {
                self.first_read.insert(key.to_string(), (outcome.clone(), false));
                outcome
            }
            (Kind::Get, Some((first, true))) => first.clone(),
            (Kind::Get, Some(_)) => outcome,
            (_, Some(entry)) => {
                entry.1 = true;
                outcome
            }
            (_, None) => outcome,
        }
    }
}

async fn run_big_client(
    shared: Arc<Shared>,
    client: u32,
    mut jobs: mpsc::UnboundedReceiver<BigJob>,
    mut stop: watch::Receiver<bool>,
) {
    let mut seq = 0u64;
    loop {
        let job = tokio::select! {
            job = jobs.recv() => match job { Some(job) => job, None => return },
            _ = stop.changed() => return,
        };
        let mut acked = false;
        for op in job.ops {
            if *stop.borrow() {
                return;
            }
            if op.after_ack && !acked {
                continue;
            }
            let tok = token(client, seq);
            seq += 1;
            let outcome = big_op(&shared, client, &job.key, &op, tok).await;
            if op.kind.is_write() {
                acked = outcome.is_ok();
            }
        }
    }
}

/// The replica that says it is primary (or that the others name), asked over RESP.
async fn find_primary(addrs: &[SocketAddr]) -> Option<u32> {
    let mut named = None;
    for addr in addrs {
        let Ok(mut conn) = connect_one(*addr, CONNECT_WAIT).await else { continue };
        let Ok(Reply::Bulk(text)) = conn.cmd(&["RSL.STATUS"]).await else { continue };
        let status = crate::cluster::parse_status(&String::from_utf8_lossy(&text));
        if status.get("rsl_role") == "primary" {
            return status.number("rsl_replica_id").map(|id| id as u32);
        }
        named = named.or(status.number("rsl_primary").map(|id| id as u32));
    }
    named
}

/// Sends one command; if sending fails (a server that refuses a value past its limit may
/// answer and close before reading it all), the reply it sent is still read.
async fn send(conn: &mut Client, args: &[&[u8]]) -> io::Result<Reply> {
    conn.queue(args);
    match conn.flush().await {
        Ok(()) => conn.reply().await,
        Err(e) => conn.reply().await.map_err(|_| e),
    }
}

async fn big_op(shared: &Shared, client: u32, key: &str, op: &BigOp, tok: u64) -> Outcome {
    let replica = match op.replica {
        Some(id) => id,
        None => find_primary(&shared.addrs).await.unwrap_or(1),
    };
    let (call_us, timeout) = (shared.clock.now_us(), shared.options.big_timeout);
    let record = Record {
        client,
        replica,
        kind: op.kind,
        key: key.to_string(),
        token: if op.kind == Kind::Set { tok } else { 0 },
        bytes: if op.kind.is_write() { op.bytes as u64 } else { 0 },
        call_us,
        ret_us: None,
        outcome: Outcome::Unknown("pending when the run ended".into()),
    };
    let index = shared.recorder.invoke(record);
    let addr = shared.addrs[(replica - 1) as usize];
    let reply = match connect_one(addr, timeout).await {
        Err(e) => Err(e),
        Ok(mut conn) => match op.kind {
            Kind::Get => conn.cmd(&[&b"GET"[..], key.as_bytes()]).await,
            Kind::Set => {
                let value = big_value(tok, op.bytes);
                send(&mut conn, &[&b"SET"[..], key.as_bytes(), &value]).await
            }
            Kind::Append => {
                let suffix = vec![PAD_BYTE; op.bytes];
                send(&mut conn, &[&b"APPEND"[..], key.as_bytes(), &suffix]).await
            }
        },
    };
    let ret_us = shared.clock.now_us();
    if op.kind == Kind::Get {
        shared.recorder.observe(&observed_tokens(key, &reply), ret_us);
    }
    let outcome = classify(op.kind, key, &reply);
    shared.recorder.complete(index, ret_us, outcome.clone());
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn only_documented_refusals_are_definite() {
        assert!(definite_failure("TRYAGAIN not primary; no primary is known"));
        assert!(definite_failure("ERR overloaded, retry later"));
        assert!(definite_failure("ERR string exceeds maximum allowed size (proto-max-bulk-len)"));
        assert!(definite_failure("ERR Protocol error: invalid bulk length"));
        assert!(!definite_failure("TRYAGAIN timed out, the outcome is unknown"));
        assert!(!definite_failure("ERR request dropped, the outcome is unknown"));
        assert!(!definite_failure("ERR shutting down"));
        assert!(definite_failure(
            "ERR disk full on replica 2: writes refused until space is freed"
        ));
        assert!(!definite_failure("ERR disk full"), "only the documented text");
        assert!(!definite_failure("ERR disk trouble on replica 2"));
    }

    #[test]
    fn replies_become_outcomes() {
        let ok = |r: Reply| -> io::Result<Reply> { Ok(r) };
        assert_eq!(classify(Kind::Set, "n0.0", &ok(Reply::Simple(Bytes::from("OK")))), Outcome::Ok);
        assert_eq!(classify(Kind::Append, "n0.0", &ok(Reply::Integer(34))), Outcome::Len(34));
        assert_eq!(classify(Kind::Get, "n0.0", &ok(Reply::Null)), Outcome::Value(Value::EMPTY));
        let list: Vec<u8> = [1u64, 2].iter().flat_map(|&t| list_element(t)).collect();
        assert_eq!(
            classify(Kind::Get, "n0.0", &ok(Reply::Bulk(Bytes::from(list)))),
            Outcome::Value(Value::of_list(&[1, 2]))
        );
        let big = Bytes::from(big_value(9, 100));
        assert_eq!(
            classify(Kind::Get, "b3", &ok(Reply::Bulk(big))),
            Outcome::Value(Value::of_big(9, 100))
        );
        assert!(matches!(
            classify(Kind::Get, "n0.0", &ok(Reply::Bulk(Bytes::from("garbage")))),
            Outcome::Corrupt(_)
        ));
        let refused = ok(Reply::Error(Bytes::from("TRYAGAIN not primary; no primary is known")));
        assert!(matches!(classify(Kind::Set, "n0.0", &refused), Outcome::Failed(_)));
        let unknown = ok(Reply::Error(Bytes::from("ERR request dropped, the outcome is unknown")));
        assert!(matches!(classify(Kind::Set, "n0.0", &unknown), Outcome::Unknown(_)));
        let broken: io::Result<Reply> = Err(io::Error::other("server closed"));
        assert!(matches!(classify(Kind::Append, "n0.0", &broken), Outcome::Unknown(_)));
        assert!(matches!(classify(Kind::Set, "n0.0", &ok(Reply::Integer(1))), Outcome::Unknown(_)));
    }

    #[test]
    fn the_stale_liar_repeats_its_first_read_once_it_wrote() {
        let mut liar = Liar::default();
        let plant = Some(LivePlant::StaleRead);
        let v0 = Outcome::Value(Value::of_list(&[1]));
        let v1 = Outcome::Value(Value::of_list(&[1, 2]));
        assert_eq!(liar.stale(plant, Kind::Get, "k", v0.clone()), v0);
        assert_eq!(liar.stale(plant, Kind::Get, "k", v1.clone()), v1, "no write yet");
        assert_eq!(liar.stale(plant, Kind::Append, "k", Outcome::Len(34)), Outcome::Len(34));
        assert_eq!(liar.stale(plant, Kind::Get, "k", v1), v0, "the lie");
        let mut honest = Liar::default();
        assert_eq!(honest.stale(None, Kind::Get, "k", v0.clone()), v0);
        assert!(
            (0..40)
                .filter(|_| liar.phantom(Some(LivePlant::PhantomAck), Kind::Append).is_some())
                .count()
                == 2
        );
    }
}
