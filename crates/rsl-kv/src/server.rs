//! The RESP2 server: accepts client connections and answers their commands in order.
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
use crate::request::{ReadOp, Request, SetCondition, SetExpiry, WriteOp};
use crate::resp::{parse_i64, Command, Parser, ParserLimits, Reply};

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

/// How a command is carried out.
#[derive(Clone, Copy)]
enum Handler {
    /// Answered by the connection itself.
    Session(fn(&mut Session, &[Bytes]) -> Reply),
    /// Parsed into a write (given the stamp) and replicated.
    Write(fn(&[Bytes], u64) -> Result<WriteOp, Reply>),
    /// Parsed into a read and served locally.
    Read(fn(&[Bytes]) -> Result<ReadOp, Reply>),
}

/// One row of the command table.
#[derive(Clone, Copy)]
pub struct CommandSpec {
    /// The lower-case name.
    pub name: &'static str,
    /// Redis's arity: the exact argument count (name included) if positive, the minimum if
    /// negative.
    pub arity: i32,
    /// Whether the command is allowed before AUTH.
    pub no_auth: bool,
    handler: Handler,
}

impl fmt::Debug for CommandSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CommandSpec").field("name", &self.name).field("arity", &self.arity).finish()
    }
}

impl CommandSpec {
    fn arity_ok(&self, argc: usize) -> bool {
        let argc = argc as i64;
        let arity = i64::from(self.arity);
        if arity >= 0 {
            argc == arity
        } else {
            argc >= -arity
        }
    }

    /// Whether the command changes the replicated state.
    pub fn is_write(&self) -> bool {
        matches!(self.handler, Handler::Write(_))
    }
}

const fn session(
    name: &'static str,
    arity: i32,
    f: fn(&mut Session, &[Bytes]) -> Reply,
) -> CommandSpec {
    CommandSpec { name, arity, no_auth: false, handler: Handler::Session(f) }
}

const fn write(
    name: &'static str,
    arity: i32,
    f: fn(&[Bytes], u64) -> Result<WriteOp, Reply>,
) -> CommandSpec {
    CommandSpec { name, arity, no_auth: false, handler: Handler::Write(f) }
}

const fn read(
    name: &'static str,
    arity: i32,
    f: fn(&[Bytes]) -> Result<ReadOp, Reply>,
) -> CommandSpec {
    CommandSpec { name, arity, no_auth: false, handler: Handler::Read(f) }
}

const fn no_auth(spec: CommandSpec) -> CommandSpec {
    CommandSpec { no_auth: true, ..spec }
}

/// The one command table: every command the server knows, and how it is carried out.
pub static COMMANDS: &[CommandSpec] = &[
    no_auth(session("ping", -1, cmd_ping)),
    no_auth(session("auth", -2, cmd_auth)),
    no_auth(session("quit", -1, cmd_quit)),
    no_auth(session("hello", -1, cmd_hello)),
    session("echo", 2, cmd_echo),
    session("select", 2, cmd_select),
    session("info", -1, cmd_info),
    session("config", -2, cmd_config),
    session("command", -1, cmd_command),
    session("client", -2, cmd_client),
    write("set", -3, parse_set),
    write("setnx", 3, parse_setnx),
    write("setex", 4, parse_setex),
    write("psetex", 4, parse_setex),
    write("getset", 3, parse_getset),
    write("del", -2, parse_del),
    write("incr", 2, parse_incr),
    write("incrby", 3, parse_incrby),
    write("decr", 2, parse_decr),
    write("decrby", 3, parse_decrby),
    write("append", 3, parse_append),
    write("mset", -3, parse_mset),
    write("expire", 3, parse_expire),
    write("pexpire", 3, parse_expire),
    write("expireat", 3, parse_expire),
    write("pexpireat", 3, parse_expire),
    write("persist", 2, parse_persist),
    write("flushall", -1, parse_flush),
    write("flushdb", -1, parse_flush),
    read("get", 2, parse_get),
    read("exists", -2, parse_exists),
    read("strlen", 2, parse_strlen),
    read("mget", -2, parse_mget),
    read("dbsize", 1, parse_dbsize),
    read("ttl", 2, parse_ttl),
    read("pttl", 2, parse_ttl),
];

/// The table row for a command name, matched without regard to case.
pub fn lookup(name: &[u8]) -> Option<&'static CommandSpec> {
    COMMANDS.iter().find(|spec| spec.name.as_bytes().eq_ignore_ascii_case(name))
}

/// Redis's error for an unknown command, quoting the start of its arguments.
fn unknown_command(args: &[Bytes]) -> Reply {
    let name = String::from_utf8_lossy(&args[0]);
    let name: String = name.chars().take(128).collect();
    let mut quoted = String::new();
    for arg in &args[1..] {
        if quoted.len() >= limits::UNKNOWN_ARGS_BYTES_MAX {
            break;
        }
        let room = limits::UNKNOWN_ARGS_BYTES_MAX - quoted.len();
        let text = String::from_utf8_lossy(&arg[..arg.len().min(room)]).into_owned();
        quoted.push_str(&format!("'{text}' "));
    }
    Reply::error(format!("ERR unknown command '{name}', with args beginning with: {quoted}"))
}

fn arity_error(name: &str) -> Reply {
    Reply::error(format!("ERR wrong number of arguments for '{name}' command"))
}

fn not_integer() -> Reply {
    Reply::error(crate::machine::ERR_NOT_INTEGER)
}

fn int_arg(arg: &[u8]) -> Result<i64, Reply> {
    parse_i64(arg).ok_or_else(not_integer)
}

fn is(arg: &[u8], word: &str) -> bool {
    arg.eq_ignore_ascii_case(word.as_bytes())
}

// Connection commands.

fn cmd_ping(_: &mut Session, args: &[Bytes]) -> Reply {
    match args {
        [_] => Reply::Simple(Bytes::from_static(b"PONG")),
        [_, message] => Reply::Bulk(message.clone()),
        _ => arity_error("ping"),
    }
}

fn cmd_echo(_: &mut Session, args: &[Bytes]) -> Reply {
    Reply::Bulk(args[1].clone())
}

fn cmd_quit(session: &mut Session, _: &[Bytes]) -> Reply {
    session.closing = true;
    Reply::ok()
}

fn cmd_auth(session: &mut Session, args: &[Bytes]) -> Reply {
    let Some(password) = session.shared.config.requirepass.as_ref() else {
        return Reply::error(
            "ERR AUTH <password> called without any password configured for the default user. \
             Are you sure your configuration is correct?",
        );
    };
    let (user, given) = match args {
        [_, given] => (&b"default"[..], given),
        [_, user, given] => (&user[..], given),
        _ => return Reply::error(ERR_SYNTAX),
    };
    if user == b"default" && constant_time_eq(given, password.as_bytes()) {
        session.authenticated = true;
        Reply::ok()
    } else {
        Reply::error(ERR_WRONGPASS)
    }
}

/// HELLO [protover [AUTH user pass] [SETNAME name]]: only RESP2 is spoken; a client asking for
/// RESP3 gets Redis's NOPROTO error and falls back to RESP2.
fn cmd_hello(session: &mut Session, args: &[Bytes]) -> Reply {
    if let Some(version) = args.get(1) {
        match parse_i64(version) {
            Some(2) => {}
            Some(_) => {
                return Reply::error("NOPROTO sorry, this protocol version is not supported.")
            }
            None => return Reply::error("ERR Protocol version is not an integer or out of range"),
        }
    }
    let mut i = 2;
    while i < args.len() {
        if is(&args[i], "auth") && i + 2 < args.len() {
            let auth = [args[0].clone(), args[i + 1].clone(), args[i + 2].clone()];
            if let Reply::Error(e) = cmd_auth(session, &auth) {
                return Reply::Error(e);
            }
            i += 3;
        } else if is(&args[i], "setname") && i + 1 < args.len() {
            session.name = Some(args[i + 1].clone());
            i += 2;
        } else {
            let option = String::from_utf8_lossy(&args[i]);
            return Reply::error(format!("ERR Syntax error in HELLO option '{option}'"));
        }
    }
    if session.shared.config.requirepass.is_some() && !session.authenticated {
        return Reply::error(
            "NOAUTH HELLO must be called with the client already authenticated, otherwise the \
             HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and \
             select the RESP protocol version at the same time",
        );
    }
    let role = if session.shared.engine.is_primary() { "master" } else { "replica" };
    let text = |t: &str| Reply::Bulk(Bytes::copy_from_slice(t.as_bytes()));
    Reply::Array(vec![
        text("server"),
        text("redis"),
        text("version"),
        text(REDIS_VERSION),
        text("proto"),
        Reply::Integer(2),
        text("id"),
        Reply::Integer(session.id as i64),
        text("mode"),
        text("standalone"),
        text("role"),
        text(role),
        text("modules"),
        Reply::Array(Vec::new()),
    ])
}

/// Compares in constant time (for equal lengths), so timing does not leak the password.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    bool::from(a.ct_eq(b))
}

fn cmd_select(_: &mut Session, args: &[Bytes]) -> Reply {
    match parse_i64(&args[1]) {
        Some(0) => Reply::ok(),
        Some(_) => Reply::error("ERR DB index is out of range"),
        None => not_integer(),
    }
}

fn cmd_info(session: &mut Session, args: &[Bytes]) -> Reply {
    let shared = &session.shared;
    let sections = [
        (
            "server",
            format!(
                "# Server\r\nredis_version:{REDIS_VERSION}\r\nrsl_kv_version:{}\r\n\
                 redis_mode:standalone\r\narch_bits:64\r\nprocess_id:{}\r\ntcp_port:{}\r\n\
                 uptime_in_seconds:{}\r\n",
                env!("CARGO_PKG_VERSION"),
                std::process::id(),
                shared.port,
                shared.started.elapsed().as_secs(),
            ),
        ),
        (
            "clients",
            format!(
                "# Clients\r\nconnected_clients:{}\r\nmaxclients:{}\r\n",
                shared.clients.load(Ordering::Relaxed),
                limits::CLIENTS_MAX,
            ),
        ),
        (
            "stats",
            format!(
                "# Stats\r\ntotal_connections_received:{}\r\nrejected_connections:{}\r\n\
                 total_commands_processed:{}\r\nprotocol_errors:{}\r\n",
                shared.stats.connections_received.load(Ordering::Relaxed),
                shared.stats.connections_rejected.load(Ordering::Relaxed),
                shared.stats.commands_processed.load(Ordering::Relaxed),
                shared.stats.protocol_errors.load(Ordering::Relaxed),
            ),
        ),
        (
            "replication",
            format!(
                "# Replication\r\nrole:{}\r\nrsl_role:{}\r\n",
                if shared.engine.is_primary() { "master" } else { "slave" },
                if shared.engine.is_primary() { "primary" } else { "secondary" },
            ),
        ),
    ];
    let wanted = |title: &str| {
        args.len() == 1
            || args[1..].iter().any(|a| is(a, title) || is(a, "all") || is(a, "everything"))
    };
    let mut text: Vec<String> =
        sections.into_iter().filter(|(title, _)| wanted(title)).map(|(_, body)| body).collect();
    if args.len() == 1 || args[1..].iter().any(|a| is(a, "all") || is(a, "everything")) {
        text.push(shared.engine.info());
    }
    Reply::Bulk(Bytes::from(text.join("\r\n")))
}

/// The configuration values CONFIG GET reports (redis-benchmark asks for `save` and
/// `appendonly` at start).
fn config_values(session: &Session) -> Vec<(&'static str, String)> {
    vec![
        ("save", String::new()),
        ("appendonly", "no".into()),
        ("appendfsync", "everysec".into()),
        ("databases", "1".into()),
        ("maxmemory", "0".into()),
        ("maxclients", limits::CLIENTS_MAX.to_string()),
        ("port", session.shared.port.to_string()),
        ("timeout", "0".into()),
        ("proto-max-bulk-len", limits::BULK_BYTES_MAX.to_string()),
    ]
}

fn cmd_config(session: &mut Session, args: &[Bytes]) -> Reply {
    let sub = &args[1];
    if is(sub, "get") {
        if args.len() < 3 {
            return arity_error("config|get");
        }
        let values = config_values(session);
        let mut items = Vec::new();
        for (key, value) in values {
            if args[2..]
                .iter()
                .any(|pattern| glob_match(&pattern.to_ascii_lowercase(), key.as_bytes()))
            {
                items.push(Reply::bulk(key.as_bytes()));
                items.push(Reply::Bulk(Bytes::from(value)));
            }
        }
        return Reply::Array(items);
    }
    if is(sub, "resetstat") || is(sub, "rewrite") {
        return Reply::ok();
    }
    if is(sub, "set") {
        return Reply::error("ERR CONFIG SET is not supported by rsl-kv");
    }
    unknown_subcommand(sub, "CONFIG")
}

fn unknown_subcommand(sub: &[u8], command: &str) -> Reply {
    let sub = String::from_utf8_lossy(sub);
    Reply::error(format!("ERR unknown subcommand '{sub}'. Try {command} HELP."))
}

/// Matches Redis glob patterns with `*` and `?` (enough for CONFIG GET).
fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    match (pattern.split_first(), text.split_first()) {
        (None, None) => true,
        (Some((b'*', rest)), _) => {
            glob_match(rest, text) || (!text.is_empty() && glob_match(pattern, &text[1..]))
        }
        (Some((b'?', rest)), Some((_, text_rest))) => glob_match(rest, text_rest),
        (Some((p, rest)), Some((t, text_rest))) if p == t => glob_match(rest, text_rest),
        _ => false,
    }
}

fn cmd_command(_: &mut Session, args: &[Bytes]) -> Reply {
    let Some(sub) = args.get(1) else {
        return Reply::Array(COMMANDS.iter().map(command_info).collect());
    };
    if is(sub, "count") {
        return Reply::Integer(COMMANDS.len() as i64);
    }
    if is(sub, "docs") {
        // No documentation: redis-cli then falls back to its built-in help.
        return Reply::Array(Vec::new());
    }
    if is(sub, "info") {
        let infos =
            args[2..].iter().map(|name| lookup(name).map_or(Reply::NullArray, command_info));
        return Reply::Array(infos.collect());
    }
    unknown_subcommand(sub, "COMMAND")
}

/// A command's COMMAND INFO entry: name, arity, flags, first key, last key, key step.
fn command_info(spec: &CommandSpec) -> Reply {
    let flag = |f: &'static str| Reply::Simple(Bytes::from_static(f.as_bytes()));
    let (flags, keys) = match spec.handler {
        Handler::Write(_) => (vec![flag("write")], (1, if spec.arity < 0 { -1 } else { 1 }, 1)),
        Handler::Read(_) if spec.name == "dbsize" => (vec![flag("readonly")], (0, 0, 0)),
        Handler::Read(_) => (vec![flag("readonly")], (1, if spec.arity < 0 { -1 } else { 1 }, 1)),
        Handler::Session(_) => (vec![flag("fast")], (0, 0, 0)),
    };
    let keys = if matches!(spec.name, "flushall" | "flushdb") { (0, 0, 0) } else { keys };
    let keys = if spec.name == "mset" { (1, -1, 2) } else { keys };
    Reply::Array(vec![
        Reply::bulk(spec.name.as_bytes()),
        Reply::Integer(spec.arity.into()),
        Reply::Array(flags),
        Reply::Integer(keys.0),
        Reply::Integer(keys.1),
        Reply::Integer(keys.2),
    ])
}

fn cmd_client(session: &mut Session, args: &[Bytes]) -> Reply {
    let sub = &args[1];
    if is(sub, "setname") {
        let [_, _, name] = args else { return arity_error("client|setname") };
        if name.iter().any(|b| *b <= b' ' || *b > b'~') {
            return Reply::error(
                "ERR Client names cannot contain spaces, newlines or special characters.",
            );
        }
        session.name = (!name.is_empty()).then(|| name.clone());
        return Reply::ok();
    }
    if is(sub, "getname") {
        return session.name.clone().map_or(Reply::Null, Reply::Bulk);
    }
    if is(sub, "id") {
        return Reply::Integer(session.id as i64);
    }
    if is(sub, "info") || is(sub, "list") {
        let name = session.name.as_ref().map(|n| String::from_utf8_lossy(n).into_owned());
        let line = format!("id={} name={} db=0\n", session.id, name.unwrap_or_default());
        return Reply::Bulk(Bytes::from(line));
    }
    if ["setinfo", "reply", "no-evict", "no-touch", "tracking"].iter().any(|s| is(sub, s)) {
        return Reply::ok();
    }
    unknown_subcommand(sub, "CLIENT")
}

// Data commands: parse arguments into requests. Everything the machine would reject the same
// way on every replica is left to it; only argument syntax is checked here.

fn parse_set(args: &[Bytes], stamp_ms: u64) -> Result<WriteOp, Reply> {
    let mut condition = SetCondition::Always;
    let mut expiry = SetExpiry::Clear;
    let mut expiry_given = false;
    let mut get = false;
    let mut i = 3;
    while i < args.len() {
        let option = &args[i];
        if is(option, "nx") || is(option, "xx") {
            let wanted =
                if is(option, "nx") { SetCondition::IfAbsent } else { SetCondition::IfPresent };
            if condition != SetCondition::Always && condition != wanted {
                return Err(Reply::error(ERR_SYNTAX));
            }
            condition = wanted;
        } else if is(option, "get") {
            get = true;
        } else if is(option, "keepttl") {
            if expiry_given {
                return Err(Reply::error(ERR_SYNTAX));
            }
            expiry = SetExpiry::Keep;
            expiry_given = true;
        } else if ["ex", "px", "exat", "pxat"].iter().any(|w| is(option, w)) {
            let Some(amount) = args.get(i + 1) else { return Err(Reply::error(ERR_SYNTAX)) };
            if expiry_given {
                return Err(Reply::error(ERR_SYNTAX));
            }
            expiry = SetExpiry::At(expire_at_ms(option, amount, stamp_ms)?);
            expiry_given = true;
            i += 1;
        } else {
            return Err(Reply::error(ERR_SYNTAX));
        }
        i += 1;
    }
    Ok(WriteOp::Set { key: args[1].clone(), value: args[2].clone(), condition, expiry, get })
}

/// The absolute deadline of an `EX`/`PX`/`EXAT`/`PXAT` option, checked as Redis does.
fn expire_at_ms(unit: &[u8], amount: &[u8], stamp_ms: u64) -> Result<u64, Reply> {
    let amount = int_arg(amount)?;
    let seconds = is(unit, "ex") || is(unit, "exat");
    let relative = is(unit, "ex") || is(unit, "px");
    positive_deadline("set", amount, seconds, relative, stamp_ms)
}

/// A deadline from a strictly positive amount, or Redis's "invalid expire time" error.
fn positive_deadline(
    command: &str,
    amount: i64,
    seconds: bool,
    relative: bool,
    stamp_ms: u64,
) -> Result<u64, Reply> {
    let invalid = || Reply::error(format!("ERR invalid expire time in '{command}' command"));
    if amount <= 0 {
        return Err(invalid());
    }
    deadline_ms(amount, seconds, relative, stamp_ms).ok_or_else(invalid)
}

/// `amount` seconds or milliseconds, from `stamp_ms` if `relative`, as Unix milliseconds;
/// `None` if it does not fit in an `i64`. A deadline before the epoch becomes 0 (the past).
fn deadline_ms(amount: i64, seconds: bool, relative: bool, stamp_ms: u64) -> Option<u64> {
    let ms = if seconds { amount.checked_mul(1000)? } else { amount };
    let base = if relative { i64::try_from(stamp_ms).ok()? } else { 0 };
    let at = ms.checked_add(base)?;
    Some(u64::try_from(at).unwrap_or(0))
}

fn parse_setnx(args: &[Bytes], _: u64) -> Result<WriteOp, Reply> {
    Ok(WriteOp::SetNx { key: args[1].clone(), value: args[2].clone() })
}

fn parse_setex(args: &[Bytes], stamp_ms: u64) -> Result<WriteOp, Reply> {
    let seconds = is(&args[0], "setex");
    let command = if seconds { "setex" } else { "psetex" };
    let at = positive_deadline(command, int_arg(&args[2])?, seconds, true, stamp_ms)?;
    Ok(WriteOp::Set {
        key: args[1].clone(),
        value: args[3].clone(),
        condition: SetCondition::Always,
        expiry: SetExpiry::At(at),
        get: false,
    })
}

/// EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT: any integer; one in the past deletes the key.
fn parse_expire(args: &[Bytes], stamp_ms: u64) -> Result<WriteOp, Reply> {
    let name = args[0].to_ascii_lowercase();
    let seconds = name == b"expire" || name == b"expireat";
    let relative = name == b"expire" || name == b"pexpire";
    let amount = int_arg(&args[2])?;
    let Some(at_ms) = deadline_ms(amount, seconds, relative, stamp_ms) else {
        let name = String::from_utf8_lossy(&name);
        return Err(Reply::error(format!("ERR invalid expire time in '{name}' command")));
    };
    Ok(WriteOp::Expire { key: args[1].clone(), at_ms })
}

fn parse_persist(args: &[Bytes], _: u64) -> Result<WriteOp, Reply> {
    Ok(WriteOp::Persist { key: args[1].clone() })
}

fn parse_ttl(args: &[Bytes]) -> Result<ReadOp, Reply> {
    Ok(ReadOp::Ttl { key: args[1].clone(), millis: is(&args[0], "pttl") })
}

fn parse_getset(args: &[Bytes], _: u64) -> Result<WriteOp, Reply> {
    Ok(WriteOp::GetSet { key: args[1].clone(), value: args[2].clone() })
}

fn parse_del(args: &[Bytes], _: u64) -> Result<WriteOp, Reply> {
    Ok(WriteOp::Del { keys: args[1..].to_vec() })
}

fn parse_incr(args: &[Bytes], _: u64) -> Result<WriteOp, Reply> {
    Ok(WriteOp::IncrBy { key: args[1].clone(), delta: 1 })
}

fn parse_decr(args: &[Bytes], _: u64) -> Result<WriteOp, Reply> {
    Ok(WriteOp::IncrBy { key: args[1].clone(), delta: -1 })
}

fn parse_incrby(args: &[Bytes], _: u64) -> Result<WriteOp, Reply> {
    Ok(WriteOp::IncrBy { key: args[1].clone(), delta: int_arg(&args[2])? })
}

fn parse_decrby(args: &[Bytes], _: u64) -> Result<WriteOp, Reply> {
    let delta = int_arg(&args[2])?.checked_neg();
    let delta = delta.ok_or_else(|| Reply::error("ERR decrement would overflow"))?;
    Ok(WriteOp::IncrBy { key: args[1].clone(), delta })
}

fn parse_append(args: &[Bytes], _: u64) -> Result<WriteOp, Reply> {
    Ok(WriteOp::Append { key: args[1].clone(), value: args[2].clone() })
}

fn parse_mset(args: &[Bytes], _: u64) -> Result<WriteOp, Reply> {
    if args.len().is_multiple_of(2) {
        return Err(arity_error("mset"));
    }
    let pairs = args[1..].chunks_exact(2).map(|p| (p[0].clone(), p[1].clone())).collect();
    Ok(WriteOp::MSet { pairs })
}

fn parse_flush(args: &[Bytes], _: u64) -> Result<WriteOp, Reply> {
    match args {
        [_] => Ok(WriteOp::FlushAll),
        [_, mode] if is(mode, "sync") || is(mode, "async") => Ok(WriteOp::FlushAll),
        _ => Err(Reply::error(ERR_SYNTAX)),
    }
}

fn parse_get(args: &[Bytes]) -> Result<ReadOp, Reply> {
    Ok(ReadOp::Get { key: args[1].clone() })
}

fn parse_exists(args: &[Bytes]) -> Result<ReadOp, Reply> {
    Ok(ReadOp::Exists { keys: args[1..].to_vec() })
}

fn parse_strlen(args: &[Bytes]) -> Result<ReadOp, Reply> {
    Ok(ReadOp::Strlen { key: args[1].clone() })
}

fn parse_mget(args: &[Bytes]) -> Result<ReadOp, Reply> {
    Ok(ReadOp::MGet { keys: args[1..].to_vec() })
}

fn parse_dbsize(_: &[Bytes]) -> Result<ReadOp, Reply> {
    Ok(ReadOp::DbSize)
}
