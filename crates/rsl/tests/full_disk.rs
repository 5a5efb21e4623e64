//! Three replicas whose data directories share one small real filesystem (a tmpfs mounted
//! with a size limit, as root) that fills up: writes are refused naming the full disk, reads
//! are still served, status says so; once the filesystem grows, every replica resumes by
//! itself and no acknowledged write is lost.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use common::{configs, primary_of, start_all};
use rsl::{Health, Node, ReadConsistency, ReplicateError};

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(at).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "this test mounts a small tmpfs and needs root: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(at.to_path_buf())
    }

    fn resize(&self, size: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(status.success(), "remount {size}");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

async fn wait_health(node: &Node, health: Health) {
    let mut view = node.watch();
    let reached = view.wait_for(|v| v.health == health);
    tokio::time::timeout(Duration::from_secs(20), reached)
        .await
        .unwrap_or_else(|_| panic!("replica {} never became {health}", node.id()))
        .unwrap();
}

#[test]
fn a_full_filesystem_refuses_writes_serves_reads_and_resumes_once_it_grows() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let root = tempfile::tempdir().unwrap();
        let disk = Tmpfs::mount(&root.path().join("disk"), "1m");
        let mut cfgs = configs(&disk.0, false);
        for c in &mut cfgs {
            c.storage.segment_bytes_max = 64 << 10;
            c.consensus.call_timeout_ms = 2_000;
        }
        let (journals, nodes) = start_all(&cfgs);
        let mut acknowledged = Vec::new();
        let mut refused = None;
        for i in 0..5_000u32 {
            let p = primary_of(&nodes).await;
            let payload = Bytes::from([i.to_le_bytes().to_vec(), vec![0; 1020]].concat());
            match nodes[p].as_ref().unwrap().replicate(payload.clone()).await {
                Ok(_) => acknowledged.push(payload),
                Err(ReplicateError::DiskFull { reason }) => {
                    refused = Some(reason);
                    break;
                }
                // Not executed, or unknown while the disks fill: neither is acknowledged.
                Err(ReplicateError::NotPrimary { .. } | ReplicateError::Superseded { .. }) => {}
                Err(ReplicateError::Timeout { .. } | ReplicateError::OutcomeUnknown) => {}
                Err(e) => panic!("unexpected {e}"),
            }
        }
        let reason = refused.expect("the filesystem never filled");
        assert!(reason.contains("disk full"), "{reason}");
        assert!(reason.contains(&disk.0.display().to_string()), "names the directory: {reason}");
        assert!(acknowledged.len() > 10, "only {} writes fitted", acknowledged.len());
        let p = primary_of(&nodes).await;
        let primary = nodes[p].as_ref().unwrap();
        let status = primary.status();
        assert_eq!(status.health, Health::DiskFull);
        assert!(primary.is_running());
        // Reads are served on a full disk.
        let executed = status.executed;
        primary.read(Bytes::new(), ReadConsistency::AtLeast(executed)).await.unwrap();

        disk.resize("64m");
        for node in nodes.iter().flatten() {
            wait_health(node, Health::Ok).await;
        }
        for i in 0..20u32 {
            let payload = Bytes::from(format!("after {i}"));
            common::write(&nodes, &payload).await;
            acknowledged.push(payload);
        }
        // Every replica executed the same requests, every acknowledged one among them.
        let q = primary_of(&nodes).await;
        let slot = nodes[q].as_ref().unwrap().status().executed;
        for node in nodes.iter().flatten() {
            node.read(Bytes::new(), ReadConsistency::AtLeast(slot)).await.unwrap();
        }
        let reference = journals[q].0.lock().unwrap().clone();
        for journal in &journals {
            assert_eq!(*journal.0.lock().unwrap(), reference);
        }
        for a in &acknowledged {
            assert!(reference.contains(&a.to_vec()), "an acknowledged write was lost");
        }
        for node in nodes.iter().flatten() {
            node.shutdown();
        }
    });
}
