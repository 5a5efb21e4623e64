//! Scripts: EVAL, EVALSHA (and their `_RO` forms) and SCRIPT LOAD|EXISTS|FLUSH|KILL, in Lua
//! 5.1 (vendored, through `mlua`), as Redis runs them.
//!
//! A script is a replicated write like any other: every replica runs it at the same point in
//! the log, so it must compute the same thing everywhere. Each call gets a fresh Lua state
//! with only the base, table, string and math libraries (no `os`, `io` or `debug`), with
//! `math.random` drawing from the replicated seed, a budget of
//! [`limits::SCRIPT_INSTRUCTIONS_MAX`] instructions (counted, so a runaway script stops at the
//! same instruction on every replica) and [`limits::SCRIPT_MEMORY_BYTES_MAX`] of memory; the
//! script sees time only through commands (TIME answers the request's moment). Scripts'
//! bodies are kept in the replicated keyspace ([`crate::db::Db::scripts`]), so EVALSHA works on
//! every replica, and after a restart. Inside a script, `redis.call` and `redis.pcall` run
//! commands with RESP2 conversions, as Redis does by default.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use mlua::{HookTriggers, Lua, LuaOptions, MultiValue, StdLib, Table, Value, VmState};
use sha1::{Digest, Sha1};

use super::{flags, is, write, CmdResult, CommandDef, Ctx, FLAG_MOVABLEKEYS, FLAG_NOSCRIPT, K0};
use crate::limits;
use crate::resp::{format_double, parse_i64, Proto, Reply};

pub(super) const COMMANDS: &[CommandDef] = &[
    flags(write("eval", -3, K0, eval), FLAG_NOSCRIPT | FLAG_MOVABLEKEYS),
    flags(write("evalsha", -3, K0, eval), FLAG_NOSCRIPT | FLAG_MOVABLEKEYS),
    flags(write("eval_ro", -3, K0, eval), FLAG_NOSCRIPT | FLAG_MOVABLEKEYS),
    flags(write("evalsha_ro", -3, K0, eval), FLAG_NOSCRIPT | FLAG_MOVABLEKEYS),
    flags(write("script", -2, K0, script), FLAG_NOSCRIPT),
];

/// The instructions between two checks of a script's budget.
const HOOK_INSTRUCTIONS: u32 = 1000;

/// State a replica keeps for scripts besides the replicated bodies: none, since each call
/// gets a fresh Lua state (so nothing a script leaves behind can differ between replicas).
#[derive(Debug, Default)]
pub struct Scripting {}

/// The lower-case hex SHA1 of a script, its name for EVALSHA.
pub fn sha1_hex(body: &[u8]) -> String {
    Sha1::digest(body).iter().map(|b| format!("{b:02x}")).collect()
}

fn script(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let sub = &args[1];
    match () {
        _ if is(sub, "load") && args.len() == 3 => {
            compile_check(&args[2])?;
            let sha = sha1_hex(&args[2]);
            ctx.db.scripts.insert(Bytes::from(sha.clone()), args[2].clone());
            Ok(Reply::text(sha))
        }
        _ if is(sub, "exists") && args.len() >= 3 => Ok(Reply::Array(
            args[2..]
                .iter()
                .map(|sha| {
                    Reply::Integer(i64::from(
                        ctx.db.scripts.contains_key(&sha.to_ascii_lowercase()[..]),
                    ))
                })
                .collect(),
        )),
        _ if is(sub, "flush") && args.len() <= 3 => {
            if args.len() == 3 && !is(&args[2], "async") && !is(&args[2], "sync") {
                return Err(super::syntax());
            }
            ctx.db.scripts = imbl::OrdMap::new();
            Ok(Reply::ok())
        }
        _ if is(sub, "kill") && args.len() == 2 => {
            Err(Reply::error("NOTBUSY No scripts in execution right now."))
        }
        _ => Err(super::keys::unknown_subcommand(sub, "SCRIPT")),
    }
}

/// Compiles `body` in a scratch state, to refuse a script that does not compile.
fn compile_check(body: &[u8]) -> Result<(), Reply> {
    let lua = new_state().map_err(|e| Reply::error(format!("ERR {e}")))?;
    lua.load(body).set_name("@user_script").into_function().map_err(compile_error)?;
    Ok(())
}

fn compile_error(e: mlua::Error) -> Reply {
    let text = match e {
        mlua::Error::SyntaxError { message, .. } => message,
        other => other.to_string(),
    };
    Reply::error(format!("ERR Error compiling script (new function): {}", first_line(&text)))
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or(text)
}

fn new_state() -> mlua::Result<Lua> {
    let lua = Lua::new_with(StdLib::TABLE | StdLib::STRING | StdLib::MATH, LuaOptions::default())?;
    lua.set_memory_limit(limits::SCRIPT_MEMORY_BYTES_MAX)?;
    let globals = lua.globals();
    for unsafe_name in [
        "loadfile",
        "dofile",
        "load",
        "loadstring",
        "getfenv",
        "setfenv",
        "collectgarbage",
        "newproxy",
        "gcinfo",
    ] {
        globals.raw_set(unsafe_name, Value::Nil)?;
    }
    Ok(lua)
}

fn eval(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let name = args[0].to_ascii_lowercase();
    let by_sha = name.starts_with(b"evalsha");
    let read_only = name.ends_with(b"_ro");
    let numkeys = parse_i64(&args[2]).ok_or_else(|| Reply::error(super::ERR_NOT_INTEGER))?;
    if numkeys < 0 {
        return Err(Reply::error("ERR Number of keys can't be negative"));
    }
    if numkeys as usize > args.len() - 3 {
        return Err(Reply::error("ERR Number of keys can't be greater than number of args"));
    }
    let (keys, argv) = args[3..].split_at(numkeys as usize);
    let body = if by_sha {
        let sha = args[1].to_ascii_lowercase();
        ctx.db
            .scripts
            .get(&sha[..])
            .cloned()
            .ok_or_else(|| Reply::error("NOSCRIPT No matching script. Please use EVAL."))?
    } else {
        args[1].clone()
    };
    let sha = sha1_hex(&body);
    if !by_sha {
        // Redis keeps every EVAL'd script, so EVALSHA finds it afterwards.
        compile_check(&body)?;
        ctx.db.scripts.insert(Bytes::from(sha.clone()), body.clone());
    }
    let seed = ctx.db.random();
    run(ctx, &body, &sha, keys, argv, read_only, seed)
}

/// Runs a script with a fresh Lua state.
fn run(
    ctx: &mut Ctx<'_>,
    body: &[u8],
    sha: &str,
    keys: &[Bytes],
    argv: &[Bytes],
    read_only: bool,
    seed: u64,
) -> CmdResult {
    let lua = new_state().map_err(|e| Reply::error(format!("ERR {e}")))?;
    let function =
        lua.load(body).set_name("@user_script").into_function().map_err(compile_error)?;
    let budget = Arc::new(AtomicU64::new(0));
    let spent = Arc::clone(&budget);
    lua.set_hook(HookTriggers::new().every_nth_instruction(HOOK_INSTRUCTIONS), move |_, _| {
        let total = spent.fetch_add(u64::from(HOOK_INSTRUCTIONS), Ordering::Relaxed);
        if total >= limits::SCRIPT_INSTRUCTIONS_MAX {
            return Err(mlua::Error::runtime("script exceeded its instruction budget"));
        }
        Ok(VmState::Continue)
    })
    .map_err(|e| Reply::error(format!("ERR {e}")))?;
    let mut scratch = Scripting::default();
    let inner = RefCell::new(Ctx {
        db: &mut *ctx.db,
        proto: Proto::Resp2,
        hub: ctx.hub,
        scripts: &mut scratch,
        in_script: true,
    });
    let outcome = lua.scope(|scope| {
        let globals = lua.globals();
        globals.raw_set("KEYS", string_table(&lua, keys)?)?;
        globals.raw_set("ARGV", string_table(&lua, argv)?)?;
        let redis = lua.create_table()?;
        let call = |raise: bool| {
            let inner = &inner;
            scope.create_function_mut(move |lua, values: MultiValue| {
                let args = command_args(values)?;
                let reply = call_command(&mut inner.borrow_mut(), &args, read_only);
                if raise {
                    if let Reply::Error(text) = &reply {
                        // Redis names the line of the failed call.
                        let line =
                            lua.inspect_stack(1, |d| d.current_line()).flatten().unwrap_or(0);
                        let text = String::from_utf8_lossy(text);
                        return Err(mlua::Error::external(format!("{text}\u{0}{line}")));
                    }
                }
                to_lua(lua, reply)
            })
        };
        redis.raw_set("call", call(true)?)?;
        redis.raw_set("pcall", call(false)?)?;
        install_helpers(&lua, &redis, seed)?;
        globals.raw_set("redis", redis)?;
        protect_globals(&lua)?;
        function.call::<Value>(())
    });
    match outcome {
        Ok(value) => Ok(from_lua(value)),
        Err(e) => Err(script_error(&e, sha)),
    }
}

/// The command a `redis.call` names, its arguments as bytes (numbers as Lua prints them).
fn command_args(values: MultiValue) -> mlua::Result<Vec<Bytes>> {
    let mut args = Vec::with_capacity(values.len());
    for value in values {
        match value {
            Value::String(s) => args.push(Bytes::copy_from_slice(&s.as_bytes())),
            Value::Integer(n) => args.push(Bytes::from(n.to_string())),
            Value::Number(n) => args.push(Bytes::from(lua_number(n))),
            _ => {
                return Err(mlua::Error::external(
                    "ERR Lua redis lib command arguments must be strings or integers",
                ))
            }
        }
    }
    if args.is_empty() {
        return Err(mlua::Error::external(
            "ERR Please specify at least one argument for this redis lib call",
        ));
    }
    Ok(args)
}

/// A Lua 5.1 number as `tostring` prints it (`%.14g`).
fn lua_number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        let text = format!("{n:.14e}");
        text.parse::<f64>().map_or(text, |v| format!("{v}"))
    }
}

fn call_command(ctx: &mut Ctx<'_>, args: &[Bytes], read_only: bool) -> Reply {
    let Some(def) = super::lookup(&args[0]) else {
        return Reply::error("ERR Unknown Redis command called from script");
    };
    if def.has(FLAG_NOSCRIPT)
        || def.has(super::FLAG_BLOCKING) && !is(&args[0], "blpop") && !is(&args[0], "brpop")
    {
        return Reply::error("ERR This Redis command is not allowed from script");
    }
    if read_only && def.is_write() {
        return Reply::error("ERR Write commands are not allowed from read-only scripts.");
    }
    super::execute(ctx, args)
}

fn string_table(lua: &Lua, items: &[Bytes]) -> mlua::Result<Table> {
    let table = lua.create_table_with_capacity(items.len(), 0)?;
    for (i, item) in items.iter().enumerate() {
        table.raw_set(i + 1, lua.create_string(item)?)?;
    }
    Ok(table)
}

/// redis.status_reply, redis.error_reply, redis.sha1hex, redis.log and its levels, and a
/// deterministic math.random.
fn install_helpers(lua: &Lua, redis: &Table, seed: u64) -> mlua::Result<()> {
    redis.raw_set(
        "status_reply",
        lua.create_function(|lua, text: mlua::LuaString| {
            let t = lua.create_table()?;
            t.raw_set("ok", text)?;
            Ok(t)
        })?,
    )?;
    redis.raw_set(
        "error_reply",
        lua.create_function(|lua, text: mlua::LuaString| {
            let t = lua.create_table()?;
            t.raw_set("err", text)?;
            Ok(t)
        })?,
    )?;
    redis.raw_set(
        "sha1hex",
        lua.create_function(|_, text: mlua::LuaString| Ok(sha1_hex(&text.as_bytes())))?,
    )?;
    redis.raw_set("log", lua.create_function(|_, _: MultiValue| Ok(()))?)?;
    redis.raw_set("setresp", lua.create_function(|_, _: MultiValue| Ok(()))?)?;
    redis.raw_set("set_repl", lua.create_function(|_, _: MultiValue| Ok(()))?)?;
    redis.raw_set("replicate_commands", lua.create_function(|_, ()| Ok(true))?)?;
    for (name, level) in
        [("LOG_DEBUG", 0), ("LOG_VERBOSE", 1), ("LOG_NOTICE", 2), ("LOG_WARNING", 3)]
    {
        redis.raw_set(name, level)?;
    }
    for (name, level) in
        [("REPL_NONE", 0), ("REPL_AOF", 1), ("REPL_SLAVE", 2), ("REPL_REPLICA", 2), ("REPL_ALL", 3)]
    {
        redis.raw_set(name, level)?;
    }
    let state = Arc::new(AtomicU64::new(seed));
    let math: Table = lua.globals().raw_get("math")?;
    math.raw_set(
        "random",
        lua.create_function(move |_, bounds: MultiValue| {
            let next = crate::db::mix(state.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed));
            let unit = (next >> 11) as f64 / (1u64 << 53) as f64;
            let bound = |v: &Value| match v {
                Value::Integer(n) => Some(*n as f64),
                Value::Number(n) => Some(n.floor()),
                _ => None,
            };
            Ok(match (bounds.front().and_then(bound), bounds.get(1).and_then(bound)) {
                (None, _) => unit,
                (Some(m), None) => (unit * m).floor() + 1.0,
                (Some(m), Some(n)) => (unit * (n - m + 1.0)).floor() + m,
            })
        })?,
    )?;
    math.raw_set("randomseed", lua.create_function(|_, _: MultiValue| Ok(()))?)?;
    Ok(())
}

/// Makes creating or reading an undefined global an error, as Redis does.
fn protect_globals(lua: &Lua) -> mlua::Result<()> {
    lua.load(
        r#"setmetatable(_G, {
            __newindex = function() error("Attempt to modify a readonly table", 2) end,
            __index = function(_, name) error("Script attempted to access nonexistent global variable '" .. tostring(name) .. "'", 2) end,
        })"#,
    )
    .exec()
}

/// A command's reply as Lua sees it (Redis's RESP2 conversion).
fn to_lua(lua: &Lua, reply: Reply) -> mlua::Result<Value> {
    Ok(match reply {
        Reply::Integer(n) => Value::Integer(n),
        Reply::Bulk(b) | Reply::Verbatim(_, b) => Value::String(lua.create_string(&b)?),
        Reply::Null | Reply::NullArray => Value::Boolean(false),
        Reply::Boolean(b) => Value::Integer(i64::from(b)),
        Reply::Double(d) => Value::String(lua.create_string(format_double(d))?),
        Reply::HumanDouble(d) => Value::String(lua.create_string(crate::resp::format_human(d))?),
        Reply::Simple(s) => {
            let t = lua.create_table()?;
            t.raw_set("ok", lua.create_string(&s)?)?;
            Value::Table(t)
        }
        Reply::Error(e) => {
            let t = lua.create_table()?;
            t.raw_set("err", lua.create_string(&e)?)?;
            Value::Table(t)
        }
        Reply::Array(items) | Reply::Set(items) | Reply::Push(items) => {
            let t = lua.create_table_with_capacity(items.len(), 0)?;
            for (i, item) in items.into_iter().enumerate() {
                t.raw_set(i + 1, to_lua(lua, item)?)?;
            }
            Value::Table(t)
        }
        Reply::Map(pairs) => {
            let t = lua.create_table_with_capacity(pairs.len() * 2, 0)?;
            for (i, (k, v)) in pairs.into_iter().enumerate() {
                t.raw_set(2 * i + 1, to_lua(lua, k)?)?;
                t.raw_set(2 * i + 2, to_lua(lua, v)?)?;
            }
            Value::Table(t)
        }
    })
}

/// A script's result as a reply (Redis's conversion from Lua).
fn from_lua(value: Value) -> Reply {
    match value {
        Value::Integer(n) => Reply::Integer(n),
        Value::Number(n) => Reply::Integer(n as i64),
        Value::String(s) => Reply::Bulk(Bytes::copy_from_slice(&s.as_bytes())),
        Value::Boolean(true) => Reply::Integer(1),
        Value::Table(t) => {
            if let Ok(Value::String(e)) = t.raw_get::<Value>("err") {
                return Reply::Error(Bytes::from(
                    String::from_utf8_lossy(&e.as_bytes()).replace(['\r', '\n'], " "),
                ));
            }
            if let Ok(Value::String(ok)) = t.raw_get::<Value>("ok") {
                return Reply::Simple(Bytes::from(
                    String::from_utf8_lossy(&ok.as_bytes()).replace(['\r', '\n'], " "),
                ));
            }
            let mut items = Vec::new();
            for i in 1.. {
                match t.raw_get::<Value>(i) {
                    Ok(Value::Nil) | Err(_) => break,
                    Ok(v) => items.push(from_lua(v)),
                }
            }
            Reply::Array(items)
        }
        _ => Reply::Null,
    }
}

/// A script's runtime error as Redis 7.0 words it: the message, then `script: <sha>, on
/// @user_script:<line>.`; an error reply that a `redis.call` raised keeps its own code.
fn script_error(e: &mlua::Error, sha: &str) -> Reply {
    let text = match e {
        mlua::Error::CallbackError { cause, .. } => match &**cause {
            mlua::Error::RuntimeError(text) => text.clone(),
            other => other.to_string(),
        },
        mlua::Error::RuntimeError(text) => text.clone(),
        other => other.to_string(),
    };
    let text = first_line(&text).to_string();
    let (text, line) = match text.split_once('\u{0}') {
        Some((text, line)) => (text.to_string(), line.parse().unwrap_or(0)),
        None => {
            // "user_script:3: message": the line is in the message.
            let line = text
                .strip_prefix("user_script:")
                .and_then(|rest| rest.split(':').next())
                .and_then(|n| n.parse::<usize>().ok())
                .unwrap_or(0);
            (text.clone(), line)
        }
    };
    let own = text
        .split(' ')
        .next()
        .is_some_and(|w| !w.is_empty() && w.chars().all(|c| c.is_ascii_uppercase()));
    let code = if own { "" } else { "ERR " };
    Reply::error(format!("{code}{text} script: {sha}, on @user_script:{line}."))
}
