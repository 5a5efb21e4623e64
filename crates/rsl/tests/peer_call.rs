//! Calls between members (`Node::call_peer`, `Node::serve_peer_calls`): in one process over
//! the in-process hub, and between replicas started with `Node::start` over TCP with mutual
//! TLS, at the size limit.

mod common;

use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use rsl::{LocalCluster, LocalOptions, Node, PeerCallError, PeerResponder, Snapshot, StateMachine};
use rsl::{PEER_CALLS_SERVING_MAX, PEER_CALLS_WAITING_MAX, PEER_CALL_BYTES_MAX};

/// A state machine that does nothing: these tests are about calls, not consensus.
struct Idle;

struct Empty;

impl Snapshot for Empty {
    fn write_to(&self, _out: &mut dyn io::Write) -> io::Result<()> {
        Ok(())
    }
}

impl StateMachine for Idle {
    fn execute(&mut self, _slot: u64, _request: &[u8]) -> Bytes {
        Bytes::new()
    }
    fn read(&self, _request: &[u8]) -> Bytes {
        Bytes::new()
    }
    fn snapshot(&self) -> Box<dyn Snapshot> {
        Box::new(Empty)
    }
    fn load_checkpoint(&mut self, _input: &mut dyn io::Read) -> io::Result<()> {
        Ok(())
    }
}

/// Long enough for any answer on a loaded machine; the tests never wait it out unless they
/// expect a timeout.
const WAIT: Duration = Duration::from_secs(30);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

fn local() -> LocalCluster {
    LocalCluster::start(LocalOptions::default(), |_| Idle)
}

fn node(cluster: &LocalCluster, id: u32) -> &Node {
    cluster.nodes.iter().find(|n| n.id() == id).unwrap()
}

/// A handler that answers `from:<caller>:<request>` at once.
fn echo(from: u32, request: Bytes, responder: PeerResponder) {
    assert_eq!(responder.caller(), from);
    let mut answer = format!("from:{from}:").into_bytes();
    answer.extend_from_slice(&request);
    responder.respond(Bytes::from(answer));
}

#[test]
fn a_call_reaches_the_member_and_the_answer_names_the_authenticated_caller() {
    runtime().block_on(async {
        let cluster = local();
        node(&cluster, 1).serve_peer_calls(echo);
        for caller in [2, 3] {
            let answer = node(&cluster, caller).call_peer(1, Bytes::from("hi"), WAIT).await;
            assert_eq!(answer.unwrap(), Bytes::from(format!("from:{caller}:hi")));
        }
    });
}

#[test]
fn calls_are_handled_in_the_order_they_were_made() {
    runtime().block_on(async {
        let cluster = local();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        node(&cluster, 1).serve_peer_calls(move |_, request, responder| {
            log.lock().unwrap().push(request.clone());
            // Answer from another thread, as an application that spawns its work would.
            std::thread::spawn(move || responder.respond(request));
        });
        let calls: Vec<_> = (0..1000u32)
            .map(|i| node(&cluster, 2).call_peer(1, Bytes::from(i.to_string()), WAIT))
            .collect();
        for (i, call) in calls.into_iter().enumerate() {
            assert_eq!(call.await.unwrap(), Bytes::from(i.to_string()));
        }
        let expected: Vec<Bytes> = (0..1000u32).map(|i| Bytes::from(i.to_string())).collect();
        assert_eq!(*seen.lock().unwrap(), expected);
    });
}

#[test]
fn each_refusal_says_whether_the_call_may_have_been_handled() {
    runtime().block_on(async {
        let cluster = local();
        let (one, two) = (node(&cluster, 1), node(&cluster, 2));
        let call = |to: u32, bytes: usize, wait: Duration| {
            two.call_peer(to, Bytes::from(vec![b'x'; bytes]), wait)
        };

        // Refused before the handler saw it: safe to send again.
        let none = call(1, 1, WAIT).await.unwrap_err();
        assert_eq!(none, PeerCallError::NoHandler { to: 1 });
        assert!(!none.maybe_handled());
        for to in [2, 9] {
            assert_eq!(call(to, 1, WAIT).await.unwrap_err(), PeerCallError::UnknownPeer { to });
        }
        let large = call(1, PEER_CALL_BYTES_MAX + 1, WAIT).await.unwrap_err();
        let max = PEER_CALL_BYTES_MAX;
        assert_eq!(large, PeerCallError::TooLarge { size: max + 1, max });
        assert!(!large.maybe_handled());
        cluster.hub.cut(1, 2);
        let cut = call(1, 1, WAIT).await.unwrap_err();
        assert_eq!(cut, PeerCallError::NotConnected { to: 1 });
        assert!(!cut.maybe_handled());
        cluster.hub.heal();

        // The largest request is carried whole.
        one.serve_peer_calls(|_, request, responder| {
            responder.respond(Bytes::from(request.len().to_string()))
        });
        assert_eq!(call(1, max, WAIT).await.unwrap(), Bytes::from(max.to_string()));

        // Seen by the handler, then dropped or never answered: the outcome is unknown.
        one.serve_peer_calls(|_, _, responder| drop(responder));
        let dropped = call(1, 1, WAIT).await.unwrap_err();
        assert_eq!(dropped, PeerCallError::Dropped { to: 1 });
        assert!(dropped.maybe_handled());
        let held = Arc::new(Mutex::new(Vec::new()));
        let keep = Arc::clone(&held);
        one.serve_peer_calls(move |_, _, responder| keep.lock().unwrap().push(responder));
        let late = call(1, 1, Duration::from_millis(50)).await.unwrap_err();
        assert_eq!(late, PeerCallError::Timeout { to: 1, wait_ms: 50 });
        assert!(late.maybe_handled());
        // Its answer, when it comes, finds nobody waiting and is dropped quietly.
        held.lock().unwrap().pop().unwrap().respond(Bytes::from("too late"));

        // An answer over the limit is not sent; the caller learns the call was handled.
        one.serve_peer_calls(move |_, _, responder| {
            responder.respond(Bytes::from(vec![0; PEER_CALL_BYTES_MAX + 1]))
        });
        let big = call(1, 1, WAIT).await.unwrap_err();
        assert_eq!(big, PeerCallError::AnswerTooLarge { to: 1, max });
        assert!(big.maybe_handled());
    });
}

#[test]
fn calls_waiting_and_calls_served_are_bounded() {
    runtime().block_on(async {
        let cluster = local();
        let held = Arc::new(Mutex::new(Vec::new()));
        let keep = Arc::clone(&held);
        node(&cluster, 1)
            .serve_peer_calls(move |_, _, responder| keep.lock().unwrap().push(responder));
        // The hub delivers at once: when `call_peer` returns, the handler holds the call.
        let mut waiting: Vec<_> = (0..PEER_CALLS_WAITING_MAX)
            .map(|i| node(&cluster, 2).call_peer(1, Bytes::from(i.to_string()), WAIT))
            .collect();
        assert_eq!(held.lock().unwrap().len(), PEER_CALLS_SERVING_MAX);
        // One more from the same caller is refused there, unsent: too many wait already.
        let unsent = node(&cluster, 2).call_peer(1, Bytes::from("one more"), WAIT).await;
        assert_eq!(unsent.unwrap_err(), PeerCallError::Overloaded { to: 1 });
        // One more from another caller reaches replica 1, which serves its maximum already.
        let refused = node(&cluster, 3).call_peer(1, Bytes::from("one more"), WAIT).await;
        assert_eq!(refused.unwrap_err(), PeerCallError::PeerOverloaded { to: 1 });
        assert_eq!(held.lock().unwrap().len(), PEER_CALLS_SERVING_MAX);
        // Answering frees both sides.
        for responder in held.lock().unwrap().drain(..) {
            responder.respond(Bytes::from("done"));
        }
        for call in waiting.drain(..) {
            assert_eq!(call.await.unwrap(), Bytes::from("done"));
        }
        node(&cluster, 1).serve_peer_calls(echo);
        let again = node(&cluster, 3).call_peer(1, Bytes::from("again"), WAIT).await;
        assert_eq!(again.unwrap(), Bytes::from("from:3:again"));
    });
}

#[test]
fn calls_waiting_at_shutdown_end_and_later_ones_are_refused() {
    runtime().block_on(async {
        let cluster = local();
        let held = Arc::new(Mutex::new(Vec::new()));
        let keep = Arc::clone(&held);
        node(&cluster, 1)
            .serve_peer_calls(move |_, _, responder| keep.lock().unwrap().push(responder));
        let waiting = node(&cluster, 2).call_peer(1, Bytes::from("x"), WAIT);
        let waiting = tokio::spawn(waiting);
        tokio::task::yield_now().await;
        cluster.stop(2);
        assert_eq!(waiting.await.unwrap().unwrap_err(), PeerCallError::ShuttingDown);
        let after = node(&cluster, 2).call_peer(1, Bytes::from("x"), WAIT).await;
        assert_eq!(after.unwrap_err(), PeerCallError::ShuttingDown);
    });
}

/// Three replicas with mutual TLS on loopback, each started with `Node::start`.
fn start_tls(root: &std::path::Path) -> Vec<Node> {
    common::configs(root, true).into_iter().map(|c| Node::start(c, Idle).unwrap()).collect()
}

/// Calls until the transport has connected (no event announces a connection: retried after a
/// short pause while the answer is `NotConnected`, bounded).
async fn call_connected(from: &Node, to: u32, request: Bytes) -> Result<Bytes, PeerCallError> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match from.call_peer(to, request.clone(), WAIT).await {
            Err(PeerCallError::NotConnected { .. }) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            outcome => return outcome,
        }
    }
}

#[test]
fn calls_between_tcp_members_under_mutual_tls_at_the_size_limit() {
    runtime().block_on(async {
        let root = tempfile::tempdir().unwrap();
        let nodes = start_tls(root.path());
        let max = PEER_CALL_BYTES_MAX;
        // Replica 1 answers with the caller's id and the request's size, or with an answer of
        // the size asked for.
        nodes[0].serve_peer_calls(|from, request, responder| {
            let answer = match std::str::from_utf8(&request).ok().and_then(|t| t.parse().ok()) {
                Some(size) => Bytes::from(vec![b'a'; size]),
                None => Bytes::from(format!("{from}:{}", request.len())),
            };
            responder.respond(answer);
        });
        let largest = Bytes::from(vec![b'r'; max]);
        assert_eq!(call_connected(&nodes[1], 1, largest).await.unwrap(), format!("2:{max}"));
        assert_eq!(call_connected(&nodes[2], 1, Bytes::from("x")).await.unwrap(), "3:1");
        let over = nodes[1].call_peer(1, Bytes::from(vec![b'r'; max + 1]), WAIT).await;
        assert_eq!(over.unwrap_err(), PeerCallError::TooLarge { size: max + 1, max });
        let answer = nodes[1].call_peer(1, Bytes::from(max.to_string()), WAIT).await.unwrap();
        assert_eq!(answer.len(), max);
        let answer = nodes[1].call_peer(1, Bytes::from((max + 1).to_string()), WAIT).await;
        assert_eq!(answer.unwrap_err(), PeerCallError::AnswerTooLarge { to: 1, max });

        // A call waiting on a member whose connection breaks ends at once as lost, long before
        // its deadline.
        nodes[2].serve_peer_calls(echo);
        assert_eq!(call_connected(&nodes[0], 3, Bytes::from("up")).await.unwrap(), "from:1:up");
        let held = Arc::new(Mutex::new(Vec::new()));
        let arrived = Arc::new(tokio::sync::Notify::new());
        let (keep, arrival) = (Arc::clone(&held), Arc::clone(&arrived));
        nodes[2].serve_peer_calls(move |_, _, responder| {
            keep.lock().unwrap().push(responder);
            arrival.notify_one();
        });
        let call = tokio::spawn(nodes[0].call_peer(3, Bytes::from("x"), 4 * WAIT));
        tokio::time::timeout(WAIT, arrived.notified()).await.expect("the call arrives");
        nodes[2].shutdown();
        let outcome = tokio::time::timeout(WAIT, call).await.expect("the call ends").unwrap();
        assert_eq!(outcome.unwrap_err(), PeerCallError::Lost { to: 3 });
        for n in &nodes {
            n.shutdown();
        }
    });
}
