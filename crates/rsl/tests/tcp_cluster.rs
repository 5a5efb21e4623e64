//! Three replicas started with `Node::start`: real segment-file storage in temporary
//! directories, TCP between replicas on loopback (plaintext and mutual TLS).

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{configs, free_port, primary_of, start_all, write, Journal};
use rsl::{Node, ReadConsistency};

fn run(tls: bool) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let root = tempfile::tempdir().unwrap();
        let cfgs = configs(root.path(), tls);
        let (journals, mut nodes) = start_all(&cfgs);
        for i in 0..20u8 {
            write(&nodes, &[i; 16]).await;
        }
        // Stop the primary; the others elect a new one that has every acknowledged write.
        let p = primary_of(&nodes).await;
        nodes[p].take().unwrap().shutdown();
        let n = write(&nodes, b"after failover").await;
        assert!(n >= 21, "new primary executed only {n} requests");
        // Restart the old primary from its disk: it recovers and catches up.
        journals[p].0.lock().unwrap().clear();
        let j = Journal::default();
        nodes[p] = Some(Node::start(cfgs[p].clone(), j.clone()).unwrap());
        let q = primary_of(&nodes).await;
        let slot = nodes[q].as_ref().unwrap().status().executed;
        let restarted = nodes[p].as_ref().unwrap();
        restarted.read(Bytes::new(), ReadConsistency::AtLeast(slot)).await.unwrap();
        let reference = journals[q].0.lock().unwrap().clone();
        let recovered = j.0.lock().unwrap().clone();
        assert_eq!(recovered[..], reference[..recovered.len()]);
        assert!(recovered.len() >= 21, "restarted replica has {} requests", recovered.len());
        for n in nodes.iter().flatten() {
            n.shutdown();
        }
    });
}

/// A follower that was down while the others checkpointed and truncated their logs catches
/// up by receiving a checkpoint, streamed in chunks, then the slots after it.
#[test]
fn a_lagging_replica_catches_up_from_a_streamed_checkpoint() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let root = tempfile::tempdir().unwrap();
        let mut cfgs = configs(root.path(), false);
        for c in &mut cfgs {
            c.storage.checkpoint_interval_slots = 20;
            c.storage.log_kept_slots = 5;
        }
        let (journals, mut nodes) = start_all(&cfgs);
        write(&nodes, b"first").await;
        let p = primary_of(&nodes).await;
        let f = (p + 1) % 3;
        nodes[f].take().unwrap().shutdown();
        // Each write alone in its slot, so the log moves far past the follower.
        for i in 0..200u32 {
            let payload = Bytes::copy_from_slice(&i.to_le_bytes());
            nodes[p].as_ref().unwrap().replicate_exclusive(payload).await.unwrap();
        }
        let fresh = Journal::default();
        nodes[f] = Some(Node::start(cfgs[f].clone(), fresh.clone()).unwrap());
        let slot = nodes[p].as_ref().unwrap().status().executed;
        let follower = nodes[f].as_ref().unwrap();
        tokio::time::timeout(
            Duration::from_secs(20),
            follower.read(Bytes::new(), ReadConsistency::AtLeast(slot)),
        )
        .await
        .expect("the follower did not catch up within 20 s")
        .unwrap();
        let reference = journals[p].0.lock().unwrap().clone();
        let caught_up = fresh.0.lock().unwrap().clone();
        assert!(caught_up.len() >= 201, "follower has {} requests", caught_up.len());
        assert_eq!(caught_up[..], reference[..caught_up.len()]);
        for n in nodes.iter().flatten() {
            n.shutdown();
        }
    });
}

fn scrape(addr: std::net::SocketAddr) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    body
}

/// Status names every peer with its health, and `/metrics` serves the engine's and the
/// transport's figures in the Prometheus format.
#[test]
fn status_and_metrics_report_peers_and_counters() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let root = tempfile::tempdir().unwrap();
        let mut cfgs = configs(root.path(), false);
        let metrics: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        cfgs[0].metrics_addr = Some(metrics);
        let nodes: Vec<Option<Node>> = cfgs
            .iter()
            .map(|c| Some(Node::start(c.clone(), Journal::default()).unwrap()))
            .collect();
        for i in 0..10u8 {
            write(&nodes, &[i]).await;
        }
        let status = nodes[0].as_ref().unwrap().status();
        let ids: Vec<u32> = status.peers.iter().map(|p| p.id).collect();
        assert_eq!(ids, vec![2, 3], "{status:?}");
        assert!(status.committed >= 10, "{status:?}");
        let body = tokio::task::spawn_blocking(move || scrape(metrics)).await.unwrap();
        assert!(body.starts_with("HTTP/1.1 200 OK"), "{body}");
        for name in [
            "rsl_role ",
            "rsl_ballot_round ",
            "rsl_committed_slot ",
            "rsl_executed_slot ",
            "rsl_proposals_total ",
            "rsl_bytes_sent_total ",
            "rsl_bytes_received_total ",
            "rsl_commit_latency_seconds_bucket{le=\"+Inf\"}",
            "rsl_sync_latency_seconds_count ",
            "rsl_net_rejected_frames_total 0",
            "rsl_peer_connected{peer=\"2\"}",
            "rsl_peer_lag_slots{peer=\"3\"}",
        ] {
            assert!(body.contains(name), "metrics lack {name}:\n{body}");
        }
        for n in nodes.iter().flatten() {
            n.shutdown();
        }
    });
}

#[test]
fn plaintext_cluster_survives_primary_restart() {
    run(false);
}

#[test]
fn tls_cluster_survives_primary_restart() {
    run(true);
}

/// A follower whose disk is lost comes back with `storage.disk_lost`: it rebuilds (the primary
/// runs a fresh phase 1 at a higher ballot), then holds every acknowledged write and serves
/// again; the cluster keeps committing throughout.
#[test]
fn a_replica_that_lost_its_disk_rebuilds_before_it_votes() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let root = tempfile::tempdir().unwrap();
        let mut cfgs = configs(root.path(), false);
        let (journals, mut nodes) = start_all(&cfgs);
        for i in 0..20u8 {
            write(&nodes, &[i; 8]).await;
        }
        let p = primary_of(&nodes).await;
        let ballot_before = nodes[p].as_ref().unwrap().status().ballot_round;
        let f = (p + 1) % 3;
        nodes[f].take().unwrap().shutdown();
        std::fs::remove_dir_all(&cfgs[f].data_dir).unwrap();
        write(&nodes, b"while the disk is out").await;

        cfgs[f].storage.disk_lost = true;
        let fresh = Journal::default();
        let node = Node::start(cfgs[f].clone(), fresh.clone()).unwrap();
        assert!(node.status().rebuilding, "an empty data directory with disk_lost rebuilds");
        let mut view = node.watch();
        nodes[f] = Some(node);
        tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                let v = *view.borrow_and_update();
                if v.role.is_some() && !v.rebuilding && v.ballot_round > ballot_before {
                    return;
                }
                view.changed().await.unwrap();
            }
        })
        .await
        .expect("the replica did not finish rebuilding within 20 s");

        // The rebuild forced a phase 1 at a higher ballot, and nothing acknowledged was lost.
        let n = write(&nodes, b"after the rebuild").await;
        assert!(n >= 22, "the primary executed only {n} requests");
        let q = primary_of(&nodes).await;
        assert!(nodes[q].as_ref().unwrap().status().ballot_round > ballot_before);
        let slot = nodes[q].as_ref().unwrap().status().executed;
        let rebuilt = nodes[f].as_ref().unwrap();
        rebuilt.read(Bytes::new(), ReadConsistency::AtLeast(slot)).await.unwrap();
        let reference = journals[q].0.lock().unwrap().clone();
        let learned = fresh.0.lock().unwrap().clone();
        assert_eq!(learned, reference, "the rebuilt replica executed exactly the same requests");
        assert!(!rebuilt.status().rebuilding);
        for n in nodes.iter().flatten() {
            n.shutdown();
        }
    });
}
