//! The connection commands' table: every command the server answers itself, its arity,
//! whether it needs AUTH, where it is allowed, and its handler. Data commands are in
//! [`crate::commands::COMMANDS`]; a name is looked up here first.

use std::fmt;

use bytes::Bytes;

use super::connection::*;
use super::pubsub::*;
use super::session::{cmd_discard, cmd_exec, cmd_multi, cmd_unwatch, cmd_watch, Session};
use super::Pending;
use crate::resp::Reply;

/// How a connection command is carried out.
#[derive(Clone, Copy)]
pub(super) enum Handler {
    /// Answered at once with one reply (such a command may be queued in MULTI).
    Sync(fn(&mut Session, &[Bytes]) -> Reply),
    /// Answered with a pending reply (from the engine, or several frames); `bool` says
    /// whether earlier writes of the connection are unanswered.
    Async(fn(&mut Session, &[Bytes], bool) -> Pending),
}

/// One row of the table.
#[derive(Clone, Copy)]
pub struct CommandSpec {
    /// The lower-case name.
    pub name: &'static str,
    /// Redis's arity: the exact argument count (name included) if positive, the minimum if
    /// negative.
    pub arity: i32,
    /// Whether the command is allowed before AUTH.
    pub no_auth: bool,
    /// Whether a RESP2 connection may send it while subscribed.
    pub in_subscribed: bool,
    /// Whether it runs at once inside MULTI rather than being queued.
    pub outside_multi: bool,
    pub(super) handler: Handler,
}

impl fmt::Debug for CommandSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CommandSpec").field("name", &self.name).field("arity", &self.arity).finish()
    }
}

const fn sync(
    name: &'static str,
    arity: i32,
    f: fn(&mut Session, &[Bytes]) -> Reply,
) -> CommandSpec {
    CommandSpec {
        name,
        arity,
        no_auth: false,
        in_subscribed: false,
        outside_multi: false,
        handler: Handler::Sync(f),
    }
}

const fn pending(
    name: &'static str,
    arity: i32,
    f: fn(&mut Session, &[Bytes], bool) -> Pending,
) -> CommandSpec {
    CommandSpec {
        name,
        arity,
        no_auth: false,
        in_subscribed: false,
        outside_multi: false,
        handler: Handler::Async(f),
    }
}

const fn no_auth(spec: CommandSpec) -> CommandSpec {
    CommandSpec { no_auth: true, ..spec }
}

const fn subscribed(spec: CommandSpec) -> CommandSpec {
    CommandSpec { in_subscribed: true, ..spec }
}

const fn immediate(spec: CommandSpec) -> CommandSpec {
    CommandSpec { outside_multi: true, ..spec }
}

/// Every command the server answers itself.
pub static COMMANDS: &[CommandSpec] = &[
    subscribed(no_auth(sync("ping", -1, cmd_ping))),
    no_auth(sync("auth", -2, cmd_auth)),
    immediate(subscribed(no_auth(sync("quit", -1, cmd_quit)))),
    immediate(subscribed(no_auth(sync("reset", 1, cmd_reset)))),
    no_auth(sync("hello", -1, cmd_hello)),
    sync("echo", 2, cmd_echo),
    sync("select", 2, cmd_select),
    pending("info", -1, cmd_info),
    sync("config", -2, cmd_config),
    sync("command", -1, cmd_command),
    sync("client", -2, cmd_client),
    sync("time", 1, cmd_time),
    sync("function", -2, cmd_function),
    sync("readonly", 1, cmd_ok),
    sync("readwrite", 1, cmd_ok),
    immediate(sync("multi", 1, cmd_multi)),
    immediate(pending("exec", 1, cmd_exec)),
    immediate(sync("discard", 1, cmd_discard)),
    immediate(pending("watch", -2, cmd_watch)),
    sync("unwatch", 1, cmd_unwatch),
    subscribed(pending("subscribe", -2, cmd_subscribe)),
    subscribed(pending("unsubscribe", -1, cmd_subscribe)),
    subscribed(pending("psubscribe", -2, cmd_subscribe)),
    subscribed(pending("punsubscribe", -1, cmd_subscribe)),
    sync("pubsub", -2, cmd_pubsub),
];

/// The table row for a command name, matched without regard to case.
pub fn lookup(name: &[u8]) -> Option<&'static CommandSpec> {
    COMMANDS.iter().find(|spec| spec.name.as_bytes().eq_ignore_ascii_case(name))
}

/// Whether `arg` is `word`, ignoring ASCII case.
pub(super) fn is(arg: &[u8], word: &str) -> bool {
    arg.eq_ignore_ascii_case(word.as_bytes())
}
