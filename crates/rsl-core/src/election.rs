//! Elections: the timer, the pre-vote, phase 1 (prepare/promise) and stepping down.
//!
//! A voter that hears no primary for a random election timeout first asks for pre-votes; a
//! voter grants one only if it has not heard a primary for an election timeout either, so a
//! replica that was partitioned away cannot raise the cluster's ballot and depose a healthy
//! primary. With a majority of pre-votes it picks a ballot above any it has seen, promises
//! it durably, and sends prepares. Phase 1 completes when a majority of voters (of the
//! current membership and of every membership the open slots would install) promised with
//! complete reports, and every open slot's highest-ballot report is a known value; the
//! candidate then re-proposes, at its ballot, the highest-ballot value of each open slot and
//! a no-op for each gap.
//!
//! Corrupt slots: an acceptor that lost the value it accepted at ballot `b` reports it as
//! "unknown at `b`". If an unknown is the highest ballot for a slot, the candidate may not
//! guess: it waits for the promise of every voter of the membership that governs the slot
//! (the one a configuration among the open slots before it installs, if any), and then (only
//! if fewer than a quorum of those voters reported the slot unknown) takes the highest known
//! value, because any value chosen at a lower ballot was accepted by a quorum of that
//! membership, at least one of which is intact and reported a ballot at or above the chosen
//! one, whose value is the chosen value.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::io::{Action, Notification, ReconfigRefusal, Refusal};
use crate::message::Body;
use crate::replica::{Election, Primacy, Replica, Report, Role};
use crate::types::{Ballot, Membership, ReplicaId, Slot, Value};

/// The most times a candidacy's timeout doubles after running out (up to 4 election timeouts).
pub(crate) const ELECTION_BACKOFF_MAX: u32 = 2;

impl Replica {
    pub(crate) fn on_tick(&mut self, out: &mut Vec<Action>) {
        let (now_before, promised_before) = (self.now, self.promised);
        self.now += 1;
        match self.role {
            Role::Primary => self.primary_tick(out),
            Role::Candidate => self.candidate_tick(out),
            Role::Follower => self.follower_tick(out),
            Role::Learner => {}
        }
        self.catchup_tick(out);
        self.rebuild_tick(out);
        self.removal_tick(out);
        ensure!(self.now == now_before + 1, "a tick is one tick");
        ensure!(self.promised >= promised_before, "the promise went down");
        let waiting = self.role != Role::Primary && self.may_stand();
        ensure!(!waiting || self.election_deadline > self.now, "an election deadline in the past");
        if let Some(l) = &self.primacy {
            let due = l.last_heartbeat + u64::from(self.config.heartbeat_ticks);
            ensure!(due > self.now, "the primary missed a heartbeat");
        }
    }

    fn may_stand(&self) -> bool {
        self.can_be_primary && self.membership.is_voter(self.id) && !self.rebuilding()
    }

    fn follower_tick(&mut self, out: &mut Vec<Action>) {
        if self.now >= self.election_deadline && self.may_stand() {
            self.start_prevote(out);
        }
    }

    fn candidate_tick(&mut self, out: &mut Vec<Action>) {
        let e = self.election.as_ref().expect("candidate without election");
        if self.now >= self.election_deadline {
            self.election_backoff = (self.election_backoff + 1).min(ELECTION_BACKOFF_MAX);
            self.start_prevote(out);
        } else if self.now >= e.last_sent + u64::from(self.config.heartbeat_ticks) {
            self.resend_election(out);
        }
    }

    /// The next ballot this replica would use: above any it has seen.
    fn next_ballot(&self) -> Ballot {
        Ballot::new(self.seen.round.max(self.promised.round) + 1, self.id)
    }

    pub(crate) fn start_prevote(&mut self, out: &mut Vec<Action>) {
        require!(self.may_stand(), "standing for election while not allowed");
        require!(self.role != Role::Primary, "a primary starts an election");
        self.counters.elections += 1;
        self.reset_election_timer();
        let ballot = self.next_ballot();
        let grants = BTreeSet::from([self.id]);
        let election = Election {
            ballot,
            prevote: true,
            grants,
            promises: BTreeMap::new(),
            own_seq: u64::MAX,
            transfer: None,
            last_sent: self.now,
            rebuilds: BTreeMap::new(),
        };
        self.election = Some(election);
        self.role = Role::Candidate;
        self.primary = None;
        if self.membership.quorum() <= 1 {
            return self.start_prepare(None, out);
        }
        self.resend_election(out);
        ensure!(self.role == Role::Candidate, "pre-vote did not make a candidate");
    }

    /// Sends the pre-vote or prepare to every voter that has not answered yet (for a promise
    /// in pages, asks for the next page).
    fn resend_election(&mut self, out: &mut Vec<Action>) {
        let e = self.election.as_mut().expect("no election");
        e.last_sent = self.now;
        let (ballot, prevote, transfer) = (e.ballot, e.prevote, e.transfer);
        let answered: BTreeSet<ReplicaId> = if prevote {
            e.grants.clone()
        } else {
            e.promises.iter().filter(|(_, r)| r.complete()).map(|(id, _)| *id).collect()
        };
        let commit = self.commit;
        for to in self.election_voters() {
            if to == self.id || answered.contains(&to) {
                continue;
            }
            let body = if prevote {
                Body::PreVote { ballot, commit }
            } else {
                Body::Prepare { ballot, after: self.prepare_after(to), transfer }
            };
            self.send(to, body, out);
        }
    }

    /// Where the report of `to` continues: after the last page it sent, or, for a first
    /// page, after this replica's commit point.
    fn prepare_after(&self, to: ReplicaId) -> Slot {
        let e = self.election.as_ref().expect("no election");
        let report = e.promises.get(&to).filter(|r| !r.dropped);
        report.and_then(|r| r.more_after).unwrap_or(self.commit)
    }

    /// The voters whose promises phase 1 needs: the current membership's, those of any
    /// configuration change in the log above the executed point, and those of any change a
    /// promise reported there. `check_phase1` needs a quorum of every membership the values
    /// it re-proposes would install; a change this replica never saw (it was down when it
    /// was proposed) is known only from the reports, and its new voters may hold the only
    /// promises that can complete that quorum (found by the simulator, `--reconfig --seed
    /// 70015177`).
    fn election_voters(&self) -> Vec<ReplicaId> {
        let mut voters = self.membership.voters.clone();
        for m in self.pending_memberships(&BTreeMap::new()) {
            voters.extend(m.voters);
        }
        if let Some(e) = self.election.as_ref() {
            let reported = e.promises.values().flat_map(|r| r.entries.iter());
            for x in reported.filter(|x| x.slot > self.executed) {
                if let Value::Config(m) = &x.value {
                    voters.extend(m.voters.iter().copied());
                }
            }
        }
        voters.sort();
        voters.dedup();
        voters
    }

    pub(crate) fn on_prevote_reply(
        &mut self,
        from: ReplicaId,
        ballot: Ballot,
        granted: bool,
        out: &mut Vec<Action>,
    ) {
        let Some(e) = self.election.as_mut() else { return };
        if !e.prevote || e.ballot != ballot || !granted {
            self.counters.dropped += 1;
            return;
        }
        if self.membership.is_voter(from) {
            e.grants.insert(from);
        }
        let promised_before = self.promised;
        if e.grants.len() >= self.membership.quorum() {
            let transfer = e.transfer;
            self.start_prepare(transfer, out);
        }
        let phase1 = self.election.as_ref().is_some_and(|e| !e.prevote);
        ensure!(phase1 || self.promised == promised_before, "a pre-vote raised the promise");
        ensure!(self.role == Role::Candidate, "a pre-vote reply ended the candidacy");
    }

    /// Phase 1 begins: promise our own ballot durably and ask the voters for theirs.
    pub(crate) fn start_prepare(&mut self, transfer: Option<Ballot>, out: &mut Vec<Action>) {
        require!(!self.rebuilding(), "a rebuilding replica starts phase 1");
        let ballot = self.next_ballot();
        let promised_before = self.promised;
        self.raise_promise(ballot, out);
        let own_seq = self.promised_seq;
        self.role = Role::Candidate;
        self.primary = None;
        self.election = Some(Election {
            ballot,
            prevote: false,
            grants: BTreeSet::new(),
            promises: BTreeMap::new(),
            own_seq,
            transfer,
            last_sent: self.now,
            rebuilds: BTreeMap::new(),
        });
        self.reset_election_timer();
        self.resend_election(out);
        ensure!(
            self.promised > promised_before,
            "a candidate ballot that does not raise the promise"
        );
        ensure!(self.promised.owner() == self.id, "a candidate ballot not its own");
    }

    pub(crate) fn on_promise(
        &mut self,
        from: ReplicaId,
        ballot: Ballot,
        after: Slot,
        page: Report,
        out: &mut Vec<Action>,
    ) {
        let Some(e) = self.election.as_mut() else { return };
        if e.prevote || e.ballot != ballot {
            self.counters.dropped += 1;
            return;
        }
        if page.entries.iter().any(|x| x.ballot >= ballot) {
            // Only a promise answered after we started proposing reports our own ballot.
            self.counters.dropped += 1;
            return;
        }
        require!(
            page.unknown.iter().all(|u| u.ballot < ballot),
            "an unknown slot at or above the ballot"
        );
        let (commit, dropped) = (page.commit, page.dropped);
        match e.promises.get_mut(&from) {
            // The next page of a report in progress.
            Some(r) if !r.dropped && r.more_after == Some(after) => r.extend(page),
            // A complete report or one in progress stands; this page is a late copy.
            Some(r) if !r.dropped => {
                self.counters.dropped += 1;
                return;
            }
            // A first page (or one that starts again after a drop): it covers every slot
            // above this replica's commit point.
            _ if after <= self.commit => {
                e.promises.insert(from, page);
            }
            _ => {
                self.counters.dropped += 1;
                return;
            }
        }
        let (transfer, more) = (e.transfer, e.promises[&from].more_after);
        // A promise in pages may take longer than an election timeout to arrive: while pages
        // come, phase 1 is making progress, so it is not started over.
        self.reset_election_timer();
        if dropped || commit > self.commit {
            self.note_commit_hint(from, commit);
            self.request_catchup(out);
        }
        if let Some(after) = more.filter(|_| !dropped) {
            self.send(from, Body::Prepare { ballot, after, transfer }, out);
        }
        self.check_phase1(out);
        ensure!(
            self.role != Role::Primary || self.primary_ballot == ballot,
            "primary at another ballot"
        );
        ensure!(
            self.role == Role::Primary
                || self.election.as_ref().is_some_and(|e| e.promises.contains_key(&from)),
            "a promise was lost before phase 1 completed"
        );
    }

    /// Completes phase 1 if a quorum promised and every open slot's value is determined.
    pub(crate) fn check_phase1(&mut self, out: &mut Vec<Action>) {
        let Some(e) = &self.election else { return };
        let early = planted!(self, Phase1BeforeOwnPromiseDurable);
        if e.prevote || (e.own_seq > self.durable && !early) {
            return;
        }
        let truncated_counts = planted!(self, TruncatedPromiseCounts);
        let complete: BTreeSet<ReplicaId> = e
            .promises
            .iter()
            .filter(|(_, r)| r.complete() || truncated_counts)
            .map(|(id, _)| *id)
            .chain([self.id])
            .collect();
        if !self.has_quorum(&self.membership, &complete) {
            return;
        }
        let Some(values) = self.choose_values(&complete) else { return };
        for m in self.pending_memberships(&values) {
            if !self.has_quorum(&m, &complete) {
                return;
            }
        }
        self.become_primary(values, complete, out);
    }

    pub(crate) fn has_quorum(&self, m: &Membership, set: &BTreeSet<ReplicaId>) -> bool {
        let votes = match planted!(self, CountLearnerVotes) {
            true => m.replicas().filter(|v| set.contains(v)).count(),
            false => m.voters.iter().filter(|v| set.contains(v)).count(),
        };
        let n = m.voters.len();
        let minority = planted!(self, CommitOnMinority);
        let even_half = planted!(self, EvenQuorumIsHalf) && n.is_multiple_of(2);
        let quorum = if minority || even_half { n / 2 } else { m.quorum() };
        votes >= quorum.max(1)
    }

    /// Whether phase 1 promises from `set` meet every quorum of `m`'s voters: then they saw
    /// every value a quorum of `m` may have accepted at a lower ballot, which is all a
    /// primary needs to propose under `m` (a phase-1 set need only intersect every phase-2
    /// quorum). With `q` the quorum of `n` voters, that is more than `n - q` of them: the
    /// same as a quorum for an odd `n`, one fewer for an even one (2 of 4), so a primary that
    /// promotes a fourth voter keeps its ballot (docs/protocol.md, "Reconfiguration", rule 1).
    pub(crate) fn meets_every_quorum(&self, m: &Membership, set: &BTreeSet<ReplicaId>) -> bool {
        let promised = m.voters.iter().filter(|v| set.contains(v)).count();
        let n = m.voters.len();
        // A quorum meets every quorum; `has_quorum` also keeps the planted quorum bugs'
        // own arithmetic, so that their damage reaches the simulator past this contract.
        promised > n - m.quorum() || self.has_quorum(m, set)
    }

    /// The value phase 1 re-proposes in each open slot, or None while a slot's value is lost
    /// on a corrupt acceptor and could still be chosen.
    fn choose_values(&self, complete: &BTreeSet<ReplicaId>) -> Option<BTreeMap<Slot, Value>> {
        let e = self.election.as_ref().expect("no election");
        // Each value ranks by (known chosen, ballot): a value the reporter knows chosen (at
        // or below its commit point) wins whatever its ballot. A replica rebuilt after a disk
        // loss may be the only member of this quorum that voted for it (before the loss) and
        // now holds it only as learned; its ballot is high enough anyway, but this does not
        // depend on it (docs/protocol.md, "Disk loss").
        let mut known: BTreeMap<Slot, ((bool, Ballot), &Value)> = BTreeMap::new();
        let own =
            self.log.range(self.commit.next()..).map(|(s, x)| (*s, (x.chosen, x.ballot), &x.value));
        let reported =
            e.promises.iter().filter(|(id, _)| complete.contains(id)).flat_map(|(_, r)| {
                r.entries.iter().map(|x| (x.slot, (x.slot <= r.commit, x.ballot), &x.value))
            });
        for (slot, rank, value) in own.chain(reported).filter(|(s, _, _)| *s > self.commit) {
            let best = known.entry(slot).or_insert((rank, value));
            invariant!(unless self, Any, !(rank.0 && best.0 .0) || best.1 == value,
                "two chosen values reported for {slot:?}");
            let better = match planted!(self, Phase1PicksLowestBallot) {
                true => {
                    (rank.0, std::cmp::Reverse(rank.1)) > (best.0 .0, std::cmp::Reverse(best.0 .1))
                }
                false => rank > best.0,
            };
            if better {
                *best = (rank, value);
            }
        }
        // Who lost each slot, and the highest ballot at which any of them accepted there.
        let mut unknown: BTreeMap<Slot, (Ballot, BTreeSet<ReplicaId>)> = BTreeMap::new();
        let own_unknown = self.corrupt.iter().map(|(s, b)| (self.id, *s, *b));
        let reported_unknown = e
            .promises
            .iter()
            .filter(|(id, _)| complete.contains(id))
            .flat_map(|(id, r)| r.unknown.iter().map(|u| (*id, u.slot, u.ballot)));
        for (id, slot, ballot) in
            own_unknown.chain(reported_unknown).filter(|(_, s, _)| *s > self.commit)
        {
            let u = unknown.entry(slot).or_insert((ballot, BTreeSet::new()));
            u.0 = u.0.max(ballot);
            u.1.insert(id);
        }
        let last = known.keys().chain(unknown.keys()).max().copied().unwrap_or(self.commit);
        let mut values = BTreeMap::new();
        let mut slot = self.commit.next();
        while slot <= last {
            let value = known.get(&slot).map(|(_, v)| (*v).clone()).unwrap_or(Value::Noop);
            values.insert(slot, value);
            slot = slot.next();
        }
        for (slot, (ballot, lost)) in &unknown {
            let beaten = known.get(slot).is_some_and(|(b, _)| b.0 || b.1 >= *ballot);
            // A value chosen in the slot was chosen by a quorum of the membership that
            // governs the slot, which a configuration among the open slots before it may
            // install: the rule is judged under that one, not under the executed membership
            // (seed 77049783 with --reconfig: a candidate of {1, 2} filled a slot that 1 and
            // 4 had chosen under {1, 2, 4}, once 1 reported it lost, without asking 4).
            let governing = match planted!(self, UnknownUnderExecutedMembership) {
                true => self.membership.clone(),
                false => self.governing_membership(&values, *slot),
            };
            let all_voters = governing.voters.iter().all(|v| complete.contains(v));
            let lost_voters = governing.voters.iter().filter(|v| lost.contains(v)).count();
            let recoverable = all_voters && lost_voters < governing.quorum();
            if !(beaten || recoverable || planted!(self, Phase1IgnoresUnknown)) {
                return None;
            }
        }
        Some(values)
    }

    /// The membership that governs `slot` (above the commit point) if phase 1 re-proposes
    /// `values`: the one the last configuration before it installs, among the chosen slots
    /// not yet executed and the values, or the executed membership if there is none.
    fn governing_membership(&self, values: &BTreeMap<Slot, Value>, slot: Slot) -> Membership {
        let chosen = self.log.range(self.executed.next()..).take_while(|(s, _)| **s <= self.commit);
        let chosen = chosen.map(|(_, e)| &e.value);
        let open = values.range(..slot).map(|(_, v)| v);
        let last = chosen.chain(open).filter_map(|v| match v {
            Value::Config(m) => Some(m),
            _ => None,
        });
        last.last().cloned().unwrap_or_else(|| self.membership.clone())
    }

    /// Memberships that configuration values above the executed point would install
    /// (phase 1 must also hold a majority of each).
    pub(crate) fn pending_memberships(&self, values: &BTreeMap<Slot, Value>) -> Vec<Membership> {
        let logged = self.log.range(self.executed.next()..).map(|(_, e)| &e.value);
        logged
            .chain(values.values())
            .filter_map(|v| match v {
                Value::Config(m) => Some(m.clone()),
                _ => None,
            })
            .collect()
    }

    /// Phase 1 is complete: re-propose every open slot at our ballot and start serving.
    fn become_primary(
        &mut self,
        values: BTreeMap<Slot, Value>,
        promisers: BTreeSet<ReplicaId>,
        out: &mut Vec<Action>,
    ) {
        let election = self.election.take().expect("no election");
        let (ballot, rebuilds) = (election.ballot, election.rebuilds);
        require!(ballot == self.promised, "becoming primary at {ballot:?} not promised");
        let values = if planted!(self, SkipPhase1Reproposal) {
            values.into_keys().map(|s| (s, Value::Noop)).collect()
        } else {
            values
        };
        self.role = Role::Primary;
        self.election_backoff = 0;
        self.primary = Some(self.id);
        self.primary_ballot = ballot;
        self.primacy = Some(Primacy {
            ballot,
            next_slot: self.commit.next(),
            recovery_slot: self.commit,
            recovered: false,
            inflight: BTreeMap::new(),
            queue: VecDeque::new(),
            queued_bytes: 0,
            outbox: Vec::new(),
            config_slot: None,
            config_target: None,
            config_waiting: None,
            round: 0,
            round_sent: BTreeMap::new(),
            acks: BTreeMap::new(),
            last_ack: BTreeMap::new(),
            last_heartbeat: self.now,
            since: self.now,
            departing: BTreeMap::new(),
            reads: VecDeque::new(),
            transfer: None,
            rebuilt: BTreeMap::new(),
            promisers,
        });
        out.push(Action::Notify(Notification::BecamePrimary { ballot }));
        let values: Vec<Value> =
            if values.is_empty() { vec![Value::Noop] } else { values.into_values().collect() };
        for value in values {
            self.propose_slot(value, out);
        }
        let l = self.primacy.as_mut().expect("primacy");
        l.recovery_slot = l.next_slot.0.checked_sub(1).map(Slot).expect("no slot proposed");
        self.send_heartbeats(out);
        self.answer_rebuilds(rebuilds, out);
        ensure!(self.role == Role::Primary && self.election.is_none(), "not primary after phase 1");
    }

    /// Leaves the primary or candidate role (a higher ballot exists, or primacy was given up):
    /// queued proposals and waiting linearizable reads are refused at once; proposals already
    /// in slots wait for the slot to execute (see `learner`).
    pub(crate) fn step_down(&mut self, primary: Option<ReplicaId>, out: &mut Vec<Action>) {
        let was_primary = self.primacy.is_some();
        if let Some(l) = self.primacy.take() {
            for q in l.queue {
                out.push(Action::Refuse { id: q.id, reason: Refusal::NotPrimary { primary } });
            }
            for r in l.reads {
                out.push(Action::ReadRefused { id: r.id, reason: Refusal::NotPrimary { primary } });
            }
            if let Some((_, Some(id))) = l.config_waiting {
                let outcome = Err(ReconfigRefusal::NotPrimary { primary });
                out.push(Action::Reconfigured { id, outcome });
            }
        }
        self.election = None;
        self.role = self.follower_role();
        self.primary = primary;
        if was_primary {
            out.push(Action::Notify(Notification::LostPrimacy { primary }));
        }
        self.reset_election_timer();
        ensure!(
            self.primacy.is_none() && self.election.is_none(),
            "stepped down but still primary"
        );
    }

    pub(crate) fn on_nack(&mut self, ballot: Ballot, promised: Ballot, out: &mut Vec<Action>) {
        self.seen = self.seen.max(promised);
        let mine =
            self.primacy.as_ref().map(|l| l.ballot).or(self.election.as_ref().map(|e| e.ballot));
        if mine == Some(ballot) && promised > ballot {
            self.step_down(None, out);
        } else {
            self.counters.dropped += 1;
        }
        ensure!(self.seen >= promised, "a nack's ballot was forgotten");
        ensure!(
            mine != Some(ballot) || promised <= ballot || self.primacy.is_none(),
            "a nacked primary kept its primacy"
        );
    }

    /// The primary asks us to take over now (primacy transfer): skip the pre-vote and tell
    /// the acceptors which primary is handing over, so that they may break its lease.
    pub(crate) fn on_start_election(
        &mut self,
        from: ReplicaId,
        ballot: Ballot,
        out: &mut Vec<Action>,
    ) {
        if ballot.owner() != from || ballot != self.primary_ballot || !self.may_stand() {
            self.counters.dropped += 1;
            return;
        }
        self.counters.elections += 1;
        self.start_prepare(Some(ballot), out);
        ensure!(self.promised > ballot, "a transfer candidate below the old primary's ballot");
        ensure!(
            self.election.as_ref().is_some_and(|e| e.transfer == Some(ballot)),
            "transfer not carried"
        );
    }

    pub(crate) fn on_set_can_become_primary(&mut self, can: bool, out: &mut Vec<Action>) {
        self.can_be_primary = can;
        if !can && self.role == Role::Candidate {
            self.step_down(None, out);
        }
        if !can && self.role == Role::Primary {
            self.on_transfer(None, out);
        }
        ensure!(
            can || self.role != Role::Candidate,
            "a replica kept out of elections is a candidate"
        );
    }
}
