//! The runtime end to end in one process: three replicas on an in-process hub, real
//! consensus, I/O and executor threads, an in-memory disk.

use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use rsl::{
    LocalCluster, LocalOptions, ReadConsistency, ReplicateError, Role, Snapshot, StateMachine,
};

/// Every request executed, with its slot.
type Executed = Vec<(u64, Vec<u8>)>;

/// A log of every request executed, shared with the test so it can compare replicas.
#[derive(Clone, Default)]
struct Recorder {
    log: Arc<Mutex<Executed>>,
}

struct Snap(Vec<(u64, Vec<u8>)>);

impl Snapshot for Snap {
    fn write_to(&self, out: &mut dyn io::Write) -> io::Result<()> {
        out.write_all(&(self.0.len() as u64).to_le_bytes())
    }
}

impl StateMachine for Recorder {
    fn execute(&mut self, slot: u64, request: &[u8]) -> Bytes {
        let mut log = self.log.lock().unwrap();
        log.push((slot, request.to_vec()));
        Bytes::from(format!("{}", log.len()))
    }

    fn read(&self, _request: &[u8]) -> Bytes {
        Bytes::from(format!("{}", self.log.lock().unwrap().len()))
    }

    fn snapshot(&self) -> Box<dyn Snapshot> {
        Box::new(Snap(self.log.lock().unwrap().clone()))
    }

    fn load_checkpoint(&mut self, _input: &mut dyn io::Read) -> io::Result<()> {
        Ok(())
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// Waits for a settled primary (awaiting role changes, bounded); returns its index.
async fn wait_primary(cluster: &LocalCluster) -> usize {
    let p = cluster.wait_for_primary(Duration::from_secs(10)).await.expect("no primary in 10 s");
    cluster.nodes.iter().position(|n| n.id() == p.id()).unwrap()
}

/// Retries a write on whichever replica is primary until it succeeds (bounded).
async fn write(cluster: &LocalCluster, payload: &'static [u8]) -> Bytes {
    for _ in 0..500 {
        let p = wait_primary(cluster).await;
        match cluster.nodes[p].replicate(Bytes::from_static(payload)).await {
            Ok(r) => return r,
            Err(ReplicateError::NotPrimary { .. }) | Err(ReplicateError::Superseded { .. }) => {
                continue
            }
            Err(e) => panic!("write failed: {e}"),
        }
    }
    panic!("write never succeeded")
}

#[test]
fn replicas_execute_the_same_requests_in_the_same_order() {
    runtime().block_on(async {
        let logs: Vec<Recorder> = (0..3).map(|_| Recorder::default()).collect();
        let l = logs.clone();
        let cluster =
            LocalCluster::start(LocalOptions::default(), move |id| l[id as usize - 1].clone());
        let mut responses = Vec::new();
        for i in 0..50u8 {
            let payload: &'static [u8] = Box::leak(vec![i; 8].into_boxed_slice());
            responses.push(write(&cluster, payload).await);
        }
        // Every acknowledged write was executed by the primary in order.
        let p = wait_primary(&cluster).await;
        let read =
            cluster.nodes[p].read(Bytes::new(), ReadConsistency::Linearizable).await.unwrap();
        let count: usize = std::str::from_utf8(&read).unwrap().parse().unwrap();
        assert!(count >= 50, "linearizable read saw {count} of 50 acknowledged writes");
        // Followers catch up to the same log (fast read once they executed the same slot).
        let slot = cluster.nodes[p].status().executed;
        for n in &cluster.nodes {
            n.read(Bytes::new(), ReadConsistency::AtLeast(slot)).await.unwrap();
        }
        let reference = logs[p].log.lock().unwrap().clone();
        for l in &logs {
            let log = l.log.lock().unwrap().clone();
            assert_eq!(
                log[..reference.len().min(log.len())],
                reference[..reference.len().min(log.len())]
            );
        }
    });
}

#[test]
fn a_follower_refuses_writes_and_names_the_primary() {
    runtime().block_on(async {
        let cluster = LocalCluster::start(LocalOptions::default(), |_| Recorder::default());
        write(&cluster, b"x").await;
        let p = wait_primary(&cluster).await;
        let primary_id = cluster.nodes[p].id();
        let follower = cluster.nodes.iter().find(|n| n.id() != primary_id).unwrap();
        let err = follower.replicate(Bytes::from_static(b"y")).await.unwrap_err();
        assert_eq!(err, ReplicateError::NotPrimary { primary: Some(primary_id) });
    });
}

#[test]
fn the_cluster_fails_over_when_the_primary_stops() {
    runtime().block_on(async {
        let cluster = LocalCluster::start(LocalOptions::default(), |_| Recorder::default());
        write(&cluster, b"before").await;
        let old = cluster.nodes[wait_primary(&cluster).await].id();
        cluster.stop(old);
        let started = std::time::Instant::now();
        write(&cluster, b"after").await;
        let new = cluster.primary().unwrap();
        assert_ne!(new.id(), old);
        assert_eq!(new.status().role, Role::Primary);
        // The new primary has the old primary's acknowledged write.
        let n: usize = std::str::from_utf8(
            &new.read(Bytes::new(), ReadConsistency::Linearizable).await.unwrap(),
        )
        .unwrap()
        .parse()
        .unwrap();
        assert!(n >= 2, "new primary executed {n} requests");
        eprintln!("failover took {:?}", started.elapsed());
    });
}

#[test]
fn shutdown_ends_every_pending_call() {
    runtime().block_on(async {
        let cluster = LocalCluster::start(LocalOptions::default(), |_| Recorder::default());
        let p = wait_primary(&cluster).await;
        cluster.nodes[p].shutdown();
        let err = cluster.nodes[p].replicate(Bytes::from_static(b"z")).await.unwrap_err();
        assert_eq!(err, ReplicateError::ShuttingDown);
    });
}
