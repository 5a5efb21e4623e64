//! The shared driver (`rsl_core::Driver`): callers are matched to outcomes exactly once,
//! executions carry their callers in batch order, and shutdown hands back every caller still
//! waiting.

use bytes::Bytes;
use rsl_core::{
    Config, Driver, Host, Input, Message, Notification, ReadMode, Recovered, Refusal, ReplicaId,
    Slot, Value, Write,
};

/// A host whose disk is durable at once and which records what it was asked.
#[derive(Default)]
struct Recorder {
    persisted: Vec<u64>,
    sent: Vec<Message>,
    /// (slot, request payloads, callers) per execution.
    executed: Vec<(Slot, Vec<Bytes>, Vec<Option<u32>>)>,
    read: Vec<(u32, Bytes)>,
    refused: Vec<(u32, Refusal)>,
    primary: bool,
    broken: Vec<String>,
}

impl Host<u32> for Recorder {
    fn send(&mut self, _to: ReplicaId, msg: Message) {
        self.sent.push(msg);
    }
    fn persist(&mut self, seq: u64, _write: Write) {
        self.persisted.push(seq);
    }
    fn load_log(&mut self, _token: u64, _from: Slot, _to: Slot) {}
    fn execute(&mut self, slot: Slot, value: Value, callers: Vec<Option<u32>>) {
        let payloads = match value {
            Value::Batch(requests) => requests.into_iter().map(|r| r.payload).collect(),
            _ => Vec::new(),
        };
        self.executed.push((slot, payloads, callers));
    }
    fn read(&mut self, caller: u32, query: Bytes) {
        self.read.push((caller, query));
    }
    fn refused(&mut self, caller: u32, reason: Refusal) {
        self.refused.push((caller, reason));
    }
    fn notify(&mut self, event: Notification) {
        if matches!(event, Notification::BecamePrimary { .. }) {
            self.primary = true;
        }
    }
    fn contract_broken(&mut self, what: String) {
        self.broken.push(what);
    }
}

/// Reports every pending write durable, until nothing is left to report.
fn sync(driver: &mut Driver<u32>, host: &mut Recorder) {
    while let Some(seq) = host.persisted.iter().copied().max() {
        host.persisted.clear();
        driver.step(Input::Durable { seq }, host);
    }
}

/// A lone replica (a cluster of one) that has become primary.
fn lone_primary() -> (Driver<u32>, Recorder) {
    let mut driver = Driver::new(Config::new(1, [1]), Recovered::default(), 7);
    let mut host = Recorder::default();
    for _ in 0..1_000 {
        if host.primary {
            break;
        }
        driver.step(Input::Tick, &mut host);
        sync(&mut driver, &mut host);
    }
    assert!(host.primary, "a lone replica elects itself");
    (driver, host)
}

#[test]
fn each_request_executes_with_its_own_caller_in_batch_order() {
    let (mut driver, mut host) = lone_primary();
    host.executed.clear();
    let ids: Vec<_> = (10..13u32)
        .map(|caller| {
            let payload = Bytes::from(vec![caller as u8]);
            driver.propose(payload, false, caller, &mut host)
        })
        .collect();
    assert!(ids.iter().all(|id| id.proposer == ReplicaId(1) && id.incarnation == 7));
    assert_eq!(driver.proposals_waiting(), 3);
    sync(&mut driver, &mut host);
    for _ in 0..10 {
        driver.step(Input::Tick, &mut host);
        sync(&mut driver, &mut host);
    }

    let mut answered = Vec::new();
    for (_, payloads, callers) in &host.executed {
        assert_eq!(payloads.len(), callers.len(), "one caller slot per request");
        for (payload, caller) in payloads.iter().zip(callers) {
            let caller = caller.expect("every request here was proposed by this driver");
            assert_eq!(payload[0] as u32, caller, "the caller of another request");
            answered.push(caller);
        }
    }
    answered.sort_unstable();
    assert_eq!(answered, vec![10, 11, 12], "each caller answered exactly once");
    assert_eq!(driver.proposals_waiting(), 0);
    let slots: Vec<_> = host.executed.iter().map(|e| e.0).collect();
    assert!(slots.windows(2).all(|w| w[0] < w[1]), "slots in ascending order: {slots:?}");
    assert_eq!(driver.executed(), *slots.last().unwrap());
    assert!(host.refused.is_empty() && host.broken.is_empty());
}

#[test]
fn a_replica_that_is_not_primary_refuses_once_and_names_no_primary() {
    // Replica 1 of three, alone: it is nobody's primary.
    let mut driver = Driver::new(Config::new(1, [1, 2, 3]), Recovered::default(), 1);
    let mut host = Recorder::default();
    driver.propose(Bytes::from_static(b"x"), false, 5, &mut host);
    assert_eq!(host.refused.len(), 1);
    assert_eq!(host.refused[0].0, 5);
    assert!(matches!(host.refused[0].1, Refusal::NotPrimary { .. }), "{:?}", host.refused[0].1);
    assert_eq!(driver.proposals_waiting(), 0);
    assert!(host.executed.is_empty() && host.broken.is_empty());
}

#[test]
fn linearizable_reads_are_served_by_the_lone_primary() {
    let (mut driver, mut host) = lone_primary();
    driver.read(Bytes::from_static(b"k"), ReadMode::Linearizable, 3, &mut host);
    sync(&mut driver, &mut host);
    for _ in 0..10 {
        driver.step(Input::Tick, &mut host);
        sync(&mut driver, &mut host);
    }
    assert_eq!(host.read, vec![(3, Bytes::from_static(b"k"))]);
    assert_eq!(driver.reads_waiting(), 0);
}

#[test]
fn shutdown_hands_back_every_waiting_caller() {
    // A proposal whose write is not durable yet, and a read of a slot far ahead: both wait.
    let (mut driver, mut host) = lone_primary();
    driver.propose(Bytes::from_static(b"a"), false, 1, &mut host);
    driver.read(Bytes::from_static(b"b"), ReadMode::AtLeast(Slot(1_000)), 2, &mut host);
    let mut left: Vec<u32> = driver.drain_callers().collect();
    left.sort_unstable();
    assert_eq!(left, vec![1, 2]);
    assert_eq!((driver.proposals_waiting(), driver.reads_waiting()), (0, 0));
}
