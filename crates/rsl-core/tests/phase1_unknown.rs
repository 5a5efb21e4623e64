//! Phase 1 over slots reported corrupt (`unknown`): a candidate may fill such a slot only when
//! no value there can have been chosen. Stories on a lone candidate (replica 1 of 1, 2, 3)
//! fed promises by hand; they kill the mutants of `choose_values` the rest of the core's tests
//! let survive (docs/testing.md, "Mutation testing").

#[path = "common/lone.rs"]
mod lone;

use lone::{b, batch, from, sent, step};
use rsl_core::message::Body;
use rsl_core::{
    Action, Ballot, Config, Input, LogEntry, Recovered, Replica, Slot, SlotValue, UnknownValue,
    Value,
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

/// Makes replica 1 (recovered with `corrupt` slots of its own) a candidate of {1, 2, 3} whose
/// own promise is durable; returns its ballot.
fn candidate(r: &mut Replica) -> Ballot {
    for _ in 0..200 {
        let out = step(r, Input::Tick);
        let prevote = sent(&out).iter().find_map(|m| match m {
            Body::PreVote { ballot, .. } => Some(*ballot),
            _ => None,
        });
        if let Some(ballot) = prevote {
            let out = step(r, from(2, Body::PreVoteReply { ballot, granted: true }));
            step(r, Input::Durable { seq: last_seq(&out) });
            return r.status().promised;
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
            entries.into_iter().find(|e| e.slot == Slot(1)).map(|SlotValue { value, .. }| value)
        }
        _ => None,
    })
}

fn replica(corrupt: &[(u64, Ballot)]) -> Replica {
    let corrupt = corrupt.iter().map(|(s, b)| (Slot(*s), *b)).collect();
    let recovered = Recovered { promised: b(1, 2), corrupt, ..Recovered::default() };
    Replica::new(Config::new(1, [1, 2, 3]), recovered)
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
