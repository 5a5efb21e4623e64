//! The per-replica driver: the one piece of code between a [`Replica`] and the world, shared
//! by the production runtime (`rsl`) and the deterministic simulator (`rsl-sim`).
//!
//! It feeds an [`Input`] to the core, optionally checks the core's invariants, and carries
//! out the returned [`Action`]s **in order** through a [`Host`]: persist, send, execute (with
//! the callers waiting on each request of the batch), refuse, serve reads, notify, load the
//! log, checkpoints. It owns the bookkeeping that maps the core's request and read ids back
//! to whoever is waiting for them (a caller handle `T`: a reply channel in production, a
//! ticket number in the simulator), assigns request ids that are unique across restarts
//! (proposer, incarnation, counter), and checks the core's boundary contract: every proposal
//! is answered once, a refused request never executes, slots execute in ascending order.
//!
//! Like the rest of the core it does no I/O: the runtime's `Host` routes to its I/O,
//! executor and network threads; the simulator's `Host` applies effects to its simulated
//! network, disk and state machine.

use std::collections::BTreeSet;

use bytes::Bytes;

use crate::waiting::Waiting;
use crate::{
    Action, Config, Input, Membership, MembershipOp, Message, Notification, ReadId, ReadMode,
    ReconfigRefusal, Recovered, Refusal, Replica, ReplicaId, RequestId, Slot, Status, Value, Write,
};

/// The side effects the driver asks of its environment. `T` is a waiting caller.
pub trait Host<T> {
    /// Send a message to a peer (it may be lost).
    fn send(&mut self, to: ReplicaId, msg: Message);
    /// Send a message to a peer once every write up to `seq` (`Host::persist`) is durable,
    /// and never before; lost if the process stops first (`Action::SendWhenDurable`: only
    /// with `Config::held_sends_to_driver`).
    fn send_when_durable(&mut self, seq: u64, to: ReplicaId, msg: Message);
    /// Write durably; report completion later with `Input::Durable`, in seq order.
    fn persist(&mut self, seq: u64, write: Write);
    /// Read committed log entries and feed them back with `Input::LogLoaded`.
    fn load_log(&mut self, token: u64, from: Slot, to: Slot);
    /// Execute the chosen `value` of `slot` on the state machine (slots arrive in ascending
    /// order). For a batch, `callers[i]` waits for the response of request `i` (`None` for a
    /// request proposed elsewhere or in an earlier life); otherwise `callers` is empty.
    fn execute(&mut self, slot: Slot, value: Value, callers: Vec<Option<T>>);
    /// Serve `query` against the state machine once every slot handed to `execute` so far
    /// has been executed, and answer `caller`.
    fn read(&mut self, caller: T, query: Bytes);
    /// The request or read of `caller` was refused; it was not (and will not be) executed.
    fn refused(&mut self, caller: T, reason: Refusal);
    /// An application event.
    fn notify(&mut self, _event: Notification) {}
    /// The core asked for a checkpoint to be streamed to `to`.
    fn send_checkpoint(&mut self, _to: ReplicaId) {}
    /// The core asked for a checkpoint of the state after `slot`, carrying `membership`
    /// (see `Action::TakeCheckpoint`).
    fn take_checkpoint(&mut self, _slot: Slot, _membership: Membership) {}
    /// The membership operation `id` (from [`Driver::reconfigure`]) was made in a slot, or
    /// refused.
    fn reconfigured(&mut self, _id: u64, _outcome: Result<(Slot, Membership), ReconfigRefusal>) {}
    /// The core broke a contract of its boundary (answered twice, executed a refused
    /// request, ...). The simulator fails the run; production may log it.
    fn contract_broken(&mut self, what: String) {
        panic!("core contract broken: {what}");
    }
}

/// A read waiting for the core's `ReadReady`: who asked, and what.
#[derive(Debug)]
struct WaitingRead<T> {
    caller: T,
    query: Bytes,
}

/// One replica's core with its waiting callers.
#[derive(Debug)]
pub struct Driver<T> {
    id: ReplicaId,
    incarnation: u64,
    replica: Replica,
    next_request: u64,
    next_read: u64,
    next_change: u64,
    executed: Slot,
    /// Proposals taken and not yet answered, with their caller, by `RequestId::seq` (the
    /// proposer and incarnation are this replica's own).
    proposals: Waiting<T>,
    /// Proposals refused in this incarnation (kept only when checking): they must never execute.
    refused: BTreeSet<RequestId>,
    /// Reads waiting for `ReadReady`, by `ReadId`.
    reads: Waiting<WaitingRead<T>>,
    actions: Vec<Action>,
    check: bool,
    /// A proposal was taken since the last [`Driver::end_turn`] (with
    /// `Config::propose_at_turn_end` it waits in the core's queue for it).
    proposed: bool,
}

impl<T> Driver<T> {
    /// Starts a replica. `incarnation` must differ on every start of the same replica.
    /// Checking (the core's `invariants()` after every step and the refused-never-executed
    /// contract, which keeps every refused id) is on: turn it off for long-running production.
    pub fn new(config: Config, recovered: Recovered, incarnation: u64) -> Self {
        let id = config.id;
        Driver {
            id,
            incarnation,
            replica: Replica::new(config, recovered),
            next_request: 0,
            next_read: 0,
            next_change: 0,
            executed: Slot::ZERO,
            proposals: Waiting::default(),
            refused: BTreeSet::new(),
            reads: Waiting::default(),
            actions: Vec::new(),
            check: true,
            proposed: false,
        }
    }

    pub fn id(&self) -> ReplicaId {
        self.id
    }

    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    pub fn replica(&self) -> &Replica {
        &self.replica
    }

    pub fn status(&self) -> Status {
        self.replica.status()
    }

    /// The commit point: every slot up to it is known chosen here.
    pub fn commit(&self) -> Slot {
        self.replica.commit
    }

    /// The last slot handed to `Host::execute` (in this incarnation).
    pub fn executed(&self) -> Slot {
        self.executed
    }

    /// Proposals taken and not answered yet.
    pub fn proposals_waiting(&self) -> usize {
        self.proposals.len()
    }

    /// Reads taken and not answered yet.
    pub fn reads_waiting(&self) -> usize {
        self.reads.len()
    }

    /// Whether to run `Replica::invariants` after every step and keep refused ids to check
    /// that none executes (on by default; they cost time and memory).
    pub fn set_checking(&mut self, on: bool) {
        self.check = on;
        if !on {
            self.refused.clear();
        }
    }

    /// Feeds one input to the core and carries out its actions.
    pub fn step(&mut self, input: Input, host: &mut impl Host<T>) {
        let mut actions = std::mem::take(&mut self.actions);
        actions.clear();
        self.replica.step(input, &mut actions);
        if self.check {
            self.replica.invariants();
        }
        for action in actions.drain(..) {
            self.apply(action, host);
        }
        self.actions = actions;
    }

    /// Proposes a request on behalf of `caller`; returns its id.
    pub fn propose(
        &mut self,
        payload: Bytes,
        exclusive: bool,
        caller: T,
        host: &mut impl Host<T>,
    ) -> RequestId {
        self.next_request += 1;
        let id =
            RequestId { proposer: self.id, incarnation: self.incarnation, seq: self.next_request };
        let fresh = self.proposals.insert(id.seq, caller);
        require!(fresh, "request id {id:?} reused");
        self.proposed = true;
        self.step(Input::Propose { id, payload, exclusive }, host);
        id
    }

    /// Ends the driver's turn: every input that arrived together was stepped, so the
    /// proposals taken since the last turn's end go into slots together
    /// ([`Input::EndOfTurn`]; a step only when a proposal was taken).
    pub fn end_turn(&mut self, host: &mut impl Host<T>) {
        if std::mem::take(&mut self.proposed) {
            self.step(Input::EndOfTurn, host);
        }
    }

    /// Whether a proposal was taken since the last [`Driver::end_turn`].
    pub fn turn_pending(&self) -> bool {
        self.proposed
    }

    /// Starts a read of `query` on behalf of `caller`.
    pub fn read(&mut self, query: Bytes, mode: ReadMode, caller: T, host: &mut impl Host<T>) {
        self.next_read += 1;
        let id = ReadId(self.next_read);
        let fresh = self.reads.insert(id.0, WaitingRead { caller, query });
        require!(fresh, "read id {id:?} reused");
        self.step(Input::Read { id, mode }, host);
    }

    /// Asks the core for a membership operation; returns the id its answer
    /// ([`Host::reconfigured`]) carries.
    pub fn reconfigure(&mut self, op: MembershipOp, host: &mut impl Host<T>) -> u64 {
        self.next_change += 1;
        let id = self.next_change;
        self.step(Input::Reconfigure { id, op }, host);
        id
    }

    /// Every caller still waiting (at shutdown: each must be told).
    pub fn drain_callers(&mut self) -> impl Iterator<Item = T> + '_ {
        self.proposals.drain().chain(self.reads.drain().map(|r| r.caller))
    }

    fn apply(&mut self, action: Action, host: &mut impl Host<T>) {
        match action {
            Action::Send { to, msg } => host.send(to, msg),
            Action::SendWhenDurable { seq, to, msg } => host.send_when_durable(seq, to, msg),
            Action::Persist { seq, write } => host.persist(seq, write),
            Action::Execute { slot, value } => self.execute(slot, value, host),
            Action::Refuse { id, reason } => self.refuse(id, reason, host),
            Action::ReadReady { id } => match self.reads.remove(id.0) {
                Some(r) => host.read(r.caller, r.query),
                None => host
                    .contract_broken(format!("{:?}: read {id:?} ready but not waiting", self.id)),
            },
            Action::ReadRefused { id, reason } => match self.reads.remove(id.0) {
                Some(r) => host.refused(r.caller, reason),
                None => host
                    .contract_broken(format!("{:?}: read {id:?} refused but not waiting", self.id)),
            },
            Action::Notify(event) => host.notify(event),
            Action::LoadLog { token, from, to } => host.load_log(token, from, to),
            Action::SendCheckpoint { to } => host.send_checkpoint(to),
            Action::TakeCheckpoint { slot, membership } => host.take_checkpoint(slot, membership),
            Action::Reconfigured { id, outcome } => host.reconfigured(id, outcome),
        }
    }

    fn execute(&mut self, slot: Slot, value: Value, host: &mut impl Host<T>) {
        if slot <= self.executed {
            host.contract_broken(format!(
                "{:?}: executed slot {} after slot {}",
                self.id, slot.0, self.executed.0
            ));
        }
        self.executed = slot;
        let callers = match &value {
            Value::Batch(requests) => {
                let mut callers = Vec::with_capacity(requests.len());
                for request in requests.iter() {
                    let mine = request.id.proposer == self.id
                        && request.id.incarnation == self.incarnation;
                    if mine && self.check && self.refused.contains(&request.id) {
                        host.contract_broken(format!(
                            "{:?}: refused {:?} then executed it",
                            self.id, request.id
                        ));
                    }
                    callers.push(if mine { self.proposals.remove(request.id.seq) } else { None });
                }
                callers
            }
            Value::Noop | Value::Config(_) => Vec::new(),
        };
        host.execute(slot, value, callers);
    }

    fn refuse(&mut self, id: RequestId, reason: Refusal, host: &mut impl Host<T>) {
        let mine = id.proposer == self.id && id.incarnation == self.incarnation;
        match if mine { self.proposals.remove(id.seq) } else { None } {
            Some(caller) => {
                if self.check {
                    self.refused.insert(id);
                }
                host.refused(caller, reason);
            }
            None if id.proposer != self.id || id.incarnation != self.incarnation => host
                .contract_broken(format!(
                    "{:?} (incarnation {}): refused {id:?} ({reason:?}), a request it never took",
                    self.id, self.incarnation
                )),
            None => host.contract_broken(format!(
                "{:?}: refused {id:?} ({reason:?}) which is not waiting (answered twice?)",
                self.id
            )),
        }
    }
}
