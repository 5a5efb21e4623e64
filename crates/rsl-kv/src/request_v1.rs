//! Version 1 of the request format, and what a version 1 request does, so that a replica
//! upgraded in place still replays its own log.
//!
//! Before requests carried the command itself ([`crate::request`], version 2), rsl-kv encoded
//! each command as an operation code and typed fields, and its machine held strings only. A
//! log written then still holds those requests (and a version 1 checkpoint loads, see
//! [`crate::checkpoint`]), so the machine still executes them, exactly as that version did:
//! this module is its decoder (byte for byte the format it wrote) and its semantics, over
//! today's keyspace. The semantics differ from today's commands in details a replay must keep
//! (a deadline equal to the clock keeps a key, where PEXPIREAT deletes it; values grow to
//! 64 MiB by APPEND), so a version 1 request is never translated into a command.
//!
//! | field | size | meaning |
//! | --- | --- | --- |
//! | version | u8 | [`FORMAT_VERSION`] (1) |
//! | op | u8 | the operation code (`OP_*`): writes below 0x40, reads from 0x40 |
//! | stamp_ms | u64 LE | writes only: the proposer's clock |
//! | fields | ... | per op; bytes as a u32 LE length and the data, lists as a u32 LE count (never 0) and the items |
//!
//! Two things that version could not hold are refused: a deadline above `i64::MAX` (its
//! proposer made every deadline from an `i64`) does not decode, and a key or a value above
//! today's limits ([`limits::KEY_BYTES_MAX`], [`limits::VALUE_BYTES_MAX`], 16 MiB, where that
//! version allowed [`FIELD_BYTES_MAX`], 64 MiB) stops the replica with a panic that names
//! the cause, rather than let it diverge from a replica that stored it.

use bytes::Bytes;

use crate::commands::{ERR_NOT_INTEGER, ERR_OVERFLOW, ERR_TOO_BIG, ERR_WRONGTYPE};
use crate::db::Db;
use crate::limits;
use crate::request::DecodeError;
use crate::resp::{parse_i64, Reply};
use crate::value::Value;

/// The version byte that starts every version 1 request.
pub const FORMAT_VERSION: u8 = 1;

/// The largest key or value a version 1 request carries, and the largest value its APPEND
/// made (version 1's `KEY_BYTES_MAX` and `VALUE_BYTES_MAX`), in bytes.
pub const FIELD_BYTES_MAX: usize = 64 << 20;

/// The largest list (DEL's keys, MSET's pairs) a version 1 request carries.
const LIST_LEN_MAX: usize = 1 << 20;

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

/// When a version 1 SET applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetCondition {
    /// Always.
    Always,
    /// Only if the key does not exist (`NX`).
    IfAbsent,
    /// Only if the key exists (`XX`).
    IfPresent,
}

/// What a version 1 SET does to the key's deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetExpiry {
    /// The key no longer expires.
    Clear,
    /// The key keeps its deadline (`KEEPTTL`).
    Keep,
    /// The key expires once the clock passes this many Unix milliseconds.
    At(u64),
}

/// A version 1 write, executed in slot order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOp {
    /// Advances the clock; answers `+OK`.
    Tick,
    /// SET with its condition, deadline and GET flag.
    Set {
        /// The key.
        key: Bytes,
        /// The new value.
        value: Bytes,
        /// When to apply.
        condition: SetCondition,
        /// What happens to the deadline.
        expiry: SetExpiry,
        /// Whether to answer the old value instead of `+OK`.
        get: bool,
    },
    /// GETSET: sets, answers the old value, clears the deadline.
    GetSet {
        /// The key.
        key: Bytes,
        /// The new value.
        value: Bytes,
    },
    /// DEL: answers how many existed.
    Del {
        /// The keys, at least one.
        keys: Vec<Bytes>,
    },
    /// INCR, INCRBY, DECR, DECRBY: adds `delta`, keeping the deadline.
    IncrBy {
        /// The key.
        key: Bytes,
        /// The amount to add.
        delta: i64,
    },
    /// APPEND: answers the new length, keeping the deadline.
    Append {
        /// The key.
        key: Bytes,
        /// The bytes to append.
        value: Bytes,
    },
    /// MSET: sets every pair, clearing their deadlines.
    MSet {
        /// The pairs, at least one.
        pairs: Vec<(Bytes, Bytes)>,
    },
    /// FLUSHALL / FLUSHDB.
    FlushAll,
    /// SETNX: answers 1 if it set the key.
    SetNx {
        /// The key.
        key: Bytes,
        /// The value.
        value: Bytes,
    },
    /// The EXPIRE family, made absolute by the proposer; a deadline before the clock deletes
    /// the key. Answers 1 if the key exists.
    Expire {
        /// The key.
        key: Bytes,
        /// The deadline in Unix milliseconds.
        at_ms: u64,
    },
    /// PERSIST: answers 1 if the key had a deadline.
    Persist {
        /// The key.
        key: Bytes,
    },
}

/// A version 1 read, answered at the machine's clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadOp {
    /// GET.
    Get {
        /// The key.
        key: Bytes,
    },
    /// EXISTS: counts a key once per mention.
    Exists {
        /// The keys, at least one.
        keys: Vec<Bytes>,
    },
    /// STRLEN.
    Strlen {
        /// The key.
        key: Bytes,
    },
    /// MGET.
    MGet {
        /// The keys, at least one.
        keys: Vec<Bytes>,
    },
    /// DBSIZE.
    DbSize,
    /// TTL or PTTL.
    Ttl {
        /// The key.
        key: Bytes,
        /// Whether to answer in milliseconds.
        millis: bool,
    },
}

/// A version 1 request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// A write and its proposer's clock.
    Write {
        /// The proposer's clock, in Unix milliseconds.
        stamp_ms: u64,
        /// The write.
        op: WriteOp,
    },
    /// A read.
    Read(ReadOp),
}

impl Request {
    /// Parses a version 1 request, as version 1 did, with one more check: a deadline above
    /// `i64::MAX`, which its proposer never made, is refused as [`DecodeError::NonCanonical`].
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

fn decode_write(code: u8, reader: &mut Reader<'_>) -> Result<WriteOp, DecodeError> {
    Ok(match code {
        OP_TICK => WriteOp::Tick,
        OP_FLUSHALL => WriteOp::FlushAll,
        OP_SET => WriteOp::Set {
            key: reader.bytes()?,
            value: reader.bytes()?,
            condition: match reader.u8()? {
                0 => SetCondition::Always,
                1 => SetCondition::IfAbsent,
                2 => SetCondition::IfPresent,
                other => return Err(DecodeError::InvalidTag(other)),
            },
            expiry: match reader.u8()? {
                0 => SetExpiry::Clear,
                1 => SetExpiry::Keep,
                2 => SetExpiry::At(reader.deadline()?),
                other => return Err(DecodeError::InvalidTag(other)),
            },
            get: reader.flag()?,
        },
        OP_GETSET => WriteOp::GetSet { key: reader.bytes()?, value: reader.bytes()? },
        OP_APPEND => WriteOp::Append { key: reader.bytes()?, value: reader.bytes()? },
        OP_DEL => WriteOp::Del { keys: reader.keys()? },
        OP_SETNX => WriteOp::SetNx { key: reader.bytes()?, value: reader.bytes()? },
        OP_EXPIRE => WriteOp::Expire { key: reader.bytes()?, at_ms: reader.deadline()? },
        OP_PERSIST => WriteOp::Persist { key: reader.bytes()? },
        OP_INCRBY => WriteOp::IncrBy { key: reader.bytes()?, delta: reader.u64()? as i64 },
        OP_MSET => {
            let count = reader.count(8)?;
            let mut pairs = Vec::with_capacity(count);
            for _ in 0..count {
                pairs.push((reader.bytes()?, reader.bytes()?));
            }
            WriteOp::MSet { pairs }
        }
        other => return Err(DecodeError::UnknownKind(other)),
    })
}

fn decode_read(code: u8, reader: &mut Reader<'_>) -> Result<ReadOp, DecodeError> {
    Ok(match code {
        OP_GET => ReadOp::Get { key: reader.bytes()? },
        OP_EXISTS => ReadOp::Exists { keys: reader.keys()? },
        OP_STRLEN => ReadOp::Strlen { key: reader.bytes()? },
        OP_MGET => ReadOp::MGet { keys: reader.keys()? },
        OP_DBSIZE => ReadOp::DbSize,
        OP_TTL => ReadOp::Ttl { key: reader.bytes()?, millis: reader.flag()? },
        other => return Err(DecodeError::UnknownKind(other)),
    })
}

/// A cursor over an input that fails instead of reading past its end. Kept apart from
/// `request.rs`'s cursor on purpose, though its first methods read alike: this module is
/// version 1's frozen decoder, and a change to the live format's reader (its `count` already
/// differs) must not change how an old log replays.
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

    /// A deadline: version 1's proposer made each from an `i64` (and 0 for one before 1970).
    fn deadline(&mut self) -> Result<u64, DecodeError> {
        let at = self.u64()?;
        if at > i64::MAX as u64 {
            return Err(DecodeError::NonCanonical);
        }
        Ok(at)
    }

    fn flag(&mut self) -> Result<bool, DecodeError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(DecodeError::InvalidTag(other)),
        }
    }

    fn bytes(&mut self) -> Result<Bytes, DecodeError> {
        let len = self.u32()?;
        if len as usize > FIELD_BYTES_MAX {
            return Err(DecodeError::TooLong(len.into()));
        }
        Ok(Bytes::copy_from_slice(self.take(len as usize)?))
    }

    /// A list count (never 0 in version 1), checked against the limit and against the bytes
    /// left, where each item takes at least `item_bytes_min`.
    fn count(&mut self, item_bytes_min: usize) -> Result<usize, DecodeError> {
        let count = self.u32()? as usize;
        if count == 0 {
            return Err(DecodeError::EmptyCommand);
        }
        if count > LIST_LEN_MAX {
            return Err(DecodeError::TooLong(count as u64));
        }
        if count.saturating_mul(item_bytes_min) > self.rest.len() {
            return Err(DecodeError::Truncated);
        }
        Ok(count)
    }

    fn keys(&mut self) -> Result<Vec<Bytes>, DecodeError> {
        let count = self.count(4)?;
        (0..count).map(|_| self.bytes()).collect()
    }
}

/// Executes a version 1 write against `db`, whose clock the caller has advanced to the
/// request's stamp ([`Db::begin_write`]); answers in RESP2, as version 1 did.
///
/// Version 1 knew only strings. A key that holds another type now (a log that mixes both
/// versions) is treated as Redis treats it: overwritten by SET, MSET and GETSET's store,
/// counted by SETNX and DEL, and WRONGTYPE for the commands that read a string.
pub fn apply_write(db: &mut Db, op: &WriteOp) -> Reply {
    match op {
        WriteOp::Tick => Reply::ok(),
        WriteOp::Set { key, value, condition, expiry, get } => {
            set(db, key, value, *condition, *expiry, *get).unwrap_or_else(|e| e)
        }
        WriteOp::GetSet { key, value } => match string(db, key) {
            Ok(old) => {
                store(db, key, value.clone(), None);
                old.map_or(Reply::Null, Reply::Bulk)
            }
            Err(e) => e,
        },
        WriteOp::Del { keys } => {
            Reply::Integer(keys.iter().filter(|k| db.remove(k).is_some()).count() as i64)
        }
        WriteOp::IncrBy { key, delta } => incr_by(db, key, *delta).unwrap_or_else(|e| e),
        WriteOp::Append { key, value } => append(db, key, value).unwrap_or_else(|e| e),
        WriteOp::MSet { pairs } => {
            for (key, value) in pairs {
                store(db, key, value.clone(), None);
            }
            Reply::ok()
        }
        WriteOp::SetNx { key, value } => {
            let absent = db.live(key, db.now_ms).is_none();
            if absent {
                store(db, key, value.clone(), None);
            }
            Reply::Integer(i64::from(absent))
        }
        WriteOp::Expire { key, at_ms } => {
            // Version 1 stored the key again with the deadline: one before the clock deleted
            // it, one equal to the clock kept it (`Db::set_expiry` does both alike).
            if db.live(key, db.now_ms).is_none() {
                return Reply::Integer(0);
            }
            db.set_expiry(key, Some(*at_ms));
            Reply::Integer(1)
        }
        WriteOp::Persist { key } => {
            let has_deadline = db.live(key, db.now_ms).is_some_and(|e| e.expire_at_ms().is_some());
            if has_deadline {
                db.set_expiry(key, None);
            }
            Reply::Integer(i64::from(has_deadline))
        }
        WriteOp::FlushAll => {
            db.flush();
            Reply::ok()
        }
    }
}

/// Answers a version 1 read at the clock `db.now_ms`, in RESP2.
pub fn query(db: &Db, op: &ReadOp) -> Reply {
    let get = |key: &[u8]| string(db, key);
    let result = match op {
        ReadOp::Get { key } => get(key).map(|v| v.map_or(Reply::Null, Reply::Bulk)),
        ReadOp::Exists { keys } => Ok(Reply::Integer(
            keys.iter().filter(|k| db.live(k, db.now_ms).is_some()).count() as i64,
        )),
        ReadOp::Strlen { key } => get(key).map(|v| Reply::Integer(v.map_or(0, |v| v.len() as i64))),
        ReadOp::MGet { keys } => Ok(Reply::Array(
            keys.iter()
                .map(|k| match get(k) {
                    Ok(Some(v)) => Reply::Bulk(v),
                    _ => Reply::Null,
                })
                .collect(),
        )),
        ReadOp::DbSize => Ok(Reply::Integer(db.keys.len() as i64)),
        ReadOp::Ttl { key, millis } => Ok(Reply::Integer(ttl(db, key, *millis))),
    };
    result.unwrap_or_else(|e| e)
}

/// Version 1's TTL and PTTL: the time left (seconds rounded to the nearest), -1, or -2.
fn ttl(db: &Db, key: &[u8], millis: bool) -> i64 {
    let Some(entry) = db.live(key, db.now_ms) else { return -2 };
    let Some(at) = entry.expire_at_ms() else { return -1 };
    let left_ms = at - db.now_ms; // A live key's deadline is not before now.
    let left = if millis { left_ms } else { (left_ms + 500) / 1000 };
    i64::try_from(left).unwrap_or(i64::MAX)
}

/// The live string at `key`, or WRONGTYPE for another type.
fn string(db: &Db, key: &[u8]) -> Result<Option<Bytes>, Reply> {
    match db.live(key, db.now_ms).map(|e| &e.value) {
        None => Ok(None),
        Some(Value::Str(s)) => Ok(Some(s.clone())),
        Some(_) => Err(Reply::error(ERR_WRONGTYPE)),
    }
}

/// Stores a string as version 1 did; a key or value that version held but today's limits do
/// not stops the replica (see the module doc) rather than diverge from one that stored it.
fn store(db: &mut Db, key: &Bytes, value: Bytes, expire_at_ms: Option<u64>) {
    if key.len() > limits::KEY_BYTES_MAX || value.len() > limits::VALUE_BYTES_MAX {
        panic!(
            "this log holds a request format version 1 write of a {}-byte key and a {}-byte \
             value, which that version stored but this one cannot (at most {} and {} bytes): \
             replay the log with the version that wrote it, or restore from a checkpoint taken \
             after the write was deleted",
            key.len(),
            value.len(),
            limits::KEY_BYTES_MAX,
            limits::VALUE_BYTES_MAX
        );
    }
    db.store(key.clone(), Value::Str(value), expire_at_ms);
}

fn set(
    db: &mut Db,
    key: &Bytes,
    value: &Bytes,
    condition: SetCondition,
    expiry: SetExpiry,
    get: bool,
) -> Result<Reply, Reply> {
    let old = db.live(key, db.now_ms).cloned();
    let old_string = if get { string(db, key)? } else { None };
    let applies = match condition {
        SetCondition::Always => true,
        SetCondition::IfAbsent => old.is_none(),
        SetCondition::IfPresent => old.is_some(),
    };
    if applies {
        let expire_at_ms = match expiry {
            SetExpiry::Clear => None,
            SetExpiry::Keep => old.as_ref().and_then(|e| e.expire_at_ms()),
            SetExpiry::At(at) => Some(at),
        };
        store(db, key, value.clone(), expire_at_ms);
    }
    Ok(match (get, old_string) {
        (true, Some(old)) => Reply::Bulk(old),
        (true, None) => Reply::Null,
        (false, _) if applies => Reply::ok(),
        (false, _) => Reply::Null,
    })
}

fn incr_by(db: &mut Db, key: &Bytes, delta: i64) -> Result<Reply, Reply> {
    let (current, expire_at_ms) = match string(db, key)? {
        None => (0, None),
        Some(value) => match parse_i64(&value) {
            Some(n) => (n, db.live(key, db.now_ms).and_then(|e| e.expire_at_ms())),
            None => return Err(Reply::error(ERR_NOT_INTEGER)),
        },
    };
    let next = current.checked_add(delta).ok_or_else(|| Reply::error(ERR_OVERFLOW))?;
    store(db, key, Bytes::from(next.to_string()), expire_at_ms);
    Ok(Reply::Integer(next))
}

fn append(db: &mut Db, key: &Bytes, suffix: &Bytes) -> Result<Reply, Reply> {
    let (value, expire_at_ms) = match string(db, key)? {
        None => (suffix.clone(), None),
        Some(old) => {
            if old.len() + suffix.len() > FIELD_BYTES_MAX {
                return Err(Reply::error(ERR_TOO_BIG));
            }
            let mut joined = Vec::with_capacity(old.len() + suffix.len());
            joined.extend_from_slice(&old);
            joined.extend_from_slice(suffix);
            (Bytes::from(joined), db.live(key, db.now_ms).and_then(|e| e.expire_at_ms()))
        }
    };
    let len = value.len() as i64;
    store(db, key, value, expire_at_ms);
    Ok(Reply::Integer(len))
}

#[cfg(test)]
mod tests {
    //! The fixture in `tests/fixtures/request_v1/` was written by version 1 itself (rsl-kv at
    //! commit 9b20dbc, its `request.rs`, `machine.rs`, `resp.rs` and `limits.rs` unchanged,
    //! driven by a seeded generator of every version 1 request: conditions, KEEPTTL, deadlines
    //! before, at and after the clock, clocks that go back, overflows, FLUSHALL, reads):
    //! `log.bin` holds each request and the reply version 1 gave it (u32 LE length and bytes,
    //! twice), `mid.ckpt` version 1's checkpoint after half of them, `end.ckpt` after all.

    use super::*;
    use crate::machine::KvMachine;
    use rsl::StateMachine;

    const LOG: &[u8] = include_bytes!("../tests/fixtures/request_v1/log.bin");
    const MID: &[u8] = include_bytes!("../tests/fixtures/request_v1/mid.ckpt");
    const END: &[u8] = include_bytes!("../tests/fixtures/request_v1/end.ckpt");

    /// The fixture's (request, reply) records.
    fn records() -> Vec<(&'static [u8], &'static [u8])> {
        fn take(rest: &mut &'static [u8]) -> &'static [u8] {
            let len = u32::from_le_bytes(rest[..4].try_into().unwrap()) as usize;
            let (field, tail) = rest[4..].split_at(len);
            *rest = tail;
            field
        }
        let mut rest = LOG;
        let mut out = Vec::new();
        while !rest.is_empty() {
            let request = take(&mut rest);
            out.push((request, take(&mut rest)));
        }
        out
    }

    fn loaded(checkpoint: &[u8]) -> KvMachine {
        let mut machine = KvMachine::new();
        machine.load_checkpoint(&mut &checkpoint[..]).expect("a version 1 checkpoint loads");
        machine
    }

    /// One key's string value and deadline.
    type Stored = (Vec<u8>, Bytes, Option<u64>);

    /// What a replay must reproduce: the clock and every key's string value and deadline.
    fn state(machine: &KvMachine) -> (u64, Vec<Stored>) {
        let db = machine.db_copy();
        let keys = db
            .keys
            .iter()
            .map(|(key, entry)| match &entry.value {
                Value::Str(s) => (key.to_vec(), s.clone(), entry.expire_at_ms()),
                other => panic!("version 1 holds strings only, not {other:?}"),
            })
            .collect();
        (db.now_ms, keys)
    }

    /// Replays `records` into `machine`, checking each reply against version 1's.
    fn replay(machine: &mut KvMachine, records: &[(&[u8], &[u8])], first_slot: u64) {
        for (i, (request, reply)) in records.iter().enumerate() {
            let slot = first_slot + i as u64;
            let decoded = Request::decode(request).expect("every fixture request decodes");
            let got = machine.execute(slot, request);
            assert_eq!(got, reply, "slot {slot}: {decoded:?}");
            if let Request::Read(_) = decoded {
                assert_eq!(machine.read(request), reply, "slot {slot} on the read path");
            }
            machine.check_invariants();
        }
    }

    #[test]
    fn a_version_1_log_replays_to_the_state_and_replies_version_1_gave() {
        let records = records();
        assert_eq!(records.len(), 3000);
        let writes = records.iter().filter(|(r, _)| r[1] < 0x40).count();
        assert!(writes > 2000, "mostly writes: {writes}");
        let mut machine = KvMachine::new();
        replay(&mut machine, &records, 1);
        let want = state(&loaded(END));
        assert!(want.1.len() >= 3, "the fixture ends with keys: {want:?}");
        assert!(want.1.iter().any(|k| k.2.is_some()), "and with a deadline: {want:?}");
        assert_eq!(state(&machine), want);
    }

    #[test]
    fn a_version_1_checkpoint_and_the_log_after_it_replay_to_the_same_state() {
        let records = records();
        let mut machine = loaded(MID);
        replay(&mut machine, &records[records.len() / 2..], records.len() as u64 / 2 + 1);
        assert_eq!(state(&machine), state(&loaded(END)));
    }

    /// Version 1's encoding of a write of `op` (an operation code) with `fields`.
    fn v1_write(op: u8, stamp_ms: u64, fields: &[&[u8]]) -> Vec<u8> {
        let mut out = vec![FORMAT_VERSION, op];
        out.extend_from_slice(&stamp_ms.to_le_bytes());
        for field in fields {
            out.extend_from_slice(field);
        }
        out
    }

    fn field(bytes: &[u8]) -> Vec<u8> {
        let mut out = (bytes.len() as u32).to_le_bytes().to_vec();
        out.extend_from_slice(bytes);
        out
    }

    #[test]
    fn a_deadline_version_1_never_made_does_not_decode() {
        let key = field(b"k");
        for (at, ok) in [(i64::MAX as u64, true), (i64::MAX as u64 + 1, false), (u64::MAX, false)] {
            let request = v1_write(OP_EXPIRE, 5, &[&key, &at.to_le_bytes()]);
            assert_eq!(Request::decode(&request).is_ok(), ok, "{at}");
            let set = v1_write(OP_SET, 5, &[&key, &field(b"v"), &[0, 2], &at.to_le_bytes(), &[0]]);
            assert_eq!(Request::decode(&set).is_ok(), ok, "{at}");
        }
    }

    #[test]
    fn a_version_1_deadline_at_the_clock_keeps_the_key_and_one_before_deletes_it() {
        let mut machine = KvMachine::new();
        let set = v1_write(OP_SET, 1000, &[&field(b"k"), &field(b"v"), &[0, 0, 0]]);
        assert_eq!(&machine.execute(1, &set)[..], b"+OK\r\n");
        let expire = |at: u64| v1_write(OP_EXPIRE, 1000, &[&field(b"k"), &at.to_le_bytes()]);
        assert_eq!(&machine.execute(2, &expire(1000))[..], b":1\r\n");
        assert_eq!(state(&machine).1.len(), 1, "a deadline equal to the clock keeps the key");
        assert_eq!(&machine.execute(3, &expire(999))[..], b":1\r\n");
        assert!(state(&machine).1.is_empty(), "a deadline before the clock deletes it");
    }

    #[test]
    #[should_panic(expected = "request format version 1 write")]
    fn a_version_1_value_above_todays_limit_stops_the_replica() {
        let mut machine = KvMachine::new();
        let value = vec![b'x'; limits::VALUE_BYTES_MAX + 1];
        let set = v1_write(OP_SET, 1, &[&field(b"k"), &field(&value), &[0, 0, 0]]);
        machine.execute(1, &set);
    }

    #[test]
    fn a_version_1_value_at_todays_limit_is_stored() {
        let mut machine = KvMachine::new();
        let value = vec![b'x'; limits::VALUE_BYTES_MAX];
        let set = v1_write(OP_SET, 1, &[&field(b"k"), &field(&value), &[0, 0, 0]]);
        assert_eq!(&machine.execute(1, &set)[..], b"+OK\r\n");
        assert_eq!(state(&machine).1[0].1.len(), limits::VALUE_BYTES_MAX);
    }

    #[test]
    fn an_unknown_version_is_refused() {
        let mut machine = KvMachine::new();
        let reply = machine.execute(1, &[3, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert!(
            reply.starts_with(b"-ERR malformed request: request format version 3"),
            "{reply:?}"
        );
    }
}
