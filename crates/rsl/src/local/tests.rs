//! A full disk, on the memory disks a test holds: writes are refused naming it, reads are
//! served, status and metrics say so, and the replica resumes by itself once space is freed,
//! with nothing lost.

use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use rsl_storage::MemDisk;

use super::{LocalCluster, LocalOptions};
use crate::{Health, ReadConsistency, ReplicateError, Snapshot, StateMachine};

/// Every request executed, shared with the test.
#[derive(Clone, Default)]
struct Journal(Arc<Mutex<Vec<Vec<u8>>>>);

struct Nothing;

impl Snapshot for Nothing {
    fn write_to(&self, _out: &mut dyn io::Write) -> io::Result<()> {
        Ok(())
    }
}

impl StateMachine for Journal {
    fn execute(&mut self, _slot: u64, request: &[u8]) -> Bytes {
        self.0.lock().unwrap().push(request.to_vec());
        Bytes::new()
    }
    fn read(&self, _request: &[u8]) -> Bytes {
        Bytes::from(self.0.lock().unwrap().len().to_string())
    }
    fn snapshot(&self) -> Box<dyn Snapshot> {
        Box::new(Nothing)
    }
    fn load_checkpoint(&mut self, _input: &mut dyn io::Read) -> io::Result<()> {
        Ok(())
    }
}

async fn primary(cluster: &LocalCluster) -> usize {
    let p = cluster.wait_for_primary(Duration::from_secs(10)).await.expect("a primary");
    cluster.nodes.iter().position(|n| n.id() == p.id()).unwrap()
}

/// Writes until one is acknowledged (through whichever replica is primary); returns the
/// index of the replica that acknowledged it.
pub(super) async fn write(cluster: &LocalCluster, payload: &[u8]) -> usize {
    for _ in 0..200 {
        let p = primary(cluster).await;
        match cluster.nodes[p].replicate(Bytes::copy_from_slice(payload)).await {
            Ok(_) => return p,
            Err(ReplicateError::NotPrimary { .. } | ReplicateError::Superseded { .. }) => {}
            Err(e) => panic!("write failed: {e}"),
        }
    }
    panic!("no write was acknowledged");
}

#[test]
fn a_full_disk_refuses_writes_serves_reads_and_resumes_once_space_is_freed() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let disks: Vec<MemDisk> = (1..=3).map(MemDisk::new).collect();
        let journals: Vec<Journal> = (0..3).map(|_| Journal::default()).collect();
        let j = journals.clone();
        let machine = move |id: u32| j[id as usize - 1].clone();
        let cluster = LocalCluster::start_on(LocalOptions::default(), machine, disks.clone());
        for i in 0..5u8 {
            write(&cluster, &[i]).await;
        }
        let p = primary(&cluster).await;
        let node = &cluster.nodes[p];
        let mut view = node.watch();
        disks[p].set_capacity_bytes(Some(0));
        // The next write reaches the primary's I/O thread, which finds the disk full (the
        // write itself may still be chosen by the two followers).
        let _ = node.replicate(Bytes::from_static(b"fills")).await;
        let full = view.wait_for(|v| v.health == Health::DiskFull);
        tokio::time::timeout(Duration::from_secs(10), full).await.unwrap().unwrap();

        let err = node.replicate(Bytes::from_static(b"refused")).await.unwrap_err();
        let ReplicateError::DiskFull { reason } = &err else { panic!("{err:?}") };
        assert!(reason.contains("disk full") && reason.contains("memory of replica"), "{reason}");
        node.read(Bytes::new(), ReadConsistency::AtLeast(0)).await.expect("reads are served");
        let status = node.status();
        assert_eq!(status.health, Health::DiskFull);
        assert_eq!(status.stop_reason.as_deref(), Some(reason.as_str()));
        assert!(status.counters.disk_full >= 1, "{:?}", status.counters);
        assert!(node.is_running());
        assert!(node.metrics().contains("rsl_disk_full 1\n"), "{}", node.metrics());
        assert!(!node.metrics().contains("rsl_disk_full_total 0\n"), "{}", node.metrics());

        disks[p].set_capacity_bytes(None);
        let ok = view.wait_for(|v| v.health == Health::Ok);
        tokio::time::timeout(Duration::from_secs(10), ok).await.unwrap().unwrap();
        assert!(node.metrics().contains("rsl_disk_full 0\n"));
        for i in 10..15u8 {
            write(&cluster, &[i]).await;
        }
        // Every replica executed the same requests, the acknowledged ones among them.
        let q = primary(&cluster).await;
        let slot = cluster.nodes[q].status().executed;
        for n in &cluster.nodes {
            n.read(Bytes::new(), ReadConsistency::AtLeast(slot)).await.unwrap();
        }
        let reference = journals[q].0.lock().unwrap().clone();
        for j in &journals {
            assert_eq!(*j.0.lock().unwrap(), reference);
        }
        for i in (0..5u8).chain(10..15) {
            assert!(reference.contains(&vec![i]), "acknowledged write {i} lost: {reference:?}");
        }
        assert!(!reference.contains(&b"refused".to_vec()));
    });
}

/// An accept too large to be sealed whole goes through the hub as a shared encoding
/// (`Transport::send_shared`: each follower gets the header and the one shared body apart),
/// and every replica executes the request byte for byte.
#[test]
fn a_large_accept_reaches_every_follower_in_two_pieces() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let journals: Vec<Journal> = (0..3).map(|_| Journal::default()).collect();
        let j = journals.clone();
        let cluster =
            LocalCluster::start(LocalOptions::default(), move |id| j[id as usize - 1].clone());
        // Above the envelope's 64 KiB: sealed as a head and a shared body.
        let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        write(&cluster, &big).await;
        let p = primary(&cluster).await;
        let commit = cluster.nodes[p].status().committed;
        for node in &cluster.nodes {
            node.read(Bytes::new(), ReadConsistency::AtLeast(commit)).await.unwrap();
            assert_eq!(node.status().counters.rejected_messages, 0);
        }
        for (i, journal) in journals.iter().enumerate() {
            let executed = journal.0.lock().unwrap();
            assert!(executed.contains(&big), "replica {} lacks the request", i + 1);
        }
    });
}
