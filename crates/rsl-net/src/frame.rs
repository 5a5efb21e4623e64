//! The wire format: length-prefixed, checksummed frames, and the hello payload.
//!
//! A frame is, little-endian:
//!
//! | bytes | field | meaning |
//! | --- | --- | --- |
//! | 4 | `length` | payload bytes, at most [`FRAME_PAYLOAD_BYTES_MAX`] |
//! | 4 | `crc` | crc32c of the kind byte followed by the payload |
//! | 1 | `kind` | [`FrameKind`]: hello, data or ping |
//! | `length` | payload | opaque bytes (data) or a [`Hello`] |
//!
//! Invariants: [`decode_frame`] never panics on any input, never returns a frame whose checksum
//! does not match, and never buffers more than one header before rejecting an oversized length.
//! It either consumes exactly one whole frame from the buffer (`Ok(Some)`), consumes nothing
//! (`Ok(None)`: more bytes needed), or reports an error after which the connection is closed.
//! Every encode is checked by decoding in debug builds, pairing the assertions on both sides.

use std::sync::OnceLock;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use thiserror::Error;

use crate::limits::{
    CLUSTER_NAME_BYTES_MAX, FRAME_COPY_BYTES_MAX, FRAME_HEADER_BYTES, FRAME_PAYLOAD_BYTES_MAX,
    HELLO_PAYLOAD_BYTES_MAX,
};

/// What a frame carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum FrameKind {
    /// The first frame on a connection in each direction: cluster name and replica id.
    Hello = 1,
    /// An opaque application payload.
    Data = 2,
    /// A keepalive with an empty payload, sent when a connection has been idle for the ping
    /// interval, so that a silent peer can be told from a dead one.
    Ping = 3,
}

impl FrameKind {
    fn from_byte(byte: u8) -> Option<FrameKind> {
        match byte {
            1 => Some(FrameKind::Hello),
            2 => Some(FrameKind::Data),
            3 => Some(FrameKind::Ping),
            _ => None,
        }
    }
}

/// One decoded frame. The payload shares the read buffer's memory (no copy).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// What the payload is.
    pub kind: FrameKind,
    /// The payload, checksum verified.
    pub payload: Bytes,
}

/// Why a byte stream is not a valid sequence of frames. Each closes the connection.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum FrameError {
    /// The header announces a payload above [`FRAME_PAYLOAD_BYTES_MAX`].
    #[error("frame payload of {length} bytes exceeds the maximum of {FRAME_PAYLOAD_BYTES_MAX}")]
    Oversized {
        /// The announced payload length.
        length: u64,
    },
    /// The checksum over kind and payload does not match the header.
    #[error("frame checksum mismatch: header says {expected:#010x}, payload gives {actual:#010x}")]
    Checksum {
        /// The crc32c in the header.
        expected: u32,
        /// The crc32c computed over the received kind and payload.
        actual: u32,
    },
    /// The kind byte names no known frame kind (the checksum matched).
    #[error("unknown frame kind {0}")]
    UnknownKind(u8),
    /// The stream ended in the middle of a frame.
    #[error("stream ended inside a frame with {buffered} bytes buffered")]
    Truncated {
        /// Bytes of the partial frame that had arrived.
        buffered: usize,
    },
}

/// Appends one frame to `out`.
///
/// Panics if the payload exceeds [`FRAME_PAYLOAD_BYTES_MAX`]: callers check sizes at the API
/// boundary ([`crate::SendError::PayloadTooLarge`]), so a larger payload here is a programmer
/// error.
pub fn encode_frame(kind: FrameKind, payload: &[u8], out: &mut BytesMut) {
    assert!(payload.len() <= FRAME_PAYLOAD_BYTES_MAX, "payload of {} bytes", payload.len());
    let start = out.len();
    out.reserve(FRAME_HEADER_BYTES + payload.len());
    out.put_u32_le(payload.len() as u32);
    out.put_u32_le(frame_crc(kind as u8, payload));
    out.put_u8(kind as u8);
    out.put_slice(payload);
    assert_eq!(out.len() - start, FRAME_HEADER_BYTES + payload.len());
    debug_assert!({
        let mut check = BytesMut::from(&out[start..]);
        let frame = decode_frame(&mut check).expect("own frame decodes").expect("own frame whole");
        frame.kind == kind && frame.payload[..] == payload[..] && check.is_empty()
    });
}

/// A payload in parts, built once and sent to several peers by reference.
#[derive(Debug)]
pub struct SharedPayload {
    parts: Vec<Bytes>,
    len: usize,
    crc: OnceLock<u32>,
    contiguous: OnceLock<Bytes>,
}

impl SharedPayload {
    /// The payload that is `parts`, concatenated.
    pub fn new(parts: Vec<Bytes>) -> SharedPayload {
        let len = parts.iter().map(Bytes::len).sum();
        SharedPayload { parts, len, crc: OnceLock::new(), contiguous: OnceLock::new() }
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when it has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Its parts.
    pub fn parts(&self) -> &[Bytes] {
        &self.parts
    }

    /// The crc32c of its bytes, computed on the first call and kept: a frame's checksum is
    /// combined from it, so a payload sent to several peers is checksummed once.
    pub fn crc32c(&self) -> u32 {
        *self.crc.get_or_init(|| self.parts.iter().fold(0, |crc, p| crc32c::crc32c_append(crc, p)))
    }

    /// The payload in one buffer, made on the first call and kept: its one part as it is, or
    /// its parts copied together once, however many receivers ask (an in-process transport,
    /// whose receivers take the payload as it is).
    pub fn contiguous(&self) -> Bytes {
        self.contiguous
            .get_or_init(|| match self.parts.as_slice() {
                [one] => one.clone(),
                parts => Bytes::from(parts.concat()),
            })
            .clone()
    }

    /// `head` followed by the payload, in one buffer (a copy: for a transport that cannot
    /// send parts).
    pub fn concat_after(&self, head: &[u8]) -> Bytes {
        let mut out = BytesMut::with_capacity(head.len() + self.len);
        out.extend_from_slice(head);
        self.parts.iter().for_each(|p| out.extend_from_slice(p));
        out.freeze()
    }
}

/// Appends the header of one frame whose payload is `head` followed by `tail`, then `head`;
/// the caller sends `tail`'s parts right after (the frame is then byte for byte the one
/// [`encode_frame`] writes for the concatenated payload). The checksum is combined from
/// `head`'s and `tail`'s own (computed once per shared payload), never recomputed over the
/// tail. Panics like [`encode_frame`] on an oversized payload.
pub fn encode_frame_head(kind: FrameKind, head: &[u8], tail: &SharedPayload, out: &mut BytesMut) {
    let length = head.len() + tail.len();
    assert!(length <= FRAME_PAYLOAD_BYTES_MAX, "payload of {length} bytes");
    let crc = crc32c::crc32c_append(crc32c::crc32c(&[kind as u8]), head);
    let crc = crate::crc::combine(crc, tail.crc32c(), tail.len());
    out.reserve(FRAME_HEADER_BYTES + head.len());
    out.put_u32_le(length as u32);
    out.put_u32_le(crc);
    out.put_u8(kind as u8);
    out.put_slice(head);
}

/// Returns the encoded bytes of one frame.
pub fn frame_bytes(kind: FrameKind, payload: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(FRAME_HEADER_BYTES + payload.len());
    encode_frame(kind, payload, &mut out);
    out.freeze()
}

/// Decodes the first frame in `buf`.
///
/// Returns `Ok(Some(frame))` and removes the frame's bytes from `buf`; `Ok(None)` when `buf`
/// holds less than one whole frame (and leaves `buf` untouched); or an error, after which the
/// stream is unusable.
pub fn decode_frame(buf: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
    if buf.len() < FRAME_HEADER_BYTES {
        return Ok(None);
    }
    let length = u32::from_le_bytes(buf[0..4].try_into().expect("4 bytes")) as usize;
    if length > FRAME_PAYLOAD_BYTES_MAX {
        return Err(FrameError::Oversized { length: length as u64 });
    }
    let frame_bytes = FRAME_HEADER_BYTES + length;
    if buf.len() < frame_bytes {
        buf.reserve(frame_bytes - buf.len());
        return Ok(None);
    }
    let expected = u32::from_le_bytes(buf[4..8].try_into().expect("4 bytes"));
    let kind_byte = buf[8];
    let actual = frame_crc(kind_byte, &buf[FRAME_HEADER_BYTES..frame_bytes]);
    if actual != expected {
        return Err(FrameError::Checksum { expected, actual });
    }
    let kind = FrameKind::from_byte(kind_byte).ok_or(FrameError::UnknownKind(kind_byte))?;
    let payload = if length <= FRAME_COPY_BYTES_MAX {
        // Copied, so that the read buffer stays this connection's alone and is reused
        // rather than kept alive by a payload the application holds (FRAME_COPY_BYTES_MAX).
        let payload = Bytes::copy_from_slice(&buf[FRAME_HEADER_BYTES..frame_bytes]);
        buf.advance(frame_bytes);
        payload
    } else {
        let mut whole = buf.split_to(frame_bytes);
        whole.advance(FRAME_HEADER_BYTES);
        whole.freeze()
    };
    assert_eq!(payload.len(), length);
    Ok(Some(Frame { kind, payload }))
}

/// Checks the buffer left over when the stream ends: anything but nothing is a truncated frame.
pub fn decode_eof(buf: &BytesMut) -> Result<(), FrameError> {
    if buf.is_empty() {
        Ok(())
    } else {
        Err(FrameError::Truncated { buffered: buf.len() })
    }
}

fn frame_crc(kind: u8, payload: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&[kind]), payload)
}

/// The magic that opens every hello payload: "RSLH".
pub const HELLO_MAGIC: [u8; 4] = *b"RSLH";

/// The wire version this crate speaks. A peer with another version is refused.
pub const WIRE_VERSION: u16 = 1;

/// The payload of a hello frame: who is speaking, in which cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hello {
    /// The cluster name; both ends must agree.
    pub cluster: String,
    /// The sender's replica id.
    pub id: u32,
}

/// Why a hello payload is invalid.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum HelloError {
    /// The payload does not open with [`HELLO_MAGIC`].
    #[error("hello magic mismatch")]
    Magic,
    /// The peer speaks another wire version.
    #[error("wire version {0} is not {WIRE_VERSION}")]
    Version(u16),
    /// The payload is shorter or longer than its fields say.
    #[error("hello payload of {0} bytes does not match its fields")]
    Length(usize),
    /// The cluster name is empty, too long or not UTF-8.
    #[error("hello cluster name is invalid")]
    ClusterName,
}

impl Hello {
    /// Encodes the hello payload. Panics on an invalid cluster name (the configuration is
    /// validated before any hello is built).
    pub fn encode(&self) -> Bytes {
        assert!(cluster_name_valid(&self.cluster), "cluster name {:?}", self.cluster);
        let mut out = BytesMut::with_capacity(HELLO_PAYLOAD_BYTES_MAX);
        out.put_slice(&HELLO_MAGIC);
        out.put_u16_le(WIRE_VERSION);
        out.put_u32_le(self.id);
        out.put_u16_le(self.cluster.len() as u16);
        out.put_slice(self.cluster.as_bytes());
        assert!(out.len() <= HELLO_PAYLOAD_BYTES_MAX);
        let out = out.freeze();
        debug_assert_eq!(Hello::decode(&out).as_ref(), Ok(self));
        out
    }

    /// Decodes and validates a hello payload.
    pub fn decode(mut payload: &[u8]) -> Result<Hello, HelloError> {
        let total = payload.len();
        if !(12..=HELLO_PAYLOAD_BYTES_MAX).contains(&total) {
            return Err(HelloError::Length(total));
        }
        if payload[0..4] != HELLO_MAGIC {
            return Err(HelloError::Magic);
        }
        payload.advance(4);
        let version = payload.get_u16_le();
        if version != WIRE_VERSION {
            return Err(HelloError::Version(version));
        }
        let id = payload.get_u32_le();
        let name_bytes = payload.get_u16_le() as usize;
        if payload.len() != name_bytes {
            return Err(HelloError::Length(total));
        }
        let cluster = std::str::from_utf8(payload).map_err(|_| HelloError::ClusterName)?;
        if !cluster_name_valid(cluster) {
            return Err(HelloError::ClusterName);
        }
        Ok(Hello { cluster: cluster.to_owned(), id })
    }
}

/// A cluster name is 1 to [`CLUSTER_NAME_BYTES_MAX`] bytes of ASCII letters, digits, `-`, `_`
/// or `.`, so that it can also appear in certificate subjects and log lines unescaped.
pub fn cluster_name_valid(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= CLUSTER_NAME_BYTES_MAX
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn encode_all(payloads: &[(FrameKind, Vec<u8>)]) -> BytesMut {
        let mut out = BytesMut::new();
        for (kind, payload) in payloads {
            encode_frame(*kind, payload, &mut out);
        }
        out
    }

    fn kind_strategy() -> impl Strategy<Value = FrameKind> {
        prop_oneof![Just(FrameKind::Hello), Just(FrameKind::Data), Just(FrameKind::Ping)]
    }

    /// A small payload is copied out of the read buffer, so that holding it (a follower
    /// keeps accepted values in its log) does not keep the buffer alive and the reader's
    /// next reserve reuses the buffer in place; a larger one is a slice of the buffer (a
    /// 16 MiB request is not copied). At the limit and one byte above it.
    #[test]
    fn small_payloads_are_copied_out_of_the_read_buffer_large_ones_shared() {
        use crate::limits::READ_CHUNK_BYTES_MIN;
        for (length, shared) in [
            (0, false),
            (100, false),
            (FRAME_COPY_BYTES_MAX, false),
            (FRAME_COPY_BYTES_MAX + 1, true),
        ] {
            let payload = vec![0x5A; length];
            let wire = frame_bytes(FrameKind::Data, &payload);
            // One byte short of a read's chunk is left after the two frames: the next
            // reserve must reuse this allocation or take a new one.
            let mut buf = BytesMut::with_capacity(2 * wire.len() + READ_CHUNK_BYTES_MIN - 1);
            buf.extend_from_slice(&wire);
            buf.extend_from_slice(&wire);
            let (base, capacity) = (buf.as_ptr() as usize, buf.capacity());
            let held: Vec<Frame> =
                (0..2).map(|_| decode_frame(&mut buf).unwrap().unwrap()).collect();
            assert!(buf.is_empty());
            for frame in &held {
                assert_eq!(frame.payload, payload);
                let inside = (base..base + capacity).contains(&(frame.payload.as_ptr() as usize));
                assert_eq!(inside, shared && length > 0, "payload of {length} bytes");
            }
            // What the reader does next: with only copies held, the buffer is reused in place.
            buf.reserve(READ_CHUNK_BYTES_MIN);
            let reused = (base..base + capacity).contains(&(buf.as_ptr() as usize));
            assert_eq!(reused, !shared, "read buffer after {length} bytes");
        }
    }

    /// Decodes frames until the buffer needs more bytes or an error stops it.
    fn decode_all(buf: &mut BytesMut) -> (Vec<Frame>, Option<FrameError>) {
        let mut frames = Vec::new();
        loop {
            match decode_frame(buf) {
                Ok(Some(frame)) => frames.push(frame),
                Ok(None) => return (frames, None),
                Err(error) => return (frames, Some(error)),
            }
        }
    }

    #[test]
    fn header_layout_is_stable() {
        let bytes = frame_bytes(FrameKind::Data, b"abc");
        assert_eq!(bytes.len(), FRAME_HEADER_BYTES + 3);
        assert_eq!(&bytes[0..4], &3u32.to_le_bytes());
        assert_eq!(&bytes[4..8], &frame_crc(2, b"abc").to_le_bytes());
        assert_eq!(bytes[8], 2);
        assert_eq!(&bytes[9..], b"abc");
    }

    #[test]
    fn empty_payload_round_trips() {
        let mut buf = BytesMut::from(&frame_bytes(FrameKind::Data, b"")[..]);
        let frame = decode_frame(&mut buf).unwrap().unwrap();
        assert_eq!(frame, Frame { kind: FrameKind::Data, payload: Bytes::new() });
        assert!(buf.is_empty());
        assert_eq!(decode_eof(&buf), Ok(()));
    }

    #[test]
    fn oversized_is_rejected_from_the_header_alone() {
        let mut buf = BytesMut::new();
        buf.put_u32_le(FRAME_PAYLOAD_BYTES_MAX as u32 + 1);
        buf.put_u32_le(0);
        buf.put_u8(2);
        let length = FRAME_PAYLOAD_BYTES_MAX as u64 + 1;
        assert_eq!(decode_frame(&mut buf), Err(FrameError::Oversized { length }));
        // A length at the maximum is not oversized: the decoder waits for the payload.
        let mut buf = BytesMut::new();
        buf.put_u32_le(FRAME_PAYLOAD_BYTES_MAX as u32);
        buf.put_u32_le(0);
        buf.put_u8(2);
        assert_eq!(decode_frame(&mut buf), Ok(None));
        assert_eq!(buf.len(), FRAME_HEADER_BYTES);
    }

    #[test]
    fn unknown_kind_with_a_valid_checksum_is_rejected() {
        let mut buf = BytesMut::new();
        buf.put_u32_le(1);
        buf.put_u32_le(frame_crc(9, b"x"));
        buf.put_u8(9);
        buf.put_u8(b'x');
        assert_eq!(decode_frame(&mut buf), Err(FrameError::UnknownKind(9)));
    }

    #[test]
    fn truncation_is_reported_at_eof() {
        let bytes = frame_bytes(FrameKind::Data, b"hello");
        let mut buf = BytesMut::from(&bytes[..bytes.len() - 1]);
        assert_eq!(decode_frame(&mut buf), Ok(None));
        assert_eq!(decode_eof(&buf), Err(FrameError::Truncated { buffered: bytes.len() - 1 }));
    }

    #[test]
    fn hello_round_trips_and_rejects_garbage() {
        let hello = Hello { cluster: "prod-east.1".into(), id: 7 };
        assert_eq!(Hello::decode(&hello.encode()), Ok(hello.clone()));
        let good = hello.encode();
        let mut bad = good.to_vec();
        bad[0] ^= 1;
        assert_eq!(Hello::decode(&bad), Err(HelloError::Magic));
        let mut bad = good.to_vec();
        bad[4] = 2;
        assert_eq!(Hello::decode(&bad), Err(HelloError::Version(2)));
        assert_eq!(Hello::decode(&good[..good.len() - 1]), Err(HelloError::Length(22)));
        let mut bad = good.to_vec();
        bad.push(b'x');
        assert_eq!(Hello::decode(&bad), Err(HelloError::Length(24)));
        let mut bad = good.to_vec();
        bad[12] = b' ';
        assert_eq!(Hello::decode(&bad), Err(HelloError::ClusterName));
        assert!(!cluster_name_valid(""));
        assert!(!cluster_name_valid(&"a".repeat(CLUSTER_NAME_BYTES_MAX + 1)));
        assert!(cluster_name_valid(&"a".repeat(CLUSTER_NAME_BYTES_MAX)));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// A frame sent as a head and shared parts is, byte for byte, the frame of the
        /// concatenated payload sent whole: the wire format does not change.
        #[test]
        fn a_frame_in_parts_is_the_same_bytes(
            kind in kind_strategy(),
            head in proptest::collection::vec(any::<u8>(), 0..40),
            parts in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..100), 0..5),
        ) {
            let tail = SharedPayload::new(parts.iter().map(|p| Bytes::from(p.clone())).collect());
            let mut wire = BytesMut::new();
            encode_frame_head(kind, &head, &tail, &mut wire);
            tail.parts().iter().for_each(|p| wire.extend_from_slice(p));
            let whole = [head.clone(), parts.concat()].concat();
            prop_assert_eq!(&wire[..], &frame_bytes(kind, &whole)[..]);
            prop_assert_eq!(&tail.concat_after(&head)[..], &whole[..]);
            // In one buffer: the parts in order, made once (the same memory every call), and
            // a payload of one part is that part, not a copy.
            let one = tail.contiguous();
            prop_assert_eq!(&one[..], &parts.concat()[..]);
            prop_assert_eq!(tail.contiguous().as_ptr(), one.as_ptr());
            if let [only] = tail.parts() {
                prop_assert_eq!(one.as_ptr(), only.as_ptr());
            }
        }

        /// Arbitrary bytes never panic the decoder, and whatever it accepts re-encodes to
        /// exactly the bytes it consumed.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let mut buf = BytesMut::from(&bytes[..]);
            let (frames, _) = decode_all(&mut buf);
            let consumed = bytes.len() - buf.len();
            let reencoded = encode_all(
                &frames.iter().map(|f| (f.kind, f.payload.to_vec())).collect::<Vec<_>>(),
            );
            prop_assert_eq!(&reencoded[..], &bytes[..consumed]);
        }

        /// Valid frames decode back to themselves, whatever the chunking of the stream.
        #[test]
        fn valid_frames_round_trip_in_any_chunking(
            payloads in proptest::collection::vec(
                (kind_strategy(), proptest::collection::vec(any::<u8>(), 0..200)), 0..8),
            chunk in 1usize..64,
        ) {
            let wire = encode_all(&payloads);
            let mut buf = BytesMut::new();
            let mut frames = Vec::new();
            for piece in wire.chunks(chunk) {
                buf.extend_from_slice(piece);
                let (mut got, error) = decode_all(&mut buf);
                prop_assert!(error.is_none());
                frames.append(&mut got);
            }
            prop_assert_eq!(decode_eof(&buf), Ok(()));
            let got: Vec<_> = frames.into_iter().map(|f| (f.kind, f.payload.to_vec())).collect();
            prop_assert_eq!(got, payloads);
        }

        /// Flipping any bit of a valid frame is caught: the decoder reports an error, or (when
        /// the flip made the length larger) waits for bytes that the stream does not hold.
        /// A flip that shortens the length would need the crc over the shorter payload to
        /// match by chance (probability 2^-32).
        #[test]
        fn corruption_is_never_accepted(
            kind in kind_strategy(),
            payload in proptest::collection::vec(any::<u8>(), 0..200),
            bit in any::<prop::sample::Index>(),
        ) {
            let wire = frame_bytes(kind, &payload);
            let mut bad = wire.to_vec();
            let bit = bit.index(bad.len() * 8);
            bad[bit / 8] ^= 1 << (bit % 8);
            let mut buf = BytesMut::from(&bad[..]);
            match decode_frame(&mut buf) {
                Ok(Some(frame)) => prop_assert!(false, "accepted a corrupted frame: {:?}", frame),
                Ok(None) => prop_assert!(bit < 32, "only a longer length waits for bytes"),
                Err(_) => {}
            }
        }

        /// Random multi-byte corruption: whatever is accepted must be a frame that was sent.
        #[test]
        fn multi_byte_corruption_only_yields_sent_frames(
            payloads in proptest::collection::vec(
                (kind_strategy(), proptest::collection::vec(any::<u8>(), 0..64)), 1..6),
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        ) {
            let wire = encode_all(&payloads);
            let mut bad = wire.to_vec();
            for (at, value) in &edits {
                let at = at.index(bad.len());
                bad[at] = *value;
            }
            let mut buf = BytesMut::from(&bad[..]);
            let (frames, _) = decode_all(&mut buf);
            for frame in frames {
                prop_assert!(payloads.iter().any(|(k, p)| *k == frame.kind && p[..] == frame.payload[..]));
            }
        }

        /// Truncating a valid stream anywhere yields only whole frames before the cut and a
        /// truncation error at EOF (unless the cut falls on a frame boundary).
        #[test]
        fn truncation_yields_a_prefix(
            payloads in proptest::collection::vec(
                (kind_strategy(), proptest::collection::vec(any::<u8>(), 0..64)), 1..6),
            cut in any::<prop::sample::Index>(),
        ) {
            let wire = encode_all(&payloads);
            let cut = cut.index(wire.len());
            let mut buf = BytesMut::from(&wire[..cut]);
            let (frames, error) = decode_all(&mut buf);
            prop_assert!(error.is_none());
            let got: Vec<_> = frames.into_iter().map(|f| (f.kind, f.payload.to_vec())).collect();
            prop_assert_eq!(&got[..], &payloads[..got.len()]);
            let boundary = encode_all(&payloads[..got.len()]).len();
            prop_assert_eq!(boundary + buf.len(), cut);
            prop_assert_eq!(decode_eof(&buf).is_ok(), boundary == cut);
        }

        /// Arbitrary hello payloads never panic, and what decodes re-encodes identically.
        #[test]
        fn hello_decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..96)) {
            if let Ok(hello) = Hello::decode(&bytes) {
                prop_assert_eq!(&hello.encode()[..], &bytes[..]);
            }
        }
    }
}
