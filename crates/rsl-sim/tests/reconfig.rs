//! Regression stories for the liveness of membership changes (docs/protocol.md,
//! "Reconfiguration", "Liveness of membership changes"): each tells, on the simulator's
//! harness, the path by which `--reconfig` seeds stalled, and fails without its fix. Every
//! story ends with the full set of checkers.

use rsl_core::message::Body;
use rsl_core::{Input, Membership, ReplicaId, Role, Slot};
use rsl_sim::driver::Reply;
use rsl_sim::kv::Op;
use rsl_sim::{Options, Sim};

const ELECTION_TICKS: u64 = 400;

fn ids(list: &[u32]) -> Vec<ReplicaId> {
    list.iter().copied().map(ReplicaId).collect()
}

/// Fails the test at once if a checker failed (a `run_until` stops early on a failure).
fn no_failure(sim: &Sim) {
    if let Some(f) = sim.failure() {
        panic!("checker failure: {f}");
    }
}

fn elect(sim: &mut Sim) -> ReplicaId {
    let ok = sim.run_until(|s| s.primary().is_some(), ELECTION_TICKS);
    no_failure(sim);
    assert!(ok, "no primary elected");
    let p = sim.primary().unwrap();
    sim.run_ticks(20);
    assert_eq!(sim.primary(), Some(p), "primary not stable");
    p
}

fn append(sim: &mut Sim, at: ReplicaId, key: u8, token: u64) -> Slot {
    let t = sim.propose(at, Op::Append { key, token });
    let ok = sim.run_until(|s| s.reply(t).is_some(), 200);
    no_failure(sim);
    assert!(ok, "no answer to append {token} at {at:?}");
    match sim.reply(t).unwrap() {
        Reply::Done { slot, .. } => *slot,
        other => panic!("append {token} at {at:?} answered {other:?}"),
    }
}

fn finish(mut sim: Sim) {
    sim.run_ticks(30);
    sim.finish();
    no_failure(&sim);
}

/// True if `m` tells its receiver that `slot` is chosen.
fn carries_commit_of(m: &rsl_core::Message, slot: u64) -> bool {
    match &m.body {
        Body::Accept { commit, .. } | Body::Heartbeat { commit, .. } => commit.0 >= slot,
        Body::CatchupReply { .. } | Body::PreVote { .. } => true,
        _ => false,
    }
}

#[test]
fn new_voters_that_missed_the_commit_of_the_change_that_made_them_voters_are_not_stranded() {
    // Seeds 9000019, 9000061, 9000436 and 29 more of 2,000 from `--reconfig --first 9000000`
    // stalled this way. Three voters are replaced by three learners in one change. The
    // change's commit reaches the old voters, which execute it and leave (they are learners
    // of nothing now), but not the new ones: these hold the value, not knowing it chosen,
    // and wait as learners of the old membership for a primary that will never come. The
    // fix: a replica that hears no primary for an election timeout probes its peers for the
    // slot after its commit point.
    let options = Options { spares: 3, ..Options::quiet(3, 61) };
    let mut sim = Sim::new(options);
    let p = elect(&mut sim);
    append(&mut sim, p, 0, 1);
    let staged = Membership { voters: ids(&[1, 2, 3]), learners: ids(&[4, 5, 6]) };
    sim.input(p, Input::ChangeMembership(staged.clone()));
    let all = sim.ids();
    let ok = sim.run_until(|s| all.iter().all(|i| s.status(*i).unwrap().membership == staged), 100);
    no_failure(&sim);
    assert!(ok, "the learners were not staged");
    append(&mut sim, p, 0, 2);
    let target = sim.executed(p).0 + 1;
    let new = ids(&[4, 5, 6]);
    sim.drop_messages(move |m| new.contains(&m.to) && carries_commit_of(m, target));
    sim.input(p, Input::ChangeMembership(Membership::new([4, 5, 6])));
    let old = ids(&[1, 2, 3]);
    let ok = sim.run_until(|s| old.iter().all(|i| s.executed(*i).0 >= target), 200);
    no_failure(&sim);
    assert!(ok, "the old voters did not execute the change");
    for id in ids(&[4, 5, 6]) {
        assert!(sim.executed(id).0 < target, "{id:?} learned the change");
        assert_eq!(sim.status(id).unwrap().role, Role::Learner);
    }
    sim.clear_filters();
    let ok = sim.run_until(|s| s.primary().is_some_and(|q| q.0 >= 4), 3 * ELECTION_TICKS);
    no_failure(&sim);
    let executed: Vec<u64> = sim.ids().iter().map(|i| sim.executed(*i).0).collect();
    assert!(ok, "no primary among the new voters; executed {executed:?}");
    let q = sim.primary().unwrap();
    append(&mut sim, q, 0, 3);
    for id in ids(&[4, 5, 6]) {
        assert!(sim.run_until(|s| s.executed(id) >= s.executed(q), 100), "{id:?} lags");
        assert_eq!(sim.kv(id).unwrap().value(0), &[1, 2, 3]);
    }
    finish(sim);
}
