//! The simulator: a whole cluster of real [`rsl_core::Replica`]s in one thread, driven by a
//! seeded event queue over simulated time.
//!
//! Time is counted in units; a tick is [`TICK`] units, and every replica has its own tick
//! period (within the drift bound) so clocks drift apart. Every event (a tick, a message
//! delivery, an fsync completion, a client arrival, a fault) sits in one priority queue
//! ordered by (time, sequence number), so a seed fully determines the run. The same type
//! serves the randomized swarm runs ([`crate::run_seed`]) and the scripted scenarios
//! (`tests/scenarios.rs`), through the scripting methods at the end of this file.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::fmt::Write as _;

use bytes::Bytes;
use rsl_core::{
    Config, Event as CoreEvent, Input, LogEntry, Membership, Message, ReadMode, Refusal, ReplicaId,
    Request, RequestId, Role, Slot, Status, Value, Write,
};
use rsl_storage::CrashMode;

use crate::checker::{Check, Checker, Failure, Fnv};
use crate::disk::{Disk, DiskFaults, StorageBug};
use crate::driver::{Driver, Host, Machine, Reply};
use crate::kv::{decode_output, Kv, Op};
use crate::linearizability::{self, Operation};
use crate::net::{FilterAction, Network};
use crate::options::{Options, TICK};
use crate::rng::Rng;

/// The key-value machine behind the driver, and the last slot it executed.
#[derive(Debug, Default)]
pub struct KvMachine(pub Kv, pub Slot);

impl Machine for KvMachine {
    fn execute(&mut self, slot: Slot, request: &Request) -> Bytes {
        self.1 = slot;
        self.0.execute(&request.payload)
    }

    fn read(&self, query: &[u8]) -> Bytes {
        self.0.read(query.first().copied().unwrap_or(0))
    }
}

/// The name of a message's kind, for coverage counts.
pub fn message_kind(msg: &Message) -> &'static str {
    use rsl_core::message::Body;
    match msg.body {
        Body::PreVote { .. } => "PreVote",
        Body::PreVoteReply { .. } => "PreVoteReply",
        Body::Prepare { .. } => "Prepare",
        Body::Promise { .. } => "Promise",
        Body::Nack { .. } => "Nack",
        Body::Accept { .. } => "Accept",
        Body::Accepted { .. } => "Accepted",
        Body::Heartbeat { .. } => "Heartbeat",
        Body::HeartbeatAck { .. } => "HeartbeatAck",
        Body::CatchupRequest { .. } => "CatchupRequest",
        Body::CatchupReply { .. } => "CatchupReply",
        Body::StartElection { .. } => "StartElection",
        Body::Rebuild { .. } => "Rebuild",
        Body::Rebuilt { .. } => "Rebuilt",
        #[allow(unreachable_patterns)]
        _ => "Other",
    }
}

/// Tickets with this bit set belong to scripted proposals; others to simulated clients.
const SCRIPT_TICKET: u64 = 1 << 63;

/// Something waiting to be handed to a replica.
#[derive(Debug, Clone)]
enum Pending {
    Input(Input),
    Propose { ticket: u64, op: Op, exclusive: bool },
    Read { ticket: u64, key: u8, mode: ReadMode },
}

#[derive(Debug)]
enum Event {
    World,
    Tick {
        node: usize,
        incarnation: u64,
    },
    Deliver {
        msg: Message,
    },
    SyncDone {
        node: usize,
        incarnation: u64,
    },
    /// Power loss while an fsync is in flight (`Options::crash_in_sync_permille`).
    CrashInSync {
        node: usize,
        incarnation: u64,
    },
    /// The planted `AckBeforeSync`: a write reported durable before its fsync.
    EarlyDurable {
        node: usize,
        incarnation: u64,
        seq: u64,
    },
    LogLoaded {
        node: usize,
        incarnation: u64,
        token: u64,
        entries: Vec<LogEntry>,
    },
    Arrive {
        node: usize,
        pending: Pending,
    },
    ClientReply {
        ticket: u64,
        reply: Reply,
    },
    ClientWake {
        client: usize,
    },
    ClientRetry {
        client: usize,
        op_no: u64,
    },
    ClientTimeout {
        client: usize,
        op_no: u64,
    },
    Resume {
        node: usize,
        pause: u64,
    },
    Unstall {
        node: usize,
    },
}

#[derive(Debug)]
struct Scheduled {
    time: u64,
    seq: u64,
    event: Event,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.time, self.seq) == (other.time, other.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.time, self.seq).cmp(&(other.time, other.seq))
    }
}

/// A replica's process state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeState {
    Up,
    Paused,
    Down,
}

#[derive(Debug)]
struct Node {
    id: ReplicaId,
    state: NodeState,
    /// The shared driver; its callers are client tickets.
    driver: Option<Driver<u64>>,
    /// The application state (a fresh one at every restart: the log is replayed).
    machine: KvMachine,
    disk: Disk,
    incarnation: u64,
    /// Whether storage faults (corruption on write, at rest, on read) may hit this disk.
    faulty: bool,
    tick_period: u64,
    inbox: VecDeque<Pending>,
    missed_ticks: u64,
    pause: u64,
    can_become_primary: bool,
}

#[derive(Debug, Clone)]
struct Current {
    op: Op,
    via_log: bool,
    exclusive: bool,
    call: u64,
    op_no: u64,
    /// The attempt number of its first try (its tickets run from here to the client's last).
    first_attempt: u64,
}

#[derive(Debug)]
struct Client {
    target: usize,
    op_no: u64,
    attempt: u64,
    current: Option<Current>,
    tokens: u64,
}

/// Side effects collected during one driver step, applied right after it.
#[derive(Debug, Default)]
struct Effects {
    list: Vec<Effect>,
}

#[derive(Debug)]
enum Effect {
    Send(ReplicaId, Message),
    Persist(u64, Write),
    LoadLog(u64, Slot, Slot),
    /// The core asked for a checkpoint to be taken or streamed (not simulated yet).
    Checkpoint,
    Reply(u64, Reply),
    /// Execute a chosen slot; the callers wait on its requests.
    Execute(Slot, Value, Vec<Option<u64>>),
    /// Serve a read now (every slot handed to execute before it has been executed).
    Read(u64, Bytes),
    Notify(CoreEvent),
    Contract(String),
}

impl Host<u64> for Effects {
    fn send(&mut self, to: ReplicaId, msg: Message) {
        self.list.push(Effect::Send(to, msg));
    }
    fn persist(&mut self, seq: u64, write: Write) {
        self.list.push(Effect::Persist(seq, write));
    }
    fn load_log(&mut self, token: u64, from: Slot, to: Slot) {
        self.list.push(Effect::LoadLog(token, from, to));
    }
    fn execute(&mut self, slot: Slot, value: Value, callers: Vec<Option<u64>>) {
        self.list.push(Effect::Execute(slot, value, callers));
    }
    fn read(&mut self, ticket: u64, query: Bytes) {
        self.list.push(Effect::Read(ticket, query));
    }
    fn refused(&mut self, ticket: u64, reason: Refusal) {
        self.list.push(Effect::Reply(ticket, Reply::Refused(reason)));
    }
    fn notify(&mut self, event: CoreEvent) {
        self.list.push(Effect::Notify(event));
    }
    fn send_checkpoint(&mut self, _to: ReplicaId) {
        self.list.push(Effect::Checkpoint);
    }
    fn take_checkpoint(&mut self) {
        self.list.push(Effect::Checkpoint);
    }
    fn contract_broken(&mut self, what: String) {
        self.list.push(Effect::Contract(what));
    }
}

/// Counters of one run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub events: u64,
    pub messages: u64,
    pub dropped: u64,
    pub crashes: u64,
    /// Crashes that also wiped the disk.
    pub wipes: u64,
    pub pauses: u64,
    pub partitions: u64,
    pub elections: u64,
    pub reconfigurations: u64,
    pub ops_ok: u64,
    pub ops_indeterminate: u64,
    pub max_slot: u64,
    pub log_loads: u64,
    /// Messages sent, by kind.
    pub kinds: BTreeMap<&'static str, u64>,
    pub checkpoint_requests: u64,
    /// Storage faults injected and what recovery made of them (all disks).
    pub storage: crate::disk::DiskStats,
    /// Safety-only mode: the healed cluster did not converge (allowed there).
    pub not_live: bool,
    /// The linearizability search gave up (budget exceeded).
    pub undecided: bool,
}

/// The simulated cluster.
pub struct Sim {
    pub options: Options,
    rng: Rng,
    now: u64,
    seq: u64,
    queue: BinaryHeap<Reverse<Scheduled>>,
    nodes: Vec<Node>,
    net: Network,
    clients: Vec<Client>,
    clients_active: bool,
    history: Vec<Operation>,
    /// Indeterminate operations: their index in `history` and the tickets of their attempts.
    indeterminate: Vec<(usize, Vec<u64>)>,
    checker: Checker,
    trace: Fnv,
    verbose: bool,
    request_ids: BTreeMap<u64, RequestId>,
    script_ops: BTreeMap<u64, (Op, u64)>,
    script_replies: BTreeMap<u64, Reply>,
    next_script: u64,
    faults_on: bool,
    healed_at: Option<u64>,
    liveness_slot: Option<Slot>,
    settled: bool,
    pub stats: Stats,
}

impl std::fmt::Debug for Sim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sim").field("seed", &self.options.seed).field("now", &self.now).finish()
    }
}

impl Sim {
    /// A cluster of `options.replicas` replicas, all up, with no client started.
    pub fn new(options: Options) -> Sim {
        let mut sim = Sim::new_deferred(options);
        sim.boot();
        sim
    }

    /// A cluster whose replicas are not started yet: call [`Sim::boot`] (lets the caller
    /// catch a panic in the core's constructor).
    pub fn new_deferred(options: Options) -> Sim {
        let mut rng = Rng::new(options.seed);
        let n = options.replicas + options.spares;
        assert!((1..=9).contains(&n), "1 to 9 replicas");
        let net = Network::new(
            options.loss_permille,
            options.duplicate_permille,
            options.delay_min,
            options.delay_max,
        );
        let cannot_lead = options.one_cannot_lead.then(|| rng.below(n as u64) as usize);
        let faulty = faulty_disks(&options, &mut rng);
        let mut nodes: Vec<Node> = (0..n)
            .map(|i| Node {
                id: ReplicaId(i as u32 + 1),
                state: NodeState::Down,
                driver: None,
                machine: KvMachine::default(),
                disk: Disk::with(
                    rng.next_u64(),
                    options.storage_bug,
                    disk_faults(&options, faulty[i]),
                ),
                incarnation: 0,
                faulty: faulty[i],
                tick_period: TICK + rng.range(0, u64::from(options.drift_permille)) * TICK / 1000,
                inbox: VecDeque::new(),
                missed_ticks: 0,
                pause: 0,
                can_become_primary: cannot_lead != Some(i),
            })
            .collect();
        for node in &mut nodes {
            node.disk.check = options.storage_check;
        }
        let mut checker = Checker::new(Membership::new(1..=options.replicas as u32));
        checker.durable_commit = options.durable_commit_check;
        Sim {
            checker,
            options,
            rng,
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            nodes,
            net,
            clients: Vec::new(),
            clients_active: false,
            history: Vec::new(),
            indeterminate: Vec::new(),
            trace: Fnv::new(),
            verbose: false,
            request_ids: BTreeMap::new(),
            script_ops: BTreeMap::new(),
            script_replies: BTreeMap::new(),
            next_script: 0,
            faults_on: false,
            healed_at: None,
            liveness_slot: None,
            settled: false,
            stats: Stats::default(),
        }
    }

    /// Starts every replica.
    pub fn boot(&mut self) {
        for i in 0..self.nodes.len() {
            self.restart_node(i);
        }
        self.schedule(TICK, Event::World);
    }

    /// Prints every event and action to stdout.
    pub fn set_verbose(&mut self, on: bool) {
        self.verbose = on;
    }

    /// Simulated time in units.
    pub fn now(&self) -> u64 {
        self.now
    }

    /// Simulated time in ticks.
    pub fn tick(&self) -> u64 {
        self.now / TICK
    }

    /// The hash of every event so far: equal for two runs of one seed.
    pub fn trace_hash(&self) -> u64 {
        self.trace.finish()
    }

    pub fn failure(&self) -> Option<&Failure> {
        self.checker.failure.as_ref()
    }

    pub fn checker(&self) -> &Checker {
        &self.checker
    }

    pub fn history(&self) -> &[Operation] {
        &self.history
    }

    fn schedule(&mut self, delay: u64, event: Event) {
        self.seq += 1;
        self.queue.push(Reverse(Scheduled { time: self.now + delay, seq: self.seq, event }));
    }

    fn index(&self, id: ReplicaId) -> usize {
        let i = id.0 as usize - 1;
        assert!(i < self.nodes.len(), "no replica {id:?}");
        i
    }

    fn record(&mut self, args: std::fmt::Arguments<'_>) {
        let _ = write!(self.trace, "{} ", self.now);
        let _ = self.trace.write_fmt(args);
        if self.verbose {
            println!("{:>9.3} {}", self.now as f64 / TICK as f64, args);
        }
    }

    fn make_config(&mut self, i: usize) -> Config {
        let n = self.options.replicas as u32;
        let mut config = Config::new(i as u32 + 1, 1..=n);
        config.pipeline_slots_max = self.options.pipeline_slots_max;
        config.batch_requests_max = self.options.batch_requests_max;
        config.clock_drift_permille = self.options.drift_permille;
        config.rng_seed = self.rng.next_u64();
        #[cfg(feature = "planted-bugs")]
        if let Some(name) = &self.options.bug {
            let bug = crate::bugs::parse(name).unwrap_or_else(|| panic!("unknown bug {name}"));
            config.bugs = rsl_core::bugs::Bugs(vec![bug]);
        }
        config
    }

    // ----- the event loop -----

    /// Runs events up to time `until` (units), stopping early at the first failure.
    fn run_to(&mut self, until: u64) {
        while self.checker.failure.is_none() {
            match self.queue.peek() {
                Some(Reverse(s)) if s.time <= until => {}
                _ => break,
            }
            let Reverse(s) = self.queue.pop().expect("peeked");
            self.now = s.time;
            self.checker.tick = self.now / TICK;
            self.stats.events += 1;
            self.handle(s.event);
        }
        if self.checker.failure.is_none() {
            self.now = self.now.max(until);
        }
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::World => self.world_tick(),
            Event::Tick { node, incarnation } => self.on_tick(node, incarnation),
            Event::Deliver { msg } => {
                let node = self.index(msg.to);
                if self.net.is_cut(msg.from, msg.to) {
                    self.net.dropped += 1;
                    return;
                }
                self.deliver(node, Pending::Input(Input::Receive(msg)));
            }
            Event::SyncDone { node, incarnation } => self.on_sync_done(node, incarnation),
            Event::CrashInSync { node, incarnation } => {
                let up = self.nodes[node].state != NodeState::Down;
                if self.faults_on && up && self.nodes[node].incarnation == incarnation {
                    let id = self.nodes[node].id;
                    self.record(format_args!("power loss during an fsync of {id:?}"));
                    self.crash_with(id, true);
                }
            }
            Event::EarlyDurable { node, incarnation, seq } => {
                if self.nodes[node].incarnation == incarnation {
                    self.deliver(node, Pending::Input(Input::Durable { seq }));
                }
            }
            Event::LogLoaded { node, incarnation, token, entries } => {
                if self.nodes[node].incarnation == incarnation {
                    self.deliver(node, Pending::Input(Input::LogLoaded { token, entries }));
                }
            }
            Event::Arrive { node, pending } => self.deliver(node, pending),
            Event::ClientReply { ticket, reply } => self.on_client_reply(ticket, reply),
            Event::ClientWake { client } => self.client_next(client),
            Event::ClientRetry { client, op_no } => {
                if self.clients[client].current.as_ref().is_some_and(|c| c.op_no == op_no) {
                    self.client_send(client);
                }
            }
            Event::ClientTimeout { client, op_no } => self.on_client_timeout(client, op_no),
            Event::Unstall { node } => {
                let id = self.nodes[node].id;
                self.record(format_args!("disk of {id:?} resumes"));
                self.hold_fsync(id, false);
            }
            Event::Resume { node, pause } => {
                if self.nodes[node].pause == pause {
                    self.resume(ReplicaId(node as u32 + 1));
                }
            }
        }
    }

    fn on_tick(&mut self, node: usize, incarnation: u64) {
        let n = &mut self.nodes[node];
        if n.incarnation != incarnation || n.state == NodeState::Down {
            return;
        }
        let period = n.tick_period;
        self.schedule(period, Event::Tick { node, incarnation });
        if self.nodes[node].state == NodeState::Paused {
            self.nodes[node].missed_ticks += 1;
        } else {
            self.process(node, Pending::Input(Input::Tick));
        }
    }

    /// Hands something to a replica: dropped if it is down, queued if it is paused.
    fn deliver(&mut self, node: usize, pending: Pending) {
        match self.nodes[node].state {
            NodeState::Down => {}
            NodeState::Paused => self.nodes[node].inbox.push_back(pending),
            NodeState::Up => self.process(node, pending),
        }
    }

    fn process(&mut self, node: usize, pending: Pending) {
        if !matches!(pending, Pending::Input(Input::Tick)) || self.verbose {
            self.record(format_args!("r{} <- {:?}", node + 1, pending));
        } else {
            let _ = write!(self.trace, "{} t{}", self.now, node);
        }
        let mut fx = Effects::default();
        let driver = self.nodes[node].driver.as_mut().expect("an up replica has a driver");
        match pending {
            Pending::Input(input) => driver.step(input, &mut fx),
            Pending::Propose { ticket, op, exclusive } => {
                let id = driver.propose(op.encode(), exclusive, ticket, &mut fx);
                self.request_ids.insert(ticket, id);
            }
            Pending::Read { ticket, key, mode } => {
                driver.read(Bytes::from(vec![key]), mode, ticket, &mut fx);
            }
        }
        for effect in fx.list {
            self.apply(node, effect);
        }
    }

    fn apply(&mut self, node: usize, effect: Effect) {
        if self.verbose || !matches!(effect, Effect::Send(..)) {
            self.record(format_args!("r{} -> {:?}", node + 1, effect));
        }
        let id = self.nodes[node].id;
        match effect {
            Effect::Send(to, msg) => {
                self.stats.messages += 1;
                *self.stats.kinds.entry(message_kind(&msg)).or_default() += 1;
                assert_eq!((msg.from, msg.to), (id, to), "message addressing");
                let _ = write!(self.trace, "s{}>{}", id.0, to.0);
                // Every message crosses the wire codec, as in production.
                match Message::decode(&msg.encode()) {
                    Ok(decoded) if decoded == msg => {}
                    other => {
                        let detail = format!("wire codec does not round-trip {msg:?}: {other:?}");
                        self.checker.fail(Check::Contract, detail);
                    }
                }
                for delay in self.net.route(&mut self.rng, &msg) {
                    self.schedule(delay, Event::Deliver { msg: msg.clone() });
                }
            }
            Effect::Persist(seq, write) => {
                self.nodes[node].disk.write(seq, write);
                if self.options.storage_bug == Some(StorageBug::AckBeforeSync) {
                    let incarnation = self.nodes[node].incarnation;
                    self.schedule(0, Event::EarlyDurable { node, incarnation, seq });
                }
                self.start_sync(node);
            }
            Effect::Checkpoint => self.stats.checkpoint_requests += 1,
            Effect::LoadLog(token, from, to) => {
                self.stats.log_loads += 1;
                let entries = self.nodes[node].disk.read_log(from, to);
                self.record(format_args!(
                    "s{} loads {}..={}: {}",
                    id.0,
                    from.0,
                    to.0,
                    entries.len()
                ));
                let incarnation = self.nodes[node].incarnation;
                let delay = self.options.fsync_min;
                self.schedule(delay, Event::LogLoaded { node, incarnation, token, entries });
            }
            Effect::Reply(ticket, reply) => self.on_replica_reply(ticket, reply),
            Effect::Execute(slot, value, callers) => {
                self.stats.max_slot = self.stats.max_slot.max(slot.0);
                self.checker.execute(id, slot, &value);
                self.nodes[node].machine.1 = slot;
                if let Value::Batch(requests) = value {
                    for (request, caller) in requests.iter().zip(callers) {
                        let response = self.nodes[node].machine.execute(slot, request);
                        if let Some(ticket) = caller {
                            self.on_replica_reply(ticket, Reply::Done { slot, response });
                        }
                    }
                }
            }
            Effect::Read(ticket, query) => {
                let machine = &self.nodes[node].machine;
                let (response, slot) = (machine.read(&query), machine.1);
                self.on_replica_reply(ticket, Reply::Done { slot, response });
            }
            Effect::Notify(CoreEvent::BecamePrimary { .. }) => self.stats.elections += 1,
            Effect::Notify(_) => {}
            Effect::Contract(what) => self.checker.fail(Check::Contract, what),
        }
    }

    fn start_sync(&mut self, node: usize) {
        if self.nodes[node].disk.begin_sync().is_some() {
            let delay = self.rng.range(self.options.fsync_min, self.options.fsync_max);
            let incarnation = self.nodes[node].incarnation;
            self.schedule(delay, Event::SyncDone { node, incarnation });
            if self.faults_on && self.rng.chance(self.options.crash_in_sync_permille) {
                let at = self.rng.range(0, delay);
                self.schedule(at, Event::CrashInSync { node, incarnation });
            }
        }
    }

    fn on_sync_done(&mut self, node: usize, incarnation: u64) {
        if self.nodes[node].incarnation != incarnation || self.nodes[node].state == NodeState::Down
        {
            return;
        }
        let now = self.now;
        let Some((seq, writes)) = self.nodes[node].disk.complete_sync(now) else { return };
        let id = self.nodes[node].id;
        for write in &writes {
            if let Write::Accept(entry) = write {
                self.checker.durable_accept(id, entry);
            }
        }
        if self.options.storage_bug != Some(StorageBug::AckBeforeSync) {
            self.deliver(node, Pending::Input(Input::Durable { seq }));
        }
        self.start_sync(node);
    }

    fn on_replica_reply(&mut self, ticket: u64, reply: Reply) {
        if let (Reply::Done { slot, .. }, Some(id)) = (&reply, self.request_ids.get(&ticket)) {
            self.checker.acked(*id, *slot);
        }
        if ticket & SCRIPT_TICKET != 0 {
            self.script_reply(ticket, reply);
            return;
        }
        let delay = self.rng.range(50, 300);
        self.schedule(delay, Event::ClientReply { ticket, reply });
    }

    // ----- faults -----

    fn world_tick(&mut self) {
        self.schedule(TICK, Event::World);
        if self.faults_on {
            self.inject_faults();
        }
        if let Some(healed) = self.healed_at {
            self.check_liveness(healed);
        }
    }

    fn inject_faults(&mut self) {
        let o = self.options.clone();
        let n = self.nodes.len();
        let r = self.rng.below(n as u64) as usize;
        let id = ReplicaId(r as u32 + 1);
        if self.net.partitioned() {
            if self.rng.chance(o.partition_heal_permille) {
                self.heal();
            }
        } else if self.rng.chance(o.partition_permille) {
            self.random_partition();
        }
        if self.rng.chance(o.crash_permille) {
            // Half the crashes hit the primary: its failure is the interesting one.
            let victim = match self.primary() {
                Some(p) if self.rng.bool() => p,
                _ => id,
            };
            // (No draw without the wipe fault, so such seeds replay as before it existed.)
            let wipe = o.wipe_permille > 0 && self.rng.chance(o.wipe_permille);
            if wipe && self.may_wipe(victim) {
                self.wipe(victim);
            } else {
                self.crash(victim);
            }
        }
        for i in 0..n {
            if self.nodes[i].state == NodeState::Down && self.rng.chance(o.restart_permille) {
                self.restart(ReplicaId(i as u32 + 1));
            }
        }
        if self.rng.chance(o.pause_permille) && self.nodes[r].state == NodeState::Up {
            let ticks = self.rng.range(1, o.pause_ticks_max.max(1));
            self.pause_for(id, ticks);
        }
        if self.rng.chance(o.stall_permille) && !self.nodes[r].disk.held {
            let ticks = self.rng.range(1, 100);
            self.record(format_args!("disk of {id:?} stalls for {ticks} ticks"));
            self.hold_fsync(id, true);
            self.schedule(ticks * TICK, Event::Unstall { node: r });
        }
        if self.rng.chance(o.reconfig_permille) {
            self.random_reconfiguration();
        }
        if self.rng.chance(o.transfer_permille) {
            if let Some(p) = self.primary() {
                let to =
                    self.rng.chance(500).then(|| ReplicaId(self.rng.below(n as u64) as u32 + 1));
                let i = self.index(p);
                self.deliver(i, Pending::Input(Input::TransferPrimacy { to }));
            }
        }
    }

    /// Asks the primary to move to a random membership of 3, 5 or 7 voters.
    fn random_reconfiguration(&mut self) {
        let Some(p) = self.primary() else { return };
        let n = self.nodes.len();
        let sizes: Vec<usize> = [3, 5, 7].into_iter().filter(|s| *s <= n).collect();
        if sizes.is_empty() {
            return;
        }
        let size = self.rng.pick(&sizes);
        let mut ids: Vec<u32> = (1..=n as u32).collect();
        self.rng.shuffle(&mut ids);
        ids.truncate(size);
        ids.sort_unstable();
        let m = Membership::new(ids);
        self.record(format_args!("change membership at {p:?} to {:?}", m.voters));
        self.stats.reconfigurations += 1;
        let i = self.index(p);
        self.deliver(i, Pending::Input(Input::ChangeMembership(m)));
    }

    fn random_partition(&mut self) {
        self.stats.partitions += 1;
        let n = self.nodes.len();
        let ids: Vec<ReplicaId> = (1..=n as u32).map(ReplicaId).collect();
        match self.rng.below(3) {
            0 => {
                // A symmetric split into two sides.
                let mut shuffled = ids.clone();
                self.rng.shuffle(&mut shuffled);
                let k = self.rng.range(1, n as u64 - 1) as usize;
                let (a, b) = shuffled.split_at(k);
                self.record(format_args!("partition {a:?} | {b:?}"));
                for x in a {
                    for y in b {
                        self.net.cut_both(*x, *y);
                    }
                }
            }
            1 => {
                let x = self.rng.pick(&ids);
                self.record(format_args!("isolate {x:?}"));
                for y in &ids {
                    if *y != x {
                        self.net.cut_both(x, *y);
                    }
                }
            }
            _ => {
                // One-way cuts: some replica stops hearing from others, or vice versa.
                let cuts = self.rng.range(1, n as u64);
                for _ in 0..cuts {
                    let (x, y) = (self.rng.pick(&ids), self.rng.pick(&ids));
                    if x != y {
                        self.record(format_args!("cut {x:?} -> {y:?}"));
                        self.net.cut(x, y);
                    }
                }
            }
        }
    }

    fn check_liveness(&mut self, healed: u64) {
        if let Some(slot) = self.liveness_slot {
            // Replicas outside the final membership no longer receive the log.
            let m = self.checker.membership().clone();
            let converged = self
                .nodes
                .iter()
                .filter(|n| m.replicas().any(|r| r == n.id))
                .all(|n| n.driver.as_ref().is_some_and(|d| d.executed() >= slot));
            // A member whose disk was wiped must also have finished rebuilding.
            let rebuilt = self
                .nodes
                .iter()
                .filter(|n| m.replicas().any(|r| r == n.id))
                .all(|n| !n.disk.durable().rebuilding);
            let converged = converged && rebuilt;
            if converged {
                self.healed_at = None;
                return;
            }
        }
        if self.now > healed + self.options.liveness_ticks * TICK {
            let executed: Vec<u64> = self
                .nodes
                .iter()
                .map(|n| n.driver.as_ref().map_or(0, |d| d.executed().0))
                .collect();
            let rebuilding: Vec<ReplicaId> =
                self.nodes.iter().filter(|n| n.disk.durable().rebuilding).map(|n| n.id).collect();
            let detail = format!(
                "no convergence {} ticks after the faults stopped: new write committed at slot {:?}, replicas executed {:?}, still rebuilding {:?}",
                self.options.liveness_ticks,
                self.liveness_slot.map(|s| s.0),
                executed,
                rebuilding
            );
            if self.options.safety_only {
                // Corrupt copies on a majority may stop the cluster: allowed in this mode.
                self.stats.not_live = true;
                self.healed_at = None;
                return;
            }
            self.checker.fail(Check::Liveness, detail);
        }
    }

    // ----- clients -----

    fn client_next(&mut self, c: usize) {
        if !self.clients_active || self.clients[c].current.is_some() {
            return;
        }
        let key = self.rng.below(u64::from(self.options.keys.max(1))) as u8;
        let client = &mut self.clients[c];
        client.tokens += 1;
        client.op_no += 1;
        let token = ((c as u64 + 1) << 40) | client.tokens;
        let op_no = client.op_no;
        let op = match self.rng.below(100) {
            0..=34 => Op::Append { key, token },
            35..=49 => Op::Put { key, token },
            _ => Op::Get { key },
        };
        let via_log = self.rng.chance(self.options.read_through_log_permille);
        let exclusive = self.rng.chance(self.options.exclusive_permille);
        let first_attempt = self.clients[c].attempt + 1;
        self.clients[c].current =
            Some(Current { op, via_log, exclusive, call: self.now, op_no, first_attempt });
        self.client_send(c);
        let timeout = self.options.client_timeout_ticks * TICK;
        self.schedule(timeout, Event::ClientTimeout { client: c, op_no });
    }

    fn client_send(&mut self, c: usize) {
        let client = &mut self.clients[c];
        let Some(cur) = client.current.clone() else { return };
        client.attempt += 1;
        let ticket = ((c as u64) << 32) | client.attempt;
        let mut node = client.target;
        let pending = match cur.op {
            Op::Get { key } if self.options.stale_reads => {
                node = self.rng.below(self.nodes.len() as u64) as usize;
                Pending::Read { ticket, key, mode: ReadMode::AtLeast(Slot::ZERO) }
            }
            Op::Get { key } if !cur.via_log => {
                Pending::Read { ticket, key, mode: ReadMode::Linearizable }
            }
            op => Pending::Propose { ticket, op, exclusive: cur.exclusive },
        };
        let delay = self.rng.range(50, 300);
        self.schedule(delay, Event::Arrive { node, pending });
    }

    fn on_client_reply(&mut self, ticket: u64, reply: Reply) {
        let c = (ticket >> 32) as usize;
        let client = &self.clients[c];
        let Some(cur) = client.current.clone() else { return };
        if ticket & 0xffff_ffff != client.attempt {
            return;
        }
        match reply {
            Reply::Done { slot, response } => {
                let Some(output) = decode_output(cur.op, &response) else {
                    self.checker.fail(Check::Contract, format!("bad response to {:?}", cur.op));
                    return;
                };
                self.history.push(Operation {
                    client: c as u32,
                    op: cur.op,
                    call: cur.call,
                    ret: Some((self.now, output)),
                });
                self.stats.ops_ok += 1;
                if cur.op.is_write() && self.healed_at.is_some_and(|h| cur.call >= h) {
                    self.liveness_slot.get_or_insert(slot);
                }
                self.clients[c].current = None;
                let think = self.rng.range(0, 4 * TICK);
                self.schedule(think, Event::ClientWake { client: c });
            }
            Reply::Refused(reason) => {
                let hint = match reason {
                    rsl_core::Refusal::NotPrimary { primary }
                    | rsl_core::Refusal::Superseded { primary } => primary,
                    _ => None,
                };
                let n = self.nodes.len() as u64;
                self.clients[c].target = match hint {
                    Some(p) if p.0 >= 1 && u64::from(p.0) <= n => p.0 as usize - 1,
                    _ => self.rng.below(n) as usize,
                };
                let backoff = self.rng.range(TICK / 2, 3 * TICK);
                self.schedule(backoff, Event::ClientRetry { client: c, op_no: cur.op_no });
            }
        }
    }

    fn on_client_timeout(&mut self, c: usize, op_no: u64) {
        let Some(cur) = self.clients[c].current.clone() else { return };
        if cur.op_no != op_no {
            return;
        }
        self.push_indeterminate(c, &cur);
        self.clients[c].current = None;
        self.clients[c].target = self.rng.below(self.nodes.len() as u64) as usize;
        self.schedule(1, Event::ClientWake { client: c });
    }

    /// Starts `n` clients issuing random operations (each one outstanding at a time).
    pub fn start_clients(&mut self, n: usize) {
        self.clients_active = true;
        for _ in 0..n {
            let target = self.rng.below(self.nodes.len() as u64) as usize;
            self.clients.push(Client { target, op_no: 0, attempt: 0, current: None, tokens: 0 });
            let c = self.clients.len() - 1;
            let delay = self.rng.range(0, TICK);
            self.schedule(delay, Event::ClientWake { client: c });
        }
    }

    /// Clients finish their current operation and issue no more.
    pub fn stop_clients(&mut self) {
        self.clients_active = false;
    }

    /// Ends the run's bookkeeping: operations still outstanding become indeterminate.
    fn close_history(&mut self) {
        for c in 0..self.clients.len() {
            if let Some(cur) = self.clients[c].current.take() {
                self.push_indeterminate(c, &cur);
            }
        }
        for (ticket, (op, call)) in std::mem::take(&mut self.script_ops) {
            let client = (1 << 20) + (ticket & !SCRIPT_TICKET) as u32;
            self.indeterminate.push((self.history.len(), vec![ticket]));
            self.history.push(Operation { client, op, call, ret: None });
        }
    }

    fn push_indeterminate(&mut self, c: usize, cur: &Current) {
        let tickets =
            (cur.first_attempt..=self.clients[c].attempt).map(|a| ((c as u64) << 32) | a).collect();
        self.indeterminate.push((self.history.len(), tickets));
        self.history.push(Operation { client: c as u32, op: cur.op, call: cur.call, ret: None });
        self.stats.ops_indeterminate += 1;
    }

    /// The history to check. An indeterminate write that no replica ever executed is left
    /// out: no operation can have observed it, so it is equivalent to ordering it last, and
    /// leaving it out keeps the search small after crash-heavy runs.
    fn checked_history(&self) -> Vec<Operation> {
        let mut skip = vec![false; self.history.len()];
        for (index, tickets) in &self.indeterminate {
            let executed = tickets
                .iter()
                .any(|t| self.request_ids.get(t).is_some_and(|id| self.checker.was_executed(*id)));
            skip[*index] = !executed;
        }
        self.history.iter().zip(skip).filter(|(_, s)| !s).map(|(o, _)| o.clone()).collect()
    }

    // ----- the swarm run -----

    /// The randomized run: faults for `fault_ticks`, then heal and require liveness, then
    /// check everything.
    pub fn run_swarm(&mut self) {
        self.faults_on = true;
        self.start_clients(self.options.clients);
        self.run_to(self.options.fault_ticks * TICK);
        self.faults_on = false;
        self.heal_all();
        let bound = self.now + (self.options.liveness_ticks + 1) * TICK;
        while self.healed_at.is_some() && self.checker.failure.is_none() && self.now < bound {
            let next = self.now + TICK;
            self.run_to(next);
        }
        self.stop_clients();
        let settle = self.now + (self.options.client_timeout_ticks + 10) * TICK;
        self.run_to(settle);
        self.settled = self.healed_at.is_none();
        self.finish();
    }

    /// Final checks: acknowledged writes survive, and the history is linearizable.
    pub fn finish(&mut self) {
        self.close_history();
        self.stats.dropped = self.net.dropped;
        if self.checker.failure.is_some() {
            return;
        }
        self.stats.storage = self.storage_stats();
        // Without liveness a majority may not have executed every acknowledged slot; the
        // write must still be in its slot wherever it was executed.
        let converged = !(self.options.safety_only && self.stats.not_live);
        self.checker.check_acked_writes(converged);
        if self.checker.failure.is_some() {
            return;
        }
        if self.settled {
            self.check_all_answered();
        }
        match linearizability::check(&self.checked_history()) {
            Ok(()) => {}
            // Too many concurrent indeterminate operations to search: not a proof either way.
            Err(linearizability::Violation::Undecided { .. }) => self.stats.undecided = true,
            Err(v) => self.checker.fail(Check::Linearizability, v.to_string()),
        }
    }

    /// After a healthy settling period every read a live replica took has been answered
    /// (served or refused: never neither). Proposals are not checked here: one a deposed
    /// primary accepted only locally stays undecided until a later primary decides its slot,
    /// which in a quiet cluster may never happen (its client sees a timeout).
    fn check_all_answered(&mut self) {
        for n in &self.nodes {
            let Some(d) = &n.driver else { continue };
            if d.reads_waiting() > 0 {
                let detail = format!(
                    "{:?} still holds {} reads unanswered after the cluster settled",
                    n.id,
                    d.reads_waiting()
                );
                self.checker.fail(Check::Contract, detail);
                return;
            }
        }
    }

    /// Ends every fault: network reliable (no loss or duplication, short delays), no
    /// partitions, every replica up; drift stays. Starts the liveness clock.
    pub fn heal_all(&mut self) {
        self.record(format_args!("heal all"));
        self.net.heal();
        self.net.clear_filters();
        self.net.loss_permille = 0;
        self.net.duplicate_permille = 0;
        self.net.delay_min = self.options.delay_min.min(500);
        self.net.delay_max = self.net.delay_min + 500;
        for i in 0..self.nodes.len() {
            let id = ReplicaId(i as u32 + 1);
            self.nodes[i].disk.held = false;
            self.start_sync(i);
            match self.nodes[i].state {
                NodeState::Down => self.restart(id),
                NodeState::Paused => self.resume(id),
                NodeState::Up => {}
            }
        }
        self.healed_at = Some(self.now);
        self.liveness_slot = None;
    }

    // ----- the scripting API -----

    /// Runs `ticks` ticks of simulated time.
    pub fn run_ticks(&mut self, ticks: u64) {
        let until = self.now + ticks * TICK;
        self.run_to(until);
    }

    /// Runs until `cond` holds (checked every tick) or `ticks_max` ticks pass; returns
    /// whether it held.
    pub fn run_until(&mut self, mut cond: impl FnMut(&Sim) -> bool, ticks_max: u64) -> bool {
        for _ in 0..ticks_max {
            if cond(self) {
                return true;
            }
            self.run_ticks(1);
            if self.checker.failure.is_some() {
                return false;
            }
        }
        cond(self)
    }

    fn storage_stats(&self) -> crate::disk::DiskStats {
        let mut sum = crate::disk::DiskStats::default();
        for d in self.nodes.iter().map(|n| n.disk.stats) {
            sum.writes_corrupted += d.writes_corrupted;
            sum.reads_corrupted += d.reads_corrupted;
            sum.rests_corrupted += d.rests_corrupted;
            sum.reported_corrupt += d.reported_corrupt;
            sum.torn_tails += d.torn_tails;
        }
        sum
    }

    /// Crashes a replica: its process state is gone, a suffix of its unsynced writes may be
    /// lost (a machine crash, per `options.machine_crash_permille`).
    pub fn crash(&mut self, id: ReplicaId) {
        let machine = self.rng.chance(self.options.machine_crash_permille);
        self.crash_with(id, machine);
    }

    /// Crashes a replica: a machine crash loses its unsynced bytes (all of them, or, with
    /// `options.tear_permille`, a seeded prefix with the next write torn or a seeded subset of
    /// sectors), a process crash keeps them all (the page cache survives).
    pub fn crash_with(&mut self, id: ReplicaId, machine: bool) {
        let i = self.index(id);
        let mode = match (machine, self.rng.chance(self.options.tear_permille)) {
            (false, _) => None,
            (true, false) => Some(CrashMode::LoseAll),
            (true, true) if self.rng.bool() => Some(CrashMode::RandomPrefix),
            (true, true) => Some(CrashMode::RandomSectors),
        };
        self.crash_in(i, mode, machine);
    }

    /// Crashes a replica losing every write not yet durable.
    pub fn crash_losing_unsynced(&mut self, id: ReplicaId) {
        let i = self.index(id);
        self.crash_in(i, Some(CrashMode::LoseAll), false);
    }

    fn crash_in(&mut self, i: usize, mode: Option<CrashMode>, corruptible: bool) {
        if self.nodes[i].state == NodeState::Down {
            return;
        }
        let id = self.nodes[i].id;
        self.stats.crashes += 1;
        let unsynced = self.nodes[i].disk.unsynced();
        self.record(format_args!("crash {id:?} ({mode:?}) with {unsynced} unsynced writes"));
        match self.nodes[i].disk.crash(mode) {
            Ok(survived) => {
                for entry in &survived {
                    self.checker.durable_accept(id, entry);
                }
            }
            Err(e) => self.checker.fail(Check::Storage, format!("{id:?}: {e}")),
        }
        // Corruption stays within the fault model (a majority's disks survive): only one
        // replica at a time holds corrupt records or is rebuilding after a wiped disk, so
        // every chosen slot keeps an intact copy (safety-only mode lifts the limit).
        let others_corrupt = (0..self.nodes.len()).any(|j| j != i && self.lost_data(j));
        let allowed = self.options.safety_only || (self.nodes[i].faulty && !others_corrupt);
        if corruptible && self.rng.chance(self.options.corrupt_permille) && allowed {
            let slots: Vec<Slot> = self.nodes[i].disk.durable().log.keys().copied().collect();
            if !slots.is_empty() {
                let slot = self.rng.pick(&slots);
                self.record(format_args!("corrupt {id:?} slot {}", slot.0));
                self.nodes[i].disk.corrupt(slot);
            }
        }
        let node = &mut self.nodes[i];
        node.state = NodeState::Down;
        node.driver = None;
        node.inbox.clear();
        node.missed_ticks = 0;
    }

    /// Whether replica `i`'s disk lost data: it holds corrupt records, or was wiped and has
    /// not finished rebuilding (its disk still holds the marker).
    fn lost_data(&self, i: usize) -> bool {
        let disk = self.nodes[i].disk.durable();
        !disk.corrupt.is_empty() || disk.rebuilding
    }

    /// A wipe stays within the fault model: no other replica lost data (see `lost_data`),
    /// and no other replica's disk may corrupt records on write (latent damage `lost_data`
    /// cannot see). Safety-only mode lifts the limit: several wiped replicas may stop the
    /// cluster (none can rebuild without the others) but must never make it unsafe.
    fn may_wipe(&self, id: ReplicaId) -> bool {
        let i = self.index(id);
        let latent = self.options.write_corrupt_permille > 0;
        let others = |j: usize| j != i && (self.lost_data(j) || (latent && self.nodes[j].faulty));
        self.options.safety_only || !(0..self.nodes.len()).any(others)
    }

    /// Crashes a replica (if up) and erases its whole disk: it stays down, and restarts
    /// empty and rebuilding (`Recovered::rebuilding`). Its lost votes stay in the checker's
    /// record of durable accepts, since a primary may have counted them.
    pub fn wipe(&mut self, id: ReplicaId) {
        let i = self.index(id);
        // (A process crash: the disk is about to be erased anyway.)
        self.crash_in(i, None, false);
        self.stats.wipes += 1;
        self.record(format_args!("wipe the disk of {id:?}"));
        let faults = self.nodes[i].disk.faults;
        let seed = self.rng.next_u64();
        self.nodes[i].disk = Disk::wiped(seed, self.options.storage_bug, faults);
    }

    /// Corrupts the durable record of `slot` on a crashed replica (its checksum will fail at
    /// restart). Returns whether there was a record.
    pub fn corrupt_record(&mut self, id: ReplicaId, slot: Slot) -> bool {
        let i = self.index(id);
        assert_eq!(self.nodes[i].state, NodeState::Down, "corrupt a record only while down");
        self.record(format_args!("corrupt {id:?} slot {}", slot.0));
        self.nodes[i].disk.corrupt(slot)
    }

    /// Restarts a crashed replica from its durable state (no-op if it is not down).
    pub fn restart(&mut self, id: ReplicaId) {
        let i = self.index(id);
        if self.nodes[i].state == NodeState::Down {
            self.record(format_args!("restart {id:?}"));
            self.restart_node(i);
        }
    }

    fn restart_node(&mut self, i: usize) {
        let config = self.make_config(i);
        let recovered = match self.nodes[i].disk.recover() {
            Ok(recovered) => recovered,
            Err(e) => {
                let id = self.nodes[i].id;
                self.checker.fail(Check::Storage, format!("{id:?} at restart: {e}"));
                return;
            }
        };
        if !recovered.corrupt.is_empty() {
            let id = self.nodes[i].id;
            self.record(format_args!("{id:?} recovers with corrupt {:?}", recovered.corrupt));
        }
        let node = &mut self.nodes[i];
        node.incarnation += 1;
        node.state = NodeState::Up;
        node.missed_ticks = 0;
        let incarnation = node.incarnation;
        node.driver = Some(Driver::new(config, recovered, incarnation));
        node.machine = KvMachine::default();
        let (id, can_lead) = (node.id, node.can_become_primary);
        self.checker.restarted(id);
        let first = self.rng.range(1, self.nodes[i].tick_period);
        self.schedule(first, Event::Tick { node: i, incarnation });
        if !can_lead {
            self.process(i, Pending::Input(Input::SetCanBecomePrimary(false)));
        }
    }

    /// Pauses a replica: it takes no input until resumed, then gets the ticks it missed
    /// first and its queued inputs after, in arrival order.
    pub fn pause(&mut self, id: ReplicaId) {
        let i = self.index(id);
        if self.nodes[i].state == NodeState::Up {
            self.stats.pauses += 1;
            self.record(format_args!("pause {id:?}"));
            self.nodes[i].state = NodeState::Paused;
            self.nodes[i].pause += 1;
        }
    }

    /// Pauses a replica for `ticks` ticks.
    pub fn pause_for(&mut self, id: ReplicaId, ticks: u64) {
        self.pause(id);
        let i = self.index(id);
        let pause = self.nodes[i].pause;
        self.schedule(ticks * TICK, Event::Resume { node: i, pause });
    }

    pub fn resume(&mut self, id: ReplicaId) {
        let i = self.index(id);
        if self.nodes[i].state != NodeState::Paused {
            return;
        }
        self.record(format_args!("resume {id:?}"));
        self.nodes[i].state = NodeState::Up;
        self.nodes[i].pause += 1;
        for _ in 0..std::mem::take(&mut self.nodes[i].missed_ticks) {
            self.process(i, Pending::Input(Input::Tick));
        }
        while self.nodes[i].state == NodeState::Up {
            let Some(p) = self.nodes[i].inbox.pop_front() else { break };
            self.process(i, p);
        }
    }

    /// Cuts the links between `a` and `b` both ways.
    pub fn partition(&mut self, a: ReplicaId, b: ReplicaId) {
        self.record(format_args!("partition {a:?} <-> {b:?}"));
        self.net.cut_both(a, b);
    }

    /// Cuts `from -> to` only.
    pub fn partition_one_way(&mut self, from: ReplicaId, to: ReplicaId) {
        self.record(format_args!("cut {from:?} -> {to:?}"));
        self.net.cut(from, to);
    }

    /// Cuts a replica off from every other, both ways.
    pub fn isolate(&mut self, id: ReplicaId) {
        for other in self.ids() {
            if other != id {
                self.partition(id, other);
            }
        }
    }

    /// Restores every link (filters stay).
    pub fn heal(&mut self) {
        self.record(format_args!("heal partitions"));
        self.net.heal();
    }

    /// Drops every message `matches` accepts, until `clear_filters`.
    pub fn drop_messages(&mut self, matches: impl FnMut(&Message) -> bool + 'static) {
        self.net.add_filter(matches, FilterAction::Drop);
    }

    /// Delays every message `matches` accepts by `ticks` extra ticks.
    pub fn delay_messages(&mut self, matches: impl FnMut(&Message) -> bool + 'static, ticks: u64) {
        self.net.add_filter(matches, FilterAction::Delay(ticks * TICK));
    }

    /// Delivers every message `matches` accepts twice.
    pub fn duplicate_messages(&mut self, matches: impl FnMut(&Message) -> bool + 'static) {
        self.net.add_filter(matches, FilterAction::Duplicate);
    }

    pub fn clear_filters(&mut self) {
        self.net.clear_filters();
    }

    /// Network-wide loss, per mille.
    pub fn set_loss(&mut self, permille: u32) {
        self.net.loss_permille = permille;
    }

    /// Holds (or releases) a replica's fsyncs: writes stay unsynced while held.
    pub fn hold_fsync(&mut self, id: ReplicaId, held: bool) {
        let i = self.index(id);
        self.nodes[i].disk.held = held;
        if !held {
            self.start_sync(i);
        }
    }

    /// Feeds any input to a replica (e.g. `TransferPrimacy`).
    pub fn input(&mut self, id: ReplicaId, input: Input) {
        let i = self.index(id);
        self.deliver(i, Pending::Input(input));
    }

    /// Sets a replica's can-become-primary (kept across its restarts).
    pub fn set_can_become_primary(&mut self, id: ReplicaId, can: bool) {
        let i = self.index(id);
        self.nodes[i].can_become_primary = can;
        self.deliver(i, Pending::Input(Input::SetCanBecomePrimary(can)));
    }

    /// Proposes `op` at replica `id` directly (no client hop); returns a ticket for
    /// [`Sim::reply`]. The operation joins the checked history.
    pub fn propose(&mut self, id: ReplicaId, op: Op) -> u64 {
        let ticket = self.new_script_ticket(op);
        let i = self.index(id);
        self.deliver(i, Pending::Propose { ticket, op, exclusive: false });
        ticket
    }

    /// Reads `key` at replica `id` with `mode`; returns a ticket for [`Sim::reply`].
    pub fn read(&mut self, id: ReplicaId, key: u8, mode: ReadMode) -> u64 {
        let ticket = self.new_script_ticket(Op::Get { key });
        let i = self.index(id);
        self.deliver(i, Pending::Read { ticket, key, mode });
        ticket
    }

    fn new_script_ticket(&mut self, op: Op) -> u64 {
        self.next_script += 1;
        let ticket = SCRIPT_TICKET | self.next_script;
        self.script_ops.insert(ticket, (op, self.now));
        ticket
    }

    fn script_reply(&mut self, ticket: u64, reply: Reply) {
        if let Some((op, call)) = self.script_ops.remove(&ticket) {
            let client = (1 << 20) + (ticket & !SCRIPT_TICKET) as u32;
            if let Reply::Done { response, .. } = &reply {
                match decode_output(op, response) {
                    Some(output) => self.history.push(Operation {
                        client,
                        op,
                        call,
                        ret: Some((self.now, output)),
                    }),
                    None => self.checker.fail(Check::Contract, format!("bad response to {op:?}")),
                }
            }
        }
        self.script_replies.insert(ticket, reply);
    }

    /// The answer to a scripted proposal or read, if it came.
    pub fn reply(&self, ticket: u64) -> Option<&Reply> {
        self.script_replies.get(&ticket)
    }

    /// Asserts a condition about the cluster, failing the run with `what` if it is false.
    pub fn expect(&mut self, cond: bool, what: &str) {
        if !cond {
            self.checker.fail(Check::Contract, format!("scenario expectation: {what}"));
        }
    }

    // ----- observation -----

    pub fn ids(&self) -> Vec<ReplicaId> {
        self.nodes.iter().map(|n| n.id).collect()
    }

    pub fn state(&self, id: ReplicaId) -> NodeState {
        self.nodes[self.index(id)].state
    }

    /// The core's status of an up (or paused) replica.
    pub fn status(&self, id: ReplicaId) -> Option<Status> {
        self.nodes[self.index(id)].driver.as_ref().map(|d| d.status())
    }

    /// The replica that is primary with the highest ballot among up replicas, if any.
    pub fn primary(&self) -> Option<ReplicaId> {
        self.nodes
            .iter()
            .filter(|n| n.state == NodeState::Up)
            .filter_map(|n| n.driver.as_ref().map(|d| d.status()))
            .filter(|s| s.role == Role::Primary)
            .max_by_key(|s| s.ballot)
            .map(|s| s.id)
    }

    /// The last slot a replica executed (this incarnation), or zero if it is down.
    pub fn executed(&self, id: ReplicaId) -> Slot {
        self.nodes[self.index(id)].driver.as_ref().map_or(Slot::ZERO, |d| d.executed())
    }

    /// A replica's key-value state.
    pub fn kv(&self, id: ReplicaId) -> Option<&Kv> {
        let node = &self.nodes[self.index(id)];
        node.driver.as_ref().map(|_| &node.machine.0)
    }

    /// The replica's durable disk.
    pub fn disk(&self, id: ReplicaId) -> &Disk {
        &self.nodes[self.index(id)].disk
    }

    /// Messages sent so far, and lost so far.
    pub fn messages(&self) -> (u64, u64) {
        (self.net.sent, self.net.dropped)
    }
}

/// The storage faults of each disk: on a minority of the replicas (at most one when the
/// membership may shrink to three), so a majority keeps a good copy of every chosen slot;
/// on every replica in safety-only mode.
fn faulty_disks(options: &Options, rng: &mut Rng) -> Vec<bool> {
    let n = options.replicas + options.spares;
    let mut order: Vec<usize> = (0..n).collect();
    rng.shuffle(&mut order);
    let f = match (options.safety_only, options.spares) {
        (true, _) => n,
        (false, 0) => (options.replicas - 1) / 2,
        (false, _) => 1,
    };
    let mut out = vec![false; n];
    for &i in &order[..f.min(n)] {
        out[i] = true;
    }
    out
}

fn disk_faults(options: &Options, faulty: bool) -> DiskFaults {
    match faulty {
        true => DiskFaults {
            write_corrupt_permille: options.write_corrupt_permille,
            read_corrupt_permille: options.read_corrupt_permille,
        },
        false => DiskFaults::default(),
    }
}
