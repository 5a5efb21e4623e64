//! XSETID (setting a stream's last id, its count of entries ever added and its largest
//! deleted id) and XINFO STREAM FULL (a stream with its entries, groups, pending entries and
//! consumers), with Redis 7.0's replies and checks in Redis's order.

use bytes::Bytes;

use super::stream_groups::{fields, lag};
use super::streams::{id_arg, stream_of};
use super::{flags, int_arg, is, syntax, write, CmdResult, CommandDef, Ctx, View, FLAG_FAST, K1};
use crate::resp::Reply;
use crate::stream::{Stream, StreamId};
use crate::value::Kind;

pub(super) const COMMANDS: &[CommandDef] = &[flags(write("xsetid", -3, K1, xsetid), FLAG_FAST)];

fn xsetid(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let id = id_arg(&args[2], 0)?;
    let (mut entries_added, mut max_deleted) = (None, StreamId::MIN);
    let mut i = 3;
    while i < args.len() {
        let more = i + 1 < args.len();
        if is(&args[i], "entriesadded") && more {
            let n = int_arg(&args[i + 1])?;
            if n < 0 {
                return Err(Reply::error("ERR entries_added must be positive"));
            }
            entries_added = Some(n as u64);
        } else if is(&args[i], "maxdeletedid") && more {
            max_deleted = id_arg(&args[i + 1], 0)?;
            if id < max_deleted {
                return Err(Reply::error(
                    "ERR The ID specified in XSETID is smaller than the provided max_deleted_entry_id",
                ));
            }
        } else {
            return Err(syntax());
        }
        i += 2;
    }
    let Some(stream) = stream_of(&ctx.view(), &args[1])? else {
        return Err(Reply::error("ERR no such key"));
    };
    if let Some((top, _)) = stream.entries.get_max() {
        if id < *top {
            return Err(Reply::error(
                "ERR The ID specified in XSETID is smaller than the target stream top item",
            ));
        }
        if entries_added.is_some_and(|n| (stream.len() as u64) > n) {
            return Err(Reply::error(
                "ERR The entries_added specified in XSETID is smaller than the target stream length",
            ));
        }
    }
    // Checked before it changes, so that a refused XSETID leaves the key's version (WATCH).
    let value = ctx.value_mut(&args[1], Kind::Stream, false)?.expect("the stream exists");
    let stream = value.stream_mut();
    stream.last_id = id;
    if let Some(n) = entries_added {
        stream.entries_added = n;
    }
    // A MAXDELETEDID of 0-0 (or none) leaves the recorded one, as in Redis 7.0.
    if max_deleted != StreamId::MIN {
        stream.max_deleted = max_deleted;
    }
    Ok(Reply::ok())
}

/// The fields both forms of XINFO STREAM open with (plain and FULL), in Redis's order.
pub(super) fn stream_header(stream: &Stream) -> Vec<(&'static str, Reply)> {
    let (tree_keys, tree_nodes) = radix_estimate(stream.len());
    vec![
        ("length", Reply::Integer(stream.len() as i64)),
        ("radix-tree-keys", Reply::Integer(tree_keys)),
        ("radix-tree-nodes", Reply::Integer(tree_nodes)),
        ("last-generated-id", stream.last_id.reply()),
        ("max-deleted-entry-id", stream.max_deleted.reply()),
        ("entries-added", Reply::Integer(stream.entries_added as i64)),
        ("recorded-first-entry-id", stream.first_id().reply()),
    ]
}

/// The radix-tree key and node counts XINFO STREAM reports, estimated: Redis's tree holds up
/// to 100 entries a node (exact for a stream that never lost entries to XDEL).
pub(super) fn radix_estimate(len: usize) -> (i64, i64) {
    const NODE_ENTRIES_MAX: usize = 100;
    let keys = len.div_ceil(NODE_ENTRIES_MAX) as i64;
    (keys, keys + 1)
}

/// What XINFO STREAM FULL lists of each kind when COUNT is not given (or negative).
const FULL_COUNT_DEFAULT: usize = 10;

/// XINFO STREAM key FULL [COUNT n]: at most `n` entries, group pending entries and consumer
/// pending entries (10 by default, every one for 0).
pub(super) fn xinfo_stream_full(view: &View<'_>, args: &[Bytes]) -> CmdResult {
    let Some(stream) = stream_of(view, &args[2])? else {
        return Err(Reply::error("ERR no such key"));
    };
    let syntax_error = || {
        Reply::error(format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try XINFO HELP.",
            String::from_utf8_lossy(&args[1])
        ))
    };
    if !is(&args[3], "full") {
        return Err(syntax_error());
    }
    let count = match args.len() {
        4 => FULL_COUNT_DEFAULT,
        6 if is(&args[4], "count") => match int_arg(&args[5])? {
            n if n < 0 => FULL_COUNT_DEFAULT,
            0 => usize::MAX,
            n => usize::try_from(n).unwrap_or(usize::MAX),
        },
        _ => return Err(syntax_error()),
    };
    Ok(full(stream, count))
}

fn full(stream: &Stream, count: usize) -> Reply {
    let entries = stream.entries.iter().take(count).map(|(id, f)| Stream::entry_reply(*id, f));
    let groups = stream.groups.iter().map(|(name, g)| {
        let pending = g.pending.iter().take(count).map(|(id, p)| {
            Reply::Array(vec![
                id.reply(),
                Reply::Bulk(p.consumer.clone()),
                Reply::Integer(p.delivered_ms as i64),
                Reply::Integer(p.deliveries as i64),
            ])
        });
        let consumers = g.consumers.iter().map(|(cname, c)| {
            let pending = c.pending.iter().take(count).map(|id| {
                let p = g.pending.get(id).expect("a consumer's pending entry is the group's");
                Reply::Array(vec![
                    id.reply(),
                    Reply::Integer(p.delivered_ms as i64),
                    Reply::Integer(p.deliveries as i64),
                ])
            });
            fields(vec![
                ("name", Reply::Bulk(cname.clone())),
                ("seen-time", Reply::Integer(c.seen_ms as i64)),
                ("pel-count", Reply::Integer(c.pending.len() as i64)),
                ("pending", Reply::Array(pending.collect())),
            ])
        });
        fields(vec![
            ("name", Reply::Bulk(name.clone())),
            ("last-delivered-id", g.last_id.reply()),
            ("entries-read", g.entries_read.map_or(Reply::Null, |n| Reply::Integer(n as i64))),
            ("lag", lag(stream, g).map_or(Reply::Null, Reply::Integer)),
            ("pel-count", Reply::Integer(g.pending.len() as i64)),
            ("pending", Reply::Array(pending.collect())),
            ("consumers", Reply::Array(consumers.collect())),
        ])
    });
    let mut reply = stream_header(stream);
    reply.push(("entries", Reply::Array(entries.collect())));
    reply.push(("groups", Reply::Array(groups.collect())));
    fields(reply)
}
