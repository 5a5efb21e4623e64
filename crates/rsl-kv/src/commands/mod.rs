//! The data commands: one table ([`COMMANDS`]) of every command the state machine executes,
//! with Redis's arity, flags and key positions, and the functions that run them.
//!
//! A read command runs against a [`View`] (the keyspace as of a moment, `now_ms`); a write
//! command runs against a [`Ctx`] (the keyspace it changes, after the request's clock
//! advance). Both get the command's arguments, name first, already checked for arity, and
//! answer one [`Reply`]; errors are replies too (`Err` is only for `?`). Every function is
//! deterministic: it reads no clock (time is `now_ms`, from the request's stamp), no
//! randomness but [`Db::random`], and iterates only ordered maps. The same functions serve a
//! single command, the commands of a transaction and the calls of a script.

use std::sync::LazyLock;

use bytes::Bytes;

use crate::db::Db;
use crate::hub::Hub;
use crate::resp::{parse_i64, Proto, Reply};
use crate::value::{Kind, Value, ZSet};
use imbl::{OrdMap, OrdSet, Vector};

mod bits;
mod geo;
mod geo_sort;
mod hashes;
mod hll;
pub(crate) mod keys;
pub(crate) mod lists;
pub mod scripting;
mod sets;
mod stream_admin;
mod stream_groups;
pub(crate) mod streams;
mod strings;
mod zalgebra;
mod zsets;

/// Redis's error for a value of the wrong type.
pub const ERR_WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";
/// Redis's error for a malformed integer argument or value.
pub const ERR_NOT_INTEGER: &str = "ERR value is not an integer or out of range";
/// Redis's error for a malformed float argument or value.
pub const ERR_NOT_FLOAT: &str = "ERR value is not a valid float";
/// Redis's error for malformed options.
pub const ERR_SYNTAX: &str = "ERR syntax error";
/// Redis's error for an index past a list's end.
pub const ERR_NO_SUCH_KEY: &str = "ERR no such key";
/// Redis's error for an INCR whose result does not fit in an `i64`.
pub const ERR_OVERFLOW: &str = "ERR increment or decrement would overflow";
/// The error for a value grown past [`crate::limits::VALUE_BYTES_MAX`].
pub const ERR_TOO_BIG: &str = "ERR string exceeds maximum allowed size (proto-max-bulk-len)";

/// A command's outcome; `Err` carries an error reply, so that `?` can end a command early.
pub type CmdResult = Result<Reply, Reply>;

/// The keyspace as a read command sees it: keys whose deadline is before `now_ms` are gone.
#[derive(Debug, Clone, Copy)]
pub struct View<'a> {
    /// The keyspace.
    pub db: &'a Db,
    /// The moment of the read.
    pub now_ms: u64,
    /// The protocol of the reply (some replies differ in shape).
    pub proto: Proto,
}

impl<'a> View<'a> {
    /// The live value at `key`.
    pub fn get(&self, key: &[u8]) -> Option<&'a Value> {
        self.db.live(key, self.now_ms).map(|e| &e.value)
    }

    /// The live value at `key` if it is of `kind`, or WRONGTYPE.
    pub fn of(&self, key: &[u8], kind: Kind) -> Result<Option<&'a Value>, Reply> {
        match self.get(key) {
            Some(v) if v.kind() != kind => Err(wrongtype()),
            other => Ok(other),
        }
    }

    /// The live hash at `key`, or WRONGTYPE.
    pub fn hash(&self, key: &[u8]) -> Result<Option<&'a OrdMap<Bytes, Bytes>>, Reply> {
        Ok(self.of(key, Kind::Hash)?.map(|v| match v {
            Value::Hash(h) => h,
            _ => unreachable!("checked kind"),
        }))
    }

    /// The live list at `key`, or WRONGTYPE.
    pub fn list(&self, key: &[u8]) -> Result<Option<&'a Vector<Bytes>>, Reply> {
        Ok(self.of(key, Kind::List)?.map(|v| match v {
            Value::List(l) => &**l,
            _ => unreachable!("checked kind"),
        }))
    }

    /// The live set at `key`, or WRONGTYPE.
    pub fn set(&self, key: &[u8]) -> Result<Option<&'a OrdSet<Bytes>>, Reply> {
        Ok(self.of(key, Kind::Set)?.map(|v| match v {
            Value::Set(s) => s,
            _ => unreachable!("checked kind"),
        }))
    }

    /// The live sorted set at `key`, or WRONGTYPE.
    pub fn zset(&self, key: &[u8]) -> Result<Option<&'a ZSet>, Reply> {
        Ok(self.of(key, Kind::ZSet)?.map(|v| match v {
            Value::ZSet(z) => &**z,
            _ => unreachable!("checked kind"),
        }))
    }

    /// The live string at `key`, or WRONGTYPE.
    pub fn string(&self, key: &[u8]) -> Result<Option<&'a Bytes>, Reply> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Str(s)) => Ok(Some(s)),
            Some(_) => Err(wrongtype()),
        }
    }
}

/// What a write command works with.
#[derive(Debug)]
pub struct Ctx<'a> {
    /// The keyspace, with its clock advanced to the request's stamp.
    pub db: &'a mut Db,
    /// The protocol of the reply.
    pub proto: Proto,
    /// The replica's hub, for PUBLISH and for waking blocked pops.
    pub hub: &'a Hub,
    /// The scripting engine, created on the first script.
    pub scripts: &'a mut scripting::Scripting,
    /// Whether the command runs inside a script (some commands are refused there).
    pub in_script: bool,
}

impl Ctx<'_> {
    /// The keyspace as a read sees it at this request's moment.
    pub fn view(&self) -> View<'_> {
        View { db: self.db, now_ms: self.db.now_ms, proto: self.proto }
    }

    /// The request's moment (the machine's clock after this request's advance).
    pub fn now_ms(&self) -> u64 {
        self.db.now_ms
    }

    /// The value at `key` to change in place, checked to be of `kind`: WRONGTYPE if not, `None`
    /// if absent (created empty instead if `create`). The caller must call
    /// [`Db::remove_if_empty`] once done, since Redis never keeps an empty collection.
    pub fn value_mut(
        &mut self,
        key: &Bytes,
        kind: Kind,
        create: bool,
    ) -> Result<Option<&mut Value>, Reply> {
        match self.db.keys.get(&key[..]).map(|e| e.value.kind()) {
            Some(k) if k != kind => return Err(wrongtype()),
            None if !create => return Ok(None),
            None => self.db.create(key.clone(), Value::empty(kind)),
            Some(_) => {}
        }
        Ok(self.db.entry_mut(key).map(|e| &mut e.value))
    }

    /// Tells connections blocked on `key` that it may have elements now.
    pub fn ready(&self, key: &[u8]) {
        if self.hub.has_waiters() {
            self.hub.key_ready(key);
        }
    }
}

/// How a command runs.
#[derive(Debug, Clone, Copy)]
pub enum Run {
    /// A read: against a view.
    Read(fn(&View<'_>, &[Bytes]) -> CmdResult),
    /// A write: replicated, against the keyspace.
    Write(fn(&mut Ctx<'_>, &[Bytes]) -> CmdResult),
}

/// The command may block the client until a key is ready (BLPOP...); its last argument is
/// its timeout.
pub const FLAG_BLOCKING: u16 = 1;
/// A script may not call it.
pub const FLAG_NOSCRIPT: u16 = 2;
/// Cheap (COMMAND INFO's `fast`).
pub const FLAG_FAST: u16 = 4;
/// The command blocks only with its BLOCK option (XREAD, XREADGROUP), which the server
/// serves; the machine answers it without blocking.
pub const FLAG_BLOCK_OPTION: u16 = 8;
/// Its keys are found by parsing its arguments (COMMAND INFO's `movablekeys`; its key
/// positions are then (0, 0, 0), as Redis reports them).
pub const FLAG_MOVABLEKEYS: u16 = 16;

/// One row of the table.
#[derive(Clone, Copy)]
pub struct CommandDef {
    /// The lower-case name.
    pub name: &'static str,
    /// Redis's arity: the exact argument count (name included) if positive, the minimum if
    /// negative.
    pub arity: i32,
    /// `FLAG_*` bits.
    pub flags: u16,
    /// The first key's position, the last key's (negative: from the end), and the step
    /// between keys, as COMMAND INFO reports them; (0, 0, 0) for none.
    pub keys: (i8, i8, i8),
    /// How it runs.
    pub run: Run,
}

impl std::fmt::Debug for CommandDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommandDef").field("name", &self.name).field("arity", &self.arity).finish()
    }
}

impl CommandDef {
    /// Whether `argc` arguments (name included) satisfy the arity.
    pub fn arity_ok(&self, argc: usize) -> bool {
        arity_ok(self.arity, argc)
    }

    /// Whether the command changes the replicated state.
    pub fn is_write(&self) -> bool {
        matches!(self.run, Run::Write(_))
    }

    /// Whether a `FLAG_*` bit is set.
    pub fn has(&self, flag: u16) -> bool {
        self.flags & flag != 0
    }
}

/// Whether `argc` satisfies a Redis arity.
pub fn arity_ok(arity: i32, argc: usize) -> bool {
    let argc = argc as i64;
    let arity = i64::from(arity);
    if arity >= 0 {
        argc == arity
    } else {
        argc >= -arity
    }
}

pub(crate) const fn read(
    name: &'static str,
    arity: i32,
    keys: (i8, i8, i8),
    f: fn(&View<'_>, &[Bytes]) -> CmdResult,
) -> CommandDef {
    CommandDef { name, arity, flags: 0, keys, run: Run::Read(f) }
}

pub(crate) const fn write(
    name: &'static str,
    arity: i32,
    keys: (i8, i8, i8),
    f: fn(&mut Ctx<'_>, &[Bytes]) -> CmdResult,
) -> CommandDef {
    CommandDef { name, arity, flags: 0, keys, run: Run::Write(f) }
}

pub(crate) const fn flags(def: CommandDef, flags: u16) -> CommandDef {
    CommandDef { flags: def.flags | flags, ..def }
}

/// The key positions of a command with one key, of one with every argument a key, and of one
/// with none.
pub(crate) const K1: (i8, i8, i8) = (1, 1, 1);
pub(crate) const KALL: (i8, i8, i8) = (1, -1, 1);
pub(crate) const K0: (i8, i8, i8) = (0, 0, 0);

/// Every data command the machine executes.
pub static COMMANDS: LazyLock<Vec<CommandDef>> = LazyLock::new(|| {
    let mut all = Vec::new();
    for group in [
        strings::COMMANDS,
        bits::COMMANDS,
        keys::COMMANDS,
        hashes::COMMANDS,
        lists::COMMANDS,
        sets::COMMANDS,
        zsets::COMMANDS,
        zalgebra::COMMANDS,
        geo::COMMANDS,
        hll::COMMANDS,
        streams::COMMANDS,
        stream_groups::COMMANDS,
        stream_admin::COMMANDS,
        scripting::COMMANDS,
    ] {
        all.extend_from_slice(group);
    }
    all
});

/// The table's rows by name. Looked up for every command, twice (at the server and at the
/// machine): hashed with FxHash, not the standard library's SipHash, which was 2 % of a
/// pipelined GET's CPU (names are not chosen by an attacker to collide: the table is fixed).
static BY_NAME: LazyLock<rustc_hash::FxHashMap<&'static [u8], usize>> =
    LazyLock::new(|| COMMANDS.iter().enumerate().map(|(i, c)| (c.name.as_bytes(), i)).collect());

/// The table row for a command name, matched without regard to case.
pub fn lookup(name: &[u8]) -> Option<&'static CommandDef> {
    const NAME_BYTES_MAX: usize = 32;
    if name.len() > NAME_BYTES_MAX {
        return None;
    }
    let mut lower = [0u8; NAME_BYTES_MAX];
    for (dst, src) in lower.iter_mut().zip(name) {
        *dst = src.to_ascii_lowercase();
    }
    BY_NAME.get(&lower[..name.len()]).map(|&i| &COMMANDS[i])
}

/// Runs one command of a write request (or of a transaction or a script), checking that it
/// exists and its arity; a read command runs against the request's view.
pub fn execute(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Reply {
    assert!(!args.is_empty(), "a command has at least its name");
    let Some(def) = lookup(&args[0]) else { return unknown_command(args) };
    if !def.arity_ok(args.len()) {
        return arity_error(def.name);
    }
    let outcome = match def.run {
        Run::Read(f) => f(&ctx.view(), args),
        Run::Write(f) => f(ctx, args),
    };
    outcome.unwrap_or_else(|e| e)
}

/// Runs one read command against `view`; a write command is refused.
pub fn query(view: &View<'_>, args: &[Bytes]) -> Reply {
    assert!(!args.is_empty(), "a command has at least its name");
    let Some(def) = lookup(&args[0]) else { return unknown_command(args) };
    if !def.arity_ok(args.len()) {
        return arity_error(def.name);
    }
    match def.run {
        Run::Read(f) => f(view, args).unwrap_or_else(|e| e),
        Run::Write(_) => Reply::error("ERR a write command on the read path"),
    }
}

/// Redis's error for an unknown command, quoting the start of its arguments.
pub fn unknown_command(args: &[Bytes]) -> Reply {
    let name = String::from_utf8_lossy(&args[0]);
    let name: String = name.chars().take(128).collect();
    let mut quoted = String::new();
    for arg in &args[1..] {
        if quoted.len() >= crate::limits::UNKNOWN_ARGS_BYTES_MAX {
            break;
        }
        let room = crate::limits::UNKNOWN_ARGS_BYTES_MAX - quoted.len();
        let text = String::from_utf8_lossy(&arg[..arg.len().min(room)]).into_owned();
        quoted.push_str(&format!("'{text}' "));
    }
    Reply::error(format!("ERR unknown command '{name}', with args beginning with: {quoted}"))
}

/// Redis's error for a wrong argument count.
pub fn arity_error(name: &str) -> Reply {
    Reply::error(format!("ERR wrong number of arguments for '{name}' command"))
}

/// WRONGTYPE.
pub fn wrongtype() -> Reply {
    Reply::error(ERR_WRONGTYPE)
}

/// `ERR syntax error`.
pub fn syntax() -> Reply {
    Reply::error(ERR_SYNTAX)
}

/// Whether `arg` is `word`, ignoring ASCII case.
pub fn is(arg: &[u8], word: &str) -> bool {
    arg.eq_ignore_ascii_case(word.as_bytes())
}

/// An integer argument, or Redis's error.
pub fn int_arg(arg: &[u8]) -> Result<i64, Reply> {
    parse_i64(arg).ok_or_else(|| Reply::error(ERR_NOT_INTEGER))
}

/// An integer argument, or the error `error` (Redis's `getLongLongFromObjectOrReply` with a
/// message of its own).
pub fn parse_i64_or(arg: &[u8], error: &str) -> Result<i64, Reply> {
    parse_i64(arg).ok_or_else(|| Reply::error(error))
}

/// A non-negative integer argument, or `error`.
pub fn count_arg(arg: &[u8], error: &str) -> Result<usize, Reply> {
    match parse_i64(arg) {
        Some(n) if n >= 0 => Ok(n as usize),
        Some(_) => Err(Reply::error(error)),
        None => Err(Reply::error(ERR_NOT_INTEGER)),
    }
}

/// Parses a float as Redis's `string2ld`/`strtod` accept it (`inf`, `-inf`, exponents), never
/// NaN; `None` if malformed.
pub fn parse_float(arg: &[u8]) -> Option<f64> {
    let text = std::str::from_utf8(arg).ok()?;
    if text.is_empty()
        || text.starts_with(char::is_whitespace)
        || text.ends_with(char::is_whitespace)
    {
        return None;
    }
    let value = match text.to_ascii_lowercase().as_str() {
        "inf" | "+inf" | "infinity" | "+infinity" => f64::INFINITY,
        "-inf" | "-infinity" => f64::NEG_INFINITY,
        lower if lower.contains("inf") || lower.contains("nan") => return None,
        _ => text.parse::<f64>().ok()?,
    };
    (!value.is_nan()).then_some(value)
}

/// A float argument, or Redis's error.
pub fn float_arg(arg: &[u8]) -> Result<f64, Reply> {
    parse_float(arg).ok_or_else(|| Reply::error(ERR_NOT_FLOAT))
}

/// A bulk reply for an optional value.
pub fn bulk_or_null(value: Option<&Bytes>) -> Reply {
    value.map_or(Reply::Null, |v| Reply::Bulk(v.clone()))
}

/// Resolves Redis's inclusive `start`/`end` indexes (negative from the end) over `len`
/// elements; `None` for an empty range.
pub fn index_range(start: i64, end: i64, len: usize) -> Option<(usize, usize)> {
    let len = len as i64;
    let start = if start < 0 { (len + start).max(0) } else { start };
    let end = if end < 0 { len + end } else { end.min(len - 1) };
    (start <= end && start < len && end >= 0).then_some((start as usize, end as usize))
}

/// The deterministic choice for a read (RANDOMKEY, SRANDMEMBER, HRANDFIELD): a hash of the
/// read's moment and the key, so every replica answers the same at the same moment.
pub fn read_random(view: &View<'_>, salt: &[u8]) -> u64 {
    let mut h = view.now_ms ^ view.db.mods.rotate_left(32);
    for &b in salt {
        h = crate::db::mix(h ^ u64::from(b));
    }
    crate::db::mix(h)
}
