//! A test harness: a server on an ephemeral loopback port and a raw RESP client.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rsl_kv::resp::{encode_command, parse_reply, Reply};
use rsl_kv::{serve, Engine, LocalEngine, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How long a test waits for a reply before failing (a guard against hangs, not a delay).
pub const REPLY_WAIT_MAX: Duration = Duration::from_secs(10);

/// Starts a server over `engine` and returns its address.
pub async fn start_with<E: Engine>(engine: Arc<E>, config: ServerConfig) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve(listener, engine, config));
    addr
}

/// Starts a server over a fresh [`LocalEngine`].
pub async fn start(config: ServerConfig) -> SocketAddr {
    start_with(Arc::new(LocalEngine::new()), config).await
}

/// Starts `rsl-kv local-server` on a free port with `extra` arguments; returns the child and
/// the address it printed.
pub async fn local_server(extra: &[&str]) -> (tokio::process::Child, SocketAddr) {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_rsl-kv"))
        .args(["local-server", "--port", "0"])
        .args(extra)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the binary starts");
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    let mut stdout = tokio::io::BufReader::new(stdout);
    let read = tokio::io::AsyncBufReadExt::read_line(&mut stdout, &mut line);
    tokio::time::timeout(REPLY_WAIT_MAX, read).await.unwrap().unwrap();
    let addr = line.split_whitespace().nth(3).expect("rsl-kv: listening on ADDR ...");
    (child, addr.parse().unwrap())
}

/// A clock the test moves by hand, and a config that stamps writes with it.
pub fn manual_clock(start_ms: u64) -> (Arc<AtomicU64>, ServerConfig) {
    let now = Arc::new(AtomicU64::new(start_ms));
    let read = Arc::clone(&now);
    let config = ServerConfig {
        clock: Arc::new(move || read.load(Ordering::SeqCst)),
        ..ServerConfig::default()
    };
    (now, config)
}

/// A client speaking raw RESP.
pub struct Client {
    stream: TcpStream,
    buf: BytesMut,
    addr: SocketAddr,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        Client { stream, buf: BytesMut::new(), addr }
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// This client's own port (its `addr=` in CLIENT LIST).
    pub fn local_port(&self) -> u16 {
        self.stream.local_addr().unwrap().port()
    }

    /// Sends bytes as they are.
    pub async fn send(&mut self, raw: &[u8]) {
        self.stream.write_all(raw).await.unwrap();
    }

    /// Sends one command in array form.
    pub async fn send_cmd(&mut self, args: &[&str]) {
        let mut out = BytesMut::new();
        encode_command(args, &mut out);
        self.send(&out).await;
    }

    /// Reads the next reply; panics on end of stream or after [`REPLY_WAIT_MAX`].
    pub async fn reply(&mut self) -> Reply {
        tokio::time::timeout(REPLY_WAIT_MAX, self.reply_unbounded()).await.expect("a reply in time")
    }

    async fn reply_unbounded(&mut self) -> Reply {
        loop {
            if let Some(reply) = parse_reply(&mut self.buf).unwrap() {
                return reply;
            }
            let n = self.stream.read_buf(&mut self.buf).await.unwrap();
            assert!(n > 0, "the server closed the connection; buffered {:?}", self.buf);
        }
    }

    /// Reads the next reply's exact bytes.
    pub async fn raw_reply(&mut self) -> Bytes {
        let read = async {
            loop {
                let mut probe = self.buf.clone();
                if parse_reply(&mut probe).unwrap().is_some() {
                    let used = self.buf.len() - probe.len();
                    return self.buf.split_to(used).freeze();
                }
                let n = self.stream.read_buf(&mut self.buf).await.unwrap();
                assert!(n > 0, "the server closed the connection; buffered {:?}", self.buf);
            }
        };
        tokio::time::timeout(REPLY_WAIT_MAX, read).await.expect("a reply in time")
    }

    /// Sends a command and returns its reply's exact bytes.
    pub async fn raw_cmd(&mut self, args: &[&str]) -> Bytes {
        self.send_cmd(args).await;
        self.raw_reply().await
    }

    /// Sends a command and returns its reply.
    pub async fn cmd(&mut self, args: &[&str]) -> Reply {
        self.send_cmd(args).await;
        self.reply().await
    }

    /// Asserts that the server closes the connection with nothing more to say.
    pub async fn expect_closed(&mut self) {
        let read = tokio::time::timeout(REPLY_WAIT_MAX, self.stream.read_buf(&mut self.buf));
        let n = read.await.expect("the close in time").unwrap_or(0);
        assert_eq!(n, 0, "expected the connection closed, got {:?}", self.buf);
    }
}

pub fn ok() -> Reply {
    Reply::ok()
}

pub fn bulk(text: &str) -> Reply {
    Reply::Bulk(Bytes::copy_from_slice(text.as_bytes()))
}

pub fn err(text: &str) -> Reply {
    Reply::Error(Bytes::copy_from_slice(text.as_bytes()))
}

pub fn int(n: i64) -> Reply {
    Reply::Integer(n)
}
