//! A small RESP2 client over TCP or TLS, for the admin subcommands, the local cluster's
//! workload, admin commands relayed between members and tests. Every call is bounded by a
//! timeout given at connection, so a paused or dead server turns into an error rather than a
//! hang.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use crate::resp::{encode_command, parse_reply, Reply};
use crate::tls::ClientTls;

/// A client's connection: plain TCP, or TLS over it.
#[derive(Debug)]
enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// A connection to a RESP server.
#[derive(Debug)]
pub struct Client {
    stream: Stream,
    input: BytesMut,
    output: BytesMut,
    timeout: Duration,
}

fn timed_out(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, format!("{what} timed out"))
}

impl Client {
    /// Connects within `timeout`; every later call is bounded by `timeout` too.
    pub async fn connect(addr: SocketAddr, timeout: Duration) -> io::Result<Client> {
        Client::connect_tls(addr, None, timeout).await
    }

    /// Connects, with TLS if `tls` is given (the handshake within `timeout` too).
    pub async fn connect_tls(
        addr: SocketAddr,
        tls: Option<&ClientTls>,
        timeout: Duration,
    ) -> io::Result<Client> {
        let connect = async {
            let stream = TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            match tls {
                None => Ok::<_, io::Error>(Stream::Plain(stream)),
                Some(tls) => Ok(Stream::Tls(Box::new(tls.connect(stream).await?))),
            }
        };
        let stream =
            tokio::time::timeout(timeout, connect).await.map_err(|_| timed_out("connecting"))??;
        Ok(Client { stream, input: BytesMut::new(), output: BytesMut::new(), timeout })
    }

    /// Connects and, if `password` is given, authenticates.
    pub async fn connect_auth(
        addr: SocketAddr,
        password: Option<&str>,
        timeout: Duration,
    ) -> io::Result<Client> {
        Client::connect_tls_auth(addr, None, password, timeout).await
    }

    /// Connects (with TLS if `tls` is given) and, if `password` is given, authenticates.
    pub async fn connect_tls_auth(
        addr: SocketAddr,
        tls: Option<&ClientTls>,
        password: Option<&str>,
        timeout: Duration,
    ) -> io::Result<Client> {
        let mut client = Client::connect_tls(addr, tls, timeout).await?;
        if let Some(password) = password {
            match client.cmd(&[b"AUTH".as_slice(), password.as_bytes()]).await? {
                Reply::Simple(_) => {}
                other => {
                    let text = format!("AUTH refused: {}", describe(&other));
                    return Err(io::Error::new(io::ErrorKind::PermissionDenied, text));
                }
            }
        }
        Ok(client)
    }

    /// Queues one command; [`Client::flush`] sends what is queued.
    pub fn queue<A: AsRef<[u8]>>(&mut self, args: &[A]) {
        encode_command(args, &mut self.output);
    }

    /// Sends the queued commands.
    pub async fn flush(&mut self) -> io::Result<()> {
        let write = self.stream.write_all(&self.output);
        tokio::time::timeout(self.timeout, write).await.map_err(|_| timed_out("writing"))??;
        self.output.clear();
        Ok(())
    }

    /// Reads the next reply.
    pub async fn reply(&mut self) -> io::Result<Reply> {
        let read = async {
            loop {
                let parsed = parse_reply(&mut self.input)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
                if let Some(reply) = parsed {
                    return Ok(reply);
                }
                if self.stream.read_buf(&mut self.input).await? == 0 {
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "server closed"));
                }
            }
        };
        tokio::time::timeout(self.timeout, read)
            .await
            .map_err(|_| timed_out("waiting for a reply"))?
    }

    /// Sends one command and returns its reply.
    pub async fn cmd<A: AsRef<[u8]>>(&mut self, args: &[A]) -> io::Result<Reply> {
        self.queue(args);
        self.flush().await?;
        self.reply().await
    }
}

/// A reply as a line of text, for messages.
pub fn describe(reply: &Reply) -> String {
    match reply {
        Reply::Simple(s) | Reply::Error(s) | Reply::Bulk(s) => String::from_utf8_lossy(s).into(),
        Reply::Integer(n) => n.to_string(),
        Reply::Null | Reply::NullArray => "(nil)".into(),
        Reply::Array(items) | Reply::Set(items) | Reply::Push(items) => {
            let items: Vec<String> = items.iter().map(describe).collect();
            format!("[{}]", items.join(", "))
        }
        Reply::Map(pairs) => {
            let pairs: Vec<String> =
                pairs.iter().map(|(k, v)| format!("{}: {}", describe(k), describe(v))).collect();
            format!("{{{}}}", pairs.join(", "))
        }
        Reply::Double(d) => crate::resp::format_double(*d),
        Reply::HumanDouble(d) => crate::resp::format_human(*d),
        Reply::Boolean(b) => b.to_string(),
        Reply::Verbatim(_, text) => String::from_utf8_lossy(text).into(),
    }
}

/// How a member reaches another member's client port: the client password, and TLS when
/// client ports speak it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Reach<'a> {
    /// The client password, if any.
    pub password: Option<&'a str>,
    /// The client side of the client ports' TLS, if they speak it.
    pub tls: Option<&'a ClientTls>,
}

/// The TLS to reach member `id`'s client port with: `tls`, verifying the name every replica
/// certificate carries (`replica-<id>.rsl`), since a member's client address may be one its
/// certificate does not name.
pub fn tls_for(tls: Option<&ClientTls>, id: u32) -> Option<ClientTls> {
    let name = rsl_net::tls::replica_server_name(id);
    let name = rustls::pki_types::ServerName::try_from(name).expect("replica names are DNS names");
    tls.map(|tls| tls.with_server_name(name))
}
