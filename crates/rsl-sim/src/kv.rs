//! The simulated application: a small key-value state machine whose histories are checkable.
//!
//! Keys are small integers; a value is the list of tokens appended to the key (a `put`
//! replaces the list with one token). Clients draw every token uniquely, so a read reveals
//! exactly which writes took effect and in what order. For the linearizability checker a value
//! is summarised by its [`Fingerprint`]: its length and a hash chain over its tokens.

use std::collections::BTreeMap;

use bytes::Bytes;

/// An operation on one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// Replace the key's value with `[token]`. Response: empty.
    Put { key: u8, token: u64 },
    /// Append `token` to the key's value. Response: the new length.
    Append { key: u8, token: u64 },
    /// Read the key's value (as a read, or through the log). Response: the value.
    Get { key: u8 },
}

impl Op {
    pub fn key(self) -> u8 {
        match self {
            Op::Put { key, .. } | Op::Append { key, .. } | Op::Get { key } => key,
        }
    }

    pub fn is_write(self) -> bool {
        !matches!(self, Op::Get { .. })
    }

    pub fn encode(self) -> Bytes {
        let (tag, key, token) = match self {
            Op::Put { key, token } => (b'P', key, token),
            Op::Append { key, token } => (b'A', key, token),
            Op::Get { key } => (b'G', key, 0),
        };
        let mut out = Vec::with_capacity(10);
        out.push(tag);
        out.push(key);
        out.extend_from_slice(&token.to_le_bytes());
        Bytes::from(out)
    }

    /// The operation padded with zeros to `size` bytes (at least its own 10), so that the
    /// workload can send requests of any size up to and past the limits.
    pub fn encode_sized(self, size: usize) -> Bytes {
        let mut out = self.encode().to_vec();
        out.resize(size.max(out.len()), 0);
        Bytes::from(out)
    }

    /// Decodes what [`Op::encode`] or [`Op::encode_sized`] wrote (padding is ignored).
    pub fn decode(bytes: &[u8]) -> Option<Op> {
        if bytes.len() < 10 {
            return None;
        }
        let key = bytes[1];
        let token = u64::from_le_bytes(bytes[2..10].try_into().ok()?);
        match bytes[0] {
            b'P' => Some(Op::Put { key, token }),
            b'A' => Some(Op::Append { key, token }),
            b'G' => Some(Op::Get { key }),
            _ => None,
        }
    }
}

/// A value summarised: its length and a hash chain over its tokens (collisions are ignored:
/// 64-bit, over a few thousand values per run).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Fingerprint {
    pub len: u32,
    pub hash: u64,
}

impl Fingerprint {
    pub const EMPTY: Fingerprint = Fingerprint { len: 0, hash: 0 };

    pub fn push(self, token: u64) -> Fingerprint {
        let mut z = self.hash ^ token.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Fingerprint { len: self.len + 1, hash: z ^ (z >> 31) ^ u64::from(self.len + 1) }
    }

    pub fn of(tokens: &[u64]) -> Fingerprint {
        tokens.iter().fold(Fingerprint::EMPTY, |f, t| f.push(*t))
    }
}

/// What an operation returned, as the checker sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Output {
    /// A put's acknowledgement.
    Ok,
    /// An append's new length.
    Len(u32),
    /// A read's value.
    Value(Fingerprint),
}

/// The key-value state machine.
#[derive(Debug, Clone, Default)]
pub struct Kv {
    data: BTreeMap<u8, Vec<u64>>,
}

impl Kv {
    pub fn new() -> Kv {
        Kv::default()
    }

    /// Applies an encoded operation and returns the encoded response. An undecodable request
    /// is answered with an empty response and changes nothing (it never panics).
    pub fn execute(&mut self, payload: &[u8]) -> Bytes {
        match Op::decode(payload) {
            Some(Op::Put { key, token }) => {
                self.data.insert(key, vec![token]);
                Bytes::new()
            }
            Some(Op::Append { key, token }) => {
                let value = self.data.entry(key).or_default();
                value.push(token);
                Bytes::copy_from_slice(&(value.len() as u32).to_le_bytes())
            }
            Some(Op::Get { key }) => self.read(key),
            None => Bytes::new(),
        }
    }

    /// Reads one key (encoded as a list of little-endian tokens).
    pub fn read(&self, key: u8) -> Bytes {
        let value = self.data.get(&key).map(Vec::as_slice).unwrap_or(&[]);
        let mut out = Vec::with_capacity(value.len() * 8);
        for token in value {
            out.extend_from_slice(&token.to_le_bytes());
        }
        Bytes::from(out)
    }

    pub fn value(&self, key: u8) -> &[u64] {
        self.data.get(&key).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The whole state as bytes (a checkpoint): per key, the key, the token count (u32 LE)
    /// and the tokens (u64 LE).
    pub fn snapshot(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (key, tokens) in &self.data {
            out.push(*key);
            out.extend_from_slice(&(tokens.len() as u32).to_le_bytes());
            for token in tokens {
                out.extend_from_slice(&token.to_le_bytes());
            }
        }
        out
    }

    /// The state a [`Kv::snapshot`] holds, or `None` if the bytes are not one.
    pub fn restore(bytes: &[u8]) -> Option<Kv> {
        let mut data = BTreeMap::new();
        let mut rest = bytes;
        while let Some((&key, tail)) = rest.split_first() {
            let count = u32::from_le_bytes(tail.get(..4)?.try_into().ok()?) as usize;
            let body = tail.get(4..4 + count.checked_mul(8)?)?;
            let tokens = body.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().unwrap()));
            if data.insert(key, tokens.collect()).is_some() {
                return None;
            }
            rest = &tail[4 + count * 8..];
        }
        Some(Kv { data })
    }

    /// A digest of the whole state (of the snapshot).
    pub fn digest(&self) -> u64 {
        crate::digest::Digest::of(&self.snapshot()[..])
    }
}

/// Decodes a response to `op` into what the checker compares.
pub fn decode_output(op: Op, response: &[u8]) -> Option<Output> {
    match op {
        Op::Put { .. } => response.is_empty().then_some(Output::Ok),
        Op::Append { .. } => Some(Output::Len(u32::from_le_bytes(response.try_into().ok()?))),
        Op::Get { .. } => Some(Output::Value(Fingerprint::of(&decode_value(response)?))),
    }
}

/// Decodes a read's response into the tokens of the value, or `None` if it is not one.
pub fn decode_value(response: &[u8]) -> Option<Vec<u64>> {
    let chunks = response.chunks_exact(8);
    if !chunks.remainder().is_empty() {
        return None;
    }
    Some(chunks.map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes"))).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ops_round_trip_and_garbage_is_rejected() {
        for op in [
            Op::Put { key: 3, token: 99 },
            Op::Append { key: 0, token: u64::MAX },
            Op::Get { key: 7 },
        ] {
            assert_eq!(Op::decode(&op.encode()), Some(op));
        }
        assert_eq!(Op::decode(b""), None);
        let op = Op::Append { key: 2, token: 7 };
        assert_eq!(Op::decode(&op.encode_sized(1000)), Some(op));
        assert_eq!(op.encode_sized(1000).len(), 1000);
        assert_eq!(Op::decode(b"X123456789"), None);
    }

    #[test]
    fn kv_semantics() {
        let mut kv = Kv::new();
        let out = kv.execute(&Op::Append { key: 1, token: 5 }.encode());
        assert_eq!(decode_output(Op::Append { key: 1, token: 5 }, &out), Some(Output::Len(1)));
        kv.execute(&Op::Append { key: 1, token: 6 }.encode());
        assert_eq!(kv.value(1), &[5, 6]);
        let read = kv.read(1);
        assert_eq!(
            decode_output(Op::Get { key: 1 }, &read),
            Some(Output::Value(Fingerprint::of(&[5, 6])))
        );
        kv.execute(&Op::Put { key: 1, token: 9 }.encode());
        assert_eq!(kv.value(1), &[9]);
        assert_eq!(kv.value(2), &[] as &[u64]);
        assert!(kv.execute(b"junk").is_empty());
    }

    #[test]
    fn snapshots_restore_the_state_and_garbage_is_rejected() {
        let mut kv = Kv::new();
        kv.execute(&Op::Append { key: 1, token: 5 }.encode());
        kv.execute(&Op::Append { key: 1, token: 6 }.encode());
        kv.execute(&Op::Put { key: 3, token: 9 }.encode());
        let back = Kv::restore(&kv.snapshot()).unwrap();
        assert_eq!((back.value(1), back.value(3)), (&[5, 6][..], &[9][..]));
        assert_eq!(back.digest(), kv.digest());
        assert_ne!(Kv::new().digest(), kv.digest());
        assert_eq!(Kv::restore(&kv.snapshot()[..7]).map(|k| k.digest()), None);
        assert_eq!(Kv::restore(&[]).map(|k| k.digest()), Some(Kv::new().digest()));
    }

    #[test]
    fn fingerprints_distinguish_order_and_content() {
        assert_ne!(Fingerprint::of(&[1, 2]), Fingerprint::of(&[2, 1]));
        assert_ne!(Fingerprint::of(&[1]), Fingerprint::of(&[1, 1]));
        assert_eq!(Fingerprint::of(&[]), Fingerprint::EMPTY);
        assert_eq!(Fingerprint::EMPTY.push(4).push(5), Fingerprint::of(&[4, 5]));
    }
}
