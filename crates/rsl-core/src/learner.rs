//! The learner: learns which slots are chosen, executes them in order, settles proposal
//! outcomes, catches up from peers and manages checkpoints and the in-memory log.
//!
//! A slot is known chosen when (a) this replica, as primary, counted a majority of votes;
//! (b) the primary at ballot `b` says the commit point is `c >= slot` and this replica holds
//! the slot's value at that same ballot `b` (a primary proposes one value per slot per
//! ballot, and its value for a committed slot is the chosen one); or (c) a peer sent the
//! slot's chosen value in a catch-up reply. Anything else below a known commit point is
//! fetched with a catch-up request. The commit point is the longest chosen prefix; slots
//! execute in order up to it, each once.
//!
//! Every proposal this replica took ends in exactly one outcome: it appears in an
//! `Execute`, or it is refused. Requests still queued when primacy is lost are refused at once
//! (`step_down`); requests already placed in a slot wait for that slot to execute, and are
//! refused as superseded if the executed value lacks them.

use crate::io::{Action, Notification, Refusal, Write};
use crate::loads::{LOADS_PENDING_MAX, UNREADABLE_BEFORE_CHECKPOINT};
use crate::message::{body_len, entry_len, Body, Packer};
use crate::replica::{Entry, Replica, Role};
use crate::types::{Ballot, LogEntry, ReplicaId, Slot, Value};

impl Replica {
    /// The primary at `ballot` says every slot up to `commit` is chosen.
    pub(crate) fn learn_commit(
        &mut self,
        from: ReplicaId,
        ballot: Ballot,
        commit: Slot,
        out: &mut Vec<Action>,
    ) {
        let commit_before = self.commit;
        self.note_commit_hint(from, commit);
        let mut newly = Vec::new();
        let from = self.commit.next();
        let any_ballot = planted!(self, LearnCommitAtAnyBallot);
        for (slot, e) in self.log.range_mut(from..).take_while(|(s, _)| **s <= commit) {
            if (e.ballot == ballot || any_ballot) && !e.chosen {
                e.chosen = true;
                newly.push(*slot);
            }
        }
        if planted!(self, ExecuteOutOfOrder) {
            self.execute_out_of_order(&newly, out);
        }
        self.advance_commit();
        if self.commit < self.commit_hint && self.catchup_due() {
            self.request_catchup(out);
        }
        ensure!(self.commit >= commit_before, "the commit point went back");
    }

    /// The planted bug: executes newly chosen slots at once, gaps or not.
    fn execute_out_of_order(&mut self, newly: &[Slot], out: &mut Vec<Action>) {
        for slot in newly.iter().filter(|s| **s > self.commit.next()) {
            let value = self.log[slot].value.clone();
            out.push(Action::Execute { slot: *slot, value });
        }
    }

    pub(crate) fn note_commit_hint(&mut self, from: ReplicaId, commit: Slot) {
        self.commit_hint = self.commit_hint.max(commit);
        // Any peer whose commit point is above ours can serve the next slot, even if it
        // knows less than the hint: after a restart the hint comes from the disk, with no
        // peer to ask, and the peers may all know less (the slots above them were chosen by
        // a quorum whose commit reached only this replica; found by the simulator,
        // `--reconfig --seed 70060725`).
        if commit > self.commit {
            self.hint_from = Some(from);
        }
    }

    /// Extends the commit point over the chosen prefix.
    pub(crate) fn advance_commit(&mut self) {
        while self.log.get(&self.commit.next()).is_some_and(|e| e.chosen) {
            self.commit = self.commit.next();
        }
        self.commit_hint = self.commit_hint.max(self.commit);
        if let Some(l) = self.primacy.as_mut() {
            l.inflight = l.inflight.split_off(&self.commit.next());
        }
    }

    /// Executes every chosen slot after `executed`, in order.
    pub(crate) fn execute_chosen(&mut self, out: &mut Vec<Action>) {
        let executed_before = self.executed;
        while self.executed < self.commit {
            let slot = self.executed.next();
            let e = self.log.get(&slot).expect("a committed slot is missing from memory");
            require!(e.chosen, "executing {slot:?} that is not known chosen");
            let value = e.value.clone();
            self.mem_bytes += e.bytes;
            self.settle_outcomes(slot, &value, out);
            let config = if let Value::Config(m) = &value { Some(m.clone()) } else { None };
            let settle = self.change_outcomes.contains_key(&slot).then(|| value.clone());
            out.push(Action::Execute { slot, value });
            if let Some(value) = settle {
                // Answered after the slot's execution, as a proposal is.
                self.settle_change(slot, &value, out);
            }
            self.executed = slot;
            if let Some(m) = config {
                let old = std::mem::replace(&mut self.membership, m);
                self.membership_slot = slot;
                self.config_executed(slot, &old, out);
            }
        }
        if self.executed > executed_before {
            self.after_execute(out);
        }
        ensure!(self.executed >= executed_before, "executed went back");
        ensure!(self.executed <= self.commit, "executed beyond the commit point");
    }

    fn after_execute(&mut self, out: &mut Vec<Action>) {
        if self.primacy.is_some() {
            self.serve_reads(out);
            self.notify_recovered(out);
        } else {
            self.serve_reads(out);
        }
        let interval = self.config.checkpoint_interval_slots;
        if interval > 0 && self.executed.0 >= self.checkpoint_asked.0 + interval {
            self.checkpoint_asked = self.executed;
            let (slot, membership) = (self.executed, self.membership.clone());
            out.push(Action::TakeCheckpoint { slot, membership });
        }
        self.prune_memory();
    }

    fn notify_recovered(&mut self, out: &mut Vec<Action>) {
        let executed = self.executed;
        let l = self.primacy.as_mut().expect("primacy");
        if !l.recovered && executed >= l.recovery_slot {
            l.recovered = true;
            out.push(Action::Notify(Notification::PrimaryRecovered));
        }
    }

    /// This replica's proposals in `slot`: executed if the value holds them, else superseded.
    fn settle_outcomes(&mut self, slot: Slot, value: &Value, out: &mut Vec<Action>) {
        let Some(mut ids) = self.outcomes.remove(&slot) else { return };
        ids.sort();
        ids.dedup();
        let mut executed: Vec<_> = match value {
            Value::Batch(reqs) => reqs.iter().map(|r| r.id).collect(),
            _ => Vec::new(),
        };
        // Both sorted, then walked together: a slot holds up to `batch_requests_max`
        // requests, and a linear search per id made settling a slot quadratic (40% of the
        // primary's consensus thread at 3,000 requests a slot; docs/benchmarks.md). A slot's
        // requests are nearly always in order already, which the sort finds in one pass.
        executed.sort_unstable();
        let primary = self.primary.filter(|p| *p != self.id);
        let mut rest = executed.iter().peekable();
        for id in ids {
            while rest.next_if(|e| **e < id).is_some() {}
            if rest.next_if_eq(&&id).is_none() {
                out.push(Action::Refuse { id, reason: Refusal::Superseded { primary } });
            }
        }
    }

    /// Drops the oldest executed entries from memory beyond the caps, in entries and in
    /// bytes (storage keeps them). The cap in bytes keeps at least a pipeline's worth of
    /// entries in memory, as the cap in entries does (`Config::validate`), so that a
    /// follower a pipeline behind catches up from memory, not from a disk read. (Seed
    /// 87792068, which prompted the floor, turned out to be the simulator's fault model
    /// broken: two replicas with lost data at once; it passes without the floor since the
    /// simulator's fix, docs/testing.md.)
    fn prune_memory(&mut self) {
        let (entries_max, bytes_max) =
            (self.config.log_memory_entries_max, self.config.log_memory_bytes_max);
        let kept_min = self.config.pipeline_slots_max as usize;
        while self.log.len() > entries_max
            || (self.mem_bytes > bytes_max && self.log.len() > kept_min)
        {
            let Some((&first, e)) = self.log.first_key_value() else { break };
            if first > self.executed {
                break;
            }
            let bytes = e.bytes;
            self.log.remove(&first);
            self.mem_bytes = self.mem_bytes.saturating_sub(bytes);
            self.mem_base = self.mem_base.max(first);
        }
    }

    fn catchup_due(&self) -> bool {
        let every = u64::from(self.config.heartbeat_ticks);
        self.catchup_sent.is_none_or(|t| self.now >= t + every)
    }

    pub(crate) fn catchup_tick(&mut self, out: &mut Vec<Action>) {
        if self.commit < self.commit_hint && self.catchup_due() {
            self.request_catchup(out);
        }
        self.probe_tick(out);
    }

    /// A replica that heard no primary for an election timeout, and is not standing for
    /// election itself, asks every peer for the slot after its commit point, once per
    /// election timeout. Nobody else would tell it: after a configuration that replaced the
    /// voters, the old voters executed it and left, and the new ones, which missed its
    /// commit, wait as learners of the old membership for a primary that will never come
    /// (docs/protocol.md, "Reconfiguration", liveness). A peer that knows more answers with
    /// that slot and its commit point, and the usual catch-up takes over from there.
    fn probe_tick(&mut self, out: &mut Vec<Action>) {
        let quiet = u64::from(self.config.election_ticks_max);
        // A removed replica probes the new voters on its own schedule (`removal_tick`).
        let waiting = matches!(self.role, Role::Follower | Role::Learner) && self.removal.is_none();
        let heard = self.last_contact.max(self.probe_sent);
        if !waiting || self.now < heard + quiet {
            return;
        }
        self.probe_sent = self.now;
        let slot = self.commit.next();
        for to in self.peers() {
            self.send(to, Body::CatchupRequest { from: slot, to: slot }, out);
        }
        ensure!(self.probe_sent == self.now, "a probe not recorded");
    }

    /// Asks the primary (or whoever told us of the commit point) for the next chosen slots.
    pub(crate) fn request_catchup(&mut self, out: &mut Vec<Action>) {
        let target = self.primary.filter(|p| *p != self.id).or(self.hint_from);
        let target = self.catchup_next.or(target);
        let Some(to) = target.filter(|t| *t != self.id) else { return };
        if self.commit >= self.commit_hint {
            return;
        }
        let from = self.commit.next();
        let last = Slot(self.commit.0 + self.config.catchup_entries_max as u64);
        self.catchup_sent = Some(self.now);
        self.counters.catchups += 1;
        self.send(to, Body::CatchupRequest { from, to: last.min(self.commit_hint) }, out);
    }

    /// The replica after `peer` in id order, among the others that receive the log
    /// (cyclically); `peer` itself if there is no other.
    fn peer_after(&self, peer: ReplicaId) -> ReplicaId {
        let peers: Vec<ReplicaId> = self.peers().into_iter().filter(|p| *p != peer).collect();
        let next = peers.iter().find(|p| **p > peer).or(peers.first());
        next.copied().unwrap_or(peer)
    }

    pub(crate) fn on_catchup_request(
        &mut self,
        requester: ReplicaId,
        from: Slot,
        to: Slot,
        out: &mut Vec<Action>,
    ) {
        let last = Slot(from.0.saturating_add(self.config.catchup_entries_max as u64 - 1));
        let to = to.min(self.commit).min(last);
        let commit = self.commit;
        if from > to || from == Slot::ZERO {
            return self.send(requester, Body::CatchupReply { commit, entries: Vec::new() }, out);
        }
        if from <= self.truncated {
            out.push(Action::SendCheckpoint { to: requester });
            return;
        }
        if from <= self.mem_base {
            let token = self.next_token;
            self.next_token += 1;
            if self.loads.pending.len() >= LOADS_PENDING_MAX {
                self.loads.pending.pop_first();
            }
            self.loads.pending.insert(token, (requester, from));
            out.push(Action::LoadLog { token, from, to });
            return;
        }
        let range = self.log.range(from..=to);
        ensure!(range.count() as u64 == to.0 - from.0 + 1, "a committed slot missing from memory");
        let mut packer = self.catchup_packer(commit);
        let entries: Vec<LogEntry> = self
            .log
            .range(from..=to)
            .map(|(s, e)| LogEntry { slot: *s, ballot: e.ballot, value: e.value.clone() })
            .take_while(|e| packer.take(entry_len(e)))
            .collect();
        ensure!(
            !entries.is_empty() && entries.len() <= self.config.catchup_entries_max,
            "a catch-up reply empty or over its limit"
        );
        ensure!(
            self.log.range(from..=to).all(|(_, e)| e.chosen),
            "serving a slot not known chosen"
        );
        self.send(requester, Body::CatchupReply { commit, entries }, out);
    }

    pub(crate) fn on_log_loaded(
        &mut self,
        token: u64,
        entries: Vec<LogEntry>,
        out: &mut Vec<Action>,
    ) {
        let Some((requester, from)) = self.loads.pending.remove(&token) else {
            self.counters.dropped += 1;
            return;
        };
        if entries.first().is_some_and(|e| e.slot == from) {
            self.loads.unreadable = None;
        } else {
            self.log_lost(requester, from, out);
        }
        let commit = self.commit;
        let mut packer = self.catchup_packer(commit);
        let entries: Vec<LogEntry> = entries
            .into_iter()
            .filter(|e| e.slot <= commit)
            .take_while(|e| packer.take(entry_len(e)))
            .collect();
        self.send(requester, Body::CatchupReply { commit, entries }, out);
    }

    /// The log failed to give back `from`, a slot this replica executed (every read of the
    /// log starts at or below the executed point), for `requester`. Read failures that last
    /// (a record the disk damaged after it was written) would leave the requester asking
    /// forever if no other peer holds the slot: with two replicas, or when every copy was
    /// damaged, nobody does. The executed state holds it, though: after a few failed reads
    /// this replica sends its newest checkpoint if that covers the slot, and otherwise asks
    /// for one of its state as executed now (once per election timeout), which the next
    /// request's failed read then sends (found by the simulator, seed 86500434: a follower
    /// of a two-replica cluster stuck 1,400 slots behind a primary whose record of the slot
    /// after its commit point was corrupt).
    fn log_lost(&mut self, requester: ReplicaId, from: Slot, out: &mut Vec<Action>) {
        let failed = match self.loads.unreadable {
            Some((slot, n)) if slot == from => n + 1,
            _ => 1,
        };
        self.loads.unreadable = Some((from, failed));
        if failed < UNREADABLE_BEFORE_CHECKPOINT || from > self.executed {
            return;
        }
        if self.checkpoint >= from {
            out.push(Action::SendCheckpoint { to: requester });
            return;
        }
        let every = u64::from(self.config.election_ticks_max);
        if self.loads.repair_asked.is_none_or(|t| self.now >= t + every) {
            self.loads.repair_asked = Some(self.now);
            self.checkpoint_asked = self.executed;
            let (slot, membership) = (self.executed, self.membership.clone());
            out.push(Action::TakeCheckpoint { slot, membership });
        }
    }

    /// Fills one catch-up reply: at most `catchup_entries_max` entries and the message limit
    /// (the requester asks again for the rest).
    fn catchup_packer(&self, commit: Slot) -> Packer {
        let empty = body_len(&Body::CatchupReply { commit, entries: Vec::new() });
        Packer::new(self.config.message_bytes_max, empty, 1, self.config.catchup_entries_max)
    }

    pub(crate) fn on_catchup_reply(
        &mut self,
        from: ReplicaId,
        commit: Slot,
        entries: Vec<LogEntry>,
        out: &mut Vec<Action>,
    ) {
        let commit_before = self.commit;
        self.note_commit_hint(from, commit);
        self.note_peer_commit(from, commit, out);
        for e in entries {
            if e.slot > self.commit && e.slot <= commit {
                self.install_chosen(e, out);
            }
        }
        self.advance_commit();
        self.catchup_sent = None;
        // A peer that answers without the slots we lack (it may fail to read them back from
        // a damaged log) is followed by the next peer in id order, and so on around the
        // peers until one helps: otherwise a replica behind a primary with one unreadable
        // record would ask it forever, and one that only avoided the last peer that failed
        // would alternate between two that both fail (with five replicas, two disks may
        // corrupt records; found by the simulator, `--reconfig --seed 70043235`).
        let stuck = self.commit == commit_before && self.commit < self.commit_hint;
        self.catchup_next = if stuck { Some(self.peer_after(from)) } else { None };
        if self.commit > commit_before && self.commit < self.commit_hint {
            self.request_catchup(out);
        }
        ensure!(self.commit >= commit_before, "catch-up moved the commit point back");
    }

    /// Records a chosen value from a peer. If this replica accepted the slot at a ballot at
    /// or above the chosen one, Paxos says its value is the chosen value.
    fn install_chosen(&mut self, e: LogEntry, out: &mut Vec<Action>) {
        if self.primacy.as_ref().is_some_and(|l| e.ballot > l.ballot) {
            // A higher ballot completed phase 1 and proposed: ours is superseded. Counting
            // our votes under a configuration it chose (and we never proposed) could count
            // a quorum no phase 1 looks for (docs/protocol.md, "Reconfiguration").
            self.step_down(None, out);
        }
        if let Some(x) = self.log.get_mut(&e.slot) {
            if x.ballot >= e.ballot {
                invariant!(unless self, Any, x.value == e.value,
                    "two values chosen for {:?}", e.slot);
                x.chosen = true;
                return;
            }
        }
        let seq = self.persist(Write::Accept(e.clone()), out);
        self.corrupt.remove(&e.slot);
        self.log.insert(e.slot, Entry::new(e.ballot, e.value, seq, true));
    }

    pub(crate) fn on_checkpoint_saved(&mut self, slot: Slot, out: &mut Vec<Action>) {
        require!(slot <= self.executed, "checkpoint {slot:?} above executed {:?}", self.executed);
        if slot <= self.checkpoint {
            return;
        }
        self.checkpoint = slot;
        let before = Slot(slot.0.saturating_sub(self.config.log_kept_slots) + 1);
        if before.0 > self.truncated.0 + 1 {
            self.truncated = Slot(before.0 - 1);
            self.persist(Write::TruncatePrefix { before }, out);
            self.drop_log_through(self.truncated);
        }
        ensure!(self.log.keys().all(|s| *s > self.truncated), "truncated entries kept in memory");
    }

    /// Drops every entry at or below `slot` from memory. Called before `executed` moves (a
    /// checkpoint's install), so that the byte count loses exactly the executed entries it
    /// counted: a walk of the dropped entries only, each dropped once.
    fn drop_log_through(&mut self, slot: Slot) {
        let kept = self.log.split_off(&slot.next());
        let dropped = std::mem::replace(&mut self.log, kept);
        let bytes: usize = dropped.range(..=self.executed).map(|(_, e)| e.bytes).sum();
        invariant!(bytes <= self.mem_bytes, "dropped {bytes} bytes of {} counted", self.mem_bytes);
        self.mem_bytes -= bytes;
        self.corrupt = self.corrupt.split_off(&slot.next());
        self.mem_base = self.mem_base.max(slot);
        // Rare (at a checkpoint): the count checked against the executed entries kept.
        let kept = self.log.range(..=self.executed);
        invariant!(
            self.mem_bytes == kept.map(|(_, e)| crate::message::value_len(&e.value)).sum::<usize>(),
            "the byte count of the executed entries in memory is off"
        );
    }

    /// A peer's checkpoint replaced the state: everything up to `slot` is executed.
    pub(crate) fn on_checkpoint_installed(
        &mut self,
        slot: Slot,
        membership: Option<crate::types::Membership>,
        out: &mut Vec<Action>,
    ) {
        if slot <= self.executed && !planted!(self, InstallMovesExecutedBack) {
            return;
        }
        self.skip_changes(slot, out);
        let skipped: Vec<Slot> = self.outcomes.range(..=slot).map(|(s, _)| *s).collect();
        for s in skipped {
            // Whether these executed is unknown here; the checkpoint's state may hold them.
            for id in self.outcomes.remove(&s).unwrap_or_default() {
                let reason = match planted!(self, InstalledOutcomeSuperseded) {
                    true => Refusal::Superseded { primary: None },
                    false => Refusal::OutcomeUnknown,
                };
                out.push(Action::Refuse { id, reason });
            }
        }
        self.drop_log_through(slot);
        self.executed = slot;
        self.checkpoint = slot;
        self.checkpoint_asked = slot;
        self.commit = self.commit.max(slot);
        self.truncated = self.truncated.max(slot);
        self.persist(Write::TruncatePrefix { before: slot.next() }, out);
        // A configuration slot of ours the checkpoint covers is executed, also one that left
        // the membership as it was (`config_executed` below does not run then): the pipeline
        // resumes. Otherwise the primary proposes nothing more, for good (found by the
        // simulator, seed 72003529: every proposal refused `Overloaded` for 1,900 ticks).
        if let Some(l) = self.primacy.as_mut() {
            if l.config_slot.is_some_and(|s| s <= slot) {
                l.config_slot = None;
            }
        }
        if let Some(m) = membership.filter(|m| *m != self.membership) {
            // The configurations the checkpoint covers are gone with the slots it skipped:
            // its membership is the one in effect after them.
            let old = std::mem::replace(&mut self.membership, m);
            self.membership_slot = slot;
            self.config_executed(slot, &old, out);
        }
        self.advance_commit();
        self.serve_reads(out);
        // The checkpoint may cover every slot phase 1 re-proposed: the primary has recovered
        // now, not when a later slot executes (which may never come without new proposals).
        if self.primacy.is_some() {
            self.notify_recovered(out);
        }
        ensure!(self.executed == slot && self.commit >= slot, "checkpoint not installed");
    }
}
