//! Proof that the checkers can fail, fast enough for CI: every bug the build can plant (the
//! core's with the feature `planted-bugs`, the storage's and the host's always) is caught by
//! a checker on the default swarm, near the first catching seed `rsl-sim --hunt` found (the
//! table of docs/testing.md, copied below), and that seed passes without the bug.
//!
//! The full hunt (every bug, up to 1,000 seeds from seed 0) is a command, not a test:
//! `cargo run --release -p rsl-sim --features planted-bugs -- --hunt`. When the swarm
//! changes, the seeds below change with it: rerun the hunt and copy its table here and to
//! docs/testing.md.

use rsl_sim::bugs::StorageBug;
use rsl_sim::hunt::{hunt, Planted};

/// Seeds a catch may drift by before the test calls the table stale.
const WINDOW_SEEDS: u64 = 20;

/// The first catching seed of every planted bug (from `rsl-sim --hunt`).
const TABLE: [(&str, u64); 38] = [
    ("AcceptorIgnoresPromise", 85),
    ("SkipPhase1Reproposal", 1),
    ("CountOwnVoteBeforeDurable", 1),
    ("SendBeforePersist", 0),
    ("CommitOnMinority", 0),
    ("ExecuteOutOfOrder", 0),
    ("WipedReplicaVotes", 44),
    ("LeaseFromNewestRound", 0),
    ("LeaseIgnoresDrift", 161),
    ("ShortStickiness", 0),
    ("TransferTimeoutResumes", 37),
    ("LeaseReadDuringTransfer", 2),
    ("LeaseCountsLearners", 4),
    ("Phase1BeforeOwnPromiseDurable", 19),
    ("PromiseNotPersisted", 0),
    ("CountVotesFromOtherBallots", 15),
    ("SameValueNotRewritten", 1),
    ("LearnCommitAtAnyBallot", 1),
    ("EvenQuorumIsHalf", 0),
    ("CountLearnerVotes", 2),
    ("InstallMovesExecutedBack", 126),
    ("InstalledOutcomeSuperseded", 506),
    ("Phase1PicksLowestBallot", 20),
    ("Phase1IgnoresUnknown", 4),
    ("TruncatedPromiseCounts", 144),
    ("ReadIndexIgnoresRecovery", 9),
    ("AcceptsNotSplitByBytes", 3),
    ("UnknownUnderExecutedMembership", 103),
    ("RecoveryIgnoresLostSlots", 242),
    ("PromoteOnStaleAcks", 55),
    ("RefusalNotAnswered", 37),
    ("ConfigBehindUndecided", 4),
    ("AckBeforeSync", 0),
    ("SendBeforeSync", 0),
    ("TruncateAtCorruption", 11),
    ("KeepTornWrite", 14),
    ("CheckpointSlotOffByOne", 0),
    ("CheckpointWithoutMembership", 12),
];

fn caught_near_its_seed(bug: &Planted) {
    let name = bug.name();
    let Some(&(_, seed)) = TABLE.iter().find(|(n, _)| *n == name) else {
        panic!("{name} is not in the table: run rsl-sim --hunt")
    };
    let catch = hunt(bug, seed, WINDOW_SEEDS, 2, &|o| o);
    let Some((at, check, detail)) = catch.caught else {
        panic!("{name}: not caught in seeds {seed}..{}: rerun rsl-sim --hunt", seed + WINDOW_SEEDS)
    };
    assert!(catch.control_passed, "{name}: seed {at} fails without the bug too");
    assert!(
        catch.control_failures.is_empty(),
        "{name}: seeds {:?} fail without the bug too: swarm failures to look at",
        catch.control_failures
    );
    println!("{name}: seed {at}: {check:?}: {detail}");
}

/// The bugs planted in the host (no feature needed).
#[test]
fn host_storage_bugs_are_caught() {
    let host = StorageBug::ALL.into_iter().filter(|b| b.in_host());
    for bug in host {
        caught_near_its_seed(&Planted::Storage(bug));
    }
}

#[cfg(feature = "planted-bugs")]
#[test]
fn every_planted_bug_is_caught() {
    let all = Planted::all();
    assert_eq!(all.len(), TABLE.len(), "the table lists every plantable bug");
    assert!(all.len() >= 25);
    let queue = std::sync::Mutex::new(all);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| loop {
                let Some(bug) = queue.lock().unwrap().pop() else { break };
                caught_near_its_seed(&bug);
            });
        }
    });
}

/// The two checks of the last gaps of issue 9 catch their bugs themselves, before a core
/// panic or another check: an install at or below the executed point that moves it back
/// (`StaleInstall`, seen on a copy of the core before the step trips over the slots it
/// dropped), and refused membership operations never answered (`Answers`).
#[cfg(feature = "planted-bugs")]
#[test]
fn stale_installs_and_unanswered_operations_are_caught_by_their_own_checks() {
    use rsl_sim::checker::Check;
    for (name, check) in
        [("InstallMovesExecutedBack", Check::StaleInstall), ("RefusalNotAnswered", Check::Answers)]
    {
        let bug = Planted::parse(name).expect("a planted bug");
        let &(_, seed) = TABLE.iter().find(|(n, _)| *n == name).expect("in the table");
        let catch = hunt(&bug, seed, WINDOW_SEEDS, 2, &|o| o);
        let Some((at, caught_by, detail)) = catch.caught else { panic!("{name}: not caught") };
        assert_eq!(caught_by, check, "{name} at seed {at}: {detail}");
        assert!(catch.control_passed, "{name}: seed {at} fails without the bug too");
    }
}

#[cfg(feature = "planted-bugs")]
#[test]
fn bug_names_round_trip_and_storage_and_core_names_differ() {
    use rsl_sim::bugs;
    for bug in bugs::ALL {
        assert_eq!(bugs::parse(&bugs::name(bug)), Some(bug));
    }
    assert_eq!(bugs::parse("commitonminority"), Some(rsl_core::bugs::Bug::CommitOnMinority));
    assert_eq!(bugs::parse("NoSuchBug"), None);
    for bug in StorageBug::ALL {
        assert_eq!(bugs::parse(&bug.name()), None);
    }
}

#[test]
fn storage_bug_names_round_trip() {
    for bug in StorageBug::ALL {
        assert_eq!(StorageBug::parse(&bug.name()), Some(bug));
    }
    assert_eq!(StorageBug::parse("truncateatcorruption"), Some(StorageBug::TruncateAtCorruption));
    assert_eq!(StorageBug::parse("CommitOnMinority"), None);
}
