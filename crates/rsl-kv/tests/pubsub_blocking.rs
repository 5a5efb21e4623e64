//! Pub/sub and blocking pops over TCP: messages reach every subscriber once and in order, in
//! RESP2 arrays or RESP3 pushes; a blocking pop waits for a push from another client, times
//! out with a null, and blocks its connection meanwhile.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{bulk, err, int, ok, start, Client};
use rsl_kv::resp::Reply;
use rsl_kv::ServerConfig;

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
