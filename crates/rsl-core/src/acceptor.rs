//! The acceptor: answers pre-votes, prepares, accepts and heartbeats.
//!
//! Its invariants: the promise never goes down; nothing is accepted below the promise; a
//! slot's accepted value changes only for a higher ballot; nothing at or below the commit
//! point changes; every answer that promises something is held until the write behind it is
//! durable (`send_after`). Stickiness: while the lease it granted to a live primary runs
//! (`election_ticks_min` ticks after that primary was last heard), it refuses pre-votes and
//! prepares from anyone else, except a prepare that carries the primary's own transfer.

use crate::io::{Action, Write};
use crate::message::{body_len, entry_len, unknown_len, Body, Packer};
use crate::replica::{Entry, Replica, Role};
use crate::types::{Ballot, LogEntry, ReplicaId, Slot, SlotValue, UnknownValue, Value};

/// What the accept handler compares its result with.
struct Before {
    entry: Option<Entry>,
    promised: Ballot,
    commit: Slot,
    next_seq: u64,
}

impl Replica {
    /// True while this replica must refuse `candidate`: it follows (or is) a live primary
    /// and granted it a lease. The lease holder itself may always stand again (it gave up its
    /// lease by stepping down).
    pub(crate) fn lease_granted(&self, candidate: ReplicaId) -> bool {
        if self.role == Role::Primary {
            return true;
        }
        if self.primary == Some(candidate) {
            return false;
        }
        let guard = u64::from(self.config.election_ticks_min);
        let guard = if planted!(self, ShortStickiness) { guard / 2 } else { guard };
        self.now < self.last_contact + guard
    }

    pub(crate) fn on_prevote(
        &mut self,
        from: ReplicaId,
        ballot: Ballot,
        commit: Slot,
        out: &mut Vec<Action>,
    ) {
        // A pre-vote does not depend on logs (phase 1 re-proposes whatever was accepted,
        // however far behind). But after a membership change, replicas can be stuck under a
        // membership that a committed configuration already replaced (the commit reached only
        // replicas that then left): so the pre-vote's commit point is used to exchange chosen
        // slots, whichever side is behind (found by the simulator with `--reconfig`).
        let (promised_before, seq_before) = (self.promised, self.next_seq);
        if commit < self.commit {
            self.on_catchup_request(from, commit.next(), self.commit, out);
        } else if commit > self.commit {
            self.note_commit_hint(from, commit);
            self.request_catchup(out);
        }
        let granted = self.membership.is_voter(self.id) && !self.lease_granted(from);
        if !granted {
            self.counters.sticky_refusals += 1;
        }
        self.send(from, Body::PreVoteReply { ballot, granted }, out);
        ensure!(self.promised == promised_before, "a pre-vote changed the promise");
        ensure!(self.next_seq == seq_before, "a pre-vote wrote to storage");
    }

    pub(crate) fn on_prepare(
        &mut self,
        from: ReplicaId,
        ballot: Ballot,
        after: Slot,
        transfer: Option<Ballot>,
        out: &mut Vec<Action>,
    ) {
        require!(ballot.owner() == from, "prepare {ballot:?} not owned by its sender {from:?}");
        if self.rebuilding() {
            // It may have promised anything before its disk was lost: no promise until rebuilt.
            self.counters.dropped += 1;
            return;
        }
        let promised_before = self.promised;
        self.seen = self.seen.max(ballot);
        if ballot < self.promised {
            let promised = self.promised;
            self.send(from, Body::Nack { ballot, promised }, out);
            return;
        }
        let transfer_ok = transfer.is_some() && transfer == Some(self.primary_ballot);
        if ballot > self.promised && self.lease_granted(from) && !transfer_ok {
            self.counters.sticky_refusals += 1;
            return;
        }
        if ballot > self.promised && planted!(self, PromiseNotPersisted) {
            // The planted bug: the promise lives in memory only.
            self.promised = ballot;
            self.seen = self.seen.max(ballot);
            self.step_down(None, out);
            self.primary_ballot = Ballot::ZERO;
            self.reset_election_timer();
        } else if ballot > self.promised {
            self.raise_promise(ballot, out);
            self.step_down(None, out);
            self.primary_ballot = Ballot::ZERO;
        }
        // A candidate asking (again, or for the next page of a long promise) is alive: do not
        // stand against it while it gathers its promises.
        self.reset_election_timer();
        let body = self.promise_page(ballot, after);
        let seq = self.next_seq;
        self.send_after(seq, from, body, out);
        ensure!(self.promised == ballot, "promise is not the prepare's ballot");
        ensure!(self.promised >= promised_before, "the promise went down");
    }

    /// Promises `ballot` durably (the answer that depends on it waits for the write).
    pub(crate) fn raise_promise(&mut self, ballot: Ballot, out: &mut Vec<Action>) {
        require!(ballot > self.promised, "promise {ballot:?} does not raise {:?}", self.promised);
        self.promised = ballot;
        self.seen = self.seen.max(ballot);
        self.promised_seq = self.persist(Write::Promise(ballot), out);
    }

    /// One page of the promise: the accepted entries above `after` and the slots above it
    /// whose value this replica lost to corruption, in slot order, as many as fit one message
    /// and `promise_entries_max`.
    pub(crate) fn promise_page(&self, ballot: Ballot, after: Slot) -> Body {
        let commit = self.commit;
        // Entries above `after` that this replica dropped from memory or storage are chosen
        // ones: the candidate must catch up on them first.
        let dropped = self.mem_base.max(self.truncated) > after;
        let widest = Body::Promise {
            ballot,
            commit,
            after,
            entries: Vec::new(),
            unknown: Vec::new(),
            more_after: Some(Slot(u64::MAX)),
            dropped,
        };
        let (bytes_max, count_max) =
            (self.config.message_bytes_max, self.config.promise_entries_max);
        let mut packer = Packer::new(bytes_max, body_len(&widest), 2, count_max);
        let (mut entries, mut unknown) = (Vec::new(), Vec::new());
        let mut logged = self.log.range(after.next()..).peekable();
        let mut lost = self.corrupt.range(after.next()..).peekable();
        let mut last = after;
        let more_after = loop {
            // The lower slot of the two lists goes first (they never share a slot).
            let entry_first = match (logged.peek(), lost.peek()) {
                (None, None) => break None,
                (Some((a, _)), Some((b, _))) => a < b,
                (entry, _) => entry.is_some(),
            };
            if entry_first {
                let (s, e) = logged.peek().expect("peeked");
                let entry = LogEntry { slot: **s, ballot: e.ballot, value: e.value.clone() };
                if !packer.take(entry_len(&entry)) {
                    break Some(last);
                }
                last = entry.slot;
                entries.push(entry);
                logged.next();
            } else {
                let (s, b) = lost.next().expect("peeked");
                // A slot lost at the promise (recovery reports slots lost to a checkpoint
                // fallback there, not knowing the ballot it voted at) was voted below the
                // ballot asked: nothing is accepted at a ballot whose phase 1 still runs,
                // and only such a candidate reads this. Reported at the ballot just below
                // (seed 83104527: the candidate it promised before its crash asked again and
                // heard a slot unknown at its own ballot, against the promise's contract).
                let below = Ballot::from_u128(ballot.to_u128().saturating_sub(1));
                let u = UnknownValue { slot: *s, ballot: (*b).min(below) };
                if !packer.take(unknown_len(&u)) {
                    break Some(last);
                }
                last = u.slot;
                unknown.push(u);
            }
        };
        ensure!(more_after.is_none_or(|m| m > after), "a page that reports nothing");
        Body::Promise { ballot, commit, after, entries, unknown, more_after, dropped }
    }

    /// A message from the primary at `ballot` (at or above the promise): follow it.
    pub(crate) fn adopt(&mut self, from: ReplicaId, ballot: Ballot, out: &mut Vec<Action>) {
        require!(ballot >= self.promised, "adopting {ballot:?} below the promise");
        require!(ballot.owner() == from, "primary {from:?} sent another's ballot {ballot:?}");
        if ballot > self.promised {
            self.raise_promise(ballot, out);
        }
        if self.role == Role::Primary || self.role == Role::Candidate {
            self.step_down(Some(from), out);
        }
        self.primary = Some(from);
        self.primary_ballot = ballot;
        self.last_contact = self.now;
        self.election_backoff = 0;
        self.reset_election_timer();
        ensure!(self.promised == ballot, "following {ballot:?} without promising it");
    }

    pub(crate) fn on_accept(
        &mut self,
        from: ReplicaId,
        ballot: Ballot,
        commit: Slot,
        entries: Vec<SlotValue>,
        out: &mut Vec<Action>,
    ) {
        require!(from != self.id && ballot.owner() == from, "accept {ballot:?} from {from:?}");
        require!(entries.windows(2).all(|w| w[0].slot < w[1].slot), "accept entries not ascending");
        let (promised_before, held_before) = (self.promised, self.waiting_sends());
        let ignores_promise = planted!(self, AcceptorIgnoresPromise);
        if ballot < self.promised && !ignores_promise {
            let promised = self.promised;
            self.send(from, Body::Nack { ballot, promised }, out);
            return;
        }
        if ballot >= self.promised {
            self.adopt(from, ballot, out);
        }
        // A rebuilding replica follows the primary and learns its commit point, but votes for
        // nothing: it may have voted for other values before its disk was lost.
        let entries = if self.rebuilding() { Vec::new() } else { entries };
        let mut voted = Vec::with_capacity(entries.len());
        let mut wait = self.promised_seq;
        for SlotValue { slot, value } in entries {
            if let Some(seq) = self.accept_one(slot, ballot, value, out) {
                voted.push(slot);
                wait = wait.max(seq);
            }
        }
        let voting = !voted.is_empty();
        if voting {
            self.send_after(wait, from, Body::Accepted { ballot, slots: voted }, out);
        }
        if ballot == self.primary_ballot {
            self.learn_commit(from, ballot, commit, out);
        }
        ensure!(self.promised >= promised_before, "the promise went down");
        ensure!(unless self, AcceptorIgnoresPromise, self.promised == ballot, "accepted without promising {ballot:?}");
        ensure!(unless self, AcceptorIgnoresPromise, self.primary == Some(from), "accepted from a replica it does not follow");
        ensure!(unless self, SendBeforePersist, !voting || (wait > self.durable) == (self.waiting_sends() > held_before),
            "a vote is held iff its writes are not yet durable");
    }

    /// Accepts one slot; returns the seq its vote must wait for, or None to refuse.
    fn accept_one(
        &mut self,
        slot: Slot,
        ballot: Ballot,
        value: Value,
        out: &mut Vec<Action>,
    ) -> Option<u64> {
        require!(slot > Slot::ZERO, "accept for slot 0");
        require!(!self.rebuilding(), "a rebuilding replica accepts {slot:?}");
        require!(unless self, AcceptorIgnoresPromise, ballot >= self.promised,
            "accept {ballot:?} below the promise {:?}", self.promised);
        if slot <= self.mem_base.max(self.truncated) {
            // Executed and dropped from memory: chosen, and the primary's value is the chosen
            // one (it ran phase 1), so the vote is true without a write.
            return Some(0);
        }
        let before = Before {
            entry: self.log.get(&slot).cloned(),
            promised: self.promised,
            commit: self.commit,
            next_seq: self.next_seq,
        };
        if let Some(e) = &before.entry {
            require!(unless self, AcceptorIgnoresPromise, e.chosen || e.ballot <= ballot,
                "slot {slot:?} holds {:?} above the accept's ballot {ballot:?}", e.ballot);
        }
        let result = match &before.entry {
            Some(e) if e.chosen || slot <= self.commit => self.accept_chosen(slot, &value),
            Some(e) if e.ballot == ballot => self.accept_again(slot, &value),
            Some(e) if e.value == value && planted!(self, SameValueNotRewritten) => {
                // The planted bug: the newer ballot lives in memory only.
                let seq = e.seq;
                self.log.get_mut(&slot).expect("held").ballot = ballot;
                Some(seq)
            }
            _ => Some(self.accept_new(slot, ballot, value.clone(), out)),
        };
        self.check_accept(slot, ballot, &value, &before, result);
        result
    }

    /// The accept handler's postconditions for one slot.
    fn check_accept(
        &self,
        slot: Slot,
        ballot: Ballot,
        value: &Value,
        before: &Before,
        result: Option<u64>,
    ) {
        let after = self.log.get(&slot);
        let kept = after.map(|e| &e.value) == before.entry.as_ref().map(|e| &e.value);
        let wrote = self.next_seq - before.next_seq;
        ensure!(self.promised >= before.promised, "the promise went down");
        ensure!(self.commit == before.commit, "accept moved the commit point");
        ensure!(wrote <= 1, "one accept wrote {wrote} records");
        ensure!(result.is_none() || after.is_some(), "voted for {slot:?} without holding it");
        ensure!(!self.corrupt.contains_key(&slot) || result.is_none(), "voted for a corrupt slot");
        ensure!(unless self, AcceptorIgnoresPromise, after.is_none_or(|e| e.chosen || e.ballot <= self.promised),
            "slot {slot:?} accepted above the promise");
        if let Some(e) = &before.entry {
            ensure!(
                !(e.chosen || slot <= before.commit) || kept,
                "a chosen value changed in {slot:?}"
            );
            if e.ballot == ballot && e.value == *value {
                ensure!(
                    result == Some(e.seq) && wrote == 0,
                    "a same-value re-accept was not idempotent"
                );
            }
            if e.ballot == ballot && e.value != *value {
                ensure!(
                    result.is_none() && kept,
                    "a different value at the same ballot was accepted"
                );
            }
        }
        if result.is_some()
            && slot > before.commit
            && !before.entry.as_ref().is_some_and(|e| e.chosen)
        {
            let e = after.expect("voted entry");
            ensure!(
                e.ballot == ballot && e.value == *value,
                "the vote is not for what was accepted"
            );
        }
    }

    /// An accept for a slot already known chosen: the same value is a harmless resend; a
    /// different one would change a chosen value, and only a buggy primary sends it.
    fn accept_chosen(&mut self, slot: Slot, value: &Value) -> Option<u64> {
        let e = &self.log[&slot];
        if e.value == *value {
            return Some(e.seq);
        }
        self.counters.conflicts += 1;
        ensure!(self.log[&slot].value != *value, "a chosen value changed");
        None
    }

    /// The same ballot again: the same value is re-accepted idempotently (no new write, the
    /// vote waits for the first write); a different value is refused.
    fn accept_again(&mut self, slot: Slot, value: &Value) -> Option<u64> {
        let e = &self.log[&slot];
        if e.value == *value {
            return Some(e.seq);
        }
        self.counters.conflicts += 1;
        None
    }

    fn accept_new(
        &mut self,
        slot: Slot,
        ballot: Ballot,
        value: Value,
        out: &mut Vec<Action>,
    ) -> u64 {
        let entry = LogEntry { slot, ballot, value: value.clone() };
        let seq = self.persist(Write::Accept(entry), out);
        self.corrupt.remove(&slot);
        self.log.insert(slot, Entry::new(ballot, value, seq, false));
        seq
    }

    pub(crate) fn on_heartbeat(
        &mut self,
        from: ReplicaId,
        ballot: Ballot,
        commit: Slot,
        round: u64,
        out: &mut Vec<Action>,
    ) {
        if ballot < self.promised {
            let promised = self.promised;
            self.send(from, Body::Nack { ballot, promised }, out);
            return;
        }
        self.adopt(from, ballot, out);
        self.learn_commit(from, ballot, commit, out);
        self.note_peer_commit(from, commit, out);
        let body = Body::HeartbeatAck { ballot, round, commit: self.commit };
        let seq = self.promised_seq;
        self.send_after(seq, from, body, out);
        ensure!(self.primary == Some(from), "heartbeat did not make its sender our primary");
        ensure!(self.last_contact == self.now, "heartbeat did not renew the lease");
    }
}
