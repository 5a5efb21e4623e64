//! Proof that the checkers can fail: for every bug the core can plant (rsl-core/src/bugs.rs,
//! feature `planted-bugs`) and every storage bug the simulator can plant in its disk model
//! (`rsl_sim::disk::StorageBug`, no feature needed), seeds run until a *checker* reports a
//! failure, which must happen within `SEEDS_MAX` seeds. A panic in the core does not count as
//! a catch (the core skips its own contracts for the planted bug, but an assertion elsewhere
//! may still fire): such seeds are counted apart.
//!
//! Run with `cargo test -p rsl-sim --features planted-bugs -- --nocapture` to see the tables.

use std::sync::Mutex;

#[cfg(feature = "planted-bugs")]
use rsl_core::bugs::Bug;
#[cfg(feature = "planted-bugs")]
use rsl_sim::bugs;
use rsl_sim::disk::StorageBug;
use rsl_sim::{run_seed, Check, Options};

const SEEDS_MAX: u64 = 300;
const TICKS: u64 = 500;

/// A planted bug: in the core or in the simulated disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Planted {
    #[cfg(feature = "planted-bugs")]
    Core(Bug),
    Storage(StorageBug),
}

impl Planted {
    fn name(self) -> String {
        match self {
            #[cfg(feature = "planted-bugs")]
            Planted::Core(bug) => bugs::name(bug),
            Planted::Storage(bug) => bug.name(),
        }
    }

    /// The options of `seed` with this bug planted (and, for a storage bug, its fault mix).
    fn options(self, seed: u64) -> Options {
        let options = Options::swarm(seed).with_ticks(TICKS);
        match self {
            #[cfg(feature = "planted-bugs")]
            Planted::Core(bug) => options.with_bug(&bugs::name(bug)),
            Planted::Storage(bug) => options.with_storage_bug(bug),
        }
    }
}

#[derive(Debug)]
struct Catch {
    bug: Planted,
    seeds: u64,
    caught: Option<(u64, Check, String)>,
    panics: u64,
}

fn hunt(bug: Planted, durable_commit_check: bool) -> Catch {
    let mut panics = 0;
    for seed in 0..SEEDS_MAX {
        let mut options = bug.options(seed);
        options.durable_commit_check = durable_commit_check;
        let outcome = run_seed(&options, false);
        match outcome.failure {
            Some(f) if f.check == Check::Panic => panics += 1,
            Some(f) => {
                return Catch {
                    bug,
                    seeds: seed + 1,
                    caught: Some((seed, f.check, f.detail)),
                    panics,
                }
            }
            None => {}
        }
    }
    Catch { bug, seeds: SEEDS_MAX, caught: None, panics }
}

#[cfg(feature = "planted-bugs")]
#[test]
fn every_planted_bug_is_caught_by_a_checker() {
    let which: Vec<Planted> = bugs::ALL.into_iter().map(Planted::Core).collect();
    hunt_all("all checkers", true, &which);
}

/// The durable-commit check catches the commit bugs at the first premature execution; with it
/// off, the end-to-end checkers (agreement, lost acknowledged writes, linearizability) must
/// still catch every bug.
///
/// The two durability bugs (`CountOwnVoteBeforeDurable`, `SendBeforePersist`) are left out:
/// their effect shows end to end only when a machine crash lands inside one fsync window of
/// the right replica *and* the next quorum excludes the replica that voted durably, which the
/// swarm rarely draws; the durable-commit check exists to catch them at the cause.
#[cfg(feature = "planted-bugs")]
#[test]
fn every_planted_bug_is_caught_by_the_end_to_end_checkers_alone() {
    let end_to_end = [
        Bug::AcceptorIgnoresPromise,
        Bug::SkipPhase1Reproposal,
        Bug::CommitOnMinority,
        Bug::ExecuteOutOfOrder,
        Bug::WipedReplicaVotes,
    ];
    let which: Vec<Planted> = end_to_end.into_iter().map(Planted::Core).collect();
    hunt_all("without the durable-commit check", false, &which);
}

/// Storage that breaks its contract: a write acknowledged before its fsync, a recovery that
/// cuts the log at a corrupt record instead of reporting it, and one that keeps a torn write.
#[test]
fn every_storage_bug_is_caught_by_a_checker() {
    let which: Vec<Planted> = StorageBug::ALL.into_iter().map(Planted::Storage).collect();
    hunt_all("storage bugs, all checkers", true, &which);
}

/// `TruncateAtCorruption` loses votes a chosen value depends on, which the end-to-end
/// checkers see on their own. (`AckBeforeSync` is the disk's twin of the core's
/// `SendBeforePersist`: the durable-commit check exists to catch it at the cause.)
#[test]
fn the_truncating_recovery_is_caught_by_the_end_to_end_checkers_alone() {
    let which = [Planted::Storage(StorageBug::TruncateAtCorruption)];
    hunt_all("storage bugs, without the durable-commit check", false, &which);
}

fn hunt_all(title: &str, durable_commit_check: bool, which: &[Planted]) {
    let queue = Mutex::new(which.to_vec());
    let results = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| loop {
                let Some(bug) = queue.lock().unwrap().pop() else { break };
                let catch = hunt(bug, durable_commit_check);
                results.lock().unwrap().push(catch);
            });
        }
    });
    let mut results = results.into_inner().unwrap();
    // Control: the catching seed, with the same fault mix but without the bug, passes (so
    // the catch is the bug's doing, not the fault mix's).
    for c in &results {
        if let Some((seed, ..)) = &c.caught {
            let mut options = Options { bug: None, storage_bug: None, ..c.bug.options(*seed) };
            options.durable_commit_check = durable_commit_check;
            let outcome = run_seed(&options, false);
            assert!(
                outcome.failure.is_none(),
                "{}: seed {seed} fails without the bug: {:?}",
                c.bug.name(),
                outcome.failure
            );
        }
    }
    results.sort_by_key(|c| which.iter().position(|b| *b == c.bug));
    println!("{title}:");
    println!("| bug | seeds to catch | checker | core panics before |");
    println!("| --- | --- | --- | --- |");
    for c in &results {
        let name = c.bug.name();
        match &c.caught {
            Some((seed, check, _)) => {
                println!("| {name} | {} (seed {seed}) | {check:?} | {} |", c.seeds, c.panics)
            }
            None => println!("| {name} | not caught in {} | - | {} |", c.seeds, c.panics),
        }
    }
    for c in &results {
        if let Some((seed, check, detail)) = &c.caught {
            println!("{}: seed {seed}: {check:?}: {detail}", c.bug.name());
        }
    }
    let missed: Vec<String> =
        results.iter().filter(|c| c.caught.is_none()).map(|c| c.bug.name()).collect();
    assert!(missed.is_empty(), "not caught within {SEEDS_MAX} seeds: {}", missed.join(", "));
}

#[cfg(feature = "planted-bugs")]
#[test]
fn bug_names_round_trip() {
    for bug in bugs::ALL {
        assert_eq!(bugs::parse(&bugs::name(bug)), Some(bug));
    }
    assert_eq!(bugs::parse("commitonminority"), Some(Bug::CommitOnMinority));
    assert_eq!(bugs::parse("NoSuchBug"), None);
}

#[test]
fn storage_bug_names_round_trip_and_differ_from_the_core_bugs() {
    for bug in StorageBug::ALL {
        assert_eq!(StorageBug::parse(&bug.name()), Some(bug));
        #[cfg(feature = "planted-bugs")]
        assert_eq!(bugs::parse(&bug.name()), None);
    }
    assert_eq!(StorageBug::parse("truncateatcorruption"), Some(StorageBug::TruncateAtCorruption));
    assert_eq!(StorageBug::parse("CommitOnMinority"), None);
}
