//! Phase 1 over slots reported corrupt (`unknown`): a candidate may fill such a slot only when
//! no value there can have been chosen. Stories on a lone candidate (replica 1 of 1, 2, 3)
//! fed promises by hand; they kill the mutants of `choose_values` the rest of the core's tests
//! let survive (docs/testing.md, "Mutation testing").

#[path = "common/lone.rs"]
mod lone;

use lone::{b, batch, from, sent, step};
use rsl_core::message::Body;
use rsl_core::{
    Action, Ballot, Config, Input, LogEntry, Membership, Recovered, Replica, Slot, SlotValue,
    UnknownValue, Value,
};

fn last_seq(out: &[Action]) -> u64 {
    out.iter()
        .rev()
        .find_map(|a| match a {
            Action::Persist { seq, .. } => Some(*seq),
            _ => None,
        })
        .expect("a write")
}

/// Makes replica 1 (recovered with `corrupt` slots of its own) a candidate whose own promise
/// is durable (pre-votes granted by 2 and, if needed, 3); returns its ballot.
fn candidate(r: &mut Replica) -> Ballot {
    for _ in 0..200 {
        let out = step(r, Input::Tick);
        let prevote = sent(&out).iter().find_map(|m| match m {
            Body::PreVote { ballot, .. } => Some(*ballot),
            _ => None,
        });
        if let Some(ballot) = prevote {
            for id in [2, 3] {
                let out = step(r, from(id, Body::PreVoteReply { ballot, granted: true }));
                if out.iter().any(|a| matches!(a, Action::Persist { .. })) {
                    step(r, Input::Durable { seq: last_seq(&out) });
                    return r.status().promised;
                }
            }
            panic!("no phase 1 after two pre-votes");
        }
    }
    panic!("no pre-vote");
}

/// Replica `id`'s promise of `ballot` reporting `entries` and `unknown` slots; returns what
/// the candidate re-proposed in slot 1 if phase 1 completed.
fn promise(
    r: &mut Replica,
    id: u32,
    ballot: Ballot,
    entries: Vec<LogEntry>,
    unknown: &[(u64, Ballot)],
) -> Option<Value> {
    promise_at(r, id, ballot, entries, unknown, 1)
}

/// Like `promise`, but returns what the candidate re-proposed in `slot`.
fn promise_at(
    r: &mut Replica,
    id: u32,
    ballot: Ballot,
    entries: Vec<LogEntry>,
    unknown: &[(u64, Ballot)],
    slot: u64,
) -> Option<Value> {
    let unknown =
        unknown.iter().map(|(s, b)| UnknownValue { slot: Slot(*s), ballot: *b }).collect();
    let body = Body::Promise {
        ballot,
        commit: Slot::ZERO,
        entries,
        unknown,
        after: Slot::ZERO,
        more_after: None,
        dropped: false,
    };
    let out = step(r, from(id, body));
    sent(&out).into_iter().find_map(|m| match m {
        Body::Accept { entries, .. } => {
            entries.into_iter().find(|e| e.slot == Slot(slot)).map(|SlotValue { value, .. }| value)
        }
        _ => None,
    })
}

fn replica(corrupt: &[(u64, Ballot)]) -> Replica {
    replica_of(&[1, 2, 3], corrupt)
}

/// Replica 1 of `voters`, recovered with `corrupt` slots of its own.
fn replica_of(voters: &[u32], corrupt: &[(u64, Ballot)]) -> Replica {
    let corrupt = corrupt.iter().map(|(s, b)| (Slot(*s), *b)).collect();
    let recovered = Recovered { promised: b(1, 2), corrupt, ..Recovered::default() };
    Replica::new(Config::new(1, voters.iter().copied()), recovered)
}

/// A configuration value making `voters` the voters.
fn config(voters: &[u32]) -> Value {
    Value::Config(Membership::new(voters.iter().copied()))
}

#[test]
fn a_slot_one_voter_reports_corrupt_waits_for_every_voter_then_gets_a_noop() {
    let mut r = replica(&[]);
    let ballot = candidate(&mut r);
    // A quorum answered (1 and 2), one of them lost slot 1: a value there may have been
    // chosen by 2 and 3, so phase 1 must hear 3 before it decides.
    assert_eq!(promise(&mut r, 2, ballot, vec![], &[(1, b(1, 2))]), None);
    // Every voter answered and fewer than a quorum lost it: nothing was chosen there.
    assert_eq!(promise(&mut r, 3, ballot, vec![], &[]), Some(Value::Noop));
}

#[test]
fn a_slot_a_quorum_reports_corrupt_is_never_filled() {
    let mut r = replica(&[]);
    let ballot = candidate(&mut r);
    assert_eq!(promise(&mut r, 2, ballot, vec![], &[(1, b(1, 2))]), None);
    assert_eq!(promise(&mut r, 3, ballot, vec![], &[(1, b(1, 2))]), None, "a quorum lost it");
}

#[test]
fn a_known_value_beats_a_corrupt_report_only_at_a_ballot_as_high() {
    for (known_ballot, completes) in [(b(1, 3), true), (b(1, 2), true), (b(0, 3), false)] {
        // The candidate and replica 2 lost slot 1 (accepted at ballot (1, 2)): a quorum.
        let mut r = replica(&[(1, b(1, 2))]);
        let ballot = candidate(&mut r);
        assert_eq!(promise(&mut r, 2, ballot, vec![], &[(1, b(1, 2))]), None);
        let known = LogEntry { slot: Slot(1), ballot: known_ballot, value: batch(1) };
        let value = promise(&mut r, 3, ballot, vec![known], &[]);
        assert_eq!(value, completes.then(|| batch(1)), "known at {known_ballot:?}");
    }
}

/// Seed 77049783 with `--reconfig` (Agreement): the candidate's membership was {1, 2}, but an
/// open slot before the corrupt one held a change to {1, 2, 4}, which governs it. Slot 15
/// had been chosen by 1 and 4, and 1 lost it at rest; the candidate heard 1 and itself,
/// every voter of {1, 2} with fewer than a quorum of them reporting the slot lost, and filled
/// it with a no-op. Whether every voter answered and how many lost the slot must be judged
/// under the membership that governs the slot.
#[test]
fn a_corrupt_slot_is_judged_under_the_membership_that_governs_it() {
    for shrink in [false, true] {
        // Growing: {1, 2} changes to {1, 2, 3} in slot 1; slot 2 is governed by {1, 2, 3},
        // and 3 (not yet heard) may hold the value chosen with 2's lost vote.
        // Shrinking: {1, 2, 3, 4, 5} changes to {1, 2, 3} in slot 1; 2 and 3 lost slot 2,
        // a quorum of {1, 2, 3} though not of the five, so the value may be chosen and is
        // lost with them: phase 1 must never fill it.
        let (voters, target): (&[u32], &[u32]) =
            if shrink { (&[1, 2, 3, 4, 5], &[1, 2, 3]) } else { (&[1, 2], &[1, 2, 3]) };
        let mut r = replica_of(voters, &[]);
        let ballot = candidate(&mut r);
        let change = LogEntry { slot: Slot(1), ballot: b(1, 2), value: config(target) };
        let first = promise_at(&mut r, 2, ballot, vec![change], &[(2, b(1, 2))], 2);
        assert_eq!(
            first, None,
            "slot 2 is governed by {target:?}, whose voters did not all answer"
        );
        if shrink {
            let lost = promise_at(&mut r, 3, ballot, vec![], &[(2, b(1, 2))], 2);
            assert_eq!(lost, None, "a quorum of {target:?} lost slot 2");
            for id in [4, 5] {
                let more = promise_at(&mut r, id, ballot, vec![], &[], 2);
                assert_eq!(more, None, "a quorum of {target:?} lost slot 2 ({id} answered)");
            }
        } else {
            let kept = LogEntry { slot: Slot(2), ballot: b(1, 2), value: batch(7) };
            let value = promise_at(&mut r, 3, ballot, vec![kept], &[], 2);
            assert_eq!(value, Some(batch(7)), "3 holds the value chosen by 2 and 3");
        }
    }
}

/// Replica 1 of {1, 2, 3} once accepted, at ballot (1, 2), a change to {1, 2} in slot 2; 2
/// lost slot 1. That change is not chosen, and it sits after slot 1 anyway: {1, 2, 3}
/// governs slot 1, where 2 and 3 may have chosen a value, so phase 1 must hear 3 before it
/// fills the slot. Judged under the {1, 2} of the candidate's own log, every voter answered
/// and fewer than a quorum lost the slot: a no-op would overwrite a value that may be
/// chosen. Kills `governing_membership`'s `<=` to `>` in its `take_while`, which read every
/// entry of the candidate's own log above the commit point as if chosen and executed.
#[test]
fn a_change_in_the_candidates_own_log_after_a_corrupt_slot_does_not_govern_it() {
    let own = LogEntry { slot: Slot(2), ballot: b(1, 2), value: config(&[1, 2]) };
    let recovered = Recovered { promised: b(1, 2), log: vec![own], ..Recovered::default() };
    let mut r = Replica::new(Config::new(1, [1, 2, 3]), recovered);
    let ballot = candidate(&mut r);
    let first = promise(&mut r, 2, ballot, vec![], &[(1, b(1, 2))]);
    assert_eq!(first, None, "slot 1 is governed by {{1, 2, 3}}, and 3 did not answer");
    let value = promise(&mut r, 3, ballot, vec![], &[]);
    assert_eq!(value, Some(Value::Noop), "every voter of {{1, 2, 3}} answered, one lost it");
}
