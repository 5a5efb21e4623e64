//! Stream commands without consumer groups: XADD (NOMKSTREAM, MAXLEN/MINID with `=` or `~`
//! and LIMIT, explicit, `ms-*` and `*` ids), XLEN, XRANGE, XREVRANGE, XDEL, XTRIM, XREAD and
//! XINFO STREAM; the groups are in [`super::stream_groups`].
//!
//! The id XADD generates for `*` is Redis's rule over the machine's clock (the request's
//! stamp): `now-0` when `now` is past the last id's milliseconds, else the last id plus one.
//! So every replica generates the same id at the same point in the log.
//!
//! XREAD is a read. Its BLOCK option is served by the server (`server/streams.rs`), which
//! resolves `$` and tries the read again each time a replicated XADD wakes it; in the
//! machine (a transaction, a script, each of the server's tries) BLOCK never blocks and
//! answers null when nothing is there, as Redis does for a client that cannot block.
//!
//! Trimming with `~` trims exactly here (at most LIMIT entries, 10,000 by default), where
//! Redis removes only whole nodes of its radix tree and so may keep more entries: both keep
//! at least the threshold, which is all `~` promises.

use bytes::Bytes;

use super::{
    arity_error, flags, int_arg, is, read, syntax, write, CmdResult, CommandDef, Ctx, View,
    FLAG_BLOCK_OPTION, FLAG_FAST, FLAG_MOVABLEKEYS, K1,
};
use crate::resp::{Proto, Reply};
use crate::stream::{Stream, StreamId, Trim};
use crate::value::{Kind, Value};

pub(super) const COMMANDS: &[CommandDef] = &[
    flags(write("xadd", -5, K1, xadd), FLAG_FAST),
    flags(read("xlen", 2, K1, xlen), FLAG_FAST),
    read("xrange", -4, K1, xrange),
    read("xrevrange", -4, K1, xrange),
    flags(write("xdel", -3, K1, xdel), FLAG_FAST),
    write("xtrim", -4, K1, xtrim),
    flags(read("xread", -4, (0, 0, 0), xread), FLAG_BLOCK_OPTION | FLAG_MOVABLEKEYS),
    read("xinfo", -2, (2, 2, 1), super::stream_groups::xinfo),
];

/// Redis's error for a malformed id.
pub(super) const ERR_INVALID_ID: &str =
    "ERR Invalid stream ID specified as stream command argument";
const ERR_ID_TOO_SMALL: &str =
    "ERR The ID specified in XADD is equal or smaller than the target stream top item";
const ERR_ID_ZERO: &str = "ERR The ID specified in XADD must be greater than 0-0";
const ERR_EXHAUSTED: &str =
    "ERR The stream has exhausted the last possible ID, unable to add more items";
/// The entries `~` trims at most when no LIMIT is given: Redis's `100 * stream-node-max-entries`.
const APPROX_TRIM_LIMIT_DEFAULT: usize = 10_000;

/// A strict id argument (`ms` or `ms-seq`, no `-`, `+`, `$`), `ms` alone meaning `ms-seq_default`.
pub(super) fn id_arg(arg: &[u8], seq_default: u64) -> Result<StreamId, Reply> {
    StreamId::parse(arg, seq_default).ok_or_else(|| Reply::error(ERR_INVALID_ID))
}

/// A range bound: `-` and `+`, an id (`ms` alone taking the bound's end of its
/// milliseconds), or `(` and an id, exclusive.
pub(super) fn bound_arg(arg: &[u8], start: bool) -> Result<StreamId, Reply> {
    let seq_default = if start { 0 } else { u64::MAX };
    match arg {
        b"-" => return Ok(StreamId::MIN),
        b"+" => return Ok(StreamId::MAX),
        _ => {}
    }
    let Some(rest) = arg.strip_prefix(b"(") else { return id_arg(arg, seq_default) };
    let id = id_arg(rest, seq_default)?;
    let moved = if start { id.next() } else { id.prev() };
    moved.ok_or_else(|| {
        Reply::error(if start {
            "ERR invalid start ID for the interval"
        } else {
            "ERR invalid end ID for the interval"
        })
    })
}

/// The live stream at `key`, or WRONGTYPE.
pub(super) fn stream_of<'a>(view: &View<'a>, key: &[u8]) -> Result<Option<&'a Stream>, Reply> {
    Ok(view.of(key, Kind::Stream)?.map(|v| match v {
        Value::Stream(s) => &**s,
        _ => unreachable!("checked kind"),
    }))
}

/// XADD's and XTRIM's trimming options.
#[derive(Debug, Default)]
struct TrimArgs {
    threshold: Option<Trim>,
    approx: bool,
    limit: Option<usize>,
    no_mkstream: bool,
}

impl TrimArgs {
    /// The most entries this trim may remove (0: no limit).
    fn limit(&self) -> usize {
        if self.approx {
            self.limit.unwrap_or(APPROX_TRIM_LIMIT_DEFAULT)
        } else {
            0
        }
    }
}

/// Parses the trimming options from `args[2..]` as Redis's `streamParseAddOrTrimArgsOrReply`
/// does; for XADD, stops at the id and returns its position.
fn trim_args(args: &[Bytes], xadd: bool) -> Result<(TrimArgs, usize), Reply> {
    let mut parsed = TrimArgs::default();
    let mut limit_given = false;
    let mut i = 2;
    while i < args.len() {
        let more = args.len() - 1 - i;
        let opt = &args[i];
        if xadd && &opt[..] == b"*" {
            break;
        } else if (is(opt, "maxlen") || is(opt, "minid")) && more > 0 {
            if parsed.threshold.is_some() {
                return Err(Reply::error(
                    "ERR syntax error, MAXLEN and MINID options at the same time are not compatible",
                ));
            }
            parsed.approx = false;
            if more >= 2 && (&args[i + 1][..] == b"~" || &args[i + 1][..] == b"=") {
                parsed.approx = &args[i + 1][..] == b"~";
                i += 1;
            }
            let value = &args[i + 1];
            parsed.threshold = Some(if is(opt, "maxlen") {
                let n = int_arg(value)?;
                if n < 0 {
                    return Err(Reply::error("ERR The MAXLEN argument must be >= 0."));
                }
                Trim::MaxLen(n as u64)
            } else {
                Trim::MinId(id_arg(value, 0)?)
            });
            i += 1;
        } else if is(opt, "limit") && more > 0 {
            let n = int_arg(&args[i + 1])?;
            if n < 0 {
                return Err(Reply::error("ERR The LIMIT argument must be >= 0."));
            }
            parsed.limit = Some(n as usize);
            limit_given = true;
            i += 1;
        } else if xadd && is(opt, "nomkstream") {
            parsed.no_mkstream = true;
        } else if xadd {
            break;
        } else {
            return Err(syntax());
        }
        i += 1;
    }
    if parsed.limit.is_some_and(|n| n > 0) && parsed.threshold.is_none() {
        return Err(Reply::error(
            "ERR syntax error, LIMIT cannot be used without specifying a trimming strategy",
        ));
    }
    if !xadd && parsed.threshold.is_none() {
        return Err(Reply::error(
            "ERR syntax error, XTRIM must be called with a trimming strategy",
        ));
    }
    if limit_given && !parsed.approx {
        return Err(Reply::error(
            "ERR syntax error, LIMIT cannot be used without the special ~ option",
        ));
    }
    Ok((parsed, i))
}

/// XADD's id argument: `*` (None), `ms-*` (the milliseconds only), or a whole id.
enum NewId {
    Auto,
    Ms(u64),
    Exact(StreamId),
}

fn new_id_arg(arg: &[u8]) -> Result<NewId, Reply> {
    if arg == b"*" {
        return Ok(NewId::Auto);
    }
    if let Some(ms) = arg.strip_suffix(b"-*") {
        // `ms-*` takes only digits before the dash.
        if ms.contains(&b'-') {
            return Err(Reply::error(ERR_INVALID_ID));
        }
        return Ok(NewId::Ms(id_arg(ms, 0)?.ms));
    }
    Ok(NewId::Exact(id_arg(arg, 0)?))
}

fn xadd(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let (trim, id_pos) = trim_args(args, true)?;
    if id_pos >= args.len() {
        return Err(arity_error("xadd"));
    }
    let new_id = new_id_arg(&args[id_pos])?;
    let fields = &args[id_pos + 1..];
    if fields.len() < 2 || fields.len() % 2 == 1 {
        return Err(arity_error("xadd"));
    }
    if matches!(new_id, NewId::Exact(StreamId::MIN)) {
        return Err(Reply::error(ERR_ID_ZERO));
    }
    let now_ms = ctx.now_ms();
    let key = &args[1];
    let Some(value) = ctx.value_mut(key, Kind::Stream, !trim.no_mkstream)? else {
        return Ok(Reply::Null);
    };
    let stream = value.stream_mut();
    let last = stream.last_id;
    if last == StreamId::MAX {
        // A stream created by this XADD is never at the last id, so nothing is left empty.
        return Err(Reply::error(ERR_EXHAUSTED));
    }
    let id = match new_id {
        NewId::Auto if now_ms > last.ms => StreamId { ms: now_ms, seq: 0 },
        NewId::Auto => last.next().expect("below the last possible id"),
        NewId::Ms(ms) if ms == last.ms && last.seq == u64::MAX => return Err(too_small()),
        NewId::Ms(ms) if ms == last.ms => StreamId { ms, seq: last.seq + 1 },
        NewId::Ms(ms) if ms > last.ms => StreamId { ms, seq: 0 },
        NewId::Ms(_) => return Err(too_small()),
        NewId::Exact(id) if id > last => id,
        NewId::Exact(_) => return Err(too_small()),
    };
    let stream = ctx.db.entry_mut(key).expect("the stream exists").value.stream_mut();
    stream.entries.insert(id, fields.to_vec());
    stream.last_id = id;
    stream.entries_added += 1;
    if let Some(threshold) = trim.threshold {
        stream.trim(threshold, trim.limit());
    }
    ctx.ready(key);
    Ok(id.reply())
}

fn too_small() -> Reply {
    Reply::error(ERR_ID_TOO_SMALL)
}

fn xlen(view: &View<'_>, args: &[Bytes]) -> CmdResult {
    Ok(Reply::Integer(stream_of(view, &args[1])?.map_or(0, |s| s.len() as i64)))
}

/// The entries of `stream` from `start` to `end` inclusive, at most `count` (0: all), in
/// reverse when `rev`.
pub(super) fn range_reply(
    stream: &Stream,
    start: StreamId,
    end: StreamId,
    count: usize,
    rev: bool,
) -> Vec<Reply> {
    if start > end {
        return Vec::new();
    }
    let range = stream.entries.range(start..=end);
    let take = if count == 0 { usize::MAX } else { count };
    let reply = |(id, fields): (&StreamId, &Vec<Bytes>)| Stream::entry_reply(*id, fields);
    if rev {
        range.rev().take(take).map(reply).collect()
    } else {
        range.take(take).map(reply).collect()
    }
}

fn xrange(view: &View<'_>, args: &[Bytes]) -> CmdResult {
    let rev = is(&args[0], "xrevrange");
    let (start_arg, end_arg) = if rev { (&args[3], &args[2]) } else { (&args[2], &args[3]) };
    let start = bound_arg(start_arg, true)?;
    let end = bound_arg(end_arg, false)?;
    let mut count = None;
    let mut i = 4;
    while i < args.len() {
        if is(&args[i], "count") && i + 1 < args.len() {
            count = Some(int_arg(&args[i + 1])?.max(0) as usize);
            i += 2;
        } else {
            return Err(syntax());
        }
    }
    let Some(stream) = stream_of(view, &args[1])? else { return Ok(Reply::Array(Vec::new())) };
    if count == Some(0) {
        return Ok(Reply::NullArray);
    }
    Ok(Reply::Array(range_reply(stream, start, end, count.unwrap_or(0), rev)))
}

fn xdel(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let key = &args[1];
    // A missing key deletes nothing whatever the ids, as in Redis, which parses them only then.
    if ctx.view().of(key, Kind::Stream)?.is_none() {
        return Ok(Reply::Integer(0));
    }
    let ids = args[2..].iter().map(|a| id_arg(a, 0)).collect::<Result<Vec<_>, _>>()?;
    let Some(value) = ctx.value_mut(key, Kind::Stream, false)? else {
        return Ok(Reply::Integer(0));
    };
    let stream = value.stream_mut();
    let mut deleted = 0;
    for id in ids {
        if stream.entries.remove(&id).is_some() {
            deleted += 1;
            stream.max_deleted = stream.max_deleted.max(id);
        }
    }
    Ok(Reply::Integer(deleted))
}

fn xtrim(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let key = &args[1];
    let (trim, _) = trim_args(args, false)?;
    if ctx.view().of(key, Kind::Stream)?.is_none() {
        return Ok(Reply::Integer(0));
    }
    let threshold = trim.threshold.expect("XTRIM has a strategy");
    let stream = ctx.db.entry_mut(key).expect("the stream exists").value.stream_mut();
    Ok(Reply::Integer(stream.trim(threshold, trim.limit()) as i64))
}

/// XREAD's and XREADGROUP's options.
#[derive(Debug)]
pub struct ReadArgs<'a> {
    /// BLOCK's timeout in milliseconds, if given.
    pub block_ms: Option<u64>,
    /// COUNT (0: no limit).
    pub count: usize,
    /// GROUP's group and consumer.
    pub group: Option<(&'a Bytes, &'a Bytes)>,
    /// NOACK.
    pub noack: bool,
    /// The keys.
    pub keys: &'a [Bytes],
    /// Their ids, unparsed (`$`, `>` or an id).
    pub ids: &'a [Bytes],
}

/// Parses XREAD's or XREADGROUP's options as Redis's `xreadCommand` does.
pub fn read_args(args: &[Bytes], group_cmd: bool) -> Result<ReadArgs<'_>, Reply> {
    let mut parsed =
        ReadArgs { block_ms: None, count: 0, group: None, noack: false, keys: &[], ids: &[] };
    let mut streams = None;
    let mut i = 1;
    while i < args.len() {
        let more = args.len() - 1 - i;
        let opt = &args[i];
        if is(opt, "block") && more > 0 {
            i += 1;
            parsed.block_ms = Some(block_arg(&args[i])?);
        } else if is(opt, "count") && more > 0 {
            i += 1;
            parsed.count = int_arg(&args[i])?.max(0) as usize;
        } else if is(opt, "streams") && more > 0 {
            let rest = &args[i + 1..];
            if !rest.len().is_multiple_of(2) {
                // Redis names XREAD in this error for XREADGROUP too.
                return Err(Reply::error(
                    "ERR Unbalanced XREAD list of streams: for each stream key an ID or '$' must be specified.",
                ));
            }
            streams = Some(rest.split_at(rest.len() / 2));
            break;
        } else if is(opt, "group") && more >= 2 {
            if !group_cmd {
                return Err(Reply::error(
                    "ERR The GROUP option is only supported by XREADGROUP. You called XREAD instead.",
                ));
            }
            parsed.group = Some((&args[i + 1], &args[i + 2]));
            i += 2;
        } else if is(opt, "noack") {
            if !group_cmd {
                return Err(Reply::error(
                    "ERR The NOACK option is only supported by XREADGROUP. You called XREAD instead.",
                ));
            }
            parsed.noack = true;
        } else {
            return Err(syntax());
        }
        i += 1;
    }
    let Some((keys, ids)) = streams else { return Err(syntax()) };
    if group_cmd && parsed.group.is_none() {
        return Err(Reply::error("ERR Missing GROUP option for XREADGROUP"));
    }
    parsed.keys = keys;
    parsed.ids = ids;
    Ok(parsed)
}

/// BLOCK's milliseconds, with Redis's errors.
pub fn block_arg(arg: &[u8]) -> Result<u64, Reply> {
    let ms = crate::resp::parse_i64(arg)
        .ok_or_else(|| Reply::error("ERR timeout is not an integer or out of range"))?;
    if ms < 0 {
        return Err(Reply::error("ERR timeout is negative"));
    }
    Ok(ms as u64)
}

/// The reply of a read over several streams: a map in RESP3, an array of pairs in RESP2, or
/// null when no stream had anything.
pub(super) fn streams_reply(proto: Proto, served: Vec<(Bytes, Reply)>) -> Reply {
    if served.is_empty() {
        return Reply::NullArray;
    }
    match proto {
        Proto::Resp3 => Reply::Map(served.into_iter().map(|(k, v)| (Reply::Bulk(k), v)).collect()),
        Proto::Resp2 => Reply::Array(
            served.into_iter().map(|(k, v)| Reply::Array(vec![Reply::Bulk(k), v])).collect(),
        ),
    }
}

fn xread(view: &View<'_>, args: &[Bytes]) -> CmdResult {
    let parsed = read_args(args, false)?;
    let mut after = Vec::with_capacity(parsed.ids.len());
    for (key, id) in parsed.keys.iter().zip(parsed.ids) {
        let stream = stream_of(view, key)?;
        after.push(match &id[..] {
            b"$" => stream.map_or(StreamId::MIN, |s| s.last_id),
            b">" => {
                return Err(Reply::error(
                    "ERR The > ID can be specified only when calling XREADGROUP using the GROUP <group> <consumer> option.",
                ))
            }
            _ => id_arg(id, 0)?,
        });
    }
    let mut served = Vec::new();
    for (key, after) in parsed.keys.iter().zip(after) {
        let Some(stream) = stream_of(view, key)? else { continue };
        let Some(start) = after.next() else { continue };
        let entries = range_reply(stream, start, StreamId::MAX, parsed.count, false);
        if !entries.is_empty() {
            served.push((key.clone(), Reply::Array(entries)));
        }
    }
    Ok(streams_reply(view.proto, served))
}
