//! One connection's state as commands see it, and the dispatch of each command: checks
//! (authentication, arity, the pub/sub context), MULTI's queue, EXEC and WATCH, and the
//! hand-off of data commands to the engine.
//!
//! A transaction is built here and executed by the machine as one request
//! ([`WriteOp::Exec`]): Redis's rules for errors while queueing apply (an unknown command, a
//! wrong arity or a refused command answers its error now and makes EXEC answer EXECABORT,
//! running nothing), while errors at EXEC (a WRONGTYPE, a syntax error in options) are each
//! command's own reply inside EXEC's array. Connection commands queued in a MULTI (PING,
//! ECHO, ...) are answered by the server at EXEC and their replies spliced into the machine's
//! array in their places. WATCH asks the machine for its modification count; EXEC carries it
//! with the watched keys, so the machine aborts (a null reply) the same way on every replica.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::clients::ClientInfo;
use super::table::{self, Handler};
use super::{blocking, ready, Pending, Shared, ENGINE_COMMAND_PREFIX, ERR_NOAUTH};
use crate::commands::{self, arity_error, unknown_command, CommandDef, FLAG_BLOCKING};
use crate::engine::{EngineError, EngineReply, Submitted};
use crate::hub::Message;
use crate::limits;
use crate::request::{Args, Request, Watch, WriteOp};
use crate::resp::{Command, Proto, Reply};

/// A transaction being queued.
#[derive(Debug, Default)]
pub(super) struct Multi {
    queued: Vec<Queued>,
    /// Set by an error while queueing: EXEC will answer EXECABORT.
    failed: bool,
}

#[derive(Debug)]
enum Queued {
    /// A data command, for the machine.
    Data(Args),
    /// A connection command, answered by the server at EXEC.
    Session(Args),
}

/// One connection's state.
pub(super) struct Session {
    pub(super) shared: Arc<Shared>,
    pub(super) id: u64,
    pub(super) info: Arc<ClientInfo>,
    pub(super) authenticated: bool,
    /// Set by QUIT and protocol errors: the connection reads no more and closes once its
    /// replies are written.
    pub(super) closing: bool,
    /// The protocol of the replies (HELLO).
    pub(super) proto: Proto,
    pub(super) multi: Option<Multi>,
    /// The watched keys and the point they were watched at.
    pub(super) watch: Option<Watch>,
    /// This connection's pub/sub queue, once it subscribed to something.
    pub(super) messages: Option<mpsc::Receiver<Message>>,
    pub(super) channels: BTreeSet<Bytes>,
    pub(super) patterns: BTreeSet<Bytes>,
    /// Data commands dispatched and not yet handed to the engine (each has a
    /// `Pending::Batched` in the connection's replies): the commands of one read go to the
    /// engine together ([`Session::flush_batch`]).
    batch: Vec<Submitted>,
    /// The engine's replies to the flushed batches, in order, for the connection to put in
    /// its `Pending::Batched` places.
    pub(super) flushed: std::collections::VecDeque<EngineReply>,
    /// The clock read once for the commands of one read ([`Session::now_ms`]), until
    /// [`Session::publish`].
    clock_ms: std::cell::Cell<Option<u64>>,
    /// Commands dispatched since the last [`Session::publish`], and the last one's name.
    uncounted: u64,
    last_command: &'static str,
}

impl Session {
    pub(super) fn new(shared: Arc<Shared>, id: u64, info: Arc<ClientInfo>) -> Session {
        Session {
            shared,
            id,
            info,
            authenticated: false,
            closing: false,
            proto: Proto::Resp2,
            multi: None,
            watch: None,
            messages: None,
            channels: BTreeSet::new(),
            patterns: BTreeSet::new(),
            batch: Vec::new(),
            flushed: std::collections::VecDeque::new(),
            clock_ms: std::cell::Cell::new(None),
            uncounted: 0,
            last_command: "",
        }
    }

    /// The server's clock, which stamps every request: read once for the commands of one
    /// read of the connection (they arrived together), as Redis reads it once per event loop
    /// iteration.
    pub(super) fn now_ms(&self) -> u64 {
        if let Some(now) = self.clock_ms.get() {
            return now;
        }
        let now = (self.shared.config.clock)();
        self.clock_ms.set(Some(now));
        now
    }

    /// Publishes what the commands dispatched since the last call change in what others see
    /// (the server's command count, the connection's last command and idle time), once for
    /// all of them, and forgets the clock read for them. Called after the commands of each
    /// read, and before a command that shows these figures.
    pub(super) fn publish(&mut self) {
        if self.uncounted > 0 {
            let shared = &self.shared;
            shared.stats.commands_processed.fetch_add(self.uncounted, Ordering::Relaxed);
            self.info.touch(self.last_command, self.now_ms());
            self.uncounted = 0;
        }
        self.clock_ms.set(None);
    }

    fn ready(&self, reply: Reply) -> Pending {
        ready(reply, self.proto)
    }

    /// Answers an error that, inside MULTI, also dooms the transaction (Redis's rule for
    /// errors while queueing).
    fn refuse(&mut self, reply: Reply) -> Pending {
        if let Some(multi) = self.multi.as_mut() {
            multi.failed = true;
        }
        self.ready(reply)
    }

    /// Whether the connection is in RESP2's subscribed context.
    pub(super) fn subscribed_resp2(&self) -> bool {
        self.proto == Proto::Resp2 && !(self.channels.is_empty() && self.patterns.is_empty())
    }

    /// Checks and runs one command; the returned reply is the command's, in order. With
    /// `behind_write`, a read goes through the log like a write (see the module's doc).
    pub(super) fn dispatch(&mut self, args: Command, behind_write: bool) -> Pending {
        assert!(!args.is_empty(), "the parser never yields an empty command");
        let spec = table::lookup(&args[0]);
        let data = if spec.is_none() { commands::lookup(&args[0]) } else { None };
        self.uncounted += 1;
        self.last_command = spec.map_or(data.map_or("", |d| d.name), |s| s.name);
        let (name, arity, no_auth) = match (spec, data) {
            (Some(spec), _) => (spec.name, spec.arity, spec.no_auth),
            (None, Some(def)) => (def.name, def.arity, false),
            (None, None) => return self.engine_command(&args),
        };
        if self.shared.config.requirepass.is_some() && !self.authenticated && !no_auth {
            return self.refuse(Reply::error(ERR_NOAUTH));
        }
        if !commands::arity_ok(arity, args.len()) {
            return self.refuse(arity_error(name));
        }
        if self.subscribed_resp2() && !spec.is_some_and(|s| s.in_subscribed) {
            return self.refuse(Reply::error(format!(
                "ERR Can't execute '{name}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"
            )));
        }
        if self.multi.is_some() && !spec.is_some_and(|s| s.outside_multi) {
            return self.queue(args, spec.map(|s| s.handler));
        }
        match (spec, data) {
            (Some(spec), _) => match spec.handler {
                Handler::Sync(f) => {
                    let reply = f(self, &args);
                    self.ready(reply)
                }
                Handler::Async(f) => f(self, &args, behind_write),
            },
            (None, Some(def)) => self.data_command(def, args, behind_write),
            (None, None) => unreachable!("handled above"),
        }
    }

    /// A data command outside MULTI: to the engine, blocking ones through the blocking loop.
    fn data_command(&mut self, def: &CommandDef, args: Command, behind_write: bool) -> Pending {
        let stamp_ms = self.now_ms();
        if def.has(FLAG_BLOCKING) {
            self.flush_batch();
            return blocking::start(self, args);
        }
        if def.has(commands::FLAG_BLOCK_OPTION) {
            self.flush_batch();
            if let Some(pending) = blocking::start_stream(self, &args) {
                return pending;
            }
        }
        if def.is_write() {
            self.submit(Request::command(stamp_ms, self.proto, args), true)
        } else {
            self.submit(Request::read(stamp_ms, self.proto, args), behind_write)
        }
    }

    /// A command in neither table: the engine's own (`RSL.*`), or unknown.
    fn engine_command(&mut self, args: &[Bytes]) -> Pending {
        let engine_name = args[0].to_ascii_lowercase().starts_with(ENGINE_COMMAND_PREFIX);
        if !engine_name || self.multi.is_some() {
            return self.refuse(unknown_command(args));
        }
        if self.shared.config.requirepass.is_some() && !self.authenticated {
            return self.ready(Reply::error(ERR_NOAUTH));
        }
        self.flush_batch();
        match self.shared.engine.command(args) {
            Some(reply) => Pending::Engine(reply),
            None => self.ready(unknown_command(args)),
        }
    }

    /// Adds a request to the batch handed to the engine once the commands read together are
    /// dispatched: through the log if `logged` (every write, and a read behind one), else as
    /// a read. Its place in the replies is a `Pending::Batched`.
    pub(super) fn submit(&mut self, request: Request, logged: bool) -> Pending {
        match self.encode_checked(request, logged) {
            Ok(request) => {
                self.batch.push(Submitted { request, logged });
                Pending::Batched { logged }
            }
            Err(reply) => self.ready(reply),
        }
    }

    /// Hands the batched requests to the engine, in order ([`crate::Engine::batch`]); their
    /// replies wait in `flushed`. Before anything else reaches the engine, so that requests
    /// keep the connection's order.
    pub(super) fn flush_batch(&mut self) {
        if !self.batch.is_empty() {
            let batch = std::mem::take(&mut self.batch);
            self.flushed.extend(self.shared.engine.batch(batch));
        }
    }

    /// Encodes a request; an error reply if it is too large.
    fn encode_checked(&self, request: Request, logged: bool) -> Result<Bytes, Reply> {
        assert!(logged || !request.is_write(), "a write always goes through the log");
        let bytes = request.encode();
        // A key or value too large for one request is refused here, naming the limit, and
        // never reaches the log.
        let (size, max) = (bytes.len(), self.shared.engine.request_bytes_max());
        if size > max.min(limits::REQUEST_BYTES_MAX) {
            return Err(
                EngineError::TooLarge { size, max: max.min(limits::REQUEST_BYTES_MAX) }.to_reply()
            );
        }
        Ok(bytes)
    }

    /// Hands a request to the engine now (after the batch so far); an error reply if it is
    /// too large.
    pub(super) fn submit_raw(
        &mut self,
        request: Request,
        logged: bool,
    ) -> Result<EngineReply, Reply> {
        let bytes = self.encode_checked(request, logged)?;
        self.flush_batch();
        let engine = &self.shared.engine;
        Ok(if logged { engine.write(bytes) } else { engine.read(bytes) })
    }

    /// Queues a command inside MULTI.
    fn queue(&mut self, args: Command, handler: Option<Handler>) -> Pending {
        let multi = self.multi.as_mut().expect("in MULTI");
        let queued = match handler {
            None => Queued::Data(args),
            Some(Handler::Sync(_)) => Queued::Session(args),
            Some(Handler::Async(_)) => {
                return self.refuse(Reply::error("ERR Command not allowed inside a transaction"))
            }
        };
        if multi.queued.len() >= limits::MULTI_QUEUED_MAX {
            return self.refuse(Reply::error("ERR too many commands queued in this transaction"));
        }
        multi.queued.push(queued);
        self.ready(Reply::simple("QUEUED"))
    }

    /// Turns an engine outcome into the bytes to write, finishing what a pending reply needs
    /// (a WATCH's point, a post-processed reply).
    pub(super) fn resolve(&mut self, pending: Pending, bytes: Bytes) -> Bytes {
        match pending {
            Pending::Post { post, proto, .. } => {
                post(super::parse_engine_bytes(&bytes)).to_bytes_in(proto)
            }
            Pending::Watch { keys, .. } => match super::parse_engine_bytes(&bytes) {
                Reply::Integer(since) => {
                    let since = since as u64;
                    let watch = self.watch.get_or_insert(Watch { since, keys: Vec::new() });
                    watch.since = watch.since.min(since);
                    watch.keys.extend(keys);
                    Reply::ok().to_bytes_in(self.proto)
                }
                _ => bytes,
            },
            _ => bytes,
        }
    }
}

// MULTI, EXEC, DISCARD, WATCH, UNWATCH.

pub(super) fn cmd_multi(session: &mut Session, _: &[Bytes]) -> Reply {
    if session.multi.is_some() {
        return Reply::error("ERR MULTI calls can not be nested");
    }
    session.multi = Some(Multi::default());
    Reply::ok()
}

pub(super) fn cmd_discard(session: &mut Session, _: &[Bytes]) -> Reply {
    if session.multi.take().is_none() {
        return Reply::error("ERR DISCARD without MULTI");
    }
    session.watch = None;
    Reply::ok()
}

pub(super) fn cmd_unwatch(session: &mut Session, _: &[Bytes]) -> Reply {
    session.watch = None;
    Reply::ok()
}

pub(super) fn cmd_watch(session: &mut Session, args: &[Bytes], behind_write: bool) -> Pending {
    if session.multi.is_some() {
        return session.ready(Reply::error("ERR WATCH inside MULTI is not allowed"));
    }
    let request =
        Request::read(session.now_ms(), Proto::Resp2, vec![Bytes::from_static(b"rsl.watchpoint")]);
    match session.submit_raw(request, behind_write) {
        Ok(reply) => Pending::Watch { reply, keys: args[1..].to_vec() },
        Err(reply) => session.ready(reply),
    }
}

pub(super) fn cmd_exec(session: &mut Session, _: &[Bytes], _: bool) -> Pending {
    let Some(multi) = session.multi.take() else {
        return session.ready(Reply::error("ERR EXEC without MULTI"));
    };
    let watch = session.watch.take();
    if multi.failed {
        return session
            .ready(Reply::error("EXECABORT Transaction discarded because of previous errors."));
    }
    // Connection commands run now; their replies take their places in the machine's array.
    let mut commands = Vec::new();
    let mut local: Vec<(usize, Reply)> = Vec::new();
    for (i, queued) in multi.queued.into_iter().enumerate() {
        match queued {
            Queued::Data(args) => commands.push(args),
            Queued::Session(args) => {
                let Some(Handler::Sync(f)) = table::lookup(&args[0]).map(|s| s.handler) else {
                    unreachable!("only synchronous connection commands are queued")
                };
                local.push((i, f(session, &args)));
            }
        }
    }
    let op = WriteOp::Exec { proto: session.proto, watch, commands };
    let request = Request::Write { stamp_ms: session.now_ms(), op };
    let reply = match session.submit_raw(request, true) {
        Ok(reply) => reply,
        Err(reply) => return session.ready(reply),
    };
    if local.is_empty() {
        return Pending::Write(reply);
    }
    let post = Box::new(move |machine: Reply| match machine {
        Reply::Array(items) => {
            let mut items = items.into_iter();
            let mut local = local.into_iter().peekable();
            let mut all = Vec::new();
            while local.peek().is_some() || items.len() > 0 {
                if local.peek().is_some_and(|(i, _)| *i == all.len()) {
                    all.push(local.next().expect("peeked").1);
                } else if let Some(item) = items.next() {
                    all.push(item);
                } else {
                    all.push(local.next().expect("peeked").1);
                }
            }
            Reply::Array(all)
        }
        other => other,
    });
    Pending::Post { reply, post, proto: session.proto, logged: true }
}
