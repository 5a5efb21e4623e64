//! redis-py on its defaults against a 3-replica cluster, through every replica: the script
//! `tests/redis_py/clients.py` (strings, hashes, lists, sets, sorted sets, pipelines,
//! transactions with WATCH, Lock, scripts, pub/sub in one global order, blocking pops).
//!
//! The Python comes from `RSL_KV_PYTHON` (scripts/test.sh makes a virtualenv with redis-py
//! from PyPI and sets it), else `python3`; without redis-py the test says so and passes.

use std::process::Command;
use std::time::Duration;

use rsl_kv::launch::{Cluster, ClusterOptions};

const EXE: &str = env!("CARGO_BIN_EXE_rsl-kv");
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/redis_py/clients.py");

fn python() -> Option<String> {
    let python = std::env::var("RSL_KV_PYTHON").unwrap_or_else(|_| "python3".into());
    let probe = Command::new(&python).args(["-c", "import redis"]).output().ok()?;
    probe.status.success().then_some(python)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_py_works_through_every_replica() {
    let Some(python) = python() else {
        eprintln!("redis-py is not installed: skipped (scripts/test.sh installs it)");
        return;
    };
    let options = ClusterOptions { fsync: false, ..ClusterOptions::default() };
    let mut cluster = Cluster::start(EXE.as_ref(), options).await.expect("the cluster starts");
    cluster.wait_primary(None, Duration::from_secs(20)).await.unwrap();
    let addrs: Vec<String> = cluster.replicas().iter().map(|r| r.client_addr.to_string()).collect();
    let output =
        tokio::task::spawn_blocking(move || Command::new(python).arg(SCRIPT).args(&addrs).output())
            .await
            .unwrap()
            .expect("python runs");
    cluster.stop().await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "redis-py failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("ok through 3 replicas"), "{stdout}");
}
