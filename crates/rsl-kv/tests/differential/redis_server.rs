//! A redis-server of the Debian package on a free loopback port, for the differential test.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use rsl_kv::client::Client;
use rsl_kv::launch::free_ports;
use rsl_kv::resp::Reply;

use super::WAIT;

/// A redis-server on a free port, stopped on drop; `None` if it is not installed.
pub struct RedisServer {
    child: std::process::Child,
    pub addr: SocketAddr,
}

/// Ports tried at most: the port is free when picked, but another test's process (the
/// cluster test of this binary starts replicas beside it) may bind it before redis-server does.
const TRIES_MAX: usize = 5;

impl RedisServer {
    pub async fn start() -> Option<RedisServer> {
        for _ in 0..TRIES_MAX {
            let port = free_ports(1).expect("a free port")[0];
            let child = std::process::Command::new("redis-server")
                .args([
                    "--port",
                    &port.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn();
            let Ok(child) = child else {
                eprintln!("redis-server is not installed: the differential test is skipped (apt-get install redis-server)");
                return None;
            };
            let mut server =
                RedisServer { child, addr: format!("127.0.0.1:{port}").parse().unwrap() };
            if server.answers().await {
                return Some(server);
            }
            eprintln!("redis-server did not get port {port} (taken meanwhile?): trying another");
        }
        panic!("redis-server did not start on any of {TRIES_MAX} free ports");
    }

    /// Waits until this server answers on its port; false if the process ended first (it
    /// could not bind the port) or another process answers there. A connection alone proves
    /// nothing: another test's replica may hold the port, and then every command fails.
    async fn answers(&mut self) -> bool {
        let pid = format!("process_id:{}", self.child.id());
        let deadline = std::time::Instant::now() + WAIT;
        while std::time::Instant::now() < deadline {
            if self.child.try_wait().ok().flatten().is_some() {
                return false;
            }
            if let Ok(mut client) = Client::connect(self.addr, WAIT).await {
                return match client.cmd(&["INFO", "server"]).await {
                    Ok(Reply::Bulk(info)) => {
                        String::from_utf8_lossy(&info).lines().any(|l| l == pid)
                    }
                    _ => false,
                };
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("redis-server did not start within {WAIT:?}");
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
