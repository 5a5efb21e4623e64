//! Fuzzes the wire decoders of rsl-core: `Message::decode`, `Message::decode_shared` and
//! `decode_value` must never panic, whatever the bytes; the two message decoders agree; what
//! they accept must round-trip (`decode(encode(m)) == m`), its `encoded_len` must be the length
//! `encode` writes, `encode_after` must be the prefix followed by `encode` (and so must the
//! header and the parts of `Body::encode_parts`, at any sharing threshold), and the canonical
//! encoding is never longer than the bytes it was decoded from (a decoder that accepted
//! trailing or padding bytes would break this).

#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use rsl_core::message::{decode_value, encode_value};
use rsl_core::Message;

fuzz_target!(|data: &[u8]| {
    let decoded = Message::decode(data);
    assert_eq!(Message::decode_shared(&Bytes::copy_from_slice(data)), decoded);
    if let Ok(message) = decoded {
        let encoded = message.encode();
        assert_eq!(encoded.len(), message.encoded_len());
        let prefix = &data[..data.len().min(3)];
        assert_eq!(message.encode_after(prefix), [prefix, &encoded[..]].concat());
        let mut parted = message.encode_header_after(prefix);
        let shared_min = usize::from(data.first().copied().unwrap_or(0) % 16);
        for part in message.body.encode_parts(shared_min) {
            assert!(!part.is_empty());
            parted.extend_from_slice(&part);
        }
        assert_eq!(parted, [prefix, &encoded[..]].concat());
        assert!(encoded.len() <= data.len());
        assert_eq!(Message::decode(&encoded).as_ref(), Ok(&message));
    }
    if let Ok(value) = decode_value(data) {
        let encoded = encode_value(&value);
        assert!(encoded.len() <= data.len());
        assert_eq!(decode_value(&encoded).as_ref(), Ok(&value));
    }
});
