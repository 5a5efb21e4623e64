//! `rsl-kv cluster --replace-all`: a local 3-replica cluster whose every member is replaced,
//! one at a time, by a new process on new addresses with a new data directory, while clients
//! write; then every acknowledged write is read back from the new members and a summary
//! printed: writes acknowledged, all read back or not, the longest unavailability and the
//! final membership (no original member in it).
//!
//! The rounds and the load are `rsl_kv::launch::replace`, which the real-process test
//! (`tests/members.rs`) runs too. The cluster is killed on every way out, Ctrl-C included, as
//! in the failover demo (`demo`).

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use rsl_kv::launch::replace::{read_back, replace_all, WriteLoad};
use rsl_kv::launch::{Cluster, ClusterOptions};
use tokio::time::Instant;

/// How long to wait for an election before giving up.
const ELECTION_WAIT: Duration = Duration::from_secs(10);

/// How long the load runs before the first round and after the last, so that the summary's
/// figures include the steady state around the changes.
const STEADY_STATE: Duration = Duration::from_secs(1);

/// Runs the demo with `clients` writers.
pub async fn run(exe: &Path, options: ClusterOptions, clients: usize) -> anyhow::Result<()> {
    let fsync = options.fsync;
    let mut cluster = Cluster::start(exe, options).await?;
    println!(
        "rsl-kv local cluster: 3 replicas as separate processes on 127.0.0.1, mutual TLS, \
         fsync {}",
        if fsync { "on" } else { "off" }
    );
    println!("  files (removed at exit): {}", cluster.dir().display());
    let outcome = tokio::select! {
        outcome = replace_everything(&mut cluster, clients) => outcome,
        signal = crate::shutdown_signal() => {
            println!("\ninterrupted: stopping the replicas");
            signal
        }
    };
    cluster.stop().await;
    outcome
}

async fn replace_everything(cluster: &mut Cluster, clients: usize) -> anyhow::Result<()> {
    let epoch = Instant::now();
    let primary = cluster.wait_primary(None, ELECTION_WAIT).await?;
    for r in cluster.replicas() {
        let role = if r.id == primary { "primary" } else { "follower" };
        println!("  replica {}: client {}  peer {}  ({role})", r.id, r.client_addr, r.peer_addr);
    }
    let addrs = cluster.replicas().iter().map(|r| r.client_addr).collect();
    println!(
        "load: {clients} clients, each SET load-C-N one after another through the newest member \
         that answers (followers forward to the primary)"
    );
    let load = WriteLoad::start(addrs, clients);
    tokio::time::sleep(STEADY_STATE).await;
    let mut members: Vec<u32> = vec![1, 2, 3];
    let say = |line: String| println!("  t={:>5.1}s  {line}", epoch.elapsed().as_secs_f64());
    let replaced = replace_all(cluster, &mut members, Some(&load), say).await;
    if replaced.is_ok() {
        tokio::time::sleep(STEADY_STATE).await;
    }
    let elapsed = epoch.elapsed();
    let load = load.finish().await?;
    let rounds = replaced?;
    let primary = cluster.wait_primary(None, ELECTION_WAIT).await?;
    let at = cluster.replica(primary).client_addr;
    let lost = read_back(at, &load.acknowledged).await?;
    let listed = rsl_kv::launch::replace::member(cluster, at, &["list"])
        .await
        .context("listing the members")?;
    println!("\nsummary");
    for r in &rounds {
        println!(
            "  round        replica {} replaced by replica {} (client {}) in {} ms",
            r.old,
            r.new,
            r.client_addr,
            r.took.as_millis()
        );
    }
    println!(
        "  writes       {} acknowledged in {:.1} s ({:.0}/s)",
        load.acknowledged.len(),
        elapsed.as_secs_f64(),
        load.acknowledged.len() as f64 / elapsed.as_secs_f64()
    );
    println!(
        "  read back    {}: {} of {} acknowledged writes read back from the new primary, \
         replica {primary}",
        if lost.is_empty() { "yes" } else { "NO" },
        load.acknowledged.len() - lost.len(),
        load.acknowledged.len()
    );
    println!(
        "  unavailable  {} ms at most: the longest wait of one client between two acknowledged \
         writes",
        load.longest_gap.as_millis()
    );
    let originals_left: Vec<u32> = [1, 2, 3].into_iter().filter(|o| members.contains(o)).collect();
    println!(
        "  membership   {} (original members left: {})",
        members.iter().map(u32::to_string).collect::<Vec<_>>().join(", "),
        if originals_left.is_empty() { "none".to_string() } else { format!("{originals_left:?}") }
    );
    println!("\nmembers (rsl-kv member list at the primary):");
    print!("{listed}");
    if !lost.is_empty() {
        bail!("{} acknowledged writes were not read back", lost.len());
    }
    if !originals_left.is_empty() {
        bail!("original members are left: {originals_left:?}");
    }
    Ok(())
}
