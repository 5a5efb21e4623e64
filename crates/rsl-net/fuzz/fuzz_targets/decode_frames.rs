//! Fuzzes the frame decoder and the hello decoder over arbitrary byte streams delivered in
//! arbitrary chunks (the first input byte picks the chunk size), checking that the decoder
//! never panics, that every accepted frame re-encodes to exactly the bytes it consumed, and that
//! every hello it accepts re-encodes identically. Each accepted frame is also re-encoded as a
//! head and a shared tail (`encode_frame_head`, split where the chunk size says), which must
//! give the same bytes.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use rsl_net::frame::{decode_eof, decode_frame, encode_frame, encode_frame_head, FrameKind, Hello};
use rsl_net::SharedPayload;

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
                    let start = reencoded.len();
                    encode_frame(frame.kind, &frame.payload, &mut reencoded);
                    let at = chunk.min(frame.payload.len());
                    let (head, rest) = frame.payload.split_at(at);
                    let tail = SharedPayload::new(vec![bytes::Bytes::copy_from_slice(rest)]);
                    let mut parted = BytesMut::new();
                    encode_frame_head(frame.kind, head, &tail, &mut parted);
                    parted.extend_from_slice(rest);
                    assert_eq!(&parted[..], &reencoded[start..]);
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
