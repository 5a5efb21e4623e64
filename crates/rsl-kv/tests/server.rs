//! The RESP server over real TCP sockets on loopback: command semantics as a Redis client
//! sees them, pipelining, authentication, errors, and the engine boundary.

mod common;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use common::{bulk, err, int, manual_clock, ok, start, start_with, Client};
use rsl_kv::engine::{Engine, EngineError, EngineReply, EngineSender};
use rsl_kv::limits::PIPELINE_DEPTH_MAX;
use rsl_kv::resp::Reply;
use rsl_kv::server::COMMANDS;
use rsl_kv::ServerConfig;

const NOT_INTEGER: &str = "ERR value is not an integer or out of range";

#[tokio::test]
async fn ping_echo_select_and_inline_commands() {
    let mut c = Client::connect(start(ServerConfig::default()).await).await;
    assert_eq!(c.cmd(&["PING"]).await, Reply::Simple(Bytes::from("PONG")));
    assert_eq!(c.cmd(&["ping", "hi"]).await, bulk("hi"));
    assert_eq!(
        c.cmd(&["PING", "a", "b"]).await,
        err("ERR wrong number of arguments for 'ping' command")
    );
    assert_eq!(c.cmd(&["ECHO", "a\r\nb"]).await, bulk("a\r\nb"));
    assert_eq!(c.cmd(&["SELECT", "0"]).await, ok());
    assert_eq!(c.cmd(&["SELECT", "1"]).await, err("ERR DB index is out of range"));
    assert_eq!(c.cmd(&["SELECT", "x"]).await, err(NOT_INTEGER));
    c.send(b"PING\r\nSET \"a key\" 'v 1'\r\nGET \"a key\"\r\n").await;
    assert_eq!(c.reply().await, Reply::Simple(Bytes::from("PONG")));
    assert_eq!(c.reply().await, ok());
    assert_eq!(c.reply().await, bulk("v 1"));
}

#[tokio::test]
async fn set_with_nx_xx_and_get() {
    let mut c = Client::connect(start(ServerConfig::default()).await).await;
    assert_eq!(c.cmd(&["SET", "k", "1", "XX"]).await, Reply::Null);
    assert_eq!(c.cmd(&["GET", "k"]).await, Reply::Null);
    assert_eq!(c.cmd(&["SET", "k", "1", "nx"]).await, ok());
    assert_eq!(c.cmd(&["SET", "k", "2", "NX"]).await, Reply::Null);
    assert_eq!(c.cmd(&["SET", "k", "3", "XX", "GET"]).await, bulk("1"));
    assert_eq!(c.cmd(&["GET", "k"]).await, bulk("3"));
    assert_eq!(c.cmd(&["SET", "k", "4", "NX", "XX"]).await, err("ERR syntax error"));
    assert_eq!(c.cmd(&["SET", "k", "4", "BOGUS"]).await, err("ERR syntax error"));
    assert_eq!(c.cmd(&["GETSET", "k", "5"]).await, bulk("3"));
    assert_eq!(c.cmd(&["GETSET", "new", "5"]).await, Reply::Null);
    assert_eq!(c.cmd(&["APPEND", "k", "67"]).await, int(3));
    assert_eq!(c.cmd(&["STRLEN", "k"]).await, int(3));
    assert_eq!(c.cmd(&["MSET", "a", "1", "b", "2"]).await, ok());
    let mget = Reply::Array(vec![bulk("1"), bulk("2"), Reply::Null]);
    assert_eq!(c.cmd(&["MGET", "a", "b", "zz"]).await, mget);
    assert_eq!(c.cmd(&["EXISTS", "a", "b", "zz", "a"]).await, int(3));
    assert_eq!(c.cmd(&["DBSIZE"]).await, int(4));
    assert_eq!(c.cmd(&["DEL", "a", "b", "zz"]).await, int(2));
    assert_eq!(c.cmd(&["FLUSHALL"]).await, ok());
    assert_eq!(c.cmd(&["DBSIZE"]).await, int(0));
}

#[tokio::test]
async fn expiry_uses_the_stamps_of_writes() {
    let (now, config) = manual_clock(10_000);
    let mut c = Client::connect(start(config).await).await;
    assert_eq!(c.cmd(&["SET", "ex", "v", "EX", "1"]).await, ok()); // Deadline 11_000.
    assert_eq!(c.cmd(&["SET", "px", "v", "PX", "500"]).await, ok()); // Deadline 10_500.
    assert_eq!(c.cmd(&["SET", "pxat", "v", "PXAT", "10700"]).await, ok());
    assert_eq!(c.cmd(&["SET", "keep", "v", "PX", "500"]).await, ok());
    assert_eq!(c.cmd(&["SET", "keep", "w", "KEEPTTL"]).await, ok());
    now.store(10_500, Ordering::SeqCst);
    assert_eq!(c.cmd(&["SET", "tick", "1"]).await, ok());
    assert_eq!(c.cmd(&["GET", "px"]).await, bulk("v"));
    now.store(10_501, Ordering::SeqCst);
    // A read compares against its own stamp: the key is gone although no write moved the
    // machine's clock past its deadline (Redis never returns a key after its expiry).
    assert_eq!(c.cmd(&["GET", "px"]).await, Reply::Null);
    assert_eq!(c.cmd(&["SET", "tick", "2"]).await, ok());
    assert_eq!(c.cmd(&["GET", "px"]).await, Reply::Null);
    assert_eq!(c.cmd(&["GET", "keep"]).await, Reply::Null);
    assert_eq!(c.cmd(&["GET", "pxat"]).await, bulk("v"));
    assert_eq!(c.cmd(&["GET", "ex"]).await, bulk("v"));
    now.store(11_001, Ordering::SeqCst);
    assert_eq!(c.cmd(&["DEL", "nothing"]).await, int(0));
    assert_eq!(c.cmd(&["EXISTS", "ex", "pxat", "tick"]).await, int(1));
}

#[tokio::test]
async fn setnx_setex_expire_persist_ttl() {
    let (now, config) = manual_clock(50_000);
    let mut c = Client::connect(start(config).await).await;
    assert_eq!(c.cmd(&["SETNX", "k", "a"]).await, int(1));
    assert_eq!(c.cmd(&["SETNX", "k", "b"]).await, int(0));
    assert_eq!(c.cmd(&["TTL", "k"]).await, int(-1));
    assert_eq!(c.cmd(&["TTL", "nope"]).await, int(-2));
    assert_eq!(c.cmd(&["SETEX", "s", "10", "v"]).await, ok());
    assert_eq!(c.cmd(&["PTTL", "s"]).await, int(10_000));
    assert_eq!(c.cmd(&["PSETEX", "p", "1500", "v"]).await, ok());
    assert_eq!(c.cmd(&["TTL", "p"]).await, int(2));
    assert_eq!(
        c.cmd(&["SETEX", "s", "0", "v"]).await,
        err("ERR invalid expire time in 'setex' command")
    );
    assert_eq!(
        c.cmd(&["PSETEX", "s", "-1", "v"]).await,
        err("ERR invalid expire time in 'psetex' command")
    );
    assert_eq!(c.cmd(&["EXPIRE", "k", "100"]).await, int(1));
    assert_eq!(c.cmd(&["PTTL", "k"]).await, int(100_000));
    assert_eq!(c.cmd(&["PEXPIREAT", "k", "60000"]).await, int(1));
    assert_eq!(c.cmd(&["TTL", "k"]).await, int(10));
    assert_eq!(c.cmd(&["PERSIST", "k"]).await, int(1));
    assert_eq!(c.cmd(&["TTL", "k"]).await, int(-1));
    assert_eq!(c.cmd(&["EXPIRE", "nope", "100"]).await, int(0));
    assert_eq!(c.cmd(&["EXPIRE", "k", "x"]).await, err(NOT_INTEGER));
    assert_eq!(
        c.cmd(&["EXPIRE", "k", "9223372036854775807"]).await,
        err("ERR invalid expire time in 'expire' command")
    );
    now.store(51_501, Ordering::SeqCst);
    assert_eq!(c.cmd(&["EXPIRE", "k", "-1"]).await, int(1), "a past deadline deletes");
    assert_eq!(c.cmd(&["EXISTS", "k", "p", "s"]).await, int(1));
}

#[tokio::test]
async fn set_expiry_options_are_validated() {
    let mut c = Client::connect(start(ServerConfig::default()).await).await;
    let invalid = err("ERR invalid expire time in 'set' command");
    assert_eq!(c.cmd(&["SET", "k", "v", "EX", "0"]).await, invalid);
    assert_eq!(c.cmd(&["SET", "k", "v", "PX", "-5"]).await, invalid);
    assert_eq!(c.cmd(&["SET", "k", "v", "EX", "9223372036854775807"]).await, invalid);
    assert_eq!(c.cmd(&["SET", "k", "v", "PX", "9223372036854775807"]).await, invalid);
    assert_eq!(c.cmd(&["SET", "k", "v", "EX", "ten"]).await, err(NOT_INTEGER));
    assert_eq!(c.cmd(&["SET", "k", "v", "EX"]).await, err("ERR syntax error"));
    assert_eq!(c.cmd(&["SET", "k", "v", "EX", "1", "PX", "1"]).await, err("ERR syntax error"));
    assert_eq!(c.cmd(&["SET", "k", "v", "KEEPTTL", "EX", "1"]).await, err("ERR syntax error"));
    assert_eq!(c.cmd(&["EXISTS", "k"]).await, int(0), "no rejected SET took effect");
}

#[tokio::test]
async fn incr_family_with_redis_errors() {
    let mut c = Client::connect(start(ServerConfig::default()).await).await;
    assert_eq!(c.cmd(&["INCR", "n"]).await, int(1));
    assert_eq!(c.cmd(&["INCRBY", "n", "41"]).await, int(42));
    assert_eq!(c.cmd(&["DECR", "n"]).await, int(41));
    assert_eq!(c.cmd(&["DECRBY", "n", "50"]).await, int(-9));
    assert_eq!(c.cmd(&["INCRBY", "n", "1.5"]).await, err(NOT_INTEGER));
    assert_eq!(c.cmd(&["SET", "s", "abc"]).await, ok());
    assert_eq!(c.cmd(&["INCR", "s"]).await, err(NOT_INTEGER));
    assert_eq!(c.cmd(&["SET", "max", "9223372036854775807"]).await, ok());
    assert_eq!(c.cmd(&["INCR", "max"]).await, err("ERR increment or decrement would overflow"));
    assert_eq!(
        c.cmd(&["DECRBY", "n", "-9223372036854775808"]).await,
        err("ERR decrement would overflow")
    );
    assert_eq!(c.cmd(&["GET", "n"]).await, bulk("-9"));
}

#[tokio::test]
async fn pipelined_commands_are_answered_in_order() {
    let mut c = Client::connect(start(ServerConfig::default()).await).await;
    let mut batch = Vec::new();
    for i in 0..300 {
        batch.extend_from_slice(
            format!("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n${}\r\n{i}\r\n", i.to_string().len()).as_bytes(),
        );
        batch.extend_from_slice(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\nINCR c\r\n");
    }
    c.send(&batch).await;
    for i in 0..300 {
        assert_eq!(c.reply().await, ok());
        assert_eq!(c.reply().await, bulk(&i.to_string()));
        assert_eq!(c.reply().await, int(i + 1));
    }
}

#[tokio::test]
async fn a_command_split_across_reads_is_parsed_whole() {
    let mut c = Client::connect(start(ServerConfig::default()).await).await;
    // The PONG proves the server read (at least) up to the PING before the rest was sent.
    c.send(b"PING\r\n*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$11\r\nhello").await;
    assert_eq!(c.reply().await, Reply::Simple(Bytes::from("PONG")));
    c.send(b" worl").await;
    c.send(b"d\r").await;
    c.send(b"\n*2\r\n$3\r\nGET\r\n$3\r").await;
    assert_eq!(c.reply().await, ok());
    c.send(b"\nkey\r\n").await;
    assert_eq!(c.reply().await, bulk("hello world"));
}

#[tokio::test]
async fn auth_gates_every_command_but_auth_ping_and_quit() {
    let config = ServerConfig { requirepass: Some("s3cret".into()), ..ServerConfig::default() };
    let addr = start(config).await;
    let mut c = Client::connect(addr).await;
    let noauth = err("NOAUTH Authentication required.");
    assert_eq!(c.cmd(&["GET", "k"]).await, noauth);
    assert_eq!(c.cmd(&["SET", "k", "v"]).await, noauth);
    assert_eq!(c.cmd(&["INFO"]).await, noauth);
    assert_eq!(c.cmd(&["PING"]).await, Reply::Simple(Bytes::from("PONG")));
    let wrong = err("WRONGPASS invalid username-password pair or user is disabled.");
    assert_eq!(c.cmd(&["AUTH", "nope"]).await, wrong);
    assert_eq!(c.cmd(&["AUTH", "someone", "s3cret"]).await, wrong);
    assert_eq!(c.cmd(&["GET", "k"]).await, noauth);
    assert_eq!(c.cmd(&["AUTH", "s3cret"]).await, ok());
    assert_eq!(c.cmd(&["SET", "k", "v"]).await, ok());
    let mut other = Client::connect(addr).await;
    assert_eq!(other.cmd(&["GET", "k"]).await, noauth, "authentication is per connection");
    assert_eq!(other.cmd(&["AUTH", "default", "s3cret"]).await, ok());
    assert_eq!(other.cmd(&["GET", "k"]).await, bulk("v"));
}

#[tokio::test]
async fn hello_switches_protocol_and_can_authenticate() {
    let config = ServerConfig { requirepass: Some("pw".into()), ..ServerConfig::default() };
    let mut c = Client::connect(start(config).await).await;
    assert_eq!(c.cmd(&["HELLO", "4"]).await, err("NOPROTO unsupported protocol version"));
    assert_eq!(c.cmd(&["GET", "k"]).await, err("NOAUTH Authentication required."));
    assert!(matches!(c.cmd(&["HELLO", "3"]).await, Reply::Error(e) if e.starts_with(b"NOAUTH")));
    let wrong = err("WRONGPASS invalid username-password pair or user is disabled.");
    assert_eq!(c.cmd(&["HELLO", "2", "AUTH", "default", "no"]).await, wrong);
    match c.cmd(&["HELLO", "2", "AUTH", "default", "pw", "SETNAME", "me"]).await {
        Reply::Array(items) => {
            assert_eq!(items[0..2], [bulk("server"), bulk("redis")]);
            assert_eq!(items[4..6], [bulk("proto"), int(2)]);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(c.cmd(&["CLIENT", "GETNAME"]).await, bulk("me"));
    assert_eq!(c.cmd(&["GET", "k"]).await, Reply::Null);
    // RESP3: the description is a map, nulls are `_`, and replies take their RESP3 shapes.
    c.send(b"HELLO 3\r\n").await;
    let hello = c.raw_reply().await;
    assert!(hello.starts_with(b"%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n"), "{hello:?}");
    assert_eq!(&c.raw_cmd(&["GET", "k"]).await[..], b"_\r\n");
    assert_eq!(&c.raw_cmd(&["HSET", "h", "f", "v"]).await[..], b":1\r\n");
    assert_eq!(&c.raw_cmd(&["HGETALL", "h"]).await[..], b"%1\r\n$1\r\nf\r\n$1\r\nv\r\n");
    assert_eq!(&c.raw_cmd(&["ZADD", "z", "1.5", "m"]).await[..], b":1\r\n");
    assert_eq!(&c.raw_cmd(&["ZSCORE", "z", "m"]).await[..], b",1.5\r\n");
    assert_eq!(&c.raw_cmd(&["SADD", "s", "a"]).await[..], b":1\r\n");
    assert_eq!(&c.raw_cmd(&["SMEMBERS", "s"]).await[..], b"~1\r\n$1\r\na\r\n");
    assert_eq!(
        c.cmd(&["HELLO", "2"]).await,
        c.cmd(&["HELLO"]).await,
        "HELLO alone keeps the protocol"
    );
    assert_eq!(&c.raw_cmd(&["GET", "k"]).await[..], b"$-1\r\n");
    assert_eq!(&c.raw_cmd(&["ZSCORE", "z", "m"]).await[..], b"$3\r\n1.5\r\n");
}

#[tokio::test]
async fn auth_without_a_password_configured_is_an_error() {
    let mut c = Client::connect(start(ServerConfig::default()).await).await;
    match c.cmd(&["AUTH", "x"]).await {
        Reply::Error(text) => {
            assert!(text.starts_with(b"ERR AUTH <password> called without"), "{text:?}")
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn unknown_commands_and_wrong_arity_are_errors_not_disconnects() {
    let mut c = Client::connect(start(ServerConfig::default()).await).await;
    assert_eq!(
        c.cmd(&["FOO", "a", "b"]).await,
        err("ERR unknown command 'FOO', with args beginning with: 'a' 'b' ")
    );
    assert_eq!(
        c.cmd(&["nosuchcmd"]).await,
        err("ERR unknown command 'nosuchcmd', with args beginning with: ")
    );
    assert_eq!(
        c.cmd(&["xadd", "s"]).await,
        err("ERR wrong number of arguments for 'xadd' command")
    );
    assert_eq!(c.cmd(&["lpush"]).await, err("ERR wrong number of arguments for 'lpush' command"));
    assert_eq!(c.cmd(&["GET"]).await, err("ERR wrong number of arguments for 'get' command"));
    assert_eq!(
        c.cmd(&["get", "a", "b"]).await,
        err("ERR wrong number of arguments for 'get' command")
    );
    assert_eq!(c.cmd(&["SET", "k"]).await, err("ERR wrong number of arguments for 'set' command"));
    assert_eq!(
        c.cmd(&["MSET", "a", "1", "b"]).await,
        err("ERR wrong number of arguments for 'mset' command")
    );
    assert_eq!(c.cmd(&["DEL"]).await, err("ERR wrong number of arguments for 'del' command"));
    let long = "x".repeat(300);
    match c.cmd(&["NOPE", &long]).await {
        Reply::Error(text) => assert!(text.len() < 250, "the quoted arguments are bounded"),
        other => panic!("{other:?}"),
    }
    assert_eq!(c.cmd(&["PING"]).await, Reply::Simple(Bytes::from("PONG")), "still connected");
}

#[tokio::test]
async fn a_protocol_error_is_answered_then_closes() {
    let addr = start(ServerConfig::default()).await;
    let mut c = Client::connect(addr).await;
    c.send(b"PING\r\n*1\r\n$x\r\n").await;
    assert_eq!(c.reply().await, Reply::Simple(Bytes::from("PONG")));
    assert_eq!(c.reply().await, err("ERR Protocol error: invalid bulk length"));
    c.expect_closed().await;
    let mut other = Client::connect(addr).await;
    let Reply::Bulk(stats) = other.cmd(&["INFO", "stats"]).await else { panic!("a bulk string") };
    let stats = String::from_utf8(stats.to_vec()).unwrap();
    assert!(stats.contains("protocol_errors:1\r\n"), "the error is counted: {stats}");
    assert!(stats.contains("total_connections_received:2\r\n"), "{stats}");
}

#[tokio::test]
async fn quit_answers_ok_then_closes() {
    let mut c = Client::connect(start(ServerConfig::default()).await).await;
    c.send(b"SET k v\r\nQUIT\r\nGET k\r\n").await;
    assert_eq!(c.reply().await, ok());
    assert_eq!(c.reply().await, ok());
    c.expect_closed().await;
}

#[tokio::test]
async fn admin_commands_that_clients_send_at_connect() {
    let mut c = Client::connect(start(ServerConfig::default()).await).await;
    assert_eq!(c.cmd(&["CONFIG", "GET", "save"]).await, Reply::Array(vec![bulk("save"), bulk("")]));
    let both = Reply::Array(vec![bulk("appendonly"), bulk("no"), bulk("save"), bulk("")]);
    assert_eq!(c.cmd(&["config", "get", "save", "APPENDONLY"]).await, both);
    assert_eq!(c.cmd(&["CONFIG", "GET", "no-such-key"]).await, Reply::Array(vec![]));
    match c.cmd(&["CONFIG", "GET", "max*"]).await {
        Reply::Array(items) => {
            assert_eq!(items.len(), 8, "maxclients and the three maxmemory ones")
        }
        other => panic!("{other:?}"),
    }
    let count = COMMANDS.len() + rsl_kv::commands::COMMANDS.len();
    assert_eq!(c.cmd(&["COMMAND", "COUNT"]).await, int(count as i64));
    assert_eq!(c.cmd(&["COMMAND", "DOCS"]).await, Reply::Array(vec![]));
    match c.cmd(&["COMMAND"]).await {
        Reply::Array(items) => assert_eq!(items.len(), count),
        other => panic!("{other:?}"),
    }
    match c.cmd(&["COMMAND", "INFO", "get", "nope"]).await {
        Reply::Array(items) => assert_eq!(items[1], Reply::NullArray),
        other => panic!("{other:?}"),
    }
    // The commands whose keys are found from a key count or a keyword: Redis 7.0.15 reports
    // them `movablekeys`, with these first/last/step positions.
    for (name, positions) in [
        ("zunion", (0, 0, 0)),
        ("zinterstore", (1, 1, 1)),
        ("sintercard", (0, 0, 0)),
        ("zintercard", (0, 0, 0)),
        ("eval", (0, 0, 0)),
        ("evalsha_ro", (0, 0, 0)),
        ("xread", (0, 0, 0)),
        ("xreadgroup", (0, 0, 0)),
    ] {
        let Reply::Array(rows) = c.cmd(&["COMMAND", "INFO", name]).await else { panic!() };
        let Reply::Array(row) = &rows[0] else { panic!("{rows:?}") };
        let Reply::Array(flags) = &row[2] else { panic!("{row:?}") };
        let movable = Reply::Simple(Bytes::from_static(b"movablekeys"));
        assert!(flags.contains(&movable), "{name}: {flags:?}");
        let (first, last, step) = positions;
        assert_eq!(row[3..6], [int(first), int(last), int(step)], "{name}");
    }
    assert_eq!(c.cmd(&["CLIENT", "GETNAME"]).await, Reply::Null);
    assert_eq!(c.cmd(&["CLIENT", "SETNAME", "bench"]).await, ok());
    assert_eq!(c.cmd(&["CLIENT", "GETNAME"]).await, bulk("bench"));
    assert_eq!(c.cmd(&["CLIENT", "SETINFO", "lib-name", "x"]).await, ok());
    assert!(matches!(c.cmd(&["CLIENT", "ID"]).await, Reply::Integer(id) if id > 0));
    assert!(matches!(c.cmd(&["CLIENT", "BOGUS"]).await, Reply::Error(_)));
    assert!(matches!(c.cmd(&["CONFIG", "BOGUS"]).await, Reply::Error(_)));
    assert_eq!(c.cmd(&["SET", "k", "v", "EX", "100"]).await, ok());
    let Reply::Bulk(info) = c.cmd(&["INFO"]).await else { panic!("INFO is a bulk string") };
    let info = String::from_utf8(info.to_vec()).unwrap();
    for field in [
        "# Server\r\n",
        "redis_version:",
        "# Replication\r\n",
        "role:master\r\n",
        "engine:local\r\n",
        "db0:keys=1,expires=1,",
    ] {
        assert!(info.contains(field), "{field:?} in {info:?}");
    }
    let Reply::Bulk(info) = c.cmd(&["INFO", "replication"]).await else { panic!("a bulk string") };
    assert!(info.starts_with(b"# Replication\r\n"), "{info:?}");
}

#[tokio::test]
async fn concurrent_clients_see_one_state() {
    let addr = start(ServerConfig::default()).await;
    let mut tasks = Vec::new();
    for _ in 0..10 {
        tasks.push(tokio::spawn(async move {
            let mut c = Client::connect(addr).await;
            for _ in 0..50 {
                assert!(matches!(c.cmd(&["INCR", "counter"]).await, Reply::Integer(_)));
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let mut c = Client::connect(addr).await;
    assert_eq!(c.cmd(&["GET", "counter"]).await, bulk("500"));
}

/// An engine that fails every request in a fixed way.
struct FailingEngine(Option<EngineError>);

impl Engine for FailingEngine {
    fn write(&self, _: Bytes) -> EngineReply {
        let (tx, rx) = EngineReply::channel();
        if let Some(error) = self.0.clone() {
            let _ = tx.send(Err(error));
        } // Otherwise the sender is dropped unanswered.
        rx
    }

    fn read(&self, request: Bytes) -> EngineReply {
        self.write(request)
    }

    fn is_primary(&self) -> bool {
        false
    }
}

#[tokio::test]
async fn engine_errors_become_redis_errors() {
    let cases = [
        (
            Some(EngineError::NotPrimary { primary: Some("127.0.0.2:6379".into()) }),
            "TRYAGAIN not primary; the primary is 127.0.0.2:6379",
        ),
        (
            Some(EngineError::NotPrimary { primary: None }),
            "TRYAGAIN not primary; no primary is known",
        ),
        (Some(EngineError::Overloaded), "ERR overloaded, retry later"),
        (Some(EngineError::ShuttingDown), "ERR shutting down"),
        (None, "ERR request dropped, the outcome is unknown"),
    ];
    for (error, text) in cases {
        let addr = start_with(Arc::new(FailingEngine(error)), ServerConfig::default()).await;
        let mut c = Client::connect(addr).await;
        assert_eq!(c.cmd(&["SET", "k", "v"]).await, err(text));
        assert_eq!(c.cmd(&["GET", "k"]).await, err(text));
        let Reply::Bulk(info) = c.cmd(&["INFO"]).await else { panic!("a bulk string") };
        assert!(info.windows(11).any(|w| w == b"role:slave\r"), "{info:?}");
    }
}

/// An engine that holds requests until it has `batch` of them, then answers them in reverse
/// order, each with its arrival index.
struct ReorderEngine {
    batch: usize,
    held: Mutex<Vec<EngineSender>>,
}

impl Engine for ReorderEngine {
    fn write(&self, _: Bytes) -> EngineReply {
        let (tx, rx) = EngineReply::channel();
        let mut held = self.held.lock().unwrap();
        held.push(tx);
        if held.len() == self.batch {
            for (index, tx) in held.drain(..).enumerate().rev() {
                let _ = tx.send(Ok(Reply::Integer(index as i64).to_bytes()));
            }
        }
        rx
    }

    fn read(&self, request: Bytes) -> EngineReply {
        self.write(request)
    }
}

#[tokio::test]
async fn pipelined_requests_reach_the_engine_without_waiting_and_replies_keep_order() {
    // The engine answers nothing until all 5 requests arrived: a server that waited for one
    // reply before submitting the next would hang here.
    let engine = Arc::new(ReorderEngine { batch: 5, held: Mutex::new(Vec::new()) });
    let mut c = Client::connect(start_with(engine, ServerConfig::default()).await).await;
    c.send(b"SET a 1\r\nGET a\r\nPING\r\nINCR n\r\nDEL a\r\nGET b\r\n").await;
    assert_eq!(c.reply().await, int(0));
    assert_eq!(c.reply().await, int(1));
    assert_eq!(c.reply().await, Reply::Simple(Bytes::from("PONG")));
    assert_eq!(c.reply().await, int(2));
    assert_eq!(c.reply().await, int(3));
    assert_eq!(c.reply().await, int(4));
}

/// An engine that holds every request until the test releases them, recording how many it
/// ever held at once.
struct HoldingEngine {
    state: Mutex<Holding>,
    held_count: tokio::sync::watch::Sender<usize>,
}

#[derive(Default)]
struct Holding {
    held: Vec<EngineSender>,
    released: bool,
    held_max: usize,
}

impl HoldingEngine {
    fn release(&self) {
        let mut state = self.state.lock().unwrap();
        state.released = true;
        for tx in state.held.drain(..) {
            let _ = tx.send(Ok(Reply::ok().to_bytes()));
        }
    }
}

impl Engine for HoldingEngine {
    fn write(&self, _: Bytes) -> EngineReply {
        let (tx, rx) = EngineReply::channel();
        let mut state = self.state.lock().unwrap();
        if state.released {
            let _ = tx.send(Ok(Reply::ok().to_bytes()));
        } else {
            state.held.push(tx);
            state.held_max = state.held_max.max(state.held.len());
            self.held_count.send_replace(state.held.len());
        }
        rx
    }

    fn read(&self, request: Bytes) -> EngineReply {
        self.write(request)
    }
}

#[tokio::test]
async fn a_connection_holds_at_most_the_pipeline_depth() {
    let (held_count, mut held_rx) = tokio::sync::watch::channel(0);
    let engine = Arc::new(HoldingEngine { state: Mutex::default(), held_count });
    let addr = start_with(Arc::clone(&engine), ServerConfig::default()).await;
    let mut c = Client::connect(addr).await;
    let total = 3 * PIPELINE_DEPTH_MAX;
    let batch = b"SET k v\r\n".repeat(total);
    // The server stops reading at the limit, so the send completes only after the release.
    let sender = tokio::spawn(async move {
        c.send(&batch).await;
        c
    });
    let reached = held_rx.wait_for(|held| *held == PIPELINE_DEPTH_MAX);
    tokio::time::timeout(common::REPLY_WAIT_MAX, reached).await.unwrap().unwrap();
    engine.release();
    let mut c = sender.await.unwrap();
    for _ in 0..total {
        assert_eq!(c.reply().await, ok());
    }
    assert_eq!(engine.state.lock().unwrap().held_max, PIPELINE_DEPTH_MAX);
}

/// The server's command count (INFO stats) as `c` reads it.
async fn commands_processed(c: &mut Client) -> u64 {
    let Reply::Bulk(info) = c.cmd(&["INFO", "stats"]).await else { panic!("a bulk") };
    let text = String::from_utf8_lossy(&info).into_owned();
    let line = text.lines().find_map(|l| l.strip_prefix("total_commands_processed:"));
    line.expect("the figure").trim().parse().expect("a number")
}

/// The commands of one read are counted, and the connection's last command shown, once for
/// all of them: another client sees every one of them counted and the last one named as soon
/// as their replies are out (the counting and the clock read are per read, not per command).
#[tokio::test]
async fn a_pipeline_is_counted_whole_and_its_last_command_shown_to_other_clients() {
    let (now, config) = manual_clock(1_000_000);
    let addr = start(config).await;
    let mut watcher = Client::connect(addr).await;
    let mut piped = Client::connect(addr).await;
    let before = commands_processed(&mut watcher).await;
    let mut batch = Vec::new();
    for i in 0..20 {
        batch.extend_from_slice(
            format!("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\n{:02}\r\n", i).as_bytes(),
        );
        batch.extend_from_slice(b"*1\r\n$4\r\nPING\r\n");
    }
    batch.extend_from_slice(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
    piped.send(&batch).await;
    for _ in 0..20 {
        assert_eq!(piped.reply().await, ok());
        assert_eq!(piped.reply().await, Reply::Simple(Bytes::from("PONG")));
    }
    assert_eq!(piped.reply().await, bulk("19"));
    // 41 commands of the pipeline, and the second INFO itself.
    assert_eq!(commands_processed(&mut watcher).await, before + 42);
    now.fetch_add(7_000, Ordering::SeqCst);
    let Reply::Bulk(list) = watcher.cmd(&["CLIENT", "LIST"]).await else { panic!("a bulk") };
    let list = String::from_utf8_lossy(&list).into_owned();
    let line = |c: &Client| {
        let port = format!(":{} ", c.local_port());
        list.lines().find(|l| l.contains(&port)).unwrap_or_else(|| panic!("{port} in {list}"))
    };
    let (piped_line, watcher_line) = (line(&piped), line(&watcher));
    assert!(piped_line.contains(" idle=7 ") && piped_line.contains(" cmd=get "), "{piped_line}");
    assert!(
        watcher_line.contains(" idle=0 ") && watcher_line.contains(" cmd=client "),
        "{watcher_line}"
    );
}
