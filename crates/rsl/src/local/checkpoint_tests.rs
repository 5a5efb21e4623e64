//! A local cluster's replicas checkpoint into memory, drop their logs below the checkpoint,
//! and ship it to a replica that lagged past what they kept.

use std::io;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use bytes::Bytes;

use super::tests::write;
use super::{LocalCluster, LocalOptions};
use crate::{ReadConsistency, Snapshot, StateMachine};

/// The sum of the requests' first bytes; counts the checkpoints it loaded.
struct Sum {
    total: u64,
    loads: Arc<AtomicU32>,
}

struct Total(u64);

impl Snapshot for Total {
    fn write_to(&self, out: &mut dyn io::Write) -> io::Result<()> {
        out.write_all(&self.0.to_le_bytes())
    }
}

impl StateMachine for Sum {
    fn execute(&mut self, _slot: u64, request: &[u8]) -> Bytes {
        self.total += u64::from(request.first().copied().unwrap_or(0));
        Bytes::new()
    }
    fn read(&self, _request: &[u8]) -> Bytes {
        Bytes::from(self.total.to_string())
    }
    fn snapshot(&self) -> Box<dyn Snapshot> {
        Box::new(Total(self.total))
    }
    fn load_checkpoint(&mut self, input: &mut dyn io::Read) -> io::Result<()> {
        let mut b = [0; 8];
        input.read_exact(&mut b)?;
        self.total = u64::from_le_bytes(b);
        self.loads.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

#[test]
fn a_replica_cut_off_past_the_kept_log_catches_up_from_a_shipped_checkpoint() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let loads: Vec<Arc<AtomicU32>> = (0..3).map(|_| Arc::default()).collect();
        let l = loads.clone();
        let machine = move |id: u32| Sum { total: 0, loads: l[id as usize - 1].clone() };
        let options =
            LocalOptions { checkpoint_interval_slots: 10, log_kept_slots: 5, ..Default::default() };
        let cluster = LocalCluster::start(options, machine);
        let p = write(&cluster, &[0]).await;
        let lagging = (p + 1) % 3;
        cluster.hub.isolate(cluster.nodes[lagging].id());
        let mut expected = 0u64;
        for i in 1..=100u8 {
            let at = write(&cluster, &[i]).await;
            assert_ne!(at, lagging, "the isolated replica cannot be primary");
            expected += u64::from(i);
        }
        // The two that went on checkpointed in memory and dropped their logs below it.
        let p = write(&cluster, &[0]).await;
        let status = cluster.nodes[p].status();
        assert!(status.checkpoint >= 50, "checkpointed up to {}", status.checkpoint);
        assert!(status.log_first > 10, "log kept from {}", status.log_first);
        let behind = cluster.nodes[lagging].status();
        assert!(behind.executed < status.log_first, "lagged past the kept log: {behind:?}");

        cluster.hub.heal();
        let commit = status.committed;
        let read = cluster.nodes[lagging].read(Bytes::new(), ReadConsistency::AtLeast(commit));
        let total = read.await.expect("the lagging replica catches up");
        assert_eq!(total, Bytes::from(expected.to_string()));
        assert!(
            loads[lagging].load(Ordering::SeqCst) >= 1,
            "caught up by loading a shipped checkpoint"
        );
        assert!(cluster.nodes[lagging].status().checkpoint >= 50);
    });
}

#[test]
fn without_checkpoints_the_log_is_kept_whole() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let machine = |_| Sum { total: 0, loads: Arc::default() };
        let options = LocalOptions { checkpoint_interval_slots: 0, ..Default::default() };
        let cluster = LocalCluster::start(options, machine);
        let mut p = 0;
        for i in 0..30u8 {
            p = write(&cluster, &[i]).await;
        }
        let status = cluster.nodes[p].status();
        assert_eq!((status.checkpoint, status.log_first), (0, 1), "{status:?}");
    });
}
