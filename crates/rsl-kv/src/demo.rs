//! `rsl-kv cluster`: a local 3-replica cluster, a demo workload, a primary killed with
//! SIGKILL (or, with `--fault pause`, paused with SIGSTOP) mid-run, the failover timed, every
//! acknowledged write checked, and a summary.
//!
//! The replicas are separate processes (this same executable, `run --config`), started by
//! [`rsl_kv::launch::Cluster`], which kills them on every way out of this function: a
//! normal return, an error, Ctrl-C or SIGTERM (the select below drops the demo and the
//! cluster), and a panic (unwinding drops the cluster).
//!
//! The workload: several clients, each on its own connection to a replica (spread over all
//! of them, so most requests are forwarded to the primary), repeat `SET key:C:N value`,
//! `INCR counter:C`, `GET key:C:N`. A SET is retried until acknowledged (it is idempotent),
//! so client C's acknowledged keys are exactly `key:C:0 .. key:C:count`. The failover time
//! is from the kill to the first write *sent after the kill* that was acknowledged: such a
//! write can only have been committed by a new primary. The longest unavailability is the
//! longest time one client waited between two acknowledged operations through a replica that
//! was not the faulted one (a client reconnecting after its replica's fault starts afresh):
//! the time a client of a surviving replica saw no success, requests it was already waiting
//! on included.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use bytes::Bytes;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use rsl_kv::admin::{fetch_status, status_table, StatusReport};
use rsl_kv::client::Reach;
use rsl_kv::client::{describe, Client};
use rsl_kv::launch::{Cluster, ClusterOptions};
use rsl_kv::resp::Reply;
use tokio::sync::Notify;
use tokio::time::Instant;

/// Options of `rsl-kv cluster`.
#[derive(Debug, clap::Args)]
pub struct ClusterArgs {
    /// How long the demo workload runs, in seconds.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Concurrent demo clients.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Start the cluster, print its addresses and a `ready` line, and serve until Ctrl-C or
    /// SIGTERM (for benchmarks).
    #[arg(long, hide = true)]
    serve_only: bool,
    /// Turn fdatasync off (only with --serve-only, for benchmarks that say so).
    #[arg(long, hide = true)]
    no_fsync: bool,
    /// What happens to the primary a third of the way in: `kill` (SIGKILL, restarted from
    /// its disk later) or `pause` (SIGSTOP, resumed with SIGCONT later).
    #[arg(long, value_enum, default_value_t = Fault::Kill)]
    fault: Fault,
    /// Instead of the fault: replace every member, one at a time, by a new process on new
    /// addresses with a new data directory (add a learner, wait for it to catch up, promote
    /// it, remove an original member), under the clients' writes, and report.
    #[arg(long, conflicts_with_all = ["fault", "serve_only"])]
    pub(crate) replace_all: bool,
}

/// The fault the demo injects into the primary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Fault {
    /// SIGKILL, then a restart from the replica's disk.
    Kill,
    /// SIGSTOP, then SIGCONT.
    Pause,
}

/// How long to wait for an election before giving up.
const ELECTION_WAIT: Duration = Duration::from_secs(10);
/// How long a demo client waits for one reply.
const REPLY_WAIT: Duration = Duration::from_secs(10);
/// The pause of a demo client after an error reply or a broken connection.
const CLIENT_RETRY_PAUSE: Duration = Duration::from_millis(10);

pub async fn cluster(args: ClusterArgs) -> anyhow::Result<()> {
    if args.seconds < 5 && !args.serve_only {
        bail!("--seconds: the demo needs at least 5 seconds");
    }
    if args.clients == 0 {
        bail!("--clients: at least one");
    }
    let exe = std::env::current_exe().context("finding this executable")?;
    let started = Instant::now();
    let options = ClusterOptions { fsync: !args.no_fsync, ..ClusterOptions::default() };
    if args.replace_all {
        return crate::replace_demo::run(&exe, options, args.clients).await;
    }
    let mut cluster = Cluster::start(&exe, options).await?;
    println!(
        "rsl-kv local cluster: {} replicas as separate processes on 127.0.0.1, mutual TLS, fsync {}",
        cluster.replicas().len(),
        if args.no_fsync { "off" } else { "on" }
    );
    println!("  files (removed at exit): {}", cluster.dir().display());
    for r in cluster.replicas() {
        println!(
            "  replica {}: pid {:<7} client {}  peers {}  metrics http://{}/metrics",
            r.id,
            cluster.pid(r.id).unwrap_or(0),
            r.client_addr,
            r.peer_addr,
            r.metrics_addr
        );
    }
    let outcome = tokio::select! {
        outcome = run(&mut cluster, &args, started) => outcome,
        signal = crate::shutdown_signal() => {
            println!("\ninterrupted: stopping the replicas");
            signal
        }
    };
    cluster.stop().await;
    outcome
}

async fn run(cluster: &mut Cluster, args: &ClusterArgs, started: Instant) -> anyhow::Result<()> {
    let primary = cluster.wait_primary(None, ELECTION_WAIT).await?;
    println!(
        "primary: replica {primary} (elected {} ms after the launch)",
        started.elapsed().as_millis()
    );
    if args.serve_only {
        println!("primary-client {}", cluster.replica(primary).client_addr);
        println!("ready");
        std::future::pending::<()>().await;
    }
    demo(cluster, args).await
}

/// What the demo clients share.
struct Shared {
    epoch: Instant,
    stop: AtomicBool,
    ops: AtomicU64,
    errors: AtomicU64,
    wrong_reads: AtomicU64,
    /// Nanoseconds since `epoch` of the kill; `u64::MAX` before it.
    kill_ns: AtomicU64,
    /// Nanoseconds since `epoch` of the first acknowledgement of a write sent after the kill.
    first_ack_after_kill_ns: AtomicU64,
    failover_done: Notify,
    /// The id of the faulted replica; 0 before the fault.
    faulted: AtomicU32,
}

impl Shared {
    fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    fn write_acked(&self, sent_ns: u64) {
        if sent_ns > self.kill_ns.load(Ordering::Acquire) {
            let before = self.first_ack_after_kill_ns.fetch_min(self.now_ns(), Ordering::AcqRel);
            if before == u64::MAX {
                self.failover_done.notify_waiters();
            }
        }
    }
}

/// One demo client's results.
struct ClientResult {
    latency: Histogram<u64>,
    sets_acked: u64,
    incrs_acked: u64,
    incrs_sent: u64,
    /// The longest time between two acknowledged operations through one replica that was not
    /// faulted, and that replica's id.
    longest_gap: (Duration, u32),
}

fn key(client: usize, n: u64) -> String {
    format!("key:{client}:{n}")
}

fn value(client: usize, n: u64) -> String {
    format!("value-{client}-{n}-{}", "x".repeat(32))
}

/// Sends one command; `Err` means the connection is gone (reconnect elsewhere).
async fn timed(
    conn: &mut Client,
    args: &[&str],
    latency: &mut Histogram<u64>,
) -> std::io::Result<Reply> {
    let started = Instant::now();
    let reply = conn.cmd(args).await?;
    if !matches!(reply, Reply::Error(_)) {
        let _ = latency.record(started.elapsed().as_micros().max(1) as u64);
    }
    Ok(reply)
}

async fn client(id: usize, addrs: Vec<SocketAddr>, shared: Arc<Shared>) -> ClientResult {
    let mut result = ClientResult {
        latency: Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds"),
        sets_acked: 0,
        incrs_acked: 0,
        incrs_sent: 0,
        longest_gap: (Duration::ZERO, 0),
    };
    let mut target = id % addrs.len();
    let mut conn: Option<Client> = None;
    // The last acknowledgement on this connection (or when it was made).
    let mut last_ok = Instant::now();
    // Replica ids are 1-based, in the order of `addrs`.
    let replica_of = |target: usize| target as u32 + 1;
    let counter = format!("counter:{id}");
    while !shared.stop.load(Ordering::Relaxed) {
        let Some(c) = conn.as_mut() else {
            match Client::connect(addrs[target], REPLY_WAIT).await {
                Ok(c) => {
                    conn = Some(c);
                    last_ok = Instant::now();
                }
                Err(_) => {
                    target = (target + 1) % addrs.len();
                    tokio::time::sleep(CLIENT_RETRY_PAUSE).await;
                }
            }
            continue;
        };
        let n = result.sets_acked;
        let (k, v) = (key(id, n), value(id, n));
        let outcome = async {
            let sent = shared.now_ns();
            let reply = timed(c, &["SET", &k, &v], &mut result.latency).await?;
            if reply != Reply::ok() {
                return Ok(Some(reply));
            }
            shared.write_acked(sent);
            result.sets_acked += 1;
            shared.ops.fetch_add(1, Ordering::Relaxed);
            result.incrs_sent += 1;
            let sent = shared.now_ns();
            match timed(c, &["INCR", &counter], &mut result.latency).await? {
                Reply::Integer(_) => {
                    shared.write_acked(sent);
                    result.incrs_acked += 1;
                    shared.ops.fetch_add(1, Ordering::Relaxed);
                }
                other => return Ok(Some(other)),
            }
            match timed(c, &["GET", &k], &mut result.latency).await? {
                Reply::Bulk(got) if got == v.as_bytes() => {}
                Reply::Error(e) => return Ok(Some(Reply::Error(e))),
                _ => {
                    shared.wrong_reads.fetch_add(1, Ordering::Relaxed);
                }
            }
            shared.ops.fetch_add(1, Ordering::Relaxed);
            std::io::Result::Ok(None)
        }
        .await;
        if result.sets_acked > n {
            // At least the SET was acknowledged: a success on this connection.
            let replica = replica_of(target);
            if shared.faulted.load(Ordering::Acquire) != replica {
                let gap = last_ok.elapsed();
                if gap > result.longest_gap.0 {
                    result.longest_gap = (gap, replica);
                }
            }
            last_ok = Instant::now();
        }
        match outcome {
            Ok(None) => {}
            Ok(Some(_error)) => {
                shared.errors.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(CLIENT_RETRY_PAUSE).await;
            }
            Err(_) => {
                shared.errors.fetch_add(1, Ordering::Relaxed);
                conn = None;
                target = (target + 1) % addrs.len();
            }
        }
    }
    result
}

async fn demo(cluster: &mut Cluster, args: &ClusterArgs) -> anyhow::Result<()> {
    let seconds = args.seconds;
    let addrs: Vec<SocketAddr> = cluster.replicas().iter().map(|r| r.client_addr).collect();
    let shared = Arc::new(Shared {
        epoch: Instant::now(),
        stop: AtomicBool::new(false),
        ops: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        wrong_reads: AtomicU64::new(0),
        kill_ns: AtomicU64::new(u64::MAX),
        first_ack_after_kill_ns: AtomicU64::new(u64::MAX),
        failover_done: Notify::new(),
        faulted: AtomicU32::new(0),
    });
    println!(
        "workload: {} clients, each SET key / INCR counter / GET key in a loop, spread over all \
         replicas (followers forward to the primary), for {seconds} s",
        args.clients
    );
    let clients: Vec<_> = (0..args.clients)
        .map(|i| tokio::spawn(client(i, addrs.clone(), Arc::clone(&shared))))
        .collect();
    let bar = progress_bar(seconds);
    let ticker = tokio::spawn(tick_progress(bar.clone(), Arc::clone(&shared)));
    let end = shared.epoch + Duration::from_secs(seconds);
    let kill_at = shared.epoch + Duration::from_secs(seconds) * 35 / 100;
    let restart_at = shared.epoch + Duration::from_secs(seconds) * 65 / 100;

    tokio::time::sleep_until(kill_at).await;
    let old = cluster.wait_primary(None, ELECTION_WAIT).await?;
    let failover_done = shared.failover_done.notified();
    tokio::pin!(failover_done);
    failover_done.as_mut().enable();
    shared.faulted.store(old, Ordering::Release);
    shared.kill_ns.store(shared.now_ns(), Ordering::Release);
    let killed = Instant::now();
    let done = match args.fault {
        Fault::Kill => {
            cluster.kill(old).await?;
            format!("killed the primary, replica {old}, with SIGKILL")
        }
        Fault::Pause => {
            cluster.signal(old, libc::SIGSTOP)?;
            format!("paused the primary, replica {old}, with SIGSTOP")
        }
    };
    say(&bar, format!("  t={:>5.1}s  {done}", shared.epoch.elapsed().as_secs_f64()));
    let new = cluster.wait_primary(Some(old), ELECTION_WAIT).await?;
    say(
        &bar,
        format!(
            "  t={:>5.1}s  replica {new} elected primary, {} ms after the kill",
            shared.epoch.elapsed().as_secs_f64(),
            killed.elapsed().as_millis()
        ),
    );
    tokio::time::timeout(ELECTION_WAIT, failover_done).await.context("no write after the kill")?;
    let failover = Duration::from_nanos(
        shared.first_ack_after_kill_ns.load(Ordering::Acquire)
            - shared.kill_ns.load(Ordering::Acquire),
    );
    say(
        &bar,
        format!(
            "  t={:>5.1}s  first write committed by the new primary {} ms after the kill",
            shared.epoch.elapsed().as_secs_f64(),
            failover.as_millis()
        ),
    );

    tokio::time::sleep_until(restart_at).await;
    let done = match args.fault {
        Fault::Kill => {
            cluster.restart(old).await?;
            format!("restarted replica {old} from its disk (it catches up as a follower)")
        }
        Fault::Pause => {
            cluster.signal(old, libc::SIGCONT)?;
            format!("resumed replica {old} with SIGCONT (it rejoins as a follower)")
        }
    };
    say(&bar, format!("  t={:>5.1}s  {done}", shared.epoch.elapsed().as_secs_f64()));
    tokio::time::sleep_until(end).await;
    shared.stop.store(true, Ordering::Relaxed);
    let elapsed = shared.epoch.elapsed();
    let mut results = Vec::new();
    for c in clients {
        results.push(c.await.context("a demo client panicked")?);
    }
    ticker.abort();
    bar.finish_and_clear();
    let primary = cluster.wait_primary(None, ELECTION_WAIT).await?;
    let primary_addr = cluster.replica(primary).client_addr;
    let verified = verify(primary_addr, &results).await?;
    let reports = caught_up(primary_addr, old).await?;
    summary(&shared, &results, elapsed, (args.fault, failover), &verified);
    println!(
        "\nreplicas (as each reports itself; lag in executed slots behind the most advanced):"
    );
    print!("{}", status_table(&reports));
    if verified.missing > 0
        || verified.bad_counters > 0
        || shared.wrong_reads.load(Ordering::Relaxed) > 0
    {
        bail!("acknowledged writes were lost or reads were wrong (see above)");
    }
    Ok(())
}

/// Prints an event line above the bar (or alone, when the bar is hidden off a terminal).
fn say(bar: &ProgressBar, line: String) {
    if bar.is_hidden() {
        println!("{line}");
    } else {
        bar.println(line);
    }
}

fn progress_bar(seconds: u64) -> ProgressBar {
    let bar = ProgressBar::new(seconds * 10);
    let style = ProgressStyle::with_template("  [{bar:40.cyan/blue}] {elapsed:>3} {msg}")
        .expect("a valid template")
        .progress_chars("=> ");
    bar.set_style(style);
    bar
}

async fn tick_progress(bar: ProgressBar, shared: Arc<Shared>) {
    let mut interval = tokio::time::interval(Duration::from_millis(100));
    let mut window = std::collections::VecDeque::new();
    loop {
        interval.tick().await;
        let ops = shared.ops.load(Ordering::Relaxed);
        window.push_back((Instant::now(), ops));
        if window.len() > 10 {
            window.pop_front();
        }
        let (t0, ops0) = window[0];
        let rate = (ops - ops0) as f64 / t0.elapsed().as_secs_f64().max(0.1);
        let tenths = (shared.epoch.elapsed().as_millis() / 100) as u64;
        let message = format!(
            "{ops} ops, {rate:>7.0} ops/s, {} errors retried",
            shared.errors.load(Ordering::Relaxed)
        );
        if bar.is_hidden() && tenths.is_multiple_of(50) && tenths > 0 {
            // Off a terminal the bar is hidden: a line every 5 s instead.
            println!("  t={:>5.1}s  {message}", tenths as f64 / 10.0);
        }
        bar.set_position(tenths);
        bar.set_message(message);
    }
}

/// What reading back every acknowledged write found.
struct Verified {
    keys: u64,
    missing: u64,
    counters: usize,
    bad_counters: usize,
}

async fn verify(addr: SocketAddr, results: &[ClientResult]) -> anyhow::Result<Verified> {
    let mut conn = Client::connect(addr, REPLY_WAIT).await?;
    let mut verified = Verified { keys: 0, missing: 0, counters: results.len(), bad_counters: 0 };
    for (id, r) in results.iter().enumerate() {
        let keys: Vec<String> = (0..r.sets_acked).map(|n| key(id, n)).collect();
        for (chunk_index, chunk) in keys.chunks(500).enumerate() {
            let mut args = vec!["MGET"];
            args.extend(chunk.iter().map(String::as_str));
            let Reply::Array(values) = conn.cmd(&args).await? else { bail!("MGET failed") };
            for (j, got) in values.iter().enumerate() {
                let n = (chunk_index * 500 + j) as u64;
                verified.keys += 1;
                if *got != Reply::Bulk(Bytes::from(value(id, n))) {
                    verified.missing += 1;
                    eprintln!("LOST: {} is {}", key(id, n), describe(got));
                }
            }
        }
        let counter = format!("counter:{id}");
        let got = match conn.cmd(&["GET", &counter]).await? {
            Reply::Bulk(b) => String::from_utf8_lossy(&b).parse::<u64>().unwrap_or(0),
            _ => 0,
        };
        if got < r.incrs_acked || got > r.incrs_sent {
            verified.bad_counters += 1;
            eprintln!(
                "BAD: {counter} is {got}, but {} INCRs were acknowledged of {} sent",
                r.incrs_acked, r.incrs_sent
            );
        }
    }
    Ok(verified)
}

/// Waits (bounded) until the restarted replica has executed what the primary had executed,
/// and returns every member's status. No event announces catching up, so this polls.
async fn caught_up(addr: SocketAddr, restarted: u32) -> anyhow::Result<Vec<StatusReport>> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let reports = fetch_status(addr, Reach::default(), REPLY_WAIT).await?;
    let target = reports.iter().filter_map(|r| r.number("rsl_executed_slot")).max().unwrap_or(0);
    loop {
        let reports = fetch_status(addr, Reach::default(), REPLY_WAIT).await?;
        let executed = reports
            .iter()
            .find(|r| r.get("rsl_replica_id") == restarted.to_string())
            .and_then(|r| r.number("rsl_executed_slot"))
            .unwrap_or(0);
        if executed >= target || Instant::now() >= deadline {
            return Ok(reports);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn summary(
    shared: &Shared,
    results: &[ClientResult],
    elapsed: Duration,
    (fault, failover): (Fault, Duration),
    verified: &Verified,
) {
    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid bounds");
    for r in results {
        latency.add(&r.latency).expect("same bounds");
    }
    let ops = shared.ops.load(Ordering::Relaxed);
    let writes: u64 = results.iter().map(|r| r.sets_acked + r.incrs_acked).sum();
    let ms = |micros: u64| micros as f64 / 1000.0;
    println!("\nsummary");
    println!(
        "  throughput   {ops} operations acknowledged in {:.1} s: {:.0} ops/s ({writes} writes, \
         each committed on a majority with fdatasync)",
        elapsed.as_secs_f64(),
        ops as f64 / elapsed.as_secs_f64()
    );
    println!(
        "  latency      p50 {:.2} ms   p99 {:.2} ms   p99.9 {:.2} ms   max {:.1} ms   ({} samples)",
        ms(latency.value_at_quantile(0.5)),
        ms(latency.value_at_quantile(0.99)),
        ms(latency.value_at_quantile(0.999)),
        ms(latency.max()),
        latency.len()
    );
    let signal = match fault {
        Fault::Kill => "SIGKILL",
        Fault::Pause => "SIGSTOP",
    };
    println!(
        "  failover     {} ms from {signal} of the primary to the first write committed by the \
         new one (target < 2000 ms)",
        failover.as_millis()
    );
    let (gap, replica) = results.iter().map(|r| r.longest_gap).max().unwrap_or_default();
    println!(
        "  unavailable  {} ms at most: the longest wait of one client between two acknowledged \
         operations through a replica that was not faulted (replica {replica})",
        gap.as_millis()
    );
    println!(
        "  errors       {} replies retried (TRYAGAIN during the election, or a connection to \
         the killed replica)",
        shared.errors.load(Ordering::Relaxed)
    );
    println!(
        "  verified     {} of {} acknowledged SETs read back; {} of {} counters within \
         [acknowledged, sent] INCRs; {} wrong reads",
        verified.keys - verified.missing,
        verified.keys,
        verified.counters - verified.bad_counters,
        verified.counters,
        shared.wrong_reads.load(Ordering::Relaxed)
    );
}
