//! The binary form of the requests the server hands to the engine and the state machine runs.
//!
//! A request carries the client's command itself, as its arguments (the way Redis propagates
//! commands to its replicas): the machine parses and executes it, so every replica parses the
//! same bytes the same way. A write ([`WriteOp`]) is stamped with the proposing server's
//! wall-clock milliseconds and replicated; a read ([`ReadOp`]) carries the stamp too, so that
//! it never returns a key whose deadline has passed on the reading server's clock. Every
//! command request also names the protocol its reply is encoded in ([`Proto`]).
//!
//! | field | size | meaning |
//! | --- | --- | --- |
//! | version | u8 | [`FORMAT_VERSION`] |
//! | kind | u8 | `KIND_*`: tick, command, transaction (writes); read |
//! | stamp_ms | u64 LE | the proposer's clock |
//! | proto | u8 | 2 or 3 (not for a tick) |
//! | body | ... | a command: its argument list; a transaction: the WATCH point (u64 LE), the watched keys (a list, possibly empty), the command count (u32 LE), each command's argument list |
//!
//! A list is a u32 LE count and that many items, each a u32 LE length and its bytes.
//!
//! Version 1 requests (typed operations, written before this format) are not decoded here:
//! the machine recognizes their version byte and runs them as that version did
//! ([`crate::request_v1`]), so that a replica upgraded in place replays its own log.
//!
//! Invariants: `decode(encode(r)) == r` for every request within the limits, and
//! [`Request::decode`] rejects every malformed input (truncated, trailing bytes, unknown kind,
//! oversized lengths, empty commands) with a [`DecodeError`], never panicking and never
//! allocating more than the input could describe.

use bytes::{BufMut, Bytes, BytesMut};

use crate::limits;
use crate::resp::Proto;

/// The version byte that starts every request.
pub const FORMAT_VERSION: u8 = 2;

const KIND_TICK: u8 = 0x01;
const KIND_COMMAND: u8 = 0x02;
const KIND_EXEC: u8 = 0x03;
const KIND_READ: u8 = 0x41;

/// One command: its name and arguments, never empty.
pub type Args = Vec<Bytes>;

/// The keys a transaction watches, and the point (the machine's modification count) at which
/// they were watched: EXEC aborts if any of them changed after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watch {
    /// The machine's modification count when the keys were watched.
    pub since: u64,
    /// The watched keys.
    pub keys: Vec<Bytes>,
}

/// A replicated request, executed in slot order on every replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOp {
    /// Changes nothing but advances the machine's clock to the request's stamp, so that keys
    /// expire on replicas that receive no other writes. Answers `+OK`.
    Tick,
    /// One command.
    Command {
        /// The protocol of the reply.
        proto: Proto,
        /// The command and its arguments.
        args: Args,
    },
    /// `MULTI ... EXEC`: the queued commands, executed together or (when a watched key
    /// changed) not at all.
    Exec {
        /// The protocol of the reply.
        proto: Proto,
        /// The watched keys, if any.
        watch: Option<Watch>,
        /// The queued commands, in order.
        commands: Vec<Args>,
    },
}

/// A read-only command, served from one replica's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadOp {
    /// The reading server's clock: keys whose deadline is before it are gone.
    pub stamp_ms: u64,
    /// The protocol of the reply.
    pub proto: Proto,
    /// The command and its arguments.
    pub args: Args,
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
    /// The kind byte is unknown.
    #[error("unknown request kind {0:#04x}")]
    UnknownKind(u8),
    /// A tag byte (the protocol) has no meaning.
    #[error("invalid tag {0:#04x}")]
    InvalidTag(u8),
    /// An argument or list is longer than its limit.
    #[error("field length {0} exceeds its limit")]
    TooLong(u64),
    /// A command without even a name.
    #[error("empty command")]
    EmptyCommand,
    /// A field holds a value with another encoding (a WATCH point without watched keys), so
    /// that every request has exactly one encoding.
    #[error("a non-canonical field")]
    NonCanonical,
}

impl Request {
    /// A write of one command.
    pub fn command(stamp_ms: u64, proto: Proto, args: Args) -> Request {
        Request::Write { stamp_ms, op: WriteOp::Command { proto, args } }
    }

    /// A read of one command.
    pub fn read(stamp_ms: u64, proto: Proto, args: Args) -> Request {
        Request::Read(ReadOp { stamp_ms, proto, args })
    }

    /// Whether this request changes state (and so must be replicated).
    pub fn is_write(&self) -> bool {
        matches!(self, Request::Write { .. })
    }

    /// The request's binary form. Panics if an argument or a list exceeds its limit (the
    /// parser's limits keep client input within them).
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(64);
        out.put_u8(FORMAT_VERSION);
        match self {
            Request::Write { stamp_ms, op: WriteOp::Tick } => {
                out.put_u8(KIND_TICK);
                out.put_u64_le(*stamp_ms);
            }
            Request::Write { stamp_ms, op: WriteOp::Command { proto, args } } => {
                out.put_u8(KIND_COMMAND);
                out.put_u64_le(*stamp_ms);
                put_proto(*proto, &mut out);
                put_args(args, &mut out);
            }
            Request::Write { stamp_ms, op: WriteOp::Exec { proto, watch, commands } } => {
                out.put_u8(KIND_EXEC);
                out.put_u64_le(*stamp_ms);
                put_proto(*proto, &mut out);
                out.put_u64_le(watch.as_ref().map_or(0, |w| w.since));
                put_list(watch.as_ref().map_or(&[][..], |w| &w.keys), &mut out);
                put_count(commands.len(), &mut out);
                for args in commands {
                    put_args(args, &mut out);
                }
            }
            Request::Read(ReadOp { stamp_ms, proto, args }) => {
                out.put_u8(KIND_READ);
                out.put_u64_le(*stamp_ms);
                put_proto(*proto, &mut out);
                put_args(args, &mut out);
            }
        }
        out.freeze()
    }

    /// Parses a request's binary form.
    pub fn decode(input: &[u8]) -> Result<Request, DecodeError> {
        let mut reader = Reader { rest: input };
        let version = reader.u8()?;
        if version != FORMAT_VERSION {
            return Err(DecodeError::Version(version));
        }
        let kind = reader.u8()?;
        let stamp_ms = reader.u64()?;
        let request = match kind {
            KIND_TICK => Request::Write { stamp_ms, op: WriteOp::Tick },
            KIND_COMMAND => {
                let proto = reader.proto()?;
                Request::Write { stamp_ms, op: WriteOp::Command { proto, args: reader.args()? } }
            }
            KIND_EXEC => {
                let proto = reader.proto()?;
                let since = reader.u64()?;
                let keys = reader.list()?;
                if keys.is_empty() && since != 0 {
                    return Err(DecodeError::NonCanonical);
                }
                let watch = (!keys.is_empty()).then_some(Watch { since, keys });
                let count = reader.count(4)?;
                let commands = (0..count).map(|_| reader.args()).collect::<Result<_, _>>()?;
                Request::Write { stamp_ms, op: WriteOp::Exec { proto, watch, commands } }
            }
            KIND_READ => {
                let proto = reader.proto()?;
                Request::Read(ReadOp { stamp_ms, proto, args: reader.args()? })
            }
            other => return Err(DecodeError::UnknownKind(other)),
        };
        if !reader.rest.is_empty() {
            return Err(DecodeError::TrailingBytes(reader.rest.len()));
        }
        Ok(request)
    }
}

fn put_proto(proto: Proto, out: &mut BytesMut) {
    out.put_u8(proto.number() as u8);
}

fn put_count(count: usize, out: &mut BytesMut) {
    assert!(count <= limits::ARRAY_LEN_MAX, "a list of {count} items");
    out.put_u32_le(count as u32);
}

fn put_list(items: &[Bytes], out: &mut BytesMut) {
    put_count(items.len(), out);
    for item in items {
        assert!(item.len() <= limits::BULK_BYTES_MAX, "an argument of {} bytes", item.len());
        out.put_u32_le(item.len() as u32);
        out.put_slice(item);
    }
}

fn put_args(args: &[Bytes], out: &mut BytesMut) {
    assert!(!args.is_empty(), "a command has at least its name");
    put_list(args, out);
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

    fn proto(&mut self) -> Result<Proto, DecodeError> {
        match self.u8()? {
            2 => Ok(Proto::Resp2),
            3 => Ok(Proto::Resp3),
            other => Err(DecodeError::InvalidTag(other)),
        }
    }

    /// A list count, checked against the limit and against the bytes left, where each item
    /// takes at least `item_bytes_min`, so a corrupt count cannot cause a huge allocation.
    fn count(&mut self, item_bytes_min: usize) -> Result<usize, DecodeError> {
        let count = self.u32()? as usize;
        if count > limits::ARRAY_LEN_MAX {
            return Err(DecodeError::TooLong(count as u64));
        }
        if count.saturating_mul(item_bytes_min) > self.rest.len() {
            return Err(DecodeError::Truncated);
        }
        Ok(count)
    }

    fn list(&mut self) -> Result<Vec<Bytes>, DecodeError> {
        let count = self.count(4)?;
        let mut items = Vec::with_capacity(count);
        for _ in 0..count {
            let len = self.u32()? as usize;
            if len > limits::BULK_BYTES_MAX {
                return Err(DecodeError::TooLong(len as u64));
            }
            items.push(Bytes::copy_from_slice(self.take(len)?));
        }
        Ok(items)
    }

    fn args(&mut self) -> Result<Args, DecodeError> {
        let args = self.list()?;
        if args.is_empty() {
            return Err(DecodeError::EmptyCommand);
        }
        Ok(args)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `limits::SET_FRAMING_BYTES` is what the encoder adds to a SET's key and value, so the
    /// largest value the limits promise is exactly the largest one a request carries.
    #[test]
    fn set_framing_is_what_the_encoder_adds() {
        for (key, value) in [(&b"k"[..], &b""[..]), (b"some-key", b"a value of some length")] {
            let args = vec![
                Bytes::from_static(b"SET"),
                Bytes::copy_from_slice(key),
                value.to_vec().into(),
            ];
            let request = Request::command(u64::MAX, Proto::Resp3, args);
            let framing = request.encode().len() - key.len() - value.len();
            assert_eq!(framing, limits::SET_FRAMING_BYTES);
        }
    }
}
