//! Keyspace commands: DEL, EXISTS, TYPE, expiry (EXPIRE with NX/XX/GT/LT, TTL, EXPIRETIME,
//! PERSIST), KEYS, SCAN, RENAME, COPY, RANDOMKEY, DBSIZE, FLUSHALL, OBJECT, MEMORY USAGE, plus
//! PUBLISH, TIME and the WATCH point.
//!
//! SCAN's cursor: keys are iterated in key order, and a cursor is 1 + the first 7 bytes of the
//! next key to return (big-endian, zero-padded); 0 starts and ends. A page never ends between
//! two keys with the same 7-byte prefix, so the next page starts exactly where this one
//! stopped: every key present for the whole iteration is returned exactly once, whatever was
//! added or removed in between (Redis promises at least once). HSCAN, SSCAN and ZSCAN page
//! their collections the same way.

use bytes::Bytes;

use super::{
    count_arg, flags, int_arg, is, read, read_random, syntax, write, CmdResult, CommandDef, Ctx,
    View, ERR_NO_SUCH_KEY, FLAG_FAST, FLAG_NOSCRIPT, K0, K1, KALL,
};
use crate::glob::glob_match;
use crate::resp::{parse_i64, Reply};
use crate::value::Kind;

pub(super) const COMMANDS: &[CommandDef] = &[
    flags(write("del", -2, KALL, del), FLAG_FAST),
    flags(write("unlink", -2, KALL, del), FLAG_FAST),
    flags(read("exists", -2, KALL, exists), FLAG_FAST),
    flags(read("touch", -2, KALL, exists), FLAG_FAST),
    flags(read("type", 2, K1, type_of), FLAG_FAST),
    flags(read("ttl", 2, K1, ttl), FLAG_FAST),
    flags(read("pttl", 2, K1, ttl), FLAG_FAST),
    flags(read("expiretime", 2, K1, ttl), FLAG_FAST),
    flags(read("pexpiretime", 2, K1, ttl), FLAG_FAST),
    flags(write("expire", -3, K1, expire), FLAG_FAST),
    flags(write("pexpire", -3, K1, expire), FLAG_FAST),
    flags(write("expireat", -3, K1, expire), FLAG_FAST),
    flags(write("pexpireat", -3, K1, expire), FLAG_FAST),
    flags(write("persist", 2, K1, persist), FLAG_FAST),
    read("keys", 2, K0, keys),
    read("scan", -2, K0, scan),
    write("rename", 3, (1, 2, 1), rename),
    flags(write("renamenx", 3, (1, 2, 1), rename), FLAG_FAST),
    write("copy", -3, (1, 2, 1), copy),
    read("randomkey", 1, K0, randomkey),
    flags(read("dbsize", 1, K0, dbsize), FLAG_FAST),
    write("flushall", -1, K0, flushall),
    write("flushdb", -1, K0, flushall),
    read("object", -2, (2, 2, 1), object),
    read("memory", -2, K0, memory),
    flags(write("publish", 3, K0, publish), FLAG_FAST),
    flags(read("time", 1, K0, time), FLAG_FAST),
    flags(read("rsl.watchpoint", 1, K0, watchpoint), FLAG_NOSCRIPT),
    flags(read("rsl.keyspace", 1, K0, keyspace), FLAG_NOSCRIPT),
];

fn del(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    Ok(Reply::Integer(args[1..].iter().filter(|k| ctx.db.remove(k).is_some()).count() as i64))
}

fn exists(view: &View<'_>, args: &[Bytes]) -> CmdResult {
    Ok(Reply::Integer(args[1..].iter().filter(|k| view.get(k).is_some()).count() as i64))
}

fn type_of(view: &View<'_>, args: &[Bytes]) -> CmdResult {
    Ok(Reply::simple(view.get(&args[1]).map_or("none", |v| v.kind().name())))
}

fn ttl(view: &View<'_>, args: &[Bytes]) -> CmdResult {
    let name = args[0].to_ascii_lowercase();
    let millis = name.starts_with(b"p");
    let absolute = name.ends_with(b"expiretime");
    let Some(entry) = view.db.live(&args[1], view.now_ms) else { return Ok(Reply::Integer(-2)) };
    let Some(at) = entry.expire_at_ms else { return Ok(Reply::Integer(-1)) };
    let left = if absolute { at } else { at - view.now_ms };
    let left = if millis { left } else { (left + 500) / 1000 };
    Ok(Reply::Integer(i64::try_from(left).unwrap_or(i64::MAX)))
}

fn expire(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let name = String::from_utf8_lossy(&args[0]).to_ascii_lowercase();
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for option in &args[3..] {
        match () {
            _ if is(option, "nx") => nx = true,
            _ if is(option, "xx") => xx = true,
            _ if is(option, "gt") => gt = true,
            _ if is(option, "lt") => lt = true,
            _ => {
                let text = String::from_utf8_lossy(option);
                return Err(Reply::error(format!("ERR Unsupported option {text}")));
            }
        }
    }
    if nx && (xx || gt || lt) {
        return Err(Reply::error(
            "ERR NX and XX, GT or LT options at the same time are not compatible",
        ));
    }
    if gt && lt {
        return Err(Reply::error("ERR GT and LT options at the same time are not compatible"));
    }
    let amount = int_arg(&args[2])?;
    let invalid = || Reply::error(format!("ERR invalid expire time in '{name}' command"));
    let ms = if name == "expire" || name == "expireat" {
        amount.checked_mul(1000).ok_or_else(invalid)?
    } else {
        amount
    };
    let base = if name == "expire" || name == "pexpire" { ctx.now_ms() as i64 } else { 0 };
    let at = ms.checked_add(base).ok_or_else(invalid)?;
    let Some(entry) = ctx.db.keys.get(&args[1][..]) else { return Ok(Reply::Integer(0)) };
    let current = entry.expire_at_ms.map(|c| c as i64);
    let refused = (nx && current.is_some())
        || (xx && current.is_none())
        || (gt && current.is_none_or(|c| at <= c))
        || (lt && current.is_some_and(|c| at >= c));
    if refused {
        return Ok(Reply::Integer(0));
    }
    if at <= ctx.now_ms() as i64 {
        ctx.db.remove(&args[1]);
    } else {
        ctx.db.set_expiry(&args[1], Some(at as u64));
    }
    Ok(Reply::Integer(1))
}

fn persist(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let has_expiry = ctx.db.keys.get(&args[1][..]).is_some_and(|e| e.expire_at_ms.is_some());
    if has_expiry {
        ctx.db.set_expiry(&args[1], None);
    }
    Ok(Reply::Integer(i64::from(has_expiry)))
}

fn keys(view: &View<'_>, args: &[Bytes]) -> CmdResult {
    let pattern = &args[1];
    let all = &pattern[..] == b"*";
    let found = view
        .db
        .keys
        .iter()
        .filter(|(k, e)| e.live_at(view.now_ms) && (all || glob_match(pattern, k, false)))
        .map(|(k, _)| Reply::Bulk(k.clone()));
    Ok(Reply::Array(found.collect()))
}

/// The bytes of a cursor's position: where the next page starts.
const CURSOR_PREFIX_BYTES: usize = 7;

/// Parses a SCAN cursor into the first key (or member) of its page.
pub(super) fn parse_cursor(arg: &[u8]) -> Result<Option<Bytes>, Reply> {
    let cursor: u64 = std::str::from_utf8(arg)
        .ok()
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| Reply::error("ERR invalid cursor"))?;
    if cursor == 0 {
        return Ok(None);
    }
    let prefix = (cursor - 1).to_be_bytes();
    let mut start = prefix[8 - CURSOR_PREFIX_BYTES..].to_vec();
    while start.last() == Some(&0) {
        start.pop();
    }
    Ok(Some(Bytes::from(start)))
}

fn prefix_of(key: &[u8]) -> u64 {
    let mut bytes = [0u8; 8];
    for (i, &b) in key.iter().take(CURSOR_PREFIX_BYTES).enumerate() {
        bytes[8 - CURSOR_PREFIX_BYTES + i] = b;
    }
    u64::from_be_bytes(bytes)
}

/// The options SCAN and its collection variants share.
pub(super) struct ScanOptions {
    pub pattern: Option<Bytes>,
    pub count: usize,
    pub kind: Option<Bytes>,
}

/// Parses `[MATCH pattern] [COUNT n] [TYPE t]` from `args[from..]` (TYPE only for SCAN).
pub(super) fn scan_options(
    args: &[Bytes],
    from: usize,
    with_type: bool,
) -> Result<ScanOptions, Reply> {
    let mut options = ScanOptions { pattern: None, count: 10, kind: None };
    let mut i = from;
    while i < args.len() {
        if i + 1 >= args.len() {
            return Err(syntax());
        }
        if is(&args[i], "match") {
            options.pattern = Some(args[i + 1].clone());
        } else if is(&args[i], "count") {
            options.count = count_arg(&args[i + 1], super::ERR_SYNTAX)?;
            if options.count < 1 {
                return Err(syntax());
            }
        } else if with_type && is(&args[i], "type") {
            options.kind = Some(args[i + 1].clone());
        } else {
            return Err(syntax());
        }
        i += 2;
    }
    Ok(options)
}

/// One page of an ordered iteration from `start`: at least `count` items (unless the end
/// comes first), extended so as not to end inside a run of items sharing a cursor prefix.
/// Returns the page and the next cursor (0 at the end).
pub(super) fn page<'a, T: 'a>(
    mut items: impl Iterator<Item = (&'a Bytes, T)>,
    count: usize,
) -> (Vec<(&'a Bytes, T)>, u64) {
    let mut taken: Vec<(&Bytes, T)> = Vec::new();
    for item in items.by_ref() {
        if taken.len() >= count {
            let last = prefix_of(taken.last().expect("a full page").0);
            if prefix_of(item.0) != last {
                return (taken, prefix_of(item.0) + 1);
            }
        }
        taken.push(item);
    }
    (taken, 0)
}

fn scan(view: &View<'_>, args: &[Bytes]) -> CmdResult {
    let start = parse_cursor(&args[1])?;
    let options = scan_options(args, 2, true)?;
    let kind = options.kind.as_ref().map(|name| Kind::from_name(name));
    let items = match &start {
        None => view.db.keys.range::<_, Bytes>(..),
        Some(from) => view.db.keys.range(from.clone()..),
    };
    let (taken, next) = page(items, options.count);
    let keys = taken
        .into_iter()
        .filter(|(_, e)| e.live_at(view.now_ms))
        .filter(|(k, _)| options.pattern.as_ref().is_none_or(|p| glob_match(p, k, false)))
        .filter(|(_, e)| kind.is_none_or(|kind| Some(e.value.kind()) == kind))
        .map(|(k, _)| Reply::Bulk(k.clone()));
    Ok(Reply::Array(vec![Reply::text(next.to_string()), Reply::Array(keys.collect())]))
}

fn rename(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let nx = is(&args[0], "renamenx");
    let Some(entry) = ctx.db.keys.get(&args[1][..]).cloned() else {
        return Err(Reply::error(ERR_NO_SUCH_KEY));
    };
    if nx && ctx.db.keys.contains_key(&args[2][..]) {
        return Ok(Reply::Integer(0));
    }
    if args[1] != args[2] {
        ctx.db.remove(&args[1]);
        ctx.db.store(args[2].clone(), entry.value, entry.expire_at_ms);
        ctx.ready(&args[2]);
    }
    Ok(if nx { Reply::Integer(1) } else { Reply::ok() })
}

fn copy(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let mut replace = false;
    let mut i = 3;
    while i < args.len() {
        if is(&args[i], "replace") {
            replace = true;
            i += 1;
        } else if is(&args[i], "db") && i + 1 < args.len() {
            match parse_i64(&args[i + 1]) {
                Some(0) => {}
                Some(_) => return Err(Reply::error("ERR DB index is out of range")),
                None => return Err(Reply::error(super::ERR_NOT_INTEGER)),
            }
            i += 2;
        } else {
            return Err(syntax());
        }
    }
    if args[1] == args[2] {
        return Err(Reply::error("ERR source and destination objects are the same"));
    }
    let Some(entry) = ctx.db.keys.get(&args[1][..]).cloned() else { return Ok(Reply::Integer(0)) };
    if !replace && ctx.db.keys.contains_key(&args[2][..]) {
        return Ok(Reply::Integer(0));
    }
    ctx.db.store(args[2].clone(), entry.value, entry.expire_at_ms);
    ctx.ready(&args[2]);
    Ok(Reply::Integer(1))
}

fn randomkey(view: &View<'_>, _: &[Bytes]) -> CmdResult {
    let pick = read_random(view, b"randomkey").to_be_bytes();
    let from = Bytes::copy_from_slice(&pick);
    let live = |(k, e): (&Bytes, &crate::db::Entry)| e.live_at(view.now_ms).then(|| k.clone());
    let found =
        view.db.keys.range(from..).find_map(live).or_else(|| view.db.keys.iter().find_map(live));
    Ok(found.map_or(Reply::Null, Reply::Bulk))
}

fn dbsize(view: &View<'_>, _: &[Bytes]) -> CmdResult {
    Ok(Reply::Integer(live_count(view) as i64))
}

/// The number of keys live at the view's moment.
pub fn live_count(view: &View<'_>) -> usize {
    let expired = view.db.expiries.range(..(view.now_ms, Bytes::new())).count();
    view.db.keys.len() - expired
}

fn flushall(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    match args {
        [_] => {}
        [_, mode] if is(mode, "sync") || is(mode, "async") => {}
        _ => return Err(syntax()),
    }
    ctx.db.flush();
    Ok(Reply::ok())
}

fn object(view: &View<'_>, args: &[Bytes]) -> CmdResult {
    let sub = &args[1];
    if is(sub, "help") {
        return Ok(Reply::Array(
            [
                "OBJECT <subcommand>",
                "ENCODING <key>",
                "FREQ <key>",
                "IDLETIME <key>",
                "REFCOUNT <key>",
            ]
            .iter()
            .map(|l| Reply::Simple(Bytes::from_static(l.as_bytes())))
            .collect(),
        ));
    }
    let known = ["encoding", "freq", "idletime", "refcount"].iter().any(|w| is(sub, w));
    if !known || args.len() != 3 {
        return Err(unknown_subcommand(sub, "OBJECT"));
    }
    let Some(value) = view.get(&args[2]) else { return Ok(Reply::Null) };
    Ok(match () {
        _ if is(sub, "encoding") => Reply::text(value.encoding()),
        _ if is(sub, "refcount") => Reply::Integer(1),
        _ if is(sub, "idletime") => Reply::Integer(0),
        _ => Reply::error(
            "ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.",
        ),
    })
}

/// Redis's error for an unknown subcommand.
pub fn unknown_subcommand(sub: &[u8], command: &str) -> Reply {
    let sub = String::from_utf8_lossy(sub);
    Reply::error(format!("ERR unknown subcommand '{sub}'. Try {command} HELP."))
}

/// The estimated bytes a key takes: key, value, and the entry's fixed overhead.
pub fn key_memory_bytes(key: &[u8], entry: &crate::db::Entry) -> usize {
    const ENTRY_OVERHEAD_BYTES: usize = 72;
    key.len() + entry.value.memory_bytes() + ENTRY_OVERHEAD_BYTES
}

fn memory(view: &View<'_>, args: &[Bytes]) -> CmdResult {
    let sub = &args[1];
    if !is(sub, "usage") {
        return Err(unknown_subcommand(sub, "MEMORY"));
    }
    match args.len() {
        3 => {}
        5 if is(&args[3], "samples") => {
            int_arg(&args[4])?;
        }
        _ => return Err(syntax()),
    }
    let Some(entry) = view.db.live(&args[2], view.now_ms) else { return Ok(Reply::Null) };
    Ok(Reply::Integer(key_memory_bytes(&args[2], entry) as i64))
}

fn publish(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    Ok(Reply::Integer(ctx.hub.publish(&args[1], &args[2]) as i64))
}

fn time(view: &View<'_>, _: &[Bytes]) -> CmdResult {
    let (seconds, micros) = (view.now_ms / 1000, (view.now_ms % 1000) * 1000);
    Ok(Reply::Array(vec![Reply::text(seconds.to_string()), Reply::text(micros.to_string())]))
}

fn watchpoint(view: &View<'_>, _: &[Bytes]) -> CmdResult {
    Ok(Reply::Integer(view.db.mods as i64))
}

/// INFO keyspace's figures: live keys, live keys with a deadline, and their average time to
/// live in milliseconds.
fn keyspace(view: &View<'_>, _: &[Bytes]) -> CmdResult {
    let live: Vec<u64> = view
        .db
        .expiries
        .range((view.now_ms, Bytes::new())..)
        .map(|(at, _)| at - view.now_ms)
        .collect();
    let average = if live.is_empty() { 0 } else { live.iter().sum::<u64>() / live.len() as u64 };
    Ok(Reply::Array(vec![
        Reply::Integer(live_count(view) as i64),
        Reply::Integer(live.len() as i64),
        Reply::Integer(average as i64),
    ]))
}
