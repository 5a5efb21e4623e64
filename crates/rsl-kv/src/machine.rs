//! The key-value state machine that every replica runs.
//!
//! [`KvMachine`] maps byte keys to byte values with optional expiry, and implements
//! [`rsl::StateMachine`]: it executes [`Request`]s in slot order and answers each with the
//! RESP reply bytes the server writes back to the client.
//!
//! Determinism: execution depends only on the requests, never on the local clock or on map
//! iteration order. Time comes from the requests themselves: every write carries its
//! proposer's wall-clock stamp, and the machine's "now" is the largest stamp executed so far
//! (so it never goes back, even if proposers' clocks disagree). A key with expiry time `at`
//! is expired once `now > at` (Redis's rule). Expired keys are removed eagerly, in the same
//! step that advances `now`, so after each executed request no stored key is expired, and
//! reads evaluated against the same `now` give the same answer on every replica at the same
//! slot. The expiry index (`expiries`) always holds exactly the `(at, key)` pairs of stored
//! keys that have an expiry.
//!
//! Both maps are persistent (`imbl`), so [`StateMachine::snapshot`] is an O(1) clone and the
//! checkpoint is written from it on another thread while execution continues. The map is
//! ordered, so two replicas with the same state write byte-identical checkpoints.

use std::io::{self, BufReader, BufWriter, Read, Write};

use bytes::Bytes;
use imbl::{OrdMap, OrdSet};
use rsl::{Snapshot, StateMachine};

use crate::limits;
use crate::request::{ReadOp, Request, SetCondition, SetExpiry, WriteOp};
use crate::resp::{parse_i64, Reply};

/// The error for a value that INCR and friends cannot use, in Redis's words.
pub const ERR_NOT_INTEGER: &str = "ERR value is not an integer or out of range";
/// The error for an INCR or DECR whose result does not fit in an `i64`, in Redis's words.
pub const ERR_OVERFLOW: &str = "ERR increment or decrement would overflow";
/// The error for an APPEND that would exceed [`limits::VALUE_BYTES_MAX`].
pub const ERR_TOO_BIG: &str = "ERR string exceeds maximum allowed size (proto-max-bulk-len)";

/// The magic bytes that open a checkpoint.
pub const CHECKPOINT_MAGIC: [u8; 8] = *b"RSLKVCKP";
/// The checkpoint format version written after the magic.
pub const CHECKPOINT_VERSION: u32 = 1;

/// One stored value.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    value: Bytes,
    /// Unix milliseconds after which the key is gone; `None` for no expiry.
    expire_at_ms: Option<u64>,
}

/// The whole replicated state: cheap to clone, since both maps are persistent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct KvState {
    map: OrdMap<Bytes, Entry>,
    /// `(expire_at_ms, key)` for every stored key that has an expiry.
    expiries: OrdSet<(u64, Bytes)>,
    /// The largest write stamp executed so far.
    now_ms: u64,
}

/// The replicated key-value state machine.
#[derive(Debug, Default)]
pub struct KvMachine {
    state: KvState,
    /// The last slot executed, to check the engine's ordering contract.
    slot_last: u64,
}

/// Why a checkpoint cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The input does not start with [`CHECKPOINT_MAGIC`].
    #[error("not an rsl-kv checkpoint (bad magic)")]
    Magic,
    /// The format version is not [`CHECKPOINT_VERSION`].
    #[error("checkpoint format version {0} is not supported")]
    Version(u32),
    /// The trailing crc32c does not match the contents.
    #[error("checkpoint checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    Checksum {
        /// The checksum stored in the checkpoint.
        stored: u32,
        /// The checksum of the bytes read.
        computed: u32,
    },
    /// A record is inconsistent: a length over its limit, keys out of order, a bad tag, an
    /// expired entry, or bytes after the checksum.
    #[error("corrupt checkpoint: {0}")]
    Corrupt(String),
    /// Reading failed (including an input that ends early).
    #[error("reading the checkpoint: {0}")]
    Io(#[from] io::Error),
}

impl KvMachine {
    /// An empty machine whose clock is at 0.
    pub fn new() -> KvMachine {
        KvMachine::default()
    }

    /// The machine's clock: the largest write stamp executed so far, in Unix milliseconds.
    pub fn now_ms(&self) -> u64 {
        self.state.now_ms
    }

    /// The number of stored keys (none of them expired).
    pub fn len(&self) -> usize {
        self.state.map.len()
    }

    /// The number of stored keys that have an expiry.
    pub fn expiring_len(&self) -> usize {
        self.state.expiries.len()
    }

    /// Whether no key is stored.
    pub fn is_empty(&self) -> bool {
        self.state.map.is_empty()
    }

    /// Executes a decoded request; a read is answered as of this point in the slot order.
    pub fn apply(&mut self, request: &Request) -> Reply {
        let reply = match request {
            Request::Write { stamp_ms, op } => {
                self.advance_clock(*stamp_ms);
                self.apply_write(op)
            }
            Request::Read(op) => self.query(op),
        };
        debug_assert!(self.state.expiries.get_min().is_none_or(|(at, _)| *at >= self.state.now_ms));
        reply
    }

    /// Answers a read against the current state.
    pub fn query(&self, op: &ReadOp) -> Reply {
        match op {
            ReadOp::Get { key } => self.get(key).map_or(Reply::Null, |v| Reply::Bulk(v.clone())),
            ReadOp::Exists { keys } => {
                Reply::Integer(keys.iter().filter(|k| self.get(k).is_some()).count() as i64)
            }
            ReadOp::Strlen { key } => Reply::Integer(self.get(key).map_or(0, |v| v.len() as i64)),
            ReadOp::MGet { keys } => Reply::Array(
                keys.iter()
                    .map(|k| self.get(k).map_or(Reply::Null, |v| Reply::Bulk(v.clone())))
                    .collect(),
            ),
            ReadOp::DbSize => Reply::Integer(self.state.map.len() as i64),
            ReadOp::Ttl { key, millis } => Reply::Integer(self.ttl(key, *millis)),
        }
    }

    /// Checks the state's invariants; panics if one is broken. O(n): for tests.
    pub fn check_invariants(&self) {
        let state = &self.state;
        let with_expiry = state.map.values().filter(|e| e.expire_at_ms.is_some()).count();
        assert_eq!(with_expiry, state.expiries.len(), "one index entry per expiring key");
        for (at, key) in state.expiries.iter() {
            let entry = state.map.get(key).expect("an indexed key is stored");
            assert_eq!(entry.expire_at_ms, Some(*at), "the index matches the entry");
            assert!(*at >= state.now_ms, "no stored key is expired");
        }
        for (key, entry) in state.map.iter() {
            assert!(key.len() <= limits::KEY_BYTES_MAX);
            assert!(entry.value.len() <= limits::VALUE_BYTES_MAX);
        }
    }

    /// Redis's TTL/PTTL answer: the time left (seconds rounded to nearest), -1, or -2.
    fn ttl(&self, key: &[u8], millis: bool) -> i64 {
        if self.get(key).is_none() {
            return -2;
        }
        let entry = self.state.map.get(key).expect("a live key is stored");
        let Some(at) = entry.expire_at_ms else { return -1 };
        let left_ms = at - self.state.now_ms; // A live key's deadline is not before now.
        let left = if millis { left_ms } else { (left_ms + 500) / 1000 };
        i64::try_from(left).unwrap_or(i64::MAX)
    }

    fn get(&self, key: &[u8]) -> Option<&Bytes> {
        let entry = self.state.map.get(key)?;
        let live = entry.expire_at_ms.is_none_or(|at| self.state.now_ms <= at);
        live.then_some(&entry.value)
    }

    /// Moves the clock to `stamp_ms` if it is later, and removes the keys that expired.
    fn advance_clock(&mut self, stamp_ms: u64) {
        let before = self.state.now_ms;
        self.state.now_ms = before.max(stamp_ms);
        assert!(self.state.now_ms >= before, "the clock never goes back");
        while let Some((at, key)) = self.state.expiries.get_min().cloned() {
            if at >= self.state.now_ms {
                break;
            }
            let removed = self.remove(&key);
            assert_eq!(removed.and_then(|e| e.expire_at_ms), Some(at));
        }
    }

    /// Stores `key`, keeping the expiry index in step; a deadline already passed deletes it.
    fn store(&mut self, key: Bytes, value: Bytes, expire_at_ms: Option<u64>) {
        assert!(value.len() <= limits::VALUE_BYTES_MAX);
        self.remove(&key);
        if expire_at_ms.is_some_and(|at| at < self.state.now_ms) {
            return;
        }
        if let Some(at) = expire_at_ms {
            self.state.expiries.insert((at, key.clone()));
        }
        self.state.map.insert(key, Entry { value, expire_at_ms });
    }

    fn remove(&mut self, key: &[u8]) -> Option<Entry> {
        let entry = self.state.map.remove(key)?;
        if let Some(at) = entry.expire_at_ms {
            let indexed = self.state.expiries.remove(&(at, Bytes::copy_from_slice(key)));
            assert!(indexed.is_some(), "an expiring key is indexed");
        }
        Some(entry)
    }

    fn apply_write(&mut self, op: &WriteOp) -> Reply {
        match op {
            WriteOp::Tick => Reply::ok(),
            WriteOp::Set { key, value, condition, expiry, get } => {
                self.set(key, value, *condition, *expiry, *get)
            }
            WriteOp::GetSet { key, value } => {
                let old = self.get(key).cloned();
                self.store(key.clone(), value.clone(), None);
                old.map_or(Reply::Null, Reply::Bulk)
            }
            WriteOp::Del { keys } => {
                Reply::Integer(keys.iter().filter(|k| self.remove(k).is_some()).count() as i64)
            }
            WriteOp::IncrBy { key, delta } => self.incr_by(key, *delta),
            WriteOp::Append { key, value } => self.append(key, value),
            WriteOp::MSet { pairs } => {
                for (key, value) in pairs {
                    self.store(key.clone(), value.clone(), None);
                }
                Reply::ok()
            }
            WriteOp::SetNx { key, value } => {
                let absent = self.get(key).is_none();
                if absent {
                    self.store(key.clone(), value.clone(), None);
                }
                Reply::Integer(i64::from(absent))
            }
            WriteOp::Expire { key, at_ms } => {
                let Some(value) = self.get(key).cloned() else { return Reply::Integer(0) };
                self.store(key.clone(), value, Some(*at_ms));
                Reply::Integer(1)
            }
            WriteOp::Persist { key } => {
                let Some(entry) = self.state.map.get(key).cloned() else {
                    return Reply::Integer(0);
                };
                if entry.expire_at_ms.is_none() {
                    return Reply::Integer(0);
                }
                self.store(key.clone(), entry.value, None);
                Reply::Integer(1)
            }
            WriteOp::FlushAll => {
                self.state.map = OrdMap::new();
                self.state.expiries = OrdSet::new();
                Reply::ok()
            }
        }
    }

    fn set(
        &mut self,
        key: &Bytes,
        value: &Bytes,
        condition: SetCondition,
        expiry: SetExpiry,
        get: bool,
    ) -> Reply {
        let old = self.state.map.get(key).cloned();
        let applies = match condition {
            SetCondition::Always => true,
            SetCondition::IfAbsent => old.is_none(),
            SetCondition::IfPresent => old.is_some(),
        };
        if applies {
            let expire_at_ms = match expiry {
                SetExpiry::Clear => None,
                SetExpiry::Keep => old.as_ref().and_then(|e| e.expire_at_ms),
                SetExpiry::At(at) => Some(at),
            };
            self.store(key.clone(), value.clone(), expire_at_ms);
        }
        match (get, old) {
            (true, Some(old)) => Reply::Bulk(old.value),
            (true, None) => Reply::Null,
            (false, _) if applies => Reply::ok(),
            (false, _) => Reply::Null,
        }
    }

    fn incr_by(&mut self, key: &Bytes, delta: i64) -> Reply {
        let (current, expire_at_ms) = match self.state.map.get(key) {
            None => (0, None),
            Some(entry) => match parse_i64(&entry.value) {
                Some(n) => (n, entry.expire_at_ms),
                None => return Reply::error(ERR_NOT_INTEGER),
            },
        };
        let Some(next) = current.checked_add(delta) else { return Reply::error(ERR_OVERFLOW) };
        self.store(key.clone(), Bytes::from(next.to_string()), expire_at_ms);
        Reply::Integer(next)
    }

    fn append(&mut self, key: &Bytes, suffix: &Bytes) -> Reply {
        let (value, expire_at_ms) = match self.state.map.get(key) {
            None => (suffix.clone(), None),
            Some(entry) => {
                if entry.value.len() + suffix.len() > limits::VALUE_BYTES_MAX {
                    return Reply::error(ERR_TOO_BIG);
                }
                let mut joined = Vec::with_capacity(entry.value.len() + suffix.len());
                joined.extend_from_slice(&entry.value);
                joined.extend_from_slice(suffix);
                (Bytes::from(joined), entry.expire_at_ms)
            }
        };
        let len = value.len() as i64;
        self.store(key.clone(), value, expire_at_ms);
        Reply::Integer(len)
    }
}

impl StateMachine for KvMachine {
    fn execute(&mut self, slot: u64, request: &[u8]) -> Bytes {
        assert!(slot >= self.slot_last, "slots execute in order: {slot} after {}", self.slot_last);
        self.slot_last = slot;
        match Request::decode(request) {
            Ok(request) => self.apply(&request).to_bytes(),
            Err(e) => Reply::error(format!("ERR malformed request: {e}")).to_bytes(),
        }
    }

    fn read(&self, request: &[u8]) -> Bytes {
        match Request::decode(request) {
            Ok(Request::Read(op)) => self.query(&op).to_bytes(),
            Ok(Request::Write { .. }) => {
                Reply::error("ERR a write request on the read path").to_bytes()
            }
            Err(e) => Reply::error(format!("ERR malformed request: {e}")).to_bytes(),
        }
    }

    fn snapshot(&self) -> Box<dyn Snapshot> {
        Box::new(KvSnapshot { state: self.state.clone() })
    }

    fn load_checkpoint(&mut self, input: &mut dyn Read) -> io::Result<()> {
        let state = read_checkpoint(input).map_err(|e| match e {
            CheckpointError::Io(io) => io,
            other => io::Error::new(io::ErrorKind::InvalidData, other),
        })?;
        self.state = state;
        self.slot_last = 0;
        Ok(())
    }
}

/// A frozen copy of the state at a slot boundary, written out by [`Snapshot::write_to`].
///
/// Format: `CHECKPOINT_MAGIC`, version (u32 LE), now_ms (u64 LE), entry count (u64 LE), then
/// per entry in key order: key length (u32 LE), key, value length (u32 LE), value, expiry tag
/// (u8: 0 none, 1 then u64 LE deadline); finally the crc32c (u32 LE) of everything before it.
#[derive(Debug)]
pub struct KvSnapshot {
    state: KvState,
}

impl Snapshot for KvSnapshot {
    fn write_to(&self, out: &mut dyn Write) -> io::Result<()> {
        let mut body = BufWriter::with_capacity(64 << 10, CrcWriter { inner: &mut *out, crc: 0 });
        body.write_all(&CHECKPOINT_MAGIC)?;
        body.write_all(&CHECKPOINT_VERSION.to_le_bytes())?;
        body.write_all(&self.state.now_ms.to_le_bytes())?;
        body.write_all(&(self.state.map.len() as u64).to_le_bytes())?;
        for (key, entry) in self.state.map.iter() {
            write_record(&mut body, key, entry)?;
        }
        let crc = body.into_inner().map_err(|e| e.into_error())?.crc;
        out.write_all(&crc.to_le_bytes())?;
        out.flush()
    }
}

fn write_record(out: &mut impl Write, key: &[u8], entry: &Entry) -> io::Result<()> {
    out.write_all(&(key.len() as u32).to_le_bytes())?;
    out.write_all(key)?;
    out.write_all(&(entry.value.len() as u32).to_le_bytes())?;
    out.write_all(&entry.value)?;
    match entry.expire_at_ms {
        None => out.write_all(&[0]),
        Some(at) => {
            out.write_all(&[1])?;
            out.write_all(&at.to_le_bytes())
        }
    }
}

/// Reads a whole checkpoint, verifying it, before anything is replaced. The input is read
/// ahead (buffered) and must end right after the checksum.
fn read_checkpoint(input: &mut dyn Read) -> Result<KvState, CheckpointError> {
    let mut reader = CrcReader { inner: BufReader::with_capacity(64 << 10, input), crc: 0 };
    if reader.array::<8>()? != CHECKPOINT_MAGIC {
        return Err(CheckpointError::Magic);
    }
    let version = u32::from_le_bytes(reader.array()?);
    if version != CHECKPOINT_VERSION {
        return Err(CheckpointError::Version(version));
    }
    let now_ms = u64::from_le_bytes(reader.array()?);
    let count = u64::from_le_bytes(reader.array()?);
    let mut state = KvState { now_ms, ..KvState::default() };
    let mut key_last: Option<Bytes> = None;
    for _ in 0..count {
        let (key, entry) = read_record(&mut reader, now_ms)?;
        if key_last.as_ref().is_some_and(|last| *last >= key) {
            return Err(CheckpointError::Corrupt("keys out of order".into()));
        }
        key_last = Some(key.clone());
        if let Some(at) = entry.expire_at_ms {
            state.expiries.insert((at, key.clone()));
        }
        state.map.insert(key, entry);
    }
    let computed = reader.crc;
    let stored = u32::from_le_bytes(reader.array()?);
    if stored != computed {
        return Err(CheckpointError::Checksum { stored, computed });
    }
    if reader.inner.read(&mut [0u8; 1])? != 0 {
        return Err(CheckpointError::Corrupt("bytes after the checksum".into()));
    }
    assert_eq!(state.map.len() as u64, count);
    Ok(state)
}

fn read_record<R: Read>(
    reader: &mut CrcReader<R>,
    now_ms: u64,
) -> Result<(Bytes, Entry), CheckpointError> {
    let key = reader.field(limits::KEY_BYTES_MAX)?;
    let value = reader.field(limits::VALUE_BYTES_MAX)?;
    let expire_at_ms = match reader.array::<1>()?[0] {
        0 => None,
        1 => Some(u64::from_le_bytes(reader.array()?)),
        tag => return Err(CheckpointError::Corrupt(format!("expiry tag {tag}"))),
    };
    if expire_at_ms.is_some_and(|at| at < now_ms) {
        return Err(CheckpointError::Corrupt("an expired entry".into()));
    }
    Ok((key, Entry { value, expire_at_ms }))
}

/// A writer that checksums what passes through it.
struct CrcWriter<'a> {
    inner: &'a mut dyn Write,
    crc: u32,
}

impl Write for CrcWriter<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(data)?;
        self.crc = crc32c::crc32c_append(self.crc, &data[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that checksums what it reads.
struct CrcReader<R> {
    inner: R,
    crc: u32,
}

impl<R: Read> CrcReader<R> {
    fn exact(&mut self, buf: &mut [u8]) -> io::Result<()> {
        self.inner.read_exact(buf)?;
        self.crc = crc32c::crc32c_append(self.crc, buf);
        Ok(())
    }

    fn array<const N: usize>(&mut self) -> io::Result<[u8; N]> {
        let mut buf = [0u8; N];
        self.exact(&mut buf)?;
        Ok(buf)
    }

    fn field(&mut self, len_max: usize) -> Result<Bytes, CheckpointError> {
        let len = u32::from_le_bytes(self.array()?) as usize;
        if len > len_max {
            return Err(CheckpointError::Corrupt(format!("a field of {len} bytes")));
        }
        // Grow with the data rather than trusting the length, so a corrupt length cannot
        // allocate more than the input holds.
        let mut data = Vec::new();
        (&mut self.inner).take(len as u64).read_to_end(&mut data)?;
        if data.len() != len {
            return Err(CheckpointError::Io(io::ErrorKind::UnexpectedEof.into()));
        }
        self.crc = crc32c::crc32c_append(self.crc, &data);
        Ok(Bytes::from(data))
    }
}
