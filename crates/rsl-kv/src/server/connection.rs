//! The connection commands: answered by the server itself (PING, AUTH, HELLO, SELECT, INFO,
//! CONFIG, COMMAND, CLIENT, TIME, FUNCTION, RESET). INFO's keyspace figures come from the
//! machine (a read), the rest from the server.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Mutex;

use bytes::Bytes;

use super::session::Session;
use super::table::{is, lookup, Handler, COMMANDS};
use super::{ready, Pending, ERR_SYNTAX, ERR_WRONGPASS, REDIS_VERSION};
use crate::commands::{
    self, arity_error, keys::unknown_subcommand, CommandDef, Run, ERR_NOT_INTEGER, FLAG_BLOCKING,
};
use crate::glob::glob_match;
use crate::limits;
use crate::request::Request;
use crate::resp::{parse_i64, Proto, Reply};

pub(super) fn cmd_ping(session: &mut Session, args: &[Bytes]) -> Reply {
    let message = match args {
        [_] => None,
        [_, message] => Some(message.clone()),
        _ => return arity_error("ping"),
    };
    if session.subscribed_resp2() {
        return Reply::Array(vec![Reply::text("pong"), Reply::Bulk(message.unwrap_or_default())]);
    }
    message.map_or(Reply::simple("PONG"), Reply::Bulk)
}

pub(super) fn cmd_echo(_: &mut Session, args: &[Bytes]) -> Reply {
    Reply::Bulk(args[1].clone())
}

pub(super) fn cmd_ok(_: &mut Session, _: &[Bytes]) -> Reply {
    Reply::ok()
}

pub(super) fn cmd_quit(session: &mut Session, _: &[Bytes]) -> Reply {
    session.closing = true;
    Reply::ok()
}

/// RESET: back to a fresh connection's state (RESP2, no transaction, no subscription).
pub(super) fn cmd_reset(session: &mut Session, _: &[Bytes]) -> Reply {
    session.multi = None;
    session.watch = None;
    super::pubsub::unsubscribe_all(session);
    session.proto = Proto::Resp2;
    session.info.resp.store(2, Ordering::Relaxed);
    *session.info.name.lock().expect("the client lock is not poisoned") = None;
    session.authenticated = session.shared.config.requirepass.is_none();
    Reply::simple("RESET")
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

/// HELLO [protover [AUTH user pass] [SETNAME name]]: switches to RESP2 or RESP3 and answers
/// the server's description (a map in RESP3).
pub(super) fn cmd_hello(session: &mut Session, args: &[Bytes]) -> Reply {
    let mut proto = session.proto;
    if let Some(version) = args.get(1) {
        proto = match parse_i64(version) {
            Some(2) => Proto::Resp2,
            Some(3) => Proto::Resp3,
            Some(_) => return Reply::error("NOPROTO unsupported protocol version"),
            None => return Reply::error("ERR Protocol version is not an integer or out of range"),
        };
    }
    let mut name = None;
    let mut i = 2;
    while i < args.len() {
        if is(&args[i], "auth") && i + 2 < args.len() {
            let auth = [args[0].clone(), args[i + 1].clone(), args[i + 2].clone()];
            if let Reply::Error(e) = cmd_auth(session, &auth) {
                return Reply::Error(e);
            }
            i += 3;
        } else if is(&args[i], "setname") && i + 1 < args.len() {
            name = Some(args[i + 1].clone());
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
    if let Some(name) = name {
        if let Err(e) = set_name(session, name) {
            return e;
        }
    }
    session.proto = proto;
    session.info.resp.store(proto.number() as u8, Ordering::Relaxed);
    let role = if session.shared.engine.is_primary() { "master" } else { "replica" };
    Reply::Map(vec![
        (Reply::text("server"), Reply::text("redis")),
        (Reply::text("version"), Reply::text(REDIS_VERSION)),
        (Reply::text("proto"), Reply::Integer(proto.number())),
        (Reply::text("id"), Reply::Integer(session.id as i64)),
        (Reply::text("mode"), Reply::text("standalone")),
        (Reply::text("role"), Reply::text(role)),
        (Reply::text("modules"), Reply::Array(Vec::new())),
    ])
}

/// Compares in constant time (for equal lengths), so timing does not leak the password.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    bool::from(a.ct_eq(b))
}

pub(super) fn cmd_select(_: &mut Session, args: &[Bytes]) -> Reply {
    match parse_i64(&args[1]) {
        Some(0) => Reply::ok(),
        Some(_) => Reply::error("ERR DB index is out of range"),
        None => Reply::error(ERR_NOT_INTEGER),
    }
}

pub(super) fn cmd_time(session: &mut Session, _: &[Bytes]) -> Reply {
    let now_ms = session.now_ms();
    Reply::Array(vec![
        Reply::text((now_ms / 1000).to_string()),
        Reply::text(((now_ms % 1000) * 1000).to_string()),
    ])
}

/// The resident set size of this process, in bytes (0 where /proc is missing).
pub fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * u64::try_from(page).unwrap_or(4096)
}

fn human(bytes: u64) -> String {
    let mb = bytes as f64 / (1024.0 * 1024.0);
    if mb >= 1024.0 {
        format!("{:.2}G", mb / 1024.0)
    } else {
        format!("{mb:.2}M")
    }
}

/// The server's INFO sections (all but keyspace), by lower-case title.
fn server_sections(session: &Session) -> Vec<(&'static str, String)> {
    let shared = &session.shared;
    let rss = rss_bytes();
    let clients = shared.registry.all();
    let blocked = clients.iter().filter(|c| c.blocked.load(Ordering::Relaxed)).count();
    let pubsub_channels = shared.engine.hub().map_or(0, |h| h.channels(None).len());
    let pubsub_patterns = shared.engine.hub().map_or(0, |h| h.numpat());
    let primary = shared.engine.is_primary();
    vec![
        (
            "server",
            format!(
                "# Server\r\nredis_version:{REDIS_VERSION}\r\nrsl_kv_version:{}\r\nredis_mode:standalone\r\n\
                 os:{}\r\narch_bits:64\r\nmultiplexing_api:epoll\r\nprocess_id:{}\r\ntcp_port:{}\r\n\
                 uptime_in_seconds:{}\r\nuptime_in_days:{}\r\n",
                env!("CARGO_PKG_VERSION"),
                std::env::consts::OS,
                std::process::id(),
                shared.port,
                shared.started.elapsed().as_secs(),
                shared.started.elapsed().as_secs() / 86_400,
            ),
        ),
        (
            "clients",
            format!(
                "# Clients\r\nconnected_clients:{}\r\nmaxclients:{}\r\nblocked_clients:{blocked}\r\n\
                 pubsub_clients:{}\r\n",
                shared.clients.load(Ordering::Relaxed),
                limits::CLIENTS_MAX,
                clients.iter().filter(|c| c.sub.load(Ordering::Relaxed) + c.psub.load(Ordering::Relaxed) > 0).count(),
            ),
        ),
        (
            "memory",
            format!(
                "# Memory\r\nused_memory:{rss}\r\nused_memory_human:{}\r\nused_memory_rss:{rss}\r\n\
                 used_memory_rss_human:{}\r\nmaxmemory:0\r\nmaxmemory_human:0B\r\nmaxmemory_policy:noeviction\r\n\
                 mem_allocator:{}\r\n",
                human(rss),
                human(rss),
                if cfg!(test) { "libc" } else { "mimalloc" },
            ),
        ),
        ("persistence", "# Persistence\r\nloading:0\r\nrdb_changes_since_last_save:0\r\naof_enabled:0\r\n".into()),
        (
            "stats",
            format!(
                "# Stats\r\ntotal_connections_received:{}\r\ntotal_commands_processed:{}\r\n\
                 rejected_connections:{}\r\nprotocol_errors:{}\r\npubsub_channels:{pubsub_channels}\r\n\
                 pubsub_patterns:{pubsub_patterns}\r\ntls_handshake_failures:{}\r\n",
                shared.stats.connections_received.load(Ordering::Relaxed),
                shared.stats.commands_processed.load(Ordering::Relaxed),
                shared.stats.connections_rejected.load(Ordering::Relaxed),
                shared.stats.protocol_errors.load(Ordering::Relaxed),
                shared.stats.tls_handshake_failures.load(Ordering::Relaxed),
            ),
        ),
        (
            "replication",
            format!("# Replication\r\nrole:{}\r\nconnected_slaves:0\r\n", if primary { "master" } else { "slave" }),
        ),
    ]
}

/// INFO [section ...]: the server's sections, the engine's, and the keyspace (from the
/// machine, through the engine's read path).
pub(super) fn cmd_info(session: &mut Session, args: &[Bytes], behind_write: bool) -> Pending {
    session.publish();
    let everything = args.len() == 1
        || args[1..].iter().any(|a| is(a, "all") || is(a, "everything") || is(a, "default"));
    let wanted = |title: &str| everything || args[1..].iter().any(|a| is(a, title));
    let mut text: Vec<String> = server_sections(session)
        .into_iter()
        .filter(|(title, _)| wanted(title))
        .map(|(_, body)| body)
        .collect();
    if everything || args[1..].iter().any(|a| is(a, "rsl") || is(a, "engine")) {
        let engine = session.shared.engine.info();
        if !engine.is_empty() {
            text.push(engine);
        }
    }
    let proto = session.proto;
    let wrap = move |body: String| Reply::Verbatim("txt", Bytes::from(body));
    if !wanted("keyspace") {
        return ready(wrap(text.join("\r\n")), proto);
    }
    let request =
        Request::read(session.now_ms(), Proto::Resp2, vec![Bytes::from_static(b"rsl.keyspace")]);
    let reply = match session.submit_raw(request, behind_write) {
        Ok(reply) => reply,
        Err(e) => return ready(e, proto),
    };
    let post = Box::new(move |machine: Reply| {
        // Without the machine's figures (an engine error), INFO still answers the rest.
        let figures = match machine {
            Reply::Array(figures) => figures,
            _ => return wrap(text.join("\r\n")),
        };
        let figure = |i: usize| match figures.get(i) {
            Some(Reply::Integer(n)) => *n,
            _ => 0,
        };
        let mut keyspace = "# Keyspace\r\n".to_string();
        if figure(0) > 0 {
            keyspace.push_str(&format!(
                "db0:keys={},expires={},avg_ttl={}\r\n",
                figure(0),
                figure(1),
                figure(2)
            ));
        }
        text.push(keyspace);
        wrap(text.join("\r\n"))
    });
    Pending::Post { reply, post, proto, logged: behind_write }
}

/// The configuration parameters CONFIG GET reports and CONFIG SET accepts. They are this
/// server's (not replicated) and, but for the ones with a fixed value, recorded only: rsl-kv
/// has no eviction, no snapshotting of its own and no idle timeout.
#[derive(Debug)]
pub(super) struct Settings {
    values: Mutex<BTreeMap<&'static str, String>>,
}

/// Parameters CONFIG SET may change, with their defaults and whether they are integers.
const SETTABLE: &[(&str, &str, bool)] = &[
    ("maxmemory", "0", true),
    ("maxmemory-policy", "noeviction", false),
    ("maxmemory-samples", "5", true),
    ("timeout", "0", true),
    ("tcp-keepalive", "300", true),
    ("notify-keyspace-events", "", false),
    ("hz", "10", true),
    ("slowlog-log-slower-than", "10000", true),
    ("slowlog-max-len", "128", true),
    ("lua-time-limit", "5000", true),
    ("busy-reply-threshold", "5000", true),
    ("latency-monitor-threshold", "0", true),
    ("lfu-log-factor", "10", true),
    ("lfu-decay-time", "1", true),
    ("save", "", false),
    ("appendonly", "no", false),
    ("appendfsync", "everysec", false),
    ("loglevel", "notice", false),
];

impl Default for Settings {
    fn default() -> Self {
        Settings {
            values: Mutex::new(SETTABLE.iter().map(|(k, v, _)| (*k, v.to_string())).collect()),
        }
    }
}

/// Every parameter CONFIG GET reports: the settable ones and the fixed ones.
fn config_values(session: &Session) -> Vec<(&'static str, String)> {
    let mut values: Vec<(&'static str, String)> = session
        .shared
        .settings
        .values
        .lock()
        .expect("the settings lock is not poisoned")
        .iter()
        .map(|(k, v)| (*k, v.clone()))
        .collect();
    values.extend([
        ("databases", "1".into()),
        ("maxclients", limits::CLIENTS_MAX.to_string()),
        ("port", session.shared.port.to_string()),
        ("proto-max-bulk-len", limits::BULK_BYTES_MAX.to_string()),
        ("requirepass", session.shared.config.requirepass.clone().unwrap_or_default()),
    ]);
    values.sort();
    values
}

pub(super) fn cmd_config(session: &mut Session, args: &[Bytes]) -> Reply {
    let sub = &args[1];
    if is(sub, "get") {
        if args.len() < 3 {
            return arity_error("config|get");
        }
        let mut items = Vec::new();
        for (key, value) in config_values(session) {
            if args[2..].iter().any(|pattern| glob_match(pattern, key.as_bytes(), true)) {
                items.push((Reply::bulk(key.as_bytes()), Reply::Bulk(Bytes::from(value))));
            }
        }
        return Reply::Map(items);
    }
    if is(sub, "set") {
        if args.len() < 4 || args.len() % 2 == 1 {
            return arity_error("config|set");
        }
        let mut values =
            session.shared.settings.values.lock().expect("the settings lock is not poisoned");
        let mut changes = Vec::new();
        for pair in args[2..].chunks_exact(2) {
            let name = String::from_utf8_lossy(&pair[0]).to_ascii_lowercase();
            let Some((key, _, integer)) = SETTABLE.iter().find(|(k, _, _)| *k == name) else {
                return Reply::error(format!(
                    "ERR Unknown option or number of arguments for CONFIG SET - '{name}'"
                ));
            };
            let value = String::from_utf8_lossy(&pair[1]).into_owned();
            if *integer && parse_memory(&value).is_none() {
                return Reply::error(format!(
                    "ERR CONFIG SET failed (possibly related to argument '{name}') - argument couldn't be parsed into an integer"
                ));
            }
            changes.push((*key, value));
        }
        values.extend(changes);
        return Reply::ok();
    }
    if is(sub, "resetstat") || is(sub, "rewrite") {
        return Reply::ok();
    }
    unknown_subcommand(sub, "CONFIG")
}

/// An integer or memory amount (`100mb`) as CONFIG SET accepts it.
fn parse_memory(text: &str) -> Option<u64> {
    let lower = text.to_ascii_lowercase();
    let (digits, unit) = lower
        .find(|c: char| !c.is_ascii_digit() && c != '-')
        .map_or((&lower[..], ""), |i| lower.split_at(i));
    let n: i64 = digits.parse().ok()?;
    let scale = match unit {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1024,
        "m" => 1_000_000,
        "mb" => 1 << 20,
        "g" => 1_000_000_000,
        "gb" => 1 << 30,
        _ => return None,
    };
    u64::try_from(n).ok()?.checked_mul(scale)
}

pub(super) fn cmd_command(_: &mut Session, args: &[Bytes]) -> Reply {
    let all = || COMMANDS.iter().map(session_info).chain(commands::COMMANDS.iter().map(data_info));
    let Some(sub) = args.get(1) else { return Reply::Array(all().collect()) };
    if is(sub, "count") {
        return Reply::Integer((COMMANDS.len() + commands::COMMANDS.len()) as i64);
    }
    if is(sub, "docs") {
        // No documentation: redis-cli then falls back to its built-in help.
        return Reply::Map(Vec::new());
    }
    if is(sub, "list") {
        return Reply::Array(
            all()
                .map(|info| match info {
                    Reply::Array(mut items) => items.swap_remove(0),
                    other => other,
                })
                .collect(),
        );
    }
    if is(sub, "info") {
        let infos = args[2..].iter().map(|name| match (lookup(name), commands::lookup(name)) {
            (Some(spec), _) => session_info(spec),
            (None, Some(def)) => data_info(def),
            (None, None) => Reply::NullArray,
        });
        return Reply::Array(infos.collect());
    }
    unknown_subcommand(sub, "COMMAND")
}

fn flags(names: &[&'static str]) -> Reply {
    Reply::Set(names.iter().map(|f| Reply::Simple(Bytes::from_static(f.as_bytes()))).collect())
}

fn info_row(name: &str, arity: i32, flag_names: &[&'static str], keys: (i8, i8, i8)) -> Reply {
    Reply::Array(vec![
        Reply::bulk(name.as_bytes()),
        Reply::Integer(arity.into()),
        flags(flag_names),
        Reply::Integer(keys.0.into()),
        Reply::Integer(keys.1.into()),
        Reply::Integer(keys.2.into()),
    ])
}

fn session_info(spec: &super::table::CommandSpec) -> Reply {
    let mut names = vec!["fast"];
    if spec.no_auth {
        names.push("no_auth");
    }
    if matches!(spec.handler, Handler::Async(_)) {
        names.push("noscript");
    }
    info_row(spec.name, spec.arity, &names, (0, 0, 0))
}

fn data_info(def: &CommandDef) -> Reply {
    let mut names = vec![if matches!(def.run, Run::Write(_)) { "write" } else { "readonly" }];
    if def.has(commands::FLAG_FAST) {
        names.push("fast");
    }
    if def.has(FLAG_BLOCKING) || def.has(commands::FLAG_BLOCK_OPTION) {
        names.push("blocking");
    }
    if def.has(commands::FLAG_MOVABLEKEYS) {
        names.push("movablekeys");
    }
    info_row(def.name, def.arity, &names, def.keys)
}

/// Sets the connection's name, refusing spaces and special characters as Redis does.
fn set_name(session: &Session, name: Bytes) -> Result<(), Reply> {
    if name.iter().any(|b| *b <= b' ' || *b > b'~') {
        return Err(Reply::error(
            "ERR Client names cannot contain spaces, newlines or special characters.",
        ));
    }
    *session.info.name.lock().expect("the client lock is not poisoned") =
        (!name.is_empty()).then_some(name);
    Ok(())
}

pub(super) fn cmd_client(session: &mut Session, args: &[Bytes]) -> Reply {
    session.publish();
    let sub = &args[1];
    let shared = std::sync::Arc::clone(&session.shared);
    match () {
        _ if is(sub, "setname") => {
            let [_, _, name] = args else { return arity_error("client|setname") };
            set_name(session, name.clone()).map_or_else(|e| e, |()| Reply::ok())
        }
        _ if is(sub, "getname") => session.info.name().map_or(Reply::Null, Reply::Bulk),
        _ if is(sub, "id") => Reply::Integer(session.id as i64),
        _ if is(sub, "info") => {
            Reply::Verbatim("txt", Bytes::from(session.info.line(&shared) + "\n"))
        }
        _ if is(sub, "list") => {
            let wanted: Vec<u64> = match args.get(2) {
                None => Vec::new(),
                Some(word) if is(word, "id") => {
                    args[3..].iter().filter_map(|a| parse_i64(a)).map(|n| n as u64).collect()
                }
                Some(word) if is(word, "type") => Vec::new(),
                Some(_) => return Reply::error(ERR_SYNTAX),
            };
            let lines: String = shared
                .registry
                .all()
                .iter()
                .filter(|c| wanted.is_empty() || wanted.contains(&c.id))
                .map(|c| c.line(&shared) + "\n")
                .collect();
            Reply::Verbatim("txt", Bytes::from(lines))
        }
        _ if is(sub, "setinfo") => {
            let [_, _, attr, value] = args else { return arity_error("client|setinfo") };
            let mut lib = session.info.lib.lock().expect("the client lock is not poisoned");
            let value = String::from_utf8_lossy(value).into_owned();
            match () {
                _ if is(attr, "lib-name") => lib.0 = value,
                _ if is(attr, "lib-ver") => lib.1 = value,
                _ => {
                    return Reply::error(format!(
                        "ERR Unrecognized option '{}'",
                        String::from_utf8_lossy(attr)
                    ))
                }
            }
            Reply::ok()
        }
        _ if ["reply", "no-evict", "no-touch", "tracking", "pause", "unpause"]
            .iter()
            .any(|s| is(sub, s)) =>
        {
            Reply::ok()
        }
        _ if is(sub, "kill") => Reply::error("ERR No such client"),
        _ => unknown_subcommand(sub, "CLIENT"),
    }
}

/// FUNCTION: rsl-kv has no functions (its scripts are EVAL's); the housekeeping subcommands
/// that clients send answer as an empty library would.
pub(super) fn cmd_function(_: &mut Session, args: &[Bytes]) -> Reply {
    let sub = &args[1];
    match () {
        _ if is(sub, "flush") => Reply::ok(),
        _ if is(sub, "list") => Reply::Array(Vec::new()),
        _ if is(sub, "stats") => Reply::Map(vec![
            (Reply::text("running_script"), Reply::Null),
            (Reply::text("engines"), Reply::Map(Vec::new())),
        ]),
        _ if is(sub, "dump") => Reply::Null,
        _ if is(sub, "load") || is(sub, "restore") => {
            Reply::error("ERR rsl-kv does not support functions; use EVAL and EVALSHA")
        }
        _ if is(sub, "delete") => Reply::error("ERR Library not found"),
        _ if is(sub, "kill") => Reply::error("NOTBUSY No scripts in execution right now."),
        _ => unknown_subcommand(sub, "FUNCTION"),
    }
}
