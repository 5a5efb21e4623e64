//! `Node::start` returns every start error, never panics, inside an async runtime or not;
//! and a data directory is held by one replica at a time.

mod common;

use common::{configs, Journal};
use rsl::{Node, StartError};

/// Inside a tokio runtime, a peer port that is taken ends `Node::start` with the transport's
/// error (it once panicked dropping its own runtime in an async context).
#[tokio::test]
async fn start_inside_a_runtime_with_the_peer_port_taken_returns_the_error() {
    let root = tempfile::tempdir().unwrap();
    let cfgs = configs(root.path(), false);
    let taken = std::net::TcpListener::bind(cfgs[0].listen_addr()).unwrap();
    let err = Node::start(cfgs[0].clone(), Journal::default()).unwrap_err();
    assert!(matches!(err, StartError::Transport(_)), "{err:?}");
    assert!(err.to_string().contains("listener"), "{err}");
    drop(taken);
    // The failed start released the data directory: the port freed, it starts.
    let node = Node::start(cfgs[0].clone(), Journal::default()).unwrap();
    node.shutdown();
}

/// The same inside a runtime for a metrics address that is taken: the replica's threads and
/// transport that had started are stopped, and the error names the address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_metrics_port_is_an_error_too() {
    let root = tempfile::tempdir().unwrap();
    let mut cfgs = configs(root.path(), false);
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    cfgs[0].metrics_addr = Some(taken.local_addr().unwrap());
    let err = Node::start(cfgs[0].clone(), Journal::default()).unwrap_err();
    assert!(matches!(err, StartError::Metrics { .. }), "{err:?}");
    assert!(err.to_string().contains(&taken.local_addr().unwrap().to_string()), "{err}");
    // Its peer port was released with it.
    cfgs[0].metrics_addr = None;
    Node::start(cfgs[0].clone(), Journal::default()).unwrap().shutdown();
}

/// A second replica on the same data directory fails to start, naming the directory; once
/// the first shuts down, the directory is free again.
#[test]
fn a_second_replica_on_the_same_data_directory_fails_to_start() {
    let root = tempfile::tempdir().unwrap();
    let cfgs = configs(root.path(), false);
    let first = Node::start(cfgs[0].clone(), Journal::default()).unwrap();
    let mut second = cfgs[0].clone();
    second.members[0].addr = format!("127.0.0.1:{}", common::free_port()).parse().unwrap();
    let err = Node::start(second.clone(), Journal::default()).unwrap_err();
    match &err {
        StartError::DataDirLocked { dir } => assert_eq!(dir, &cfgs[0].data_dir),
        other => panic!("expected DataDirLocked, got {other:?}"),
    }
    let text = err.to_string();
    assert!(text.contains(&cfgs[0].data_dir.display().to_string()), "{text}");
    assert!(text.contains("another replica"), "{text}");
    first.shutdown();
    Node::start(second, Journal::default()).unwrap().shutdown();
}
