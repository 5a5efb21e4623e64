//! Fuzzes the RESP request parser over a byte stream delivered in chunks (the first input byte
//! picks the chunk size): it must never panic, must yield the same commands as when given the
//! whole stream at once, and every command must re-encode and parse back to itself.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use rsl_kv::resp::{encode_command, Command, Parser, ParserLimits, ProtocolError};

fn limits() -> ParserLimits {
    ParserLimits { bulk_bytes_max: 64, array_len_max: 8, inline_bytes_max: 64 }
}

fn parse_chunked(stream: &[u8], chunk: usize) -> (Vec<Command>, Option<ProtocolError>) {
    let mut parser = Parser::new(limits());
    let mut buf = BytesMut::new();
    let mut commands = Vec::new();
    for piece in stream.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            match parser.parse(&mut buf) {
                Ok(Some(cmd)) => commands.push(cmd),
                Ok(None) => break,
                Err(e) => return (commands, Some(e)),
            }
        }
    }
    (commands, None)
}

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, stream)) = data.split_first() else { return };
    let (chunked, chunked_error) = parse_chunked(stream, usize::from(chunk).max(1));
    let (whole, whole_error) = parse_chunked(stream, stream.len().max(1));
    // An error may be found earlier with the whole stream (limits apply to what is buffered),
    // but the commands before it agree.
    let agreed = chunked.len().min(whole.len());
    assert_eq!(chunked[..agreed], whole[..agreed]);
    if chunked_error.is_none() && whole_error.is_none() {
        assert_eq!(chunked, whole);
    }
    for cmd in chunked {
        assert!(!cmd.is_empty() && cmd.len() <= 8);
        let mut encoded = BytesMut::new();
        encode_command(&cmd, &mut encoded);
        let again = Parser::new(limits()).parse(&mut encoded).unwrap().unwrap();
        assert_eq!(again, cmd);
    }
});
