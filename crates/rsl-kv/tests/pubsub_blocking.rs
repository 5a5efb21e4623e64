//! Pub/sub and blocking pops over TCP: messages reach every subscriber once and in order, in
//! RESP2 arrays or RESP3 pushes; a blocking pop waits for a push from another client, times
//! out with a null, and blocks its connection meanwhile.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{bulk, err, int, ok, start, Client};
use rsl_kv::engine::{EngineReply, EngineSender};
use rsl_kv::hub::Hub;
use rsl_kv::resp::Reply;
use rsl_kv::{Engine, LocalEngine, ServerConfig};

fn array(items: &[Reply]) -> Reply {
    Reply::Array(items.to_vec())
}

#[tokio::test]
async fn subscribers_receive_every_message_once_in_order() {
    let addr = start(ServerConfig::default()).await;
    let mut resp2 = Client::connect(addr).await;
    let mut resp3 = Client::connect(addr).await;
    let mut publisher = Client::connect(addr).await;
    resp2.send_cmd(&["SUBSCRIBE", "news", "sport"]).await;
    assert_eq!(resp2.reply().await, array(&[bulk("subscribe"), bulk("news"), int(1)]));
    assert_eq!(resp2.reply().await, array(&[bulk("subscribe"), bulk("sport"), int(2)]));
    assert!(matches!(resp3.cmd(&["HELLO", "3"]).await, Reply::Map(_)));
    assert_eq!(
        &resp3.raw_cmd(&["PSUBSCRIBE", "n*"]).await[..],
        b">3\r\n$10\r\npsubscribe\r\n$2\r\nn*\r\n:1\r\n"
    );
    for i in 0..20 {
        let receivers = publisher.cmd(&["PUBLISH", "news", &i.to_string()]).await;
        assert_eq!(receivers, int(2), "one channel and one pattern subscriber");
    }
    assert_eq!(publisher.cmd(&["PUBLISH", "nobody", "x"]).await, int(1), "the pattern matches");
    for i in 0..20 {
        assert_eq!(
            resp2.reply().await,
            array(&[bulk("message"), bulk("news"), bulk(&i.to_string())])
        );
        let expected =
            Reply::Push(vec![bulk("pmessage"), bulk("n*"), bulk("news"), bulk(&i.to_string())]);
        assert_eq!(resp3.reply().await, expected);
    }
    let last = Reply::Push(vec![bulk("pmessage"), bulk("n*"), bulk("nobody"), bulk("x")]);
    assert_eq!(resp3.reply().await, last);
    // RESP2's subscribed context allows only the pub/sub commands and PING.
    let refused = "ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context";
    assert_eq!(resp2.cmd(&["GET", "k"]).await, err(refused));
    assert_eq!(resp2.cmd(&["PING"]).await, array(&[bulk("pong"), bulk("")]));
    assert_eq!(resp3.cmd(&["GET", "k"]).await, Reply::Null, "RESP3 may run any command");
    resp2.send_cmd(&["UNSUBSCRIBE"]).await;
    assert_eq!(resp2.reply().await, array(&[bulk("unsubscribe"), bulk("news"), int(1)]));
    assert_eq!(resp2.reply().await, array(&[bulk("unsubscribe"), bulk("sport"), int(0)]));
    assert_eq!(resp2.cmd(&["GET", "k"]).await, Reply::Null, "out of the subscribed context");
    assert_eq!(publisher.cmd(&["PUBLISH", "news", "late"]).await, int(1));
    assert_eq!(publisher.cmd(&["PUBSUB", "NUMPAT"]).await, int(1));
}

#[tokio::test]
async fn a_blocking_pop_waits_for_a_push_and_times_out_with_null() {
    let addr = start(ServerConfig::default()).await;
    let mut blocked = Client::connect(addr).await;
    let mut pusher = Client::connect(addr).await;
    blocked.send_cmd(&["BLPOP", "a", "q", "0"]).await;
    // The pop is blocked: a command pipelined behind it waits for it, as in Redis.
    blocked.send_cmd(&["GET", "after"]).await;
    assert_eq!(pusher.cmd(&["SET", "after", "set-after-the-pop-blocked"]).await, ok());
    // Wait until the server shows the client blocked, then push.
    loop {
        let Reply::Bulk(list) = pusher.cmd(&["CLIENT", "LIST"]).await else { panic!("a bulk") };
        if String::from_utf8_lossy(&list).contains("flags=b") {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(pusher.cmd(&["RPUSH", "q", "job1", "job2"]).await, int(2));
    assert_eq!(blocked.reply().await, array(&[bulk("q"), bulk("job1")]));
    assert_eq!(blocked.reply().await, bulk("set-after-the-pop-blocked"));
    assert_eq!(pusher.cmd(&["LRANGE", "q", "0", "-1"]).await, array(&[bulk("job2")]));
    let started = Instant::now();
    assert_eq!(blocked.cmd(&["BRPOP", "empty", "0.2"]).await, Reply::NullArray);
    assert!(started.elapsed() >= Duration::from_millis(200), "it waited for its timeout");
    assert_eq!(blocked.cmd(&["BLMOVE", "q", "dst", "LEFT", "RIGHT", "1"]).await, bulk("job2"));
    assert_eq!(blocked.cmd(&["BLPOP", "q", "-1"]).await, err("ERR timeout is negative"));
    assert_eq!(
        blocked.cmd(&["BLPOP", "q", "x"]).await,
        err("ERR timeout is not a float or out of range")
    );
    // Inside MULTI a blocking pop does not block.
    assert_eq!(blocked.cmd(&["MULTI"]).await, ok());
    assert_eq!(
        blocked.cmd(&["BLPOP", "q", "0"]).await,
        Reply::Simple(Bytes::from_static(b"QUEUED"))
    );
    assert_eq!(blocked.cmd(&["EXEC"]).await, array(&[Reply::NullArray]));
    assert_eq!(blocked.cmd(&["ZADD", "z", "1", "m"]).await, int(1));
    assert_eq!(
        blocked.cmd(&["BZPOPMIN", "z", "1"]).await,
        array(&[bulk("z"), bulk("m"), bulk("1")])
    );
}

#[tokio::test]
async fn each_pushed_element_goes_to_one_blocked_client() {
    let addr = start(ServerConfig::default()).await;
    let mut waiters = Vec::new();
    for _ in 0..5 {
        waiters.push(tokio::spawn(async move {
            let mut c = Client::connect(addr).await;
            match c.cmd(&["BLPOP", "jobs", "10"]).await {
                Reply::Array(items) => items[1].clone(),
                other => panic!("{other:?}"),
            }
        }));
    }
    let mut pusher = Client::connect(addr).await;
    for i in 0..5 {
        pusher.cmd(&["RPUSH", "jobs", &i.to_string()]).await;
    }
    let mut got = Vec::new();
    for waiter in waiters {
        got.push(waiter.await.unwrap());
    }
    got.sort_by_key(|r| format!("{r:?}"));
    let expected: Vec<Reply> = (0..5).map(|i| bulk(&i.to_string())).collect();
    assert_eq!(got, expected, "every job popped exactly once");
}

/// Whether CLIENT LIST shows `text`.
async fn listed(other: &mut Client, text: &str) -> bool {
    let Reply::Bulk(list) = other.cmd(&["CLIENT", "LIST"]).await else { panic!("a bulk") };
    String::from_utf8_lossy(&list).contains(text)
}

#[tokio::test]
async fn a_client_that_leaves_while_blocked_pops_nothing() {
    let addr = start(ServerConfig::default()).await;
    let mut leaving = Client::connect(addr).await;
    let mut other = Client::connect(addr).await;
    leaving.send_cmd(&["BLPOP", "q", "0"]).await;
    let deadline = Instant::now() + common::REPLY_WAIT_MAX;
    while !listed(&mut other, "flags=b").await {
        assert!(Instant::now() < deadline, "the pop blocks");
        tokio::task::yield_now().await;
    }
    drop(leaving);
    while listed(&mut other, "cmd=blpop").await {
        assert!(Instant::now() < deadline, "the server forgets a client that left while blocked");
        tokio::task::yield_now().await;
    }
    assert_eq!(other.cmd(&["RPUSH", "q", "job"]).await, int(1));
    // Had the departed client's pop lived on, it would have taken the job.
    assert_eq!(other.cmd(&["BLPOP", "q", "1"]).await, array(&[bulk("q"), bulk("job")]));
}

/// Found by the `server` fuzz target: a client that pipelined more than 64 KiB behind a
/// blocking pop and then left was never seen to leave (the connection had stopped reading at
/// 64 KiB), so its pop lived on and would have taken an element.
#[tokio::test]
async fn a_client_that_leaves_while_blocked_behind_a_long_pipeline_pops_nothing() {
    let addr = start(ServerConfig::default()).await;
    let mut leaving = Client::connect(addr).await;
    let mut other = Client::connect(addr).await;
    leaving.send_cmd(&["BLPOP", "q", "0"]).await;
    let behind = "x".repeat(100 << 10);
    leaving.send_cmd(&["SET", "after", &behind]).await;
    let deadline = Instant::now() + common::REPLY_WAIT_MAX;
    while !listed(&mut other, "flags=b").await {
        assert!(Instant::now() < deadline, "the pop blocks");
        tokio::task::yield_now().await;
    }
    drop(leaving);
    while listed(&mut other, "cmd=blpop").await {
        assert!(Instant::now() < deadline, "the server forgets a client that left while blocked");
        tokio::task::yield_now().await;
    }
    assert_eq!(other.cmd(&["RPUSH", "q", "job"]).await, int(1));
    assert_eq!(other.cmd(&["LLEN", "q"]).await, int(1), "no departed pop took the job");
    assert_eq!(other.cmd(&["EXISTS", "after"]).await, int(0), "nothing behind the pop ran");
}

/// ECHO commands of exactly `total` bytes in all (at least 64 bytes).
fn echoes(total: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(total);
    while out.len() < total {
        let left = total - out.len();
        // `*2\r\n$4\r\nECHO\r\n$<n>\r\n<n bytes>\r\n` is 19 bytes, the digits of n and n.
        // Leave at least 64 bytes for the last command.
        let budget = if left > rsl_kv::limits::BULK_BYTES_MAX { left - 64 } else { left };
        let budget = budget.min(rsl_kv::limits::BULK_BYTES_MAX);
        let n = (1..=9)
            .filter_map(|d| budget.checked_sub(19 + d).filter(|n| n.to_string().len() == d))
            .next()
            .expect("a payload length that fits");
        out.extend_from_slice(format!("*2\r\n$4\r\nECHO\r\n${n}\r\n").as_bytes());
        out.resize(out.len() + n, b'x');
        out.extend_from_slice(b"\r\n");
    }
    assert_eq!(out.len(), total);
    out
}

/// Behind a blocked pop the server buffers up to `BARRIER_INPUT_BYTES_MAX` bytes of input
/// and serves the pop; one byte more ends the connection (dropping the pop).
#[tokio::test]
async fn input_behind_a_blocked_pop_is_buffered_up_to_its_limit() {
    let addr = start(ServerConfig::default()).await;
    let mut other = Client::connect(addr).await;
    for (extra, served) in [(0, true), (1, false)] {
        let mut client = Client::connect(addr).await;
        client.send_cmd(&["BLPOP", "q", "0"]).await;
        let mut behind = echoes(rsl_kv::limits::BARRIER_INPUT_BYTES_MAX);
        behind.resize(behind.len() + extra, b'*');
        client.send(&behind).await;
        if served {
            assert_eq!(other.cmd(&["RPUSH", "q", "job"]).await, int(1));
            assert_eq!(client.reply().await, array(&[bulk("q"), bulk("job")]));
        } else {
            client.expect_closed().await;
            assert_eq!(other.cmd(&["RPUSH", "q", "job"]).await, int(1));
            assert_eq!(other.cmd(&["LLEN", "q"]).await, int(1), "no dropped pop took the job");
        }
    }
}

/// A [`LocalEngine`] that holds back the answers to writes whose request holds the bytes
/// `gated` until [`GatedEngine::open`]: their commands are executed, but the connection sees
/// them unanswered for as long as the test likes (a replicated engine's slow slots).
struct GatedEngine {
    inner: LocalEngine,
    /// The held answers; `None` once open.
    held: Mutex<Option<Vec<Held>>>,
}

/// A held answer: where the connection waits for it, and the engine's answer.
type Held = (EngineSender, EngineReply);

impl GatedEngine {
    fn new() -> GatedEngine {
        GatedEngine { inner: LocalEngine::new(), held: Mutex::new(Some(Vec::new())) }
    }

    /// Answers every held write, and every later one at once.
    async fn open(&self) {
        let held = self.held.lock().unwrap().take().unwrap_or_default();
        for (tx, rx) in held {
            let _ = tx.send(rx.await);
        }
    }
}

impl Engine for GatedEngine {
    fn write(&self, request: Bytes) -> EngineReply {
        let gated = request.windows(5).any(|w| w == b"gated");
        let reply = self.inner.write(request);
        let mut held = self.held.lock().unwrap();
        match held.as_mut() {
            Some(held) if gated => {
                let (tx, rx) = EngineReply::channel();
                held.push((tx, reply));
                rx
            }
            _ => reply,
        }
    }

    fn read(&self, request: Bytes) -> EngineReply {
        self.inner.read(request)
    }

    fn hub(&self) -> Option<Hub> {
        self.inner.hub()
    }
}

/// A client whose blocking pop is the last of `PIPELINE_DEPTH_MAX` unanswered replies (the
/// writes before it are slow to answer), and which then leaves: the server must see it leave
/// and drop its pop. It used to stop reading with that many replies waiting, so it never saw
/// the client leave, and the pop took the next element pushed: an acknowledged push lost.
/// One command fewer (a pipeline that is not full) was always seen leaving.
#[tokio::test]
async fn a_client_that_leaves_with_a_pop_last_in_a_full_pipeline_pops_nothing() {
    let depth = rsl_kv::limits::PIPELINE_DEPTH_MAX;
    for before in [depth - 2, depth - 1] {
        let engine = Arc::new(GatedEngine::new());
        let addr = common::start_with(Arc::clone(&engine), ServerConfig::default()).await;
        let mut leaving = Client::connect(addr).await;
        let mut other = Client::connect(addr).await;
        let mut pipeline = bytes::BytesMut::new();
        for i in 0..before {
            rsl_kv::resp::encode_command(&["SET", &format!("gated{i}"), "v"], &mut pipeline);
        }
        rsl_kv::resp::encode_command(&["BLPOP", "q", "0"], &mut pipeline);
        leaving.send(&pipeline).await;
        let deadline = Instant::now() + common::REPLY_WAIT_MAX;
        while !listed(&mut other, "flags=b").await {
            assert!(Instant::now() < deadline, "the pop blocks");
            tokio::task::yield_now().await;
        }
        drop(leaving);
        let mut forgotten = true;
        while listed(&mut other, "cmd=blpop").await {
            if Instant::now() >= deadline {
                forgotten = false;
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(other.cmd(&["RPUSH", "q", "job"]).await, int(1));
        engine.open().await;
        assert_eq!(
            other.cmd(&["LRANGE", "q", "0", "-1"]).await,
            array(&[bulk("job")]),
            "a departed client's pop took the job ({before} commands before it)"
        );
        assert!(forgotten, "the server forgets a client that left ({before} commands before)");
    }
}
