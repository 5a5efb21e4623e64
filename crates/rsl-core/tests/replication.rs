//! Stories of replication on the simulator's harness (`rsl_sim::Sim`): a primary commits
//! on every replica, votes wait for durable writes, catch-up from memory and from the log on
//! disk, proposal outcomes (executed, superseded, overloaded), and what a replica finds again
//! after a restart. Every story ends with all of the simulator's checkers (agreement,
//! durable commit, prefix, unique execution, acknowledged writes, linearizability).

use std::cell::Cell;
use std::rc::Rc;

use rsl_core::message::Body;
use rsl_core::{Message, Notification, Refusal, Slot};
use rsl_sim::driver::Reply;
use rsl_sim::kv::Op;
use rsl_sim::{Options, Sim, ELECTION_WAIT_TICKS};

fn quiet(replicas: usize, seed: u64) -> Sim {
    Sim::new(Options::quiet(replicas, seed))
}

fn is_accept(m: &Message) -> bool {
    matches!(m.body, Body::Accept { .. })
}

#[test]
fn a_primary_is_elected_and_commits_on_every_replica() {
    let mut sim = quiet(3, 1);
    let p = sim.elect();
    for token in 1..=10 {
        sim.append(p, 0, token);
    }
    sim.converge();
    for id in sim.ids() {
        assert_eq!(sim.kv(id).unwrap().value(0), &(1..=10).collect::<Vec<u64>>()[..]);
    }
    sim.end();
}

#[test]
fn a_single_replica_commits_alone() {
    let mut sim = quiet(1, 5);
    let p = sim.elect();
    for token in 1..=3 {
        sim.append(p, 0, token);
    }
    assert_eq!(sim.kv(p).unwrap().value(0), &[1, 2, 3]);
    sim.end();
}

#[test]
fn commit_point_reaches_followers_without_further_proposals() {
    // The commit point travels on later messages and heartbeats: one write, then silence.
    let mut sim = quiet(5, 2);
    let p = sim.elect();
    let slot = sim.append(p, 1, 7);
    let ids = sim.ids();
    assert!(sim.run_until(|s| ids.iter().all(|i| s.executed(*i) >= slot), 50));
    sim.end();
}

/// Once: the slots it executes after recovering do not report it again. Mutation testing:
/// reporting it at every execution (`!l.recovered && ..` to `||` in `notify_recovered`)
/// passed every other test.
#[test]
fn a_new_primary_reports_when_it_has_recovered() {
    let mut sim = quiet(3, 37);
    let p = sim.elect();
    for token in 1..=3 {
        sim.append(p, 0, token);
    }
    let notes = sim.notifications(p);
    assert!(matches!(notes.first(), Some(Notification::BecamePrimary { .. })), "{notes:?}");
    let recovered = notes.iter().filter(|n| **n == Notification::PrimaryRecovered).count();
    assert_eq!(recovered, 1, "{notes:?}");
    sim.end();
}

#[test]
fn a_follower_refuses_proposals_and_names_the_primary() {
    let mut sim = quiet(3, 3);
    let p = sim.elect();
    let f = sim.others(p)[0];
    match sim.submit(f, Op::Append { key: 0, token: 1 }) {
        Reply::Refused(Refusal::NotPrimary { primary }) => assert_eq!(primary, Some(p)),
        other => panic!("a follower answered {other:?}"),
    }
    // It was definitely not executed: nobody has the token.
    sim.run_ticks(50);
    for id in sim.ids() {
        assert!(sim.kv(id).unwrap().value(0).is_empty());
    }
    sim.end();
}

#[test]
fn the_primary_reports_its_peers_health() {
    let mut sim = quiet(3, 39);
    let p = sim.elect();
    sim.append(p, 0, 1);
    sim.run_ticks(10);
    let status = sim.status(p).unwrap();
    assert_eq!(status.peers.len(), 2);
    for peer in &status.peers {
        assert!(peer.last_contact.is_some(), "{peer:?}");
        assert!(peer.commit.0 + 1 >= status.commit.0, "{peer:?} lags {:?}", status.commit);
    }
    let f = sim.others(p)[0];
    assert!(sim.status(f).unwrap().peers.is_empty(), "a follower reports peers");
    sim.end();
}

#[test]
fn a_lagging_replica_catches_up() {
    let mut sim = quiet(3, 7);
    let p = sim.elect();
    let f = sim.others(p)[0];
    sim.crash_with(f, false);
    for token in 1..=40 {
        sim.append(p, 0, token);
    }
    sim.restart(f);
    sim.converge();
    assert_eq!(sim.kv(f).unwrap().value(0), &(1..=40).collect::<Vec<u64>>()[..]);
    sim.end();
}

#[test]
fn a_lagging_replica_catches_up_through_a_lossy_network() {
    let mut sim = quiet(5, 8);
    let p = sim.elect();
    let f = sim.others(p)[2];
    sim.isolate(f);
    for token in 1..=30 {
        sim.append(p, 1, token);
    }
    sim.heal();
    sim.set_loss(200);
    let target = sim.executed(p);
    assert!(sim.run_until(|s| s.executed(f) >= target, 600), "no catch-up under 20% loss");
    sim.set_loss(0);
    sim.end();
}

#[test]
fn a_lagging_replica_catches_up_from_the_log_on_disk() {
    // The primary keeps two executed entries in memory: the lagging follower's catch-up is
    // served by reading the log back from storage (`LoadLog`), three entries per message.
    let options = Options {
        pipeline_slots_max: 2,
        log_memory_entries_max: 2,
        catchup_entries_max: 3,
        ..Options::quiet(3, 32)
    };
    let mut sim = Sim::new(options);
    let p = sim.elect();
    let f = sim.others(p)[0];
    sim.isolate(f);
    for token in 1..=20 {
        sim.append(p, 0, token);
    }
    sim.heal();
    sim.converge();
    assert_eq!(sim.kv(f).unwrap().value(0), &(1..=20).collect::<Vec<u64>>()[..]);
    assert!(sim.stats.log_loads > 0, "no catch-up went through storage");
    sim.end();
}

#[test]
fn a_follower_never_votes_for_what_is_not_durable() {
    // One follower's disk never completes an fsync; the other is cut off. The primary must
    // not commit (it has its own vote and nothing durable from anyone else), and the stuck
    // follower must send no accepted for writes it has not made durable.
    let mut sim = quiet(3, 9);
    let p = sim.elect();
    sim.append(p, 0, 1);
    let fs = sim.others(p);
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
    sim.end();
}

#[test]
fn a_follower_that_lost_unsynced_writes_at_a_crash_recovers() {
    let mut sim = quiet(3, 10);
    let p = sim.elect();
    let f = sim.others(p)[0];
    sim.append(p, 0, 1);
    sim.hold_fsync(f, true);
    for token in 2..=6 {
        sim.append(p, 0, token);
    }
    assert!(sim.disk(f).unsynced() > 0);
    let durable_before = sim.disk(f).durable().log.len();
    sim.crash_losing_unsynced(f);
    sim.hold_fsync(f, false);
    assert_eq!(sim.disk(f).durable().log.len(), durable_before, "unsynced writes were lost");
    sim.restart(f);
    for token in 7..=8 {
        sim.append(p, 0, token);
    }
    sim.converge();
    assert_eq!(sim.kv(f).unwrap().value(0), &(1..=8).collect::<Vec<u64>>()[..]);
    sim.end();
}

#[test]
fn a_primary_that_lost_unsynced_writes_does_not_lose_acknowledged_ones() {
    // Acked writes are durable on a majority; a primary's machine crash before its own fsync
    // completes must not lose them.
    let mut sim = quiet(3, 11);
    let p = sim.elect();
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
    let q = sim.elect();
    sim.append(q, 1, 100);
    sim.restart(p);
    sim.converge();
    let value = sim.kv(p).unwrap().value(1).to_vec();
    for token in acked {
        assert!(value.contains(&token), "acknowledged {token} lost: {value:?}");
    }
    sim.end();
}

#[test]
fn a_restarted_replica_replays_its_own_log_up_to_its_commit_hint() {
    // Cut off from its peers, a restarted follower still executes everything up to the
    // commit point it persisted (a hint, rewritten at most every 50 ticks): its own log is
    // enough.
    let mut sim = quiet(3, 34);
    let p = sim.elect();
    for token in 1..=5 {
        sim.append(p, 0, token);
    }
    let fifth = sim.executed(p);
    // 60 ticks later the hint is due: the next write's sync stores it.
    sim.run_ticks(60);
    sim.append(p, 0, 6);
    let f = sim.others(p)[0];
    sim.converge();
    sim.crash_with(f, false);
    sim.isolate(f);
    sim.restart(f);
    assert_eq!(sim.executed(f), Slot::ZERO, "a new incarnation starts from an empty machine");
    sim.run_ticks(2);
    assert!(sim.executed(f) >= fifth, "replayed only to {:?}", sim.executed(f));
    assert_eq!(sim.kv(f).unwrap().value(0)[..5], [1, 2, 3, 4, 5]);
    sim.heal();
    sim.end();
}

#[test]
fn duplicated_and_reordered_accepts_execute_once_in_order() {
    let mut sim = quiet(3, 12);
    let p = sim.elect();
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
    sim.converge();
    let value = sim.kv(p).unwrap().value(0).to_vec();
    let mut sorted = value.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), 20, "every write exactly once: {value:?}");
    for id in sim.ids() {
        assert_eq!(sim.kv(id).unwrap().value(0), &value[..]);
    }
    sim.end();
}

#[test]
fn every_replica_crashes_and_restarts_keeping_acknowledged_writes() {
    let mut sim = quiet(5, 21);
    let p = sim.elect();
    for token in 1..=10 {
        sim.append(p, 4, token);
    }
    for id in sim.ids() {
        sim.crash_losing_unsynced(id);
    }
    for id in sim.ids() {
        sim.restart(id);
    }
    let q = sim.elect();
    sim.append(q, 4, 11);
    sim.converge();
    for id in sim.ids() {
        assert_eq!(sim.kv(id).unwrap().value(4), &(1..=11).collect::<Vec<u64>>()[..]);
    }
    sim.end();
}

#[test]
fn a_paused_follower_resumes_and_catches_up() {
    let mut sim = quiet(3, 22);
    let p = sim.elect();
    let f = sim.others(p)[1];
    sim.pause(f);
    for token in 1..=10 {
        sim.append(p, 0, token);
    }
    sim.run_ticks(200);
    sim.resume(f);
    assert_eq!(sim.primary(), Some(p), "a resumed follower deposed the primary");
    sim.converge();
    sim.end();
}

#[test]
fn proposals_in_slots_another_primary_filled_are_refused_as_superseded() {
    // The primary is cut off with three proposals in flight; the others elect a primary that
    // fills those slots with its own writes. When the old primary learns the chosen values,
    // its proposals were definitely not executed: refused, never left without an answer.
    let mut sim = quiet(3, 28);
    let p = sim.elect();
    sim.append(p, 0, 1);
    sim.isolate(p);
    let lost: Vec<u64> =
        (2..=4).map(|token| sim.propose(p, Op::Append { key: 0, token })).collect();
    let ok = sim.run_until(|s| s.primary().is_some_and(|q| q != p), ELECTION_WAIT_TICKS);
    assert!(ok, "no new primary");
    let q = sim.primary().unwrap();
    for token in 5..=8 {
        sim.append(q, 0, token);
    }
    sim.heal();
    let answered = sim.run_until(|s| lost.iter().all(|t| s.reply(*t).is_some()), 300);
    assert!(answered, "a proposal of the old primary was never answered");
    for t in lost {
        match sim.reply(t) {
            Some(Reply::Refused(Refusal::Superseded { .. } | Refusal::NotPrimary { .. })) => {}
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
    sim.converge();
    assert_eq!(sim.kv(q).unwrap().value(0), &[1, 5, 6, 7, 8]);
    sim.end();
}

#[test]
fn a_full_queue_refuses_overloaded() {
    // One slot in flight, two proposals queued: the fourth and fifth are refused at once
    // (one request per slot: the five proposals of one instant would otherwise share it).
    let options = Options {
        proposals_queued_max: 2,
        pipeline_slots_max: 1,
        batch_requests_max: 1,
        log_memory_entries_max: 1,
        ..Options::quiet(3, 29)
    };
    let mut sim = Sim::new(options);
    let p = sim.elect();
    sim.isolate(p);
    let tickets: Vec<u64> =
        (1..=5).map(|token| sim.propose(p, Op::Append { key: 0, token })).collect();
    let overloaded =
        tickets.iter().filter(|t| sim.reply(**t) == Some(&Reply::Refused(Refusal::Overloaded)));
    assert_eq!(overloaded.count(), 2);
    sim.heal();
    // The three taken execute everywhere: the followers get the slots with the next resend
    // (its waits grew while the primary was isolated).
    let all = |s: &Sim| s.ids().iter().all(|i| s.kv(*i).is_some_and(|k| k.value(0).len() == 3));
    assert!(sim.run_until(all, 600), "the taken proposals did not execute everywhere");
    sim.end();
}

#[test]
fn a_lagging_replica_catches_up_past_a_record_the_primary_cannot_read_back() {
    // The primary serves catch-up from its log on disk (it keeps two entries in memory), and
    // one chosen record there rotted: its reads stop before it, so its replies bring nothing.
    // The lagging replica must ask another peer rather than the primary forever (found by
    // the swarm, seed 1011, with a record corrupted on write).
    let options = Options {
        pipeline_slots_max: 2,
        log_memory_entries_max: 2,
        catchup_entries_max: 3,
        ..Options::quiet(3, 43)
    };
    let mut sim = Sim::new(options);
    let p = sim.elect();
    let f = sim.others(p)[0];
    sim.isolate(f);
    let mut slots = Vec::new();
    for token in 1..=12 {
        slots.push(sim.append(p, 0, token));
    }
    sim.run_ticks(5);
    assert!(sim.corrupt_record(p, slots[3]), "the primary holds the slot on disk");
    sim.heal();
    sim.converge();
    assert_eq!(sim.kv(f).unwrap().value(0), &(1..=12).collect::<Vec<u64>>()[..]);
    sim.end();
}

/// The slot each of `tickets` executed in, once all are answered.
fn slots_of(sim: &mut Sim, tickets: &[u64]) -> Vec<Option<Slot>> {
    let answered = sim.run_until(|s| tickets.iter().all(|t| s.reply(*t).is_some()), 300);
    assert!(answered, "a proposal was never answered");
    let slot = |t: &u64| match sim.reply(*t) {
        Some(Reply::Done { slot, .. }) => Some(*slot),
        _ => None,
    };
    tickets.iter().map(slot).collect()
}

#[test]
fn proposals_of_one_turn_share_a_slot() {
    // The simulator's driver, as the runtime's consensus thread, ends a replica's turn after
    // the events of its instant (`Config::propose_at_turn_end`): five proposals that arrive
    // together go into one slot although the pipeline has room for five, and an exclusive
    // one among them still gets a slot alone. Proposed at once (each input filling the
    // pipeline), they would take a slot each.
    let mut sim = quiet(3, 41);
    let p = sim.elect();
    let mut tickets: Vec<u64> =
        (1..=5).map(|token| sim.propose(p, Op::Append { key: 0, token })).collect();
    let exclusive = sim.propose_sized(p, Op::Append { key: 1, token: 6 }, 10, true);
    tickets.push(sim.propose(p, Op::Append { key: 0, token: 7 }));
    let slots = slots_of(&mut sim, &tickets);
    let ex = slots_of(&mut sim, &[exclusive])[0].expect("the exclusive request executed");
    let first = slots[0].expect("executed");
    assert!(slots[..5].iter().all(|s| *s == Some(first)), "one turn, several slots: {slots:?}");
    assert!(ex > first && slots[5].is_some_and(|s| s > ex), "{first:?} {ex:?} {slots:?}");
    sim.converge();
    assert_eq!(sim.kv(p).unwrap().value(0), &[1, 2, 3, 4, 5, 7]);
    sim.end();
}

#[test]
fn a_turn_that_fills_the_queue_proposes_before_refusing() {
    // Two proposals fit the queue and one slot the pipeline. Of five proposals that arrive
    // together, the third finds the queue full: the two queued go into the free slot first
    // (deferring to the turn's end never refuses what proposing at once would have taken),
    // the third and fourth queue, only the fifth is refused.
    let options =
        Options { proposals_queued_max: 2, pipeline_slots_max: 1, ..Options::quiet(3, 43) };
    let mut sim = Sim::new(options);
    let p = sim.elect();
    let tickets: Vec<u64> =
        (1..=5).map(|token| sim.propose(p, Op::Append { key: 0, token })).collect();
    let refused: Vec<bool> = tickets
        .iter()
        .map(|t| sim.reply(*t) == Some(&Reply::Refused(Refusal::Overloaded)))
        .collect();
    assert_eq!(refused, [false, false, false, false, true]);
    let slots = slots_of(&mut sim, &tickets[..4]);
    assert!(slots[0].is_some() && slots[0] == slots[1] && slots[2] == slots[3], "{slots:?}");
    assert!(slots[2] > slots[0], "{slots:?}");
    sim.converge();
    assert_eq!(sim.kv(p).unwrap().value(0), &[1, 2, 3, 4]);
    sim.end();
}
