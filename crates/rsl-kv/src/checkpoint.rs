//! The checkpoint format of [`crate::KvMachine`]: the whole [`Db`], every value type, written
//! from a frozen snapshot and verified whole before it replaces anything.
//!
//! | field | size | meaning |
//! | --- | --- | --- |
//! | magic | 8 | [`CHECKPOINT_MAGIC`] |
//! | version | u32 LE | [`CHECKPOINT_VERSION`] (version 1, strings only, and version 2, without streams, still load) |
//! | now_ms, mods, seed, tombstone_horizon | 4 x u64 LE | the clocks and the random seed |
//! | keys | u64 LE count, then records | per key, in key order: key, type tag (u8), expiry (u8 0, or 1 and u64 LE below `u64::MAX`), version (u64 LE), value |
//! | tombstones | u64 LE count, then (key, u64 LE count) | in key order |
//! | scripts | u64 LE count, then (sha, body) | in sha order |
//! | crc32c | u32 LE | of everything before it |
//!
//! A value is: a string as bytes; a hash as a u64 count of (field, value); a list or a set as
//! a u64 count of items; a sorted set as a u64 count of (member, score as f64 bits); a stream
//! (version 3) as its last id, largest deleted id, entries added, a u64 count of entries (id,
//! u64 count of fields and values, each bytes) and a u64 count of groups (name, last id,
//! entries read as u8 0 or 1 and u64, a u64 count of pending entries (id, consumer, delivery
//! time, deliveries), a u64 count of consumers (name, seen time)). An id is two u64 LE. Bytes
//! are a u32 LE length and the data. Two replicas with the same state write the same bytes.

use std::io::{self, BufReader, BufWriter, Read, Write};

use bytes::Bytes;
use imbl::{OrdMap, OrdSet, Vector};
use rsl::Snapshot;

use crate::db::{Db, Entry, Key, NO_DEADLINE};
use crate::limits;
use crate::stream::{Consumer, Group, PendingEntry, Stream, StreamId};
use crate::value::{Kind, Value, ZSet};

/// The magic bytes that open a checkpoint.
pub const CHECKPOINT_MAGIC: [u8; 8] = *b"RSLKVCKP";
/// The checkpoint format version written after the magic.
pub const CHECKPOINT_VERSION: u32 = 3;
/// The format before streams: the same layout without the stream type tag, which still
/// loads (a build that reads only it refuses a version 3 checkpoint by its version, rather
/// than failing on a type tag it does not know).
const CHECKPOINT_VERSION_NO_STREAMS: u32 = 2;
/// The first format (strings only), which still loads.
const CHECKPOINT_VERSION_STRINGS: u32 = 1;

/// Why a checkpoint cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The input does not start with [`CHECKPOINT_MAGIC`].
    #[error("not an rsl-kv checkpoint (bad magic)")]
    Magic,
    /// The format version is not one this build reads.
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
    /// expired entry, a deadline of `u64::MAX`, an empty collection, or bytes after the
    /// checksum.
    #[error("corrupt checkpoint: {0}")]
    Corrupt(String),
    /// Reading failed (including an input that ends early).
    #[error("reading the checkpoint: {0}")]
    Io(#[from] io::Error),
}

/// A frozen copy of the state at a slot boundary, written out by [`Snapshot::write_to`].
#[derive(Debug)]
pub struct KvSnapshot {
    pub(crate) db: Db,
}

impl Snapshot for KvSnapshot {
    fn write_to(&self, out: &mut dyn Write) -> io::Result<()> {
        let mut body = BufWriter::with_capacity(64 << 10, CrcWriter { inner: &mut *out, crc: 0 });
        let db = &self.db;
        body.write_all(&CHECKPOINT_MAGIC)?;
        body.write_all(&CHECKPOINT_VERSION.to_le_bytes())?;
        for n in [db.now_ms, db.mods, db.seed, db.tombstone_horizon, db.keys.len() as u64] {
            body.write_all(&n.to_le_bytes())?;
        }
        for (key, entry) in db.keys.iter() {
            write_entry(&mut body, key, entry)?;
        }
        body.write_all(&(db.tombstones.len() as u64).to_le_bytes())?;
        for (key, count) in db.tombstones.iter() {
            put_bytes(&mut body, key)?;
            body.write_all(&count.to_le_bytes())?;
        }
        body.write_all(&(db.scripts.len() as u64).to_le_bytes())?;
        for (sha, script) in db.scripts.iter() {
            put_bytes(&mut body, sha)?;
            put_bytes(&mut body, script)?;
        }
        let crc = body.into_inner().map_err(|e| e.into_error())?.crc;
        out.write_all(&crc.to_le_bytes())?;
        out.flush()
    }
}

fn put_bytes(out: &mut impl Write, data: &[u8]) -> io::Result<()> {
    out.write_all(&(data.len() as u32).to_le_bytes())?;
    out.write_all(data)
}

fn write_entry(out: &mut impl Write, key: &[u8], entry: &Entry) -> io::Result<()> {
    put_bytes(out, key)?;
    out.write_all(&[entry.value.kind().tag()])?;
    match entry.expire_at_ms() {
        None => out.write_all(&[0])?,
        Some(at) => {
            out.write_all(&[1])?;
            out.write_all(&at.to_le_bytes())?;
        }
    }
    out.write_all(&entry.version.to_le_bytes())?;
    let count = |n: usize| (n as u64).to_le_bytes();
    match &entry.value {
        Value::Str(s) => put_bytes(out, s),
        Value::Hash(h) => {
            out.write_all(&count(h.len()))?;
            h.iter().try_for_each(|(f, v)| put_bytes(out, f).and_then(|_| put_bytes(out, v)))
        }
        Value::List(l) => {
            out.write_all(&count(l.len()))?;
            l.iter().try_for_each(|v| put_bytes(out, v))
        }
        Value::Set(s) => {
            out.write_all(&count(s.len()))?;
            s.iter().try_for_each(|m| put_bytes(out, m))
        }
        Value::ZSet(z) => {
            out.write_all(&count(z.len()))?;
            z.scores.iter().try_for_each(|(m, s)| {
                put_bytes(out, m).and_then(|_| out.write_all(&s.0.to_bits().to_le_bytes()))
            })
        }
        Value::Stream(s) => write_stream(out, s),
    }
}

/// Reads a whole checkpoint, verifying it, before anything is replaced. The input is read
/// ahead (buffered) and must end right after the checksum.
pub fn read_checkpoint(input: &mut dyn Read) -> Result<Db, CheckpointError> {
    let mut r = CrcReader { inner: BufReader::with_capacity(64 << 10, input), crc: 0 };
    if r.array::<8>()? != CHECKPOINT_MAGIC {
        return Err(CheckpointError::Magic);
    }
    let version = u32::from_le_bytes(r.array()?);
    let mut db = Db::default();
    match version {
        CHECKPOINT_VERSION_STRINGS => {
            db.now_ms = r.u64()?;
            let count = r.u64()?;
            read_entries_strings(&mut r, &mut db, count)?;
        }
        CHECKPOINT_VERSION_NO_STREAMS | CHECKPOINT_VERSION => {
            [db.now_ms, db.mods, db.seed, db.tombstone_horizon] =
                [r.u64()?, r.u64()?, r.u64()?, r.u64()?];
            let count = r.u64()?;
            read_entries(&mut r, &mut db, count, version == CHECKPOINT_VERSION)?;
            let tombstones = r.u64()?;
            let mut last: Option<Bytes> = None;
            for _ in 0..tombstones {
                let key = r.field(limits::KEY_BYTES_MAX)?;
                let count = r.u64()?;
                in_order(&mut last, &key, "tombstones")?;
                db.tombstones.insert(key.clone(), count);
                db.tombstone_order.insert((count, key));
            }
            let scripts = r.u64()?;
            for _ in 0..scripts {
                let sha = r.field(limits::KEY_BYTES_MAX)?;
                db.scripts.insert(sha, r.field(limits::VALUE_BYTES_MAX)?);
            }
        }
        other => return Err(CheckpointError::Version(other)),
    }
    let computed = r.crc;
    let stored = u32::from_le_bytes(r.array()?);
    if stored != computed {
        return Err(CheckpointError::Checksum { stored, computed });
    }
    if r.inner.read(&mut [0u8; 1])? != 0 {
        return Err(CheckpointError::Corrupt("bytes after the checksum".into()));
    }
    Ok(db)
}

fn in_order(last: &mut Option<Bytes>, key: &Bytes, what: &str) -> Result<(), CheckpointError> {
    if last.as_ref().is_some_and(|l| l >= key) {
        return Err(CheckpointError::Corrupt(format!("{what} out of order")));
    }
    *last = Some(key.clone());
    Ok(())
}

fn read_entries<R: Read>(
    r: &mut CrcReader<R>,
    db: &mut Db,
    count: u64,
    streams: bool,
) -> Result<(), CheckpointError> {
    let mut last: Option<Bytes> = None;
    for _ in 0..count {
        let key = r.field(limits::KEY_BYTES_MAX)?;
        in_order(&mut last, &key, "keys")?;
        let entry = read_entry(r, streams)?;
        if entry.expire_at_ms().is_some_and(|at| at < db.now_ms) {
            return Err(CheckpointError::Corrupt("an expired entry".into()));
        }
        if entry.value.is_empty() {
            return Err(CheckpointError::Corrupt("an empty collection".into()));
        }
        if let Some(at) = entry.expire_at_ms() {
            db.expiries.insert((at, key.clone()));
        }
        db.keys.insert(Key::from(&key[..]), Box::new(entry));
    }
    Ok(())
}

fn read_entries_strings<R: Read>(
    r: &mut CrcReader<R>,
    db: &mut Db,
    count: u64,
) -> Result<(), CheckpointError> {
    let mut last: Option<Bytes> = None;
    for _ in 0..count {
        let key = r.field(limits::KEY_BYTES_MAX)?;
        in_order(&mut last, &key, "keys")?;
        let entry = read_string_entry(r)?;
        if entry.expire_at_ms().is_some_and(|at| at < db.now_ms) {
            return Err(CheckpointError::Corrupt("an expired entry".into()));
        }
        if let Some(at) = entry.expire_at_ms() {
            db.expiries.insert((at, key.clone()));
        }
        db.keys.insert(Key::from(&key[..]), Box::new(entry));
    }
    Ok(())
}

fn read_string_entry<R: Read>(r: &mut CrcReader<R>) -> Result<Entry, CheckpointError> {
    let value = r.field(limits::VALUE_BYTES_MAX)?;
    let expire_at_ms = r.expiry()?;
    Ok(Entry::new(Value::Str(value), expire_at_ms, 0))
}

fn read_entry<R: Read>(r: &mut CrcReader<R>, streams: bool) -> Result<Entry, CheckpointError> {
    let tag = r.array::<1>()?[0];
    let expire_at_ms = r.expiry()?;
    let version = r.u64()?;
    let value = match tag {
        t if t == Kind::Str.tag() => Value::Str(r.field(limits::VALUE_BYTES_MAX)?),
        t if t == Kind::Hash.tag() => {
            let mut hash = OrdMap::new();
            for _ in 0..r.u64()? {
                let field = r.field(limits::VALUE_BYTES_MAX)?;
                hash.insert(field, r.field(limits::VALUE_BYTES_MAX)?);
            }
            Value::Hash(hash)
        }
        t if t == Kind::List.tag() => {
            let mut list = Vector::new();
            for _ in 0..r.u64()? {
                list.push_back(r.field(limits::VALUE_BYTES_MAX)?);
            }
            Value::List(Box::new(list))
        }
        t if t == Kind::Set.tag() => {
            let mut set = OrdSet::new();
            for _ in 0..r.u64()? {
                set.insert(r.field(limits::VALUE_BYTES_MAX)?);
            }
            Value::Set(set)
        }
        t if t == Kind::ZSet.tag() => {
            let mut zset = ZSet::default();
            for _ in 0..r.u64()? {
                let member = r.field(limits::VALUE_BYTES_MAX)?;
                let score = f64::from_bits(r.u64()?);
                if score.is_nan() {
                    return Err(CheckpointError::Corrupt("a NaN score".into()));
                }
                zset.insert(member, score);
            }
            Value::ZSet(Box::new(zset))
        }
        t if streams && t == Kind::Stream.tag() => Value::Stream(Box::new(read_stream(r)?)),
        other => return Err(CheckpointError::Corrupt(format!("type tag {other}"))),
    };
    Ok(Entry::new(value, expire_at_ms, version))
}

fn put_id(out: &mut impl Write, id: StreamId) -> io::Result<()> {
    out.write_all(&id.ms.to_le_bytes())?;
    out.write_all(&id.seq.to_le_bytes())
}

fn write_stream(out: &mut impl Write, s: &Stream) -> io::Result<()> {
    let count = |n: usize| (n as u64).to_le_bytes();
    put_id(out, s.last_id)?;
    put_id(out, s.max_deleted)?;
    out.write_all(&s.entries_added.to_le_bytes())?;
    out.write_all(&count(s.entries.len()))?;
    for (id, fields) in s.entries.iter() {
        put_id(out, *id)?;
        out.write_all(&count(fields.len()))?;
        fields.iter().try_for_each(|f| put_bytes(out, f))?;
    }
    out.write_all(&count(s.groups.len()))?;
    for (name, group) in s.groups.iter() {
        put_bytes(out, name)?;
        put_id(out, group.last_id)?;
        match group.entries_read {
            None => out.write_all(&[0])?,
            Some(n) => {
                out.write_all(&[1])?;
                out.write_all(&n.to_le_bytes())?;
            }
        }
        out.write_all(&count(group.pending.len()))?;
        for (id, p) in group.pending.iter() {
            put_id(out, *id)?;
            put_bytes(out, &p.consumer)?;
            out.write_all(&p.delivered_ms.to_le_bytes())?;
            out.write_all(&p.deliveries.to_le_bytes())?;
        }
        out.write_all(&count(group.consumers.len()))?;
        for (name, consumer) in group.consumers.iter() {
            put_bytes(out, name)?;
            out.write_all(&consumer.seen_ms.to_le_bytes())?;
        }
    }
    Ok(())
}

fn read_stream<R: Read>(r: &mut CrcReader<R>) -> Result<Stream, CheckpointError> {
    let corrupt = |what: &str| CheckpointError::Corrupt(format!("a stream with {what}"));
    let mut s = Stream { last_id: r.id()?, max_deleted: r.id()?, ..Stream::default() };
    s.entries_added = r.u64()?;
    let mut previous = None;
    for _ in 0..r.u64()? {
        let id = r.id()?;
        if previous.is_some_and(|p| p >= id) || id > s.last_id {
            return Err(corrupt("entries out of order"));
        }
        previous = Some(id);
        let n = r.u64()?;
        if n == 0 || n % 2 != 0 {
            return Err(corrupt("an entry without field-value pairs"));
        }
        let fields = (0..n).map(|_| r.field(limits::VALUE_BYTES_MAX)).collect::<Result<_, _>>()?;
        s.entries.insert(id, fields);
    }
    for _ in 0..r.u64()? {
        let name = r.field(limits::VALUE_BYTES_MAX)?;
        let mut group = Group { last_id: r.id()?, ..Group::default() };
        group.entries_read = match r.array::<1>()?[0] {
            0 => None,
            1 => Some(r.u64()?),
            _ => return Err(corrupt("a bad entries-read tag")),
        };
        for _ in 0..r.u64()? {
            let id = r.id()?;
            let consumer = r.field(limits::VALUE_BYTES_MAX)?;
            let pending = PendingEntry { consumer, delivered_ms: r.u64()?, deliveries: r.u64()? };
            group.pending.insert(id, pending);
        }
        for _ in 0..r.u64()? {
            let name = r.field(limits::VALUE_BYTES_MAX)?;
            group.consumers.insert(name, Consumer { seen_ms: r.u64()?, ..Consumer::default() });
        }
        for (id, p) in group.pending.iter() {
            let owner = group.consumers.get_mut(&p.consumer);
            owner.ok_or_else(|| corrupt("a pending entry of no consumer"))?.pending.insert(*id);
        }
        s.groups.insert(name, group);
    }
    Ok(s)
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

    fn u64(&mut self) -> io::Result<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn id(&mut self) -> io::Result<StreamId> {
        Ok(StreamId { ms: self.u64()?, seq: self.u64()? })
    }

    fn expiry(&mut self) -> Result<Option<u64>, CheckpointError> {
        match self.array::<1>()?[0] {
            0 => Ok(None),
            1 => match self.u64()? {
                NO_DEADLINE => Err(CheckpointError::Corrupt("a deadline of u64::MAX".into())),
                at => Ok(Some(at)),
            },
            tag => Err(CheckpointError::Corrupt(format!("expiry tag {tag}"))),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A checkpoint of one string key `k` = `v` with the given expiry bytes.
    fn one_key(expiry: &[u8]) -> Vec<u8> {
        let mut out = CHECKPOINT_MAGIC.to_vec();
        out.extend_from_slice(&CHECKPOINT_VERSION.to_le_bytes());
        for n in [5u64, 1, 0, 0, 1] {
            out.extend_from_slice(&n.to_le_bytes());
        }
        put_bytes(&mut out, b"k").unwrap();
        out.push(Kind::Str.tag());
        out.extend_from_slice(expiry);
        out.extend_from_slice(&1u64.to_le_bytes());
        put_bytes(&mut out, b"v").unwrap();
        out.extend_from_slice(&[0; 16]);
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    #[test]
    fn the_no_deadline_sentinel_is_refused_as_a_deadline() {
        let db = read_checkpoint(&mut &one_key(&[0])[..]).expect("no expiry loads");
        assert_eq!(db.keys.get(&b"k"[..]).unwrap().expire_at_ms(), None);
        let mut at = vec![1];
        at.extend_from_slice(&(NO_DEADLINE - 1).to_le_bytes());
        let db = read_checkpoint(&mut &one_key(&at)[..]).expect("a far deadline loads");
        assert_eq!(db.keys.get(&b"k"[..]).unwrap().expire_at_ms(), Some(NO_DEADLINE - 1));
        at[1..].copy_from_slice(&NO_DEADLINE.to_le_bytes());
        let err = read_checkpoint(&mut &one_key(&at)[..]).expect_err("u64::MAX is refused");
        assert!(matches!(err, CheckpointError::Corrupt(_)), "{err}");
    }
}
