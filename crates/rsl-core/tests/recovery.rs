//! Stories of a primary's failure mid-flight and of damaged disks on the simulator's harness
//! (`rsl_sim::Sim`): what phase 1 must find and re-propose, what it must not invent, and what
//! a restarted primary must not answer for. Every story ends with all of the simulator's
//! checkers. (The story of a wiped disk is told in `rsl-sim/tests/scenarios.rs`, beside the
//! planted bug that breaks it.)

use rsl_core::message::Body;
use rsl_core::Message;
use rsl_sim::kv::Op;
use rsl_sim::{Options, Sim, ELECTION_WAIT_TICKS};

fn quiet(replicas: usize, seed: u64) -> Sim {
    Sim::new(Options::quiet(replicas, seed))
}

fn is_accept(m: &Message) -> bool {
    matches!(m.body, Body::Accept { .. })
}

#[test]
fn primary_persists_a_slot_and_crashes_before_sending_it() {
    // The primary writes its accept for the next slot but no follower ever sees it; it
    // crashes. The slot must end up chosen everywhere or nowhere: here nowhere can have it,
    // since only the dead primary accepted it, so no replica may ever execute the token.
    let mut sim = quiet(3, 4);
    let p = sim.elect();
    for token in 1..=3 {
        sim.append(p, 0, token);
    }
    sim.drop_messages(move |m| m.from == p && is_accept(m));
    let lost = sim.propose(p, Op::Append { key: 0, token: 99 });
    sim.run_ticks(5);
    assert!(sim.disk(p).durable().log.values().count() >= 4, "the primary persisted the slot");
    sim.crash_with(p, false);
    sim.clear_filters();
    let q = sim.elect();
    assert_ne!(q, p);
    sim.append(q, 0, 4);
    sim.restart(p);
    sim.converge();
    assert!(sim.reply(lost).is_none(), "the crashed primary cannot answer");
    for id in sim.ids() {
        assert_eq!(sim.kv(id).unwrap().value(0), &[1, 2, 3, 4], "{id:?}");
    }
    sim.end();
}

#[test]
fn primary_crashes_after_a_minority_accepted_a_slot() {
    // The accept reaches exactly one follower (so a majority of 2 of 3 holds it). The next
    // primary must find it in phase 1 and re-propose it: it is executed everywhere.
    let mut sim = quiet(3, 5);
    let p = sim.elect();
    sim.append(p, 0, 1);
    let fs = sim.others(p);
    let (keep, cut) = (fs[0], fs[1]);
    sim.drop_messages(move |m| m.from == p && m.to == cut && is_accept(m));
    // Votes from `keep` never reach the primary either, so it cannot commit.
    sim.drop_messages(move |m| m.from == keep && m.to == p);
    let t = sim.propose(p, Op::Append { key: 0, token: 2 });
    sim.run_ticks(10);
    assert!(sim.reply(t).is_none());
    sim.crash_with(p, false);
    sim.clear_filters();
    let q = sim.elect();
    sim.append(q, 0, 3);
    sim.restart(p);
    sim.converge();
    for id in sim.ids() {
        assert_eq!(sim.kv(id).unwrap().value(0), &[1, 2, 3], "{id:?}: slot chosen by the majority");
    }
    sim.end();
}

#[test]
fn a_corrupt_record_is_not_mistaken_for_an_empty_slot() {
    // Slot s is chosen by the primary and one follower; the other follower never saw it. The
    // primary goes down; the follower's record of s is found corrupt at its restart. The two
    // live replicas hold no readable copy of s, and the corrupt report is the highest ballot
    // for it: phase 1 must wait for every voter rather than fill s with a no-op. Once the
    // primary returns, s is recovered with its original value everywhere.
    let mut sim = quiet(3, 25);
    let p = sim.elect();
    sim.append(p, 0, 1);
    let fs = sim.others(p);
    let (holder, away) = (fs[0], fs[1]);
    sim.isolate(away);
    let s = sim.append(p, 0, 2);
    sim.crash_with(p, false);
    sim.crash_with(holder, false);
    assert!(sim.corrupt_record(holder, s), "the follower durably held slot {}", s.0);
    sim.heal();
    sim.isolate(p);
    sim.restart(holder);
    sim.run_ticks(300);
    sim.assert_no_failure();
    assert_eq!(sim.primary(), None, "a primary guessed a value that may be chosen");
    for id in [holder, away] {
        assert!(sim.executed(id) < s, "{id:?} executed slot {} without a copy", s.0);
    }
    sim.heal();
    sim.restart(p);
    let q = sim.elect();
    sim.append(q, 0, 3);
    sim.converge();
    for id in sim.ids() {
        assert_eq!(sim.kv(id).unwrap().value(0), &[1, 2, 3], "{id:?}");
    }
    sim.end();
}

#[test]
fn a_restarted_primary_does_not_answer_for_its_previous_life() {
    // The primary takes request X into slot s, but its accept reaches nobody; it restarts
    // (a new incarnation), wins again and re-proposes X from its own log (phase 1 must), but
    // loses primacy before s is chosen; the next primary fills s with something else. X was
    // taken by the previous incarnation, whose caller is gone: the new incarnation must not
    // answer for it (the driver reports any refusal of a request it never took).
    let mut sim = quiet(3, 26);
    let p = sim.elect();
    let fs = sim.others(p);
    for f in &fs {
        sim.set_can_become_primary(*f, false);
    }
    sim.append(p, 0, 1);
    sim.drop_messages(move |m| m.from == p && is_accept(m));
    let _x = sim.propose(p, Op::Append { key: 0, token: 2 });
    sim.run_ticks(5);
    sim.crash_with(p, false);
    sim.restart(p);
    let again = sim.run_until(|s| s.primary() == Some(p), ELECTION_WAIT_TICKS);
    assert!(again, "the restarted primary was not re-elected");
    sim.run_ticks(5);
    sim.isolate(p);
    for f in &fs {
        sim.set_can_become_primary(*f, true);
    }
    let ok = sim.run_until(|s| s.primary().is_some_and(|q| q != p), ELECTION_WAIT_TICKS);
    assert!(ok, "no new primary");
    let q = sim.primary().unwrap();
    sim.append(q, 0, 3);
    sim.clear_filters();
    sim.heal();
    sim.converge();
    for id in sim.ids() {
        assert_eq!(sim.kv(id).unwrap().value(0), &[1, 3], "{id:?}");
    }
    sim.end();
}
