//! `rsl-bench`: benchmark commands that print figures.
//!
//! `rsl-bench embedded` starts three replicas in this process with `Node::start` (segment
//! files with fdatasync, TCP on loopback), drives 64-byte requests at the primary from many
//! concurrent callers, and prints committed requests per second and latency percentiles; then
//! one caller with no pipelining for the latency figure. A trivial state machine (a counter)
//! keeps the figure about the engine.

#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use clap::{Parser, Subcommand};
use hdrhistogram::Histogram;
use rsl::config::{Backend, Member, NodeConfig};
use rsl::{LocalCluster, LocalOptions, Node, ReplicateError, Role, Snapshot, StateMachine};

#[derive(Parser)]
#[command(about = "rsl benchmarks: each prints its figures and the settings that produced them")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Three replicas in this process: throughput and latency of 64-byte requests.
    Embedded(EmbeddedArgs),
}

#[derive(clap::Args, Clone)]
struct EmbeddedArgs {
    /// Seconds of load for the throughput phase.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Concurrent callers in the throughput phase.
    #[arg(long, default_value_t = 512)]
    clients: usize,
    /// Request size in bytes.
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Requests each caller submits at once with `Node::replicate_batch` (1: `Node::replicate`,
    /// one call per request). Requests in flight are `clients` times `batch`.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Turn fdatasync off (the figure is then not durable; say so when you quote it).
    #[arg(long)]
    no_fsync: bool,
    /// Storage backend: file, pmem or memory.
    #[arg(long, default_value = "file")]
    backend: String,
    /// Where the replicas keep their data (a temporary directory under it).
    #[arg(long, default_value = "/tmp")]
    dir: PathBuf,
    /// Slots the primary keeps in flight.
    #[arg(long)]
    pipeline: Option<u64>,
    /// Requests in one slot's batch (`consensus.batch_requests_max`; default the library's).
    #[arg(long)]
    batch_requests_max: Option<usize>,
    /// Slots between the replicas' own checkpoints (0: none, the bench's default, so that the
    /// figure is the log's alone). A checkpoint lets a replica drop its log below it: with
    /// `--backend memory` the log otherwise grows in memory for the whole run.
    #[arg(long, default_value_t = 0)]
    checkpoint_interval_slots: u64,
    /// Slots of log a replica keeps below its checkpoint (`storage.log_kept_slots`; default
    /// the library's). With checkpoints, a small figure keeps the log, and so a memory
    /// backend's footprint, bounded for the whole run.
    #[arg(long)]
    log_kept_slots: Option<u64>,
    /// Seconds of the single-caller latency phase (0: skip it).
    #[arg(long, default_value_t = 5)]
    latency_seconds: u64,
    /// Megabytes of state each replica holds (written out by every checkpoint).
    #[arg(long, default_value_t = 64)]
    state_mb: usize,
    /// Skip the phase that measures throughput while every replica checkpoints.
    #[arg(long)]
    no_checkpoint_phase: bool,
    /// Run the replicas as an `rsl::LocalCluster`: an in-process network (no sockets; each
    /// message still encoded, checksummed and decoded) and memory disks, no files: the shape
    /// of openraft's own benchmark (`scripts/bench-openraft.sh`). `--backend`, `--no-fsync`
    /// and `--dir` do not apply (given, they are refused), and there is no checkpoint phase;
    /// `--checkpoint-interval-slots` and `--log-kept-slots` apply as to TCP replicas (the
    /// checkpoints are kept in memory).
    #[arg(long, conflicts_with_all = ["backend", "no_fsync", "dir"])]
    local: bool,
}

/// Counts requests (the response is empty), and carries `ballast` bytes of state that every
/// checkpoint writes out, so that checkpoints cost what a real state's would.
struct Counter {
    count: u64,
    ballast: Arc<Vec<u8>>,
}

impl Counter {
    fn new(state_bytes: usize) -> Counter {
        Counter { count: 0, ballast: Arc::new(vec![0x5a; state_bytes]) }
    }
}

struct CounterSnapshot(u64, Arc<Vec<u8>>);

impl Snapshot for CounterSnapshot {
    fn write_to(&self, out: &mut dyn io::Write) -> io::Result<()> {
        out.write_all(&self.0.to_le_bytes())?;
        out.write_all(&(self.1.len() as u64).to_le_bytes())?;
        out.write_all(&self.1)
    }
}

impl StateMachine for Counter {
    fn execute(&mut self, _slot: u64, _request: &[u8]) -> Bytes {
        self.count += 1;
        Bytes::new()
    }
    fn read(&self, _request: &[u8]) -> Bytes {
        Bytes::copy_from_slice(&self.count.to_le_bytes())
    }
    fn snapshot(&self) -> Box<dyn Snapshot> {
        // Cheap: the ballast is shared, not copied.
        Box::new(CounterSnapshot(self.count, self.ballast.clone()))
    }
    fn load_checkpoint(&mut self, input: &mut dyn io::Read) -> io::Result<()> {
        let mut b = [0; 8];
        input.read_exact(&mut b)?;
        self.count = u64::from_le_bytes(b);
        input.read_exact(&mut b)?;
        let mut ballast = vec![0; u64::from_le_bytes(b) as usize];
        input.read_exact(&mut ballast)?;
        self.ballast = Arc::new(ballast);
        Ok(())
    }
}

fn cluster_configs(args: &EmbeddedArgs, root: &std::path::Path) -> Result<Vec<NodeConfig>> {
    let backend = match args.backend.as_str() {
        "file" => Backend::File,
        "pmem" => Backend::Pmem,
        "memory" => Backend::Memory,
        other => bail!("unknown backend {other:?}: use file, pmem or memory"),
    };
    let mut members = Vec::new();
    for id in 1..=3 {
        // Below the ephemeral range: no outgoing connection takes one before a replica binds.
        let port = rsl_net::free_loopback_ports(1)?[0];
        members.push(Member { id, addr: format!("127.0.0.1:{port}").parse()? });
    }
    let mut configs = Vec::new();
    for id in 1..=3u32 {
        let text = format!("id = {id}\ndata_dir = {:?}\nmembers = []", root.join(id.to_string()));
        let mut c: NodeConfig = toml::from_str(&text)?;
        c.members = members.clone();
        c.storage.backend = backend;
        c.storage.fsync = !args.no_fsync;
        c.storage.checkpoint_interval_slots = args.checkpoint_interval_slots;
        if let Some(k) = args.log_kept_slots {
            c.storage.log_kept_slots = k;
        }
        consensus_knobs(args, &mut c.consensus);
        c.validate()?;
        configs.push(c);
    }
    Ok(configs)
}

/// The consensus knobs the command line sets, alike for TCP replicas and a `LocalCluster`.
fn consensus_knobs(args: &EmbeddedArgs, consensus: &mut rsl::config::Consensus) {
    if let Some(p) = args.pipeline {
        consensus.pipeline_slots_max = p;
    }
    if let Some(b) = args.batch_requests_max {
        consensus.batch_requests_max = b;
    }
}

async fn wait_primary(nodes: &[Node]) -> Result<usize> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Some(i) = nodes.iter().position(|n| n.status().role == Role::Primary) {
            // Make sure it commits: one request through.
            if nodes[i].replicate(Bytes::from_static(b"warm")).await.is_ok() {
                return Ok(i);
            }
        }
        let mut w = nodes[0].watch();
        let _ = tokio::time::timeout(Duration::from_millis(100), w.changed()).await;
    }
    bail!("no primary within 10 s")
}

struct Load {
    done: AtomicU64,
    refused: AtomicU64,
    stop: AtomicBool,
}

/// Asks every replica for a checkpoint every `every` until `stop`; returns how many were asked.
async fn checkpoint_loop(nodes: Vec<Arc<Node>>, every: Duration, stop: Arc<AtomicBool>) -> u64 {
    let mut asked = 0;
    while !stop.load(Ordering::Relaxed) {
        for n in &nodes {
            n.checkpoint_now();
            asked += 1;
        }
        tokio::time::sleep(every).await;
    }
    asked
}

/// CPU seconds (user and system) this process has used, all threads together: the replicas,
/// their transport and the callers. From `/proc/self/stat` (Linux; its clock ticks are
/// `USER_HZ`, 100 a second on every Linux architecture this runs on); `None` elsewhere.
fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The fields after the command name (which is in parentheses and may hold spaces):
    // state is the first, utime the 12th, stime the 13th.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

/// What a throughput phase measured.
struct Phase {
    rate: f64,
    latencies: Histogram<u64>,
    refused: u64,
    /// CPU microseconds the whole process spent per committed request.
    cpu_micros: Option<f64>,
}

/// Under load, one call in this many is timed for the latency figures.
const LATENCY_SAMPLE_EVERY: u64 = 8;

async fn throughput(node: Arc<Node>, args: &EmbeddedArgs) -> Phase {
    let load = Arc::new(Load {
        done: AtomicU64::new(0),
        refused: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    });
    let payload = Bytes::from(vec![b'x'; args.size]);
    let mut tasks = Vec::new();
    for _ in 0..args.clients {
        let (node, load, payload) = (node.clone(), load.clone(), payload.clone());
        let batch = args.batch.max(1);
        tasks.push(tokio::spawn(async move {
            // Latencies in a plain vector, merged at the end: a histogram per caller (thousands
            // of them, 140 KB each) would thrash the cache and steal CPU from the replicas.
            // Every LATENCY_SAMPLE_EVERY-th call is timed: with thousands of callers, reading
            // the clock twice a call and storing each figure into a cold vector took a tenth
            // of the process's CPU (docs/benchmarks.md, "Timing one call in eight").
            let mut h = Vec::with_capacity(1024);
            let mut calls = 0u64;
            while !load.stop.load(Ordering::Relaxed) {
                calls += 1;
                let t = calls.is_multiple_of(LATENCY_SAMPLE_EVERY).then(Instant::now);
                if batch > 1 {
                    let outcomes = node.replicate_batch(vec![payload.clone(); batch]).await;
                    let micros = t.map(|t| t.elapsed().as_micros() as u32);
                    let (mut ok, mut refused) = (0, false);
                    for o in outcomes {
                        match o {
                            Ok(_) => ok += 1,
                            Err(ReplicateError::Overloaded) => refused = true,
                            Err(e) => panic!("request failed during the benchmark: {e}"),
                        }
                    }
                    // One latency sample a call: every request of it waited as long.
                    if let Some(micros) = micros.filter(|_| ok > 0) {
                        h.push(micros);
                    }
                    load.done.fetch_add(ok, Ordering::Relaxed);
                    if refused {
                        load.refused.fetch_add(1, Ordering::Relaxed);
                        tokio::task::yield_now().await;
                    }
                    continue;
                }
                match node.replicate(payload.clone()).await {
                    Ok(_) => {
                        if let Some(t) = t {
                            h.push(t.elapsed().as_micros() as u32);
                        }
                        load.done.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(ReplicateError::Overloaded) => {
                        load.refused.fetch_add(1, Ordering::Relaxed);
                        tokio::task::yield_now().await;
                    }
                    Err(e) => panic!("request failed during the benchmark: {e}"),
                }
            }
            h
        }));
    }
    let start = Instant::now();
    let before = load.done.load(Ordering::Relaxed);
    let cpu_before = process_cpu_seconds();
    for s in 0..args.seconds {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let done = load.done.load(Ordering::Relaxed) - before;
        eprintln!("  {:>3} s  {:>10.0} req/s", s + 1, done as f64 / start.elapsed().as_secs_f64());
    }
    let elapsed = start.elapsed().as_secs_f64();
    let done = load.done.load(Ordering::Relaxed) - before;
    let cpu = process_cpu_seconds().zip(cpu_before).map(|(after, before)| after - before);
    load.stop.store(true, Ordering::Relaxed);
    let mut all = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
    for t in tasks {
        for micros in t.await.unwrap() {
            all.record(u64::from(micros).max(1)).unwrap();
        }
    }
    Phase {
        rate: done as f64 / elapsed,
        latencies: all,
        refused: load.refused.load(Ordering::Relaxed),
        cpu_micros: cpu.map(|seconds| seconds * 1e6 / done.max(1) as f64),
    }
}

async fn latency(node: &Node, args: &EmbeddedArgs) -> Histogram<u64> {
    let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
    let payload = Bytes::from(vec![b'y'; args.size]);
    let end = Instant::now() + Duration::from_secs(args.latency_seconds);
    while Instant::now() < end {
        let t = Instant::now();
        node.replicate(payload.clone()).await.expect("request failed");
        h.record(t.elapsed().as_micros() as u64).unwrap();
    }
    h
}

fn print_histogram(label: &str, h: &Histogram<u64>) {
    println!(
        "{label}: p50 {:.3} ms  p90 {:.3} ms  p99 {:.3} ms  p99.9 {:.3} ms  max {:.3} ms  ({} samples)",
        h.value_at_quantile(0.5) as f64 / 1e3,
        h.value_at_quantile(0.9) as f64 / 1e3,
        h.value_at_quantile(0.99) as f64 / 1e3,
        h.value_at_quantile(0.999) as f64 / 1e3,
        h.max() as f64 / 1e3,
        h.len()
    );
}

async fn embedded(args: EmbeddedArgs) -> Result<()> {
    let root = tempfile::Builder::new()
        .prefix("rsl-bench-")
        .tempdir_in(&args.dir)
        .with_context(|| format!("creating a directory under {}", args.dir.display()))?;
    let state = args.state_mb << 20;
    // The local cluster's network lives as long as it does: kept to the end, its replicas
    // taken out to be shared with the callers.
    let mut local = None;
    let nodes: Vec<Node> = if args.local {
        let mut consensus = rsl::config::Consensus::default();
        consensus_knobs(&args, &mut consensus);
        // Refused here with the knob's name, where `LocalCluster::start` (a test harness)
        // would panic.
        consensus.validate()?;
        let options = LocalOptions {
            replicas: 3,
            consensus,
            checkpoint_interval_slots: args.checkpoint_interval_slots,
            log_kept_slots: args.log_kept_slots.unwrap_or(LocalOptions::default().log_kept_slots),
        };
        let cluster = local.insert(LocalCluster::start(options, |_| Counter::new(state)));
        std::mem::take(&mut cluster.nodes)
    } else {
        cluster_configs(&args, root.path())?
            .into_iter()
            .map(|c| Node::start(c, Counter::new(state)))
            .collect::<Result<_, _>>()?
    };
    let p = wait_primary(&nodes).await?;
    let nodes: Vec<Arc<Node>> = nodes.into_iter().map(Arc::new).collect();
    let setup = if args.local {
        "in-process network (LocalCluster), memory disks".to_string()
    } else {
        format!(
            "TCP loopback, backend {}, fsync {}",
            args.backend,
            if args.no_fsync { "OFF" } else { "on" }
        )
    };
    println!(
        "embedded: 3 replicas in one process, {setup}, {}-byte requests, {} callers x {} requests a call, {} s",
        args.size,
        args.clients,
        args.batch.max(1),
        args.seconds
    );
    let Phase { rate, latencies: h, refused, cpu_micros } =
        throughput(nodes[p].clone(), &args).await;
    let st = nodes[p].status();
    println!("throughput: {rate:.0} committed requests/s ({refused} refused as overloaded)");
    if let Some(micros) = cpu_micros {
        println!(
            "  CPU {micros:.2} us per committed request (the whole process: replicas and callers)"
        );
    }
    let c = &st.counters;
    let slots = c.slots_committed.max(1);
    println!(
        "  slots {}  requests/slot {:.1}  syncs {}  ",
        slots,
        c.requests_committed as f64 / slots as f64,
        c.syncs
    );
    print_histogram(
        &format!("  latency under load (one call in {LATENCY_SAMPLE_EVERY} timed)"),
        &h,
    );
    if !args.no_checkpoint_phase && !args.local {
        let stop = Arc::new(AtomicBool::new(false));
        let every = Duration::from_millis(5000);
        let ckpt = tokio::spawn(checkpoint_loop(nodes.clone(), every, stop.clone()));
        let Phase { rate: with, latencies: h, .. } = throughput(nodes[p].clone(), &args).await;
        stop.store(true, Ordering::Relaxed);
        let asked = ckpt.await?;
        println!(
            "while checkpointing ({} MB state, every replica asked every {} ms, {asked} asks): {with:.0} requests/s = {:.0}% of steady",
            args.state_mb,
            every.as_millis(),
            100.0 * with / rate
        );
        print_histogram("  latency while checkpointing", &h);
    }
    if args.latency_seconds > 0 {
        let h = latency(&nodes[p], &args).await;
        print_histogram("one caller, no pipelining", &h);
    }
    for n in &nodes {
        n.shutdown();
    }
    drop(local);
    Ok(())
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    match cli.command {
        Command::Embedded(args) => rt.block_on(embedded(args)),
    }
}
