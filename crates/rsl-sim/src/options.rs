//! What one run of the simulator does: cluster size, durations, and which faults are enabled
//! at what rates. [`Options::swarm`] draws them from the seed ("swarm testing": each seed
//! explores a different mix, so rare interleavings that one fixed mix never reaches get hit).

use rsl_core::{Config, Membership, ReplicaId};

use crate::bugs::StorageBug;
use crate::rng::Rng;

/// Simulated time units per tick (a replica with no drift ticks every `TICK` units).
pub const TICK: u64 = 1000;

/// Every knob of one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub seed: u64,
    pub replicas: usize,
    /// Length of the fault phase, in ticks.
    pub fault_ticks: u64,
    /// Bound on the liveness phase: the healed cluster must commit and converge within it.
    pub liveness_ticks: u64,
    /// Network: per-message loss and duplication (per mille), delay range (time units).
    pub loss_permille: u32,
    pub duplicate_permille: u32,
    pub delay_min: u64,
    pub delay_max: u64,
    /// Per tick: chance a partition starts (when none) and ends (when one is on).
    pub partition_permille: u32,
    pub partition_heal_permille: u32,
    /// Per tick: chance a replica crashes, and chance a crashed replica restarts.
    pub crash_permille: u32,
    pub restart_permille: u32,
    /// Chance (per mille) that a crash is a machine crash (loses a suffix of unsynced writes)
    /// rather than a process crash (the page cache survives).
    pub machine_crash_permille: u32,
    /// Chance (per mille) that a machine crash also corrupts one durable log record.
    pub corrupt_permille: u32,
    /// Chance (per mille) that a crash wipes the replica's whole disk: it restarts empty and
    /// rebuilding (at most one replica wiped and not yet rebuilt at a time).
    pub wipe_permille: u32,
    /// Chance (per mille) that a machine crash tears the unsynced writes (a seeded prefix
    /// survives with the next write torn, or a seeded subset of sectors, half each) rather
    /// than losing them all.
    pub tear_permille: u32,
    /// Chance (per mille) that a machine crash hits a replica while an fsync is in flight
    /// (drawn when the fsync starts): power loss with writes half on the platter.
    pub crash_in_sync_permille: u32,
    /// Chance (per mille) that an accepted record lands with a corrupt payload byte, on a
    /// replica with a faulty disk.
    pub write_corrupt_permille: u32,
    /// Chance (per mille) that a log read (catch-up, recovery) returns a flipped byte, on a
    /// replica with a faulty disk.
    pub read_corrupt_permille: u32,
    /// Safety only: storage faults may hit every replica (no minority limit), and the
    /// liveness phase is not required (a cluster whose only copies are corrupt may stop);
    /// every safety checker stays on.
    pub safety_only: bool,
    /// Per tick: chance a replica pauses (for up to `pause_ticks_max`).
    pub pause_permille: u32,
    pub pause_ticks_max: u64,
    /// Per tick: chance the primary is asked to transfer primacy.
    pub transfer_permille: u32,
    /// The most two replicas' tick rates differ (per mille); also the core's allowance.
    pub drift_permille: u32,
    /// Per tick: chance a replica's disk stalls (no fsync completes) for up to 100 ticks.
    pub stall_permille: u32,
    /// fsync delay range (time units).
    pub fsync_min: u64,
    pub fsync_max: u64,
    /// Whether one replica is kept out of elections (can-become-primary false).
    pub one_cannot_lead: bool,
    pub clients: usize,
    pub keys: u8,
    /// A client gives up on an operation after this many ticks (its outcome is indeterminate).
    pub client_timeout_ticks: u64,
    /// Chance (per mille) that a read goes through the log as a request.
    pub read_through_log_permille: u32,
    pub exclusive_permille: u32,
    /// Core knobs (`rsl_core::Config`); where the swarm draws none, the core's defaults.
    pub pipeline_slots_max: u64,
    pub batch_requests_max: usize,
    pub proposals_queued_max: usize,
    pub reads_queued_max: usize,
    pub catchup_entries_max: usize,
    pub promise_entries_max: usize,
    pub log_memory_entries_max: usize,
    pub log_memory_bytes_max: usize,
    pub checkpoint_interval_slots: u64,
    pub log_kept_slots: u64,
    /// Size limits (bytes), the core's knobs of the same names. The swarm draws small ones on
    /// some seeds (a maximal request stays cheap) with `large_permille` of the client
    /// requests padded to sizes at and near them.
    pub request_bytes_max: usize,
    pub batch_bytes_max: usize,
    pub message_bytes_max: usize,
    pub pipeline_bytes_max: usize,
    pub proposals_queued_bytes_max: usize,
    /// Chance (per mille) that a client's write is padded to a size drawn up to and just
    /// past the limits (`Sim::draw_size`); the others carry their 10-byte operation.
    pub large_permille: u32,
    /// Timing (ticks): heartbeats, election timeouts, the lease.
    pub heartbeat_ticks: u32,
    pub election_ticks_min: u32,
    pub election_ticks_max: u32,
    pub lease_ticks: u32,
    /// The planted bug, by name (needs the `planted-bugs` feature).
    pub bug: Option<String>,
    /// Run the durable-commit check (on by default; off only to show the end-to-end checkers
    /// catch a bug on their own).
    pub durable_commit_check: bool,
    /// Cross-check every recovery against the acknowledged state (on by default; off only
    /// to show the protocol-level checkers catch a storage bug on their own).
    pub storage_check: bool,
    /// A bug planted in the harness rather than the core: clients send their reads to a
    /// random replica as fast reads of slot 0, so stale reads are served. Proves the
    /// linearizability checker catches what the per-slot checkers cannot see.
    pub stale_reads: bool,
    /// A bug planted in the simulated disk (see [`StorageBug`]); no feature needed.
    pub storage_bug: Option<StorageBug>,
    /// Replicas after the voters that start as learners of the initial membership: they
    /// receive the log and never vote.
    pub learners: usize,
    /// Replicas beyond the voters and learners that start outside the membership
    /// (candidates to add).
    pub spares: usize,
    /// Per tick: chance the primary crashes when it has at least 4 undecided slots in flight
    /// (a new primary must recover a pipeline).
    pub crash_loaded_permille: u32,
    /// Per tick: chance the primary's accepts to a random subset of the followers are lost
    /// for a few ticks (slots accepted by a minority: phase 1 later finds competing values).
    pub partial_accept_permille: u32,
    /// Per tick: chance the primary is asked to change the membership to a random set of
    /// 3 to 7 voters drawn from all replicas.
    pub reconfig_permille: u32,
    /// Chance (per mille) that a primary's crash holds back the votes of its ballot still
    /// to arrive, until it is primary again at another ballot, then delivers them in a
    /// burst: late votes of an earlier ballot meet the slots a new primacy has in flight.
    pub late_votes_permille: u32,
    /// Chance (per mille) that a primary's crash also rots its newest durable records (on a
    /// faulty disk, within the fault model): the next phase 1 meets slots reported lost
    /// just above the commit point, where a bare majority may have chosen them.
    pub lost_tail_permille: u32,
    /// Per tick: chance of a checkpoint fallback (issue 9: the path of
    /// `RecoveryIgnoresLostSlots`, reached once in 50,000 `--reconfig` seeds): a faulty
    /// replica whose log was truncated behind its newest checkpoint, with voters behind that
    /// truncation, crashes with its newest checkpoint rotted, while the voters that hold the
    /// slots it loses are down; it restarts from an older checkpoint, and the next phase 1
    /// meets the lagging voters and the slots it lost.
    pub fallback_permille: u32,
    /// Per tick: chance the primary is asked to make its learners (at least three, cut off
    /// from the rest by a partition since they last acknowledged it) the voters (issue 9:
    /// the path of `PromoteOnStaleAcks`): a promotion must wait for their fresh
    /// acknowledgements, not count old ones. Seeds that draw it start with three learners.
    pub cut_off_change_permille: u32,
    /// Per tick: chance that, with three voters and two learners, a voter is cut off while
    /// the primary makes the learners voters, and a slot after that configuration is then
    /// accepted by a faulty voter and the new voters only, its copy on the faulty voter
    /// rots and the new voters are down (issue 9: the path of
    /// `UnknownUnderExecutedMembership`): a candidate that never executed the growth must
    /// judge the lost slot under the membership that governs it. Seeds that draw it start
    /// with three voters and two learners, their one faulty disk on a voter.
    pub grow_lost_permille: u32,
    /// Per tick: chance a replica is told what a primary said is chosen (`Input::Chosen`,
    /// as the runtime does with a read-index answer, `Node::learn_chosen`): the primary's
    /// ballot and commit point now, or a claim made earlier (chosen stays chosen), to a
    /// random other replica. Drawn from a stream of its own (`Options::with_read_index`), so
    /// that seeds without it replay as before it existed.
    pub chosen_permille: u32,
    /// The core holds each promise and vote until it steps the sync's `Input::Durable`,
    /// stepped the moment the sync completes, as before the runtime's I/O thread sent them
    /// itself (2026-12-07, `Config::held_sends_to_driver`): seeds found before then replay
    /// the runs they were found in (`Options::as_found_before_votes_left_the_io_thread`).
    pub votes_from_core: bool,
}

impl Options {
    /// A quiet cluster for scripted scenarios: a reliable network with a small delay, fast
    /// fsyncs, no faults, no drift, no background clients.
    pub fn quiet(replicas: usize, seed: u64) -> Options {
        let core = Config::new(1, [1]);
        Options {
            seed,
            replicas,
            fault_ticks: 0,
            liveness_ticks: 1000,
            loss_permille: 0,
            duplicate_permille: 0,
            delay_min: 200,
            delay_max: 400,
            partition_permille: 0,
            partition_heal_permille: 0,
            crash_permille: 0,
            restart_permille: 0,
            machine_crash_permille: 0,
            corrupt_permille: 0,
            wipe_permille: 0,
            tear_permille: 0,
            crash_in_sync_permille: 0,
            write_corrupt_permille: 0,
            read_corrupt_permille: 0,
            safety_only: false,
            pause_permille: 0,
            pause_ticks_max: 0,
            transfer_permille: 0,
            drift_permille: 0,
            stall_permille: 0,
            fsync_min: 100,
            fsync_max: 300,
            one_cannot_lead: false,
            clients: 0,
            keys: 3,
            client_timeout_ticks: 200,
            read_through_log_permille: 0,
            exclusive_permille: 0,
            pipeline_slots_max: 16,
            batch_requests_max: 16,
            proposals_queued_max: core.proposals_queued_max,
            reads_queued_max: core.reads_queued_max,
            catchup_entries_max: core.catchup_entries_max,
            promise_entries_max: core.promise_entries_max,
            log_memory_entries_max: core.log_memory_entries_max,
            log_memory_bytes_max: core.log_memory_bytes_max,
            checkpoint_interval_slots: core.checkpoint_interval_slots,
            log_kept_slots: core.log_kept_slots,
            request_bytes_max: core.request_bytes_max,
            batch_bytes_max: core.batch_bytes_max,
            message_bytes_max: core.message_bytes_max,
            pipeline_bytes_max: core.pipeline_bytes_max,
            proposals_queued_bytes_max: core.proposals_queued_bytes_max,
            large_permille: 0,
            heartbeat_ticks: core.heartbeat_ticks,
            election_ticks_min: core.election_ticks_min,
            election_ticks_max: core.election_ticks_max,
            lease_ticks: core.lease_ticks,
            bug: None,
            durable_commit_check: true,
            storage_check: true,
            stale_reads: false,
            storage_bug: None,
            learners: 0,
            spares: 0,
            crash_loaded_permille: 0,
            partial_accept_permille: 0,
            reconfig_permille: 0,
            late_votes_permille: 0,
            lost_tail_permille: 0,
            fallback_permille: 0,
            cut_off_change_permille: 0,
            grow_lost_permille: 0,
            chosen_permille: 0,
            votes_from_core: false,
        }
    }

    /// Draws a fault mix from the seed (the seed also drives the run itself).
    pub fn swarm(seed: u64) -> Options {
        let mut o = Options::swarm_base(seed);
        o.draw_membership_paths(&mut Rng::new(seed ^ 0x4641_4c4c_4241_0000));
        o
    }

    /// The fault mix before the knobs of `draw_membership_paths`.
    fn swarm_base(seed: u64) -> Options {
        let mut r = Rng::new(seed ^ 0x5157_4152_4d00_0000);
        let on = |r: &mut Rng, permille: u32| r.chance(permille);
        let replicas = r.pick(&[3, 3, 3, 5, 5, 7]);
        let mut o = Options::quiet(replicas, seed);
        o.fault_ticks = 1000;
        o.liveness_ticks = 1500;
        if on(&mut r, 700) {
            o.loss_permille = r.range(0, 300) as u32;
        }
        if on(&mut r, 500) {
            o.duplicate_permille = r.range(0, 100) as u32;
        }
        o.delay_min = r.range(50, 500);
        o.delay_max =
            o.delay_min + if on(&mut r, 500) { r.range(0, 8000) } else { r.range(0, 1000) };
        if on(&mut r, 600) {
            o.partition_permille = r.range(2, 30) as u32;
            o.partition_heal_permille = r.range(5, 50) as u32;
        }
        if on(&mut r, 600) {
            o.crash_permille = r.range(1, 20) as u32;
            o.restart_permille = r.range(5, 60) as u32;
            o.machine_crash_permille = r.range(0, 1000) as u32;
            o.corrupt_permille = if on(&mut r, 300) { r.range(0, 300) as u32 } else { 0 };
        }
        if on(&mut r, 400) {
            o.pause_permille = r.range(1, 20) as u32;
            o.pause_ticks_max = r.range(5, 200);
        }
        if on(&mut r, 300) {
            o.transfer_permille = r.range(1, 20) as u32;
        }
        if on(&mut r, 700) {
            o.drift_permille = r.range(1, 100) as u32;
        }
        if on(&mut r, 300) {
            o.stall_permille = r.range(1, 20) as u32;
        }
        o.fsync_min = r.range(20, 500);
        o.fsync_max = o.fsync_min + r.range(0, 2000);
        o.one_cannot_lead = on(&mut r, 200);
        o.clients = r.range(1, 8) as usize;
        o.keys = r.range(1, 5) as u8;
        o.client_timeout_ticks = r.range(60, 300);
        o.read_through_log_permille = r.range(0, 300) as u32;
        o.exclusive_permille = if on(&mut r, 300) { r.range(0, 300) as u32 } else { 0 };
        o.pipeline_slots_max = r.pick(&[1, 2, 4, 16, 64]);
        o.batch_requests_max = r.pick(&[1, 2, 8, 64]);
        // Storage faults (drawn last, so the knobs above stay what they were per seed).
        o.tear_permille = r.range(0, 1000) as u32;
        if o.crash_permille > 0 && on(&mut r, 300) {
            o.crash_in_sync_permille = r.range(1, 10) as u32;
        }
        if on(&mut r, 300) {
            o.write_corrupt_permille = r.range(1, 30) as u32;
        }
        if on(&mut r, 300) {
            o.read_corrupt_permille = r.range(1, 200) as u32;
        }
        // Drawn from a stream of its own, so the rest of the mix is what it was before the
        // wipe fault existed.
        let mut w = Rng::new(seed ^ 0x5749_5045_0000_0000);
        if o.crash_permille > 0 && on(&mut w, 400) {
            o.wipe_permille = w.range(50, 500) as u32;
        }
        o.draw_configurations(&mut Rng::new(seed ^ 0x434f_4e46_4947_0000));
        o.draw_sizes(&mut Rng::new(seed ^ 0x5349_5a45_0000_0000));
        o.draw_primary_crashes(&mut Rng::new(seed ^ 0x4c41_5445_0000_0000));
        // Membership changes in a third of the seeds, drawn from a stream of their own too:
        // a seed that does not draw them runs as it did before they joined the swarm.
        let mut c = Rng::new(seed ^ 0x4d45_4d42_4552_0000);
        if on(&mut c, 333) {
            o = o.with_reconfiguration();
        }
        o
    }

    /// The paths of the bugs the `--reconfig` campaigns found (issue 9): checkpoint
    /// fallbacks over a truncated log, and promotions of learners cut off since their last
    /// acknowledgement. Drawn last, from a stream of their own: a seed that draws neither
    /// runs as before.
    fn draw_membership_paths(&mut self, x: &mut Rng) {
        let checkpoints = self.checkpoint_interval_slots < 100;
        if checkpoints && x.chance(400) {
            self.fallback_permille = x.range(5, 40) as u32;
        }
        let room = 9usize.saturating_sub(self.replicas + self.spares);
        if room >= 3 && x.chance(150) {
            self.learners = self.learners.max(3);
            self.cut_off_change_permille = x.range(5, 30) as u32;
        } else if x.chance(200) {
            // Three voters and two learners: the learners made voters, a faulty voter and
            // they are a quorum of five that a quorum of the old three does not see.
            self.replicas = 3;
            self.learners = 2;
            self.spares = self.spares.min(4);
            self.grow_lost_permille = x.range(10, 40) as u32;
        }
    }

    /// Small size limits on half the seeds, with requests drawn up to them (issue 8: a value
    /// larger than one message wedged a cluster, and small requests never showed it). The
    /// limits chain as `Config::validate` requires; the message limit is at its minimum
    /// (the largest value and its framing) half the time. Drawn from a stream of their own.
    fn draw_sizes(&mut self, x: &mut Rng) {
        if !x.chance(500) {
            return;
        }
        self.request_bytes_max = x.range(16, 4096) as usize;
        self.batch_bytes_max = match x.below(3) {
            0 => self.request_bytes_max,
            1 => x.range(10, self.request_bytes_max as u64) as usize,
            _ => x.range(self.request_bytes_max as u64, 4 * self.request_bytes_max as u64) as usize,
        };
        let mut c = Config::new(1, [1]);
        c.request_bytes_max = self.request_bytes_max;
        c.batch_bytes_max = self.batch_bytes_max;
        c.batch_requests_max = self.batch_requests_max;
        let least = c.value_bytes_max() + rsl_core::limits::ENTRY_FRAMING_BYTES_MAX;
        self.message_bytes_max = match x.bool() {
            true => least,
            false => least + x.range(0, 2 * self.request_bytes_max as u64) as usize,
        };
        let request = self.request_bytes_max as u64;
        self.pipeline_bytes_max = x.range(request, 8 * request) as usize;
        self.proposals_queued_bytes_max = x.range(request, 16 * request) as usize;
        self.large_permille = x.range(100, 600) as u32;
    }

    /// The configurations and rare paths of the swarm (docs/testing.md): even-sized
    /// clusters, learners, timing and size knobs near their limits, checkpoints, and faults
    /// aimed at the primary's pipeline. Drawn from a stream of their own.
    fn draw_configurations(&mut self, x: &mut Rng) {
        self.replicas = x.pick(&[2, 3, 3, 3, 4, 4, 5, 5, 6, 7]);
        if x.chance(300) {
            self.learners = x.range(1, 2) as usize;
        }
        if x.chance(500) {
            // Heartbeats, election timeouts and the lease: the lease at its bound (the
            // tightest margin the drift allows) half the time.
            self.heartbeat_ticks = x.range(2, 8) as u32;
            self.election_ticks_min = 2 * self.heartbeat_ticks + x.range(4, 40) as u32;
            self.election_ticks_max = self.election_ticks_min + x.range(5, 40) as u32;
            let min = u64::from(self.election_ticks_min);
            let bound = min - (min * u64::from(self.drift_permille)).div_ceil(1000) - 1;
            self.lease_ticks = if x.bool() { bound } else { x.range(1, bound) } as u32;
        }
        if x.chance(500) {
            self.checkpoint_interval_slots = x.range(8, 64);
            self.log_kept_slots = x.range(0, 16);
        }
        let pipeline = self.pipeline_slots_max as usize;
        if x.chance(300) {
            self.log_memory_entries_max = pipeline.max(x.range(2, 64) as usize);
            // The cap in bytes too, without a draw of its own (the other seeds' runs stay as
            // they were): about one or two of the swarm's values an entry, so that either cap
            // can be the one that drops entries.
            self.log_memory_bytes_max = self.log_memory_entries_max * 96;
        }
        if x.chance(300) {
            self.catchup_entries_max = x.range(1, 16) as usize;
        }
        if x.chance(300) {
            self.promise_entries_max = pipeline + x.range(0, 8) as usize;
        }
        if x.chance(400) {
            self.crash_loaded_permille = x.range(5, 50) as u32;
        }
        if x.chance(400) {
            self.partial_accept_permille = x.range(5, 50) as u32;
        }
        // Corruption at rest (of log records, and of checkpoints) on more of the seeds.
        if self.crash_permille > 0 && x.chance(400) {
            self.corrupt_permille = self.corrupt_permille.max(x.range(100, 500) as u32);
        }
    }

    /// What a primary's crash brings with it (issue 9, class 5: the paths two planted bugs
    /// need were reached once in thousands of seeds): late votes of its ballot held back
    /// until it leads again, and its newest records rotted. Drawn from a stream of their
    /// own, so the other knobs stay what they were per seed; both fire only when a primary
    /// crashes, so the seeds must crash (or crash a loaded primary, or chain failures).
    fn draw_primary_crashes(&mut self, x: &mut Rng) {
        let crashes = self.crash_permille > 0
            || self.crash_loaded_permille > 0
            || self.partial_accept_permille > 0;
        if crashes && x.chance(400) {
            self.late_votes_permille = x.range(300, 1000) as u32;
        }
        if crashes && x.chance(400) {
            self.lost_tail_permille = x.range(300, 1000) as u32;
        }
    }

    /// The seed's fault mix as the swarm drew it before the late-votes and lost-tail knobs
    /// joined it (2026-12-06): a seed found by an earlier campaign replays its own story
    /// (the knobs change the runs of the seeds that draw them).
    pub fn without_primary_crash_knobs(self) -> Options {
        Options { late_votes_permille: 0, lost_tail_permille: 0, ..self }.without_membership_paths()
    }

    /// The seed's fault mix as the swarm drew it before the checkpoint-fallback and
    /// cut-off-change knobs joined it (2026-12-06, branch sim6).
    pub fn without_membership_paths(self) -> Options {
        let (mut replicas, mut learners, mut spares) = (self.replicas, self.learners, self.spares);
        if self.cut_off_change_permille > 0 || self.grow_lost_permille > 0 {
            // The voters and learners it drew, and the spares membership changes drew.
            let mut base = Options::swarm_base(self.seed);
            if self.reconfig_permille > 0 {
                base = base.with_reconfiguration();
            }
            (replicas, learners, spares) = (base.replicas, base.learners, base.spares);
        }
        let off = (0, 0, 0);
        let (fallback_permille, cut_off_change_permille, grow_lost_permille) = off;
        Options {
            fallback_permille,
            cut_off_change_permille,
            grow_lost_permille,
            chosen_permille: 0,
            replicas,
            learners,
            spares,
            ..self
        }
    }

    /// Every replica the run starts: voters, learners, spares.
    pub fn nodes(&self) -> usize {
        self.replicas + self.learners + self.spares
    }

    /// The initial membership: voters 1 to `replicas`, then the learners.
    pub fn membership(&self) -> Membership {
        let voters = self.replicas as u32;
        let mut m = Membership::new(1..=voters);
        m.learners = (voters + 1..=voters + self.learners as u32).map(ReplicaId).collect();
        m
    }

    /// Plants a core bug by name (needs the `planted-bugs` feature); the fault mix stays the
    /// seed's (a bug is caught by the default swarm or not at all).
    pub fn with_bug(mut self, name: &str) -> Options {
        self.bug = Some(name.to_string());
        self
    }

    /// Safety-only mode: storage faults on every replica, more of them, and no liveness
    /// requirement (`--safety-only`).
    pub fn safety_only(mut self) -> Options {
        self.safety_only = true;
        let mut r = Rng::new(self.seed ^ 0x5341_4645_5459_0000);
        if self.crash_permille > 0 {
            self.machine_crash_permille = self.machine_crash_permille.max(300);
            self.corrupt_permille = self.corrupt_permille.max(r.range(100, 1000) as u32);
        }
        self.write_corrupt_permille = self.write_corrupt_permille.max(r.range(0, 50) as u32);
        self.read_corrupt_permille = self.read_corrupt_permille.max(r.range(0, 300) as u32);
        self
    }

    /// Adds membership changes to a swarm run: 0 to 2 spare replicas outside the initial
    /// membership, and a per-tick chance of asking the primary for a random new membership.
    /// [`Options::swarm`] draws it for a third of the seeds; `--reconfig` forces it on every
    /// seed. Idempotent: its draws come from a stream of their own.
    pub fn with_reconfiguration(mut self) -> Options {
        let mut r = Rng::new(self.seed ^ 0x5245_434f_4e46_0000);
        let room = 9usize.saturating_sub(self.replicas + self.learners);
        self.spares = (r.range(0, 2) as usize).min(room);
        self.reconfig_permille = r.range(1, 10) as u32;
        // Checkpoints carry the membership after their slot: frequent checkpoints (and a
        // short log behind them) on half of these seeds, so that replicas load and install
        // checkpoints over configuration slots (the other half keeps what the swarm drew).
        if r.chance(500) {
            self.checkpoint_interval_slots = r.range(8, 64);
            self.log_kept_slots = r.range(0, 16);
        }
        self
    }

    /// Adds what a read index tells a follower (`Options::chosen_permille`) to the seed, from
    /// a stream of its own: the rest of the seed's draws are as without it.
    pub fn with_read_index(mut self) -> Options {
        let mut r = Rng::new(self.seed ^ 0x4348_4f53_454e_0000);
        self.chosen_permille = r.range(20, 300) as u32;
        self
    }

    /// The run as it went before promises and votes left from the I/O thread (see
    /// `votes_from_core`): for the seeds found before, whose replays tell their story only so.
    pub fn as_found_before_votes_left_the_io_thread(self) -> Options {
        Options { votes_from_core: true, ..self }
    }

    /// Plants a storage bug; the fault mix stays the seed's.
    pub fn with_storage_bug(mut self, bug: StorageBug) -> Options {
        self.storage_bug = Some(bug);
        self
    }

    /// Scales both phases to `ticks` of faults (the liveness bound stays generous).
    pub fn with_ticks(mut self, ticks: u64) -> Options {
        self.fault_ticks = ticks;
        self
    }

    /// A one-line summary of the faults drawn, for failure reports.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "replicas={} learners={} ticks={} loss={}‰ dup={}‰ delay={}..{} partitions={}‰ crashes={}‰ (machine {}‰, tear {}‰, in-sync {}‰, corrupt {}‰, wipe {}‰, loaded primary {}‰) corrupt-on-write={}‰ corrupt-on-read={}‰ pauses={}‰ stalls={}‰ partial-accepts={}‰ late-votes={}‰ lost-tail={}‰ fallbacks={}‰ cut-off-changes={}‰ grow-lost={}‰ chosen={}‰ transfers={}‰ reconfig={}‰ spares={} drift={}‰ fsync={}..{} clients={} keys={}",
            self.replicas,
            self.learners,
            self.fault_ticks,
            self.loss_permille,
            self.duplicate_permille,
            self.delay_min,
            self.delay_max,
            self.partition_permille,
            self.crash_permille,
            self.machine_crash_permille,
            self.tear_permille,
            self.crash_in_sync_permille,
            self.corrupt_permille,
            self.wipe_permille,
            self.crash_loaded_permille,
            self.write_corrupt_permille,
            self.read_corrupt_permille,
            self.pause_permille,
            self.stall_permille,
            self.partial_accept_permille,
            self.late_votes_permille,
            self.lost_tail_permille,
            self.fallback_permille,
            self.cut_off_change_permille,
            self.grow_lost_permille,
            self.chosen_permille,
            self.transfer_permille,
            self.reconfig_permille,
            self.spares,
            self.drift_permille,
            self.fsync_min,
            self.fsync_max,
            self.clients,
            self.keys,
        );
        s += &format!(
            " pipeline={} batch={} timing={}/{}..{}/{} checkpoint-every={} kept={} memory={}/{}B catchup={} promise={} sizes=request {} batch {} message {} pipeline {} queued {} large {}‰",
            self.pipeline_slots_max,
            self.batch_requests_max,
            self.heartbeat_ticks,
            self.election_ticks_min,
            self.election_ticks_max,
            self.lease_ticks,
            self.checkpoint_interval_slots,
            self.log_kept_slots,
            self.log_memory_entries_max,
            self.log_memory_bytes_max,
            self.catchup_entries_max,
            self.promise_entries_max,
            self.request_bytes_max,
            self.batch_bytes_max,
            self.message_bytes_max,
            self.pipeline_bytes_max,
            self.proposals_queued_bytes_max,
            self.large_permille,
        );
        if self.one_cannot_lead {
            s += " one-cannot-lead";
        }
        if self.safety_only {
            s += " safety-only";
        }
        if let Some(b) = self.bug.clone().or(self.storage_bug.map(StorageBug::name)) {
            s += &format!(" bug={b}");
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swarm_is_a_function_of_the_seed_and_varies() {
        assert_eq!(Options::swarm(5), Options::swarm(5));
        let sizes: std::collections::BTreeSet<usize> =
            (0..100).map(|s| Options::swarm(s).replicas).collect();
        assert_eq!(sizes.into_iter().collect::<Vec<_>>(), vec![2, 3, 4, 5, 6, 7]);
        let lossy = (0..100).filter(|s| Options::swarm(*s).loss_permille > 0).count();
        assert!((30..100).contains(&lossy), "{lossy}");
        // Membership changes are drawn for some seeds, not all; forcing them is idempotent.
        let changing = (0..300).filter(|s| Options::swarm(*s).reconfig_permille > 0).count();
        assert!((60..150).contains(&changing), "{changing}");
        for s in 0..100 {
            let o = Options::swarm(s);
            let forced = o.clone().with_reconfiguration();
            assert!(forced.reconfig_permille > 0);
            if o.reconfig_permille > 0 {
                assert_eq!(forced, o);
            }
        }
        let count = |f: fn(&Options) -> bool| (0..100).filter(|s| f(&Options::swarm(*s))).count();
        assert!(count(|o| o.learners > 0) > 10, "learners");
        assert!(count(|o| o.checkpoint_interval_slots < 100) > 20, "checkpoints");
        assert!(count(|o| o.promise_entries_max < 100) > 10, "small promises");
        assert!(count(|o| o.large_permille > 0 && o.request_bytes_max <= 4096) > 30, "sizes");
        assert!(count(|o| o.late_votes_permille > 0) > 20, "late votes");
        assert!(count(|o| o.lost_tail_permille > 0) > 20, "lost tails");
        assert!(count(|o| o.fallback_permille > 0) > 10, "checkpoint fallbacks");
        assert!(count(|o| o.cut_off_change_permille > 0 && o.learners == 3) > 3, "cut off");
        let grow = |o: &Options| o.grow_lost_permille > 0 && (o.replicas, o.learners) == (3, 2);
        assert!(count(grow) > 5, "slots lost after a growth");
        // Without them, a seed's mix is what the swarm drew before they joined it.
        for s in 0..100 {
            let o = Options::swarm(s).without_membership_paths();
            assert_eq!(o, Options::swarm_base(s), "seed {s}");
        }
        for s in 0..100 {
            let o = Options::swarm(s);
            assert!(o.loss_permille <= 300 && o.delay_min <= o.delay_max);
            assert!(o.fsync_min <= o.fsync_max && o.clients >= 1 && o.keys >= 1);
            // Every drawn configuration is one the core accepts.
            for id in 1..=o.nodes() as u32 {
                let mut c = Config::new(id, [1]);
                c.membership = o.membership();
                c.pipeline_slots_max = o.pipeline_slots_max;
                c.promise_entries_max = o.promise_entries_max;
                c.log_memory_entries_max = o.log_memory_entries_max;
                c.log_memory_bytes_max = o.log_memory_bytes_max;
                c.catchup_entries_max = o.catchup_entries_max;
                c.heartbeat_ticks = o.heartbeat_ticks;
                c.election_ticks_min = o.election_ticks_min;
                c.election_ticks_max = o.election_ticks_max;
                c.lease_ticks = o.lease_ticks;
                c.clock_drift_permille = o.drift_permille;
                c.batch_requests_max = o.batch_requests_max;
                c.request_bytes_max = o.request_bytes_max;
                c.batch_bytes_max = o.batch_bytes_max;
                c.message_bytes_max = o.message_bytes_max;
                c.pipeline_bytes_max = o.pipeline_bytes_max;
                c.proposals_queued_bytes_max = o.proposals_queued_bytes_max;
                assert_eq!(c.validate(), Ok(()), "seed {s}");
            }
        }
    }
}
