//! The connection commands: answered by the server itself, without the engine (PING, AUTH,
//! HELLO, SELECT, INFO, CONFIG, COMMAND, CLIENT, ...).

use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::table::{arity_error, is, lookup, not_integer, CommandSpec, Handler, COMMANDS};
use super::{Session, ERR_SYNTAX, ERR_WRONGPASS, REDIS_VERSION};
use crate::limits;
use crate::resp::{parse_i64, Reply};

pub(super) fn cmd_ping(_: &mut Session, args: &[Bytes]) -> Reply {
    match args {
        [_] => Reply::Simple(Bytes::from_static(b"PONG")),
        [_, message] => Reply::Bulk(message.clone()),
        _ => arity_error("ping"),
    }
}

pub(super) fn cmd_echo(_: &mut Session, args: &[Bytes]) -> Reply {
    Reply::Bulk(args[1].clone())
}

pub(super) fn cmd_quit(session: &mut Session, _: &[Bytes]) -> Reply {
    session.closing = true;
    Reply::ok()
}

pub(super) fn cmd_auth(session: &mut Session, args: &[Bytes]) -> Reply {
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
pub(super) fn cmd_hello(session: &mut Session, args: &[Bytes]) -> Reply {
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
pub(super) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    bool::from(a.ct_eq(b))
}

pub(super) fn cmd_select(_: &mut Session, args: &[Bytes]) -> Reply {
    match parse_i64(&args[1]) {
        Some(0) => Reply::ok(),
        Some(_) => Reply::error("ERR DB index is out of range"),
        None => not_integer(),
    }
}

pub(super) fn cmd_info(session: &mut Session, args: &[Bytes]) -> Reply {
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
pub(super) fn config_values(session: &Session) -> Vec<(&'static str, String)> {
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

pub(super) fn cmd_config(session: &mut Session, args: &[Bytes]) -> Reply {
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

pub(super) fn unknown_subcommand(sub: &[u8], command: &str) -> Reply {
    let sub = String::from_utf8_lossy(sub);
    Reply::error(format!("ERR unknown subcommand '{sub}'. Try {command} HELP."))
}

/// Matches Redis glob patterns with `*` and `?` (enough for CONFIG GET).
pub(super) fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
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

pub(super) fn cmd_command(_: &mut Session, args: &[Bytes]) -> Reply {
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
pub(super) fn command_info(spec: &CommandSpec) -> Reply {
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

pub(super) fn cmd_client(session: &mut Session, args: &[Bytes]) -> Reply {
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
