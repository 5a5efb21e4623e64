//! A replica's own place in the membership across restarts and checkpoints (docs/protocol.md,
//! "Membership operations"): a replica that joins a running cluster (id 4, knowing the
//! voters 1, 2, 3) is no member until a configuration adds it, records the slot that did
//! (`Write::MemberSince`), and after a restart tells the replay of its own addition from a
//! removal. The paths the simulator cannot reach (it takes no checkpoints) are pinned here.

use rsl_core::{
    Action, Config, Input, Membership, Recovered, Replica, ReplicaId, Role, Slot, Write,
};

fn joiner(recovered: Recovered) -> Replica {
    let mut config = Config::new(4, [1, 2, 3]);
    config.joining = true;
    Replica::new(config, recovered)
}

fn step(r: &mut Replica, input: Input) -> Vec<Action> {
    let mut out = Vec::new();
    r.step(input, &mut out);
    r.invariants();
    out
}

fn with_learner(id: u32) -> Membership {
    let mut m = Membership::new([1, 2, 3]);
    m.learners.push(ReplicaId(id));
    m
}

#[test]
fn a_joining_replica_is_no_member_and_stands_for_nothing() {
    let mut r = joiner(Recovered::default());
    let st = r.status();
    assert!(st.joining && st.removed.is_none() && st.role == Role::Learner, "{st:?}");
    for _ in 0..500 {
        let out = step(&mut r, Input::Tick);
        assert!(
            out.iter().all(|a| !matches!(a, Action::Notify(_))),
            "a joining replica stood or changed: {out:?}"
        );
    }
    assert_eq!(r.status().counters.elections, 0);
}

#[test]
fn a_checkpoint_that_adds_the_joining_replica_makes_it_a_member_since_its_slot() {
    let mut r = joiner(Recovered::default());
    let out = step(
        &mut r,
        Input::CheckpointInstalled { slot: Slot(100), membership: Some(with_learner(4)) },
    );
    assert!(
        out.iter()
            .any(|a| matches!(a, Action::Persist { write: Write::MemberSince(Slot(100)), .. })),
        "{out:?}"
    );
    let st = r.status();
    assert!(!st.joining && st.removed.is_none() && st.membership == with_learner(4), "{st:?}");
    // A later checkpoint whose membership leaves it out: it was removed.
    step(
        &mut r,
        Input::CheckpointInstalled {
            slot: Slot(200),
            membership: Some(Membership::new([1, 2, 3])),
        },
    );
    assert_eq!(r.status().removed, Some(Slot(200)));
    // Another configuration that leaves it out changes nothing: it was removed at 200.
    step(&mut r, Input::CheckpointInstalled { slot: Slot(300), membership: Some(with_learner(5)) });
    assert_eq!(r.status().removed, Some(Slot(200)));
}

#[test]
fn after_a_restart_the_slot_it_became_a_member_tells_a_replay_from_a_removal() {
    let old = Membership::new([1, 2, 3]);
    // It became a member at slot 50 and restarts from a checkpoint at 100 whose membership
    // leaves it out: a configuration between 50 and 100 removed it.
    let removed = joiner(Recovered {
        membership: Some(old.clone()),
        checkpoint: Slot(100),
        member_since: Some(Slot(50)),
        ..Recovered::default()
    });
    let st = removed.status();
    assert!(!st.joining && st.removed == Some(Slot(100)), "{st:?}");
    // The same checkpoint, but it became a member at slot 150: the log it replays from 100
    // adds it again; it is neither removed nor joining.
    let replaying = joiner(Recovered {
        membership: Some(old.clone()),
        checkpoint: Slot(100),
        member_since: Some(Slot(150)),
        ..Recovered::default()
    });
    let st = replaying.status();
    assert!(!st.joining && st.removed.is_none(), "{st:?}");
    // Never a member yet: still joining.
    let waiting =
        joiner(Recovered { membership: Some(old), checkpoint: Slot(100), ..Recovered::default() });
    let st = waiting.status();
    assert!(st.joining && st.removed.is_none(), "{st:?}");
}

/// What a replica executes before the configuration that adds it is history: a membership
/// that leaves it out (here another learner, 5, added) neither makes a joining replica a
/// member nor marks it removed, and after a restart the same holds for what it replays up to
/// the slot it became a member.
#[test]
fn configurations_before_its_addition_neither_make_it_a_member_nor_remove_it() {
    let other = with_learner(5);
    let mut joining = joiner(Recovered::default());
    let out = step(
        &mut joining,
        Input::CheckpointInstalled { slot: Slot(50), membership: Some(other.clone()) },
    );
    assert!(
        !out.iter().any(|a| matches!(a, Action::Persist { write: Write::MemberSince(_), .. })),
        "{out:?}"
    );
    let st = joining.status();
    assert!(st.joining && st.removed.is_none() && st.membership == other, "{st:?}");
    // A member since slot 150, restarted from a checkpoint at 100: a configuration at 120
    // that leaves it out is a replay of what came before its addition, not a removal.
    let mut replaying = joiner(Recovered {
        membership: Some(Membership::new([1, 2, 3])),
        checkpoint: Slot(100),
        member_since: Some(Slot(150)),
        ..Recovered::default()
    });
    step(
        &mut replaying,
        Input::CheckpointInstalled { slot: Slot(120), membership: Some(other.clone()) },
    );
    let st = replaying.status();
    assert!(!st.joining && st.removed.is_none() && st.membership == other, "{st:?}");
}

/// The probes in `out` (catch-up requests for one slot): (destination, slot).
fn probes(out: &[Action]) -> Vec<(u32, Slot)> {
    out.iter()
        .filter_map(|a| match a {
            Action::Send { to, msg } => match msg.body {
                rsl_core::Body::CatchupRequest { from, to: last } if from == last => {
                    Some((to.0, from))
                }
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// A removed replica probes the new voters (and nobody else) once per short election
/// timeout, for the slot after its removal, until a quorum of the voters reports a commit
/// point at or past its removal; then it is told it is no longer needed, and stops.
#[test]
fn a_removed_replica_probes_the_new_voters_until_a_quorum_of_them_executed_its_removal() {
    let mut r = joiner(Recovered::default());
    step(&mut r, Input::CheckpointInstalled { slot: Slot(100), membership: Some(with_learner(4)) });
    let mut without = with_learner(5);
    without.voters = vec![ReplicaId(1), ReplicaId(2), ReplicaId(3)];
    step(&mut r, Input::CheckpointInstalled { slot: Slot(200), membership: Some(without) });
    assert_eq!(r.status().removed, Some(Slot(200)));
    let every = u64::from(Config::new(4, [1]).election_ticks_min);
    let mut sent = Vec::new();
    for tick in 1..=3 * every {
        let out = step(&mut r, Input::Tick);
        sent.extend(probes(&out).into_iter().map(|(to, slot)| (tick, to, slot)));
    }
    let expected: Vec<(u64, u32, Slot)> =
        (0..3).flat_map(|k| [1, 2, 3].map(|to| (1 + k * every, to, Slot(201)))).collect();
    assert_eq!(sent, expected, "probes every {every} ticks to the voters");
    // Reports that do not count: a learner at the removal, a voter before it.
    let report = |from: u32, commit: u64| {
        let body = rsl_core::Body::CatchupReply { commit: Slot(commit), entries: Vec::new() };
        Input::Receive(rsl_core::Message { from: ReplicaId(from), to: ReplicaId(4), body })
    };
    let removed = |out: &[Action]| {
        out.iter().any(|a| matches!(a, Action::Notify(rsl_core::Notification::Removed { .. })))
    };
    assert!(!removed(&step(&mut r, report(5, 200))));
    assert!(!removed(&step(&mut r, report(1, 199))));
    assert!(!removed(&step(&mut r, report(2, 200))), "one voter is no quorum");
    assert!(!r.status().removed_done);
    let out = step(&mut r, report(1, 250));
    let notified: Vec<&Action> = out.iter().filter(|a| matches!(a, Action::Notify(_))).collect();
    assert!(
        matches!(
            notified.as_slice(),
            [Action::Notify(rsl_core::Notification::Removed { slot: Slot(200) })]
        ),
        "{out:?}"
    );
    assert!(r.status().removed_done);
    assert!(!removed(&step(&mut r, report(3, 300))), "told twice");
    for _ in 0..3 * every {
        assert_eq!(probes(&step(&mut r, Input::Tick)), Vec::new(), "probed after done");
    }
}
