//! Membership operations and a replica's own place in the membership: joining a running
//! cluster, being removed from it.
//!
//! **Operations** (`Input::Reconfigure`): the primary checks one operation (add a learner,
//! promote a learner that caught up, remove a member, replace a voter by a learner that
//! caught up) against the current membership, proposes the resulting configuration once every
//! slot before it has executed (at once on an idle pipeline; `propose_config`), and answers
//! when its slot executes: made (the value chosen there is the one it proposed)
//! or superseded. At most one change is in flight, and a change that would leave the new
//! voters without a quorum that answered the primary recently is refused, so that no
//! operation stops the cluster by itself. Every refusal is answered at once.
//!
//! **Joining**: a replica started to join a running cluster (`Config::joining`) is a member
//! of nothing until it executes the configuration that adds it; it records that slot durably
//! (`Write::MemberSince`), so that after a restart it tells the replay of its own addition
//! from a removal.
//!
//! **Removal**: a replica that executes a configuration that leaves it out is removed. It
//! keeps answering catch-up requests, since the new voters may have missed the change's commit
//! (docs/protocol.md, "Liveness of membership changes"), and probes the new voters until a
//! quorum of them reports a commit point at or past the change; then `Notification::Removed` tells
//! the driver nothing needs it any more.

use std::collections::BTreeMap;

use crate::io::{Action, MembershipOp, Notification, ReconfigRefusal, Write};
use crate::limits::{LEARNERS_MAX, MEMBER_ADDR_BYTES_MAX, MEMBER_DATA_BYTES_MAX, VOTERS_MAX};
use crate::message::Body;
use crate::replica::{Removal, Replica, Role};
use crate::types::{Membership, ReplicaId, Slot, Value};

impl Replica {
    /// At start: whether this replica is a member yet, and whether it was removed already
    /// (its checkpoint's membership leaves it out, and it became a member before that).
    pub(crate) fn start_membership(&mut self, recovered: Option<Slot>) {
        self.member_since = recovered.or((!self.config.joining).then_some(Slot::ZERO));
        let executed = self.checkpoint;
        let removed =
            self.member_since.is_some_and(|s| executed >= s) && !self.membership.contains(self.id);
        if removed {
            self.removal =
                Some(Removal { slot: executed, heard: BTreeMap::new(), done: false, probed: None });
        }
        ensure!(
            self.removal.is_none() || self.member_since.is_some(),
            "removed without having been a member"
        );
    }

    /// A configuration executed at `slot` (the membership is already the new one): this
    /// replica may have joined, been removed, or been added back.
    pub(crate) fn membership_changed(&mut self, slot: Slot, out: &mut Vec<Action>) {
        let member = self.membership.contains(self.id);
        match self.member_since {
            None if member => {
                self.member_since = Some(slot);
                self.persist(Write::MemberSince(slot), out);
            }
            // A replay of what came before this replica joined: it was no member then.
            None => {}
            Some(since) if slot <= since => {}
            Some(_) if member => self.removal = None,
            Some(_) if self.removal.is_none() => {
                self.removal =
                    Some(Removal { slot, heard: BTreeMap::new(), done: false, probed: None });
            }
            Some(_) => {}
        }
        ensure!(!member || self.removal.is_none(), "a member marked removed");
        ensure!(!member || self.member_since.is_some(), "a member still joining");
    }

    /// A membership operation: refused at once, or proposed and answered when its slot
    /// executes (`settle_change`).
    pub(crate) fn on_reconfigure(&mut self, id: u64, op: MembershipOp, out: &mut Vec<Action>) {
        let outcomes_before = self.change_outcomes.len();
        match self.check_reconfigure(&op) {
            // Planted: a refused operation is dropped, as if refusing were answering.
            Err(_) if planted!(self, RefusalNotAnswered) => {}
            Err(reason) => out.push(Action::Reconfigured { id, outcome: Err(reason) }),
            Ok(membership) => self.propose_config(membership, Some(id), out),
        }
        let waiting = self.primacy.as_ref().and_then(|l| l.config_waiting.as_ref());
        let proposed = self.change_outcomes.len() > outcomes_before
            || waiting.is_some_and(|(_, op)| *op == Some(id));
        let answered =
            out.iter().any(|a| matches!(a, Action::Reconfigured { id: i, .. } if *i == id));
        ensure!(
            unless self,
            RefusalNotAnswered,
            proposed != answered,
            "an operation neither proposed nor answered once"
        );
        ensure!(
            !proposed
                || self
                    .primacy
                    .as_ref()
                    .is_some_and(|l| { l.config_slot.is_some() || l.config_waiting.is_some() }),
            "a proposed change is not in flight"
        );
    }

    /// The membership `op` makes, or why the primary refuses it now.
    fn check_reconfigure(&self, op: &MembershipOp) -> Result<Membership, ReconfigRefusal> {
        let not_primary =
            || ReconfigRefusal::NotPrimary { primary: self.primary.filter(|p| *p != self.id) };
        let l = self.primacy.as_ref().ok_or_else(not_primary)?;
        if let Some(t) = &l.transfer {
            return Err(ReconfigRefusal::NotPrimary { primary: Some(t.target) });
        }
        if l.config_slot.is_some() || l.config_target.is_some() || l.config_waiting.is_some() {
            return Err(ReconfigRefusal::InFlight);
        }
        let new = self.apply_op(op)?;
        if new.voters.len() > VOTERS_MAX || new.learners.len() > LEARNERS_MAX {
            return Err(ReconfigRefusal::Invalid { reason: "too many voters or learners" });
        }
        let value = Value::Config(new.clone());
        if crate::message::value_len(&value) > self.config.value_bytes_max() {
            let reason = "the membership's value would exceed the value limit (value_bytes_max)";
            return Err(ReconfigRefusal::Invalid { reason });
        }
        let live = new.voters.iter().filter(|v| self.answered_recently(**v)).count();
        if new.voters.is_empty() || live < new.quorum() {
            return Err(ReconfigRefusal::NoQuorum { live, quorum: new.quorum() });
        }
        Ok(new)
    }

    /// The current membership with `op` applied (voters and learners kept sorted).
    fn apply_op(&self, op: &MembershipOp) -> Result<Membership, ReconfigRefusal> {
        let m = &self.membership;
        let unknown = |id: ReplicaId| ReconfigRefusal::UnknownMember { id };
        let mut new = m.clone();
        match op {
            MembershipOp::AddLearner { id, info } => {
                if m.contains(*id) {
                    return Err(ReconfigRefusal::AlreadyMember { id: *id });
                }
                if info.addr.len() > MEMBER_ADDR_BYTES_MAX
                    || info.data.len() > MEMBER_DATA_BYTES_MAX
                {
                    return Err(ReconfigRefusal::Invalid { reason: "member info too large" });
                }
                new.learners.push(*id);
                new.info.insert(*id, info.clone());
            }
            MembershipOp::Promote { id } => {
                if !m.is_learner(*id) {
                    return Err(unknown(*id));
                }
                self.check_caught_up(*id)?;
                new.learners.retain(|x| x != id);
                new.voters.push(*id);
            }
            MembershipOp::Remove { id } => {
                if !m.contains(*id) {
                    return Err(unknown(*id));
                }
                new.voters.retain(|x| x != id);
                new.learners.retain(|x| x != id);
                new.info.remove(id);
            }
            MembershipOp::Replace { old, new: joining } => {
                if !m.is_voter(*old) {
                    return Err(unknown(*old));
                }
                if !m.is_learner(*joining) {
                    return Err(unknown(*joining));
                }
                self.check_caught_up(*joining)?;
                new.learners.retain(|x| x != joining);
                new.voters.retain(|x| x != old);
                new.voters.push(*joining);
                new.info.remove(old);
            }
        }
        new.voters.sort();
        new.learners.sort();
        ensure!(new != *m, "an operation that changes nothing");
        Ok(new)
    }

    /// A learner is caught up when it acknowledged, within an election timeout, a commit
    /// point within one catch-up message (`catchup_entries_max`) of the primary's and at or
    /// past the configuration the primary executed last: a learner that is down is not,
    /// however short the log, and neither is one that has not yet learned that it is a
    /// member (for example a removed replica added back, which still believes itself
    /// removed: made a voter and missing the commit of that change, it would probe nobody
    /// for it; seed 75002710 with `--reconfig`).
    fn check_caught_up(&self, id: ReplicaId) -> Result<(), ReconfigRefusal> {
        if !self.caught_up(id) {
            return Err(ReconfigRefusal::NotCaughtUp { id, lag: self.lag_of(id) });
        }
        Ok(())
    }

    /// Whether `id` caught up (`check_caught_up`), for an operation and for the promotion
    /// step of `ChangeMembership` alike.
    pub(crate) fn caught_up(&self, id: ReplicaId) -> bool {
        let l = self.primacy.as_ref().expect("caught up known at the primary");
        let acked = l.acks.get(&id).map_or(Slot::ZERO, |a| a.commit);
        let knows_membership = id == self.id || acked >= self.membership_slot;
        let near = self.lag_of(id) <= self.config.catchup_entries_max as u64;
        near && knows_membership && self.answered_recently(id)
    }

    /// How many slots `id` is behind this primary's commit point, by its acknowledgements.
    pub(crate) fn lag_of(&self, id: ReplicaId) -> u64 {
        let l = self.primacy.as_ref().expect("lag known at the primary");
        let acked = l.acks.get(&id).map_or(Slot::ZERO, |a| a.commit);
        self.commit.0.saturating_sub(acked.0)
    }

    /// The primary itself, or a replica that acknowledged it within an election timeout.
    fn answered_recently(&self, id: ReplicaId) -> bool {
        let l = self.primacy.as_ref().expect("primacy");
        let window = u64::from(self.config.election_ticks_max);
        id == self.id || l.last_ack.get(&id).is_some_and(|t| self.now <= t + window)
    }

    /// `slot` executed `value`: answers the operation that waited for it.
    pub(crate) fn settle_change(&mut self, slot: Slot, value: &Value, out: &mut Vec<Action>) {
        let Some((id, proposed)) = self.change_outcomes.remove(&slot) else { return };
        let outcome = match value {
            Value::Config(m) if *m == proposed => Ok((slot, proposed)),
            _ => {
                Err(ReconfigRefusal::Superseded { primary: self.primary.filter(|p| *p != self.id) })
            }
        };
        out.push(Action::Reconfigured { id, outcome });
        ensure!(!self.change_outcomes.contains_key(&slot), "a change answered twice");
    }

    /// A checkpoint installed through `slot` skipped the slots of these operations: whether
    /// they were made is unknown here.
    pub(crate) fn skip_changes(&mut self, slot: Slot, out: &mut Vec<Action>) {
        let kept = self.change_outcomes.split_off(&slot.next());
        for (id, _) in std::mem::replace(&mut self.change_outcomes, kept).into_values() {
            out.push(Action::Reconfigured { id, outcome: Err(ReconfigRefusal::OutcomeUnknown) });
        }
        ensure!(self.change_outcomes.keys().all(|s| *s > slot), "a skipped change kept");
    }

    /// A removed replica probes the new voters every election timeout (the short one) until
    /// a quorum of them executed the change that removed it.
    pub(crate) fn removal_tick(&mut self, out: &mut Vec<Action>) {
        let every = u64::from(self.config.election_ticks_min);
        let now = self.now;
        let Some(r) = self.removal.as_mut() else { return };
        if r.done || r.probed.is_some_and(|t| now < t + every) {
            return;
        }
        r.probed = Some(now);
        let slot = self.commit.next();
        let voters: Vec<ReplicaId> =
            self.membership.voters.iter().copied().filter(|v| *v != self.id).collect();
        for to in voters {
            self.send(to, Body::CatchupRequest { from: slot, to: slot }, out);
        }
    }

    /// A peer said its commit point is `commit` (a catch-up reply, a heartbeat). A removed
    /// replica counts the new voters that executed the change; once they are a quorum, it is
    /// no longer needed.
    pub(crate) fn note_peer_commit(
        &mut self,
        from: ReplicaId,
        commit: Slot,
        out: &mut Vec<Action>,
    ) {
        let Some(r) = self.removal.as_mut() else { return };
        if r.done || !self.membership.is_voter(from) {
            return;
        }
        let known = r.heard.entry(from).or_insert(commit);
        *known = (*known).max(commit);
        let past = r.heard.iter().filter(|(_, c)| **c >= r.slot).map(|(id, _)| *id);
        let past: std::collections::BTreeSet<ReplicaId> = past.collect();
        if self.has_quorum(&self.membership, &past) {
            let r = self.removal.as_mut().expect("removed");
            r.done = true;
            out.push(Action::Notify(Notification::Removed { slot: r.slot }));
        }
    }
}

/// The primary's side: proposing a change, waiting for its learners, answering it once it
/// executes.
impl Replica {
    /// Proposes a configuration change. New voters join as learners first; the change that
    /// makes them voters is proposed once they have caught up.
    pub(crate) fn on_change_membership(&mut self, m: Membership, out: &mut Vec<Action>) {
        let Some(l) = self.primacy.as_ref() else { return };
        // One change in flight; a change still waiting for its learners may be replaced
        // (e.g. when a new replica never came up). A primary handing over primacy proposes
        // nothing more at its ballot (see `config_executed`).
        let (voters, learners) = (m.voters.len(), m.learners.len());
        let sized = (1..=VOTERS_MAX).contains(&voters) && learners <= LEARNERS_MAX;
        if l.config_slot.is_some() || l.config_waiting.is_some() || l.transfer.is_some() || !sized {
            return;
        }
        let promoted: Vec<ReplicaId> =
            m.voters.iter().copied().filter(|v| !self.membership.is_voter(*v)).collect();
        let m = m.with_info_from(&self.membership);
        if promoted.is_empty() {
            self.primacy.as_mut().expect("primacy").config_target = None;
            return self.propose_config(m, None, out);
        }
        let missing: Vec<ReplicaId> =
            promoted.into_iter().filter(|v| !self.membership.learners.contains(v)).collect();
        if !missing.is_empty() {
            let mut staged = self.membership.clone();
            for id in &missing {
                if let Some(info) = m.info.get(id) {
                    staged.info.insert(*id, info.clone());
                }
            }
            staged.learners.extend(missing);
            self.primacy.as_mut().expect("primacy").config_target = Some(m);
            self.propose_config(staged, None, out);
        } else {
            self.primacy.as_mut().expect("primacy").config_target = Some(m);
        }
        let l = self.primacy.as_ref().expect("primacy");
        ensure!(l.config_target.is_some(), "a promotion without a target");
        ensure!(
            l.config_slot.is_some()
                || l.config_waiting.is_some()
                || !self.membership.learners.is_empty(),
            "new voters are neither staged nor learners"
        );
    }

    /// Proposes the configuration `m` (asked for by membership operation `op`, if one did)
    /// once every slot before it has executed: at once when nothing is in flight, else when
    /// the pipeline has drained (`propose_waiting_config`; new requests wait meanwhile).
    ///
    /// A configuration is computed from the membership this replica has executed, so it
    /// must take the slot right after the last one executed: then every slot before it is
    /// chosen, and the membership it was computed from is the one that governs its slot in
    /// every future. Proposed after slots still in flight, it could land behind another
    /// configuration that a later primary chose in one of them, and install a membership
    /// computed from an older one (default seed 84907746: {1, 2, 3} plus a learner, proposed
    /// behind four undecided slots, was chosen after {4, 5, 6, 7} had removed 1, 2 and 3,
    /// and made the removed replicas the voters: no primary again).
    pub(crate) fn propose_config(&mut self, m: Membership, op: Option<u64>, out: &mut Vec<Action>) {
        let l = self.primacy.as_mut().expect("proposing a configuration without primacy");
        ensure!(l.config_waiting.is_none(), "two configurations waiting");
        l.config_waiting = Some((m, op));
        self.propose_waiting_config(out);
    }

    /// Proposes the waiting configuration if every slot before the next one has executed.
    pub(crate) fn propose_waiting_config(&mut self, out: &mut Vec<Action>) {
        let Some(l) = self.primacy.as_mut() else { return };
        let drained = planted!(self, ConfigBehindUndecided) || l.next_slot == self.executed.next();
        if l.transfer.is_some() || l.config_slot.is_some() || !drained {
            return;
        }
        let Some((m, op)) = l.config_waiting.take() else { return };
        let slot = l.next_slot;
        self.propose_slot(Value::Config(m.clone()), out);
        if let Some(id) = op {
            self.change_outcomes.insert(slot, (id, m));
        }
        ensure!(
            self.primacy.as_ref().is_some_and(|l| l.config_slot == Some(slot)),
            "a proposed configuration is not in flight"
        );
    }

    /// After a configuration executes: promote the learners once they caught up.
    pub(crate) fn config_tick(&mut self, out: &mut Vec<Action>) {
        let commit = self.commit;
        let Some(l) = self.primacy.as_ref() else { return };
        let Some(target) = l.config_target.clone() else { return };
        if l.config_slot.is_some() || l.config_waiting.is_some() || l.transfer.is_some() {
            return;
        }
        // The same rule as a promotion by operation (`caught_up`): a recent acknowledgement
        // of a commit point near ours and past the configuration that staged them. Before,
        // any acknowledgement near our commit point counted, however old: learners cut off
        // since they acknowledged their removal were made the voters, never learned it, and
        // no primary was elected again (seed 75002710 with `--reconfig`).
        let lag_max = self.config.catchup_entries_max as u64;
        let stale = planted!(self, PromoteOnStaleAcks);
        let caught_up =
            target.voters.iter().filter(|v| !self.membership.is_voter(**v)).all(|v| match stale {
                true => l.acks.get(v).is_some_and(|a| a.commit.0 + lag_max >= commit.0),
                false => self.caught_up(*v),
            });
        if caught_up {
            self.primacy.as_mut().expect("primacy").config_target = None;
            let target = target.with_info_from(&self.membership);
            self.propose_config(target, None, out);
        }
    }

    /// Notes that a configuration was executed (the pipeline may resume).
    pub(crate) fn config_executed(&mut self, slot: Slot, old: &Membership, out: &mut Vec<Action>) {
        self.membership_changed(slot, out);
        out.push(Action::Notify(Notification::ConfigurationChanged {
            slot,
            membership: self.membership.clone(),
        }));
        let removed: Vec<ReplicaId> =
            old.replicas().filter(|r| !self.membership.replicas().any(|x| x == *r)).collect();
        if let Some(l) = self.primacy.as_mut() {
            if l.config_slot.is_some_and(|s| s <= slot) {
                l.config_slot = None;
            }
            // Removed replicas keep hearing from us until they know they were removed;
            // otherwise they would time out and stand for election forever.
            l.departing.extend(removed.into_iter().map(|r| (r, slot)));
        }
        let voter = self.membership.is_voter(self.id);
        match self.role {
            Role::Primary | Role::Candidate if !voter => self.step_down(None, out),
            Role::Follower | Role::Learner => self.role = self.follower_role(),
            _ => {}
        }
        // The new membership governs the slots after this one. If this ballot's phase 1
        // promises do not meet every quorum of it, such a quorum may have accepted there, at
        // a lower ballot, a value we never saw (it may even count as chosen once this
        // configuration is known): run a fresh phase 1, which needs a quorum of the new
        // membership, before proposing anything more. Promises that meet every quorum do
        // suffice (2 of the 4 voters after a promotion from 3), so most changes keep the
        // ballot. A transferring primary proposes nothing more at this ballot anyway (it
        // relinquishes if the transfer fails).
        let uncovered = self.primacy.as_ref().is_some_and(|l| {
            l.transfer.is_none() && !self.meets_every_quorum(&self.membership, &l.promisers)
        });
        if uncovered {
            let ballot_before = self.promised;
            self.counters.elections += 1;
            self.step_down(None, out);
            self.start_prepare(None, out);
            ensure!(self.promised > ballot_before, "a reconfiguration's phase 1 not higher");
        }
        if let Some(l) = &self.primacy {
            ensure!(
                l.transfer.is_some() || self.meets_every_quorum(&self.membership, &l.promisers),
                "a primary kept a ballot whose phase 1 misses the new membership"
            );
        }
    }
}
