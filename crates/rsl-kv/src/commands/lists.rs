//! List commands, the blocking pops included. Inside the machine a blocking pop never
//! blocks: with nothing to pop it answers null at once, as Redis does inside MULTI or a script.
//! The server makes it block: it waits for the hub to say a key is ready and tries again,
//! each try a replicated write (see `server::blocking`).

use bytes::Bytes;

use super::{
    bulk_or_null, count_arg, flags, index_range, int_arg, is, parse_float, read, syntax, write,
    CmdResult, CommandDef, Ctx, View, ERR_NO_SUCH_KEY, FLAG_BLOCKING, FLAG_FAST, K1,
};
use crate::resp::Reply;
use crate::value::Kind;

pub(super) const COMMANDS: &[CommandDef] = &[
    flags(write("lpush", -3, K1, push), FLAG_FAST),
    flags(write("rpush", -3, K1, push), FLAG_FAST),
    flags(write("lpushx", -3, K1, push), FLAG_FAST),
    flags(write("rpushx", -3, K1, push), FLAG_FAST),
    flags(write("lpop", -2, K1, pop), FLAG_FAST),
    flags(write("rpop", -2, K1, pop), FLAG_FAST),
    flags(read("llen", 2, K1, llen), FLAG_FAST),
    read("lrange", 4, K1, lrange),
    read("lindex", 3, K1, lindex),
    write("lset", 4, K1, lset),
    write("linsert", 5, K1, linsert),
    write("lrem", 4, K1, lrem),
    write("ltrim", 4, K1, ltrim),
    read("lpos", -3, K1, lpos),
    write("lmove", 5, (1, 2, 1), lmove),
    write("rpoplpush", 3, (1, 2, 1), lmove),
    flags(write("blpop", -3, (1, -2, 1), bpop), FLAG_BLOCKING),
    flags(write("brpop", -3, (1, -2, 1), bpop), FLAG_BLOCKING),
    flags(write("blmove", 6, (1, 2, 1), lmove), FLAG_BLOCKING),
    flags(write("brpoplpush", 4, (1, 2, 1), lmove), FLAG_BLOCKING),
];

fn push(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let name = args[0].to_ascii_lowercase();
    let left = name.starts_with(b"l");
    let only_existing = name.ends_with(b"x");
    let Some(value) = ctx.value_mut(&args[1], Kind::List, !only_existing)? else {
        return Ok(Reply::Integer(0));
    };
    let list = value.list_mut();
    for item in &args[2..] {
        if left {
            list.push_front(item.clone());
        } else {
            list.push_back(item.clone());
        }
    }
    let len = list.len() as i64;
    ctx.ready(&args[1]);
    Ok(Reply::Integer(len))
}

fn pop(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let left = is(&args[0], "lpop");
    let count = match args.len() {
        2 => None,
        3 => Some(count_arg(&args[2], "ERR value is out of range, must be positive")?),
        _ => return Err(super::arity_error(if left { "lpop" } else { "rpop" })),
    };
    let Some(value) = ctx.value_mut(&args[1], Kind::List, false)? else {
        return Ok(if count.is_some() { Reply::NullArray } else { Reply::Null });
    };
    let list = value.list_mut();
    let mut popped = Vec::new();
    for _ in 0..count.unwrap_or(1) {
        let item = if left { list.pop_front() } else { list.pop_back() };
        let Some(item) = item else { break };
        popped.push(Reply::Bulk(item));
    }
    ctx.db.remove_if_empty(&args[1]);
    Ok(match count {
        None => popped.pop().unwrap_or(Reply::Null),
        Some(_) => Reply::Array(popped),
    })
}

/// Checks a blocking command's timeout (its last argument) as Redis does.
pub(crate) fn timeout_arg(arg: &[u8]) -> Result<f64, Reply> {
    let seconds = parse_float(arg)
        .filter(|s| s.is_finite())
        .ok_or_else(|| Reply::error("ERR timeout is not a float or out of range"))?;
    if seconds < 0.0 {
        return Err(Reply::error("ERR timeout is negative"));
    }
    Ok(seconds)
}

fn bpop(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    timeout_arg(&args[args.len() - 1])?;
    let left = is(&args[0], "blpop");
    for key in &args[1..args.len() - 1] {
        let Some(value) = ctx.value_mut(key, Kind::List, false)? else { continue };
        let list = value.list_mut();
        let item = if left { list.pop_front() } else { list.pop_back() };
        let item = item.expect("a stored list is not empty");
        ctx.db.remove_if_empty(key);
        return Ok(Reply::Array(vec![Reply::Bulk(key.clone()), Reply::Bulk(item)]));
    }
    Ok(Reply::NullArray)
}

fn llen(view: &View<'_>, args: &[Bytes]) -> CmdResult {
    Ok(Reply::Integer(view.list(&args[1])?.map_or(0, |l| l.len() as i64)))
}

fn lrange(view: &View<'_>, args: &[Bytes]) -> CmdResult {
    let (start, end) = (int_arg(&args[2])?, int_arg(&args[3])?);
    let Some(list) = view.list(&args[1])? else { return Ok(Reply::Array(Vec::new())) };
    let Some((start, end)) = index_range(start, end, list.len()) else {
        return Ok(Reply::Array(Vec::new()));
    };
    let items = list.iter().skip(start).take(end + 1 - start).map(|v| Reply::Bulk(v.clone()));
    Ok(Reply::Array(items.collect()))
}

/// A list index (negative from the end) within `len`, if it is.
fn list_index(index: i64, len: usize) -> Option<usize> {
    let index = if index < 0 { len as i64 + index } else { index };
    (0..len as i64).contains(&index).then_some(index as usize)
}

fn lindex(view: &View<'_>, args: &[Bytes]) -> CmdResult {
    let index = int_arg(&args[2])?;
    let list = view.list(&args[1])?;
    Ok(bulk_or_null(list.and_then(|l| list_index(index, l.len()).and_then(|i| l.get(i)))))
}

fn lset(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let index = int_arg(&args[2])?;
    let Some(value) = ctx.value_mut(&args[1], Kind::List, false)? else {
        return Err(Reply::error(ERR_NO_SUCH_KEY));
    };
    let list = value.list_mut();
    let Some(i) = list_index(index, list.len()) else {
        return Err(Reply::error("ERR index out of range"));
    };
    list.set(i, args[3].clone());
    Ok(Reply::ok())
}

fn linsert(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let after = match () {
        _ if is(&args[2], "after") => true,
        _ if is(&args[2], "before") => false,
        _ => return Err(syntax()),
    };
    let Some(list) = ctx.view().list(&args[1])? else { return Ok(Reply::Integer(0)) };
    let Some(at) = list.iter().position(|v| *v == args[3]) else { return Ok(Reply::Integer(-1)) };
    let list = ctx.value_mut(&args[1], Kind::List, false)?.expect("checked").list_mut();
    list.insert(if after { at + 1 } else { at }, args[4].clone());
    Ok(Reply::Integer(list.len() as i64))
}

fn lrem(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let count = int_arg(&args[2])?;
    if !ctx.view().list(&args[1])?.is_some_and(|l| l.contains(&args[3])) {
        return Ok(Reply::Integer(0));
    }
    let Some(value) = ctx.value_mut(&args[1], Kind::List, false)? else {
        return Ok(Reply::Integer(0));
    };
    let list = value.list_mut();
    let limit = if count == 0 { usize::MAX } else { count.unsigned_abs() as usize };
    let mut positions: Vec<usize> =
        list.iter().enumerate().filter(|(_, v)| **v == args[3]).map(|(i, _)| i).collect();
    if count < 0 {
        positions.reverse();
    }
    positions.truncate(limit);
    positions.sort_unstable();
    for &i in positions.iter().rev() {
        list.remove(i);
    }
    ctx.db.remove_if_empty(&args[1]);
    Ok(Reply::Integer(positions.len() as i64))
}

fn ltrim(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let (start, end) = (int_arg(&args[2])?, int_arg(&args[3])?);
    let Some(value) = ctx.value_mut(&args[1], Kind::List, false)? else { return Ok(Reply::ok()) };
    let list = value.list_mut();
    match index_range(start, end, list.len()) {
        None => list.clear(),
        Some((start, end)) => {
            list.truncate(end + 1);
            let kept = list.split_off(start);
            *list = kept;
        }
    }
    ctx.db.remove_if_empty(&args[1]);
    Ok(Reply::ok())
}

fn lpos(view: &View<'_>, args: &[Bytes]) -> CmdResult {
    let (mut rank, mut count, mut maxlen) = (1i64, None, 0usize);
    let mut i = 3;
    while i < args.len() {
        if i + 1 >= args.len() {
            return Err(syntax());
        }
        let option = &args[i];
        if is(option, "rank") {
            rank = int_arg(&args[i + 1])?;
            if rank == 0 {
                return Err(Reply::error("ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list"));
            }
            if rank == i64::MIN {
                return Err(Reply::error("ERR value is out of range"));
            }
        } else if is(option, "count") {
            count = Some(count_arg(&args[i + 1], "ERR COUNT can't be negative")?);
        } else if is(option, "maxlen") {
            maxlen = count_arg(&args[i + 1], "ERR MAXLEN can't be negative")?;
        } else {
            return Err(syntax());
        }
        i += 2;
    }
    let list = view.list(&args[1])?;
    let Some(list) = list else {
        return Ok(if count.is_some() { Reply::Array(Vec::new()) } else { Reply::Null });
    };
    let len = list.len();
    let scan = if maxlen == 0 { len } else { maxlen.min(len) };
    let indexes: Box<dyn Iterator<Item = usize>> =
        if rank > 0 { Box::new(0..scan) } else { Box::new((len - scan..len).rev()) };
    let mut skip = rank.unsigned_abs() - 1;
    let wanted = match count {
        Some(0) => usize::MAX,
        Some(n) => n,
        None => 1,
    };
    let mut found = Vec::new();
    for i in indexes {
        if list[i] != args[2] {
            continue;
        }
        if skip > 0 {
            skip -= 1;
            continue;
        }
        found.push(Reply::Integer(i as i64));
        if found.len() >= wanted {
            break;
        }
    }
    Ok(match count {
        Some(_) => Reply::Array(found),
        None => found.pop().unwrap_or(Reply::Null),
    })
}

fn end_arg(arg: &[u8]) -> Result<bool, Reply> {
    match () {
        _ if is(arg, "left") => Ok(true),
        _ if is(arg, "right") => Ok(false),
        _ => Err(syntax()),
    }
}

/// LMOVE, RPOPLPUSH and their blocking forms: pops from one end of the source and pushes to
/// one end of the destination.
fn lmove(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let name = args[0].to_ascii_lowercase();
    let blocking = name.starts_with(b"b");
    if blocking {
        timeout_arg(&args[args.len() - 1])?;
    }
    let (from_left, to_left) = if name.ends_with(b"rpoplpush") {
        (false, true)
    } else {
        (end_arg(&args[3])?, end_arg(&args[4])?)
    };
    let Some(source) = ctx.view().list(&args[1])? else { return Ok(Reply::Null) };
    if ctx.view().list(&args[2]).is_err() {
        return Err(super::wrongtype());
    }
    let item = if from_left { source.front() } else { source.back() };
    let item = item.expect("a stored list is not empty").clone();
    let source = ctx.value_mut(&args[1], Kind::List, false)?.expect("checked").list_mut();
    if from_left {
        source.pop_front();
    } else {
        source.pop_back();
    }
    // The source is removed only after the push, as Redis does: a one-element list moved
    // onto itself stays the same key, with its expiry.
    let dest = ctx.value_mut(&args[2], Kind::List, true)?.expect("created").list_mut();
    if to_left {
        dest.push_front(item.clone());
    } else {
        dest.push_back(item.clone());
    }
    ctx.db.remove_if_empty(&args[1]);
    ctx.ready(&args[2]);
    Ok(Reply::Bulk(item))
}
