//! The `rsl-nemesis` command: `run` (one run of the suite), `check DIR` (check a saved
//! run again), `cleanup` (remove what crashed runs left behind).
//!
//! Exit status: 0 when the run passed; 1 on a linearizability violation, a lost
//! acknowledged write, an anomaly, or a planted lie the checkers missed; 2 when safety could
//! not be verified or the run could not be made (not root, no `ip`, a replica that would not
//! start); 130 when interrupted (everything is cleaned up first).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Parser;
use rsl_nemesis::cluster::ClusterOptions;
use rsl_nemesis::faults::{FaultKind, Timing};
use rsl_nemesis::run::{self, RunOptions, Verdict};
use rsl_nemesis::workload::{LivePlant, WorkloadOptions};

/// A real-process nemesis for rsl-kv: three replicas in network namespaces, faults from a
/// seed, the history checked for linearizability and lost writes.
#[derive(Debug, Parser)]
#[command(name = "rsl-nemesis", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Runs the suite once (needs root: network namespaces and tmpfs mounts).
    Run(RunArgs),
    /// Checks a saved run's history again.
    Check {
        /// The run directory (it holds history.tsv and finals.tsv).
        dir: PathBuf,
    },
    /// Removes namespaces, processes and mounts left by runs that crashed.
    Cleanup,
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// How long the faults go on, in seconds.
    #[arg(long, conflicts_with = "minutes")]
    seconds: Option<u64>,
    /// How long the faults go on, in minutes.
    #[arg(long)]
    minutes: Option<u64>,
    /// The seed of the faults and the workload (default: from the clock, printed).
    #[arg(long)]
    seed: Option<u64>,
    /// Concurrent clients.
    #[arg(long, default_value_t = 9)]
    clients: u32,
    /// Operations per second the clients start at most, in all (0: no limit). It keeps a
    /// long run's history to a size the checker and memory handle.
    #[arg(long, default_value_t = 3000)]
    rate: u32,
    /// The fault kinds to draw from (default: all).
    #[arg(long, value_enum, value_delimiter = ',')]
    faults: Vec<FaultKind>,
    /// Make client 0 lie, to see the checkers catch it (the run must then fail).
    #[arg(long, value_enum)]
    plant: Option<LivePlant>,
    /// The rsl-kv binary (default: next to this one).
    #[arg(long)]
    exe: Option<PathBuf>,
    /// The run directory (default: a new one in the temporary directory).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Keep the run directory when the run passes (it is always kept when it does not).
    #[arg(long)]
    keep: bool,
    /// Each replica's filesystem, in MiB.
    #[arg(long, default_value_t = 1024)]
    disk_mib: u64,
    /// The replicas' `storage.checkpoint_interval_slots`.
    #[arg(long, default_value_t = 5000)]
    checkpoint_interval_slots: u64,
    /// The replicas' `storage.log_kept_slots`.
    #[arg(long, default_value_t = 1000)]
    log_kept_slots: u64,
    /// Shorter gaps (1-2 s) and faults (2-4 s), so that a short run meets every kind of fault.
    #[arg(long)]
    quick: bool,
    /// How long a client waits for a reply before the outcome is unknown, in seconds.
    #[arg(long, default_value_t = 10)]
    op_timeout_secs: u64,
}

fn run_options(args: RunArgs) -> anyhow::Result<RunOptions> {
    let seconds = match (args.seconds, args.minutes) {
        (Some(s), _) => s,
        (None, Some(m)) => m * 60,
        (None, None) => 60,
    };
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    });
    let exe = match args.exe {
        Some(exe) => exe,
        None => std::env::current_exe()?.with_file_name("rsl-kv"),
    };
    if !exe.is_file() {
        bail!(
            "{} not found: build it (cargo build --release -p rsl-kv) or pass --exe",
            exe.display()
        );
    }
    let kinds = if args.faults.is_empty() { FaultKind::ALL.to_vec() } else { args.faults };
    let op_timeout = Duration::from_secs(args.op_timeout_secs);
    Ok(RunOptions {
        exe,
        dir: args.dir,
        duration: Duration::from_secs(seconds),
        seed,
        kinds,
        timing: if args.quick { Timing::quick() } else { Timing::default() },
        workload: WorkloadOptions {
            clients: args.clients,
            keys_per_generation: 5,
            ops_per_generation: 5_000,
            op_timeout,
            big_timeout: Duration::from_secs(60),
            read_percent: 45,
            append_percent: 48,
            rate: args.rate,
            seed,
            plant: args.plant,
        },
        disk_bytes: args.disk_mib << 20,
        cluster: ClusterOptions {
            replicas: 3,
            checkpoint_interval_slots: args.checkpoint_interval_slots,
            log_kept_slots: args.log_kept_slots,
        },
        keep: args.keep,
    })
}

fn exit_code(verdict: Verdict) -> ExitCode {
    match verdict {
        Verdict::Pass => ExitCode::SUCCESS,
        Verdict::Unsafe => ExitCode::from(1),
        Verdict::Inconclusive => ExitCode::from(2),
    }
}

async fn interrupted() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new().expect("starting the tokio runtime");
    let outcome: anyhow::Result<ExitCode> = runtime.block_on(async {
        match cli.command {
            Command::Run(args) => {
                let options = run_options(args)?;
                tokio::select! {
                    result = run::run(options) => Ok(exit_code(result?.0)),
                    signal = interrupted() => {
                        signal?;
                        // Dropping the run killed the replicas, unmounted the filesystems
                        // and deleted the namespaces.
                        eprintln!("rsl-nemesis: interrupted; cleaned up");
                        Ok(ExitCode::from(130))
                    }
                }
            }
            Command::Check { dir } => {
                let verdict = run::check_saved(&dir)
                    .with_context(|| format!("checking {}", dir.display()))?;
                println!("verdict: {verdict:?}");
                Ok(exit_code(verdict))
            }
            Command::Cleanup => {
                std::fs::create_dir_all(rsl_nemesis::netns::REGISTRY_DIR)?;
                let cleaned = rsl_nemesis::netns::clean_stale();
                for line in &cleaned {
                    println!("cleaned {line}");
                }
                println!("{} slots cleaned", cleaned.len());
                Ok(ExitCode::SUCCESS)
            }
        }
    });
    // A check still running on a blocking thread (after an interrupt) must not hold the exit.
    runtime.shutdown_background();
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("rsl-nemesis: {e:#}");
            ExitCode::from(2)
        }
    }
}
