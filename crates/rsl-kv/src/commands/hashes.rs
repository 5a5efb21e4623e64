//! Hash commands: HSET, HGET, HDEL, HGETALL, HINCRBY, HRANDFIELD, HSCAN and the rest.

use bytes::Bytes;

use super::keys::{page, parse_cursor, scan_options};
use super::strings::format_float;
use super::{
    bulk_or_null, flags, float_arg, int_arg, is, parse_float, read, read_random, write, CmdResult,
    CommandDef, Ctx, View, ERR_OVERFLOW, FLAG_FAST, K1,
};
use crate::glob::glob_match;
use crate::limits;
use crate::resp::{parse_i64, Proto, Reply};
use crate::value::Kind;

pub(super) const COMMANDS: &[CommandDef] = &[
    flags(write("hset", -4, K1, hset), FLAG_FAST),
    flags(write("hmset", -4, K1, hset), FLAG_FAST),
    flags(write("hsetnx", 4, K1, hsetnx), FLAG_FAST),
    flags(read("hget", 3, K1, hget), FLAG_FAST),
    flags(read("hmget", -3, K1, hmget), FLAG_FAST),
    flags(write("hdel", -3, K1, hdel), FLAG_FAST),
    flags(read("hexists", 3, K1, hexists), FLAG_FAST),
    flags(read("hlen", 2, K1, hlen), FLAG_FAST),
    flags(read("hstrlen", 3, K1, hstrlen), FLAG_FAST),
    read("hkeys", 2, K1, hkeys),
    read("hvals", 2, K1, hkeys),
    read("hgetall", 2, K1, hgetall),
    flags(write("hincrby", 4, K1, hincrby), FLAG_FAST),
    flags(write("hincrbyfloat", 4, K1, hincrbyfloat), FLAG_FAST),
    read("hrandfield", -2, K1, hrandfield),
    read("hscan", -3, K1, hscan),
];

fn hset(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    if args.len() % 2 == 1 {
        let name = String::from_utf8_lossy(&args[0]).to_ascii_lowercase();
        return Err(super::arity_error(&name));
    }
    let hash = ctx.value_mut(&args[1], Kind::Hash, true)?.expect("created").hash_mut();
    let mut added = 0;
    for pair in args[2..].chunks_exact(2) {
        added += i64::from(hash.insert(pair[0].clone(), pair[1].clone()).is_none());
    }
    Ok(if is(&args[0], "hmset") { Reply::ok() } else { Reply::Integer(added) })
}

fn hsetnx(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    if ctx.view().hash(&args[1])?.is_some_and(|h| h.contains_key(&args[2])) {
        return Ok(Reply::Integer(0));
    }
    let hash = ctx.value_mut(&args[1], Kind::Hash, true)?.expect("created").hash_mut();
    hash.insert(args[2].clone(), args[3].clone());
    Ok(Reply::Integer(1))
}

fn hget(view: &View<'_>, args: &[Bytes]) -> CmdResult {
    Ok(bulk_or_null(view.hash(&args[1])?.and_then(|h| h.get(&args[2]))))
}

fn hmget(view: &View<'_>, args: &[Bytes]) -> CmdResult {
    let hash = view.hash(&args[1])?;
    let values = args[2..].iter().map(|f| bulk_or_null(hash.and_then(|h| h.get(f))));
    Ok(Reply::Array(values.collect()))
}

fn hdel(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    if !ctx.view().hash(&args[1])?.is_some_and(|h| args[2..].iter().any(|f| h.contains_key(f))) {
        return Ok(Reply::Integer(0));
    }
    let Some(value) = ctx.value_mut(&args[1], Kind::Hash, false)? else {
        return Ok(Reply::Integer(0));
    };
    let hash = value.hash_mut();
    let removed = args[2..].iter().filter(|f| hash.remove(*f).is_some()).count();
    ctx.db.remove_if_empty(&args[1]);
    Ok(Reply::Integer(removed as i64))
}

fn hexists(view: &View<'_>, args: &[Bytes]) -> CmdResult {
    Ok(Reply::Integer(i64::from(view.hash(&args[1])?.is_some_and(|h| h.contains_key(&args[2])))))
}

fn hlen(view: &View<'_>, args: &[Bytes]) -> CmdResult {
    Ok(Reply::Integer(view.hash(&args[1])?.map_or(0, |h| h.len() as i64)))
}

fn hstrlen(view: &View<'_>, args: &[Bytes]) -> CmdResult {
    let len = view.hash(&args[1])?.and_then(|h| h.get(&args[2])).map_or(0, Bytes::len);
    Ok(Reply::Integer(len as i64))
}

fn hkeys(view: &View<'_>, args: &[Bytes]) -> CmdResult {
    let keys = is(&args[0], "hkeys");
    let Some(hash) = view.hash(&args[1])? else { return Ok(Reply::Array(Vec::new())) };
    let items = hash.iter().map(|(f, v)| Reply::Bulk(if keys { f.clone() } else { v.clone() }));
    Ok(Reply::Array(items.collect()))
}

fn hgetall(view: &View<'_>, args: &[Bytes]) -> CmdResult {
    let Some(hash) = view.hash(&args[1])? else { return Ok(Reply::Map(Vec::new())) };
    let pairs = hash.iter().map(|(f, v)| (Reply::Bulk(f.clone()), Reply::Bulk(v.clone())));
    Ok(Reply::Map(pairs.collect()))
}

fn hincrby(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let delta = int_arg(&args[3])?;
    let current = match ctx.view().hash(&args[1])?.and_then(|h| h.get(&args[2])) {
        None => 0,
        Some(v) => parse_i64(v).ok_or_else(|| Reply::error("ERR hash value is not an integer"))?,
    };
    let next = current.checked_add(delta).ok_or_else(|| Reply::error(ERR_OVERFLOW))?;
    let hash = ctx.value_mut(&args[1], Kind::Hash, true)?.expect("created").hash_mut();
    hash.insert(args[2].clone(), Bytes::from(next.to_string()));
    Ok(Reply::Integer(next))
}

fn hincrbyfloat(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let delta = float_arg(&args[3])?;
    let current = match ctx.view().hash(&args[1])?.and_then(|h| h.get(&args[2])) {
        None => 0.0,
        Some(v) => parse_float(v).ok_or_else(|| Reply::error("ERR hash value is not a float"))?,
    };
    let next = current + delta;
    if !next.is_finite() {
        return Err(Reply::error("ERR increment would produce NaN or Infinity"));
    }
    let text = Bytes::from(format_float(next));
    let hash = ctx.value_mut(&args[1], Kind::Hash, true)?.expect("created").hash_mut();
    hash.insert(args[2].clone(), text.clone());
    Ok(Reply::Bulk(text))
}

/// Picks `count` distinct indexes of `len` (all of them if `count >= len`), or, for a
/// negative count, `-count` indexes that may repeat; deterministic in `seed`.
pub(super) fn random_indexes(len: usize, count: i64, mut seed: u64) -> Vec<usize> {
    let mut next = || {
        seed = crate::db::mix(seed.wrapping_add(0x9e37_79b9_7f4a_7c15));
        seed
    };
    if count < 0 {
        return (0..count.unsigned_abs()).map(|_| (next() % len as u64) as usize).collect();
    }
    let count = (count as usize).min(len);
    if count == len {
        return (0..len).collect();
    }
    // A partial Fisher-Yates shuffle over the indexes, bounded by the count.
    let mut picked: std::collections::BTreeMap<usize, usize> = std::collections::BTreeMap::new();
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let j = i + (next() % (len - i) as u64) as usize;
        let at_j = *picked.get(&j).unwrap_or(&j);
        let at_i = *picked.get(&i).unwrap_or(&i);
        picked.insert(j, at_i);
        out.push(at_j);
    }
    out
}

/// The count argument of SRANDMEMBER, HRANDFIELD and ZRANDMEMBER, within Redis's range.
pub(super) fn random_count(arg: &[u8]) -> Result<i64, Reply> {
    let count = int_arg(arg)?;
    if count.unsigned_abs() > limits::RANDOM_COUNT_MAX as u64 {
        return Err(Reply::error("ERR value is out of range"));
    }
    Ok(count)
}

fn hrandfield(view: &View<'_>, args: &[Bytes]) -> CmdResult {
    let with_values = match args.len() {
        2 | 3 => false,
        4 if is(&args[3], "withvalues") => true,
        _ => return Err(super::syntax()),
    };
    let count = args.get(2).map(|c| random_count(c)).transpose()?;
    let hash = view.hash(&args[1])?;
    let seed = read_random(view, &args[1]);
    let Some(count) = count else {
        let Some(hash) = hash else { return Ok(Reply::Null) };
        let index = random_indexes(hash.len(), 1, seed)[0];
        return Ok(Reply::Bulk(hash.iter().nth(index).expect("an index within").0.clone()));
    };
    let Some(hash) = hash else { return Ok(Reply::Array(Vec::new())) };
    let entries: Vec<(&Bytes, &Bytes)> = hash.iter().collect();
    let mut items = Vec::new();
    for i in random_indexes(hash.len(), count, seed) {
        let (field, value) = entries[i];
        match (with_values, view.proto) {
            (false, _) => items.push(Reply::Bulk(field.clone())),
            (true, Proto::Resp3) => items
                .push(Reply::Array(vec![Reply::Bulk(field.clone()), Reply::Bulk(value.clone())])),
            (true, Proto::Resp2) => {
                items.push(Reply::Bulk(field.clone()));
                items.push(Reply::Bulk(value.clone()));
            }
        }
    }
    Ok(Reply::Array(items))
}

/// Collections up to this many elements are scanned in one page with cursor 0, as Redis does
/// for its compact (listpack and intset) encodings.
pub(super) const SCAN_WHOLE_LEN_MAX: usize = 128;

fn hscan(view: &View<'_>, args: &[Bytes]) -> CmdResult {
    let start = parse_cursor(&args[2])?;
    let options = scan_options(args, 3, false)?;
    let Some(hash) = view.hash(&args[1])? else {
        return Ok(Reply::Array(vec![Reply::text("0"), Reply::Array(Vec::new())]));
    };
    let count = if hash.len() <= SCAN_WHOLE_LEN_MAX { usize::MAX } else { options.count };
    let items = match start {
        None => hash.range::<_, Bytes>(..),
        Some(from) => hash.range(from..),
    };
    let (taken, next) = page(items, count);
    let mut flat = Vec::new();
    for (field, value) in taken {
        if options.pattern.as_ref().is_none_or(|p| glob_match(p, field, false)) {
            flat.push(Reply::Bulk(field.clone()));
            flat.push(Reply::Bulk(value.clone()));
        }
    }
    Ok(Reply::Array(vec![Reply::text(next.to_string()), Reply::Array(flat)]))
}
