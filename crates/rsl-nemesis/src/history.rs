//! The history of a run: every operation a client invoked, when, and what it returned; plus
//! how values are written so that a read reveals which writes took effect and in what order.
//!
//! Two kinds of keys. A **list key** (`n<generation>.<index>`) holds a sequence of 17-byte
//! elements, each the 16 hex digits of a unique token and a `;`: `SET` replaces the value with
//! one element, `APPEND` adds one, so `APPEND`'s reply (the new length in bytes) divided by 17
//! is the element count the simulator's checker expects. A **big key** (`b<index>`) holds one
//! token and padding up to a chosen size (up to the largest value rsl-kv accepts); it is only
//! `SET` and read, a register.
//!
//! Every operation is a [`Record`]: its invocation time, and, once it completes, its return
//! time and [`Outcome`]. An operation whose outcome the client cannot know (a timeout, a
//! broken connection, an error that says so) is [`Outcome::Unknown`]: it may or may not have
//! taken effect. A read's value is kept as its fingerprint (length and a hash chain over the
//! tokens, [`rsl_sim::kv::Fingerprint`]), its first token and its size in bytes, which is all
//! the checkers need. The history is written to a tab-separated file so that a run can be
//! checked again (`rsl-nemesis check`).

use std::fmt::Write as _;
use std::io::{BufRead, Write};
use std::path::Path;

use anyhow::{bail, Context};
use rsl_sim::kv::Fingerprint;

/// The bytes of one list element: 16 hex digits and a `;`.
pub const ELEMENT_BYTES: usize = 17;

/// The bytes before a big value's padding: 16 hex digits and a `:`.
pub const BIG_HEADER_BYTES: usize = 17;

/// The byte big values are padded with.
pub const PAD_BYTE: u8 = b'.';

/// What an operation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// `SET key value`.
    Set,
    /// `APPEND key value`.
    Append,
    /// `GET key`.
    Get,
}

impl Kind {
    /// The word used in the history file and the figures.
    pub fn word(self) -> &'static str {
        match self {
            Kind::Set => "set",
            Kind::Append => "append",
            Kind::Get => "get",
        }
    }

    fn parse(word: &str) -> Option<Kind> {
        [Kind::Set, Kind::Append, Kind::Get].into_iter().find(|k| k.word() == word)
    }

    /// Whether it changes the key.
    pub fn is_write(self) -> bool {
        self != Kind::Get
    }
}

/// What a key holds, from its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyClass {
    /// A sequence of tokens (`SET`, `APPEND`, `GET`).
    List,
    /// One token padded to a chosen size (`SET`, `GET`).
    Big,
}

impl KeyClass {
    /// The class of `key`.
    pub fn of(key: &str) -> KeyClass {
        if key.starts_with('b') {
            KeyClass::Big
        } else {
            KeyClass::List
        }
    }
}

/// The largest value one `SET` of `key` may carry, in bytes: rsl-kv puts a write's key and
/// value in one request of at most `REQUEST_BYTES_MAX`, with `SET_FRAMING_BYTES` of its own
/// (`rsl_kv::limits`). A value may still grow by `APPEND` up to `VALUE_BYTES_MAX`.
pub fn set_value_bytes_max(key: &str) -> usize {
    use rsl_kv::limits::{REQUEST_BYTES_MAX, SET_FRAMING_BYTES, VALUE_BYTES_MAX};
    (REQUEST_BYTES_MAX - SET_FRAMING_BYTES - key.len()).min(VALUE_BYTES_MAX)
}

/// A read's value, summarised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Value {
    /// The tokens' fingerprint (for a big key: of its one token, or empty).
    pub fingerprint: Fingerprint,
    /// The first token, if any.
    pub head: Option<u64>,
    /// The value's size in bytes.
    pub bytes: u64,
}

impl Value {
    /// The empty value (a key that does not exist).
    pub const EMPTY: Value = Value { fingerprint: Fingerprint::EMPTY, head: None, bytes: 0 };

    /// A list value.
    pub fn of_list(tokens: &[u64]) -> Value {
        Value {
            fingerprint: Fingerprint::of(tokens),
            head: tokens.first().copied(),
            bytes: (tokens.len() * ELEMENT_BYTES) as u64,
        }
    }

    /// A big value.
    pub fn of_big(token: u64, bytes: u64) -> Value {
        Value { fingerprint: Fingerprint::of(&[token]), head: Some(token), bytes }
    }
}

/// How an operation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Not known: still pending when the run ended, timed out, the connection broke, or the
    /// server said the outcome is unknown. A write may or may not have taken effect.
    Unknown(String),
    /// A `SET` acknowledged.
    Ok,
    /// An `APPEND` acknowledged, with the new length in bytes.
    Len(u64),
    /// A read's value.
    Value(Value),
    /// A refusal that, by rsl-kv's documented contract, had no effect.
    Failed(String),
    /// A read returned a value in no form any client wrote (damaged, or written by a refused
    /// write): a finding in itself.
    Corrupt(String),
}

impl Outcome {
    /// Whether the operation succeeded.
    pub fn is_ok(&self) -> bool {
        matches!(self, Outcome::Ok | Outcome::Len(_) | Outcome::Value(_))
    }
}

/// One operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The client that invoked it (tokens are unique per client).
    pub client: u32,
    /// The replica the client's connection went to.
    pub replica: u32,
    /// What it does.
    pub kind: Kind,
    /// The key.
    pub key: String,
    /// The token written (0 for a read).
    pub token: u64,
    /// The value's size in bytes (0 for a read).
    pub bytes: u64,
    /// When it was invoked, in microseconds since the run started.
    pub call_us: u64,
    /// When it returned, if it did.
    pub ret_us: Option<u64>,
    /// How it ended.
    pub outcome: Outcome,
}

/// The token of client `client`'s `seq`th write: unique over the run.
pub fn token(client: u32, seq: u64) -> u64 {
    assert!(seq < 1 << 40, "a client writes fewer than 2^40 values");
    (u64::from(client) + 1) << 40 | seq
}

/// The element a list write sends.
pub fn list_element(token: u64) -> Vec<u8> {
    format!("{token:016x};").into_bytes()
}

/// A big value of exactly `bytes` bytes (at least [`BIG_HEADER_BYTES`]) carrying `token`.
pub fn big_value(token: u64, bytes: usize) -> Vec<u8> {
    assert!(bytes >= BIG_HEADER_BYTES, "a big value holds its token");
    let mut value = Vec::with_capacity(bytes);
    value.extend_from_slice(format!("{token:016x}:").as_bytes());
    value.resize(bytes, PAD_BYTE);
    value
}

fn parse_hex(digits: &[u8]) -> Option<u64> {
    if digits.len() != 16 || !digits.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    u64::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()
}

/// The tokens of a list value, or why it is not one.
pub fn parse_list(value: &[u8]) -> Result<Vec<u64>, String> {
    if !value.len().is_multiple_of(ELEMENT_BYTES) {
        return Err(format!("{} bytes is not a whole number of elements", value.len()));
    }
    value
        .chunks(ELEMENT_BYTES)
        .enumerate()
        .map(|(i, chunk)| match (parse_hex(&chunk[..16]), chunk[16]) {
            (Some(token), b';') => Ok(token),
            _ => Err(format!("element {i} is {:?}", String::from_utf8_lossy(chunk))),
        })
        .collect()
}

/// The token and size of a big value, or why it is not one.
pub fn parse_big(value: &[u8]) -> Result<(u64, u64), String> {
    if value.len() < BIG_HEADER_BYTES || value[16] != b':' {
        return Err(format!("a {}-byte value without a token header", value.len()));
    }
    let token = parse_hex(&value[..16]).ok_or("a token that is not 16 hex digits")?;
    if let Some(at) = value[BIG_HEADER_BYTES..].iter().position(|&b| b != PAD_BYTE) {
        return Err(format!("padding byte {} is {:#04x}", at + BIG_HEADER_BYTES, value[at]));
    }
    Ok((token, value.len() as u64))
}

fn clean(text: &str) -> String {
    let text: String = text.chars().take(200).collect();
    text.replace(['\t', '\n', '\r'], " ")
}

fn outcome_text(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Unknown(why) => format!("unknown={}", clean(why)),
        Outcome::Ok => "ok".into(),
        Outcome::Len(n) => format!("len={n}"),
        Outcome::Value(v) => {
            let head = v.head.map_or("-".to_string(), |t| format!("{t:x}"));
            format!("value={}:{:x}:{head}:{}", v.fingerprint.len, v.fingerprint.hash, v.bytes)
        }
        Outcome::Failed(why) => format!("fail={}", clean(why)),
        Outcome::Corrupt(why) => format!("corrupt={}", clean(why)),
    }
}

fn parse_outcome(text: &str) -> Option<Outcome> {
    let (word, rest) = text.split_once('=').unwrap_or((text, ""));
    Some(match word {
        "unknown" => Outcome::Unknown(rest.into()),
        "ok" => Outcome::Ok,
        "len" => Outcome::Len(rest.parse().ok()?),
        "fail" => Outcome::Failed(rest.into()),
        "corrupt" => Outcome::Corrupt(rest.into()),
        "value" => {
            let mut parts = rest.split(':');
            let len = parts.next()?.parse().ok()?;
            let hash = u64::from_str_radix(parts.next()?, 16).ok()?;
            let head = match parts.next()? {
                "-" => None,
                t => Some(u64::from_str_radix(t, 16).ok()?),
            };
            let bytes = parts.next()?.parse().ok()?;
            Outcome::Value(Value { fingerprint: Fingerprint { len, hash }, head, bytes })
        }
        _ => return None,
    })
}

/// Where a token was first seen: the earliest return of a read that showed it, and its
/// position (1-based) in that read's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sighting {
    /// When that read returned (µs since the run started).
    pub ret_us: u64,
    /// The token's place in the value it was read in (1: the first element).
    pub position: u32,
}

/// Every token some read showed, with its first sighting.
pub type Sightings = std::collections::HashMap<u64, Sighting>;

/// Notes the tokens of a read's value, keeping each token's earliest sighting.
pub fn sight(sightings: &mut Sightings, tokens: &[u64], ret_us: u64) {
    for (i, &token) in tokens.iter().enumerate() {
        let seen = Sighting { ret_us, position: i as u32 + 1 };
        sightings.entry(token).and_modify(|s| *s = (*s).min_by_ret(seen)).or_insert(seen);
    }
}

impl Sighting {
    fn min_by_ret(self, other: Sighting) -> Sighting {
        if other.ret_us < self.ret_us {
            other
        } else {
            self
        }
    }
}

/// One line of the sightings file: `token ret position`.
pub fn sighting_line(token: u64, s: &Sighting) -> String {
    format!("{token:x}\t{}\t{}", s.ret_us, s.position)
}

/// Parses a line written by [`sighting_line`].
pub fn parse_sighting(line: &str) -> Option<(u64, Sighting)> {
    let mut f = line.split('\t');
    let token = u64::from_str_radix(f.next()?, 16).ok()?;
    let ret_us = f.next()?.parse().ok()?;
    let position = f.next()?.parse().ok()?;
    Some((token, Sighting { ret_us, position }))
}

/// One line of the history file.
pub fn record_line(r: &Record) -> String {
    let ret = r.ret_us.map_or("-".to_string(), |t| t.to_string());
    let mut line = String::new();
    let _ = write!(
        line,
        "{}\t{}\t{}\t{}\t{:x}\t{}\t{}\t{ret}\t{}",
        r.client,
        r.replica,
        r.kind.word(),
        r.key,
        r.token,
        r.bytes,
        r.call_us,
        outcome_text(&r.outcome)
    );
    line
}

/// Parses a line written by [`record_line`].
pub fn parse_record(line: &str) -> Option<Record> {
    let f: Vec<&str> = line.split('\t').collect();
    let [client, replica, kind, key, token, bytes, call, ret, outcome] = f[..] else {
        return None;
    };
    Some(Record {
        client: client.parse().ok()?,
        replica: replica.parse().ok()?,
        kind: Kind::parse(kind)?,
        key: key.to_string(),
        token: u64::from_str_radix(token, 16).ok()?,
        bytes: bytes.parse().ok()?,
        call_us: call.parse().ok()?,
        ret_us: if ret == "-" { None } else { Some(ret.parse().ok()?) },
        outcome: parse_outcome(outcome)?,
    })
}

/// What one replica held for one key at the end, read from its own state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    /// A list key's tokens.
    List(Vec<u64>),
    /// A big key's token and size (`None`: no value).
    Big(Option<(u64, u64)>),
    /// The value could not be parsed: a value no client wrote.
    Malformed(String),
    /// The replica did not answer.
    Unread(String),
}

/// One line of the final-values file: `replica key observed`.
pub fn observed_line(replica: u32, key: &str, observed: &Observed) -> String {
    let text = match observed {
        Observed::List(tokens) => {
            let tokens: Vec<String> = tokens.iter().map(|t| format!("{t:x}")).collect();
            format!("list={}", tokens.join(","))
        }
        Observed::Big(None) => "big=-".into(),
        Observed::Big(Some((token, bytes))) => format!("big={token:x}:{bytes}"),
        Observed::Malformed(why) => format!("malformed={}", clean(why)),
        Observed::Unread(why) => format!("unread={}", clean(why)),
    };
    format!("{replica}\t{key}\t{text}")
}

/// Parses a line written by [`observed_line`].
pub fn parse_observed(line: &str) -> Option<(u32, String, Observed)> {
    let mut f = line.splitn(3, '\t');
    let replica = f.next()?.parse().ok()?;
    let key = f.next()?.to_string();
    let (word, rest) = f.next()?.split_once('=')?;
    let observed = match word {
        "list" if rest.is_empty() => Observed::List(Vec::new()),
        "list" => Observed::List(
            rest.split(',').map(|t| u64::from_str_radix(t, 16).ok()).collect::<Option<_>>()?,
        ),
        "big" if rest == "-" => Observed::Big(None),
        "big" => {
            let (token, bytes) = rest.split_once(':')?;
            Observed::Big(Some((u64::from_str_radix(token, 16).ok()?, bytes.parse().ok()?)))
        }
        "malformed" => Observed::Malformed(rest.into()),
        "unread" => Observed::Unread(rest.into()),
        _ => return None,
    };
    Some((replica, key, observed))
}

/// Writes `lines` to `path`, one per line.
pub fn write_lines(path: &Path, lines: impl Iterator<Item = String>) -> anyhow::Result<()> {
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut out = std::io::BufWriter::new(file);
    for line in lines {
        writeln!(out, "{line}")?;
    }
    out.flush()?;
    Ok(())
}

/// Reads the lines of `path` through `parse`; a line that does not parse is an error.
pub fn read_lines<T>(path: &Path, parse: impl Fn(&str) -> Option<T>) -> anyhow::Result<Vec<T>> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut out = Vec::new();
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line?;
        match parse(&line) {
            Some(item) => out.push(item),
            None => bail!("{}:{}: not a history line: {line:?}", path.display(), n + 1),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_values_round_trip_and_garbage_is_refused() {
        let tokens = [token(0, 1), token(7, 99), u64::MAX];
        let value: Vec<u8> = tokens.iter().flat_map(|&t| list_element(t)).collect();
        assert_eq!(value.len(), 3 * ELEMENT_BYTES);
        assert_eq!(parse_list(&value), Ok(tokens.to_vec()));
        assert_eq!(parse_list(b""), Ok(vec![]));
        assert!(parse_list(&value[..20]).is_err());
        let mut bad = value.clone();
        bad[16] = b',';
        assert!(parse_list(&bad).is_err());
        bad = value;
        bad[3] = b'g';
        assert!(parse_list(&bad).is_err());
    }

    #[test]
    fn big_values_round_trip_and_damage_is_refused() {
        let value = big_value(token(2, 5), 1000);
        assert_eq!(value.len(), 1000);
        assert_eq!(parse_big(&value), Ok((token(2, 5), 1000)));
        assert_eq!(parse_big(&big_value(9, BIG_HEADER_BYTES)), Ok((9, 17)));
        let mut bad = value.clone();
        bad[500] = 0;
        assert!(parse_big(&bad).is_err());
        assert!(parse_big(&value[..10]).is_err());
        assert!(parse_big(&list_element(4)).is_err(), "a list element is not a big value");
    }

    #[test]
    fn a_token_keeps_its_earliest_sighting() {
        let mut s = Sightings::new();
        sight(&mut s, &[7, 8, 9], 500);
        sight(&mut s, &[8, 9], 300);
        sight(&mut s, &[9], 900);
        assert_eq!(s[&7], Sighting { ret_us: 500, position: 1 });
        assert_eq!(s[&8], Sighting { ret_us: 300, position: 1 });
        assert_eq!(s[&9], Sighting { ret_us: 300, position: 2 });
        let line = sighting_line(9, &s[&9]);
        assert_eq!(parse_sighting(&line), Some((9, s[&9])));
    }

    #[test]
    fn records_and_observations_round_trip_through_their_lines() {
        let value = Value::of_list(&[5, 6, 7]);
        let outcomes = [
            Outcome::Ok,
            Outcome::Len(34),
            Outcome::Value(value),
            Outcome::Value(Value::EMPTY),
            Outcome::Value(Value::of_big(3, 1 << 20)),
            Outcome::Failed("TRYAGAIN not primary".into()),
            Outcome::Unknown("timed out".into()),
            Outcome::Corrupt("element 2 is \"x\"".into()),
        ];
        for (i, outcome) in outcomes.into_iter().enumerate() {
            let record = Record {
                client: 3,
                replica: 2,
                kind: Kind::Append,
                key: "n4.1".into(),
                token: token(3, i as u64),
                bytes: 17,
                call_us: 100,
                ret_us: (i % 2 == 0).then_some(200),
                outcome,
            };
            assert_eq!(parse_record(&record_line(&record)), Some(record));
        }
        let observed = [
            Observed::List(vec![]),
            Observed::List(vec![1, 0xabc]),
            Observed::Big(None),
            Observed::Big(Some((7, 1 << 26))),
            Observed::Malformed("bad\tbyte".into()),
            Observed::Unread("timed out".into()),
        ];
        for o in observed {
            let (replica, key, back) = parse_observed(&observed_line(2, "b1", &o)).unwrap();
            assert_eq!((replica, key.as_str()), (2, "b1"));
            match (&o, back) {
                (Observed::Malformed(_), Observed::Malformed(text)) => assert_eq!(text, "bad byte"),
                (_, back) => assert_eq!(back, o),
            }
        }
    }
}
