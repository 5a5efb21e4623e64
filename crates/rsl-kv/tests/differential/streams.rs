//! The differential test's stream commands: explicit ids (`*` ids come from each server's
//! own clock), exact trimming (Redis trims `~` by whole radix-tree nodes), consumer groups;
//! and the normalization of the fields that differ by design.

use rsl_kv::resp::Reply;

use super::{key, value, Rng, MEMBERS};

/// A stream id for the `x` keys: explicit (`*` ids come from each server's own clock, so
/// they are not generated), sometimes `ms` alone or `ms-*`.
fn stream_id(rng: &mut Rng) -> String {
    let ms = rng.int(0, 3000);
    match rng.below(10) {
        0 => ms,
        1 => format!("{ms}-*"),
        2 => "0-0".into(),
        _ => format!("{ms}-{}", rng.int(0, 3)),
    }
}

/// A range bound for XRANGE and XPENDING.
fn stream_bound(rng: &mut Rng) -> String {
    match rng.below(6) {
        0 => "-".into(),
        1 => "+".into(),
        2 => format!("({}", rng.int(0, 3000)),
        _ => rng.int(0, 3000),
    }
}

/// Stream commands on the `x` keys (sometimes another type's, for WRONGTYPE), with explicit
/// ids, exact trimming (with `~` Redis trims whole nodes of its radix tree: fewer entries than
/// rsl-kv, so `~` is not generated), consumer groups `g0`/`g1` and consumers `c0`..`c2`.
pub fn stream_command(rng: &mut Rng) -> Vec<String> {
    let x =
        |rng: &mut Rng| if rng.chance(88) { format!("x{}", rng.below(3)) } else { key(rng, "s") };
    let group = |rng: &mut Rng| format!("g{}", rng.below(2));
    let consumer = |rng: &mut Rng| format!("c{}", rng.below(3));
    let k = x(rng);
    let mut c: Vec<String> = match rng.below(17) {
        0..=2 => {
            let mut c = vec!["XADD".into(), k];
            if rng.chance(10) {
                c.push("NOMKSTREAM".into());
            }
            if rng.chance(25) {
                c.push(rng.pick(&["MAXLEN", "MINID", "maxlen"]).into());
                if rng.chance(40) {
                    c.push("=".into());
                }
                c.push(rng.int(-1, 5));
            }
            c.push(stream_id(rng));
            for _ in 0..1 + rng.below(2) {
                c.push(rng.pick(MEMBERS).into());
                c.push(value(rng));
            }
            if rng.chance(3) {
                c.pop();
            }
            c
        }
        3 => vec!["XLEN".into(), k],
        4 | 5 => {
            let rev = rng.chance(40);
            let mut c = vec![if rev { "XREVRANGE" } else { "XRANGE" }.into(), k];
            c.extend([stream_bound(rng), stream_bound(rng)]);
            if rng.chance(40) {
                c.extend(["COUNT".into(), rng.int(-1, 3)]);
            }
            c
        }
        6 => vec!["XDEL".into(), k, stream_id(rng), stream_id(rng)],
        7 => {
            let mut c = vec!["XTRIM".into(), k, rng.pick(&["MAXLEN", "MINID", "FOO"]).into()];
            if rng.chance(30) {
                c.push("=".into());
            }
            c.push(if c[2] == "MINID" { stream_id(rng) } else { rng.int(-1, 4) });
            c
        }
        8 | 9 => {
            let mut c = vec!["XREAD".into()];
            if rng.chance(30) {
                c.extend(["COUNT".into(), rng.int(-1, 3)]);
            }
            if rng.chance(10) {
                c.extend(["BLOCK".into(), "1".into()]);
            }
            let streams = 1 + rng.below(2);
            c.push("STREAMS".into());
            let keys: Vec<String> = (0..streams).map(|_| x(rng)).collect();
            c.extend(keys);
            for _ in 0..streams {
                c.push(if rng.chance(20) { "$".into() } else { stream_id(rng) });
            }
            c
        }
        10 => {
            let sub = rng.pick(&[
                "CREATE",
                "CREATE",
                "SETID",
                "DESTROY",
                "CREATECONSUMER",
                "DELCONSUMER",
            ]);
            let mut c = vec!["XGROUP".into(), sub.into(), k, group(rng)];
            match sub {
                "CREATE" | "SETID" => {
                    c.push(if rng.chance(30) { "$".into() } else { stream_id(rng) });
                    if sub == "CREATE" && rng.chance(50) {
                        c.push("MKSTREAM".into());
                    }
                    if rng.chance(20) {
                        c.extend(["ENTRIESREAD".into(), rng.int(-2, 5)]);
                    }
                }
                "CREATECONSUMER" | "DELCONSUMER" => c.push(consumer(rng)),
                _ => {}
            }
            c
        }
        11 | 12 => {
            let mut c = vec!["XREADGROUP".into(), "GROUP".into(), group(rng), consumer(rng)];
            if rng.chance(30) {
                c.extend(["COUNT".into(), rng.int(0, 2)]);
            }
            if rng.chance(15) {
                c.push("NOACK".into());
            }
            c.extend(["STREAMS".into(), k]);
            c.push(if rng.chance(70) { ">".into() } else { stream_id(rng) });
            c
        }
        13 => vec!["XACK".into(), k, group(rng), stream_id(rng), stream_id(rng)],
        14 => {
            let mut c = vec!["XPENDING".into(), k, group(rng)];
            if rng.chance(60) {
                c.extend([stream_bound(rng), stream_bound(rng), rng.int(-1, 5)]);
                if rng.chance(40) {
                    c.push(consumer(rng));
                }
            }
            c
        }
        15 => {
            if rng.chance(50) {
                let mut c = vec!["XCLAIM".into(), k, group(rng), consumer(rng), "0".into()];
                c.extend([stream_id(rng), stream_id(rng)]);
                for option in ["JUSTID", "FORCE"] {
                    if rng.chance(25) {
                        c.push(option.into());
                    }
                }
                if rng.chance(20) {
                    c.extend(["RETRYCOUNT".into(), rng.int(0, 9)]);
                }
                c
            } else {
                let mut c = vec!["XAUTOCLAIM".into(), k, group(rng), consumer(rng), "0".into()];
                c.push(stream_bound(rng));
                if rng.chance(40) {
                    c.extend(["COUNT".into(), rng.int(0, 3)]);
                }
                if rng.chance(25) {
                    c.push("JUSTID".into());
                }
                c
            }
        }
        _ => match rng.below(6) {
            0 => vec!["XINFO".into(), "STREAM".into(), k],
            1 => vec!["XINFO".into(), "GROUPS".into(), k],
            2 => vec!["XINFO".into(), "CONSUMERS".into(), k, group(rng)],
            3 => {
                let mut c = vec!["XINFO".into(), "STREAM".into(), k, "FULL".into()];
                if rng.chance(50) {
                    c.extend(["COUNT".into(), rng.pick(&["0", "1", "2", "-1", "x"]).into()]);
                } else if rng.chance(10) {
                    c.push(rng.pick(&["COUNT", "FOO"]).into());
                }
                c
            }
            4 => {
                let mut c = vec!["XSETID".into(), k, stream_id(rng)];
                if rng.chance(40) {
                    c.extend(["ENTRIESADDED".into(), rng.int(-1, 8)]);
                }
                if rng.chance(40) {
                    c.extend(["MAXDELETEDID".into(), stream_id(rng)]);
                }
                if rng.chance(5) {
                    c.push("ENTRIESADDED".into());
                }
                c
            }
            _ => vec!["DEL".into(), k],
        },
    };
    c.retain(|_| true);
    c
}

/// Zeroes the named fields of a map reply (RESP3) or of its flat form (RESP2).
fn zero_fields(reply: Reply, names: &[&str]) -> Reply {
    let hidden =
        |k: &Reply| matches!(k, Reply::Bulk(b) if names.iter().any(|n| n.as_bytes() == &b[..]));
    match reply {
        Reply::Map(pairs) => Reply::Map(
            pairs
                .into_iter()
                .map(|(k, v)| if hidden(&k) { (k, Reply::Integer(0)) } else { (k, v) })
                .collect(),
        ),
        Reply::Array(mut items) if items.len() % 2 == 0 => {
            for i in (0..items.len()).step_by(2) {
                if hidden(&items[i]) {
                    items[i + 1] = Reply::Integer(0);
                }
            }
            Reply::Array(items)
        }
        other => other,
    }
}

/// Zeroes every integer that is a moment (Unix milliseconds, from 10^12): XINFO STREAM FULL's
/// delivery and seen times are each server's clock (rsl-kv's: the request's stamp).
fn zero_times(reply: Reply) -> Reply {
    const MOMENT_MIN_MS: i64 = 1_000_000_000_000;
    match reply {
        Reply::Integer(n) if n >= MOMENT_MIN_MS => Reply::Integer(0),
        Reply::Array(items) => Reply::Array(items.into_iter().map(zero_times).collect()),
        Reply::Map(pairs) => {
            Reply::Map(pairs.into_iter().map(|(k, v)| (k, zero_times(v))).collect())
        }
        other => other,
    }
}

/// The stream replies' documented exceptions: idle times are each server's clock less a
/// delivery time, read at different moments, and XINFO STREAM FULL's times are each
/// server's clock; the radix tree's key and node counts are Redis's layout (rsl-kv
/// estimates them).
pub fn normalize_stream(name: &str, reply: Reply) -> Reply {
    match (name, reply) {
        ("XPENDING", Reply::Array(items))
            if items.iter().all(|i| matches!(i, Reply::Array(e) if e.len() == 4)) =>
        {
            Reply::Array(
                items
                    .into_iter()
                    .map(|item| match item {
                        Reply::Array(mut e) => {
                            e[2] = Reply::Integer(0);
                            Reply::Array(e)
                        }
                        other => other,
                    })
                    .collect(),
            )
        }
        ("XINFO", Reply::Array(items))
            if items.iter().all(|i| matches!(i, Reply::Map(_) | Reply::Array(_))) =>
        {
            Reply::Array(items.into_iter().map(|i| zero_fields(i, &["idle"])).collect())
        }
        ("XINFO", reply) => {
            zero_times(zero_fields(reply, &["radix-tree-keys", "radix-tree-nodes"]))
        }
        (_, other) => other,
    }
}
