//! The RESP2 server: accepts client connections and answers their commands in order. The
//! connection loop lives here; the command table in `table`, the connection commands (PING,
//! AUTH, INFO, ...) in `connection`, and the parsing of data commands in `strings`.
//!
//! Each connection is one task. It parses the commands in its input buffer and dispatches each
//! through the one command table, [`COMMANDS`]: connection commands (PING, AUTH, INFO, ...) are
//! answered on the spot, data commands are encoded as requests and handed to the [`Engine`]
//! without waiting for earlier ones, so pipelined commands reach the engine back to back. The
//! pending replies wait in command order; the task writes every reply at the head that is
//! known, flushes, and then waits for whichever comes first: more input or the engine's
//! answer to the head. At most [`limits::PIPELINE_DEPTH_MAX`] replies wait; while that many
//! do, the connection stops reading, which pushes back on the client.
//!
//! A read that follows one of the connection's writes still unanswered goes through the log
//! like a write ([`Engine::write`]; the machine's `execute` answers reads too), so a
//! pipelined GET after a SET sees that SET and no later one, as Redis executes a pipeline in
//! order. Engines keep the order of the requests they are handed. Other reads take the read
//! path ([`Engine::read`]).
//!
//! Invariants: every parsed command gets exactly one reply, in order; a command never reaches
//! the engine before its arity and (when a password is set) the connection's authentication
//! are checked; a protocol error is answered and then closes the connection; nothing a client
//! sends panics the server. Write requests carry the server's clock at dispatch ([`Clock`]),
//! which is the only place where wall time enters the replicated state.

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::tcp::WriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

use crate::engine::{Engine, EngineError, EngineReply};
use crate::limits;
use crate::request::Request;
use crate::resp::{Command, Parser, ParserLimits, Reply};

mod connection;
mod strings;
mod table;

use table::{arity_error, unknown_command, Handler};
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

/// The clock that stamps write requests, in Unix milliseconds.
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
    /// Stamps write requests.
    pub clock: Clock,
    /// The parser limits for every connection.
    pub parser_limits: ParserLimits,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            requirepass: None,
            clock: system_clock(),
            parser_limits: ParserLimits::default(),
        }
    }
}

impl fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerConfig")
            .field("requirepass", &self.requirepass.as_ref().map(|_| "<set>"))
            .field("parser_limits", &self.parser_limits)
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
}

/// Counters reported by INFO's `# Stats` section.
#[derive(Default)]
struct Stats {
    connections_received: AtomicU64,
    connections_rejected: AtomicU64,
    commands_processed: AtomicU64,
    protocol_errors: AtomicU64,
}

/// Serves clients accepted on `listener` until accepting fails; each connection runs on its
/// own tasks. Cancel the returned future (or abort its task) to stop accepting.
pub async fn serve<E: Engine>(
    listener: TcpListener,
    engine: Arc<E>,
    config: ServerConfig,
) -> io::Result<()> {
    assert!(
        config.parser_limits.bulk_bytes_max <= limits::KEY_BYTES_MAX.min(limits::VALUE_BYTES_MAX)
    );
    assert!(config.parser_limits.array_len_max <= limits::ARRAY_LEN_MAX);
    let shared = Arc::new(Shared {
        engine,
        config,
        port: listener.local_addr()?.port(),
        started: Instant::now(),
        clients: AtomicUsize::new(0),
        client_id_last: AtomicU64::new(0),
        stats: Stats::default(),
    });
    loop {
        let (stream, _) = listener.accept().await?;
        let shared = Arc::clone(&shared);
        tokio::spawn(async move { accept_client(stream, shared).await });
    }
}

/// Decrements the client count when a connection ends.
struct ClientSlot(Arc<Shared>);

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let before = self.0.clients.fetch_sub(1, Ordering::Relaxed);
        assert!(before > 0, "the client count never goes negative");
    }
}

async fn accept_client(mut stream: TcpStream, shared: Arc<Shared>) {
    let count = shared.clients.fetch_add(1, Ordering::Relaxed) + 1;
    let slot = ClientSlot(Arc::clone(&shared));
    shared.stats.connections_received.fetch_add(1, Ordering::Relaxed);
    if count > limits::CLIENTS_MAX {
        shared.stats.connections_rejected.fetch_add(1, Ordering::Relaxed);
        let reply = Reply::error("ERR max number of clients reached").to_bytes();
        let _ = stream.write_all(&reply).await;
        return;
    }
    let _ = stream.set_nodelay(true);
    let id = shared.client_id_last.fetch_add(1, Ordering::Relaxed) + 1;
    let session = Session { shared, id, authenticated: false, closing: false, name: None };
    let _ = Connection::new(session).run(&mut stream).await;
    drop(slot);
}

/// A reply not yet written.
enum Pending {
    /// Known.
    Ready(Bytes),
    /// To come from the engine (a read or an engine command).
    Engine(EngineReply),
    /// To come from the engine, for a request that goes through the log (a write, or a read
    /// behind one).
    Write(EngineReply),
}

fn ready(reply: Reply) -> Pending {
    Pending::Ready(reply.to_bytes())
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
    async fn run(mut self, stream: &mut TcpStream) -> io::Result<()> {
        let (mut reader, writer) = stream.split();
        let mut out = BufWriter::with_capacity(64 << 10, writer);
        loop {
            // Writing replies makes room in a full pipeline for more buffered commands.
            while self.dispatch_buffered() && self.write_ready(&mut out).await? {}
            self.write_ready(&mut out).await?;
            out.flush().await?;
            if self.replies.is_empty() && (self.session.closing || !self.input_open) {
                return out.shutdown().await;
            }
            let can_read = self.can_read();
            let waiting =
                matches!(self.replies.front(), Some(Pending::Engine(_) | Pending::Write(_)));
            assert!(can_read || waiting, "a connection always waits for something");
            if can_read {
                self.input.reserve(limits::READ_CHUNK_BYTES_MIN);
            }
            tokio::select! {
                read = reader.read_buf(&mut self.input), if can_read => {
                    self.input_open = matches!(read, Ok(n) if n > 0);
                }
                outcome = head_reply(&mut self.replies), if waiting => {
                    self.replies[0] = Pending::Ready(engine_reply(outcome));
                }
            }
        }
    }

    fn can_read(&self) -> bool {
        self.input_open && !self.session.closing && self.replies.len() < limits::PIPELINE_DEPTH_MAX
    }

    /// Parses and dispatches the buffered commands, as many as the pipeline depth allows;
    /// returns whether it stopped at that depth (so buffered commands may remain).
    fn dispatch_buffered(&mut self) -> bool {
        while self.can_read() {
            let pending = match self.parser.parse(&mut self.input) {
                Ok(Some(args)) => {
                    let behind_write = self.replies.iter().any(|p| matches!(p, Pending::Write(_)));
                    self.session.dispatch(args, behind_write)
                }
                Ok(None) => return false,
                Err(e) => {
                    self.session.shared.stats.protocol_errors.fetch_add(1, Ordering::Relaxed);
                    self.session.closing = true;
                    ready(Reply::error(format!("ERR Protocol error: {e}")))
                }
            };
            self.replies.push_back(pending);
        }
        self.replies.len() >= limits::PIPELINE_DEPTH_MAX
    }

    /// Writes the replies at the head that are known; returns whether it wrote any.
    async fn write_ready(&mut self, out: &mut BufWriter<WriteHalf<'_>>) -> io::Result<bool> {
        let mut wrote = false;
        while let Some(head) = self.replies.front_mut() {
            let bytes = match head {
                Pending::Ready(bytes) => std::mem::take(bytes),
                Pending::Engine(rx) | Pending::Write(rx) => match rx.try_recv() {
                    Ok(outcome) => engine_reply(Ok(outcome)),
                    Err(oneshot::error::TryRecvError::Empty) => break,
                    Err(oneshot::error::TryRecvError::Closed) => {
                        EngineError::Dropped.to_reply().to_bytes()
                    }
                },
            };
            out.write_all(&bytes).await?;
            self.replies.pop_front();
            wrote = true;
        }
        Ok(wrote)
    }
}

/// Waits for the engine's outcome of the reply at the head of `replies`.
async fn head_reply(
    replies: &mut VecDeque<Pending>,
) -> Result<Result<Bytes, EngineError>, oneshot::error::RecvError> {
    match replies.front_mut() {
        Some(Pending::Engine(rx) | Pending::Write(rx)) => rx.await,
        _ => unreachable!("head_reply is polled only while the head waits for the engine"),
    }
}

fn engine_reply(outcome: Result<Result<Bytes, EngineError>, oneshot::error::RecvError>) -> Bytes {
    match outcome {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(e)) => e.to_reply().to_bytes(),
        Err(_) => EngineError::Dropped.to_reply().to_bytes(),
    }
}

/// One connection's state as commands see it.
struct Session {
    shared: Arc<Shared>,
    id: u64,
    authenticated: bool,
    /// Set by QUIT and protocol errors: the connection reads no more and closes once its
    /// replies are written.
    closing: bool,
    name: Option<Bytes>,
}

impl Session {
    /// Checks and runs one command; the returned reply is the command's, in order. With
    /// `behind_write`, a read goes through the log like a write (see the module's doc).
    fn dispatch(&mut self, args: Command, behind_write: bool) -> Pending {
        assert!(!args.is_empty(), "the parser never yields an empty command");
        self.shared.stats.commands_processed.fetch_add(1, Ordering::Relaxed);
        let Some(spec) = lookup(&args[0]) else { return self.engine_command(&args) };
        if !spec.arity_ok(args.len()) {
            return ready(arity_error(spec.name));
        }
        let needs_auth = self.shared.config.requirepass.is_some() && !self.authenticated;
        if needs_auth && !spec.no_auth {
            return ready(Reply::error(ERR_NOAUTH));
        }
        match spec.handler {
            Handler::Session(handle) => ready(handle(self, &args)),
            Handler::Write(parse) => {
                let stamp_ms = (self.shared.config.clock)();
                match parse(&args, stamp_ms) {
                    Ok(op) => self.submit(Request::Write { stamp_ms, op }, true),
                    Err(reply) => ready(reply),
                }
            }
            Handler::Read(parse) => match parse(&args) {
                Ok(op) => self.submit(Request::Read(op), behind_write),
                Err(reply) => ready(reply),
            },
        }
    }

    /// A command the table does not know: the engine's own (`RSL.*`), or unknown.
    fn engine_command(&self, args: &[Bytes]) -> Pending {
        if !args[0].to_ascii_lowercase().starts_with(ENGINE_COMMAND_PREFIX) {
            return ready(unknown_command(args));
        }
        if self.shared.config.requirepass.is_some() && !self.authenticated {
            return ready(Reply::error(ERR_NOAUTH));
        }
        match self.shared.engine.command(args) {
            Some(reply) => Pending::Engine(reply),
            None => ready(unknown_command(args)),
        }
    }

    /// Hands a request to the engine: through the log if `logged` (every write, and a read
    /// behind one), else as a read.
    fn submit(&self, request: Request, logged: bool) -> Pending {
        let bytes = request.encode();
        if bytes.len() > limits::REQUEST_BYTES_MAX {
            return ready(Reply::error("ERR request too large"));
        }
        let engine = &self.shared.engine;
        assert!(logged || !request.is_write(), "a write always goes through the log");
        if logged {
            Pending::Write(engine.write(bytes))
        } else {
            Pending::Engine(engine.read(bytes))
        }
    }
}
