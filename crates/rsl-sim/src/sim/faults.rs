//! Faults: the swarm's per-tick draws (partitions, crashes and wipes, restarts, pauses, disk
//! stalls, membership changes, primacy transfers) and the fault primitives scenarios script
//! directly (crash, wipe, restart, pause, corrupt a record).

use rsl_core::{Input, MemberInfo, Membership, MembershipOp, Message, ReplicaId, Slot};
use rsl_storage::CrashMode;

use super::event::{Event, Pending};
use super::KvMachine;
use super::{NodeState, Sim};
use crate::checker::Check;
use crate::disk::{Disk, DiskFaults};
use crate::driver::Driver;
use crate::options::{Options, TICK};
use crate::rng::Rng;

impl Sim {
    // ----- faults -----

    pub(super) fn world_tick(&mut self) {
        self.schedule(TICK, Event::World);
        if self.faults_on {
            self.inject_faults();
            self.fallback_step();
            self.cut_off_change_step();
            self.grow_lost_step();
            if let Some(lost) = self.over_the_fault_model() {
                if self.stats.fault_model_over == 0 {
                    self.record(format_args!(
                        "{lost:?} hold lost data at once, over the fault model"
                    ));
                }
                self.stats.fault_model_over += 1;
            }
        }
        if let Some(healed) = self.healed_at {
            self.check_liveness(healed);
        }
    }

    pub(super) fn inject_faults(&mut self) {
        let o = self.options.clone();
        let n = self.nodes.len();
        let r = self.rng.below(n as u64) as usize;
        let id = ReplicaId(r as u32 + 1);
        if let Some(until) = self.cut_held_until {
            // A knob's partition (`cut_off_change_step`) lasts its drawn time.
            if self.now >= until {
                self.cut_held_until = None;
                self.heal();
            }
        } else if self.net.partitioned() {
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
        if self.rng.chance(o.pause_permille) {
            // Half the pauses hit the primary: it resumes with proposals in flight, a lease
            // it must not trust, and a cluster that may have moved past its log.
            let victim = match self.primary() {
                Some(p) if self.rng.bool() => p,
                _ => id,
            };
            if self.nodes[self.index(victim)].state == NodeState::Up {
                let ticks = self.rng.range(1, o.pause_ticks_max.max(1));
                self.pause_for(victim, ticks);
            }
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
        if o.chosen_permille > 0 && self.chosen.0.chance(o.chosen_permille) {
            self.tell_chosen();
        }
        if o.partial_accept_permille > 0 && self.rng.chance(o.partial_accept_permille) {
            self.partial_accepts();
        }
        if o.crash_loaded_permille > 0 && self.rng.chance(o.crash_loaded_permille) {
            self.crash_loaded_primary();
        }
        if o.fallback_permille > 0 && self.rng.chance(o.fallback_permille) {
            self.checkpoint_fallback();
        }
        if o.cut_off_change_permille > 0 && self.rng.chance(o.cut_off_change_permille) {
            self.change_to_cut_off_learners();
        }
        if o.grow_lost_permille > 0 && self.rng.chance(o.grow_lost_permille) {
            self.grow_and_lose();
        }
    }

    /// Tells a random replica what a primary said is chosen (`Input::Chosen`), as a
    /// read-index answer tells a follower: half the time the primary's ballot and commit
    /// point now (recorded), else a claim recorded earlier, however stale (chosen stays
    /// chosen, and its ballot may be long gone). Every draw is from the claims' own stream.
    pub(super) fn tell_chosen(&mut self) {
        if let Some(p) = self.primary() {
            let status = self.nodes[self.index(p)].driver.as_ref().map(|d| d.status());
            if let Some(s) = status.filter(|s| s.role == rsl_core::Role::Primary) {
                self.chosen.1.push((p, s.ballot, s.commit));
            }
        }
        let (rng, claims) = &mut self.chosen;
        if claims.is_empty() {
            return;
        }
        let pick = match rng.bool() {
            true => claims.len() - 1,
            false => rng.below(claims.len() as u64) as usize,
        };
        let (from, ballot, commit) = claims[pick];
        let to = rng.below(self.nodes.len() as u64) as usize;
        if self.nodes[to].id == from {
            return;
        }
        self.stats.chosen_told += 1;
        let id = self.nodes[to].id;
        self.record(format_args!(
            "{id:?} told that {from:?} at {ballot:?} said slots up to {} are chosen",
            commit.0
        ));
        let commit_of = |sim: &Sim| sim.nodes[to].driver.as_ref().map(|d| d.commit());
        let before = commit_of(self);
        self.deliver(to, Pending::Input(Input::Chosen { from, ballot, commit }));
        if commit_of(self) > before {
            self.stats.chosen_learned += 1;
        }
    }

    /// The primary's slots in flight beyond its commit point (by what it wrote).
    fn undecided(&self, p: ReplicaId) -> u64 {
        let n = &self.nodes[self.index(p)];
        let Some(commit) = n.driver.as_ref().map(|d| d.status().commit) else { return 0 };
        let last = n.written.keys().next_back().copied().unwrap_or(Slot::ZERO);
        last.0.saturating_sub(commit.0)
    }

    /// Crashes the primary if it has a pipeline of undecided slots in flight: the next
    /// primary must find them in phase 1, some accepted by a minority.
    fn crash_loaded_primary(&mut self) {
        let Some(p) = self.primary() else { return };
        let undecided = self.undecided(p);
        if undecided >= 4 {
            self.stats.loaded_crashes += 1;
            self.record(format_args!("crash {p:?} with {undecided} undecided slots"));
            self.crash(p);
            let node = self.index(p);
            self.restart_soon(node);
        }
    }

    /// For a few ticks the primary's accepts reach at most a minority (itself included):
    /// slots accepted by a minority, which a later phase 1 finds beside other values.
    fn partial_accepts(&mut self) {
        if let Some(p) = self.primary() {
            self.partial_accepts_of(p);
        }
    }

    /// Starts a partial-accept window for the primary `p`; returns when it ends.
    fn partial_accepts_of(&mut self, p: ReplicaId) -> u64 {
        let i = self.index(p);
        let Some(m) = self.nodes[i].driver.as_ref().map(|d| d.status().membership) else {
            return self.now;
        };
        let mut followers: Vec<ReplicaId> = m.replicas().filter(|r| *r != p).collect();
        self.rng.shuffle(&mut followers);
        let keep = self.rng.range(0, (m.quorum() as u64).saturating_sub(2)) as usize;
        let cut: Vec<ReplicaId> = followers.into_iter().skip(keep).collect();
        let ticks = self.rng.range(2, 10);
        self.stats.partial_accepts += 1;
        self.record(format_args!("accepts of {p:?} to {cut:?} lost for {ticks} ticks"));
        let until = self.now + ticks * TICK;
        self.net.partial = Some((p, cut, until));
        until
    }

    /// A chained failure, right after `p` won an election at `ballot` (in half the
    /// elections of a seed that draws partial accepts): its first slots reach a minority,
    /// then it crashes if it is still primary. Slots a minority accepted at one ballot meet
    /// slots another minority accepted at the next: the next phase 1 finds competing values.
    pub(super) fn chain_failure(&mut self, p: ReplicaId, ballot: rsl_core::Ballot) {
        let o = &self.options;
        if !self.faults_on || o.partial_accept_permille == 0 || !self.rng.chance(500) {
            return;
        }
        let until = self.partial_accepts_of(p);
        let node = self.index(p);
        let incarnation = self.nodes[node].incarnation;
        let at = until + TICK - self.now;
        self.schedule(at, Event::CrashIfPrimary { node, incarnation, ballot });
    }

    /// The second half of a chained failure.
    pub(super) fn crash_if_primary(
        &mut self,
        node: usize,
        incarnation: u64,
        ballot: rsl_core::Ballot,
    ) {
        let n = &self.nodes[node];
        if n.incarnation == incarnation && n.primacy == Some(ballot) && self.faults_on {
            let id = n.id;
            self.stats.loaded_crashes += 1;
            self.record(format_args!(
                "crash {id:?}, primary at {ballot:?}, after its partial accepts"
            ));
            self.crash(id);
            self.restart_soon(node);
        }
    }

    /// Restarts a replica a few ticks from now (the chained failures' victims come back
    /// quickly, so the next phase 1 hears from each minority).
    fn restart_soon(&mut self, node: usize) {
        let ticks = self.rng.range(5, 40);
        self.schedule(ticks * TICK, Event::Restart { node });
    }

    /// Asks the primary to move to a random membership of 3 to 7 voters. Even sizes are
    /// drawn too: replacing a member passes through one (three voters and a learner, the
    /// learner promoted, the old member removed). Two voters are not: a membership of two
    /// tolerates no fault, so the swarm's fault model (a faulty disk, a wiped one) would
    /// stop it for good.
    pub(super) fn random_reconfiguration(&mut self) {
        let Some(p) = self.primary() else { return };
        // Half the time one membership operation, as an operator's command makes it.
        if self.rng.bool() && self.random_operation(p) {
            return;
        }
        let n = self.nodes.len();
        let sizes: Vec<usize> = (3..=7).filter(|s| *s <= n).collect();
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

    /// Asks the primary for one random membership operation (add a replica as a learner,
    /// promote a learner, remove a member, replace a voter by a learner), drawn among those
    /// that apply to the current membership; false if none does. (Drawing a kind first and
    /// giving up when it did not apply made an operation of only a third of the draws.)
    fn random_operation(&mut self, p: ReplicaId) -> bool {
        let Some(m) = self.status(p).map(|s| s.membership) else { return false };
        let outside: Vec<ReplicaId> = self.ids().into_iter().filter(|i| !m.contains(*i)).collect();
        // Never below three voters (see `random_reconfiguration`): a learner, or a voter of
        // more than three, may go.
        let removable: Vec<ReplicaId> =
            m.replicas().filter(|r| m.voters.len() > 3 || m.is_learner(*r)).collect();
        let learners = !m.learners.is_empty();
        let applicable = [!outside.is_empty(), learners, !removable.is_empty(), learners];
        let kinds: Vec<usize> = (0..4).filter(|k| applicable[*k]).collect();
        if kinds.is_empty() {
            return false;
        }
        let op = match self.rng.pick(&kinds) {
            0 => {
                let id = self.rng.pick(&outside);
                let info = MemberInfo { addr: format!("sim:{}", id.0), data: Default::default() };
                MembershipOp::AddLearner { id, info }
            }
            1 => MembershipOp::Promote { id: self.rng.pick(&m.learners) },
            2 => MembershipOp::Remove { id: self.rng.pick(&removable) },
            _ => MembershipOp::Replace {
                old: self.rng.pick(&m.voters),
                new: self.rng.pick(&m.learners),
            },
        };
        self.record(format_args!("membership operation at {p:?}: {op:?}"));
        self.stats.reconfigurations += 1;
        self.reconfigure(p, op);
        true
    }

    pub(super) fn random_partition(&mut self) {
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
                // Half the isolations cut off the primary: its leases, its pipeline and its
                // callers are the interesting ones.
                let x = match self.primary() {
                    Some(p) if self.rng.bool() => p,
                    _ => self.rng.pick(&ids),
                };
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
        // First what a primary's crash brings with it, so that the limits below see the
        // damage it did (seed 79005333: a follower's tail rotted, then the primary's torn
        // tail made two replicas without slot 201, and the cluster waited for good). Not in
        // `crash_in`: a wipe, which checked the fault model's limits already, brings nothing.
        if let Some(ballot) = self.nodes[i].primacy.filter(|_| self.faults_on) {
            if self.nodes[i].state != NodeState::Down {
                self.primary_crashes(i, ballot);
            }
        }
        let mode = match (machine, self.rng.chance(self.options.tear_permille)) {
            (false, _) => None,
            (true, false) => Some(CrashMode::LoseAll),
            (true, true) if self.rng.bool() => Some(CrashMode::RandomPrefix),
            (true, true) => Some(CrashMode::RandomSectors),
        };
        // A torn tail leaves suspects: identities recovery must report as possibly accepted,
        // exactly like corrupt records (it cannot tell a torn unsynced write from an
        // acknowledged record corrupted on write). That is lost data, and the fault model
        // keeps lost data to one replica at a time, so while another replica lost data the
        // unsynced writes are lost cleanly instead (docs/testing.md, "Disk loss"; seeds
        // 5005340 and 5016162 stalled when a torn tail met a rebuilding replica).
        // Latent damage counts too (another disk that corrupts records on write may hold a
        // bad copy nobody read yet): seed 72012642, two voters, a torn tail on one and a
        // record corrupted on write on the other, both of slot 9, waited for good.
        let tears = matches!(mode, Some(CrashMode::RandomPrefix | CrashMode::RandomSectors));
        let mode = match tears && !self.options.safety_only && self.others_may_have_lost_data(i) {
            true => Some(CrashMode::LoseAll),
            false => mode,
        };
        self.crash_in(i, mode, machine);
    }

    /// Crashes a replica losing every write not yet durable.
    pub fn crash_losing_unsynced(&mut self, id: ReplicaId) {
        let i = self.index(id);
        self.crash_in(i, Some(CrashMode::LoseAll), false);
    }

    pub(super) fn crash_in(&mut self, i: usize, mode: Option<CrashMode>, corruptible: bool) {
        if self.nodes[i].state == NodeState::Down {
            return;
        }
        let id = self.nodes[i].id;
        self.stats.crashes += 1;
        self.stats.machine_crashes += u64::from(mode.is_some());
        let unsynced = self.nodes[i].disk.unsynced();
        self.record(format_args!("crash {id:?} ({mode:?}) with {unsynced} unsynced writes"));
        let promised = self.nodes[i].disk.durable().promised;
        match self.nodes[i].disk.crash(mode) {
            Ok(survived) => {
                for entry in &survived {
                    self.checker.durable_accept(id, entry);
                }
                // A promise written but never acknowledged may have survived too.
                let now = self.nodes[i].disk.durable().promised;
                if now > promised {
                    self.causes.promise_durable(id, now);
                }
            }
            Err(e) => self.checker.fail(Check::Storage, format!("{id:?}: {e}")),
        }
        // Corruption stays within the fault model (a majority's disks survive): only one
        // replica at a time holds corrupt records or is rebuilding after a wiped disk, so
        // every chosen slot keeps an intact copy (safety-only mode lifts the limit).
        let allowed =
            self.options.safety_only || (self.nodes[i].faulty && !self.others_lost_data(i));
        if corruptible && self.rng.chance(self.options.corrupt_permille) && allowed {
            let slots: Vec<Slot> = self.nodes[i].disk.durable().log.keys().copied().collect();
            // Half the time the newest checkpoint file rots instead (if there is one):
            // the restart falls back to an older one, or to the peers' checkpoints.
            if self.rng.chance(500) && self.nodes[i].disk.corrupt_checkpoint() {
                self.record(format_args!("corrupt the newest checkpoint of {id:?}"));
            } else if !slots.is_empty() {
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

    /// What a primary's crash (at `ballot`) brings with it, per the seed's knobs (issue 9,
    /// class 5). Late votes: the votes of its ballot still to arrive are held back until it
    /// is primary again, at another ballot, then arrive in a burst (a network queue that
    /// flushes when the peer is back): votes of an earlier ballot meet the slots the new
    /// primacy has in flight (`CountVotesFromOtherBallots`). A lost tail: its newest records
    /// rot (within the fault model: a faulty disk, no other replica lost data), so the
    /// next phase 1 meets slots reported lost just above the commit point, which a bare
    /// majority with this replica may have chosen (`Phase1IgnoresUnknown`).
    fn primary_crashes(&mut self, i: usize, ballot: rsl_core::Ballot) {
        let id = self.nodes[i].id;
        let (late, lost) = (self.options.late_votes_permille, self.options.lost_tail_permille);
        if late > 0 && self.rng.chance(late) {
            self.stats.votes_held += 1;
            self.record(format_args!("votes to {id:?} at {ballot:?} held until it leads again"));
            self.held_ballots.insert((id, ballot));
        }
        if lost > 0 && self.rng.chance(lost) {
            // The primary's own newest records, or (if its disk is sound) those of a
            // follower with a faulty disk, which crashes with it and comes back soon.
            let may_rot = |j: usize| {
                self.nodes[j].faulty
                    && self.nodes[j].state == NodeState::Up
                    && !self.others_lost_data(j)
            };
            let followers: Vec<usize> =
                (0..self.nodes.len()).filter(|j| *j != i && may_rot(*j)).collect();
            let victim = match may_rot(i) {
                true => Some(i),
                false if followers.is_empty() => None,
                false => Some(self.rng.pick(&followers)),
            };
            if let Some(v) = victim {
                self.rot_newest(v);
                if v != i {
                    self.crash_in(v, None, false);
                    self.restart_soon(v);
                }
            }
        }
    }

    /// Rots the newest 1 to 3 durable records of replica `i` (bit rot at rest).
    fn rot_newest(&mut self, i: usize) {
        let id = self.nodes[i].id;
        let newest: Vec<Slot> = self.nodes[i].disk.durable().log.keys().rev().copied().collect();
        let count = self.rng.range(1, 3) as usize;
        let mut rotted = false;
        for slot in newest.into_iter().take(count) {
            self.record(format_args!("corrupt {id:?} slot {} (its newest)", slot.0));
            rotted |= self.nodes[i].disk.corrupt(slot);
        }
        self.stats.tails_lost += u64::from(rotted);
    }

    /// Releases the votes held for `id` (see `primary_crashes`): each arrives after a delay
    /// of the network's range.
    pub(super) fn release_votes(&mut self, id: Option<ReplicaId>) {
        self.held_ballots.retain(|(r, _)| id.is_some_and(|id| id != *r));
        let (release, keep): (Vec<Message>, Vec<Message>) = std::mem::take(&mut self.held_votes)
            .into_iter()
            .partition(|m| id.is_none_or(|id| m.to == id));
        self.held_votes = keep;
        for msg in release {
            let delay = self.rng.range(self.net.delay_min, self.net.delay_max);
            self.schedule(delay, Event::Deliver { msg });
        }
    }

    /// The fault model's own bound, measured after every world tick: at most `max(1, the
    /// faulty disks)` replicas should hold lost data at once (`lost_data`: corrupt, rotted or
    /// lost records, or a wiped disk not yet rebuilt), since every loss but a wipe happens on
    /// a faulty disk (`faulty_disks`: a minority of the voters) and a wipe waits until no
    /// other replica may have lost data (`may_wipe`), so that a majority keeps a good copy of
    /// every chosen slot. The replicas holding lost data if more do (`None` within the bound,
    /// and always in safety-only mode). Not a failure: the engine's checks judge the run; a
    /// seed over the bound counts it (`Stats::fault_model_over`, in the campaign's coverage
    /// report) and its trace says when it first went over, so that a liveness failure there
    /// is read as the simulator's (seed 87792068's kind) before the engine is suspected.
    /// Known way over it: a faulty disk's old corrupt record, repaired since, reported again
    /// at a later recovery while another replica rebuilds (seed 88715581: replica 8's slot
    /// 3, replica 3 wiped at tick 670; harmless there, slot 3 had six other copies).
    pub(super) fn over_the_fault_model(&self) -> Option<Vec<ReplicaId>> {
        if self.options.safety_only {
            return None;
        }
        // Counted first, every world tick of every seed; listed only when over.
        let bound = self.nodes.iter().filter(|n| n.faulty).count().max(1);
        if (0..self.nodes.len()).filter(|&i| self.lost_data(i)).count() <= bound {
            return None;
        }
        Some(
            (0..self.nodes.len())
                .filter(|&i| self.lost_data(i))
                .map(|i| self.nodes[i].id)
                .collect(),
        )
    }

    /// Whether replica `i`'s disk lost data (`Disk::lost_data`). A record that rotted on a
    /// crashed replica counts from the moment it rots, not from its restart: until the
    /// restart the cluster does not see the damage, but a wipe of another replica in
    /// between would leave two replicas without a slot's value (`--reconfig --seed
    /// 70046707`: a three-voter cluster waited for good, phase 1 needing the rebuilding
    /// replica's promise to rule out the corrupt slot).
    pub(super) fn lost_data(&self, i: usize) -> bool {
        self.nodes[i].disk.lost_data()
    }

    /// Whether a replica other than `i` lost data (see `lost_data`).
    pub(super) fn others_lost_data(&self, i: usize) -> bool {
        (0..self.nodes.len()).any(|j| j != i && self.lost_data(j))
    }

    /// A wipe stays within the fault model: no other replica lost data (see `lost_data`),
    /// and no other replica's disk may corrupt records on write (latent damage `lost_data`
    /// cannot see). Safety-only mode lifts the limit: several wiped replicas may stop the
    /// cluster (none can rebuild without the others) but must never make it unsafe.
    pub fn may_wipe(&self, id: ReplicaId) -> bool {
        let i = self.index(id);
        // A cluster of one or two voters has no quorum without the wiped one: it could never
        // rebuild (docs/protocol.md, "Disk loss").
        let rebuildable = self.options.replicas >= 3;
        self.options.safety_only || (rebuildable && !self.others_may_have_lost_data(i))
    }

    /// Whether a replica other than `i` lost data (`lost_data`) or may have without anyone
    /// knowing yet: its disk corrupts records on write (latent damage, found only when the
    /// record is read back). The victim of a chain of `grow_lost_permille` in progress counts too: the chain will
    /// rot one of its slots (seed 87792068: a wipe while the chain ran, then the rot, left
    /// two replicas with lost data and a cluster that waited for good).
    fn others_may_have_lost_data(&self, i: usize) -> bool {
        let latent = self.options.write_corrupt_permille > 0;
        let doomed = |j: usize| self.grow_lost.as_ref().is_some_and(|g| g.r == self.nodes[j].id);
        let others = |j: usize| {
            j != i && (self.lost_data(j) || (latent && self.nodes[j].faulty) || doomed(j))
        };
        (0..self.nodes.len()).any(others)
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

    /// Corrupts the durable record of `slot` (bit rot at rest): a crashed replica finds it
    /// at its restart, a running one when it reads the slot back (catch-up from its log).
    /// Returns whether there was a record.
    pub fn corrupt_record(&mut self, id: ReplicaId, slot: Slot) -> bool {
        let i = self.index(id);
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

    pub(super) fn restart_node(&mut self, i: usize) {
        let config = self.make_config(i);
        let mut recovered = match self.nodes[i].disk.recover() {
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
        // The state machine starts from the newest checkpoint that verifies, if any.
        self.nodes[i].machine = KvMachine::default();
        let id = self.nodes[i].id;
        self.checker.restarted(id);
        self.load_checkpoint(i, &mut recovered);
        // Slots up to its commit point in neither its log nor the checkpoint it loaded: a
        // fallback to an older checkpoint past its log's truncation lost them.
        let logged = recovered.log.iter().map(|e| e.slot);
        let held: std::collections::BTreeSet<Slot> =
            logged.chain(recovered.corrupt.iter().map(|c| c.0)).collect();
        let after = (recovered.checkpoint.0 + 1..=recovered.commit.0).map(Slot);
        let lost: Vec<Slot> = after.filter(|s| !held.contains(s)).collect();
        self.stats.restarts_lost_slots += u64::from(!lost.is_empty());
        // Lost data for the fault model's limits (a wipe elsewhere must wait until they are
        // repaired: default seed 83002387 stalled with replica 2's lost slots and a wipe of
        // replica 1), as the core reports them: corrupt at its promise.
        self.nodes[i].disk.note_lost(lost, recovered.promised);
        let recovered_commit = recovered.commit;
        let recovered_corrupt = recovered.corrupt.clone();
        let node = &mut self.nodes[i];
        node.incarnation += 1;
        node.state = NodeState::Up;
        node.missed_ticks = 0;
        let incarnation = node.incarnation;
        let driver = Driver::new(config, recovered, incarnation);
        // What it recovered, before it replays anything: the membership of its checkpoint.
        let status = driver.status();
        node.driver = Some(Box::new(driver));
        node.primacy = None;
        node.checkpoint_writing = false;
        node.heard = 0;
        node.reports.clear();
        node.promised_known.clear();
        node.promised_lost.clear();
        node.recovered_corrupt = recovered_corrupt;
        node.transfer_asked = None;
        node.written.clear();
        node.sends_when_durable.clear();
        node.heard_commit = recovered_commit;
        let can_lead = node.can_become_primary;
        self.checker.check_membership(status.id, status.executed, &status.membership);
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
}

/// The storage faults of each disk: on a minority of the replicas (at most one when the
/// membership may shrink to three), so a majority keeps a good copy of every chosen slot;
/// on every replica in safety-only mode. Any seed with membership changes may shrink to
/// three voters, spares or not: five replicas with two faulty disks became {2, 4, 5} with
/// two faulty disks in `--reconfig --seed 70043235`.
pub(super) fn faulty_disks(options: &Options, rng: &mut Rng) -> Vec<bool> {
    let n = options.nodes();
    let mut order: Vec<usize> = (0..n).collect();
    rng.shuffle(&mut order);
    let may_shrink = options.spares > 0
        || options.reconfig_permille > 0
        || options.cut_off_change_permille > 0
        || options.grow_lost_permille > 0;
    let f = match (options.safety_only, may_shrink) {
        (true, _) => n,
        (false, false) => (options.replicas - 1) / 2,
        (false, true) => 1,
    };
    let mut out = vec![false; n];
    if options.grow_lost_permille > 0 && !options.safety_only {
        // The path of `Options::grow_lost_permille` needs the faulty disk on a voter (one of
        // the first `replicas`): on a learner it never starts.
        if let Some(&i) = order.iter().find(|i| **i < options.replicas) {
            out[i] = true;
        }
        return out;
    }
    for &i in &order[..f.min(n)] {
        out[i] = true;
    }
    out
}

pub(super) fn disk_faults(options: &Options, faulty: bool) -> DiskFaults {
    match faulty {
        true => DiskFaults {
            write_corrupt_permille: options.write_corrupt_permille,
            read_corrupt_permille: options.read_corrupt_permille,
        },
        false => DiskFaults::default(),
    }
}

#[cfg(test)]
mod tests;
