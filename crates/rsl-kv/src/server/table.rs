//! The command table: every command the server knows, its arity, whether it needs AUTH, and
//! how it is carried out (answered by the connection, or parsed into a request for the engine).

use std::fmt;

use bytes::Bytes;

use super::connection::*;
use super::strings::*;
use super::Session;
use crate::limits;
use crate::request::{ReadOp, WriteOp};
use crate::resp::{parse_i64, Reply};

/// How a command is carried out.
#[derive(Clone, Copy)]
pub(super) enum Handler {
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
    pub(super) handler: Handler,
}

impl fmt::Debug for CommandSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CommandSpec").field("name", &self.name).field("arity", &self.arity).finish()
    }
}

impl CommandSpec {
    pub(super) fn arity_ok(&self, argc: usize) -> bool {
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
pub(super) fn unknown_command(args: &[Bytes]) -> Reply {
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

pub(super) fn arity_error(name: &str) -> Reply {
    Reply::error(format!("ERR wrong number of arguments for '{name}' command"))
}

pub(super) fn not_integer() -> Reply {
    Reply::error(crate::machine::ERR_NOT_INTEGER)
}

pub(super) fn int_arg(arg: &[u8]) -> Result<i64, Reply> {
    parse_i64(arg).ok_or_else(not_integer)
}

pub(super) fn is(arg: &[u8], word: &str) -> bool {
    arg.eq_ignore_ascii_case(word.as_bytes())
}
