//! The replica's invariants: the checks `Replica::invariants` runs after steps in tests and
//! the simulator, and the cheap subset (`invariants_cheap`) the runtime runs in release
//! (ARCHITECTURE.md, invariant 5). Apart from the state machine of `replica.rs` so that each
//! file stays one concern.

use crate::replica::{Replica, Role};

impl Replica {
    /// Checks every invariant of the replica's state; panics on a violation.
    pub fn invariants(&self) {
        self.invariants_cheap();
        self.invariants_walks();
    }

    /// The invariants that cost a few comparisons, whatever the size of the log: on after
    /// every step in release builds too.
    pub fn invariants_cheap(&self) {
        invariant!(
            self.executed <= self.commit || planted!(self, ExecuteOutOfOrder),
            "executed {:?} above commit {:?}",
            self.executed,
            self.commit
        );
        invariant!(self.checkpoint <= self.executed, "checkpoint above executed");
        invariant!(
            self.durable <= self.next_seq,
            "durable {} above issued {}",
            self.durable,
            self.next_seq
        );
        invariant!(self.seen >= self.promised, "seen below promised");
        self.check_roles_cheap();
    }

    /// The invariants that walk the held messages, the log above the executed point and the
    /// in-flight slots: debug builds and checking drivers only.
    pub fn invariants_walks(&self) {
        invariant!(
            self.held.iter().all(|h| h.seq > self.durable && h.seq <= self.next_seq),
            "a held message waits for a durable or unissued write"
        );
        self.check_log();
        self.check_inflight();
        self.check_rebuild();
    }

    /// Checks the log above the executed point (below it, entries are immutable history, and
    /// scanning them on every step would make the check cost grow with the log).
    fn check_log(&self) {
        if let Some((first, _)) = self.log.first_key_value() {
            invariant!(
                *first > self.mem_base.max(self.truncated),
                "slot {first:?} kept below mem_base"
            );
        }
        for (slot, e) in self.log.range(self.executed.next()..) {
            invariant!(unless self, AcceptorIgnoresPromise, e.chosen || e.ballot <= self.promised,
                "slot {slot:?} accepted at {:?} above the promise {:?}", e.ballot, self.promised);
            invariant!(*slot > self.commit || e.chosen, "committed slot {slot:?} not chosen");
        }
        let mut slot = self.mem_base.max(self.truncated).max(self.executed).next();
        while slot <= self.commit {
            invariant!(self.log.contains_key(&slot), "committed slot {slot:?} missing");
            slot = slot.next();
        }
        invariant!(
            self.corrupt.keys().all(|s| *s > self.commit && !self.log.contains_key(s)),
            "a corrupt slot is committed or held"
        );
        // The byte count in full is checked where entries leave in bulk (`drop_log_through`);
        // a walk of every executed entry here cost the simulator 30 % of its time.
        invariant!(
            self.mem_bytes > 0 || self.log.range(..=self.executed).next().is_none(),
            "executed entries in memory but a byte count of 0"
        );
        invariant!(
            self.outcomes.keys().all(|s| *s > self.executed),
            "an outcome waits for an executed slot"
        );
        invariant!(
            self.change_outcomes.keys().all(|s| *s > self.executed),
            "a membership operation waits for an executed slot"
        );
        invariant!(
            self.removal.is_none() || !self.membership.contains(self.id),
            "a member marked removed"
        );
    }

    fn check_roles_cheap(&self) {
        invariant!(
            (self.role == Role::Primary) == self.primacy.is_some(),
            "primacy state iff primary"
        );
        invariant!(
            (self.role == Role::Candidate) == self.election.is_some(),
            "election iff candidate"
        );
        if let Some(l) = &self.primacy {
            invariant!(
                l.ballot == self.promised,
                "primary's ballot {:?} is not its promise",
                l.ballot
            );
            invariant!(self.primary == Some(self.id), "primary does not name itself");
            invariant!(l.queue.len() <= self.config.proposals_queued_max, "queue over its limit");
        }
        if let Some(e) = &self.election {
            invariant!(e.ballot.owner() == self.id, "candidate ballot not owned");
            invariant!(e.prevote || e.ballot == self.promised, "candidate ballot not promised");
        }
        invariant!(self.reads.len() <= self.config.reads_queued_max, "reads over their limit");
    }

    fn check_inflight(&self) {
        let Some(l) = &self.primacy else { return };
        // A walk of the queue: here, not in the cheap checks (the queue holds thousands under
        // load, and the cheap checks run after every step in release).
        invariant!(
            l.queued_bytes == l.queue.iter().map(|q| q.payload.len()).sum::<usize>(),
            "the queue's byte count is off"
        );
        for slot in l.inflight.keys() {
            invariant!(
                *slot > self.commit && *slot < l.next_slot,
                "in-flight {slot:?} out of range"
            );
            let e = self.log.get(slot).expect("in-flight slot missing from log");
            invariant!(e.ballot == l.ballot, "in-flight {slot:?} not at the primary's ballot");
        }
    }
}
