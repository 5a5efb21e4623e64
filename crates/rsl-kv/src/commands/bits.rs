//! Bit commands on strings: SETBIT, GETBIT, BITCOUNT. Bit 0 is the most significant bit of
//! the first byte, as in Redis.

use bytes::Bytes;

use super::strings::{put_string, string_mut};
use super::{is, read, syntax, write, CmdResult, CommandDef, Ctx, View, K1};
use crate::limits;
use crate::resp::{parse_i64, Reply};

pub(super) const COMMANDS: &[CommandDef] = &[
    write("setbit", 4, K1, setbit),
    read("getbit", 3, K1, getbit),
    read("bitcount", -2, K1, bitcount),
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
