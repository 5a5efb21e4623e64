//! The RESP server: accepts client connections and answers their commands in order, in RESP2
//! or (after `HELLO 3`) RESP3.
//!
//! Each connection is one task. With TLS configured ([`ServerConfig::tls`]) the task first
//! completes the handshake, within [`limits::TLS_HANDSHAKE_MS_MAX`], and a connection whose
//! handshake fails is closed before any command is read. The task parses the commands in its
//! input buffer and dispatches each (`session`): connection commands (PING, AUTH, MULTI, SUBSCRIBE, INFO, ...; the table
//! in `table`, the handlers in `connection`, `pubsub` and `session`) are answered by the
//! server; data commands ([`crate::commands`]) are encoded as requests that carry the command
//! itself and handed to the [`Engine`] without waiting for earlier ones, so pipelined commands
//! reach the engine back to back: the data commands parsed from one read go to the engine as
//! one batch ([`Engine::batch`], after the dispatch of the buffered commands; anything else
//! that reaches the engine first flushes the batch so far, keeping the connection's order). The pending replies wait in command order; the task writes
//! every reply at the head that is known, flushes, and then waits for whichever comes first:
//! more input, the engine's answer to the head, or a pub/sub message. The engine's answers
//! are futures ([`EngineReply`]) that this task awaits in order, driving the engine's work
//! for each (waiting for the replica, retries) itself: no task or channel per command. At most
//! [`limits::PIPELINE_DEPTH_MAX`] replies wait; while that many do, the connection stops
//! reading, which pushes back on the client (but behind a barrier, see below, it keeps
//! reading up to [`limits::BARRIER_INPUT_BYTES_MAX`], to see a client that leaves).
//!
//! A read that follows one of the connection's writes still unanswered goes through the log
//! like a write ([`Engine::write`]; the machine's `execute` answers reads too), so a
//! pipelined GET after a SET sees that SET and no later one, as Redis executes a pipeline in
//! order. Two kinds of command are barriers: a WATCH (its answer sets the connection's watch
//! point, which the next EXEC needs) and a blocking pop (Redis runs nothing after it until it
//! returns); the connection dispatches nothing more until a barrier is answered.
//!
//! Invariants: every parsed command gets exactly one reply, in order (SUBSCRIBE's one reply
//! per channel counts as its reply); a command never reaches the engine before its arity and
//! (when a password is set) the connection's authentication are checked; a protocol error is
//! answered and then closes the connection; nothing a client sends panics the server. Requests
//! carry the server's clock at dispatch ([`Clock`]), which is the only place where wall time
//! enters the replicated state.

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::net::{TcpListener, TcpStream};

use crate::engine::{Engine, EngineError, EngineReply};
use crate::limits;
use crate::resp::{parse_reply, Parser, ParserLimits, Proto, Reply};

mod blocking;
mod clients;
mod connection;
mod pubsub;
mod session;
mod table;

use clients::ClientInfo;
use session::Session;
pub use table::{lookup, CommandSpec, COMMANDS};

/// The error for a command used before AUTH on a server with a password, in Redis's words.
pub const ERR_NOAUTH: &str = "NOAUTH Authentication required.";
/// The error for a wrong password, in Redis's words.
pub const ERR_WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";
/// The error for malformed options, in Redis's words.
pub const ERR_SYNTAX: &str = "ERR syntax error";

/// The prefix (lower case) of the commands an engine answers itself ([`Engine::command`]).
pub const ENGINE_COMMAND_PREFIX: &[u8] = b"rsl.";

/// The version reported to clients as `redis_version`: the Redis release whose behaviour the
/// supported commands follow.
pub const REDIS_VERSION: &str = "7.0.0";

/// The clock that stamps requests, in Unix milliseconds.
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The system's wall clock.
pub fn system_clock() -> Clock {
    Arc::new(|| {
        let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX)
    })
}

/// How a server behaves.
#[derive(Clone)]
pub struct ServerConfig {
    /// The password clients must give with AUTH before other commands; `None` for no password.
    pub requirepass: Option<String>,
    /// Stamps requests.
    pub clock: Clock,
    /// The parser limits for every connection.
    pub parser_limits: ParserLimits,
    /// TLS on the client port (then TLS only): built by [`crate::tls::ServerTlsFiles`].
    pub tls: Option<tokio_rustls::TlsAcceptor>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            requirepass: None,
            clock: system_clock(),
            parser_limits: ParserLimits::default(),
            tls: None,
        }
    }
}

impl fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerConfig")
            .field("requirepass", &self.requirepass.as_ref().map(|_| "<set>"))
            .field("parser_limits", &self.parser_limits)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

/// What every connection of one server shares.
struct Shared {
    engine: Arc<dyn Engine>,
    config: ServerConfig,
    port: u16,
    started: Instant,
    clients: AtomicUsize,
    client_id_last: AtomicU64,
    stats: Stats,
    /// Every connected client, for CLIENT LIST.
    registry: clients::Registry,
    /// The values CONFIG SET changed (the rest are fixed).
    settings: connection::Settings,
}

/// Counters reported by INFO's `# Stats` section.
#[derive(Default)]
struct Stats {
    connections_received: AtomicU64,
    connections_rejected: AtomicU64,
    commands_processed: AtomicU64,
    protocol_errors: AtomicU64,
    pubsub_messages: AtomicU64,
    /// Connections closed because their TLS handshake failed or took too long.
    tls_handshake_failures: AtomicU64,
}

/// Serves clients accepted on `listener` until accepting fails; each connection runs on its
/// own tasks. Cancel the returned future (or abort its task) to stop accepting.
pub async fn serve<E: Engine>(
    listener: TcpListener,
    engine: Arc<E>,
    config: ServerConfig,
) -> io::Result<()> {
    // A bulk may exceed the largest key or value: the request that carries it is refused,
    // naming the limit, before it reaches the engine (Session::submit).
    assert!(config.parser_limits.bulk_bytes_max <= limits::BULK_BYTES_MAX);
    assert!(config.parser_limits.array_len_max <= limits::ARRAY_LEN_MAX);
    let shared = Arc::new(Shared {
        engine,
        config,
        port: listener.local_addr()?.port(),
        started: Instant::now(),
        clients: AtomicUsize::new(0),
        client_id_last: AtomicU64::new(0),
        stats: Stats::default(),
        registry: clients::Registry::default(),
        settings: connection::Settings::default(),
    });
    loop {
        let (stream, _) = listener.accept().await?;
        let shared = Arc::clone(&shared);
        tokio::spawn(async move { accept_client(stream, shared).await });
    }
}

/// Decrements the client count and forgets the client when a connection ends.
struct ClientSlot(Arc<Shared>, Option<u64>);

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let before = self.0.clients.fetch_sub(1, Ordering::Relaxed);
        assert!(before > 0, "the client count never goes negative");
        if let Some(id) = self.1 {
            self.0.registry.remove(id);
            if let Some(hub) = self.0.engine.hub() {
                hub.disconnect(id);
            }
        }
    }
}

async fn accept_client(stream: TcpStream, shared: Arc<Shared>) {
    let count = shared.clients.fetch_add(1, Ordering::Relaxed) + 1;
    let mut slot = ClientSlot(Arc::clone(&shared), None);
    shared.stats.connections_received.fetch_add(1, Ordering::Relaxed);
    let _ = stream.set_nodelay(true);
    let (peer, local) = (stream.peer_addr().ok(), stream.local_addr().ok());
    match shared.config.tls.clone() {
        None => {
            let mut stream = stream;
            let (reader, writer) = stream.split();
            serve_client(reader, writer, count, &mut slot, peer, local).await;
        }
        Some(acceptor) => {
            // A client that never completes the handshake (a plaintext client that waits for
            // the server to speak first) must not hold its slot for ever.
            let wait = std::time::Duration::from_millis(limits::TLS_HANDSHAKE_MS_MAX);
            match tokio::time::timeout(wait, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => {
                    let (reader, writer) = tokio::io::split(tls);
                    serve_client(reader, writer, count, &mut slot, peer, local).await;
                }
                // A plaintext client, a missing or foreign certificate: nothing to answer in
                // a protocol the client speaks, so the connection is closed.
                Ok(Err(_)) | Err(_) => {
                    shared.stats.tls_handshake_failures.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
    drop(slot);
}

/// Serves one accepted client (after its TLS handshake, if any) over its two halves.
async fn serve_client<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
    reader: R,
    mut writer: W,
    count: usize,
    slot: &mut ClientSlot,
    peer: Option<std::net::SocketAddr>,
    local: Option<std::net::SocketAddr>,
) {
    let shared = Arc::clone(&slot.0);
    if count > limits::CLIENTS_MAX {
        shared.stats.connections_rejected.fetch_add(1, Ordering::Relaxed);
        let reply = Reply::error("ERR max number of clients reached").to_bytes();
        let _ = writer.write_all(&reply).await;
        let _ = writer.shutdown().await;
        return;
    }
    let id = shared.client_id_last.fetch_add(1, Ordering::Relaxed) + 1;
    let info = Arc::new(ClientInfo::new(id, peer, local, &shared));
    shared.registry.insert(Arc::clone(&info));
    slot.1 = Some(id);
    let session = Session::new(shared, id, info);
    let _ = Connection::new(session).run(reader, writer).await;
}

/// What to do with an engine reply before it is written.
type PostProcess = Box<dyn FnOnce(Reply) -> Reply + Send>;

/// A reply not yet written.
enum Pending {
    /// Known.
    Ready(Bytes),
    /// To come from the engine (a read or an engine command).
    Engine(EngineReply),
    /// To come from the engine, for a request that goes through the log (a write, or a read
    /// behind one).
    Write(EngineReply),
    /// To come from the engine, then transformed (in the connection's protocol).
    Post { reply: EngineReply, post: PostProcess, proto: Proto, logged: bool },
    /// WATCH's answer (the machine's modification count): a barrier.
    Watch { reply: EngineReply, keys: Vec<Bytes> },
    /// A blocking pop's answer: a barrier.
    Blocked(EngineReply),
    /// A data command in the session's batch, not yet handed to the engine: replaced by
    /// `Write` (if `logged`) or `Engine` with the engine's reply once the commands read
    /// together are dispatched (`Connection::dispatch_buffered`).
    Batched { logged: bool },
}

impl Pending {
    fn is_barrier(&self) -> bool {
        matches!(self, Pending::Watch { .. } | Pending::Blocked(_))
    }

    fn is_logged(&self) -> bool {
        matches!(
            self,
            Pending::Write(_)
                | Pending::Blocked(_)
                | Pending::Post { logged: true, .. }
                | Pending::Batched { logged: true }
        )
    }

    fn receiver(&mut self) -> Option<&mut EngineReply> {
        match self {
            Pending::Ready(_) | Pending::Batched { .. } => None,
            Pending::Engine(rx) | Pending::Write(rx) | Pending::Blocked(rx) => Some(rx),
            Pending::Post { reply, .. } | Pending::Watch { reply, .. } => Some(reply),
        }
    }
}

fn ready(reply: Reply, proto: Proto) -> Pending {
    Pending::Ready(reply.to_bytes_in(proto))
}

/// One client connection: its input buffer, its parser and its replies in command order.
struct Connection {
    session: Session,
    parser: Parser,
    input: BytesMut,
    /// Whether the client may still send (it has not closed its side).
    input_open: bool,
    /// Replies in command order; at most [`limits::PIPELINE_DEPTH_MAX`].
    replies: VecDeque<Pending>,
}

impl Connection {
    fn new(session: Session) -> Connection {
        let parser = Parser::new(session.shared.config.parser_limits);
        Connection {
            session,
            parser,
            input: BytesMut::with_capacity(limits::READ_CHUNK_BYTES_MIN),
            input_open: true,
            replies: VecDeque::new(),
        }
    }

    /// Serves the connection until the client leaves, QUITs or breaks the protocol. One task
    /// does everything, so a command answered at once costs no hand-off between tasks.
    async fn run<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
        mut self,
        mut reader: R,
        writer: W,
    ) -> io::Result<()> {
        let mut out = BufWriter::with_capacity(64 << 10, writer);
        loop {
            // Writing replies makes room in a full pipeline, or lifts a barrier, for more
            // buffered commands.
            while self.dispatch_buffered() && self.write_ready(&mut out).await? {}
            self.write_ready(&mut out).await?;
            out.flush().await?;
            if self.replies.is_empty() && (self.session.closing || !self.input_open) {
                return out.shutdown().await;
            }
            let can_read = self.can_read();
            let waiting = self.replies.front().is_some_and(|p| !matches!(p, Pending::Ready(_)));
            let subscribed = self.session.messages.is_some();
            assert!(can_read || waiting || subscribed, "a connection always waits for something");
            if can_read {
                self.input.reserve(limits::READ_CHUNK_BYTES_MIN);
            }
            tokio::select! {
                read = reader.read_buf(&mut self.input), if can_read => {
                    self.input_open = matches!(read, Ok(n) if n > 0);
                    if !self.input_open && self.replies.iter().any(|p| matches!(p, Pending::Blocked(_))) {
                        // The client left while blocked: drop the pop (its task stops when
                        // it sees the reply's receiver gone), as Redis unblocks it.
                        return Ok(());
                    }
                    if self.barrier() && self.input.len() > limits::BARRIER_INPUT_BYTES_MAX {
                        // Reading no further would leave a departed client's pop blocked
                        // (see the limit): end the connection, which drops the pop.
                        self.session.shared.stats.protocol_errors.fetch_add(1, Ordering::Relaxed);
                        return Ok(());
                    }
                }
                outcome = head_reply(&mut self.replies), if waiting => {
                    let head = self.replies.pop_front().expect("a head");
                    let bytes = self.session.resolve(head, engine_reply(outcome));
                    self.replies.push_front(Pending::Ready(bytes));
                }
                message = pubsub::next_message(&mut self.session.messages), if subscribed => {
                    match message {
                        Some(message) => {
                            let bytes = self.session.message_bytes(message);
                            self.replies.push_back(Pending::Ready(bytes));
                        }
                        // The hub dropped a subscriber that fell too far behind.
                        None => return Ok(()),
                    }
                }
            }
        }
    }

    /// Whether to read more input. Behind a barrier the connection still reads, whatever the
    /// number of replies waiting (a barrier stops dispatch, so reading adds no reply), so that
    /// it sees a client that leaves while blocked: a blocking pop last in a full pipeline
    /// would otherwise live on after its client left and take an element no one receives.
    /// There `run` ends the connection once more than [`limits::BARRIER_INPUT_BYTES_MAX`] is
    /// buffered. Elsewhere at most [`limits::PIPELINE_DEPTH_MAX`] replies wait.
    fn can_read(&self) -> bool {
        let room = if self.barrier() {
            self.input.len() <= limits::BARRIER_INPUT_BYTES_MAX
        } else {
            self.replies.len() < limits::PIPELINE_DEPTH_MAX
        };
        self.input_open && !self.session.closing && room
    }

    fn barrier(&self) -> bool {
        self.replies.iter().any(Pending::is_barrier)
    }

    /// Whether to dispatch buffered commands: as for reading, and no barrier is pending.
    fn can_dispatch(&self) -> bool {
        self.input_open_or_buffered()
            && !self.session.closing
            && self.replies.len() < limits::PIPELINE_DEPTH_MAX
            && !self.barrier()
    }

    fn input_open_or_buffered(&self) -> bool {
        self.input_open || !self.input.is_empty()
    }

    /// Parses and dispatches the buffered commands, as many as the pipeline depth and the
    /// barriers allow; returns whether it stopped for them (so buffered commands may remain
    /// once replies are written).
    fn dispatch_buffered(&mut self) -> bool {
        let first = self.replies.len();
        self.session.publish();
        let stopped = self.dispatch_parsed();
        self.session.publish();
        // The data commands read together go to the engine as one batch; their places take
        // the engine's replies, in order.
        self.session.flush_batch();
        for pending in self.replies.range_mut(first..) {
            if let Pending::Batched { logged } = *pending {
                let reply = self.session.flushed.pop_front().expect("a reply per batched command");
                *pending = if logged { Pending::Write(reply) } else { Pending::Engine(reply) };
            }
        }
        assert!(self.session.flushed.is_empty(), "a reply for no batched command");
        stopped
    }

    /// Parses and dispatches the buffered commands (see `dispatch_buffered`).
    fn dispatch_parsed(&mut self) -> bool {
        while self.can_dispatch() {
            let pending = match self.parser.parse(&mut self.input) {
                Ok(Some(args)) => {
                    let behind_write = self.replies.iter().any(Pending::is_logged);
                    self.session.dispatch(args, behind_write)
                }
                Ok(None) => return false,
                Err(e) => {
                    self.session.shared.stats.protocol_errors.fetch_add(1, Ordering::Relaxed);
                    self.session.closing = true;
                    ready(Reply::error(format!("ERR Protocol error: {e}")), self.session.proto)
                }
            };
            self.replies.push_back(pending);
        }
        !self.input.is_empty()
    }

    /// Writes the replies at the head that are known; returns whether it wrote any.
    async fn write_ready<W: AsyncWrite + Unpin>(
        &mut self,
        out: &mut BufWriter<W>,
    ) -> io::Result<bool> {
        let mut wrote = false;
        while let Some(mut head) = self.replies.pop_front() {
            let bytes = match &mut head {
                Pending::Ready(bytes) => std::mem::take(bytes),
                other => {
                    let reply = other.receiver().expect("an engine reply");
                    let Some(outcome) = reply.try_take() else {
                        self.replies.push_front(head);
                        break;
                    };
                    self.session.resolve(head, engine_reply(outcome))
                }
            };
            out.write_all(&bytes).await?;
            wrote = true;
        }
        Ok(wrote)
    }
}

/// Waits for the engine's outcome of the reply at the head of `replies` (the connection's
/// task drives the engine's work for it: no task of its own).
async fn head_reply(replies: &mut VecDeque<Pending>) -> Result<Bytes, EngineError> {
    match replies.front_mut().and_then(Pending::receiver) {
        Some(reply) => reply.await,
        None => unreachable!("head_reply is polled only while the head waits for the engine"),
    }
}

fn engine_reply(outcome: Result<Bytes, EngineError>) -> Bytes {
    match outcome {
        Ok(bytes) => bytes,
        Err(e) => e.to_reply().to_bytes(),
    }
}

/// Parses reply bytes from the engine back into a reply (for post-processing).
fn parse_engine_bytes(bytes: &[u8]) -> Reply {
    let mut buf = BytesMut::from(bytes);
    match parse_reply(&mut buf) {
        Ok(Some(reply)) if buf.is_empty() => reply,
        _ => Reply::error("ERR internal error: a malformed reply from the engine"),
    }
}
