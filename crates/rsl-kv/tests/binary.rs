//! The `rsl-kv` binary: `local-server` serves clients on the port it prints.

mod common;

use std::process::Stdio;

use common::{bulk, int, local_server, ok, Client};
use rsl_kv::limits::PIPELINE_DEPTH_MAX;
use rsl_kv::resp::Reply;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

#[tokio::test]
async fn local_server_serves_and_requires_its_password() {
    let (mut child, addr) = local_server(&["--requirepass", "pw"]).await;
    let mut c = Client::connect(addr).await;
    assert_eq!(
        c.cmd(&["SET", "k", "v"]).await,
        Reply::Error("NOAUTH Authentication required.".into())
    );
    assert_eq!(c.cmd(&["AUTH", "pw"]).await, ok());
    assert_eq!(c.cmd(&["SET", "k", "v"]).await, ok());
    assert_eq!(c.cmd(&["GET", "k"]).await, bulk("v"));
    child.kill().await.unwrap();
}

#[tokio::test]
async fn help_lists_the_subcommands() {
    let output = Command::new(env!("CARGO_BIN_EXE_rsl-kv")).arg("--help").output().await.unwrap();
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).contains("local-server"));
    let bad = Command::new(env!("CARGO_BIN_EXE_rsl-kv")).arg("no-such").output().await.unwrap();
    assert!(!bad.status.success());
}

/// Starts `rsl-kv local-server` with its stderr in a file and `RUST_LOG` as given; returns the
/// file's text once it has started (and been killed).
async fn stderr_of_a_start(rust_log: Option<&str>) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stderr.log");
    let mut command = Command::new(env!("CARGO_BIN_EXE_rsl-kv"));
    command
        .args(["local-server", "--port", "0"])
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&path).unwrap())
        .env_remove("RUST_LOG")
        .kill_on_drop(true);
    if let Some(filter) = rust_log {
        command.env("RUST_LOG", filter);
    }
    let mut child = command.spawn().unwrap();
    let mut line = String::new();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    // The address line comes after the log line that announces it.
    let read = stdout.read_line(&mut line);
    tokio::time::timeout(common::REPLY_WAIT_MAX, read).await.unwrap().unwrap();
    child.kill().await.unwrap();
    std::fs::read(&path).unwrap()
}

#[tokio::test]
async fn logs_are_at_info_by_default_and_plain_text_off_a_terminal() {
    let log = stderr_of_a_start(None).await;
    let text = String::from_utf8_lossy(&log);
    assert!(
        text.lines().any(|l| l.contains(" INFO ") && l.contains("listening")),
        "no info line without RUST_LOG: {text:?}"
    );
    assert!(!log.contains(&0x1b), "an escape byte (ANSI colour) in a file: {text:?}");
    // RUST_LOG still chooses.
    let quiet = stderr_of_a_start(Some("warn")).await;
    assert!(!String::from_utf8_lossy(&quiet).contains(" INFO "), "{quiet:?}");
}

/// Whether CLIENT LIST, asked through `other`, shows `text`.
async fn listed(other: &mut Client, text: &str) -> bool {
    let Reply::Bulk(list) = other.cmd(&["CLIENT", "LIST"]).await else { panic!("a bulk") };
    String::from_utf8_lossy(&list).contains(text)
}

/// `count` SETs, then a blocking pop of `queue` (which makes the pop the command number
/// `count + 1` of the pipeline), as one write.
fn sets_then_pop(count: usize, queue: &str) -> bytes::BytesMut {
    let mut out = bytes::BytesMut::new();
    for i in 0..count {
        rsl_kv::resp::encode_command(&["SET", &format!("k{i}"), "v"], &mut out);
    }
    rsl_kv::resp::encode_command(&["BLPOP", queue, "0"], &mut out);
    out
}

/// A pipelined client whose blocking pop is the last of `PIPELINE_DEPTH_MAX` unanswered
/// replies (the bound), or one past it, with a command behind the pop: another client's push
/// reaches the pop, and every reply comes back in order; the connection then serves more.
#[tokio::test]
async fn a_blocking_pop_at_the_end_of_a_full_pipeline_is_served() {
    let (mut child, addr) = local_server(&[]).await;
    let mut pusher = Client::connect(addr).await;
    for before in [PIPELINE_DEPTH_MAX - 1, PIPELINE_DEPTH_MAX] {
        let mut client = Client::connect(addr).await;
        let mut pipeline = sets_then_pop(before, "q");
        rsl_kv::resp::encode_command(&["ECHO", "after"], &mut pipeline);
        client.send(&pipeline).await;
        let deadline = std::time::Instant::now() + common::REPLY_WAIT_MAX;
        while !listed(&mut pusher, "flags=b").await {
            assert!(std::time::Instant::now() < deadline, "the pop blocks");
        }
        assert_eq!(pusher.cmd(&["RPUSH", "q", "job"]).await, int(1));
        for _ in 0..before {
            assert_eq!(client.reply().await, ok());
        }
        let popped = Reply::Array(vec![bulk("q"), bulk("job")]);
        assert_eq!(client.reply().await, popped, "the pop after {before} commands");
        assert_eq!(client.reply().await, bulk("after"));
        assert_eq!(client.cmd(&["GET", "k0"]).await, bulk("v"));
        assert_eq!(pusher.cmd(&["LLEN", "q"]).await, int(0));
    }
    child.kill().await.unwrap();
}

/// A pipelined client that leaves with its blocking pop last of `PIPELINE_DEPTH_MAX`
/// unanswered replies (the bound), or one past it: the server forgets it, and a later push
/// stays in the list (a pop that lived on would take an element no client receives).
#[tokio::test]
async fn a_client_that_leaves_with_a_pop_at_the_end_of_a_full_pipeline_pops_nothing() {
    let (mut child, addr) = local_server(&[]).await;
    let mut other = Client::connect(addr).await;
    for before in [PIPELINE_DEPTH_MAX - 1, PIPELINE_DEPTH_MAX] {
        let mut leaving = Client::connect(addr).await;
        leaving.send(&sets_then_pop(before, "left")).await;
        let deadline = std::time::Instant::now() + common::REPLY_WAIT_MAX;
        while !listed(&mut other, "flags=b").await {
            assert!(std::time::Instant::now() < deadline, "the pop blocks");
        }
        drop(leaving);
        while listed(&mut other, "cmd=blpop").await {
            assert!(std::time::Instant::now() < deadline, "the server forgets the client");
        }
        assert_eq!(other.cmd(&["RPUSH", "left", "job"]).await, int(1));
        assert_eq!(other.cmd(&["LPOP", "left"]).await, bulk("job"), "after {before} commands");
    }
    child.kill().await.unwrap();
}
