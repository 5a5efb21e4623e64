//! What the tests of reads under the lease share (tests/lease_reads.rs, tests/batches.rs).

use std::time::Duration;

use bytes::Bytes;
use rsl::{LocalCluster, LocalOptions, Node, ReadConsistency};

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

pub async fn primary(cluster: &LocalCluster) -> &Node {
    cluster.wait_for_primary(Duration::from_secs(10)).await.expect("no primary in 10 s")
}

/// Reads at the primary until one is served under the lease (the lease needs a heartbeat
/// round acknowledged after the election; bounded).
pub async fn until_a_lease_read(node: &Node) {
    for _ in 0..200 {
        let before = node.status().counters.lease_reads;
        node.read(Bytes::new(), ReadConsistency::Linearizable).await.unwrap();
        if node.status().counters.lease_reads > before {
            return;
        }
        let mut view = node.watch();
        let _ = tokio::time::timeout(Duration::from_millis(20), view.changed()).await;
    }
    panic!("no read was served under the lease");
}

/// A cluster whose lease ends within 200 ms of a primary's isolation (10 ms ticks, a lease of
/// 20), whose followers wait long before an election (up to 4 s), and whose calls give up
/// after 200 ms: an isolated primary's lease ends well before anyone replaces it.
pub fn short_lease_options() -> LocalOptions {
    let mut options = LocalOptions::default();
    options.consensus.tick_ms = 10;
    options.consensus.lease_ticks = 20;
    options.consensus.election_ticks_min = 30;
    options.consensus.election_ticks_max = 400;
    options.consensus.call_timeout_ms = 200;
    options
}
