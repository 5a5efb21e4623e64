//! Sorted-set commands: ZADD with its options, scores and ranks, ZRANGE in all its forms
//! (by rank, BYSCORE, BYLEX, REV, LIMIT) and the older range commands, removals by range,
//! pops (blocking ones included), ZRANDMEMBER and ZSCAN.

use bytes::Bytes;

use super::hashes::{random_count, random_indexes, SCAN_WHOLE_LEN_MAX};
use super::keys::{page, parse_cursor, scan_options};
use super::lists::timeout_arg;
use super::zalgebra::compact_zeros;
use super::{
    count_arg, flags, float_arg, index_range, int_arg, is, parse_float, read, read_random, syntax,
    write, CmdResult, CommandDef, Ctx, View, FLAG_BLOCKING, FLAG_FAST, K1,
};
use crate::glob::glob_match;
use crate::resp::{format_double, Proto, Reply};
use crate::value::{Kind, Score, Value, ZSet};

pub(super) const COMMANDS: &[CommandDef] = &[
    flags(write("zadd", -4, K1, zadd), FLAG_FAST),
    flags(write("zincrby", 4, K1, zincrby), FLAG_FAST),
    flags(write("zrem", -3, K1, zrem), FLAG_FAST),
    flags(read("zscore", 3, K1, zscore), FLAG_FAST),
    flags(read("zmscore", -3, K1, zmscore), FLAG_FAST),
    flags(read("zcard", 2, K1, zcard), FLAG_FAST),
    flags(read("zcount", 4, K1, zcount), FLAG_FAST),
    flags(read("zlexcount", 4, K1, zcount), FLAG_FAST),
    flags(read("zrank", 3, K1, zrank), FLAG_FAST),
    flags(read("zrevrank", 3, K1, zrank), FLAG_FAST),
    read("zrange", -4, K1, zrange),
    read("zrevrange", -4, K1, zrange),
    read("zrangebyscore", -4, K1, zrange),
    read("zrevrangebyscore", -4, K1, zrange),
    read("zrangebylex", -4, K1, zrange),
    read("zrevrangebylex", -4, K1, zrange),
    write("zrangestore", -5, (1, 2, 1), zrangestore),
    write("zremrangebyrank", 4, K1, zremrange),
    write("zremrangebyscore", 4, K1, zremrange),
    write("zremrangebylex", 4, K1, zremrange),
    flags(write("zpopmin", -2, K1, zpop), FLAG_FAST),
    flags(write("zpopmax", -2, K1, zpop), FLAG_FAST),
    flags(write("bzpopmin", -3, (1, -2, 1), bzpop), FLAG_BLOCKING),
    flags(write("bzpopmax", -3, (1, -2, 1), bzpop), FLAG_BLOCKING),
    read("zrandmember", -2, K1, zrandmember),
    read("zscan", -3, K1, zscan),
];

const ERR_NOT_FLOAT_RANGE: &str = "ERR min or max is not a float";
const ERR_NOT_LEX_RANGE: &str = "ERR min or max not valid string range item";

pub(super) fn zadd(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let (mut nx, mut xx, mut gt, mut lt, mut ch, mut incr) =
        (false, false, false, false, false, false);
    let mut i = 2;
    while i < args.len() {
        let option = &args[i];
        match () {
            _ if is(option, "nx") => nx = true,
            _ if is(option, "xx") => xx = true,
            _ if is(option, "gt") => gt = true,
            _ if is(option, "lt") => lt = true,
            _ if is(option, "ch") => ch = true,
            _ if is(option, "incr") => incr = true,
            _ => break,
        }
        i += 1;
    }
    let pairs = &args[i..];
    if pairs.is_empty() || pairs.len() % 2 == 1 {
        return Err(syntax());
    }
    if nx && xx {
        return Err(Reply::error("ERR XX and NX options at the same time are not compatible"));
    }
    if (nx && (gt || lt)) || (gt && lt) {
        return Err(Reply::error(
            "ERR GT, LT, and/or NX options at the same time are not compatible",
        ));
    }
    if incr && pairs.len() > 2 {
        return Err(Reply::error("ERR INCR option supports a single increment-element pair"));
    }
    let mut scores = Vec::with_capacity(pairs.len() / 2);
    for pair in pairs.chunks_exact(2) {
        scores.push((float_arg(&pair[0])?, pair[1].clone()));
    }
    ctx.view().zset(&args[1])?;
    if xx && ctx.view().zset(&args[1])?.is_none() {
        return Ok(if incr { Reply::Null } else { Reply::Integer(0) });
    }
    let current = ctx.view().zset(&args[1])?;
    let unchanged = |(score, member): &(f64, Bytes)| match current.and_then(|z| z.score(member)) {
        Some(old) => nx || old == *score || (gt && *score <= old) || (lt && *score >= old),
        None => xx,
    };
    if !incr && scores.iter().all(unchanged) {
        // Nothing changes: the key's version (and so WATCH) is left alone.
        return Ok(Reply::Integer(0));
    }
    let zset = ctx.value_mut(&args[1], Kind::ZSet, true)?.expect("created").zset_mut();
    let (mut added, mut changed) = (0, 0);
    let mut incr_reply = Reply::Null;
    let mut negative_zero = false;
    for (score, member) in scores {
        let old = zset.score(&member);
        let new = match (incr, old) {
            (true, Some(old)) => old + score,
            _ => score,
        };
        if new.is_nan() {
            ctx.db.remove_if_empty(&args[1]);
            return Err(Reply::error("ERR resulting score is not a number (NaN)"));
        }
        let allowed = match old {
            None => !xx,
            Some(old) => !nx && (!gt || new > old) && (!lt || new < old),
        };
        if !allowed {
            continue;
        }
        if old != Some(new) {
            negative_zero |= new == 0.0 && new.is_sign_negative();
            zset.insert(member, new);
            if old.is_none() {
                added += 1;
            } else {
                changed += 1;
            }
        }
        incr_reply = Reply::Double(new);
    }
    if negative_zero {
        compact_zeros(zset);
    }
    ctx.db.remove_if_empty(&args[1]);
    ctx.ready(&args[1]);
    Ok(if incr { incr_reply } else { Reply::Integer(if ch { added + changed } else { added }) })
}

fn zincrby(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let delta = float_arg(&args[2])?;
    let zset = ctx.value_mut(&args[1], Kind::ZSet, true)?.expect("created").zset_mut();
    // A new member takes the increment itself (so -0 stays -0, as in Redis; 0 + -0 is 0).
    let new = zset.score(&args[3]).map_or(delta, |old| old + delta);
    if new.is_nan() {
        ctx.db.remove_if_empty(&args[1]);
        return Err(Reply::error("ERR resulting score is not a number (NaN)"));
    }
    zset.insert(args[3].clone(), new);
    if new == 0.0 && new.is_sign_negative() {
        compact_zeros(zset);
    }
    ctx.ready(&args[1]);
    Ok(Reply::Double(new))
}

fn zrem(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    if !ctx.view().zset(&args[1])?.is_some_and(|z| args[2..].iter().any(|m| z.score(m).is_some())) {
        return Ok(Reply::Integer(0));
    }
    let Some(value) = ctx.value_mut(&args[1], Kind::ZSet, false)? else {
        return Ok(Reply::Integer(0));
    };
    let zset = value.zset_mut();
    let removed = args[2..].iter().filter(|m| zset.remove(m).is_some()).count();
    ctx.db.remove_if_empty(&args[1]);
    Ok(Reply::Integer(removed as i64))
}

fn zscore(view: &View<'_>, args: &[Bytes]) -> CmdResult {
    Ok(view.zset(&args[1])?.and_then(|z| z.score(&args[2])).map_or(Reply::Null, Reply::Double))
}

fn zmscore(view: &View<'_>, args: &[Bytes]) -> CmdResult {
    let zset = view.zset(&args[1])?;
    let scores =
        args[2..].iter().map(|m| zset.and_then(|z| z.score(m)).map_or(Reply::Null, Reply::Double));
    Ok(Reply::Array(scores.collect()))
}

fn zcard(view: &View<'_>, args: &[Bytes]) -> CmdResult {
    Ok(Reply::Integer(view.zset(&args[1])?.map_or(0, |z| z.len() as i64)))
}

/// One end of a score range: the score and whether it is excluded (`(1.5`).
#[derive(Clone, Copy)]
struct ScoreBound(f64, bool);

fn score_bound(arg: &[u8]) -> Result<ScoreBound, Reply> {
    let (exclusive, text) = match arg.first() {
        Some(b'(') => (true, &arg[1..]),
        _ => (false, arg),
    };
    let value = parse_float(text).ok_or_else(|| Reply::error(ERR_NOT_FLOAT_RANGE))?;
    Ok(ScoreBound(value, exclusive))
}

/// One end of a lexicographic range: `-`, `+`, `[x` (included) or `(x` (excluded).
#[derive(Clone)]
enum LexBound {
    Min,
    Max,
    At(Bytes, bool),
}

fn lex_bound(arg: &Bytes) -> Result<LexBound, Reply> {
    match arg.first() {
        Some(b'-') if arg.len() == 1 => Ok(LexBound::Min),
        Some(b'+') if arg.len() == 1 => Ok(LexBound::Max),
        Some(b'[') => Ok(LexBound::At(arg.slice(1..), false)),
        Some(b'(') => Ok(LexBound::At(arg.slice(1..), true)),
        _ => Err(Reply::error(ERR_NOT_LEX_RANGE)),
    }
}

/// A range of members: by score or by member.
enum Range {
    Score(ScoreBound, ScoreBound),
    Lex(LexBound, LexBound),
}

impl Range {
    fn above_min(&self, score: f64, member: &[u8]) -> bool {
        match self {
            Range::Score(ScoreBound(min, ex), _) => {
                if *ex {
                    score > *min
                } else {
                    score >= *min
                }
            }
            Range::Lex(min, _) => match min {
                LexBound::Min => true,
                LexBound::Max => false,
                LexBound::At(m, ex) => {
                    if *ex {
                        member > &m[..]
                    } else {
                        member >= &m[..]
                    }
                }
            },
        }
    }

    fn below_max(&self, score: f64, member: &[u8]) -> bool {
        match self {
            Range::Score(_, ScoreBound(max, ex)) => {
                if *ex {
                    score < *max
                } else {
                    score <= *max
                }
            }
            Range::Lex(_, max) => match max {
                LexBound::Min => false,
                LexBound::Max => true,
                LexBound::At(m, ex) => {
                    if *ex {
                        member < &m[..]
                    } else {
                        member <= &m[..]
                    }
                }
            },
        }
    }

    /// The members within the range, in order (reversed if `rev`).
    fn select<'a>(&self, zset: &'a ZSet, rev: bool) -> Vec<&'a (Score, Bytes)> {
        let inside = |(s, m): &&(Score, Bytes)| self.above_min(s.0, m) && self.below_max(s.0, m);
        let mut found: Vec<&(Score, Bytes)> = match self {
            Range::Score(ScoreBound(min, _), _) if !min.is_nan() => zset
                .order
                .range((Score(*min), Bytes::new())..)
                .skip_while(|e| !inside(e))
                .take_while(inside)
                .collect(),
            _ => zset.order.iter().skip_while(|e| !inside(e)).take_while(inside).collect(),
        };
        if rev {
            found.reverse();
        }
        found
    }
}

fn zcount(view: &View<'_>, args: &[Bytes]) -> CmdResult {
    let range = if is(&args[0], "zcount") {
        Range::Score(score_bound(&args[2])?, score_bound(&args[3])?)
    } else {
        Range::Lex(lex_bound(&args[2])?, lex_bound(&args[3])?)
    };
    Ok(Reply::Integer(view.zset(&args[1])?.map_or(0, |z| range.select(z, false).len() as i64)))
}

fn zrank(view: &View<'_>, args: &[Bytes]) -> CmdResult {
    let Some(zset) = view.zset(&args[1])? else { return Ok(Reply::Null) };
    let Some(rank) = zset.rank(&args[2]) else { return Ok(Reply::Null) };
    let rank = if is(&args[0], "zrevrank") { zset.len() - 1 - rank } else { rank };
    Ok(Reply::Integer(rank as i64))
}

/// A parsed ZRANGE (or one of the older range commands).
struct RangeQuery {
    by: Option<Range>,
    start: i64,
    end: i64,
    rev: bool,
    limit: Option<(i64, i64)>,
    with_scores: bool,
}

/// Parses every range command into the ZRANGE form: `args` starts at the key.
fn range_query(name: &str, args: &[Bytes]) -> Result<RangeQuery, Reply> {
    let (mut by_score, mut by_lex, mut rev) = (false, false, false);
    match name {
        "zrange" | "zrangestore" => {}
        "zrevrange" => rev = true,
        "zrangebyscore" => by_score = true,
        "zrevrangebyscore" => (by_score, rev) = (true, true),
        "zrangebylex" => by_lex = true,
        _ => (by_lex, rev) = (true, true),
    }
    let modern = name == "zrange" || name == "zrangestore";
    let (mut limit, mut with_scores) = (None, false);
    let mut i = 3;
    while i < args.len() {
        let option = &args[i];
        if is(option, "withscores")
            && name != "zrangebylex"
            && name != "zrevrangebylex"
            && name != "zrangestore"
        {
            with_scores = true;
        } else if is(option, "limit") && i + 2 < args.len() && (modern || by_score || by_lex) {
            limit = Some((int_arg(&args[i + 1])?, int_arg(&args[i + 2])?));
            i += 2;
        } else if modern && is(option, "byscore") {
            by_score = true;
        } else if modern && is(option, "bylex") {
            by_lex = true;
        } else if modern && is(option, "rev") {
            rev = true;
        } else {
            return Err(syntax());
        }
        i += 1;
    }
    if by_score && by_lex {
        return Err(syntax());
    }
    if limit.is_some() && !by_score && !by_lex {
        return Err(Reply::error(
            "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX",
        ));
    }
    if with_scores && by_lex {
        return Err(Reply::error(
            "ERR syntax error, WITHSCORES not supported in combination with BYLEX",
        ));
    }
    // With REV (and in the ZREV* commands) the range is given from max to min.
    let (low, high) =
        if rev && (by_score || by_lex) { (&args[2], &args[1]) } else { (&args[1], &args[2]) };
    let by = if by_score {
        Some(Range::Score(score_bound(low)?, score_bound(high)?))
    } else if by_lex {
        Some(Range::Lex(lex_bound(low)?, lex_bound(high)?))
    } else {
        None
    };
    let (start, end) = if by.is_none() { (int_arg(&args[1])?, int_arg(&args[2])?) } else { (0, 0) };
    Ok(RangeQuery { by, start, end, rev, limit, with_scores })
}

/// The members a range query selects, in reply order.
fn run_query<'a>(zset: &'a ZSet, query: &RangeQuery) -> Vec<&'a (Score, Bytes)> {
    let mut found = match &query.by {
        None => {
            let Some((start, end)) = index_range(query.start, query.end, zset.len()) else {
                return Vec::new();
            };
            if query.rev {
                let (len, (start, end)) = (zset.len(), (start, end));
                let mut items: Vec<_> = zset.by_rank(len - 1 - end, len - 1 - start).collect();
                items.reverse();
                items
            } else {
                zset.by_rank(start, end).collect()
            }
        }
        Some(range) => range.select(zset, query.rev),
    };
    if let Some((offset, count)) = query.limit {
        if offset < 0 {
            return Vec::new();
        }
        found = found.into_iter().skip(offset as usize).collect();
        if count >= 0 {
            found.truncate(count as usize);
        }
    }
    found
}

pub(super) fn scored(items: &[&(Score, Bytes)], with_scores: bool, proto: Proto) -> Reply {
    let mut out = Vec::new();
    for (score, member) in items.iter().map(|e| (e.0, &e.1)) {
        match (with_scores, proto) {
            (false, _) => out.push(Reply::Bulk(member.clone())),
            (true, Proto::Resp3) => {
                out.push(Reply::Array(vec![Reply::Bulk(member.clone()), Reply::Double(score.0)]))
            }
            (true, Proto::Resp2) => {
                out.push(Reply::Bulk(member.clone()));
                out.push(Reply::Double(score.0));
            }
        }
    }
    Reply::Array(out)
}

fn zrange(view: &View<'_>, args: &[Bytes]) -> CmdResult {
    let name = String::from_utf8_lossy(&args[0]).to_ascii_lowercase();
    let query = range_query(&name, &args[1..])?;
    let Some(zset) = view.zset(&args[1])? else { return Ok(Reply::Array(Vec::new())) };
    Ok(scored(&run_query(zset, &query), query.with_scores, view.proto))
}

fn zrangestore(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let query = range_query("zrangestore", &args[2..])?;
    let found: ZSet = {
        let view = ctx.view();
        let mut out = ZSet::default();
        if let Some(zset) = view.zset(&args[2])? {
            for (score, member) in run_query(zset, &query) {
                out.insert(member.clone(), score.0);
            }
        }
        compact_zeros(&mut out);
        out
    };
    let len = found.len() as i64;
    ctx.db.remove(&args[1]);
    if len > 0 {
        ctx.db.store(args[1].clone(), Value::ZSet(Box::new(found)), None);
        ctx.ready(&args[1]);
    }
    Ok(Reply::Integer(len))
}

fn zremrange(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let name = args[0].to_ascii_lowercase();
    let query = match &name[..] {
        b"zremrangebyrank" => RangeQuery {
            by: None,
            start: int_arg(&args[2])?,
            end: int_arg(&args[3])?,
            rev: false,
            limit: None,
            with_scores: false,
        },
        b"zremrangebyscore" => {
            range_by(Range::Score(score_bound(&args[2])?, score_bound(&args[3])?))
        }
        _ => range_by(Range::Lex(lex_bound(&args[2])?, lex_bound(&args[3])?)),
    };
    let Some(zset) = ctx.view().zset(&args[1])? else { return Ok(Reply::Integer(0)) };
    let doomed: Vec<Bytes> = run_query(zset, &query).into_iter().map(|e| e.1.clone()).collect();
    if doomed.is_empty() {
        return Ok(Reply::Integer(0));
    }
    let zset = ctx.value_mut(&args[1], Kind::ZSet, false)?.expect("checked").zset_mut();
    for member in &doomed {
        zset.remove(member);
    }
    ctx.db.remove_if_empty(&args[1]);
    Ok(Reply::Integer(doomed.len() as i64))
}

fn range_by(range: Range) -> RangeQuery {
    RangeQuery { by: Some(range), start: 0, end: 0, rev: false, limit: None, with_scores: false }
}

/// Pops up to `count` members from the low (or high) end of the set at `key`.
fn pop_from(
    ctx: &mut Ctx<'_>,
    key: &Bytes,
    max: bool,
    count: usize,
) -> Result<Vec<(Bytes, f64)>, Reply> {
    let Some(value) = ctx.value_mut(key, Kind::ZSet, false)? else { return Ok(Vec::new()) };
    let zset = value.zset_mut();
    let mut popped = Vec::new();
    for _ in 0..count {
        let next = if max { zset.order.get_max() } else { zset.order.get_min() };
        let Some((score, member)) = next.cloned() else { break };
        zset.remove(&member);
        popped.push((member, score.0));
    }
    ctx.db.remove_if_empty(key);
    Ok(popped)
}

fn zpop(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let max = is(&args[0], "zpopmax");
    let count = match args.len() {
        2 => None,
        3 => Some(count_arg(&args[2], "ERR value is out of range, must be positive")?),
        _ => return Err(syntax()),
    };
    let popped = pop_from(ctx, &args[1], max, count.unwrap_or(1))?;
    let nested = count.is_some() && ctx.proto == Proto::Resp3;
    let mut out = Vec::new();
    for (member, score) in popped {
        if nested {
            out.push(Reply::Array(vec![Reply::Bulk(member), Reply::Double(score)]));
        } else {
            out.push(Reply::Bulk(member));
            out.push(Reply::Double(score));
        }
    }
    Ok(Reply::Array(out))
}

fn bzpop(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    timeout_arg(&args[args.len() - 1])?;
    let max = is(&args[0], "bzpopmax");
    for key in &args[1..args.len() - 1] {
        if let Some((member, score)) = pop_from(ctx, key, max, 1)?.pop() {
            return Ok(Reply::Array(vec![
                Reply::Bulk(key.clone()),
                Reply::Bulk(member),
                Reply::Double(score),
            ]));
        }
    }
    Ok(Reply::NullArray)
}

fn zrandmember(view: &View<'_>, args: &[Bytes]) -> CmdResult {
    let with_scores = match args.len() {
        2 | 3 => false,
        4 if is(&args[3], "withscores") => true,
        _ => return Err(syntax()),
    };
    let count = args.get(2).map(|c| random_count(c)).transpose()?;
    let zset = view.zset(&args[1])?;
    let seed = read_random(view, &args[1]);
    let Some(zset) = zset else {
        return Ok(if count.is_some() { Reply::Array(Vec::new()) } else { Reply::Null });
    };
    let all: Vec<&(Score, Bytes)> = zset.order.iter().collect();
    let picks = random_indexes(all.len(), count.unwrap_or(1), seed);
    let chosen: Vec<&(Score, Bytes)> = picks.into_iter().map(|i| all[i]).collect();
    Ok(match count {
        None => Reply::Bulk(chosen[0].1.clone()),
        Some(_) => scored(&chosen, with_scores, view.proto),
    })
}

fn zscan(view: &View<'_>, args: &[Bytes]) -> CmdResult {
    let start = parse_cursor(&args[2])?;
    let options = scan_options(args, 3, false)?;
    let Some(zset) = view.zset(&args[1])? else {
        return Ok(Reply::Array(vec![Reply::text("0"), Reply::Array(Vec::new())]));
    };
    let count = if zset.len() <= SCAN_WHOLE_LEN_MAX { usize::MAX } else { options.count };
    // Small sets are scanned in score order (as Redis's listpack), larger ones by member.
    let mut flat = Vec::new();
    let mut push = |member: &Bytes, score: f64| {
        if options.pattern.as_ref().is_none_or(|p| glob_match(p, member, false)) {
            flat.push(Reply::Bulk(member.clone()));
            flat.push(Reply::text(format_double(score)));
        }
    };
    if count == usize::MAX {
        for (score, member) in zset.order.iter() {
            push(member, score.0);
        }
        return Ok(Reply::Array(vec![Reply::text("0"), Reply::Array(flat)]));
    }
    let items = match start {
        None => zset.scores.range::<_, Bytes>(..),
        Some(from) => zset.scores.range(from..),
    };
    let (taken, next) = page(items, count);
    for (member, score) in taken {
        push(member, score.0);
    }
    Ok(Reply::Array(vec![Reply::text(next.to_string()), Reply::Array(flat)]))
}
