//! The per-replica driver: the one piece of code between a [`Replica`] and the world.
//!
//! It feeds an [`Input`] to the core, checks the core's invariants, and carries out the
//! returned [`Action`]s **in order**: persist (handed to the host's storage), send (to the
//! host's network), execute (on the application's [`Machine`], answering the client that
//! proposed the request), refuse, serve reads, notify. It owns the bookkeeping that maps the
//! core's request and read ids back to whoever is waiting for them, and it assigns request ids
//! that are unique across restarts (proposer, incarnation, counter).
//!
//! Nothing here knows about simulated time or faults: the simulator implements [`Host`] with
//! its simulated network and disk, and the production runtime can implement it with real ones
//! (see docs/testing.md, "One driver for simulation and production").

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use rsl_core::{
    Action, Config, Event, Input, Message, ReadId, ReadMode, Recovered, Refusal, Replica,
    ReplicaId, Request, RequestId, Slot, Status, Value, Write,
};

/// The application's state machine, as the driver sees it.
pub trait Machine {
    /// Applies one committed request and returns the response for its proposer.
    fn execute(&mut self, slot: Slot, request: &Request) -> Bytes;
    /// Serves a read-only query against the local state.
    fn read(&self, query: &[u8]) -> Bytes;
}

/// The answer to one proposal or read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Executed in `slot` (a write), or served after `slot` was executed (a read).
    Done { slot: Slot, response: Bytes },
    /// Refused; the request was definitely not executed.
    Refused(Refusal),
}

/// The side effects the driver asks of its environment.
pub trait Host {
    /// Send a message to a peer (it may be lost).
    fn send(&mut self, to: ReplicaId, msg: Message);
    /// Write durably; report completion later with `Input::Durable`, in seq order.
    fn persist(&mut self, seq: u64, write: Write);
    /// Read committed log entries and feed them back with `Input::LogLoaded`.
    fn load_log(&mut self, token: u64, from: Slot, to: Slot);
    /// Answer the caller identified by `ticket`.
    fn reply(&mut self, ticket: u64, reply: Reply);
    /// A slot is about to be executed (for observers and checkers).
    fn executed(&mut self, _slot: Slot, _value: &Value) {}
    /// An application event.
    fn notify(&mut self, _event: Event) {}
    /// The core asked for a checkpoint to be streamed to `to`.
    fn send_checkpoint(&mut self, _to: ReplicaId) {}
    /// The core asked for a checkpoint to be taken.
    fn take_checkpoint(&mut self) {}
    /// The core broke a contract of its boundary (answered twice, executed a refused
    /// request, ...). Production logs it; the simulator fails the run.
    fn contract_broken(&mut self, what: String) {
        panic!("core contract broken: {what}");
    }
}

/// One replica with its application state and its waiting callers.
#[derive(Debug)]
pub struct Driver<M> {
    id: ReplicaId,
    incarnation: u64,
    replica: Replica,
    machine: M,
    next_request: u64,
    next_read: u64,
    executed: Slot,
    /// Proposals taken and not yet answered, with their caller's ticket.
    proposals: BTreeMap<RequestId, u64>,
    /// Proposals refused in this incarnation: they must never execute.
    refused: BTreeSet<RequestId>,
    /// Reads waiting for `ReadReady`, with their caller's ticket and query.
    reads: BTreeMap<ReadId, (u64, Bytes)>,
    actions: Vec<Action>,
    check_invariants: bool,
}

impl<M: Machine> Driver<M> {
    /// Starts a replica. `incarnation` must differ on every start of the same replica.
    pub fn new(config: Config, recovered: Recovered, machine: M, incarnation: u64) -> Self {
        let id = config.id;
        Driver {
            id,
            incarnation,
            replica: Replica::new(config, recovered),
            machine,
            next_request: 0,
            next_read: 0,
            executed: Slot::ZERO,
            proposals: BTreeMap::new(),
            refused: BTreeSet::new(),
            reads: BTreeMap::new(),
            actions: Vec::new(),
            check_invariants: true,
        }
    }

    pub fn id(&self) -> ReplicaId {
        self.id
    }

    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    pub fn machine(&self) -> &M {
        &self.machine
    }

    pub fn replica(&self) -> &Replica {
        &self.replica
    }

    pub fn status(&self) -> Status {
        self.replica.status()
    }

    /// The last slot this driver executed (in this incarnation).
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

    /// Whether to call `Replica::invariants` after every step (on by default).
    pub fn set_check_invariants(&mut self, on: bool) {
        self.check_invariants = on;
    }

    /// Feeds one input to the core and carries out its actions.
    pub fn step(&mut self, input: Input, host: &mut impl Host) {
        let mut actions = std::mem::take(&mut self.actions);
        actions.clear();
        self.replica.step(input, &mut actions);
        if self.check_invariants {
            self.replica.invariants();
        }
        for action in actions.drain(..) {
            self.apply(action, host);
        }
        self.actions = actions;
    }

    /// Proposes a request on behalf of the caller `ticket`; returns its id.
    pub fn propose(
        &mut self,
        payload: Bytes,
        exclusive: bool,
        ticket: u64,
        host: &mut impl Host,
    ) -> RequestId {
        self.next_request += 1;
        let id =
            RequestId { proposer: self.id, incarnation: self.incarnation, seq: self.next_request };
        self.proposals.insert(id, ticket);
        self.step(Input::Propose { id, payload, exclusive }, host);
        id
    }

    /// Starts a read of `query` on behalf of the caller `ticket`.
    pub fn read(&mut self, query: Bytes, mode: ReadMode, ticket: u64, host: &mut impl Host) {
        self.next_read += 1;
        let id = ReadId(self.next_read);
        self.reads.insert(id, (ticket, query));
        self.step(Input::Read { id, mode }, host);
    }

    fn apply(&mut self, action: Action, host: &mut impl Host) {
        match action {
            Action::Send { to, msg } => host.send(to, msg),
            Action::Persist { seq, write } => host.persist(seq, write),
            Action::Execute { slot, value } => self.execute(slot, value, host),
            Action::Refuse { id, reason } => self.refuse(id, reason, host),
            Action::ReadReady { id } => self.read_ready(id, host),
            Action::ReadRefused { id, reason } => match self.reads.remove(&id) {
                Some((ticket, _)) => host.reply(ticket, Reply::Refused(reason)),
                None => host
                    .contract_broken(format!("{:?}: read {id:?} refused but not waiting", self.id)),
            },
            Action::Notify(event) => host.notify(event),
            Action::LoadLog { token, from, to } => host.load_log(token, from, to),
            Action::SendCheckpoint { to } => host.send_checkpoint(to),
            Action::TakeCheckpoint => host.take_checkpoint(),
        }
    }

    fn execute(&mut self, slot: Slot, value: Value, host: &mut impl Host) {
        if slot <= self.executed {
            host.contract_broken(format!(
                "{:?}: executed slot {} after slot {}",
                self.id, slot.0, self.executed.0
            ));
        }
        self.executed = slot;
        host.executed(slot, &value);
        let Value::Batch(requests) = value else { return };
        for request in &requests {
            let response = self.machine.execute(slot, request);
            if request.id.proposer != self.id || request.id.incarnation != self.incarnation {
                continue;
            }
            if self.refused.contains(&request.id) {
                host.contract_broken(format!(
                    "{:?}: refused {:?} then executed it",
                    self.id, request.id
                ));
            }
            if let Some(ticket) = self.proposals.remove(&request.id) {
                host.reply(ticket, Reply::Done { slot, response });
            }
        }
    }

    fn refuse(&mut self, id: RequestId, reason: Refusal, host: &mut impl Host) {
        match self.proposals.remove(&id) {
            Some(ticket) => {
                self.refused.insert(id);
                host.reply(ticket, Reply::Refused(reason));
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

    fn read_ready(&mut self, id: ReadId, host: &mut impl Host) {
        match self.reads.remove(&id) {
            Some((ticket, query)) => {
                let response = self.machine.read(&query);
                host.reply(ticket, Reply::Done { slot: self.executed, response });
            }
            None => {
                host.contract_broken(format!("{:?}: read {id:?} ready but not waiting", self.id))
            }
        }
    }
}
