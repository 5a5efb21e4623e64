//! Membership operations (`Input::Reconfigure`) on a lone primary (id 1) whose peers are
//! played by hand, one rule each (docs/protocol.md, "Membership operations"): every
//! operation is answered once, refused at once with its reason or proposed in the next slot
//! (once every slot before it has executed)
//! and answered when that slot executes; the limits on voters and learners; a learner is
//! promoted only once caught up; a change that would leave the new voters without a quorum
//! that answered recently is refused. The unanswered `Input::ChangeMembership` too: one
//! change at a time, within the limits, its new voters promoted once they know they were
//! staged. (The simulator's stories in rsl-sim's
//! `tests/reconfig.rs` tell the same on a whole cluster; these run with `cargo test -p
//! rsl-core`, the mutation-testing command, docs/testing.md.)

#[path = "common/lone.rs"]
mod lone;

use bytes::Bytes;
use lone::{from, sent, step, writes};
use rsl_core::limits::{LEARNERS_MAX, VOTERS_MAX};
use rsl_core::message::Body;
use rsl_core::{
    Action, Ballot, Config, Input, MemberInfo, Membership, MembershipOp, ReconfigRefusal,
    Recovered, Replica, ReplicaId, RequestId, Role, Slot, Value,
};

type Outcome = Result<(Slot, Membership), ReconfigRefusal>;

fn id(n: u32) -> ReplicaId {
    ReplicaId(n)
}

fn info(n: u32) -> MemberInfo {
    MemberInfo { addr: format!("10.0.0.{n}:7000"), data: Vec::new().into() }
}

/// Makes every write so far durable; returns the actions of both steps.
fn sync(r: &mut Replica, mut out: Vec<Action>) -> Vec<Action> {
    if let Some((seq, _)) = writes(&out).last() {
        let seq = *seq;
        out.extend(step(r, Input::Durable { seq }));
    }
    out
}

/// Replica 1 elected primary of `m` (1 among its voters) with the promise of every other
/// voter, its first slot chosen; every other member then acknowledges its heartbeat.
fn primary(m: Membership) -> (Replica, Ballot) {
    let (mut r, ballot) = primary_without_acks(m.clone());
    acknowledge(&mut r, ballot, &m);
    (r, ballot)
}

/// `primary`, without the acknowledgements.
fn primary_without_acks(m: Membership) -> (Replica, Ballot) {
    let mut config = Config::new(1, [1]);
    config.membership = m;
    primary_of(config)
}

/// `primary_without_acks` with `config` (its membership `config.membership`).
fn primary_of(config: Config) -> (Replica, Ballot) {
    let m = config.membership.clone();
    let mut r = Replica::new(config, Recovered::default());
    let others: Vec<u32> = m.voters.iter().map(|v| v.0).filter(|v| *v != 1).collect();
    let mut out = Vec::new();
    for _ in 0..2000 {
        let tick = step(&mut r, Input::Tick);
        out = sync(&mut r, tick);
        if r.status().role == Role::Candidate {
            break;
        }
    }
    let ballot = r.status().promised;
    if sent(&out).iter().any(|m| matches!(m, Body::PreVote { .. })) {
        for v in &others {
            let granted = Body::PreVoteReply { ballot: prevote_ballot(&out), granted: true };
            let out = step(&mut r, from(*v, granted));
            sync(&mut r, out);
        }
    }
    let ballot = r.status().promised.max(ballot);
    for v in &others {
        let promise = Body::Promise {
            ballot,
            commit: Slot::ZERO,
            entries: Vec::new(),
            unknown: Vec::new(),
            after: Slot::ZERO,
            more_after: None,
            dropped: false,
        };
        let out = step(&mut r, from(*v, promise));
        sync(&mut r, out);
    }
    assert_eq!(r.status().role, Role::Primary);
    commit_all(&mut r, ballot, &m, Vec::new());
    (r, ballot)
}

fn prevote_ballot(out: &[Action]) -> Ballot {
    sent(out)
        .iter()
        .find_map(|m| match m {
            Body::PreVote { ballot, .. } => Some(*ballot),
            _ => None,
        })
        .expect("a pre-vote")
}

/// Every member of `m` but 1 acknowledges the primary's heartbeat at its commit point.
fn acknowledge(r: &mut Replica, ballot: Ballot, m: &Membership) {
    let commit = r.status().commit;
    for p in m.replicas().filter(|p| *p != id(1)) {
        step(r, from(p.0, Body::HeartbeatAck { ballot, round: 1, commit }));
    }
}

/// Every voter of `m` votes for every slot in flight; returns the actions.
fn commit_all(r: &mut Replica, ballot: Ballot, m: &Membership, out: Vec<Action>) -> Vec<Action> {
    let mut out = sync(r, out);
    let next = r.status().commit.next();
    let slots: Vec<Slot> = (next.0..next.0 + 8).map(Slot).collect();
    for v in m.voters.iter().filter(|v| **v != id(1)) {
        out.extend(step(r, from(v.0, Body::Accepted { ballot, slots: slots.clone() })));
    }
    out
}

fn reconfigured(out: &[Action]) -> Vec<(u64, Outcome)> {
    out.iter()
        .filter_map(|a| match a {
            Action::Reconfigured { id, outcome } => Some((*id, outcome.clone())),
            _ => None,
        })
        .collect()
}

/// The configurations `out` proposes (sends in accepts), once each.
fn proposed(out: &[Action]) -> Vec<(Slot, Membership)> {
    let mut all: Vec<(Slot, Membership)> = sent(out)
        .into_iter()
        .filter_map(|m| match m {
            Body::Accept { entries, .. } => Some(entries),
            _ => None,
        })
        .flatten()
        .filter_map(|e| match e.value {
            Value::Config(m) => Some((e.slot, m)),
            _ => None,
        })
        .collect();
    all.dedup();
    all
}

/// Proposes one request (payload `n`) and has every voter of `m` vote for it.
fn propose(r: &mut Replica, ballot: Ballot, m: &Membership, n: u64) {
    let id = RequestId { proposer: ReplicaId(1), incarnation: 0, seq: n };
    let out = step(r, Input::Propose { id, payload: Bytes::from(vec![n as u8]), exclusive: true });
    commit_all(r, ballot, m, out);
}

fn op(r: &mut Replica, n: u64, op: MembershipOp) -> Vec<Action> {
    step(r, Input::Reconfigure { id: n, op })
}

fn with(
    voters: impl IntoIterator<Item = u32>,
    learners: impl IntoIterator<Item = u32>,
) -> Membership {
    let mut m = Membership::new(voters);
    m.learners = learners.into_iter().map(ReplicaId).collect();
    m
}

/// Ticks `n` times; the peers in `ackers` acknowledge every heartbeat (the others are silent).
fn tick_with(r: &mut Replica, ballot: Ballot, ackers: &[u32], n: u64) {
    for _ in 0..n {
        let tick = step(r, Input::Tick);
        let out = sync(r, tick);
        for (to, body) in lone::sent_to(&out) {
            if let Body::Heartbeat { round, .. } = body {
                if ackers.contains(&to) {
                    let commit = r.status().commit;
                    step(r, from(to, Body::HeartbeatAck { ballot, round, commit }));
                }
            }
        }
    }
    assert_eq!(r.status().role, Role::Primary, "the primary stepped down");
}

#[test]
fn an_operation_is_refused_at_once_or_proposed_and_answered_when_its_slot_executes() {
    let m = Membership::new([1, 2, 3]);
    let (mut r, ballot) = primary(m.clone());
    let out = op(&mut r, 1, MembershipOp::Remove { id: id(9) });
    assert_eq!(reconfigured(&out), vec![(1, Err(ReconfigRefusal::UnknownMember { id: id(9) }))]);
    assert!(proposed(&out).is_empty() && writes(&out).is_empty(), "{out:?}");
    // Proposed in the next slot, answered only once that slot executes.
    let out = op(&mut r, 2, MembershipOp::AddLearner { id: id(4), info: info(4) });
    let mut expected = with([1, 2, 3], [4]);
    expected.info.insert(id(4), info(4));
    let slot = r.status().commit.next();
    assert_eq!(proposed(&out), vec![(slot, expected.clone())]);
    assert!(reconfigured(&out).is_empty(), "answered before its slot executed: {out:?}");
    assert_eq!(r.changes_waiting().collect::<Vec<_>>(), vec![(slot, 2)], "not held waiting");
    // One change at a time.
    let busy = op(&mut r, 3, MembershipOp::Remove { id: id(2) });
    assert_eq!(reconfigured(&busy), vec![(3, Err(ReconfigRefusal::InFlight))]);
    assert!(proposed(&busy).is_empty(), "{busy:?}");
    let out = commit_all(&mut r, ballot, &m, out);
    assert_eq!(reconfigured(&out), vec![(2, Ok((slot, expected.clone())))]);
    assert_eq!(r.changes_waiting().count(), 0, "still held once answered");
    assert_eq!(r.status().membership, expected);
    // A removal keeps the other voters and the learners.
    let out = op(&mut r, 5, MembershipOp::Remove { id: id(2) });
    let mut removed = with([1, 3], [4]);
    removed.info.insert(id(4), info(4));
    assert_eq!(proposed(&out), vec![(slot.next(), removed)]);
    // A follower refuses, naming the primary it follows.
    let mut f = Replica::new(Config::new(1, [1, 2, 3]), Recovered::default());
    let b2 = Ballot::new(1, id(2));
    step(&mut f, from(2, Body::Heartbeat { ballot: b2, commit: Slot::ZERO, round: 1 }));
    let out = op(&mut f, 4, MembershipOp::Remove { id: id(3) });
    let not_primary = ReconfigRefusal::NotPrimary { primary: Some(id(2)) };
    assert_eq!(reconfigured(&out), vec![(4, Err(not_primary))]);
}

/// At most `VOTERS_MAX` voters and `LEARNERS_MAX` learners: the operation that reaches a
/// limit is made, the one past it refused.
#[test]
fn the_limits_on_voters_and_learners_are_reached_not_passed() {
    let voters: Vec<u32> = (1..=VOTERS_MAX as u32).collect();
    let learners: Vec<u32> = (100..100 + LEARNERS_MAX as u32 - 1).collect();
    let m = with(voters.clone(), learners.clone());
    let (mut r, ballot) = primary(m.clone());
    let out = op(&mut r, 1, MembershipOp::AddLearner { id: id(300), info: info(7) });
    assert!(reconfigured(&out).is_empty(), "{out:?}");
    let out = commit_all(&mut r, ballot, &m, out);
    let made = reconfigured(&out);
    assert!(matches!(made.as_slice(), [(1, Ok(_))]), "{made:?}");
    let full = r.status().membership;
    assert_eq!((full.voters.len(), full.learners.len()), (VOTERS_MAX, LEARNERS_MAX));
    acknowledge(&mut r, ballot, &full);
    let out = op(&mut r, 2, MembershipOp::AddLearner { id: id(301), info: info(8) });
    let refused = reconfigured(&out);
    assert!(
        matches!(refused.as_slice(), [(2, Err(ReconfigRefusal::Invalid { .. }))]),
        "{refused:?}"
    );
    let out = op(&mut r, 3, MembershipOp::Promote { id: id(300) });
    let refused = reconfigured(&out);
    assert!(
        matches!(refused.as_slice(), [(3, Err(ReconfigRefusal::Invalid { .. }))]),
        "{refused:?}"
    );
    assert!(proposed(&out).is_empty(), "{out:?}");
}

/// A learner is promoted only once caught up: it acknowledged recently, within
/// `catchup_entries_max` of the commit point, and at or past the configuration executed last.
#[test]
fn a_learner_is_promoted_only_once_it_acknowledged_the_configuration_executed_last() {
    let m = with([1, 2, 3], [4]);
    let (mut r, ballot) = primary(m.clone());
    // Learner 4 never acknowledged: not caught up, and its lag is the whole commit point.
    let (mut quiet, qb) = primary_without_acks(m.clone());
    acknowledge(&mut quiet, qb, &Membership::new([1, 2, 3]));
    propose(&mut quiet, qb, &m, 1);
    propose(&mut quiet, qb, &m, 2);
    let commit = quiet.status().commit.0;
    assert!(commit > 1, "the story wants a lag above 1");
    let out = op(&mut quiet, 1, MembershipOp::Promote { id: id(4) });
    let lag = ReconfigRefusal::NotCaughtUp { id: id(4), lag: commit };
    assert_eq!(reconfigured(&out), vec![(1, Err(lag))]);
    // Learner 5 added at slot s acknowledges only the slot below: it does not know it is a
    // member yet.
    let out = op(&mut r, 2, MembershipOp::AddLearner { id: id(5), info: info(5) });
    let out = commit_all(&mut r, ballot, &m, out);
    let s = match reconfigured(&out).as_slice() {
        [(2, Ok((s, _)))] => *s,
        other => panic!("{other:?}"),
    };
    let below = Slot(s.0 - 1);
    step(&mut r, from(5, Body::HeartbeatAck { ballot, round: 1, commit: below }));
    let out = op(&mut r, 3, MembershipOp::Promote { id: id(5) });
    let lag = ReconfigRefusal::NotCaughtUp { id: id(5), lag: 1 };
    assert_eq!(reconfigured(&out), vec![(3, Err(lag))]);
    // Once it acknowledges the slot, it is promoted.
    step(&mut r, from(5, Body::HeartbeatAck { ballot, round: 1, commit: s }));
    let out = op(&mut r, 4, MembershipOp::Promote { id: id(5) });
    assert!(reconfigured(&out).is_empty(), "{out:?}");
    let mut target = with([1, 2, 3, 5], [4]);
    target.info.insert(id(5), info(5));
    assert_eq!(proposed(&out), vec![(s.next(), target)]);
}

/// A change is refused when fewer than a quorum of its voters answered the primary within
/// an election timeout (the primary itself counts); one with such a quorum is proposed.
#[test]
fn a_change_needs_a_quorum_of_its_voters_that_answered_recently() {
    let window = u64::from(Config::new(1, [1]).election_ticks_max);
    // 3 falls silent after its acknowledgement; 2 keeps acknowledging. An election timeout
    // later, 3 still counts; a tick after that, it does not.
    let silent_for = |ticks| {
        let (mut r, ballot) = primary(Membership::new([1, 2, 3]));
        tick_with(&mut r, ballot, &[2], ticks);
        r
    };
    let mut early = silent_for(window);
    let out = op(&mut early, 1, MembershipOp::Remove { id: id(2) });
    assert!(reconfigured(&out).is_empty() && proposed(&out).len() == 1, "{out:?}");
    let mut r = silent_for(window + 1);
    let out = op(&mut r, 2, MembershipOp::Remove { id: id(2) });
    let no_quorum = ReconfigRefusal::NoQuorum { live: 1, quorum: 2 };
    assert_eq!(reconfigured(&out), vec![(2, Err(no_quorum))]);
    let out = op(&mut r, 3, MembershipOp::Remove { id: id(3) });
    assert!(reconfigured(&out).is_empty(), "{out:?}");
    assert_eq!(proposed(&out).first().map(|p| p.1.clone()), Some(Membership::new([1, 2])));
}

/// A member's address and data are bounded (`MEMBER_ADDR_BYTES_MAX`,
/// `MEMBER_DATA_BYTES_MAX`): each at its limit is accepted, one byte more refused.
#[test]
fn member_info_at_its_limits_is_accepted_and_past_them_refused() {
    use rsl_core::limits::{MEMBER_ADDR_BYTES_MAX, MEMBER_DATA_BYTES_MAX};
    let (mut r, _) = primary(Membership::new([1, 2, 3]));
    let sized = |addr: usize, data: usize| MemberInfo {
        addr: "a".repeat(addr),
        data: Bytes::from(vec![7u8; data]),
    };
    let too_long = [
        sized(MEMBER_ADDR_BYTES_MAX + 1, 0),
        sized(0, MEMBER_DATA_BYTES_MAX + 1),
        sized(MEMBER_ADDR_BYTES_MAX + 1, MEMBER_DATA_BYTES_MAX + 1),
    ];
    for (n, info) in too_long.into_iter().enumerate() {
        let out = op(&mut r, n as u64, MembershipOp::AddLearner { id: id(4), info });
        let refused = reconfigured(&out);
        assert!(
            matches!(refused.as_slice(), [(_, Err(ReconfigRefusal::Invalid { .. }))]),
            "{refused:?}"
        );
    }
    let info = sized(MEMBER_ADDR_BYTES_MAX, MEMBER_DATA_BYTES_MAX);
    let out = op(&mut r, 9, MembershipOp::AddLearner { id: id(4), info: info.clone() });
    let mut expected = with([1, 2, 3], [4]);
    expected.info.insert(id(4), info);
    assert!(reconfigured(&out).is_empty(), "{out:?}");
    assert_eq!(proposed(&out).into_iter().map(|p| p.1).collect::<Vec<_>>(), vec![expected]);
}

/// `Replace` swaps a voter for a learner that caught up: the learner becomes a voter, the
/// old voter and its info leave.
#[test]
fn a_replace_makes_the_learner_a_voter_and_drops_the_old_voter() {
    let mut m = with([1, 2, 3], [4]);
    m.info.insert(id(3), info(3));
    m.info.insert(id(4), info(4));
    let (mut r, _) = primary(m);
    let out = op(&mut r, 1, MembershipOp::Replace { old: id(4), new: id(3) });
    assert_eq!(reconfigured(&out), vec![(1, Err(ReconfigRefusal::UnknownMember { id: id(4) }))]);
    let out = op(&mut r, 2, MembershipOp::Replace { old: id(3), new: id(4) });
    assert!(reconfigured(&out).is_empty(), "{out:?}");
    let mut expected = Membership::new([1, 2, 4]);
    expected.info.insert(id(4), info(4));
    assert_eq!(proposed(&out).into_iter().map(|p| p.1).collect::<Vec<_>>(), vec![expected]);
}

/// A primary of {1, 2, 3} that proposed operation 1 (adding learner 4) in a slot, its write
/// durable, then heard a heartbeat of replica 2 at a higher ballot: the replica, the slot and
/// that ballot.
fn proposed_then_deposed() -> (Replica, Slot, Ballot) {
    let (mut r, _) = primary(Membership::new([1, 2, 3]));
    let out = op(&mut r, 1, MembershipOp::AddLearner { id: id(4), info: info(4) });
    let slot = match proposed(&out).as_slice() {
        [(slot, _)] => *slot,
        other => panic!("{other:?}"),
    };
    sync(&mut r, out);
    let higher = Ballot::new(9, id(2));
    step(&mut r, from(2, Body::Heartbeat { ballot: higher, commit: slot, round: 1 }));
    (r, slot, higher)
}

/// An operation whose slot executes another value (here another configuration, which a
/// higher ballot chose) is answered superseded, naming the primary this replica now follows.
#[test]
fn an_operation_whose_slot_executes_another_value_is_superseded() {
    let (mut r, slot, higher) = proposed_then_deposed();
    assert_eq!(r.status().primary, Some(id(2)));
    // Another configuration, not just another value.
    let other = Value::Config(with([1, 2, 3], [5]));
    let chosen = rsl_core::LogEntry { slot, ballot: higher, value: other };
    let out = step(&mut r, from(2, Body::CatchupReply { commit: slot, entries: vec![chosen] }));
    let superseded = ReconfigRefusal::Superseded { primary: Some(id(2)) };
    assert_eq!(reconfigured(&out), vec![(1, Err(superseded))]);
}

/// An operation whose slot a checkpoint skips (installed from a peer) may or may not have
/// been made: it is answered so.
#[test]
fn an_operation_whose_slot_a_checkpoint_skips_is_answered_outcome_unknown() {
    let (mut r, slot, _) = proposed_then_deposed();
    let out = step(&mut r, Input::CheckpointInstalled { slot, membership: None });
    assert_eq!(reconfigured(&out), vec![(1, Err(ReconfigRefusal::OutcomeUnknown))]);
}

/// A configuration's value may be as large as any value a slot may hold
/// (`Config::value_bytes_max`), and no larger: with requests of one byte that is the largest
/// configuration without member info, so a learner whose info makes the value one byte
/// larger is refused, one whose info fills it exactly is accepted.
#[test]
fn a_configuration_value_may_fill_the_value_limit_exactly() {
    use rsl_core::message::value_len;
    let mut config = Config::new(1, [1]);
    config.membership = Membership::new([1, 2, 3]);
    (config.request_bytes_max, config.batch_bytes_max, config.batch_requests_max) = (1, 1, 1);
    let max = config.value_bytes_max();
    let (mut r, ballot) = primary_of(config.clone());
    acknowledge(&mut r, ballot, &config.membership);
    let info = |n: usize| MemberInfo { addr: String::new(), data: Bytes::from(vec![1u8; n]) };
    let len = |n: usize| {
        let mut m = with([1, 2, 3], [4]);
        m.info.insert(id(4), info(n));
        value_len(&Value::Config(m))
    };
    let exact = (0..=1024).find(|n| len(*n) == max).expect("a size that fills the limit");
    let over = (exact + 1..=1024).find(|n| len(*n) > max).expect("a size past the limit");
    let out = op(&mut r, 1, MembershipOp::AddLearner { id: id(4), info: info(over) });
    let refused = reconfigured(&out);
    assert!(
        matches!(refused.as_slice(), [(1, Err(ReconfigRefusal::Invalid { reason }))] if reason.contains("value_bytes_max")),
        "{refused:?}"
    );
    let out = op(&mut r, 2, MembershipOp::AddLearner { id: id(4), info: info(exact) });
    assert!(reconfigured(&out).is_empty() && proposed(&out).len() == 1, "{out:?}");
}

/// Ticks until the primary sends a heartbeat round (2 and 3 acknowledge it); returns the
/// round and the replicas it went to.
fn next_round(r: &mut Replica, ballot: Ballot) -> (u64, Vec<u32>) {
    for _ in 0..100 {
        let tick = step(r, Input::Tick);
        let out = sync(r, tick);
        let mut round = None;
        let mut to = Vec::new();
        for (peer, body) in lone::sent_to(&out) {
            if let Body::Heartbeat { round: n, .. } = body {
                round = Some(n);
                to.push(peer);
                if peer == 2 || peer == 3 {
                    let commit = r.status().commit;
                    step(r, from(peer, Body::HeartbeatAck { ballot, round: n, commit }));
                }
            }
        }
        if let Some(round) = round {
            to.sort();
            return (round, to);
        }
    }
    panic!("no heartbeat round in 100 ticks");
}

/// A removed replica keeps hearing the primary's heartbeats (otherwise it would time out and
/// stand for election, never learning it was removed) until it acknowledges a commit point at
/// or past its removal's slot; then no more.
#[test]
fn a_removed_replica_hears_heartbeats_until_it_acknowledges_its_removal() {
    let m = with([1, 2, 3], [4]);
    let (mut r, ballot) = primary(m.clone());
    let out = op(&mut r, 1, MembershipOp::Remove { id: id(4) });
    let slot = proposed(&out)[0].0;
    commit_all(&mut r, ballot, &m, out);
    assert_eq!(r.status().membership.replicas().count(), 3);
    assert!(r.status().executed >= slot);
    let (round, to) = next_round(&mut r, ballot);
    assert_eq!(to, vec![2, 3, 4]);
    let below = Slot(slot.0 - 1);
    step(&mut r, from(4, Body::HeartbeatAck { ballot, round, commit: below }));
    let (round, to) = next_round(&mut r, ballot);
    assert_eq!(to, vec![2, 3, 4], "dropped after acknowledging {below:?}, below its removal");
    step(&mut r, from(4, Body::HeartbeatAck { ballot, round, commit: slot }));
    let (_, to) = next_round(&mut r, ballot);
    assert_eq!(to, vec![2, 3], "still heard after acknowledging its removal at {slot:?}");
}

/// A configuration is proposed only once every slot before it has executed: it is computed
/// from the membership executed so far, which then governs its slot whatever a later primary
/// chooses in the slots before it (default seed 84907746: a change proposed behind four
/// undecided slots was chosen after another change a later primary put in one of them, and
/// made removed replicas the voters: no primary again). Requests proposed meanwhile wait
/// behind it; an operation still waiting when its primary steps down is answered.
#[test]
fn a_configuration_waits_for_the_slots_before_it_to_execute() {
    let three = Membership::new([1, 2, 3]);
    let (mut r, ballot) = primary(three.clone());
    let request = |r: &mut Replica, n: u64| {
        let id = RequestId { proposer: ReplicaId(1), incarnation: 0, seq: n };
        let out =
            step(r, Input::Propose { id, payload: Bytes::from(vec![n as u8]), exclusive: true });
        sync(r, out)
    };
    let before = r.status().commit;
    let out = request(&mut r, 5);
    assert!(sent(&out).iter().any(|m| matches!(m, Body::Accept { .. })), "{out:?}");
    let mut out = op(&mut r, 7, MembershipOp::AddLearner { id: id(4), info: info(4) });
    out.extend(request(&mut r, 6));
    assert_eq!(proposed(&out), Vec::new(), "proposed behind an undecided slot");
    assert_eq!(reconfigured(&out), Vec::new());
    assert!(!sent(&out).iter().any(|m| matches!(m, Body::Accept { .. })), "{out:?}");
    // The request's slot is chosen and executes: the configuration goes next, alone.
    let out = commit_all(&mut r, ballot, &three, Vec::new());
    let slot = Slot(before.0 + 2);
    let staged = with([1, 2, 3], [4]).with_info_from(&Membership {
        info: [(id(4), info(4))].into_iter().collect(),
        ..Membership::new([4])
    });
    assert_eq!(proposed(&out), vec![(slot, staged.clone())], "{out:?}");
    let accepts = sent(&out).into_iter().filter(|m| matches!(m, Body::Accept { .. })).count();
    assert_eq!(accepts, 2, "the configuration alone, to 2 and 3: {out:?}");
    // Once it executes, it is answered and the request waiting behind it follows.
    let out = commit_all(&mut r, ballot, &three, Vec::new());
    assert_eq!(reconfigured(&out), vec![(7, Ok((slot, staged)))]);
    let after = sent(&out).into_iter().any(|m| match m {
        Body::Accept { entries, .. } => entries.iter().any(|e| e.slot == slot.next()),
        _ => false,
    });
    assert!(after, "the request behind it was not proposed: {out:?}");

    // An operation waiting behind a slot when its primary hands primacy over is answered,
    // naming the target (nothing more is proposed at this ballot).
    let (mut t, tb) = primary(three.clone());
    let out = request(&mut t, 5);
    assert!(sent(&out).iter().any(|m| matches!(m, Body::Accept { .. })), "{out:?}");
    let out = op(&mut t, 10, MembershipOp::AddLearner { id: id(5), info: info(5) });
    assert_eq!(reconfigured(&out), Vec::new(), "{out:?}");
    let out = step(&mut t, Input::TransferPrimacy { to: Some(id(2)) });
    let refused = Err(ReconfigRefusal::NotPrimary { primary: Some(id(2)) });
    assert_eq!(reconfigured(&out), vec![(10, refused)], "{out:?}");
    let out = commit_all(&mut t, tb, &three, Vec::new());
    assert_eq!(proposed(&out), Vec::new(), "proposed while handing over: {out:?}");

    // An operation waiting behind a slot when its primary steps down is answered.
    let out = op(&mut r, 9, MembershipOp::AddLearner { id: id(5), info: info(5) });
    assert_eq!(reconfigured(&out), Vec::new(), "{out:?}");
    let higher = Ballot { round: ballot.round + 1, replica: 2 };
    let out = step(&mut r, from(2, Body::Nack { ballot, promised: higher }));
    let refused = Err(ReconfigRefusal::NotPrimary { primary: None });
    assert_eq!(reconfigured(&out), vec![(9, refused)], "{out:?}");
}

/// Asks the primary for `Input::ChangeMembership(m)` (the simulator's random changes, and
/// `rsl`'s); returns the actions, writes made durable.
fn change(r: &mut Replica, m: Membership) -> Vec<Action> {
    let out = step(r, Input::ChangeMembership(m));
    sync(r, out)
}

/// Proposes one exclusive request (payload `n`), left undecided; returns the actions.
fn undecided(r: &mut Replica, n: u64) -> Vec<Action> {
    let id = RequestId { proposer: ReplicaId(1), incarnation: 0, seq: n };
    let out = step(r, Input::Propose { id, payload: Bytes::from(vec![n as u8]), exclusive: true });
    let out = sync(r, out);
    assert!(sent(&out).iter().any(|m| matches!(m, Body::Accept { .. })), "{out:?}");
    out
}

/// A `ChangeMembership` is dropped (it has no answer) when it would make a second change at
/// once, another configuration in flight or waiting for the slots before it, or when it
/// names no voter, more than `VOTERS_MAX` or more than `LEARNERS_MAX` learners; at the
/// limits it is proposed.
#[test]
fn a_membership_change_is_dropped_while_another_is_pending_and_past_the_limits() {
    let three = Membership::new([1, 2, 3]);
    let nothing = |out: &[Action]| proposed(out).is_empty() && writes(out).is_empty();
    let learners = |n: usize| with([1, 2, 3], (0..n as u32).map(|i| 10 + i));
    for m in [
        Membership::new(Vec::<u32>::new()),
        Membership::new(1..=VOTERS_MAX as u32 + 1),
        learners(LEARNERS_MAX + 1),
    ] {
        let (mut r, _) = primary(three.clone());
        let out = change(&mut r, m.clone());
        assert!(nothing(&out), "{m:?} proposed: {out:?}");
    }
    let (mut r, _) = primary(three.clone());
    let out = change(&mut r, learners(LEARNERS_MAX));
    assert_eq!(proposed(&out).len(), 1, "{LEARNERS_MAX} learners dropped: {out:?}");
    let (mut r, _) = primary(three.clone());
    let out = change(&mut r, Membership::new(1..=VOTERS_MAX as u32));
    let staged = with([1, 2, 3], 4..=VOTERS_MAX as u32);
    assert_eq!(proposed(&out).iter().map(|p| &p.1).collect::<Vec<_>>(), vec![&staged]);

    // A configuration in flight: the next change is dropped, not proposed after it.
    let (mut r, ballot) = primary(three.clone());
    let out = change(&mut r, with([1, 2, 3], [4]));
    assert_eq!(
        proposed(&out).iter().map(|p| &p.1).collect::<Vec<_>>(),
        vec![&with([1, 2, 3], [4])]
    );
    let out = change(&mut r, Membership::new([1, 2]));
    assert!(nothing(&out), "proposed beside a configuration in flight: {out:?}");
    let out = commit_all(&mut r, ballot, &three, Vec::new());
    assert_eq!(r.status().membership, with([1, 2, 3], [4]));
    assert_eq!(proposed(&out), Vec::new(), "a dropped change proposed later");

    // A configuration waiting for an undecided slot: the same.
    let (mut r, ballot) = primary(three.clone());
    undecided(&mut r, 5);
    let out = change(&mut r, with([1, 2, 3], [4]));
    assert_eq!(proposed(&out), Vec::new(), "proposed behind an undecided slot");
    let out = change(&mut r, Membership::new([1, 2]));
    assert!(nothing(&out), "{out:?}");
    let out = commit_all(&mut r, ballot, &three, Vec::new());
    let configs: Vec<Membership> = proposed(&out).into_iter().map(|p| p.1).collect();
    assert_eq!(configs, vec![with([1, 2, 3], [4])], "{out:?}");
}

/// A `ChangeMembership` that adds voters stages them as learners; the configuration that
/// makes them voters is proposed at a tick only once each of them acknowledged a commit
/// point at or past the staging slot (`caught_up`), not on an acknowledgement sent while
/// the staging configuration was still in flight, and whatever the old voters acknowledged.
#[test]
fn new_voters_are_promoted_once_they_acknowledged_the_configuration_that_staged_them() {
    let three = Membership::new([1, 2, 3]);
    let (mut r, ballot) = primary(three.clone());
    let tick = |r: &mut Replica| {
        let out = step(r, Input::Tick);
        sync(r, out)
    };
    let out = change(&mut r, Membership::new([1, 2, 3, 4]));
    let [(slot, staged)] = &proposed(&out)[..] else { panic!("{out:?}") };
    assert_eq!(*staged, with([1, 2, 3], [4]));
    // 4 acknowledges the commit point before the staging slot, while that slot is in flight.
    let commit = r.status().commit;
    assert_eq!(commit.next(), *slot);
    step(&mut r, from(4, Body::HeartbeatAck { ballot, round: 0, commit }));
    let out = tick(&mut r);
    assert_eq!(proposed(&out), Vec::new(), "promoted beside the staging: {out:?}");
    let out = commit_all(&mut r, ballot, &three, Vec::new());
    assert_eq!(r.status().membership, with([1, 2, 3], [4]));
    assert_eq!(proposed(&out), Vec::new(), "promoted before 4 knew it was a learner");
    let out = tick(&mut r);
    assert_eq!(proposed(&out), Vec::new(), "promoted before 4 knew it was a learner");
    // 4 acknowledges the staging slot (2 and 3 have not): the next tick promotes it.
    step(&mut r, from(4, Body::HeartbeatAck { ballot, round: 0, commit: *slot }));
    let out = tick(&mut r);
    assert_eq!(proposed(&out), vec![(slot.next(), Membership::new([1, 2, 3, 4]))], "{out:?}");

    // The staging configuration waiting for an undecided slot: 4, though it answered at the
    // commit point, is not promoted meanwhile; the staging goes first once the slot executes.
    let (mut r, ballot) = primary(three.clone());
    undecided(&mut r, 5);
    let out = change(&mut r, Membership::new([1, 2, 3, 4]));
    assert_eq!(proposed(&out), Vec::new(), "proposed behind an undecided slot");
    let commit = r.status().commit;
    step(&mut r, from(4, Body::HeartbeatAck { ballot, round: 0, commit }));
    let out = tick(&mut r);
    assert_eq!(proposed(&out), Vec::new(), "{out:?}");
    let out = commit_all(&mut r, ballot, &three, Vec::new());
    let configs: Vec<Membership> = proposed(&out).into_iter().map(|p| p.1).collect();
    assert_eq!(configs, vec![with([1, 2, 3], [4])], "{out:?}");
}

/// A `ChangeMembership` waiting for an undecided slot when its primary begins handing over
/// primacy stays unproposed when that slot executes: nothing more is proposed at a ballot
/// being handed over (the change is dropped with the primacy; an operation's is refused).
#[test]
fn a_change_waiting_for_a_slot_is_not_proposed_while_primacy_is_handed_over() {
    let three = Membership::new([1, 2, 3]);
    let (mut r, ballot) = primary(three.clone());
    undecided(&mut r, 5);
    let out = change(&mut r, with([1, 2, 3], [4]));
    assert_eq!(proposed(&out), Vec::new(), "proposed behind an undecided slot");
    let out = step(&mut r, Input::TransferPrimacy { to: Some(id(2)) });
    assert_eq!(reconfigured(&out), Vec::new(), "a ChangeMembership answered: {out:?}");
    let out = commit_all(&mut r, ballot, &three, Vec::new());
    assert!(r.status().executed > Slot(1));
    assert_eq!(proposed(&out), Vec::new(), "proposed while handing over: {out:?}");
    assert_eq!(r.status().membership, three);
}
