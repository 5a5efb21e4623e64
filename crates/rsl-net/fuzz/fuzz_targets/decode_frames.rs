//! Fuzzes the frame decoder and the hello decoder over arbitrary byte streams delivered in
//! arbitrary chunks (the first input byte picks the chunk size), checking that the decoder
//! never panics, that every accepted frame re-encodes to exactly the bytes it consumed, and that
//! every hello it accepts re-encodes identically.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use rsl_net::frame::{decode_eof, decode_frame, encode_frame, FrameKind, Hello};

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, stream)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(chunk).max(1);
    let mut buf = BytesMut::new();
    let mut reencoded = BytesMut::new();
    let mut fed = 0usize;
    'feed: for piece in stream.chunks(chunk) {
        buf.extend_from_slice(piece);
        fed += piece.len();
        loop {
            match decode_frame(&mut buf) {
                Ok(Some(frame)) => {
                    encode_frame(frame.kind, &frame.payload, &mut reencoded);
                    if frame.kind == FrameKind::Hello {
                        if let Ok(hello) = Hello::decode(&frame.payload) {
                            assert_eq!(&hello.encode()[..], &frame.payload[..]);
                        }
                    }
                }
                Ok(None) => break,
                Err(_) => break 'feed,
            }
        }
        assert_eq!(reencoded.len() + buf.len(), fed, "consumed bytes are accounted for");
    }
    assert_eq!(&reencoded[..], &stream[..reencoded.len()]);
    let _ = decode_eof(&buf);
    let _ = Hello::decode(stream);
});
