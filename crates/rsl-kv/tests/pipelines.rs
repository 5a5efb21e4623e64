//! Pipelined commands on real processes: three `rsl-kv run --config FILE` replicas on
//! loopback with mutual TLS between them (`rsl_kv::launch::Cluster`), driven over their
//! client ports with raw RESP. A connection's commands read together go to the engine as one
//! batch (`Engine::batch`); at the primary, runs of writes reach the consensus thread in one
//! message and runs of linearizable reads the executor in one (`Node::replicate_batch`,
//! `Node::read_batch`). Every command keeps its own reply, in order.

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
/// own error included; through a follower they are forwarded one by one, as before.
///
/// Proven by a planted bug: with the engine's replies put into the batch's places in
/// reverse order (`Connection::dispatch_buffered`), this test and the two others here fail.
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
