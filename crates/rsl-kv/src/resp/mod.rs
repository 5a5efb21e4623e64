//! The Redis serialization protocol (RESP2 and RESP3): requests in, replies out.
//!
//! [`Parser`] reads client requests incrementally from a connection's buffer. A request is
//! either an array of bulk strings (`*2\r\n$3\r\nGET\r\n$1\r\nk\r\n`, what client libraries
//! send) or an inline command line (`PING\r\n`, what `redis-cli` and `redis-benchmark` may
//! send). Each call consumes at most one request from the front of the buffer and returns
//! `Ok(Some(args))`, `Ok(None)` when more bytes are needed, or a [`ProtocolError`] after which
//! the connection must be closed. Invariants: the parser never reads past a complete request,
//! never holds more than one partial request, never accepts an element over its
//! [`ParserLimits`], and never panics, whatever the input.
//!
//! [`Reply`] is the value sent back; [`Reply::encode_in`] writes it in RESP2 or RESP3
//! ([`Proto`]), and [`parse_reply`] is the inverse, for clients and tests (the `reply` module).

use bytes::{Buf, Bytes, BytesMut};

use crate::limits;

mod reply;

pub use reply::{format_double, format_human, parse_reply, Proto, Reply};

/// One client request: the command name followed by its arguments, never empty.
pub type Command = Vec<Bytes>;

/// Why a byte stream is not valid RESP2. The `Display` text follows Redis's wording; the
/// server sends it as `-ERR Protocol error: <text>` and closes the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// An array header that is not an integer or exceeds `array_len_max`, or an inline
    /// command of more than `array_len_max` arguments.
    #[error("invalid multibulk length")]
    InvalidArrayLength,
    /// A bulk header that is not an integer, is negative, or exceeds `bulk_bytes_max`.
    #[error("invalid bulk length")]
    InvalidBulkLength,
    /// An array element that is not a bulk string.
    #[error("expected '$', got '{0}'")]
    ExpectedBulk(char),
    /// A bulk string not followed by CRLF.
    #[error("expected CRLF after bulk string")]
    MissingCrlf,
    /// A header line longer than [`limits::HEADER_BYTES_MAX`].
    #[error("too big count string")]
    HeaderTooLong,
    /// An inline command longer than `inline_bytes_max`.
    #[error("too big inline request")]
    InlineTooLong,
    /// An inline command with an unclosed quote.
    #[error("unbalanced quotes in request")]
    UnbalancedQuotes,
    /// A reply whose type byte is unknown (reply parsing only).
    #[error("unknown reply type '{0}'")]
    UnknownReplyType(char),
    /// A reply whose integer is malformed (reply parsing only).
    #[error("invalid integer")]
    InvalidInteger,
    /// A reply nested deeper than [`limits::REPLY_DEPTH_MAX`] (reply parsing only).
    #[error("reply nested too deep")]
    TooDeep,
    /// A simple, error or other line reply holding a CR or LF (reply parsing only).
    #[error("CR or LF inside a line reply")]
    InvalidLine,
    /// A RESP3 null with anything between its `_` and its CRLF (reply parsing only).
    #[error("invalid null: RESP3's null is exactly '_' and CRLF")]
    InvalidNull,
}

/// The limits one parser enforces. [`ParserLimits::default`] takes them from [`limits`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParserLimits {
    /// The largest bulk string, in bytes.
    pub bulk_bytes_max: usize,
    /// The most elements in a request array.
    pub array_len_max: usize,
    /// The longest inline command line, in bytes.
    pub inline_bytes_max: usize,
}

impl Default for ParserLimits {
    fn default() -> Self {
        ParserLimits {
            bulk_bytes_max: limits::BULK_BYTES_MAX,
            array_len_max: limits::ARRAY_LEN_MAX,
            inline_bytes_max: limits::INLINE_BYTES_MAX,
        }
    }
}

/// An incremental parser of client requests. Keep one per connection.
#[derive(Debug, Default)]
pub struct Parser {
    limits: ParserLimits,
    /// The elements still expected and those parsed so far of a partial array request.
    partial: Option<(usize, Vec<Bytes>)>,
}

impl Parser {
    /// A parser enforcing `limits`.
    pub fn new(limits: ParserLimits) -> Parser {
        assert!(limits.bulk_bytes_max > 0 && limits.array_len_max > 0);
        assert!(limits.inline_bytes_max > 0);
        Parser { limits, partial: None }
    }

    /// Consumes the next complete request from the front of `buf`, if there is one.
    /// Returns `Ok(None)` when `buf` holds only part of a request; call again with more bytes.
    pub fn parse(&mut self, buf: &mut BytesMut) -> Result<Option<Command>, ProtocolError> {
        loop {
            if let Some((remaining, _)) = &self.partial {
                assert!(*remaining > 0);
                return self.parse_elements(buf);
            }
            let Some(&first) = buf.first() else { return Ok(None) };
            let started = if first == b'*' {
                self.parse_array_header(buf)?
            } else {
                match self.parse_inline(buf)? {
                    Some(args) if !args.is_empty() => return Ok(Some(args)),
                    Some(_) => true, // An empty line, which Redis ignores.
                    None => false,
                }
            };
            if !started {
                return Ok(None);
            }
        }
    }

    /// Parses `*<n>\r\n`; returns whether it consumed anything.
    fn parse_array_header(&mut self, buf: &mut BytesMut) -> Result<bool, ProtocolError> {
        let Some((n, header_len)) = parse_header(buf, ProtocolError::InvalidArrayLength)? else {
            return Ok(false);
        };
        if n > self.limits.array_len_max as i64 {
            return Err(ProtocolError::InvalidArrayLength);
        }
        buf.advance(header_len);
        if n > 0 {
            let capacity = (n as usize).min(1024);
            self.partial = Some((n as usize, Vec::with_capacity(capacity)));
        }
        Ok(true)
    }

    /// Parses as many bulk elements of the partial array as `buf` holds.
    fn parse_elements(&mut self, buf: &mut BytesMut) -> Result<Option<Command>, ProtocolError> {
        let (remaining, args) = self.partial.as_mut().expect("a partial array");
        while *remaining > 0 {
            let Some(arg) = parse_bulk(buf, self.limits.bulk_bytes_max)? else {
                return Ok(None);
            };
            args.push(arg);
            *remaining -= 1;
        }
        let (_, args) = self.partial.take().expect("a partial array");
        assert!(!args.is_empty());
        Ok(Some(args))
    }

    /// Parses one inline line; `Some(vec![])` for a blank line, `None` if incomplete.
    fn parse_inline(&mut self, buf: &mut BytesMut) -> Result<Option<Command>, ProtocolError> {
        let Some(newline) = buf.iter().position(|&b| b == b'\n') else {
            if buf.len() > self.limits.inline_bytes_max {
                return Err(ProtocolError::InlineTooLong);
            }
            return Ok(None);
        };
        if newline > self.limits.inline_bytes_max {
            return Err(ProtocolError::InlineTooLong);
        }
        let line = buf.split_to(newline + 1);
        let end = if newline > 0 && line[newline - 1] == b'\r' { newline - 1 } else { newline };
        split_inline(&line[..end], self.limits.array_len_max).map(Some)
    }
}

/// Parses a `<type><integer>\r\n` header at the front of `buf` without consuming it; returns
/// the integer and the header's length, or `None` if the line is incomplete.
pub(crate) fn parse_header(
    buf: &[u8],
    invalid: ProtocolError,
) -> Result<Option<(i64, usize)>, ProtocolError> {
    let window = &buf[..buf.len().min(limits::HEADER_BYTES_MAX)];
    let Some(cr) = window.windows(2).position(|w| w == b"\r\n") else {
        if buf.len() >= limits::HEADER_BYTES_MAX {
            return Err(ProtocolError::HeaderTooLong);
        }
        return Ok(None);
    };
    let n = parse_i64(&buf[1..cr]).ok_or(invalid)?;
    Ok(Some((n, cr + 2)))
}

/// Consumes one `$<len>\r\n<bytes>\r\n` from `buf`, or nothing if it is incomplete.
fn parse_bulk(buf: &mut BytesMut, bulk_bytes_max: usize) -> Result<Option<Bytes>, ProtocolError> {
    let Some(&first) = buf.first() else { return Ok(None) };
    if first != b'$' {
        return Err(ProtocolError::ExpectedBulk(first as char));
    }
    let Some((len, header_len)) = parse_header(buf, ProtocolError::InvalidBulkLength)? else {
        return Ok(None);
    };
    if len < 0 || len > bulk_bytes_max as i64 {
        return Err(ProtocolError::InvalidBulkLength);
    }
    let len = len as usize;
    let total = header_len + len + 2;
    if buf.len() < total {
        buf.reserve(total - buf.len());
        return Ok(None);
    }
    if &buf[header_len + len..total] != b"\r\n" {
        return Err(ProtocolError::MissingCrlf);
    }
    buf.advance(header_len);
    let arg = buf.split_to(len).freeze();
    buf.advance(2);
    assert_eq!(arg.len(), len);
    Ok(Some(arg))
}

/// Parses a decimal integer as Redis's `string2ll` does: an optional `-`, then digits with no
/// leading zero (but `0` itself), no `+`, no spaces, no `-0`, within `i64`.
pub fn parse_i64(text: &[u8]) -> Option<i64> {
    let (negative, digits) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, text),
    };
    let canonical = match digits {
        [b'0'] => !negative,
        [b'1'..=b'9', rest @ ..] => rest.iter().all(u8::is_ascii_digit),
        _ => false,
    };
    if !canonical || digits.len() > 19 {
        return None;
    }
    let magnitude: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    if negative {
        0i64.checked_sub_unsigned(magnitude)
    } else {
        i64::try_from(magnitude).ok()
    }
}

/// Splits an inline command line into arguments, with Redis's quoting rules (`sdssplitargs`):
/// double quotes with escapes (`\n`, `\r`, `\t`, `\b`, `\a`, `\xHH`), single quotes with `\'`.
fn split_inline(line: &[u8], array_len_max: usize) -> Result<Command, ProtocolError> {
    let mut args = Vec::new();
    let mut rest = line;
    loop {
        while let Some((c, tail)) = rest.split_first() {
            if !c.is_ascii_whitespace() && *c != 0x0b {
                break;
            }
            rest = tail;
        }
        if rest.is_empty() {
            return Ok(args);
        }
        if args.len() == array_len_max {
            // The same limit as for the array form of the command.
            return Err(ProtocolError::InvalidArrayLength);
        }
        let (arg, tail) = split_inline_arg(rest)?;
        args.push(Bytes::from(arg));
        rest = tail;
    }
}

/// Splits one argument from the front of `line` (which starts with a non-space).
fn split_inline_arg(mut line: &[u8]) -> Result<(Vec<u8>, &[u8]), ProtocolError> {
    let mut arg = Vec::new();
    let mut quote: Option<u8> = None;
    loop {
        let Some((&c, tail)) = line.split_first() else {
            return match quote {
                Some(_) => Err(ProtocolError::UnbalancedQuotes),
                None => Ok((arg, line)),
            };
        };
        match quote {
            None if c.is_ascii_whitespace() => return Ok((arg, line)),
            None if c == b'"' || c == b'\'' => {
                quote = Some(c);
                line = tail;
            }
            None => {
                arg.push(c);
                line = tail;
            }
            Some(q) if c == q => {
                // A closing quote must be followed by a space or the end of the line.
                if tail.first().is_some_and(|b| !b.is_ascii_whitespace()) {
                    return Err(ProtocolError::UnbalancedQuotes);
                }
                return Ok((arg, tail));
            }
            Some(q) if c == b'\\' && !tail.is_empty() => {
                line = unescape(q, tail, &mut arg);
            }
            Some(_) => {
                arg.push(c);
                line = tail;
            }
        }
    }
}

/// Decodes the escape after a backslash inside quote `q`; returns the input after it.
fn unescape<'a>(q: u8, after: &'a [u8], arg: &mut Vec<u8>) -> &'a [u8] {
    let c = after[0];
    if q == b'\'' {
        // Inside single quotes only \' is an escape; a lone backslash stays.
        if c == b'\'' {
            arg.push(b'\'');
            return &after[1..];
        }
        arg.push(b'\\');
        return after;
    }
    if c == b'x' && after.len() >= 3 {
        let hex = std::str::from_utf8(&after[1..3]).ok();
        if let Some(byte) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
            arg.push(byte);
            return &after[3..];
        }
    }
    arg.push(match c {
        b'n' => b'\n',
        b'r' => b'\r',
        b't' => b'\t',
        b'b' => 0x08,
        b'a' => 0x07,
        other => other,
    });
    &after[1..]
}

/// Appends a request in RESP2 array form to `out`, as a client library sends it.
pub fn encode_command<A: AsRef<[u8]>>(args: &[A], out: &mut BytesMut) {
    assert!(!args.is_empty(), "a command has at least its name");
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for arg in args {
        encode_bulk(arg.as_ref(), out);
    }
}

pub(crate) fn encode_bulk(data: &[u8], out: &mut BytesMut) {
    out.extend_from_slice(format!("${}\r\n", data.len()).as_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}
