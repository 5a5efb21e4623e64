//! Pipelined commands on real processes: three `rsl-kv run --config FILE` replicas on
//! loopback with mutual TLS between them (`rsl_kv::launch::Cluster`), driven over their
//! client ports with raw RESP. A connection's commands read together go to the engine as one
//! batch (`Engine::batch`); at the primary, runs of writes reach the consensus thread in one
//! message and runs of linearizable reads the executor in one (`Node::replicate_batch`,
//! `Node::read_batch`); at a follower, the run goes to the primary as one batch call
//! (`rsl_kv::forward`). Every command keeps its own reply, in order.

use std::time::Duration;

use bytes::Bytes;
use rsl_kv::client::Client;
use rsl_kv::launch::{Cluster, ClusterOptions};
use rsl_kv::resp::Reply;

const EXE: &str = env!("CARGO_BIN_EXE_rsl-kv");
const WAIT: Duration = Duration::from_secs(10);

async fn start() -> Cluster {
    Cluster::start(EXE.as_ref(), ClusterOptions::default()).await.expect("the cluster starts")
}

fn bulk(text: &str) -> Reply {
    Reply::Bulk(Bytes::copy_from_slice(text.as_bytes()))
}

fn others(cluster: &Cluster, not: &[u32]) -> Vec<u32> {
    cluster.running().into_iter().filter(|id| !not.contains(id)).collect()
}

#[tokio::test]
async fn pipelined_commands_execute_in_order_on_the_primary_and_through_a_follower() {
    let mut cluster = start().await;
    let primary = cluster.wait_primary(None, WAIT).await.unwrap();
    let follower = others(&cluster, &[primary])[0];
    for (id, counter) in [(primary, "on-primary"), (follower, "via-follower")] {
        let mut client = Client::connect(cluster.replica(id).client_addr, WAIT).await.unwrap();
        for _ in 0..500 {
            client.queue(&["INCR", counter]);
        }
        client.flush().await.unwrap();
        for expected in 1..=500 {
            let reply = client.reply().await.unwrap();
            assert_eq!(reply, Reply::Integer(expected), "{counter}: pipelined INCRs reordered");
        }
    }
    cluster.stop().await;
}

/// Pipelined commands read together reach the engine as one batch (at the primary, a run
/// of writes in one message to the consensus thread, a run of reads under the lease in one
/// executor message and one reply): each command still gets its own reply, in order, its
/// own error included; through a follower they go to the primary as one batch call
/// (`rsl_kv::forward`), executed there as at the primary, one answer per command.
///
/// Proven by planted bugs: with the engine's replies put into the batch's places in
/// reverse order (`Connection::dispatch_buffered`), this test and the two others here fail;
/// with a batch call's decoded answers reversed at the follower
/// (`forward::decode_batch_answer`), or the primary's answers to a forwarded batch in reverse
/// order (`Inner::forwarded_batch`), this one fails on its follower's round.
/// (The executor's answers to a batch of reads, reversed, are caught by `rsl`'s
/// `tests/batches.rs`.)
#[tokio::test]
async fn a_pipelined_batch_answers_each_command_in_order_with_its_own_error() {
    let mut cluster = start().await;
    let primary = cluster.wait_primary(None, WAIT).await.unwrap();
    let follower = others(&cluster, &[primary])[0];
    for (id, at) in [(primary, "p"), (follower, "f")] {
        let mut client = Client::connect(cluster.replica(id).client_addr, WAIT).await.unwrap();
        let (s, l, c) = (format!("{at}-s"), format!("{at}-l"), format!("{at}-c"));
        assert_eq!(client.cmd(&["SET", &s, "v"]).await.unwrap(), Reply::ok());
        assert_eq!(client.cmd(&["RPUSH", &l, "x"]).await.unwrap(), Reply::Integer(1));
        // Reads only: a value, a WRONGTYPE, a missing key, a value of its own per round.
        for i in 0..30 {
            let own = format!("{at}-own-{i}");
            assert_eq!(client.cmd(&["SET", &own, &i.to_string()]).await.unwrap(), Reply::ok());
        }
        for i in 0..30 {
            client.queue(&["GET", &s]);
            client.queue(&["GET", &l]);
            client.queue(&["GET", &format!("{at}-missing-{i}")]);
            client.queue(&["GET", &format!("{at}-own-{i}")]);
        }
        client.flush().await.unwrap();
        for i in 0..30 {
            assert_eq!(client.reply().await.unwrap(), bulk("v"), "{at}: round {i}");
            let wrong = client.reply().await.unwrap();
            assert!(
                matches!(&wrong, Reply::Error(e) if e.starts_with(b"WRONGTYPE")),
                "{at}: round {i}: {wrong:?}"
            );
            assert_eq!(client.reply().await.unwrap(), Reply::Null, "{at}: round {i}");
            assert_eq!(client.reply().await.unwrap(), bulk(&i.to_string()), "{at}: round {i}");
        }
        // Writes, with an error of their own among them, and reads behind them.
        for i in 0..30 {
            client.queue(&["SET", &format!("{at}-k-{i}"), &i.to_string()]);
            client.queue(&["INCR", &s]);
            client.queue(&["INCR", &c]);
            client.queue(&["GET", &format!("{at}-k-{i}")]);
        }
        client.flush().await.unwrap();
        for i in 0..30 {
            assert_eq!(client.reply().await.unwrap(), Reply::ok(), "{at}: round {i}");
            let not_int = client.reply().await.unwrap();
            assert!(
                matches!(&not_int, Reply::Error(e) if e.starts_with(b"ERR value is not an integer")),
                "{at}: round {i}: {not_int:?}"
            );
            assert_eq!(client.reply().await.unwrap(), Reply::Integer(i + 1), "{at}: round {i}");
            assert_eq!(client.reply().await.unwrap(), bulk(&i.to_string()), "{at}: round {i}");
        }
    }
    cluster.stop().await;
}

#[tokio::test]
async fn a_pipelined_read_sees_the_connections_earlier_writes() {
    let mut cluster = start().await;
    let primary = cluster.wait_primary(None, WAIT).await.unwrap();
    let follower = others(&cluster, &[primary])[0];
    for (id, key) in [(primary, "on-primary"), (follower, "via-follower")] {
        let mut client = Client::connect(cluster.replica(id).client_addr, WAIT).await.unwrap();
        for i in 0..200 {
            client.queue(&["SET", key, &i.to_string()]);
            client.queue(&["GET", key]);
        }
        client.flush().await.unwrap();
        for i in 0..200 {
            assert_eq!(client.reply().await.unwrap(), Reply::ok());
            let got = client.reply().await.unwrap();
            assert_eq!(got, bulk(&i.to_string()), "{key}: GET after SET {i} in one pipeline");
        }
    }
    cluster.stop().await;
}

/// Pipelines through a follower, forwarded as batch calls, while primacy moves back and forth
/// between the two other replicas (`RSL.TRANSFER`) with commands in flight: a batch may be
/// split across the change (its first calls executed by the old primary, the rest refused and
/// sent again to the new one). Every INCR is executed once at most, in order, and only for
/// want of an answer fails: the replies that are counts rise strictly, the only error is an
/// unknown outcome, and the final count is no more than the INCRs that answered a count or
/// an unknown outcome.
///
/// Proven by a planted bug: the members of a batch the old primary refused answered "not
/// primary" instead of sent again (`ReplicatedEngine::flush_forwarded`) fails it. (One
/// refused member taken as all refused, which would send executed ones again, is caught by
/// `forward`'s unit test `a_batch_answer_gives_each_member_its_own_outcome_in_order`: the
/// primary refuses a batch's run whole, so this test does not see it.)
#[tokio::test]
async fn pipelines_through_a_follower_across_primary_changes_execute_once_in_order() {
    pipelines_across_primary_changes(false).await;
}

/// The same, the pipelines sent to the replica that is primary first, primary and follower
/// in turns: a run of commands its engine handed to the replica as primary, which had
/// stepped down meanwhile, is refused "not primary" and each of its commands tried again at
/// the new primary. Proven by a planted bug: such a refused command answered with an error
/// instead of tried again (`ReplicatedEngine::submit_run`) fails it.
#[tokio::test]
async fn pipelines_at_the_primary_across_primary_changes_execute_once_in_order() {
    pipelines_across_primary_changes(true).await;
}

async fn pipelines_across_primary_changes(at_primary: bool) {
    let mut cluster = start().await;
    let primary = cluster.wait_primary(None, WAIT).await.unwrap();
    let follower = others(&cluster, &[primary])[0];
    let other = others(&cluster, &[primary, follower])[0];
    cluster.wait_view(follower, WAIT, |v| v.primary == Some(primary)).await.unwrap();
    let at = cluster.replica(if at_primary { primary } else { follower }).client_addr;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (rounds, mut done) = tokio::sync::watch::channel(0);
    let load = tokio::spawn({
        let stop = std::sync::Arc::clone(&stop);
        async move {
            let mut client = Client::connect(at, WAIT).await.unwrap();
            let (mut counted, mut failed, mut last) = (0i64, 0i64, 0i64);
            let mut round = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for _ in 0..200 {
                    client.queue(&["INCR", "moved"]);
                }
                client.flush().await.unwrap();
                for i in 0..200 {
                    match client.reply().await.unwrap() {
                        Reply::Integer(n) => {
                            assert!(n > last, "round {round}, INCR {i}: {n} after {last}");
                            (last, counted) = (n, counted + 1);
                        }
                        // A write whose primary was deposed before it answered.
                        Reply::Error(e) if e.starts_with(b"ERR outcome unknown") => failed += 1,
                        other => panic!("round {round}, INCR {i}: {other:?}"),
                    }
                }
                round += 1;
                rounds.send_replace(round);
            }
            let Reply::Bulk(total) = client.cmd(&["GET", "moved"]).await.unwrap() else {
                panic!("no count")
            };
            let total: i64 = std::str::from_utf8(&total).unwrap().parse().unwrap();
            (counted, failed, last, total, round)
        }
    });
    for round in 0..8 {
        // Pipelines run before each change, and while it happens.
        done.wait_for(|&n| n > 2 * round).await.unwrap();
        let (from, to) = if round % 2 == 0 { (primary, other) } else { (other, primary) };
        let mut admin = Client::connect(cluster.replica(from).client_addr, WAIT).await.unwrap();
        let moved = admin.cmd(&["RSL.TRANSFER", &to.to_string()]).await.unwrap();
        assert_eq!(moved, Reply::Simple(Bytes::from(format!("OK replica {to} is the primary"))));
        // The follower forwards to the new primary before the next change.
        cluster.wait_view(follower, WAIT, |v| v.primary == Some(to)).await.unwrap();
        cluster.wait_view(from, WAIT, |v| v.primary == Some(to)).await.unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (counted, failed, last, total, rounds) = load.await.unwrap();
    assert!(total >= last, "the count {total} is below a reply {last}");
    assert!(
        total <= counted + failed,
        "{total} executions of {counted} INCRs counted and {failed} failed: one ran twice"
    );
    eprintln!("{rounds} pipelines: {counted} counted, {failed} failed, final count {total}");
    cluster.stop().await;
}
