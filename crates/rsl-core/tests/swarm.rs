//! The core under the simulator's default swarm: a few seeds (each its own fault mix, every
//! checker on) must pass. The stories of the other files pin one rule each; these seeds run
//! the core through the paths no story tells (crashes of a loaded primary, late votes of an
//! earlier ballot, lost records just above the commit point, checkpoints, membership
//! changes), so a wrong line the stories miss can still fail here.
//!
//! `RSL_SWARM_SEEDS` sets the number of seeds (default 20, to keep `cargo test -p rsl-core`
//! quick); mutation testing runs it with more (docs/testing.md, "Mutation testing").

use rsl_sim::{run_seed, Options};

/// Fault-phase ticks per seed (the command defaults to 1000).
const TICKS: u64 = 400;

/// Seeds run by default.
const SEEDS_DEFAULT: u64 = 20;

#[test]
fn swarm_seeds_pass_every_checker() {
    let seeds = std::env::var("RSL_SWARM_SEEDS")
        .ok()
        .map(|s| s.parse::<u64>().expect("RSL_SWARM_SEEDS is a number"))
        .unwrap_or(SEEDS_DEFAULT);
    let failures: Vec<String> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..2u64)
            .map(|w| {
                s.spawn(move || {
                    let mine = (0..seeds).filter(|seed| seed % 2 == w);
                    let outcomes =
                        mine.map(|seed| run_seed(&Options::swarm(seed).with_ticks(TICKS), false));
                    outcomes
                        .filter_map(|o| o.failure.map(|f| format!("seed {}: {f}", o.seed)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().expect("worker")).collect()
    });
    assert!(
        failures.is_empty(),
        "{} of {seeds} seeds failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
