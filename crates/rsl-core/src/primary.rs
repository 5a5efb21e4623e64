//! The primary: proposals, batching, pipelined phase 2, heartbeats, leases and reads.
//!
//! Proposals wait in a bounded queue; as long as fewer than `pipeline_slots_max` slots are in
//! flight, the queue's head is batched into the next slot (an exclusive request alone). A new
//! slot is written to the primary's own log (Persist) and sent to every peer (Send) in the
//! same step: the write and the sends proceed in parallel, and the primary's own vote counts
//! only once `Input::Durable` covers its write. A slot is chosen when a majority of the voters
//! that govern it voted; the commit point then advances over the chosen prefix.
//!
//! Leases: each heartbeat round is stamped with the tick it was sent. Once a majority
//! acknowledged round `r`, the primary may serve linearizable reads locally until
//! `sent(r) + lease_ticks`: each acknowledging follower refuses other candidates for
//! `election_ticks_min` of its own ticks after receiving the heartbeat, which the config
//! keeps longer than the lease even with the allowed clock drift.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::io::{Action, ReadId, ReadMode, ReconfigRefusal, Refusal, Write};
use crate::limits::RESEND_BYTES_PER_TICK;
use crate::message::{body_len, slot_value_len, slot_value_len_of, split, Body, Packer};
use crate::replica::{Ack, Entry, FastRead, InFlight, LinRead, Queued, Replica, Transfer};
use crate::types::{LogEntry, Membership, ReplicaId, Request, Slot, SlotValue, Value};

/// A lease read a driver may serve without the core ([`Replica::lease_read`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseRead {
    /// Ticks from the current one until the lease ends (at least 1).
    pub ticks_left: u64,
    /// The slot the state must have executed before a read is served.
    pub index: Slot,
}

impl Replica {
    pub(crate) fn on_propose(&mut self, q: Queued, out: &mut Vec<Action>) {
        let (size, max) = (q.payload.len(), self.config.request_bytes_max);
        if size > max {
            // Whatever this replica's role: such a request must never reach a slot.
            out.push(Action::Refuse { id: q.id, reason: Refusal::TooLarge { size, max } });
            return;
        }
        let Some(l) = self.primacy.as_mut() else {
            let primary = self.primary.filter(|p| *p != self.id);
            out.push(Action::Refuse { id: q.id, reason: Refusal::NotPrimary { primary } });
            return;
        };
        if let Some(t) = &l.transfer {
            let primary = Some(t.target);
            out.push(Action::Refuse { id: q.id, reason: Refusal::NotPrimary { primary } });
            return;
        }
        let full = |l: &crate::replica::Primacy, c: &crate::Config| {
            let bytes_full = l.queued_bytes + size > c.proposals_queued_bytes_max;
            l.queue.len() >= c.proposals_queued_max || (!l.queue.is_empty() && bytes_full)
        };
        if self.config.propose_at_turn_end && full(l, &self.config) {
            // Deferred to the turn's end, the queue also holds the turn's proposals: those
            // the pipeline has room for go into slots first, so that deferring never refuses
            // a proposal that proposing at once would have taken.
            self.fill_pipeline(out);
        }
        let l = self.primacy.as_mut().expect("primacy");
        if full(l, &self.config) {
            out.push(Action::Refuse { id: q.id, reason: Refusal::Overloaded });
            return;
        }
        let queued_before = l.queue.len();
        // A linear scan of the queue: too slow for release builds under load, so tests only
        // (the runtime also refuses to reuse a request id).
        #[cfg(debug_assertions)]
        require!(!l.queue.iter().any(|x| x.id == q.id), "request {:?} proposed twice", q.id);
        l.queued_bytes += size;
        l.queue.push_back(q);
        ensure!(l.queue.len() == queued_before + 1, "a proposal was neither queued nor refused");
        ensure!(l.queue.len() <= self.config.proposals_queued_max, "the queue outgrew its limit");
    }

    /// Proposes queued requests while the pipeline has room.
    pub(crate) fn fill_pipeline(&mut self, out: &mut Vec<Action>) {
        loop {
            let Some(l) = self.primacy.as_mut() else { return };
            let inflight_bytes: usize = l.inflight.values().map(|f| f.bytes).sum();
            let room = (l.inflight.len() as u64) < self.config.pipeline_slots_max
                && (l.inflight.is_empty() || inflight_bytes < self.config.pipeline_bytes_max);
            let config = l.config_slot.is_some() || l.config_waiting.is_some();
            if !room || l.queue.is_empty() || config || l.transfer.is_some() {
                return;
            }
            let batch = self.take_batch();
            // Only requests taken in this life have an outcome to report; values that phase 1
            // re-proposes may hold other replicas' requests or a previous incarnation's.
            let ids: Vec<_> = batch.iter().map(|r| r.id).collect();
            let slot = self.primacy.as_ref().expect("primacy").next_slot;
            self.propose_slot(Value::Batch(batch), out);
            self.outcomes.entry(slot).or_default().extend(ids);
        }
    }

    /// Takes the next batch from the queue: an exclusive request alone, otherwise as many
    /// as the limits allow (the first one always fits), counted, then moved into the batch's
    /// one allocation (gathered in a list and copied, 1.3 % of batched load).
    fn take_batch(&mut self) -> Arc<[Request]> {
        let (requests_max, bytes_max) =
            (self.config.batch_requests_max, self.config.batch_bytes_max);
        let l = self.primacy.as_mut().expect("primacy");
        let (mut n, mut bytes) = (0, 0);
        for next in &l.queue {
            let fits = bytes + next.payload.len() <= bytes_max && n < requests_max;
            if n > 0 && (next.exclusive || !fits) {
                break;
            }
            bytes += next.payload.len();
            n += 1;
            if next.exclusive {
                break;
            }
        }
        ensure!(n > 0, "an empty batch");
        l.queued_bytes -= bytes;
        (0..n)
            .map(|_| {
                let q = l.queue.pop_front().expect("counted in the queue");
                Request { id: q.id, payload: q.payload }
            })
            .collect()
    }

    /// Writes `value` into the next slot at our ballot and queues it for every peer.
    pub(crate) fn propose_slot(&mut self, value: Value, out: &mut Vec<Action>) {
        let l = self.primacy.as_ref().expect("proposing without primacy");
        let (slot, ballot) = (l.next_slot, l.ballot);
        require!(slot > self.commit, "proposing {slot:?} at or below the commit point");
        // Phase 1 at this ballot must have covered the membership that governs the slot:
        // otherwise a quorum of it may have accepted, unseen, a value at a lower ballot.
        let config_ahead = self
            .log
            .range(self.executed.next()..slot)
            .any(|(_, e)| matches!(e.value, Value::Config(_)));
        let covered = match config_ahead {
            false => self.meets_every_quorum(&self.membership, &l.promisers),
            true => self.meets_every_quorum(&self.membership_for(slot), &l.promisers),
        };
        require!(covered, "proposing {slot:?} under a membership phase 1 did not cover");
        // Phase 1 may re-propose a slot this replica already knows chosen (above a gap): the
        // value must be the chosen one, and the slot stays known chosen.
        let chosen = self.log.get(&slot).filter(|e| e.chosen).map(|e| e.value.clone());
        require!(unless self, Any, chosen.as_ref().is_none_or(|v| *v == value),
            "re-proposing {slot:?} with a value other than the chosen one");
        let entry = LogEntry { slot, ballot, value: value.clone() };
        let seq = self.persist(Write::Accept(entry), out);
        let is_config = matches!(value, Value::Config(_));
        self.corrupt.remove(&slot);
        let entry = Entry::new(ballot, value, seq, chosen.is_some());
        let bytes = entry.bytes;
        self.log.insert(slot, entry);
        let l = self.primacy.as_mut().expect("primacy");
        let mut votes = BTreeSet::new();
        if planted!(self, CountOwnVoteBeforeDurable) {
            votes.insert(self.id);
        }
        // Two heartbeats and the value's bytes: time for the heartbeat after the accept to be
        // acknowledged, which shows the accept arrived (see `resend_unvoted`).
        let resend_ticks = resend_ticks_first(u64::from(self.config.heartbeat_ticks), bytes);
        let (sent_at, sent_round) = (self.now, l.round);
        let f = InFlight { votes, own_seq: seq, sent_at, sent_round, resend_ticks, bytes };
        l.inflight.insert(slot, f);
        l.outbox.push(slot);
        l.next_slot = slot.next();
        if is_config {
            l.config_slot = Some(slot);
        }
        ensure!(self.log[&slot].ballot == ballot, "proposed slot not at our ballot");
    }

    /// Sends this step's new slots to every peer, in as few accepts as fit the message limit
    /// (usually one).
    pub(crate) fn flush_accepts(&mut self, out: &mut Vec<Action>) {
        let Some(l) = self.primacy.as_mut() else { return };
        if l.outbox.is_empty() {
            return;
        }
        let slots = std::mem::take(&mut l.outbox);
        let (ballot, round, now) = (l.ballot, l.round, self.now);
        for s in &slots {
            // Heartbeats sent earlier in this step went out before these accepts.
            let f = l.inflight.get_mut(s).expect("a new slot is in flight");
            (f.sent_at, f.sent_round) = (now, round);
        }
        // Each sized by its entry's measured length, not measured again.
        let entries = slots.iter().map(|s| {
            let e = &self.log[s];
            (SlotValue { slot: *s, value: e.value.clone() }, slot_value_len_of(*s, e.bytes))
        });
        let commit = self.commit;
        let packer = self.accept_packer(ballot, commit, crate::limits::WIRE_ITEMS_MAX);
        let runs: Vec<Vec<SlotValue>> = split(entries, |(_, n)| *n, packer)
            .into_iter()
            .map(|run| run.into_iter().map(|(e, _)| e).collect())
            .collect();
        for to in self.peers() {
            for entries in &runs {
                let body = Body::Accept { ballot, commit, entries: entries.clone() };
                self.send(to, body, out);
            }
        }
    }

    /// Fills one accept at `ballot` and `commit` with at most `count_max` entries.
    fn accept_packer(
        &self,
        ballot: crate::types::Ballot,
        commit: Slot,
        count_max: usize,
    ) -> impl Fn() -> Packer {
        let empty = body_len(&Body::Accept { ballot, commit, entries: Vec::new() });
        let message_bytes_max = match planted!(self, AcceptsNotSplitByBytes) {
            true => usize::MAX,
            false => self.config.message_bytes_max,
        };
        move || Packer::new(message_bytes_max, empty, 1, count_max)
    }

    pub(crate) fn on_accepted(
        &mut self,
        from: ReplicaId,
        ballot: crate::types::Ballot,
        slots: &[Slot],
    ) {
        let other_ballot = planted!(self, CountVotesFromOtherBallots);
        let Some(l) = self.primacy.as_mut() else { return };
        if l.ballot != ballot && !(other_ballot && ballot.owner() == self.id) {
            self.counters.dropped += 1;
            return;
        }
        require!(from != self.id, "a vote from itself arrived as a message");
        let commit_before = self.commit;
        for slot in slots {
            if let Some(f) = l.inflight.get_mut(slot) {
                f.votes.insert(from);
            }
        }
        self.advance_primary_commit();
        let l = self.primacy.as_ref().expect("a vote cannot depose the primary");
        ensure!(self.commit >= commit_before, "a vote moved the commit point back");
        ensure!(l.inflight.keys().all(|s| *s > self.commit), "a committed slot is still in flight");
        ensure!(
            (commit_before.0 + 1..=self.commit.0)
                .all(|s| self.log.get(&Slot(s)).is_some_and(|e| e.chosen)),
            "the commit point passed a slot not chosen"
        );
    }

    /// The primary's own write for a slot is durable: its own vote counts.
    pub(crate) fn count_own_votes(&mut self) {
        let (id, durable) = (self.id, self.durable);
        let Some(l) = self.primacy.as_mut() else { return };
        for f in l.inflight.values_mut().filter(|f| f.own_seq <= durable) {
            f.votes.insert(id);
        }
        self.advance_primary_commit();
    }

    /// Marks every in-flight slot that a majority voted for as chosen, then moves the commit
    /// point over the chosen prefix.
    fn advance_primary_commit(&mut self) {
        let commit_before = self.commit;
        let l = self.primacy.as_ref().expect("primacy");
        // Usually no configuration change is pending: then one membership governs every
        // in-flight slot, and it is not looked up (and cloned) once per slot per vote.
        let unexecuted = self.log.range(self.executed.next()..);
        let config_ahead = unexecuted.into_iter().any(|(_, e)| matches!(e.value, Value::Config(_)));
        let governing = |slot: Slot| match config_ahead {
            false => std::borrow::Cow::Borrowed(&self.membership),
            true => std::borrow::Cow::Owned(self.membership_for(slot)),
        };
        // A slot after a configuration slot is counted only once that configuration is
        // chosen: until then another value may still be chosen there (by a higher ballot)
        // and install another membership, whose quorums need not meet the one counted
        // (docs/protocol.md, "Reconfiguration"). Only phase 1 re-proposes such slots.
        let mut chosen: Vec<Slot> = Vec::new();
        for (slot, f) in &l.inflight {
            if self.has_quorum(&governing(*slot), &f.votes) {
                chosen.push(*slot);
            } else if config_ahead && matches!(self.log[slot].value, Value::Config(_)) {
                break;
            }
        }
        for slot in chosen {
            self.log.get_mut(&slot).expect("in-flight slot in log").chosen = true;
        }
        self.advance_commit();
        ensure!(self.commit >= commit_before, "the commit point went back");
    }

    /// The membership that governs `slot`: the newest configuration value before it.
    /// Configurations at or below the executed point are applied already, so only the
    /// (pipeline-short) range above it is scanned.
    pub(crate) fn membership_for(&self, slot: Slot) -> Membership {
        let from = self.executed.max(self.membership_slot).next();
        if slot <= from {
            return self.membership.clone();
        }
        let newer = self.log.range(from..slot).rev();
        for (_, e) in newer {
            if let Value::Config(m) = &e.value {
                return m.clone();
            }
        }
        self.membership.clone()
    }

    pub(crate) fn primary_tick(&mut self, out: &mut Vec<Action>) {
        let l = self.primacy.as_ref().expect("primary without primacy state");
        if self.now >= l.last_heartbeat + u64::from(self.config.heartbeat_ticks) {
            self.send_heartbeats(out);
            self.resend_unvoted(out);
        }
        if self.now > self.quorum_contact() + u64::from(self.config.election_ticks_max) {
            // No majority heard us for an election timeout: another primary may exist.
            // Stepping down refuses the queue at once instead of letting it wait.
            return self.step_down(None, out);
        }
        self.transfer_tick(out);
        self.config_tick(out);
        self.serve_reads(out);
    }

    /// The tick of the newest heartbeat round a majority acknowledged (or when primacy began).
    fn quorum_contact(&self) -> u64 {
        let l = self.primacy.as_ref().expect("primacy");
        let round = self.quorum_round();
        l.round_sent.get(&round).copied().unwrap_or(l.since).max(l.since)
    }

    /// A heartbeat round to every peer: the commit point, and a lease request.
    pub(crate) fn send_heartbeats(&mut self, out: &mut Vec<Action>) {
        let now = self.now;
        let commit = self.commit;
        let l = self.primacy.as_mut().expect("primacy");
        l.round += 1;
        l.last_heartbeat = now;
        l.round_sent.insert(l.round, now);
        let (ballot, round) = (l.ballot, l.round);
        for to in self.peers() {
            self.send(to, Body::Heartbeat { ballot, commit, round }, out);
        }
    }

    /// Accepts may be lost: resend in-flight slots a peer has not voted for (one accept per
    /// peer per heartbeat; the rest go with the next ones). Not with every heartbeat: a slot
    /// first waits for its bytes to cross (`resend_ticks_first`), then twice as long after
    /// each resend (up to `election_ticks_min`, or the first wait if longer), and a peer that
    /// acknowledged a heartbeat sent after the slot received it (the transport delivers in
    /// order) and is only writing it, so it gets it again only after `election_ticks_min` (in
    /// case it was lost anyway, with a connection). So a maximal value on a slow disk is not
    /// sent again and again while its first copy is still being written.
    fn resend_unvoted(&mut self, out: &mut Vec<Action>) {
        let now = self.now;
        // The longest wait between resends: an election timeout, or longer for a value whose
        // bytes take longer to cross at `RESEND_BYTES_PER_TICK`.
        let cap = |f: &InFlight| {
            u64::from(self.config.election_ticks_min).max(self.resend_ticks_first(f.bytes))
        };
        let l = self.primacy.as_ref().expect("primacy");
        let ballot = l.ballot;
        let packer = self.accept_packer(ballot, self.commit, self.config.catchup_entries_max);
        let mut resent = BTreeSet::new();
        for to in self.peers() {
            let acked = l.acks.get(&to).map_or(0, |a| a.round);
            let due = |f: &InFlight| {
                now >= f.sent_at + f.resend_ticks
                    && (acked <= f.sent_round || now >= f.sent_at + cap(f))
            };
            let mut packer = packer();
            let entries: Vec<SlotValue> = l
                .inflight
                .iter()
                .filter(|(_, f)| due(f) && !f.votes.contains(&to))
                .map(|(s, _)| SlotValue { slot: *s, value: self.log[s].value.clone() })
                .take_while(|e| packer.take(slot_value_len(e)))
                .collect();
            resent.extend(entries.iter().map(|e| e.slot));
            if !entries.is_empty() {
                self.send(to, Body::Accept { ballot, commit: self.commit, entries }, out);
            }
        }
        let (heartbeat, election) =
            (u64::from(self.config.heartbeat_ticks), u64::from(self.config.election_ticks_min));
        let l = self.primacy.as_mut().expect("primacy");
        for slot in resent {
            let f = l.inflight.get_mut(&slot).expect("resent from the in-flight slots");
            let cap = election.max(resend_ticks_first(heartbeat, f.bytes));
            f.resend_ticks = (f.resend_ticks * 2).min(cap);
            (f.sent_at, f.sent_round) = (now, l.round);
        }
    }

    /// Ticks a new slot waits before its first resend (`RESEND_BYTES_PER_TICK`).
    fn resend_ticks_first(&self, bytes: usize) -> u64 {
        resend_ticks_first(u64::from(self.config.heartbeat_ticks), bytes)
    }

    pub(crate) fn on_heartbeat_ack(
        &mut self,
        from: ReplicaId,
        ballot: crate::types::Ballot,
        round: u64,
        commit: Slot,
        out: &mut Vec<Action>,
    ) {
        let Some(l) = self.primacy.as_mut() else { return };
        if l.ballot != ballot || round > l.round {
            self.counters.dropped += 1;
            return;
        }
        if l.departing.get(&from).is_some_and(|s| commit >= *s) {
            l.departing.remove(&from);
        }
        l.last_ack.insert(from, self.now);
        let ack = l.acks.entry(from).or_insert(Ack { round: 0, commit: Slot::ZERO });
        let before = *ack;
        *ack = Ack { round: ack.round.max(round), commit: ack.commit.max(commit) };
        ensure!(
            ack.round >= before.round && ack.commit >= before.commit,
            "an acknowledgement went back"
        );
        ensure!(ack.round <= l.round, "acknowledged a round never sent");
        self.serve_reads(out);
        self.transfer_tick(out);
    }

    /// The newest heartbeat round a majority of voters acknowledged (the primary counts as
    /// acknowledging every round it sent).
    fn quorum_round(&self) -> u64 {
        let l = self.primacy.as_ref().expect("primacy");
        let counted: Vec<ReplicaId> = match planted!(self, LeaseCountsLearners) {
            true => self.membership.replicas().collect(),
            false => self.membership.voters.clone(),
        };
        let mut rounds: Vec<u64> = counted
            .iter()
            .map(|v| if *v == self.id { l.round } else { l.acks.get(v).map_or(0, |a| a.round) })
            .collect();
        rounds.sort_unstable_by(|a, b| b.cmp(a));
        rounds[self.membership.quorum() - 1]
    }

    /// True while a majority's lease covers this tick.
    pub(crate) fn lease_valid(&self) -> bool {
        self.lease_end().is_some_and(|end| self.now < end)
    }

    /// The tick at which the lease of the newest heartbeat round a majority acknowledged
    /// ends (`sent(r) + lease_ticks`); `None` while no round is acknowledged or primacy is
    /// being handed over.
    fn lease_end(&self) -> Option<u64> {
        let l = self.primacy.as_ref().expect("primacy");
        if l.transfer.is_some() && !planted!(self, LeaseReadDuringTransfer) {
            return None;
        }
        let round =
            if planted!(self, LeaseFromNewestRound) { l.round } else { self.quorum_round() };
        let lease = match planted!(self, LeaseIgnoresDrift) {
            true => u64::from(self.config.election_ticks_min) - 1,
            false => u64::from(self.config.lease_ticks),
        };
        l.round_sent.get(&round).map(|sent| sent + lease)
    }

    /// The index of a linearizable read started now: the commit point, and at least the last
    /// slot phase 1 re-proposed.
    fn read_index(&self) -> Slot {
        let l = self.primacy.as_ref().expect("primacy");
        match planted!(self, ReadIndexIgnoresRecovery) {
            true => self.commit,
            false => self.commit.max(l.recovery_slot),
        }
    }

    /// What a driver may publish for serving linearizable reads without this core: how many
    /// more ticks the lease runs from the current tick, and the index a read must wait for
    /// (the state must have executed it). `None` unless this replica is a primary that
    /// holds its lease at this tick, is not handing primacy over, and has executed every
    /// slot phase 1 re-proposed (it is recovered). The driver must stop serving such reads
    /// when the ticks run out (by its own clock, under the drift the lease allows for), and
    /// before it carries out any action of a later step that ends primacy or starts a
    /// transfer (`Notification::LostPrimacy`, `Body::StartElection`). docs/protocol.md,
    /// "Leases and reads", has the argument.
    /// The ballot this replica leads, if it is primary: with its commit point, what its
    /// heartbeats tell the followers (`Input::Chosen` tells it them another way).
    pub fn primary_ballot(&self) -> Option<crate::types::Ballot> {
        self.primacy.as_ref().map(|l| l.ballot)
    }

    pub fn lease_read(&self) -> Option<LeaseRead> {
        let l = self.primacy.as_ref()?;
        if !l.recovered {
            return None;
        }
        let end = self.lease_end()?;
        let ticks_left = end.checked_sub(self.now).filter(|t| *t > 0)?;
        Some(LeaseRead { ticks_left, index: self.read_index() })
    }

    pub(crate) fn on_read(&mut self, id: ReadId, mode: ReadMode, out: &mut Vec<Action>) {
        let queued = self.reads.len() + self.primacy.as_ref().map_or(0, |l| l.reads.len());
        match mode {
            ReadMode::AtLeast(slot) if self.executed >= slot => out.push(Action::ReadReady { id }),
            _ if queued >= self.config.reads_queued_max => {
                out.push(Action::ReadRefused { id, reason: Refusal::Overloaded })
            }
            ReadMode::AtLeast(slot) => self.reads.push_back(FastRead { id, slot }),
            ReadMode::Linearizable => self.read_linearizable(id, out),
        }
    }

    fn read_linearizable(&mut self, id: ReadId, out: &mut Vec<Action>) {
        let transferring = self.primacy.as_ref().is_some_and(|l| l.transfer.is_some())
            && !planted!(self, LeaseReadDuringTransfer);
        if self.primacy.is_none() || transferring {
            let primary = self.primary.filter(|p| *p != self.id);
            out.push(Action::ReadRefused { id, reason: Refusal::NotPrimary { primary } });
            return;
        }
        let lease = self.lease_valid();
        let index = self.read_index();
        let l = self.primacy.as_ref().expect("primacy");
        let round = if lease { 0 } else { l.round + 1 };
        if !lease {
            self.send_heartbeats(out);
        }
        let l = self.primacy.as_mut().expect("primacy");
        l.reads.push_back(LinRead { id, index, round });
        self.serve_reads(out);
    }

    /// Releases reads whose conditions now hold.
    pub(crate) fn serve_reads(&mut self, out: &mut Vec<Action>) {
        let executed = self.executed;
        self.reads.retain(|r| {
            let ready = r.slot <= executed;
            if ready {
                out.push(Action::ReadReady { id: r.id });
            }
            !ready
        });
        if self.primacy.is_none() {
            return;
        }
        let quorum_round = self.quorum_round();
        let l = self.primacy.as_mut().expect("primacy");
        while l.reads.front().is_some_and(|r| r.index <= executed && r.round <= quorum_round) {
            let r = l.reads.pop_front().expect("front");
            out.push(Action::ReadReady { id: r.id });
        }
        // Rounds no waiting read or lease needs are forgotten.
        let keep = quorum_round.min(l.reads.front().map_or(u64::MAX, |r| r.round));
        l.round_sent.retain(|r, _| *r >= keep);
    }

    /// Hands primacy to `to` (or the most caught-up voter): stop proposing and lease reads,
    /// wait until the target has everything, then tell it to start an election.
    pub(crate) fn on_transfer(&mut self, to: Option<ReplicaId>, out: &mut Vec<Action>) {
        if self.primacy.is_none() {
            return;
        }
        let target = to
            .filter(|t| *t != self.id && self.membership.is_voter(*t))
            .or_else(|| self.best_target());
        let Some(target) = target else { return };
        let deadline = self.now + u64::from(self.config.election_ticks_min);
        let l = self.primacy.as_mut().expect("primacy");
        l.transfer = Some(Transfer { target, deadline, sent: false });
        let queue = std::mem::take(&mut l.queue);
        l.queued_bytes = 0;
        for q in queue {
            out.push(Action::Refuse {
                id: q.id,
                reason: Refusal::NotPrimary { primary: Some(target) },
            });
        }
        // Nothing more is proposed at this ballot: an operation waiting for its slot is
        // refused at once. A `ChangeMembership`'s configuration (unanswered) is dropped with
        // the primacy when the transfer ends, by the target's election or by the timeout,
        // which relinquishes too (`transfer_tick`).
        if let Some((_, Some(id))) = l.config_waiting {
            l.config_waiting = None;
            let outcome = Err(ReconfigRefusal::NotPrimary { primary: Some(target) });
            out.push(Action::Reconfigured { id, outcome });
        }
        self.transfer_tick(out);
        ensure!(target != self.id, "a transfer to itself");
        if let Some(l) = &self.primacy {
            ensure!(unless self, LeaseReadDuringTransfer,
                l.queue.is_empty() && !self.lease_valid(),
                "a transferring primary still serves"
            );
        }
    }

    fn best_target(&self) -> Option<ReplicaId> {
        let l = self.primacy.as_ref()?;
        let voters = self.membership.voters.iter().filter(|v| **v != self.id);
        voters.max_by_key(|v| l.acks.get(v).map_or(Slot::ZERO, |a| a.commit)).copied()
    }

    /// Sends the start-election once the target has everything; gives up at the deadline.
    fn transfer_tick(&mut self, out: &mut Vec<Action>) {
        let commit = self.commit;
        let now = self.now;
        let Some(l) = self.primacy.as_mut() else { return };
        let Some(t) = l.transfer.as_mut() else { return };
        if now >= t.deadline {
            // The target did not take over. Resuming at this ballot would be unsafe: a
            // delayed transfer prepare may still break the leases granted to it. Relinquish,
            // and let an ordinary election (with fresh ballots and leases) follow.
            if planted!(self, TransferTimeoutResumes) {
                l.transfer = None;
                return;
            }
            return self.step_down(None, out);
        }
        let caught_up = l.acks.get(&t.target).is_some_and(|a| a.commit >= commit);
        if !t.sent && caught_up && l.inflight.is_empty() {
            t.sent = true;
            let (to, ballot) = (t.target, l.ballot);
            self.send(to, Body::StartElection { ballot }, out);
        } else if !caught_up {
            // Heartbeats carry the commit point; the target catches up and acknowledges.
            let (ballot, round, to) = (l.ballot, l.round, t.target);
            self.send(to, Body::Heartbeat { ballot, commit, round }, out);
        }
    }
}

/// Two heartbeat intervals, and one tick more for every whole `RESEND_BYTES_PER_TICK` bytes of
/// the value (a smaller value waits two heartbeats, as before): the heartbeat sent after an
/// accept comes back only once the accept's bytes crossed.
fn resend_ticks_first(heartbeat_ticks: u64, bytes: usize) -> u64 {
    let transfer = (bytes / RESEND_BYTES_PER_TICK) as u64;
    2 * heartbeat_ticks + transfer
}
