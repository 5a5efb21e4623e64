//! Reconfiguration on a lone primary (id 1 of 1, 2, 3), one rule each (docs/protocol.md,
//! "Reconfiguration"): a slot after a configuration slot is counted only once that
//! configuration is chosen, and a primary that learns through catch-up a value chosen at a
//! higher ballot steps down rather than count its votes under a membership it never proposed.

#[path = "common/lone.rs"]
mod lone;

use bytes::Bytes;
use lone::{b, batch, executed, from, sent, step};
use rsl_core::message::Body;
use rsl_core::{
    Action, Ballot, Config, Input, LogEntry, Membership, Recovered, Replica, ReplicaId, RequestId,
    Role, Slot, Value,
};

/// Makes every write so far durable; returns the actions of both steps.
fn sync(r: &mut Replica, mut out: Vec<Action>) -> Vec<Action> {
    let seq = out.iter().rev().find_map(|a| match a {
        Action::Persist { seq, .. } => Some(*seq),
        _ => None,
    });
    if let Some(seq) = seq {
        out.extend(step(r, Input::Durable { seq }));
    }
    out
}

/// A complete promise of `ballot` (one page) reporting `entries`.
fn promise(ballot: Ballot, entries: Vec<LogEntry>) -> Body {
    Body::Promise {
        ballot,
        commit: Slot::ZERO,
        entries,
        unknown: Vec::new(),
        after: Slot::ZERO,
        more_after: None,
        dropped: false,
    }
}

/// Elects replica 1 with replica 2's promise, which reports `entries`; returns its ballot and
/// every action of the election.
fn elect(r: &mut Replica, entries: Vec<LogEntry>) -> (Ballot, Vec<Action>) {
    for _ in 0..2000 {
        let out = step(r, Input::Tick);
        if let Some(ballot) = sent(&out).iter().find_map(|m| match m {
            Body::PreVote { ballot, .. } => Some(*ballot),
            _ => None,
        }) {
            let out = step(r, from(2, Body::PreVoteReply { ballot, granted: true }));
            let mut all = sync(r, out);
            let ballot = r.status().promised;
            let out = step(r, from(2, promise(ballot, entries)));
            all.extend(sync(r, out));
            assert_eq!(r.status().role, Role::Primary);
            return (ballot, all);
        }
    }
    panic!("never stood for election");
}

/// Proposes one exclusive request (payload `n`) and makes it durable.
fn propose(r: &mut Replica, n: u64) -> Vec<Action> {
    let id = RequestId { proposer: ReplicaId(1), incarnation: 0, seq: n };
    let input = Input::Propose { id, payload: Bytes::from(vec![n as u8]), exclusive: true };
    let out = step(r, input);
    sync(r, out)
}

/// The slots `out` sends in accepts at `ballot`, with their values.
fn accepts(out: &[Action], at: Ballot) -> Vec<(Slot, Value)> {
    sent(out)
        .into_iter()
        .filter_map(|m| match m {
            Body::Accept { ballot, entries, .. } if ballot == at => Some(entries),
            _ => None,
        })
        .flatten()
        .map(|e| (e.slot, e.value))
        .collect()
}

/// Slot 1 holds a configuration {1, 2, 4} and slot 2 a batch, both accepted by replica 2 at
/// an old ballot (a primary proposes nothing after a configuration until it executes, so
/// only phase 1 re-proposes such a slot). The new primary re-proposes both; replica 4 votes
/// for slot 2, so {1, 4} is a quorum of {1, 2, 4}, but slot 1 is not chosen: a higher ballot
/// may still choose another value there, leaving {1, 2, 3} to govern slot 2, of which
/// {1, 4} is no quorum. When catch-up brings such a value for slot 1, slot 2 must not
/// execute.
#[test]
fn a_slot_after_an_unchosen_configuration_is_not_counted_under_its_membership() {
    let mut r = Replica::new(Config::new(1, [1, 2, 3]), Recovered::default());
    let config = Value::Config(Membership::new([1, 2, 4]));
    let old = vec![
        LogEntry { slot: Slot(1), ballot: b(0, 3), value: config.clone() },
        LogEntry { slot: Slot(2), ballot: b(0, 3), value: batch(1) },
    ];
    let (ballot, out) = elect(&mut r, old);
    let proposed = accepts(&out, ballot);
    assert!(proposed.contains(&(Slot(1), config)), "{out:?}");
    assert!(proposed.contains(&(Slot(2), batch(1))), "{out:?}");
    let out = step(&mut r, from(4, Body::Accepted { ballot, slots: vec![Slot(2)] }));
    assert!(executed(&out).is_empty(), "{out:?}");
    assert_eq!(r.status().commit, Slot::ZERO);
    // A higher ballot chose a batch at slot 1: {1, 2, 3} governs slot 2.
    let chosen = LogEntry { slot: Slot(1), ballot: b(9, 3), value: batch(7) };
    let reply = Body::CatchupReply { commit: Slot(1), entries: vec![chosen] };
    let out = step(&mut r, from(3, reply));
    let out = sync(&mut r, out);
    assert_eq!(executed(&out), vec![(Slot(1), batch(7))], "slot 2 counted under {{1, 2, 4}}");
    assert_eq!(r.status().commit, Slot(1));
}

/// The primary at ballot B has two slots in flight, `first` and `second`, when catch-up
/// brings every slot through `first` chosen at a higher ballot, `first` holding a
/// configuration {1, 2, 4} that B never proposed. That ballot's phase 1 covered {1, 2, 3}
/// only, and it may choose another value in `second` with {2, 4}; so a vote from 4 at B must
/// not make B's `second` chosen under {1, 2, 4}. The primary steps down.
#[test]
fn a_primary_that_learns_a_value_chosen_at_a_higher_ballot_steps_down() {
    let mut r = Replica::new(Config::new(1, [1, 2, 3]), Recovered::default());
    let (ballot, _) = elect(&mut r, Vec::new());
    let out = propose(&mut r, 1);
    let first = accepts(&out, ballot)[0].0;
    let out = propose(&mut r, 2);
    let second = accepts(&out, ballot)[0].0;
    assert_eq!(second, first.next(), "{out:?}");
    assert_eq!(r.status().commit, Slot::ZERO);
    // A higher ballot chose every slot through `first`, a configuration {1, 2, 4} there.
    let config = Value::Config(Membership::new([1, 2, 4]));
    let entries: Vec<LogEntry> = (1..=first.0)
        .map(|s| LogEntry {
            slot: Slot(s),
            ballot: b(9, 3),
            value: if s == first.0 { config.clone() } else { batch(s) },
        })
        .collect();
    let reply = Body::CatchupReply { commit: first, entries };
    let out = step(&mut r, from(3, reply));
    let out = sync(&mut r, out);
    assert_eq!(executed(&out).last(), Some(&(first, config)));
    assert_eq!(r.status().membership, Membership::new([1, 2, 4]));
    assert_ne!(r.status().role, Role::Primary, "kept primacy under a higher ballot's choice");
    let out = step(&mut r, from(4, Body::Accepted { ballot, slots: vec![second] }));
    let out = sync(&mut r, out);
    assert!(executed(&out).is_empty(), "{second:?} counted with a vote from 4: {out:?}");
    assert_eq!(r.status().commit, first);
}

/// Replica 1 (of {1, 2, 3}) stands for election; replica 2's promise reports a
/// configuration {2, 3, 4} in slot 1, which replica 1 never saw (it was down when it was
/// proposed). Phase 1 now needs a quorum of {2, 3, 4} too, and replica 3 cannot answer (it
/// is rebuilding after a disk loss): only 4's promise completes phase 1, so the candidate
/// must ask 4. Seed 70015177 of `--reconfig`: the candidate asked only the voters of its own
/// membership and of the configurations in its own log, so 4 never received a prepare and
/// the cluster stayed without a primary for good.
#[test]
fn phase_1_asks_the_voters_of_a_configuration_it_learns_from_a_promise() {
    let mut r = Replica::new(Config::new(1, [1, 2, 3]), Recovered::default());
    let config = Value::Config(Membership::new([2, 3, 4]));
    let reported = vec![LogEntry { slot: Slot(1), ballot: b(0, 3), value: config }];
    let mut ballot = None;
    for _ in 0..2000 {
        let out = step(&mut r, Input::Tick);
        ballot = sent(&out).iter().find_map(|m| match m {
            Body::PreVote { ballot, .. } => Some(*ballot),
            _ => None,
        });
        if ballot.is_some() {
            break;
        }
    }
    let ballot = ballot.expect("never stood for election");
    let out = step(&mut r, from(2, Body::PreVoteReply { ballot, granted: true }));
    sync(&mut r, out);
    let ballot = r.status().promised;
    let mut out = step(&mut r, from(2, promise(ballot, reported.clone())));
    assert_ne!(r.status().role, Role::Primary, "phase 1 without a quorum of {{2, 3, 4}}");
    for _ in 0..20 {
        out.extend(step(&mut r, Input::Tick));
    }
    let asked_4 = lone::sent_to(&out)
        .into_iter()
        .any(|(to, m)| to == 4 && matches!(m, Body::Prepare { ballot: p, .. } if p == ballot));
    assert!(asked_4, "replica 4, a voter of the reported configuration, got no prepare: {out:?}");
    step(&mut r, from(4, promise(ballot, Vec::new())));
    assert_eq!(r.status().role, Role::Primary);
}

/// Replica 1 becomes primary and re-proposes, in slot 1, a configuration that leaves the
/// membership as it is ({1, 2, 3}); a primary proposes nothing after a configuration slot
/// until it executes. A peer's checkpoint at slot 1 arrives first and is installed: slot 1
/// is then executed, and the pipeline must resume. Seed 72003529 of the default swarm: the
/// primary installed such a checkpoint and refused every later proposal as overloaded.
#[test]
fn a_checkpoint_that_covers_the_primarys_configuration_slot_resumes_its_pipeline() {
    let mut r = Replica::new(Config::new(1, [1, 2, 3]), Recovered::default());
    let config = Value::Config(Membership::new([1, 2, 3]));
    let old = vec![LogEntry { slot: Slot(1), ballot: b(0, 3), value: config.clone() }];
    let (ballot, out) = elect(&mut r, old);
    assert!(accepts(&out, ballot).contains(&(Slot(1), config)), "{out:?}");
    let installed =
        Input::CheckpointInstalled { slot: Slot(1), membership: Some(Membership::new([1, 2, 3])) };
    let out = step(&mut r, installed);
    sync(&mut r, out);
    assert_eq!(r.status().executed, Slot(1));
    assert_eq!(r.status().role, Role::Primary);
    let out = propose(&mut r, 5);
    let proposed = accepts(&out, ballot);
    assert!(proposed.contains(&(Slot(2), batch_of(5))), "the pipeline stayed shut: {out:?}");
}

/// The value `propose(r, n)` proposes.
fn batch_of(n: u64) -> Value {
    let id = RequestId { proposer: ReplicaId(1), incarnation: 0, seq: n };
    Value::Batch(vec![rsl_core::Request { id, payload: Bytes::from(vec![n as u8]) }].into())
}

/// Replica 1, elected by the promises of {1, 2}, grows {1, 2, 3} to `target` as the
/// simulator's random changes do (`Input::ChangeMembership`): a configuration stages the new
/// voters as learners; once they acknowledged it, the next slot's makes them voters. Replica
/// 2 votes for every slot, so both are chosen under {1, 2, 3} and execute. Returns the
/// ballot, the slot of the second configuration, and every action from its proposal on.
fn grow_behind_promises_of_1_and_2(
    r: &mut Replica,
    target: &Membership,
) -> (Ballot, Slot, Vec<Action>) {
    let (ballot, out) = elect(r, Vec::new());
    // Phase 1's slots execute first: a configuration waits for every slot before it.
    let slots: Vec<Slot> = accepts(&out, ballot).into_iter().map(|(s, _)| s).collect();
    step(r, from(2, Body::Accepted { ballot, slots }));
    let out = step(r, Input::ChangeMembership(target.clone()));
    let out = sync(r, out);
    let three = vec![ReplicaId(1), ReplicaId(2), ReplicaId(3)];
    let staged = match accepts(&out, ballot).first() {
        Some((slot, Value::Config(m))) if m.voters == three => *slot,
        _ => panic!("no staging configuration: {out:?}"),
    };
    let slots = (1..=staged.0).map(Slot).collect();
    step(r, from(2, Body::Accepted { ballot, slots }));
    assert_eq!(r.status().executed, staged);
    for &new in target.voters.iter().filter(|v| !three.contains(v)) {
        step(r, from(new.0, Body::HeartbeatAck { ballot, round: 0, commit: staged }));
    }
    let out = step(r, Input::Tick);
    let mut all = sync(r, out);
    let promoted = staged.next();
    assert!(
        matches!(accepts(&all, ballot).first(), Some((s, Value::Config(m))) if *s == promoted && m.voters == target.voters),
        "{all:?}"
    );
    let out = step(r, from(2, Body::Accepted { ballot, slots: vec![promoted] }));
    all.extend(sync(r, out));
    assert_eq!(r.status().executed, promoted);
    assert_eq!(r.status().membership.voters, target.voters);
    (ballot, promoted, all)
}

/// Phase 1 at ballot B heard {1, 2} of {1, 2, 3}; the primary then executes a configuration
/// of five voters. {3, 4, 5} is a quorum of it that B's phase 1 never asked: it may have
/// accepted, at a lower ballot, a value in the next slot that B would overwrite (two values chosen
/// there). Promises cover a membership of `n` voters only when more than `n - quorum` of
/// them promised (`meets_every_quorum`): 2 of 5 do not, so the primary must run a fresh
/// phase 1, at a higher ballot, among the new voters, and propose nothing at B meanwhile.
#[test]
fn a_primary_whose_promises_miss_a_quorum_of_the_new_voters_runs_phase_1_again() {
    let mut r = Replica::new(Config::new(1, [1, 2, 3]), Recovered::default());
    let five = Membership::new([1, 2, 3, 4, 5]);
    let (old, config, out) = grow_behind_promises_of_1_and_2(&mut r, &five);
    assert_ne!(r.status().role, Role::Primary, "kept ballot {old:?} under {five:?}");
    let ballot = r.status().promised;
    assert!(ballot > old, "{out:?}");
    let mut asked: Vec<u32> = lone::sent_to(&out)
        .into_iter()
        .filter(|(_, m)| matches!(m, Body::Prepare { ballot: p, .. } if *p == ballot))
        .map(|(to, _)| to)
        .collect();
    asked.sort();
    assert_eq!(asked, vec![2, 3, 4, 5], "{out:?}");
    let out = propose(&mut r, 9);
    assert_eq!(accepts(&out, old), Vec::new(), "proposed at the old ballot");
    // {1, 2} is no quorum of five: phase 1 completes only with a third promise.
    let done = Body::Promise {
        ballot,
        commit: config,
        entries: Vec::new(),
        unknown: Vec::new(),
        after: config,
        more_after: None,
        dropped: false,
    };
    let out = step(&mut r, from(2, done.clone()));
    sync(&mut r, out);
    assert_ne!(r.status().role, Role::Primary, "phase 1 among five on two promises");
    let out = step(&mut r, from(4, done));
    sync(&mut r, out);
    assert_eq!(r.status().role, Role::Primary);
    let out = propose(&mut r, 10);
    let proposed = accepts(&out, ballot);
    assert!(proposed.iter().any(|(s, v)| *s > config && *v == batch_of(10)), "{out:?}");
}

/// The same primary, growing {1, 2, 3} to four voters instead: every quorum of four (three
/// voters) meets {1, 2}, so B's phase 1 saw every value any of them may have accepted, and
/// the primary keeps its ballot and goes on proposing (docs/protocol.md,
/// "Reconfiguration", rule 1).
#[test]
fn a_primary_whose_promises_meet_every_quorum_of_the_new_voters_keeps_its_ballot() {
    let mut r = Replica::new(Config::new(1, [1, 2, 3]), Recovered::default());
    let four = Membership::new([1, 2, 3, 4]);
    let (ballot, config, out) = grow_behind_promises_of_1_and_2(&mut r, &four);
    assert_eq!(r.status().role, Role::Primary, "{out:?}");
    assert_eq!(r.status().promised, ballot);
    let prepared = sent(&out).into_iter().any(|m| matches!(m, Body::Prepare { .. }));
    assert!(!prepared, "a fresh phase 1 for a membership already covered: {out:?}");
    let out = propose(&mut r, 9);
    assert!(accepts(&out, ballot).contains(&(config.next(), batch_of(9))), "{out:?}");
}

/// Phase 1 re-proposes, from replica 2's report, a configuration of five voters in slot 1 and
/// a batch in slot 2; the promises of {1, 2, 4} cover both memberships. {1, 2, 3} governs
/// slot 1 and the five govern slot 2 (the newest configuration before it, not yet executed):
/// 2's vote for both chooses slot 1 ({1, 2} is a quorum of three) but not slot 2 ({1, 2} is
/// no quorum of five, whose {3, 4, 5} may have chosen another value there at a lower
/// ballot, unseen by this phase 1 had 4 not promised), which waits for a third vote.
#[test]
fn a_slot_after_a_configuration_is_counted_under_the_membership_it_installs() {
    let mut r = Replica::new(Config::new(1, [1, 2, 3]), Recovered::default());
    let five = Value::Config(Membership::new([1, 2, 3, 4, 5]));
    let old = vec![
        LogEntry { slot: Slot(1), ballot: b(0, 3), value: five.clone() },
        LogEntry { slot: Slot(2), ballot: b(0, 3), value: batch(1) },
    ];
    let prevote = (0..2000)
        .find_map(|_| {
            sent(&step(&mut r, Input::Tick)).into_iter().find_map(|m| match m {
                Body::PreVote { ballot, .. } => Some(ballot),
                _ => None,
            })
        })
        .expect("never stood for election");
    let out = step(&mut r, from(2, Body::PreVoteReply { ballot: prevote, granted: true }));
    sync(&mut r, out);
    let ballot = r.status().promised;
    let out = step(&mut r, from(2, promise(ballot, old)));
    sync(&mut r, out);
    assert_eq!(r.status().role, Role::Candidate, "{{1, 2}} is no quorum of the five");
    let out = step(&mut r, from(4, promise(ballot, Vec::new())));
    let out = sync(&mut r, out);
    assert_eq!(r.status().role, Role::Primary);
    let proposed = accepts(&out, ballot);
    assert!(proposed.contains(&(Slot(1), five.clone())), "{out:?}");
    assert!(proposed.contains(&(Slot(2), batch(1))), "{out:?}");
    let votes = Body::Accepted { ballot, slots: vec![Slot(1), Slot(2)] };
    let out = step(&mut r, from(2, votes));
    let out = sync(&mut r, out);
    assert_eq!(executed(&out), vec![(Slot(1), five)], "slot 2 counted under {{1, 2, 3}}");
    assert_eq!(r.status().commit, Slot(1));
    assert_eq!((r.status().role, r.status().ballot), (Role::Primary, ballot));
    let out = step(&mut r, from(4, Body::Accepted { ballot, slots: vec![Slot(2)] }));
    let out = sync(&mut r, out);
    assert_eq!(executed(&out), vec![(Slot(2), batch(1))]);
}
