//! A redis-server of the Debian package on a free loopback port, for the differential test.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use rsl_kv::client::Client;
use rsl_kv::launch::free_ports;

use super::WAIT;

/// A redis-server on a free port, stopped on drop; `None` if it is not installed.
pub struct RedisServer {
    child: std::process::Child,
    pub addr: SocketAddr,
}

impl RedisServer {
    pub async fn start() -> Option<RedisServer> {
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
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let deadline = std::time::Instant::now() + WAIT;
        while Client::connect(addr, WAIT).await.is_err() {
            assert!(std::time::Instant::now() < deadline, "redis-server did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Some(RedisServer { child, addr })
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
