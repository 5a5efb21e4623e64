//! Messages between replicas and their compact binary encoding.
//!
//! The transport authenticates peers and checksums frames; this module only turns a
//! [`Message`] into bytes and back. The format is a version byte, the sender and receiver, a
//! body tag and the body's fields, every integer as an unsigned LEB128 varint. `decode` never
//! panics: a byte string's length is bounded by the bytes that remain, a list's also by
//! [`WIRE_ITEMS_MAX`], and any trailing byte is an error. See docs/protocol.md for what each
//! message means.
//!
//! The encoder also measures: [`Message::encoded_len`] and the `*_len` functions give the
//! exact size of what `encode` writes (the same code, writing into a counter), so that the
//! core can split what it sends into messages no larger than `Config::message_bytes_max`
//! (see [`crate::limits`]).

use bytes::Bytes;

pub use crate::limits::WIRE_ITEMS_MAX;

/// The fewest bytes a request takes in a batch: its four varints (proposer, incarnation,
/// sequence number, payload length), one byte each at least.
const REQUEST_BYTES_MIN: usize = 4;

use crate::types::{
    Ballot, LogEntry, MemberInfo, Membership, ReplicaId, Request, RequestId, Slot, SlotValue,
    UnknownValue, Value,
};

/// The format version written first in every encoded message.
pub const WIRE_VERSION: u8 = 1;

/// A message between two replicas.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Message {
    pub from: ReplicaId,
    pub to: ReplicaId,
    pub body: Body,
}

/// What a message says.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Body {
    /// "May I stand for election at `ballot`?" Sent before phase 1 so that a replica that was
    /// partitioned away cannot raise everyone's promise and depose a healthy primary.
    PreVote { ballot: Ballot, commit: Slot },
    /// The answer to a pre-vote: granted only by a voter that has not heard a primary for an
    /// election timeout.
    PreVoteReply { ballot: Ballot, granted: bool },
    /// Phase 1a: promise `ballot` and report what you accepted above slot `after` (the
    /// candidate's commit point; for the next page of a promise, where the last page ended).
    /// `transfer` carries the ballot of the primary handing over primacy, which lets the
    /// acceptors of that primary answer inside the lease they granted it.
    Prepare { ballot: Ballot, after: Slot, transfer: Option<Ballot> },
    /// Phase 1b, one page: the acceptor promised `ballot`; `commit` is its commit point (its
    /// entries at or below it are chosen). `entries` are its accepted entries above `after`,
    /// and `unknown` the slots above `after` it accepted at a ballot but lost the value of
    /// (corrupt records), in slot order, as many as fit one message: `more_after` names the
    /// last slot this page covers when more follow (the candidate asks for the next page with
    /// a prepare `after` it). `dropped` says the acceptor no longer holds some entries above
    /// `after` (executed and dropped: chosen ones), so the candidate must catch up first.
    Promise {
        ballot: Ballot,
        commit: Slot,
        after: Slot,
        entries: Vec<LogEntry>,
        unknown: Vec<UnknownValue>,
        more_after: Option<Slot>,
        dropped: bool,
    },
    /// A prepare or accept at `ballot` was refused because the sender promised `promised`.
    Nack { ballot: Ballot, promised: Ballot },
    /// Phase 2a: accept these values at `ballot`; every slot up to `commit` is chosen.
    Accept { ballot: Ballot, commit: Slot, entries: Vec<SlotValue> },
    /// Phase 2b: the sender durably accepted `slots` at `ballot`.
    Accepted { ballot: Ballot, slots: Vec<Slot> },
    /// The primary is alive; every slot up to `commit` is chosen. `round` numbers the
    /// heartbeat for leases and quorum reads.
    Heartbeat { ballot: Ballot, commit: Slot, round: u64 },
    /// The sender heard heartbeat `round` of `ballot` (and granted the lease it carries);
    /// `commit` is the sender's commit point, for lag and transfer decisions.
    HeartbeatAck { ballot: Ballot, round: u64, commit: Slot },
    /// "Send me the chosen entries `from..=to`."
    CatchupRequest { from: Slot, to: Slot },
    /// Chosen entries (every one at or below `commit`, the sender's commit point).
    CatchupReply { commit: Slot, entries: Vec<LogEntry> },
    /// Primacy transfer: the primary at `ballot` asks the receiver to start phase 1 now.
    StartElection { ballot: Ballot },
    /// Disk loss: the sender lost its disk and is rebuilding (`nonce` names this incarnation's
    /// request). The primary answers with a phase 1 started after receiving it.
    Rebuild { nonce: u64 },
    /// The answer to `Rebuild { nonce }`: a phase 1 at `ballot`, started after the request
    /// arrived, completed; `through` is the last slot it re-proposed. Once the receiver has
    /// promised `ballot` and its commit point reaches `through`, it may vote again.
    Rebuilt { nonce: u64, ballot: Ballot, through: Slot },
}

/// Why bytes are not a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The bytes end inside a field.
    Truncated,
    /// The version byte is not [`WIRE_VERSION`].
    Version(u8),
    /// An unknown body, value or flag tag.
    Tag(u8),
    /// A varint longer than ten bytes or above the field's range.
    Overflow,
    /// A byte string longer than the remaining bytes, or a list longer than the remaining
    /// bytes or [`WIRE_ITEMS_MAX`].
    TooLong(u64),
    /// Bytes remain after the message.
    Trailing(usize),
    /// A member's address that is not UTF-8.
    Utf8,
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::Truncated => write!(f, "message truncated"),
            DecodeError::Version(v) => write!(f, "unknown wire version {v}"),
            DecodeError::Tag(t) => write!(f, "unknown tag {t}"),
            DecodeError::Overflow => write!(f, "integer overflow"),
            DecodeError::TooLong(n) => {
                write!(f, "length {n} exceeds the remaining bytes or the item limit")
            }
            DecodeError::Trailing(n) => write!(f, "{n} trailing bytes"),
            DecodeError::Utf8 => write!(f, "a member address is not UTF-8"),
        }
    }
}

impl std::error::Error for DecodeError {}

impl Message {
    /// Encodes the message. `decode(&encode(m)) == Ok(m)` for every message.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer(Vec::with_capacity(self.encoded_len()));
        w.message(self);
        w.0
    }

    /// The exact length of [`Message::encode`]'s output, without encoding.
    pub fn encoded_len(&self) -> usize {
        let mut w = Writer(Count(0));
        w.message(self);
        w.0 .0
    }

    /// Encodes the message after `prefix` (an envelope's header) into one buffer, so that
    /// a large value is copied once on its way to the transport.
    pub fn encode_after(&self, prefix: &[u8]) -> Vec<u8> {
        let mut w = Writer(Vec::with_capacity(prefix.len() + self.encoded_len()));
        w.0.put_slice(prefix);
        w.message(self);
        w.0
    }

    /// Decodes a message; never panics, whatever the bytes.
    pub fn decode(bytes: &[u8]) -> Result<Message, DecodeError> {
        Message::decode_from(Reader { bytes, shared: None, pos: 0 })
    }

    /// Like [`Message::decode`], but the requests' payloads share `bytes`' memory instead of
    /// being copied (a 16 MiB request is not copied again on the consensus thread).
    pub fn decode_shared(bytes: &Bytes) -> Result<Message, DecodeError> {
        Message::decode_from(Reader { bytes, shared: Some(bytes), pos: 0 })
    }

    /// [`Message::decode_shared`] of a message in two pieces: `head`, exactly its header
    /// (as [`Message::encode_header_after`] writes it, without the prefix), and `body`, the
    /// rest. An in-process transport hands every receiver of one accept the same encoded body
    /// this way, without a copy of it per receiver.
    pub fn decode_parts(head: &[u8], body: &Bytes) -> Result<Message, DecodeError> {
        let mut h = Reader { bytes: head, shared: None, pos: 0 };
        let (from, to) = h.header()?;
        h.end()?;
        let mut r = Reader { bytes: body, shared: Some(body), pos: 0 };
        let body = r.body()?;
        r.end()?;
        Ok(Message { from, to, body })
    }

    fn decode_from(mut r: Reader<'_>) -> Result<Message, DecodeError> {
        let (from, to) = r.header()?;
        let body = r.body()?;
        r.end()?;
        Ok(Message { from, to, body })
    }
}

/// Encodes one slot value on its own (the log's record payload), in the wire format.
pub fn encode_value(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + value_len(value));
    encode_value_into(value, &mut out);
    out
}

/// [`encode_value`] into `out`, cleared first: a caller that encodes value after value keeps
/// one buffer, with no measuring pass and no allocation once it is large enough.
pub fn encode_value_into(value: &Value, out: &mut Vec<u8>) {
    out.clear();
    let mut w = Writer(std::mem::take(out));
    w.byte(WIRE_VERSION);
    w.value(value);
    *out = w.0;
}

/// The encoded length of a body (its tag and fields).
pub fn body_len(body: &Body) -> usize {
    measure(|w| w.body(body))
}

/// The encoded length of a value (in a message; [`encode_value`] adds one version byte).
pub fn value_len(value: &Value) -> usize {
    measure(|w| w.value(value))
}

/// The encoded length of a log entry in a promise or catch-up reply.
pub fn entry_len(entry: &LogEntry) -> usize {
    measure(|w| w.entry(entry))
}

/// The encoded length of a slot's value in an accept.
pub fn slot_value_len(entry: &SlotValue) -> usize {
    slot_value_len_of(entry.slot, value_len(&entry.value))
}

/// [`slot_value_len`] of a value whose [`value_len`] is `value_bytes`.
pub fn slot_value_len_of(slot: Slot, value_bytes: usize) -> usize {
    measure(|w| w.slot(slot)) + value_bytes
}

/// The encoded length of an unknown slot in a promise.
pub fn unknown_len(unknown: &UnknownValue) -> usize {
    measure(|w| {
        w.slot(unknown.slot);
        w.ballot(unknown.ballot);
    })
}

fn measure(f: impl FnOnce(&mut Writer<Count>)) -> usize {
    let mut w = Writer(Count(0));
    f(&mut w);
    w.0 .0
}

/// Decodes what [`encode_value`] wrote; never panics, whatever the bytes.
pub fn decode_value(bytes: &[u8]) -> Result<Value, DecodeError> {
    let mut r = Reader { bytes, shared: None, pos: 0 };
    let version = r.byte()?;
    if version != WIRE_VERSION {
        return Err(DecodeError::Version(version));
    }
    let value = r.value()?;
    if r.pos != bytes.len() {
        return Err(DecodeError::Trailing(bytes.len() - r.pos));
    }
    Ok(value)
}

/// Where the writer puts bytes: a buffer, a counter that measures without encoding, or a list
/// of parts that shares large payloads (`parts`).
trait Sink {
    fn put(&mut self, b: u8);
    fn put_slice(&mut self, bytes: &[u8]);

    /// A request's payload: copied like any bytes, except by a sink that shares it.
    fn put_payload(&mut self, payload: &Bytes) {
        self.put_slice(payload);
    }
}

impl Sink for Vec<u8> {
    fn put(&mut self, b: u8) {
        self.push(b);
    }

    fn put_slice(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// Counts the bytes written.
struct Count(usize);

impl Sink for Count {
    fn put(&mut self, _: u8) {
        self.0 += 1;
    }

    fn put_slice(&mut self, bytes: &[u8]) {
        self.0 += bytes.len();
    }
}

struct Writer<S: Sink>(S);

impl<S: Sink> Writer<S> {
    fn byte(&mut self, b: u8) {
        self.0.put(b);
    }

    fn u64(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.put((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.put(v as u8);
    }

    fn message(&mut self, m: &Message) {
        self.byte(WIRE_VERSION);
        self.u64(u64::from(m.from.0));
        self.u64(u64::from(m.to.0));
        self.body(&m.body);
    }

    fn len(&mut self, n: usize) {
        self.u64(n as u64);
    }

    fn ballot(&mut self, b: Ballot) {
        self.u64(b.round);
        self.u64(u64::from(b.replica));
    }

    fn slot(&mut self, s: Slot) {
        self.u64(s.0);
    }

    fn entry(&mut self, e: &LogEntry) {
        self.slot(e.slot);
        self.ballot(e.ballot);
        self.value(&e.value);
    }

    fn ids(&mut self, ids: &[ReplicaId]) {
        self.len(ids.len());
        for id in ids {
            self.u64(u64::from(id.0));
        }
    }

    fn value(&mut self, v: &Value) {
        match v {
            Value::Noop => self.byte(0),
            Value::Batch(reqs) => {
                self.byte(1);
                self.len(reqs.len());
                for r in reqs.iter() {
                    self.u64(u64::from(r.id.proposer.0));
                    self.u64(r.id.incarnation);
                    self.u64(r.id.seq);
                    self.len(r.payload.len());
                    self.0.put_payload(&r.payload);
                }
            }
            Value::Config(m) => {
                // Tag 2 is a membership without member info, as written before members
                // carried addresses; tag 3 adds each member's info.
                self.byte(if m.info.is_empty() { 2 } else { 3 });
                self.ids(&m.voters);
                self.ids(&m.learners);
                if !m.info.is_empty() {
                    self.len(m.info.len());
                    for (id, info) in &m.info {
                        self.u64(u64::from(id.0));
                        self.len(info.addr.len());
                        self.0.put_slice(info.addr.as_bytes());
                        self.len(info.data.len());
                        self.0.put_slice(&info.data);
                    }
                }
            }
        }
    }

    fn option_slot(&mut self, slot: Option<Slot>) {
        match slot {
            None => self.byte(0),
            Some(s) => {
                self.byte(1);
                self.slot(s);
            }
        }
    }

    fn promise(&mut self, body: &Body) {
        let Body::Promise { ballot, commit, after, entries, unknown, more_after, dropped } = body
        else {
            unreachable!("not a promise")
        };
        self.ballot(*ballot);
        self.slot(*commit);
        self.slot(*after);
        self.len(entries.len());
        entries.iter().for_each(|e| self.entry(e));
        self.len(unknown.len());
        for u in unknown {
            self.slot(u.slot);
            self.ballot(u.ballot);
        }
        self.option_slot(*more_after);
        self.byte(u8::from(*dropped));
    }

    fn slot_values(&mut self, entries: &[SlotValue]) {
        self.len(entries.len());
        for e in entries {
            self.slot(e.slot);
            self.value(&e.value);
        }
    }

    fn body(&mut self, body: &Body) {
        match body {
            Body::PreVote { ballot, commit } => {
                self.byte(1);
                self.ballot(*ballot);
                self.slot(*commit);
            }
            Body::PreVoteReply { ballot, granted } => {
                self.byte(2);
                self.ballot(*ballot);
                self.byte(u8::from(*granted));
            }
            Body::Prepare { ballot, after, transfer } => {
                self.byte(3);
                self.ballot(*ballot);
                self.slot(*after);
                match transfer {
                    None => self.byte(0),
                    Some(b) => {
                        self.byte(1);
                        self.ballot(*b);
                    }
                }
            }
            Body::Promise { .. } => {
                // Tag 4 was the single-message promise before pages; it is refused.
                self.byte(15);
                self.promise(body);
            }
            Body::Nack { ballot, promised } => {
                self.byte(5);
                self.ballot(*ballot);
                self.ballot(*promised);
            }
            Body::Accept { ballot, commit, entries } => {
                self.byte(6);
                self.ballot(*ballot);
                self.slot(*commit);
                self.slot_values(entries);
            }
            Body::Accepted { ballot, slots } => {
                self.byte(7);
                self.ballot(*ballot);
                self.len(slots.len());
                slots.iter().for_each(|s| self.slot(*s));
            }
            Body::Heartbeat { ballot, commit, round } => {
                self.byte(8);
                self.ballot(*ballot);
                self.slot(*commit);
                self.u64(*round);
            }
            Body::HeartbeatAck { ballot, round, commit } => {
                self.byte(9);
                self.ballot(*ballot);
                self.u64(*round);
                self.slot(*commit);
            }
            Body::CatchupRequest { from, to } => {
                self.byte(10);
                self.slot(*from);
                self.slot(*to);
            }
            Body::CatchupReply { commit, entries } => {
                self.byte(11);
                self.slot(*commit);
                self.len(entries.len());
                entries.iter().for_each(|e| self.entry(e));
            }
            Body::StartElection { ballot } => {
                self.byte(12);
                self.ballot(*ballot);
            }
            Body::Rebuild { nonce } => {
                self.byte(13);
                self.u64(*nonce);
            }
            Body::Rebuilt { nonce, ballot, through } => {
                self.byte(14);
                self.u64(*nonce);
                self.ballot(*ballot);
                self.slot(*through);
            }
        }
    }
}

#[path = "message_pack.rs"]
mod pack;
#[path = "message_parts.rs"]
mod parts;
pub(crate) use pack::{split, Packer};

struct Reader<'a> {
    bytes: &'a [u8],
    /// The same bytes, shared: payloads are sliced from it rather than copied.
    shared: Option<&'a Bytes>,
    pos: usize,
}

impl Reader<'_> {
    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    /// A message's header: the wire version (checked), sender and receiver.
    fn header(&mut self) -> Result<(ReplicaId, ReplicaId), DecodeError> {
        let version = self.byte()?;
        if version != WIRE_VERSION {
            return Err(DecodeError::Version(version));
        }
        Ok((ReplicaId(self.u32()?), ReplicaId(self.u32()?)))
    }

    /// Nothing may follow what was read.
    fn end(&self) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(DecodeError::Trailing(n)),
        }
    }

    fn byte(&mut self) -> Result<u8, DecodeError> {
        let b = *self.bytes.get(self.pos).ok_or(DecodeError::Truncated)?;
        self.pos += 1;
        Ok(b)
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let b = self.byte()?;
            let part = u64::from(b & 0x7f);
            if i == 9 && part > 1 {
                return Err(DecodeError::Overflow);
            }
            v |= part << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(DecodeError::Overflow)
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        u32::try_from(self.u64()?).map_err(|_| DecodeError::Overflow)
    }

    fn flag(&mut self) -> Result<bool, DecodeError> {
        match self.byte()? {
            0 => Ok(false),
            1 => Ok(true),
            t => Err(DecodeError::Tag(t)),
        }
    }

    /// A list length: each item takes at least one byte, so a length above the remaining
    /// bytes is a lie, caught before anything is allocated; and no encoder writes a list of
    /// more than [`WIRE_ITEMS_MAX`] items, which bounds what a list may allocate.
    fn len(&mut self) -> Result<usize, DecodeError> {
        let n = self.u64()?;
        if n > self.remaining() as u64 || n > WIRE_ITEMS_MAX as u64 {
            return Err(DecodeError::TooLong(n));
        }
        Ok(n as usize)
    }

    /// A byte string's length: bounded only by the bytes that remain (the message's size is
    /// bounded by the transport), never by the item limit, which counts list items.
    fn bytes_len(&mut self) -> Result<usize, DecodeError> {
        let n = self.u64()?;
        if n > self.remaining() as u64 {
            return Err(DecodeError::TooLong(n));
        }
        Ok(n as usize)
    }

    fn ballot(&mut self) -> Result<Ballot, DecodeError> {
        Ok(Ballot { round: self.u64()?, replica: self.u32()? })
    }

    fn slot(&mut self) -> Result<Slot, DecodeError> {
        Ok(Slot(self.u64()?))
    }

    fn entry(&mut self) -> Result<LogEntry, DecodeError> {
        Ok(LogEntry { slot: self.slot()?, ballot: self.ballot()?, value: self.value()? })
    }

    fn ids(&mut self) -> Result<Vec<ReplicaId>, DecodeError> {
        let n = self.len()?;
        (0..n).map(|_| Ok(ReplicaId(self.u32()?))).collect()
    }

    /// A length-prefixed byte string.
    fn byte_string(&mut self) -> Result<&[u8], DecodeError> {
        let n = self.bytes_len()?;
        let b = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(b)
    }

    fn request(&mut self) -> Result<Request, DecodeError> {
        let proposer = ReplicaId(self.u32()?);
        let id = RequestId { proposer, incarnation: self.u64()?, seq: self.u64()? };
        let n = self.bytes_len()?;
        let range = self.pos..self.pos + n;
        let payload = match self.shared {
            Some(b) => b.slice(range),
            None => Bytes::copy_from_slice(&self.bytes[range]),
        };
        self.pos += n;
        Ok(Request { id, payload })
    }

    fn value(&mut self) -> Result<Value, DecodeError> {
        match self.byte()? {
            0 => Ok(Value::Noop),
            1 => {
                let n = self.len()?;
                // A request takes at least four bytes (four varints), so no longer count is
                // valid; within it the batch is allocated once, at its size, and decoded in
                // place (collected into a list, then copied, it was 4 % of batched load).
                if n > self.remaining() / REQUEST_BYTES_MIN {
                    return Err(DecodeError::TooLong(n as u64));
                }
                let mut failed = None;
                let reqs: std::sync::Arc<[Request]> = (0..n)
                    .map(|_| {
                        if failed.is_none() {
                            match self.request() {
                                Ok(request) => return request,
                                Err(e) => failed = Some(e),
                            }
                        }
                        // After a failure: a filler, never seen (the decode fails).
                        let id = RequestId { proposer: ReplicaId(0), incarnation: 0, seq: 0 };
                        Request { id, payload: Bytes::new() }
                    })
                    .collect();
                match failed {
                    Some(e) => Err(e),
                    None => Ok(Value::Batch(reqs)),
                }
            }
            2 => {
                let (voters, learners) = (self.ids()?, self.ids()?);
                Ok(Value::Config(Membership { voters, learners, info: Default::default() }))
            }
            3 => {
                let (voters, learners) = (self.ids()?, self.ids()?);
                let n = self.len()?;
                let mut info = std::collections::BTreeMap::new();
                for _ in 0..n {
                    let id = ReplicaId(self.u32()?);
                    let addr = String::from_utf8(self.byte_string()?.to_vec())
                        .map_err(|_| DecodeError::Utf8)?;
                    let data = Bytes::copy_from_slice(self.byte_string()?);
                    info.insert(id, MemberInfo { addr, data });
                }
                if info.is_empty() {
                    // Tag 3 always carries info: an empty list is not what the encoder wrote.
                    return Err(DecodeError::Tag(3));
                }
                Ok(Value::Config(Membership { voters, learners, info }))
            }
            t => Err(DecodeError::Tag(t)),
        }
    }

    fn promise(&mut self) -> Result<Body, DecodeError> {
        let (ballot, commit, after) = (self.ballot()?, self.slot()?, self.slot()?);
        let entries = self.entries()?;
        let n = self.len()?;
        let unknown = (0..n)
            .map(|_| Ok(UnknownValue { slot: self.slot()?, ballot: self.ballot()? }))
            .collect::<Result<_, DecodeError>>()?;
        let more_after = if self.flag()? { Some(self.slot()?) } else { None };
        let dropped = self.flag()?;
        Ok(Body::Promise { ballot, commit, after, entries, unknown, more_after, dropped })
    }

    fn entries(&mut self) -> Result<Vec<LogEntry>, DecodeError> {
        let n = self.len()?;
        (0..n).map(|_| self.entry()).collect()
    }

    fn body(&mut self) -> Result<Body, DecodeError> {
        let tag = self.byte()?;
        Ok(match tag {
            1 => Body::PreVote { ballot: self.ballot()?, commit: self.slot()? },
            2 => Body::PreVoteReply { ballot: self.ballot()?, granted: self.flag()? },
            3 => {
                let (ballot, after) = (self.ballot()?, self.slot()?);
                let transfer = if self.flag()? { Some(self.ballot()?) } else { None };
                Body::Prepare { ballot, after, transfer }
            }
            15 => self.promise()?,
            5 => Body::Nack { ballot: self.ballot()?, promised: self.ballot()? },
            6 => {
                let (ballot, commit) = (self.ballot()?, self.slot()?);
                let n = self.len()?;
                let entries = (0..n)
                    .map(|_| Ok(SlotValue { slot: self.slot()?, value: self.value()? }))
                    .collect::<Result<_, DecodeError>>()?;
                Body::Accept { ballot, commit, entries }
            }
            7 => {
                let ballot = self.ballot()?;
                let n = self.len()?;
                let slots = (0..n).map(|_| self.slot()).collect::<Result<_, _>>()?;
                Body::Accepted { ballot, slots }
            }
            8 => {
                Body::Heartbeat { ballot: self.ballot()?, commit: self.slot()?, round: self.u64()? }
            }
            9 => Body::HeartbeatAck {
                ballot: self.ballot()?,
                round: self.u64()?,
                commit: self.slot()?,
            },
            10 => Body::CatchupRequest { from: self.slot()?, to: self.slot()? },
            11 => Body::CatchupReply { commit: self.slot()?, entries: self.entries()? },
            12 => Body::StartElection { ballot: self.ballot()? },
            13 => Body::Rebuild { nonce: self.u64()? },
            14 => {
                Body::Rebuilt { nonce: self.u64()?, ballot: self.ballot()?, through: self.slot()? }
            }
            t => return Err(DecodeError::Tag(t)),
        })
    }
}

/// Checks what the handlers take as given about a message from an authenticated peer: a
/// ballot it proposes under is its own, slots are above zero, lists are sorted. A message
/// that fails is dropped and counted, never a panic.
pub(crate) fn well_formed(msg: &Message) -> bool {
    let own = |b: &Ballot| b.owner() == msg.from;
    match &msg.body {
        Body::PreVote { ballot, .. } | Body::StartElection { ballot } => own(ballot),
        Body::Rebuilt { ballot, .. } => own(ballot),
        Body::Prepare { ballot, after, .. } => own(ballot) && *after < Slot(u64::MAX),
        Body::Heartbeat { ballot, .. } => own(ballot),
        Body::Accept { ballot, entries, .. } => {
            own(ballot) && ascending(entries.iter().map(|e| e.slot))
        }
        Body::Promise { after, entries, unknown, more_after, .. } => {
            // A page covers the slots after `after`, up to `more_after` if more follow, so
            // that pages join in slot order.
            let within = |s: Slot| s > *after && more_after.is_none_or(|m| s <= m);
            *after < Slot(u64::MAX)
                && more_after.is_none_or(|m| m > *after)
                && ascending(entries.iter().map(|e| e.slot))
                && ascending(unknown.iter().map(|u| u.slot))
                && entries.iter().all(|e| within(e.slot))
                && unknown.iter().all(|u| within(u.slot))
        }
        Body::CatchupReply { entries, .. } => ascending(entries.iter().map(|e| e.slot)),
        _ => true,
    }
}

/// Slots strictly ascending and above zero.
fn ascending(slots: impl Iterator<Item = Slot>) -> bool {
    let mut last = Slot::ZERO;
    for s in slots {
        if s <= last {
            return false;
        }
        last = s;
    }
    true
}
