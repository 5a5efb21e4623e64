//! A lone candidate's timing, driven by hand (replica 1 of 1, 2, 3; its peers never answer):
//! when it stands, how often it asks again within a candidacy, and how its timeout backs off
//! across candidacies that run out; which nacks depose it, or the primary it becomes; and
//! that primary's heartbeat pace when nobody answers, when it gives up, and which
//! acknowledgements it counts.

#[path = "common/lone.rs"]
mod lone;

use bytes::Bytes;
use lone::{b, batch, executed, from, sent, sent_to, step, writes};
use rsl_core::message::Body;
use rsl_core::{
    Action, Ballot, Config, Input, LeaseRead, LogEntry, Membership, Notification, ReadId, ReadMode,
    Recovered, Refusal, Replica, ReplicaId, RequestId, Role, Slot, UnknownValue, Value,
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

/// Sends `r` a nack of `ballot` by an acceptor that promised `promised`; returns whether `r`
/// reported the loss of its primacy.
fn nack(r: &mut Replica, ballot: Ballot, promised: Ballot) -> bool {
    lost_primacy(&step(r, from(3, Body::Nack { ballot, promised })))
}

fn lost_primacy(out: &[Action]) -> bool {
    out.iter().any(|a| matches!(a, Action::Notify(Notification::LostPrimacy { .. })))
}

/// Only a nack of the ballot a primary leads with, by an acceptor that promised a higher one,
/// deposes it (at once: it does not wait for the next heartbeat or prepare to show the higher
/// ballot), and its next candidacy stands above that promise. A late nack of an earlier ballot
/// of its own (from a candidacy it has since won at a higher one) and a nack whose promise is
/// not above the ballot change nothing.
#[test]
fn a_nack_of_a_higher_promise_at_its_own_ballot_deposes_the_primary_and_no_other_does() {
    let (mut r, ballot) = phase_1_durable();
    step(&mut r, from(3, empty_promise(ballot, 0, 0, false)));
    assert_eq!((r.status().role, r.status().ballot), (Role::Primary, ballot));
    let earlier = b(ballot.round - 2, 1);
    assert!(!nack(&mut r, earlier, b(ballot.round - 1, 2)), "a late nack of an earlier ballot");
    assert!(!nack(&mut r, ballot, ballot), "a nack of a promise equal to the ballot");
    assert!(!nack(&mut r, ballot, b(ballot.round - 1, 3)), "a nack of a lower promise");
    assert_eq!((r.status().role, r.status().ballot), (Role::Primary, ballot));
    let higher = b(ballot.round + 5, 3);
    assert!(nack(&mut r, ballot, higher), "a nack of a higher promise did not depose it");
    assert_eq!(r.status().role, Role::Follower);
    for _ in 0..200 {
        let out = step(&mut r, Input::Tick);
        if let Some(Body::PreVote { ballot, .. }) = sent(&out).into_iter().next() {
            assert!(ballot > higher, "stood at {ballot:?}, not above the nack's {higher:?}");
            return;
        }
    }
    panic!("never stood again");
}

/// A candidate in phase 1 is deposed the same way: by a nack of its own ballot with a higher
/// promise, not by one of an earlier ballot of its own.
#[test]
fn a_nack_of_a_higher_promise_at_its_own_ballot_ends_a_candidacy() {
    let (mut r, ballot) = phase_1_durable();
    nack(&mut r, b(ballot.round - 2, 1), b(ballot.round - 1, 2));
    assert_eq!(r.status().role, Role::Candidate, "a late nack of an earlier ballot");
    nack(&mut r, ballot, b(ballot.round + 1, 2));
    assert_eq!(r.status().role, Role::Follower, "a nack of a higher promise");
    // Deposed, it completes no phase 1 on a promise that arrives late.
    step(&mut r, from(3, empty_promise(ballot, 0, 0, false)));
    assert_eq!(r.status().role, Role::Follower);
}

/// A follower of replica 2 at ballot 3 (from its heartbeat).
fn following_2() -> Replica {
    let mut r = Replica::new(Config::new(1, [1, 2, 3]), Recovered::default());
    step(&mut r, from(2, Body::Heartbeat { ballot: b(3, 2), commit: Slot::ZERO, round: 1 }));
    assert_eq!(r.status().primary.map(|p| p.0), Some(2));
    r
}

/// A transfer of primacy: only the primary this replica follows, at the ballot it follows,
/// may ask it to stand at once (not a late request from an earlier primacy, not another
/// replica), and only while it may stand; then it skips the pre-vote and runs phase 1 at a
/// higher ballot that names the handing-over ballot, so that acceptors may break its lease.
#[test]
fn only_the_primary_it_follows_may_hand_it_primacy_and_only_while_it_may_stand() {
    let mut r = following_2();
    let out = step(&mut r, from(2, Body::StartElection { ballot: b(2, 2) }));
    assert!(sent(&out).is_empty(), "a start-election of 2's earlier ballot: {out:?}");
    let out = step(&mut r, from(3, Body::StartElection { ballot: b(4, 3) }));
    assert!(sent(&out).is_empty(), "a start-election from 3, not its primary: {out:?}");
    step(&mut r, Input::SetCanBecomePrimary(false));
    let out = step(&mut r, from(2, Body::StartElection { ballot: b(3, 2) }));
    assert!(sent(&out).is_empty(), "stood while kept out of elections: {out:?}");
    assert_eq!(r.status().role, Role::Follower);
    step(&mut r, Input::SetCanBecomePrimary(true));
    let out = step(&mut r, from(2, Body::StartElection { ballot: b(3, 2) }));
    let prepares = sent_to(&out);
    assert_eq!(prepares.iter().map(|(to, _)| *to).collect::<Vec<_>>(), vec![2, 3], "{out:?}");
    for (_, body) in prepares {
        let Body::Prepare { ballot, after, transfer } = body else { panic!("{body:?}") };
        assert!(ballot > b(3, 2) && ballot.owner().0 == 1, "phase 1 at {ballot:?}");
        assert_eq!((after, transfer), (Slot::ZERO, Some(b(3, 2))));
    }
    assert_eq!(r.status().role, Role::Candidate);
}

/// A proposal's outcome in `out`: `None` if it was taken, else its refusal.
fn propose(r: &mut Replica, seq: u64) -> Option<Refusal> {
    let id = RequestId { proposer: ReplicaId(1), incarnation: 0, seq };
    let out = step(r, Input::Propose { id, payload: Bytes::from_static(b"x"), exclusive: false });
    out.into_iter().find_map(|a| match a {
        Action::Refuse { id: refused, reason } if refused == id => Some(reason),
        _ => None,
    })
}

/// Kept out of elections, a candidate ends its candidacy at once, and a primary hands primacy
/// over (it stays primary, refusing proposals in favour of its target, until the target takes
/// over or the transfer times out) rather than stepping down with nobody to take over.
/// Allowed to stand (again), neither changes anything.
#[test]
fn kept_out_of_elections_a_candidate_stands_down_and_a_primary_hands_over() {
    let (mut r, _) = phase_1_durable();
    let out = step(&mut r, Input::SetCanBecomePrimary(true));
    assert_eq!(r.status().role, Role::Candidate, "allowed to stand, it stood down: {out:?}");
    step(&mut r, Input::SetCanBecomePrimary(false));
    assert_eq!(r.status().role, Role::Follower, "kept out, it is still a candidate");

    let (mut r, ballot) = phase_1_durable();
    step(&mut r, from(3, empty_promise(ballot, 0, 0, false)));
    assert_eq!(r.status().role, Role::Primary);
    let out = step(&mut r, Input::SetCanBecomePrimary(true));
    assert!(sent(&out).is_empty(), "allowed to stand, the primary acted: {out:?}");
    assert_eq!(propose(&mut r, 1), None, "allowed to stand, the primary refused a proposal");
    let out = step(&mut r, Input::SetCanBecomePrimary(false));
    assert_eq!(r.status().role, Role::Primary, "kept out, it stepped down: {out:?}");
    assert!(!lost_primacy(&out), "kept out, it gave up primacy at once: {out:?}");
    // Its slots are still in flight: it waits for them before telling the target to stand.
    match propose(&mut r, 2) {
        Some(Refusal::NotPrimary { primary: Some(ReplicaId(2 | 3)) }) => {}
        other => panic!("kept out, a proposal was not sent to the target: {other:?}"),
    }
    // Nor does it serve linearizable reads while it hands over (refused naming no primary,
    // unlike proposals).
    let out = step(&mut r, Input::Read { id: ReadId(1), mode: ReadMode::Linearizable });
    let refused = out.iter().any(|a| {
        matches!(a, Action::ReadRefused { reason: Refusal::NotPrimary { primary: None }, .. })
    });
    assert!(refused, "a handing-over primary took a linearizable read: {out:?}");
}

/// A primary nobody answers sends a heartbeat round to both peers exactly once per heartbeat
/// interval, and steps down only once no quorum has heard it for more than
/// `election_ticks_max` ticks since its primacy began: at the tick after that, not at it.
#[test]
fn an_unheard_primary_heartbeats_once_per_interval_and_steps_down_after_the_longest_timeout() {
    let (mut r, ballot) = phase_1_durable();
    step(&mut r, from(3, empty_promise(ballot, 0, 0, false)));
    assert_eq!(r.status().role, Role::Primary);
    let config = Config::new(1, [1, 2, 3]);
    let (heartbeat, max) =
        (u64::from(config.heartbeat_ticks), u64::from(config.election_ticks_max));
    let since = r.status().now;
    let mut beats = Vec::new();
    loop {
        let out = step(&mut r, Input::Tick);
        let now = r.status().now;
        if lost_primacy(&out) {
            assert_eq!(now, since + max + 1, "stepped down {} ticks into its primacy", now - since);
            break;
        }
        assert!(now <= since + max, "still primary {} ticks into its primacy", now - since);
        let mut to: Vec<u32> = sent_to(&out)
            .into_iter()
            .filter(|(_, body)| matches!(body, Body::Heartbeat { .. }))
            .map(|(to, _)| to)
            .collect();
        to.sort();
        if !to.is_empty() {
            assert_eq!(to, vec![2, 3], "at tick {now}");
            beats.push(now);
        }
    }
    assert!(beats.len() >= 3, "heartbeats at {beats:?}");
    assert!(beats.windows(2).all(|w| w[1] - w[0] == heartbeat), "heartbeats at {beats:?}");
}

/// Only acknowledgements at the primary's own ballot count: acknowledgements of an earlier
/// ballot of its own (a primacy it lost and won back), even of a round number it has sent,
/// give it no lease and release no read; one at its ballot, with its own, does.
#[test]
fn acknowledgements_of_another_ballot_give_no_lease_and_release_no_read() {
    let (mut r, ballot) = primary_with_slot_1_executed();
    // A heartbeat round nobody acknowledges: no lease.
    for _ in 0..Config::new(1, [1, 2, 3]).heartbeat_ticks {
        step(&mut r, Input::Tick);
    }
    // Without a lease, a read sends a heartbeat round and waits for a quorum to acknowledge
    // that round (sent after the read arrived), not an earlier one.
    let out = step(&mut r, Input::Read { id: ReadId(1), mode: ReadMode::Linearizable });
    let round = sent(&out)
        .into_iter()
        .find_map(|m| match m {
            Body::Heartbeat { round, .. } => Some(round),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no heartbeat round for the read: {out:?}"));
    let ready = |out: &[Action]| out.iter().any(|a| matches!(a, Action::ReadReady { .. }));
    let earlier = b(ballot.round - 2, 1);
    for peer in [2, 3] {
        let ack = Body::HeartbeatAck { ballot: earlier, round, commit: Slot(1) };
        let out = step(&mut r, from(peer, ack));
        assert!(!ready(&out), "a read released on an acknowledgement of {earlier:?}");
    }
    assert_eq!(r.lease_read(), None, "a lease from acknowledgements of {earlier:?}");
    assert!(round >= 2, "no earlier round");
    let out =
        step(&mut r, from(2, Body::HeartbeatAck { ballot, round: round - 1, commit: Slot(1) }));
    assert!(!ready(&out), "a read released by a round sent before it arrived");
    let out = step(&mut r, from(2, Body::HeartbeatAck { ballot, round, commit: Slot(1) }));
    assert!(ready(&out), "a quorum's acknowledgement did not release the read: {out:?}");
    // The lease runs `lease_ticks` from the round's sending (this tick), to the last tick.
    let lease = u64::from(Config::new(1, [1, 2, 3]).lease_ticks);
    for left in (1..=lease).rev() {
        assert_eq!(r.lease_read(), Some(LeaseRead { ticks_left: left, index: Slot(1) }));
        step(&mut r, Input::Tick);
    }
    assert_eq!(r.lease_read(), None, "a lease read offered at the lease's end");
}

/// A read of a slot already executed is ready at once, in the same step, on any replica.
#[test]
fn a_read_of_an_executed_slot_is_ready_at_once() {
    let mut r = Replica::new(Config::new(1, [1, 2, 3]), Recovered::default());
    let out = step(&mut r, Input::Read { id: ReadId(7), mode: ReadMode::AtLeast(Slot::ZERO) });
    let ready: Vec<ReadId> = out
        .iter()
        .filter_map(|a| if let Action::ReadReady { id } = a { Some(*id) } else { None })
        .collect();
    assert_eq!(ready, vec![ReadId(7)], "{out:?}");
}

/// A primary with slot 1 chosen and executed (2's vote), nothing in flight.
fn primary_with_slot_1_executed() -> (Replica, Ballot) {
    let (mut r, ballot) = phase_1_durable();
    let out = step(&mut r, from(3, empty_promise(ballot, 0, 0, false)));
    assert_eq!(r.status().role, Role::Primary);
    let (seq, _) = *writes(&out).last().expect("phase 1 proposed a slot");
    step(&mut r, Input::Durable { seq });
    let out = step(&mut r, from(2, Body::Accepted { ballot, slots: vec![Slot(1)] }));
    assert_eq!(executed(&out).len(), 1, "{out:?}");
    (r, ballot)
}

/// A transfer of primacy to 2: the primary sends 2 its commit point (a heartbeat) until 2
/// acknowledges having caught up with it, and only then, once, tells it to stand.
#[test]
fn a_transfer_waits_for_the_target_to_catch_up_then_asks_it_once_to_stand() {
    let (mut r, ballot) = primary_with_slot_1_executed();
    let to_2 = |out: &[Action]| -> Vec<Body> {
        sent_to(out).into_iter().filter(|(to, _)| *to == 2).map(|(_, body)| body).collect()
    };
    let out = step(&mut r, Input::TransferPrimacy { to: Some(ReplicaId(2)) });
    let round = match to_2(&out).as_slice() {
        [Body::Heartbeat { commit: Slot(1), round, .. }] => *round,
        other => panic!("the transfer's first word to 2: {other:?}"),
    };
    let behind = Body::HeartbeatAck { ballot, round, commit: Slot::ZERO };
    let out = step(&mut r, from(2, behind));
    assert!(
        matches!(to_2(&out).as_slice(), [Body::Heartbeat { commit: Slot(1), .. }]),
        "to a target behind: {out:?}"
    );
    let level = Body::HeartbeatAck { ballot, round, commit: Slot(1) };
    let out = step(&mut r, from(2, level.clone()));
    assert_eq!(to_2(&out), vec![Body::StartElection { ballot }], "to a target caught up");
    let out = step(&mut r, from(2, level));
    assert_eq!(to_2(&out), vec![], "asked twice to stand");
}

/// A primary proposed a request in slot 2 and was deposed before a quorum accepted it; the
/// new primary, 2, chose another value there. When slot 2 executes, the request is refused
/// as superseded, naming 2 as the primary to ask. Mutation testing: naming nobody (the
/// filter of this replica's own id in `settle_outcomes` reversed) passed every other test.
#[test]
fn a_superseded_proposal_names_the_new_primary() {
    let (mut r, ballot) = primary_with_slot_1_executed();
    let id = RequestId { proposer: ReplicaId(1), incarnation: 1, seq: 1 };
    step(&mut r, Input::Propose { id, payload: Bytes::from_static(b"x"), exclusive: false });
    let higher = b(ballot.round + 1, 2);
    let entries = vec![rsl_core::SlotValue { slot: Slot(2), value: batch(2) }];
    let out = step(&mut r, from(2, Body::Accept { ballot: higher, commit: Slot(1), entries }));
    assert!(lost_primacy(&out), "not deposed by the higher ballot: {out:?}");
    let out = step(&mut r, from(2, Body::Heartbeat { ballot: higher, commit: Slot(2), round: 1 }));
    assert_eq!(executed(&out), vec![(Slot(2), batch(2))]);
    let refused: Vec<_> = out
        .iter()
        .filter_map(|a| match a {
            Action::Refuse { id: x, reason } if *x == id => Some(reason.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(refused, vec![Refusal::Superseded { primary: Some(ReplicaId(2)) }], "{out:?}");
}

/// A primary proposed a request in slot 2; a peer's catch-up reply says slot 2 is chosen, with
/// the primary's own value at the primary's own ballot (the peer learned it chosen at an
/// earlier ballot with the same value, and holds its vote for this one). The primary takes it
/// as chosen, executes it and stays primary: only a higher ballot than its own deposes it.
/// Mutation testing: stepping down at its own ballot (`e.ballot > l.ballot` to `>=` in
/// `install_chosen`) passed every other test.
#[test]
fn a_primary_told_its_own_slot_is_chosen_executes_it_and_stays_primary() {
    let (mut r, ballot) = primary_with_slot_1_executed();
    let id = RequestId { proposer: ReplicaId(1), incarnation: 1, seq: 1 };
    let payload = Bytes::from_static(b"x");
    let out = step(&mut r, Input::Propose { id, payload: payload.clone(), exclusive: false });
    let value = Value::Batch(vec![rsl_core::Request { id, payload }].into());
    let accepted = writes(&out).into_iter().any(
        |(_, w)| matches!(w, rsl_core::Write::Accept(e) if e.slot == Slot(2) && e.value == value),
    );
    assert!(accepted, "the request is not alone in slot 2: {out:?}");
    let entries = vec![LogEntry { slot: Slot(2), ballot, value: value.clone() }];
    let out = step(&mut r, from(3, Body::CatchupReply { commit: Slot(2), entries }));
    assert!(!lost_primacy(&out), "deposed by its own ballot: {out:?}");
    assert_eq!(executed(&out), vec![(Slot(2), value)]);
    assert_eq!((r.status().role, r.status().ballot), (Role::Primary, ballot));
}

/// A promise page must cover a range after its `after` that ends where the next page starts,
/// its slots in order inside it: otherwise the pages of a report would not join in slot
/// order. A page that breaks this (on a first page, or on the page after one that named
/// where more follow) is dropped and counted on receipt: it neither completes phase 1 nor
/// asks for a next page. The well-formed report of two pages then completes phase 1.
#[test]
fn a_malformed_promise_page_is_dropped_and_counted() {
    let entry = |slot: u64| LogEntry { slot: Slot(slot), ballot: b(3, 2), value: batch(slot) };
    let unknown = |slot: u64| UnknownValue { slot: Slot(slot), ballot: b(3, 2) };
    let page =
        |ballot, after: u64, entries: &[u64], unknowns: &[u64], more: Option<u64>| Body::Promise {
            ballot,
            commit: Slot::ZERO,
            after: Slot(after),
            entries: entries.iter().map(|s| entry(*s)).collect(),
            unknown: unknowns.iter().map(|s| unknown(*s)).collect(),
            more_after: more.map(Slot),
            dropped: false,
        };
    // (what, the first page's range and entries if the broken page is a second one, the
    // broken page: after, entries, unknown slots, more_after).
    type Page<'a> = (u64, &'a [u64], &'a [u64], Option<u64>);
    type First<'a> = Option<(u64, &'a [u64])>;
    let max = u64::MAX;
    let cases: [(&str, First, Page); 7] = [
        ("a page after the last slot", Some((max, &[])), (max, &[], &[], None)),
        ("a page that ends where it starts", None, (0, &[], &[], Some(0))),
        ("entries out of order", None, (0, &[2, 1], &[], None)),
        ("unknown slots out of order", None, (0, &[], &[2, 1], None)),
        ("an entry at the page's start", Some((2, &[1, 2])), (2, &[2], &[], None)),
        ("an entry past the page's end", None, (0, &[1, 2], &[], Some(1))),
        ("an unknown slot at the page's start", Some((2, &[1, 2])), (2, &[], &[2], None)),
    ];
    for (what, first, (after, entries, unknowns, more)) in cases {
        let (mut r, ballot) = phase_1_durable();
        if let Some((end, entries)) = first {
            let out = step(&mut r, from(3, page(ballot, 0, entries, &[], Some(end))));
            let next = Body::Prepare { ballot, after: Slot(end), transfer: None };
            assert_eq!(sent_to(&out), vec![(3, next)], "{what}: the first page");
        }
        let dropped = r.status().counters.dropped;
        let out = step(&mut r, from(3, page(ballot, after, entries, unknowns, more)));
        assert_eq!(sent_to(&out), vec![], "{what}: handled");
        assert_eq!(r.status().counters.dropped, dropped + 1, "{what}: not counted");
        assert_eq!(r.status().role, Role::Candidate, "{what}: completed phase 1");
    }
    let (mut r, ballot) = phase_1_durable();
    step(&mut r, from(3, page(ballot, 0, &[1, 2], &[], Some(2))));
    step(&mut r, from(3, page(ballot, 2, &[3], &[], None)));
    assert_eq!(r.status().counters.dropped, 0);
    assert_eq!(r.status().role, Role::Primary);
}
