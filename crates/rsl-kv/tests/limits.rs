//! The largest value through real processes: three `rsl-kv run` replicas (mutual TLS, fsync)
//! take a SET of the largest value one request carries (16 MiB less the key and the SET's
//! framing) through a follower and through the primary and serve it back; a replica that was
//! down while it was written catches it up, from the log in one test and from a checkpoint in
//! the other (small `checkpoint_interval_slots` and `log_kept_slots`); one byte more is
//! answered with an error naming the limit, and the next command succeeds. The replicas serve
//! reads from their own state (`reads = "local"`), so a GET at the caught-up replica shows
//! what it holds.

use std::net::SocketAddr;
use std::time::Duration;

use rsl_kv::client::{describe, Client};
use rsl_kv::launch::{Cluster, ClusterOptions};
use rsl_kv::limits::{REQUEST_BYTES_MAX, SET_FRAMING_BYTES};
use rsl_kv::resp::Reply;
use tokio::time::Instant;

const EXE: &str = env!("CARGO_BIN_EXE_rsl-kv");
/// Generous: megabytes go through TLS, fsync and (in test builds) unoptimised code.
const WAIT: Duration = Duration::from_secs(60);
/// The pause between two polls of something that has no event (a replica's executed slot).
const POLL_PAUSE: Duration = Duration::from_millis(50);

/// The largest value a SET of `key` carries.
fn largest(key: &str) -> usize {
    REQUEST_BYTES_MAX - SET_FRAMING_BYTES - key.len()
}

/// A value of `len` bytes, different for each `tag`.
fn value(len: usize, tag: u8) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8 ^ tag).collect()
}

async fn client(addr: SocketAddr) -> Client {
    Client::connect(addr, WAIT).await.expect("connect")
}

/// SET `key` at `addr`, as a careful client would: after a `TRYAGAIN` or an `ERR outcome
/// unknown` (on a loaded machine an election may come between, or a forwarded request may
/// outwait its deadline, and the outcome is unknown), it first looks whether the value
/// landed, and sends the SET again only if not; bounded. Any other answer is returned.
async fn set(addr: SocketAddr, key: &str, value: &[u8]) -> Reply {
    let deadline = Instant::now() + WAIT;
    loop {
        let mut c = client(addr).await;
        let args = [b"SET".as_slice(), key.as_bytes(), value];
        let reply = tokio::time::timeout_at(deadline, c.cmd(&args))
            .await
            .expect("SET answered in time")
            .expect("a reply");
        match &reply {
            Reply::Error(e)
                if (e.starts_with(b"TRYAGAIN") || e.starts_with(b"ERR outcome unknown"))
                    && Instant::now() < deadline =>
            {
                eprintln!("SET {key} at {addr}: {}", describe(&reply));
                if holds(addr, key, value, LANDED_WAIT).await {
                    return Reply::ok();
                }
            }
            _ => return reply,
        }
    }
}

/// How long a careful client waits for a write of unknown outcome to show before retrying.
const LANDED_WAIT: Duration = Duration::from_secs(15);

/// Whether GET `key` at `addr` returns `expected` within `within` (polled, bounded).
async fn holds(addr: SocketAddr, key: &str, expected: &[u8], within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        let mut c = client(addr).await;
        let args = ["GET", key];
        if let Ok(Ok(Reply::Bulk(got))) = tokio::time::timeout_at(deadline, c.cmd(&args)).await {
            if got[..] == expected[..] {
                return true;
            }
        }
        tokio::time::sleep(POLL_PAUSE).await;
    }
    false
}

/// Checks that GET `key` at `addr` returns `expected` (from that replica's own state: it is
/// polled until it has executed the write, bounded), without printing megabytes.
async fn check_get(addr: SocketAddr, key: &str, expected: &[u8]) {
    let deadline = Instant::now() + WAIT;
    loop {
        let mut c = client(addr).await;
        let args = ["GET", key];
        let reply = tokio::time::timeout_at(deadline, c.cmd(&args));
        match reply.await.expect("GET in time").expect("a reply") {
            Reply::Bulk(got) if got[..] == expected[..] => return,
            Reply::Bulk(_) => panic!("GET {key}: a different value"),
            Reply::Null if Instant::now() < deadline => tokio::time::sleep(POLL_PAUSE).await,
            other => panic!("GET {key}: {}", describe(&other)),
        }
    }
}

/// One numeric field of a replica's `RSL.STATUS`.
async fn status_number(addr: SocketAddr, name: &str) -> u64 {
    let Reply::Bulk(text) = client(addr).await.cmd(&["RSL.STATUS"]).await.unwrap() else {
        panic!("RSL.STATUS")
    };
    let text = String::from_utf8_lossy(&text).into_owned();
    let prefix = format!("{name}:");
    let line = text.lines().find_map(|l| l.strip_prefix(prefix.as_str())).expect(name);
    line.trim().parse().unwrap()
}

/// A replica's executed slot.
async fn executed(addr: SocketAddr) -> u64 {
    status_number(addr, "rsl_executed_slot").await
}

/// Waits until the replica at `addr` reports `name` at least `target` (no event crosses
/// processes: polled, bounded).
async fn wait_status(addr: SocketAddr, name: &str, target: u64) {
    let deadline = Instant::now() + WAIT;
    loop {
        let now = status_number(addr, name).await;
        if now >= target {
            return;
        }
        assert!(Instant::now() < deadline, "{name} stuck at {now}, below {target}");
        tokio::time::sleep(POLL_PAUSE).await;
    }
}

/// Waits until the replica at `addr` has executed `target`.
async fn wait_executed(addr: SocketAddr, target: u64) {
    wait_status(addr, "rsl_executed_slot", target).await
}

/// A SET one byte too large is refused with the limit named, at `addr`.
async fn check_refused(addr: SocketAddr) {
    let key = "too-large";
    let reply = set(addr, key, &value(largest(key) + 1, 9)).await;
    let text = describe(&reply);
    assert!(text.starts_with("ERR key or value too large"), "{text}");
    assert!(text.contains(&REQUEST_BYTES_MAX.to_string()), "{text}");
    assert!(text.contains("request_bytes_max"), "{text}");
}

fn log_of(cluster: &Cluster, id: u32) -> String {
    std::fs::read_to_string(&cluster.replica(id).log).unwrap_or_default()
}

/// One cluster at a time: each moves tens of megabytes through six processes.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn start(storage: &str) -> (Cluster, u32, u32, u32) {
    let options = ClusterOptions {
        storage: storage.to_string(),
        // This test is about sizes: 16 MiB through TLS and fsync in a debug build on a loaded
        // machine can take longer than the default call deadline of 5 s.
        consensus: "call_timeout_ms = 60000".to_string(),
        reads: rsl_kv::config::Reads::Local,
        ..ClusterOptions::default()
    };
    let mut cluster = Cluster::start(EXE.as_ref(), options).await.expect("the cluster starts");
    let p = cluster.wait_primary(None, WAIT).await.unwrap();
    let others: Vec<u32> = cluster.running().into_iter().filter(|id| *id != p).collect();
    (cluster, p, others[0], others[1])
}

#[tokio::test]
async fn the_largest_value_replicates_and_a_replica_that_was_down_catches_it_up_from_the_log() {
    let _one = ONE_AT_A_TIME.lock().await;
    let (mut cluster, p, f, g) = start("").await;
    let (p_addr, f_addr) = (cluster.replica(p).client_addr, cluster.replica(f).client_addr);
    cluster.kill(g).await.unwrap();
    let through_follower = value(largest("k1"), 1);
    let through_primary = value(largest("k2"), 2);
    assert_eq!(set(f_addr, "k1", &through_follower).await, Reply::ok());
    assert_eq!(set(p_addr, "k2", &through_primary).await, Reply::ok());
    check_refused(f_addr).await;
    check_refused(p_addr).await;
    // The cluster goes on at once: the next command succeeds, and the values read back.
    assert_eq!(set(f_addr, "small", b"after").await, Reply::ok());
    check_get(f_addr, "k2", &through_primary).await;
    check_get(p_addr, "k1", &through_follower).await;

    let target = executed(p_addr).await;
    cluster.restart(g).await.unwrap();
    let g_addr = cluster.replica(g).client_addr;
    wait_executed(g_addr, target).await;
    assert!(!log_of(&cluster, g).contains("checkpoint received"), "caught up from the log");
    check_get(g_addr, "k1", &through_follower).await;
    check_get(g_addr, "k2", &through_primary).await;
    check_get(g_addr, "small", b"after").await;
    cluster.stop().await;
}

#[tokio::test]
async fn a_replica_that_was_down_catches_the_largest_value_up_from_a_checkpoint() {
    // The kv clock ticks a slot every 100 ms: checkpoints come often and the log behind them
    // is short, so the down replica's position is soon below every peer's log.
    let _one = ONE_AT_A_TIME.lock().await;
    let (mut cluster, p, f, g) = start("checkpoint_interval_slots = 10\nlog_kept_slots = 2").await;
    let (p_addr, f_addr) = (cluster.replica(p).client_addr, cluster.replica(f).client_addr);
    cluster.kill(g).await.unwrap();
    let big = value(largest("big"), 3);
    assert_eq!(set(p_addr, "big", &big).await, Reply::ok());
    check_refused(p_addr).await;
    // Ticks, checkpoints and truncation move the log's start past the value's slot, at both
    // replicas the restarted one may ask (each checkpoints on its own schedule; on a loaded
    // machine a 16 MiB checkpoint can take seconds, and until it is saved the log keeps the
    // slot).
    let written = executed(p_addr).await;
    wait_status(p_addr, "rsl_log_first_slot", written + 1).await;
    wait_status(f_addr, "rsl_log_first_slot", written + 1).await;
    // A peer's transport keeps what it queued for the down replica and delivers it when the
    // replica comes back (rsl-net's tcp.rs), the accept of the value among it, so that the
    // replica may not need the checkpoint at all (found as a flaky run of this test). The two
    // restart too: they recover from their checkpoints with empty queues, and what the third
    // lacks can come only from a checkpoint.
    cluster.kill(p).await.unwrap();
    cluster.kill(f).await.unwrap();
    cluster.restart(p).await.unwrap();
    cluster.restart(f).await.unwrap();
    let primary = cluster.wait_primary(None, WAIT).await.unwrap();
    let primary_addr = cluster.replica(primary).client_addr;
    for addr in [p_addr, f_addr] {
        assert!(
            status_number(addr, "rsl_log_first_slot").await > written,
            "log kept after restart"
        );
    }

    let target = executed(primary_addr).await;
    cluster.restart(g).await.unwrap();
    let g_addr = cluster.replica(g).client_addr;
    wait_executed(g_addr, target).await;
    let log = log_of(&cluster, g);
    assert!(log.contains("checkpoint received and verified"), "no checkpoint received:\n{log}");
    check_get(g_addr, "big", &big).await;
    cluster.stop().await;
}

/// Reads `k1`, `k2` and `n` back at `addr` in one pipeline, each round's replies whole and in
/// order (`expected`), for at most ten rounds until one round moved the replica's `counter`
/// by all three reads; whether one did.
async fn read_back_counted(addr: SocketAddr, expected: &[Reply; 3], counter: &str) -> bool {
    let mut c = client(addr).await;
    for _ in 0..10 {
        let before = status_number(addr, counter).await;
        for key in ["k1", "k2", "n"] {
            c.queue(&["GET", key]);
        }
        c.flush().await.unwrap();
        for expected in expected {
            let reply = tokio::time::timeout(WAIT, c.reply()).await.expect("in time").unwrap();
            assert!(reply == *expected, "at {addr} ({counter}): got {}", describe(&reply));
        }
        if status_number(addr, counter).await >= before + 3 {
            return true;
        }
    }
    false
}

/// The largest values read back through a follower in one pipeline, whole and in order,
/// then at the primary from its keyspace on the connection's task.
///
/// At the follower the two GETs arrive in one read and are served there by read index
/// (`rsl_index_reads_total` counts them): bounded rounds until one round is, since a round
/// whose index the follower has not executed yet (just after the clock's tick write) goes to
/// the primary instead, in one forwarding call whose answer cannot carry both values
/// (`rsl_kv::forward::BATCH_BYTES_MAX`): the primary answers the first, the follower tries
/// the second again, and they come back whole and in order either way. That split of an
/// answer is covered by forward.rs's unit tests; this test needs only one of its rounds to
/// take it. The values are written first by the careful `set` (a 16 MiB write on a loaded
/// machine may meet an election and answer that its outcome is unknown: a test run once
/// failed so); reads are always safe to repeat. Proven by planted bugs: the follower's
/// answers of a run served from its keyspace handed back in reverse order (`hand_over`)
/// fails the first half; no reader at the primary fails the second. (The two SETs do not
/// share a call: the server hands the engine the commands complete in its buffer, and a
/// 16 MiB command completes over many reads, so the follower's split of a call at
/// `BATCH_BYTES_MAX` is covered by forward.rs's unit tests only.)
#[tokio::test]
async fn a_pipeline_of_the_largest_values_through_a_follower_reads_back_whole_and_in_order() {
    let _one = ONE_AT_A_TIME.lock().await;
    let options = ClusterOptions {
        consensus: "call_timeout_ms = 60000".to_string(),
        ..ClusterOptions::default()
    };
    let mut cluster = Cluster::start(EXE.as_ref(), options).await.expect("the cluster starts");
    let p = cluster.wait_primary(None, WAIT).await.unwrap();
    let f = cluster.running().into_iter().find(|id| *id != p).unwrap();
    cluster.wait_view(f, WAIT, |v| v.primary == Some(p)).await.unwrap();
    let (one, two) = (value(largest("k1"), 1), value(largest("k2"), 2));
    assert!(2 * one.len() > rsl_kv::forward::BATCH_BYTES_MAX, "the pair must not fit one call");
    let f_addr = cluster.replica(f).client_addr;
    assert_eq!(set(f_addr, "k1", &one).await, Reply::ok());
    assert_eq!(set(f_addr, "k2", &two).await, Reply::ok());
    assert_eq!(set(f_addr, "n", b"7").await, Reply::ok());
    let expected =
        [Reply::Bulk(one.into()), Reply::Bulk(two.into()), Reply::Bulk(b"7".to_vec().into())];
    let served_there = read_back_counted(f_addr, &expected, "rsl_index_reads_total").await;
    assert!(served_there, "the largest values were never served by the follower's read index");

    // The same pipeline at the primary, whose plain reads are served on the connection's
    // task from the keyspace under its lease (`rsl_reads_here_total`): the largest values
    // come back whole and in order from there too. A round whose reads met a tick write's
    // slot still executing is served by the executor instead (as whole): bounded rounds
    // until one is served here.
    let p_addr = cluster.replica(p).client_addr;
    let served_here = read_back_counted(p_addr, &expected, "rsl_reads_here_total").await;
    assert!(served_here, "the largest values were never read from the primary's keyspace");
    cluster.stop().await;
}
