//! Membership changes with real processes: a three-replica `rsl-kv` cluster (mutual TLS
//! between replicas, started by `rsl_kv::launch::Cluster`) has every member replaced, one at
//! a time, by a new process on new addresses with a new data directory, through `rsl-kv
//! member add`, `promote` and `remove` sent to whichever member (relayed to the primary;
//! `rsl_kv::launch::replace`, shared with `rsl-kv cluster --replace-all`); each replaced
//! process exits by itself; every acknowledged write is then read
//! back from the new members, those of a client writing all along included (the longest gap
//! between two of its acknowledged writes is printed). Also `RSL.MEMBERS` refusals and the
//! member list.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rsl_kv::client::Client;
use rsl_kv::launch::replace::{read_back, replace_all, WriteLoad};
use rsl_kv::launch::{Cluster, ClusterOptions};
use rsl_kv::resp::Reply;

const EXE: &str = env!("CARGO_BIN_EXE_rsl-kv");
const WAIT: Duration = Duration::from_secs(20);

async fn cmd(addr: SocketAddr, args: &[&str]) -> Reply {
    let mut client = Client::connect_auth(addr, None, WAIT).await.expect("connect");
    client.cmd(args).await.expect("a reply")
}

/// Runs `rsl-kv` with `args`; returns its stdout, or panics with its stderr.
fn rsl_kv(args: &[&str]) -> String {
    let output = std::process::Command::new(EXE).args(args).output().expect("rsl-kv runs");
    assert!(output.status.success(), "rsl-kv {args:?} failed: {output:?}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Writes `key` at the primary; panics unless it is acknowledged.
async fn set(cluster: &mut Cluster, key: &str) {
    let p = cluster.wait_primary(None, WAIT).await.unwrap();
    let addr = cluster.replica(p).client_addr;
    assert_eq!(cmd(addr, &["SET", key, key]).await, Reply::ok(), "SET {key} at {p}");
}

/// The three original members replaced one at a time (`rsl_kv::launch::replace`, which
/// `rsl-kv cluster --replace-all` runs too: `rsl-kv member add`, a wait for catch-up,
/// `promote`, `remove`, each sent to a member that stays) while a client writes all along.
#[tokio::test]
async fn every_member_is_replaced_by_a_new_process_from_the_command_line() {
    let options = ClusterOptions { fsync: false, ..ClusterOptions::default() };
    let mut cluster = Cluster::start(EXE.as_ref(), options).await.expect("the cluster starts");
    let addrs: Vec<SocketAddr> = (1..=3).map(|id| cluster.replica(id).client_addr).collect();
    let load = WriteLoad::start(addrs, 1);
    let mut written = Vec::new();
    for i in 0..20 {
        let key = format!("before-{i}");
        set(&mut cluster, &key).await;
        written.push(key);
    }
    let mut members: Vec<u32> = vec![1, 2, 3];
    let rounds = replace_all(&mut cluster, &mut members, Some(&load), |line| println!("{line}"))
        .await
        .expect("every member is replaced");
    assert_eq!(members, [4, 5, 6]);
    assert_eq!(rounds.iter().map(|r| (r.old, r.new)).collect::<Vec<_>>(), [(1, 4), (2, 5), (3, 6)]);
    for old in 1..=3 {
        assert!(!cluster.running().contains(&old), "replica {old} still runs");
    }
    set(&mut cluster, "after").await;
    written.push("after".to_string());
    let load = load.finish().await.unwrap();
    assert!(load.acknowledged.len() > 10, "the client wrote {}", load.acknowledged.len());
    println!(
        "replace-all under load: {} writes acknowledged, longest gap between two {:?}",
        load.acknowledged.len(),
        load.longest_gap
    );
    written.extend(load.acknowledged);
    // Every acknowledged write, read back at the new primary, which lists the new members.
    let p = cluster.wait_primary(None, WAIT).await.unwrap();
    assert!(p >= 4);
    let addr = cluster.replica(p).client_addr;
    let listed = rsl_kv(&["member", "list", "--addr", &addr.to_string()]);
    for id in [4, 5, 6] {
        assert!(listed.lines().any(|l| l.starts_with(&id.to_string()) && l.contains("voter")));
    }
    assert_eq!(listed.lines().count(), 4, "{listed}");
    assert_eq!(read_back(addr, &written).await.unwrap(), Vec::<String>::new());
    cluster.stop().await;
}

/// The scripted demo, `rsl-kv cluster --replace-all` (a few seconds): it ends with every
/// acknowledged write read back, no original member, and says so.
#[test]
fn the_replace_all_demo_replaces_every_member_and_loses_nothing() {
    let output = std::process::Command::new(EXE)
        .args(["cluster", "--replace-all", "--clients", "2"])
        .env("RUST_LOG", "warn")
        .output()
        .expect("rsl-kv runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    for expected in [
        "round 3: replica 3's process exited by itself",
        "read back    yes",
        "original members left: none",
        "membership   4, 5, 6",
        "unavailable  ",
    ] {
        assert!(stdout.contains(expected), "no {expected:?} in:\n{stdout}");
    }
    let members = &stdout[stdout.find("members (rsl-kv member list").unwrap()..];
    assert_eq!(members.lines().filter(|l| l.contains("voter")).count(), 3, "{members}");
}

#[tokio::test]
async fn members_commands_refuse_with_the_reason() {
    let options = ClusterOptions { fsync: false, ..ClusterOptions::default() };
    let mut cluster = Cluster::start(EXE.as_ref(), options).await.expect("the cluster starts");
    let p = cluster.wait_primary(None, WAIT).await.unwrap();
    let addr = cluster.replica(p).client_addr;
    let err = |r: Reply| match r {
        Reply::Error(e) => String::from_utf8_lossy(&e).into_owned(),
        other => panic!("not an error: {other:?}"),
    };
    let e = err(cmd(addr, &["RSL.MEMBERS", "REMOVE", "9"]).await);
    assert!(e.contains("replica 9 is not a member"), "{e}");
    let e = err(cmd(addr, &["RSL.MEMBERS", "ADD", "2", "127.0.0.1:1", "127.0.0.1:2"]).await);
    assert!(e.contains("replica 2 is a member already"), "{e}");
    let e = err(cmd(addr, &["RSL.MEMBERS", "PROMOTE", "x"]).await);
    assert!(e.contains("not a number"), "{e}");
    let e = err(cmd(addr, &["RSL.MEMBERS", "FROB"]).await);
    assert!(e.contains("syntax error"), "{e}");
    let Reply::Array(items) = cmd(addr, &["RSL.MEMBERS"]).await else { panic!("not a list") };
    assert_eq!(items.len(), 3);
    cluster.stop().await;
}

#[tokio::test]
async fn a_cluster_grows_to_five_voters_and_back_to_three_from_the_command_line() {
    let options = ClusterOptions { fsync: false, ..ClusterOptions::default() };
    let mut cluster = Cluster::start(EXE.as_ref(), options).await.expect("the cluster starts");
    set(&mut cluster, "three").await;
    let via = cluster.replica(2).client_addr.to_string();
    for _ in 0..2 {
        let running = cluster.running();
        let new = cluster.add_joining(&running).await.unwrap();
        let (id, peer, client) =
            (new.id.to_string(), new.peer_addr.to_string(), new.client_addr.to_string());
        rsl_kv(&[
            "member", "add", "--addr", &via, "--id", &id, "--peer", &peer, "--client", &client,
        ]);
        let promoted = rsl_kv(&["member", "promote", "--addr", &via, "--id", &id]);
        assert!(promoted.contains(&format!("{id}:voter")), "{promoted}");
    }
    // The list is the membership the member asked has executed: ask the primary.
    let p = cluster.wait_primary(None, WAIT).await.unwrap();
    let at_primary = cluster.replica(p).client_addr.to_string();
    let listed = rsl_kv(&["member", "list", "--addr", &at_primary]);
    assert_eq!(listed.lines().filter(|l| l.contains("voter")).count(), 5, "{listed}");
    set(&mut cluster, "five").await;
    for gone in [4u32, 5] {
        let removed = rsl_kv(&["member", "remove", "--addr", &via, "--id", &gone.to_string()]);
        assert!(!removed.contains(&format!("{gone}:")), "{removed}");
        cluster.wait_exited(gone, WAIT).await.expect("the removed replica exits by itself");
    }
    let p = cluster.wait_primary(None, WAIT).await.unwrap();
    let at_primary = cluster.replica(p).client_addr.to_string();
    let listed = rsl_kv(&["member", "list", "--addr", &at_primary]);
    assert_eq!(listed.lines().filter(|l| l.contains("voter")).count(), 3, "{listed}");
    set(&mut cluster, "three again").await;
    let p = cluster.wait_primary(None, WAIT).await.unwrap();
    for key in ["three", "five", "three again"] {
        let value = Reply::Bulk(Bytes::copy_from_slice(key.as_bytes()));
        assert_eq!(cmd(cluster.replica(p).client_addr, &["GET", key]).await, value);
    }
    cluster.stop().await;
}

/// `rsl-kv member` sends a change again while it is refused for a passing reason (here "not
/// primary": the primary's followers are paused, so it steps down and no election can
/// finish),
/// saying so on stderr, and the change is made once the followers resume. Sent once (the
/// behaviour before `--retry-ms`), the command fails at the first refusal.
#[tokio::test]
async fn rsl_kv_member_tries_a_change_again_while_it_is_refused_for_a_passing_reason() {
    use tokio::io::AsyncBufReadExt;
    let options = ClusterOptions { fsync: false, ..ClusterOptions::default() };
    let mut cluster = Cluster::start(EXE.as_ref(), options).await.expect("the cluster starts");
    let p = cluster.wait_primary(None, WAIT).await.unwrap();
    let followers: Vec<u32> = cluster.running().into_iter().filter(|&id| id != p).collect();
    for &f in &followers {
        cluster.signal(f, libc::SIGSTOP).unwrap();
    }
    // Once the primary has stepped down (a change sent before would be in flight, and time
    // out with an unknown outcome: not a refusal), it refuses changes "not primary".
    cluster.wait_view(p, WAIT, |v| v.role != "primary").await.expect("the primary steps down");
    let via = cluster.replica(p).client_addr.to_string();
    let add = ["member", "add", "--addr", &via, "--id", "4", "--peer", "127.0.0.1:1"];
    let mut child = tokio::process::Command::new(EXE)
        .args(add)
        .args(["--client", "127.0.0.1:2", "--retry-ms", "120000"])
        .env_remove("RUST_BACKTRACE")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("rsl-kv member starts");
    let mut stderr = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let refused = tokio::time::timeout(WAIT, async {
        let mut said = Vec::new();
        while let Some(line) = stderr.next_line().await.expect("stderr") {
            if line.contains("refused for now") {
                return line;
            }
            said.push(line);
        }
        panic!("rsl-kv member ended without trying again: {said:?}");
    })
    .await
    .expect("a refusal within the wait");
    assert!(refused.contains("not primary"), "{refused}");
    for &f in &followers {
        cluster.signal(f, libc::SIGCONT).unwrap();
    }
    let mut stdout = child.stdout.take().unwrap();
    let status = tokio::time::timeout(WAIT * 3, child.wait()).await.expect("it ends").unwrap();
    let mut listed = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut stdout, &mut listed).await.unwrap();
    assert!(status.success(), "rsl-kv member add failed after trying again: {listed}");
    assert!(listed.contains("4:learner"), "{listed}");
    cluster.stop().await;
}

/// Waits until the member at `addr` lists replica `id` as a voter (the client port has no
/// event to await: it is asked again after a short pause, up to `WAIT`).
async fn lists_voter(addr: SocketAddr, id: u32) {
    let deadline = Instant::now() + WAIT;
    loop {
        let Reply::Array(items) = cmd(addr, &["RSL.MEMBERS"]).await else { panic!("not a list") };
        let voter = format!("id:{id}\r\nrole:voter");
        if items.iter().any(|i| matches!(i, Reply::Bulk(b) if b.starts_with(voter.as_bytes()))) {
            return;
        }
        assert!(Instant::now() < deadline, "{addr} does not list {id} as a voter: {items:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// After a member is replaced, `rsl-kv status` (`RSL.STATUS ALL`) and `rsl-kv transfer`
/// (`RSL.TRANSFER`) follow the membership, not the configuration files (which name only the
/// original three): asked at an original member, the status lists the new member with its
/// client address, healthy, and not the replaced one; primacy is handed to the new member
/// through a follower, and back to that follower (relayed to the new primary, whose client
/// address only the membership records); the replaced member is refused.
#[tokio::test]
async fn status_and_transfer_follow_the_membership_after_a_replace() {
    let options = ClusterOptions { fsync: false, ..ClusterOptions::default() };
    let mut cluster = Cluster::start(EXE.as_ref(), options).await.expect("the cluster starts");
    set(&mut cluster, "before").await;
    let p = cluster.wait_primary(None, WAIT).await.unwrap();
    let old = (1..=3).find(|i| *i != p).unwrap();
    let stay = (1..=3).find(|i| *i != p && *i != old).unwrap();
    let new = cluster.add_joining(&[1, 2, 3]).await.unwrap();
    let via = cluster.replica(stay).client_addr;
    let (id, peer, client) =
        (new.id.to_string(), new.peer_addr.to_string(), new.client_addr.to_string());
    let at = via.to_string();
    rsl_kv(&["member", "add", "--addr", &at, "--id", &id, "--peer", &peer, "--client", &client]);
    rsl_kv(&["member", "replace", "--addr", &at, "--old", &old.to_string(), "--new", &id]);
    cluster.wait_exited(old, WAIT).await.expect("the replaced replica exits by itself");
    lists_voter(via, new.id).await;
    let status = rsl_kv(&["status", "--addr", &at]);
    let rows: Vec<Vec<&str>> =
        status.lines().skip(1).map(|l| l.split_whitespace().collect()).collect();
    let mut expected = vec![p, stay, new.id];
    expected.sort();
    let listed: Vec<u32> = rows.iter().map(|r| r[0].parse().unwrap()).collect();
    assert_eq!(listed, expected, "{status}");
    let row = rows.iter().find(|r| r[0] == id).unwrap();
    assert_eq!((row[1], *row.last().unwrap()), (client.as_str(), "ok"), "{status}");
    assert!(!status.contains("unreachable"), "{status}");
    let moved = rsl_kv(&["transfer", "--addr", &at, "--to", &id]);
    assert!(moved.contains(&format!("replica {id} is the primary")), "{moved}");
    let back = rsl_kv(&["transfer", "--addr", &at, "--to", &stay.to_string()]);
    assert!(back.contains(&format!("replica {stay} is the primary")), "{back}");
    match cmd(via, &["RSL.TRANSFER", &old.to_string()]).await {
        Reply::Error(e) => assert!(e.ends_with(b"is not a voter"), "{e:?}"),
        other => panic!("a transfer to the replaced member answered {other:?}"),
    }
    set(&mut cluster, "after").await;
    cluster.stop().await;
}
