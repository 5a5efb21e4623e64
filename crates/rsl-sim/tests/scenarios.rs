//! Scripted scenarios on the simulator harness, each a short story with an assertion a wrong
//! implementation would break. Every scenario also ends with the full set of checkers
//! (agreement, durable commit, prefix, unique execution, acknowledged writes, linearizability)
//! through `finish`.

use std::cell::Cell;
use std::rc::Rc;

use rsl_core::message::Body;
use rsl_core::{Input, Message, ReadMode, Refusal, ReplicaId, Role, Slot};
use rsl_sim::driver::Reply;
use rsl_sim::kv::Op;
use rsl_sim::{Options, Sim};

const ELECTION_TICKS: u64 = 400;

fn r(id: u32) -> ReplicaId {
    ReplicaId(id)
}

fn quiet(replicas: usize, seed: u64) -> Sim {
    Sim::new(Options::quiet(replicas, seed))
}

/// Waits for a primary that has executed everything before its term (its first no-op or
/// re-proposals), and returns it.
fn elect(sim: &mut Sim) -> ReplicaId {
    let ok = sim.run_until(|s| s.primary().is_some(), ELECTION_TICKS);
    no_failure(sim);
    assert!(ok, "no primary elected");
    let p = sim.primary().unwrap();
    sim.run_ticks(20);
    assert_eq!(sim.primary(), Some(p), "primary not stable");
    p
}

/// Proposes `op` at `at` and waits for its answer.
fn submit(sim: &mut Sim, at: ReplicaId, op: Op) -> Reply {
    let t = sim.propose(at, op);
    let ok = sim.run_until(|s| s.reply(t).is_some(), 200);
    no_failure(sim);
    assert!(ok, "no answer to {op:?} at {at:?}");
    sim.reply(t).unwrap().clone()
}

fn append(sim: &mut Sim, at: ReplicaId, key: u8, token: u64) -> Slot {
    match submit(sim, at, Op::Append { key, token }) {
        Reply::Done { slot, .. } => slot,
        other => panic!("append {token} at {at:?} answered {other:?}"),
    }
}

fn converge(sim: &mut Sim) {
    let ids = sim.ids();
    let ok = sim.run_until(
        |s| {
            let top = ids.iter().map(|i| s.executed(*i)).max().unwrap();
            ids.iter().all(|i| s.executed(*i) == top)
        },
        600,
    );
    no_failure(sim);
    assert!(
        ok,
        "replicas did not converge: {:?}",
        ids.iter().map(|i| sim.executed(*i)).collect::<Vec<_>>()
    );
}

/// Fails the test at once if a checker failed (a `run_until` stops early on a failure).
fn no_failure(sim: &Sim) {
    if let Some(f) = sim.failure() {
        panic!("checker failure: {f}");
    }
}

/// Runs the end-of-run checkers and fails the test on any failure.
fn finish(mut sim: Sim) {
    sim.run_ticks(30);
    sim.finish();
    if let Some(f) = sim.failure() {
        panic!("checker failure: {f}");
    }
}

fn is_accept(m: &Message) -> bool {
    matches!(m.body, Body::Accept { .. })
}

fn others(sim: &Sim, me: ReplicaId) -> Vec<ReplicaId> {
    sim.ids().into_iter().filter(|i| *i != me).collect()
}

#[test]
fn a_primary_is_elected_and_commits_on_every_replica() {
    let mut sim = quiet(3, 1);
    let p = elect(&mut sim);
    for token in 1..=10 {
        append(&mut sim, p, 0, token);
    }
    converge(&mut sim);
    for id in sim.ids() {
        assert_eq!(sim.kv(id).unwrap().value(0), &(1..=10).collect::<Vec<u64>>()[..]);
    }
    finish(sim);
}

#[test]
fn commit_point_reaches_followers_without_further_proposals() {
    // The commit point travels on later messages and heartbeats: one write, then silence.
    let mut sim = quiet(5, 2);
    let p = elect(&mut sim);
    let slot = append(&mut sim, p, 1, 7);
    let ids = sim.ids();
    assert!(sim.run_until(|s| ids.iter().all(|i| s.executed(*i) >= slot), 50));
    finish(sim);
}

#[test]
fn a_follower_refuses_proposals_and_names_the_primary() {
    let mut sim = quiet(3, 3);
    let p = elect(&mut sim);
    let f = others(&sim, p)[0];
    match submit(&mut sim, f, Op::Append { key: 0, token: 1 }) {
        Reply::Refused(Refusal::NotPrimary { primary }) => assert_eq!(primary, Some(p)),
        other => panic!("a follower answered {other:?}"),
    }
    // It was definitely not executed: nobody has the token.
    sim.run_ticks(50);
    for id in sim.ids() {
        assert!(sim.kv(id).unwrap().value(0).is_empty());
    }
    finish(sim);
}

#[test]
fn primary_persists_a_slot_and_crashes_before_sending_it() {
    // The primary writes its accept for the next slot but no follower ever sees it; it
    // crashes. The slot must end up chosen everywhere or nowhere: here nowhere can have it,
    // since only the dead primary accepted it, so no replica may ever execute the token.
    let mut sim = quiet(3, 4);
    let p = elect(&mut sim);
    for token in 1..=3 {
        append(&mut sim, p, 0, token);
    }
    sim.drop_messages(move |m| m.from == p && is_accept(m));
    let lost = sim.propose(p, Op::Append { key: 0, token: 99 });
    sim.run_ticks(5);
    assert!(sim.disk(p).durable().log.values().count() >= 4, "the primary persisted the slot");
    sim.crash_with(p, false);
    sim.clear_filters();
    let q = elect(&mut sim);
    assert_ne!(q, p);
    append(&mut sim, q, 0, 4);
    sim.restart(p);
    converge(&mut sim);
    assert!(sim.reply(lost).is_none(), "the crashed primary cannot answer");
    for id in sim.ids() {
        assert_eq!(sim.kv(id).unwrap().value(0), &[1, 2, 3, 4], "{id:?}");
    }
    finish(sim);
}

#[test]
fn primary_crashes_after_a_minority_accepted_a_slot() {
    // The accept reaches exactly one follower (so a majority of 2 of 3 holds it). The next
    // primary must find it in phase 1 and re-propose it: it is executed everywhere.
    let mut sim = quiet(3, 5);
    let p = elect(&mut sim);
    append(&mut sim, p, 0, 1);
    let fs = others(&sim, p);
    let (keep, cut) = (fs[0], fs[1]);
    sim.drop_messages(move |m| m.from == p && m.to == cut && is_accept(m));
    // Votes from `keep` never reach the primary either, so it cannot commit.
    sim.drop_messages(move |m| m.from == keep && m.to == p);
    let t = sim.propose(p, Op::Append { key: 0, token: 2 });
    sim.run_ticks(10);
    assert!(sim.reply(t).is_none());
    sim.crash_with(p, false);
    sim.clear_filters();
    let q = elect(&mut sim);
    append(&mut sim, q, 0, 3);
    sim.restart(p);
    converge(&mut sim);
    for id in sim.ids() {
        assert_eq!(sim.kv(id).unwrap().value(0), &[1, 2, 3], "{id:?}: slot chosen by the majority");
    }
    finish(sim);
}

#[test]
fn a_partitioned_replica_comes_back_without_disrupting_the_primary() {
    let mut sim = quiet(5, 6);
    let p = elect(&mut sim);
    let ballot = sim.status(p).unwrap().ballot;
    let f = others(&sim, p)[1];
    sim.isolate(f);
    for token in 1..=5 {
        append(&mut sim, p, 2, token);
    }
    sim.run_ticks(300); // many election timeouts for the isolated replica
    sim.heal();
    sim.run_ticks(100);
    assert_eq!(sim.primary(), Some(p), "the primary was deposed by a returning replica");
    assert_eq!(sim.status(p).unwrap().ballot, ballot, "the primary's ballot changed");
    let slot = append(&mut sim, p, 2, 6);
    assert!(
        sim.run_until(|s| s.executed(f) >= slot, 200),
        "the returning replica did not catch up"
    );
    finish(sim);
}

#[test]
fn a_lagging_replica_catches_up() {
    let mut sim = quiet(3, 7);
    let p = elect(&mut sim);
    let f = others(&sim, p)[0];
    sim.crash_with(f, false);
    for token in 1..=40 {
        append(&mut sim, p, 0, token);
    }
    sim.restart(f);
    converge(&mut sim);
    assert_eq!(sim.kv(f).unwrap().value(0), &(1..=40).collect::<Vec<u64>>()[..]);
    finish(sim);
}

#[test]
fn a_lagging_replica_catches_up_through_a_lossy_network() {
    let mut sim = quiet(5, 8);
    let p = elect(&mut sim);
    let f = others(&sim, p)[2];
    sim.isolate(f);
    for token in 1..=30 {
        append(&mut sim, p, 1, token);
    }
    sim.heal();
    sim.set_loss(200);
    let target = sim.executed(p);
    assert!(sim.run_until(|s| s.executed(f) >= target, 600), "no catch-up under 20% loss");
    sim.set_loss(0);
    finish(sim);
}

#[test]
fn a_follower_never_votes_for_what_is_not_durable() {
    // One follower's disk never completes an fsync; the other is cut off. The primary must
    // not commit (it has its own vote and nothing durable from anyone else), and the stuck
    // follower must send no accepted for writes it has not made durable.
    let mut sim = quiet(3, 9);
    let p = elect(&mut sim);
    append(&mut sim, p, 0, 1);
    let fs = others(&sim, p);
    let (slow, gone) = (fs[0], fs[1]);
    sim.hold_fsync(slow, true);
    sim.isolate(gone);
    let votes = Rc::new(Cell::new(0));
    let seen = votes.clone();
    sim.drop_messages(move |m| {
        if m.from == slow && matches!(m.body, Body::Accepted { .. }) {
            seen.set(seen.get() + 1);
        }
        false
    });
    let t = sim.propose(p, Op::Append { key: 0, token: 2 });
    sim.run_ticks(30);
    assert!(sim.reply(t).is_none(), "committed without a durable majority");
    assert_eq!(votes.get(), 0, "a follower voted before its write was durable");
    // Its fsync completes: the vote goes out and the write commits.
    sim.hold_fsync(slow, false);
    assert!(sim.run_until(|s| s.reply(t).is_some(), 100));
    assert!(votes.get() > 0);
    sim.heal();
    finish(sim);
}

#[test]
fn a_follower_that_lost_unsynced_writes_at_a_crash_recovers() {
    let mut sim = quiet(3, 10);
    let p = elect(&mut sim);
    let f = others(&sim, p)[0];
    append(&mut sim, p, 0, 1);
    sim.hold_fsync(f, true);
    for token in 2..=6 {
        append(&mut sim, p, 0, token);
    }
    assert!(sim.disk(f).unsynced() > 0);
    let durable_before = sim.disk(f).durable().log.len();
    sim.crash_losing_unsynced(f);
    sim.hold_fsync(f, false);
    assert_eq!(sim.disk(f).durable().log.len(), durable_before, "unsynced writes were lost");
    sim.restart(f);
    for token in 7..=8 {
        append(&mut sim, p, 0, token);
    }
    converge(&mut sim);
    assert_eq!(sim.kv(f).unwrap().value(0), &(1..=8).collect::<Vec<u64>>()[..]);
    finish(sim);
}

#[test]
fn a_primary_that_lost_unsynced_writes_does_not_lose_acknowledged_ones() {
    // Acked writes are durable on a majority; a primary's machine crash before its own fsync
    // completes must not lose them.
    let mut sim = quiet(3, 11);
    let p = elect(&mut sim);
    sim.hold_fsync(p, true);
    let mut acked = Vec::new();
    for token in 1..=5 {
        let t = sim.propose(p, Op::Append { key: 1, token });
        if sim.run_until(|s| s.reply(t).is_some(), 30) {
            acked.push(token);
        }
    }
    sim.crash_losing_unsynced(p);
    sim.hold_fsync(p, false);
    let q = elect(&mut sim);
    append(&mut sim, q, 1, 100);
    sim.restart(p);
    converge(&mut sim);
    let value = sim.kv(p).unwrap().value(1).to_vec();
    for token in acked {
        assert!(value.contains(&token), "acknowledged {token} lost: {value:?}");
    }
    finish(sim);
}

#[test]
fn duplicated_and_reordered_accepts_execute_once_in_order() {
    let mut sim = quiet(3, 12);
    let p = elect(&mut sim);
    sim.duplicate_messages(is_accept);
    let flip = Rc::new(Cell::new(false));
    let f2 = flip.clone();
    // Every other accept is delayed by 3 ticks, so later slots overtake earlier ones.
    sim.delay_messages(
        move |m| {
            if !is_accept(m) {
                return false;
            }
            f2.set(!f2.get());
            f2.get()
        },
        3,
    );
    let tickets: Vec<u64> =
        (1..=20).map(|token| sim.propose(p, Op::Append { key: 0, token })).collect();
    assert!(sim.run_until(|s| tickets.iter().all(|t| s.reply(*t).is_some()), 300));
    sim.clear_filters();
    converge(&mut sim);
    let value = sim.kv(p).unwrap().value(0).to_vec();
    let mut sorted = value.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), 20, "every write exactly once: {value:?}");
    for id in sim.ids() {
        assert_eq!(sim.kv(id).unwrap().value(0), &value[..]);
    }
    finish(sim);
}

#[test]
fn a_replica_that_cannot_become_primary_is_never_elected() {
    let mut sim = quiet(3, 13);
    sim.set_can_become_primary(r(1), false);
    for round in 0..4 {
        let p = elect(&mut sim);
        assert_ne!(p, r(1), "round {round}");
        append(&mut sim, p, 0, round + 1);
        sim.crash_with(p, false);
        let ok = sim.run_until(|s| s.primary().is_some(), ELECTION_TICKS);
        assert!(ok, "the remaining eligible replica was not elected");
        assert_ne!(sim.primary(), Some(r(1)));
        sim.restart(p);
    }
    finish(sim);
}

#[test]
fn primacy_transfers_to_the_named_replica() {
    let mut sim = quiet(5, 14);
    let p = elect(&mut sim);
    append(&mut sim, p, 0, 1);
    let to = others(&sim, p)[2];
    sim.input(p, Input::TransferPrimacy { to: Some(to) });
    assert!(sim.run_until(|s| s.primary() == Some(to), 100), "primacy not transferred");
    assert_ne!(sim.status(p).unwrap().role, Role::Primary);
    append(&mut sim, to, 0, 2);
    converge(&mut sim);
    assert_eq!(sim.kv(p).unwrap().value(0), &[1, 2]);
    finish(sim);
}

#[test]
fn a_deposed_primary_does_not_serve_a_stale_read() {
    // The primary is cut off; the others elect a new one that commits a write. A linearizable
    // read at the old primary must not return the old value (its lease must have expired).
    let mut sim = quiet(3, 15);
    let p = elect(&mut sim);
    append(&mut sim, p, 0, 1);
    let t = sim.read(p, 0, ReadMode::Linearizable);
    assert!(sim.run_until(|s| s.reply(t).is_some(), 50));
    assert!(matches!(sim.reply(t), Some(Reply::Done { .. })));
    sim.isolate(p);
    let ok = sim.run_until(|s| s.primary().is_some_and(|q| q != p), ELECTION_TICKS);
    assert!(ok, "no new primary");
    let q = sim.primary().unwrap();
    append(&mut sim, q, 0, 2);
    let stale = sim.read(p, 0, ReadMode::Linearizable);
    sim.run_ticks(50);
    match sim.reply(stale) {
        None | Some(Reply::Refused(_)) => {}
        Some(Reply::Done { .. }) => {
            let value = sim.kv(p).unwrap().value(0).to_vec();
            assert!(value.contains(&2), "stale read served by a deposed primary: {value:?}");
        }
    }
    sim.heal();
    finish(sim);
}

#[test]
fn a_paused_primary_does_not_serve_a_stale_read_when_it_resumes() {
    // The primary pauses right after renewing its lease; a new primary commits; on resume it
    // first learns how much time passed, so its lease is gone.
    let mut sim = quiet(3, 16);
    let p = elect(&mut sim);
    append(&mut sim, p, 0, 1);
    sim.pause(p);
    let ok = sim.run_until(|s| s.primary().is_some_and(|q| q != p), ELECTION_TICKS);
    assert!(ok, "no new primary while the old one is paused");
    let q = sim.primary().unwrap();
    append(&mut sim, q, 0, 2);
    let stale = sim.read(p, 0, ReadMode::Linearizable); // queued while paused
    sim.resume(p);
    sim.run_ticks(60);
    if let Some(Reply::Done { .. }) = sim.reply(stale) {
        let value = sim.kv(p).unwrap().value(0).to_vec();
        assert!(value.contains(&2), "stale read after a pause: {value:?}");
    }
    finish(sim);
}

#[test]
fn a_lease_read_after_a_primary_change_sees_the_new_writes() {
    let mut sim = quiet(5, 17);
    let p = elect(&mut sim);
    append(&mut sim, p, 3, 1);
    let to = others(&sim, p)[0];
    sim.input(p, Input::TransferPrimacy { to: Some(to) });
    assert!(sim.run_until(|s| s.primary() == Some(to), 100));
    append(&mut sim, to, 3, 2);
    for id in sim.ids() {
        let t = sim.read(id, 3, ReadMode::Linearizable);
        sim.run_ticks(30);
        if let Some(Reply::Done { .. }) = sim.reply(t) {
            assert_eq!(sim.kv(id).unwrap().value(3), &[1, 2], "{id:?} served a stale read");
        }
    }
    finish(sim);
}

#[test]
fn a_fast_read_waits_for_its_slot() {
    let mut sim = quiet(3, 18);
    let p = elect(&mut sim);
    let f = others(&sim, p)[0];
    let slot = append(&mut sim, p, 0, 1);
    sim.isolate(f);
    let slot2 = append(&mut sim, p, 0, 2);
    assert!(slot2 > slot);
    let t = sim.read(f, 0, ReadMode::AtLeast(slot2));
    sim.run_ticks(20);
    assert!(sim.reply(t).is_none() || matches!(sim.reply(t), Some(Reply::Refused(_))));
    sim.heal();
    assert!(sim.run_until(|s| s.reply(t).is_some(), 200));
    if let Some(Reply::Done { slot, .. }) = sim.reply(t) {
        assert!(*slot >= slot2);
        assert_eq!(sim.kv(f).unwrap().value(0), &[1, 2]);
    }
    finish(sim);
}

#[test]
fn a_minority_side_primary_cannot_commit_and_the_majority_moves_on() {
    let mut sim = quiet(5, 19);
    let p = elect(&mut sim);
    append(&mut sim, p, 0, 1);
    let fs = others(&sim, p);
    // p and fs[0] on one side, fs[1..] on the other.
    for a in [p, fs[0]] {
        for b in &fs[1..] {
            sim.partition(a, *b);
        }
    }
    let minority = sim.propose(p, Op::Append { key: 0, token: 2 });
    let ok = sim.run_until(|s| s.primary().is_some_and(|q| fs[1..].contains(&q)), ELECTION_TICKS);
    assert!(ok, "the majority side did not elect a primary");
    let q = sim.primary().unwrap();
    append(&mut sim, q, 0, 3);
    assert!(!matches!(sim.reply(minority), Some(Reply::Done { .. })), "a minority committed");
    sim.heal();
    let p_ballot = sim.status(q).unwrap().ballot;
    sim.run_ticks(100);
    converge(&mut sim);
    // Token 2 was never acknowledged; whether it landed or not, every replica agrees.
    let value = sim.kv(q).unwrap().value(0).to_vec();
    assert_eq!(value[0], 1);
    assert!(value.contains(&3));
    assert!(sim.status(q).unwrap().ballot >= p_ballot);
    finish(sim);
}

#[test]
fn a_one_way_partition_into_the_primary_still_lets_the_cluster_commit() {
    // The primary can send but hears nothing back: it cannot commit and must give way.
    let mut sim = quiet(3, 20);
    let p = elect(&mut sim);
    for o in others(&sim, p) {
        sim.partition_one_way(o, p);
    }
    let ok = sim.run_until(|s| s.primary().is_some_and(|q| q != p), 2 * ELECTION_TICKS);
    assert!(ok, "the cluster is stuck behind a deaf primary");
    let q = sim.primary().unwrap();
    append(&mut sim, q, 0, 1);
    sim.heal();
    converge(&mut sim);
    finish(sim);
}

#[test]
fn every_replica_crashes_and_restarts_keeping_acknowledged_writes() {
    let mut sim = quiet(5, 21);
    let p = elect(&mut sim);
    for token in 1..=10 {
        append(&mut sim, p, 4, token);
    }
    for id in sim.ids() {
        sim.crash_losing_unsynced(id);
    }
    for id in sim.ids() {
        sim.restart(id);
    }
    let q = elect(&mut sim);
    append(&mut sim, q, 4, 11);
    converge(&mut sim);
    for id in sim.ids() {
        assert_eq!(sim.kv(id).unwrap().value(4), &(1..=11).collect::<Vec<u64>>()[..]);
    }
    finish(sim);
}

#[test]
fn a_paused_follower_resumes_and_catches_up() {
    let mut sim = quiet(3, 22);
    let p = elect(&mut sim);
    let f = others(&sim, p)[1];
    sim.pause(f);
    for token in 1..=10 {
        append(&mut sim, p, 0, token);
    }
    sim.run_ticks(200);
    sim.resume(f);
    assert_eq!(sim.primary(), Some(p), "a resumed follower deposed the primary");
    converge(&mut sim);
    finish(sim);
}

#[test]
fn competing_candidates_after_the_primary_dies_elect_exactly_one() {
    // Seven replicas, the primary dies, elections race under message delays; one winner, and
    // nothing committed before is lost.
    let mut sim = Sim::new(Options { delay_min: 200, delay_max: 3000, ..Options::quiet(7, 23) });
    let p = elect(&mut sim);
    for token in 1..=5 {
        append(&mut sim, p, 0, token);
    }
    sim.crash_with(p, false);
    let q = elect(&mut sim);
    let primaries = sim.ids().into_iter().filter(|i| {
        sim.status(*i)
            .is_some_and(|s| s.role == Role::Primary && s.ballot == sim.status(q).unwrap().ballot)
    });
    assert_eq!(primaries.count(), 1);
    append(&mut sim, q, 0, 6);
    sim.restart(p);
    converge(&mut sim);
    assert_eq!(sim.kv(p).unwrap().value(0), &(1..=6).collect::<Vec<u64>>()[..]);
    finish(sim);
}

#[test]
fn messages_from_an_old_ballot_are_refused_after_a_new_primary() {
    // The old primary is paused mid-flight; after it resumes, its accepts carry a stale
    // ballot and must be rejected, and its pending proposals answered as not executed or
    // executed, never both.
    let mut sim = quiet(3, 24);
    let p = elect(&mut sim);
    append(&mut sim, p, 0, 1);
    let stale = sim.propose(p, Op::Append { key: 0, token: 2 });
    sim.pause(p);
    let ok = sim.run_until(|s| s.primary().is_some_and(|q| q != p), ELECTION_TICKS);
    assert!(ok);
    let q = sim.primary().unwrap();
    append(&mut sim, q, 0, 3);
    let nacks = Rc::new(Cell::new(0));
    let seen = nacks.clone();
    sim.drop_messages(move |m| {
        if m.to == p && matches!(m.body, Body::Nack { .. }) {
            seen.set(seen.get() + 1);
        }
        false
    });
    sim.resume(p);
    sim.run_ticks(100);
    assert_eq!(sim.primary(), Some(q));
    converge(&mut sim);
    let value = sim.kv(q).unwrap().value(0).to_vec();
    match sim.reply(stale) {
        Some(Reply::Done { .. }) => assert!(value.contains(&2), "acknowledged but lost"),
        Some(Reply::Refused(_)) => assert!(!value.contains(&2), "refused but executed"),
        None => {}
    }
    assert!(nacks.get() > 0, "nobody told the stale primary about the higher ballot");
    finish(sim);
}

#[test]
fn a_corrupt_record_is_not_mistaken_for_an_empty_slot() {
    // Slot s is chosen by the primary and one follower; the other follower never saw it. The
    // primary goes down; the follower's record of s is found corrupt at its restart. The two
    // live replicas hold no readable copy of s, so they must not fill it with a no-op: once
    // the primary returns, s is recovered with its original value everywhere.
    let mut sim = quiet(3, 25);
    let p = elect(&mut sim);
    append(&mut sim, p, 0, 1);
    let fs = others(&sim, p);
    let (holder, away) = (fs[0], fs[1]);
    sim.isolate(away);
    let s = append(&mut sim, p, 0, 2);
    sim.crash_with(p, false);
    sim.crash_with(holder, false);
    assert!(sim.corrupt_record(holder, s), "the follower durably held slot {}", s.0);
    sim.heal();
    sim.isolate(p);
    sim.restart(holder);
    sim.run_ticks(300);
    // Whatever the two did meanwhile, slot s was chosen with token 2: nobody may have executed
    // anything else there (the checkers fail the run if they did).
    for id in [holder, away] {
        if sim.executed(id) >= s {
            assert!(sim.kv(id).unwrap().value(0).contains(&2), "{id:?} lost chosen slot {}", s.0);
        }
    }
    sim.heal();
    sim.restart(p);
    let q = elect(&mut sim);
    append(&mut sim, q, 0, 3);
    converge(&mut sim);
    for id in sim.ids() {
        assert_eq!(sim.kv(id).unwrap().value(0), &[1, 2, 3], "{id:?}");
    }
    finish(sim);
}

#[test]
fn a_restarted_primary_does_not_answer_for_its_previous_life() {
    // The primary takes request X into slot s, but its accept reaches nobody; it restarts
    // (a new incarnation), wins again and re-proposes X from its own log (phase 1 must), but
    // loses primacy before s is chosen; the next primary fills s with something else. X was
    // taken by the previous incarnation, whose caller is gone: the new incarnation must not
    // answer for it (the driver reports any refusal of a request it never took).
    let mut sim = quiet(3, 26);
    let p = elect(&mut sim);
    let fs = others(&sim, p);
    for f in &fs {
        sim.set_can_become_primary(*f, false);
    }
    append(&mut sim, p, 0, 1);
    sim.drop_messages(move |m| m.from == p && is_accept(m));
    let _x = sim.propose(p, Op::Append { key: 0, token: 2 });
    sim.run_ticks(5);
    sim.crash_with(p, false);
    sim.restart(p);
    let again = sim.run_until(|s| s.primary() == Some(p), ELECTION_TICKS);
    assert!(again, "the restarted primary was not re-elected");
    sim.run_ticks(5);
    sim.isolate(p);
    for f in &fs {
        sim.set_can_become_primary(*f, true);
    }
    let ok = sim.run_until(|s| s.primary().is_some_and(|q| q != p), ELECTION_TICKS);
    assert!(ok, "no new primary");
    let q = sim.primary().unwrap();
    append(&mut sim, q, 0, 3);
    sim.clear_filters();
    sim.heal();
    converge(&mut sim);
    for id in sim.ids() {
        assert_eq!(sim.kv(id).unwrap().value(0), &[1, 3], "{id:?}");
    }
    finish(sim);
}

#[test]
fn a_primary_that_removes_itself_hands_over_to_the_new_members() {
    // The primary commits a membership without itself. The new voters must learn that the
    // change is committed and elect one of them; the cluster keeps committing.
    let mut sim = quiet(5, 27);
    let p = elect(&mut sim);
    append(&mut sim, p, 0, 1);
    let rest = others(&sim, p);
    let voters: Vec<u32> = rest[..3].iter().map(|r| r.0).collect();
    sim.input(p, Input::ChangeMembership(rsl_core::Membership::new(voters.clone())));
    let ok = sim.run_until(|s| s.primary().is_some_and(|q| voters.contains(&q.0)), ELECTION_TICKS);
    no_failure(&sim);
    assert!(ok, "no primary among the new voters {voters:?}");
    let q = sim.primary().unwrap();
    append(&mut sim, q, 0, 2);
    for v in &voters {
        let id = r(*v);
        assert!(sim.run_until(|s| s.executed(id) >= s.executed(q), 100), "{id:?} lags");
        assert_eq!(sim.kv(id).unwrap().value(0), &[1, 2]);
    }
    finish(sim);
}

#[test]
fn a_new_replica_joins_as_a_learner_and_becomes_a_voter() {
    // Three voters and one spare; the spare is added, catches up, and the cluster commits
    // with it as a voter while one old voter is removed.
    let options = Options { spares: 1, ..Options::quiet(3, 28) };
    let mut sim = Sim::new(options);
    let p = elect(&mut sim);
    for token in 1..=5 {
        append(&mut sim, p, 0, token);
    }
    let old = others(&sim, p)[0];
    let old = if old == r(4) { others(&sim, p)[1] } else { old };
    let voters: Vec<u32> = [1, 2, 3, 4].into_iter().filter(|v| *v != old.0).collect();
    sim.input(p, Input::ChangeMembership(rsl_core::Membership::new(voters.clone())));
    let ok = sim.run_until(
        |s| s.status(r(4)).is_some_and(|st| st.membership.is_voter(r(4))),
        ELECTION_TICKS,
    );
    no_failure(&sim);
    assert!(ok, "the new replica never became a voter");
    let q = elect(&mut sim);
    append(&mut sim, q, 0, 6);
    assert!(sim.run_until(|s| s.executed(r(4)) >= s.executed(q), 100));
    assert_eq!(sim.kv(r(4)).unwrap().value(0), &[1, 2, 3, 4, 5, 6]);
    finish(sim);
}

#[test]
fn a_primary_that_removes_itself_and_whose_last_commit_is_lost_still_hands_over() {
    // As above, but every message from the old primary that carries the commit of the
    // configuration slot is lost (the network may lose any message). The new voters must
    // still find out, from the old primary or from each other, and elect a primary.
    let mut sim = quiet(5, 29);
    let p = elect(&mut sim);
    append(&mut sim, p, 0, 1);
    let config_slot = sim.executed(p).0 + 1;
    sim.drop_messages(move |m| {
        m.from == p
            && match m.body {
                Body::Accept { commit, .. } | Body::Heartbeat { commit, .. } => {
                    commit.0 >= config_slot
                }
                Body::CatchupReply { .. } => true,
                _ => false,
            }
    });
    let rest = others(&sim, p);
    let voters: Vec<u32> = rest[..3].iter().map(|r| r.0).collect();
    sim.input(p, Input::ChangeMembership(rsl_core::Membership::new(voters.clone())));
    let ok =
        sim.run_until(|s| s.primary().is_some_and(|q| voters.contains(&q.0)), 3 * ELECTION_TICKS);
    no_failure(&sim);
    assert!(ok, "stuck: no primary among the new voters {voters:?} after the old one left");
    sim.clear_filters();
    let q = sim.primary().unwrap();
    append(&mut sim, q, 0, 2);
    finish(sim);
}

#[test]
fn a_voter_that_missed_the_commit_of_its_promotion_is_not_stuck_behind_it() {
    // Five replicas shrink to {p, a, b}; then move to {a, c, d}: c and d join as learners,
    // and the final configuration removes p and b. Its commit reaches b but not a, c, d (the
    // network may lose any message). The replicas that know it is committed must not leave
    // the others campaigning forever under the old configuration.
    let mut sim = quiet(5, 30);
    let p = elect(&mut sim);
    append(&mut sim, p, 0, 1);
    let rest = others(&sim, p);
    let (a, b, c, d) = (rest[0], rest[1], rest[2], rest[3]);
    sim.input(p, Input::ChangeMembership(rsl_core::Membership::new([p.0, a.0, b.0])));
    sim.run_ticks(30);
    assert_eq!(sim.status(p).unwrap().membership.voters.len(), 3);
    append(&mut sim, p, 0, 2);
    let final_slot = sim.executed(p).0 + 2;
    sim.drop_messages(move |m| {
        m.from == p
            && [a, c, d].contains(&m.to)
            && match m.body {
                Body::Accept { commit, .. } | Body::Heartbeat { commit, .. } => {
                    commit.0 >= final_slot
                }
                Body::CatchupReply { .. } => true,
                _ => false,
            }
    });
    sim.input(p, Input::ChangeMembership(rsl_core::Membership::new([a.0, c.0, d.0])));
    let ok =
        sim.run_until(|s| s.primary().is_some_and(|q| [a, c, d].contains(&q)), 3 * ELECTION_TICKS);
    no_failure(&sim);
    assert!(
        ok,
        "no primary among the new voters; executed {:?}",
        sim.ids().iter().map(|i| sim.executed(*i).0).collect::<Vec<_>>()
    );
    sim.clear_filters();
    let q = sim.primary().unwrap();
    append(&mut sim, q, 0, 3);
    finish(sim);
}

/// The story of a wiped voter: slot s is chosen by the primary and one follower (the
/// "voter"); the other follower ("away") never saw it. The primary goes down and the voter
/// loses its whole disk and restarts empty. Returns the cluster 600 ticks later, with the
/// primary still down: the only copies of s are on the primary's disk and in the voter's
/// lost vote.
fn a_voter_loses_its_disk(options: Options) -> (Sim, [ReplicaId; 3], Slot) {
    let mut sim = Sim::new(options);
    let p = elect(&mut sim);
    append(&mut sim, p, 0, 1);
    let fs = others(&sim, p);
    let (voter, away) = (fs[0], fs[1]);
    sim.isolate(away);
    let s = append(&mut sim, p, 0, 2);
    sim.crash_with(p, false);
    sim.wipe(voter);
    sim.heal();
    sim.restart(voter);
    sim.run_ticks(600);
    (sim, [p, voter, away], s)
}

#[test]
fn a_replica_whose_disk_was_wiped_does_not_vote_until_rebuilt() {
    // Were the voter to promise as if it had never voted, "away" and the voter would form a
    // quorum that knows nothing of s and fill it with a no-op (the planted bug below shows
    // the simulator catching exactly that). Rebuilding, it refuses: no primary until the old
    // one returns, then s keeps its value, and the voter rebuilds and votes again.
    let (mut sim, [p, voter, away], s) = a_voter_loses_its_disk(Options::quiet(3, 27));
    no_failure(&sim);
    assert_eq!(sim.primary(), None, "a quorum formed with a replica that lost its votes");
    assert!(sim.status(voter).unwrap().rebuilding);
    assert!(sim.disk(voter).durable().rebuilding, "the marker is not durable");
    assert!(sim.executed(away) < s, "away learned slot {} without the primary", s.0);
    sim.restart(p);
    let elected = sim.run_until(|s| s.primary().is_some(), ELECTION_TICKS);
    assert!(elected, "no primary once the old one is back");
    let elected_at = sim.status(sim.primary().unwrap()).unwrap().ballot;
    let rebuilt = sim.run_until(|s| !s.disk(voter).durable().rebuilding, 400);
    no_failure(&sim);
    assert!(rebuilt, "the voter did not finish rebuilding");
    // The primary answered the rebuild with a fresh phase 1, at a ballot the voter promised.
    let q = sim.primary().expect("a primary after the rebuild");
    let ballot = sim.status(q).unwrap().ballot;
    assert!(ballot > elected_at, "no fresh phase 1 for the rebuild");
    let status = sim.status(voter).unwrap();
    assert!(!status.rebuilding && status.promised >= ballot, "{status:?}");
    append(&mut sim, q, 0, 3);
    converge(&mut sim);
    for id in sim.ids() {
        assert_eq!(sim.kv(id).unwrap().value(0), &[1, 2, 3], "{id:?}");
    }
    // The rebuilt voter votes again: with the primary's old peer cut off, it forms the quorum.
    let q = sim.primary().unwrap();
    let other = [p, away].into_iter().find(|i| *i != q).unwrap();
    sim.isolate(other);
    append(&mut sim, q, 0, 4);
    sim.heal();
    converge(&mut sim);
    finish(sim);
}

#[cfg(feature = "planted-bugs")]
#[test]
fn a_wiped_replica_that_votes_at_once_loses_a_chosen_write() {
    // The same story with the planted bug `WipedReplicaVotes`: the voter skips the rebuild,
    // "away" wins with its promise and fills s with a no-op over the chosen write.
    let options = Options { bug: Some("WipedReplicaVotes".into()), ..Options::quiet(3, 27) };
    let (mut sim, [p, ..], s) = a_voter_loses_its_disk(options);
    sim.restart(p);
    sim.run_ticks(300);
    sim.finish();
    let failure = sim.failure().expect("the lost vote went unnoticed");
    assert!(
        matches!(failure.check, rsl_sim::Check::Agreement | rsl_sim::Check::AckedWriteLost),
        "slot {}: {failure}",
        s.0
    );
}
