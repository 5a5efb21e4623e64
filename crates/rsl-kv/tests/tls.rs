//! TLS on the client port, through the real binary: `rsl-kv certs` writes the files (and
//! refuses to overwrite them), `rsl-kv local-server --tls-*` and a 3-replica `rsl-kv run`
//! cluster with `kv.tls_*` serve TLS clients (ours, `redis-cli --tls` and redis-py with
//! `ssl=True` when installed), forward from a follower to the primary and relay admin
//! commands between members over TLS; a plaintext client, a client without a certificate and
//! one with a certificate from another authority are refused cleanly (the connection closes,
//! the server serves on); bad certificate paths stop the process at start with an error that
//! names the option and the file.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use common::local_server;
use rsl_kv::client::Client;
use rsl_kv::launch::{Cluster, ClusterOptions};
use rsl_kv::resp::Reply;
use rsl_kv::tls::{AuthClients, ClientTls, FLAG_NAMES};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const EXE: &str = env!("CARGO_BIN_EXE_rsl-kv");
const WAIT: Duration = Duration::from_secs(20);

/// Runs `rsl-kv args`; returns its exit success, stdout and stderr.
fn run(args: &[&str]) -> (bool, String, String) {
    let output = Command::new(EXE).args(args).env_remove("RUST_BACKTRACE").output().unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (output.status.success(), text(&output.stdout), text(&output.stderr))
}

/// Writes a certificate directory with `rsl-kv certs`.
fn certs(dir: &Path, extra: &[&str]) -> String {
    let path = dir.to_str().unwrap();
    let (ok, stdout, stderr) = run(&[&["certs", "--dir", path], extra].concat());
    assert!(ok, "rsl-kv certs failed: {stderr}");
    stdout
}

fn client_tls(dir: &Path, with_cert: bool) -> ClientTls {
    let (cert, key) = (dir.join("client.pem"), dir.join("client.key.pem"));
    let cert_key = with_cert.then_some((cert.as_path(), key.as_path()));
    ClientTls::new(&dir.join("ca.pem"), cert_key, None, FLAG_NAMES).unwrap()
}

async fn tls_cmd(addr: SocketAddr, tls: &ClientTls, args: &[&str]) -> std::io::Result<Reply> {
    let mut client = Client::connect_tls(addr, Some(tls), WAIT).await?;
    client.cmd(args).await
}

fn bulk(text: &str) -> Reply {
    Reply::Bulk(Bytes::copy_from_slice(text.as_bytes()))
}

/// The `tls_handshake_failures` count in INFO stats.
async fn handshake_failures(addr: SocketAddr, tls: &ClientTls) -> u64 {
    let Reply::Bulk(info) = tls_cmd(addr, tls, &["INFO", "stats"]).await.unwrap() else {
        panic!("INFO is a bulk")
    };
    let info = String::from_utf8_lossy(&info).into_owned();
    let line = info.lines().find(|l| l.starts_with("tls_handshake_failures:")).expect(&info);
    line["tls_handshake_failures:".len()..].parse().unwrap()
}

/// Waits until the server has counted `n` failed handshakes, never more. A handshake that
/// the client abandoned is counted when the server reads the closed connection, which may be
/// after the client's next command: the port has no event to await, so the count is asked
/// again after a short pause, up to `WAIT`.
async fn handshake_failures_reach(addr: SocketAddr, tls: &ClientTls, n: u64) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let seen = handshake_failures(addr, tls).await;
        assert!(seen <= n, "{seen} failed handshakes counted, {n} expected");
        if seen == n {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{seen} failed handshakes, {n} expected");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Asserts that the server closes a connection that talks RESP in plaintext, within `WAIT`
/// (no hang), saying nothing a RESP client would take for an answer.
async fn plaintext_is_refused(addr: SocketAddr) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(b"*1\r\n$4\r\nPING\r\n").await.unwrap();
    let mut got = Vec::new();
    let read = tokio::time::timeout(WAIT, stream.read_to_end(&mut got)).await;
    let read = read.expect("the server closes a plaintext connection in time");
    // A reset is a refusal too; whatever came is a TLS alert, not a RESP reply.
    assert!(read.is_err() || !got.starts_with(b"+PONG"), "{got:?}");
    assert!(!got.contains(&b'\r'), "a RESP answer in plaintext: {got:?}");
}

/// Asserts that a command over `tls` gets no answer (the handshake or the first read fails).
async fn refused(addr: SocketAddr, tls: &ClientTls) {
    let outcome = tls_cmd(addr, tls, &["PING"]).await;
    assert!(outcome.is_err(), "a client that should be refused got {outcome:?}");
}

#[test]
fn certs_names_every_file_and_refuses_to_overwrite_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let listed = certs(dir.path(), &["--replicas", "2", "--host", "db.example"]);
    for name in ["ca.pem", "ca.key.pem", "replica-2.pem", "replica-2.key.pem", "client.pem"] {
        assert!(listed.contains(&dir.path().join(name).display().to_string()), "{listed}");
        assert!(dir.path().join(name).exists());
    }
    assert!(!dir.path().join("replica-3.pem").exists());
    let ca = std::fs::read(dir.path().join("ca.pem")).unwrap();
    let path = dir.path().to_str().unwrap();
    let (ok, _, stderr) = run(&["certs", "--dir", path, "--replicas", "2"]);
    assert!(!ok && stderr.contains("already holds ca.pem"), "{stderr}");
    assert_eq!(std::fs::read(dir.path().join("ca.pem")).unwrap(), ca, "overwritten");
    // One existing file is enough to write nothing.
    let other = tempfile::tempdir().unwrap();
    std::fs::write(other.path().join("client.pem"), "mine").unwrap();
    let (ok, _, stderr) = run(&["certs", "--dir", other.path().to_str().unwrap()]);
    assert!(!ok && stderr.contains("client.pem"), "{stderr}");
    assert!(!other.path().join("ca.pem").exists());
    let (ok, _, stderr) = run(&["certs", "--dir", path, "--replicas", "2", "--force"]);
    assert!(ok, "{stderr}");
    assert_ne!(std::fs::read(dir.path().join("ca.pem")).unwrap(), ca, "--force replaced nothing");
    for bad in ["0", "65"] {
        let (ok, _, stderr) = run(&["certs", "--dir", path, "--force", "--replicas", bad]);
        assert!(!ok && stderr.contains("--replicas"), "{stderr}");
    }
    let (ok, _, _) = run(&["certs", "--dir", path, "--force", "--replicas", "64"]);
    assert!(ok);
}

#[tokio::test]
async fn local_server_serves_tls_clients_and_refuses_the_others() {
    let dir = tempfile::tempdir().unwrap();
    certs(dir.path(), &[]);
    let foreign = tempfile::tempdir().unwrap();
    certs(foreign.path(), &[]);
    let file = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let (cert, key, ca) = (file("replica-1.pem"), file("replica-1.key.pem"), file("ca.pem"));
    let tls_args = ["--tls-cert-file", &cert, "--tls-key-file", &key, "--tls-ca-cert-file", &ca];
    let (mut child, addr) = local_server(&tls_args).await;
    let good = client_tls(dir.path(), true);
    assert_eq!(tls_cmd(addr, &good, &["SET", "k", "v"]).await.unwrap(), Reply::ok());
    assert_eq!(tls_cmd(addr, &good, &["GET", "k"]).await.unwrap(), bulk("v"));
    plaintext_is_refused(addr).await;
    refused(addr, &client_tls(dir.path(), false)).await;
    refused(addr, &client_tls(foreign.path(), true)).await;
    // A server certificate from another authority is refused by the client too.
    refused(addr, &client_tls(foreign.path(), false)).await;
    // The server still serves, and counted the refusals (the foreign server, refused by the
    // client, counts as one as well: the server saw its handshake fail).
    assert_eq!(tls_cmd(addr, &good, &["GET", "k"]).await.unwrap(), bulk("v"));
    handshake_failures_reach(addr, &good, 4).await;
    if let Some(out) = redis_cli_tls(addr, dir.path(), &["GET", "k"]) {
        assert_eq!(out, "v");
    }
    child.kill().await.unwrap();

    // Optional: a client without a certificate is served, one from another authority not.
    let optional = [&tls_args[..], &["--tls-auth-clients", "optional"]].concat();
    let (mut child, addr) = local_server(&optional).await;
    let anonymous = client_tls(dir.path(), false);
    assert_eq!(tls_cmd(addr, &anonymous, &["PING"]).await.unwrap(), Reply::Simple("PONG".into()));
    refused(addr, &client_tls(foreign.path(), true)).await;
    child.kill().await.unwrap();

    // No: no CA file needed.
    let (mut child, addr) = local_server(&[
        "--tls-cert-file",
        &cert,
        "--tls-key-file",
        &key,
        "--tls-auth-clients",
        "no",
    ])
    .await;
    assert_eq!(tls_cmd(addr, &anonymous, &["PING"]).await.unwrap(), Reply::Simple("PONG".into()));
    plaintext_is_refused(addr).await;
    child.kill().await.unwrap();
}

/// A client that connects to a TLS port and never starts its handshake (a plaintext client
/// waiting for a greeting) is disconnected after `TLS_HANDSHAKE_MS_MAX` rather than holding
/// its connection for ever.
#[tokio::test]
async fn a_client_that_never_shakes_hands_is_disconnected() {
    let dir = tempfile::tempdir().unwrap();
    certs(dir.path(), &[]);
    let file = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let (cert, key) = (file("replica-1.pem"), file("replica-1.key.pem"));
    let args = ["--tls-cert-file", &cert, "--tls-key-file", &key, "--tls-auth-clients", "no"];
    let (mut child, addr) = local_server(&args).await;
    let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
    let bound = Duration::from_millis(3 * rsl_kv::limits::TLS_HANDSHAKE_MS_MAX);
    let mut got = Vec::new();
    let read = tokio::time::timeout(bound, silent.read_to_end(&mut got)).await;
    assert!(read.is_ok(), "a silent client was not disconnected within {bound:?}");
    assert!(got.is_empty(), "{got:?}");
    let tls = client_tls(dir.path(), false);
    handshake_failures_reach(addr, &tls, 1).await;
    child.kill().await.unwrap();
}

/// Runs `redis-cli --tls` with the client certificate against `addr`; `None` if redis-cli is
/// not installed.
fn redis_cli_tls(addr: SocketAddr, certs: &Path, args: &[&str]) -> Option<String> {
    let file = |name: &str| certs.join(name).to_str().unwrap().to_string();
    let output = Command::new("redis-cli")
        .args(["--tls", "--cacert", &file("ca.pem"), "--cert", &file("client.pem")])
        .args(["--key", &file("client.key.pem"), "-h", "127.0.0.1"])
        .args(["-p", &addr.port().to_string()])
        .args(args)
        .output();
    let Ok(output) = output else {
        eprintln!("redis-cli is not installed: its part is skipped");
        return None;
    };
    assert!(output.status.success(), "redis-cli --tls failed: {output:?}");
    Some(String::from_utf8_lossy(&output.stdout).trim().to_string())
}

#[tokio::test]
async fn bad_certificate_paths_stop_the_start_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    certs(dir.path(), &[]);
    let file = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let missing = file("nope.pem");
    let cases = [
        (
            ["--tls-cert-file", &missing, "--tls-key-file", &file("replica-1.key.pem")],
            "--tls-cert-file",
        ),
        (["--tls-cert-file", &file("replica-1.pem"), "--tls-key-file", &missing], "--tls-key-file"),
    ];
    for (args, option) in cases {
        let ca = ["--tls-ca-cert-file", &file("ca.pem")];
        let all: Vec<&str> =
            ["local-server", "--port", "0"].into_iter().chain(args).chain(ca).collect();
        let (ok, _, stderr) = run(&all);
        assert!(!ok, "started with {args:?}");
        assert!(stderr.contains(&format!("{option}: cannot read {missing}")), "{stderr}");
    }
    // A certificate file that holds no certificate, and a CA required but absent.
    let (ok, _, stderr) = run(&[
        "local-server",
        "--port",
        "0",
        "--tls-cert-file",
        &file("replica-1.key.pem"),
        "--tls-key-file",
        &file("replica-1.key.pem"),
        "--tls-ca-cert-file",
        &file("ca.pem"),
    ]);
    assert!(
        !ok && stderr.contains("--tls-cert-file") && stderr.contains("no certificate"),
        "{stderr}"
    );
    let (ok, _, stderr) = run(&[
        "local-server",
        "--port",
        "0",
        "--tls-cert-file",
        &file("replica-1.pem"),
        "--tls-key-file",
        &file("replica-1.key.pem"),
    ]);
    assert!(!ok && stderr.contains("--tls-ca-cert-file: required"), "{stderr}");
    // A replica: the error names the configuration field and the file.
    let config = dir.path().join("replica.toml");
    std::fs::write(
        &config,
        format!(
            "id = 1\ndata_dir = {:?}\nmembers = [{{ id = 1, addr = \"127.0.0.1:1\" }}]\n\
             [kv]\nclients = [{{ id = 1, addr = \"127.0.0.1:2\" }}]\n\
             tls_cert_file = {:?}\ntls_key_file = {missing:?}\ntls_ca_cert_file = {:?}\n",
            dir.path().join("data"),
            file("replica-1.pem"),
            file("ca.pem"),
        ),
    )
    .unwrap();
    let (ok, _, stderr) = run(&["run", "--config", config.to_str().unwrap()]);
    assert!(!ok && stderr.contains(&format!("kv.tls_key_file: cannot read {missing}")), "{stderr}");
}

fn python() -> Option<String> {
    let python = std::env::var("RSL_KV_PYTHON").unwrap_or_else(|_| "python3".into());
    let probe = Command::new(&python).args(["-c", "import redis"]).output().ok()?;
    probe.status.success().then_some(python)
}

/// A 3-replica cluster with TLS on its client ports (certificates from `rsl-kv certs`,
/// clients' required): a write through one follower (forwarded to the primary) is read
/// through the other; `rsl-kv status` through a follower reaches every member (the follower
/// relays to the others' TLS client ports); `rsl-kv member list` through a follower; the
/// plaintext client and the client without a certificate are refused; redis-cli and redis-py
/// (its whole client script) work through every replica.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_cluster_serves_forwards_and_relays_over_tls() {
    let options = ClusterOptions {
        fsync: false,
        client_tls: Some(AuthClients::Yes),
        ..ClusterOptions::default()
    };
    let mut cluster = Cluster::start(EXE.as_ref(), options).await.expect("the cluster starts");
    let p = cluster.wait_primary(None, WAIT).await.unwrap();
    let followers: Vec<u32> = (1..=3).filter(|id| *id != p).collect();
    let (a, b) =
        (cluster.replica(followers[0]).client_addr, cluster.replica(followers[1]).client_addr);
    let tls = cluster.client_tls().unwrap().expect("the client ports speak TLS");
    assert_eq!(tls_cmd(a, &tls, &["SET", "forwarded", "yes"]).await.unwrap(), Reply::ok());
    assert_eq!(tls_cmd(b, &tls, &["GET", "forwarded"]).await.unwrap(), bulk("yes"));
    plaintext_is_refused(a).await;
    refused(a, &client_tls(&cluster.certs_dir(), false)).await;
    let certs = cluster.certs_dir();
    let file = |name: &str| certs.join(name).to_str().unwrap().to_string();
    let (ca, cert, key) = (file("ca.pem"), file("client.pem"), file("client.key.pem"));
    let tls_flags = ["--tls", "--cacert", &ca, "--cert", &cert, "--key", &key];
    let at = a.to_string();
    let (ok, status, stderr) = run(&[&["status", "--addr", &at][..], &tls_flags].concat());
    assert!(ok, "{stderr}");
    assert_eq!(status.lines().filter(|l| l.trim_end().ends_with(" ok")).count(), 3, "{status}");
    assert!(!status.contains("unreachable"), "{status}");
    let (ok, listed, stderr) = run(&[&["member", "list", "--addr", &at][..], &tls_flags].concat());
    assert!(ok && listed.lines().filter(|l| l.contains("voter")).count() == 3, "{listed}{stderr}");
    // Without --tls the admin command is refused, not hung.
    let (ok, _, _) = run(&["status", "--addr", &at]);
    assert!(!ok);
    if let Some(out) = redis_cli_tls(b, &certs, &["GET", "forwarded"]) {
        assert_eq!(out, "yes");
    }
    if let Some(python) = python() {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/redis_py/clients.py");
        let addrs: Vec<String> =
            cluster.replicas().iter().map(|r| r.client_addr.to_string()).collect();
        let output = tokio::task::spawn_blocking(move || {
            Command::new(python)
                .arg(script)
                .args(&addrs)
                .env("RSL_KV_TLS_CA", &ca)
                .env("RSL_KV_TLS_CERT", &cert)
                .env("RSL_KV_TLS_KEY", &key)
                .output()
        })
        .await
        .unwrap()
        .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "redis-py over TLS failed:\n{stdout}\n{stderr}");
        assert!(stdout.contains("ok through 3 replicas"), "{stdout}");
    } else {
        eprintln!("redis-py is not installed: its part is skipped (scripts/test.sh installs it)");
    }
    cluster.stop().await;
}
