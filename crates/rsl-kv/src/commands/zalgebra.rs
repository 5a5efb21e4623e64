//! Sorted-set algebra: ZUNION, ZINTER, ZDIFF, their STORE forms (with WEIGHTS and AGGREGATE)
//! and ZINTERCARD, with Redis 7's argument checks, errors and arithmetic.
//!
//! As in Redis, an input may be a set (each member scores 1) or a sorted set, a missing key is
//! empty, union and intersection take their inputs from the smallest to the largest (a stable
//! order, so a sum adds the same scores in the same order on every replica), a weighted score
//! that is NaN (0 times infinity) counts as 0, and a sum of +inf and -inf is 0. A score of -0
//! (a weight of -1 on 0) is answered as -0, and stored as 0 in a small result, as Redis does.

use bytes::Bytes;
use imbl::OrdMap;

use super::zsets::scored;
use super::{
    flags, float_arg, int_arg, is, read, syntax, write, CmdResult, CommandDef, Ctx, View,
    FLAG_MOVABLEKEYS, K0,
};
use crate::resp::{parse_i64, Reply};
use crate::value::{Value, ZSet};

pub(super) const COMMANDS: &[CommandDef] = &[
    flags(read("zunion", -3, K0, zalgebra), FLAG_MOVABLEKEYS),
    flags(read("zinter", -3, K0, zalgebra), FLAG_MOVABLEKEYS),
    flags(read("zdiff", -3, K0, zalgebra), FLAG_MOVABLEKEYS),
    flags(write("zunionstore", -4, (1, 1, 1), zstore), FLAG_MOVABLEKEYS),
    flags(write("zinterstore", -4, (1, 1, 1), zstore), FLAG_MOVABLEKEYS),
    flags(write("zdiffstore", -4, (1, 1, 1), zstore), FLAG_MOVABLEKEYS),
    flags(read("zintercard", -3, K0, zintercard), FLAG_MOVABLEKEYS),
];

/// Redis's default `zset-max-listpack-entries`: the most members of a compact sorted set.
const LISTPACK_ENTRIES_MAX: usize = 128;
/// Redis's default `zset-max-listpack-value`: the longest member of a compact sorted set.
const LISTPACK_VALUE_BYTES_MAX: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Union,
    Inter,
    Diff,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Aggregate {
    Sum,
    Min,
    Max,
}

/// One input: its members and scores (a set's members score 1), and its weight.
struct Source {
    scores: OrdMap<Bytes, f64>,
    weight: f64,
}

/// A parsed call: the inputs, how scores combine, and the options.
struct Call {
    sources: Vec<Source>,
    aggregate: Aggregate,
    with_scores: bool,
    limit: usize,
}

fn op_of(name: &[u8]) -> Op {
    let lower = name.to_ascii_lowercase();
    match &lower[1..] {
        n if n.starts_with(b"union") => Op::Union,
        n if n.starts_with(b"inter") => Op::Inter,
        _ => Op::Diff,
    }
}

/// Parses `numkeys key... options` from `args[at]` on, as Redis's
/// `zunionInterDiffGenericCommand` does, in its order: the count, the keys' types, then the
/// options.
fn parse(
    view: &View<'_>,
    args: &[Bytes],
    at: usize,
    op: Op,
    store: bool,
    card_only: bool,
) -> Result<Call, Reply> {
    let name = String::from_utf8_lossy(&args[0]).to_ascii_lowercase();
    let numkeys = int_arg(&args[at])?;
    if numkeys < 1 {
        return Err(Reply::error(format!(
            "ERR at least 1 input key is needed for '{name}' command"
        )));
    }
    if numkeys as u64 > (args.len() - at - 1) as u64 {
        return Err(syntax());
    }
    let numkeys = numkeys as usize;
    let mut sources = Vec::with_capacity(numkeys);
    for key in &args[at + 1..at + 1 + numkeys] {
        let scores = match view.get(key) {
            None => OrdMap::new(),
            Some(Value::ZSet(z)) => z.scores.iter().map(|(m, s)| (m.clone(), s.0)).collect(),
            Some(Value::Set(s)) => s.iter().map(|m| (m.clone(), 1.0)).collect(),
            Some(_) => return Err(super::wrongtype()),
        };
        sources.push(Source { scores, weight: 1.0 });
    }
    let mut call = Call { sources, aggregate: Aggregate::Sum, with_scores: false, limit: 0 };
    let mut j = at + 1 + numkeys;
    while j < args.len() {
        let remaining = args.len() - j;
        let word = &args[j];
        if op != Op::Diff && !card_only && remaining > numkeys && is(word, "weights") {
            for (i, source) in call.sources.iter_mut().enumerate() {
                source.weight = float_arg(&args[j + 1 + i])
                    .map_err(|_| Reply::error("ERR weight value is not a float"))?;
            }
            j += 1 + numkeys;
        } else if op != Op::Diff && !card_only && remaining >= 2 && is(word, "aggregate") {
            let how = &args[j + 1];
            call.aggregate = if is(how, "sum") {
                Aggregate::Sum
            } else if is(how, "min") {
                Aggregate::Min
            } else if is(how, "max") {
                Aggregate::Max
            } else {
                return Err(syntax());
            };
            j += 2;
        } else if !store && !card_only && is(word, "withscores") {
            call.with_scores = true;
            j += 1;
        } else if card_only && remaining >= 2 && is(word, "limit") {
            call.limit = match parse_i64(&args[j + 1]) {
                Some(n) if n >= 0 => n as usize,
                _ => return Err(Reply::error("ERR LIMIT can't be negative")),
            };
            j += 2;
        } else {
            return Err(syntax());
        }
    }
    Ok(call)
}

/// Redis's `zunionInterAggregate`.
fn aggregate(target: &mut f64, value: f64, how: Aggregate) {
    match how {
        Aggregate::Sum => {
            *target += value;
            if target.is_nan() {
                *target = 0.0;
            }
        }
        Aggregate::Min => {
            if value < *target {
                *target = value;
            }
        }
        Aggregate::Max => {
            if value > *target {
                *target = value;
            }
        }
    }
}

/// The result of `op` over the call's inputs, or, with `count_max` above 0, only its first
/// `count_max` members (ZINTERCARD's LIMIT).
fn compute(mut call: Call, op: Op, count_max: usize) -> ZSet {
    let mut out = ZSet::default();
    let full = |out: &ZSet| count_max > 0 && out.len() >= count_max;
    if op != Op::Diff {
        call.sources.sort_by_key(|s| s.scores.len());
    }
    let Some((first, rest)) = call.sources.split_first() else { return out };
    match op {
        Op::Inter => {
            'members: for (member, score) in first.scores.iter() {
                if full(&out) {
                    break;
                }
                let mut total = first.weight * score;
                if total.is_nan() {
                    total = 0.0;
                }
                for other in rest {
                    let Some(score) = other.scores.get(member) else { continue 'members };
                    aggregate(&mut total, other.weight * score, call.aggregate);
                }
                out.insert(member.clone(), total);
            }
        }
        Op::Union => {
            let mut totals: OrdMap<Bytes, f64> = OrdMap::new();
            for source in &call.sources {
                for (member, score) in source.scores.iter() {
                    let mut weighted = source.weight * score;
                    if weighted.is_nan() {
                        weighted = 0.0;
                    }
                    match totals.get_mut(member) {
                        Some(total) => aggregate(total, weighted, call.aggregate),
                        None => {
                            totals.insert(member.clone(), weighted);
                        }
                    }
                }
            }
            for (member, total) in totals {
                out.insert(member, total);
            }
        }
        Op::Diff => {
            for (member, score) in first.scores.iter() {
                if !rest.iter().any(|other| other.scores.contains_key(member)) {
                    out.insert(member.clone(), *score);
                }
            }
        }
    }
    out
}

fn zalgebra(view: &View<'_>, args: &[Bytes]) -> CmdResult {
    let op = op_of(&args[0]);
    let call = parse(view, args, 1, op, false, false)?;
    let with_scores = call.with_scores;
    let result = compute(call, op, 0);
    Ok(scored(&result.order.iter().collect::<Vec<_>>(), with_scores, view.proto))
}

/// Redis keeps a small sorted set compactly (a listpack: at most 128 members of at most 64
/// bytes), where a score of -0 is stored as the integer 0; a larger one (a skiplist) keeps
/// -0. rsl-kv has one representation, so it applies the rule by the set's current size.
pub(super) fn compact_zeros(zset: &mut ZSet) {
    let compact = zset.len() <= LISTPACK_ENTRIES_MAX
        && zset.scores.keys().all(|m| m.len() <= LISTPACK_VALUE_BYTES_MAX);
    if compact {
        let negative_zeros: Vec<Bytes> = zset
            .order
            .iter()
            .filter(|(s, _)| s.0 == 0.0 && s.0.is_sign_negative())
            .map(|(_, m)| m.clone())
            .collect();
        for member in negative_zeros {
            zset.insert(member, 0.0);
        }
    }
}

fn zstore(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let op = op_of(&args[0]);
    let mut result = compute(parse(&ctx.view(), args, 2, op, true, false)?, op, 0);
    compact_zeros(&mut result);
    let len = result.len() as i64;
    ctx.db.remove(&args[1]);
    if len > 0 {
        ctx.db.store(args[1].clone(), Value::ZSet(Box::new(result)), None);
        ctx.ready(&args[1]);
    }
    Ok(Reply::Integer(len))
}

fn zintercard(view: &View<'_>, args: &[Bytes]) -> CmdResult {
    let call = parse(view, args, 1, Op::Inter, false, true)?;
    let limit = call.limit;
    Ok(Reply::Integer(compute(call, Op::Inter, limit).len() as i64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::Db;
    use crate::resp::Proto;

    fn zset(pairs: &[(&str, f64)]) -> Value {
        let mut z = ZSet::default();
        for (m, s) in pairs {
            z.insert(Bytes::copy_from_slice(m.as_bytes()), *s);
        }
        Value::ZSet(Box::new(z))
    }

    fn run(db: &Db, words: &[&str]) -> Reply {
        let view = View { db, now_ms: 0, proto: Proto::Resp2 };
        let args: Vec<Bytes> = words.iter().map(|w| Bytes::copy_from_slice(w.as_bytes())).collect();
        zalgebra(&view, &args).unwrap_or_else(|e| e)
    }

    /// A reply as redis-cli prints it, on one line.
    fn flat(reply: &Reply) -> String {
        match reply {
            Reply::Array(items) => items.iter().map(flat).collect::<Vec<_>>().join(" "),
            Reply::Bulk(b) => String::from_utf8_lossy(b).into_owned(),
            Reply::Double(d) => crate::resp::format_double(*d),
            Reply::Integer(n) => n.to_string(),
            other => String::from_utf8_lossy(&other.to_bytes())
                .trim()
                .trim_start_matches('-')
                .to_string(),
        }
    }

    /// The answers of redis-server 7.0.15 (redis-cli, 2026-12-05) with `a` = {m: inf, n: 1},
    /// `b` = {m: -inf, n: 2} and the set `s` = {m, x}: a NaN weighted score is 0, +inf plus
    /// -inf is 0, a set scores 1, and the options' errors.
    #[test]
    fn infinities_weights_sets_and_errors_answer_as_redis_7_does() {
        let mut db = Db::default();
        db.store(Bytes::from_static(b"a"), zset(&[("m", f64::INFINITY), ("n", 1.0)]), None);
        db.store(Bytes::from_static(b"b"), zset(&[("m", f64::NEG_INFINITY), ("n", 2.0)]), None);
        let set = [Bytes::from_static(b"m"), Bytes::from_static(b"x")].into_iter().collect();
        db.store(Bytes::from_static(b"s"), Value::Set(set), None);
        let cases = [
            ("zunion 1 a weights 0 withscores", "m 0 n 0"),
            ("zunion 2 a b withscores", "m 0 n 3"),
            ("zinter 2 a b withscores", "m 0 n 3"),
            ("zinter 2 a b weights 0 1 withscores", "m -inf n 2"),
            ("zinter 2 a b aggregate min withscores", "m -inf n 1"),
            ("zinter 2 a b aggregate max withscores", "n 2 m inf"),
            ("zunion 2 a s withscores", "n 1 x 1 m inf"),
            ("zinter 2 s a weights 2 1 withscores", "m inf"),
            ("zdiff 2 a s withscores", "n 1"),
            ("zinter 2 a b weights 1 withscores", "ERR weight value is not a float"),
            ("zunion 1 a aggregate avg", "ERR syntax error"),
            ("zdiff 1 a aggregate sum", "ERR syntax error"),
            ("zunion 3 a b", "ERR syntax error"),
            ("zunion x a", "ERR value is not an integer or out of range"),
            ("zunion -1 a", "ERR at least 1 input key is needed for 'zunion' command"),
            ("zinter 1 nokey withscores", ""),
        ];
        for (line, want) in cases {
            let words: Vec<&str> = line.split(' ').collect();
            assert_eq!(flat(&run(&db, &words)), want, "{line}");
        }
        let view = View { db: &db, now_ms: 0, proto: Proto::Resp2 };
        for (line, want) in [
            ("zintercard 2 a b limit 1", "1"),
            ("zintercard 2 a b limit -1", "ERR LIMIT can't be negative"),
            ("zintercard 2 a b withscores", "ERR syntax error"),
        ] {
            let args: Vec<Bytes> =
                line.split(' ').map(|w| Bytes::copy_from_slice(w.as_bytes())).collect();
            assert_eq!(flat(&zintercard(&view, &args).unwrap_or_else(|e| e)), want, "{line}");
        }
    }

    /// Redis 7.0.15 answers `m 1` to both (seen with redis-cli): it adds the inputs from the
    /// smallest to the largest, so 1e16 and -1e16 cancel before 1 is added, in any key order.
    #[test]
    fn a_sum_adds_the_inputs_from_the_smallest_as_redis_does() {
        let mut db = Db::default();
        db.store(Bytes::from_static(b"a"), zset(&[("m", 1e16)]), None);
        db.store(Bytes::from_static(b"b"), zset(&[("m", 1.0), ("x", 5.0), ("y", 6.0)]), None);
        db.store(Bytes::from_static(b"c"), zset(&[("m", -1e16), ("q", 7.0)]), None);
        for order in [["a", "b", "c"], ["b", "c", "a"]] {
            for op in ["zunion", "zinter"] {
                let reply = run(&db, &[op, "3", order[0], order[1], order[2], "withscores"]);
                let Reply::Array(items) = reply else { panic!("{reply:?}") };
                assert_eq!(items[..2], [Reply::Bulk(Bytes::from_static(b"m")), Reply::Double(1.0)]);
            }
        }
    }
}
