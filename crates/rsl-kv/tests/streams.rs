//! Streams: ids generated from the request's clock (never a replica's own), consumer groups
//! and their pending entries carried by checkpoints, replicas that agree on random stream
//! commands, and XREAD/XREADGROUP BLOCK woken by an XADD from another client.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{bulk, err, int, start, Client};
use proptest::prelude::*;
use rsl::StateMachine;
use rsl_kv::request::Request;
use rsl_kv::resp::{Proto, Reply};
use rsl_kv::{KvMachine, ServerConfig};

fn args(words: &[&str]) -> Vec<Bytes> {
    words.iter().map(|w| Bytes::copy_from_slice(w.as_bytes())).collect()
}

/// A machine and its slot counter.
struct Replica {
    machine: KvMachine,
    slot: u64,
}

impl Replica {
    fn new() -> Replica {
        Replica { machine: KvMachine::new(), slot: 0 }
    }

    fn write(&mut self, stamp_ms: u64, command: &[&str]) -> String {
        self.slot += 1;
        let request = Request::command(stamp_ms, Proto::Resp2, args(command));
        let reply = self.machine.execute(self.slot, &request.encode());
        self.machine.check_invariants();
        String::from_utf8_lossy(&reply).into_owned()
    }

    fn read(&self, stamp_ms: u64, command: &[&str]) -> String {
        let request = Request::read(stamp_ms, Proto::Resp2, args(command));
        String::from_utf8_lossy(&self.machine.read(&request.encode())).into_owned()
    }
}

fn checkpoint(machine: &KvMachine) -> Vec<u8> {
    let mut out = Vec::new();
    machine.snapshot().write_to(&mut out).unwrap();
    out
}

#[test]
fn generated_ids_come_from_the_request_stamp_and_never_go_back() {
    let mut r = Replica::new();
    assert_eq!(r.write(1_000, &["XADD", "s", "*", "f", "v"]), "$6\r\n1000-0\r\n");
    assert_eq!(r.write(1_000, &["XADD", "s", "*", "f", "v"]), "$6\r\n1000-1\r\n");
    // A proposer whose clock is behind: the machine's clock never goes back, and the id
    // stays above the last one.
    assert_eq!(r.write(900, &["XADD", "s", "*", "f", "v"]), "$6\r\n1000-2\r\n");
    assert_eq!(r.write(2_000, &["XADD", "s", "*", "f", "v"]), "$6\r\n2000-0\r\n");
    // An explicit id far ahead: `*` then continues from it.
    assert_eq!(r.write(2_000, &["XADD", "s", "5000-7", "f", "v"]), "$6\r\n5000-7\r\n");
    assert_eq!(r.write(3_000, &["XADD", "s", "*", "f", "v"]), "$6\r\n5000-8\r\n");
    assert_eq!(r.write(3_000, &["XADD", "s", "5000-*", "f", "v"]), "$6\r\n5000-9\r\n");
    assert_eq!(r.read(0, &["XLEN", "s"]), ":7\r\n");
    assert_eq!(r.read(0, &["TYPE", "s"]), "+stream\r\n");
}

/// A stream with entries, a deletion, two groups, consumers and pending entries.
fn populated() -> Replica {
    let mut r = Replica::new();
    for (stamp, field) in [(100, "a"), (110, "b"), (120, "c"), (130, "d")] {
        r.write(stamp, &["XADD", "s", "*", field, "1"]);
    }
    r.write(140, &["XDEL", "s", "110-0"]);
    r.write(150, &["XGROUP", "CREATE", "s", "g", "0"]);
    r.write(150, &["XGROUP", "CREATE", "s", "idle", "$", "ENTRIESREAD", "3"]);
    r.write(150, &["XGROUP", "CREATECONSUMER", "s", "idle", "nobody"]);
    r.write(160, &["XREADGROUP", "GROUP", "g", "alice", "COUNT", "2", "STREAMS", "s", ">"]);
    r.write(170, &["XREADGROUP", "GROUP", "g", "bob", "STREAMS", "s", ">"]);
    r.write(180, &["XCLAIM", "s", "g", "bob", "0", "100-0", "RETRYCOUNT", "5"]);
    r.write(190, &["XACK", "s", "g", "130-0"]);
    r.write(200, &["XADD", "empty", "1-1", "f", "v"]);
    r.write(200, &["XDEL", "empty", "1-1"]);
    r
}

/// What a client sees of the streams in `populated`.
fn observed(r: &Replica) -> Vec<String> {
    [
        &["XRANGE", "s", "-", "+"][..],
        &["XPENDING", "s", "g"],
        &["XPENDING", "s", "g", "-", "+", "10"],
        &["XINFO", "STREAM", "s"],
        &["XINFO", "GROUPS", "s"],
        &["XINFO", "CONSUMERS", "s", "g"],
        &["XINFO", "CONSUMERS", "s", "idle"],
        &["XINFO", "STREAM", "empty"],
        &["TYPE", "empty"],
    ]
    .iter()
    .map(|command| r.read(300, command))
    .collect()
}

#[test]
fn checkpoints_carry_streams_groups_and_pending_entries() {
    let original = populated();
    let bytes = checkpoint(&original.machine);
    let mut restored = Replica::new();
    restored.machine.load_checkpoint(&mut &bytes[..]).unwrap();
    restored.machine.check_invariants();
    assert_eq!(observed(&restored), observed(&original));
    assert_eq!(
        restored.read(300, &["XPENDING", "s", "g", "-", "+", "10"]),
        "*2\r\n*4\r\n$5\r\n100-0\r\n$3\r\nbob\r\n:120\r\n:5\r\n*4\r\n$5\r\n120-0\r\n$5\r\nalice\r\n:140\r\n:1\r\n"
    );
    assert_eq!(checkpoint(&restored.machine), bytes, "a restored state checkpoints identically");
    // The restored replica goes on exactly as the original: ids, groups and deliveries.
    let mut original = original;
    restored.slot = original.slot;
    for command in [
        &["XADD", "s", "*", "e", "1"][..],
        &["XREADGROUP", "GROUP", "g", "carol", "STREAMS", "s", ">"],
        &["XAUTOCLAIM", "s", "g", "dave", "0", "0"],
        &["XADD", "empty", "*", "f", "v"],
    ] {
        assert_eq!(restored.write(400, command), original.write(400, command), "{command:?}");
    }
    assert_eq!(checkpoint(&restored.machine), checkpoint(&original.machine));
}

fn word(options: &'static [&'static str]) -> impl Strategy<Value = Bytes> {
    prop::sample::select(options).prop_map(|w| Bytes::from_static(w.as_bytes()))
}

/// A random stream command, well formed or nearly.
fn stream_command() -> impl Strategy<Value = Vec<Bytes>> {
    let key = word(&["s", "t"]);
    let id = word(&["0", "1", "1-1", "2-0", "$", ">", "*", "-", "+", "(1"]);
    let forms = word(&[
        "XADD k * f v",
        "XADD k MAXLEN 2 * f v",
        "XADD k MINID 2 ID f v",
        "XADD k ID f v g w",
        "XADD k NOMKSTREAM * f v",
        "XDEL k ID",
        "XTRIM k MAXLEN 1",
        "XTRIM k MINID ~ ID",
        "XGROUP CREATE k g ID MKSTREAM",
        "XGROUP CREATE k h ID",
        "XGROUP SETID k g ID",
        "XGROUP DESTROY k g",
        "XGROUP CREATECONSUMER k g c",
        "XGROUP DELCONSUMER k g c",
        "XREADGROUP GROUP g c COUNT 1 STREAMS k ID",
        "XREADGROUP GROUP g d STREAMS k >",
        "XREADGROUP GROUP g c NOACK STREAMS k >",
        "XACK k g ID",
        "XCLAIM k g d 0 ID",
        "XCLAIM k g c 0 ID FORCE JUSTID",
        "XAUTOCLAIM k g c 0 ID COUNT 2",
        "SET k x",
        "DEL k",
    ]);
    (forms, key, id).prop_map(|(form, key, id)| {
        std::str::from_utf8(&form)
            .unwrap()
            .split(' ')
            .map(|w| match w {
                "k" => key.clone(),
                "ID" => id.clone(),
                other => Bytes::copy_from_slice(other.as_bytes()),
            })
            .collect()
    })
}

proptest! {
    /// Replicas that run the same stream commands agree on every reply and checkpoint, and
    /// one restored from a checkpoint taken midway goes on like them.
    #[test]
    fn replicas_agree_on_streams_and_checkpoints_resume(
        commands in prop::collection::vec((stream_command(), 0u64..50), 1..60),
        cut in any::<prop::sample::Index>(),
    ) {
        let cut = cut.index(commands.len());
        let (mut first, mut second) = (Replica::new(), Replica::new());
        let mut late: Option<Replica> = None;
        for (i, (command, step)) in commands.iter().enumerate() {
            if i == cut {
                let mut joined = Replica::new();
                joined.machine.load_checkpoint(&mut &checkpoint(&first.machine)[..]).unwrap();
                joined.slot = first.slot;
                late = Some(joined);
            }
            let stamp = 1_000 + step * i as u64;
            let words: Vec<&str> =
                command.iter().map(|w| std::str::from_utf8(w).unwrap()).collect();
            let reply = first.write(stamp, &words);
            prop_assert_eq!(&second.write(stamp, &words), &reply);
            if let Some(late) = late.as_mut() {
                prop_assert_eq!(&late.write(stamp, &words), &reply);
            }
        }
        prop_assert_eq!(checkpoint(&first.machine), checkpoint(&second.machine));
        prop_assert_eq!(checkpoint(&first.machine), checkpoint(&late.unwrap().machine));
    }
}

fn array(items: &[Reply]) -> Reply {
    Reply::Array(items.to_vec())
}

/// Waits until the server shows a client blocked (CLIENT LIST's flag `b`); panics if none
/// blocks within a generous deadline (a read answered at once never blocks).
async fn until_blocked(observer: &mut Client) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(Instant::now() < deadline, "no client blocked within 20 s");
        let Reply::Bulk(list) = observer.cmd(&["CLIENT", "LIST"]).await else { panic!("a bulk") };
        if String::from_utf8_lossy(&list).contains("flags=b") {
            return;
        }
        tokio::task::yield_now().await;
    }
}

fn entry(id: &str, fields: &[&str]) -> Reply {
    array(&[bulk(id), array(&fields.iter().map(|f| bulk(f)).collect::<Vec<_>>())])
}

#[tokio::test]
async fn xread_block_waits_for_an_xadd_and_dollar_means_after_the_call() {
    let addr = start(ServerConfig::default()).await;
    let mut reader = Client::connect(addr).await;
    let mut writer = Client::connect(addr).await;
    assert_eq!(writer.cmd(&["XADD", "s", "1-1", "old", "x"]).await, bulk("1-1"));
    // `$`: only what arrives after the call, not the entry already there.
    reader.send_cmd(&["XREAD", "BLOCK", "0", "STREAMS", "s", "$"]).await;
    until_blocked(&mut writer).await;
    assert_eq!(writer.cmd(&["XADD", "s", "2-1", "new", "y"]).await, bulk("2-1"));
    assert_eq!(
        reader.reply().await,
        array(&[array(&[bulk("s"), array(&[entry("2-1", &["new", "y"])])])])
    );
    // On a missing key, `$` waits for the first entry; an entry already after the id is
    // answered at once.
    reader
        .send_cmd(&["XREAD", "COUNT", "1", "BLOCK", "5000", "STREAMS", "later", "s", "$", "1-1"])
        .await;
    assert_eq!(
        reader.reply().await,
        array(&[array(&[bulk("s"), array(&[entry("2-1", &["new", "y"])])])])
    );
    reader.send_cmd(&["XREAD", "BLOCK", "0", "STREAMS", "later", "$"]).await;
    until_blocked(&mut writer).await;
    assert_eq!(writer.cmd(&["XADD", "later", "5-5", "f", "v"]).await, bulk("5-5"));
    assert_eq!(
        reader.reply().await,
        array(&[array(&[bulk("later"), array(&[entry("5-5", &["f", "v"])])])])
    );
    // A timeout answers null after the time.
    let started = Instant::now();
    assert_eq!(reader.cmd(&["XREAD", "BLOCK", "200", "STREAMS", "s", "$"]).await, Reply::NullArray);
    assert!(started.elapsed() >= Duration::from_millis(200), "it waited for its timeout");
    assert_eq!(
        reader.cmd(&["XREAD", "BLOCK", "-1", "STREAMS", "s", "$"]).await,
        err("ERR timeout is negative")
    );
    // Inside MULTI, BLOCK does not block.
    assert_eq!(reader.cmd(&["MULTI"]).await, Reply::Simple(Bytes::from_static(b"OK")));
    reader.cmd(&["XREAD", "BLOCK", "0", "STREAMS", "s", "$"]).await;
    assert_eq!(reader.cmd(&["EXEC"]).await, array(&[Reply::NullArray]));
}

#[tokio::test]
async fn xreadgroup_block_delivers_each_new_entry_to_one_consumer() {
    let addr = start(ServerConfig::default()).await;
    let mut writer = Client::connect(addr).await;
    assert_eq!(
        writer.cmd(&["XGROUP", "CREATE", "jobs", "workers", "$", "MKSTREAM"]).await,
        common::ok()
    );
    let mut waiters = Vec::new();
    for name in ["w1", "w2", "w3"] {
        waiters.push(tokio::spawn(async move {
            let mut c = Client::connect(addr).await;
            let command = [
                "XREADGROUP",
                "GROUP",
                "workers",
                name,
                "COUNT",
                "1",
                "BLOCK",
                "10000",
                "STREAMS",
                "jobs",
                ">",
            ];
            match c.cmd(&command).await {
                Reply::Array(streams) => match &streams[0] {
                    Reply::Array(pair) => match &pair[1] {
                        Reply::Array(entries) => (name, entries[0].clone()),
                        other => panic!("{other:?}"),
                    },
                    other => panic!("{other:?}"),
                },
                other => panic!("{other:?}"),
            }
        }));
    }
    for i in 1..=3 {
        writer.cmd(&["XADD", "jobs", &format!("{i}-0"), "job", &i.to_string()]).await;
    }
    let mut got = Vec::new();
    for waiter in waiters {
        got.push(waiter.await.unwrap());
    }
    let mut ids: Vec<Reply> = got.iter().map(|(_, e)| e.clone()).collect();
    ids.sort_by_key(|e| format!("{e:?}"));
    let expected: Vec<Reply> =
        (1..=3).map(|i| entry(&format!("{i}-0"), &["job", &i.to_string()])).collect();
    assert_eq!(ids, expected, "each entry went to exactly one consumer");
    let Reply::Array(summary) = writer.cmd(&["XPENDING", "jobs", "workers"]).await else {
        panic!()
    };
    assert_eq!(summary[0], int(3), "every delivered entry is pending");
}
