//! The safety checkers that watch a whole cluster, and the failure type every check reports.
//!
//! * **Agreement** (at most one value chosen per slot), from two independent sources: the
//!   values replicas *execute*, and the values a majority *durably accepted* at one ballot
//!   (recorded when the simulated fsync completes, not when the core says so).
//! * **Durable commit**: a replica executes a slot only once some ballot's value for it is
//!   durably accepted by a majority; executing anything else means it was never chosen.
//! * **Prefix**: each replica incarnation executes slots 1, 2, 3, ... with no gap or repeat,
//!   and every replica executes the same value in the same slot.
//! * **Unique execution**: a request id is executed in at most one slot.
//! * **Acknowledged writes survive**: checked at the end of a run, every acknowledged write
//!   is in the executed log of a majority.
//!
//! Linearizability of the client history is in [`crate::linearizability`].

use std::collections::{BTreeMap, BTreeSet};

use rsl_core::{Ballot, LogEntry, Membership, ReplicaId, RequestId, Slot, Value};

/// Which check failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Check {
    /// Two different values chosen (by execution or by durable majorities) for one slot.
    Agreement,
    /// A replica executed a value no majority durably accepted.
    DurableCommit,
    /// A replica executed out of order, skipped a slot or executed one twice.
    Prefix,
    /// A request executed in two slots.
    UniqueExecution,
    /// An acknowledged write is missing from the survivors' logs.
    AckedWriteLost,
    /// The client history is not linearizable.
    Linearizability,
    /// The cluster did not commit new operations within the bound after the faults stopped.
    Liveness,
    /// The core broke its boundary contract (answered a proposal twice, ...).
    Contract,
    /// The core panicked (an assertion or invariant), or the simulator did.
    Panic,
    /// A primary served a read under a lease nothing justified (`crate::cause`).
    Lease,
    /// A replica loaded or installed a checkpoint that is not the state of the chosen log at
    /// its slot.
    Checkpoint,
    /// A replica became primary without a quorum of durable promises of its ballot.
    Promises,
    /// A primary executed a slot it proposed without a quorum of the governing voters having
    /// durably accepted it at its ballot.
    Votes,
    /// The storage broke its contract: recovery lost or changed an acknowledged record or
    /// the promise (checked against the simulator's shadow of what was acknowledged).
    Storage,
    /// A replica believes a membership other than the one the chosen log defines at the
    /// slot it executed (the last configuration at or below it), for example after loading or
    /// installing a checkpoint that skipped a configuration; or a chosen configuration makes
    /// a voter of a replica that was no member of the membership it follows (voters join as
    /// learners first); or a replica writes a configuration to a slot while no replica has
    /// executed the slot before it (a primary proposes one only once every slot before it
    /// has executed).
    Membership,
    /// A size limit broke: a message sent above `message_bytes_max` (or not the size the
    /// encoder measures), a request within `request_bytes_max` refused as too large, or one
    /// above it executed.
    Limits,
    /// A replica's core, told of a checkpoint installed at or below its executed point,
    /// changed its state (its executed or commit point, checkpoint, truncation or log) or
    /// acted: such an install changes nothing. Checked on a copy of the core before the step
    /// goes on (`Sim::check_stale_install`).
    StaleInstall,
    /// A membership operation (`Input::Reconfigure`) handed to a replica that stayed up was
    /// never answered by the end of the quiet phase, or was answered twice (or by another
    /// replica).
    Answers,
}

/// A failed check, with when and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub check: Check,
    /// Simulated time, in ticks.
    pub tick: u64,
    pub detail: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} at tick {}: {}", self.check, self.tick, self.detail)
    }
}

/// A digest of a value: equal values, equal digests (see [`crate::digest`]).
pub fn value_digest(value: &Value) -> u64 {
    crate::digest::Digest::of(value)
}

#[derive(Debug)]
struct Votes {
    digest: u64,
    voters: BTreeSet<ReplicaId>,
}

/// The cluster-wide observer.
#[derive(Debug)]
pub struct Checker {
    /// The membership governing the slots after each key (slot 0: the initial one), from the
    /// configuration values executed.
    memberships: BTreeMap<Slot, Membership>,
    /// Slots with durable accepts not yet judged (their membership may not be known yet).
    unjudged: BTreeSet<Slot>,
    /// The first value executed for each slot, and by whom.
    executed: BTreeMap<Slot, (u64, Value, ReplicaId)>,
    /// Durable accepts per (slot, ballot).
    votes: BTreeMap<(Slot, Ballot), Votes>,
    /// Values a durable majority accepted, per slot: digest and the first ballot.
    chosen: BTreeMap<Slot, (u64, Ballot)>,
    /// Per replica: the last slot its current incarnation executed.
    progress: BTreeMap<ReplicaId, Slot>,
    /// Per replica: the digest it executed in each slot, over all its incarnations.
    logs: BTreeMap<ReplicaId, BTreeMap<Slot, u64>>,
    /// The slot where each request executed.
    requests: BTreeMap<RequestId, Slot>,
    /// Acknowledged writes and their slot.
    acked: Vec<(RequestId, Slot)>,
    /// Requests refused as definitely not executed, and why.
    refused: BTreeMap<RequestId, String>,
    /// Per replica: the highest checkpoint it loaded or installed (it holds every slot up
    /// to it without having executed them in this incarnation).
    checkpoints: BTreeMap<ReplicaId, Slot>,
    pub failure: Option<Failure>,
    pub tick: u64,
    /// Learners the executed configurations made voters.
    pub promotions: u64,
    /// Whether the durable-commit check runs (turned off only to show which end-to-end
    /// checker catches a planted bug without it).
    pub durable_commit: bool,
}

impl Checker {
    pub fn new(membership: Membership) -> Checker {
        Checker {
            memberships: BTreeMap::from([(Slot::ZERO, membership)]),
            unjudged: BTreeSet::new(),
            executed: BTreeMap::new(),
            votes: BTreeMap::new(),
            chosen: BTreeMap::new(),
            progress: BTreeMap::new(),
            logs: BTreeMap::new(),
            requests: BTreeMap::new(),
            acked: Vec::new(),
            refused: BTreeMap::new(),
            checkpoints: BTreeMap::new(),
            failure: None,
            tick: 0,
            promotions: 0,
            durable_commit: true,
        }
    }

    pub fn fail(&mut self, check: Check, detail: String) {
        if self.failure.is_none() {
            self.failure = Some(Failure { check, tick: self.tick, detail });
        }
    }

    /// The value chosen for `slot`, as far as executions tell.
    pub fn chosen_value(&self, slot: Slot) -> Option<&Value> {
        self.executed.get(&slot).map(|(_, v, _)| v)
    }

    /// Whether a durable majority accepted some value for `slot`.
    pub fn chosen_by_majority(&self, slot: Slot) -> bool {
        self.chosen.contains_key(&slot)
    }

    /// The highest slot anyone executed.
    pub fn max_executed(&self) -> Slot {
        self.executed.keys().next_back().copied().unwrap_or(Slot::ZERO)
    }

    /// `replica` wrote the configuration value of `slot` to its log (proposed it, accepted it
    /// or learned it chosen). A primary proposes a configuration only once every slot before
    /// it has executed (docs/protocol.md, "Reconfiguration"), and every later copy of the
    /// value follows that proposal: so some replica executed the slot before it already. The
    /// rule itself, checked where the value is written; `execute`'s check of the voters sees
    /// only one consequence of breaking it, and only once the value is chosen.
    pub fn config_written(&mut self, replica: ReplicaId, slot: Slot) {
        let executed = self.max_executed();
        if slot.0 > executed.0 + 1 {
            let detail = format!(
                "{replica:?} wrote a configuration to slot {} while no replica had executed past slot {}",
                slot.0, executed.0
            );
            self.fail(Check::Membership, detail);
        }
    }

    /// Whether any replica executed the request.
    pub fn was_executed(&self, id: RequestId) -> bool {
        self.requests.contains_key(&id)
    }

    /// A replica restarted: its execution starts again from slot 1.
    pub fn restarted(&mut self, replica: ReplicaId) {
        self.progress.insert(replica, Slot::ZERO);
    }

    /// A replica loaded or installed a checkpoint of the state after `slot`: its execution
    /// continues after it.
    pub fn checkpoint(&mut self, replica: ReplicaId, slot: Slot) {
        self.progress.insert(replica, slot);
        let c = self.checkpoints.entry(replica).or_insert(Slot::ZERO);
        *c = (*c).max(slot);
    }

    /// The membership that governs `slot` (the last configuration executed before it).
    pub fn membership_for(&self, slot: Slot) -> &Membership {
        self.memberships.range(..slot).next_back().map(|(_, m)| m).expect("initial membership")
    }

    /// `replica` has executed every slot up to `executed` and believes `membership`: it must
    /// be the membership the chosen log defines there, members, roles and member info alike.
    /// Every configuration at or below `executed` was executed by some replica (a checkpoint
    /// holds slots its taker executed), so the checker knows them all.
    pub fn check_membership(
        &mut self,
        replica: ReplicaId,
        executed: Slot,
        membership: &Membership,
    ) {
        let (at, expected) = self.memberships.range(..=executed).next_back().expect("initial");
        if expected != membership {
            let detail = format!(
                "{replica:?} executed up to slot {} and believes the membership {membership:?}, but the log's there is {expected:?} (from slot {})",
                executed.0, at.0
            );
            self.fail(Check::Membership, detail);
        }
    }

    /// The membership after the last executed configuration.
    pub fn membership(&self) -> &Membership {
        self.memberships.values().next_back().expect("initial membership")
    }

    /// A write became durable on `replica`'s disk.
    pub fn durable_accept(&mut self, replica: ReplicaId, entry: &LogEntry) {
        let digest = value_digest(&entry.value);
        let votes = self
            .votes
            .entry((entry.slot, entry.ballot))
            .or_insert_with(|| Votes { digest, voters: BTreeSet::new() });
        if votes.digest != digest {
            let detail = format!(
                "slot {} ballot {:?}: {replica:?} durably accepted {:?}, others a different value",
                entry.slot.0, entry.ballot, entry.value
            );
            self.fail(Check::Agreement, detail);
            return;
        }
        votes.voters.insert(replica);
        self.unjudged.insert(entry.slot);
        self.judge_known();
    }

    /// Judges the slots whose governing membership is known: every slot up to one past the
    /// highest executed (execution is contiguous, so every configuration below is known).
    fn judge_known(&mut self) {
        let known = self.max_executed().next();
        while let Some(slot) = self.unjudged.first().copied().filter(|s| *s <= known) {
            self.unjudged.remove(&slot);
            self.judge(slot);
        }
    }

    /// Records which value a durable majority accepted for `slot`; two is a violation.
    fn judge(&mut self, slot: Slot) {
        let m = self.membership_for(slot).clone();
        let first = (slot, Ballot::ZERO);
        let last = (slot, Ballot { round: u64::MAX, replica: u32::MAX });
        let majorities: Vec<(Ballot, u64)> = self
            .votes
            .range(first..=last)
            .filter(|(_, v)| v.voters.iter().filter(|r| m.is_voter(**r)).count() >= m.quorum())
            .map(|((_, b), v)| (*b, v.digest))
            .collect();
        for (ballot, digest) in majorities {
            match self.chosen.get(&slot) {
                None => {
                    self.chosen.insert(slot, (digest, ballot));
                }
                Some((d, _)) if *d == digest => {}
                Some((_, other)) => {
                    let detail = format!(
                        "slot {}: majorities of {:?} durably accepted different values at ballots {other:?} and {ballot:?}",
                        slot.0, m.voters
                    );
                    self.fail(Check::Agreement, detail);
                }
            }
        }
    }

    /// `replica`, a primary, executes `slot`, which it proposed itself at `ballots` (its own
    /// ballots, this incarnation) and could not have learned chosen from a peer: it counted
    /// the votes itself, so at one of those ballots a quorum of the voters governing the slot
    /// must have durably accepted `value`. An acceptor that already knew the slot chosen
    /// votes for the same value without writing again (`vouched`): its vote counts only if
    /// `value` is indeed chosen (a durable majority accepted it at some ballot).
    pub fn counted(
        &mut self,
        replica: ReplicaId,
        slot: Slot,
        ballots: &[Ballot],
        value: &Value,
        vouched: impl Fn(ReplicaId, Ballot) -> bool,
    ) {
        let m = self.membership_for(slot).clone();
        let digest = value_digest(value);
        let chosen = self.chosen.get(&slot).is_some_and(|(d, _)| *d == digest);
        let votes_at = |ballot: Ballot| -> Vec<ReplicaId> {
            let durable = |r: &ReplicaId| {
                (self.votes.get(&(slot, ballot)))
                    .is_some_and(|v| v.digest == digest && v.voters.contains(r))
            };
            (m.voters.iter())
                .filter(|r| durable(r) || (chosen && vouched(**r, ballot)))
                .copied()
                .collect()
        };
        let best = ballots.iter().map(|b| (*b, votes_at(*b))).max_by_key(|(_, v)| v.len());
        let Some((ballot, voters)) = best else { return };
        if voters.len() < m.quorum() {
            let detail = format!(
                "{replica:?} executed slot {} it proposed at {ballots:?} with durable votes at {ballot:?} only from {voters:?} of voters {:?}",
                slot.0, m.voters
            );
            self.fail(Check::Votes, detail);
        }
    }

    /// `replica` executes `value` in `slot`.
    pub fn execute(&mut self, replica: ReplicaId, slot: Slot, value: &Value) {
        let last = self.progress.get(&replica).copied().unwrap_or(Slot::ZERO);
        if slot != last.next() {
            let detail = format!("{replica:?} executed slot {} after slot {}", slot.0, last.0);
            self.fail(Check::Prefix, detail);
        }
        self.progress.insert(replica, slot);
        let digest = value_digest(value);
        self.check_agreement(replica, slot, digest, value);
        if let Value::Config(m) = value {
            if !self.memberships.contains_key(&slot) {
                let before = self.membership_for(slot).clone();
                let promoted = m.voters.iter().filter(|v| before.learners.contains(v)).count();
                self.promotions += promoted as u64;
                self.memberships.insert(slot, m.clone());
                // Voters join as learners first: a configuration that makes a voter of a
                // replica the membership it replaces does not hold was computed from another
                // membership (one proposed behind undecided slots, chosen after another
                // configuration in one of them: default seed 84907746).
                let strangers: Vec<ReplicaId> =
                    m.voters.iter().filter(|v| !before.contains(**v)).copied().collect();
                if !strangers.is_empty() {
                    let detail = format!(
                        "slot {} installs voters {:?} of which {strangers:?} were not members of the membership it follows, {before:?}",
                        slot.0, m.voters
                    );
                    self.fail(Check::Membership, detail);
                }
            }
        }
        self.judge_known();
        match self.chosen.get(&slot) {
            Some((d, _)) if *d == digest => {}
            Some(_) => {
                let detail = format!(
                    "{replica:?} executed {value:?} in slot {} but a majority durably accepted another value",
                    slot.0
                );
                self.fail(Check::Agreement, detail);
            }
            None if !self.durable_commit => {}
            None => {
                let detail = format!(
                    "{replica:?} executed slot {} ({value:?}) before a majority durably accepted it",
                    slot.0
                );
                self.fail(Check::DurableCommit, detail);
            }
        }
        self.record_requests(slot, value);
    }

    fn check_agreement(&mut self, replica: ReplicaId, slot: Slot, digest: u64, value: &Value) {
        let log = self.logs.entry(replica).or_default();
        if let Some(before) = log.insert(slot, digest) {
            if before != digest {
                let detail = format!(
                    "{replica:?} executed a different value in slot {} after a restart: {value:?}",
                    slot.0
                );
                self.fail(Check::Agreement, detail);
            }
        }
        match self.executed.get(&slot) {
            None => {
                self.executed.insert(slot, (digest, value.clone(), replica));
            }
            Some((d, _, _)) if *d == digest => {}
            Some((_, other, by)) => {
                let detail = format!(
                    "slot {}: {by:?} executed {other:?} but {replica:?} executed {value:?}",
                    slot.0
                );
                self.fail(Check::Agreement, detail);
            }
        }
    }

    fn record_requests(&mut self, slot: Slot, value: &Value) {
        let Value::Batch(requests) = value else { return };
        for request in requests.iter() {
            if let Some(reason) = self.refused.get(&request.id) {
                let detail = format!(
                    "request {:?} executed in slot {} after its proposer refused it ({reason}: definitely not executed)",
                    request.id, slot.0
                );
                self.fail(Check::Contract, detail);
            }
            match self.requests.insert(request.id, slot) {
                Some(other) if other != slot => {
                    let detail = format!(
                        "request {:?} executed in slots {} and {}",
                        request.id, other.0, slot.0
                    );
                    self.fail(Check::UniqueExecution, detail);
                }
                _ => {}
            }
        }
    }

    /// A replica refused a request it had taken with `reason`. Every refusal but
    /// `OutcomeUnknown` says the request was definitely not executed, anywhere, ever.
    pub fn refused(&mut self, id: RequestId, reason: &rsl_core::Refusal) {
        if *reason == rsl_core::Refusal::OutcomeUnknown {
            return;
        }
        if let Some(slot) = self.requests.get(&id) {
            let detail = format!(
                "{:?} refused request {id:?} ({reason:?}: definitely not executed) but it executed in slot {}",
                id.proposer, slot.0
            );
            return self.fail(Check::Contract, detail);
        }
        self.refused.insert(id, format!("{reason:?}"));
    }

    /// A write was acknowledged to its client, executed in `slot`.
    pub fn acked(&mut self, id: RequestId, slot: Slot) {
        self.acked.push((id, slot));
    }

    /// At the end of a run: every acknowledged write is in its slot, and (if the cluster
    /// converged) in the executed log of a majority.
    pub fn check_acked_writes(&mut self, converged: bool) {
        for i in 0..self.acked.len() {
            let (id, slot) = self.acked[i];
            let m = self.membership_for(slot.next()).clone();
            let holds = |r: &ReplicaId| {
                self.logs.get(r).is_some_and(|log| log.contains_key(&slot))
                    || self.checkpoints.get(r).is_some_and(|c| *c >= slot)
            };
            let holders = m.voters.iter().filter(|r| holds(r)).count();
            let in_slot = match self.executed.get(&slot) {
                Some((_, Value::Batch(requests), _)) => requests.iter().any(|r| r.id == id),
                _ => false,
            };
            if !in_slot || (converged && holders < m.quorum()) {
                let detail = format!(
                    "acknowledged write {id:?} (slot {}) is not in the final log of a majority ({holders} replicas executed the slot, request present: {in_slot})",
                    slot.0
                );
                self.fail(Check::AckedWriteLost, detail);
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use rsl_core::Request;

    use super::*;

    fn batch(seq: u64) -> Value {
        Value::Batch(
            vec![Request {
                id: RequestId { proposer: ReplicaId(1), incarnation: 1, seq },
                payload: Bytes::from_static(b"x"),
            }]
            .into(),
        )
    }

    fn entry(slot: u64, round: u64, value: Value) -> LogEntry {
        LogEntry { slot: Slot(slot), ballot: Ballot::new(round, ReplicaId(1)), value }
    }

    #[test]
    fn correct_run_passes() {
        let mut c = Checker::new(Membership::new(1..=3));
        for r in [1, 2] {
            c.durable_accept(ReplicaId(r), &entry(1, 1, batch(1)));
        }
        for r in [1, 2, 3] {
            c.execute(ReplicaId(r), Slot(1), &batch(1));
        }
        c.acked(RequestId { proposer: ReplicaId(1), incarnation: 1, seq: 1 }, Slot(1));
        c.check_acked_writes(true);
        assert_eq!(c.failure, None);
    }

    /// A configuration written behind a slot nobody executed breaks the rule that a primary
    /// proposes one only once every slot before it executed; right behind the executed
    /// prefix it is fine.
    #[test]
    fn a_configuration_written_behind_unexecuted_slots_is_caught() {
        let mut c = Checker::new(Membership::new(1..=3));
        c.config_written(ReplicaId(1), Slot(1));
        assert_eq!(c.failure, None);
        for r in [1, 2] {
            c.durable_accept(ReplicaId(r), &entry(1, 1, batch(1)));
        }
        c.execute(ReplicaId(1), Slot(1), &batch(1));
        c.config_written(ReplicaId(2), Slot(2));
        assert_eq!(c.failure, None);
        c.config_written(ReplicaId(1), Slot(3));
        assert_eq!(c.failure.unwrap().check, Check::Membership);
    }

    #[test]
    fn two_majorities_for_different_values_is_disagreement() {
        let mut c = Checker::new(Membership::new(1..=3));
        c.durable_accept(ReplicaId(1), &entry(1, 1, batch(1)));
        c.durable_accept(ReplicaId(2), &entry(1, 1, batch(1)));
        c.durable_accept(ReplicaId(2), &entry(1, 2, batch(2)));
        assert_eq!(c.failure, None);
        c.durable_accept(ReplicaId(3), &entry(1, 2, batch(2)));
        assert_eq!(c.failure.unwrap().check, Check::Agreement);
    }

    #[test]
    fn executing_without_durable_majority_is_caught() {
        let mut c = Checker::new(Membership::new(1..=3));
        c.durable_accept(ReplicaId(1), &entry(1, 1, batch(1)));
        c.execute(ReplicaId(1), Slot(1), &batch(1));
        assert_eq!(c.failure.unwrap().check, Check::DurableCommit);
    }

    #[test]
    fn gaps_and_divergence_are_caught() {
        let mut c = Checker::new(Membership::new([1]));
        c.durable_accept(ReplicaId(1), &entry(1, 1, batch(1)));
        c.durable_accept(ReplicaId(1), &entry(2, 1, batch(2)));
        c.execute(ReplicaId(1), Slot(2), &batch(2));
        assert_eq!(c.failure.take().unwrap().check, Check::Prefix);
        c.execute(ReplicaId(2), Slot(1), &batch(1));
        c.execute(ReplicaId(3), Slot(1), &batch(3));
        assert_eq!(c.failure.take().unwrap().check, Check::Agreement);
    }

    #[test]
    fn lost_ack_and_double_execution_are_caught() {
        let mut c = Checker::new(Membership::new(1..=3));
        c.durable_accept(ReplicaId(1), &entry(1, 1, batch(1)));
        c.durable_accept(ReplicaId(2), &entry(1, 1, batch(1)));
        c.execute(ReplicaId(1), Slot(1), &batch(1));
        c.acked(RequestId { proposer: ReplicaId(1), incarnation: 1, seq: 1 }, Slot(1));
        c.check_acked_writes(false);
        assert!(c.failure.is_none(), "not converged: a majority need not hold it yet");
        c.check_acked_writes(true);
        assert_eq!(c.failure.take().unwrap().check, Check::AckedWriteLost, "one holder only");
        c.durable_accept(ReplicaId(1), &entry(2, 1, batch(1)));
        c.durable_accept(ReplicaId(2), &entry(2, 1, batch(1)));
        c.execute(ReplicaId(1), Slot(2), &batch(1));
        assert_eq!(c.failure.take().unwrap().check, Check::UniqueExecution);
    }
}
