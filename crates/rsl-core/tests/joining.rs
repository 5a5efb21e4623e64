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
