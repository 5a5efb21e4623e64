//! Replacing every member of a running local cluster, one at a time, under a client load:
//! what `rsl-kv cluster --replace-all` and the real-process test (`tests/members.rs`) share.
//!
//! Each round starts a new `rsl-kv run` process (new id, new ports, new data directory, the
//! configuration's `join = true`), then drives the change from the command line, as an
//! operator would, with `rsl-kv member` sent to a member that is not necessarily the primary
//! (it relays): `add` makes the new process a learner; the learner's lag at the primary is
//! watched until it has caught up (or for at most 10 s: `promote` waits for it too); `promote` makes it a voter (four voters for a moment);
//! `remove` takes the oldest original member out, the primary too in its turn (it steps
//! down once the change executes), and its process exits by itself.
//!
//! The load ([`WriteLoad`]) is clients that each write `load-C-N` keys one after another
//! through whichever member acknowledges (the newest first), so that every acknowledged key is
//! known and the longest wait between two acknowledgements of one client is measured.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use bytes::Bytes;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::Cluster;
use crate::admin::StatusReport;
use crate::client::{describe, Client};
use crate::resp::Reply;

/// How long one write of the load waits for a connection or an answer before it tries the
/// next member.
const LOAD_ATTEMPT_WAIT: Duration = Duration::from_secs(2);

/// How long a round waits for a primary, a learner to catch up or a removed member to exit.
pub const ROUND_STEP_WAIT_MAX: Duration = Duration::from_secs(30);

/// A learner this many slots or fewer behind the primary's commit point counts as caught up
/// (the primary promotes one that is within one catch-up message anyway, and waits).
const CAUGHT_UP_LAG_SLOTS_MAX: u64 = 64;

/// How long a learner's lag is watched before `promote` is asked anyway.
const CATCH_UP_WATCH_MAX: Duration = Duration::from_secs(10);

/// The pause between two looks at a learner's lag (no event announces catching up).
const LAG_POLL_PAUSE: Duration = Duration::from_millis(50);

/// What the load's clients acknowledged.
#[derive(Debug, Default)]
pub struct Load {
    /// Every acknowledged key (its value is the key).
    pub acknowledged: Vec<String>,
    /// The longest time one client waited between two acknowledged writes (or from its
    /// start to its first).
    pub longest_gap: Duration,
}

/// Clients writing one key after another through the members, newest first, until finished.
#[derive(Debug)]
pub struct WriteLoad {
    targets: Arc<Mutex<Vec<SocketAddr>>>,
    stop: Arc<AtomicBool>,
    clients: Vec<JoinHandle<Load>>,
}

impl WriteLoad {
    /// Starts `clients` writers over the members at `targets`.
    pub fn start(targets: Vec<SocketAddr>, clients: usize) -> WriteLoad {
        let targets = Arc::new(Mutex::new(targets));
        let stop = Arc::new(AtomicBool::new(false));
        let clients = (0..clients)
            .map(|c| tokio::spawn(write_load(c, Arc::clone(&targets), Arc::clone(&stop))))
            .collect();
        WriteLoad { targets, stop, clients }
    }

    /// Lets the writers use a new member too (tried first).
    pub fn add_target(&self, addr: SocketAddr) {
        self.targets.lock().expect("targets lock").push(addr);
    }

    /// Stops the writers and returns what they acknowledged.
    pub async fn finish(self) -> anyhow::Result<Load> {
        self.stop.store(true, Ordering::Relaxed);
        let mut load = Load::default();
        for client in self.clients {
            let one = client.await.context("a load client panicked")?;
            load.acknowledged.extend(one.acknowledged);
            load.longest_gap = load.longest_gap.max(one.longest_gap);
        }
        Ok(load)
    }
}

/// One writer: `load-C-N` keys, each through the first member (newest first) that
/// acknowledges it; a connection is kept while it answers.
async fn write_load(c: usize, targets: Arc<Mutex<Vec<SocketAddr>>>, stop: Arc<AtomicBool>) -> Load {
    let mut load = Load::default();
    let mut last = Instant::now();
    let mut conn: Option<Client> = None;
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        let key = format!("load-{c}-{n}");
        if let Some(client) = conn.as_mut() {
            if let Ok(Reply::Simple(_)) = client.cmd(&["SET", &key, &key]).await {
                load.longest_gap = load.longest_gap.max(last.elapsed());
                last = Instant::now();
                load.acknowledged.push(key);
                n += 1;
                continue;
            }
            conn = None;
        }
        let addrs = targets.lock().expect("targets lock").clone();
        for addr in addrs.iter().rev() {
            let Ok(mut client) = Client::connect(*addr, LOAD_ATTEMPT_WAIT).await else { continue };
            if let Ok(Reply::Simple(_)) = client.cmd(&["SET", &key, &key]).await {
                load.longest_gap = load.longest_gap.max(last.elapsed());
                last = Instant::now();
                load.acknowledged.push(key.clone());
                n += 1;
                conn = Some(client);
                break;
            }
        }
        tokio::task::yield_now().await;
    }
    load
}

/// Runs `rsl-kv member ARGS --addr VIA` (the cluster's own executable); returns its stdout.
/// `rsl-kv member` itself sends a change refused for a passing reason again for
/// [`crate::members::MEMBER_RETRY_MS_DEFAULT`]; past that, it is sent again once the cluster
/// agrees on a primary, as an operator would, within [`ROUND_STEP_WAIT_MAX`]: "not primary"
/// (`via` knew no primary at that moment, or the one it relayed to no longer was: an
/// election, which a change of the voters may cause), "would leave no quorum" (a primary
/// counts as live only the voters that answered it within an election timeout, so a new
/// primary sees none at first) and "in flight" (another change not yet executed).
pub async fn member(
    cluster: &mut Cluster,
    via: SocketAddr,
    args: &[&str],
) -> anyhow::Result<String> {
    let deadline = Instant::now() + ROUND_STEP_WAIT_MAX;
    loop {
        let output = tokio::process::Command::new(cluster.exe())
            .arg("member")
            .args(args)
            .args(["--addr", &via.to_string()])
            .stdin(std::process::Stdio::null())
            .env_remove("RUST_BACKTRACE")
            .output()
            .await
            .context("running rsl-kv member")?;
        if output.status.success() {
            return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        let passing = crate::members::PASSING_REFUSALS.iter().any(|r| stderr.contains(r));
        if !passing || Instant::now() >= deadline {
            bail!("rsl-kv member {args:?} failed: {}", stderr.trim());
        }
        let why = stderr.lines().last().unwrap_or_default().trim().to_string();
        tracing::warn!(?args, why, "a change refused for now: again once a primary is agreed");
        cluster.wait_primary(None, ROUND_STEP_WAIT_MAX).await?;
        tokio::time::sleep(LAG_POLL_PAUSE).await;
    }
}

/// What watching a learner catch up saw.
#[derive(Debug, Clone, Copy)]
struct CatchUp {
    /// The first lag the primary reported, in slots (`None`: it reported none).
    first: Option<u64>,
    /// The last one.
    last: Option<u64>,
    /// Whether the last was at most [`CAUGHT_UP_LAG_SLOTS_MAX`].
    caught_up: bool,
}

/// Watches learner `id`'s lag at the primary until it is at most [`CAUGHT_UP_LAG_SLOTS_MAX`]
/// slots, for at most [`CATCH_UP_WATCH_MAX`]: under a heavy load a learner may stay further
/// behind than that while still close enough for the primary to promote it (`promote` waits
/// for the learner itself, and refuses with the reason if it does not catch up).
async fn watch_catch_up(cluster: &mut Cluster, id: u32) -> anyhow::Result<CatchUp> {
    let deadline = Instant::now() + CATCH_UP_WATCH_MAX;
    let mut seen = CatchUp { first: None, last: None, caught_up: false };
    loop {
        let p = cluster.wait_primary(None, ROUND_STEP_WAIT_MAX).await?;
        let addr = cluster.replica(p).client_addr;
        let lag = async {
            let mut client = Client::connect(addr, LOAD_ATTEMPT_WAIT).await.ok()?;
            let Reply::Array(items) = client.cmd(&["RSL.MEMBERS", "LIST"]).await.ok()? else {
                return None;
            };
            items.iter().find_map(|item| {
                let Reply::Bulk(text) = item else { return None };
                let r = StatusReport::parse(&String::from_utf8_lossy(text));
                (r.get("id") == id.to_string()).then(|| r.number("lag")).flatten()
            })
        };
        if let Some(lag) = lag.await {
            seen.first = seen.first.or(Some(lag));
            seen.last = Some(lag);
            if lag <= CAUGHT_UP_LAG_SLOTS_MAX {
                seen.caught_up = true;
                return Ok(seen);
            }
        }
        if Instant::now() >= deadline {
            return Ok(seen);
        }
        tokio::time::sleep(LAG_POLL_PAUSE).await;
    }
}

/// What one round did.
#[derive(Debug, Clone)]
pub struct Round {
    /// The member that left.
    pub old: u32,
    /// The member that took its place.
    pub new: u32,
    /// The new member's client address.
    pub client_addr: SocketAddr,
    /// How long the round took, from starting the new process to the old one's exit.
    pub took: Duration,
}

/// Replaces every member of `members` (in order), one at a time, with a new process, by
/// `rsl-kv member add`, a wait for catch-up, `promote` and `remove`, each sent to a member
/// that stays (the rounds take turns); `load`, if given, is told of each new member, and
/// `say` of each step. Returns the rounds; `members` ends as the new members.
pub async fn replace_all(
    cluster: &mut Cluster,
    members: &mut Vec<u32>,
    load: Option<&WriteLoad>,
    mut say: impl FnMut(String),
) -> anyhow::Result<Vec<Round>> {
    let originals = members.clone();
    let mut rounds = Vec::new();
    for (round, old) in originals.into_iter().enumerate() {
        let started = Instant::now();
        let new = cluster.add_joining(members).await?;
        say(format!(
            "round {}: started replica {} (client {}, peer {}, data {})",
            round + 1,
            new.id,
            new.client_addr,
            new.peer_addr,
            cluster.data_dir(new.id).display()
        ));
        if let Some(load) = load {
            load.add_target(new.client_addr);
        }
        // Any member that stays takes the commands; it relays them to the primary.
        let stays: Vec<u32> = members.iter().copied().filter(|m| *m != old).collect();
        let via = cluster.replica(stays[round % stays.len()]).client_addr;
        let (id, peer, client) =
            (new.id.to_string(), new.peer_addr.to_string(), new.client_addr.to_string());
        let added =
            member(cluster, via, &["add", "--id", &id, "--peer", &peer, "--client", &client])
                .await?;
        if !added.contains(&format!("{id}:learner")) {
            bail!("member add answered {added}");
        }
        say(format!("round {}: replica {id} added as a learner (through {via})", round + 1));
        let seen = watch_catch_up(cluster, new.id).await?;
        let show = |lag: Option<u64>| lag.map_or("-".to_string(), |l| l.to_string());
        let (first, last) = (show(seen.first), show(seen.last));
        say(if seen.caught_up {
            format!(
                "round {}: replica {id} caught up (lag at the primary {first} -> {last} slots)",
                round + 1
            )
        } else {
            format!(
                "round {}: replica {id} still {last} slots behind after {CATCH_UP_WATCH_MAX:?} \
                 (from {first}): promote waits for it",
                round + 1
            )
        });
        let promoted = member(cluster, via, &["promote", "--id", &id]).await?;
        if !promoted.contains(&format!("{id}:voter")) {
            bail!("member promote answered {promoted}");
        }
        say(format!("round {}: replica {id} promoted to voter", round + 1));
        let primary = cluster.agreed_primary();
        let removed = member(cluster, via, &["remove", "--id", &old.to_string()]).await?;
        if removed.contains(&format!("{old}:")) {
            bail!("member remove answered {removed}");
        }
        let was = if primary == Some(old) { " (it was the primary)" } else { "" };
        say(format!("round {}: replica {old} removed{was}", round + 1));
        cluster.wait_exited(old, ROUND_STEP_WAIT_MAX).await?;
        say(format!("round {}: replica {old}'s process exited by itself", round + 1));
        members.retain(|m| *m != old);
        members.push(new.id);
        let took = started.elapsed();
        rounds.push(Round { old, new: new.id, client_addr: new.client_addr, took });
    }
    Ok(rounds)
}

/// Reads every key of `keys` back at `addr` (each key's value is the key); returns the keys
/// that are missing or wrong.
pub async fn read_back(addr: SocketAddr, keys: &[String]) -> anyhow::Result<Vec<String>> {
    let mut client = Client::connect(addr, ROUND_STEP_WAIT_MAX).await?;
    let mut wrong = Vec::new();
    for chunk in keys.chunks(500) {
        let mut args = vec!["MGET"];
        args.extend(chunk.iter().map(String::as_str));
        let Reply::Array(values) = client.cmd(&args).await? else { bail!("MGET failed") };
        if values.len() != chunk.len() {
            bail!("MGET of {} keys answered {} values", chunk.len(), values.len());
        }
        for (key, got) in chunk.iter().zip(&values) {
            if *got != Reply::Bulk(Bytes::copy_from_slice(key.as_bytes())) {
                tracing::error!(key, got = describe(got), "an acknowledged write is not read back");
                wrong.push(key.clone());
            }
        }
    }
    Ok(wrong)
}
