//! Regression stories for the liveness of membership changes (docs/protocol.md,
//! "Reconfiguration", "Liveness of membership changes"): each tells, on the simulator's
//! harness, the path by which `--reconfig` seeds stalled, and fails without its fix. Every
//! story ends with the full set of checkers.

use bytes::Bytes;
use rsl_core::message::Body;
use rsl_core::{
    Input, MemberInfo, Membership, MembershipOp, ReconfigRefusal, ReplicaId, Role, Slot,
};
use rsl_sim::driver::Reply;
use rsl_sim::kv::Op;
use rsl_sim::{Options, Sim};

const ELECTION_TICKS: u64 = 400;

fn r(id: u32) -> ReplicaId {
    ReplicaId(id)
}

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
    let staged =
        Membership { voters: ids(&[1, 2, 3]), learners: ids(&[4, 5, 6]), info: Default::default() };
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

/// A seed of `Options::quiet` whose first primary keeps its ballot across the shrink.
const STRANDED_SEED: u64 = 76;

#[test]
fn removed_replicas_made_voters_again_while_cut_off_are_not_stranded() {
    // Seed 75002710 with `--reconfig` stalled this way. {1..6} shrinks to three of them (say
    // {1, 2, 3}); the other three (4, 5 and 6) learn that a quorum of the new voters executed their removal and are done (a
    // runtime would stop them; the simulator keeps them, as a replica the operator adds
    // back). Cut off, they are staged as learners again and then made the voters, {4, 5, 6}:
    // the primary took them for caught up on acknowledgements from before their removal
    // (within `catchup_entries_max` of its commit point, and never mind how old), although
    // none of them knew it was a member again. The change was chosen by {1, 2, 3}, which
    // left; 4, 5 and 6 still believed themselves removed, so none probed for the commit it
    // missed (a removed replica that is done asks nobody), and no primary was ever elected.
    // The fix: a learner counts as caught up only on a recent acknowledgement of a commit
    // point at or past the configuration the primary executed last (so it knows itself a
    // member, and probes if it misses the next commit).
    let options = Options::quiet(6, STRANDED_SEED);
    let mut sim = Sim::new(options);
    let p = elect(&mut sim);
    let ballot = sim.status(p).unwrap().ballot;
    append(&mut sim, p, 0, 1);
    // The primary and the two lowest others stay; the other three go.
    let others: Vec<u32> = (1..=6).filter(|i| *i != p.0).collect();
    let (kept, gone) = ([p.0, others[0], others[1]], ids(&others[2..]));
    sim.input(p, Input::ChangeMembership(Membership::new(kept)));
    let done = gone.clone();
    let ok = sim.run_until(move |s| done.iter().all(|i| s.status(*i).unwrap().removed_done), 200);
    no_failure(&sim);
    assert!(ok, "4, 5 and 6 were not removed");
    append(&mut sim, p, 0, 2);
    // The same primacy, which heard them acknowledge the change that removed them (a primary
    // whose phase 1 did not cover {1, 2, 3} would have started afresh and heard nothing).
    assert_eq!(sim.status(p).unwrap().ballot, ballot, "the story wants the same primacy");
    let cut = gone.clone();
    sim.drop_messages(move |m| cut.contains(&m.to) || cut.contains(&m.from));
    sim.run_ticks(50);
    sim.input(p, Input::ChangeMembership(Membership::new(others[2..].iter().copied())));
    sim.run_ticks(100);
    no_failure(&sim);
    sim.clear_filters();
    let new = gone.clone();
    let ok =
        sim.run_until(move |s| s.primary().is_some_and(|q| new.contains(&q)), 3 * ELECTION_TICKS);
    no_failure(&sim);
    let executed: Vec<u64> = sim.ids().iter().map(|i| sim.executed(*i).0).collect();
    assert!(ok, "no primary among the new voters; executed {executed:?}");
    let q = sim.primary().unwrap();
    append(&mut sim, q, 0, 3);
    for id in gone {
        assert!(sim.run_until(|s| s.executed(id) >= s.executed(q), 100), "{id:?} lags");
        assert_eq!(sim.kv(id).unwrap().value(0), &[1, 2, 3]);
    }
    finish(sim);
}

// ----- membership operations (`Input::Reconfigure`) -----

/// Asks `at` for `op` and waits for the answer.
fn operate(sim: &mut Sim, at: ReplicaId, op: MembershipOp) -> Result<Membership, ReconfigRefusal> {
    let change = sim.reconfigure(at, op.clone());
    let ok = sim.run_until(|s| s.reconfig_outcome(change).is_some(), 200);
    no_failure(sim);
    assert!(ok, "no answer to {op:?} at {at:?}");
    sim.reconfig_outcome(change).unwrap().clone().map(|(_, m)| m)
}

/// Waits until the primary `p` heard learner `id` acknowledge `p`'s executed point: a
/// learner counts as caught up only on an acknowledgement past the configuration that made it
/// one, not because it executed as far (docs/protocol.md, "Membership operations").
fn heard_caught_up(sim: &mut Sim, p: ReplicaId, id: ReplicaId) {
    let acked = |s: &Sim| {
        let st = s.status(p).unwrap();
        st.peers.iter().any(|peer| peer.id == id && peer.commit >= st.executed)
    };
    let ok = sim.run_until(acked, 200);
    no_failure(sim);
    assert!(ok, "{p:?} did not hear {id:?} acknowledge its executed point");
}

fn info(id: u32) -> MemberInfo {
    MemberInfo { addr: format!("10.0.0.{id}:7001"), data: Bytes::from(format!("10.0.0.{id}:6379")) }
}

#[test]
fn a_replica_joins_as_a_learner_is_promoted_replaces_a_voter_and_the_old_one_leaves() {
    // Three voters and one joining replica (a spare): add it as a learner, promote it once it
    // caught up, then replace a voter by another joining replica and remove a learner. Each
    // operation is answered once its configuration executed, and the membership carries
    // every member's info to every replica.
    let options = Options { spares: 2, ..Options::quiet(3, 71) };
    let mut sim = Sim::new(options);
    assert!(sim.status(r(4)).unwrap().joining);
    let p = elect(&mut sim);
    for token in 1..=5 {
        append(&mut sim, p, 0, token);
    }
    let m = operate(&mut sim, p, MembershipOp::AddLearner { id: r(4), info: info(4) }).unwrap();
    assert_eq!((m.voters.clone(), m.learners.clone()), (ids(&[1, 2, 3]), ids(&[4])));
    assert_eq!(m.info.get(&r(4)), Some(&info(4)));
    let caught_up = sim.run_until(|s| s.executed(r(4)) >= s.executed(p), 200);
    assert!(caught_up, "the learner did not catch up");
    let member = sim.status(r(4)).unwrap();
    assert!(!member.joining && member.role == Role::Learner, "{member:?}");
    heard_caught_up(&mut sim, p, r(4));
    let ballot = sim.status(p).unwrap().promised;
    let m = operate(&mut sim, p, MembershipOp::Promote { id: r(4) }).unwrap();
    assert_eq!(m.voters, ids(&[1, 2, 3, 4]));
    // The primary's phase 1 promises (at least 2 of {1, 2, 3}) meet every quorum of
    // {1, 2, 3, 4} (3 of 4): it keeps its ballot, with no election (docs/protocol.md,
    // "Reconfiguration", rule 1).
    let status = sim.status(p).unwrap();
    assert_eq!(
        (sim.primary(), status.promised),
        (Some(p), ballot),
        "an election after a promotion"
    );
    assert_eq!(status.role, Role::Primary);
    // Replace a voter that is not the primary by the second spare.
    let old = sim.ids().into_iter().find(|i| *i != p && i.0 <= 3).unwrap();
    operate(&mut sim, p, MembershipOp::AddLearner { id: r(5), info: info(5) }).unwrap();
    assert!(sim.run_until(|s| s.executed(r(5)) >= s.executed(p), 200));
    let p = elect(&mut sim);
    heard_caught_up(&mut sim, p, r(5));
    let m = operate(&mut sim, p, MembershipOp::Replace { old, new: r(5) }).unwrap();
    assert!(m.is_voter(r(5)) && !m.contains(old) && m.voters.len() == 4, "{m:?}");
    assert!(!m.info.contains_key(&old) && m.info.get(&r(5)) == Some(&info(5)));
    // The removed replica learns it, and once a quorum of the new voters executed the change
    // it is told it may stop.
    let done = sim.run_until(|s| s.status(old).is_some_and(|st| st.removed_done), 300);
    no_failure(&sim);
    assert!(done, "{old:?} never learned it was removed: {:?}", sim.status(old));
    let q = elect(&mut sim);
    append(&mut sim, q, 0, 6);
    for id in m.voters.clone() {
        assert!(sim.run_until(|s| s.executed(id) >= s.executed(q), 100), "{id:?} lags");
        assert_eq!(sim.kv(id).unwrap().value(0), &[1, 2, 3, 4, 5, 6]);
        assert_eq!(sim.status(id).unwrap().membership, m, "{id:?}");
    }
    finish(sim);
}

#[test]
fn membership_operations_are_refused_with_the_reason() {
    let options = Options { spares: 1, ..Options::quiet(3, 72) };
    let mut sim = Sim::new(options);
    let p = elect(&mut sim);
    append(&mut sim, p, 0, 1);
    let f = sim.ids().into_iter().find(|i| *i != p && i.0 <= 3).unwrap();
    // At a follower: not primary, naming the primary.
    let refused = operate(&mut sim, f, MembershipOp::Remove { id: r(4) });
    assert_eq!(refused, Err(ReconfigRefusal::NotPrimary { primary: Some(p) }));
    // Members and strangers.
    let refused = operate(&mut sim, p, MembershipOp::Remove { id: r(4) });
    assert_eq!(refused, Err(ReconfigRefusal::UnknownMember { id: r(4) }));
    let refused = operate(&mut sim, p, MembershipOp::AddLearner { id: f, info: info(f.0) });
    assert_eq!(refused, Err(ReconfigRefusal::AlreadyMember { id: f }));
    let refused = operate(&mut sim, p, MembershipOp::Promote { id: f });
    assert_eq!(refused, Err(ReconfigRefusal::UnknownMember { id: f }));
    let big =
        MemberInfo { addr: "x".repeat(rsl_core::limits::MEMBER_ADDR_BYTES_MAX + 1), ..info(4) };
    let refused = operate(&mut sim, p, MembershipOp::AddLearner { id: r(4), info: big });
    assert!(matches!(refused, Err(ReconfigRefusal::Invalid { .. })), "{refused:?}");
    // A learner that has not caught up is not promoted: it is down, so it acknowledges nothing.
    sim.crash_with(r(4), false);
    operate(&mut sim, p, MembershipOp::AddLearner { id: r(4), info: info(4) }).unwrap();
    let refused = operate(&mut sim, p, MembershipOp::Promote { id: r(4) });
    assert!(
        matches!(refused, Err(ReconfigRefusal::NotCaughtUp { id, .. }) if id == r(4)),
        "{refused:?}"
    );
    let refused = operate(&mut sim, p, MembershipOp::Replace { old: f, new: r(4) });
    assert!(matches!(refused, Err(ReconfigRefusal::NotCaughtUp { .. })), "{refused:?}");
    // With one voter down, removing another would leave the new voters without a live
    // quorum: refused, and the cluster keeps committing.
    let other = sim.ids().into_iter().find(|i| *i != p && *i != f && i.0 <= 3).unwrap();
    sim.crash_with(other, false);
    sim.run_ticks(100);
    let refused = operate(&mut sim, p, MembershipOp::Remove { id: f });
    assert_eq!(refused, Err(ReconfigRefusal::NoQuorum { live: 1, quorum: 2 }));
    append(&mut sim, p, 0, 2);
    // Two operations at once: the second waits for nothing, it is refused.
    let first = sim.reconfigure(p, MembershipOp::Remove { id: r(4) });
    let second = sim.reconfigure(p, MembershipOp::Remove { id: other });
    assert!(sim.run_until(|s| s.reconfig_outcome(first).is_some(), 200));
    assert_eq!(sim.reconfig_outcome(second), Some(&Err(ReconfigRefusal::InFlight)));
    assert!(sim.reconfig_outcome(first).unwrap().is_ok());
    sim.restart(other);
    sim.restart(r(4));
    finish(sim);
}

#[test]
fn a_joining_replica_that_restarts_is_neither_removed_nor_a_member_too_early() {
    // A joining replica restarts before it is added (still joining), then after (a member
    // since the slot that added it, which its log replays); a replica that was removed and
    // restarts learns again that it was removed.
    let options = Options { spares: 1, ..Options::quiet(3, 73) };
    let mut sim = Sim::new(options);
    let p = elect(&mut sim);
    append(&mut sim, p, 0, 1);
    sim.crash_with(r(4), false);
    sim.restart(r(4));
    let st = sim.status(r(4)).unwrap();
    assert!(st.joining && st.removed.is_none(), "{st:?}");
    let m = operate(&mut sim, p, MembershipOp::AddLearner { id: r(4), info: info(4) }).unwrap();
    assert!(sim.run_until(|s| s.executed(r(4)) >= s.executed(p), 200));
    sim.crash_with(r(4), true);
    sim.restart(r(4));
    assert!(sim.run_until(|s| s.executed(r(4)) >= s.executed(p), 200));
    let st = sim.status(r(4)).unwrap();
    assert!(!st.joining && st.removed.is_none() && st.membership == m, "{st:?}");
    heard_caught_up(&mut sim, p, r(4));
    operate(&mut sim, p, MembershipOp::Promote { id: r(4) }).unwrap();
    let p = elect(&mut sim);
    let gone = sim.ids().into_iter().find(|i| *i != p && i.0 <= 3).unwrap();
    operate(&mut sim, p, MembershipOp::Remove { id: gone }).unwrap();
    assert!(sim.run_until(|s| s.status(gone).is_some_and(|st| st.removed_done), 300));
    sim.crash_with(gone, false);
    sim.restart(gone);
    let done = sim.run_until(|s| s.status(gone).is_some_and(|st| st.removed_done), 300);
    no_failure(&sim);
    assert!(
        done,
        "after a restart {gone:?} did not learn again it was removed: {:?}",
        sim.status(gone)
    );
    finish(sim);
}

#[test]
fn a_membership_whose_value_would_exceed_the_value_limit_is_refused() {
    // Small size limits: the value limit is the floor, a configuration without member info
    // (`CONFIG_IDS_VALUE_BYTES_MAX`). A learner with the largest application data would make
    // a larger value, which no slot may hold: refused, naming the limit; with small info the
    // same operation is made.
    let options = Options {
        spares: 1,
        request_bytes_max: 64,
        batch_bytes_max: 64,
        batch_requests_max: 1,
        ..Options::quiet(3, 74)
    };
    let mut sim = Sim::new(options);
    let p = elect(&mut sim);
    append(&mut sim, p, 0, 1);
    let big =
        MemberInfo { data: vec![7u8; rsl_core::limits::MEMBER_DATA_BYTES_MAX].into(), ..info(4) };
    let refused = operate(&mut sim, p, MembershipOp::AddLearner { id: r(4), info: big });
    assert!(
        matches!(&refused, Err(ReconfigRefusal::Invalid { reason }) if reason.contains("value_bytes_max")),
        "{refused:?}"
    );
    let m = operate(&mut sim, p, MembershipOp::AddLearner { id: r(4), info: info(4) }).unwrap();
    assert_eq!(m.info.get(&r(4)), Some(&info(4)));
    append(&mut sim, p, 0, 2);
    finish(sim);
}

#[test]
fn a_replica_restored_from_a_checkpoint_knows_the_membership_of_its_slot() {
    // Checkpoints every 8 slots and no log kept behind them. Two learners are added (the
    // second while it is down), then the cluster checkpoints past both configurations. A
    // voter that restarts from its checkpoint, and the second learner, which can only catch
    // up by installing a checkpoint, believe the membership of the checkpoint's slot (with
    // the members' info), as if they had executed the log; the learner knows at once that
    // it is a member. (The membership checker also checks every replica after every step.)
    let options = Options {
        spares: 2,
        checkpoint_interval_slots: 8,
        log_kept_slots: 0,
        ..Options::quiet(3, 74)
    };
    let mut sim = Sim::new(options);
    let p = elect(&mut sim);
    append(&mut sim, p, 0, 1);
    sim.crash_with(r(5), false);
    operate(&mut sim, p, MembershipOp::AddLearner { id: r(4), info: info(4) }).unwrap();
    let m = operate(&mut sim, p, MembershipOp::AddLearner { id: r(5), info: info(5) }).unwrap();
    assert_eq!(m.learners, ids(&[4, 5]));
    for token in 2..=30 {
        append(&mut sim, p, 0, token);
    }
    let f = sim.ids().into_iter().find(|i| *i != p && i.0 <= 3).unwrap();
    sim.crash_with(f, true);
    sim.restart(f);
    let st = sim.status(f).unwrap();
    assert!(st.executed > Slot(3), "{f:?} restarted without a checkpoint past the changes");
    assert_eq!(st.membership, m, "{f:?} restarted from its checkpoint");
    sim.restart(r(5));
    assert!(sim.run_until(|s| s.executed(r(5)) >= s.executed(p), 300), "5 did not catch up");
    assert!(sim.disk(r(5)).stats.checkpoints_saved > 0, "5 installed no checkpoint");
    let st = sim.status(r(5)).unwrap();
    assert!(!st.joining && st.role == Role::Learner, "{st:?}");
    assert_eq!(st.membership, m);
    // It counts as caught up: the primary promotes it.
    let p = elect(&mut sim);
    heard_caught_up(&mut sim, p, r(5));
    let promoted = operate(&mut sim, p, MembershipOp::Promote { id: r(5) }).unwrap();
    assert!(promoted.is_voter(r(5)));
    finish(sim);
}
