//! The planted-bug hunt: for a bug, run the default swarm's seeds in order until a checker
//! fails (a panic in the core does not count: it is counted apart), then run the catching
//! seed again without the bug, with the same fault mix, which must pass (so the catch is
//! the bug's doing). A seed that fails without the bug too is no catch: it is set aside as a
//! control failure (a failure of the swarm itself, reported) and the hunt goes on.
//! `rsl-sim --hunt` prints the table of docs/testing.md.

use std::sync::Mutex;

use crate::bugs::StorageBug;
use crate::{run_seed, Check, Options};

/// A bug to plant: in the core (by name, feature `planted-bugs`) or in the storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Planted {
    Core(String),
    Storage(StorageBug),
}

impl Planted {
    pub fn name(&self) -> String {
        match self {
            Planted::Core(name) => name.clone(),
            Planted::Storage(bug) => bug.name(),
        }
    }

    /// Every bug this build can plant: the core's (with the feature) and the storage's.
    pub fn all() -> Vec<Planted> {
        let mut all = Vec::new();
        #[cfg(feature = "planted-bugs")]
        all.extend(crate::bugs::ALL.iter().map(|b| Planted::Core(crate::bugs::name(*b))));
        let storage = StorageBug::ALL.into_iter().filter(|b| b.available());
        all.extend(storage.map(Planted::Storage));
        all
    }

    /// A bug by name (case-insensitive), if this build can plant it.
    pub fn parse(name: &str) -> Option<Planted> {
        Planted::all().into_iter().find(|p| p.name().eq_ignore_ascii_case(name))
    }

    /// The default swarm's options of `seed`, with this bug planted.
    pub fn options(&self, seed: u64) -> Options {
        match self {
            Planted::Core(name) => Options::swarm(seed).with_bug(name),
            Planted::Storage(bug) => Options::swarm(seed).with_storage_bug(*bug),
        }
    }
}

/// What one hunt found.
#[derive(Debug, Clone)]
pub struct Catch {
    pub bug: Planted,
    /// The first seed a checker failed on, the check and its detail.
    pub caught: Option<(u64, Check, String)>,
    /// Seeds run (up to and including the catching one).
    pub seeds: u64,
    /// Seeds before the catch on which the core panicked (not a catch).
    pub panics: u64,
    /// The catching seed without the bug passed.
    pub control_passed: bool,
    /// Seeds that failed with the bug and also without it, skipped: they say nothing about
    /// the bug, and each is a failure of the swarm to look at (`rsl-sim --seed N`).
    pub control_failures: Vec<u64>,
}

/// Hunts `bug` over the seeds `first..first + seeds_max`, `jobs` at a time; `adjust` may
/// change every seed's options (the fault-phase length, or a check turned off).
pub fn hunt(
    bug: &Planted,
    first: u64,
    seeds_max: u64,
    jobs: usize,
    adjust: &(dyn Fn(Options) -> Options + Sync),
) -> Catch {
    let window = (jobs * 4).max(1) as u64;
    let mut panics = 0;
    let mut control_failures = Vec::new();
    let mut start = first;
    while start < first + seeds_max {
        let end = (start + window).min(first + seeds_max);
        let results = Mutex::new(Vec::new());
        let next = std::sync::atomic::AtomicU64::new(start);
        std::thread::scope(|s| {
            for _ in 0..jobs.max(1) {
                s.spawn(|| loop {
                    let seed = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if seed >= end {
                        break;
                    }
                    let outcome = run_seed(&adjust(bug.options(seed)), false);
                    results.lock().expect("results").push((seed, outcome.failure));
                });
            }
        });
        let mut results = results.into_inner().expect("results");
        results.sort_by_key(|(seed, _)| *seed);
        for (seed, failure) in results {
            match failure {
                Some(f) if f.check == Check::Panic => panics += 1,
                Some(f) => {
                    let control = Options { bug: None, storage_bug: None, ..bug.options(seed) };
                    let control_passed = run_seed(&adjust(control), false).failure.is_none();
                    if !control_passed {
                        // The seed fails without the bug as well: not evidence about the bug.
                        // Counted, and the hunt goes on.
                        control_failures.push(seed);
                        continue;
                    }
                    let seeds = seed - first + 1;
                    let caught = Some((seed, f.check, f.detail));
                    return Catch {
                        bug: bug.clone(),
                        caught,
                        seeds,
                        panics,
                        control_passed,
                        control_failures,
                    };
                }
                None => {}
            }
        }
        start = end;
    }
    Catch {
        bug: bug.clone(),
        caught: None,
        seeds: seeds_max,
        panics,
        control_passed: false,
        control_failures,
    }
}

/// The table row of a catch (markdown), as in docs/testing.md.
pub fn row(c: &Catch) -> String {
    match &c.caught {
        Some((seed, check, _)) => format!(
            "| `{}` | {seed} | {check:?} | {} | {} |",
            c.bug.name(),
            c.panics,
            if c.control_passed { "passes" } else { "FAILS" }
        ),
        None => {
            format!("| `{}` | not caught in {} | - | {} | - |", c.bug.name(), c.seeds, c.panics)
        }
    }
}
