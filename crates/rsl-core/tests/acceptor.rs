//! The acceptor's contracts, one story each, and a property test that drives a lone
//! acceptor with random messages and relies on the contracts (plus persist-before-send and a
//! monotone promise, checked here) as the oracle.

#[path = "common/lone.rs"]
mod lone;

use lone::{b, batch, from, sent, step};
use proptest::prelude::*;
use rsl_core::message::Body;
use rsl_core::{
    Action, Ballot, Config, Input, LogEntry, Recovered, Replica, ReplicaId, Slot, SlotValue,
    UnknownValue, Value, Write,
};

fn acceptor() -> Replica {
    Replica::new(Config::new(1, [1, 2, 3]), Recovered::default())
}

fn accept(ballot: Ballot, commit: u64, entries: &[(u64, Value)]) -> Input {
    let entries =
        entries.iter().map(|(s, v)| SlotValue { slot: Slot(*s), value: v.clone() }).collect();
    from(ballot.replica, Body::Accept { ballot, commit: Slot(commit), entries })
}

fn last_seq(out: &[Action]) -> Option<u64> {
    out.iter().rev().find_map(|a| match a {
        Action::Persist { seq, .. } => Some(*seq),
        _ => None,
    })
}

#[test]
fn a_vote_waits_for_its_write() {
    let mut r = acceptor();
    let out = step(&mut r, accept(b(1, 2), 0, &[(1, batch(1))]));
    assert!(sent(&out).is_empty(), "voted before the write was durable: {out:?}");
    let seq = last_seq(&out).expect("the accept is persisted");
    let out = step(&mut r, Input::Durable { seq });
    assert_eq!(sent(&out), vec![Body::Accepted { ballot: b(1, 2), slots: vec![Slot(1)] }]);
}

#[test]
fn the_same_value_at_the_same_ballot_is_reaccepted_idempotently() {
    let mut r = acceptor();
    let out = step(&mut r, accept(b(1, 2), 0, &[(1, batch(1))]));
    let seq = last_seq(&out).unwrap();
    step(&mut r, Input::Durable { seq });
    let out = step(&mut r, accept(b(1, 2), 0, &[(1, batch(1))]));
    assert_eq!(last_seq(&out), None, "a re-accept writes nothing");
    assert_eq!(sent(&out), vec![Body::Accepted { ballot: b(1, 2), slots: vec![Slot(1)] }]);
}

#[test]
fn a_different_value_at_the_same_ballot_is_refused() {
    let mut r = acceptor();
    let out = step(&mut r, accept(b(1, 2), 0, &[(1, batch(1))]));
    step(&mut r, Input::Durable { seq: last_seq(&out).unwrap() });
    let out = step(&mut r, accept(b(1, 2), 0, &[(1, batch(2))]));
    assert!(sent(&out).is_empty(), "voted for a conflicting value");
    assert_eq!(last_seq(&out), None, "wrote a conflicting value");
    assert_eq!(r.status().counters.conflicts, 1);
}

#[test]
fn an_accept_below_the_promise_is_nacked() {
    let mut r = acceptor();
    let out = step(&mut r, accept(b(5, 3), 0, &[(1, batch(1))]));
    step(&mut r, Input::Durable { seq: last_seq(&out).unwrap() });
    let out = step(&mut r, accept(b(4, 2), 0, &[(1, batch(2))]));
    assert_eq!(sent(&out), vec![Body::Nack { ballot: b(4, 2), promised: b(5, 3) }]);
    assert_eq!(r.status().promised, b(5, 3));
}

#[test]
fn a_promise_waits_for_its_write_and_reports_accepted_entries() {
    let mut r = acceptor();
    let out = step(&mut r, accept(b(1, 2), 0, &[(1, batch(1)), (2, batch(2))]));
    step(&mut r, Input::Durable { seq: last_seq(&out).unwrap() });
    // Let the lease granted to replica 2 run out.
    for _ in 0..100 {
        step(&mut r, Input::Tick);
    }
    let prepare = Body::Prepare { ballot: b(2, 3), after: Slot(1), transfer: None };
    let out = step(&mut r, from(3, prepare));
    assert!(sent(&out).is_empty(), "promised before the promise was durable");
    let seq = last_seq(&out).unwrap();
    let out = step(&mut r, Input::Durable { seq });
    let entries = vec![LogEntry { slot: Slot(2), ballot: b(1, 2), value: batch(2) }];
    let expected = Body::Promise {
        ballot: b(2, 3),
        commit: Slot::ZERO,
        entries,
        unknown: vec![],
        after: Slot(1),
        more_after: None,
        dropped: false,
    };
    assert_eq!(sent(&out), vec![expected]);
}

#[test]
fn a_live_primary_keeps_its_acceptors() {
    let mut r = acceptor();
    step(&mut r, from(2, Body::Heartbeat { ballot: b(1, 2), commit: Slot::ZERO, round: 1 }));
    step(&mut r, Input::Durable { seq: 1 });
    for _ in 0..5 {
        step(&mut r, Input::Tick);
    }
    let out =
        step(&mut r, from(3, Body::Prepare { ballot: b(9, 3), after: Slot::ZERO, transfer: None }));
    assert!(sent(&out).is_empty() && last_seq(&out).is_none(), "a live primary was deposed");
    assert_eq!(r.status().promised, b(1, 2));
    assert_eq!(r.status().counters.sticky_refusals, 1);
    let out = step(&mut r, from(3, Body::PreVote { ballot: b(9, 3), commit: Slot::ZERO }));
    assert_eq!(sent(&out), vec![Body::PreVoteReply { ballot: b(9, 3), granted: false }]);
}

#[test]
fn a_transfer_prepare_passes_the_lease() {
    let mut r = acceptor();
    step(&mut r, from(2, Body::Heartbeat { ballot: b(1, 2), commit: Slot::ZERO, round: 1 }));
    let prepare = Body::Prepare { ballot: b(2, 3), after: Slot::ZERO, transfer: Some(b(1, 2)) };
    step(&mut r, from(3, prepare));
    assert_eq!(r.status().promised, b(2, 3));
}

#[test]
fn a_corrupt_slot_is_reported_unknown() {
    let recovered =
        Recovered { promised: b(1, 2), corrupt: vec![(Slot(3), b(1, 2))], ..Recovered::default() };
    let mut r = Replica::new(Config::new(1, [1, 2, 3]), recovered);
    for _ in 0..100 {
        step(&mut r, Input::Tick);
    }
    let out =
        step(&mut r, from(3, Body::Prepare { ballot: b(7, 3), after: Slot::ZERO, transfer: None }));
    let seq = last_seq(&out).unwrap();
    let out = step(&mut r, Input::Durable { seq });
    match &sent(&out)[..] {
        [Body::Promise { unknown, .. }] => {
            assert_eq!(unknown, &vec![UnknownValue { slot: Slot(3), ballot: b(1, 2) }])
        }
        other => panic!("expected a promise, got {other:?}"),
    }
}

/// A replica that lost slots up to its persisted commit point (a fallback to an older
/// checkpoint) reports them unknown at its promise, not knowing the ballot it voted at; the
/// candidate it promised before its crash, asking again, must hear them below its ballot
/// (nothing was accepted at a ballot whose phase 1 is still running), or its contract for a
/// promise breaks (the default swarm's seed 83104527 panicked on it: "an unknown slot at or
/// above the ballot").
#[test]
fn slots_lost_at_the_promise_are_reported_below_the_ballot_asked() {
    let recovered = Recovered { promised: b(4, 3), commit: Slot(2), ..Recovered::default() };
    let mut r = Replica::new(Config::new(1, [1, 2, 3]), recovered);
    for _ in 0..100 {
        step(&mut r, Input::Tick);
    }
    let mut out =
        step(&mut r, from(3, Body::Prepare { ballot: b(4, 3), after: Slot::ZERO, transfer: None }));
    if let Some(seq) = last_seq(&out) {
        out.extend(step(&mut r, Input::Durable { seq }));
    }
    match &sent(&out)[..] {
        [Body::Promise { ballot, unknown, .. }] => {
            assert_eq!(*ballot, b(4, 3));
            let slots: Vec<Slot> = unknown.iter().map(|u| u.slot).collect();
            assert_eq!(slots, vec![Slot(1), Slot(2)], "the lost slots are reported");
            assert!(unknown.iter().all(|u| u.ballot < b(4, 3)), "{unknown:?}");
        }
        other => panic!("expected a promise, got {other:?}"),
    }
}

#[test]
fn the_commit_point_executes_entries_of_the_primarys_ballot_and_fetches_the_rest() {
    let mut r = acceptor();
    let out = step(&mut r, accept(b(1, 2), 0, &[(1, batch(1)), (2, batch(2))]));
    step(&mut r, Input::Durable { seq: last_seq(&out).unwrap() });
    let out = step(&mut r, from(2, Body::Heartbeat { ballot: b(1, 2), commit: Slot(3), round: 1 }));
    let executed: Vec<Slot> = out
        .iter()
        .filter_map(|a| if let Action::Execute { slot, .. } = a { Some(*slot) } else { None })
        .collect();
    assert_eq!(executed, vec![Slot(1), Slot(2)]);
    assert!(sent(&out).contains(&Body::CatchupRequest { from: Slot(3), to: Slot(3) }), "{out:?}");
}

#[test]
fn a_catchup_reply_fills_the_gap() {
    let mut r = acceptor();
    step(&mut r, from(2, Body::Heartbeat { ballot: b(1, 2), commit: Slot(2), round: 1 }));
    let entries = vec![
        LogEntry { slot: Slot(1), ballot: b(1, 2), value: batch(1) },
        LogEntry { slot: Slot(2), ballot: b(1, 2), value: Value::Noop },
    ];
    let out = step(&mut r, from(2, Body::CatchupReply { commit: Slot(2), entries }));
    assert_eq!(r.status().executed, Slot(2));
    let writes =
        out.iter().filter(|a| matches!(a, Action::Persist { write: Write::Accept(_), .. })).count();
    assert_eq!(writes, 2, "caught-up entries are persisted");
}

#[test]
fn a_primary_serves_catchup_from_memory_storage_or_a_checkpoint() {
    let mut r = acceptor();
    let out = step(&mut r, accept(b(1, 2), 2, &[(1, batch(1)), (2, batch(2))]));
    step(&mut r, Input::Durable { seq: last_seq(&out).unwrap() });
    let out = step(&mut r, from(3, Body::CatchupRequest { from: Slot(1), to: Slot(2) }));
    match &sent(&out)[..] {
        [Body::CatchupReply { commit, entries }] => {
            assert_eq!((*commit, entries.len()), (Slot(2), 2));
        }
        other => panic!("expected a catch-up reply, got {other:?}"),
    }
    let mut config = Config::new(1, [1, 2, 3]);
    config.log_kept_slots = 0;
    let mut r = Replica::new(config, Recovered::default());
    let out = step(&mut r, accept(b(1, 2), 2, &[(1, batch(1)), (2, batch(2))]));
    step(&mut r, Input::Durable { seq: last_seq(&out).unwrap() });
    step(&mut r, Input::CheckpointSaved { slot: Slot(2) });
    let out = step(&mut r, from(3, Body::CatchupRequest { from: Slot(1), to: Slot(2) }));
    assert!(out.iter().any(|a| matches!(a, Action::SendCheckpoint { to } if *to == ReplicaId(3))));
}

/// One random input to the lone acceptor (replica 1 of 3); peers 2 and 3 play primaries and
/// candidates at ballots they own.
#[derive(Debug, Clone)]
enum Op {
    Prepare { peer: u32, round: u64, commit: u64 },
    Accept { peer: u32, round: u64, commit: u64, slots: Vec<(u64, u8)> },
    Heartbeat { peer: u32, round: u64, commit: u64 },
    Durable,
    Tick(u8),
}

fn op() -> impl Strategy<Value = Op> {
    let peer = 2u32..4;
    prop_oneof![
        (peer.clone(), 1u64..6, 0u64..4).prop_map(|(peer, round, commit)| Op::Prepare {
            peer,
            round,
            commit
        }),
        (peer.clone(), 1u64..6, 0u64..6, prop::collection::vec((1u64..8, 0u8..3), 1..4))
            .prop_map(|(peer, round, commit, slots)| Op::Accept { peer, round, commit, slots }),
        (peer, 1u64..6, 0u64..6).prop_map(|(peer, round, commit)| Op::Heartbeat {
            peer,
            round,
            commit
        }),
        Just(Op::Durable),
        (1u8..80).prop_map(Op::Tick),
    ]
}

fn value_of(v: u8) -> Value {
    if v == 0 {
        Value::Noop
    } else {
        batch(u64::from(v))
    }
}

/// The oracle's memory of what the acceptor wrote and what is durable.
#[derive(Default)]
struct Disk {
    writes: Vec<(u64, Write)>,
    durable: u64,
}

impl Disk {
    fn durable_promise(&self) -> Ballot {
        self.writes
            .iter()
            .filter(|(s, _)| *s <= self.durable)
            .filter_map(|(_, w)| if let Write::Promise(b) = w { Some(*b) } else { None })
            .max()
            .unwrap_or(Ballot::ZERO)
    }

    fn durably_holds(&self, slot: Slot) -> bool {
        self.writes
            .iter()
            .any(|(s, w)| *s <= self.durable && matches!(w, Write::Accept(e) if e.slot == slot))
    }
}

fn input_of(op: &Op, disk: &Disk) -> Vec<Input> {
    match op {
        Op::Prepare { peer, round, commit } => {
            let body =
                Body::Prepare { ballot: b(*round, *peer), after: Slot(*commit), transfer: None };
            vec![from(*peer, body)]
        }
        Op::Accept { peer, round, commit, slots } => {
            let entries: Vec<(u64, Value)> =
                slots.iter().map(|(s, v)| (*s, value_of(*v))).collect();
            vec![accept(b(*round, *peer), *commit, &entries)]
        }
        Op::Heartbeat { peer, round, commit } => {
            vec![from(
                *peer,
                Body::Heartbeat { ballot: b(*round, *peer), commit: Slot(*commit), round: 1 },
            )]
        }
        Op::Durable => {
            let seq = disk.writes.last().map_or(0, |w| w.0);
            vec![Input::Durable { seq }]
        }
        Op::Tick(n) => vec![Input::Tick; usize::from(*n)],
    }
}

fn check_sends(out: &[Action], disk: &Disk, promised: Ballot, commit: Slot) {
    for body in sent(out) {
        match body {
            Body::Promise { ballot, .. } => {
                assert!(disk.durable_promise() >= ballot, "promise {ballot:?} sent before durable");
            }
            Body::Accepted { ballot, slots } => {
                assert!(promised >= ballot, "voted at {ballot:?} above the promise");
                for s in slots {
                    assert!(disk.durably_holds(s) || s <= commit, "vote for {s:?} before durable");
                }
            }
            Body::Nack { ballot, promised } => {
                assert!(promised > ballot, "a nack that is no refusal")
            }
            _ => {}
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn a_lone_acceptor_keeps_its_contracts(ops in prop::collection::vec(op(), 1..60)) {
        let mut r = acceptor();
        let mut disk = Disk::default();
        let mut executed = Slot::ZERO;
        for op in &ops {
            for input in input_of(op, &disk) {
                let before = r.status();
                let out = step(&mut r, input);
                for a in &out {
                    match a {
                        Action::Persist { seq, write } => disk.writes.push((*seq, write.clone())),
                        Action::Execute { slot, .. } => {
                            prop_assert_eq!(*slot, executed.next(), "execution in order");
                            executed = *slot;
                        }
                        _ => {}
                    }
                }
                if let Some(Input::Durable { seq }) = input_of(op, &disk).first() {
                    disk.durable = disk.durable.max(*seq);
                }
                let after = r.status();
                prop_assert!(after.promised >= before.promised, "the promise went down");
                prop_assert!(after.commit >= before.commit, "the commit point went back");
                check_sends(&out, &disk, after.promised, after.commit);
            }
        }
    }
}

/// Stickiness lasts exactly `election_ticks_min` of the acceptor's ticks after it last heard
/// the primary (the lease's evidence assumes that much, docs/protocol.md): a rival's prepare is
/// refused one tick before, and promised at that tick (refusing longer costs availability).
#[test]
fn stickiness_lasts_exactly_the_minimum_election_timeout() {
    let min = u64::from(Config::new(1, [1, 2, 3]).election_ticks_min);
    for (ticks, granted) in [(min - 1, false), (min, true)] {
        let mut r = acceptor();
        step(&mut r, from(2, Body::Heartbeat { ballot: b(1, 2), commit: Slot::ZERO, round: 1 }));
        step(&mut r, Input::Durable { seq: 1 });
        for _ in 0..ticks {
            step(&mut r, Input::Tick);
        }
        let prepare = Body::Prepare { ballot: b(9, 3), after: Slot::ZERO, transfer: None };
        step(&mut r, from(3, prepare));
        assert_eq!(r.status().promised == b(9, 3), granted, "after {ticks} ticks");
    }
}

/// A pre-vote carries the candidate's commit point so that whichever side is behind catches
/// up; one at this replica's own commit point asks for nothing, even while this replica is
/// behind a commit point it heard elsewhere (its catch-up runs at its own pace), and one above
/// it asks at once. Each refusal for the lease is counted.
#[test]
fn a_prevote_at_the_same_commit_point_asks_for_no_catch_up() {
    let mut r = acceptor();
    let out = step(&mut r, from(2, Body::Heartbeat { ballot: b(1, 2), commit: Slot(3), round: 1 }));
    assert!(sent(&out).contains(&Body::CatchupRequest { from: Slot(1), to: Slot(3) }), "{out:?}");
    let out = step(&mut r, from(3, Body::PreVote { ballot: b(2, 3), commit: Slot::ZERO }));
    assert_eq!(sent(&out), vec![Body::PreVoteReply { ballot: b(2, 3), granted: false }]);
    let out = step(&mut r, from(3, Body::PreVote { ballot: b(2, 3), commit: Slot(4) }));
    let requests = sent(&out)
        .into_iter()
        .filter(|m| matches!(m, Body::CatchupRequest { from: Slot(1), .. }))
        .count();
    assert_eq!(requests, 1, "a pre-vote above the commit point asks at once: {out:?}");
    assert_eq!(r.status().counters.sticky_refusals, 2, "both pre-votes were refused for the lease");
}

/// What the handlers take as given about a message is checked once, on receipt: a message
/// not addressed to this replica, one from itself, or one from a peer that proposes under a
/// ballot it does not own, asks for a report after the last slot, or lists slots out of
/// order or at zero, is dropped and counted before any handler sees it (no answer, no
/// write, no panic). Each twin that differs only in the broken field is answered (by an
/// acceptor kept out of elections whose stickiness has run out, so that it promises).
#[test]
fn malformed_messages_are_dropped_and_counted_and_their_twins_answered() {
    let open = || {
        let mut r = acceptor();
        step(&mut r, Input::SetCanBecomePrimary(false));
        for _ in 0..Config::new(1, [1, 2, 3]).election_ticks_min {
            step(&mut r, Input::Tick);
        }
        r
    };
    let one = |slots: &[u64]| -> Vec<SlotValue> {
        slots.iter().map(|s| SlotValue { slot: Slot(*s), value: batch(*s) }).collect()
    };
    let chosen = |slots: &[u64]| -> Vec<LogEntry> {
        slots
            .iter()
            .map(|s| LogEntry { slot: Slot(*s), ballot: b(1, 2), value: batch(*s) })
            .collect()
    };
    let prepare = |ballot, after| Body::Prepare { ballot, after: Slot(after), transfer: None };
    let heartbeat = |ballot| Body::Heartbeat { ballot, commit: Slot::ZERO, round: 1 };
    let accept =
        |ballot, slots: &[u64]| Body::Accept { ballot, commit: Slot::ZERO, entries: one(slots) };
    let catchup = |slots: &[u64]| Body::CatchupReply { commit: Slot(2), entries: chosen(slots) };
    let message = |from: u32, to: u32, body| {
        Input::Receive(rsl_core::Message { from: ReplicaId(from), to: ReplicaId(to), body })
    };
    let malformed = [
        ("addressed to another replica", message(3, 2, prepare(b(5, 3), 0))),
        ("from itself", message(1, 1, prepare(b(5, 1), 0))),
        (
            "a pre-vote at another's ballot",
            from(2, Body::PreVote { ballot: b(5, 3), commit: Slot::ZERO }),
        ),
        (
            "a rebuilt at another's ballot",
            from(2, Body::Rebuilt { nonce: 1, ballot: b(5, 3), through: Slot::ZERO }),
        ),
        ("a prepare at another's ballot", from(2, prepare(b(5, 3), 0))),
        ("a prepare after the last slot", from(2, prepare(b(5, 2), u64::MAX))),
        ("a heartbeat at another's ballot", from(2, heartbeat(b(5, 3)))),
        ("an accept at another's ballot", from(2, accept(b(5, 3), &[1]))),
        ("an accept out of order", from(2, accept(b(5, 2), &[2, 1]))),
        ("an accept with a slot twice", from(2, accept(b(5, 2), &[1, 1]))),
        ("an accept at slot zero", from(2, accept(b(5, 2), &[0, 1]))),
        ("a catch-up reply out of order", from(2, catchup(&[2, 1]))),
        ("a catch-up reply with a slot twice", from(2, catchup(&[1, 1]))),
    ];
    for (what, input) in malformed {
        let mut r = open();
        let promised = r.status().promised;
        let out = step(&mut r, input);
        assert!(out.is_empty(), "{what}: handled: {out:?}");
        assert_eq!(r.status().counters.dropped, 1, "{what}: not counted");
        assert_eq!((r.status().promised, r.status().primary), (promised, None), "{what}");
    }
    let twins = [
        ("a pre-vote", from(2, Body::PreVote { ballot: b(5, 2), commit: Slot::ZERO })),
        ("a prepare", from(3, prepare(b(5, 3), 0))),
        ("a prepare after the slot before the last", from(2, prepare(b(5, 2), u64::MAX - 1))),
        ("a heartbeat", from(2, heartbeat(b(5, 2)))),
        ("an accept", from(2, accept(b(5, 2), &[1, 2]))),
        ("a catch-up reply", from(2, catchup(&[1, 2]))),
    ];
    for (what, input) in twins {
        let mut r = open();
        let out = step(&mut r, input);
        assert!(!out.is_empty(), "{what}: dropped");
        assert_eq!(r.status().counters.dropped, 0, "{what}: counted as dropped");
    }
}

/// The memory log lists the accepted entries in slot order, each with its ballot, its value
/// and whether it is known chosen (what status pages and the simulator's checks read).
#[test]
fn the_memory_log_lists_accepted_entries_and_which_are_chosen() {
    let mut r = acceptor();
    let out = step(&mut r, accept(b(1, 2), 0, &[(1, batch(1)), (2, batch(2))]));
    step(&mut r, Input::Durable { seq: last_seq(&out).expect("the accept is persisted") });
    let log =
        |r: &Replica| r.memory_log().map(|(s, b, v, c)| (s.0, b, v.clone(), c)).collect::<Vec<_>>();
    let entries = |chosen: [bool; 2]| {
        vec![(1, b(1, 2), batch(1), chosen[0]), (2, b(1, 2), batch(2), chosen[1])]
    };
    assert_eq!(log(&r), entries([false, false]));
    step(&mut r, from(2, Body::Heartbeat { ballot: b(1, 2), commit: Slot(1), round: 1 }));
    assert_eq!(log(&r), entries([true, false]));
}
