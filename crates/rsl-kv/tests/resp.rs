//! The RESP2 codec: request parsing (array and inline forms, limits, incremental input) and
//! reply encoding, by examples and by properties.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use rsl_kv::resp::{
    encode_command, parse_i64, parse_reply, Command, Parser, ParserLimits, Proto, ProtocolError,
    Reply,
};

/// Parses every complete command in `input` and returns them with what the parser said last.
fn parse_all(parser: &mut Parser, input: &[u8]) -> (Vec<Command>, Result<(), ProtocolError>) {
    let mut buf = BytesMut::from(input);
    let mut commands = Vec::new();
    loop {
        match parser.parse(&mut buf) {
            Ok(Some(cmd)) => commands.push(cmd),
            Ok(None) => return (commands, Ok(())),
            Err(e) => return (commands, Err(e)),
        }
    }
}

fn check(input: &[u8], expected: &[&[&str]]) {
    let (commands, outcome) = parse_all(&mut Parser::default(), input);
    assert_eq!(outcome, Ok(()), "input {:?}", String::from_utf8_lossy(input));
    let expected: Vec<Command> = expected
        .iter()
        .map(|cmd| cmd.iter().map(|a| Bytes::copy_from_slice(a.as_bytes())).collect())
        .collect();
    assert_eq!(commands, expected, "input {:?}", String::from_utf8_lossy(input));
}

fn check_error(limits: ParserLimits, input: &[u8], expected: ProtocolError) {
    let (_, outcome) = parse_all(&mut Parser::new(limits), input);
    assert_eq!(outcome, Err(expected), "input {:?}", String::from_utf8_lossy(input));
}

fn small_limits() -> ParserLimits {
    ParserLimits { bulk_bytes_max: 8, array_len_max: 4, inline_bytes_max: 16 }
}

#[test]
fn arrays_of_bulk_strings() {
    check(b"*1\r\n$4\r\nPING\r\n", &[&["PING"]]);
    check(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n", &[&["SET", "k", ""]]);
    check(b"*2\r\n$3\r\nGET\r\n$4\r\na\r\nb\r\n", &[&["GET", "a\r\nb"]]);
}

#[test]
fn empty_and_null_arrays_are_skipped() {
    check(b"*0\r\n*-1\r\n*1\r\n$4\r\nPING\r\n", &[&["PING"]]);
}

#[test]
fn inline_commands() {
    check(b"PING\r\n", &[&["PING"]]);
    check(b"PING\n", &[&["PING"]]);
    check(b"  SET   k  v \r\n", &[&["SET", "k", "v"]]);
    check(b"\r\n\n  \r\nPING\r\n", &[&["PING"]]);
    check(b"SET \"a b\" 'c d'\r\n", &[&["SET", "a b", "c d"]]);
    check(b"SET \"\\x41\\n\" 'it\\'s'\r\n", &[&["SET", "A\n", "it's"]]);
    check(b"ECHO \"\"\r\n", &[&["ECHO", ""]]);
}

#[test]
fn inline_quote_errors() {
    let limits = ParserLimits::default();
    check_error(limits, b"SET \"abc\r\n", ProtocolError::UnbalancedQuotes);
    check_error(limits, b"SET 'abc\r\n", ProtocolError::UnbalancedQuotes);
    check_error(limits, b"SET \"a\"b\r\n", ProtocolError::UnbalancedQuotes);
}

#[test]
fn pipelined_commands_parse_in_order() {
    let mut input = BytesMut::new();
    encode_command(&["SET", "a", "1"], &mut input);
    input.extend_from_slice(b"PING\r\n");
    encode_command(&["GET", "a"], &mut input);
    check(&input, &[&["SET", "a", "1"], &["PING"], &["GET", "a"]]);
}

#[test]
fn limits_are_enforced() {
    let limits = small_limits();
    check_error(limits, b"*5\r\n", ProtocolError::InvalidArrayLength);
    check_error(limits, b"*x\r\n", ProtocolError::InvalidArrayLength);
    check_error(limits, b"*1\r\n$9\r\n", ProtocolError::InvalidBulkLength);
    check_error(limits, b"*1\r\n$-1\r\n", ProtocolError::InvalidBulkLength);
    check_error(limits, b"*1\r\n$+1\r\n", ProtocolError::InvalidBulkLength);
    check_error(limits, b"*1\r\n:1\r\n", ProtocolError::ExpectedBulk(':'));
    check_error(limits, b"*1\r\n$1\r\nabc", ProtocolError::MissingCrlf);
    check_error(limits, b"PING PING PING PING PING", ProtocolError::InlineTooLong);
    check_error(limits, b"PING PING PING PING\r\n", ProtocolError::InlineTooLong);
    check_error(limits, &[b'*'; 40], ProtocolError::HeaderTooLong);
    // At the limits, everything is accepted.
    check(b"*1\r\n$8\r\n12345678\r\n", &[&["12345678"]]);
}

/// Found by the `resp_requests` fuzz target: an inline command split into more arguments
/// than `array_len_max` was accepted, although the array form of it is refused.
#[test]
fn inline_commands_obey_the_argument_limit() {
    let limits = small_limits();
    check_error(limits, b"a b c d e\r\n", ProtocolError::InvalidArrayLength);
    check_error(limits, b"a\tb\tc\td\te\n", ProtocolError::InvalidArrayLength);
    let (commands, outcome) = parse_all(&mut Parser::new(limits), b"a b c d\r\n");
    assert_eq!((commands.len(), outcome), (1, Ok(())), "at the limit, accepted");
}

/// Found by the `resp_replies` fuzz target: a simple or error reply line holding a bare LF
/// was accepted, and re-encoding it panicked (a line reply holds no CR or LF).
#[test]
fn reply_lines_with_cr_or_lf_are_refused() {
    for input in [&b"-ERR a\nb\r\n"[..], b"+OK\rx\r\n", b"+a\n\r\n", b"(1\n2\r\n"] {
        let outcome = parse_reply(&mut BytesMut::from(input));
        assert!(outcome.is_err(), "{:?} gave {outcome:?}", String::from_utf8_lossy(input));
    }
    assert_eq!(
        parse_reply(&mut BytesMut::from(&b"-ERR a b\r\n"[..])),
        Ok(Some(Reply::error("ERR a b")))
    );
}

/// Found by the `resp_replies` fuzz target (its input kept as is): a RESP3 null with bytes
/// between the `_` and the CRLF was read as a null. RESP3's null is exactly `_\r\n`; anything
/// else after the `_` is a protocol error.
#[test]
fn a_resp3_null_is_exactly_underscore_crlf() {
    let found = b"______XXXXXPXXX\x02\r\n\x00\x00\xff\x00\x00______-\x02\x9d\x9d\x9d\x9d";
    for input in [&found[..], b"_x\r\n", b"_ \r\n", b"*1\r\n_0\r\n"] {
        assert_eq!(
            parse_reply(&mut BytesMut::from(input)),
            Err(ProtocolError::InvalidNull),
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
    let mut buf = BytesMut::from(&b"_\r\n*2\r\n_\r\n:1\r\n"[..]);
    assert_eq!(parse_reply(&mut buf), Ok(Some(Reply::Null)));
    assert_eq!(parse_reply(&mut buf), Ok(Some(Reply::Array(vec![Reply::Null, Reply::Integer(1)]))));
    assert!(buf.is_empty());
    assert_eq!(parse_reply(&mut BytesMut::from(&b"_\r"[..])), Ok(None), "incomplete, not wrong");
}

/// Every reply the parser accepts encodes in both protocols (the `resp_replies` fuzz target's
/// property): a RESP3 blob error may hold CR or LF, which an error line cannot, so they are
/// read as spaces (encoding the error would otherwise panic).
#[test]
fn a_blob_error_with_cr_or_lf_reads_as_one_line() {
    let mut buf = BytesMut::from(&b"!9\r\nERR a\r\nb\n\r\n"[..]);
    let reply = parse_reply(&mut buf).unwrap().unwrap();
    assert_eq!(reply, Reply::Error(Bytes::from_static(b"ERR a  b ")));
    assert!(buf.is_empty());
    assert_eq!(&reply.to_bytes_in(Proto::Resp3)[..], b"-ERR a  b \r\n");
    assert_eq!(&reply.to_bytes_in(Proto::Resp2)[..], b"-ERR a  b \r\n");
}

#[test]
fn a_partial_bulk_waits_for_its_bytes() {
    let mut parser = Parser::default();
    let mut buf = BytesMut::from(&b"*2\r\n$3\r\nGET\r\n$5\r\nab"[..]);
    assert_eq!(parser.parse(&mut buf), Ok(None));
    buf.extend_from_slice(b"cde\r");
    assert_eq!(parser.parse(&mut buf), Ok(None));
    buf.extend_from_slice(b"\n");
    let cmd = parser.parse(&mut buf).unwrap().unwrap();
    assert_eq!(cmd, vec![Bytes::from("GET"), Bytes::from("abcde")]);
    assert!(buf.is_empty());
}

#[test]
fn integers_follow_redis_string2ll() {
    for (text, expected) in [
        ("0", Some(0)),
        ("-1", Some(-1)),
        ("42", Some(42)),
        ("9223372036854775807", Some(i64::MAX)),
        ("-9223372036854775808", Some(i64::MIN)),
        ("9223372036854775808", None),
        ("-9223372036854775809", None),
        ("-0", None),
        ("01", None),
        ("+1", None),
        (" 1", None),
        ("1 ", None),
        ("", None),
        ("-", None),
        ("1.5", None),
        ("99999999999999999999", None),
    ] {
        assert_eq!(parse_i64(text.as_bytes()), expected, "{text:?}");
    }
}

#[test]
fn replies_encode_as_resp2() {
    let cases: [(Reply, &[u8]); 7] = [
        (Reply::ok(), b"+OK\r\n"),
        (Reply::error("ERR bad\r\nthing"), b"-ERR bad  thing\r\n"),
        (Reply::Integer(-7), b":-7\r\n"),
        (Reply::bulk(b"a\r\nb"), b"$4\r\na\r\nb\r\n"),
        (Reply::Null, b"$-1\r\n"),
        (Reply::NullArray, b"*-1\r\n"),
        (Reply::Array(vec![Reply::Integer(1), Reply::Null]), b"*2\r\n:1\r\n$-1\r\n"),
    ];
    for (reply, bytes) in cases {
        assert_eq!(&reply.to_bytes()[..], bytes, "{reply:?}");
    }
}

fn arg() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..40)
}

fn command() -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop::collection::vec(arg(), 1..6)
}

fn reply() -> impl Strategy<Value = Reply> {
    let line = "[a-zA-Z0-9 ]{0,20}".prop_map(|s| Bytes::from(s.into_bytes()));
    let leaf = prop_oneof![
        line.clone().prop_map(Reply::Simple),
        line.prop_map(Reply::Error),
        any::<i64>().prop_map(Reply::Integer),
        arg().prop_map(|a| Reply::Bulk(Bytes::from(a))),
        Just(Reply::Null),
        Just(Reply::NullArray),
    ];
    leaf.prop_recursive(3, 24, 5, |inner| prop::collection::vec(inner, 0..5).prop_map(Reply::Array))
}

proptest! {
    #[test]
    fn encoded_commands_parse_back(commands in prop::collection::vec(command(), 1..5)) {
        let mut input = BytesMut::new();
        for cmd in &commands {
            encode_command(cmd, &mut input);
        }
        let (parsed, outcome) = parse_all(&mut Parser::default(), &input);
        prop_assert_eq!(outcome, Ok(()));
        let expected: Vec<Command> =
            commands.iter().map(|c| c.iter().map(|a| Bytes::copy_from_slice(a)).collect()).collect();
        prop_assert_eq!(parsed, expected);
    }

    #[test]
    fn truncated_input_waits_then_completes(cmd in command(), cut in any::<prop::sample::Index>()) {
        let mut input = BytesMut::new();
        encode_command(&cmd, &mut input);
        let cut = cut.index(input.len());
        let mut parser = Parser::default();
        let mut buf = BytesMut::from(&input[..cut]);
        prop_assert_eq!(parser.parse(&mut buf), Ok(None));
        buf.extend_from_slice(&input[cut..]);
        let parsed = parser.parse(&mut buf).unwrap().unwrap();
        let expected: Command = cmd.iter().map(|a| Bytes::copy_from_slice(a)).collect();
        prop_assert_eq!(parsed, expected);
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn byte_by_byte_input_parses_the_same(commands in prop::collection::vec(command(), 1..4)) {
        let mut input = BytesMut::new();
        for cmd in &commands {
            encode_command(cmd, &mut input);
        }
        let mut parser = Parser::default();
        let mut buf = BytesMut::new();
        let mut parsed = Vec::new();
        for byte in input.iter() {
            buf.extend_from_slice(&[*byte]);
            while let Some(cmd) = parser.parse(&mut buf).unwrap() {
                parsed.push(cmd);
            }
        }
        prop_assert_eq!(parsed.len(), commands.len());
    }

    #[test]
    fn arbitrary_bytes_never_panic(input in prop::collection::vec(any::<u8>(), 0..200)) {
        let (commands, _) = parse_all(&mut Parser::new(small_limits()), &input);
        for cmd in commands {
            prop_assert!(!cmd.is_empty() && cmd.len() <= 4);
            prop_assert!(cmd.iter().all(|a| a.len() <= 16));
        }
        let mut buf = BytesMut::from(&input[..]);
        let _ = parse_reply(&mut buf);
    }

    #[test]
    fn arbitrary_resp_like_bytes_never_panic(
        parts in prop::collection::vec(prop_oneof![
            Just(b"*".to_vec()), Just(b"$".to_vec()), Just(b"\r\n".to_vec()),
            Just(b"-1".to_vec()), Just(b"3".to_vec()), Just(b"\"".to_vec()),
            Just(b"'".to_vec()), Just(b"\\x".to_vec()), Just(b" ".to_vec()), arg(),
        ], 0..30)
    ) {
        let input: Vec<u8> = parts.concat();
        let _ = parse_all(&mut Parser::new(small_limits()), &input);
        let _ = parse_all(&mut Parser::default(), &input);
        let _ = parse_reply(&mut BytesMut::from(&input[..]));
    }

    #[test]
    fn replies_parse_back(reply in reply(), cut in any::<prop::sample::Index>()) {
        let bytes = reply.to_bytes();
        let mut buf = BytesMut::from(&bytes[..]);
        prop_assert_eq!(parse_reply(&mut buf), Ok(Some(reply)));
        prop_assert!(buf.is_empty());
        let cut = cut.index(bytes.len());
        let mut partial = BytesMut::from(&bytes[..cut]);
        prop_assert_eq!(parse_reply(&mut partial), Ok(None));
        prop_assert_eq!(partial.len(), cut, "an incomplete reply consumes nothing");
    }

    #[test]
    fn integers_round_trip(n in any::<i64>()) {
        prop_assert_eq!(parse_i64(n.to_string().as_bytes()), Some(n));
    }
}
