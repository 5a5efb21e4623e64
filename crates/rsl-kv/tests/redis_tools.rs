//! The server against the real Redis tools, `redis-cli` and `redis-benchmark`, when they are
//! installed (`apt-get install redis-tools`); each test says so and passes if its tool is absent.

mod common;

use std::net::SocketAddr;
use std::process::Stdio;

use common::start;
use rsl_kv::ServerConfig;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// Whether `tool` runs; prints why the test is skipped if not.
async fn available(tool: &str) -> bool {
    let found = Command::new(tool).arg("--version").output().await.is_ok();
    if !found {
        eprintln!("skipped: `{tool}` is not installed (apt-get install redis-tools)");
    }
    found
}

/// Runs `redis-cli -p <port> <args>` with `stdin` and returns its standard output, trimmed.
async fn cli(addr: SocketAddr, args: &[&str], stdin: &[u8]) -> String {
    let mut child = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &addr.port().to_string()])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("redis-cli starts");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin).await.unwrap();
    drop(input);
    let output =
        tokio::time::timeout(std::time::Duration::from_secs(120), child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("redis-cli {args:?} did not finish within 120 s"))
            .unwrap();
    assert!(output.status.success(), "redis-cli {args:?}: {output:?}");
    String::from_utf8(output.stdout).unwrap().trim_end().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cli_commands() {
    if !available("redis-cli").await {
        return;
    }
    let addr = start(ServerConfig::default()).await;
    assert_eq!(cli(addr, &["PING"], b"").await, "PONG");
    assert_eq!(cli(addr, &["SET", "greeting", "hello world"], b"").await, "OK");
    assert_eq!(cli(addr, &["GET", "greeting"], b"").await, "hello world");
    assert_eq!(cli(addr, &["SET", "greeting", "x", "NX"], b"").await, "");
    assert_eq!(cli(addr, &["INCRBY", "n", "5"], b"").await, "5");
    assert_eq!(
        cli(addr, &["INCR", "greeting"], b"").await,
        "ERR value is not an integer or out of range"
    );
    let unknown = cli(addr, &["NOSUCHCMD", "s", "*", "f", "v"], b"").await;
    assert!(unknown.starts_with("ERR unknown command 'NOSUCHCMD'"), "{unknown}");
    assert_eq!(cli(addr, &["HSET", "h", "f", "v"], b"").await, "1");
    // redis-cli -3 speaks RESP3 (a map, a double), printed as its raw output does.
    assert_eq!(cli(addr, &["-3", "HGETALL", "h"], b"").await, "f v");
    assert_eq!(cli(addr, &["-3", "ZADD", "z", "1.5", "m"], b"").await, "1");
    assert_eq!(cli(addr, &["-3", "ZSCORE", "z", "m"], b"").await, "1.5");
    // Commands read from standard input, one per line, answered in order.
    let piped = cli(addr, &[], b"SET a 1\nINCR a\nGET a\nMGET a nope\nDBSIZE\n").await;
    assert_eq!(piped, "OK\n2\n2\n2\n\n5");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cli_with_a_password() {
    if !available("redis-cli").await {
        return;
    }
    let config = ServerConfig { requirepass: Some("pw".into()), ..ServerConfig::default() };
    let addr = start(config).await;
    assert_eq!(cli(addr, &["GET", "k"], b"").await, "NOAUTH Authentication required.");
    let auth = ["-a", "pw", "--no-auth-warning"];
    assert_eq!(cli(addr, &[&auth[..], &["SET", "k", "v"]].concat(), b"").await, "OK");
    assert_eq!(cli(addr, &[&auth[..], &["GET", "k"]].concat(), b"").await, "v");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cli_pipe_mode() {
    if !available("redis-cli").await {
        return;
    }
    let addr = start(ServerConfig::default()).await;
    let mut input = Vec::new();
    for i in 0..2000 {
        input.extend_from_slice(format!("SET key:{i} value:{i}\r\n").as_bytes());
    }
    let report = cli(addr, &["--pipe"], &input).await;
    assert!(report.contains("errors: 0, replies: 2000"), "{report}");
    assert_eq!(cli(addr, &["DBSIZE"], b"").await, "2000");
    assert_eq!(cli(addr, &["GET", "key:1999"], b"").await, "value:1999");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_benchmark_runs_clean() {
    if !available("redis-benchmark").await {
        return;
    }
    let addr = start(ServerConfig::default()).await;
    let port = addr.port().to_string();
    let args = [
        "-h",
        "127.0.0.1",
        "-p",
        &port,
        "-t",
        "set,get,incr",
        "-n",
        "3000",
        "-c",
        "4",
        "-P",
        "8",
        "-q",
    ];
    // Bounded: a server that stops answering must fail the test, not hang it.
    let run = Command::new("redis-benchmark").args(args).kill_on_drop(true).output();
    let output = tokio::time::timeout(std::time::Duration::from_secs(300), run)
        .await
        .expect("redis-benchmark finished within 300 s")
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    for test in ["SET: ", "GET: ", "INCR: "] {
        assert!(stdout.contains(test), "{test:?} in {stdout}");
    }
    assert!(!stdout.contains("ERR"), "{stdout}");
    assert_eq!(cli(addr, &["GET", "counter:__rand_int__"], b"").await, "3000");
}
