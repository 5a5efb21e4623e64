//! The KV state machine: command semantics, deterministic expiry, transactions and WATCH,
//! checkpoints of every type, and the binary request format, by examples and by properties.

use bytes::Bytes;
use proptest::prelude::*;
use rsl::StateMachine;
use rsl_kv::checkpoint::CheckpointError;
use rsl_kv::request::{DecodeError, Request, Watch, WriteOp};
use rsl_kv::resp::Proto;
use rsl_kv::KvMachine;

/// A machine driven through the `StateMachine` interface, checking invariants at every step.
struct Check {
    machine: KvMachine,
    slot: u64,
}

fn args(words: &[&str]) -> Vec<Bytes> {
    words.iter().map(|w| Bytes::copy_from_slice(w.as_bytes())).collect()
}

impl Check {
    fn new() -> Check {
        Check { machine: KvMachine::new(), slot: 0 }
    }

    fn execute(&mut self, request: Request) -> String {
        self.slot += 1;
        let reply = self.machine.execute(self.slot, &request.encode());
        self.machine.check_invariants();
        String::from_utf8_lossy(&reply).into_owned()
    }

    /// Executes a command stamped `stamp_ms` and asserts its RESP2 reply.
    /// (An expected reply ending in `:` checks only that prefix: a random integer follows.)
    fn write(&mut self, stamp_ms: u64, command: &[&str], expected: &str) {
        let reply = self.execute(Request::command(stamp_ms, Proto::Resp2, args(command)));
        if expected.ends_with(':') {
            assert!(reply.starts_with(expected), "{command:?} at {stamp_ms}: {reply}");
        } else {
            assert_eq!(reply, expected, "{command:?} at {stamp_ms}");
        }
        assert!(self.machine.now_ms() >= stamp_ms);
    }

    fn tick(&mut self, stamp_ms: u64) {
        assert_eq!(self.execute(Request::Write { stamp_ms, op: WriteOp::Tick }), "+OK\r\n");
    }

    /// Reads a command at `stamp_ms` and asserts its RESP2 reply.
    fn read_at(&self, stamp_ms: u64, command: &[&str], expected: &str) {
        let reply =
            self.machine.read(&Request::read(stamp_ms, Proto::Resp2, args(command)).encode());
        assert_eq!(String::from_utf8_lossy(&reply), expected, "{command:?}");
    }

    /// Reads a command as of the machine's own clock.
    fn read(&self, command: &[&str], expected: &str) {
        self.read_at(0, command, expected);
    }

    fn get(&self, key: &str, expected: Option<&str>) {
        let expected =
            expected.map_or("$-1\r\n".to_string(), |v| format!("${}\r\n{v}\r\n", v.len()));
        self.read(&["GET", key], &expected);
    }
}

#[test]
fn set_conditions_and_get_option() {
    let mut c = Check::new();
    c.write(1, &["SET", "k", "a", "XX"], "$-1\r\n");
    c.get("k", None);
    c.write(1, &["SET", "k", "a", "NX"], "+OK\r\n");
    c.write(1, &["SET", "k", "b", "NX"], "$-1\r\n");
    c.get("k", Some("a"));
    c.write(1, &["SET", "k", "c", "XX", "GET"], "$1\r\na\r\n");
    c.get("k", Some("c"));
    c.write(1, &["SET", "k", "d", "NX", "GET"], "$1\r\nc\r\n");
    c.get("k", Some("c"));
    c.write(1, &["SET", "n", "e", "GET"], "$-1\r\n");
    c.get("n", Some("e"));
    c.write(1, &["SET", "k", "x", "NX", "XX"], "-ERR syntax error\r\n");
    c.write(1, &["LPUSH", "l", "a"], ":1\r\n");
    c.write(
        1,
        &["SET", "l", "x", "GET"],
        "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
    );
    c.write(1, &["SET", "l", "x"], "+OK\r\n");
}

#[test]
fn expiry_follows_the_largest_stamp() {
    let mut c = Check::new();
    c.write(1000, &["SET", "k", "v", "PXAT", "1100"], "+OK\r\n");
    c.tick(1100);
    c.get("k", Some("v")); // Redis: expired only once now > deadline.
                           // An earlier stamp (a proposer with a slower clock) does not move time back.
    c.tick(900);
    assert_eq!(c.machine.now_ms(), 1100);
    c.tick(1101);
    c.get("k", None);
    c.read(&["DBSIZE"], ":0\r\n");
    c.read(&["EXISTS", "k"], ":0\r\n");
}

#[test]
fn reads_compare_against_their_own_stamp() {
    let mut c = Check::new();
    c.write(1000, &["SET", "k", "v", "PX", "100"], "+OK\r\n");
    // The machine's clock stands at 1000, but a read at 1101 must not see the key.
    c.read_at(1100, &["GET", "k"], "$1\r\nv\r\n");
    c.read_at(1101, &["GET", "k"], "$-1\r\n");
    c.read_at(1101, &["DBSIZE"], ":0\r\n");
    c.read_at(1101, &["TTL", "k"], ":-2\r\n");
    c.read_at(1050, &["PTTL", "k"], ":50\r\n");
    assert_eq!(c.machine.len(), 1, "a read removes nothing");
}

#[test]
fn set_clears_or_keeps_the_expiry() {
    let mut c = Check::new();
    c.write(10, &["SET", "k", "v", "PXAT", "20"], "+OK\r\n");
    c.write(11, &["SET", "k", "w", "KEEPTTL"], "+OK\r\n");
    c.tick(21);
    c.get("k", None);
    c.write(22, &["SET", "k", "v", "PXAT", "30"], "+OK\r\n");
    c.write(23, &["SET", "k", "x"], "+OK\r\n");
    c.tick(31);
    c.get("k", Some("x"));
    // A deadline already passed deletes the key, as Redis does for EXAT in the past.
    c.write(40, &["SET", "k", "y", "PXAT", "39"], "+OK\r\n");
    c.get("k", None);
}

#[test]
fn incr_and_decr_with_redis_errors() {
    let mut c = Check::new();
    c.write(1, &["INCR", "n"], ":1\r\n");
    c.write(1, &["DECRBY", "n", "3"], ":-2\r\n");
    c.write(1, &["SET", "s", "abc"], "+OK\r\n");
    c.write(1, &["INCR", "s"], "-ERR value is not an integer or out of range\r\n");
    c.write(1, &["SET", "z", "007"], "+OK\r\n");
    c.write(1, &["INCR", "z"], "-ERR value is not an integer or out of range\r\n");
    c.write(1, &["SET", "m", &i64::MAX.to_string()], "+OK\r\n");
    c.write(1, &["INCR", "m"], "-ERR increment or decrement would overflow\r\n");
    c.get("m", Some(&i64::MAX.to_string()));
    c.write(1, &["INCRBY", "m", &i64::MIN.to_string()], ":-1\r\n");
    // INCR keeps the expiry.
    c.write(1, &["SET", "e", "5", "PXAT", "10"], "+OK\r\n");
    c.write(2, &["INCR", "e"], ":6\r\n");
    c.tick(11);
    c.get("e", None);
    c.write(20, &["INCRBYFLOAT", "f", "10.5"], "$4\r\n10.5\r\n");
    c.write(20, &["INCRBYFLOAT", "f", "0.1"], "$4\r\n10.6\r\n");
}

#[test]
fn expire_options_follow_redis_7() {
    let mut c = Check::new();
    c.write(1000, &["SET", "k", "v"], "+OK\r\n");
    c.write(1000, &["EXPIRE", "k", "100", "XX"], ":0\r\n");
    c.write(1000, &["EXPIRE", "k", "100", "GT"], ":0\r\n");
    c.write(1000, &["EXPIRE", "k", "100", "NX"], ":1\r\n");
    c.write(1000, &["EXPIRE", "k", "50", "NX"], ":0\r\n");
    c.write(1000, &["EXPIRE", "k", "50", "GT"], ":0\r\n");
    c.write(1000, &["EXPIRE", "k", "200", "GT"], ":1\r\n");
    c.write(1000, &["EXPIRE", "k", "300", "LT"], ":0\r\n");
    c.write(1000, &["PEXPIRE", "k", "5000", "LT"], ":1\r\n");
    c.read(&["PTTL", "k"], ":5000\r\n");
    c.read(&["PEXPIRETIME", "k"], ":6000\r\n");
    c.read(&["EXPIRETIME", "k"], ":6\r\n");
    c.write(
        1000,
        &["EXPIRE", "k", "1", "NX", "XX"],
        "-ERR NX and XX, GT or LT options at the same time are not compatible\r\n",
    );
    c.write(
        1000,
        &["EXPIRE", "k", "1", "GT", "LT"],
        "-ERR GT and LT options at the same time are not compatible\r\n",
    );
    c.write(1000, &["EXPIRE", "k", "1", "BOGUS"], "-ERR Unsupported option BOGUS\r\n");
    c.write(1000, &["PERSIST", "k"], ":1\r\n");
    c.write(1000, &["EXPIRE", "k", "0"], ":1\r\n");
    c.get("k", None);
}

#[test]
fn collections_and_wrongtype() {
    let mut c = Check::new();
    c.write(1, &["HSET", "h", "f", "1", "g", "2"], ":2\r\n");
    c.write(1, &["HINCRBY", "h", "f", "5"], ":6\r\n");
    c.read(&["HGETALL", "h"], "*4\r\n$1\r\nf\r\n$1\r\n6\r\n$1\r\ng\r\n$1\r\n2\r\n");
    c.write(1, &["HDEL", "h", "f", "g"], ":2\r\n");
    c.read(&["EXISTS", "h"], ":0\r\n");
    c.write(1, &["RPUSH", "l", "a", "b", "c"], ":3\r\n");
    c.write(1, &["LPOP", "l"], "$1\r\na\r\n");
    c.read(&["LRANGE", "l", "0", "-1"], "*2\r\n$1\r\nb\r\n$1\r\nc\r\n");
    c.write(1, &["SADD", "s", "x", "y", "x"], ":2\r\n");
    c.read(&["SCARD", "s"], ":2\r\n");
    c.write(1, &["ZADD", "z", "2", "b", "1", "a"], ":2\r\n");
    c.read(
        &["ZRANGE", "z", "0", "-1", "WITHSCORES"],
        "*4\r\n$1\r\na\r\n$1\r\n1\r\n$1\r\nb\r\n$1\r\n2\r\n",
    );
    c.read(&["ZSCORE", "z", "a"], "$1\r\n1\r\n");
    for (command, key) in
        [("GET", "l"), ("HGET", "s"), ("LLEN", "h2"), ("SCARD", "z"), ("ZCARD", "l")]
    {
        let expected = if key == "h2" {
            ":0\r\n"
        } else {
            "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"
        };
        let args: Vec<&str> =
            if command == "HGET" { vec![command, key, "f"] } else { vec![command, key] };
        c.read(&args, expected);
    }
    c.read(&["TYPE", "z"], "+zset\r\n");
    c.read(&["TYPE", "none"], "+none\r\n");
}

/// A one-element list moved onto itself is the same key, keeping its expiry (found by the
/// differential test, seed 4031 at 20,000 commands).
#[test]
fn lmove_onto_itself_keeps_the_key_and_its_expiry() {
    let mut c = Check::new();
    c.write(100, &["RPUSH", "one", "x"], ":1\r\n");
    c.write(100, &["PEXPIRE", "one", "10000"], ":1\r\n");
    c.write(100, &["LMOVE", "one", "one", "LEFT", "LEFT"], "$1\r\nx\r\n");
    c.read_at(100, &["PTTL", "one"], ":10000\r\n");
}

#[test]
fn a_transaction_runs_whole_and_a_watched_change_aborts_it() {
    let mut c = Check::new();
    let exec = |watch: Option<Watch>, commands: &[&[&str]]| Request::Write {
        stamp_ms: 1,
        op: WriteOp::Exec {
            proto: Proto::Resp2,
            watch,
            commands: commands.iter().map(|c| args(c)).collect(),
        },
    };
    let reply = c.execute(exec(
        None,
        &[&["SET", "a", "1"], &["INCR", "a"], &["LPUSH", "a", "x"], &["GET", "a"]],
    ));
    assert_eq!(reply, "*4\r\n+OK\r\n:2\r\n-WRONGTYPE Operation against a key holding the wrong kind of value\r\n$1\r\n2\r\n");
    let since = c.machine.mods();
    c.write(1, &["SET", "other", "1"], "+OK\r\n");
    let watch = |keys: &[&str]| Some(Watch { since, keys: args(keys) });
    assert_eq!(c.execute(exec(watch(&["a", "missing"]), &[&["INCR", "a"]])), "*1\r\n:3\r\n");
    let since = c.machine.mods();
    let watch = |keys: &[&str]| Some(Watch { since, keys: args(keys) });
    c.write(1, &["DEL", "missing"], ":0\r\n");
    c.write(1, &["SET", "created", "1"], "+OK\r\n");
    c.write(1, &["DEL", "created"], ":1\r\n");
    assert_eq!(
        c.execute(exec(watch(&["created"]), &[&["INCR", "a"]])),
        "*-1\r\n",
        "deleted after WATCH"
    );
    c.write(1, &["SET", "a", "9"], "+OK\r\n");
    assert_eq!(c.execute(exec(watch(&["a"]), &[&["INCR", "a"]])), "*-1\r\n", "changed after WATCH");
    c.get("a", Some("9"));
    let since = c.machine.mods();
    c.write(5, &["SET", "t", "v", "PX", "1"], "+OK\r\n");
    let since_after = c.machine.mods();
    c.tick(10);
    let watch = Some(Watch { since: since_after, keys: args(&["t"]) });
    assert_eq!(c.execute(exec(watch, &[&["PING"]])), "*-1\r\n", "expired after WATCH");
    let watch = Some(Watch { since, keys: args(&["never-touched"]) });
    assert!(c.execute(exec(watch, &[&["GET", "a"]])).starts_with("*1\r\n"));
}

#[test]
fn scripts_run_deterministically_and_evalsha_finds_them_after_a_checkpoint() {
    let mut c = Check::new();
    let script = "redis.call('SET', KEYS[1], ARGV[1]); return {redis.call('GET', KEYS[1]), math.random(1000)}";
    c.write(1, &["EVAL", script, "1", "k", "v"], "*2\r\n$1\r\nv\r\n:");
    let sha = rsl_kv::commands::scripting::sha1_hex(script.as_bytes());
    c.write(1, &["SCRIPT", "EXISTS", &sha, "0000"], "*2\r\n:1\r\n:0\r\n");
    c.write(
        1,
        &["EVAL", "return redis.call('INCR', KEYS[1])", "1", "k"],
        &format!(
            "-ERR value is not an integer or out of range script: {}, on @user_script:1.\r\n",
            rsl_kv::commands::scripting::sha1_hex(b"return redis.call('INCR', KEYS[1])")
        ),
    );
    c.write(
        1,
        &["EVAL", "return 1", "2", "k"],
        "-ERR Number of keys can't be greater than number of args\r\n",
    );
    let runaway =
        c.execute(Request::command(1, Proto::Resp2, args(&["EVAL", "while true do end", "0"])));
    assert!(runaway.contains("instruction budget"), "{runaway}");
    let mut loaded = Check::new();
    loaded.machine.load_checkpoint(&mut &checkpoint(&c.machine)[..]).unwrap();
    loaded.write(2, &["EVALSHA", &sha, "1", "k", "w"], "*2\r\n$1\r\nw\r\n:");
    loaded.write(2, &["SCRIPT", "FLUSH"], "+OK\r\n");
    loaded.write(
        2,
        &["EVALSHA", &sha, "1", "k", "w"],
        "-NOSCRIPT No matching script. Please use EVAL.\r\n",
    );
}

#[test]
fn malformed_requests_are_errors_that_change_nothing() {
    let mut c = Check::new();
    c.write(5, &["SET", "k", "v"], "+OK\r\n");
    let good = Request::command(99, Proto::Resp2, args(&["SET", "k", "w"])).encode();
    for bad in [&b""[..], &b"\x02\x02"[..], &b"\x01\x3f"[..], &good[..good.len() - 1]] {
        let reply = c.machine.execute(9, bad);
        assert!(reply.starts_with(b"-ERR malformed request"), "{reply:?}");
        let reply = c.machine.read(bad);
        assert!(reply.starts_with(b"-ERR malformed request"), "{reply:?}");
    }
    c.get("k", Some("v"));
    assert_eq!(c.machine.now_ms(), 5);
    // A write on the read path is refused, not executed.
    let reply = c.machine.read(&good);
    assert!(reply.starts_with(b"-ERR"), "{reply:?}");
    let reply = c.machine.read(&Request::read(0, Proto::Resp2, args(&["SET", "k", "x"])).encode());
    assert!(reply.starts_with(b"-ERR"), "{reply:?}");
    c.get("k", Some("v"));
}

#[test]
fn decode_rejects_each_kind_of_damage() {
    let good = Request::command(7, Proto::Resp3, args(&["DEL", "a"])).encode();
    for cut in 0..good.len() {
        assert_eq!(Request::decode(&good[..cut]), Err(DecodeError::Truncated), "cut {cut}");
    }
    let mut long = good.to_vec();
    long.push(0);
    assert_eq!(Request::decode(&long), Err(DecodeError::TrailingBytes(1)));
    let mut version = good.to_vec();
    version[0] = 9;
    assert_eq!(Request::decode(&version), Err(DecodeError::Version(9)));
    let mut kind = good.to_vec();
    kind[1] = 0x7f;
    assert_eq!(Request::decode(&kind), Err(DecodeError::UnknownKind(0x7f)));
    let mut proto = good.to_vec();
    proto[10] = 4;
    assert_eq!(Request::decode(&proto), Err(DecodeError::InvalidTag(4)));
    // A count claiming more arguments than the bytes could hold fails without allocating them.
    let mut huge = good[..11].to_vec();
    huge.extend_from_slice(&1_000_000u32.to_le_bytes());
    assert_eq!(Request::decode(&huge), Err(DecodeError::Truncated));
    let mut empty = good[..11].to_vec();
    empty.extend_from_slice(&0u32.to_le_bytes());
    assert_eq!(Request::decode(&empty), Err(DecodeError::EmptyCommand));
}

fn checkpoint(machine: &KvMachine) -> Vec<u8> {
    let mut out = Vec::new();
    machine.snapshot().write_to(&mut out).unwrap();
    out
}

fn populated() -> Check {
    let mut c = Check::new();
    c.write(100, &["SET", "a", "1"], "+OK\r\n");
    c.write(100, &["SET", "b", "2", "PXAT", "500"], "+OK\r\n");
    c.write(200, &["SET", "c", ""], "+OK\r\n");
    c.write(200, &["HSET", "h", "f", "v"], ":1\r\n");
    c.write(200, &["RPUSH", "l", "x", "y"], ":2\r\n");
    c.write(200, &["SADD", "s", "m"], ":1\r\n");
    c.write(200, &["ZADD", "z", "1.5", "m", "-2", "n"], ":2\r\n");
    c.write(200, &["DEL", "gone"], ":0\r\n");
    c.write(200, &["SET", "gone", "1"], "+OK\r\n");
    c.write(200, &["DEL", "gone"], ":1\r\n");
    c
}

#[test]
fn checkpoints_round_trip_every_type_with_clock_and_expiry() {
    let c = populated();
    let bytes = checkpoint(&c.machine);
    let mut loaded = Check::new();
    loaded.machine.load_checkpoint(&mut &bytes[..]).unwrap();
    loaded.machine.check_invariants();
    assert_eq!(loaded.machine.now_ms(), 200);
    assert_eq!(loaded.machine.len(), 7);
    assert_eq!(loaded.machine.mods(), c.machine.mods());
    loaded.get("a", Some("1"));
    loaded.get("c", Some(""));
    loaded.read(&["HGET", "h", "f"], "$1\r\nv\r\n");
    loaded.read(&["LRANGE", "l", "0", "-1"], "*2\r\n$1\r\nx\r\n$1\r\ny\r\n");
    loaded.read(
        &["ZRANGE", "z", "0", "-1", "WITHSCORES"],
        "*4\r\n$1\r\nn\r\n$2\r\n-2\r\n$1\r\nm\r\n$3\r\n1.5\r\n",
    );
    loaded.read(&["SISMEMBER", "s", "m"], ":1\r\n");
    assert_eq!(checkpoint(&loaded.machine), bytes, "a loaded state checkpoints identically");
    loaded.tick(501);
    loaded.get("b", None);
}

#[test]
fn a_version_1_checkpoint_still_loads() {
    // Version 1 (strings only): magic, version, now_ms, count, then key, value, expiry tag.
    let mut body = b"RSLKVCKP".to_vec();
    body.extend_from_slice(&1u32.to_le_bytes());
    body.extend_from_slice(&100u64.to_le_bytes());
    body.extend_from_slice(&2u64.to_le_bytes());
    for (key, value, expiry) in [("a", "1", None), ("b", "22", Some(500u64))] {
        body.extend_from_slice(&(key.len() as u32).to_le_bytes());
        body.extend_from_slice(key.as_bytes());
        body.extend_from_slice(&(value.len() as u32).to_le_bytes());
        body.extend_from_slice(value.as_bytes());
        match expiry {
            None => body.push(0),
            Some(at) => {
                body.push(1);
                body.extend_from_slice(&at.to_le_bytes());
            }
        }
    }
    let crc = crc32c::crc32c(&body);
    body.extend_from_slice(&crc.to_le_bytes());
    let mut c = Check::new();
    c.machine.load_checkpoint(&mut &body[..]).unwrap();
    c.machine.check_invariants();
    c.get("a", Some("1"));
    c.read(&["PTTL", "b"], ":400\r\n");
}

#[test]
fn a_snapshot_is_frozen_while_execution_continues() {
    let mut c = populated();
    let snapshot = c.machine.snapshot();
    let before = checkpoint(&c.machine);
    c.write(300, &["SET", "a", "changed"], "+OK\r\n");
    c.write(300, &["RPUSH", "l", "z"], ":3\r\n");
    let mut out = Vec::new();
    snapshot.write_to(&mut out).unwrap();
    assert_eq!(out, before);
}

#[test]
fn damaged_checkpoints_are_refused_and_change_nothing() {
    let bytes = checkpoint(&populated().machine);
    let mut target = Check::new();
    target.write(7, &["SET", "keep", "me"], "+OK\r\n");
    for at in 0..bytes.len() {
        let mut damaged = bytes.clone();
        damaged[at] ^= 0x40;
        assert!(target.machine.load_checkpoint(&mut &damaged[..]).is_err(), "flip at {at}");
    }
    for cut in 0..bytes.len() {
        assert!(target.machine.load_checkpoint(&mut &bytes[..cut]).is_err(), "cut at {cut}");
    }
    let mut long = bytes.clone();
    long.push(0);
    assert!(target.machine.load_checkpoint(&mut &long[..]).is_err());
    target.get("keep", Some("me"));
    assert_eq!(target.machine.now_ms(), 7);
    let error = target.machine.load_checkpoint(&mut &b"RSLKVCKX\x01\0\0\0"[..]).unwrap_err();
    let inner = error.into_inner().unwrap().downcast::<CheckpointError>().unwrap();
    assert!(matches!(*inner, CheckpointError::Magic), "{inner:?}");
}

fn word(options: &'static [&'static str]) -> impl Strategy<Value = Bytes> {
    prop::sample::select(options).prop_map(|w| Bytes::from_static(w.as_bytes()))
}

fn key() -> impl Strategy<Value = Bytes> {
    word(&["a", "b", "c", "d"])
}

fn value() -> impl Strategy<Value = Bytes> {
    word(&["1", "-5", "x", "", "2.5"])
}

/// A random command of any type, with arguments that are sometimes wrong.
fn command() -> impl Strategy<Value = Vec<Bytes>> {
    let name = word(&[
        "SET",
        "GET",
        "INCR",
        "APPEND",
        "DEL",
        "EXPIRE",
        "PEXPIRE",
        "PERSIST",
        "GETDEL",
        "SETRANGE",
        "HSET",
        "HDEL",
        "HINCRBY",
        "LPUSH",
        "RPUSH",
        "LPOP",
        "RPOP",
        "LREM",
        "LTRIM",
        "SADD",
        "SREM",
        "SPOP",
        "ZADD",
        "ZREM",
        "ZINCRBY",
        "ZPOPMIN",
        "RENAME",
        "COPY",
        "FLUSHALL",
        "SETBIT",
        "BLPOP",
        "LMOVE",
        "SINTERSTORE",
        "ZRANGESTORE",
        "INCRBYFLOAT",
        "MSETNX",
    ]);
    let rest = prop::collection::vec(
        prop_oneof![key(), value(), word(&["0", "1", "-1", "100", "LEFT", "NX", "XX", "GT", "EX"])],
        0..4,
    );
    (name, key(), rest).prop_map(|(name, key, rest)| {
        let mut args = vec![name, key];
        args.extend(rest);
        args
    })
}

/// A script that writes, reads and draws random numbers.
fn script() -> impl Strategy<Value = Vec<Bytes>> {
    let body = word(&[
        "redis.call('SET', KEYS[1], math.random(100)) return redis.call('GET', KEYS[1])",
        "return redis.pcall('LPUSH', KEYS[1], ARGV[1])",
        "local n = 0 for i = 1, 50 do n = n + math.random(3) end redis.call('SADD', KEYS[1], n) return n",
        "return redis.call('SPOP', KEYS[1])",
    ]);
    (body, key(), value()).prop_map(|(body, key, value)| {
        vec![Bytes::from_static(b"EVAL"), body, Bytes::from_static(b"1"), key, value]
    })
}

fn request() -> impl Strategy<Value = Request> {
    let proto = prop_oneof![Just(Proto::Resp2), Just(Proto::Resp3)];
    let exec = (
        prop::collection::vec(command(), 0..4),
        prop::option::of((0u64..20, prop::collection::vec(key(), 1..3))),
    );
    prop_oneof![
        8 => (0u64..300, proto.clone(), command()).prop_map(|(stamp, proto, args)| Request::command(stamp, proto, args)),
        1 => (0u64..300, script()).prop_map(|(stamp, args)| Request::command(stamp, Proto::Resp2, args)),
        1 => (0u64..300).prop_map(|stamp_ms| Request::Write { stamp_ms, op: WriteOp::Tick }),
        1 => (0u64..300, proto.clone(), exec).prop_map(|(stamp_ms, proto, (commands, watch))| Request::Write {
            stamp_ms,
            op: WriteOp::Exec { proto, watch: watch.map(|(since, keys)| Watch { since, keys }), commands },
        }),
        2 => (0u64..300, proto, command()).prop_map(|(stamp, proto, args)| Request::read(stamp, proto, args)),
    ]
}

proptest! {
    #[test]
    fn requests_round_trip(request in request()) {
        let bytes = request.encode();
        prop_assert_eq!(Request::decode(&bytes), Ok(request));
    }

    /// Every byte string has at most one meaning: whatever decodes re-encodes identically.
    #[test]
    fn decoding_is_canonical(
        request in request(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut bytes = request.encode().to_vec();
        for (at, value) in flips {
            let at = at.index(bytes.len());
            bytes[at] = value;
        }
        if let Ok(decoded) = Request::decode(&bytes) {
            prop_assert_eq!(&decoded.encode()[..], &bytes[..]);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_machine(input in prop::collection::vec(any::<u8>(), 0..64)) {
        let _ = Request::decode(&input);
        let mut machine = KvMachine::new();
        let _ = machine.execute(1, &input);
        let _ = machine.read(&input);
        machine.check_invariants();
        let _ = machine.load_checkpoint(&mut &input[..]);
    }

    /// Replicas that execute the same requests agree on every reply and on their checkpoints,
    /// including one that joined from a checkpoint taken midway.
    #[test]
    fn replicas_agree_and_checkpoints_resume(
        requests in prop::collection::vec(request(), 1..60),
        cut in any::<prop::sample::Index>(),
    ) {
        let cut = cut.index(requests.len());
        let mut first = KvMachine::new();
        let mut second = KvMachine::new();
        let mut late: Option<KvMachine> = None;
        for (i, request) in requests.iter().enumerate() {
            let slot = i as u64 + 1;
            if i == cut {
                let mut joined = KvMachine::new();
                joined.load_checkpoint(&mut &checkpoint(&first)[..]).unwrap();
                late = Some(joined);
            }
            let bytes = request.encode();
            let reply = first.execute(slot, &bytes);
            prop_assert_eq!(&second.execute(slot, &bytes), &reply);
            if let Some(late) = late.as_mut() {
                prop_assert_eq!(&late.execute(slot, &bytes), &reply);
                late.check_invariants();
            }
            first.check_invariants();
        }
        prop_assert_eq!(checkpoint(&first), checkpoint(&second));
        prop_assert_eq!(checkpoint(&first), checkpoint(late.as_ref().unwrap()));
    }
}
