//! Bit commands on strings: SETBIT, GETBIT, BITCOUNT, BITPOS, BITOP. Bit 0 is the most
//! significant bit of the first byte, as in Redis.

use bytes::Bytes;

use super::strings::{put_string, string_mut};
use super::{int_arg, is, read, syntax, write, CmdResult, CommandDef, Ctx, View, K1};
use crate::limits;
use crate::resp::{parse_i64, Reply};
use crate::value::Value;

pub(super) const COMMANDS: &[CommandDef] = &[
    write("setbit", 4, K1, setbit),
    read("getbit", 3, K1, getbit),
    read("bitcount", -2, K1, bitcount),
    read("bitpos", -3, K1, bitpos),
    write("bitop", -4, (2, -1, 1), bitop),
];

const ERR_BIT_OFFSET: &str = "ERR bit offset is not an integer or out of range";

fn bit_offset(arg: &[u8]) -> Result<usize, Reply> {
    match parse_i64(arg) {
        Some(n) if n >= 0 && (n as u64) < (limits::VALUE_BYTES_MAX as u64) * 8 => Ok(n as usize),
        _ => Err(Reply::error(ERR_BIT_OFFSET)),
    }
}

fn bit_at(value: &[u8], offset: usize) -> bool {
    value.get(offset / 8).is_some_and(|byte| byte & (0x80 >> (offset % 8)) != 0)
}

fn setbit(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let offset = bit_offset(&args[2])?;
    let on = match &args[3][..] {
        b"0" => false,
        b"1" => true,
        _ => return Err(Reply::error("ERR bit is not an integer or out of range")),
    };
    let old_value = string_mut(ctx, &args[1])?;
    if old_value.as_ref().is_some_and(|v| v.len() > offset / 8 && bit_at(v, offset) == on) {
        // Nothing changes: the key's version (and so WATCH) is left alone.
        return Ok(Reply::Integer(i64::from(on)));
    }
    let mut value = old_value.map(|s| s.to_vec()).unwrap_or_default();
    if value.len() <= offset / 8 {
        value.resize(offset / 8 + 1, 0);
    }
    let old = bit_at(&value, offset);
    let mask = 0x80 >> (offset % 8);
    if on {
        value[offset / 8] |= mask;
    } else {
        value[offset / 8] &= !mask;
    }
    put_string(ctx, &args[1], Bytes::from(value));
    Ok(Reply::Integer(i64::from(old)))
}

fn getbit(view: &View<'_>, args: &[Bytes]) -> CmdResult {
    let offset = bit_offset(&args[2])?;
    let value = view.string(&args[1])?;
    Ok(Reply::Integer(i64::from(value.is_some_and(|v| bit_at(v, offset)))))
}

fn bitcount(view: &View<'_>, args: &[Bytes]) -> CmdResult {
    let bits_mode = match args.len() {
        2 => None,
        4 => Some(false),
        5 if is(&args[4], "bit") => Some(true),
        5 if is(&args[4], "byte") => Some(false),
        _ => return Err(syntax()),
    };
    let range = match bits_mode {
        None => None,
        Some(mode) => Some((super::int_arg(&args[2])?, super::int_arg(&args[3])?, mode)),
    };
    let Some(value) = view.string(&args[1])? else { return Ok(Reply::Integer(0)) };
    let Some((start, end, bits)) = range else {
        return Ok(Reply::Integer(value.iter().map(|b| b.count_ones() as i64).sum()));
    };
    if start < 0 && end < 0 && start > end {
        return Ok(Reply::Integer(0));
    }
    let total = if bits { value.len() as i64 * 8 } else { value.len() as i64 };
    let start = if start < 0 { (total + start).max(0) } else { start };
    let end = if end < 0 { (total + end).max(0) } else { end }.min(total - 1);
    if start > end || total == 0 {
        return Ok(Reply::Integer(0));
    }
    let count = if bits {
        (start as usize..=end as usize).filter(|&i| bit_at(value, i)).count() as i64
    } else {
        value[start as usize..=end as usize].iter().map(|b| b.count_ones() as i64).sum()
    };
    Ok(Reply::Integer(count))
}

/// BITPOS key bit [start [end [BYTE | BIT]]]: the first bit equal to `bit` in the range, as
/// Redis 7 checks and answers it (a missing key is all zeros; without an explicit end, a
/// search for 0 in all ones answers the first bit past the string).
fn bitpos(view: &View<'_>, args: &[Bytes]) -> CmdResult {
    let bit = int_arg(&args[2])?;
    if bit != 0 && bit != 1 {
        return Err(Reply::error("ERR The bit argument must be 1 or 0."));
    }
    let want = bit == 1;
    let Some(value) = view.string(&args[1])? else {
        return Ok(Reply::Integer(if want { -1 } else { 0 }));
    };
    let len = value.len() as i64;
    let (start, end, end_given) = match args.len() {
        3 => (0, len - 1, false),
        4..=6 => {
            let start = int_arg(&args[3])?;
            let bits = match args.get(5) {
                None => false,
                Some(unit) if is(unit, "bit") => true,
                Some(unit) if is(unit, "byte") => false,
                Some(_) => return Err(syntax()),
            };
            let (end, end_given) = match args.get(4) {
                Some(end) => (int_arg(end)?, true),
                None if bits => (len * 8 + 7, false),
                None => (len - 1, false),
            };
            let total = if bits { len * 8 } else { len };
            let start = if start < 0 { total + start } else { start }.max(0);
            let end = if end < 0 { total + end } else { end }.max(0);
            let end = if end >= total { total - 1 } else { end };
            if start > end {
                return Ok(Reply::Integer(-1));
            }
            if bits {
                (start, end, end_given)
            } else {
                (start * 8, end * 8 + 7, end_given)
            }
        }
        _ => return Err(syntax()),
    };
    let (start, end) = if args.len() == 3 {
        if start > end {
            return Ok(Reply::Integer(-1));
        }
        (start * 8, end * 8 + 7)
    } else {
        (start, end)
    };
    // Whole bytes without the bit are skipped eight bits at a time.
    let skip = if want { 0x00 } else { 0xff };
    let mut i = start;
    while i <= end {
        if i % 8 == 0 && i + 7 <= end && value[i as usize / 8] == skip {
            i += 8;
            continue;
        }
        if bit_at(value, i as usize) == want {
            return Ok(Reply::Integer(i));
        }
        i += 1;
    }
    // Not found: a 0 past an implicit end is the string's zero padding.
    Ok(Reply::Integer(if want || end_given { -1 } else { (end / 8 + 1) * 8 }))
}

/// BITOP AND|OR|XOR|NOT destkey key [key ...]: stores the result (as long as the longest
/// input, shorter ones padded with zeros) and answers its length; an empty result deletes
/// the destination.
fn bitop(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let op = args[1].to_ascii_lowercase();
    if !matches!(&op[..], b"and" | b"or" | b"xor" | b"not") {
        return Err(syntax());
    }
    if op == b"not" && args.len() != 4 {
        return Err(Reply::error("ERR BITOP NOT must be called with a single source key."));
    }
    let view = ctx.view();
    let mut inputs = Vec::with_capacity(args.len() - 3);
    for key in &args[3..] {
        inputs.push(view.string(key)?.cloned().unwrap_or_default());
    }
    let len = inputs.iter().map(|s| s.len()).max().unwrap_or(0);
    let byte = |s: &Bytes, j: usize| s.get(j).copied().unwrap_or(0);
    let result: Vec<u8> = (0..len)
        .map(|j| {
            let first = byte(&inputs[0], j);
            inputs[1..].iter().fold(if op == b"not" { !first } else { first }, |acc, s| {
                match &op[..] {
                    b"and" => acc & byte(s, j),
                    b"or" => acc | byte(s, j),
                    _ => acc ^ byte(s, j),
                }
            })
        })
        .collect();
    ctx.db.remove(&args[2]);
    if len > 0 {
        ctx.db.store(args[2].clone(), Value::Str(Bytes::from(result)), None);
    }
    Ok(Reply::Integer(len as i64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::Db;
    use crate::resp::Proto;

    /// BITPOS's answers as redis-server 7.0.15 gave them (redis-cli, 2026-12-05) for `k` =
    /// ff f0 00, `f` = ff ff, `e` = "" and a missing key: the range forms, a search for 0 past
    /// an implicit end (the zero padding) and within an explicit one (-1), and the errors.
    #[test]
    fn bitpos_answers_as_redis_7_does() {
        let mut db = Db::default();
        for (key, value) in [(&b"k"[..], &b"\xff\xf0\x00"[..]), (b"f", b"\xff\xff"), (b"e", b"")] {
            db.store(Bytes::copy_from_slice(key), Value::Str(Bytes::copy_from_slice(value)), None);
        }
        let view = View { db: &db, now_ms: 0, proto: Proto::Resp2 };
        let not_integer = Err("ERR value is not an integer or out of range");
        let cases: &[(&str, Result<i64, &str>)] = &[
            ("k 0", Ok(12)),
            ("k 1", Ok(0)),
            ("k 0 0", Ok(12)),
            ("k 0 1", Ok(12)),
            ("k 0 0 0", Ok(-1)),
            ("k 0 0 1", Ok(12)),
            ("k 1 2", Ok(-1)),
            ("k 1 2 -1", Ok(-1)),
            ("k 0 0 0 BYTE", Ok(-1)),
            ("k 0 0 11 BIT", Ok(-1)),
            ("k 0 0 12 BIT", Ok(12)),
            ("k 0 3 7 BIT", Ok(-1)),
            ("k 1 12 23 BIT", Ok(-1)),
            ("k 0 -1", Ok(16)),
            ("k 0 -8 -1 BIT", Ok(16)),
            ("k 1 1 0", Ok(-1)),
            ("k 0 5", Ok(-1)),
            ("k 0 8 BIT", not_integer),
            ("k 0 x", not_integer),
            ("k 2", Err("ERR The bit argument must be 1 or 0.")),
            ("k 0 0 1 NOPE", Err("ERR syntax error")),
            ("f 0", Ok(16)),
            ("f 0 0", Ok(16)),
            ("f 0 0 1", Ok(-1)),
            ("f 0 0 -1", Ok(-1)),
            ("f 0 0 15 BIT", Ok(-1)),
            ("f 1 0 1 BIT", Ok(0)),
            ("e 0", Ok(-1)),
            ("e 1", Ok(-1)),
            ("missing 0 1 2 3 4", Ok(0)),
        ];
        for (line, want) in cases {
            let mut args = vec![Bytes::from_static(b"bitpos")];
            args.extend(line.split(' ').map(|w| Bytes::copy_from_slice(w.as_bytes())));
            let want = match want {
                Ok(n) => Reply::Integer(*n),
                Err(e) => Reply::error(*e),
            };
            assert_eq!(bitpos(&view, &args).unwrap_or_else(|e| e), want, "BITPOS {line}");
        }
    }
}
