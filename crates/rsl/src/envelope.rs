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
    let mut b = BytesMut::with_capacity(1 + body.len());
    b.put_u8(channel as u8);
    b.extend_from_slice(body);
    b.freeze()
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
        assert_eq!(open(&Bytes::new()), None);
        for byte in [0u8, 4, 0xEE, 0xFF] {
            assert_eq!(open(&Bytes::from(vec![byte, 1, 2])), None, "channel byte {byte}");
        }
    }
}
