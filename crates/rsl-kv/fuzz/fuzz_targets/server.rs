//! Fuzzes the RESP server the way a client reaches it: the bytes go over a real TCP connection
//! to `rsl_kv::serve` over a fresh [`LocalEngine`] (the `local-server`'s engine), so they pass
//! through the request parser, the command tables, arity and argument validation, MULTI,
//! WATCH, pub/sub, blocking pops, scripting and the state machine.
//!
//! The first input byte picks the mode: an even byte sends the rest as raw bytes; an odd one
//! builds a pipeline of well-formed commands from the rest (a name from the server's and the
//! machine's command tables, in any case, with arguments drawn from keys, numbers at the edges
//! of their ranges, option words, sizes at the limits and raw bytes), so that the fuzzer
//! spends its time in argument validation rather than in the parser.
//!
//! What must hold, whatever the input: nothing panics (a panic in any server task aborts the
//! process, because libfuzzer-sys installs an aborting panic hook); the server closes the
//! connection within a deadline once the client has sent everything; everything it sends is a
//! sequence of complete, well-formed RESP replies (a prefix of one, when the server closed with
//! input unread and the kernel reset the connection); none is an internal error; and the state
//! machine's invariants hold afterwards.

#![no_main]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::BytesMut;
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use rsl_kv::resp::{encode_command, parse_reply, ParserLimits, Reply};
use rsl_kv::{serve, LocalEngine, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;

/// How long the server may take to answer everything and close, once the client has sent
/// its input and closed its side. Generous: the machine may be loaded.
const ANSWER_DEADLINE: Duration = Duration::from_secs(20);

/// The most commands one structured input builds.
const COMMANDS_MAX: usize = 24;

/// The most arguments one built command has, its name excluded.
const ARGS_MAX: usize = 8;

/// The most input bytes shown when replaying with `RSL_FUZZ_PRINT` set.
const PRINT_BYTES_MAX: usize = 2048;

fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime")
    })
}

const KEYS: &[&str] = &["k", "k2", "list", "set", "{t}a", "{t}b", "", "ch*", "h"];

const NUMBERS: &[&str] = &[
    "0",
    "1",
    "-1",
    "2",
    "3",
    "10",
    "100",
    "-100",
    "1000",
    "4294967296",
    "9223372036854775807",
    "-9223372036854775808",
    "9223372036854775808",
    "18446744073709551615",
    "1.5",
    "-0.5",
    "1e300",
    "-1e300",
    "inf",
    "-inf",
    "+inf",
    "nan",
    "0x10",
    " 1",
    "(1",
    "[a",
    "(a",
    "-",
    "+",
];

// A table: rows of words read better than one word per line.
#[rustfmt::skip]
const WORDS: &[&str] = &[
    "EX", "PX", "EXAT", "PXAT", "NX", "XX", "GT", "LT", "CH", "INCR", "KEEPTTL", "GET",
    "PERSIST", "WITHSCORES", "WITHSCORE", "LIMIT", "COUNT", "MATCH", "TYPE", "BYSCORE", "BYLEX",
    "REV", "LEFT", "RIGHT", "BEFORE", "AFTER", "RANK", "MAXLEN", "IDLETIME", "AUTH", "SETNAME",
    "default", "AND", "OR", "XOR", "NOT", "BIT", "BYTE", "WEIGHTS", "AGGREGATE", "SUM", "MIN",
    "MAX", "STORE", "BY", "ASC", "DESC", "ALPHA", "GET", "SET", "INFO", "LIST", "ID", "KILL",
    "PAUSE", "NUMSUB", "CHANNELS", "NUMPAT", "FLUSH", "LOAD", "REPLACE", "DUMP", "ABSTTL",
    "FREQ", "COPY", "DB", "SYNC", "ASYNC", "u8", "i16", "#1", "OVERFLOW", "WRAP", "SAT",
    "FAIL", "INCRBY", "NOMKSTREAM", "WITHVALUES", "FIELDS", "return 1",
    "return redis.call('set', KEYS[1], ARGV[1])", "while true do end",
    "return redis.call('blpop', 'k', 0)", "local t = {} for i=1,1e9 do t[i]=i end",
    "return {1, 'a', {2}}", "redis.call('flushall')", "*", "?", "[", "\\",
];

/// The server's bulk string and inline command limit in this target (the real one, 64 MiB,
/// is too large to reach often).
const BULK_BYTES_MAX: usize = 1 << 16;

/// The server's request array limit in this target.
const ARRAY_LEN_MAX: usize = 64;

/// Sizes at and around the limits a client can reach, and small ones.
const SIZES: &[usize] = &[0, 1, 2, 7, 64, 255, 256, BULK_BYTES_MAX, BULK_BYTES_MAX + 1];

fn command_names() -> &'static [String] {
    static NAMES: OnceLock<Vec<String>> = OnceLock::new();
    NAMES.get_or_init(|| {
        let mut names: Vec<String> = rsl_kv::server::COMMANDS
            .iter()
            .map(|spec| spec.name.to_string())
            .chain(rsl_kv::commands::COMMANDS.iter().map(|def| def.name.to_string()))
            .collect();
        names.extend(["rsl.forward", "rsl.keyspace", "nosuchcommand"].map(String::from));
        names
    })
}

fn argument(u: &mut Unstructured<'_>) -> Result<Vec<u8>> {
    Ok(match u.int_in_range(0..=5u8)? {
        0 => u.choose(KEYS)?.as_bytes().to_vec(),
        1 => u.choose(NUMBERS)?.as_bytes().to_vec(),
        2 => u.choose(WORDS)?.as_bytes().to_vec(),
        3 => vec![b'x'; *u.choose(SIZES)?],
        4 => u.int_in_range(i64::MIN..=i64::MAX)?.to_string().into_bytes(),
        _ => {
            let len = u.int_in_range(0..=16usize)?;
            u.bytes(len)?.to_vec()
        }
    })
}

/// A pipeline of well-formed RESP commands built from `u`.
fn pipeline(u: &mut Unstructured<'_>) -> Result<Vec<u8>> {
    let mut out = BytesMut::new();
    let names = command_names();
    for _ in 0..u.int_in_range(1..=COMMANDS_MAX)? {
        if u.is_empty() {
            break;
        }
        let mut name = u.choose(names)?.clone().into_bytes();
        if u.ratio(1, 4)? {
            name.make_ascii_uppercase();
        }
        let mut args = vec![name];
        for _ in 0..u.int_in_range(0..=ARGS_MAX)? {
            args.push(argument(u)?);
        }
        encode_command(&args, &mut out);
    }
    Ok(out.to_vec())
}

/// Sends `input` on a fresh connection to a fresh server, closes the sending side, and
/// returns everything the server sent until it closed, whether that output is complete, and
/// the engine it ran on. The output is incomplete when the server closed the connection with
/// input unread (after a protocol error or QUIT): the kernel then resets the connection, which
/// discards whatever the client had not read yet, as it would for Redis.
async fn exchange(input: &[u8], clock_step_ms: u64) -> (Vec<u8>, bool, Arc<LocalEngine>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a loopback port");
    let addr = listener.local_addr().expect("an address");
    let engine = Arc::new(LocalEngine::new());
    let now = Arc::new(AtomicU64::new(1_700_000_000_000));
    let config = ServerConfig {
        clock: Arc::new(move || now.fetch_add(clock_step_ms, Ordering::Relaxed)),
        // Small enough that arguments at and past the limits are cheap to build.
        parser_limits: ParserLimits {
            bulk_bytes_max: BULK_BYTES_MAX,
            array_len_max: ARRAY_LEN_MAX,
            inline_bytes_max: BULK_BYTES_MAX,
        },
        ..ServerConfig::default()
    };
    let server = tokio::spawn(serve(listener, Arc::clone(&engine), config));
    let mut client = TcpStream::connect(addr).await.expect("connects to the server");
    // Reset rather than linger in TIME_WAIT: millions of connections would exhaust the ports.
    // (Deprecated because a non-zero linger blocks the thread on drop; a zero one does not.)
    #[allow(deprecated)]
    client.set_linger(Some(Duration::ZERO)).expect("sets SO_LINGER");
    let (mut reader, mut writer) = client.split();
    let mut output = Vec::new();
    let talk = async {
        // The server may close first (a protocol error, QUIT); what it sent is still read.
        let send = async {
            let _ = writer.write_all(input).await;
            let _ = writer.shutdown().await;
        };
        let (_, read) = tokio::join!(send, reader.read_to_end(&mut output));
        read
    };
    let complete = match tokio::time::timeout(ANSWER_DEADLINE, talk).await {
        Ok(read) => read.is_ok(),
        Err(_) => panic!("the server did not close the connection within {ANSWER_DEADLINE:?}"),
    };
    server.abort();
    (output, complete, engine)
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let (input, clock_step_ms) = if mode % 2 == 0 {
        (rest.to_vec(), 1)
    } else {
        let mut u = Unstructured::new(rest);
        let step = u.int_in_range(0..=2_000u64).unwrap_or(0);
        (pipeline(&mut u).unwrap_or_default(), step)
    };
    if std::env::var_os("RSL_FUZZ_PRINT").is_some() {
        // Replaying a finding: show what the client sent, readably.
        let shown = String::from_utf8_lossy(&input[..input.len().min(PRINT_BYTES_MAX)]);
        eprintln!("clock step {clock_step_ms} ms, {} input bytes: {shown:?}", input.len());
    }
    let (output, complete, engine) = runtime().block_on(exchange(&input, clock_step_ms));
    if std::env::var_os("RSL_FUZZ_PRINT").is_some() {
        let tail = &output[output.len().saturating_sub(PRINT_BYTES_MAX)..];
        eprintln!("{} output bytes, ending {:?}", output.len(), String::from_utf8_lossy(tail));
    }
    let mut buf = BytesMut::from(&output[..]);
    while !buf.is_empty() {
        match parse_reply(&mut buf) {
            Ok(Some(Reply::Error(e))) => {
                assert!(!e.starts_with(b"ERR internal error"), "{}", String::from_utf8_lossy(&e))
            }
            Ok(Some(_)) => {}
            Ok(None) if complete => panic!("the server's output ends inside a reply"),
            Ok(None) => break,
            Err(e) => panic!("the server sent a malformed reply: {e}"),
        }
    }
    engine.with(|machine| machine.check_invariants());
});
