//! Fuzzes the RESP reply parser: it must never panic, and every reply it accepts must
//! re-encode to exactly the bytes it consumed.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use rsl_kv::resp::parse_reply;

fuzz_target!(|data: &[u8]| {
    let mut buf = BytesMut::from(data);
    if let Ok(Some(reply)) = parse_reply(&mut buf) {
        let consumed = data.len() - buf.len();
        assert_eq!(&reply.to_bytes()[..], &data[..consumed]);
    }
});
