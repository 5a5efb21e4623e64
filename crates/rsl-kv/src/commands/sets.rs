//! Set commands: SADD, SREM, SMEMBERS, SPOP, SRANDMEMBER, the algebra (SINTER, SUNION,
//! SDIFF and their STORE forms), SMOVE and SSCAN.

use bytes::Bytes;
use imbl::OrdSet;

use super::hashes::{random_count, random_indexes, SCAN_WHOLE_LEN_MAX};
use super::keys::{page, parse_cursor, scan_options};
use super::{
    count_arg, flags, is, read, read_random, write, CmdResult, CommandDef, Ctx, View, FLAG_FAST,
    FLAG_MOVABLEKEYS, K0, K1, KALL,
};
use crate::glob::glob_match;
use crate::resp::Reply;
use crate::value::{Kind, Value};

pub(super) const COMMANDS: &[CommandDef] = &[
    flags(write("sadd", -3, K1, sadd), FLAG_FAST),
    flags(write("srem", -3, K1, srem), FLAG_FAST),
    read("smembers", 2, K1, smembers),
    flags(read("sismember", 3, K1, sismember), FLAG_FAST),
    flags(read("smismember", -3, K1, smismember), FLAG_FAST),
    flags(read("scard", 2, K1, scard), FLAG_FAST),
    flags(write("spop", -2, K1, spop), FLAG_FAST),
    read("srandmember", -2, K1, srandmember),
    flags(write("smove", 4, (1, 2, 1), smove), FLAG_FAST),
    read("sinter", -2, KALL, algebra),
    read("sunion", -2, KALL, algebra),
    read("sdiff", -2, KALL, algebra),
    write("sinterstore", -3, KALL, store),
    write("sunionstore", -3, KALL, store),
    write("sdiffstore", -3, KALL, store),
    flags(read("sintercard", -3, K0, sintercard), FLAG_MOVABLEKEYS),
    read("sscan", -3, K1, sscan),
];

fn sadd(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    // A command that changes nothing leaves the key's version (and so WATCH) alone.
    if let Some(set) = ctx.view().set(&args[1])? {
        if args[2..].iter().all(|m| set.contains(m)) {
            return Ok(Reply::Integer(0));
        }
    }
    let set = ctx.value_mut(&args[1], Kind::Set, true)?.expect("created").set_mut();
    let added = args[2..].iter().filter(|m| set.insert((*m).clone()).is_none()).count();
    Ok(Reply::Integer(added as i64))
}

fn srem(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    if !ctx.view().set(&args[1])?.is_some_and(|s| args[2..].iter().any(|m| s.contains(m))) {
        return Ok(Reply::Integer(0));
    }
    let Some(value) = ctx.value_mut(&args[1], Kind::Set, false)? else {
        return Ok(Reply::Integer(0));
    };
    let set = value.set_mut();
    let removed = args[2..].iter().filter(|m| set.remove(*m).is_some()).count();
    ctx.db.remove_if_empty(&args[1]);
    Ok(Reply::Integer(removed as i64))
}

fn members(set: &OrdSet<Bytes>) -> Reply {
    Reply::Set(set.iter().map(|m| Reply::Bulk(m.clone())).collect())
}

fn smembers(view: &View<'_>, args: &[Bytes]) -> CmdResult {
    Ok(view.set(&args[1])?.map_or(Reply::Set(Vec::new()), members))
}

fn sismember(view: &View<'_>, args: &[Bytes]) -> CmdResult {
    Ok(Reply::Integer(i64::from(view.set(&args[1])?.is_some_and(|s| s.contains(&args[2])))))
}

fn smismember(view: &View<'_>, args: &[Bytes]) -> CmdResult {
    let set = view.set(&args[1])?;
    let found =
        args[2..].iter().map(|m| Reply::Integer(i64::from(set.is_some_and(|s| s.contains(m)))));
    Ok(Reply::Array(found.collect()))
}

fn scard(view: &View<'_>, args: &[Bytes]) -> CmdResult {
    Ok(Reply::Integer(view.set(&args[1])?.map_or(0, |s| s.len() as i64)))
}

fn spop(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let count = match args.len() {
        2 => None,
        3 => Some(count_arg(&args[2], "ERR value is out of range, must be positive")?),
        _ => return Err(super::syntax()),
    };
    let seed = ctx.db.random();
    let Some(value) = ctx.value_mut(&args[1], Kind::Set, false)? else {
        return Ok(if count.is_some() { Reply::Set(Vec::new()) } else { Reply::Null });
    };
    let set = value.set_mut();
    let picks = random_indexes(set.len(), count.unwrap_or(1) as i64, seed);
    let chosen: Vec<Bytes> = {
        let all: Vec<&Bytes> = set.iter().collect();
        picks.iter().map(|&i| all[i].clone()).collect()
    };
    for member in &chosen {
        set.remove(member);
    }
    ctx.db.remove_if_empty(&args[1]);
    Ok(match count {
        None => chosen.into_iter().next().map_or(Reply::Null, Reply::Bulk),
        Some(_) => Reply::Set(chosen.into_iter().map(Reply::Bulk).collect()),
    })
}

fn srandmember(view: &View<'_>, args: &[Bytes]) -> CmdResult {
    let count = match args.len() {
        2 => None,
        3 => Some(random_count(&args[2])?),
        _ => return Err(super::syntax()),
    };
    let set = view.set(&args[1])?;
    let seed = read_random(view, &args[1]);
    let Some(set) = set else {
        return Ok(if count.is_some() { Reply::Array(Vec::new()) } else { Reply::Null });
    };
    let all: Vec<&Bytes> = set.iter().collect();
    let picks = random_indexes(all.len(), count.unwrap_or(1), seed);
    Ok(match count {
        None => Reply::Bulk(all[picks[0]].clone()),
        Some(_) => Reply::Array(picks.into_iter().map(|i| Reply::Bulk(all[i].clone())).collect()),
    })
}

fn smove(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    // Redis's order: a missing source answers 0 before either type is checked.
    if ctx.view().get(&args[1]).is_none() {
        return Ok(Reply::Integer(0));
    }
    let source = ctx.view().set(&args[1])?.cloned().expect("checked");
    ctx.view().set(&args[2])?;
    if args[1] == args[2] {
        return Ok(Reply::Integer(i64::from(source.contains(&args[3]))));
    }
    if !source.contains(&args[3]) {
        return Ok(Reply::Integer(0));
    }
    ctx.value_mut(&args[1], Kind::Set, false)?.expect("checked").set_mut().remove(&args[3]);
    ctx.db.remove_if_empty(&args[1]);
    ctx.value_mut(&args[2], Kind::Set, true)?.expect("created").set_mut().insert(args[3].clone());
    Ok(Reply::Integer(1))
}

/// The intersection, union or difference of the sets at `keys` (a missing key is empty).
fn combine(view: &View<'_>, op: &[u8], keys: &[Bytes]) -> Result<OrdSet<Bytes>, Reply> {
    let mut sets = Vec::with_capacity(keys.len());
    for key in keys {
        sets.push(view.set(key)?.cloned().unwrap_or_default());
    }
    let mut sets = sets.into_iter();
    let first = sets.next().expect("at least one key");
    Ok(sets.fold(first, |acc, s| match op {
        b"inter" => acc.intersection(s),
        b"union" => acc.union(s),
        _ => acc.relative_complement(s),
    }))
}

/// `inter`, `union` or `diff`, from the command's name.
fn op_of(name: &[u8]) -> Vec<u8> {
    let lower = name.to_ascii_lowercase();
    let without_store = lower.strip_suffix(b"store").unwrap_or(&lower);
    without_store[1..].to_vec()
}

fn algebra(view: &View<'_>, args: &[Bytes]) -> CmdResult {
    Ok(members(&combine(view, &op_of(&args[0]), &args[1..])?))
}

fn store(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let result = combine(&ctx.view(), &op_of(&args[0]), &args[2..])?;
    let len = result.len() as i64;
    ctx.db.remove(&args[1]);
    if len > 0 {
        ctx.db.store(args[1].clone(), Value::Set(result), None);
    }
    Ok(Reply::Integer(len))
}

fn sintercard(view: &View<'_>, args: &[Bytes]) -> CmdResult {
    // Redis's range and sign checks answer their own message for a non-integer too.
    let numkeys = match crate::resp::parse_i64(&args[1]) {
        Some(n) if n > 0 => n as usize,
        _ => return Err(Reply::error("ERR numkeys should be greater than 0")),
    };
    if args.len() < 2 + numkeys {
        return Err(Reply::error("ERR Number of keys can't be greater than number of args"));
    }
    let mut limit = 0;
    let rest = &args[2 + numkeys..];
    match rest {
        [] => {}
        [word, n] if is(word, "limit") => {
            limit = match crate::resp::parse_i64(n) {
                Some(n) if n >= 0 => n as usize,
                _ => return Err(Reply::error("ERR LIMIT can't be negative")),
            }
        }
        _ => return Err(super::syntax()),
    }
    let count = combine(view, b"inter", &args[2..2 + numkeys])?.len();
    Ok(Reply::Integer((if limit > 0 { count.min(limit) } else { count }) as i64))
}

fn sscan(view: &View<'_>, args: &[Bytes]) -> CmdResult {
    let start = parse_cursor(&args[2])?;
    let options = scan_options(args, 3, false)?;
    let Some(set) = view.set(&args[1])? else {
        return Ok(Reply::Array(vec![Reply::text("0"), Reply::Array(Vec::new())]));
    };
    let count = if set.len() <= SCAN_WHOLE_LEN_MAX { usize::MAX } else { options.count };
    let items = match start {
        None => set.range::<_, Bytes>(..),
        Some(from) => set.range(from..),
    };
    let (taken, next) = page(items.map(|m| (m, ())), count);
    let found = taken
        .into_iter()
        .filter(|(m, _)| options.pattern.as_ref().is_none_or(|p| glob_match(p, m, false)))
        .map(|(m, _)| Reply::Bulk(m.clone()));
    Ok(Reply::Array(vec![Reply::text(next.to_string()), Reply::Array(found.collect())]))
}
