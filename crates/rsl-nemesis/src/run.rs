//! One run: build the machinery, start the replicas and the clients, let the nemesis loose,
//! heal, read every key back, check, report.
//!
//! The end of a run, in order: every fault is healed and the clients keep running for
//! [`RECOVERY_WINDOW`] (so the figures show the recovery); the clients stop; every key is read
//! through every replica (linearizable reads, forwarded to the primary; they join the
//! history); then every replica is restarted with `kv.reads = "local"` and no clock ticks,
//! the log comes to rest with every replica at the same executed slot, and every key is read
//! from each replica's own state (what the lost-write check and the agreement check judge).
//! A replica that cannot catch up, or whose state moves while it is read, leaves its values
//! unread, which makes the run inconclusive rather than passed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use rsl_kv::client::Client;
use rsl_kv::resp::Reply;
use tokio::task::JoinSet;

use crate::check::{self, Verdicts};
use crate::cluster::{Clock, Cluster, ClusterOptions};
use crate::disk::Disk;
use crate::faults::{FaultEvent, FaultKind, Nemesis, Rig, Timing};
use crate::history::{
    self, parse_big, parse_list, KeyClass, Kind, Observed, Outcome, Record, Sightings,
};
use crate::netns::Net;
use crate::report::{self, PlantResult};
use crate::workload::{classify, Workload, WorkloadOptions};

/// How long the clients keep running after the last heal.
pub const RECOVERY_WINDOW: Duration = Duration::from_secs(5);

/// How long the cluster may take to elect a primary at the start and in the final phase.
pub const PRIMARY_WAIT: Duration = Duration::from_secs(30);

/// How long the operations in flight when the clients stop may take to complete; those still
/// waiting are recorded with an unknown outcome (they may still take effect, which the
/// checkers allow).
pub const DRAIN_WAIT: Duration = Duration::from_secs(2);

/// How long the final linearizable reads wait for a primary after the recovery window (the
/// cluster has had the window already; the final check does not need these reads).
pub const FINAL_PRIMARY_WAIT: Duration = Duration::from_secs(15);

/// How long a replica may take to execute every committed slot in the final phase.
pub const CATCH_UP_WAIT: Duration = Duration::from_secs(30);

/// The first client id of the final reads (replica `r` reads as `FINAL_CLIENT + r`).
pub const FINAL_CLIENT: u32 = 1000;

/// Final reads in flight per replica.
const FINAL_READERS: usize = 4;

/// Tries of a final read before it is given up.
const FINAL_READ_TRIES: u32 = 3;

/// How long the final reads through all replicas may take in all (the cluster may be
/// unavailable: the reads must not hold the run for long).
const FINAL_READS_WAIT: Duration = Duration::from_secs(30);

/// What a run does.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The `rsl-kv` binary.
    pub exe: PathBuf,
    /// The run directory (default: a new one under the system's temporary directory).
    pub dir: Option<PathBuf>,
    /// How long the faults go on.
    pub duration: Duration,
    /// The seed of the faults and the workload.
    pub seed: u64,
    /// The fault kinds to draw from.
    pub kinds: Vec<FaultKind>,
    /// Fault durations and gaps.
    pub timing: Timing,
    /// The clients.
    pub workload: WorkloadOptions,
    /// Each replica's filesystem, in bytes.
    pub disk_bytes: u64,
    /// The replicas' configuration.
    pub cluster: ClusterOptions,
    /// Keep the run directory even when the run passes.
    pub keep: bool,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// No violation, no lost write, no anomaly; every planted lie caught.
    Pass,
    /// A violation, a lost write, an anomaly, or a planted lie the checkers missed.
    Unsafe,
    /// Safety could not be verified (a replica's final values could not be read).
    Inconclusive,
}

/// The run's processes, filesystems and network, torn down in that order when dropped.
#[derive(Debug)]
struct Machinery {
    cluster: Cluster,
    disks: Vec<Disk>,
    net: Net,
}

fn default_dir() -> PathBuf {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    std::env::temp_dir().join(format!("rsl-nemesis-{stamp}-{}", std::process::id()))
}

/// Prints a progress line with the run's time.
fn say(clock: &Clock, text: impl AsRef<str>) {
    println!("{:>8.2} s  {}", clock.now_us() as f64 / 1e6, text.as_ref());
}

/// Runs the suite once and prints its figures; the directory holds the history, the final
/// values, the replicas' logs and the report.
pub async fn run(options: RunOptions) -> anyhow::Result<(Verdict, PathBuf)> {
    let dir = options.dir.clone().unwrap_or_else(default_dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let dir = dir.canonicalize()?;
    let clock = Clock::start();
    println!(
        "rsl-nemesis: seed {}, {} s of faults ({}), {} clients, run directory {}",
        options.seed,
        options.duration.as_secs(),
        options.kinds.iter().map(|k| k.name()).collect::<Vec<_>>().join(" "),
        options.workload.clients,
        dir.display()
    );
    let replicas = options.cluster.replicas;
    let net = Net::create(replicas, &dir)?;
    let mut disks = Vec::new();
    for id in 1..=replicas {
        disks.push(Disk::mount(&dir.join(format!("disk-{id}")), options.disk_bytes)?);
    }
    let cluster = Cluster::new(&options.exe, &dir, &net, &disks, options.cluster.clone(), clock)?;
    let mut m = Machinery { cluster, disks, net };
    say(&clock, format!("network slot {}: replicas at {}", m.net.slot(), m.net.ip(1)));
    for id in m.cluster.ids() {
        m.cluster.start(id).await?;
    }
    let primary = m.cluster.wait_primary(PRIMARY_WAIT).await?;
    say(&clock, format!("replica {primary} is primary; clients start"));
    let addrs: Vec<_> = m.cluster.ids().into_iter().map(|id| m.cluster.client_addr(id)).collect();
    let workload = Workload::start(options.workload.clone(), addrs, clock);
    let load_start = clock.now_us();
    let (faults, notes) = nemesis(&options, &mut m, &workload, &clock).await?;
    m.cluster.settle(RECOVERY_WINDOW).await;
    let load_end = clock.now_us();
    let recorder = workload.recorder().clone();
    let mut history = workload.stop(DRAIN_WAIT).await;
    let sightings = recorder.sightings();
    say(&clock, format!("clients stopped after {} operations; final reads", history.len()));
    let mut notes = notes;
    let (reads, finals) = final_phase(&mut m.cluster, &history, &clock, &mut notes).await?;
    history.extend(reads);
    m.cluster.stop_all().await;
    let exits = m.cluster.unexpected_exits.clone();
    let logs: Vec<PathBuf> = m.cluster.files().iter().map(|f| f.log.clone()).collect();
    let primaries = primary_changes(&m.cluster);
    drop(m);
    save(&dir, &history, &finals, &sightings, &faults)?;
    say(&clock, format!("checking {} operations", history.len()));
    let (history, verdicts, plants) = tokio::task::spawn_blocking(move || {
        let (verdicts, plants) = check_all(&history, &finals, &sightings);
        (history, verdicts, plants)
    })
    .await?;
    let inputs = report::Inputs {
        history: &history,
        load: (load_start, load_end),
        faults: &faults,
        exits: &exits,
        primaries: &primaries,
        verdicts: &verdicts,
        plants: &plants,
        notes: &notes,
        logs: &logs,
    };
    let text = report::render(&inputs);
    println!("\n{text}");
    std::fs::write(dir.join("report.txt"), &text)?;
    let verdict = verdict_of(&verdicts, &plants);
    println!("verdict: {verdict:?} (run directory {})", dir.display());
    if verdict == Verdict::Pass && !options.keep {
        std::fs::remove_dir_all(&dir).ok();
    }
    Ok((verdict, dir))
}

/// The verdict from the checkers and the plants.
pub fn verdict_of(v: &Verdicts, plants: &[(String, PlantResult)]) -> Verdict {
    let missed = plants.iter().any(|(_, p)| matches!(p, PlantResult::Missed(_)));
    if !v.passed() || missed {
        Verdict::Unsafe
    } else if !v.unverified.is_empty() {
        Verdict::Inconclusive
    } else {
        Verdict::Pass
    }
}

/// Checks the history and proves, on it, that the checkers reject the planted lies.
pub fn check_all(
    history: &[Record],
    finals: &[(u32, String, Observed)],
    sightings: &Sightings,
) -> (Verdicts, Vec<(String, PlantResult)>) {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let verdicts = check::check(history, finals, sightings, threads);
    let stale = match check::plant_stale_read(history) {
        None => PlantResult::NotTried,
        Some(plant) => {
            let records: Vec<&Record> = plant.records.iter().collect();
            match check::linearizable(&plant.key, &records, sightings, &mut Vec::new()).result {
                Err(rsl_sim::linearizability::Violation::NotLinearizable { .. }) => {
                    PlantResult::Caught(format!("linearizability ({})", plant.what))
                }
                _ => PlantResult::Missed(plant.what),
            }
        }
    };
    let phantom = match check::plant_phantom_write(history, finals) {
        None => PlantResult::NotTried,
        Some((plant, replica, observed)) => {
            let records: Vec<&Record> = plant.records.iter().collect();
            let (mut lost, mut anomalies) = (Vec::new(), Vec::new());
            check::lost_writes(&plant.key, &records, replica, &observed, &mut lost, &mut anomalies);
            if lost.is_empty() {
                PlantResult::Missed(plant.what)
            } else {
                PlantResult::Caught(format!("the lost-write check ({})", plant.what))
            }
        }
    };
    let plants = vec![
        ("stale read (a client reports an old value)".to_string(), stale),
        ("phantom write (a client reports a write it never sent)".to_string(), phantom),
    ];
    (verdicts, plants)
}

async fn nemesis(
    options: &RunOptions,
    m: &mut Machinery,
    workload: &Workload,
    clock: &Clock,
) -> anyhow::Result<(Vec<FaultEvent>, Vec<String>)> {
    let mut schedule = Nemesis::new(options.seed, &options.kinds, options.timing);
    let deadline = clock.now_us() + options.duration.as_micros() as u64;
    let (mut events, mut notes) = (Vec::new(), Vec::new());
    m.cluster.settle(Duration::from_secs(3)).await;
    loop {
        let gap = schedule.gap();
        m.cluster.settle(gap).await;
        if clock.now_us() >= deadline {
            break;
        }
        let kind = schedule.next_kind();
        let hold = schedule.hold(kind);
        let mut rig =
            Rig { cluster: &mut m.cluster, net: &mut m.net, disks: &mut m.disks, workload };
        let mut active = schedule.apply(kind, &mut rig, clock).await?;
        let e = &active.event;
        say(
            clock,
            format!(
                "{} {:?} (primary {}) for {:.1} s {} [{} operations so far]",
                kind.name(),
                e.targets,
                e.primary.map_or("unknown".into(), |p| p.to_string()),
                hold.as_secs_f64(),
                e.note,
                workload.recorder().len()
            ),
        );
        rig.cluster.settle(hold).await;
        active.heal(&mut rig, clock.now_us()).await?;
        restart_exited(rig.cluster, clock, &mut notes).await;
        events.push(active.event);
    }
    // Everything healed, whatever the last fault was.
    m.net.heal()?;
    for disk in m.disks.iter_mut().filter(|d| d.is_full()) {
        disk.free()?;
    }
    for id in m.cluster.ids() {
        if m.cluster.is_paused(id) {
            m.cluster.signal(id, libc::SIGCONT)?;
        }
    }
    restart_exited(&mut m.cluster, clock, &mut notes).await;
    say(clock, "faults over, everything healed");
    Ok((events, notes))
}

/// Starts the replicas whose process is gone (one that exited by itself) again.
async fn restart_exited(cluster: &mut Cluster, clock: &Clock, notes: &mut Vec<String>) {
    cluster.pump();
    for id in cluster.ids() {
        if cluster.is_running(id) {
            continue;
        }
        let at = clock.now_us() as f64 / 1e6;
        match cluster.start(id).await {
            Ok(()) => notes.push(format!("{at:.2} s: replica {id} was not running; restarted")),
            Err(e) => notes.push(format!("{at:.2} s: replica {id} would not restart: {e:#}")),
        }
    }
}

fn primary_changes(cluster: &Cluster) -> Vec<(u64, u32)> {
    let mut out: Vec<(u64, u32)> = Vec::new();
    for (at, id, view) in &cluster.role_changes {
        if view.role == "primary" && out.last().map(|l| l.1) != Some(*id) {
            out.push((*at, *id));
        }
    }
    out
}

fn keys_of(history: &[Record]) -> Vec<String> {
    let mut keys: Vec<String> = history.iter().map(|r| r.key.clone()).collect();
    keys.sort();
    keys.dedup();
    keys
}

/// Reads every key through every replica (recorded), then from every replica's own state.
async fn final_phase(
    cluster: &mut Cluster,
    history: &[Record],
    clock: &Clock,
    notes: &mut Vec<String>,
) -> anyhow::Result<(Vec<Record>, Vec<(u32, String, Observed)>)> {
    let keys = keys_of(history);
    let addrs: Vec<(u32, std::net::SocketAddr)> =
        cluster.ids().into_iter().map(|id| (id, cluster.client_addr(id))).collect();
    let mut reads = Vec::new();
    // Linearizable reads need a primary; without one they would only wait and fail.
    let primary = cluster.wait_primary(FINAL_PRIMARY_WAIT).await;
    if let Err(e) = &primary {
        notes.push(format!("no primary after healing, so no linearizable final reads: {e:#}"));
    }
    let through_primary = match primary {
        Ok(_) => read_everywhere(&addrs, &keys, clock).await,
        Err(_) => Vec::new(),
    };
    for (id, results) in through_primary {
        for (key, tries) in results {
            reads.extend(tries.into_iter().map(|(mut r, _)| {
                r.client = FINAL_CLIENT + id;
                r.replica = id;
                r.key = key.clone();
                r
            }));
        }
    }
    // Whether followers served reads by read index, and how many reads took the path that
    // skips the executor (counts since each replica's last start).
    for id in cluster.ids() {
        if let Some(s) = cluster.status(id, Duration::from_secs(1)).await {
            notes.push(format!(
                "read index at replica {id} since its last start: {} runs, {} reads served here, \
                 {} runs sent to the primary without an index; {} reads (lease or index) \
                 served on the connection's task from the keyspace",
                s.get("rsl_read_index_runs_total"),
                s.get("rsl_index_reads_total"),
                s.get("rsl_read_index_fallbacks_total"),
                s.get("rsl_reads_here_total")
            ));
        }
    }
    say(clock, "restarting every replica with local reads to read its own state");
    for id in cluster.ids() {
        if cluster.is_running(id) {
            cluster.terminate(id).await?;
        }
    }
    cluster.write_configs(true)?;
    for id in cluster.ids() {
        cluster.start(id).await?;
    }
    let caught_up = converge(cluster, notes).await;
    for id in cluster.ids() {
        if let Some(s) = cluster.status(id, Duration::from_secs(1)).await {
            notes.push(format!(
                "final state of replica {id}: role {}, ballot {}, committed {}, executed {}",
                s.get("rsl_role"),
                s.get("rsl_ballot"),
                s.get("rsl_committed_slot"),
                s.get("rsl_executed_slot")
            ));
        }
    }
    let addrs: Vec<(u32, std::net::SocketAddr)> =
        cluster.ids().into_iter().map(|id| (id, cluster.client_addr(id))).collect();
    let mut finals = Vec::new();
    for (id, results) in read_everywhere(&addrs, &keys, clock).await {
        for (key, tries) in results {
            let last = tries.last().map(|(_, reply)| reply.clone());
            let observed = match (caught_up.get(&id), last) {
                (Some(Err(why)), _) => Observed::Unread(why.clone()),
                (_, Some(Ok(reply))) => observed(&key, &reply),
                (_, Some(Err(why))) => Observed::Unread(why),
                (_, None) => Observed::Unread(format!("not read within {FINAL_READS_WAIT:?}")),
            };
            finals.push((id, key, observed));
        }
    }
    // The values are comparable only if nothing executed while they were read.
    let after = executed_all(cluster).await;
    for (id, key, observed) in finals.iter_mut() {
        let before = caught_up.get(id).and_then(|r| r.as_ref().ok()).copied();
        if before.is_some() && after.get(id).copied().flatten() != before {
            *observed = Observed::Unread(format!(
                "replica {id} executed more while {key} was read ({before:?} then {:?})",
                after.get(id)
            ));
        }
    }
    Ok((reads, finals))
}

/// Every replica's executed slot, as it reports it.
async fn executed_all(cluster: &Cluster) -> BTreeMap<u32, Option<u64>> {
    let mut out = BTreeMap::new();
    for id in cluster.ids() {
        let status = cluster.status(id, Duration::from_secs(1)).await;
        out.insert(id, status.and_then(|s| s.number("rsl_executed_slot")));
    }
    out
}

/// Waits until the log is at rest and every replica has executed all of it: the same slot
/// everywhere, twice in a row a second apart (no clients, no ticks: nothing proposes once a
/// primary has finished its phase 1). A replica still behind at the deadline is restarted
/// once. Returns per replica the slot it rests at, or why it cannot be compared.
async fn converge(
    cluster: &mut Cluster,
    notes: &mut Vec<String>,
) -> BTreeMap<u32, Result<u64, String>> {
    let _ = cluster.wait_primary(PRIMARY_WAIT).await;
    let mut deadline = tokio::time::Instant::now() + CATCH_UP_WAIT;
    let mut restarted = false;
    let mut last = BTreeMap::new();
    loop {
        let seen = executed_all(cluster).await;
        let max = seen.values().flatten().copied().max();
        let stable = seen == last;
        if let Some(slot) = max.filter(|_| stable && seen.values().all(|e| *e == max)) {
            return seen.keys().map(|&id| (id, Ok(slot))).collect();
        }
        if tokio::time::Instant::now() >= deadline {
            let laggards: Vec<u32> =
                seen.iter().filter(|(_, e)| **e != max).map(|(id, _)| *id).collect();
            if !restarted && !laggards.is_empty() {
                notes.push(format!(
                    "final phase: replicas {laggards:?} lagged ({seen:?}); restarted"
                ));
                for &id in &laggards {
                    let _ = cluster.kill(id).await;
                    let _ = cluster.start(id).await;
                }
                restarted = true;
                deadline = tokio::time::Instant::now() + CATCH_UP_WAIT;
                last.clear();
                continue;
            }
            let why = |e: &Option<u64>| match (stable, max) {
                (true, Some(m)) if *e == Some(m) => Ok(m),
                (true, _) => Err(format!("executed {e:?} while others rest at {max:?}")),
                (false, _) => Err(format!("the log did not come to rest: executed {seen:?}")),
            };
            return seen.iter().map(|(&id, e)| (id, why(e))).collect();
        }
        last = seen;
        cluster.settle(Duration::from_secs(1)).await;
    }
}

type Tries = Vec<(Record, Result<Reply, String>)>;

/// Reads every key through every replica at once, within [`FINAL_READS_WAIT`] in all.
async fn read_everywhere(
    addrs: &[(u32, std::net::SocketAddr)],
    keys: &[String],
    clock: &Clock,
) -> Vec<(u32, Vec<(String, Tries)>)> {
    let deadline = tokio::time::Instant::now() + FINAL_READS_WAIT;
    let mut tasks = JoinSet::new();
    for &(id, addr) in addrs {
        let (keys, clock) = (keys.to_vec(), *clock);
        tasks.spawn(async move { (id, read_all(addr, &keys, &clock, deadline).await) });
    }
    let mut out: Vec<(u32, Vec<(String, Tries)>)> = tasks.join_all().await;
    out.sort_by_key(|(id, _)| *id);
    out
}

/// GETs every key at `addr`, a few at a time, retrying errors; returns every try per key.
async fn read_all(
    addr: std::net::SocketAddr,
    keys: &[String],
    clock: &Clock,
    deadline: tokio::time::Instant,
) -> Vec<(String, Tries)> {
    let mut tasks = JoinSet::new();
    for part in keys.chunks(keys.len().div_ceil(FINAL_READERS).max(1)) {
        let (part, clock) = (part.to_vec(), *clock);
        tasks.spawn(async move {
            let mut out = Vec::new();
            let mut conn: Option<Client> = None;
            for key in part {
                let mut tries = Vec::new();
                for _ in 0..FINAL_READ_TRIES {
                    if tokio::time::Instant::now() >= deadline {
                        break;
                    }
                    if conn.is_none() {
                        let connect = Client::connect(addr, Duration::from_secs(10));
                        conn = tokio::time::timeout(Duration::from_secs(1), connect)
                            .await
                            .ok()
                            .and_then(Result::ok);
                    }
                    let call_us = clock.now_us();
                    let reply = match conn.as_mut() {
                        Some(c) => c.cmd(&[&b"GET"[..], key.as_bytes()]).await,
                        None => Err(std::io::Error::other("cannot connect")),
                    };
                    let outcome = classify(Kind::Get, &key, &reply);
                    let record = Record {
                        client: FINAL_CLIENT,
                        replica: 0,
                        kind: Kind::Get,
                        key: key.clone(),
                        token: 0,
                        bytes: 0,
                        call_us,
                        ret_us: Some(clock.now_us()),
                        outcome: outcome.clone(),
                    };
                    let done = outcome.is_ok() || matches!(outcome, Outcome::Corrupt(_));
                    let reply = reply.map_err(|e| e.to_string());
                    if reply.is_err() {
                        conn = None;
                    }
                    tries.push((record, reply));
                    if done {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                out.push((key, tries));
            }
            out
        });
    }
    let mut all = Vec::new();
    while let Some(part) = tasks.join_next().await {
        all.extend(part.expect("a final reader panicked"));
    }
    all
}

/// What a GET reply says a replica holds for `key`.
fn observed(key: &str, reply: &Reply) -> Observed {
    match (KeyClass::of(key), reply) {
        (KeyClass::List, Reply::Null) => Observed::List(Vec::new()),
        (KeyClass::List, Reply::Bulk(b)) => {
            parse_list(b).map_or_else(Observed::Malformed, Observed::List)
        }
        (KeyClass::Big, Reply::Null) => Observed::Big(None),
        (KeyClass::Big, Reply::Bulk(b)) => {
            parse_big(b).map_or_else(Observed::Malformed, |v| Observed::Big(Some(v)))
        }
        (_, other) => Observed::Unread(format!("GET answered {}", rsl_kv::client::describe(other))),
    }
}

fn save(
    dir: &Path,
    history: &[Record],
    finals: &[(u32, String, Observed)],
    sightings: &Sightings,
    faults: &[FaultEvent],
) -> anyhow::Result<()> {
    history::write_lines(
        &dir.join("sightings.tsv"),
        sightings.iter().map(|(t, s)| history::sighting_line(*t, s)),
    )?;
    history::write_lines(&dir.join("history.tsv"), history.iter().map(history::record_line))?;
    history::write_lines(
        &dir.join("finals.tsv"),
        finals.iter().map(|(r, k, o)| history::observed_line(*r, k, o)),
    )?;
    history::write_lines(&dir.join("faults.tsv"), faults.iter().map(FaultEvent::line))
}

/// Checks a saved run again (`rsl-nemesis check DIR`).
pub fn check_saved(dir: &Path) -> anyhow::Result<Verdict> {
    let history = history::read_lines(&dir.join("history.tsv"), history::parse_record)?;
    let finals = history::read_lines(&dir.join("finals.tsv"), history::parse_observed)?;
    let sightings: Sightings =
        history::read_lines(&dir.join("sightings.tsv"), history::parse_sighting)?
            .into_iter()
            .collect();
    let faults = history::read_lines(&dir.join("faults.tsv"), FaultEvent::parse)?;
    let (verdicts, plants) = check_all(&history, &finals, &sightings);
    let load = history.iter().filter(|r| r.client < FINAL_CLIENT);
    let load = (
        load.clone().map(|r| r.call_us).min().unwrap_or(0),
        load.filter_map(|r| r.ret_us).max().unwrap_or(0),
    );
    let logs: Vec<PathBuf> = (1..=3).map(|id| dir.join(format!("logs/replica-{id}.log"))).collect();
    let inputs = report::Inputs {
        history: &history,
        load,
        faults: &faults,
        exits: &[],
        primaries: &[],
        verdicts: &verdicts,
        plants: &plants,
        notes: &[],
        logs: &logs,
    };
    println!("{}", report::render(&inputs));
    Ok(verdict_of(&verdicts, &plants))
}
