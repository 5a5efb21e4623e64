//! Real processes: three `rsl-kv run --config FILE` replicas on loopback with mutual TLS
//! between them (started by `rsl_kv::launch::Cluster`), driven over their client ports with
//! `redis-cli` (when installed) or raw RESP, killed with SIGKILL, paused with SIGSTOP, and
//! probed on their replica ports by processes that are not members.
//!
//! Waiting is on events where one exists: each replica prints a line whenever its role,
//! primary or ballot changes, and the cluster waits for those lines. Catching up and the
//! metrics counters have no event, so those are polled with a short pause, bounded.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rsl_kv::client::{describe, Client};
use rsl_kv::launch::{Cluster, ClusterOptions};
use rsl_kv::resp::Reply;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const EXE: &str = env!("CARGO_BIN_EXE_rsl-kv");
const WAIT: Duration = Duration::from_secs(10);
/// The failover target with default settings.
const FAILOVER_MAX: Duration = Duration::from_secs(2);
/// The pause between two polls of something that has no event.
const POLL_PAUSE: Duration = Duration::from_millis(50);

async fn start(requirepass: Option<&str>) -> Cluster {
    let options =
        ClusterOptions { requirepass: requirepass.map(String::from), ..ClusterOptions::default() };
    Cluster::start(EXE.as_ref(), options).await.expect("the cluster starts")
}

async fn cmd(addr: SocketAddr, password: Option<&str>, args: &[&str]) -> Reply {
    let mut client = Client::connect_auth(addr, password, WAIT).await.expect("connect");
    client.cmd(args).await.expect("a reply")
}

fn bulk(text: &str) -> Reply {
    Reply::Bulk(Bytes::copy_from_slice(text.as_bytes()))
}

fn others(cluster: &Cluster, not: &[u32]) -> Vec<u32> {
    cluster.running().into_iter().filter(|id| !not.contains(id)).collect()
}

/// Runs redis-cli against `addr`, or returns `None` if it is not installed.
fn redis_cli(addr: SocketAddr, password: Option<&str>, args: &[&str]) -> Option<String> {
    let mut command = std::process::Command::new("redis-cli");
    command.args(["-h", "127.0.0.1", "-p", &addr.port().to_string()]);
    if let Some(password) = password {
        command.args(["--no-auth-warning", "-a", password]);
    }
    let output = command.args(args).output().ok()?;
    assert!(output.status.success(), "redis-cli failed: {output:?}");
    Some(String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// Runs an rsl-kv admin subcommand; returns its stdout.
fn rsl_kv(args: &[&str]) -> String {
    let output = std::process::Command::new(EXE).args(args).output().expect("rsl-kv runs");
    assert!(output.status.success(), "rsl-kv {args:?} failed: {output:?}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `GET /metrics` from a replica's metrics address.
async fn metrics(addr: SocketAddr) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("metrics connect");
    stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut body = String::new();
    tokio::time::timeout(WAIT, stream.read_to_string(&mut body)).await.unwrap().unwrap();
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    body
}

/// The sum of every metric whose name holds "rejected" (the replica's rejected messages and
/// the transport's rejected frames and handshakes, whichever the build exports).
fn rejections(metrics: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains("rejected"))
        .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .sum()
}

/// A replica's own status fields (`RSL.STATUS`).
async fn status(addr: SocketAddr, password: Option<&str>) -> BTreeMap<String, String> {
    let Reply::Bulk(text) = cmd(addr, password, &["RSL.STATUS"]).await else { panic!("status") };
    let text = String::from_utf8_lossy(&text).into_owned();
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn slot(status: &BTreeMap<String, String>, field: &str) -> u64 {
    status[field].parse().unwrap()
}

#[tokio::test]
async fn any_replica_serves_with_a_password_and_admin_commands_work() {
    let pw = Some("s3cret");
    let mut cluster = start(pw).await;
    let primary = cluster.wait_primary(None, WAIT).await.unwrap();
    let followers = others(&cluster, &[primary]);
    let (f, g) =
        (cluster.replica(followers[0]).client_addr, cluster.replica(followers[1]).client_addr);

    // Without AUTH, nothing (admin commands included) is served.
    let noauth = cmd(f, None, &["RSL.STATUS"]).await;
    assert!(describe(&noauth).starts_with("NOAUTH"), "{noauth:?}");
    // A write through one follower (forwarded, authenticated) is read through the other.
    match redis_cli(f, pw, &["SET", "greeting", "hello"]) {
        Some(out) => {
            assert_eq!(out, "OK");
            assert_eq!(redis_cli(g, pw, &["GET", "greeting"]).unwrap(), "hello");
            assert_eq!(redis_cli(g, pw, &["INCR", "n"]).unwrap(), "1");
            assert_eq!(redis_cli(f, pw, &["INCR", "n"]).unwrap(), "2");
        }
        None => {
            eprintln!("redis-cli is not installed: using raw RESP (apt-get install redis-tools)");
            assert_eq!(cmd(f, pw, &["SET", "greeting", "hello"]).await, Reply::ok());
            assert_eq!(cmd(g, pw, &["GET", "greeting"]).await, bulk("hello"));
        }
    }
    let primary_addr = cluster.replica(primary).client_addr;
    assert_eq!(cmd(primary_addr, pw, &["GET", "greeting"]).await, bulk("hello"));
    // GETs at a primary that holds its lease are served without the consensus thread and
    // counted (`rsl_lease_reads_total`); bounded, as a lease may lapse on a loaded machine.
    let mut lease_reads = 0;
    for _ in 0..50 {
        assert_eq!(cmd(primary_addr, pw, &["GET", "greeting"]).await, bulk("hello"));
        lease_reads = slot(&status(primary_addr, pw).await, "rsl_lease_reads_total");
        if lease_reads > 0 {
            break;
        }
    }
    assert!(lease_reads > 0, "no read served under the lease in 50");
    let Reply::Bulk(info) = cmd(f, pw, &["INFO"]).await else { panic!("INFO") };
    let info = String::from_utf8_lossy(&info).into_owned();
    assert!(info.contains("rsl_role:follower"), "{info}");
    assert!(info.contains(&format!("rsl_primary:{primary}")), "{info}");
    // One name per field: INFO's `# Rsl` section is RSL.STATUS, and no field appears twice.
    let names = |text: &str| -> Vec<String> {
        text.lines().filter_map(|l| l.split_once(':')).map(|(n, _)| n.to_string()).collect()
    };
    let section = info.split("# Rsl\r\n").nth(1).expect("a # Rsl section");
    let section = section.split("\r\n\r\n").next().unwrap();
    let Reply::Bulk(own) = cmd(f, pw, &["RSL.STATUS"]).await else { panic!("RSL.STATUS") };
    assert_eq!(names(section), names(&String::from_utf8_lossy(&own)), "{info}");
    let mut all = names(&info);
    all.sort();
    let before = all.len();
    all.dedup();
    assert_eq!(all.len(), before, "a field appears twice in INFO: {info}");

    // status: one row per replica, the primary among them, all healthy.
    let table = rsl_kv(&["status", "--addr", &f.to_string(), "--password", "s3cret"]);
    let rows: Vec<&str> = table.lines().skip(1).collect();
    assert_eq!(rows.len(), 3, "{table}");
    assert_eq!(rows.iter().filter(|r| r.contains(" primary ")).count(), 1, "{table}");
    assert!(rows.iter().all(|r| r.ends_with(" ok")), "{table}");

    let out = rsl_kv(&["checkpoint", "--addr", &g.to_string(), "--password", "s3cret"]);
    assert!(out.starts_with("OK checkpoint"), "{out}");

    // transfer, asked of a follower, moves primacy to the other follower.
    let to = followers[1].to_string();
    let out = rsl_kv(&["transfer", "--addr", &f.to_string(), "--password", "s3cret", "--to", &to]);
    assert!(out.contains(&format!("replica {to} is the primary")), "{out}");
    assert_eq!(cluster.wait_primary(Some(primary), WAIT).await.unwrap(), followers[1]);
    assert_eq!(cmd(f, pw, &["SET", "after", "transfer"]).await, Reply::ok());

    // The metrics endpoint serves the named metrics.
    let text = metrics(cluster.replica(followers[1]).metrics_addr).await;
    for name in [
        "rsl_role 2",
        "rsl_ballot_round",
        "rsl_committed_slot",
        "rsl_executed_slot",
        "rsl_checkpoint_slot",
        "rsl_log_first_slot",
        "rsl_proposals_total",
        "rsl_rejected_messages_total",
        "rsl_syncs_total",
        "rsl_commit_latency_seconds_bucket",
    ] {
        assert!(text.contains(name), "{name} missing from /metrics:\n{text}");
    }
    cluster.stop().await;
}

#[tokio::test]
async fn a_killed_primary_is_replaced_within_2s_without_losing_writes_and_catches_up() {
    let mut cluster = start(None).await;
    let old = cluster.wait_primary(None, WAIT).await.unwrap();
    let old_addr = cluster.replica(old).client_addr;
    let mut client = Client::connect(old_addr, WAIT).await.unwrap();
    for i in 0..100 {
        let (k, v) = (format!("k{i}"), format!("v{i}"));
        assert_eq!(client.cmd(&["SET", &k, &v]).await.unwrap(), Reply::ok());
    }
    let survivors = others(&cluster, &[old]);
    let (a, b) =
        (cluster.replica(survivors[0]).client_addr, cluster.replica(survivors[1]).client_addr);
    let mut writer = Client::connect(a, WAIT).await.unwrap();

    let killed = Instant::now();
    cluster.kill(old).await.unwrap();
    // The first write through a survivor: it waits for the new primary, then commits. As a
    // careful client would: a write forwarded to the dead primary before the survivor's
    // transport saw its connection break is answered "outcome unknown" (the frame may have
    // reached it); the client then looks whether it landed and writes again if not.
    let mut reply = writer.cmd(&["SET", "after", "failover"]).await.unwrap();
    for _ in 0..3 {
        let Reply::Error(text) = &reply else { break };
        assert!(text.starts_with(b"ERR outcome unknown: "), "{reply:?}");
        if writer.cmd(&["GET", "after"]).await.unwrap() == bulk("failover") {
            reply = Reply::ok();
            break;
        }
        reply = writer.cmd(&["SET", "after", "failover"]).await.unwrap();
    }
    let failover = killed.elapsed();
    assert_eq!(reply, Reply::ok());
    assert!(failover < FAILOVER_MAX, "failover took {failover:?}");
    let new = cluster.wait_primary(Some(old), WAIT).await.unwrap();
    assert!(survivors.contains(&new));

    // Nothing acknowledged is lost.
    let mut reader = Client::connect(b, WAIT).await.unwrap();
    for i in 0..100 {
        let got = reader.cmd(&["GET", &format!("k{i}")]).await.unwrap();
        assert_eq!(got, bulk(&format!("v{i}")), "k{i}");
    }
    assert_eq!(reader.cmd(&["GET", "after"]).await.unwrap(), bulk("failover"));

    // The killed replica restarts from its disk and catches up with the primary.
    let target = slot(&status(cluster.replica(new).client_addr, None).await, "rsl_executed_slot");
    cluster.restart(old).await.unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        let s = status(old_addr, None).await;
        if slot(&s, "rsl_executed_slot") >= target {
            break;
        }
        assert!(Instant::now() < deadline, "the restarted replica is stuck at {s:?}");
        tokio::time::sleep(POLL_PAUSE).await;
    }
    cluster.wait_view(old, WAIT, |v| v.role == "follower" && v.primary == Some(new)).await.unwrap();
    assert_eq!(cmd(old_addr, None, &["GET", "k99"]).await, bulk("v99"));
    cluster.stop().await;
}

#[tokio::test]
async fn a_paused_primary_is_replaced_and_rejoins_as_a_follower() {
    let mut cluster = start(None).await;
    let old = cluster.wait_primary(None, WAIT).await.unwrap();
    assert_eq!(cmd(cluster.replica(old).client_addr, None, &["SET", "k", "1"]).await, Reply::ok());

    let paused = Instant::now();
    cluster.signal(old, libc::SIGSTOP).unwrap();
    let new = cluster.wait_primary(Some(old), WAIT).await.unwrap();
    let failover = paused.elapsed();
    assert!(failover < FAILOVER_MAX, "the election took {failover:?}");
    let new_addr = cluster.replica(new).client_addr;
    assert_eq!(cmd(new_addr, None, &["SET", "k", "2"]).await, Reply::ok());

    cluster.signal(old, libc::SIGCONT).unwrap();
    let view = cluster
        .wait_view(old, WAIT, |v| v.role == "follower" && v.primary == Some(new))
        .await
        .unwrap();
    assert_eq!(view.primary, Some(new));
    // Reads through the old primary are linearizable: it forwards to the new one.
    assert_eq!(cmd(cluster.replica(old).client_addr, None, &["GET", "k"]).await, bulk("2"));
    cluster.stop().await;
}

/// A forwarded request waits for the primary's answer as long as any call of the replica may
/// (`consensus.call_timeout_ms`), not for a shorter limit of its own: with a deadline of 60 s,
/// a write forwarded to a primary that lacks a quorum for 6 s is answered once the quorum is
/// back, not "outcome unknown" at 5 s (the fixed forwarding wait it had; found as a flaky run
/// of the 16 MiB limits test, whose configured deadline forwarding ignored on a loaded
/// machine). Five replicas: the primary and the forwarding follower stay up and connected
/// (a paused primary's connections break after the transport's idle timeout, 3 s), the other
/// three are paused.
#[tokio::test]
async fn a_forwarded_write_waits_for_the_configured_call_deadline() {
    let options = ClusterOptions {
        replicas: 5,
        // No election, and the primary keeps its primacy, while the quorum is away: 10 to
        // 11 s of silence before either.
        consensus: "call_timeout_ms = 60000\nelection_ticks_min = 1000\nelection_ticks_max = 1100"
            .to_string(),
        ..ClusterOptions::default()
    };
    let mut cluster = Cluster::start(EXE.as_ref(), options).await.expect("the cluster starts");
    let primary = cluster.wait_primary(None, 3 * WAIT).await.unwrap();
    let rest = others(&cluster, &[primary]);
    let follower = rest[0];
    cluster.wait_view(follower, WAIT, |v| v.primary == Some(primary)).await.unwrap();
    let f_addr = cluster.replica(follower).client_addr;
    assert_eq!(cmd(f_addr, None, &["SET", "k", "before"]).await, Reply::ok());

    for id in &rest[1..] {
        cluster.signal(*id, libc::SIGSTOP).unwrap();
    }
    let sent = Instant::now();
    let write = tokio::spawn(async move { cmd(f_addr, None, &["SET", "k", "after"]).await });
    // The fault's length (longer than the old 5 s wait), not a wait for a condition.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert!(!write.is_finished(), "answered without a quorum after {:?}", sent.elapsed());
    for id in &rest[1..] {
        cluster.signal(*id, libc::SIGCONT).unwrap();
    }
    let reply = write.await.unwrap();
    assert_eq!(reply, Reply::ok(), "after {:?}", sent.elapsed());
    let p_addr = cluster.replica(primary).client_addr;
    assert_eq!(cmd(p_addr, None, &["GET", "k"]).await, bulk("after"));
    cluster.stop().await;
}

#[tokio::test]
async fn a_process_that_is_not_a_member_cannot_inject_a_message() {
    let mut cluster = start(None).await;
    let primary = cluster.wait_primary(None, WAIT).await.unwrap();
    let addr = cluster.replica(primary).client_addr;
    assert_eq!(cmd(addr, None, &["SET", "k", "v"]).await, Reply::ok());
    let victim = others(&cluster, &[primary])[0];
    let target = cluster.replica(victim).clone();
    let before = rejections(&metrics(target.metrics_addr).await);

    // 1. No TLS at all: a plaintext hello and a frame's worth of bytes.
    let mut raw = tokio::net::TcpStream::connect(target.peer_addr).await.unwrap();
    let _ = raw.write_all(b"RSL\x01hello, I am replica 1; please accept this message\n").await;
    let mut sink = Vec::new();
    let _ = tokio::time::timeout(WAIT, raw.read_to_end(&mut sink)).await;

    // 2. TLS with a certificate from another authority, claiming to be a member.
    let foreign = tempfile::tempdir().unwrap();
    rsl_net::generate_cluster_certs(foreign.path(), rsl::CLUSTER_NAME, &[1, 2, 3]).unwrap();
    let claimed = others(&cluster, &[victim])[0];
    let identity = rsl_net::TlsIdentity::load(foreign.path(), claimed).unwrap();
    let peers = BTreeMap::from([(victim, target.peer_addr)]);
    let listen: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let mut config = rsl_net::TransportConfig::new(rsl::CLUSTER_NAME, claimed, listen, peers);
    config.security = rsl_net::Security::MutualTls(identity);
    let (impostor, _incoming) = rsl_net::TcpTransport::start(config).await.unwrap();
    let _ = rsl_net::Transport::send(&impostor, victim, Bytes::from_static(b"forged message"));

    // The victim counts the rejections (no event crosses processes: poll, bounded).
    let deadline = Instant::now() + WAIT;
    let after = loop {
        let after = rejections(&metrics(target.metrics_addr).await);
        if after >= before + 2 || Instant::now() > deadline {
            break after;
        }
        tokio::time::sleep(POLL_PAUSE).await;
    };
    impostor.shutdown().await;
    assert!(after >= before + 2, "rejections went from {before} to {after}");
    // Nothing changed: same primary, same data.
    assert_eq!(cluster.agreed_primary(), Some(primary));
    let victim_addr = target.client_addr;
    assert_eq!(cmd(victim_addr, None, &["DBSIZE"]).await, Reply::Integer(1));
    assert_eq!(cmd(victim_addr, None, &["GET", "k"]).await, bulk("v"));
    cluster.stop().await;
}

#[tokio::test]
async fn run_refuses_a_bad_configuration_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    let text = r#"
        id = 1
        data_dir = "/nonexistent/rsl-kv"
        members = [{ id = 1, addr = "127.0.0.1:1" }, { id = 2, addr = "127.0.0.1:2" }]
        [kv]
        clients = [{ id = 1, addr = "127.0.0.1:3" }]
    "#;
    std::fs::write(&path, text).unwrap();
    let output = std::process::Command::new(EXE)
        .args(["run", "--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("kv.clients: member 2 has no client address"), "{stderr}");
    let missing = std::process::Command::new(EXE)
        .args(["run", "--config", "/nonexistent/rsl-kv.toml"])
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/rsl-kv.toml"));
}

/// A proposal queue whose byte bound is below one maximal request would refuse the largest
/// values as overloaded whenever anything else waits: `run` refuses such a configuration
/// (one byte below `request_bytes_max`) naming the field.
#[tokio::test]
async fn run_refuses_a_queue_smaller_than_one_maximal_request() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("small-queue.toml");
    let text = format!(
        r#"
        id = 1
        data_dir = "{}"
        members = [{{ id = 1, addr = "127.0.0.1:1" }}]
        [consensus]
        request_bytes_max = 1000
        proposals_queued_bytes_max = 999
        [kv]
        clients = [{{ id = 1, addr = "127.0.0.1:3" }}]
    "#,
        dir.path().join("data").display()
    );
    std::fs::write(&path, text).unwrap();
    // A replica that took the configuration would run until killed: bounded.
    let child = tokio::process::Command::new(EXE)
        .args(["run", "--config", path.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let output = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("run refuses the configuration and exits")
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("consensus.proposals_queued_bytes_max: must be at least request_bytes_max"),
        "{stderr}"
    );
}

/// Whether process `pid` is gone (or a zombie awaiting its reaper).
fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

/// The replica pids the cluster command prints (`  replica N: pid P ...`).
fn replica_pids(output: &str) -> Vec<u32> {
    output
        .lines()
        .filter(|l| l.trim_start().starts_with("replica ") && l.contains(" pid "))
        .filter_map(|l| l.split(" pid ").nth(1)?.split_whitespace().next()?.parse().ok())
        .collect()
}

#[tokio::test]
async fn the_cluster_command_fails_over_verifies_and_cleans_up() {
    let output = tokio::process::Command::new(EXE)
        .args(["cluster", "--seconds", "5", "--clients", "4"])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("killed the primary"), "{stdout}");
    assert!(stdout.contains("0 wrong reads"), "{stdout}");
    let failover_line = stdout.lines().find(|l| l.trim_start().starts_with("failover")).unwrap();
    let ms: u64 = failover_line.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(ms < FAILOVER_MAX.as_millis() as u64, "{failover_line}");
    let pids = replica_pids(&stdout);
    assert_eq!(pids.len(), 3, "{stdout}");
    assert!(pids.iter().all(|&p| gone(p)), "replicas outlived the cluster command: {pids:?}");
}

#[tokio::test]
async fn ctrl_c_stops_the_cluster_commands_replicas() {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(EXE)
        .args(["cluster", "--seconds", "60"])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = String::new();
    // The workload line comes once every replica runs and a primary is elected.
    while !seen.contains("workload:") {
        let line = tokio::time::timeout(WAIT, lines.next_line()).await.unwrap().unwrap();
        seen.push_str(&line.expect("the cluster command ended early"));
        seen.push('\n');
    }
    let pids = replica_pids(&seen);
    assert_eq!(pids.len(), 3, "{seen}");
    assert!(pids.iter().all(|&p| !gone(p)));
    // SAFETY: kill(2) on our own child.
    assert_eq!(unsafe { libc::kill(child.id().unwrap() as i32, libc::SIGINT) }, 0);
    let status = tokio::time::timeout(WAIT, child.wait()).await.unwrap().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(pids.iter().all(|&p| gone(p)), "replicas outlived Ctrl-C: {pids:?}");
}

#[tokio::test]
async fn local_reads_are_served_by_a_follower_without_a_quorum() {
    let options =
        ClusterOptions { reads: rsl_kv::config::Reads::Local, ..ClusterOptions::default() };
    let mut cluster = Cluster::start(EXE.as_ref(), options).await.unwrap();
    let primary = cluster.wait_primary(None, WAIT).await.unwrap();
    let primary_addr = cluster.replica(primary).client_addr;
    assert_eq!(cmd(primary_addr, None, &["SET", "k", "v"]).await, Reply::ok());
    // `executed` is live on the primary; `committed` is published once per tick.
    let target = slot(&status(primary_addr, None).await, "rsl_executed_slot");
    let followers = others(&cluster, &[primary]);
    let f = cluster.replica(followers[0]).client_addr;
    // No event says a follower executed a slot: poll, bounded.
    let deadline = Instant::now() + WAIT;
    while slot(&status(f, None).await, "rsl_executed_slot") < target {
        assert!(Instant::now() < deadline, "the follower never executed slot {target}");
        tokio::time::sleep(POLL_PAUSE).await;
    }
    // With the two others paused there is no quorum, yet the follower answers from its state.
    cluster.signal(primary, libc::SIGSTOP).unwrap();
    cluster.signal(followers[1], libc::SIGSTOP).unwrap();
    let mut client = Client::connect(f, Duration::from_secs(2)).await.unwrap();
    let read = client.cmd(&["GET", "k"]).await;
    cluster.signal(primary, libc::SIGCONT).unwrap();
    cluster.signal(followers[1], libc::SIGCONT).unwrap();
    assert_eq!(read.expect("a local read within 2 s"), bulk("v"));
    cluster.stop().await;
}

#[tokio::test]
async fn a_client_cannot_forward_and_nothing_it_sends_as_forwarded_executes() {
    use rsl_kv::request::{Request, WriteOp};
    use rsl_kv::resp::Proto;
    let mut cluster = start(None).await;
    let primary = cluster.wait_primary(None, WAIT).await.unwrap();
    let set = Request::Write {
        stamp_ms: 1,
        op: WriteOp::Command {
            proto: Proto::Resp2,
            args: vec!["SET".into(), "forged".into(), "v".into()],
        },
    };
    let encoded = set.encode();
    for id in cluster.running() {
        let addr = cluster.replica(id).client_addr;
        let mut client = Client::connect(addr, WAIT).await.unwrap();
        for kind in ["WRITE", "READ"] {
            let args: [&[u8]; 3] = [b"RSL.FORWARD", kind.as_bytes(), &encoded];
            let reply = client.cmd(&args).await.unwrap();
            let text = describe(&reply);
            assert!(matches!(reply, Reply::Error(_)), "replica {id}: {text}");
            assert!(text.starts_with("ERR unknown command"), "replica {id}: {text}");
        }
    }
    // Forwarding between members still works; the forged write is nowhere.
    let follower = cluster.replica(others(&cluster, &[primary])[0]).client_addr;
    assert_eq!(cmd(follower, None, &["SET", "real", "1"]).await, Reply::ok());
    for id in cluster.running() {
        let addr = cluster.replica(id).client_addr;
        assert_eq!(cmd(addr, None, &["GET", "forged"]).await, Reply::Null, "replica {id}");
    }
    assert_eq!(
        cmd(cluster.replica(primary).client_addr, None, &["DBSIZE"]).await,
        Reply::Integer(1)
    );
    cluster.stop().await;
}

/// One operation of the pause test's clients, as it ended.
#[derive(Debug, Clone)]
struct Op {
    client: usize,
    /// The replica the client is connected to.
    replica: u32,
    write: bool,
    key: String,
    /// The phase of the test when the operation was sent.
    sent_in: u8,
    outcome: Result<Reply, String>,
}

/// What the pause test's clients share: the phase, and every operation's end.
struct PauseLog {
    phase: std::sync::atomic::AtomicU8,
    stop: std::sync::atomic::AtomicBool,
    ops: std::sync::Mutex<Vec<Op>>,
    changed: tokio::sync::Notify,
}

const RUNNING: u8 = 0;
const PAUSED: u8 = 1;
const ELECTED: u8 = 2;
const RESUMED: u8 = 3;

impl PauseLog {
    /// Waits (bounded) until `check` holds of the operations so far.
    async fn wait(&self, what: &str, check: impl Fn(&[Op]) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if check(&self.ops.lock().unwrap()) {
                return;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                let ops = self.ops.lock().unwrap();
                let tail: Vec<&Op> = ops.iter().rev().take(20).collect();
                panic!("{what}: not within 60 s; the last operations: {tail:#?}");
            }
        }
    }
}

/// A client that SETs its own keys (a writer) or GETs one key (a reader) through one replica
/// until told to stop; each operation waits for its reply up to `REPLY_MAX` (a hang fails the
/// test). Writers and readers are apart so that every replica has writes in flight when the
/// primary is paused.
async fn pause_client(client: usize, replica: u32, addr: SocketAddr, log: Arc<PauseLog>) {
    use std::sync::atomic::Ordering::SeqCst;
    const REPLY_MAX: Duration = Duration::from_secs(60);
    let mut conn = Client::connect(addr, REPLY_MAX).await.expect("connect");
    let write = client.is_multiple_of(2);
    let mut n = 0;
    while !log.stop.load(SeqCst) {
        let key = if write { format!("pause:{client}:{n}") } else { "pause:read".to_string() };
        let args = if write { vec!["SET", &key, "v"] } else { vec!["GET", &key] };
        let sent_in = log.phase.load(SeqCst);
        let outcome = conn.cmd(&args).await.map_err(|e| e.to_string());
        let broken = outcome.is_err();
        log.ops.lock().unwrap().push(Op { client, replica, write, key, sent_in, outcome });
        log.changed.notify_waiters();
        if broken {
            return;
        }
        n += 1;
    }
}

fn ok(op: &Op) -> bool {
    matches!(&op.outcome, Ok(r) if !matches!(r, Reply::Error(_)))
}

#[tokio::test]
async fn a_paused_primary_holds_no_request_and_followers_serve_again_once_one_is_elected() {
    use std::sync::atomic::Ordering::SeqCst;
    let mut cluster = start(None).await;
    let old = cluster.wait_primary(None, WAIT).await.unwrap();
    let old_addr = cluster.replica(old).client_addr;
    assert_eq!(cmd(old_addr, None, &["SET", "pause:read", "v"]).await, Reply::ok());
    let log = Arc::new(PauseLog {
        phase: std::sync::atomic::AtomicU8::new(RUNNING),
        stop: std::sync::atomic::AtomicBool::new(false),
        ops: std::sync::Mutex::new(Vec::new()),
        changed: tokio::sync::Notify::new(),
    });
    // A writer and a reader through every replica, the primary included.
    let mut clients = Vec::new();
    let mut client_replica = Vec::new();
    for (i, id) in cluster.running().into_iter().chain(cluster.running()).enumerate() {
        let addr = cluster.replica(id).client_addr;
        clients.push(tokio::spawn(pause_client(i, id, addr, Arc::clone(&log))));
        client_replica.push(id);
    }
    let clients_of = |not: u32| -> Vec<usize> {
        (0..client_replica.len()).filter(|&c| client_replica[c] != not).collect()
    };
    let through_followers = clients_of(old);
    let through_old: Vec<usize> =
        (0..client_replica.len()).filter(|&c| client_replica[c] == old).collect();
    let succeeded_in = |ops: &[Op], client: usize, phase: u8| {
        ops.iter().any(|o| o.client == client && o.sent_in >= phase && ok(o))
    };
    log.wait("every client succeeds", |ops| {
        (0..client_replica.len()).all(|c| succeeded_in(ops, c, RUNNING))
    })
    .await;

    log.phase.store(PAUSED, SeqCst);
    cluster.signal(old, libc::SIGSTOP).unwrap();
    let new = cluster.wait_primary(Some(old), WAIT).await.unwrap();
    log.phase.store(ELECTED, SeqCst);
    // Every client of a replica that was not paused succeeds again, with the old primary
    // still paused: nothing it held keeps them waiting.
    log.wait("the followers' clients succeed after the election", |ops| {
        through_followers.iter().all(|&c| succeeded_in(ops, c, ELECTED))
    })
    .await;

    log.phase.store(RESUMED, SeqCst);
    cluster.signal(old, libc::SIGCONT).unwrap();
    log.wait("the old primary's clients succeed after it resumes", |ops| {
        through_old.iter().all(|&c| succeeded_in(ops, c, RESUMED))
    })
    .await;
    log.stop.store(true, SeqCst);
    for client in clients {
        client.await.unwrap();
    }

    let ops = log.ops.lock().unwrap().clone();
    // No operation hung (each ended within its client's 60 s) or broke its connection.
    let broken: Vec<&Op> = ops.iter().filter(|o| o.outcome.is_err()).collect();
    assert!(broken.is_empty(), "operations without a reply: {broken:#?}");
    // Through a replica that was not paused, every read succeeded (a read waiting on the
    // deposed primary is tried again at the new one), and a write failed only because the
    // primary it was sent to was deposed while it waited (its outcome is unknown): never by
    // waiting out a deadline.
    for op in ops.iter().filter(|o| o.replica != old && !ok(o)) {
        let text = describe(op.outcome.as_ref().unwrap());
        assert!(op.write, "a read through replica {} failed: {op:?}", op.replica);
        // Not by the transport closing its silent connection to the paused replica either
        // (after its idle timeout, 3 s): the election, about 0.5 s, must end the wait first.
        assert!(
            text.starts_with("ERR outcome unknown: ") && text.contains("was deposed"),
            "a write through replica {} failed otherwise: {text}",
            op.replica
        );
    }
    // Every acknowledged SET is there.
    let acknowledged: Vec<&str> =
        ops.iter().filter(|o| o.write && ok(o)).map(|o| o.key.as_str()).collect();
    assert!(ops.iter().filter(|o| !o.write).all(|o| !ok(o) || o.outcome == Ok(bulk("v"))));
    let mut conn = Client::connect(cluster.replica(new).client_addr, WAIT).await.unwrap();
    for key in &acknowledged {
        assert_eq!(conn.cmd(&["GET", key]).await.unwrap(), bulk("v"), "{key}");
    }
    let followers_ok = ops.iter().filter(|o| o.replica != old && ok(o)).count();
    let followers_failed = ops.iter().filter(|o| o.replica != old && !ok(o)).count();
    eprintln!(
        "{} operations; through the followers {followers_ok} succeeded and {followers_failed} \
         writes had an unknown outcome; {} acknowledged SETs read back",
        ops.len(),
        acknowledged.len()
    );
    cluster.stop().await;
}

#[tokio::test]
async fn a_replica_whose_storage_fails_exits_non_zero_naming_the_cause() {
    // Small log segments, so that a few writes make every replica open a new segment file.
    let options =
        ClusterOptions { storage: "segment_bytes_max = 4096".into(), ..ClusterOptions::default() };
    let mut cluster = Cluster::start(EXE.as_ref(), options).await.unwrap();
    let primary = cluster.wait_primary(None, WAIT).await.unwrap();
    let victim = others(&cluster, &[primary])[0];
    // Its data directory disappears under it: the next segment cannot be created. Renamed
    // away in one step, then removed: removing it in place raced with the replica creating a
    // file in it (`remove_dir_all` failed "directory not empty", once in a full test run).
    let dir = cluster.data_dir(victim);
    let gone = dir.with_extension("gone");
    std::fs::rename(&dir, &gone).unwrap();
    let _ = std::fs::remove_dir_all(&gone);
    let addr = cluster.replica(primary).client_addr;
    let mut client = Client::connect(addr, WAIT).await.unwrap();
    let value = "x".repeat(1024);
    for i in 0..32 {
        // The other two still make a majority: every write is acknowledged.
        assert_eq!(client.cmd(&["SET", &format!("k{i}"), &value]).await.unwrap(), Reply::ok());
    }
    let status = cluster.wait_exit(victim, WAIT).await.unwrap();
    assert!(!status.success(), "{status:?}");
    let log = std::fs::read_to_string(&cluster.replica(victim).log).unwrap();
    // The error line (with RUST_BACKTRACE set, a backtrace follows it).
    let last = log.lines().rfind(|l| l.starts_with("Error: ")).unwrap_or_default();
    assert!(last.contains(&format!("replica {victim} stopped on its own")), "{log}");
    assert!(last.contains("storage"), "the cause is named: {last}");
    eprintln!("replica {victim}'s last line: {last}");
    cluster.stop().await;
}
