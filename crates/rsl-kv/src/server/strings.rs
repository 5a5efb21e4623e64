//! The string and keyspace commands: their arguments parsed into requests. Everything the
//! machine would reject the same way on every replica is left to it; only argument syntax is
//! checked here.

use bytes::Bytes;

use super::table::{arity_error, int_arg, is};
use super::ERR_SYNTAX;
use crate::request::{ReadOp, SetCondition, SetExpiry, WriteOp};
use crate::resp::Reply;

pub(super) fn parse_set(args: &[Bytes], stamp_ms: u64) -> Result<WriteOp, Reply> {
    let mut condition = SetCondition::Always;
    let mut expiry = SetExpiry::Clear;
    let mut expiry_given = false;
    let mut get = false;
    let mut i = 3;
    while i < args.len() {
        let option = &args[i];
        if is(option, "nx") || is(option, "xx") {
            let wanted =
                if is(option, "nx") { SetCondition::IfAbsent } else { SetCondition::IfPresent };
            if condition != SetCondition::Always && condition != wanted {
                return Err(Reply::error(ERR_SYNTAX));
            }
            condition = wanted;
        } else if is(option, "get") {
            get = true;
        } else if is(option, "keepttl") {
            if expiry_given {
                return Err(Reply::error(ERR_SYNTAX));
            }
            expiry = SetExpiry::Keep;
            expiry_given = true;
        } else if ["ex", "px", "exat", "pxat"].iter().any(|w| is(option, w)) {
            let Some(amount) = args.get(i + 1) else { return Err(Reply::error(ERR_SYNTAX)) };
            if expiry_given {
                return Err(Reply::error(ERR_SYNTAX));
            }
            expiry = SetExpiry::At(expire_at_ms(option, amount, stamp_ms)?);
            expiry_given = true;
            i += 1;
        } else {
            return Err(Reply::error(ERR_SYNTAX));
        }
        i += 1;
    }
    Ok(WriteOp::Set { key: args[1].clone(), value: args[2].clone(), condition, expiry, get })
}

/// The absolute deadline of an `EX`/`PX`/`EXAT`/`PXAT` option, checked as Redis does.
pub(super) fn expire_at_ms(unit: &[u8], amount: &[u8], stamp_ms: u64) -> Result<u64, Reply> {
    let amount = int_arg(amount)?;
    let seconds = is(unit, "ex") || is(unit, "exat");
    let relative = is(unit, "ex") || is(unit, "px");
    positive_deadline("set", amount, seconds, relative, stamp_ms)
}

/// A deadline from a strictly positive amount, or Redis's "invalid expire time" error.
pub(super) fn positive_deadline(
    command: &str,
    amount: i64,
    seconds: bool,
    relative: bool,
    stamp_ms: u64,
) -> Result<u64, Reply> {
    let invalid = || Reply::error(format!("ERR invalid expire time in '{command}' command"));
    if amount <= 0 {
        return Err(invalid());
    }
    deadline_ms(amount, seconds, relative, stamp_ms).ok_or_else(invalid)
}

/// `amount` seconds or milliseconds, from `stamp_ms` if `relative`, as Unix milliseconds;
/// `None` if it does not fit in an `i64`. A deadline before the epoch becomes 0 (the past).
pub(super) fn deadline_ms(
    amount: i64,
    seconds: bool,
    relative: bool,
    stamp_ms: u64,
) -> Option<u64> {
    let ms = if seconds { amount.checked_mul(1000)? } else { amount };
    let base = if relative { i64::try_from(stamp_ms).ok()? } else { 0 };
    let at = ms.checked_add(base)?;
    Some(u64::try_from(at).unwrap_or(0))
}

pub(super) fn parse_setnx(args: &[Bytes], _: u64) -> Result<WriteOp, Reply> {
    Ok(WriteOp::SetNx { key: args[1].clone(), value: args[2].clone() })
}

pub(super) fn parse_setex(args: &[Bytes], stamp_ms: u64) -> Result<WriteOp, Reply> {
    let seconds = is(&args[0], "setex");
    let command = if seconds { "setex" } else { "psetex" };
    let at = positive_deadline(command, int_arg(&args[2])?, seconds, true, stamp_ms)?;
    Ok(WriteOp::Set {
        key: args[1].clone(),
        value: args[3].clone(),
        condition: SetCondition::Always,
        expiry: SetExpiry::At(at),
        get: false,
    })
}

/// EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT: any integer; one in the past deletes the key.
pub(super) fn parse_expire(args: &[Bytes], stamp_ms: u64) -> Result<WriteOp, Reply> {
    let name = args[0].to_ascii_lowercase();
    let seconds = name == b"expire" || name == b"expireat";
    let relative = name == b"expire" || name == b"pexpire";
    let amount = int_arg(&args[2])?;
    let Some(at_ms) = deadline_ms(amount, seconds, relative, stamp_ms) else {
        let name = String::from_utf8_lossy(&name);
        return Err(Reply::error(format!("ERR invalid expire time in '{name}' command")));
    };
    Ok(WriteOp::Expire { key: args[1].clone(), at_ms })
}

pub(super) fn parse_persist(args: &[Bytes], _: u64) -> Result<WriteOp, Reply> {
    Ok(WriteOp::Persist { key: args[1].clone() })
}

pub(super) fn parse_ttl(args: &[Bytes]) -> Result<ReadOp, Reply> {
    Ok(ReadOp::Ttl { key: args[1].clone(), millis: is(&args[0], "pttl") })
}

pub(super) fn parse_getset(args: &[Bytes], _: u64) -> Result<WriteOp, Reply> {
    Ok(WriteOp::GetSet { key: args[1].clone(), value: args[2].clone() })
}

pub(super) fn parse_del(args: &[Bytes], _: u64) -> Result<WriteOp, Reply> {
    Ok(WriteOp::Del { keys: args[1..].to_vec() })
}

pub(super) fn parse_incr(args: &[Bytes], _: u64) -> Result<WriteOp, Reply> {
    Ok(WriteOp::IncrBy { key: args[1].clone(), delta: 1 })
}

pub(super) fn parse_decr(args: &[Bytes], _: u64) -> Result<WriteOp, Reply> {
    Ok(WriteOp::IncrBy { key: args[1].clone(), delta: -1 })
}

pub(super) fn parse_incrby(args: &[Bytes], _: u64) -> Result<WriteOp, Reply> {
    Ok(WriteOp::IncrBy { key: args[1].clone(), delta: int_arg(&args[2])? })
}

pub(super) fn parse_decrby(args: &[Bytes], _: u64) -> Result<WriteOp, Reply> {
    let delta = int_arg(&args[2])?.checked_neg();
    let delta = delta.ok_or_else(|| Reply::error("ERR decrement would overflow"))?;
    Ok(WriteOp::IncrBy { key: args[1].clone(), delta })
}

pub(super) fn parse_append(args: &[Bytes], _: u64) -> Result<WriteOp, Reply> {
    Ok(WriteOp::Append { key: args[1].clone(), value: args[2].clone() })
}

pub(super) fn parse_mset(args: &[Bytes], _: u64) -> Result<WriteOp, Reply> {
    if args.len().is_multiple_of(2) {
        return Err(arity_error("mset"));
    }
    let pairs = args[1..].chunks_exact(2).map(|p| (p[0].clone(), p[1].clone())).collect();
    Ok(WriteOp::MSet { pairs })
}

pub(super) fn parse_flush(args: &[Bytes], _: u64) -> Result<WriteOp, Reply> {
    match args {
        [_] => Ok(WriteOp::FlushAll),
        [_, mode] if is(mode, "sync") || is(mode, "async") => Ok(WriteOp::FlushAll),
        _ => Err(Reply::error(ERR_SYNTAX)),
    }
}

pub(super) fn parse_get(args: &[Bytes]) -> Result<ReadOp, Reply> {
    Ok(ReadOp::Get { key: args[1].clone() })
}

pub(super) fn parse_exists(args: &[Bytes]) -> Result<ReadOp, Reply> {
    Ok(ReadOp::Exists { keys: args[1..].to_vec() })
}

pub(super) fn parse_strlen(args: &[Bytes]) -> Result<ReadOp, Reply> {
    Ok(ReadOp::Strlen { key: args[1].clone() })
}

pub(super) fn parse_mget(args: &[Bytes]) -> Result<ReadOp, Reply> {
    Ok(ReadOp::MGet { keys: args[1..].to_vec() })
}

pub(super) fn parse_dbsize(_: &[Bytes]) -> Result<ReadOp, Reply> {
    Ok(ReadOp::DbSize)
}
