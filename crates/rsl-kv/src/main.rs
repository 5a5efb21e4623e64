//! The `rsl-kv` command: subcommands to run servers and administer clusters.
//!
//! - `run --config FILE`: one replica of a replicated cluster ([`ReplicatedEngine`]);
//! - `status`, `transfer`, `checkpoint`: admin commands sent to any member's client port;
//! - `cluster`: a local 3-replica cluster with a demo workload and a failover (`demo`), or
//!   with every member replaced under load (`--replace-all`, `replace_demo`);
//! - `certs`: a CA and replica and client certificates (`certs`);
//! - `local-server`: the Redis protocol over a [`LocalEngine`], unreplicated.

mod certs;
mod demo;
mod replace_demo;

/// The servers allocate per request; mimalloc keeps that off the profile (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use rsl_kv::admin::{admin_command, fetch_status, status_table};
use rsl_kv::client::Reach;
use rsl_kv::engine::Engine;
use rsl_kv::request::{Request, WriteOp};
use rsl_kv::server::{serve, ServerConfig};
use rsl_kv::tls::{AuthClients, ServerTlsFiles, TlsArgs};
use rsl_kv::{KvConfig, KvMachine, LocalEngine, ReplicatedEngine, ReplicatedOptions};

/// A replicated key-value server on rsl, speaking the Redis protocol.
#[derive(Debug, Parser)]
#[command(name = "rsl-kv", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Subcommand,
}

#[derive(Debug, clap::Subcommand)]
enum Subcommand {
    /// Runs one replica of a replicated cluster, configured by a TOML file.
    Run(RunArgs),
    /// Prints every member's status as a table (asks any member).
    Status(AdminArgs),
    /// Hands primacy to another replica.
    Transfer(TransferArgs),
    /// Takes a checkpoint of one replica's state now.
    Checkpoint(AdminArgs),
    /// Lists the members, or adds, promotes, removes or replaces one (through any member).
    Member(rsl_kv::members::MemberArgs),
    /// Starts a local 3-replica cluster, runs a demo workload, kills the primary and reports.
    Cluster(demo::ClusterArgs),
    /// Writes a CA and certificates for replicas and a client, in PEM, into a directory.
    Certs(certs::CertsArgs),
    /// Serves the Redis protocol over one in-process, unreplicated state machine.
    LocalServer(LocalServerArgs),
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// The configuration file (see the README for every field).
    #[arg(long)]
    config: PathBuf,
}

#[derive(Debug, clap::Args)]
struct AdminArgs {
    /// The client address of any member.
    #[arg(long, default_value = "127.0.0.1:6379")]
    addr: SocketAddr,
    /// The client password, if the cluster has one.
    #[arg(long)]
    password: Option<String>,
    /// TLS, when the client ports speak it.
    #[command(flatten)]
    tls: TlsArgs,
}

impl AdminArgs {
    /// Sends one admin command and returns the reply as text.
    async fn command(&self, args: &[&str]) -> anyhow::Result<String> {
        let tls = self.tls.client_tls()?;
        let reach = Reach { password: self.password.as_deref(), tls: tls.as_ref() };
        Ok(admin_command(self.addr, reach, args, ADMIN_WAIT).await?)
    }
}

#[derive(Debug, clap::Args)]
struct TransferArgs {
    #[command(flatten)]
    admin: AdminArgs,
    /// The replica that should become primary.
    #[arg(long)]
    to: u32,
}

/// How long an admin subcommand waits for an answer.
const ADMIN_WAIT: Duration = Duration::from_secs(10);

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
    /// TLS on the port (then TLS only): the server's certificate chain, PEM.
    #[arg(long, value_name = "FILE", requires = "tls_key_file")]
    tls_cert_file: Option<PathBuf>,
    /// The server certificate's private key, PEM.
    #[arg(long, value_name = "FILE", requires = "tls_cert_file")]
    tls_key_file: Option<PathBuf>,
    /// The CA that client certificates must chain to, PEM (unless --tls-auth-clients no).
    #[arg(long, value_name = "FILE", requires = "tls_cert_file")]
    tls_ca_cert_file: Option<PathBuf>,
    /// Whether clients must present a certificate.
    #[arg(long, value_enum, default_value_t = AuthClients::Yes, requires = "tls_cert_file")]
    tls_auth_clients: AuthClients,
}

fn main() -> anyhow::Result<()> {
    init_logs();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
    match cli.command {
        Subcommand::Run(args) => runtime.block_on(run(args)),
        Subcommand::Status(args) => runtime.block_on(status(args)),
        Subcommand::Transfer(args) => runtime.block_on(transfer(args)),
        Subcommand::Checkpoint(args) => runtime.block_on(checkpoint(args)),
        Subcommand::Member(args) => runtime.block_on(async {
            let addr = args.addr;
            let out = rsl_kv::members::member(args).await;
            print!("{}", out.with_context(|| format!("asking {addr}"))?);
            Ok(())
        }),
        Subcommand::Cluster(args) => runtime.block_on(demo::cluster(args)),
        Subcommand::Certs(args) => certs::certs(args),
        Subcommand::LocalServer(args) => runtime.block_on(local_server(args)),
    }
}

/// Logs to stderr at `info` unless `RUST_LOG` says otherwise, with colours only when stderr
/// is a terminal (a file or a pipe gets plain text).
fn init_logs() {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::builder()
        .with_default_directive(tracing_subscriber::filter::LevelFilter::INFO.into())
        .from_env_lossy();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    let config = KvConfig::from_file(&args.config)?;
    // Bad TLS files stop the replica here, before it takes part in the cluster.
    let tls = config.server_tls().map(|f| f.acceptor(rsl_kv::tls::CONFIG_NAMES)).transpose()?;
    let relay_tls = config.relay_tls()?;
    let listen = config.listen_addr();
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("kv.listen: listening on {listen}"))?;
    let node_config = config.node.clone();
    let hub = rsl_kv::Hub::new();
    let machine = KvMachine::with_hub(hub.clone());
    let reader = machine.reader();
    let node = tokio::task::spawn_blocking(move || rsl::Node::start(node_config, machine))
        .await
        .context("starting the replica")?
        .context("starting the replica")?;
    let node = Arc::new(node);
    let server =
        ServerConfig { requirepass: config.kv.requirepass.clone(), tls, ..ServerConfig::default() };
    let options = ReplicatedOptions {
        clients: config.client_addrs(),
        requirepass: config.kv.requirepass.clone(),
        clock: server.clock.clone(),
        reads: config.kv.reads,
        tls: relay_tls,
        reader: Some(reader),
    };
    let engine = Arc::new(ReplicatedEngine::with_hub(Arc::clone(&node), options, hub));
    if config.kv.tick_ms > 0 {
        engine.start_ticks(Duration::from_millis(config.kv.tick_ms));
    }
    let id = config.node.id;
    tracing::info!(id, %listen, "rsl-kv replica listening");
    // Launchers read this first line, then one line per change of role, primary or ballot.
    println!("{}{listen} (replica {id})", rsl_kv::launch::LISTENING_LINE_PREFIX);
    tokio::spawn(report_roles(Arc::clone(&node)));
    let outcome = tokio::select! {
        served = serve(listener, engine, server) => served.context("serving clients"),
        signal = shutdown_signal() => signal,
        cause = replica_stopped(&node) => {
            // A replica a membership change removed is no longer needed: a clean exit.
            let removed = rsl::Health::Stopped(rsl::StopCause::Removed);
            if node.watch().borrow().health == removed {
                tracing::warn!(id, cause, "removed from the membership: exiting");
                Ok(())
            } else {
                Err(anyhow::anyhow!("replica {id} stopped on its own: {cause}"))
            }
        }
    };
    let stopping = Arc::clone(&node);
    tokio::task::spawn_blocking(move || stopping.shutdown()).await.context("shutting down")?;
    outcome
}

/// Resolves once the replica has stopped on its own (a storage failure, a state machine
/// panic), with the cause in words.
async fn replica_stopped(node: &rsl::Node) -> String {
    let mut view = node.watch();
    // A closed watch means the node is gone; its status still says why.
    let _ = view.wait_for(|v| matches!(v.health, rsl::Health::Stopped(_))).await;
    let status = node.status();
    status.stop_reason.unwrap_or_else(|| status.health.to_string())
}

/// Prints a line every time the replica's role, primary or ballot changes.
async fn report_roles(node: Arc<rsl::Node>) {
    let mut view = node.watch();
    loop {
        let seen = *view.borrow_and_update();
        let ballot_replica = node.status().ballot_replica;
        println!("{}", rsl_kv::launch::role_line(node.id(), &seen, ballot_replica));
        if view.changed().await.is_err() {
            return;
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
pub(crate) async fn shutdown_signal() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        interrupted = tokio::signal::ctrl_c() => interrupted?,
        _ = term.recv() => {}
    }
    Ok(())
}

async fn status(args: AdminArgs) -> anyhow::Result<()> {
    let tls = args.tls.client_tls()?;
    let reach = Reach { password: args.password.as_deref(), tls: tls.as_ref() };
    let reports = fetch_status(args.addr, reach, ADMIN_WAIT)
        .await
        .with_context(|| format!("asking {} for the cluster's status", args.addr))?;
    print!("{}", status_table(&reports));
    Ok(())
}

async fn transfer(args: TransferArgs) -> anyhow::Result<()> {
    let to = args.to.to_string();
    println!("{}", args.admin.command(&["RSL.TRANSFER", to.as_str()]).await?);
    Ok(())
}

async fn checkpoint(args: AdminArgs) -> anyhow::Result<()> {
    println!("{}", args.command(&["RSL.CHECKPOINT"]).await?);
    Ok(())
}

async fn local_server(args: LocalServerArgs) -> anyhow::Result<()> {
    let addr = SocketAddr::new(args.bind, args.port);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("listening on {addr}"))?;
    let tls = match (args.tls_cert_file, args.tls_key_file) {
        (Some(cert), Some(key)) => {
            let files = ServerTlsFiles {
                cert,
                key,
                ca: args.tls_ca_cert_file,
                auth_clients: args.tls_auth_clients,
            };
            Some(files.acceptor(rsl_kv::tls::FLAG_NAMES)?)
        }
        _ => None,
    };
    let engine = Arc::new(LocalEngine::new());
    let config = ServerConfig { requirepass: args.requirepass, tls, ..ServerConfig::default() };
    if args.tick_ms > 0 {
        tokio::spawn(tick(Arc::clone(&engine), config.clock.clone(), args.tick_ms));
    }
    let bound = listener.local_addr().context("reading the bound address")?;
    tracing::info!(%bound, "rsl-kv local server listening (unreplicated)");
    // Scripts and tests read the address (the port may have been 0) from this first line.
    let tls = if config.tls.is_some() { ", TLS" } else { "" };
    println!("rsl-kv: listening on {bound} (local, unreplicated{tls})");
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
