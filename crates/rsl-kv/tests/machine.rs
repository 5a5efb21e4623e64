//! The KV state machine: command semantics, deterministic expiry, checkpoints, and the binary
//! request format, by examples and by properties.

use bytes::Bytes;
use proptest::prelude::*;
use rsl::StateMachine;
use rsl_kv::machine::CheckpointError;
use rsl_kv::request::{DecodeError, ReadOp, Request, SetCondition, SetExpiry, WriteOp};
use rsl_kv::KvMachine;

/// A machine driven through the `StateMachine` interface, checking invariants at every step.
struct Check {
    machine: KvMachine,
    slot: u64,
}

impl Check {
    fn new() -> Check {
        Check { machine: KvMachine::new(), slot: 0 }
    }

    /// Executes `op` stamped `stamp_ms` and asserts its RESP reply.
    fn write(&mut self, stamp_ms: u64, op: WriteOp, expected: &str) {
        self.slot += 1;
        let request = Request::Write { stamp_ms, op: op.clone() }.encode();
        let reply = self.machine.execute(self.slot, &request);
        self.machine.check_invariants();
        assert_eq!(String::from_utf8_lossy(&reply), expected, "{op:?} at {stamp_ms}");
        assert!(self.machine.now_ms() >= stamp_ms);
    }

    /// Reads `op` and asserts its RESP reply.
    fn read(&self, op: ReadOp, expected: &str) {
        let reply = self.machine.read(&Request::Read(op.clone()).encode());
        assert_eq!(String::from_utf8_lossy(&reply), expected, "{op:?}");
    }

    fn get(&self, key: &str, expected: Option<&str>) {
        let expected =
            expected.map_or("$-1\r\n".to_string(), |v| format!("${}\r\n{v}\r\n", v.len()));
        self.read(ReadOp::Get { key: b(key) }, &expected);
    }
}

fn b(text: &str) -> Bytes {
    Bytes::copy_from_slice(text.as_bytes())
}

fn set(key: &str, value: &str) -> WriteOp {
    set_with(key, value, SetCondition::Always, SetExpiry::Clear, false)
}

fn set_with(
    key: &str,
    value: &str,
    condition: SetCondition,
    expiry: SetExpiry,
    get: bool,
) -> WriteOp {
    WriteOp::Set { key: b(key), value: b(value), condition, expiry, get }
}

fn incr_by(key: &str, delta: i64) -> WriteOp {
    WriteOp::IncrBy { key: b(key), delta }
}

#[test]
fn set_conditions_and_get_option() {
    let mut c = Check::new();
    c.write(1, set_with("k", "a", SetCondition::IfPresent, SetExpiry::Clear, false), "$-1\r\n");
    c.get("k", None);
    c.write(1, set_with("k", "a", SetCondition::IfAbsent, SetExpiry::Clear, false), "+OK\r\n");
    c.write(1, set_with("k", "b", SetCondition::IfAbsent, SetExpiry::Clear, false), "$-1\r\n");
    c.get("k", Some("a"));
    c.write(1, set_with("k", "c", SetCondition::IfPresent, SetExpiry::Clear, true), "$1\r\na\r\n");
    c.get("k", Some("c"));
    c.write(1, set_with("k", "d", SetCondition::IfAbsent, SetExpiry::Clear, true), "$1\r\nc\r\n");
    c.get("k", Some("c"));
    c.write(1, set_with("n", "e", SetCondition::Always, SetExpiry::Clear, true), "$-1\r\n");
    c.get("n", Some("e"));
}

#[test]
fn expiry_follows_the_largest_stamp() {
    let mut c = Check::new();
    c.write(1000, set_with("k", "v", SetCondition::Always, SetExpiry::At(1100), false), "+OK\r\n");
    c.write(1100, WriteOp::Tick, "+OK\r\n");
    c.get("k", Some("v")); // Redis: expired only once now > deadline.
                           // An earlier stamp (a proposer with a slower clock) does not move time back.
    c.write(900, WriteOp::Tick, "+OK\r\n");
    assert_eq!(c.machine.now_ms(), 1100);
    c.write(1101, WriteOp::Tick, "+OK\r\n");
    c.get("k", None);
    c.read(ReadOp::DbSize, ":0\r\n");
    c.read(ReadOp::Exists { keys: vec![b("k")] }, ":0\r\n");
}

#[test]
fn set_clears_or_keeps_the_expiry() {
    let mut c = Check::new();
    c.write(10, set_with("k", "v", SetCondition::Always, SetExpiry::At(20), false), "+OK\r\n");
    c.write(11, set_with("k", "w", SetCondition::Always, SetExpiry::Keep, false), "+OK\r\n");
    c.write(21, WriteOp::Tick, "+OK\r\n");
    c.get("k", None);
    c.write(22, set_with("k", "v", SetCondition::Always, SetExpiry::At(30), false), "+OK\r\n");
    c.write(23, set("k", "x"), "+OK\r\n");
    c.write(31, WriteOp::Tick, "+OK\r\n");
    c.get("k", Some("x"));
    // A deadline already passed deletes the key, as Redis does for EXAT in the past.
    c.write(40, set_with("k", "y", SetCondition::Always, SetExpiry::At(39), false), "+OK\r\n");
    c.get("k", None);
}

#[test]
fn incr_and_decr_with_redis_errors() {
    let mut c = Check::new();
    c.write(1, incr_by("n", 1), ":1\r\n");
    c.write(1, incr_by("n", -3), ":-2\r\n");
    c.write(1, set("s", "abc"), "+OK\r\n");
    c.write(1, incr_by("s", 1), "-ERR value is not an integer or out of range\r\n");
    c.write(1, set("z", "007"), "+OK\r\n");
    c.write(1, incr_by("z", 1), "-ERR value is not an integer or out of range\r\n");
    c.write(1, set("m", &i64::MAX.to_string()), "+OK\r\n");
    c.write(1, incr_by("m", 1), "-ERR increment or decrement would overflow\r\n");
    c.get("m", Some(&i64::MAX.to_string()));
    c.write(1, incr_by("m", i64::MIN), ":-1\r\n");
    // INCR keeps the expiry.
    c.write(1, set_with("e", "5", SetCondition::Always, SetExpiry::At(10), false), "+OK\r\n");
    c.write(2, incr_by("e", 1), ":6\r\n");
    c.write(11, WriteOp::Tick, "+OK\r\n");
    c.get("e", None);
}

#[test]
fn getset_append_mset_del_and_reads() {
    let mut c = Check::new();
    c.write(1, WriteOp::GetSet { key: b("k"), value: b("a") }, "$-1\r\n");
    c.write(1, WriteOp::GetSet { key: b("k"), value: b("b") }, "$1\r\na\r\n");
    c.write(1, WriteOp::Append { key: b("k"), value: b("cd") }, ":3\r\n");
    c.write(1, WriteOp::Append { key: b("new"), value: b("xy") }, ":2\r\n");
    c.read(ReadOp::Strlen { key: b("k") }, ":3\r\n");
    c.read(ReadOp::Strlen { key: b("none") }, ":0\r\n");
    let pairs = vec![(b("a"), b("1")), (b("b"), b("2")), (b("a"), b("3"))];
    c.write(1, WriteOp::MSet { pairs }, "+OK\r\n");
    c.read(
        ReadOp::MGet { keys: vec![b("a"), b("b"), b("none")] },
        "*3\r\n$1\r\n3\r\n$1\r\n2\r\n$-1\r\n",
    );
    c.read(ReadOp::Exists { keys: vec![b("a"), b("a"), b("none")] }, ":2\r\n");
    c.read(ReadOp::DbSize, ":4\r\n");
    c.write(1, WriteOp::Del { keys: vec![b("a"), b("a"), b("none"), b("b")] }, ":2\r\n");
    c.read(ReadOp::DbSize, ":2\r\n");
    c.write(1, WriteOp::FlushAll, "+OK\r\n");
    c.read(ReadOp::DbSize, ":0\r\n");
}

#[test]
fn setnx_expire_persist_and_ttl() {
    let mut c = Check::new();
    let ttl = |key: &str, millis: bool| ReadOp::Ttl { key: b(key), millis };
    c.write(1000, WriteOp::SetNx { key: b("k"), value: b("a") }, ":1\r\n");
    c.write(1000, WriteOp::SetNx { key: b("k"), value: b("b") }, ":0\r\n");
    c.get("k", Some("a"));
    c.read(ttl("k", false), ":-1\r\n");
    c.read(ttl("none", true), ":-2\r\n");
    c.write(1000, WriteOp::Expire { key: b("none"), at_ms: 5000 }, ":0\r\n");
    c.write(1000, WriteOp::Expire { key: b("k"), at_ms: 3499 }, ":1\r\n");
    c.read(ttl("k", true), ":2499\r\n");
    c.read(ttl("k", false), ":2\r\n");
    c.write(1000, WriteOp::Expire { key: b("k"), at_ms: 3500 }, ":1\r\n");
    c.read(ttl("k", false), ":3\r\n"); // Seconds round to the nearest, as Redis does.
    c.write(1000, WriteOp::Persist { key: b("k") }, ":1\r\n");
    c.write(1000, WriteOp::Persist { key: b("k") }, ":0\r\n");
    c.read(ttl("k", true), ":-1\r\n");
    c.write(1000, WriteOp::Expire { key: b("k"), at_ms: 999 }, ":1\r\n");
    c.get("k", None);
}

#[test]
fn malformed_requests_are_errors_that_change_nothing() {
    let mut c = Check::new();
    c.write(5, set("k", "v"), "+OK\r\n");
    let good = Request::Write { stamp_ms: 99, op: set("k", "w") }.encode();
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
    c.get("k", Some("v"));
}

#[test]
fn decode_rejects_each_kind_of_damage() {
    let good = Request::Write { stamp_ms: 7, op: WriteOp::Del { keys: vec![b("a")] } }.encode();
    for cut in 0..good.len() {
        assert_eq!(Request::decode(&good[..cut]), Err(DecodeError::Truncated), "cut {cut}");
    }
    let mut long = good.to_vec();
    long.push(0);
    assert_eq!(Request::decode(&long), Err(DecodeError::TrailingBytes(1)));
    let mut version = good.to_vec();
    version[0] = 9;
    assert_eq!(Request::decode(&version), Err(DecodeError::Version(9)));
    assert_eq!(Request::decode(&[1, 0x7f]), Err(DecodeError::UnknownOp(0x7f)));
    // A count claiming more keys than the bytes could hold fails without allocating them.
    let mut huge = vec![1, 0x44];
    huge.extend_from_slice(&1_000_000u32.to_le_bytes());
    assert_eq!(Request::decode(&huge), Err(DecodeError::Truncated));
    let mut empty = vec![1, 0x44];
    empty.extend_from_slice(&0u32.to_le_bytes());
    assert_eq!(Request::decode(&empty), Err(DecodeError::EmptyList));
}

fn checkpoint(machine: &KvMachine) -> Vec<u8> {
    let mut out = Vec::new();
    machine.snapshot().write_to(&mut out).unwrap();
    out
}

fn populated() -> Check {
    let mut c = Check::new();
    c.write(100, set("a", "1"), "+OK\r\n");
    c.write(100, set_with("b", "2", SetCondition::Always, SetExpiry::At(500), false), "+OK\r\n");
    c.write(200, set("c", ""), "+OK\r\n");
    c
}

#[test]
fn checkpoints_round_trip_with_clock_and_expiry() {
    let c = populated();
    let bytes = checkpoint(&c.machine);
    let mut loaded = Check::new();
    loaded.machine.load_checkpoint(&mut &bytes[..]).unwrap();
    loaded.machine.check_invariants();
    assert_eq!(loaded.machine.now_ms(), 200);
    assert_eq!(loaded.machine.len(), 3);
    loaded.get("a", Some("1"));
    loaded.get("c", Some(""));
    assert_eq!(checkpoint(&loaded.machine), bytes, "a loaded state checkpoints identically");
    loaded.write(501, WriteOp::Tick, "+OK\r\n");
    loaded.get("b", None);
}

#[test]
fn a_snapshot_is_frozen_while_execution_continues() {
    let mut c = populated();
    let snapshot = c.machine.snapshot();
    let before = checkpoint(&c.machine);
    c.write(300, set("a", "changed"), "+OK\r\n");
    let mut out = Vec::new();
    snapshot.write_to(&mut out).unwrap();
    assert_eq!(out, before);
}

#[test]
fn damaged_checkpoints_are_refused_and_change_nothing() {
    let bytes = checkpoint(&populated().machine);
    let mut target = Check::new();
    target.write(7, set("keep", "me"), "+OK\r\n");
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

fn key() -> impl Strategy<Value = Bytes> {
    prop_oneof![Just(b("a")), Just(b("b")), Just(b("c")), Just(b("d"))]
}

fn value() -> impl Strategy<Value = Bytes> {
    prop_oneof![Just(b("1")), Just(b("-5")), Just(b("x")), Just(b(""))]
}

fn write_op() -> impl Strategy<Value = WriteOp> {
    let condition = prop_oneof![
        Just(SetCondition::Always),
        Just(SetCondition::IfAbsent),
        Just(SetCondition::IfPresent)
    ];
    let expiry = prop_oneof![
        Just(SetExpiry::Clear),
        Just(SetExpiry::Keep),
        (0u64..200).prop_map(SetExpiry::At)
    ];
    prop_oneof![
        Just(WriteOp::Tick),
        (key(), value(), condition, expiry, any::<bool>()).prop_map(
            |(key, value, condition, expiry, get)| {
                WriteOp::Set { key, value, condition, expiry, get }
            }
        ),
        (key(), value()).prop_map(|(key, value)| WriteOp::GetSet { key, value }),
        prop::collection::vec(key(), 1..3).prop_map(|keys| WriteOp::Del { keys }),
        (key(), any::<i64>()).prop_map(|(key, delta)| WriteOp::IncrBy { key, delta }),
        (key(), -3i64..3).prop_map(|(key, delta)| WriteOp::IncrBy { key, delta }),
        (key(), value()).prop_map(|(key, value)| WriteOp::Append { key, value }),
        prop::collection::vec((key(), value()), 1..3).prop_map(|pairs| WriteOp::MSet { pairs }),
        Just(WriteOp::FlushAll),
        (key(), value()).prop_map(|(key, value)| WriteOp::SetNx { key, value }),
        (key(), 0u64..300).prop_map(|(key, at_ms)| WriteOp::Expire { key, at_ms }),
        key().prop_map(|key| WriteOp::Persist { key }),
    ]
}

fn read_op() -> impl Strategy<Value = ReadOp> {
    prop_oneof![
        key().prop_map(|key| ReadOp::Get { key }),
        prop::collection::vec(key(), 1..3).prop_map(|keys| ReadOp::Exists { keys }),
        key().prop_map(|key| ReadOp::Strlen { key }),
        prop::collection::vec(key(), 1..3).prop_map(|keys| ReadOp::MGet { keys }),
        Just(ReadOp::DbSize),
        (key(), any::<bool>()).prop_map(|(key, millis)| ReadOp::Ttl { key, millis }),
    ]
}

fn request() -> impl Strategy<Value = Request> {
    prop_oneof![
        (0u64..300, write_op()).prop_map(|(stamp_ms, op)| Request::Write { stamp_ms, op }),
        read_op().prop_map(Request::Read),
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
