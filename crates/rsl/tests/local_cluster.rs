//! The runtime end to end in one process: three replicas on an in-process hub, real
//! consensus, I/O and executor threads, an in-memory disk.

use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use rsl::{
    Health, LocalCluster, LocalOptions, MembershipError, Notification, ReadConsistency,
    ReplicateError, ReplicateOptions, Role, Snapshot, StateMachine, StopCause,
};

/// Every request executed, with its slot.
type Executed = Vec<(u64, Vec<u8>)>;

/// A log of every request executed, shared with the test so it can compare replicas.
#[derive(Clone, Default)]
struct Recorder {
    log: Arc<Mutex<Executed>>,
    /// Told the voters of each configuration change executed, if a test listens.
    members: Option<Arc<tokio::sync::watch::Sender<Vec<u32>>>>,
}

struct Snap(Vec<(u64, Vec<u8>)>);

impl Snapshot for Snap {
    fn write_to(&self, out: &mut dyn io::Write) -> io::Result<()> {
        out.write_all(&(self.0.len() as u64).to_le_bytes())
    }
}

impl StateMachine for Recorder {
    fn execute(&mut self, slot: u64, request: &[u8]) -> Bytes {
        // A bug in the application, triggered by one request.
        assert!(request != b"panic", "the application cannot execute {request:?}");
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

    fn notify(&mut self, event: Notification) {
        if let (Notification::ConfigurationChanged { members, .. }, Some(tx)) =
            (event, &self.members)
        {
            tx.send_replace(members);
        }
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
        // A local cluster has no addresses; `Node::start`'s replicas name the primary's.
        assert_eq!(
            err,
            ReplicateError::NotPrimary { primary: Some(primary_id), primary_addr: None }
        );
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

/// With two of three replicas down, the primary can commit nothing: `replicate` and a read at
/// a slot it will never reach end with `Timeout` (the configured deadline, or the call's own)
/// instead of waiting forever, and the timeouts are counted.
#[test]
fn calls_end_with_a_timeout_when_a_majority_is_down() {
    runtime().block_on(async {
        let mut options = LocalOptions::default();
        options.consensus.call_timeout_ms = 300;
        // A primary that hears no majority steps down after an election timeout and then
        // refuses at once; keep that well beyond the calls' deadlines, even on a loaded
        // machine.
        options.consensus.election_ticks_min = 150;
        options.consensus.election_ticks_max = 200;
        let cluster = LocalCluster::start(options, |_| Recorder::default());
        write(&cluster, b"before").await;
        let p = wait_primary(&cluster).await;
        let primary = &cluster.nodes[p];
        for n in cluster.nodes.iter().filter(|n| n.id() != primary.id()) {
            cluster.stop(n.id());
        }
        // Both wait on the primary, which can no longer reach a majority (it steps down a
        // little later, after which a write is refused at once as NotPrimary).
        let short = Duration::from_millis(100);
        let (default, own) = tokio::join!(
            primary.replicate(Bytes::from_static(b"lost")),
            primary.replicate_with(
                Bytes::from_static(b"x"),
                ReplicateOptions::default().timeout(short)
            ),
        );
        assert_eq!(default, Err(ReplicateError::Timeout { after: Duration::from_millis(300) }));
        assert_eq!(own, Err(ReplicateError::Timeout { after: short }));
        let far = primary.status().executed + 1_000;
        let err = primary.read(Bytes::new(), ReadConsistency::AtLeast(far)).await.unwrap_err();
        assert_eq!(err, ReplicateError::Timeout { after: Duration::from_millis(300) });
        let err = primary.read_with(Bytes::new(), ReadConsistency::AtLeast(far), short).await;
        assert_eq!(err, Err(ReplicateError::Timeout { after: short }));
        assert!(primary.metrics().contains("rsl_timeouts_total 4\n"), "{}", primary.metrics());
        assert_eq!(primary.status().counters.timeouts, 4, "{:?}", primary.status().counters);
    });
}

/// A state machine that panics stops its replica visibly: `is_running()` false, `status()`
/// and `watch()` name the cause, the call that hit it and every later call end with
/// `Stopped` naming the panic.
#[test]
fn a_panicking_state_machine_stops_the_replica_visibly() {
    runtime().block_on(async {
        let cluster = LocalCluster::start(LocalOptions::default(), |_| Recorder::default());
        write(&cluster, b"fine").await;
        let p = wait_primary(&cluster).await;
        let primary = &cluster.nodes[p];
        let err = primary.replicate(Bytes::from_static(b"panic")).await.unwrap_err();
        let ReplicateError::Stopped { reason } = &err else { panic!("expected Stopped: {err:?}") };
        assert!(reason.contains("state machine panicked"), "{reason}");
        assert!(reason.contains("cannot execute"), "the panic's message is kept: {reason}");
        // Every replica executes the same slot, so every replica stops the same way.
        for node in &cluster.nodes {
            let mut watch = node.watch();
            let stopped = watch.wait_for(|v| v.health != Health::Ok);
            let v = tokio::time::timeout(Duration::from_secs(10), stopped).await.unwrap().unwrap();
            assert_eq!(v.health, Health::Stopped(StopCause::StateMachinePanic));
            assert!(!node.is_running());
            let status = node.status();
            assert_eq!(status.health, Health::Stopped(StopCause::StateMachinePanic));
            assert!(status.stop_reason.unwrap().contains("cannot execute"));
            assert!(node.metrics().contains("rsl_stopped 1\n"), "{}", node.metrics());
        }
        let later = primary.replicate(Bytes::from_static(b"later")).await.unwrap_err();
        assert_eq!(later, err);
        let read = primary.read(Bytes::new(), ReadConsistency::AtLeast(0)).await.unwrap_err();
        assert_eq!(read, err);
        assert_eq!(primary.change_membership(vec![1, 2, 3]), Err(MembershipError::Stopped));
    });
}

/// `change_membership` proposes only voters it knows and says so when it refuses.
#[test]
fn change_membership_refuses_unknown_members() {
    runtime().block_on(async {
        let (tx, mut applied) = tokio::sync::watch::channel(Vec::new());
        let tx = Arc::new(tx);
        let cluster = LocalCluster::start(LocalOptions::default(), |_| Recorder {
            members: Some(tx.clone()),
            ..Recorder::default()
        });
        let p = wait_primary(&cluster).await;
        let node = &cluster.nodes[p];
        let err = node.change_membership(vec![1, 2, 3, 4]).unwrap_err();
        assert_eq!(err, MembershipError::UnknownMember { id: 4 });
        assert!(err.to_string().contains("replica 4 is not a member"), "{err}");
        assert_eq!(node.change_membership(vec![]), Err(MembershipError::Empty));
        assert_eq!(node.change_membership(vec![1, 1]), Err(MembershipError::Duplicate { id: 1 }));
        // A known set is proposed and executed: the cluster shrinks to two voters.
        let keep: Vec<u32> = cluster.nodes.iter().map(|n| n.id()).filter(|&i| i != 3).collect();
        node.change_membership(keep.clone()).unwrap();
        let done = applied.wait_for(|m| *m == keep);
        tokio::time::timeout(Duration::from_secs(10), done).await.expect("applied").unwrap();
    });
}

/// More concurrent proposals than the primary may queue: the surplus is refused as
/// overloaded (never executed), and counted.
#[test]
fn proposals_beyond_the_queue_are_refused_as_overloaded_and_counted() {
    runtime().block_on(async {
        let mut options = LocalOptions::default();
        options.consensus.proposals_queued_max = 1;
        options.consensus.pipeline_slots_max = 1;
        options.consensus.batch_requests_max = 1;
        let cluster = LocalCluster::start(options, |_| Recorder::default());
        let p = wait_primary(&cluster).await;
        let primary = &cluster.nodes[p];
        let calls = (0..200u32).map(|i| primary.replicate(Bytes::from(i.to_le_bytes().to_vec())));
        let outcomes = futures_util::future::join_all(calls).await;
        let refused =
            outcomes.iter().filter(|o| matches!(o, Err(ReplicateError::Overloaded))).count();
        assert!(refused > 0, "{outcomes:?}");
        assert!(outcomes.iter().all(|o| o.is_ok() || matches!(o, Err(ReplicateError::Overloaded))));
        let counted = primary.status().counters.overloaded;
        assert_eq!(counted, refused as u64);
        assert!(primary.metrics().contains(&format!("rsl_overloaded_total {refused}\n")));
    });
}
