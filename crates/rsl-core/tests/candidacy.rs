//! A lone candidate's timing, driven by hand (replica 1 of 1, 2, 3; its peers never answer):
//! when it stands, how often it asks again within a candidacy, and how its timeout backs off
//! across candidacies that run out.

#[path = "common/lone.rs"]
mod lone;

use lone::{b, batch, from, sent, sent_to, step};
use rsl_core::message::Body;
use rsl_core::{
    Ballot, Config, Input, LogEntry, Membership, Recovered, Replica, Role, Slot, Value,
};

/// Ticks a lone replica whose peers never answer for `ticks` ticks; returns, per tick (from
/// tick 1), the number of candidacies begun so far and the peers it asked for a pre-vote.
fn run_alone(ticks: u64) -> (Config, Vec<(u64, Vec<u32>)>) {
    let config = Config::new(1, [1, 2, 3]);
    let mut r = Replica::new(config.clone(), Recovered::default());
    let mut trace = Vec::new();
    for _ in 0..ticks {
        let out = step(&mut r, Input::Tick);
        let mut asked: Vec<u32> = sent_to(&out)
            .into_iter()
            .filter(|(_, body)| matches!(body, Body::PreVote { .. }))
            .map(|(to, _)| to)
            .collect();
        asked.sort();
        trace.push((r.status().counters.elections, asked));
    }
    (config, trace)
}

/// A candidacy that hears nobody asks every voter again once per heartbeat interval (not at
/// every tick). The first candidacy's timeout is one election timeout; each one that runs out
/// doubles the next, up to four election timeouts (`ELECTION_BACKOFF_MAX`, 2 doublings).
#[test]
fn an_unanswered_candidate_asks_once_per_heartbeat_and_backs_off_up_to_four_timeouts() {
    let (config, trace) = run_alone(800);
    let (min, max) = (u64::from(config.election_ticks_min), u64::from(config.election_ticks_max));
    let heartbeat = u64::from(config.heartbeat_ticks);
    // The ticks at which a candidacy began.
    let mut starts = Vec::new();
    let mut before = 0;
    for (i, (elections, _)) in trace.iter().enumerate() {
        if *elections > before {
            assert_eq!(*elections, before + 1, "two candidacies at one tick");
            starts.push(i as u64 + 1);
            before = *elections;
        }
    }
    assert!(starts.len() >= 5, "candidacies at {starts:?}");
    assert!((min..max).contains(&starts[0]), "the first candidacy at tick {}", starts[0]);
    for (k, gap) in starts.windows(2).map(|w| w[1] - w[0]).enumerate() {
        let backoff = (k as u32).min(2);
        let (low, high) = (min << backoff, (max - 1) << backoff);
        assert!((low..=high).contains(&gap), "candidacy {} after {gap} ticks: {starts:?}", k + 2);
    }
    // Within each candidacy, the pre-vote goes to both peers at its start and then exactly
    // every heartbeat interval.
    for (i, (_, asked)) in trace.iter().enumerate() {
        let tick = i as u64 + 1;
        let Some(start) = starts.iter().rev().find(|s| **s <= tick) else {
            assert!(asked.is_empty(), "asked before standing, at tick {tick}");
            continue;
        };
        let due = (tick - start).is_multiple_of(heartbeat);
        let expected: Vec<u32> = if due { vec![2, 3] } else { vec![] };
        assert_eq!(asked, &expected, "at tick {tick}, candidacy from {start}");
    }
}

/// Ticks a lone replica that last promised ballot 3 of replica 2 until it stands; returns it
/// and its pre-vote's ballot (round 4).
fn standing() -> (Replica, Ballot) {
    let recovered = Recovered { promised: b(3, 2), ..Recovered::default() };
    let mut r = Replica::new(Config::new(1, [1, 2, 3]), recovered);
    for _ in 0..100 {
        let out = step(&mut r, Input::Tick);
        if let Some(Body::PreVote { ballot, .. }) = sent(&out).into_iter().next() {
            return (r, ballot);
        }
    }
    panic!("never stood");
}

/// Only a grant counts: refusals at the candidate's own ballot, even from every voter, leave
/// it asking for pre-votes, its promise untouched; one grant (with its own, a quorum of 3)
/// starts phase 1.
#[test]
fn a_refused_prevote_is_not_counted_as_a_grant() {
    let (mut r, ballot) = standing();
    let promised = r.status().promised;
    for peer in [2, 3] {
        let out = step(&mut r, from(peer, Body::PreVoteReply { ballot, granted: false }));
        assert!(sent(&out).is_empty(), "a refusal started phase 1: {out:?}");
    }
    assert_eq!(r.status().promised, promised, "a refused candidate raised its promise");
    let out = step(&mut r, from(2, Body::PreVoteReply { ballot, granted: true }));
    assert!(
        sent(&out).iter().any(|m| matches!(m, Body::Prepare { .. })),
        "a quorum of grants did not start phase 1: {out:?}"
    );
}

/// A promise in pages: when a page is lost, the candidate's resend (at the next heartbeat
/// interval) asks for the page after the last one it holds, not for the report from the start
/// (an answer from the start would be refused as a late copy of the report in progress).
#[test]
fn a_lost_promise_page_is_asked_again_after_the_last_page_received() {
    let (mut r, prevote) = standing();
    let ballot = phase_1(&mut r, prevote);
    let page = Body::Promise {
        ballot,
        commit: Slot::ZERO,
        after: Slot::ZERO,
        entries: vec![LogEntry { slot: Slot(1), ballot: b(3, 2), value: batch(1) }],
        unknown: vec![],
        more_after: Some(Slot(1)),
        dropped: false,
    };
    let out = step(&mut r, from(2, page));
    let next = Body::Prepare { ballot, after: Slot(1), transfer: None };
    assert_eq!(sent_to(&out), vec![(2, next.clone())], "the next page is asked for at once");
    // That request is lost; the resend asks for the same page, and asks 3 from the start.
    let mut resent = Vec::new();
    for _ in 0..u64::from(Config::new(1, [1, 2, 3]).heartbeat_ticks) {
        resent.extend(sent_to(&step(&mut r, Input::Tick)));
    }
    let from_start = Body::Prepare { ballot, after: Slot::ZERO, transfer: None };
    assert_eq!(resent, vec![(2, next), (3, from_start)]);
}

/// Pre-vote grants that arrive once phase 1 runs (late, or duplicated by the network) are
/// ignored: they neither start phase 1 again at a higher ballot nor change the promise.
#[test]
fn late_prevote_grants_do_not_restart_phase_1() {
    let (mut r, prevote) = standing();
    step(&mut r, from(2, Body::PreVoteReply { ballot: prevote, granted: true }));
    let promised = r.status().promised;
    assert_eq!(promised, prevote, "phase 1 runs at the pre-vote's ballot");
    for peer in [3, 2, 3] {
        let out = step(&mut r, from(peer, Body::PreVoteReply { ballot: prevote, granted: true }));
        assert!(sent(&out).is_empty(), "a late grant from {peer} was acted on: {out:?}");
    }
    assert_eq!(r.status().promised, promised, "phase 1 started again");
}

/// Begins phase 1 on a standing replica (one grant); returns its ballot.
fn phase_1(r: &mut Replica, prevote: Ballot) -> Ballot {
    let out = step(r, from(2, Body::PreVoteReply { ballot: prevote, granted: true }));
    sent(&out)
        .into_iter()
        .find_map(|m| if let Body::Prepare { ballot, .. } = m { Some(ballot) } else { None })
        .expect("phase 1 began")
}

/// Phase 1 asks the voters of every configuration reported above the executed point (they may
/// hold the only promises that complete its quorum), but not those of one reported at a slot
/// the candidate has since executed: there the chosen value decided the membership, and a
/// configuration reported at a lower ballot there was never chosen.
#[test]
fn phase_1_asks_no_voter_of_a_configuration_reported_at_an_executed_slot() {
    let (mut r, prevote) = standing();
    let ballot = phase_1(&mut r, prevote);
    let config = Value::Config(Membership::new([1, 2, 3, 4]));
    let promise = |commit: u64, entry: LogEntry| Body::Promise {
        ballot,
        commit: Slot(commit),
        after: Slot::ZERO,
        entries: vec![entry],
        unknown: vec![],
        more_after: None,
        dropped: false,
    };
    // 3 accepted the configuration at slot 1 at an old ballot; 2 knows slot 1 chosen with
    // another value, and the candidate catches up on it and executes it.
    let old = LogEntry { slot: Slot(1), ballot: b(2, 3), value: config };
    step(&mut r, from(3, promise(0, old)));
    let chosen = LogEntry { slot: Slot(1), ballot: b(3, 2), value: batch(1) };
    step(&mut r, from(2, promise(1, chosen.clone())));
    step(&mut r, from(2, Body::CatchupReply { commit: Slot(1), entries: vec![chosen] }));
    assert_eq!(r.status().executed, Slot(1));
    // Both voters answered in full: the resend asks nobody (the own promise is not yet
    // durable, so phase 1 is still running).
    let mut resent = Vec::new();
    for _ in 0..u64::from(Config::new(1, [1, 2, 3]).heartbeat_ticks) {
        resent.extend(sent_to(&step(&mut r, Input::Tick)));
    }
    assert!(resent.is_empty(), "{resent:?}");
}

/// A whole promise in one page, with no entries.
fn empty_promise(ballot: Ballot, commit: u64, after: u64, dropped: bool) -> Body {
    Body::Promise {
        ballot,
        commit: Slot(commit),
        after: Slot(after),
        entries: vec![],
        unknown: vec![],
        more_after: None,
        dropped,
    }
}

/// Phase 1 with its own promise durable, so that one more complete report completes it.
fn phase_1_durable() -> (Replica, Ballot) {
    let (mut r, prevote) = standing();
    let ballot = phase_1(&mut r, prevote);
    step(&mut r, Input::Durable { seq: 1 });
    assert_eq!(r.status().role, Role::Candidate);
    (r, ballot)
}

/// A first page must cover every slot above the candidate's commit point: one that starts
/// above it (a stray page of an earlier request) is not a report, and phase 1 does not
/// complete on it; the same replica's report from the commit point does complete it.
#[test]
fn a_first_page_that_starts_above_the_commit_point_is_not_a_report() {
    let (mut r, ballot) = phase_1_durable();
    step(&mut r, from(3, empty_promise(ballot, 0, 2, false)));
    assert_eq!(r.status().role, Role::Candidate, "phase 1 completed without slots 1 and 2");
    step(&mut r, from(3, empty_promise(ballot, 0, 0, false)));
    assert_eq!(r.status().role, Role::Primary);
}

/// An acceptor that dropped entries the candidate lacks reports so; once the candidate has
/// caught up, that acceptor's report from the new commit point is taken, not refused as a
/// late copy of the dropped one, and completes phase 1.
#[test]
fn a_report_starts_again_after_a_drop() {
    let (mut r, ballot) = phase_1_durable();
    step(&mut r, from(3, empty_promise(ballot, 1, 0, true)));
    assert_eq!(r.status().role, Role::Candidate, "a dropped report counted");
    let chosen = LogEntry { slot: Slot(1), ballot: b(3, 2), value: batch(1) };
    step(&mut r, from(3, Body::CatchupReply { commit: Slot(1), entries: vec![chosen] }));
    assert_eq!(r.status().commit, Slot(1));
    step(&mut r, from(3, empty_promise(ballot, 1, 1, false)));
    assert_eq!(r.status().role, Role::Primary);
}

/// A promise from an acceptor whose commit point is above the candidate's makes the candidate
/// catch up at once, from it; a promise at the candidate's own commit point asks for nothing,
/// even while the candidate is still behind the first.
#[test]
fn a_promise_from_further_ahead_starts_a_catch_up_and_one_level_does_not() {
    let (mut r, prevote) = standing();
    let ballot = phase_1(&mut r, prevote);
    let ahead = Body::Promise {
        ballot,
        commit: Slot(1),
        after: Slot::ZERO,
        entries: vec![LogEntry { slot: Slot(1), ballot: b(3, 2), value: batch(1) }],
        unknown: vec![],
        more_after: None,
        dropped: false,
    };
    let out = step(&mut r, from(3, ahead));
    assert_eq!(sent_to(&out), vec![(3, Body::CatchupRequest { from: Slot(1), to: Slot(1) })]);
    let out = step(&mut r, from(2, empty_promise(ballot, 0, 0, false)));
    assert_eq!(sent_to(&out), vec![], "a promise level with the candidate asked for a catch-up");
}
