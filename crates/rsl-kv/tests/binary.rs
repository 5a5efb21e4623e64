//! The `rsl-kv` binary: `local-server` serves clients on the port it prints.

mod common;

use std::net::SocketAddr;
use std::process::Stdio;

use common::{bulk, ok, Client};
use rsl_kv::resp::Reply;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Starts `rsl-kv local-server` on a free port with `extra` arguments; returns the child and
/// the address it printed.
async fn local_server(extra: &[&str]) -> (Child, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rsl-kv"))
        .args(["local-server", "--port", "0"])
        .args(extra)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the binary starts");
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    let mut stdout = BufReader::new(stdout);
    let read = stdout.read_line(&mut line);
    tokio::time::timeout(common::REPLY_WAIT_MAX, read).await.unwrap().unwrap();
    let addr = line.split_whitespace().nth(3).expect("rsl-kv: listening on ADDR ...");
    (child, addr.parse().unwrap())
}

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
