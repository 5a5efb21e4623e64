//! Stream consumer groups: XGROUP (CREATE, SETID, DESTROY, CREATECONSUMER, DELCONSUMER),
//! XREADGROUP, XACK, XPENDING (summary and extended), XCLAIM, XAUTOCLAIM, and XINFO (STREAM,
//! GROUPS, CONSUMERS), with Redis 7.0's replies, errors and `entries-read`/`lag` arithmetic.
//!
//! Delivery and idle times are the machine's clock (the request's stamp), so every replica
//! keeps the same pending entries with the same times; an idle time a read answers is the
//! read's moment less the delivery time.

use bytes::Bytes;

use super::streams::{bound_arg, id_arg, read_args, stream_of, streams_reply};
use super::{int_arg, is, syntax, CmdResult, Ctx, View};
use crate::resp::Reply;
use crate::stream::{Consumer, Group, PendingEntry, Stream, StreamId};
use crate::value::Kind;

const ERR_NO_KEY: &str = "ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the MKSTREAM option to create an empty stream automatically.";
const ERR_ENTRIES_READ: &str = "ERR value for ENTRIESREAD must be positive or -1";

pub(super) const COMMANDS: &[super::CommandDef] = &[
    super::write("xgroup", -2, (2, 2, 1), xgroup),
    super::flags(
        super::write("xreadgroup", -7, (0, 0, 0), xreadgroup),
        super::FLAG_BLOCK_OPTION | super::FLAG_MOVABLEKEYS,
    ),
    super::flags(super::write("xack", -4, (1, 1, 1), xack), super::FLAG_FAST),
    super::read("xpending", -3, (1, 1, 1), xpending),
    super::write("xclaim", -6, (1, 1, 1), xclaim),
    super::write("xautoclaim", -6, (1, 1, 1), xautoclaim),
];

fn no_group(key: &[u8], group: &[u8]) -> Reply {
    Reply::error(format!(
        "NOGROUP No such key '{}' or consumer group '{}'",
        String::from_utf8_lossy(key),
        String::from_utf8_lossy(group)
    ))
}

fn no_group_for_key(key: &[u8], group: &[u8]) -> Reply {
    Reply::error(format!(
        "NOGROUP No such consumer group '{}' for key name '{}'",
        String::from_utf8_lossy(group),
        String::from_utf8_lossy(key)
    ))
}

fn subcommand_syntax(sub: &[u8]) -> Reply {
    Reply::error(format!(
        "ERR unknown subcommand or wrong number of arguments for '{}'. Try XGROUP HELP.",
        String::from_utf8_lossy(sub).to_lowercase()
    ))
}

/// An ENTRIESREAD value: -1 (unknown) or a count.
fn entries_read_arg(arg: &[u8]) -> Result<Option<u64>, Reply> {
    match int_arg(arg)? {
        -1 => Ok(None),
        n if n < 0 => Err(Reply::error(ERR_ENTRIES_READ)),
        n => Ok(Some(n as u64)),
    }
}

/// The stream at `key` to change, and its group `name`; the errors of XREADGROUP/XCLAIM.
fn stream_mut<'a>(ctx: &'a mut Ctx<'_>, key: &Bytes) -> Result<Option<&'a mut Stream>, Reply> {
    Ok(ctx.value_mut(key, Kind::Stream, false)?.map(|v| v.stream_mut()))
}

const XGROUP_HELP: &[&str] = &[
    "XGROUP <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CREATE <key> <groupname> <id|$> [option]",
    "    Create a new consumer group. Options are:",
    "    * MKSTREAM",
    "      Create the empty stream if it does not exist.",
    "    * ENTRIESREAD entries_read",
    "      Set the group's entries_read counter (internal use).",
    "CREATECONSUMER <key> <groupname> <consumer>",
    "    Create a new consumer in the specified group.",
    "DELCONSUMER <key> <groupname> <consumer>",
    "    Remove the specified consumer.",
    "DESTROY <key> <groupname>",
    "    Remove the specified group.",
    "SETID <key> <groupname> <id|$> [ENTRIESREAD entries_read]",
    "    Set the current group ID and entries_read counter.",
    "HELP",
    "    Prints this help.",
];

fn help(lines: &[&'static str]) -> Reply {
    Reply::Array(lines.iter().map(|l| Reply::simple(l)).collect())
}

fn xgroup(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let sub = &args[1];
    if args.len() == 2 && is(sub, "help") {
        return Ok(help(XGROUP_HELP));
    }
    if args.len() < 4 {
        return Err(unknown_subcommand(sub, "XGROUP"));
    }
    let create = is(sub, "create");
    let (mut mkstream, mut entries_read) = (false, None);
    if create && args.len() >= 5 {
        let mut i = 5;
        while i < args.len() {
            if is(&args[i], "mkstream") {
                mkstream = true;
                i += 1;
            } else if is(&args[i], "entriesread") && i + 1 < args.len() {
                entries_read = entries_read_arg(&args[i + 1])?;
                i += 2;
            } else {
                return Err(subcommand_syntax(sub));
            }
        }
    }
    // SETID's ENTRIESREAD is checked before the key too.
    let mut setid_entries_read = None;
    if is(sub, "setid") && args.len() == 7 {
        if !is(&args[5], "entriesread") {
            return Err(subcommand_syntax(sub));
        }
        setid_entries_read = entries_read_arg(&args[6])?;
    }
    let (key, name) = (&args[2], &args[3]);
    let stream = stream_of(&ctx.view(), key)?;
    if stream.is_none() && !(create && mkstream) {
        return Err(Reply::error(ERR_NO_KEY));
    }
    let group_exists = stream.is_some_and(|s| s.groups.contains_key(name));
    let needs_group = ["setid", "createconsumer", "delconsumer"].iter().any(|n| is(sub, n));
    if needs_group && !group_exists {
        return Err(no_group_for_key(key, name));
    }
    let last_id = stream.map_or(StreamId::MIN, |s| s.last_id);
    let now_ms = ctx.now_ms();
    if create && (5..=8).contains(&args.len()) {
        let id = if &args[4][..] == b"$" { last_id } else { id_arg(&args[4], 0)? };
        if group_exists {
            return Err(Reply::error("BUSYGROUP Consumer Group name already exists"));
        }
        let stream = stream_mut(ctx, key)?;
        let stream = match stream {
            Some(s) => s,
            None => {
                ctx.db.create(key.clone(), crate::value::Value::empty(Kind::Stream));
                stream_mut(ctx, key)?.expect("just created")
            }
        };
        let group = Group { last_id: id, entries_read, ..Group::default() };
        stream.groups.insert(name.clone(), group);
        return Ok(Reply::ok());
    }
    if is(sub, "setid") && (args.len() == 5 || args.len() == 7) {
        let id = match &args[4][..] {
            b"$" => last_id,
            other => bound_id(other)?,
        };
        let group = group_mut(ctx, key, name);
        group.last_id = id;
        group.entries_read = setid_entries_read;
        return Ok(Reply::ok());
    }
    if is(sub, "destroy") && args.len() == 4 {
        if !group_exists {
            return Ok(Reply::Integer(0));
        }
        let stream = stream_mut(ctx, key)?.expect("the stream exists");
        stream.groups.remove(name);
        return Ok(Reply::Integer(1));
    }
    if is(sub, "createconsumer") && args.len() == 5 {
        let group = group_mut(ctx, key, name);
        if group.consumers.contains_key(&args[4]) {
            return Ok(Reply::Integer(0));
        }
        group
            .consumers
            .insert(args[4].clone(), Consumer { seen_ms: now_ms, ..Consumer::default() });
        return Ok(Reply::Integer(1));
    }
    if is(sub, "delconsumer") && args.len() == 5 {
        let group = group_mut(ctx, key, name);
        let Some(consumer) = group.consumers.remove(&args[4]) else {
            return Ok(Reply::Integer(0));
        };
        for id in consumer.pending.iter() {
            group.pending.remove(id);
        }
        return Ok(Reply::Integer(consumer.pending.len() as i64));
    }
    Err(subcommand_syntax(sub))
}

/// An id that may be `-` or `+` (Redis's non-strict parse), `ms` taking sequence 0.
fn bound_id(arg: &[u8]) -> Result<StreamId, Reply> {
    match arg {
        b"-" => Ok(StreamId::MIN),
        b"+" => Ok(StreamId::MAX),
        _ => id_arg(arg, 0),
    }
}

fn unknown_subcommand(sub: &[u8], cmd: &str) -> Reply {
    Reply::error(format!(
        "ERR unknown subcommand '{}'. Try {cmd} HELP.",
        String::from_utf8_lossy(sub)
    ))
}

/// The group `name` of the stream at `key`, both known to exist.
fn group_mut<'a>(ctx: &'a mut Ctx<'_>, key: &Bytes, name: &Bytes) -> &'a mut Group {
    let entry = ctx.db.entry_mut(key).expect("the stream exists");
    entry.value.stream_mut().groups.get_mut(name).expect("the group exists")
}

/// Redis's `streamRangeHasTombstones` from `start` to the end.
fn has_tombstones_after(s: &Stream, start: StreamId) -> bool {
    if s.is_empty() || s.max_deleted == StreamId::MIN || s.first_id() > s.max_deleted {
        return false;
    }
    start <= s.max_deleted
}

/// Redis's `streamEstimateDistanceFromFirstEverEntry`: the entries-read counter of `id`, if
/// it can be known.
fn estimate_entries_read(s: &Stream, id: StreamId) -> Option<u64> {
    if s.entries_added == 0 {
        return Some(0);
    }
    if s.is_empty() && id <= s.last_id {
        return Some(s.entries_added);
    }
    match id.cmp(&s.last_id) {
        std::cmp::Ordering::Equal => return Some(s.entries_added),
        std::cmp::Ordering::Greater => return None,
        std::cmp::Ordering::Less => {}
    }
    let first = s.first_id();
    if s.max_deleted == StreamId::MIN || s.max_deleted < first {
        if id < first {
            return Some(s.entries_added - s.len() as u64);
        } else if id == first {
            return Some(s.entries_added - s.len() as u64 + 1);
        }
    }
    None
}

/// A group's lag, as XINFO GROUPS answers it.
pub(super) fn lag(s: &Stream, group: &Group) -> Option<i64> {
    if s.entries_added == 0 {
        return Some(0);
    }
    let read = match group.entries_read {
        Some(n) if !has_tombstones_after(s, group.last_id) => Some(n),
        _ => estimate_entries_read(s, group.last_id),
    };
    read.map(|n| s.entries_added as i64 - n as i64)
}

fn xreadgroup(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let parsed = read_args(args, true)?;
    let (group_name, consumer_name) = parsed.group.expect("XREADGROUP has GROUP");
    let now_ms = ctx.now_ms();
    // Check every stream and id first, as Redis does, so that an error changes nothing.
    let mut starts = Vec::with_capacity(parsed.keys.len());
    for (key, id) in parsed.keys.iter().zip(parsed.ids) {
        let stream = stream_of(&ctx.view(), key)?;
        if !stream.is_some_and(|s| s.groups.contains_key(group_name)) {
            return Err(Reply::error(format!(
                "NOGROUP No such key '{}' or consumer group '{}' in XREADGROUP with GROUP option",
                String::from_utf8_lossy(key),
                String::from_utf8_lossy(group_name)
            )));
        }
        starts.push(match &id[..] {
            b"$" => return Err(Reply::error("ERR The $ ID is meaningless in the context of XREADGROUP: you want to read the history of this consumer by specifying a proper ID, or use the > ID to get new messages. The $ ID would just return an empty result set.")),
            b">" => None,
            _ => Some(id_arg(id, 0)?),
        });
    }
    let mut served = Vec::new();
    for (key, start) in parsed.keys.iter().zip(starts) {
        let stream = stream_mut(ctx, key)?.expect("checked above");
        let entries = match start {
            Some(after) => history(stream, group_name, consumer_name, after, parsed.count, now_ms),
            None => {
                let group = &stream.groups[group_name];
                if stream.entries.get_max().is_none_or(|(max, _)| *max <= group.last_id) {
                    continue;
                }
                deliver_new(stream, group_name, consumer_name, parsed.count, parsed.noack, now_ms)
            }
        };
        served.push((key.clone(), Reply::Array(entries)));
    }
    Ok(streams_reply(ctx.proto, served))
}

/// The consumer `name` of `group`, created if missing, seen now.
fn consumer_seen<'a>(group: &'a mut Group, name: &Bytes, now_ms: u64) -> &'a mut Consumer {
    let consumer = group.consumers.entry(name.clone()).or_default();
    consumer.seen_ms = now_ms;
    consumer
}

/// XREADGROUP with an id: the consumer's pending entries after `after`, each delivered again
/// (a deleted entry answers its id and a null).
fn history(
    stream: &mut Stream,
    group_name: &Bytes,
    consumer_name: &Bytes,
    after: StreamId,
    count: usize,
    now_ms: u64,
) -> Vec<Reply> {
    let Some(start) = after.next() else { return Vec::new() };
    let entries = stream.entries.clone();
    let group = stream.groups.get_mut(group_name).expect("checked");
    let consumer = consumer_seen(group, consumer_name, now_ms);
    let take = if count == 0 { usize::MAX } else { count };
    let ids: Vec<StreamId> = consumer.pending.range(start..).take(take).copied().collect();
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        match entries.get(&id) {
            Some(fields) => {
                let pending = group.pending.get_mut(&id).expect("the PELs agree");
                pending.delivered_ms = now_ms;
                pending.deliveries += 1;
                out.push(Stream::entry_reply(id, fields));
            }
            None => out.push(Reply::Array(vec![id.reply(), Reply::NullArray])),
        }
    }
    out
}

/// XREADGROUP with `>`: the entries after the group's last id, added to the consumer's
/// pending entries (unless NOACK), moving the group's last id and entries-read.
fn deliver_new(
    stream: &mut Stream,
    group_name: &Bytes,
    consumer_name: &Bytes,
    count: usize,
    noack: bool,
    now_ms: u64,
) -> Vec<Reply> {
    let last = stream.groups[group_name].last_id;
    let Some(start) = last.next() else { return Vec::new() };
    let take = if count == 0 { usize::MAX } else { count };
    let new: Vec<(StreamId, Vec<Bytes>)> =
        stream.entries.range(start..).take(take).map(|(id, f)| (*id, f.clone())).collect();
    let mut out = Vec::with_capacity(new.len());
    for (id, fields) in new {
        let read = match stream.groups[group_name].entries_read {
            Some(n) if !has_tombstones_after(stream, id) => Some(n + 1),
            _ => estimate_entries_read(stream, id),
        };
        let group = stream.groups.get_mut(group_name).expect("checked");
        group.entries_read = read;
        group.last_id = id;
        consumer_seen(group, consumer_name, now_ms);
        if !noack {
            let pending = PendingEntry {
                consumer: consumer_name.clone(),
                delivered_ms: now_ms,
                deliveries: 1,
            };
            if let Some(old) = group.pending.insert(id, pending) {
                group.consumers.get_mut(&old.consumer).expect("owner").pending.remove(&id);
            }
            group.consumers.get_mut(consumer_name).expect("seen").pending.insert(id);
        }
        out.push(Stream::entry_reply(id, &fields));
    }
    out
}

fn xack(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let (key, name) = (&args[1], &args[2]);
    let exists = stream_of(&ctx.view(), key)?.is_some_and(|s| s.groups.contains_key(name));
    // Without the group there is nothing to acknowledge, whatever the ids (Redis 7.0 checks
    // the ids only then).
    if !exists {
        return Ok(Reply::Integer(0));
    }
    let ids = args[3..].iter().map(|a| id_arg(a, 0)).collect::<Result<Vec<_>, _>>()?;
    let group = group_mut(ctx, key, name);
    let mut acked = 0;
    for id in ids {
        if let Some(p) = group.pending.remove(&id) {
            group.consumers.get_mut(&p.consumer).expect("owner").pending.remove(&id);
            acked += 1;
        }
    }
    Ok(Reply::Integer(acked))
}

fn xpending(view: &View<'_>, args: &[Bytes]) -> CmdResult {
    let argc = args.len();
    if argc != 3 && !(6..=9).contains(&argc) {
        return Err(syntax());
    }
    let mut range = None;
    let mut min_idle = 0;
    if argc >= 6 {
        let mut at = 3;
        if is(&args[3], "idle") {
            min_idle = int_arg(&args[4])?;
            if argc < 8 {
                return Err(syntax());
            }
            at = 5;
        }
        let count = int_arg(&args[at + 2])?.max(0) as usize;
        let start = bound_arg(&args[at], true)?;
        let end = bound_arg(&args[at + 1], false)?;
        range = Some((start, end, count, args.get(at + 3)));
    }
    let (key, name) = (&args[1], &args[2]);
    let stream = stream_of(view, key)?;
    let Some(group) = stream.and_then(|s| s.groups.get(name)) else {
        return Err(no_group(key, name));
    };
    let Some((start, end, count, consumer)) = range else {
        let (Some((first, _)), Some((last, _))) =
            (group.pending.get_min(), group.pending.get_max())
        else {
            return Ok(Reply::Array(vec![
                Reply::Integer(0),
                Reply::Null,
                Reply::Null,
                Reply::NullArray,
            ]));
        };
        let owners = group
            .consumers
            .iter()
            .filter(|(_, c)| !c.pending.is_empty())
            .map(|(n, c)| {
                Reply::Array(vec![
                    Reply::Bulk(n.clone()),
                    Reply::bulk(c.pending.len().to_string().as_bytes()),
                ])
            })
            .collect();
        return Ok(Reply::Array(vec![
            Reply::Integer(group.pending.len() as i64),
            first.reply(),
            last.reply(),
            Reply::Array(owners),
        ]));
    };
    let ids: Vec<StreamId> = match consumer {
        Some(c) => match group.consumers.get(c) {
            Some(c) => c.pending.iter().copied().collect(),
            None => return Ok(Reply::Array(Vec::new())),
        },
        None => group.pending.keys().copied().collect(),
    };
    let mut out = Vec::new();
    if start > end {
        return Ok(Reply::Array(out));
    }
    for id in ids.into_iter().filter(|id| *id >= start && *id <= end) {
        if out.len() >= count {
            break;
        }
        let p = &group.pending[&id];
        let idle = view.now_ms.saturating_sub(p.delivered_ms);
        if min_idle > 0 && (idle as i64) < min_idle {
            continue;
        }
        out.push(Reply::Array(vec![
            id.reply(),
            Reply::Bulk(p.consumer.clone()),
            Reply::Integer(idle as i64),
            Reply::Integer(p.deliveries as i64),
        ]));
    }
    Ok(Reply::Array(out))
}

/// Moves pending entry `id` to `consumer` with delivery time `at`; `deliveries` overrides
/// the count, else it grows unless `justid`.
fn claim_one(
    group: &mut Group,
    id: StreamId,
    consumer: &Bytes,
    at: u64,
    deliveries: Option<u64>,
    justid: bool,
) {
    let pending = group.pending.get_mut(&id).expect("pending");
    let old = std::mem::replace(&mut pending.consumer, consumer.clone());
    pending.delivered_ms = at;
    match deliveries {
        Some(n) => pending.deliveries = n,
        None if !justid => pending.deliveries += 1,
        None => {}
    }
    if let Some(owner) = group.consumers.get_mut(&old) {
        owner.pending.remove(&id);
    }
    group.consumers.get_mut(consumer).expect("seen").pending.insert(id);
}

/// Drops pending entry `id` (its entry was deleted).
fn drop_pending(group: &mut Group, id: StreamId) {
    if let Some(p) = group.pending.remove(&id) {
        if let Some(owner) = group.consumers.get_mut(&p.consumer) {
            owner.pending.remove(&id);
        }
    }
}

fn claimed_reply(
    stream_entries: &imbl::OrdMap<StreamId, Vec<Bytes>>,
    id: StreamId,
    justid: bool,
) -> Reply {
    match (justid, stream_entries.get(&id)) {
        (true, _) => id.reply(),
        (false, Some(fields)) => Stream::entry_reply(id, fields),
        (false, None) => Reply::Null,
    }
}

fn xclaim(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let (key, name, consumer) = (&args[1], &args[2], &args[3]);
    let exists = stream_of(&ctx.view(), key)?.is_some_and(|s| s.groups.contains_key(name));
    if !exists {
        return Err(no_group(key, name));
    }
    let min_idle =
        super::parse_i64_or(&args[4], "ERR Invalid min-idle-time argument for XCLAIM")?.max(0);
    let mut j = 5;
    let mut ids = Vec::new();
    while j < args.len() {
        match StreamId::parse(&args[j], 0) {
            Some(id) => ids.push(id),
            None => break,
        }
        j += 1;
    }
    let now = ctx.now_ms() as i64;
    let (mut force, mut justid, mut retry, mut delivery, mut last_id) =
        (false, false, None, None, StreamId::MIN);
    while j < args.len() {
        let more = args.len() - 1 - j;
        let opt = &args[j];
        if is(opt, "force") {
            force = true;
        } else if is(opt, "justid") {
            justid = true;
        } else if is(opt, "idle") && more > 0 {
            j += 1;
            delivery = Some(
                now - super::parse_i64_or(&args[j], "ERR Invalid IDLE option argument for XCLAIM")?,
            );
        } else if is(opt, "time") && more > 0 {
            j += 1;
            delivery =
                Some(super::parse_i64_or(&args[j], "ERR Invalid TIME option argument for XCLAIM")?);
        } else if is(opt, "retrycount") && more > 0 {
            j += 1;
            retry = Some(super::parse_i64_or(
                &args[j],
                "ERR Invalid RETRYCOUNT option argument for XCLAIM",
            )?);
        } else if is(opt, "lastid") && more > 0 {
            j += 1;
            last_id = id_arg(&args[j], 0)?;
        } else {
            return Err(Reply::error(format!(
                "ERR Unrecognized XCLAIM option '{}'",
                String::from_utf8_lossy(opt)
            )));
        }
        j += 1;
    }
    let at = match delivery {
        Some(t) if t >= 0 && t <= now => t as u64,
        _ => now as u64,
    };
    let stream = stream_mut(ctx, key)?.expect("checked");
    let entries = stream.entries.clone();
    let group = stream.groups.get_mut(name).expect("checked");
    if last_id > group.last_id {
        group.last_id = last_id;
    }
    let mut out = Vec::new();
    let mut seen = false;
    for id in ids {
        if !entries.contains_key(&id) {
            drop_pending(group, id);
            continue;
        }
        let fresh = !group.pending.contains_key(&id);
        if fresh && !force {
            continue;
        }
        if fresh {
            group.pending.insert(
                id,
                PendingEntry { consumer: Bytes::new(), delivered_ms: 0, deliveries: 0 },
            );
        } else if min_idle > 0 && now - (group.pending[&id].delivered_ms as i64) < min_idle {
            continue;
        }
        if !seen {
            consumer_seen(group, consumer, now as u64);
            seen = true;
        }
        let deliveries = retry.filter(|n| *n >= 0).map(|n| n as u64);
        claim_one(group, id, consumer, at, deliveries, justid);
        out.push(claimed_reply(&entries, id, justid));
    }
    Ok(Reply::Array(out))
}

fn xautoclaim(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let (key, name, consumer) = (&args[1], &args[2], &args[3]);
    let min_idle =
        super::parse_i64_or(&args[4], "ERR Invalid min-idle-time argument for XAUTOCLAIM")?.max(0);
    let start = bound_arg(&args[5], true)?;
    let (mut count, mut justid) = (100usize, false);
    let mut j = 6;
    while j < args.len() {
        if is(&args[j], "count") && j + 1 < args.len() {
            const COUNT_MAX: i64 = i64::MAX / 16;
            match crate::resp::parse_i64(&args[j + 1]) {
                Some(n) if (1..=COUNT_MAX).contains(&n) => count = n as usize,
                _ => return Err(Reply::error("ERR COUNT must be > 0")),
            }
            j += 1;
        } else if is(&args[j], "justid") {
            justid = true;
        } else {
            return Err(syntax());
        }
        j += 1;
    }
    let exists = stream_of(&ctx.view(), key)?.is_some_and(|s| s.groups.contains_key(name));
    if !exists {
        return Err(no_group(key, name));
    }
    let now = ctx.now_ms();
    let stream = stream_mut(ctx, key)?.expect("checked");
    let entries = stream.entries.clone();
    let group = stream.groups.get_mut(name).expect("checked");
    let candidates: Vec<StreamId> = group.pending.range(start..).map(|(id, _)| *id).collect();
    let mut attempts = count.saturating_mul(10);
    let (mut claimed, mut deleted) = (Vec::new(), Vec::new());
    let mut next = 0;
    let mut seen = false;
    while attempts > 0 && count > 0 && next < candidates.len() {
        attempts -= 1;
        let id = candidates[next];
        next += 1;
        if !entries.contains_key(&id) {
            drop_pending(group, id);
            deleted.push(id.reply());
            count -= 1;
            continue;
        }
        if min_idle > 0 && (now.saturating_sub(group.pending[&id].delivered_ms) as i64) < min_idle {
            continue;
        }
        if !seen {
            consumer_seen(group, consumer, now);
            seen = true;
        }
        claim_one(group, id, consumer, now, None, justid);
        claimed.push(claimed_reply(&entries, id, justid));
        count -= 1;
    }
    let cursor = candidates.get(next).copied().unwrap_or(StreamId::MIN);
    Ok(Reply::Array(vec![cursor.reply(), Reply::Array(claimed), Reply::Array(deleted)]))
}

const XINFO_HELP: &[&str] = &[
    "XINFO <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CONSUMERS <key> <groupname>",
    "    Show consumers of <groupname>.",
    "GROUPS <key>",
    "    Show the stream consumer groups.",
    "STREAM <key> [FULL [COUNT <count>]",
    "    Show information about the stream.",
    "HELP",
    "    Prints this help.",
];

/// A map reply of `(name, value)` pairs (a flat array in RESP2).
pub(super) fn fields(pairs: Vec<(&str, Reply)>) -> Reply {
    Reply::Map(pairs.into_iter().map(|(k, v)| (Reply::bulk(k.as_bytes()), v)).collect())
}

pub(super) fn xinfo(view: &View<'_>, args: &[Bytes]) -> CmdResult {
    let sub = &args[1];
    if is(sub, "help") && args.len() == 2 {
        return Ok(help(XINFO_HELP));
    }
    let known = ["stream", "groups", "consumers"].iter().any(|n| is(sub, n));
    if !known {
        return Err(unknown_subcommand(sub, "XINFO"));
    }
    let wrong = || {
        Reply::error(format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try XINFO HELP.",
            String::from_utf8_lossy(sub).to_lowercase()
        ))
    };
    if is(sub, "stream") && args.len() > 3 {
        return super::stream_admin::xinfo_stream_full(view, args);
    }
    let arity_ok = args.len() == if is(sub, "consumers") { 4 } else { 3 };
    if !arity_ok {
        return Err(wrong());
    }
    let key = &args[2];
    let Some(stream) = stream_of(view, key)? else {
        return Err(Reply::error("ERR no such key"));
    };
    if is(sub, "consumers") {
        let Some(group) = stream.groups.get(&args[3]) else {
            return Err(no_group_for_key(key, &args[3]));
        };
        let consumers = group
            .consumers
            .iter()
            .map(|(n, c)| {
                fields(vec![
                    ("name", Reply::Bulk(n.clone())),
                    ("pending", Reply::Integer(c.pending.len() as i64)),
                    ("idle", Reply::Integer(view.now_ms.saturating_sub(c.seen_ms) as i64)),
                ])
            })
            .collect();
        return Ok(Reply::Array(consumers));
    }
    if is(sub, "groups") {
        let groups = stream
            .groups
            .iter()
            .map(|(n, g)| {
                fields(vec![
                    ("name", Reply::Bulk(n.clone())),
                    ("consumers", Reply::Integer(g.consumers.len() as i64)),
                    ("pending", Reply::Integer(g.pending.len() as i64)),
                    ("last-delivered-id", g.last_id.reply()),
                    (
                        "entries-read",
                        g.entries_read.map_or(Reply::Null, |n| Reply::Integer(n as i64)),
                    ),
                    ("lag", lag(stream, g).map_or(Reply::Null, Reply::Integer)),
                ])
            })
            .collect();
        return Ok(Reply::Array(groups));
    }
    let edge = |e: Option<(&StreamId, &Vec<Bytes>)>| {
        e.map_or(Reply::Null, |(id, f)| Stream::entry_reply(*id, f))
    };
    let mut reply = super::stream_admin::stream_header(stream);
    reply.extend([
        ("groups", Reply::Integer(stream.groups.len() as i64)),
        ("first-entry", edge(stream.entries.get_min().map(|(k, v)| (k, v)))),
        ("last-entry", edge(stream.entries.get_max().map(|(k, v)| (k, v)))),
    ]);
    Ok(fields(reply))
}
