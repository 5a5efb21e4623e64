//! A message encoded in parts, for a sender that sends one body to several peers: the body is
//! encoded once, as a list of [`Bytes`] in which every large request payload is the request's
//! own `Bytes` (shared, not copied) and the bytes between them are copied into small buffers;
//! each peer's message is then its own header ([`Message::encode_header_after`]: the version,
//! the sender and the receiver) followed by the same parts. Concatenated, the header and the
//! parts are exactly what [`Message::encode_after`] writes: the wire format does not change.
//! Why: a primary that encoded a 16 MiB accept into a fresh buffer once per follower spent
//! hundreds of milliseconds per value on its consensus thread, long enough to lose its lease
//! (docs/benchmarks.md, "Big values").

use bytes::Bytes;

use super::{Body, Message, Sink, Writer, WIRE_VERSION};

/// Collects parts: bytes into the open buffer, payloads of at least `shared_min` bytes as
/// parts of their own.
struct Parts {
    parts: Vec<Bytes>,
    open: Vec<u8>,
    shared_min: usize,
}

impl Parts {
    fn close_open(&mut self) {
        if !self.open.is_empty() {
            self.parts.push(Bytes::from(std::mem::take(&mut self.open)));
        }
    }
}

impl Sink for Parts {
    fn put(&mut self, b: u8) {
        self.open.push(b);
    }

    fn put_slice(&mut self, bytes: &[u8]) {
        self.open.extend_from_slice(bytes);
    }

    fn put_payload(&mut self, payload: &Bytes) {
        if payload.len() >= self.shared_min && !payload.is_empty() {
            self.close_open();
            self.parts.push(payload.clone());
        } else {
            self.open.extend_from_slice(payload);
        }
    }
}

impl Message {
    /// What [`Message::encode_after`] writes before the body: `prefix`, the version, the
    /// sender and the receiver. Followed by [`Body::encode_parts`], it is the whole message.
    pub fn encode_header_after(&self, prefix: &[u8]) -> Vec<u8> {
        let mut w = Writer(Vec::with_capacity(prefix.len() + 11));
        w.0.put_slice(prefix);
        w.byte(WIRE_VERSION);
        w.u64(u64::from(self.from.0));
        w.u64(u64::from(self.to.0));
        w.0
    }
}

impl Body {
    /// The body as [`Message::encode`] writes it, in parts: every request payload of at least
    /// `shared_min` bytes (and not empty) is a part of its own that shares the request's
    /// memory; the bytes before, between and after them are copied into fresh parts. No part
    /// is empty.
    pub fn encode_parts(&self, shared_min: usize) -> Vec<Bytes> {
        let mut w = Writer(Parts { parts: Vec::new(), open: Vec::new(), shared_min });
        w.body(self);
        w.0.close_open();
        w.0.parts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::DecodeError;
    use crate::types::{Ballot, ReplicaId, Request, RequestId, Slot, SlotValue, Value};

    fn request(seq: u64, len: usize) -> Request {
        let id = RequestId { proposer: ReplicaId(1), incarnation: 2, seq };
        Request { id, payload: Bytes::from(vec![seq as u8; len]) }
    }

    /// Payloads at the sharing threshold are shared (the same memory), one byte below it
    /// copied, and the header and parts together are the message's one-buffer encoding.
    #[test]
    fn large_payloads_are_shared_small_ones_copied_and_the_bytes_are_the_same() {
        let min = 1000;
        let batch = vec![request(1, min), request(2, min - 1), request(3, 0), request(4, min)];
        let body = Body::Accept {
            ballot: Ballot { round: 3, replica: 1 },
            commit: Slot(9),
            entries: vec![
                SlotValue { slot: Slot(10), value: Value::Batch(batch.clone().into()) },
                SlotValue { slot: Slot(11), value: Value::Noop },
            ],
        };
        let parts = body.encode_parts(min);
        let shared: Vec<bool> = parts
            .iter()
            .map(|p| {
                batch.iter().any(|r| r.payload.len() == min && r.payload.as_ptr() == p.as_ptr())
            })
            .collect();
        // The header of the accept, payload 1, the bytes up to payload 4, payload 4, the rest.
        assert_eq!(shared, [false, true, false, true, false]);
        assert!(parts.iter().all(|p| !p.is_empty()));
        for to in [2, 300] {
            let msg = Message { from: ReplicaId(1), to: ReplicaId(to), body: body.clone() };
            let mut whole = msg.encode_header_after(&[7]);
            parts.iter().for_each(|p| whole.extend_from_slice(p));
            assert_eq!(whole, msg.encode_after(&[7]));
        }
    }

    /// A message decoded from its head and its body apart is the message; the body's
    /// payloads share the body's memory; a byte too many or too few in either piece, or
    /// another wire version, is refused.
    #[test]
    fn a_message_decodes_from_its_head_and_body_apart() {
        let body = Body::Accept {
            ballot: Ballot { round: 3, replica: 1 },
            commit: Slot(9),
            entries: vec![SlotValue {
                slot: Slot(10),
                value: Value::Batch(vec![request(1, 200), request(2, 0)].into()),
            }],
        };
        let msg = Message { from: ReplicaId(1), to: ReplicaId(3), body: body.clone() };
        let head = msg.encode_header_after(&[]);
        let rest: Vec<u8> = body.encode_parts(1 << 20).concat();
        let rest = Bytes::from(rest);
        let decoded = Message::decode_parts(&head, &rest).unwrap();
        assert_eq!(decoded, msg);
        let Body::Accept { entries, .. } = &decoded.body else { unreachable!() };
        let Value::Batch(batch) = &entries[0].value else { unreachable!() };
        let inside = rest.as_ptr_range();
        assert!(inside.contains(&batch[0].payload.as_ptr()), "a payload copied, not shared");

        let mut long_head = head.clone();
        long_head.push(0);
        assert_eq!(Message::decode_parts(&long_head, &rest), Err(DecodeError::Trailing(1)));
        assert!(Message::decode_parts(&head[..head.len() - 1], &rest).is_err());
        let mut long_body = rest.to_vec();
        long_body.push(0);
        let long_body = Bytes::from(long_body);
        assert_eq!(Message::decode_parts(&head, &long_body), Err(DecodeError::Trailing(1)));
        assert!(Message::decode_parts(&head, &rest.slice(..rest.len() - 1)).is_err());
        let mut other_version = head.clone();
        other_version[0] ^= 0xff;
        assert!(matches!(
            Message::decode_parts(&other_version, &rest),
            Err(DecodeError::Version(_))
        ));
    }
}
