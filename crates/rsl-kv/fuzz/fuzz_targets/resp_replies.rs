//! Fuzzes the RESP reply parser (the client's and the forwarder's): it must never panic, and
//! every reply it accepts must encode in both protocols to bytes that parse back, whole, to a
//! reply encoding to the same bytes (a fixed point: reading RESP3 is lossy on purpose, e.g. a
//! big number reads as a bulk string and an attribute is skipped, so the input itself need not
//! come back). An input in RESP2's types only must re-encode exactly to the bytes consumed.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use rsl_kv::resp::{parse_reply, Proto};

/// The type bytes only RESP3 has. An input holding none of them anywhere is RESP2.
const RESP3_TYPES: &[u8] = b"_,#(=!%~>|";

fuzz_target!(|data: &[u8]| {
    let mut buf = BytesMut::from(data);
    let Ok(Some(reply)) = parse_reply(&mut buf) else { return };
    let consumed = &data[..data.len() - buf.len()];
    if !consumed.iter().any(|b| RESP3_TYPES.contains(b)) {
        assert_eq!(&reply.to_bytes_in(Proto::Resp2)[..], consumed, "RESP2 round trip");
    }
    for proto in [Proto::Resp2, Proto::Resp3] {
        let bytes = reply.to_bytes_in(proto);
        let mut again = BytesMut::from(&bytes[..]);
        let reparsed = parse_reply(&mut again)
            .unwrap_or_else(|e| panic!("{proto:?} encoding of {reply:?} does not parse: {e}"))
            .unwrap_or_else(|| panic!("{proto:?} encoding of {reply:?} is incomplete"));
        assert!(again.is_empty(), "{proto:?} encoding of {reply:?} parses with bytes left");
        assert_eq!(reparsed.to_bytes_in(proto), bytes, "{proto:?} fixed point of {reply:?}");
    }
});
