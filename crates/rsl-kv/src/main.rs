//! The `rsl-kv` command: subcommands to run servers and administer clusters.
//!
//! `rsl-kv local-server --port P [--requirepass X]` serves the Redis protocol over a
//! [`LocalEngine`], unreplicated. The replicated subcommands (run a replica, status, cluster)
//! are added beside it as variants of [`Subcommand`].

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use rsl_kv::engine::Engine;
use rsl_kv::request::{Request, WriteOp};
use rsl_kv::server::{serve, ServerConfig};
use rsl_kv::LocalEngine;

/// A replicated key-value server on rsl, speaking the Redis protocol.
#[derive(Debug, Parser)]
#[command(name = "rsl-kv", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Subcommand,
}

#[derive(Debug, clap::Subcommand)]
enum Subcommand {
    /// Serves the Redis protocol over one in-process, unreplicated state machine.
    LocalServer(LocalServerArgs),
}

#[derive(Debug, clap::Args)]
struct LocalServerArgs {
    /// The client port (0: any free port, printed at start).
    #[arg(long, default_value_t = 6379)]
    port: u16,
    /// The address to listen on.
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    bind: IpAddr,
    /// The password clients must give with AUTH.
    #[arg(long)]
    requirepass: Option<String>,
    /// How often to advance the machine's clock with a tick write, so that keys expire
    /// without other writes, in milliseconds (0: never).
    #[arg(long, default_value_t = 100)]
    tick_ms: u64,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
    match cli.command {
        Subcommand::LocalServer(args) => runtime.block_on(local_server(args)),
    }
}

async fn local_server(args: LocalServerArgs) -> anyhow::Result<()> {
    let addr = SocketAddr::new(args.bind, args.port);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("listening on {addr}"))?;
    let engine = Arc::new(LocalEngine::new());
    let config = ServerConfig { requirepass: args.requirepass, ..ServerConfig::default() };
    if args.tick_ms > 0 {
        tokio::spawn(tick(Arc::clone(&engine), config.clock.clone(), args.tick_ms));
    }
    let bound = listener.local_addr().context("reading the bound address")?;
    tracing::info!(%bound, "rsl-kv local server listening (unreplicated)");
    // Scripts and tests read the address (the port may have been 0) from this first line.
    println!("rsl-kv: listening on {bound} (local, unreplicated)");
    std::io::Write::flush(&mut std::io::stdout()).context("writing to stdout")?;
    serve(listener, engine, config).await.context("serving clients")
}

/// Advances the machine's clock periodically, as a replicated engine's primary would.
async fn tick(engine: Arc<LocalEngine>, clock: rsl_kv::Clock, period_ms: u64) {
    let mut interval = tokio::time::interval(Duration::from_millis(period_ms));
    loop {
        interval.tick().await;
        let request = Request::Write { stamp_ms: clock(), op: WriteOp::Tick };
        let _ = engine.write(request.encode()).await;
    }
}
