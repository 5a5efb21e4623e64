//! The values a key can hold: a string, a hash, a list, a set, a sorted set or a stream
//! ([`crate::stream`]).
//!
//! Every collection is a persistent structure (`imbl`), so cloning the keyspace for a
//! checkpoint is O(1) and a value changed after the clone is copied only along its changed
//! path. Collections are ordered (a hash by field, a set by member, a sorted set by score then
//! member), so every replica iterates, answers and checkpoints them in the same order; Redis
//! answers small hashes and sets in insertion or hash order instead, which is why replies that
//! list a hash or a set are compared as sets by the differential test.

use std::cmp::Ordering;

use bytes::Bytes;
use imbl::{OrdMap, OrdSet, Vector};

use crate::stream::Stream;

/// A sorted set's score: a double that is never NaN, ordered totally.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score(pub f64);

impl Eq for Score {}

impl PartialOrd for Score {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Score {
    fn cmp(&self, other: &Self) -> Ordering {
        // Scores are never NaN; -0 and 0 compare equal, as in C.
        self.0.partial_cmp(&other.0).expect("a score is never NaN")
    }
}

/// A sorted set: each member's score, and the members in (score, member) order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ZSet {
    /// member -> score.
    pub scores: OrdMap<Bytes, Score>,
    /// (score, member), the order of ZRANGE.
    pub order: OrdSet<(Score, Bytes)>,
}

impl ZSet {
    /// The number of members.
    pub fn len(&self) -> usize {
        self.scores.len()
    }

    /// Whether the set has no member.
    pub fn is_empty(&self) -> bool {
        self.scores.is_empty()
    }

    /// Sets `member`'s score; returns the old one.
    pub fn insert(&mut self, member: Bytes, score: f64) -> Option<f64> {
        assert!(!score.is_nan(), "a score is never NaN");
        let old = self.scores.insert(member.clone(), Score(score));
        if let Some(old) = old {
            let removed = self.order.remove(&(old, member.clone()));
            assert!(removed.is_some(), "the order holds every member");
        }
        self.order.insert((Score(score), member));
        old.map(|s| s.0)
    }

    /// Removes `member`; returns its score.
    pub fn remove(&mut self, member: &[u8]) -> Option<f64> {
        let old = self.scores.remove(member)?;
        let removed = self.order.remove(&(old, Bytes::copy_from_slice(member)));
        assert!(removed.is_some(), "the order holds every member");
        Some(old.0)
    }

    /// `member`'s score.
    pub fn score(&self, member: &[u8]) -> Option<f64> {
        self.scores.get(member).map(|s| s.0)
    }

    /// The members by rank, from `start` to `end` inclusive (both within bounds).
    pub fn by_rank(&self, start: usize, end: usize) -> impl Iterator<Item = &(Score, Bytes)> {
        self.order.iter().skip(start).take(end + 1 - start)
    }

    /// `member`'s rank (0 for the lowest score).
    pub fn rank(&self, member: &[u8]) -> Option<usize> {
        let score = *self.scores.get(member)?;
        Some(self.order.range(..(score, Bytes::copy_from_slice(member))).count())
    }
}

/// The value stored at a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// A string (also what INCR and SETBIT work on).
    Str(Bytes),
    /// A hash: field -> value.
    Hash(OrdMap<Bytes, Bytes>),
    /// A list.
    List(Box<Vector<Bytes>>),
    /// A set.
    Set(OrdSet<Bytes>),
    /// A sorted set.
    ZSet(Box<ZSet>),
    /// A stream.
    Stream(Box<Stream>),
}

/// The value type's name, as TYPE answers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `string`.
    Str,
    /// `hash`.
    Hash,
    /// `list`.
    List,
    /// `set`.
    Set,
    /// `zset`.
    ZSet,
    /// `stream`.
    Stream,
}

impl Kind {
    /// TYPE's answer.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Str => "string",
            Kind::Hash => "hash",
            Kind::List => "list",
            Kind::Set => "set",
            Kind::ZSet => "zset",
            Kind::Stream => "stream",
        }
    }

    /// The kind TYPE and SCAN's TYPE option name, if any.
    pub fn from_name(name: &[u8]) -> Option<Kind> {
        [Kind::Str, Kind::Hash, Kind::List, Kind::Set, Kind::ZSet, Kind::Stream]
            .into_iter()
            .find(|k| k.name().as_bytes().eq_ignore_ascii_case(name))
    }

    /// The checkpoint's tag for the kind.
    pub fn tag(self) -> u8 {
        match self {
            Kind::Str => 0,
            Kind::Hash => 1,
            Kind::List => 2,
            Kind::Set => 3,
            Kind::ZSet => 4,
            Kind::Stream => 5,
        }
    }
}

impl Value {
    /// An empty collection of `kind` (a command fills it before it is seen).
    pub fn empty(kind: Kind) -> Value {
        match kind {
            Kind::Str => Value::Str(Bytes::new()),
            Kind::Hash => Value::Hash(OrdMap::new()),
            Kind::List => Value::List(Box::default()),
            Kind::Set => Value::Set(OrdSet::new()),
            Kind::ZSet => Value::ZSet(Box::default()),
            Kind::Stream => Value::Stream(Box::default()),
        }
    }

    /// The hash inside; panics for another kind (the caller checked it).
    pub fn hash_mut(&mut self) -> &mut OrdMap<Bytes, Bytes> {
        match self {
            Value::Hash(h) => h,
            other => panic!("a {} is not a hash", other.kind().name()),
        }
    }

    /// The list inside; panics for another kind (the caller checked it).
    pub fn list_mut(&mut self) -> &mut Vector<Bytes> {
        match self {
            Value::List(l) => l,
            other => panic!("a {} is not a list", other.kind().name()),
        }
    }

    /// The set inside; panics for another kind (the caller checked it).
    pub fn set_mut(&mut self) -> &mut OrdSet<Bytes> {
        match self {
            Value::Set(s) => s,
            other => panic!("a {} is not a set", other.kind().name()),
        }
    }

    /// The sorted set inside; panics for another kind (the caller checked it).
    pub fn zset_mut(&mut self) -> &mut ZSet {
        match self {
            Value::ZSet(z) => z,
            other => panic!("a {} is not a zset", other.kind().name()),
        }
    }

    /// The value's kind.
    pub fn kind(&self) -> Kind {
        match self {
            Value::Str(_) => Kind::Str,
            Value::Hash(_) => Kind::Hash,
            Value::List(_) => Kind::List,
            Value::Set(_) => Kind::Set,
            Value::ZSet(_) => Kind::ZSet,
            Value::Stream(_) => Kind::Stream,
        }
    }

    /// The number of elements (1 for a string).
    pub fn len(&self) -> usize {
        match self {
            Value::Str(_) => 1,
            Value::Hash(h) => h.len(),
            Value::List(l) => l.len(),
            Value::Set(s) => s.len(),
            Value::ZSet(z) => z.len(),
            Value::Stream(s) => s.len(),
        }
    }

    /// Whether a collection is empty (Redis removes a key whose collection empties; a
    /// stream stays, as in Redis, so it is never "empty" in this sense).
    pub fn is_empty(&self) -> bool {
        !matches!(self, Value::Str(_) | Value::Stream(_)) && self.len() == 0
    }

    /// The stream inside; panics for another kind (the caller checked it).
    pub fn stream_mut(&mut self) -> &mut Stream {
        match self {
            Value::Stream(s) => s,
            other => panic!("a {} is not a stream", other.kind().name()),
        }
    }

    /// OBJECT ENCODING's answer, by Redis 7.0's rules (a list is always a quicklist), so clients that look at it see
    /// the names they know (the representation here is the same whatever the size).
    pub fn encoding(&self) -> &'static str {
        match self {
            Value::Str(s) if s.len() <= 20 && crate::resp::parse_i64(s).is_some() => "int",
            Value::Str(s) if s.len() <= 44 => "embstr",
            Value::Str(_) => "raw",
            Value::Hash(h)
                if h.len() <= 128 && h.iter().all(|(f, v)| f.len() <= 64 && v.len() <= 64) =>
            {
                "listpack"
            }
            Value::Hash(_) => "hashtable",
            Value::List(_) => "quicklist",
            Value::Set(s)
                if s.len() <= 512 && s.iter().all(|m| crate::resp::parse_i64(m).is_some()) =>
            {
                "intset"
            }
            Value::Set(_) => "hashtable",
            Value::ZSet(z) if z.len() <= 128 && z.scores.keys().all(|m| m.len() <= 64) => {
                "listpack"
            }
            Value::ZSet(_) => "skiplist",
            Value::Stream(_) => "stream",
        }
    }

    /// An estimate of the bytes the value takes, for MEMORY USAGE and INFO memory: the data
    /// plus a fixed overhead per element for the tree nodes that hold it.
    pub fn memory_bytes(&self) -> usize {
        const ELEMENT_OVERHEAD_BYTES: usize = 48;
        match self {
            Value::Str(s) => s.len(),
            Value::Hash(h) => {
                h.iter().map(|(f, v)| f.len() + v.len() + 2 * ELEMENT_OVERHEAD_BYTES).sum()
            }
            Value::List(l) => l.iter().map(|v| v.len() + ELEMENT_OVERHEAD_BYTES).sum(),
            Value::Set(s) => s.iter().map(|m| m.len() + ELEMENT_OVERHEAD_BYTES).sum(),
            Value::ZSet(z) => {
                z.scores.keys().map(|m| 2 * (m.len() + ELEMENT_OVERHEAD_BYTES) + 16).sum()
            }
            Value::Stream(s) => s.memory_bytes(),
        }
    }
}
