//! The wire format: every message round-trips, and decode never panics on any bytes.

use bytes::Bytes;
use proptest::prelude::*;
use rsl_core::message::{Body, DecodeError};
use rsl_core::{
    Ballot, LogEntry, MemberInfo, Membership, Message, ReplicaId, Request, RequestId, Slot,
    SlotValue, UnknownValue, Value,
};

fn ballot() -> impl Strategy<Value = Ballot> {
    (any::<u64>(), any::<u32>()).prop_map(|(round, replica)| Ballot { round, replica })
}

fn slot() -> impl Strategy<Value = Slot> {
    any::<u64>().prop_map(Slot)
}

fn ids() -> impl Strategy<Value = Vec<ReplicaId>> {
    prop::collection::vec(any::<u32>().prop_map(ReplicaId), 0..5)
}

fn value() -> impl Strategy<Value = Value> {
    let request =
        (any::<u32>(), any::<u64>(), any::<u64>(), prop::collection::vec(any::<u8>(), 0..40))
            .prop_map(|(p, incarnation, seq, payload)| Request {
                id: RequestId { proposer: ReplicaId(p), incarnation, seq },
                payload: Bytes::from(payload),
            });
    prop_oneof![
        Just(Value::Noop),
        prop::collection::vec(request, 0..4).prop_map(|v| Value::Batch(v.into())),
        (ids(), ids(), prop::collection::btree_map(any::<u32>().prop_map(ReplicaId), info(), 0..4))
            .prop_map(|(voters, learners, info)| Value::Config(Membership {
                voters,
                learners,
                info
            })),
    ]
}

/// A member's info: any address (a string, not necessarily a valid one: the core does not
/// read it) and any data.
fn info() -> impl Strategy<Value = MemberInfo> {
    (".{0,30}", prop::collection::vec(any::<u8>(), 0..40))
        .prop_map(|(addr, data)| MemberInfo { addr, data: Bytes::from(data) })
}

fn entry() -> impl Strategy<Value = LogEntry> {
    (slot(), ballot(), value()).prop_map(|(slot, ballot, value)| LogEntry { slot, ballot, value })
}

fn body() -> impl Strategy<Value = Body> {
    prop_oneof![
        (ballot(), slot()).prop_map(|(ballot, commit)| Body::PreVote { ballot, commit }),
        (ballot(), any::<bool>())
            .prop_map(|(ballot, granted)| Body::PreVoteReply { ballot, granted }),
        (ballot(), slot(), prop::option::of(ballot()))
            .prop_map(|(ballot, after, transfer)| Body::Prepare { ballot, after, transfer }),
        (
            (ballot(), slot(), slot()),
            prop::collection::vec(entry(), 0..4),
            prop::collection::vec(
                (slot(), ballot()).prop_map(|(slot, ballot)| UnknownValue { slot, ballot }),
                0..3
            ),
            prop::option::of(slot()),
            any::<bool>()
        )
            .prop_map(
                |((ballot, commit, after), entries, unknown, more_after, dropped)| {
                    Body::Promise { ballot, commit, after, entries, unknown, more_after, dropped }
                }
            ),
        (ballot(), ballot()).prop_map(|(ballot, promised)| Body::Nack { ballot, promised }),
        (
            ballot(),
            slot(),
            prop::collection::vec(
                (slot(), value()).prop_map(|(slot, value)| SlotValue { slot, value }),
                0..4
            )
        )
            .prop_map(|(ballot, commit, entries)| Body::Accept { ballot, commit, entries }),
        (ballot(), prop::collection::vec(slot(), 0..6))
            .prop_map(|(ballot, slots)| Body::Accepted { ballot, slots }),
        (ballot(), slot(), any::<u64>()).prop_map(|(ballot, commit, round)| Body::Heartbeat {
            ballot,
            commit,
            round
        }),
        (ballot(), any::<u64>(), slot()).prop_map(|(ballot, round, commit)| Body::HeartbeatAck {
            ballot,
            round,
            commit
        }),
        (slot(), slot()).prop_map(|(from, to)| Body::CatchupRequest { from, to }),
        (slot(), prop::collection::vec(entry(), 0..4))
            .prop_map(|(commit, entries)| Body::CatchupReply { commit, entries }),
        ballot().prop_map(|ballot| Body::StartElection { ballot }),
        any::<u64>().prop_map(|nonce| Body::Rebuild { nonce }),
        (any::<u64>(), ballot(), slot()).prop_map(|(nonce, ballot, through)| Body::Rebuilt {
            nonce,
            ballot,
            through
        }),
    ]
}

fn message() -> impl Strategy<Value = Message> {
    (any::<u32>(), any::<u32>(), body()).prop_map(|(from, to, body)| Message {
        from: ReplicaId(from),
        to: ReplicaId(to),
        body,
    })
}

proptest! {
    #[test]
    fn every_message_round_trips(msg in message()) {
        let bytes = msg.encode();
        prop_assert_eq!(Message::decode(&bytes), Ok(msg));
    }

    #[test]
    fn shared_decoding_and_prefixed_encoding_agree(msg in message(), prefix in prop::collection::vec(any::<u8>(), 0..3)) {
        let bytes = Bytes::from(msg.encode());
        prop_assert_eq!(Message::decode_shared(&bytes), Ok(msg.clone()));
        let prefixed = msg.encode_after(&prefix);
        prop_assert_eq!(&prefixed[..prefix.len()], &prefix[..]);
        prop_assert_eq!(&prefixed[prefix.len()..], &bytes[..]);
    }

    /// The header and the parts of a body encoded once for several receivers are, byte for
    /// byte, the message's one-buffer encoding, whatever the sharing threshold.
    #[test]
    fn parts_encoding_is_the_same_bytes(msg in message(), shared_min in 0usize..48) {
        let parts = msg.body.encode_parts(shared_min);
        prop_assert!(parts.iter().all(|p| !p.is_empty()));
        let mut whole = msg.encode_header_after(&[1]);
        parts.iter().for_each(|p| whole.extend_from_slice(p));
        prop_assert_eq!(whole, msg.encode_after(&[1]));
    }

    #[test]
    fn every_strict_prefix_is_refused(msg in message()) {
        let bytes = msg.encode();
        for n in 0..bytes.len() {
            prop_assert!(Message::decode(&bytes[..n]).is_err(), "prefix {} decoded", n);
        }
    }

    #[test]
    fn trailing_bytes_are_refused(msg in message(), extra in prop::collection::vec(any::<u8>(), 1..8)) {
        let mut bytes = msg.encode();
        bytes.extend(extra);
        prop_assert!(matches!(Message::decode(&bytes), Err(DecodeError::Trailing(_))));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = Message::decode(&bytes);
    }

    #[test]
    fn flipped_bytes_never_panic(msg in message(), at in any::<usize>(), bit in 0u8..8) {
        let mut bytes = msg.encode();
        let at = at % bytes.len();
        bytes[at] ^= 1 << bit;
        if let Ok(m) = Message::decode(&bytes) {
            // Whatever decodes re-encodes to the same bytes (the format is canonical apart
            // from varint padding, which the flip may create).
            let _ = m.encode();
        }
    }
}

#[test]
fn a_huge_length_is_refused_before_allocating() {
    // Version, from, to, Accepted tag, ballot (0, 0), then a list length of 2^62.
    let mut bytes = vec![1, 1, 2, 7, 0, 0];
    bytes.extend([0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x40]);
    assert!(matches!(Message::decode(&bytes), Err(DecodeError::TooLong(_))));
}

#[test]
fn an_overlong_varint_is_refused() {
    let bytes = [1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f];
    assert_eq!(Message::decode(&bytes), Err(DecodeError::Overflow));
}

#[test]
fn a_wrong_version_is_refused() {
    assert_eq!(Message::decode(&[9, 1, 2, 12, 0, 0]), Err(DecodeError::Version(9)));
}

#[test]
fn an_unknown_tag_is_refused() {
    assert_eq!(Message::decode(&[1, 1, 2, 99]), Err(DecodeError::Tag(99)));
}

/// A byte string longer than the item limit (the 1 MiB wedge of issue 8: a request of
/// 1,048,577 bytes encoded but never decoded) round-trips.
#[test]
fn a_request_above_the_item_limit_round_trips() {
    let request = Request {
        id: RequestId { proposer: ReplicaId(1), incarnation: 1, seq: 1 },
        payload: Bytes::from(vec![7u8; (1 << 20) + 1]),
    };
    let entries = vec![SlotValue { slot: Slot(1), value: Value::Batch(vec![request].into()) }];
    let msg = Message {
        from: ReplicaId(1),
        to: ReplicaId(2),
        body: Body::Accept { ballot: Ballot { round: 1, replica: 1 }, commit: Slot::ZERO, entries },
    };
    // Compared without printing: the payload would flood the output.
    let decoded = Message::decode(&msg.encode());
    assert!(decoded.as_ref() == Ok(&msg), "{:?}", decoded.map(|_| "a different message"));
}

#[test]
fn a_membership_without_info_keeps_its_old_encoding_and_one_with_info_round_trips() {
    // Logs written before members carried info hold tag 2; a membership without info is
    // still written so, and one with info (tag 3) comes back whole.
    let plain = Value::Config(Membership::new([1, 2, 3]));
    let bytes = rsl_core::message::encode_value(&plain);
    assert_eq!(bytes[1], 2, "{bytes:?}");
    assert_eq!(rsl_core::message::decode_value(&bytes), Ok(plain));
    let mut m = Membership::new([1, 2]);
    m.learners.push(ReplicaId(4));
    let info = MemberInfo { addr: "10.0.0.4:7001".into(), data: Bytes::from_static(b"6379") };
    m.info.insert(ReplicaId(4), info);
    let with = Value::Config(m);
    let bytes = rsl_core::message::encode_value(&with);
    assert_eq!(bytes[1], 3, "{bytes:?}");
    assert_eq!(rsl_core::message::decode_value(&bytes), Ok(with));
    // An address that is not UTF-8 is refused, never a panic.
    let mut bad = bytes.clone();
    let at = bad.windows(4).position(|w| w == b"10.0").unwrap();
    bad[at] = 0xff;
    assert_eq!(rsl_core::message::decode_value(&bad), Err(DecodeError::Utf8));
}

/// Shared decoding slices a request's payload out of the received buffer: no copy.
#[test]
fn a_shared_decode_does_not_copy_payloads() {
    let request = Request {
        id: RequestId { proposer: ReplicaId(1), incarnation: 1, seq: 1 },
        payload: Bytes::from(vec![3u8; 1 << 20]),
    };
    let entries = vec![SlotValue { slot: Slot(1), value: Value::Batch(vec![request].into()) }];
    let body =
        Body::Accept { ballot: Ballot { round: 1, replica: 1 }, commit: Slot::ZERO, entries };
    let bytes = Bytes::from(Message { from: ReplicaId(1), to: ReplicaId(2), body }.encode());
    let Ok(Message { body: Body::Accept { entries, .. }, .. }) = Message::decode_shared(&bytes)
    else {
        panic!("an accept")
    };
    let Value::Batch(requests) = &entries[0].value else { panic!("a batch") };
    let inside = bytes.as_ptr_range();
    assert!(inside.contains(&requests[0].payload.as_ptr()), "the payload was copied");
}

/// A batch is allocated at its count before its requests are decoded, so the count is held
/// to what the bytes left could carry, four bytes a request at least: a batch of the smallest
/// requests at that bound decodes, one more is refused before anything is allocated, and a
/// request that fails part-way fails the whole value (no partial batch).
#[test]
fn a_batch_count_is_bounded_by_the_bytes_left() {
    use rsl_core::message::{decode_value, encode_value};
    let request = |seq| Request {
        id: RequestId { proposer: ReplicaId(1), incarnation: 1, seq },
        payload: Bytes::new(),
    };
    let batch = Value::Batch((0..100).map(request).collect());
    let bytes = encode_value(&batch);
    // The version, the tag, the count (one byte: 100), then 100 requests of four bytes.
    assert_eq!(bytes.len(), 3 + 100 * 4);
    assert_eq!(decode_value(&bytes), Ok(batch));
    let mut over = bytes.clone();
    over[2] = 101;
    assert_eq!(decode_value(&over), Err(DecodeError::TooLong(101)));
    // The last request's payload length says 5, with no byte left.
    let mut cut = bytes.clone();
    *cut.last_mut().unwrap() = 5;
    assert_eq!(decode_value(&cut), Err(DecodeError::TooLong(5)));
}
