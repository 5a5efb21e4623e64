//! Proof that the checkers can fail: for every bug the core can plant (rsl-core/src/bugs.rs,
//! feature `planted-bugs`) and every storage bug (`rsl_sim::bugs::StorageBug`: `AckBeforeSync`
//! in the simulator's host, no feature needed; the recovery bugs in rsl-storage's real
//! recovery code, feature `planted-bugs`), seeds run until a *checker* reports a
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
use rsl_sim::bugs::StorageBug;
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

/// Which of the checks that catch bugs at their cause run: the durable-commit check and the
/// storage cross-check (the end-to-end checkers always run).
#[derive(Debug, Clone, Copy)]
struct AtCause {
    durable_commit: bool,
    storage: bool,
}

const ALL_CHECKS: AtCause = AtCause { durable_commit: true, storage: true };

impl AtCause {
    fn apply(self, mut options: Options) -> Options {
        options.durable_commit_check = self.durable_commit;
        options.storage_check = self.storage;
        options
    }
}

fn hunt(bug: Planted, checks: AtCause) -> Catch {
    let mut panics = 0;
    for seed in 0..SEEDS_MAX {
        let options = checks.apply(bug.options(seed));
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
    hunt_all("all checkers", ALL_CHECKS, &which);
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
    let checks = AtCause { durable_commit: false, storage: true };
    hunt_all("without the durable-commit check", checks, &which);
}

/// Storage that breaks its contract: a write acknowledged before its fsync (in plain `cargo
/// test`), and, with the feature, a recovery that cuts the log at a corrupt record instead of
/// reporting it and one that keeps a torn write, planted in the real recovery code.
#[test]
fn every_storage_bug_is_caught_by_a_checker() {
    let available = StorageBug::ALL.into_iter().filter(|b| b.available());
    let which: Vec<Planted> = available.map(Planted::Storage).collect();
    hunt_all("storage bugs, all checkers", ALL_CHECKS, &which);
}

/// The recovery bugs lose or change votes a chosen value depends on, which the protocol's
/// checkers see on their own, without the storage cross-check or the durable-commit check.
/// (`AckBeforeSync` is the disk's twin of the core's `SendBeforePersist`: the durable-commit
/// check exists to catch it at the cause.)
#[cfg(feature = "planted-bugs")]
#[test]
fn the_recovery_bugs_are_caught_by_the_end_to_end_checkers_alone() {
    let which = [
        Planted::Storage(StorageBug::TruncateAtCorruption),
        Planted::Storage(StorageBug::KeepTornWrite),
    ];
    let checks = AtCause { durable_commit: false, storage: false };
    hunt_all("storage bugs, end-to-end checkers alone", checks, &which);
}

fn hunt_all(title: &str, checks: AtCause, which: &[Planted]) {
    let queue = Mutex::new(which.to_vec());
    let results = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| loop {
                let Some(bug) = queue.lock().unwrap().pop() else { break };
                let catch = hunt(bug, checks);
                results.lock().unwrap().push(catch);
            });
        }
    });
    let mut results = results.into_inner().unwrap();
    // Control: the catching seed, with the same fault mix but without the bug, passes (so
    // the catch is the bug's doing, not the fault mix's).
    for c in &results {
        if let Some((seed, ..)) = &c.caught {
            let options = Options { bug: None, storage_bug: None, ..c.bug.options(*seed) };
            let options = checks.apply(options);
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
