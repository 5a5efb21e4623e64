//! Proof that the checkers can fail: for every bug the core can plant (rsl-core/src/bugs.rs),
//! seeds run until a *checker* reports a failure, which must happen within `SEEDS_MAX` seeds.
//! A panic in the core does not count as a catch (the core skips its own contracts for the
//! planted bug, but an assertion elsewhere may still fire): such seeds are counted apart.
//!
//! Run with `cargo test -p rsl-sim --features planted-bugs -- --nocapture` to see the table.
#![cfg(feature = "planted-bugs")]

use std::sync::Mutex;

use rsl_core::bugs::Bug;
use rsl_sim::{bugs, run_seed, Check, Options};

const SEEDS_MAX: u64 = 300;
const TICKS: u64 = 500;

#[derive(Debug)]
struct Catch {
    bug: Bug,
    seeds: u64,
    caught: Option<(u64, Check, String)>,
    panics: u64,
}

fn hunt(bug: Bug, durable_commit_check: bool) -> Catch {
    let mut panics = 0;
    for seed in 0..SEEDS_MAX {
        let mut options = Options::swarm(seed).with_ticks(TICKS);
        options.bug = Some(bugs::name(bug));
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

#[test]
fn every_planted_bug_is_caught_by_a_checker() {
    hunt_all("all checkers", true, &bugs::ALL);
}

/// The durable-commit check catches the commit bugs at the first premature execution; with it
/// off, the end-to-end checkers (agreement, lost acknowledged writes, linearizability) must
/// still catch every bug.
///
/// The two durability bugs (`CountOwnVoteBeforeDurable`, `SendBeforePersist`) are left out:
/// their effect shows end to end only when a machine crash lands inside one fsync window of
/// the right replica *and* the next quorum excludes the replica that voted durably, which the
/// swarm rarely draws; the durable-commit check exists to catch them at the cause.
#[test]
fn every_planted_bug_is_caught_by_the_end_to_end_checkers_alone() {
    let end_to_end = [
        Bug::AcceptorIgnoresPromise,
        Bug::SkipPhase1Reproposal,
        Bug::CommitOnMinority,
        Bug::ExecuteOutOfOrder,
    ];
    hunt_all("without the durable-commit check", false, &end_to_end);
}

fn hunt_all(title: &str, durable_commit_check: bool, which: &[Bug]) {
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
    results.sort_by_key(|c| bugs::ALL.iter().position(|b| *b == c.bug));
    println!("{title}:");
    println!("| bug | seeds to catch | checker | core panics before |");
    println!("| --- | --- | --- | --- |");
    for c in &results {
        match &c.caught {
            Some((seed, check, _)) => {
                println!("| {:?} | {} (seed {seed}) | {check:?} | {} |", c.bug, c.seeds, c.panics)
            }
            None => println!("| {:?} | not caught in {} | - | {} |", c.bug, c.seeds, c.panics),
        }
    }
    for c in &results {
        if let Some((seed, check, detail)) = &c.caught {
            println!("{:?}: seed {seed}: {check:?}: {detail}", c.bug);
        }
    }
    let missed: Vec<String> =
        results.iter().filter(|c| c.caught.is_none()).map(|c| format!("{:?}", c.bug)).collect();
    assert!(missed.is_empty(), "not caught within {SEEDS_MAX} seeds: {}", missed.join(", "));
}

#[test]
fn bug_names_round_trip() {
    for bug in bugs::ALL {
        assert_eq!(bugs::parse(&bugs::name(bug)), Some(bug));
    }
    assert_eq!(bugs::parse("commitonminority"), Some(Bug::CommitOnMinority));
    assert_eq!(bugs::parse("NoSuchBug"), None);
}
