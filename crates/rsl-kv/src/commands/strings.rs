//! String commands: GET, SET and its variants, counters, ranges, GETEX, GETDEL, LCS.

use bytes::Bytes;

use super::{
    bulk_or_null, flags, float_arg, int_arg, is, parse_float, read, syntax, write, CmdResult,
    CommandDef, Ctx, View, ERR_NOT_INTEGER, ERR_OVERFLOW, ERR_TOO_BIG, FLAG_FAST, K1,
};
use crate::limits;
use crate::resp::{parse_i64, Reply};
use crate::value::Value;

pub(super) const COMMANDS: &[CommandDef] = &[
    flags(read("get", 2, K1, get), FLAG_FAST),
    write("set", -3, K1, set),
    flags(write("setnx", 3, K1, setnx), FLAG_FAST),
    write("setex", 4, K1, setex),
    write("psetex", 4, K1, setex),
    flags(write("getset", 3, K1, getset), FLAG_FAST),
    flags(read("mget", -2, (1, -1, 1), mget), FLAG_FAST),
    write("mset", -3, (1, -1, 2), mset),
    write("msetnx", -3, (1, -1, 2), msetnx),
    flags(write("incr", 2, K1, incr), FLAG_FAST),
    flags(write("decr", 2, K1, incr), FLAG_FAST),
    flags(write("incrby", 3, K1, incr), FLAG_FAST),
    flags(write("decrby", 3, K1, incr), FLAG_FAST),
    flags(write("incrbyfloat", 3, K1, incrbyfloat), FLAG_FAST),
    flags(write("append", 3, K1, append), FLAG_FAST),
    flags(read("strlen", 2, K1, strlen), FLAG_FAST),
    flags(write("getdel", 2, K1, getdel), FLAG_FAST),
    write("getex", -2, K1, getex),
    write("setrange", 4, K1, setrange),
    read("getrange", 4, K1, getrange),
    read("substr", 4, K1, getrange),
    read("lcs", -3, (1, 2, 1), lcs),
];

fn get(view: &View<'_>, args: &[Bytes]) -> CmdResult {
    Ok(bulk_or_null(view.string(&args[1])?))
}

fn strlen(view: &View<'_>, args: &[Bytes]) -> CmdResult {
    Ok(Reply::Integer(view.string(&args[1])?.map_or(0, |s| s.len() as i64)))
}

fn mget(view: &View<'_>, args: &[Bytes]) -> CmdResult {
    let values = args[1..].iter().map(|k| match view.get(k) {
        Some(Value::Str(s)) => Reply::Bulk(s.clone()),
        _ => Reply::Null,
    });
    Ok(Reply::Array(values.collect()))
}

/// The live string at `key` in a write, or WRONGTYPE.
pub(super) fn string_mut(ctx: &Ctx<'_>, key: &[u8]) -> Result<Option<Bytes>, Reply> {
    ctx.view().string(key).map(|s| s.cloned())
}

/// A relative or absolute deadline option's value, as Unix milliseconds, checked as Redis
/// 7.0 does (`command` names the command in the error).
pub(super) fn deadline(
    command: &str,
    option: &[u8],
    amount: &[u8],
    now_ms: u64,
) -> Result<u64, Reply> {
    let amount = int_arg(amount)?;
    let invalid = || Reply::error(format!("ERR invalid expire time in '{command}' command"));
    if amount <= 0 {
        return Err(invalid());
    }
    let seconds = is(option, "ex") || is(option, "exat");
    let relative = is(option, "ex") || is(option, "px");
    let ms = if seconds { amount.checked_mul(1000).ok_or_else(invalid)? } else { amount };
    let base = if relative { i64::try_from(now_ms).map_err(|_| invalid())? } else { 0 };
    let at = ms.checked_add(base).ok_or_else(invalid)?;
    Ok(at as u64)
}

fn is_expiry_option(arg: &[u8]) -> bool {
    ["ex", "px", "exat", "pxat"].iter().any(|w| is(arg, w))
}

/// What SET does to the key's time to live.
#[derive(Clone, Copy, PartialEq)]
enum Ttl {
    Clear,
    Keep,
    At(u64),
}

fn set(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let (mut nx, mut xx, mut get, mut ttl, mut ttl_given) =
        (false, false, false, Ttl::Clear, false);
    let mut i = 3;
    while i < args.len() {
        let option = &args[i];
        if is(option, "nx") && !xx {
            nx = true;
        } else if is(option, "xx") && !nx {
            xx = true;
        } else if is(option, "get") {
            get = true;
        } else if is(option, "keepttl") && !ttl_given {
            ttl = Ttl::Keep;
            ttl_given = true;
        } else if is_expiry_option(option) && !ttl_given && i + 1 < args.len() {
            ttl_given = true;
            i += 1;
            ttl = Ttl::At(deadline("set", option, &args[i], ctx.now_ms())?);
        } else {
            return Err(syntax());
        }
        i += 1;
    }
    let old = if get { string_mut(ctx, &args[1])? } else { None };
    let exists = ctx.db.keys.contains_key(&args[1][..]);
    if (nx && exists) || (xx && !exists) {
        return Ok(if get { bulk_or_null(old.as_ref()) } else { Reply::Null });
    }
    let expire_at_ms = match ttl {
        Ttl::Clear => None,
        Ttl::Keep => ctx.db.keys.get(&args[1][..]).and_then(|e| e.expire_at_ms),
        Ttl::At(at) => Some(at),
    };
    ctx.db.store(args[1].clone(), Value::Str(args[2].clone()), expire_at_ms);
    Ok(if get { bulk_or_null(old.as_ref()) } else { Reply::ok() })
}

fn setnx(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    if ctx.db.keys.contains_key(&args[1][..]) {
        return Ok(Reply::Integer(0));
    }
    ctx.db.store(args[1].clone(), Value::Str(args[2].clone()), None);
    Ok(Reply::Integer(1))
}

fn setex(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let (name, unit) = if is(&args[0], "setex") { ("setex", "ex") } else { ("psetex", "px") };
    let at = deadline(name, unit.as_bytes(), &args[2], ctx.now_ms())?;
    ctx.db.store(args[1].clone(), Value::Str(args[3].clone()), Some(at));
    Ok(Reply::ok())
}

fn getset(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let old = string_mut(ctx, &args[1])?;
    ctx.db.store(args[1].clone(), Value::Str(args[2].clone()), None);
    Ok(bulk_or_null(old.as_ref()))
}

fn mset(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    if args.len().is_multiple_of(2) {
        return Err(super::arity_error(if is(&args[0], "mset") { "mset" } else { "msetnx" }));
    }
    for pair in args[1..].chunks_exact(2) {
        ctx.db.store(pair[0].clone(), Value::Str(pair[1].clone()), None);
    }
    Ok(Reply::ok())
}

fn msetnx(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    if args.len().is_multiple_of(2) {
        return Err(super::arity_error("msetnx"));
    }
    if args[1..].chunks_exact(2).any(|pair| ctx.db.keys.contains_key(&pair[0][..])) {
        return Ok(Reply::Integer(0));
    }
    mset(ctx, args)?;
    Ok(Reply::Integer(1))
}

fn incr(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let name = args[0].to_ascii_lowercase();
    let delta = match &name[..] {
        b"incr" => 1,
        b"decr" => -1,
        b"incrby" => int_arg(&args[2])?,
        _ => int_arg(&args[2])?
            .checked_neg()
            .ok_or_else(|| Reply::error("ERR decrement would overflow"))?,
    };
    let current = match string_mut(ctx, &args[1])? {
        None => 0,
        Some(s) => parse_i64(&s).ok_or_else(|| Reply::error(ERR_NOT_INTEGER))?,
    };
    let next = current.checked_add(delta).ok_or_else(|| Reply::error(ERR_OVERFLOW))?;
    put_string(ctx, &args[1], Bytes::from(next.to_string()));
    Ok(Reply::Integer(next))
}

/// Replaces the string at `key`, keeping its deadline.
pub(super) fn put_string(ctx: &mut Ctx<'_>, key: &Bytes, value: Bytes) {
    match ctx.db.entry_mut(key) {
        Some(entry) => entry.value = Value::Str(value),
        None => ctx.db.store(key.clone(), Value::Str(value), None),
    }
}

/// Formats an INCRBYFLOAT result: the shortest decimal that reads back as the same double,
/// never in exponent form (Redis prints its long double with `%.17Lf` and strips zeros).
pub(super) fn format_float(value: f64) -> String {
    let text = format!("{value}");
    if text == "-0" {
        "0".into()
    } else {
        text
    }
}

fn incrbyfloat(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    // Redis's order: the key's type, its value, then the increment.
    let current = match string_mut(ctx, &args[1])? {
        None => 0.0,
        Some(s) => parse_float(&s).ok_or_else(|| Reply::error(super::ERR_NOT_FLOAT))?,
    };
    let delta = float_arg(&args[2])?;
    let next = current + delta;
    if !next.is_finite() {
        return Err(Reply::error("ERR increment would produce NaN or Infinity"));
    }
    let text = Bytes::from(format_float(next));
    put_string(ctx, &args[1], text.clone());
    Ok(Reply::Bulk(text))
}

fn append(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let value = match string_mut(ctx, &args[1])? {
        None => args[2].clone(),
        Some(old) => {
            if old.len() + args[2].len() > limits::VALUE_BYTES_MAX {
                return Err(Reply::error(ERR_TOO_BIG));
            }
            let mut joined = Vec::with_capacity(old.len() + args[2].len());
            joined.extend_from_slice(&old);
            joined.extend_from_slice(&args[2]);
            Bytes::from(joined)
        }
    };
    let len = value.len() as i64;
    put_string(ctx, &args[1], value);
    Ok(Reply::Integer(len))
}

fn getdel(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let old = string_mut(ctx, &args[1])?;
    if old.is_some() {
        ctx.db.remove(&args[1]);
    }
    Ok(bulk_or_null(old.as_ref()))
}

fn getex(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let mut change: Option<Option<u64>> = None;
    let mut i = 2;
    while i < args.len() {
        let option = &args[i];
        if is_expiry_option(option) && change.is_none() && i + 1 < args.len() {
            change = Some(Some(deadline("getex", option, &args[i + 1], ctx.now_ms())?));
            i += 2;
        } else if is(option, "persist") && change.is_none() {
            change = Some(None);
            i += 1;
        } else {
            return Err(syntax());
        }
    }
    let value = string_mut(ctx, &args[1])?;
    let current = ctx.db.keys.get(&args[1][..]).and_then(|e| e.expire_at_ms);
    // PERSIST on a key without a deadline changes nothing (and so does not touch WATCH).
    if let (Some(_), Some(at)) = (&value, change) {
        if at.is_some() || current.is_some() {
            ctx.db.set_expiry(&args[1], at);
        }
    }
    Ok(bulk_or_null(value.as_ref()))
}

fn setrange(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let offset = int_arg(&args[2])?;
    if offset < 0 {
        return Err(Reply::error("ERR offset is out of range"));
    }
    let old = string_mut(ctx, &args[1])?;
    let patch = &args[3];
    if patch.is_empty() {
        return Ok(Reply::Integer(old.map_or(0, |s| s.len() as i64)));
    }
    let offset = offset as usize;
    if offset.saturating_add(patch.len()) > limits::VALUE_BYTES_MAX {
        return Err(Reply::error(ERR_TOO_BIG));
    }
    let mut value = old.map(|s| s.to_vec()).unwrap_or_default();
    if value.len() < offset + patch.len() {
        value.resize(offset + patch.len(), 0);
    }
    value[offset..offset + patch.len()].copy_from_slice(patch);
    let len = value.len() as i64;
    put_string(ctx, &args[1], Bytes::from(value));
    Ok(Reply::Integer(len))
}

fn getrange(view: &View<'_>, args: &[Bytes]) -> CmdResult {
    let (start, end) = (int_arg(&args[2])?, int_arg(&args[3])?);
    let value = view.string(&args[1])?.cloned().unwrap_or_default();
    Ok(Reply::Bulk(byte_range(&value, start, end)))
}

/// GETRANGE's slice, with Redis 7.0's rules for negative and out-of-range indexes.
fn byte_range(value: &Bytes, start: i64, end: i64) -> Bytes {
    let len = value.len() as i64;
    if (start < 0 && end < 0 && start > end) || len == 0 {
        return Bytes::new();
    }
    let start = if start < 0 { (len + start).max(0) } else { start };
    let end = if end < 0 { (len + end).max(0) } else { end }.min(len - 1);
    if start > end {
        return Bytes::new();
    }
    value.slice(start as usize..=end as usize)
}

fn lcs(view: &View<'_>, args: &[Bytes]) -> CmdResult {
    let (mut len_only, mut idx, mut with_len, mut min_len) = (false, false, false, 0usize);
    let mut i = 3;
    while i < args.len() {
        if is(&args[i], "len") {
            len_only = true;
        } else if is(&args[i], "idx") {
            idx = true;
        } else if is(&args[i], "withmatchlen") {
            with_len = true;
        } else if is(&args[i], "minmatchlen") && i + 1 < args.len() {
            i += 1;
            min_len = int_arg(&args[i])?.max(0) as usize;
        } else {
            return Err(syntax());
        }
        i += 1;
    }
    let strings = |key: &[u8]| match view.get(key) {
        None => Ok(Bytes::new()),
        Some(Value::Str(s)) => Ok(s.clone()),
        Some(_) => Err(Reply::error("ERR The specified keys must contain string values")),
    };
    let (a, b) = (strings(&args[1])?, strings(&args[2])?);
    if len_only && idx {
        return Err(Reply::error(
            "ERR If you want both the length and indexes, please just use IDX.",
        ));
    }
    if (a.len() + 1).saturating_mul(b.len() + 1) > limits::LCS_CELLS_MAX {
        return Err(Reply::error(
            "ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len",
        ));
    }
    let table = lcs_table(&a, &b);
    let total = table[a.len() * (b.len() + 1) + b.len()] as i64;
    if len_only {
        return Ok(Reply::Integer(total));
    }
    let (text, matches) = lcs_walk(&a, &b, &table, min_len, with_len);
    if !idx {
        return Ok(Reply::Bulk(Bytes::from(text)));
    }
    Ok(Reply::Map(vec![
        (Reply::text("matches"), Reply::Array(matches)),
        (Reply::text("len"), Reply::Integer(total)),
    ]))
}

/// The dynamic-programming table: cell (i, j) holds the LCS length of `a[..i]` and `b[..j]`.
fn lcs_table(a: &[u8], b: &[u8]) -> Vec<u32> {
    let width = b.len() + 1;
    let mut table = vec![0u32; (a.len() + 1) * width];
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            table[i * width + j] = if a[i - 1] == b[j - 1] {
                table[(i - 1) * width + j - 1] + 1
            } else {
                table[(i - 1) * width + j].max(table[i * width + j - 1])
            };
        }
    }
    table
}

/// Walks the table back from the end: the common subsequence and, as Redis reports them with
/// IDX, its matching ranges from the last to the first.
fn lcs_walk(
    a: &[u8],
    b: &[u8],
    table: &[u32],
    min_len: usize,
    with_len: bool,
) -> (Vec<u8>, Vec<Reply>) {
    let width = b.len() + 1;
    let cell = |i: usize, j: usize| table[i * width + j];
    let (mut i, mut j) = (a.len(), b.len());
    let mut text = Vec::new();
    let mut matches = Vec::new();
    // The current range: (a_start, a_end, b_start, b_end).
    let mut range: Option<(usize, usize, usize, usize)> = None;
    while i > 0 && j > 0 {
        let mut emit = false;
        if a[i - 1] == b[j - 1] {
            text.push(a[i - 1]);
            range = match range {
                None => Some((i - 1, i - 1, j - 1, j - 1)),
                Some((a0, a1, b0, b1)) if a0 == i && b0 == j => Some((a0 - 1, a1, b0 - 1, b1)),
                Some(r) => {
                    emit = true;
                    Some(r)
                }
            };
            if range.is_some_and(|(a0, _, b0, _)| a0 == 0 || b0 == 0) {
                emit = true;
            }
            i -= 1;
            j -= 1;
        } else {
            if cell(i - 1, j) > cell(i, j - 1) {
                i -= 1;
            } else {
                j -= 1;
            }
            emit = range.is_some();
        }
        if emit {
            let (a0, a1, b0, b1) = range.take().expect("a range to emit");
            let len = a1 - a0 + 1;
            if min_len == 0 || len >= min_len {
                let pair = |x: usize, y: usize| {
                    Reply::Array(vec![Reply::Integer(x as i64), Reply::Integer(y as i64)])
                };
                let mut item = vec![pair(a0, a1), pair(b0, b1)];
                if with_len {
                    item.push(Reply::Integer(len as i64));
                }
                matches.push(Reply::Array(item));
            }
        }
    }
    text.reverse();
    (text, matches)
}
