//! The simulator command: runs seeds, prints failures, ends with `seeds: N run, F failed`.
//!
//! ```text
//! cargo run --release -p rsl-sim -- --seeds 10000
//! cargo run --release -p rsl-sim -- --seed 1234 -v
//! cargo run --release -p rsl-sim --features planted-bugs -- --bug CommitOnMinority --seeds 300
//! ```

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Instant;

use clap::Parser;
use rsl_sim::bugs::StorageBug;
use rsl_sim::{run_seed_with, Options, Outcome};

/// A seed allocates per message, write and event; mimalloc keeps that cheaper than the
/// system's allocator (docs/benchmarks.md, "The simulator").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Deterministic whole-cluster simulation of rsl with fault injection and safety checkers.
#[derive(Debug, Parser)]
#[command(name = "rsl-sim")]
struct Args {
    /// Run this many seeds, starting at --first.
    #[arg(long, default_value_t = 100)]
    seeds: u64,
    /// The first seed of a --seeds run.
    #[arg(long, default_value_t = 0)]
    first: u64,
    /// Run exactly this seed (replays a failure).
    #[arg(long)]
    seed: Option<u64>,
    /// Cluster size (3, 5 or 7); drawn per seed if absent.
    #[arg(long)]
    replicas: Option<usize>,
    /// Ticks of the fault phase (default 1000).
    #[arg(long)]
    ticks: Option<u64>,
    /// Add membership changes (spare replicas, random new memberships) to every seed.
    #[arg(long)]
    reconfig: bool,
    /// Tell replicas, at random times, what a primary said is chosen (`Input::Chosen`, as
    /// rsl-kv's read index does), fresh claims and stale ones. A flag of its own so that the
    /// default swarm's seeds (and docs/testing.md's table of planted bugs) replay as before.
    #[arg(long)]
    read_index: bool,
    /// Run as before the runtime's I/O thread sent promises and votes itself (2026-12-07):
    /// the core holds them until it steps the sync's `Durable`. Replays a seed found before
    /// then as it ran (and compares its trace hash with an older build's).
    #[arg(long)]
    votes_from_core: bool,
    /// Safety only: storage faults on every replica (no minority limit), no liveness
    /// requirement; every safety checker stays on.
    #[arg(long)]
    safety_only: bool,
    /// Turn off the cross-check of every recovery against the acknowledged state, to see
    /// whether the protocol-level checkers catch a storage bug on their own.
    #[arg(long)]
    no_storage_check: bool,
    /// Plant a bug by name: a storage or host bug (AckBeforeSync, SendBeforeSync, CheckpointSlotOffByOne, CheckpointWithoutMembership; TruncateAtCorruption and
    /// KeepTornWrite need `--features planted-bugs`), or a core bug (needs the feature).
    #[arg(long)]
    bug: Option<String>,
    /// Print the trace of the seed (with --seed).
    #[arg(short, long)]
    verbose: bool,
    /// Worker threads (default: available parallelism).
    #[arg(long)]
    jobs: Option<usize>,
    /// Print every seed's trace hash (`seed S trace H`), to compare two builds' replays.
    #[arg(long)]
    hashes: bool,
    /// Hunt planted bugs (the one named by --bug, or every bug this build can plant): run
    /// the default swarm's seeds from --first, at most --seeds of them (default 1000),
    /// until a checker catches the bug; replay the catching seed without it; print the
    /// table of docs/testing.md.
    #[arg(long)]
    hunt: bool,
    /// Write the history the linearizability check is given to this file (with --seed), one
    /// operation a line, to study a search or turn it into a test.
    #[arg(long, requires = "seed")]
    dump_history: Option<std::path::PathBuf>,
}

fn options_for(args: &Args, seed: u64) -> Options {
    let mut o = Options::swarm(seed);
    if let Some(r) = args.replicas {
        o.replicas = r;
    }
    if let Some(t) = args.ticks {
        o.fault_ticks = t;
    }
    match args.bug.as_deref().map(|b| (b, StorageBug::parse(b))) {
        Some((_, Some(storage))) => o = o.with_storage_bug(storage),
        Some((core, None)) => o = o.with_bug(core),
        None => {}
    }
    if args.reconfig {
        o = o.with_reconfiguration();
    }
    if args.read_index {
        o = o.with_read_index();
    }
    if args.safety_only {
        o = o.safety_only();
    }
    if args.votes_from_core {
        o = o.as_found_before_votes_left_the_io_thread();
    }
    o.storage_check = !args.no_storage_check;
    o
}

fn report(args: &Args, outcome: &Outcome) {
    let Some(failure) = &outcome.failure else { return };
    let o = options_for(args, outcome.seed);
    println!("seed {} FAILED: {failure}", outcome.seed);
    println!("  swarm: {}", o.summary());
    let mut replay = format!("cargo run --release -p rsl-sim -- --seed {}", outcome.seed);
    if let Some(r) = args.replicas {
        replay += &format!(" --replicas {r}");
    }
    if let Some(t) = args.ticks {
        replay += &format!(" --ticks {t}");
    }
    if args.reconfig {
        replay += " --reconfig";
    }
    if args.read_index {
        replay += " --read-index";
    }
    if args.safety_only {
        replay += " --safety-only";
    }
    if args.votes_from_core {
        replay += " --votes-from-core";
    }
    if args.no_storage_check {
        replay += " --no-storage-check";
    }
    if let Some(b) = &args.bug {
        if StorageBug::parse(b).is_none_or(|s| !s.in_host()) {
            replay = replay.replace("rsl-sim --", "rsl-sim --features planted-bugs --");
        }
        replay += &format!(" --bug {b}");
    }
    println!("  replay: {replay} -v");
}

fn check_bug_name(args: &Args) -> Result<(), String> {
    let Some(name) = &args.bug else { return Ok(()) };
    match StorageBug::parse(name) {
        Some(bug) if bug.available() => return Ok(()),
        Some(_) => {
            return Err(format!(
                "--bug {name} is planted in the storage's recovery: cargo run --release -p rsl-sim --features planted-bugs"
            ))
        }
        None => {}
    }
    #[cfg(feature = "planted-bugs")]
    {
        if rsl_sim::bugs::parse(name).is_none() {
            let mut names: Vec<String> =
                rsl_sim::bugs::ALL.iter().map(|b| format!("{b:?}")).collect();
            names.extend(StorageBug::ALL.map(StorageBug::name));
            return Err(format!("unknown bug {name}; known: {}", names.join(", ")));
        }
        Ok(())
    }
    #[cfg(not(feature = "planted-bugs"))]
    Err(format!(
        "--bug {name} is not a storage bug ({}); a core bug needs: cargo run --release -p rsl-sim --features planted-bugs",
        StorageBug::ALL.map(StorageBug::name).join(", ")
    ))
}

/// `--hunt`: every planted bug (or the one named) must be caught, and pass without it.
fn hunt(args: &Args, jobs: usize) -> ExitCode {
    use rsl_sim::hunt::{self, Planted};
    let bugs = match &args.bug {
        Some(name) => match Planted::parse(name) {
            Some(b) => vec![b],
            None => {
                eprintln!("cannot plant {name} in this build");
                return ExitCode::from(2);
            }
        },
        None => Planted::all(),
    };
    let seeds_max = if args.seeds == 100 { 1000 } else { args.seeds };
    let (ticks, reconfig) = (args.ticks, args.reconfig);
    let adjust = move |mut o: Options| {
        if let Some(t) = ticks {
            o.fault_ticks = t;
        }
        // `--hunt --reconfig`: for a bug only membership changes reach (a planted-bug row
        // marked `--reconfig` in docs/testing.md).
        if reconfig {
            o = o.with_reconfiguration();
        }
        o
    };
    println!(
        "| bug | first catching seed | check | core panics before | control (same seed, no bug) |"
    );
    println!("| --- | --- | --- | --- | --- |");
    let mut ok = true;
    let mut details = Vec::new();
    for bug in &bugs {
        let start = Instant::now();
        let catch = hunt::hunt(bug, args.first, seeds_max, jobs, &adjust);
        println!("{}", hunt::row(&catch));
        eprintln!("{}: {:.1}s", bug.name(), start.elapsed().as_secs_f64());
        ok &= catch.caught.is_some() && catch.control_passed;
        if !catch.control_failures.is_empty() {
            // A seed that fails with no bug planted is a failure of the swarm: the hunt
            // reports it and fails, though the bug itself was judged on other seeds.
            eprintln!(
                "{}: seeds failing without the bug too (swarm failures): {:?}",
                bug.name(),
                catch.control_failures
            );
            ok = false;
        }
        if let Some((seed, check, detail)) = &catch.caught {
            details.push(format!("{} (seed {seed}): {check:?}: {detail}", bug.name()));
        }
    }
    for d in details {
        println!("{d}");
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(e) = check_bug_name(&args) {
        eprintln!("{e}");
        return ExitCode::from(2);
    }
    if args.hunt {
        let jobs = args
            .jobs
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .clamp(1, 64);
        return hunt(&args, jobs);
    }
    let seeds: Vec<u64> = match args.seed {
        Some(s) => vec![s],
        None => (args.first..args.first + args.seeds).collect(),
    };
    let start = Instant::now();
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .clamp(1, 64);
    let verbose = args.verbose && seeds.len() == 1;
    let next = AtomicU64::new(0);
    let (tx, rx) = mpsc::channel::<Outcome>();
    let mut failed = 0u64;
    let mut run = 0u64;
    let mut next_report = 100u64;
    let mut undecided = 0u64;
    let mut coverage = rsl_sim::coverage::Coverage::new();
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            let tx = tx.clone();
            let (next, seeds, args) = (&next, &seeds, &args);
            scope.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                let Some(&seed) = seeds.get(i) else { break };
                let outcome =
                    run_seed_with(&options_for(args, seed), verbose, args.dump_history.clone());
                if tx.send(outcome).is_err() {
                    break;
                }
            });
        }
        drop(tx);
        for outcome in rx {
            run += 1;
            coverage.add(&outcome.stats);
            if args.hashes {
                println!("seed {} trace {:016x}", outcome.seed, outcome.trace_hash);
            }
            undecided += u64::from(outcome.stats.undecided);
            if outcome.stats.undecided {
                eprintln!("seed {}: the linearizability search gave up", outcome.seed);
            }
            if outcome.failure.is_some() {
                failed += 1;
                report(&args, &outcome);
            }
            if seeds.len() == 1 {
                let s = &outcome.stats;
                eprintln!(
                    "seed {}: trace {:016x}, {} events, {} messages ({} lost), {} crashes ({} wipes), {} pauses, {} partitions, {} elections, {} ops ok, {} indeterminate, max slot {}, {} log loads, {} checkpoint requests; storage: {:?}{}",
                    outcome.seed, outcome.trace_hash, s.events, s.messages, s.dropped, s.crashes,
                    s.wipes, s.pauses, s.partitions, s.elections, s.ops_ok, s.ops_indeterminate, s.max_slot,
                    s.log_loads, s.checkpoint_requests, s.storage,
                    if s.not_live { " (not live: allowed in safety-only mode)" } else { "" }
                );
            } else if run == next_report {
                next_report += 100;
                eprintln!(
                    "{run}/{} seeds, {failed} failed, {:.1}s",
                    seeds.len(),
                    start.elapsed().as_secs_f64()
                );
            }
        }
    });
    if undecided > 0 {
        println!("linearizability search gave up (budget) on {undecided} seeds");
    }
    if seeds.len() > 1 {
        print!("{}", coverage.report());
    }
    println!("seeds: {run} run, {failed} failed");
    if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
