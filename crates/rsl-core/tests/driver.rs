//! The shared driver (`rsl_core::Driver`): callers are matched to outcomes exactly once,
//! executions carry their callers in batch order, and shutdown hands back every caller still
//! waiting.

use bytes::Bytes;
use rsl_core::message::Body;
use rsl_core::{
    Ballot, Config, Driver, Host, Input, Membership, MembershipOp, Message, Notification, ReadMode,
    ReconfigRefusal, Recovered, Refusal, ReplicaId, Request, RequestId, Slot, SlotValue, Value,
    Write,
};

/// What became of a membership operation.
type Outcome = Result<(Slot, Membership), ReconfigRefusal>;

/// A host whose disk is durable at once and which records what it was asked.
#[derive(Default)]
struct Recorder {
    persisted: Vec<u64>,
    sent: Vec<Message>,
    /// Handed over to leave once durable (`Host::send_when_durable`): seq and message.
    when_durable: Vec<(u64, Message)>,
    /// (slot, request payloads, callers) per execution.
    executed: Vec<(Slot, Vec<Bytes>, Vec<Option<u32>>)>,
    read: Vec<(u32, Bytes)>,
    refused: Vec<(u32, Refusal)>,
    primary: bool,
    broken: Vec<String>,
    reconfigured: Vec<(u64, Outcome)>,
}

impl Host<u32> for Recorder {
    fn send(&mut self, _to: ReplicaId, msg: Message) {
        self.sent.push(msg);
    }
    fn send_when_durable(&mut self, seq: u64, _to: ReplicaId, msg: Message) {
        self.when_durable.push((seq, msg));
    }
    fn persist(&mut self, seq: u64, _write: Write) {
        self.persisted.push(seq);
    }
    fn load_log(&mut self, _token: u64, _from: Slot, _to: Slot) {}
    fn execute(&mut self, slot: Slot, value: Value, callers: Vec<Option<u32>>) {
        let payloads = match value {
            Value::Batch(requests) => requests.iter().map(|r| r.payload.clone()).collect(),
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
    fn reconfigured(&mut self, id: u64, outcome: Outcome) {
        self.reconfigured.push((id, outcome));
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
    lone_primary_with(Config::new(1, [1]))
}

/// A lone replica of `config` (id 1 of 1) that has become primary.
fn lone_primary_with(config: Config) -> (Driver<u32>, Recorder) {
    let mut driver = Driver::new(config, Recovered::default(), 7);
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
    assert_eq!((driver.id(), driver.incarnation()), (ReplicaId(1), 7));
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
    assert_eq!((driver.proposals_waiting(), driver.reads_waiting()), (1, 1));
    let mut left: Vec<u32> = driver.drain_callers().collect();
    left.sort_unstable();
    assert_eq!(left, vec![1, 2]);
    assert_eq!((driver.proposals_waiting(), driver.reads_waiting()), (0, 0));
}

#[test]
fn the_proposals_of_a_turn_go_into_one_slot_at_its_end() {
    // With `propose_at_turn_end` (the runtime's and the simulator's setting) a proposal only
    // queues; `end_turn` puts the turn's proposals into a slot at once, with no other input.
    let mut config = Config::new(1, [1]);
    config.propose_at_turn_end = true;
    let (mut driver, mut host) = lone_primary_with(config);
    host.executed.clear();
    assert!(!driver.turn_pending());
    for caller in 10..13u32 {
        driver.propose(Bytes::from(vec![caller as u8]), false, caller, &mut host);
    }
    assert!(driver.turn_pending(), "proposals taken, the turn not ended");
    assert!(host.persisted.is_empty(), "a proposal went into a slot before the turn's end");
    driver.end_turn(&mut host);
    assert!(!driver.turn_pending());
    assert!(!host.persisted.is_empty(), "the turn's end proposed nothing");
    sync(&mut driver, &mut host);
    let payloads: Vec<u8> = host.executed.iter().flat_map(|e| e.1.iter().map(|p| p[0])).collect();
    assert_eq!(payloads, [10, 11, 12]);
    assert_eq!(host.executed.len(), 1, "one slot for the turn");
    assert_eq!(host.executed[0].2, [Some(10), Some(11), Some(12)]);
    // Ending a turn in which nothing was proposed steps nothing.
    driver.end_turn(&mut host);
    assert!(host.persisted.is_empty() && host.sent.is_empty());
}

/// Replica 1 of {1, 2, 3}, alone, refuses the request it is handed (it is nobody's primary);
/// then replica 2, as primary, has it accept and commit a batch holding that very request,
/// which it executes. `before` runs on the driver before the proposal, `after` between the
/// refusal and the execution. Returns the contract breaks reported.
fn refuse_then_execute(before: bool, after: Option<bool>) -> Vec<String> {
    let mut driver = Driver::new(Config::new(1, [1, 2, 3]), Recovered::default(), 4);
    let mut host = Recorder::default();
    driver.set_checking(before);
    let id = driver.propose(Bytes::from_static(b"x"), false, 5, &mut host);
    assert_eq!(host.refused.len(), 1, "refused: not primary");
    if let Some(on) = after {
        driver.set_checking(on);
    }
    let ballot = Ballot::new(1, ReplicaId(2));
    let request = Request { id, payload: Bytes::from_static(b"x") };
    let entries = vec![SlotValue { slot: Slot(1), value: Value::Batch(vec![request].into()) }];
    let from_2 = |body| Input::Receive(Message { from: ReplicaId(2), to: ReplicaId(1), body });
    driver.step(from_2(Body::Accept { ballot, commit: Slot::ZERO, entries }), &mut host);
    sync(&mut driver, &mut host);
    driver.step(from_2(Body::Heartbeat { ballot, commit: Slot(1), round: 1 }), &mut host);
    sync(&mut driver, &mut host);
    assert_eq!(host.executed.len(), 1, "slot 1 executed");
    assert_eq!(host.executed[0].2, [None], "the refused request's caller was answered already");
    host.broken
}

#[test]
fn a_refused_request_that_executes_breaks_the_contract_while_checking() {
    let broken = refuse_then_execute(true, None);
    assert!(broken.len() == 1 && broken[0].contains("then executed"), "{broken:?}");
    // Turning checking on again forgets no refusal.
    let broken = refuse_then_execute(true, Some(true));
    assert!(broken.len() == 1 && broken[0].contains("then executed"), "{broken:?}");
    // Checking off (the runtime's setting) keeps no refused id, so nothing is reported.
    assert_eq!(refuse_then_execute(false, None), Vec::<String>::new());
    assert_eq!(refuse_then_execute(true, Some(false)), Vec::<String>::new());
}

/// A host that keeps `Host::contract_broken`'s default.
struct Plain;

impl Host<u32> for Plain {
    fn send(&mut self, _to: ReplicaId, _msg: Message) {}
    fn send_when_durable(&mut self, _seq: u64, _to: ReplicaId, _msg: Message) {}
    fn persist(&mut self, _seq: u64, _write: Write) {}
    fn load_log(&mut self, _token: u64, _from: Slot, _to: Slot) {}
    fn execute(&mut self, _slot: Slot, _value: Value, _callers: Vec<Option<u32>>) {}
    fn read(&mut self, _caller: u32, _query: Bytes) {}
    fn refused(&mut self, _caller: u32, _reason: Refusal) {}
}

#[test]
#[should_panic(expected = "core contract broken")]
fn by_default_a_broken_contract_panics() {
    // A proposal handed to the core past the driver: its refusal answers a request the
    // driver never took.
    let mut driver = Driver::new(Config::new(1, [1, 2, 3]), Recovered::default(), 1);
    let id = RequestId { proposer: ReplicaId(1), incarnation: 9, seq: 1 };
    let input = Input::Propose { id, payload: Bytes::from_static(b"x"), exclusive: false };
    driver.step(input, &mut Plain);
}

#[test]
fn each_membership_operation_is_answered_with_the_id_it_was_given() {
    // Two operations the lone primary refuses at once: neither replica is a member.
    let (mut driver, mut host) = lone_primary();
    let first = driver.reconfigure(MembershipOp::Promote { id: ReplicaId(5) }, &mut host);
    let second = driver.reconfigure(MembershipOp::Remove { id: ReplicaId(6) }, &mut host);
    assert_ne!(first, second, "two operations, one id");
    let unknown = |id| Err(ReconfigRefusal::UnknownMember { id: ReplicaId(id) });
    assert_eq!(host.reconfigured, [(first, unknown(5)), (second, unknown(6))]);
}

#[test]
fn a_refusal_of_a_request_not_waiting_names_whose_request_it_was() {
    // Proposals handed to the core past the driver, whose refusals answer requests the
    // driver is not waiting for: its own id (this replica, this incarnation: answered
    // twice?) or an id it could never have given out.
    let broken = |proposer: u32, incarnation: u64| {
        let mut driver = Driver::new(Config::new(1, [1, 2, 3]), Recovered::default(), 4);
        let mut host = Recorder::default();
        let id = RequestId { proposer: ReplicaId(proposer), incarnation, seq: 1 };
        let input = Input::Propose { id, payload: Bytes::from_static(b"x"), exclusive: false };
        driver.step(input, &mut host);
        assert!(host.refused.is_empty(), "a refusal answered no caller");
        assert_eq!(host.broken.len(), 1, "{:?}", host.broken);
        host.broken.remove(0)
    };
    assert!(broken(1, 4).contains("which is not waiting (answered twice?)"));
    assert!(broken(2, 4).contains("a request it never took"));
    assert!(broken(1, 3).contains("a request it never took"));
}

/// With `Config::held_sends_to_driver` a follower's vote is handed to the driver with the seq
/// of the last write it rests on, and the core never sends it itself (no second copy once the
/// write is durable); without, the core holds it until `Input::Durable` and then sends it.
#[test]
fn a_vote_is_handed_to_the_driver_with_its_write_or_held_by_the_core() {
    for to_driver in [false, true] {
        let mut config = Config::new(2, [1, 2, 3]);
        config.held_sends_to_driver = to_driver;
        let mut driver = Driver::new(config, Recovered::default(), 1);
        let mut host = Recorder::default();
        let ballot = Ballot::new(1, ReplicaId(1));
        let request = Request {
            id: RequestId { proposer: ReplicaId(1), incarnation: 1, seq: 1 },
            payload: Bytes::from_static(b"x"),
        };
        let entries = vec![SlotValue { slot: Slot(1), value: Value::Batch(vec![request].into()) }];
        let accept = Body::Accept { ballot, commit: Slot::ZERO, entries };
        driver.step(
            Input::Receive(Message { from: ReplicaId(1), to: ReplicaId(2), body: accept }),
            &mut host,
        );
        let last = *host.persisted.last().expect("the promise and the accept are written");
        let votes = |sent: &[Message]| {
            sent.iter().filter(|m| matches!(m.body, Body::Accepted { .. })).count()
        };
        assert_eq!(votes(&host.sent), 0, "no vote before its write is durable");
        if to_driver {
            assert_eq!(host.when_durable.len(), 1);
            let (seq, msg) = &host.when_durable[0];
            assert_eq!(*seq, last, "the vote waits for its own write");
            assert!(matches!(&msg.body, Body::Accepted { slots, .. } if slots == &[Slot(1)]));
        } else {
            assert!(host.when_durable.is_empty());
        }
        driver.step(Input::Durable { seq: last }, &mut host);
        assert_eq!(votes(&host.sent), usize::from(!to_driver), "sent by the core iff it held it");
        assert_eq!(host.when_durable.len(), usize::from(to_driver));
    }
}
