//! The envelope every payload between two replicas travels in: one byte naming the
//! [`Channel`] it belongs to, then the channel's own bytes. The consensus thread opens each
//! envelope and hands the body to its channel (the core's messages, checkpoint shipping), so
//! no channel has to recognise its frames by what their first byte happens to be.
//!
//! | bytes | field | meaning |
//! | --- | --- | --- |
//! | 1 | `channel` | [`Channel`] as a byte |
//! | rest | body | the channel's bytes (a core `Message`, a shipping frame) |

use bytes::{BufMut, Bytes, BytesMut};
use rsl_core::limits::MESSAGE_BYTES_MAX_DEFAULT;
use rsl_net::limits::FRAME_PAYLOAD_BYTES_MAX;

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

/// Opens an envelope: its channel and body (sharing the payload's memory), or `None` for an
/// empty payload or an unknown channel (the caller counts and drops it).
pub(crate) fn open(payload: &Bytes) -> Option<(Channel, Bytes)> {
    let channel = Channel::from_byte(*payload.first()?)?;
    Some((channel, payload.slice(1..)))
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
