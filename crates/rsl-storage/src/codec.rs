//! On-disk formats of the log: the segment header and the record header (docs/storage.md has
//! them as tables). Pure functions over byte slices, no I/O, so they can be fuzzed.
//!
//! A record is a 64-byte header, the payload, and zero padding to a multiple of 8 bytes. The
//! header carries the record's identity (slot, ballot, payload length) under its *own*
//! checksum, separate from the payload checksum, so that a record whose payload is corrupt
//! still has a known identity (protocol-aware recovery needs to know what it had accepted).

use crate::limits::{
    RECORD_ALIGN_BYTES, RECORD_HEADER_BYTES, RECORD_PAYLOAD_BYTES_MAX, SEGMENT_HEADER_BYTES,
};

/// Magic of a record header ("RSLR" little-endian).
pub const RECORD_MAGIC: u32 = u32::from_le_bytes(*b"RSLR");
/// Magic of a segment header.
pub const SEGMENT_MAGIC: [u8; 8] = *b"RSLSEG01";
/// Format version of segments.
pub const SEGMENT_VERSION: u32 = 1;

/// What a record means to the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum RecordKind {
    /// A slot's value (slot, ballot, payload).
    Entry = 1,
    /// Marker: every slot below `slot` is truncated.
    TruncatePrefix = 2,
    /// Marker: every slot at or above `slot` is truncated.
    TruncateSuffix = 3,
}

impl RecordKind {
    fn from_u8(v: u8) -> Option<Self> {
        match v {
            1 => Some(RecordKind::Entry),
            2 => Some(RecordKind::TruncatePrefix),
            3 => Some(RecordKind::TruncateSuffix),
            _ => None,
        }
    }
}

/// The decoded header of one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    /// Entry or marker.
    pub kind: RecordKind,
    /// Payload bytes (not counting padding).
    pub payload_len: u32,
    /// Slot (for markers: the truncation bound).
    pub slot: u64,
    /// Opaque ballot the caller gave.
    pub ballot: u128,
    /// Position of the record in the log, counting from 0, never reused.
    pub seq: u64,
    /// When this record was written, every record with a smaller `seq` was durable.
    pub durable_seq: u64,
    /// crc32c of the payload.
    pub payload_crc: u32,
}

/// Why a header did not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderError {
    /// All 64 bytes are zero: never written (the end of data).
    Zero,
    /// Wrong magic.
    BadMagic,
    /// Header checksum mismatch.
    BadChecksum,
    /// Checksum matches but a field is out of range (a bug or a forged header).
    BadField,
}

const HCRC_AT: usize = 4;

fn header_crc(buf: &[u8; RECORD_HEADER_BYTES]) -> u32 {
    let crc = crc32c::crc32c(&buf[..HCRC_AT]);
    crc32c::crc32c_append(crc, &buf[HCRC_AT + 4..])
}

/// Bytes a record with `payload_len` bytes of payload occupies, header and padding included.
pub fn record_bytes(payload_len: usize) -> usize {
    RECORD_HEADER_BYTES + payload_len.div_ceil(RECORD_ALIGN_BYTES) * RECORD_ALIGN_BYTES
}

impl RecordHeader {
    /// Encode into exactly 64 bytes.
    pub fn encode(&self) -> [u8; RECORD_HEADER_BYTES] {
        assert!(self.payload_len as usize <= RECORD_PAYLOAD_BYTES_MAX);
        assert!(self.durable_seq <= self.seq, "durable_seq must not exceed seq");
        let mut b = [0u8; RECORD_HEADER_BYTES];
        b[0..4].copy_from_slice(&RECORD_MAGIC.to_le_bytes());
        b[8] = self.kind as u8;
        b[12..16].copy_from_slice(&self.payload_len.to_le_bytes());
        b[16..24].copy_from_slice(&self.slot.to_le_bytes());
        b[24..40].copy_from_slice(&self.ballot.to_le_bytes());
        b[40..48].copy_from_slice(&self.seq.to_le_bytes());
        b[48..56].copy_from_slice(&self.durable_seq.to_le_bytes());
        b[56..60].copy_from_slice(&self.payload_crc.to_le_bytes());
        let crc = header_crc(&b);
        b[HCRC_AT..HCRC_AT + 4].copy_from_slice(&crc.to_le_bytes());
        debug_assert_eq!(RecordHeader::decode(&b), Ok(*self));
        b
    }

    /// Decode 64 bytes; checks magic, header checksum and field ranges.
    pub fn decode(b: &[u8; RECORD_HEADER_BYTES]) -> Result<RecordHeader, HeaderError> {
        if b.iter().all(|&x| x == 0) {
            return Err(HeaderError::Zero);
        }
        if b[0..4] != RECORD_MAGIC.to_le_bytes() {
            return Err(HeaderError::BadMagic);
        }
        let stored = u32::from_le_bytes(b[HCRC_AT..HCRC_AT + 4].try_into().expect("4 bytes"));
        if stored != header_crc(b) {
            return Err(HeaderError::BadChecksum);
        }
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        let kind = RecordKind::from_u8(b[8]).ok_or(HeaderError::BadField)?;
        let payload_len = u32::from_le_bytes(b[12..16].try_into().expect("4 bytes"));
        let h = RecordHeader {
            kind,
            payload_len,
            slot: u64_at(16),
            ballot: u128::from_le_bytes(b[24..40].try_into().expect("16 bytes")),
            seq: u64_at(40),
            durable_seq: u64_at(48),
            payload_crc: u32::from_le_bytes(b[56..60].try_into().expect("4 bytes")),
        };
        let reserved_zero = b[9..12].iter().chain(&b[60..64]).all(|&x| x == 0);
        if !reserved_zero
            || payload_len as usize > RECORD_PAYLOAD_BYTES_MAX
            || h.durable_seq > h.seq
            || (kind != RecordKind::Entry && payload_len != 0)
        {
            return Err(HeaderError::BadField);
        }
        Ok(h)
    }

    /// Total bytes of this record on disk.
    pub fn record_bytes(&self) -> usize {
        record_bytes(self.payload_len as usize)
    }
}

/// Encode a whole record (header, payload, padding) onto `out`.
pub fn encode_record(out: &mut Vec<u8>, mut header: RecordHeader, payload: &[u8]) {
    assert_eq!(header.payload_len as usize, payload.len());
    header.payload_crc = crc32c::crc32c(payload);
    let start = out.len();
    out.extend_from_slice(&header.encode());
    out.extend_from_slice(payload);
    out.resize(start + header.record_bytes(), 0);
    debug_assert_eq!(out.len() - start, record_bytes(payload.len()));
}

/// Outcome of decoding one record from a byte slice that starts at a record boundary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// A whole, valid record.
    Valid(RecordHeader),
    /// The header is valid but the payload (or its padding) is corrupt.
    BadPayload(RecordHeader),
    /// The header is valid but the slice ends before the record does.
    Truncated(RecordHeader),
    /// The header is bad.
    BadHeader(HeaderError),
    /// Fewer than 64 bytes left and not all zero.
    ShortHeader,
    /// Fewer than 64 bytes left, all zero, or an all-zero header: no more data.
    End,
}

/// Decode the record at the start of `buf` (the rest of a segment).
pub fn decode_record(buf: &[u8]) -> Decoded {
    if buf.len() < RECORD_HEADER_BYTES {
        return if buf.iter().all(|&x| x == 0) { Decoded::End } else { Decoded::ShortHeader };
    }
    let head: &[u8; RECORD_HEADER_BYTES] = buf[..RECORD_HEADER_BYTES].try_into().expect("64");
    let h = match RecordHeader::decode(head) {
        Ok(h) => h,
        Err(HeaderError::Zero) => return Decoded::End,
        Err(e) => return Decoded::BadHeader(e),
    };
    let total = h.record_bytes();
    if buf.len() < total {
        return Decoded::Truncated(h);
    }
    let payload = &buf[RECORD_HEADER_BYTES..RECORD_HEADER_BYTES + h.payload_len as usize];
    let padding_zero =
        buf[RECORD_HEADER_BYTES + h.payload_len as usize..total].iter().all(|&x| x == 0);
    if crc32c::crc32c(payload) != h.payload_crc || !padding_zero {
        return Decoded::BadPayload(h);
    }
    Decoded::Valid(h)
}

/// The header at offset 0 of every segment file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    /// Number of the segment (also in its file name).
    pub segment_id: u64,
    /// `seq` of the first record in the segment.
    pub first_seq: u64,
}

impl SegmentHeader {
    /// Encode into exactly 64 bytes.
    pub fn encode(&self) -> [u8; SEGMENT_HEADER_BYTES] {
        let mut b = [0u8; SEGMENT_HEADER_BYTES];
        b[0..8].copy_from_slice(&SEGMENT_MAGIC);
        b[8..12].copy_from_slice(&SEGMENT_VERSION.to_le_bytes());
        b[16..24].copy_from_slice(&self.segment_id.to_le_bytes());
        b[24..32].copy_from_slice(&self.first_seq.to_le_bytes());
        let crc = crc32c::crc32c(&b[..60]);
        b[60..64].copy_from_slice(&crc.to_le_bytes());
        debug_assert_eq!(SegmentHeader::decode(&b), Some(*self));
        b
    }

    /// Decode; None if the magic, version, reserved bytes or checksum are wrong.
    pub fn decode(b: &[u8]) -> Option<SegmentHeader> {
        if b.len() < SEGMENT_HEADER_BYTES || b[0..8] != SEGMENT_MAGIC {
            return None;
        }
        let crc = u32::from_le_bytes(b[60..64].try_into().ok()?);
        if crc != crc32c::crc32c(&b[..60]) {
            return None;
        }
        let version = u32::from_le_bytes(b[8..12].try_into().ok()?);
        if version != SEGMENT_VERSION || b[12..16] != [0; 4] || b[32..60].iter().any(|&x| x != 0) {
            return None;
        }
        Some(SegmentHeader {
            segment_id: u64::from_le_bytes(b[16..24].try_into().ok()?),
            first_seq: u64::from_le_bytes(b[24..32].try_into().ok()?),
        })
    }
}

/// File name of segment `id`.
pub fn segment_name(id: u64) -> String {
    format!("wal-{id:016x}.seg")
}

/// Segment id from a file name, if it is a segment's.
pub fn parse_segment_name(name: &str) -> Option<u64> {
    let hex = name.strip_prefix("wal-")?.strip_suffix(".seg")?;
    if hex.len() != 16 {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(slot: u64, len: u32) -> RecordHeader {
        RecordHeader {
            kind: RecordKind::Entry,
            payload_len: len,
            slot,
            ballot: 7 << 64 | 3,
            seq: 10,
            durable_seq: 4,
            payload_crc: 0,
        }
    }

    #[test]
    fn record_roundtrip_and_each_corruption_is_classified() {
        let payload = b"hello world".to_vec();
        let mut buf = Vec::new();
        encode_record(&mut buf, header(5, payload.len() as u32), &payload);
        assert_eq!(buf.len(), 64 + 16);
        let Decoded::Valid(h) = decode_record(&buf) else { panic!("valid record") };
        assert_eq!((h.slot, h.ballot, h.payload_len), (5, 7 << 64 | 3, 11));
        // Payload byte flipped: identity still known.
        let mut bad = buf.clone();
        bad[70] ^= 1;
        assert_eq!(decode_record(&bad), Decoded::BadPayload(h));
        // Header byte flipped: identity lost.
        let mut bad = buf.clone();
        bad[20] ^= 1;
        assert_eq!(decode_record(&bad), Decoded::BadHeader(HeaderError::BadChecksum));
        // Cut short: torn.
        assert_eq!(decode_record(&buf[..70]), Decoded::Truncated(h));
        assert_eq!(decode_record(&buf[..30]), Decoded::ShortHeader);
        assert_eq!(decode_record(&[0u8; 100]), Decoded::End);
        // Non-zero padding is corruption, not ignored.
        let mut bad = buf.clone();
        bad[79] = 1;
        assert_eq!(decode_record(&bad), Decoded::BadPayload(h));
    }

    #[test]
    fn segment_header_roundtrip_and_rejects_flips() {
        let h = SegmentHeader { segment_id: 3, first_seq: 99 };
        let b = h.encode();
        assert_eq!(SegmentHeader::decode(&b), Some(h));
        for i in 0..64 {
            let mut bad = b;
            bad[i] ^= 0x10;
            assert_eq!(SegmentHeader::decode(&bad), None, "flip at byte {i} must be caught");
        }
        assert_eq!(parse_segment_name(&segment_name(0xabc)), Some(0xabc));
        assert_eq!(parse_segment_name("wal-xyz.seg"), None);
    }
}
