//! Helpers that scenarios (the core's `tests/` and the simulator's) tell their stories with:
//! each waits for something a correct cluster does within a generous bound, and panics
//! (failing the test) with what it waited for, or with the first checker failure.

use rsl_core::{ReplicaId, Slot};

use super::Sim;
use crate::driver::Reply;
use crate::kv::Op;

/// Ticks a scenario waits for a primary to be elected (several election timeouts).
pub const ELECTION_WAIT_TICKS: u64 = 400;

impl Sim {
    /// Panics with the first checker failure, if any (`run_until` stops early at one).
    pub fn assert_no_failure(&self) {
        if let Some(f) = self.failure() {
            panic!("checker failure: {f}");
        }
    }

    /// Waits for a primary, lets it settle for 20 ticks (it executes what earlier primaries
    /// committed), checks that it stayed primary, and returns it.
    pub fn elect(&mut self) -> ReplicaId {
        let ok = self.run_until(|s| s.primary().is_some(), ELECTION_WAIT_TICKS);
        self.assert_no_failure();
        assert!(ok, "no primary elected within {ELECTION_WAIT_TICKS} ticks");
        let p = self.primary().expect("a primary");
        self.run_ticks(20);
        assert_eq!(self.primary(), Some(p), "primary not stable");
        p
    }

    /// Proposes `op` at `at` and waits (up to 200 ticks) for its answer.
    pub fn submit(&mut self, at: ReplicaId, op: Op) -> Reply {
        let t = self.propose(at, op);
        let ok = self.run_until(|s| s.reply(t).is_some(), 200);
        self.assert_no_failure();
        assert!(ok, "no answer to {op:?} at {at:?}");
        self.reply(t).expect("answered").clone()
    }

    /// Appends `token` to `key` at `at`, which must execute it; returns its slot.
    pub fn append(&mut self, at: ReplicaId, key: u8, token: u64) -> Slot {
        match self.submit(at, Op::Append { key, token }) {
            Reply::Done { slot, .. } => slot,
            other => panic!("append {token} at {at:?} answered {other:?}"),
        }
    }

    /// Waits (up to 600 ticks) until every replica executed as far as the furthest one.
    pub fn converge(&mut self) {
        let ids = self.ids();
        let ok = self.run_until(
            |s| {
                let top = ids.iter().map(|i| s.executed(*i)).max().expect("replicas");
                ids.iter().all(|i| s.executed(*i) == top)
            },
            600,
        );
        self.assert_no_failure();
        let executed: Vec<Slot> = ids.iter().map(|i| self.executed(*i)).collect();
        assert!(ok, "replicas did not converge: {executed:?}");
    }

    /// Every replica but `me`.
    pub fn others(&self, me: ReplicaId) -> Vec<ReplicaId> {
        self.ids().into_iter().filter(|i| *i != me).collect()
    }

    /// Ends a story: 30 more ticks, then every end-of-run checker (acknowledged writes,
    /// linearizability of the scripted operations); panics on any failure.
    pub fn end(mut self) {
        self.run_ticks(30);
        self.finish();
        self.assert_no_failure();
    }
}
