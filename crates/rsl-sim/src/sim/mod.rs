//! The simulator: a whole cluster of real [`rsl_core::Replica`]s in one thread, driven by a
//! seeded event queue over simulated time.
//!
//! Time is counted in units; a tick is [`TICK`] units, and every replica has its own tick
//! period (within the drift bound) so clocks drift apart. Every event (a tick, a message
//! delivery, an fsync completion, a client arrival, a fault) sits in one priority queue
//! ordered by (time, sequence number), so a seed fully determines the run. The same type
//! serves the randomized swarm runs ([`crate::run_seed`]) and the scripted scenarios
//! (`tests/`), through its scripting methods.
//!
//! The module is split by concern: this file holds the cluster's state and the event loop;
//! `host` carries out what a replica's driver asks (sends, writes, executions, replies);
//! `faults` injects and scripts crashes, wipes, pauses and partitions; `workload` runs the
//! simulated clients and keeps their history; `swarm` is the randomized run with its
//! liveness and end-of-run checks; `script` is the API scripted scenarios drive, and `story`
//! the assert-style helpers they tell their stories with.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};
use std::fmt::Write as _;

use bytes::Bytes;
use rsl_core::{Config, Input, Membership, Message, ReplicaId, Request, RequestId, Slot};

use crate::cause::Causes;
use crate::checker::{Checker, Failure};
use crate::digest::Digest;
use crate::disk::Disk;
use crate::driver::{Driver, Machine, Reply};
use crate::kv::{Kv, Op};
use crate::linearizability::{Observed, Operation};
use crate::net::Network;
use crate::options::{Options, TICK};
use crate::rng::Rng;

mod checkpoints;
mod event;
mod faults;
mod host;
mod paths;
mod script;
mod story;
mod swarm;
mod workload;

pub use story::ELECTION_WAIT_TICKS;

use event::{Event, Pending, Scheduled};
use faults::{disk_faults, faulty_disks};
use workload::Client;

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
    /// The shared driver; its callers are client tickets. Boxed: every step takes it out of
    /// its node and puts it back, and moving the whole replica was 14 % of a seed's CPU.
    driver: Option<Box<Driver<u64>>>,
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
    /// The core's notifications to the application, over every incarnation.
    notes: Vec<rsl_core::Notification>,
    /// This incarnation's primacy (its ballot), as the core's notifications report it.
    primacy: Option<rsl_core::Ballot>,
    /// This incarnation's accepted records per slot: the ballots it wrote it at.
    written: BTreeMap<Slot, Vec<rsl_core::Ballot>>,
    /// This incarnation's promises and votes handed over by the core to leave once their
    /// write is durable (`Action::SendWhenDurable`), with that write's seq: sent as soon as
    /// the disk's sync covers it, as the runtime's I/O thread does (`Sim::release_sends`).
    sends_when_durable: Vec<(u64, ReplicaId, Message)>,
    /// This incarnation's tick count when it last adopted a primary (heard a heartbeat or
    /// accept from it): the stickiness check's view of the core's guard.
    heard: u64,
    /// The values each slot's promises reported in the election this incarnation runs
    /// (digests), for the coverage of phase 1 with competing values.
    reports: BTreeMap<Slot, std::collections::BTreeSet<u64>>,
    /// What the promises of this incarnation's elections reported, per promise ballot: the
    /// highest ballot of a value, and of a lost (unknown) record, per slot; and the records
    /// its recovery reported corrupt. For the coverage of phase 1 over lost slots.
    promised_known: BTreeMap<(rsl_core::Ballot, Slot), rsl_core::Ballot>,
    promised_lost: BTreeMap<(rsl_core::Ballot, Slot), rsl_core::Ballot>,
    recovered_corrupt: Vec<(Slot, rsl_core::Ballot)>,
    /// When (global time) this incarnation, as primary, was asked to transfer primacy.
    transfer_asked: Option<u64>,
    /// A checkpoint is being written (the core's next request is skipped meanwhile).
    checkpoint_writing: bool,
    /// The highest commit point this incarnation heard of (its recovered commit hint, a
    /// peer's accept, heartbeat or catch-up reply, or what a primary said is chosen): the
    /// slots at or below it it may know chosen without counting votes.
    heard_commit: Slot,
}

/// Counters of one run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub events: u64,
    pub messages: u64,
    /// The largest message sent, encoded (bytes).
    pub largest_message: u64,
    /// Requests proposed above `request_bytes_max` (refused as too large).
    pub too_large: u64,
    pub dropped: u64,
    pub crashes: u64,
    /// Crashes that also wiped the disk.
    pub wipes: u64,
    pub pauses: u64,
    /// Replicas told what a primary said is chosen (`Options::chosen_permille`).
    pub chosen_told: u64,
    /// Of those, the tellings that moved the replica's commit point.
    pub chosen_learned: u64,
    pub partitions: u64,
    pub elections: u64,
    pub reconfigurations: u64,
    /// Membership operations (`Input::Reconfigure`) answered made, and refused.
    pub reconfigurations_made: u64,
    pub reconfigurations_refused: u64,
    /// Membership operations a replica's core took, those refused as superseded (their slot
    /// executed another value), and those never answered because their replica went down
    /// first (one handed to a replica that stayed up and never answered fails the seed,
    /// unless its core still holds it waiting for a slot nobody has decided yet: counted in
    /// `reconfigurations_undecided`).
    pub reconfigurations_asked: u64,
    /// Membership operations whose configuration waited for the slots before it to execute.
    pub configs_behind_slots: u64,
    pub reconfigurations_superseded: u64,
    pub reconfigurations_unanswered: u64,
    pub reconfigurations_undecided: u64,
    pub ops_ok: u64,
    pub ops_indeterminate: u64,
    pub max_slot: u64,
    pub log_loads: u64,
    /// Messages sent, by kind.
    pub kinds: BTreeMap<&'static str, u64>,
    pub checkpoint_requests: u64,
    /// Checkpoints taken, streamed to a peer, installed from a peer, loaded at a restart.
    pub checkpoints_taken: u64,
    pub checkpoints_sent: u64,
    pub checkpoints_installed: u64,
    /// Installs the core heard of at or below its executed point (checked on a copy of the
    /// core: they must change nothing).
    pub stale_installs: u64,
    pub checkpoints_loaded: u64,
    /// Checkpoint writes the store refused (a corrupted write failed its verification).
    pub checkpoints_failed: u64,
    /// Machine crashes (unsynced writes lost or torn), and power losses inside an fsync.
    pub machine_crashes: u64,
    pub power_losses: u64,
    /// Phase 1 completions that found different values for one slot in the promises.
    pub phase1_competing: u64,
    /// Phase 1 completions over a slot above the commit point reported lost (corrupt, or a
    /// torn suspect) by a promise or the candidate's own recovery, with no value reported
    /// at a ballot as high: phase 1 had to wait for every voter, or find it unrecoverable.
    pub phase1_lost: u64,
    /// Votes of a primary's earlier ballot delivered to it while it is primary at another
    /// ballot, for slots above its commit point (a new primacy's slots in flight).
    pub late_votes: u64,
    /// Primary crashes that held back the votes still to arrive at its ballot, and that
    /// rotted its newest records.
    pub votes_held: u64,
    pub tails_lost: u64,
    /// Checkpoint fallbacks over a truncated log (`Options::fallback_permille`), and restarts
    /// that found slots up to their commit point in neither their log nor the checkpoint
    /// they loaded (the slots a fallback loses).
    pub fallbacks: u64,
    pub restarts_lost_slots: u64,
    /// Learners cut off and made the voters (`Options::cut_off_change_permille`).
    pub cut_off_changes: u64,
    /// The chain of `Options::grow_lost_permille` (`Sim::grow_and_lose`), step by step: the
    /// seed drew the knob (1 or 0); growths started (a voter cut off, the learners made
    /// voters); growths the primary executed (its fsyncs and votes then held); slots lost
    /// after one (the primary crashed, the faulty voter's copy rotted: `grow_lost`); and
    /// growths given up (the primary went down, or 300 ticks passed).
    pub grow_lost_drawn: u64,
    pub grow_lost_started: u64,
    pub grow_lost_grown: u64,
    pub grow_lost: u64,
    pub grow_lost_given_up: u64,
    /// World ticks on which more replicas held lost data than the fault model allows
    /// (`Sim::over_the_fault_model`).
    pub fault_model_over: u64,
    /// Primacy transfers asked for, and those that timed out (the primary relinquished).
    pub transfers: u64,
    pub transfers_timed_out: u64,
    /// Proposals refused with an unknown outcome (a checkpoint install skipped their slot).
    pub outcomes_unknown: u64,
    /// Learners made voters by an executed configuration.
    pub promotions: u64,
    /// Wiped replicas that finished rebuilding (their disk-loss marker cleared durably).
    pub rebuilds: u64,
    /// Primaries crashed with a pipeline of undecided slots; partial-accept windows.
    pub loaded_crashes: u64,
    pub partial_accepts: u64,
    /// Linearizable reads a primary decided under its lease.
    pub lease_reads: u64,
    /// Storage faults injected and what recovery made of them (all disks).
    pub storage: crate::disk::DiskStats,
    /// Safety-only mode: the healed cluster did not converge (allowed there).
    pub not_live: bool,
    /// The linearizability search gave up (budget exceeded).
    pub undecided: bool,
}

/// A growth of the membership under way (`Sim::grow_and_lose`): the primary, the faulty
/// voter that will lose a slot after it, the voter cut off, the learners made voters, the
/// membership they make, the slot of the configuration once the primary executed it, and
/// when it gives up.
#[derive(Debug, Clone)]
struct GrowLost {
    p: ReplicaId,
    r: ReplicaId,
    c: ReplicaId,
    learners: Vec<ReplicaId>,
    target: Membership,
    slot: Option<Slot>,
    until: u64,
    /// The primary's notifications before this try (an earlier try's growth is not this
    /// one's: seed 86002451 took it for executed and rotted a slot of the old voters).
    notes_from: usize,
}

/// A membership operation's answer: the slot and membership it made, or why not.
pub type ReconfigAnswer = Result<(Slot, Membership), rsl_core::ReconfigRefusal>;

/// The simulated cluster.
pub struct Sim {
    pub options: Options,
    rng: Rng,
    /// The draws of `Options::chosen_permille`, a stream of their own (seeds without it
    /// replay as before it existed), and the claims primaries made (`Sim::tell_chosen`).
    chosen: (Rng, Vec<(ReplicaId, rsl_core::Ballot, Slot)>),
    now: u64,
    seq: u64,
    queue: BinaryHeap<Reverse<Scheduled>>,
    nodes: Vec<Node>,
    net: Network,
    clients: Vec<Client>,
    clients_active: bool,
    history: Vec<Operation>,
    /// Every value a client's or a script's read returned (for the checker's dead states).
    observed: Observed,
    /// Indeterminate operations: their index in `history` and the tickets of their attempts.
    indeterminate: Vec<(usize, Vec<u64>)>,
    checker: Checker,
    causes: Causes,
    trace: Digest,
    verbose: bool,
    /// Where to write the checked history (`--dump-history`), if anywhere.
    history_out: Option<std::path::PathBuf>,
    request_ids: BTreeMap<u64, RequestId>,
    /// Votes sent without a write behind them, by acceptors that knew the slot chosen:
    /// (voter, slot, ballot).
    vouched: std::collections::BTreeSet<(ReplicaId, Slot, rsl_core::Ballot)>,
    /// Checkpoints replicas loaded or installed: (replica, slot, digest of the state).
    checkpoint_claims: Vec<(ReplicaId, Slot, u64)>,
    /// When each request was first executed anywhere (the latest it can take effect).
    first_executed: BTreeMap<RequestId, u64>,
    /// Every client ticket a replica answered with `Done`, when, and the response (the
    /// client may have given up on it already).
    replica_replies: BTreeMap<u64, (u64, Bytes)>,
    script_ops: BTreeMap<u64, (Op, u64)>,
    /// Requests proposed above `request_bytes_max`: they must be refused, never executed.
    oversized: BTreeSet<RequestId>,
    /// The tickets of those proposals (a refusal at the door comes before the id is known).
    oversized_tickets: BTreeSet<u64>,
    script_replies: BTreeMap<u64, Reply>,
    next_script: u64,
    faults_on: bool,
    healed_at: Option<u64>,
    liveness_slot: Option<Slot>,
    settled: bool,
    /// Votes held back (`Options::late_votes_permille`): the crashed primary and its
    /// ballot, and the held messages, released when that replica is primary again.
    held_ballots: BTreeSet<(ReplicaId, rsl_core::Ballot)>,
    held_votes: Vec<Message>,
    /// A checkpoint fallback under way (`Options::fallback_permille`): the replica that
    /// will fall back, the voters cut off to lag behind it, and when it gives up.
    fallback: Option<(usize, Vec<usize>, u64)>,
    /// Removed learners to add back cut off (`Options::cut_off_change_permille`): the
    /// primary that removed them, them, and when it gives up.
    cut_off_change: Option<(ReplicaId, Vec<ReplicaId>, u64)>,
    /// When every one of them was told it was removed.
    cut_off_told: Option<u64>,
    /// A growth of the membership losing a slot after it (`Options::grow_lost_permille`).
    grow_lost: Option<GrowLost>,
    /// The end of a knob's partition, which no random heal ends earlier.
    cut_held_until: Option<u64>,
    /// Every membership operation's answer, in order (scenarios read them).
    reconfig_outcomes: Vec<(u64, ReconfigAnswer)>,
    /// Every membership operation a replica's core took (`Input::Reconfigure`), with the
    /// replica and its incarnation then, and whether it was answered (`Sim::check_operations_answered`).
    reconfig_asked: BTreeMap<u64, (usize, u64, bool)>,
    next_reconfig: u64,
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
        let n = options.nodes();
        assert!((1..=9).contains(&n), "1 to 9 replicas");
        let net = Network::new(
            options.loss_permille,
            options.duplicate_permille,
            options.delay_min,
            options.delay_max,
        );
        let cannot_lead = options.one_cannot_lead.then(|| rng.below(n as u64) as usize);
        let faulty = faulty_disks(&options, &mut rng);
        let grow_lost_drawn = u64::from(options.grow_lost_permille > 0);
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
                notes: Vec::new(),
                primacy: None,
                written: BTreeMap::new(),
                sends_when_durable: Vec::new(),
                heard_commit: Slot::ZERO,
                checkpoint_writing: false,
                reports: BTreeMap::new(),
                promised_known: BTreeMap::new(),
                promised_lost: BTreeMap::new(),
                recovered_corrupt: Vec::new(),
                transfer_asked: None,
                heard: 0,
            })
            .collect();
        for node in &mut nodes {
            node.disk.check = options.storage_check;
        }
        let mut checker = Checker::new(options.membership());
        checker.durable_commit = options.durable_commit_check;
        Sim {
            checker,
            causes: Causes::default(),
            chosen: (Rng::new(options.seed ^ 0x5445_4c4c_0000_0000), Vec::new()),
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
            observed: Observed::new(),
            indeterminate: Vec::new(),
            trace: Digest::new(),
            verbose: false,
            history_out: None,
            request_ids: BTreeMap::new(),
            vouched: Default::default(),
            checkpoint_claims: Vec::new(),
            first_executed: BTreeMap::new(),
            replica_replies: BTreeMap::new(),
            script_ops: BTreeMap::new(),
            oversized: BTreeSet::new(),
            oversized_tickets: BTreeSet::new(),
            script_replies: BTreeMap::new(),
            next_script: 0,
            faults_on: false,
            healed_at: None,
            liveness_slot: None,
            settled: false,
            held_ballots: BTreeSet::new(),
            held_votes: Vec::new(),
            fallback: None,
            cut_off_change: None,
            cut_off_told: None,
            cut_held_until: None,
            grow_lost: None,
            reconfig_outcomes: Vec::new(),
            reconfig_asked: BTreeMap::new(),
            next_reconfig: 0,
            stats: Stats { grow_lost_drawn, ..Stats::default() },
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

    /// Writes the history the linearizability check is given to `path` (as
    /// [`crate::linearizability::write_history`] does) before checking it.
    pub fn set_history_out(&mut self, path: Option<std::path::PathBuf>) {
        self.history_out = path;
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
        self.trace.digest()
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

    /// Records a happening the simulator describes in words (rare: faults, paths): its text
    /// goes into the trace.
    fn record(&mut self, args: std::fmt::Arguments<'_>) {
        let _ = write!(self.trace, "{} ", self.now);
        let _ = self.trace.write_fmt(args);
        self.show(args);
    }

    /// Prints a line of the run when verbose.
    fn show(&self, args: std::fmt::Arguments<'_>) {
        if self.verbose {
            println!("{:>9.3} {}", self.now as f64 / TICK as f64, args);
        }
    }

    fn make_config(&mut self, i: usize) -> Config {
        let mut config = Config::new(i as u32 + 1, [1]);
        config.membership = self.options.membership();
        // Spares start outside the membership: they join the running cluster when added.
        config.joining = i >= self.options.replicas + self.options.learners;
        let o = &self.options;
        config.pipeline_slots_max = o.pipeline_slots_max;
        config.batch_requests_max = o.batch_requests_max;
        // As the runtime: a turn's proposals share slots (`Event::EndOfTurn`).
        config.propose_at_turn_end = true;
        // As the runtime: a promise or a vote leaves as soon as the disk's sync covers it.
        config.held_sends_to_driver = !o.votes_from_core;
        config.proposals_queued_max = o.proposals_queued_max;
        config.reads_queued_max = o.reads_queued_max;
        config.catchup_entries_max = o.catchup_entries_max;
        config.promise_entries_max = o.promise_entries_max;
        config.log_memory_entries_max = o.log_memory_entries_max;
        config.log_memory_bytes_max = o.log_memory_bytes_max;
        config.checkpoint_interval_slots = o.checkpoint_interval_slots;
        config.log_kept_slots = o.log_kept_slots;
        config.request_bytes_max = o.request_bytes_max;
        config.batch_bytes_max = o.batch_bytes_max;
        config.message_bytes_max = o.message_bytes_max;
        config.pipeline_bytes_max = o.pipeline_bytes_max;
        config.proposals_queued_bytes_max = o.proposals_queued_bytes_max;
        config.heartbeat_ticks = o.heartbeat_ticks;
        config.election_ticks_min = o.election_ticks_min;
        config.election_ticks_max = o.election_ticks_max;
        config.lease_ticks = o.lease_ticks;
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
                if let rsl_core::message::Body::Accepted { ballot, .. } = msg.body {
                    if self.held_ballots.contains(&(msg.to, ballot)) {
                        self.held_votes.push(msg);
                        return;
                    }
                }
                self.deliver(node, Pending::Input(Input::Receive(msg)));
            }
            Event::SyncDone { node, incarnation } => self.on_sync_done(node, incarnation),
            Event::CrashInSync { node, incarnation } => {
                let up = self.nodes[node].state != NodeState::Down;
                if self.faults_on && up && self.nodes[node].incarnation == incarnation {
                    let id = self.nodes[node].id;
                    self.stats.power_losses += 1;
                    self.record(format_args!("power loss during an fsync of {id:?}"));
                    self.crash_with(id, true);
                }
            }
            Event::Durable { node, incarnation, seq } => {
                if self.nodes[node].incarnation == incarnation {
                    self.deliver(node, Pending::Input(Input::Durable { seq }));
                }
            }
            Event::EarlyDurable { node, incarnation, seq } => {
                if self.nodes[node].incarnation == incarnation {
                    if self.nodes[node].state == NodeState::Up {
                        self.release_sends(node, seq);
                    }
                    self.deliver(node, Pending::Input(Input::Durable { seq }));
                }
            }
            Event::LogLoaded { node, incarnation, token, entries } => {
                if self.nodes[node].incarnation == incarnation {
                    self.deliver(node, Pending::Input(Input::LogLoaded { token, entries }));
                }
            }
            Event::Arrive { node, pending } => self.deliver(node, pending),
            Event::EndOfTurn { node } => self.deliver(node, Pending::EndOfTurn),
            Event::ClientReply { ticket, reply } => self.on_client_reply(ticket, reply),
            Event::ClientWake { client } => self.client_next(client),
            Event::ClientRetry { client, op_no } => {
                if self.clients[client].current.as_ref().is_some_and(|c| c.op_no == op_no) {
                    self.client_send(client);
                }
            }
            Event::ClientTimeout { client, op_no } => self.on_client_timeout(client, op_no),
            Event::CheckpointWritten { node, incarnation, slot, header, data } => {
                self.on_checkpoint_written(node, incarnation, slot, &header, &data)
            }
            Event::Installed { node, incarnation, slot, membership } => {
                self.on_installed(node, incarnation, slot, membership)
            }
            Event::Restart { node } => {
                if self.faults_on {
                    self.restart(self.nodes[node].id);
                }
            }
            Event::CrashIfPrimary { node, incarnation, ballot } => {
                self.crash_if_primary(node, incarnation, ballot)
            }
            Event::CheckpointArrives { from, to, slot, header, data } => {
                self.on_checkpoint_arrives(from, to, slot, header, data)
            }
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
}
