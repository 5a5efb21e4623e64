//! `rsl-bank`: an example service on rsl, a bank replicated over three processes.
//!
//! ```sh
//! cargo run -p rsl-bank -- demo        # 3 replica processes; a follower and then the primary
//!                                      # are killed (-9) and restarted; balances checked
//! rsl-bank replica --config bank-1.toml  # one replica, driven by commands on stdin
//! ```
//!
//! The code to read is `bank.rs` (the state machine) and `replica.rs` (starting a node,
//! replicating, reading, following the primary); `demo.rs` only orchestrates processes.

mod bank;
mod demo;
mod replica;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "A replicated bank on rsl: an example service over three processes")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs one replica from an rsl configuration file, driven by commands on stdin.
    Replica {
        #[arg(long)]
        config: PathBuf,
    },
    /// Starts three replicas, moves money while killing and restarting them, checks balances.
    Demo {
        /// Transfers in each phase of the demo.
        #[arg(long, default_value_t = 200)]
        transfers: u32,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Replica { config } => replica::run(&config),
        Command::Demo { transfers } => demo::run(transfers),
    }
}
