//! Disk loss, one story each on a lone replica (id 1 of 1, 2, 3): a rebuilding replica
//! neither promises, votes nor stands until a primary's fresh phase 1 rebuilt it; a primary
//! answers a rebuild request with a new phase 1; and phase 1 prefers a value reported chosen
//! over a higher ballot (the hole a rebuilt replica would otherwise open; docs/protocol.md,
//! "Disk loss").

#[path = "common/lone.rs"]
mod lone;

use lone::{b, batch, from, sent_to, step, writes};
use rsl_core::message::Body;
use rsl_core::{
    Action, Ballot, Config, Input, LogEntry, Recovered, Replica, Slot, SlotValue, Value, Write,
};

fn rebuilding() -> Replica {
    let recovered = Recovered { rebuilding: true, ..Recovered::default() };
    Replica::new(Config::new(1, [1, 2, 3]), recovered)
}

/// Makes every write so far durable.
fn sync(r: &mut Replica, out: &[Action]) -> Vec<Action> {
    match writes(out).last() {
        Some((seq, _)) => step(r, Input::Durable { seq: *seq }),
        None => Vec::new(),
    }
}

/// Ticks until the replica sends its rebuild request; returns the nonce.
fn nonce_of(r: &mut Replica) -> u64 {
    for _ in 0..50 {
        let out = step(r, Input::Tick);
        sync(r, &out);
        for (_, body) in sent_to(&out) {
            if let Body::Rebuild { nonce } = body {
                return nonce;
            }
        }
    }
    panic!("no rebuild request sent");
}

#[test]
fn a_rebuilding_replica_writes_its_marker_and_neither_promises_votes_nor_stands() {
    let mut r = rebuilding();
    let out = step(&mut r, Input::Tick);
    assert_eq!(writes(&out).first().map(|w| w.1.clone()), Some(Write::Rebuilding(true)));
    sync(&mut r, &out);
    assert!(r.status().rebuilding);
    let prepare = Body::Prepare { ballot: b(5, 2), after: Slot::ZERO, transfer: None };
    let out = step(&mut r, from(2, prepare));
    assert!(sent_to(&out).is_empty() && writes(&out).is_empty(), "answered a prepare: {out:?}");
    let accept = Body::Accept {
        ballot: b(6, 3),
        commit: Slot::ZERO,
        entries: vec![SlotValue { slot: Slot(1), value: batch(1) }],
    };
    let out = step(&mut r, from(3, accept));
    sync(&mut r, &out);
    assert!(
        !writes(&out).iter().any(|(_, w)| matches!(w, Write::Accept(_))),
        "accepted while rebuilding: {out:?}"
    );
    // Long past every election timeout: it asks for a rebuild (and probes its peers for
    // chosen slots, as any replica that hears no primary does), never for votes.
    let mut kinds = Vec::new();
    for _ in 0..2000 {
        let out = step(&mut r, Input::Tick);
        sync(&mut r, &out);
        kinds.extend(
            sent_to(&out).into_iter().map(|(to, body)| (to, std::mem::discriminant(&body))),
        );
    }
    let rebuild = std::mem::discriminant(&Body::Rebuild { nonce: 0 });
    let probe = std::mem::discriminant(&Body::CatchupRequest { from: Slot(1), to: Slot(1) });
    assert!(
        kinds.iter().all(|(_, k)| *k == rebuild || *k == probe),
        "sent other than rebuild requests and probes"
    );
    assert!(kinds.iter().any(|(to, _)| *to == 2) && kinds.iter().any(|(to, _)| *to == 3));
    assert!(r.status().rebuilding && r.status().counters.elections == 0);
}

#[test]
fn a_rebuilt_replica_promises_the_ballot_catches_up_to_the_tail_then_votes() {
    let mut r = rebuilding();
    let nonce = nonce_of(&mut r);
    // A stale answer (another incarnation's nonce) is ignored.
    let stale = Body::Rebuilt { nonce: nonce ^ 1, ballot: b(4, 2), through: Slot(2) };
    let out = step(&mut r, from(2, stale));
    assert!(writes(&out).is_empty() && r.status().promised == Ballot::ZERO);
    let out = step(&mut r, from(2, Body::Rebuilt { nonce, ballot: b(4, 2), through: Slot(2) }));
    assert_eq!(
        writes(&out).iter().map(|w| w.1.clone()).collect::<Vec<_>>(),
        vec![Write::Promise(b(4, 2))]
    );
    sync(&mut r, &out);
    assert!(r.status().rebuilding, "rebuilt before holding the chosen tail");
    // The chosen slots up to the tail arrive by catch-up; only then is the marker cleared,
    // after the entries and the commit hint.
    let entries = vec![
        LogEntry { slot: Slot(1), ballot: b(1, 3), value: batch(1) },
        LogEntry { slot: Slot(2), ballot: b(4, 2), value: Value::Noop },
    ];
    let out = step(&mut r, from(2, Body::CatchupReply { commit: Slot(2), entries }));
    let w: Vec<Write> = writes(&out).into_iter().map(|w| w.1).collect();
    assert_eq!(w.last(), Some(&Write::Rebuilding(false)), "{w:?}");
    assert!(w.contains(&Write::Commit(Slot(2))));
    assert!(r.status().rebuilding, "rebuilt before the clearing write is durable");
    let prepare = Body::Prepare { ballot: b(5, 3), after: Slot(2), transfer: None };
    assert!(sent_to(&step(&mut r, from(3, prepare.clone()))).is_empty());
    sync(&mut r, &out);
    assert!(!r.status().rebuilding);
    assert!(r.status().promised >= b(4, 2));
    // An acceptor again (stickiness aside: the prepare comes from the primary it follows).
    step(&mut r, from(2, Body::Heartbeat { ballot: b(4, 2), commit: Slot(2), round: 1 }));
    let prepare = Body::Prepare { ballot: b(5, 2), after: Slot(2), transfer: None };
    let out = step(&mut r, from(2, prepare));
    let out = sync(&mut r, &out);
    assert!(sent_to(&out).iter().any(|(_, m)| matches!(m, Body::Promise { .. })), "{out:?}");
}

/// Elects replica 1 with replica 2's help; returns its ballot.
fn elect(r: &mut Replica) -> Ballot {
    for _ in 0..2000 {
        let out = step(r, Input::Tick);
        if let Some(ballot) = sent_to(&out).iter().find_map(|(_, m)| match m {
            Body::PreVote { ballot, .. } => Some(*ballot),
            _ => None,
        }) {
            let out = step(r, from(2, Body::PreVoteReply { ballot, granted: true }));
            sync(r, &out);
            let ballot = r.status().promised;
            let promise = Body::Promise {
                ballot,
                commit: Slot::ZERO,
                entries: Vec::new(),
                unknown: Vec::new(),
                after: Slot::ZERO,
                more_after: None,
                dropped: false,
            };
            let out = step(r, from(2, promise));
            sync(r, &out);
            assert_eq!(r.status().role, rsl_core::Role::Primary);
            return ballot;
        }
    }
    panic!("never stood for election");
}

#[test]
fn a_primary_answers_a_rebuild_with_a_fresh_phase_1_and_repeats_its_answer() {
    let mut r = Replica::new(Config::new(1, [1, 2, 3]), Recovered::default());
    let first = elect(&mut r);
    let out = step(&mut r, from(3, Body::Rebuild { nonce: 7 }));
    let prepares: Vec<(u32, Body)> = sent_to(&out);
    let fresh = match prepares.first() {
        Some((_, Body::Prepare { ballot, .. })) => *ballot,
        other => panic!("no fresh phase 1: {other:?}"),
    };
    assert!(fresh > first && prepares.iter().any(|(to, _)| *to == 3));
    assert!(!sent_to(&out).iter().any(|(_, m)| matches!(m, Body::Rebuilt { .. })));
    sync(&mut r, &out);
    let promise = Body::Promise {
        ballot: fresh,
        commit: Slot::ZERO,
        entries: vec![LogEntry { slot: Slot(3), ballot: first, value: batch(3) }],
        unknown: Vec::new(),
        after: Slot::ZERO,
        more_after: None,
        dropped: false,
    };
    let out = step(&mut r, from(2, promise));
    let answer = Body::Rebuilt { nonce: 7, ballot: fresh, through: Slot(3) };
    assert!(sent_to(&out).contains(&(3, answer.clone())), "{out:?}");
    // Asked again, the same answer, no new phase 1; a new nonce gets a new phase 1.
    let out = step(&mut r, from(3, Body::Rebuild { nonce: 7 }));
    assert_eq!(sent_to(&out), vec![(3, answer)]);
    let out = step(&mut r, from(3, Body::Rebuild { nonce: 8 }));
    assert!(sent_to(&out)
        .iter()
        .any(|(_, m)| matches!(m, Body::Prepare { ballot, .. } if *ballot > fresh)));
}

#[test]
fn a_replica_that_is_not_primary_ignores_rebuild_requests() {
    let mut r = Replica::new(Config::new(1, [1, 2, 3]), Recovered::default());
    let out = step(&mut r, from(3, Body::Rebuild { nonce: 7 }));
    assert!(sent_to(&out).is_empty() && writes(&out).is_empty());
    assert_eq!(r.status().counters.dropped, 1);
}

#[test]
fn phase_1_prefers_a_value_reported_chosen_over_a_higher_ballot() {
    // Replica 1 accepted batch(2) at b(2, 3) in slot 1; replica 2 reports batch(1) at the
    // lower b(1, 2) but within its commit point, so chosen. The chosen value must win.
    let mut r = Replica::new(Config::new(1, [1, 2, 3]), Recovered::default());
    let accept = Body::Accept {
        ballot: b(2, 3),
        commit: Slot::ZERO,
        entries: vec![SlotValue { slot: Slot(1), value: batch(2) }],
    };
    let out = step(&mut r, from(3, accept));
    sync(&mut r, &out);
    let mut ballot = None;
    for _ in 0..2000 {
        let out = step(&mut r, Input::Tick);
        ballot = sent_to(&out).iter().find_map(|(_, m)| match m {
            Body::PreVote { ballot, .. } => Some(*ballot),
            _ => None,
        });
        if ballot.is_some() {
            break;
        }
    }
    let out = step(&mut r, from(2, Body::PreVoteReply { ballot: ballot.unwrap(), granted: true }));
    sync(&mut r, &out);
    let promise = Body::Promise {
        ballot: r.status().promised,
        commit: Slot(1),
        entries: vec![LogEntry { slot: Slot(1), ballot: b(1, 2), value: batch(1) }],
        unknown: Vec::new(),
        after: Slot::ZERO,
        more_after: None,
        dropped: false,
    };
    let out = step(&mut r, from(2, promise));
    let proposed: Vec<Write> = writes(&out).into_iter().map(|w| w.1).collect();
    let slot1 = proposed.iter().find_map(|w| match w {
        Write::Accept(e) if e.slot == Slot(1) => Some(e.value.clone()),
        _ => None,
    });
    assert_eq!(slot1, Some(batch(1)), "{proposed:?}");
}

/// A rebuilding replica asks each peer for a rebuild once per heartbeat period (not at every
/// tick), and never again once a primary granted it one.
#[test]
fn a_rebuilding_replica_asks_once_per_heartbeat_period_until_granted() {
    let mut r = rebuilding();
    let every = u64::from(Config::new(1, [1, 2, 3]).heartbeat_ticks);
    let mut asked: Vec<(u64, u32, u64)> = Vec::new();
    for tick in 1..=10 * every {
        let out = step(&mut r, Input::Tick);
        sync(&mut r, &out);
        for (to, body) in sent_to(&out) {
            if let Body::Rebuild { nonce } = body {
                asked.push((tick, to, nonce));
            }
        }
    }
    for peer in [2, 3] {
        let ticks: Vec<u64> = asked.iter().filter(|a| a.1 == peer).map(|a| a.0).collect();
        let expected: Vec<u64> = (0..10).map(|k| 1 + k * every).collect();
        assert_eq!(ticks, expected, "requests to {peer}, every {every} ticks");
    }
    let nonce = asked[0].2;
    let out = step(&mut r, from(2, Body::Rebuilt { nonce, ballot: b(4, 2), through: Slot(2) }));
    sync(&mut r, &out);
    for _ in 0..10 * every {
        let out = step(&mut r, Input::Tick);
        sync(&mut r, &out);
        let again = sent_to(&out).into_iter().find(|(_, m)| matches!(m, Body::Rebuild { .. }));
        assert_eq!(again, None, "asked again after the grant");
    }
    assert!(r.status().rebuilding, "rebuilt before reaching the tail");
}

/// A primary answers rebuild requests from members only: a replica outside the membership
/// gets no fresh phase 1 (which would depose the primary for nothing).
#[test]
fn a_primary_ignores_a_rebuild_request_from_outside_the_membership() {
    let mut r = Replica::new(Config::new(1, [1, 2, 3]), Recovered::default());
    let ballot = elect(&mut r);
    let out = step(&mut r, from(9, Body::Rebuild { nonce: 7 }));
    assert!(sent_to(&out).is_empty() && writes(&out).is_empty(), "{out:?}");
    assert_eq!((r.status().role, r.status().promised), (rsl_core::Role::Primary, ballot));
    // A member's request does start one.
    let out = step(&mut r, from(3, Body::Rebuild { nonce: 7 }));
    assert!(sent_to(&out).iter().any(|(_, m)| matches!(m, Body::Prepare { .. })), "{out:?}");
}
