//! The demo: three `rsl-bank replica` processes on loopback, each with its own data
//! directory. Money moves between three accounts while a follower is killed with SIGKILL and
//! restarted (it recovers from its disk and catches up), then the primary is (a new one is
//! elected). At the end every replica must hold the same balances at the same slot, the total
//! must be what was opened, and, when no transfer had an unknown outcome, the balances must be
//! exactly what the acknowledged transfers imply.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Instant;

use anyhow::{bail, ensure, Context};
use rsl::{Member, NodeConfig};

const REPLICAS: u32 = 3;
const ACCOUNTS: [&str; 3] = ["alice", "bob", "carol"];
const OPENING_BALANCE: i64 = 1_000;

/// One replica process and the pipes that drive it.
struct Replica {
    config: PathBuf,
    process: Option<(Child, ChildStdin, BufReader<ChildStdout>)>,
}

impl Replica {
    fn start(&mut self) -> anyhow::Result<()> {
        let mut child = Command::new(std::env::current_exe()?)
            .arg("replica")
            .arg("--config")
            .arg(&self.config)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("spawning a replica")?;
        let stdin = child.stdin.take().expect("piped");
        let stdout = BufReader::new(child.stdout.take().expect("piped"));
        self.process = Some((child, stdin, stdout));
        Ok(())
    }

    fn kill(&mut self) -> anyhow::Result<()> {
        let (mut child, _, _) = self.process.take().context("replica not running")?;
        child.kill()?; // SIGKILL: no clean shutdown, whatever was not durable is gone.
        child.wait()?;
        Ok(())
    }

    fn ask(&mut self, command: &str) -> anyhow::Result<String> {
        let (_, stdin, stdout) = self.process.as_mut().context("replica not running")?;
        writeln!(stdin, "{command}")?;
        let mut line = String::new();
        ensure!(stdout.read_line(&mut line)? > 0, "replica exited while asked {command:?}");
        Ok(line.trim_end().to_string())
    }

    fn stop(&mut self) -> anyhow::Result<()> {
        if let Some((mut child, stdin, _)) = self.process.take() {
            drop(stdin); // end of input: the replica shuts down cleanly
            ensure!(child.wait()?.success(), "replica exited with an error");
        }
        Ok(())
    }
}

/// What the acknowledged writes say happened, in slot order.
#[derive(Default)]
struct Ledger {
    acknowledged: BTreeMap<u64, String>,
    unknown_outcomes: u32,
    last_slot: u64,
}

struct Cluster {
    replicas: Vec<Replica>,
    primary: u32,
    ledger: Ledger,
}

impl Cluster {
    fn replica(&mut self, id: u32) -> &mut Replica {
        &mut self.replicas[id as usize - 1]
    }

    fn running(&self) -> impl Iterator<Item = u32> + '_ {
        (1..=REPLICAS).filter(|&id| self.replicas[id as usize - 1].process.is_some())
    }

    /// Waits until a running replica reports a primary other than `not`.
    fn find_primary(&mut self, not: Option<u32>) -> anyhow::Result<u32> {
        let asker = self.running().find(|&id| Some(id) != not).context("no replica running")?;
        let command = not.map_or("wait-primary".to_string(), |n| format!("wait-primary {n}"));
        let answer = self.replica(asker).ask(&command)?;
        let primary = answer.strip_prefix("ok ").context(answer.clone())?.parse()?;
        self.primary = primary;
        Ok(primary)
    }

    /// Replicates `request` through the primary, following `not-primary` answers.
    fn write(&mut self, request: &str) -> anyhow::Result<String> {
        for _ in 0..20 {
            let answer = self.replica(self.primary).ask(&format!("write {request}"))?;
            if let Some(rest) = answer.strip_prefix("ok slot=") {
                let (slot, outcome) = rest.split_once(' ').context("answer without outcome")?;
                let slot: u64 = slot.parse()?;
                self.ledger.acknowledged.insert(slot, outcome.to_string());
                self.ledger.last_slot = self.ledger.last_slot.max(slot);
                return Ok(outcome.to_string());
            }
            let named = answer.strip_prefix("err not-primary ").map(|r| r.split(' ').next());
            match named.map(|id| id.unwrap_or("-").parse::<u32>()) {
                Some(Ok(next)) if self.replicas[next as usize - 1].process.is_some() => {
                    self.primary = next
                }
                Some(_) => {
                    let old = self.primary;
                    self.find_primary(Some(old))?;
                }
                None => {
                    // Any other error leaves the outcome unknown: retrying could move twice.
                    self.ledger.unknown_outcomes += 1;
                    return Ok(answer);
                }
            }
        }
        bail!("no primary accepted {request:?}")
    }

    fn transfers(&mut self, count: u32, phase: &str) -> anyhow::Result<()> {
        let started = Instant::now();
        for i in 0..count {
            let from = ACCOUNTS[i as usize % 3];
            let to = ACCOUNTS[(i as usize + 1) % 3];
            self.write(&format!("transfer {from} {to} {}", i % 7 + 1))?;
        }
        let seconds = started.elapsed().as_secs_f64();
        println!("{phase}: {count} transfers in {seconds:.2} s (primary {})", self.primary);
        Ok(())
    }
}

/// Runs the demo; an error says which check failed.
pub fn run(transfers: u32) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut cluster = Cluster {
        replicas: write_configs(dir.path())?
            .into_iter()
            .map(|config| Replica { config, process: None })
            .collect(),
        primary: 1,
        ledger: Ledger::default(),
    };
    for id in 1..=REPLICAS {
        cluster.replica(id).start()?;
    }
    println!("primary elected: replica {}", cluster.find_primary(None)?);
    for account in ACCOUNTS {
        cluster.write(&format!("open {account} {OPENING_BALANCE}"))?;
    }
    cluster.transfers(transfers, "3 replicas")?;

    let follower = (1..=REPLICAS).find(|&id| id != cluster.primary).expect("3 replicas");
    cluster.replica(follower).kill()?;
    println!("killed follower {follower} (SIGKILL)");
    cluster.transfers(transfers, "2 replicas")?;
    cluster.replica(follower).start()?;
    println!("restarted follower {follower} on its data directory");
    cluster.transfers(transfers, "3 replicas")?;

    let old = cluster.primary;
    cluster.replica(old).kill()?;
    let killed = Instant::now();
    let new = cluster.find_primary(Some(old))?;
    println!("killed primary {old}; replica {new} elected in {:?}", killed.elapsed());
    cluster.transfers(transfers, "2 replicas")?;
    cluster.replica(old).start()?;
    println!("restarted replica {old}");
    cluster.transfers(transfers, "3 replicas")?;

    check(&mut cluster)?;
    for id in 1..=REPLICAS {
        cluster.replica(id).stop()?;
    }
    Ok(())
}

/// Every replica, once it has executed the last acknowledged slot, must hold the same
/// balances, with the opened total, and (if no outcome was unknown) what the ledger implies.
fn check(cluster: &mut Cluster) -> anyhow::Result<()> {
    let last = cluster.ledger.last_slot;
    let mut digests = Vec::new();
    for id in 1..=REPLICAS {
        let answer = cluster.replica(id).ask(&format!("read-at {last} digest"))?;
        let digest = answer.strip_prefix("ok ").context(answer.clone())?.to_string();
        println!("replica {id} at slot >= {last}: {digest}");
        digests.push(digest);
    }
    ensure!(digests.iter().all(|d| *d == digests[0]), "replicas disagree: {digests:?}");
    let total = OPENING_BALANCE * ACCOUNTS.len() as i64;
    ensure!(digests[0].starts_with(&format!("total={total} ")), "money was made or lost");
    let moved = cluster.ledger.acknowledged.values().filter(|o| o.starts_with("moved")).count();
    if cluster.ledger.unknown_outcomes == 0 {
        let expected = replay(&cluster.ledger)?;
        ensure!(digests[0] == expected, "balances {} but the ledger says {expected}", digests[0]);
    }
    println!(
        "ok: {moved} transfers acknowledged, {} with an unknown outcome; every replica agrees",
        cluster.ledger.unknown_outcomes
    );
    Ok(())
}

/// The balances the acknowledged answers imply, applied in slot order.
fn replay(ledger: &Ledger) -> anyhow::Result<String> {
    let mut balances: BTreeMap<&str, i64> = BTreeMap::new();
    for outcome in ledger.acknowledged.values() {
        let words: Vec<&str> = outcome.split_whitespace().collect();
        match words.as_slice() {
            ["opened", account, amount] => {
                balances.insert(account, amount.parse()?);
            }
            ["moved", amount, "from", from, "to", to] => {
                let amount: i64 = amount.parse()?;
                *balances.get_mut(from).context("unknown account")? -= amount;
                *balances.get_mut(to).context("unknown account")? += amount;
            }
            _ => {}
        }
    }
    let total: i64 = balances.values().sum();
    let listed: Vec<String> = balances.iter().map(|(name, b)| format!("{name}={b}")).collect();
    Ok(format!("total={total} {}", listed.join(" ")))
}

/// Writes one rsl configuration per replica: loopback ports, frequent checkpoints (so a
/// restarted replica loads one and replays the log after it).
fn write_configs(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let ports: Vec<u16> = (0..REPLICAS)
        .map(|_| Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port()))
        .collect::<anyhow::Result<_>>()?;
    let members: Vec<Member> = (1..=REPLICAS)
        .map(|id| Member::new(id, ([127, 0, 0, 1], ports[id as usize - 1]).into()))
        .collect();
    let mut paths = Vec::new();
    for id in 1..=REPLICAS {
        let mut config = NodeConfig::new(id, dir.join(format!("data-{id}")), members.clone());
        config.storage.checkpoint_interval_slots = 100;
        config.storage.log_kept_slots = 50;
        config.validate()?;
        let text = toml::to_string(&config)?;
        let path = dir.join(format!("bank-{id}.toml"));
        std::fs::write(&path, text)?;
        paths.push(path);
    }
    Ok(paths)
}
