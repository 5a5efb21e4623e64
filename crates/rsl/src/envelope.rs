//! The envelope every payload between two replicas travels in: one byte naming the
//! [`Channel`] it belongs to, then the channel's own bytes. The consensus thread opens each
//! envelope and hands the body to its channel (the core's messages, checkpoint shipping), so
//! no channel has to recognise its frames by what their first byte happens to be.
//!
//! | bytes | field | meaning |
//! | --- | --- | --- |
//! | 1 | `channel` | [`Channel`] as a byte |
//! | rest | body | the channel's bytes (a core `Message`, a shipping frame) |

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use rsl_core::limits::MESSAGE_BYTES_MAX_DEFAULT;
use rsl_core::{Body, Value};
use rsl_net::limits::FRAME_PAYLOAD_BYTES_MAX;
use rsl_net::SharedPayload;

/// Bytes the envelope adds to a channel's body.
pub(crate) const ENVELOPE_HEADER_BYTES: usize = 1;

/// The largest core message the transport carries in an envelope: the core's
/// `message_bytes_max` may not exceed it (checked when a replica starts).
pub(crate) const MESSAGE_BYTES_MAX: usize = FRAME_PAYLOAD_BYTES_MAX - ENVELOPE_HEADER_BYTES;

// The core's default message limit (a maximal request and its framing) fits the frame.
const _: () = assert!(MESSAGE_BYTES_MAX_DEFAULT <= MESSAGE_BYTES_MAX);

/// Which part of the runtime a payload between replicas is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Channel {
    /// A consensus message of the core (`rsl_core::Message`).
    Consensus = 1,
    /// A checkpoint-shipping frame (`crate::shipping`).
    Shipping = 2,
    /// A call between members or its reply (`crate::peer_call`); these never reach the
    /// consensus thread (`crate::peer_call::Inbox`).
    Calls = 3,
}

impl Channel {
    fn from_byte(byte: u8) -> Option<Channel> {
        match byte {
            1 => Some(Channel::Consensus),
            2 => Some(Channel::Shipping),
            3 => Some(Channel::Calls),
            _ => None,
        }
    }
}

/// Puts `body` in an envelope for `channel`.
pub(crate) fn seal(channel: Channel, body: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(ENVELOPE_HEADER_BYTES + body.len());
    b.put_u8(channel as u8);
    b.extend_from_slice(body);
    b.freeze()
}

/// Puts a core message in a consensus envelope, encoded straight after the header: a large
/// request is copied once on its way to the transport, not twice.
pub(crate) fn seal_message(msg: &rsl_core::Message) -> Bytes {
    Bytes::from(msg.encode_after(&[Channel::Consensus as u8]))
}

/// A message of at least this many encoded bytes is sealed as a head and a shared body
/// ([`Sealer`]); a smaller one is encoded whole for each receiver, as copying it costs less
/// than sharing it.
pub(crate) const SHARED_MESSAGE_BYTES_MIN: usize = 64 * 1024;

/// In a shared body, a request payload of at least this many bytes is its own part (the
/// request's memory, not a copy); smaller ones are copied into the parts between.
pub(crate) const SHARED_PAYLOAD_BYTES_MIN: usize = 4 * 1024;

/// Shared bodies kept from earlier turns for messages sent again (a resend, a catch-up
/// reply): each holds its requests' payloads alive, so few.
pub(crate) const RECENT_BODIES_MAX: usize = 4;

/// A core message sealed for the transport: in one buffer, or the receiver's own head
/// (envelope, version, sender, receiver) then a body encoded once for every receiver.
pub(crate) type Sealed = rsl_net::Payload;

/// Sends a turn's (or a sync's) sealed messages: each receiver's in the order they were
/// sealed, with one call a receiver, so that the TCP transport writes them to an idle peer
/// in one write. A refused send (queue full, peer down) is dropped and counted by the
/// transport, as a lost message.
pub(crate) fn send_sealed_all(
    transport: &dyn rsl_net::Transport,
    messages: impl IntoIterator<Item = (u32, Sealed)>,
) {
    // A handful of receivers: a list searched in order, not a map.
    let mut by_peer: Vec<(u32, Vec<Sealed>)> = Vec::new();
    for (to, sealed) in messages {
        match by_peer.iter_mut().find(|(peer, _)| *peer == to) {
            Some((_, list)) => list.push(sealed),
            None => by_peer.push((to, vec![sealed])),
        }
    }
    for (to, list) in by_peer {
        let _ = transport.send_all(to, list);
    }
}

/// Seals the core's messages, encoding a large body once for all its receivers: a primary
/// sends each accept to every follower, and one that encoded a 16 MiB accept into a fresh
/// buffer per follower spent hundreds of milliseconds per value on the consensus thread,
/// long enough to lose its lease (docs/benchmarks.md, "Big values"). The bodies sealed in this
/// turn, and [`RECENT_BODIES_MAX`] from earlier ones, are kept; a body the same as one of them
/// (same fields, the same request payloads by memory) reuses its encoding.
#[derive(Debug, Default)]
pub(crate) struct Sealer {
    recent: VecDeque<(Body, Arc<SharedPayload>)>,
}

impl Sealer {
    /// Seals `msg`: whole when small, else its head and its body's shared encoding. An
    /// accept, a promise or a catch-up reply is encoded once whatever its size, its body kept
    /// for its other receivers: a small one is then each receiver's head and a copy of that
    /// encoding (a copy, not a second encoding: measuring an accept, then encoding it again
    /// for each follower, was the primary's largest cost with thousands of callers).
    pub(crate) fn seal(&mut self, msg: &rsl_core::Message) -> Sealed {
        let sharable = matches!(
            msg.body,
            Body::Accept { .. } | Body::CatchupReply { .. } | Body::Promise { .. }
        );
        if !sharable {
            return Sealed::Whole(seal_message(msg));
        }
        let head = Bytes::from(msg.encode_header_after(&[Channel::Consensus as u8]));
        let found = self.recent.iter().find(|(body, _)| same_body(body, &msg.body));
        let tail = match found {
            Some((_, tail)) => tail.clone(),
            None => {
                let tail =
                    Arc::new(SharedPayload::new(msg.body.encode_parts(SHARED_PAYLOAD_BYTES_MIN)));
                self.recent.push_back((msg.body.clone(), tail.clone()));
                tail
            }
        };
        // The message's own length: the head carries the envelope's channel byte too.
        if head.len() - 1 + tail.len() < SHARED_MESSAGE_BYTES_MIN {
            return Sealed::Whole(tail.concat_after(&head));
        }
        Sealed::Shared { head, tail }
    }

    /// Forgets all but the last [`RECENT_BODIES_MAX`] bodies (at the end of each turn).
    pub(crate) fn end_turn(&mut self) {
        while self.recent.len() > RECENT_BODIES_MAX {
            self.recent.pop_front();
        }
    }
}

/// True when two bodies encode the same: their fields are equal and their request payloads
/// are the same memory (immutable, and alive while compared, so the same bytes). Payloads
/// are never compared byte by byte: that would cost what sharing saves. Only the bodies that
/// carry values are ever the same.
fn same_body(a: &Body, b: &Body) -> bool {
    match (a, b) {
        (
            Body::Accept { ballot, commit, entries },
            Body::Accept { ballot: b2, commit: c2, entries: e2 },
        ) => {
            ballot == b2
                && commit == c2
                && entries.len() == e2.len()
                && entries
                    .iter()
                    .zip(e2)
                    .all(|(x, y)| x.slot == y.slot && same_value(&x.value, &y.value))
        }
        (
            Body::CatchupReply { commit, entries },
            Body::CatchupReply { commit: c2, entries: e2 },
        ) => {
            commit == c2
                && entries.len() == e2.len()
                && entries.iter().zip(e2).all(|(x, y)| {
                    x.slot == y.slot && x.ballot == y.ballot && same_value(&x.value, &y.value)
                })
        }
        _ => false,
    }
}

fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Batch(x), Value::Batch(y)) => {
            x.len() == y.len()
                && x.iter().zip(y.iter()).all(|(r, s)| {
                    r.id == s.id
                        && r.payload.len() == s.payload.len()
                        && r.payload.as_ptr() == s.payload.as_ptr()
                })
        }
        (Value::Noop, Value::Noop) => true,
        (Value::Config(x), Value::Config(y)) => x == y,
        _ => false,
    }
}

/// Opens an envelope: its channel and body (sharing the payload's memory), or `None` for an
/// empty payload or an unknown channel (the caller counts and drops it).
pub(crate) fn open(payload: &Bytes) -> Option<(Channel, Bytes)> {
    let channel = Channel::from_byte(*payload.first()?)?;
    Some((channel, payload.slice(1..)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records each `send_all` call: its receiver and its payloads.
    #[derive(Default)]
    struct Calls(std::sync::Mutex<Vec<(u32, Vec<Bytes>)>>);

    impl rsl_net::Transport for Calls {
        fn id(&self) -> u32 {
            1
        }
        fn send(&self, _: u32, _: Bytes) -> Result<(), rsl_net::SendError> {
            panic!("sent alone, not with its receiver's other messages");
        }
        fn send_all(&self, to: u32, payloads: Vec<Sealed>) -> Result<(), rsl_net::SendError> {
            let whole = payloads.iter().map(|p| match p {
                Sealed::Whole(bytes) => bytes.clone(),
                Sealed::Shared { head, tail } => tail.concat_after(head),
            });
            self.0.lock().unwrap().push((to, whole.collect()));
            Ok(())
        }
        fn peer_status(&self, _: u32) -> Option<rsl_net::PeerStatus> {
            None
        }
    }

    /// A turn's messages leave with one call a receiver, each receiver's in the order they
    /// were sealed.
    #[test]
    fn a_turns_messages_leave_in_one_call_a_receiver_in_order() {
        let calls = Calls::default();
        let message = |i: u8| (Bytes::from(vec![i]), Sealed::Whole(Bytes::from(vec![i])));
        let turn = [(2, 0), (3, 1), (2, 2), (4, 3), (3, 4), (2, 5)];
        send_sealed_all(&calls, turn.iter().map(|&(to, i)| (to, message(i).1)));
        let calls = calls.0.into_inner().unwrap();
        let expected: Vec<(u32, Vec<Bytes>)> = vec![
            (2, [0, 2, 5].map(|i| message(i).0).to_vec()),
            (3, [1, 4].map(|i| message(i).0).to_vec()),
            (4, vec![message(3).0]),
        ];
        assert_eq!(calls, expected);
    }

    #[test]
    fn envelopes_round_trip_and_unknown_channels_are_refused() {
        for channel in [Channel::Consensus, Channel::Shipping, Channel::Calls] {
            for body in [&b""[..], b"x", &[0xEE; 300]] {
                let sealed = seal(channel, body);
                assert_eq!(sealed.len(), body.len() + 1);
                assert_eq!(open(&sealed), Some((channel, Bytes::copy_from_slice(body))));
            }
        }
        let msg = rsl_core::Message {
            from: rsl_core::ReplicaId(1),
            to: rsl_core::ReplicaId(2),
            body: rsl_core::Body::Rebuild { nonce: 7 },
        };
        let (channel, body) = open(&seal_message(&msg)).expect("an envelope");
        assert_eq!(channel, Channel::Consensus);
        assert_eq!(rsl_core::Message::decode_shared(&body), Ok(msg));
        assert_eq!(open(&Bytes::new()), None);
        for byte in [0u8, 4, 0xEE, 0xFF] {
            assert_eq!(open(&Bytes::from(vec![byte, 1, 2])), None, "channel byte {byte}");
        }
    }

    fn accept(commit: u64, payload: &Bytes) -> rsl_core::Message {
        use rsl_core::{Ballot, ReplicaId, Request, RequestId, Slot, SlotValue};
        let id = RequestId { proposer: ReplicaId(1), incarnation: 1, seq: 1 };
        let requests = vec![Request { id, payload: payload.clone() }];
        let entries =
            vec![SlotValue { slot: Slot(commit + 1), value: Value::Batch(requests.into()) }];
        rsl_core::Message {
            from: ReplicaId(1),
            to: ReplicaId(2),
            body: Body::Accept {
                ballot: Ballot { round: 1, replica: 1 },
                commit: Slot(commit),
                entries,
            },
        }
    }

    /// What the receiver gets from a sealed message.
    fn received(sealed: &Sealed) -> rsl_core::Message {
        let bytes = match sealed {
            Sealed::Whole(bytes) => bytes.clone(),
            Sealed::Shared { head, tail } => tail.concat_after(head),
        };
        let (channel, body) = open(&bytes).expect("an envelope");
        assert_eq!(channel, Channel::Consensus);
        rsl_core::Message::decode_shared(&body).expect("decodes")
    }

    fn tail(sealed: &Sealed) -> &Arc<SharedPayload> {
        match sealed {
            Sealed::Shared { tail, .. } => tail,
            Sealed::Whole(_) => panic!("sealed whole"),
        }
    }

    /// An accept to two followers is encoded once: the same body (same allocation) behind
    /// each follower's own head, the value's memory itself in it; sent again in a later turn
    /// (a resend: a new message with the same values), the encoding is reused; a different
    /// body, or one forgotten after `RECENT_BODIES_MAX` newer ones, is encoded anew; a
    /// small message is sealed whole. Each decodes to the message sent.
    #[test]
    fn a_large_body_is_encoded_once_for_every_receiver_and_resend() {
        let value = Bytes::from(vec![9u8; SHARED_MESSAGE_BYTES_MIN]);
        let mut sealer = Sealer::default();
        let to_2 = accept(5, &value);
        let mut to_3 = to_2.clone();
        to_3.to = rsl_core::ReplicaId(3);
        let (a, b) = (sealer.seal(&to_2), sealer.seal(&to_3));
        assert!(Arc::ptr_eq(tail(&a), tail(&b)), "encoded once per follower");
        assert!(tail(&a).parts().iter().any(|p| p.as_ptr() == value.as_ptr()), "value copied");
        assert_eq!((received(&a), received(&b)), (to_2.clone(), to_3));
        sealer.end_turn();
        let resend = accept(5, &value);
        assert!(Arc::ptr_eq(tail(&sealer.seal(&resend)), tail(&a)), "a resend encoded again");
        let later = accept(6, &value);
        let c = sealer.seal(&later);
        assert!(!Arc::ptr_eq(tail(&c), tail(&a)));
        assert_eq!(received(&c), later);
        for commit in 10..10 + RECENT_BODIES_MAX as u64 {
            sealer.seal(&accept(commit, &value));
        }
        sealer.end_turn();
        assert!(!Arc::ptr_eq(tail(&sealer.seal(&to_2)), tail(&a)), "kept more than the last");
        let small = accept(5, &Bytes::from(vec![1u8; 100]));
        let sealed = sealer.seal(&small);
        assert!(matches!(sealed, Sealed::Whole(_)));
        assert_eq!(received(&sealed), small);
    }

    /// A small accept to two followers is encoded once (its body kept for the second) and
    /// sealed whole for each, byte for byte what encoding it whole gives.
    #[test]
    fn a_small_body_is_encoded_once_and_sealed_whole_for_each_receiver() {
        let mut sealer = Sealer::default();
        let to_2 = accept(5, &Bytes::from(vec![1u8; 100]));
        let mut to_3 = to_2.clone();
        to_3.to = rsl_core::ReplicaId(3);
        let a = sealer.seal(&to_2);
        assert_eq!(sealer.recent.len(), 1);
        let b = sealer.seal(&to_3);
        assert_eq!(sealer.recent.len(), 1, "encoded again for the second follower");
        for (sealed, msg) in [(&a, &to_2), (&b, &to_3)] {
            match sealed {
                Sealed::Whole(bytes) => assert_eq!(bytes, &seal_message(msg)),
                Sealed::Shared { .. } => panic!("a small message sealed shared"),
            }
        }
    }

    /// A message of exactly `SHARED_MESSAGE_BYTES_MIN` encoded bytes is sealed shared, one of
    /// a byte less whole; each decodes to the message.
    #[test]
    fn the_shared_threshold_is_exact() {
        let len = |payload: usize| accept(5, &Bytes::from(vec![3u8; payload])).encoded_len();
        // Grow the payload until the message reaches the threshold exactly.
        let mut payload = SHARED_MESSAGE_BYTES_MIN - len(0);
        while len(payload) < SHARED_MESSAGE_BYTES_MIN {
            payload += 1;
        }
        while len(payload) > SHARED_MESSAGE_BYTES_MIN {
            payload -= 1;
        }
        assert_eq!(len(payload), SHARED_MESSAGE_BYTES_MIN, "no payload size meets the threshold");
        assert_eq!(len(payload - 1), SHARED_MESSAGE_BYTES_MIN - 1);
        let at = accept(5, &Bytes::from(vec![3u8; payload]));
        let below = accept(6, &Bytes::from(vec![3u8; payload - 1]));
        let mut sealer = Sealer::default();
        let (shared, whole) = (sealer.seal(&at), sealer.seal(&below));
        assert!(matches!(shared, Sealed::Shared { .. }), "at the threshold");
        assert!(matches!(whole, Sealed::Whole(_)), "a byte below it");
        assert_eq!((received(&shared), received(&whole)), (at, below));
    }
}
