//! A hand-wired cluster for the core's tests: replicas, a network that delivers in a
//! seeded random order (with loss and duplication when asked), and disks that report
//! durability after a random delay. It checks, after every step, the core's own invariants
//! and the cluster's safety: agreement per executed slot, in-order execution, and exactly
//! one outcome per proposal.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use rsl_core::{
    Action, Ballot, Config, Input, LogEntry, Message, Recovered, Refusal, Replica, ReplicaId,
    RequestId, Role, Slot, Value, Write,
};

/// A tiny xorshift for test schedules (tests may use randomness; the core may not).
pub struct TestRng(pub u64);

impl TestRng {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0.max(1);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Executed,
    Refused(Refusal),
}

pub struct Cluster {
    pub replicas: Vec<Replica>,
    pub up: Vec<bool>,
    pub net: Vec<Message>,
    /// Per replica: the highest persisted seq not yet reported durable.
    pub unsynced: Vec<u64>,
    pub executed: Vec<BTreeMap<Slot, Value>>,
    pub last_executed: Vec<Slot>,
    pub chosen: BTreeMap<Slot, Value>,
    pub outcomes: HashMap<RequestId, Outcome>,
    pub proposed: Vec<RequestId>,
    pub rng: TestRng,
    pub loss_permille: u64,
    pub dup_permille: u64,
    pub next_req: u64,
    /// Per replica: every write issued, in seq order, and how many are durable.
    pub disks: Vec<Vec<Write>>,
    pub durable: Vec<usize>,
    pub incarnation: Vec<u64>,
    pub crashes: u64,
    /// Replicas cut off from the network (messages to and from them are lost).
    pub isolated: Vec<bool>,
    /// Actions other than sends and writes, per replica, in order.
    pub log: Vec<(usize, Action)>,
    /// Configure replicas as they are created.
    pub tune: fn(&mut Config),
    pub voters: u32,
    /// Durable accepts ever made, per (slot, ballot): the value and who accepted it.
    pub durable_accepts: BTreeMap<(Slot, Ballot), (Value, Vec<usize>)>,
}

pub fn config(id: u32, n: u32, seed: u64) -> Config {
    let mut c = Config::new(id, 1..=n);
    c.rng_seed = seed.wrapping_mul(31).wrapping_add(u64::from(id));
    c
}

impl Cluster {
    pub fn new(n: u32, seed: u64) -> Cluster {
        let replicas: Vec<Replica> =
            (1..=n).map(|id| Replica::new(config(id, n, seed), Recovered::default())).collect();
        let k = replicas.len();
        Cluster {
            replicas,
            up: vec![true; k],
            net: Vec::new(),
            unsynced: vec![0; k],
            executed: vec![BTreeMap::new(); k],
            last_executed: vec![Slot::ZERO; k],
            chosen: BTreeMap::new(),
            outcomes: HashMap::new(),
            proposed: Vec::new(),
            rng: TestRng(seed | 1),
            loss_permille: 0,
            dup_permille: 0,
            next_req: 0,
            disks: vec![Vec::new(); k],
            durable: vec![0; k],
            incarnation: vec![1; k],
            crashes: 0,
            isolated: vec![false; k],
            log: Vec::new(),
            tune: |_| {},
            voters: n,
            durable_accepts: BTreeMap::new(),
        }
    }

    /// A cluster of `total` replicas of which `voters` (the first ones) are the initial
    /// voters; the others start as learners outside the membership.
    pub fn with(total: u32, voters: u32, seed: u64, tune: fn(&mut Config)) -> Cluster {
        let mut c = Cluster::new(total, seed);
        c.tune = tune;
        c.voters = voters;
        for i in 0..total {
            let mut cfg = config(i + 1, voters, seed);
            tune(&mut cfg);
            c.replicas[i as usize] = Replica::new(cfg, Recovered::default());
        }
        c
    }

    /// Crashes replica `i`: unsynced writes and in-flight messages to it are lost, and its
    /// pending proposals need no outcome any more (the process died).
    pub fn crash(&mut self, i: usize) {
        self.crashes += 1;
        self.up[i] = false;
        self.disks[i].truncate(self.durable[i]);
        let me = ReplicaId(i as u32 + 1);
        self.net.retain(|m| m.to != me);
        let outcomes = &self.outcomes;
        self.proposed.retain(|id| id.proposer != me || outcomes.contains_key(id));
    }

    /// Restarts replica `i` from its durable writes.
    pub fn restart(&mut self, i: usize, seed: u64) {
        let n = self.voters;
        let recovered = recover(&self.disks[i]);
        self.incarnation[i] += 1;
        let mut c = config(i as u32 + 1, n, seed);
        (self.tune)(&mut c);
        c.rng_seed ^= self.incarnation[i];
        self.replicas[i] = Replica::new(c, recovered);
        self.replicas[i].invariants();
        self.unsynced[i] = 0;
        // The disk keeps its durable writes; the new incarnation appends after them.
        self.durable[i] = self.disks[i].len();
        self.last_executed[i] = Slot::ZERO;
        self.executed[i].clear();
        self.up[i] = true;
    }

    pub fn step(&mut self, i: usize, input: Input) {
        if !self.up[i] {
            return;
        }
        let mut out = Vec::new();
        self.replicas[i].step(input, &mut out);
        self.replicas[i].invariants();
        for a in out {
            self.apply(i, a);
        }
    }

    fn apply(&mut self, i: usize, a: Action) {
        match a {
            Action::Send { msg, .. } => {
                assert_eq!(msg.from, ReplicaId(i as u32 + 1));
                let bytes = msg.encode();
                assert_eq!(Message::decode(&bytes).as_ref(), Ok(&msg), "wire round trip");
                self.net.push(msg);
            }
            Action::Persist { seq, write } => {
                assert!(seq > self.unsynced[i], "persist seqs increase");
                self.unsynced[i] = seq;
                self.disks[i].push(write);
            }
            Action::Execute { slot, value } => self.on_execute(i, slot, value),
            Action::Refuse { id, reason } => self.settle(id, Outcome::Refused(reason)),
            Action::LoadLog { token, from, to } => {
                let entries: Vec<LogEntry> = recover(&self.disks[i])
                    .log
                    .into_iter()
                    .filter(|e| e.slot >= from && e.slot <= to)
                    .collect();
                self.log.push((i, Action::LoadLog { token, from, to }));
                self.step(i, Input::LogLoaded { token, entries });
            }
            Action::SendCheckpoint { to } => {
                let slot = self.last_executed[i];
                let j = to.0 as usize - 1;
                self.log.push((i, Action::SendCheckpoint { to }));
                if self.up[j] && slot > self.last_executed[j] {
                    self.last_executed[j] = slot;
                    self.step(j, Input::CheckpointInstalled { slot, membership: None });
                }
            }
            other => self.log.push((i, other)),
        }
    }

    fn on_execute(&mut self, i: usize, slot: Slot, value: Value) {
        assert_eq!(slot, self.last_executed[i].next(), "replica {i} executes out of order");
        let quorum = self.voters as usize / 2 + 1;
        let durable = self
            .durable_accepts
            .range((slot, Ballot::ZERO)..)
            .take_while(|((s, _), _)| *s == slot)
            .any(|(_, (v, who))| *v == value && who.len() >= quorum);
        assert!(durable, "replica {i} executed {slot:?} before a majority durably accepted it");
        self.last_executed[i] = slot;
        if let Some(v) = self.chosen.get(&slot) {
            assert_eq!(v, &value, "two values executed in {slot:?}");
        }
        self.chosen.insert(slot, value.clone());
        if let Value::Batch(reqs) = &value {
            for r in reqs {
                let mine = r.id.proposer == ReplicaId(i as u32 + 1);
                if mine && r.id.incarnation == self.incarnation[i] {
                    self.settle(r.id, Outcome::Executed);
                }
            }
        }
        self.executed[i].insert(slot, value);
    }

    fn settle(&mut self, id: RequestId, outcome: Outcome) {
        let before = self.outcomes.insert(id, outcome.clone());
        assert!(
            before.is_none(),
            "request {id:?} got a second outcome {outcome:?} after {before:?}"
        );
    }

    pub fn propose(&mut self, i: usize, exclusive: bool) -> RequestId {
        self.next_req += 1;
        let id = RequestId {
            proposer: ReplicaId(i as u32 + 1),
            incarnation: self.incarnation[i],
            seq: self.next_req,
        };
        if self.up[i] {
            self.proposed.push(id);
        }
        let payload = Bytes::from(self.next_req.to_le_bytes().to_vec());
        self.step(i, Input::Propose { id, payload, exclusive });
        id
    }

    /// One random event: deliver a message, sync a disk, or tick a replica.
    pub fn random_event(&mut self) {
        let n = self.replicas.len();
        match self.rng.below(10) {
            0..=5 if !self.net.is_empty() => self.deliver_random(),
            6 | 7 => {
                let i = self.rng.below(n as u64) as usize;
                self.sync(i);
            }
            _ => {
                let i = self.rng.below(n as u64) as usize;
                self.step(i, Input::Tick);
            }
        }
    }

    pub fn deliver_random(&mut self) {
        let k = self.rng.below(self.net.len() as u64) as usize;
        let msg = self.net.swap_remove(k);
        let cut = self.isolated[msg.from.0 as usize - 1] || self.isolated[msg.to.0 as usize - 1];
        if cut || self.rng.below(1000) < self.loss_permille {
            return;
        }
        if self.rng.below(1000) < self.dup_permille {
            self.net.push(msg.clone());
        }
        let to = msg.to.0 as usize - 1;
        self.step(to, Input::Receive(msg));
    }

    pub fn sync(&mut self, i: usize) {
        let seq = self.unsynced[i];
        if seq > 0 && self.up[i] {
            for w in &self.disks[i][self.durable[i]..] {
                if let Write::Accept(e) = w {
                    let rec = self.durable_accepts.entry((e.slot, e.ballot));
                    let rec = rec.or_insert_with(|| (e.value.clone(), Vec::new()));
                    assert_eq!(rec.0, e.value, "two values accepted at one ballot in {:?}", e.slot);
                    if !rec.1.contains(&i) {
                        rec.1.push(i);
                    }
                }
            }
            self.durable[i] = self.disks[i].len();
            self.step(i, Input::Durable { seq });
        }
    }

    pub fn run(&mut self, events: usize) {
        for _ in 0..events {
            self.random_event();
        }
    }

    pub fn primary(&self) -> Option<usize> {
        (0..self.replicas.len())
            .find(|&i| self.up[i] && self.replicas[i].status().role == Role::Primary)
    }

    /// Runs until a primary exists (panics after `events`).
    pub fn elect(&mut self, events: usize) -> usize {
        for _ in 0..events {
            if let Some(p) = self.primary() {
                return p;
            }
            self.random_event();
        }
        panic!("no primary elected");
    }

    /// Every proposal has exactly one outcome.
    pub fn all_settled(&self) -> bool {
        self.proposed.iter().all(|id| self.outcomes.contains_key(id))
    }
}

/// What a replica finds on a disk holding `writes` (all durable).
pub fn recover(writes: &[Write]) -> Recovered {
    let mut promised = Ballot::ZERO;
    let mut commit = Slot::ZERO;
    let mut rebuilding = false;
    let mut member_since = None;
    let mut log: BTreeMap<Slot, LogEntry> = BTreeMap::new();
    for w in writes {
        match w {
            Write::Promise(b) => promised = promised.max(*b),
            Write::Accept(e) => {
                log.insert(e.slot, e.clone());
            }
            Write::Commit(s) => commit = commit.max(*s),
            Write::TruncateSuffix { from } => log.retain(|s, _| s < from),
            Write::TruncatePrefix { before } => log.retain(|s, _| s >= before),
            Write::Rebuilding(on) => rebuilding = *on,
            Write::MemberSince(s) => member_since = Some(*s),
        }
    }
    let log = log.into_values().collect();
    Recovered { promised, commit, log, rebuilding, member_since, ..Recovered::default() }
}
