//! Checkpoints: the core asks for them every `checkpoint_interval_slots` executed slots and
//! truncates the log below a saved one; a proposal whose slot an installed checkpoint skips
//! has an unknown outcome.

use bytes::Bytes;
use rsl_core::{
    Action, Config, Input, Notification, Recovered, Refusal, Replica, ReplicaId, RequestId, Role,
    Slot, Write,
};
use rsl_sim::{Options, Sim};

#[test]
fn checkpoints_are_requested_and_truncate_the_log() {
    let options =
        Options { checkpoint_interval_slots: 4, log_kept_slots: 1, ..Options::quiet(3, 31) };
    let mut sim = Sim::new(options);
    let p = sim.elect();
    for token in 1..=10 {
        sim.append(p, 0, token);
    }
    assert!(sim.stats.checkpoint_requests > 0, "no checkpoint was asked for");
    let executed = sim.executed(p);
    sim.input(p, rsl_core::Input::CheckpointSaved { slot: executed });
    sim.run_ticks(1);
    // One slot is kept below the checkpoint: the storage holds nothing older.
    let first = sim.disk(p).durable().log.keys().next().copied();
    assert_eq!(first, Some(executed), "the log was not truncated below the checkpoint");
    sim.end();
}

/// Steps a lone replica, reporting every write durable at once unless `hold`.
fn step(r: &mut Replica, input: Input, hold: bool) -> Vec<Action> {
    let mut out = Vec::new();
    r.step(input, &mut out);
    r.invariants();
    let last = out.iter().rev().find_map(|a| match a {
        Action::Persist { seq, .. } => Some(*seq),
        _ => None,
    });
    if let (Some(seq), false) = (last, hold) {
        out.extend(step(r, Input::Durable { seq }, hold));
    }
    out
}

#[test]
fn proposals_skipped_by_an_installed_checkpoint_have_an_unknown_outcome() {
    // A single replica proposes, and before its write is durable it installs a peer's
    // checkpoint far past that slot: whether its request executed is not known here, and
    // must not be reported as definitely superseded (a client would retry).
    let mut r = Replica::new(Config::new(1, [1]), Recovered::default());
    while r.status().role != Role::Primary {
        step(&mut r, Input::Tick, false);
    }
    let id = RequestId { proposer: ReplicaId(1), incarnation: 1, seq: 1 };
    let out = step(
        &mut r,
        Input::Propose { id, payload: Bytes::from_static(b"x"), exclusive: false },
        true,
    );
    assert!(out.iter().any(|a| matches!(a, Action::Persist { write: Write::Accept(_), .. })));
    let out =
        step(&mut r, Input::CheckpointInstalled { slot: Slot(1_000), membership: None }, true);
    let refused = out.iter().find_map(|a| match a {
        Action::Refuse { id: x, reason } if *x == id => Some(reason.clone()),
        _ => None,
    });
    assert_eq!(refused, Some(Refusal::OutcomeUnknown), "{out:?}");
    assert_eq!(r.status().executed, Slot(1_000));
}

#[test]
fn an_install_at_or_below_the_executed_point_changes_nothing_on_a_copy() {
    // What the simulator's `StaleInstall` check relies on: `handled_on_copy` runs the input's
    // handler on a copy (the replica itself stays as it was), and the copy of a replica told
    // of an install it already executed past keeps its points and its log and acts not at all.
    let r = lone_primary_that_executed_three_slots(Config::new(1, [1]));
    let before = r.status();
    assert!(before.executed >= Slot(3), "executed {:?}", before.executed);
    let log = |r: &Replica| r.memory_log().map(|(s, b, v, c)| (s, b, v.clone(), c)).collect();
    let log_before: Vec<_> = log(&r);
    for slot in [Slot(before.executed.0 - 1), before.executed] {
        let (copy, actions) =
            r.handled_on_copy(Input::CheckpointInstalled { slot, membership: None });
        assert_eq!(copy.status(), before, "an install at {slot:?} changed the copy");
        assert_eq!(log(&copy), log_before, "an install at {slot:?} changed the log");
        assert!(actions.is_empty(), "an install at {slot:?} acted: {actions:?}");
    }
    // An install past the executed point does change the copy, never the replica.
    let ahead = Slot(before.executed.0 + 5);
    let (copy, _) = r.handled_on_copy(Input::CheckpointInstalled { slot: ahead, membership: None });
    assert_eq!(copy.status().executed, ahead);
    assert_eq!(r.status(), before);
    assert_eq!(log(&r), log_before);
}

/// A lone voter that became primary and executed three proposals.
fn lone_primary_that_executed_three_slots(config: Config) -> Replica {
    let mut r = Replica::new(config, Recovered::default());
    while r.status().role != Role::Primary {
        step(&mut r, Input::Tick, false);
    }
    for seq in 1..=3 {
        let id = RequestId { proposer: ReplicaId(1), incarnation: 1, seq };
        let payload = Bytes::from_static(b"x");
        step(&mut r, Input::Propose { id, payload, exclusive: false }, false);
        step(&mut r, Input::EndOfTurn, false);
    }
    r
}

/// With `InstallMovesExecutedBack` planted the copy shows the executed point moved back,
/// before any later work of a step could act on it (what `StaleInstall` sees).
#[cfg(feature = "planted-bugs")]
#[test]
fn a_copy_shows_a_planted_install_moving_the_executed_point_back() {
    use rsl_core::bugs::{Bug, Bugs};
    let mut config = Config::new(1, [1]);
    config.bugs = Bugs(vec![Bug::InstallMovesExecutedBack]);
    let r = lone_primary_that_executed_three_slots(config);
    let executed = r.status().executed;
    let slot = Slot(executed.0 - 1);
    let (copy, _) = r.handled_on_copy(Input::CheckpointInstalled { slot, membership: None });
    assert_eq!(copy.status().executed, slot, "the planted bug moves the executed point back");
    assert_eq!(r.status().executed, executed, "the replica itself is unchanged");
}

/// A lone voter with `checkpoint_interval_slots` = 3 executes slots 1 (its no-op) to 11, one
/// a step: it asks for a checkpoint exactly at slots 3, 6 and 9, each in the step that
/// executes it; with an interval of 0 it never asks (the driver decides). Mutation testing:
/// asking at every slot (`interval > 0 && ..` to `||`), with an interval of 0
/// (`interval > 0` to `>=`), on the cadence 1, 3, 9 (`checkpoint_asked + interval` to `*`),
/// or only at the next step that executes nothing (`execute_chosen` calling
/// `after_execute` when it executed nothing instead of when it executed something) passed
/// every other test.
#[test]
fn checkpoints_are_asked_for_every_interval_in_the_step_that_executes_the_slot() {
    for (interval, expected) in [(3, vec![3, 6, 9]), (0, vec![])] {
        let mut config = Config::new(1, [1]);
        config.checkpoint_interval_slots = interval;
        let mut r = Replica::new(config, Recovered::default());
        let mut steps = Vec::new();
        while r.status().role != Role::Primary {
            steps.extend(each_step(&mut r, Input::Tick));
        }
        for seq in 1..=10 {
            let id = RequestId { proposer: ReplicaId(1), incarnation: 1, seq };
            let payload = Bytes::from_static(b"x");
            steps.extend(each_step(&mut r, Input::Propose { id, payload, exclusive: false }));
        }
        assert_eq!(r.status().executed, Slot(11), "interval {interval}");
        let mut asked = Vec::new();
        for out in steps {
            let executed: Vec<Slot> = out
                .iter()
                .filter_map(|a| match a {
                    Action::Execute { slot, .. } => Some(*slot),
                    _ => None,
                })
                .collect();
            for a in &out {
                if let Action::TakeCheckpoint { slot, .. } = a {
                    assert!(executed.contains(slot), "{slot:?} asked for in a later step");
                    asked.push(slot.0);
                }
            }
        }
        assert_eq!(asked, expected, "checkpoints asked for with an interval of {interval}");
    }
}

/// Steps a lone replica with `input`, then reports its writes durable until it issues none:
/// each step's actions apart.
fn each_step(r: &mut Replica, input: Input) -> Vec<Vec<Action>> {
    let mut steps = Vec::new();
    let mut input = Some(input);
    while let Some(next) = input.take() {
        let mut out = Vec::new();
        r.step(next, &mut out);
        r.invariants();
        input = out.iter().rev().find_map(|a| match a {
            Action::Persist { seq, .. } => Some(Input::Durable { seq: *seq }),
            _ => None,
        });
        steps.push(out);
    }
    steps
}

/// A lone voter becomes primary but its phase-1 slot (a no-op) is not durable yet when a
/// peer's checkpoint past that slot is installed: every slot phase 1 re-proposed is then
/// executed (the checkpoint's state holds it), so the primary has recovered, and says so in
/// that step; it does not wait for a later slot to execute, which may never come without new
/// proposals (until then it offered no lease reads). Found by mutation testing: calling
/// `after_execute` at every step, executed or not, recovered it there, and no test saw the
/// difference.
#[test]
fn a_primary_whose_recovery_slots_a_checkpoint_covers_has_recovered() {
    let mut r = Replica::new(Config::new(1, [1]), Recovered::default());
    let mut input = Input::Tick;
    let mut notes = Vec::new();
    while r.status().role != Role::Primary {
        let mut out = Vec::new();
        r.step(input, &mut out);
        notes.extend(notifications(&out));
        input = match out.iter().rev().find(|a| matches!(a, Action::Persist { .. })) {
            Some(Action::Persist { seq, .. }) => Input::Durable { seq: *seq },
            _ => Input::Tick,
        };
    }
    assert_eq!(r.status().executed, Slot::ZERO, "the phase-1 slot executed already");
    assert!(!notes.contains(&Notification::PrimaryRecovered), "{notes:?}");
    let out = step(&mut r, Input::CheckpointInstalled { slot: Slot(5), membership: None }, true);
    assert_eq!((r.status().role, r.status().executed), (Role::Primary, Slot(5)));
    assert_eq!(notifications(&out), vec![Notification::PrimaryRecovered], "{out:?}");
}

fn notifications(out: &[Action]) -> Vec<Notification> {
    out.iter()
        .filter_map(|a| match a {
            Action::Notify(n) => Some(n.clone()),
            _ => None,
        })
        .collect()
}

/// A lone voter keeping two log records below a saved checkpoint executed slots 1 to 4. A
/// checkpoint at slot 2 keeps everything (slots 1 and 2 are the two kept): no write, the log
/// whole. One at slot 4 truncates through slot 2, once. Mutation testing: truncating again
/// at the same point, a write for nothing (`before.0 > self.truncated.0 + 1` to `>=`, or `+`
/// to `*`, in `on_checkpoint_saved`), passed every other test.
#[test]
fn a_saved_checkpoint_truncates_the_log_only_when_it_moves_the_truncation_point() {
    let mut config = Config::new(1, [1]);
    config.log_kept_slots = 2;
    let mut r = lone_primary_that_executed_three_slots(config);
    assert_eq!(r.status().executed, Slot(4));
    let truncations = |out: &[Action]| -> Vec<Slot> {
        out.iter()
            .filter_map(|a| match a {
                Action::Persist { write: Write::TruncatePrefix { before }, .. } => Some(*before),
                _ => None,
            })
            .collect()
    };
    let out = step(&mut r, Input::CheckpointSaved { slot: Slot(2) }, false);
    assert_eq!(truncations(&out), vec![], "truncated for a checkpoint that keeps every record");
    assert_eq!((r.status().checkpoint, r.status().truncated), (Slot(2), Slot::ZERO));
    assert_eq!(r.memory_log().next().map(|(s, ..)| s), Some(Slot(1)));
    let out = step(&mut r, Input::CheckpointSaved { slot: Slot(4) }, false);
    assert_eq!(truncations(&out), vec![Slot(3)]);
    assert_eq!((r.status().checkpoint, r.status().truncated), (Slot(4), Slot(2)));
    assert_eq!(r.memory_log().next().map(|(s, ..)| s), Some(Slot(3)));
}
