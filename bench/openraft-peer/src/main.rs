//! openraft's client_write throughput with three voters in one process, measured the way
//! openraft's own `benchmarks/minimal` measures it, and reported the way `rsl-bench embedded`
//! reports its own: committed writes per second and CPU microseconds per committed write for
//! the whole process. See README.md.

mod cluster;
mod store;

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::time::Duration;
use std::time::Instant;

use bytes::Bytes;
use futures_util::StreamExt;
use openraft::async_runtime::WatchReceiver;

use cluster::Replica;
use cluster::Write;

#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The openraft version this is built against (Cargo.toml pins it).
const OPENRAFT: &str = "0.10.0-alpha.37";

const USAGE: &str = "\
usage: openraft-peer [--clients N] [--seconds S] [--size BYTES] [--batch N]
                     [--workers N] [--client-workers N]

  --clients N         concurrent callers, each with one call in flight (default 4096)
  --seconds S         seconds of load (default 6)
  --size BYTES        body bytes of each write (default 64; 0 is openraft's bench's empty one)
  --batch N           writes a call: 1 is Raft::client_write, more is Raft::client_write_many
                      with N writes (default 1)
  --workers N         worker threads of the tokio runtime the replicas run on (default: tokio's
                      default, one per CPU)
  --client-workers N  run the callers on a runtime of their own with N workers (default: the
                      callers share the replicas' runtime); openraft's benchmarks/minimal runs
                      --workers 16 --client-workers 2 (its code) or 1 (its README)";

struct Opts {
    clients: u64,
    seconds: u64,
    size: usize,
    batch: usize,
    workers: Option<usize>,
    client_workers: Option<usize>,
}

fn parse_args() -> Result<Opts, String> {
    let mut o =
        Opts { clients: 4096, seconds: 6, size: 64, batch: 1, workers: None, client_workers: None };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "-h" || flag == "--help" {
            return Err(String::new());
        }
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = |v: &str| v.parse::<u64>().map_err(|e| format!("{flag} {v}: {e}"));
        match flag.as_str() {
            "--clients" => o.clients = number(&value)?,
            "--seconds" => o.seconds = number(&value)?,
            "--size" => o.size = number(&value)? as usize,
            "--batch" => o.batch = number(&value)? as usize,
            "--workers" => o.workers = Some(number(&value)? as usize),
            "--client-workers" => o.client_workers = Some(number(&value)? as usize),
            _ => return Err(format!("unknown argument {flag}")),
        }
    }
    if o.clients == 0 || o.batch == 0 || o.workers == Some(0) || o.client_workers == Some(0) {
        return Err("--clients, --batch and the worker counts must be at least 1".into());
    }
    Ok(o)
}

/// CPU seconds (user + system) this process has used, all threads, from `/proc/self/stat`
/// (Linux; its ticks are USER_HZ, 100 a second); `None` where there is no such file.
fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // After the parenthesized command name: state is field 0, utime 11, stime 12.
    let mut rest = stat.rsplit_once(')')?.1.split_whitespace().skip(11);
    let utime: u64 = rest.next()?.parse().ok()?;
    let stime: u64 = rest.next()?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

/// What the callers share: counts and the signal to stop.
#[derive(Default)]
struct Tallies {
    committed: AtomicU64,
    failed: AtomicU64,
    stop: AtomicBool,
    first_error: Mutex<Option<String>>,
}

impl Tallies {
    fn fail(&self, n: u64, e: impl std::fmt::Display) {
        self.failed.fetch_add(n, Ordering::Relaxed);
        self.first_error.lock().unwrap().get_or_insert_with(|| e.to_string());
    }
}

/// One caller: one call at a time to the leader until told to stop. A caller whose call fails
/// stops (the failure is counted and reported).
async fn caller(leader: Replica, id: u32, body: Bytes, batch: usize, t: Arc<Tallies>) {
    let mut serial = 0u64;
    while !t.stop.load(Ordering::Relaxed) {
        if batch == 1 {
            serial += 1;
            let w = Write { client: id, serial, body: body.clone() };
            match leader.client_write(w).await {
                Ok(_) => t.committed.fetch_add(1, Ordering::Relaxed),
                Err(e) => return t.fail(1, e),
            };
            continue;
        }
        let writes: Vec<Write> = (0..batch)
            .map(|_| {
                serial += 1;
                Write { client: id, serial, body: body.clone() }
            })
            .collect();
        let mut results = match leader.client_write_many(writes).await {
            Ok(s) => s,
            Err(e) => return t.fail(batch as u64, e),
        };
        let mut ok = 0;
        while let Some(r) = results.next().await {
            match r {
                Ok(Ok(_)) => ok += 1,
                Ok(Err(e)) => t.fail(1, e),
                Err(e) => t.fail(1, e),
            }
        }
        t.committed.fetch_add(ok, Ordering::Relaxed);
        if ok < batch as u64 {
            return;
        }
    }
}

struct Measured {
    rate: f64,
    failed: u64,
    first_error: Option<String>,
    cpu_micros: Option<f64>,
}

/// Runs the callers for `opts.seconds` against the leader; counts the writes committed (and
/// answered) in that time and the CPU the process used for them.
async fn load(leader: Replica, opts: &Opts) -> Measured {
    let t = Arc::new(Tallies::default());
    let body = Bytes::from(vec![b'x'; opts.size]);
    let callers: Vec<_> = (0..opts.clients)
        .map(|id| {
            tokio::spawn(caller(leader.clone(), id as u32, body.clone(), opts.batch, t.clone()))
        })
        .collect();
    let start = Instant::now();
    let cpu_start = process_cpu_seconds();
    for s in 1..=opts.seconds {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let done = t.committed.load(Ordering::Relaxed);
        eprintln!("  {s:>3} s  {:>10.0} writes/s", done as f64 / start.elapsed().as_secs_f64());
    }
    let done = t.committed.load(Ordering::Relaxed);
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = process_cpu_seconds().zip(cpu_start).map(|(end, start)| end - start);
    t.stop.store(true, Ordering::Relaxed);
    for c in callers {
        c.await.expect("a caller panicked");
    }
    let first_error = t.first_error.lock().unwrap().take();
    Measured {
        rate: done as f64 / elapsed,
        failed: t.failed.load(Ordering::Relaxed),
        first_error,
        cpu_micros: cpu.map(|s| s * 1e6 / done.max(1) as f64),
    }
}

fn runtime(workers: Option<usize>, name: &str) -> std::io::Result<tokio::runtime::Runtime> {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = workers {
        b.worker_threads(n);
    }
    b.enable_all().thread_name(name).build()
}

fn run(opts: Opts) -> Result<(), Box<dyn std::error::Error>> {
    let replicas_rt = runtime(opts.workers, "replicas")?;
    let callers_rt = match opts.client_workers {
        Some(n) => Some(runtime(Some(n), "callers")?),
        None => None,
    };
    let (replicas, leader) = replicas_rt.block_on(cluster::start(3))?;
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = match opts.client_workers {
        Some(c) => format!(
            "tokio: {} workers for the replicas, {c} for the callers",
            opts.workers.unwrap_or(cpus)
        ),
        None => format!(
            "tokio: {} workers, replicas and callers together",
            opts.workers.unwrap_or(cpus)
        ),
    };
    println!(
        "openraft-peer: openraft {OPENRAFT}, 3 voters in one process, in-process calls (no encoding, no sockets), log and state machine in memory, {}-byte writes, {} callers x {} writes a call ({}), {} s, {threads}, {} allocator",
        opts.size,
        opts.clients,
        opts.batch,
        if opts.batch == 1 { "client_write" } else { "client_write_many" },
        opts.seconds,
        if cfg!(feature = "mimalloc") { "mimalloc" } else { "system" },
    );
    let lead = replicas[leader as usize].clone();
    let m = match &callers_rt {
        Some(rt) => rt.block_on(load(lead, &opts)),
        None => replicas_rt.block_on(load(lead, &opts)),
    };
    println!("throughput: {:.0} committed writes/s ({} failed)", m.rate, m.failed);
    if let Some(e) = &m.first_error {
        println!("  first failure: {e}");
    }
    if let Some(micros) = m.cpu_micros {
        println!(
            "  CPU {micros:.2} us per committed write (the whole process: replicas and callers)"
        );
    }
    // A check that the writes went through the log to every voter: each one's last applied
    // index (read after the callers stopped; followers may trail by the last few).
    let applied: Vec<String> = replicas
        .iter()
        .map(|r| {
            let m = r.metrics().borrow_watched().clone();
            let at = m.last_applied.map_or(0, |l| l.index);
            format!("{}{} {at}", m.id, if m.id == leader { " (leader)" } else { "" })
        })
        .collect();
    println!("  last applied index by voter: {}", applied.join(", "));
    replicas_rt.block_on(async {
        for r in &replicas {
            let _ = r.shutdown().await;
        }
    });
    Ok(())
}

fn main() -> ExitCode {
    let opts = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("openraft-peer: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(if e.is_empty() { 0 } else { 2 });
        }
    };
    match run(opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("openraft-peer: {e}");
            ExitCode::FAILURE
        }
    }
}
