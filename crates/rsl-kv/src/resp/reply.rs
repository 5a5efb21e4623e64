//! Replies: the [`Reply`] tree, its encoding in RESP2 or RESP3 ([`Proto`]), and the inverse
//! parser [`parse_reply`] for clients and tests.
//!
//! A command builds one `Reply` whatever the connection speaks; the encoder maps the RESP3-only
//! shapes onto RESP2 the way Redis 7 does: a map becomes a flat array of keys and values, a set
//! or a push an array, a double a bulk string (`%.17g`), a boolean an integer, a verbatim
//! string a bulk string, and both nulls keep their RESP2 forms (`$-1`, `*-1`) while RESP3 has one
//! null (`_`).

use bytes::{Buf, Bytes, BytesMut};

use super::{encode_bulk, parse_header, ProtocolError};
use crate::limits;

/// The protocol a connection speaks, chosen with `HELLO`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Proto {
    /// RESP2, every connection's protocol until it sends `HELLO 3`.
    #[default]
    Resp2,
    /// RESP3.
    Resp3,
}

impl Proto {
    /// The protocol's number, as HELLO answers it.
    pub fn number(self) -> i64 {
        match self {
            Proto::Resp2 => 2,
            Proto::Resp3 => 3,
        }
    }
}

/// A reply, in the richest form (RESP3); [`Reply::encode_in`] writes it for either protocol.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// `+OK`: a line without CR or LF.
    Simple(Bytes),
    /// `-ERR message`: a line without CR or LF, starting with an error code word.
    Error(Bytes),
    /// `:42`.
    Integer(i64),
    /// `$3\r\nabc`: binary-safe.
    Bulk(Bytes),
    /// The null bulk string (a missing key): `$-1` in RESP2, `_` in RESP3.
    Null,
    /// `*2\r\n...`: an array of replies.
    Array(Vec<Reply>),
    /// The null array (a timed-out blocking pop, an aborted EXEC): `*-1` in RESP2, `_` in RESP3.
    NullArray,
    /// A map (`%`): a flat array of keys and values in RESP2.
    Map(Vec<(Reply, Reply)>),
    /// A set (`~`): an array in RESP2.
    Set(Vec<Reply>),
    /// A double (`,`): a bulk string in RESP2, formatted as Redis 7.0 does (`%.17g`).
    Double(f64),
    /// A double in Redis's "human" form (`%.17Lf` without trailing zeros: GEOPOS, WITHCOORD):
    /// a bulk string in RESP2, a double (`,`) in RESP3. It reads back as a [`Reply::Double`].
    HumanDouble(f64),
    /// A boolean (`#t`): the integer 1 or 0 in RESP2.
    Boolean(bool),
    /// A push (`>`), such as a pub/sub message: an array in RESP2.
    Push(Vec<Reply>),
    /// A verbatim string (`=`) with its three-letter format (`txt`): a bulk string in RESP2.
    Verbatim(&'static str, Bytes),
}

impl Reply {
    /// `+OK`.
    pub fn ok() -> Reply {
        Reply::Simple(Bytes::from_static(b"OK"))
    }

    /// A simple string reply from static text.
    pub fn simple(text: &'static str) -> Reply {
        Reply::Simple(Bytes::from_static(text.as_bytes()))
    }

    /// An error reply. `message` starts with its code (`ERR`, `NOAUTH`, ...) and any CR or LF
    /// in it (such as from a quoted command name) is replaced by a space.
    pub fn error(message: impl AsRef<str>) -> Reply {
        let clean: String = message
            .as_ref()
            .chars()
            .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
            .collect();
        Reply::Error(Bytes::from(clean))
    }

    /// A bulk reply copying `data`.
    pub fn bulk(data: &[u8]) -> Reply {
        Reply::Bulk(Bytes::copy_from_slice(data))
    }

    /// A bulk reply of text.
    pub fn text(text: impl Into<String>) -> Reply {
        Reply::Bulk(Bytes::from(text.into()))
    }

    /// Whether this is an error reply.
    pub fn is_error(&self) -> bool {
        matches!(self, Reply::Error(_))
    }

    /// Appends this reply's RESP2 bytes to `out`.
    pub fn encode(&self, out: &mut BytesMut) {
        self.encode_in(Proto::Resp2, out);
    }

    /// Appends this reply's bytes in `proto` to `out`.
    pub fn encode_in(&self, proto: Proto, out: &mut BytesMut) {
        let resp3 = proto == Proto::Resp3;
        match self {
            Reply::Simple(line) => encode_line(b'+', line, out),
            Reply::Error(line) => encode_line(b'-', line, out),
            Reply::Integer(n) => encode_header(b':', *n, out),
            Reply::Bulk(data) => encode_bulk(data, out),
            Reply::Null if resp3 => out.extend_from_slice(b"_\r\n"),
            Reply::NullArray if resp3 => out.extend_from_slice(b"_\r\n"),
            Reply::Null => out.extend_from_slice(b"$-1\r\n"),
            Reply::NullArray => out.extend_from_slice(b"*-1\r\n"),
            Reply::Array(items) => encode_items(b'*', items, proto, out),
            Reply::Set(items) => encode_items(if resp3 { b'~' } else { b'*' }, items, proto, out),
            Reply::Push(items) => encode_items(if resp3 { b'>' } else { b'*' }, items, proto, out),
            Reply::Map(pairs) => {
                if resp3 {
                    encode_header(b'%', pairs.len() as i64, out);
                } else {
                    encode_header(b'*', 2 * pairs.len() as i64, out);
                }
                for (key, value) in pairs {
                    key.encode_in(proto, out);
                    value.encode_in(proto, out);
                }
            }
            Reply::Double(d) if resp3 => {
                out.extend_from_slice(b",");
                out.extend_from_slice(format_double(*d).as_bytes());
                out.extend_from_slice(b"\r\n");
            }
            Reply::Double(d) => encode_bulk(format_double(*d).as_bytes(), out),
            Reply::HumanDouble(d) if resp3 => {
                out.extend_from_slice(b",");
                out.extend_from_slice(format_human(*d).as_bytes());
                out.extend_from_slice(b"\r\n");
            }
            Reply::HumanDouble(d) => encode_bulk(format_human(*d).as_bytes(), out),
            Reply::Boolean(b) if resp3 => {
                out.extend_from_slice(if *b { b"#t\r\n" } else { b"#f\r\n" })
            }
            Reply::Boolean(b) => encode_header(b':', i64::from(*b), out),
            Reply::Verbatim(format, text) if resp3 => {
                assert_eq!(format.len(), 3, "a verbatim format has three letters");
                encode_header(b'=', text.len() as i64 + 4, out);
                out.extend_from_slice(format.as_bytes());
                out.extend_from_slice(b":");
                out.extend_from_slice(text);
                out.extend_from_slice(b"\r\n");
            }
            Reply::Verbatim(_, text) => encode_bulk(text, out),
        }
    }

    /// This reply's RESP2 bytes.
    pub fn to_bytes(&self) -> Bytes {
        self.to_bytes_in(Proto::Resp2)
    }

    /// This reply's bytes in `proto`.
    pub fn to_bytes_in(&self, proto: Proto) -> Bytes {
        let mut out = BytesMut::new();
        self.encode_in(proto, &mut out);
        out.freeze()
    }
}

fn encode_header(kind: u8, n: i64, out: &mut BytesMut) {
    out.extend_from_slice(&[kind]);
    out.extend_from_slice(itoa(n).as_bytes());
    out.extend_from_slice(b"\r\n");
}

fn itoa(n: i64) -> String {
    n.to_string()
}

fn encode_items(kind: u8, items: &[Reply], proto: Proto, out: &mut BytesMut) {
    encode_header(kind, items.len() as i64, out);
    for item in items {
        item.encode_in(proto, out);
    }
}

fn encode_line(kind: u8, line: &[u8], out: &mut BytesMut) {
    assert!(!line.contains(&b'\r') && !line.contains(&b'\n'), "a line reply holds no CR or LF");
    out.extend_from_slice(&[kind]);
    out.extend_from_slice(line);
    out.extend_from_slice(b"\r\n");
}

/// Formats a double as Redis 7.0's replies do: C's `%.17g`, with `inf`, `-inf` and `nan`.
pub fn format_double(d: f64) -> String {
    if d.is_nan() {
        return "nan".into();
    }
    if d.is_infinite() {
        return if d > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if d == 0.0 {
        return if d.is_sign_negative() { "-0".into() } else { "0".into() };
    }
    const PRECISION: i32 = 17;
    // Rust's `{:e}` rounds to the requested significant digits exactly as printf does.
    let scientific = format!("{:.*e}", (PRECISION - 1) as usize, d);
    let (mantissa, exponent) = scientific.split_once('e').expect("`{:e}` has an exponent");
    let exponent: i32 = exponent.parse().expect("an integer exponent");
    if !(-4..PRECISION).contains(&exponent) {
        let mantissa = strip_zeros(mantissa);
        let sign = if exponent < 0 { '-' } else { '+' };
        return format!("{mantissa}e{sign}{:02}", exponent.abs());
    }
    let decimals = (PRECISION - 1 - exponent).max(0) as usize;
    strip_zeros(&format!("{d:.decimals$}")).to_string()
}

/// Formats a double as Redis's `LD_STR_HUMAN` does (GEOPOS's coordinates): 17 decimals
/// (`%.17Lf` of the double's exact value), without trailing zeros, and `-0` as `0`.
pub fn format_human(d: f64) -> String {
    if !d.is_finite() {
        return format_double(d);
    }
    let text = strip_zeros(&format!("{d:.17}")).to_string();
    if text == "-0" {
        "0".into()
    } else {
        text
    }
}

/// Removes the trailing zeros of a decimal fraction, and its point if nothing follows it.
fn strip_zeros(text: &str) -> &str {
    if !text.contains('.') {
        return text;
    }
    text.trim_end_matches('0').trim_end_matches('.')
}

/// Consumes one complete reply (RESP2 or RESP3) from the front of `buf`, or nothing if it is
/// incomplete. For clients and tests; bulk lengths are bounded by [`limits::BULK_BYTES_MAX`].
/// RESP3's null reads as [`Reply::Null`], a blob error as an error, a big number as a bulk
/// string, and attributes are skipped.
pub fn parse_reply(buf: &mut BytesMut) -> Result<Option<Reply>, ProtocolError> {
    let mut cursor = 0;
    let Some(reply) = parse_reply_at(buf, &mut cursor, 0)? else { return Ok(None) };
    assert!(cursor <= buf.len());
    buf.advance(cursor);
    Ok(Some(reply))
}

fn parse_reply_at(
    buf: &[u8],
    cursor: &mut usize,
    depth: usize,
) -> Result<Option<Reply>, ProtocolError> {
    if depth > limits::REPLY_DEPTH_MAX {
        return Err(ProtocolError::TooDeep);
    }
    let rest = &buf[*cursor..];
    let Some(&kind) = rest.first() else { return Ok(None) };
    if matches!(kind, b'+' | b'-' | b'_' | b',' | b'#' | b'(') {
        let Some(end) = rest.windows(2).position(|w| w == b"\r\n") else { return Ok(None) };
        let line = &rest[1..end];
        if line.iter().any(|&b| b == b'\r' || b == b'\n') {
            // A line ends at its first CRLF and holds no other CR or LF.
            return Err(ProtocolError::InvalidLine);
        }
        let reply = match kind {
            b'+' => Reply::Simple(Bytes::copy_from_slice(line)),
            b'-' => Reply::Error(Bytes::copy_from_slice(line)),
            // RESP3's null is exactly `_\r\n`; anything after the `_` is not a null.
            b'_' if line.is_empty() => Reply::Null,
            b'_' => return Err(ProtocolError::InvalidNull),
            b',' => Reply::Double(parse_double(line).ok_or(ProtocolError::InvalidInteger)?),
            b'#' => match line {
                b"t" => Reply::Boolean(true),
                b"f" => Reply::Boolean(false),
                _ => return Err(ProtocolError::InvalidInteger),
            },
            _ => Reply::Bulk(Bytes::copy_from_slice(line)),
        };
        *cursor += end + 2;
        return Ok(Some(reply));
    }
    if !matches!(kind, b':' | b'$' | b'*' | b'%' | b'~' | b'>' | b'=' | b'!' | b'|') {
        return Err(ProtocolError::UnknownReplyType(kind as char));
    }
    let Some((n, header_len)) = parse_header(rest, ProtocolError::InvalidInteger)? else {
        return Ok(None);
    };
    match kind {
        b':' => {
            *cursor += header_len;
            Ok(Some(Reply::Integer(n)))
        }
        b'$' | b'=' | b'!' => {
            let Some(reply) = parse_bulk_reply(rest, n, header_len, cursor)? else {
                return Ok(None);
            };
            Ok(Some(match (kind, reply) {
                // A blob error may hold CR or LF, which an error line cannot: they become
                // spaces, as `Reply::error` makes them, so that every parsed reply encodes.
                (b'!', Reply::Bulk(text)) => Reply::Error(one_line(text)),
                (b'=', Reply::Bulk(text)) if text.len() >= 4 => {
                    Reply::Verbatim("txt", text.slice(4..))
                }
                (_, reply) => reply,
            }))
        }
        b'%' | b'|' => {
            let count = n.checked_mul(2).ok_or(ProtocolError::InvalidArrayLength)?;
            let mut at = *cursor;
            let Some(Reply::Array(flat)) =
                parse_array_reply(buf, count, header_len, &mut at, depth)?
            else {
                return Ok(None);
            };
            let mut items = flat.into_iter();
            let mut pairs = Vec::new();
            while let (Some(k), Some(v)) = (items.next(), items.next()) {
                pairs.push((k, v));
            }
            *cursor = at;
            if kind == b'|' {
                // An attribute annotates the reply that follows it: skip it.
                return parse_reply_at(buf, cursor, depth);
            }
            Ok(Some(Reply::Map(pairs)))
        }
        _ => {
            let mut at = *cursor;
            let Some(reply) = parse_array_reply(buf, n, header_len, &mut at, depth)? else {
                return Ok(None);
            };
            *cursor = at;
            Ok(Some(match (kind, reply) {
                (b'~', Reply::Array(items)) => Reply::Set(items),
                (b'>', Reply::Array(items)) => Reply::Push(items),
                (_, reply) => reply,
            }))
        }
    }
}

/// `text` with every CR and LF replaced by a space (a copy only when there is one).
fn one_line(text: Bytes) -> Bytes {
    if !text.iter().any(|&b| b == b'\r' || b == b'\n') {
        return text;
    }
    text.iter().map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b }).collect()
}

fn parse_double(line: &[u8]) -> Option<f64> {
    match line {
        b"inf" => Some(f64::INFINITY),
        b"-inf" => Some(f64::NEG_INFINITY),
        b"nan" => Some(f64::NAN),
        _ => std::str::from_utf8(line).ok()?.parse().ok(),
    }
}

fn parse_bulk_reply(
    rest: &[u8],
    n: i64,
    header_len: usize,
    cursor: &mut usize,
) -> Result<Option<Reply>, ProtocolError> {
    if n == -1 {
        *cursor += header_len;
        return Ok(Some(Reply::Null));
    }
    if n < 0 || n > limits::BULK_BYTES_MAX as i64 {
        return Err(ProtocolError::InvalidBulkLength);
    }
    let total = header_len + n as usize + 2;
    if rest.len() < total {
        return Ok(None);
    }
    if &rest[total - 2..total] != b"\r\n" {
        return Err(ProtocolError::MissingCrlf);
    }
    *cursor += total;
    Ok(Some(Reply::bulk(&rest[header_len..total - 2])))
}

fn parse_array_reply(
    buf: &[u8],
    n: i64,
    header_len: usize,
    cursor: &mut usize,
    depth: usize,
) -> Result<Option<Reply>, ProtocolError> {
    if n == -1 {
        *cursor += header_len;
        return Ok(Some(Reply::NullArray));
    }
    if n < 0 || n > limits::ARRAY_LEN_MAX as i64 {
        return Err(ProtocolError::InvalidArrayLength);
    }
    let mut at = *cursor + header_len;
    let mut items = Vec::with_capacity((n as usize).min(1024));
    for _ in 0..n {
        let Some(item) = parse_reply_at(buf, &mut at, depth + 1)? else { return Ok(None) };
        items.push(item);
    }
    *cursor = at;
    Ok(Some(Reply::Array(items)))
}
