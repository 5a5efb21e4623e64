//! rsl-sim: a deterministic simulator that runs the real `rsl-core` replicas of a whole
//! cluster in one thread, from a seed, with simulated time and network and the real storage
//! stack (`rsl-store` over `rsl-storage`) on a seeded in-memory disk, injects faults,
//! and checks safety (agreement, identical executed logs, no acknowledged write lost,
//! linearizable client histories) and liveness after the faults stop.
//!
//! ```no_run
//! use rsl_sim::{run_seed, Options};
//!
//! let outcome = run_seed(&Options::swarm(42), false);
//! if let Some(failure) = &outcome.failure {
//!     eprintln!("seed 42 failed: {failure}");
//! }
//! ```
//!
//! See docs/testing.md for the fault model, the checkers and the command.

pub mod bugs;
pub mod cause;
pub mod checker;
pub mod coverage;
pub mod digest;
pub mod disk;
pub mod driver;
pub mod hunt;
pub mod kv;
pub mod linearizability;
pub mod net;
pub mod options;
pub mod rng;
pub mod sim;

use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

pub use checker::{Check, Failure};
pub use options::{Options, TICK};
pub use sim::{Sim, Stats, ELECTION_WAIT_TICKS};

/// The result of one seed.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub seed: u64,
    pub failure: Option<Failure>,
    /// Hash of the whole event trace: two runs of one seed must agree.
    pub trace_hash: u64,
    pub stats: Stats,
}

thread_local! {
    static QUIET: Cell<bool> = const { Cell::new(false) };
    static PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Installs (once) a panic hook that, while a seed runs on this thread, records the panic
/// message instead of printing it, so a panic becomes a reported failure.
fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if QUIET.with(Cell::get) {
                let trace = std::backtrace::Backtrace::force_capture().to_string();
                // The frames inside rsl's own crates say where the panic came from.
                let frames: Vec<&str> = trace
                    .lines()
                    .map(str::trim)
                    .filter(|l| {
                        l.contains("rsl_core")
                            || l.contains("rsl-core/src")
                            || l.contains("rsl-sim/src")
                            || l.contains("rsl-store/src")
                            || l.contains("rsl-storage/src")
                    })
                    .filter(|l| !l.contains("rsl_sim::run_seed") && !l.contains("panic"))
                    .take(6)
                    .collect();
                let message = format!("{info}\n    {}", frames.join("\n    "));
                PANIC.with(|p| *p.borrow_mut() = Some(message));
            } else {
                default(info);
            }
        }));
    });
}

/// Runs one seed with `options` (printing the trace if `verbose`). A panic inside the core
/// (an assertion or invariant) or the simulator is caught and reported as [`Check::Panic`].
pub fn run_seed(options: &Options, verbose: bool) -> Outcome {
    run_seed_with(options, verbose, None)
}

/// [`run_seed`], also writing the history the linearizability check is given to
/// `history_out` (see [`linearizability::write_history`]).
pub fn run_seed_with(
    options: &Options,
    verbose: bool,
    history_out: Option<std::path::PathBuf>,
) -> Outcome {
    install_panic_hook();
    let mut sim = Sim::new_deferred(options.clone());
    sim.set_verbose(verbose);
    sim.set_history_out(history_out);
    QUIET.with(|q| q.set(true));
    let result = panic::catch_unwind(AssertUnwindSafe(|| {
        sim.boot();
        sim.run_swarm();
    }));
    QUIET.with(|q| q.set(false));
    let failure = match result {
        Ok(()) => sim.failure().cloned(),
        // A check that failed before the panic (in the same step: a check at the cause sees
        // the damage before the core trips over it) is the failure reported.
        Err(_) => {
            let message = PANIC.with(|p| p.borrow_mut().take()).unwrap_or_default();
            let panic = || Failure { check: Check::Panic, tick: sim.tick(), detail: message };
            Some(sim.failure().cloned().unwrap_or_else(panic))
        }
    };
    Outcome { seed: options.seed, failure, trace_hash: sim.trace_hash(), stats: sim.stats.clone() }
}
