//! The binary form of the requests the server hands to the engine and the state machine runs.
//!
//! The server turns each data command into a [`Request`]: a [`WriteOp`] stamped with the
//! proposing server's wall-clock milliseconds (replicated, then executed on every replica), or
//! a [`ReadOp`] (served from one replica's local state). The format is compact and versioned:
//!
//! | field | size | meaning |
//! | --- | --- | --- |
//! | version | u8 | [`FORMAT_VERSION`] |
//! | op | u8 | the operation code (`OP_*`), writes below 0x40, reads from 0x40 |
//! | stamp_ms | u64 LE | writes only: the proposer's clock |
//! | fields | ... | per op; bytes as u32 LE length + data, lists as u32 LE count + items |
//!
//! Invariants: `decode(encode(r)) == r` for every request within the limits, and [`Request::decode`]
//! rejects every malformed input (truncated, trailing bytes, unknown op or tag, oversized
//! lengths) with a [`DecodeError`], never panicking and never allocating more than the input
//! could describe. A request is immutable once encoded, so every replica decodes the same op.

use bytes::{BufMut, Bytes, BytesMut};

use crate::limits;

/// The version byte that starts every request.
pub const FORMAT_VERSION: u8 = 1;

const OP_TICK: u8 = 0x01;
const OP_SET: u8 = 0x02;
const OP_GETSET: u8 = 0x03;
const OP_DEL: u8 = 0x04;
const OP_INCRBY: u8 = 0x05;
const OP_APPEND: u8 = 0x06;
const OP_MSET: u8 = 0x07;
const OP_FLUSHALL: u8 = 0x08;
const OP_SETNX: u8 = 0x09;
const OP_EXPIRE: u8 = 0x0a;
const OP_PERSIST: u8 = 0x0b;
const OP_GET: u8 = 0x41;
const OP_EXISTS: u8 = 0x42;
const OP_STRLEN: u8 = 0x43;
const OP_MGET: u8 = 0x44;
const OP_DBSIZE: u8 = 0x45;
const OP_TTL: u8 = 0x46;

/// When SET applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetCondition {
    /// Always.
    Always,
    /// Only if the key does not exist (`NX`).
    IfAbsent,
    /// Only if the key exists (`XX`).
    IfPresent,
}

/// What SET does to the key's time to live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetExpiry {
    /// The key no longer expires (SET's default).
    Clear,
    /// The key keeps its expiry (`KEEPTTL`).
    Keep,
    /// The key expires once the machine's clock passes this many Unix milliseconds
    /// (`EX`/`PX` are made absolute by the proposer from its stamp; `EXAT`/`PXAT` are).
    At(u64),
}

/// A replicated command, executed in slot order on every replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOp {
    /// Changes nothing but advances the machine's clock to the request's stamp, so that keys
    /// expire on replicas that receive no other writes. Answers `+OK`.
    Tick,
    /// `SET key value [NX|XX] [GET] [EX|PX|EXAT|PXAT|KEEPTTL]`.
    Set {
        /// The key.
        key: Bytes,
        /// The new value.
        value: Bytes,
        /// When to apply.
        condition: SetCondition,
        /// What happens to the time to live.
        expiry: SetExpiry,
        /// Whether to answer the old value (`GET`) instead of `+OK`.
        get: bool,
    },
    /// GETSET key value: sets, answers the old value, clears the expiry.
    GetSet {
        /// The key.
        key: Bytes,
        /// The new value.
        value: Bytes,
    },
    /// DEL key [key ...]: answers how many existed.
    Del {
        /// The keys, at least one.
        keys: Vec<Bytes>,
    },
    /// INCR, INCRBY, DECR, DECRBY: adds `delta` to the integer value, keeping the expiry.
    IncrBy {
        /// The key.
        key: Bytes,
        /// The signed amount to add.
        delta: i64,
    },
    /// APPEND key value: answers the new length, keeping the expiry.
    Append {
        /// The key.
        key: Bytes,
        /// The bytes to append.
        value: Bytes,
    },
    /// MSET key value [key value ...]: sets all, clearing their expiries.
    MSet {
        /// The pairs, at least one; a later pair wins over an earlier one with the same key.
        pairs: Vec<(Bytes, Bytes)>,
    },
    /// FLUSHALL / FLUSHDB: removes every key.
    FlushAll,
    /// SETNX key value: sets only if absent; answers 1 if it did, 0 if not.
    SetNx {
        /// The key.
        key: Bytes,
        /// The value.
        value: Bytes,
    },
    /// EXPIRE / PEXPIRE / EXPIREAT / PEXPIREAT: sets the key's deadline (made absolute by the
    /// proposer); a deadline already passed deletes the key. Answers 1 if the key exists.
    Expire {
        /// The key.
        key: Bytes,
        /// The deadline in Unix milliseconds.
        at_ms: u64,
    },
    /// PERSIST key: removes the expiry; answers 1 if there was one.
    Persist {
        /// The key.
        key: Bytes,
    },
}

/// A read-only command served from local state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadOp {
    /// GET key.
    Get {
        /// The key.
        key: Bytes,
    },
    /// EXISTS key [key ...]: counts a key once per mention.
    Exists {
        /// The keys, at least one.
        keys: Vec<Bytes>,
    },
    /// STRLEN key.
    Strlen {
        /// The key.
        key: Bytes,
    },
    /// MGET key [key ...].
    MGet {
        /// The keys, at least one.
        keys: Vec<Bytes>,
    },
    /// DBSIZE.
    DbSize,
    /// TTL / PTTL key: the time left, -1 without expiry, -2 for a missing key.
    Ttl {
        /// The key.
        key: Bytes,
        /// Whether to answer in milliseconds (PTTL) rather than seconds (TTL).
        millis: bool,
    },
}

/// A request as the engine carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// A write, stamped with the proposing server's wall-clock milliseconds.
    Write {
        /// The proposer's clock when it encoded the request, in Unix milliseconds.
        stamp_ms: u64,
        /// The command.
        op: WriteOp,
    },
    /// A read.
    Read(ReadOp),
}

/// Why bytes are not a valid request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The input ended inside a field.
    #[error("request truncated")]
    Truncated,
    /// Bytes remain after the last field.
    #[error("{0} trailing bytes after the request")]
    TrailingBytes(usize),
    /// The version byte is not [`FORMAT_VERSION`].
    #[error("request format version {0} is not supported")]
    Version(u8),
    /// The operation code is unknown.
    #[error("unknown operation code {0:#04x}")]
    UnknownOp(u8),
    /// A tag byte (condition, expiry, flag) has no meaning.
    #[error("invalid tag {0:#04x}")]
    InvalidTag(u8),
    /// A key, value or list is longer than its limit.
    #[error("field length {0} exceeds its limit")]
    TooLong(u64),
    /// A list that must not be empty is.
    #[error("empty list of keys")]
    EmptyList,
}

impl Request {
    /// Whether this request changes state (and so must be replicated).
    pub fn is_write(&self) -> bool {
        matches!(self, Request::Write { .. })
    }

    /// The request's binary form.
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(64);
        out.put_u8(FORMAT_VERSION);
        match self {
            Request::Write { stamp_ms, op } => encode_write(*stamp_ms, op, &mut out),
            Request::Read(op) => encode_read(op, &mut out),
        }
        out.freeze()
    }

    /// The length of [`Request::encode`]'s output, without encoding (the server checks it
    /// against the request limit first: a field over its limit must never be encoded).
    pub fn encoded_len(&self) -> usize {
        1 + match self {
            Request::Write { op, .. } => 1 + 8 + write_fields_len(op),
            Request::Read(op) => 1 + read_fields_len(op),
        }
    }

    /// Parses a request's binary form.
    pub fn decode(input: &[u8]) -> Result<Request, DecodeError> {
        let mut reader = Reader { rest: input };
        let version = reader.u8()?;
        if version != FORMAT_VERSION {
            return Err(DecodeError::Version(version));
        }
        let op = reader.u8()?;
        let request = if op < 0x40 {
            let stamp_ms = reader.u64()?;
            Request::Write { stamp_ms, op: decode_write(op, &mut reader)? }
        } else {
            Request::Read(decode_read(op, &mut reader)?)
        };
        if !reader.rest.is_empty() {
            return Err(DecodeError::TrailingBytes(reader.rest.len()));
        }
        Ok(request)
    }
}

fn encode_write(stamp_ms: u64, op: &WriteOp, out: &mut BytesMut) {
    let code = match op {
        WriteOp::Tick => OP_TICK,
        WriteOp::Set { .. } => OP_SET,
        WriteOp::GetSet { .. } => OP_GETSET,
        WriteOp::Del { .. } => OP_DEL,
        WriteOp::IncrBy { .. } => OP_INCRBY,
        WriteOp::Append { .. } => OP_APPEND,
        WriteOp::MSet { .. } => OP_MSET,
        WriteOp::FlushAll => OP_FLUSHALL,
        WriteOp::SetNx { .. } => OP_SETNX,
        WriteOp::Expire { .. } => OP_EXPIRE,
        WriteOp::Persist { .. } => OP_PERSIST,
    };
    out.put_u8(code);
    out.put_u64_le(stamp_ms);
    match op {
        WriteOp::Tick | WriteOp::FlushAll => {}
        WriteOp::Set { key, value, condition, expiry, get } => {
            put_bytes(key, limits::KEY_BYTES_MAX, out);
            put_bytes(value, limits::VALUE_BYTES_MAX, out);
            out.put_u8(condition_tag(*condition));
            put_expiry(*expiry, out);
            out.put_u8(u8::from(*get));
        }
        WriteOp::GetSet { key, value }
        | WriteOp::Append { key, value }
        | WriteOp::SetNx { key, value } => {
            put_bytes(key, limits::KEY_BYTES_MAX, out);
            put_bytes(value, limits::VALUE_BYTES_MAX, out);
        }
        WriteOp::Del { keys } => put_keys(keys, out),
        WriteOp::Expire { key, at_ms } => {
            put_bytes(key, limits::KEY_BYTES_MAX, out);
            out.put_u64_le(*at_ms);
        }
        WriteOp::Persist { key } => put_bytes(key, limits::KEY_BYTES_MAX, out),
        WriteOp::IncrBy { key, delta } => {
            put_bytes(key, limits::KEY_BYTES_MAX, out);
            out.put_i64_le(*delta);
        }
        WriteOp::MSet { pairs } => {
            put_count(pairs.len(), out);
            for (key, value) in pairs {
                put_bytes(key, limits::KEY_BYTES_MAX, out);
                put_bytes(value, limits::VALUE_BYTES_MAX, out);
            }
        }
    }
}

fn encode_read(op: &ReadOp, out: &mut BytesMut) {
    match op {
        ReadOp::Get { key } => {
            out.put_u8(OP_GET);
            put_bytes(key, limits::KEY_BYTES_MAX, out);
        }
        ReadOp::Exists { keys } => {
            out.put_u8(OP_EXISTS);
            put_keys(keys, out);
        }
        ReadOp::Strlen { key } => {
            out.put_u8(OP_STRLEN);
            put_bytes(key, limits::KEY_BYTES_MAX, out);
        }
        ReadOp::MGet { keys } => {
            out.put_u8(OP_MGET);
            put_keys(keys, out);
        }
        ReadOp::DbSize => out.put_u8(OP_DBSIZE),
        ReadOp::Ttl { key, millis } => {
            out.put_u8(OP_TTL);
            put_bytes(key, limits::KEY_BYTES_MAX, out);
            out.put_u8(u8::from(*millis));
        }
    }
}

fn decode_write(code: u8, reader: &mut Reader<'_>) -> Result<WriteOp, DecodeError> {
    Ok(match code {
        OP_TICK => WriteOp::Tick,
        OP_FLUSHALL => WriteOp::FlushAll,
        OP_SET => WriteOp::Set {
            key: reader.key()?,
            value: reader.value()?,
            condition: condition_from_tag(reader.u8()?)?,
            expiry: reader.expiry()?,
            get: reader.flag()?,
        },
        OP_GETSET => WriteOp::GetSet { key: reader.key()?, value: reader.value()? },
        OP_APPEND => WriteOp::Append { key: reader.key()?, value: reader.value()? },
        OP_DEL => WriteOp::Del { keys: reader.keys()? },
        OP_SETNX => WriteOp::SetNx { key: reader.key()?, value: reader.value()? },
        OP_EXPIRE => WriteOp::Expire { key: reader.key()?, at_ms: reader.u64()? },
        OP_PERSIST => WriteOp::Persist { key: reader.key()? },
        OP_INCRBY => WriteOp::IncrBy { key: reader.key()?, delta: reader.u64()? as i64 },
        OP_MSET => {
            let count = reader.count(8)?;
            let mut pairs = Vec::with_capacity(count);
            for _ in 0..count {
                pairs.push((reader.key()?, reader.value()?));
            }
            WriteOp::MSet { pairs }
        }
        other => return Err(DecodeError::UnknownOp(other)),
    })
}

fn decode_read(code: u8, reader: &mut Reader<'_>) -> Result<ReadOp, DecodeError> {
    Ok(match code {
        OP_GET => ReadOp::Get { key: reader.key()? },
        OP_EXISTS => ReadOp::Exists { keys: reader.keys()? },
        OP_STRLEN => ReadOp::Strlen { key: reader.key()? },
        OP_MGET => ReadOp::MGet { keys: reader.keys()? },
        OP_DBSIZE => ReadOp::DbSize,
        OP_TTL => ReadOp::Ttl { key: reader.key()?, millis: reader.flag()? },
        other => return Err(DecodeError::UnknownOp(other)),
    })
}

fn condition_tag(condition: SetCondition) -> u8 {
    match condition {
        SetCondition::Always => 0,
        SetCondition::IfAbsent => 1,
        SetCondition::IfPresent => 2,
    }
}

fn condition_from_tag(tag: u8) -> Result<SetCondition, DecodeError> {
    match tag {
        0 => Ok(SetCondition::Always),
        1 => Ok(SetCondition::IfAbsent),
        2 => Ok(SetCondition::IfPresent),
        other => Err(DecodeError::InvalidTag(other)),
    }
}

/// The encoded length of a byte field and of a list of them.
fn field_len(data: &[u8]) -> usize {
    4 + data.len()
}

fn keys_len(keys: &[Bytes]) -> usize {
    4 + keys.iter().map(|k| field_len(k)).sum::<usize>()
}

fn expiry_len(expiry: SetExpiry) -> usize {
    match expiry {
        SetExpiry::At(_) => 9,
        SetExpiry::Clear | SetExpiry::Keep => 1,
    }
}

/// The encoded length of a write's fields (after its op code and stamp), as `encode_write`
/// writes them.
fn write_fields_len(op: &WriteOp) -> usize {
    match op {
        WriteOp::Tick | WriteOp::FlushAll => 0,
        WriteOp::Set { key, value, expiry, .. } => {
            field_len(key) + field_len(value) + 1 + expiry_len(*expiry) + 1
        }
        WriteOp::GetSet { key, value }
        | WriteOp::Append { key, value }
        | WriteOp::SetNx { key, value } => field_len(key) + field_len(value),
        WriteOp::Del { keys } => keys_len(keys),
        WriteOp::Expire { key, .. } | WriteOp::IncrBy { key, .. } => field_len(key) + 8,
        WriteOp::Persist { key } => field_len(key),
        WriteOp::MSet { pairs } => {
            4 + pairs.iter().map(|(k, v)| field_len(k) + field_len(v)).sum::<usize>()
        }
    }
}

/// The encoded length of a read's fields (after its op code), as `encode_read` writes them.
fn read_fields_len(op: &ReadOp) -> usize {
    match op {
        ReadOp::Get { key } | ReadOp::Strlen { key } => field_len(key),
        ReadOp::Exists { keys } | ReadOp::MGet { keys } => keys_len(keys),
        ReadOp::DbSize => 0,
        ReadOp::Ttl { key, .. } => field_len(key) + 1,
    }
}

fn put_expiry(expiry: SetExpiry, out: &mut BytesMut) {
    match expiry {
        SetExpiry::Clear => out.put_u8(0),
        SetExpiry::Keep => out.put_u8(1),
        SetExpiry::At(at_ms) => {
            out.put_u8(2);
            out.put_u64_le(at_ms);
        }
    }
}

fn put_bytes(data: &[u8], len_max: usize, out: &mut BytesMut) {
    assert!(data.len() <= len_max, "a field of {} bytes exceeds {len_max}", data.len());
    out.put_u32_le(data.len() as u32);
    out.put_slice(data);
}

fn put_count(count: usize, out: &mut BytesMut) {
    assert!(count > 0 && count <= limits::ARRAY_LEN_MAX, "a list of {count} items");
    out.put_u32_le(count as u32);
}

fn put_keys(keys: &[Bytes], out: &mut BytesMut) {
    put_count(keys.len(), out);
    for key in keys {
        put_bytes(key, limits::KEY_BYTES_MAX, out);
    }
}

/// A cursor over an input that fails instead of reading past its end.
struct Reader<'a> {
    rest: &'a [u8],
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], DecodeError> {
        if self.rest.len() < n {
            return Err(DecodeError::Truncated);
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }

    fn flag(&mut self) -> Result<bool, DecodeError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(DecodeError::InvalidTag(other)),
        }
    }

    fn bytes(&mut self, len_max: usize) -> Result<Bytes, DecodeError> {
        let len = self.u32()?;
        if len as usize > len_max {
            return Err(DecodeError::TooLong(len.into()));
        }
        Ok(Bytes::copy_from_slice(self.take(len as usize)?))
    }

    fn key(&mut self) -> Result<Bytes, DecodeError> {
        self.bytes(limits::KEY_BYTES_MAX)
    }

    fn value(&mut self) -> Result<Bytes, DecodeError> {
        self.bytes(limits::VALUE_BYTES_MAX)
    }

    /// A list count, checked against the limit and against the bytes left, where each item
    /// takes at least `item_bytes_min`, so a corrupt count cannot cause a huge allocation.
    fn count(&mut self, item_bytes_min: usize) -> Result<usize, DecodeError> {
        let count = self.u32()? as usize;
        if count == 0 {
            return Err(DecodeError::EmptyList);
        }
        if count > limits::ARRAY_LEN_MAX {
            return Err(DecodeError::TooLong(count as u64));
        }
        if count.saturating_mul(item_bytes_min) > self.rest.len() {
            return Err(DecodeError::Truncated);
        }
        Ok(count)
    }

    fn keys(&mut self) -> Result<Vec<Bytes>, DecodeError> {
        let count = self.count(4)?;
        (0..count).map(|_| self.key()).collect()
    }

    fn expiry(&mut self) -> Result<SetExpiry, DecodeError> {
        match self.u8()? {
            0 => Ok(SetExpiry::Clear),
            1 => Ok(SetExpiry::Keep),
            2 => Ok(SetExpiry::At(self.u64()?)),
            other => Err(DecodeError::InvalidTag(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    /// `encoded_len` measures exactly what `encode` writes, for every kind of request.
    #[test]
    fn encoded_len_is_the_encoded_length() {
        let (k, v) = (b("key"), b("some value"));
        let writes = [
            WriteOp::Tick,
            WriteOp::FlushAll,
            WriteOp::Set {
                key: k.clone(),
                value: v.clone(),
                condition: SetCondition::IfAbsent,
                expiry: SetExpiry::At(5),
                get: true,
            },
            WriteOp::Set {
                key: k.clone(),
                value: v.clone(),
                condition: SetCondition::Always,
                expiry: SetExpiry::Keep,
                get: false,
            },
            WriteOp::GetSet { key: k.clone(), value: v.clone() },
            WriteOp::Append { key: k.clone(), value: v.clone() },
            WriteOp::SetNx { key: k.clone(), value: v.clone() },
            WriteOp::Del { keys: vec![k.clone(), v.clone()] },
            WriteOp::IncrBy { key: k.clone(), delta: -3 },
            WriteOp::Expire { key: k.clone(), at_ms: 9 },
            WriteOp::Persist { key: k.clone() },
            WriteOp::MSet { pairs: vec![(k.clone(), v.clone()), (v.clone(), k.clone())] },
        ];
        let reads = [
            ReadOp::Get { key: k.clone() },
            ReadOp::Strlen { key: k.clone() },
            ReadOp::Exists { keys: vec![k.clone(), v.clone()] },
            ReadOp::MGet { keys: vec![k.clone()] },
            ReadOp::DbSize,
            ReadOp::Ttl { key: k.clone(), millis: true },
        ];
        let requests = writes
            .into_iter()
            .map(|op| Request::Write { stamp_ms: 7, op })
            .chain(reads.into_iter().map(Request::Read));
        for request in requests {
            assert_eq!(request.encoded_len(), request.encode().len(), "{request:?}");
        }
    }

    /// A SET without options adds exactly `SET_FRAMING_BYTES` to its key and value.
    #[test]
    fn set_framing_is_what_a_set_adds() {
        let op = WriteOp::Set {
            key: b("k"),
            value: b("vv"),
            condition: SetCondition::Always,
            expiry: SetExpiry::Clear,
            get: false,
        };
        let request = Request::Write { stamp_ms: 1, op };
        assert_eq!(request.encoded_len(), limits::SET_FRAMING_BYTES + 3);
    }
}
