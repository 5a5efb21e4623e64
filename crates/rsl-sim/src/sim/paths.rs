//! The membership paths' knobs of the swarm (issue 9): a checkpoint fallback over a truncated
//! log, removed learners made voters while cut off, and a slot lost after a growth of the
//! membership. Each replays the chain of events one planted bug needs (docs/testing.md, the
//! planted bugs' table), drawn per seed by `Options::draw_membership_paths`; the per-tick
//! draws that start them are in `faults.rs`.

use rsl_core::{Input, Membership, Notification, ReplicaId, Slot};
use rsl_storage::CrashMode;

use super::event::{Event, Pending};
use super::{GrowLost, NodeState, Sim};
use crate::options::TICK;

impl Sim {
    /// A checkpoint fallback over a truncated log (`Options::fallback_permille`; the path of
    /// `RecoveryIgnoresLostSlots`, seed 74099885 with `--reconfig`), in two steps. First a
    /// partition cuts off a quorum less one of the voters, none of them a replica `v` with
    /// a faulty disk: they fall behind while the others go on, and `v` takes checkpoints
    /// and truncates its log behind them. Then (`fallback_step`), once `v`'s log starts
    /// past the slots an older checkpoint (or none) holds and the lagging voters lack the
    /// last of them: the partition heals, `v`'s newest checkpoint rots at rest, `v` crashes
    /// and restarts soon from the older one, and the voters that hold those slots crash
    /// and stay down a while. The next phase 1 meets the lagging voters and a replica that
    /// lost slots it voted for. Within the fault model: one faulty disk loses data (no
    /// other replica lost any), a partition, and crashes.
    pub(super) fn checkpoint_fallback(&mut self) {
        if self.fallback.is_some() || self.net.partitioned() {
            return;
        }
        let n = self.nodes.len();
        let candidates: Vec<usize> = (0..n).filter(|v| self.may_fall_back(*v)).collect();
        if candidates.is_empty() {
            return;
        }
        let v = self.rng.pick(&candidates);
        let Some(m) = self.nodes[v].driver.as_ref().map(|d| d.status().membership) else {
            return;
        };
        let mut others: Vec<usize> =
            (0..n).filter(|j| *j != v && m.is_voter(self.nodes[*j].id)).collect();
        self.rng.shuffle(&mut others);
        others.truncate(m.quorum().saturating_sub(1));
        let lagging: Vec<ReplicaId> = others.iter().map(|j| self.nodes[*j].id).collect();
        if lagging.is_empty() {
            return;
        }
        let id = self.nodes[v].id;
        self.stats.partitions += 1;
        self.record(format_args!("cut off {lagging:?} behind {id:?}'s checkpoints"));
        for x in &lagging {
            for y in self.ids().into_iter().filter(|y| !lagging.contains(y)) {
                self.net.cut_both(*x, y);
            }
        }
        self.fallback = Some((v, others, self.now + 400 * TICK));
    }

    /// Whether replica `v` may lose data in a checkpoint fallback (the fault model).
    fn may_fall_back(&self, v: usize) -> bool {
        let node = &self.nodes[v];
        node.faulty && node.state == NodeState::Up && !self.others_lost_data(v)
    }

    /// The second step of a checkpoint fallback (see `checkpoint_fallback`), checked every
    /// tick of the world until it fires or gives up.
    pub(super) fn fallback_step(&mut self) {
        let Some((v, lagging, until)) = self.fallback.clone() else { return };
        if self.now > until || !self.may_fall_back(v) {
            self.fallback = None;
            self.heal();
            return;
        }
        let Some(status) = self.nodes[v].driver.as_ref().map(|d| d.status()) else { return };
        let checkpoints = self.nodes[v].disk.checkpoint_slots();
        let Some(&newest) = checkpoints.first() else { return };
        let older = checkpoints.get(1).copied().unwrap_or(0);
        let log = &self.nodes[v].disk.durable().log;
        let first = log.keys().next().map_or(newest + 1, |s| s.0);
        // The slots it would lose: after the older checkpoint, before its log.
        let top = (first - 1).min(newest).min(status.commit.0);
        let lags = |j: &usize| {
            let node = &self.nodes[*j];
            let behind = node.driver.as_ref().is_none_or(|d| d.status().commit.0 < top);
            behind && !node.disk.durable().log.contains_key(&Slot(top))
        };
        if top <= older || !lagging.iter().all(lags) {
            return;
        }
        self.fallback = None;
        let id = status.id;
        self.stats.fallbacks += 1;
        self.record(format_args!(
            "checkpoint fallback of {id:?}: slots {}..={top} lost",
            older + 1
        ));
        self.heal();
        let m = status.membership;
        let holders: Vec<usize> = (0..self.nodes.len())
            .filter(|j| *j != v && !lagging.contains(j) && m.is_voter(self.nodes[*j].id))
            .collect();
        for h in holders {
            self.crash_in(h, None, false);
            let ticks = self.rng.range(30, 90);
            self.schedule(ticks * TICK, Event::Restart { node: h });
        }
        if self.nodes[v].disk.corrupt_checkpoint() {
            self.record(format_args!("corrupt the newest checkpoint of {id:?}"));
        }
        self.crash_in(v, None, false);
        let ticks = self.rng.range(2, 15);
        self.schedule(ticks * TICK, Event::Restart { node: v });
    }

    /// Removed replicas made the voters again while cut off (`Options::cut_off_change_permille`;
    /// the path of `PromoteOnStaleAcks`, seed 75002710 with `--reconfig`), in two steps.
    /// First the primary removes its learners (three or more; the seeds that draw the knob
    /// start with three); they acknowledge their removal. Then (`cut_off_change_step`), once
    /// each knows it was removed, a partition cuts them off from the rest and the primary is
    /// asked to make them the voters: it must stage them and promote them only on fresh
    /// acknowledgements, after the partition heals; counting their old ones, it makes them
    /// the voters without their ever learning it, and they, believing themselves removed,
    /// never ask anyone: the cluster stops for good.
    pub(super) fn change_to_cut_off_learners(&mut self) {
        if self.cut_off_change.is_some() || self.net.partitioned() {
            return;
        }
        let Some(p) = self.primary() else { return };
        let Some(m) = self.status(p).map(|s| s.membership) else { return };
        let up = |r: &ReplicaId| self.nodes[self.index(*r)].state == NodeState::Up;
        let learners: Vec<ReplicaId> = m.learners.iter().copied().filter(up).collect();
        if learners.len() < 3 {
            return;
        }
        self.record(format_args!("remove the learners {learners:?}, to add them back cut off"));
        self.stats.reconfigurations += 1;
        let voters = Membership::new(m.voters.iter().map(|r| r.0));
        let i = self.index(p);
        self.deliver(i, Pending::Input(Input::ChangeMembership(voters)));
        self.cut_off_change = Some((p, learners, self.now + 300 * TICK));
    }

    /// The second step of `change_to_cut_off_learners`, checked every tick of the world:
    /// 20 ticks after the last of them was told it was removed (the primary no longer
    /// writes to them: their acknowledgements grow old).
    pub(super) fn cut_off_change_step(&mut self) {
        let Some((p, removed, until)) = self.cut_off_change.clone() else { return };
        if self.now > until || self.primary() != Some(p) {
            self.cut_off_change = None;
            self.cut_off_told = None;
            return;
        }
        let told = |r: &ReplicaId| {
            let notes = &self.nodes[self.index(*r)].notes;
            notes.iter().rev().take_while(|n| !matches!(n, Notification::ConfigurationChanged { membership, .. } if membership.replicas().any(|x| x == *r)))
                .any(|n| matches!(n, Notification::Removed { .. }))
        };
        if !removed.iter().all(told) {
            return;
        }
        let since = *self.cut_off_told.get_or_insert(self.now);
        if self.now < since + 20 * TICK || self.net.partitioned() {
            return;
        }
        self.cut_off_change = None;
        self.cut_off_told = None;
        self.stats.cut_off_changes += 1;
        self.stats.partitions += 1;
        let ticks = self.rng.range(50, 200);
        self.record(format_args!("cut off {removed:?} for {ticks} ticks and make them the voters"));
        for x in &removed {
            for y in self.ids() {
                if !removed.contains(&y) {
                    self.net.cut_both(*x, y);
                }
            }
        }
        self.cut_held_until = Some(self.now + ticks * TICK);
        self.stats.reconfigurations += 1;
        let target = Membership::new(removed.iter().map(|r| r.0));
        let i = self.index(p);
        self.deliver(i, Pending::Input(Input::ChangeMembership(target)));
    }

    /// A slot lost around a growth of the membership (`Options::grow_lost_permille`; the
    /// path of `UnknownUnderExecutedMembership`, seed 77049783 with `--reconfig`), in
    /// three steps. First, with three voters and two learners, a voter `c` is cut off and
    /// the primary `p` is asked to make the learners voters (five voters, a configuration
    /// `c` never hears of). Then (`grow_lost_step`), once `p` executed it: `p`'s fsyncs are
    /// held and the votes to it dropped, so a slot after the configuration is accepted by
    /// the faulty voter `r` and the two new voters (a quorum of five) while `p` neither
    /// writes it durably nor learns it chosen. Then `p` crashes (its unsynced writes lost),
    /// `r`'s copy rots and `r` restarts, the new voters crash and stay down a while, and the
    /// partition heals: `c`, whose executed membership is the old one, may stand with
    /// `p`'s and `r`'s promises, every voter of the old membership answering and one of
    /// them reporting the slot lost. The slot is governed by the new membership, whose
    /// missing voters hold it. Within the fault model: one faulty disk loses a record,
    /// crashes, a partition, a stalled disk, lost messages. The last link (an election
    /// under the old membership) completes on about one try in twenty, so a seed tries
    /// again: a draw that finds the membership grown by an earlier try makes the learners
    /// learners again, and one that finds the faulty voter leading hands its primacy on
    /// (docs/testing.md, "Where the chain of `UnknownUnderExecutedMembership` broke").
    pub(super) fn grow_and_lose(&mut self) {
        if self.grow_lost.is_some() || self.net.partitioned() || self.cut_held_until.is_some() {
            return;
        }
        let Some(p) = self.primary() else { return };
        let Some(m) = self.status(p).map(|s| s.membership) else { return };
        let first = self.options.membership();
        let grown = m.voters.len() == first.voters.len() + first.learners.len();
        if grown && m.learners.is_empty() && first.voters.contains(&p) {
            // An earlier try grew the membership: make the learners learners again, so that
            // a later draw tries once more (the chain's last link, an election under the old
            // membership, completes on few tries).
            self.record(format_args!("shrink back to {:?}", first.voters));
            self.stats.reconfigurations += 1;
            let i = self.index(p);
            self.deliver(i, Pending::Input(Input::ChangeMembership(first)));
            return;
        }
        let up = |r: &ReplicaId| self.nodes[self.index(*r)].state == NodeState::Up;
        let learners: Vec<ReplicaId> = m.learners.iter().copied().filter(up).take(2).collect();
        if m.voters.len() != 3 || learners.len() < 2 || !m.voters.iter().all(up) {
            return;
        }
        let others: Vec<ReplicaId> = m.voters.iter().copied().filter(|v| *v != p).collect();
        let faulty = |r: &ReplicaId| {
            let i = self.index(*r);
            self.nodes[i].faulty && !self.others_lost_data(i)
        };
        let (r, p_faulty) = (others.iter().copied().find(faulty), faulty(&p));
        let Some(r) = r else {
            if p_faulty {
                // The faulty voter leads: hand its primacy to another voter, so that a later
                // draw finds the faulty disk among the followers.
                let to = others[self.rng.below(others.len() as u64) as usize];
                self.record(format_args!("{p:?} asked to hand its primacy to {to:?}"));
                let i = self.index(p);
                self.deliver(i, Pending::Input(Input::TransferPrimacy { to: Some(to) }));
            }
            return;
        };
        self.stats.grow_lost_started += 1;
        let c = others.iter().copied().find(|v| *v != r).expect("three voters");
        let mut target = m.voters.clone();
        target.extend(&learners);
        let target = Membership::new(target.iter().map(|x| x.0));
        self.stats.partitions += 1;
        self.stats.reconfigurations += 1;
        self.record(format_args!(
            "cut off {c:?} and grow to {:?} ({r:?} to lose a slot after it)",
            target.voters
        ));
        for y in self.ids().into_iter().filter(|y| *y != c) {
            self.net.cut_both(c, y);
        }
        let i = self.index(p);
        let notes_from = self.nodes[i].notes.len();
        self.deliver(i, Pending::Input(Input::ChangeMembership(target.clone())));
        self.cut_held_until = Some(self.now + 300 * TICK);
        let until = self.now + 300 * TICK;
        self.grow_lost =
            Some(GrowLost { p, r, c, learners, target, slot: None, until, notes_from });
    }

    /// The later steps of `grow_and_lose`, checked every tick of the world.
    pub(super) fn grow_lost_step(&mut self) {
        let Some(g) = self.grow_lost.clone() else { return };
        let pi = self.index(g.p);
        // (A primary whose phase 1 did not cover the membership it installs stands again.)
        let primary = self.nodes[pi].primacy.is_some() && self.nodes[pi].state == NodeState::Up;
        // The rot of step 3 must stay within the fault model, whatever happened since the
        // chain began (`others_may_have_lost_data` keeps wipes off while it runs).
        let beyond = self.others_lost_data(self.index(g.r));
        if self.now > g.until || self.nodes[pi].state == NodeState::Down || beyond {
            self.stats.grow_lost_given_up += 1;
            self.grow_lost = None;
            self.cut_held_until = None;
            self.net.clear_filters();
            self.hold_fsync(g.p, false);
            self.heal();
            return;
        }
        let Some(config) = g.slot else {
            // Step 2: once the primary executed the growth, it stops learning what is chosen.
            let notes = self.nodes[pi].notes.get(g.notes_from..).unwrap_or_default();
            let grown = notes.iter().rev().find_map(|n| match n {
                Notification::ConfigurationChanged { slot, membership }
                    if membership.voters == g.target.voters =>
                {
                    Some(*slot)
                }
                _ => None,
            });
            if let Some(slot) = grown.filter(|_| primary) {
                self.record(format_args!(
                    "{:?} grew at slot {}: hold its fsyncs and votes",
                    g.p, slot.0
                ));
                self.stats.grow_lost_grown += 1;
                self.hold_fsync(g.p, true);
                let p = g.p;
                self.net.add_filter(
                    move |m| {
                        m.to == p && matches!(m.body, rsl_core::message::Body::Accepted { .. })
                    },
                    crate::net::FilterAction::Drop,
                );
                self.grow_lost.as_mut().expect("grow_lost").slot = Some(slot);
            }
            return;
        };
        // Step 3: a slot after the growth, accepted durably by `r` and the new voters.
        let Some(ballot) = self.nodes[pi].primacy else { return };
        let holds = |id: ReplicaId, s: &Slot| {
            let log = &self.nodes[self.index(id)].disk.durable().log;
            log.get(s).is_some_and(|e| e.ballot == ballot)
        };
        let ri = self.index(g.r);
        let slot = self.nodes[ri].disk.durable().log.keys().rev().copied().find(|s| {
            let others = holds(g.r, s) && g.learners.iter().all(|l| holds(*l, s));
            *s > config && others && !self.nodes[pi].disk.durable().log.contains_key(s)
        });
        let Some(slot) = slot else { return };
        self.grow_lost = None;
        self.stats.grow_lost += 1;
        self.record(format_args!("{:?} loses slot {} after the growth", g.r, slot.0));
        self.net.clear_filters();
        self.crash_in(pi, Some(CrashMode::LoseAll), false);
        self.nodes[pi].disk.held = false;
        let ticks = self.rng.range(3, 15);
        self.schedule(ticks * TICK, Event::Restart { node: pi });
        self.nodes[ri].disk.corrupt(slot);
        self.crash_in(ri, None, false);
        let ticks = self.rng.range(3, 15);
        self.schedule(ticks * TICK, Event::Restart { node: ri });
        for l in &g.learners {
            let li = self.index(*l);
            self.crash_in(li, None, false);
            let ticks = self.rng.range(40, 100);
            self.schedule(ticks * TICK, Event::Restart { node: li });
        }
        self.cut_held_until = None;
        self.record(format_args!("{:?} hears again", g.c));
        self.heal();
    }
}
