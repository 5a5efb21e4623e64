//! Three replicas started with `Node::start`: real segment-file storage in temporary
//! directories, TCP between replicas on loopback (plaintext and mutual TLS).

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{configs, free_port, primary_of, start_all, write, Journal};
use rsl::{Health, Node, NodeConfig, ReadConsistency, ReplicateError, StopCause};

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

/// Stops a follower of a cluster configured by `storage`, commits `payloads` each alone in a
/// slot, restarts the follower on its data directory and waits (bounded) until it executed
/// everything the primary did; checks it executed the same requests in the same order, and
/// returns its checkpoint slot: above 0 only if it installed a peer's checkpoint (it is
/// restarted without checkpoints of its own).
/// With `truncate`, the two running replicas take a checkpoint at the last slot once they
/// executed it and truncate their logs behind it before the follower restarts (awaited on
/// their `watch()`), so that what it lacks is in no log.
fn a_stopped_follower_catches_up(
    configure: impl Fn(&mut NodeConfig),
    payloads: Vec<Bytes>,
    truncate: bool,
) -> u64 {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let root = tempfile::tempdir().unwrap();
        let mut cfgs = configs(root.path(), false);
        cfgs.iter_mut().for_each(&configure);
        let (journals, mut nodes) = start_all(&cfgs);
        write(&nodes, b"first").await;
        let p = primary_of(&nodes).await;
        let f = (p + 1) % 3;
        nodes[f].take().unwrap().shutdown();
        let n = payloads.len();
        for payload in payloads {
            nodes[p].as_ref().unwrap().replicate_exclusive(payload).await.unwrap();
        }
        let last = nodes[p].as_ref().unwrap().status().executed;
        for node in nodes.iter().flatten().filter(|_| truncate) {
            node.read(Bytes::new(), ReadConsistency::AtLeast(last)).await.unwrap();
            node.checkpoint_now();
            let mut view = node.watch();
            let truncated = view.wait_for(|v| v.log_first + 10 > last);
            tokio::time::timeout(Duration::from_secs(30), truncated)
                .await
                .expect("no truncation behind the checkpoint within 30 s")
                .unwrap();
        }
        // Restarted without checkpoints of its own: a checkpoint it has came from a peer.
        let mut restart = cfgs[f].clone();
        restart.storage.checkpoint_interval_slots = 0;
        let fresh = Journal::default();
        nodes[f] = Some(Node::start(restart, fresh.clone()).unwrap());
        let slot = nodes[p].as_ref().unwrap().status().executed;
        let follower = nodes[f].as_ref().unwrap();
        // The read's own deadline is the whole wait (the default call timeout, 5 s, was too
        // short for 80 MiB streamed on a loaded machine).
        let caught_up = ReadConsistency::AtLeast(slot);
        follower
            .read_with(Bytes::new(), caught_up, Duration::from_secs(30))
            .await
            .expect("the follower did not catch up within 30 s");
        // The status is published once a tick, but at once when the view changes: a
        // checkpoint installed just before the read was answered may not show in it yet (this
        // test failed so under load). Awaited when one is expected; with none expected
        // (`truncate` off) none can exist, as no replica takes one.
        let checkpoint = if truncate {
            let mut view = follower.watch();
            let installed = view.wait_for(|v| v.checkpoint > 0);
            let waited = tokio::time::timeout(Duration::from_secs(10), installed).await;
            waited.map_or(0, |v| v.unwrap().checkpoint)
        } else {
            follower.status().checkpoint
        };
        let reference = journals[p].0.lock().unwrap().clone();
        let caught_up = fresh.0.lock().unwrap().clone();
        assert!(caught_up.len() > n, "follower has {} requests of {}", caught_up.len(), n + 1);
        assert_eq!(caught_up[..], reference[..caught_up.len()]);
        for n in nodes.iter().flatten() {
            n.shutdown();
        }
        checkpoint
    })
}

/// A follower that was down while the others checkpointed and truncated their logs catches
/// up: from a checkpoint, streamed in chunks, then the slots after it, when a peer's log no
/// longer holds what it lacks. The writes (80 MiB, each alone in its slot) overflow the
/// transport's queue to the stopped follower (64 MiB), which then lacks the last slots; with
/// 200 small writes, as this test had until 2026-12-07, it received every queued accept and
/// never needed a checkpoint. The peers truncate behind a checkpoint at their last slot
/// before it restarts (awaited), so it must install one: its checkpoint slot is above 0.
#[test]
fn a_lagging_replica_catches_up_from_a_streamed_checkpoint() {
    let configure = |c: &mut NodeConfig| {
        (c.storage.checkpoint_interval_slots, c.storage.log_kept_slots) = (20, 5)
    };
    let payloads = (0..80u8).map(|i| Bytes::from(vec![i; 1 << 20])).collect();
    let checkpoint = a_stopped_follower_catches_up(configure, payloads, true);
    assert!(checkpoint > 0, "caught up from the logs, not a streamed checkpoint");
}

/// With `log_memory_bytes_max = 0` no executed value beyond a pipeline's worth stays in memory
/// and no checkpoint is taken: a follower that was down catches up from the values the others read back from their
/// logs on disk (`LoadLog`). The writes (80 MiB) overflow the transport's queue to the stopped
/// follower (64 MiB), so that it must ask for what it missed rather than receive the queued
/// accepts (with 200 small writes it did, and a planted prune that forgets `mem_base` went
/// unseen; with these it never catches up).
#[test]
fn a_lagging_replica_catches_up_from_values_read_back_from_disk() {
    let configure = |c: &mut NodeConfig| {
        (c.storage.checkpoint_interval_slots, c.storage.log_memory_bytes_max) = (0, 0);
        // The cap in bytes keeps at least a pipeline's worth of entries: 4, fewer than the
        // slots the follower lacks beyond the transport's queue.
        c.consensus.pipeline_slots_max = 4;
    };
    let payloads = (0..80u8).map(|i| Bytes::from(vec![i; 1 << 20])).collect();
    let checkpoint = a_stopped_follower_catches_up(configure, payloads, false);
    assert_eq!(checkpoint, 0, "caught up from a checkpoint, not the log");
}

fn scrape(addr: std::net::SocketAddr) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    // No `Connection: close`: the endpoint closes after one response by itself.
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    body
}

/// The samples of a Prometheus text body: `name{labels}` -> value.
fn samples(body: &str) -> std::collections::BTreeMap<String, f64> {
    let text = body.split("\r\n\r\n").nth(1).unwrap_or(body);
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.rsplit_once(' '))
        .map(|(name, value)| (name.to_string(), value.parse().unwrap()))
        .collect()
}

/// Status names every peer with its health, and `/metrics` serves the engine's and the
/// transport's figures in the Prometheus format, each of them moved by the traffic.
#[test]
fn status_and_metrics_report_peers_and_counters() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let root = tempfile::tempdir().unwrap();
        let mut cfgs = configs(root.path(), false);
        for c in &mut cfgs {
            c.metrics_addr = Some(format!("127.0.0.1:{}", free_port()).parse().unwrap());
        }
        let nodes: Vec<Option<Node>> = cfgs
            .iter()
            .map(|c| Some(Node::start(c.clone(), Journal::default()).unwrap()))
            .collect();
        for i in 0..10u8 {
            write(&nodes, &[i]).await;
        }
        let p = primary_of(&nodes).await;
        let primary = nodes[p].as_ref().unwrap();
        let status = primary.status();
        let ids: Vec<u32> = status.peers.iter().map(|p| p.id).collect();
        let expected: Vec<u32> = (1..=3).filter(|&i| i != primary.id()).collect();
        assert_eq!(ids, expected, "{status:?}");
        assert!(status.committed >= 10, "{status:?}");

        // A peer port that gets garbage rejects it, and counts it.
        let peer_port = cfgs[p].listen_addr();
        tokio::task::spawn_blocking(move || {
            use std::io::Write;
            let mut s = std::net::TcpStream::connect(peer_port).unwrap();
            let _ = s.write_all(&[0xFF; 64]);
        })
        .await
        .unwrap();
        // The count reaches the replica through the transport's task; nothing outside can
        // await it, so look again for a bounded while.
        for _ in 0..500 {
            if primary.status().counters.rejected_messages > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }

        let addr = cfgs[p].metrics_addr.unwrap();
        let body = tokio::task::spawn_blocking(move || scrape(addr)).await.unwrap();
        assert!(body.starts_with("HTTP/1.1 200 OK"), "{body}");
        assert!(body.contains("text/plain; version=0.0.4"), "{body}");
        let m = samples(&body);
        let value = |name: &str| *m.get(name).unwrap_or_else(|| panic!("no {name}:\n{body}"));
        for moved in [
            "rsl_proposals_total",
            "rsl_slots_committed_total",
            "rsl_requests_committed_total",
            "rsl_bytes_sent_total",
            "rsl_bytes_received_total",
            "rsl_rejected_messages_total",
            "rsl_syncs_total",
            "rsl_sync_micros_total",
            "rsl_ballot_round",
            "rsl_committed_slot",
            "rsl_executed_slot",
            "rsl_commit_latency_seconds_count",
            "rsl_commit_latency_seconds_sum",
            "rsl_sync_latency_seconds_count",
            "rsl_sync_latency_seconds_sum",
            "rsl_net_frames_sent_total",
            "rsl_net_direct_writes_total",
            "rsl_net_bytes_sent_total",
            "rsl_net_frames_received_total",
            "rsl_net_bytes_received_total",
        ] {
            assert!(value(moved) > 0.0, "{moved} did not move:\n{body}");
        }
        // The garbage closed its connection, in the hello or as a frame.
        let rejected =
            value("rsl_net_rejected_handshakes_total") + value("rsl_net_rejected_frames_total");
        assert!(rejected > 0.0, "{body}");
        assert_eq!(value("rsl_role"), 2.0);
        assert_eq!(
            value("rsl_commit_latency_seconds_bucket{le=\"+Inf\"}"),
            value("rsl_commit_latency_seconds_count")
        );
        for peer in &expected {
            assert_eq!(value(&format!("rsl_peer_connected{{peer=\"{peer}\"}}")), 1.0);
            assert!(value(&format!("rsl_peer_lag_slots{{peer=\"{peer}\"}}")) >= 0.0);
        }
        for zero in [
            "rsl_overloaded_total",
            "rsl_timeouts_total",
            "rsl_disk_full_total",
            "rsl_disk_full",
            "rsl_stopped",
        ] {
            assert_eq!(value(zero), 0.0, "{zero}");
        }
        // Every replica has its own registry: a follower reports its own role and figures.
        let f = (p + 1) % 3;
        let addr = cfgs[f].metrics_addr.unwrap();
        let body = tokio::task::spawn_blocking(move || scrape(addr)).await.unwrap();
        let m = samples(&body);
        assert_eq!(m["rsl_role"], 0.0);
        assert_eq!(m["rsl_proposals_total"], 0.0);
        assert!(m["rsl_executed_slot"] > 0.0);
        let addr = cfgs[f].metrics_addr.unwrap();
        let other = tokio::task::spawn_blocking(move || {
            use std::io::{Read, Write};
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.write_all(b"GET /other HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
            let mut body = String::new();
            s.read_to_string(&mut body).unwrap();
            body
        })
        .await
        .unwrap();
        assert!(other.starts_with("HTTP/1.1 404"), "{other}");
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
    a_restarted_follower_rebuilds_before_it_votes(
        |_| {},
        |cfg| {
            std::fs::remove_dir_all(&cfg.data_dir).unwrap();
            cfg.storage.disk_lost = true;
        },
    );
}

/// Starts three replicas configured by `configure`, writes, stops a follower, writes while it
/// is down, prepares its restart with `lose` (what it lost) and restarts it: it must start
/// rebuilding, finish the rebuild (which forces a phase 1 at a higher ballot), and then have
/// executed exactly what the others did, nothing acknowledged lost.
fn a_restarted_follower_rebuilds_before_it_votes(
    configure: impl Fn(&mut NodeConfig),
    lose: impl Fn(&mut NodeConfig),
) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let root = tempfile::tempdir().unwrap();
        let mut cfgs = configs(root.path(), false);
        cfgs.iter_mut().for_each(&configure);
        let (journals, mut nodes) = start_all(&cfgs);
        for i in 0..20u8 {
            write(&nodes, &[i; 8]).await;
        }
        let p = primary_of(&nodes).await;
        let ballot_before = nodes[p].as_ref().unwrap().status().ballot_round;
        let f = (p + 1) % 3;
        nodes[f].take().unwrap().shutdown();
        write(&nodes, b"while the disk is out").await;

        lose(&mut cfgs[f]);
        let fresh = Journal::default();
        let node = Node::start(cfgs[f].clone(), fresh.clone()).unwrap();
        assert!(node.status().rebuilding, "a replica that forgot its promises rebuilds first");
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
        let caught_up = rebuilt.read(Bytes::new(), ReadConsistency::AtLeast(slot));
        tokio::time::timeout(Duration::from_secs(20), caught_up).await.unwrap().unwrap();
        let reference = journals[q].0.lock().unwrap().clone();
        let learned = fresh.0.lock().unwrap().clone();
        assert_eq!(learned, reference, "the rebuilt replica executed exactly the same requests");
        assert!(!rebuilt.status().rebuilding);
        for n in nodes.iter().flatten() {
            n.shutdown();
        }
    });
}

/// A storage failure (here: the log's directory vanished, so the next segment cannot be
/// created) stops the replica visibly: `is_running()` false, `status()` and `watch()` name
/// the cause; the others carry on.
#[test]
fn a_storage_failure_stops_the_replica_visibly() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let root = tempfile::tempdir().unwrap();
        let mut cfgs = configs(root.path(), false);
        for c in &mut cfgs {
            c.storage.segment_bytes_max = 4096;
        }
        let (_journals, nodes) = start_all(&cfgs);
        write(&nodes, b"first").await;
        let p = primary_of(&nodes).await;
        let f = (p + 1) % 3;
        let log = cfgs[f].data_dir.join("log");
        std::fs::rename(&log, cfgs[f].data_dir.join("log.gone")).unwrap();
        let follower = nodes[f].as_ref().unwrap();
        let mut view = follower.watch();
        // Writes of a kilobyte fill a 4 KiB segment within a few slots.
        let mut writes = 0;
        while view.borrow_and_update().health == Health::Ok {
            write(&nodes, &[7u8; 1024]).await;
            writes += 1;
            assert!(writes < 1000, "the follower never hit the missing directory");
        }
        let health = view.borrow().health;
        assert_eq!(health, Health::Stopped(StopCause::StorageFailure));
        assert!(!follower.is_running());
        let reason = follower.status().stop_reason.unwrap();
        assert!(reason.starts_with("storage failed"), "{reason}");
        let err = follower.read(Bytes::new(), ReadConsistency::AtLeast(0)).await.unwrap_err();
        assert_eq!(err, ReplicateError::Stopped { reason });
        // The other two still commit.
        write(&nodes, b"after").await;
        for n in nodes.iter().flatten() {
            n.shutdown();
        }
    });
}

/// Three replicas on the memory backend (`MemDisk::ram`: one copy of each write, no crash
/// model) with 4 KiB log segments and a checkpoint every 20 slots: 300 writes roll the logs
/// over many segments and truncate them behind checkpoints, and every replica executes the
/// same requests in the same order: the first test of a `Node` on that backend. It reads no
/// log back (a replica does only at recovery, which the memory backend never has, or for a
/// lagging peer); the ram disk's reads are the conformance suite's (rsl-storage's
/// tests/conformance.rs runs on it). Proven by a planted bug: a ram disk whose `sync` runs
/// the model's (no pending operations applied, so the durable bytes differ from the written
/// ones) stops the replicas at their first sync in a debug build.
#[test]
fn three_replicas_on_the_memory_backend_roll_their_logs_over_and_agree() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let root = tempfile::tempdir().unwrap();
        let mut cfgs = configs(root.path(), false);
        for c in &mut cfgs {
            c.storage.backend = rsl::config::Backend::Memory;
            c.storage.segment_bytes_max = 4096;
            (c.storage.checkpoint_interval_slots, c.storage.log_kept_slots) = (20, 5);
        }
        let (journals, nodes) = start_all(&cfgs);
        for i in 0..300u16 {
            write(&nodes, format!("request {i:03} {}", "x".repeat(90)).as_bytes()).await;
        }
        let p = primary_of(&nodes).await;
        let last = nodes[p].as_ref().unwrap().status().executed;
        for node in nodes.iter().flatten() {
            let caught_up = node.read(Bytes::new(), ReadConsistency::AtLeast(last));
            tokio::time::timeout(Duration::from_secs(30), caught_up)
                .await
                .expect("a replica did not execute the last slot within 30 s")
                .unwrap();
            // Checkpoints are taken and the log truncated behind them in the background.
            let mut view = node.watch();
            let truncated = view.wait_for(|v| v.log_first > 1);
            tokio::time::timeout(Duration::from_secs(30), truncated)
                .await
                .expect("the log was never truncated within 30 s")
                .unwrap();
        }
        let reference = journals[p].0.lock().unwrap().clone();
        assert_eq!(reference.len(), 300);
        for j in &journals {
            assert_eq!(*j.0.lock().unwrap(), reference);
        }
        for n in nodes.iter().flatten() {
            n.shutdown();
        }
    });
}

/// A replica restarted on the memory backend has forgotten its promises and votes: it starts
/// as after a disk loss (rebuilding, neither promising nor voting until it has rebuilt from
/// its peers), then catches up and executes exactly what the others did. Proven by a planted
/// bug: without the restart check (`memory_restart_as_disk_lost`), it starts as new and
/// `rebuilding` is false.
#[test]
fn a_replica_restarted_on_the_memory_backend_rebuilds_before_it_votes() {
    let memory = |cfg: &mut NodeConfig| cfg.storage.backend = rsl::config::Backend::Memory;
    a_restarted_follower_rebuilds_before_it_votes(memory, |_| {});
}
