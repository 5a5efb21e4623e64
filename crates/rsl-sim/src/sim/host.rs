//! The simulator as the driver's host: what a replica's driver asks of the world (send,
//! persist, load the log, execute, serve a read, refuse, notify, checkpoints) is carried out
//! on the simulated network, disk and key-value machine as the driver asks it, in order.
//!
//! There is one representation of a replica's effects: the [`Host`] callbacks of the shared
//! driver (`rsl_core::driver`), which the production runtime implements too. The simulator
//! does not collect them into a list of its own first.

use std::fmt::Write as _;

use bytes::Bytes;
use rsl_core::{
    Event as CoreEvent, Input, Membership, Message, ReconfigRefusal, Refusal, ReplicaId, Slot,
    Value, Write,
};

use super::event::{Event, Pending};
use super::{message_kind, NodeState, Sim, SCRIPT_TICKET};
use crate::bugs::StorageBug;
use crate::checker::Check;
use crate::driver::{Host, Machine, Reply};
use crate::options::TICK;

/// Simulated milliseconds per tick, for the storage's commit-hint interval.
const TICK_MS: u64 = 10;

/// The world as seen by one replica's driver during one step.
struct SimHost<'a> {
    sim: &'a mut Sim,
    node: usize,
}

impl SimHost<'_> {
    /// Records an effect in the trace (and prints it when verbose), as `r<i> -> <effect>`.
    fn record(&mut self, effect: std::fmt::Arguments<'_>) {
        self.sim.record(format_args!("r{} -> {}", self.node + 1, effect));
    }
}

impl Host<u64> for SimHost<'_> {
    fn send(&mut self, to: ReplicaId, msg: Message) {
        if self.sim.verbose {
            self.record(format_args!("Send({to:?}, {msg:?})"));
        }
        let sim = &mut *self.sim;
        let id = sim.nodes[self.node].id;
        sim.stats.messages += 1;
        *sim.stats.kinds.entry(message_kind(&msg)).or_default() += 1;
        assert_eq!((msg.from, msg.to), (id, to), "message addressing");
        let _ = write!(sim.trace, "s{}>{}", id.0, to.0);
        // Every message crosses the wire codec, as in production.
        match Message::decode(&msg.encode()) {
            Ok(decoded) if decoded == msg => {}
            other => {
                let detail = format!("wire codec does not round-trip {msg:?}: {other:?}");
                sim.checker.fail(Check::Contract, detail);
            }
        }
        for delay in sim.net.route(&mut sim.rng, &msg) {
            sim.schedule(delay, Event::Deliver { msg: msg.clone() });
        }
    }

    fn persist(&mut self, seq: u64, write: Write) {
        self.record(format_args!("Persist({seq:?}, {write:?})"));
        let (sim, node) = (&mut *self.sim, self.node);
        sim.nodes[node].disk.write(seq, write);
        if sim.options.storage_bug == Some(StorageBug::AckBeforeSync) {
            let incarnation = sim.nodes[node].incarnation;
            sim.schedule(0, Event::EarlyDurable { node, incarnation, seq });
        }
        sim.start_sync(node);
    }

    fn load_log(&mut self, token: u64, from: Slot, to: Slot) {
        self.record(format_args!("LoadLog({token:?}, {from:?}, {to:?})"));
        let (sim, node) = (&mut *self.sim, self.node);
        sim.stats.log_loads += 1;
        let entries = sim.nodes[node].disk.read_log(from, to);
        let id = sim.nodes[node].id;
        sim.record(format_args!("s{} loads {}..={}: {}", id.0, from.0, to.0, entries.len()));
        let incarnation = sim.nodes[node].incarnation;
        let delay = sim.options.fsync_min;
        sim.schedule(delay, Event::LogLoaded { node, incarnation, token, entries });
    }

    fn execute(&mut self, slot: Slot, value: Value, callers: Vec<Option<u64>>) {
        self.record(format_args!("Execute({slot:?}, {value:?}, {callers:?})"));
        let (sim, node) = (&mut *self.sim, self.node);
        let id = sim.nodes[node].id;
        sim.stats.max_slot = sim.stats.max_slot.max(slot.0);
        sim.checker.execute(id, slot, &value);
        sim.nodes[node].machine.1 = slot;
        if let Value::Batch(requests) = value {
            for (request, caller) in requests.iter().zip(callers) {
                let response = sim.nodes[node].machine.execute(slot, request);
                if let Some(ticket) = caller {
                    // An acknowledged write: the checkers hold the cluster to it.
                    sim.checker.acked(request.id, slot);
                    sim.on_replica_reply(ticket, Reply::Done { slot, response });
                }
            }
        }
    }

    fn read(&mut self, ticket: u64, query: Bytes) {
        self.record(format_args!("Read({ticket:?}, {query:?})"));
        let (sim, node) = (&mut *self.sim, self.node);
        let machine = &sim.nodes[node].machine;
        let (response, slot) = (machine.read(&query), machine.1);
        sim.on_replica_reply(ticket, Reply::Done { slot, response });
    }

    fn refused(&mut self, ticket: u64, reason: Refusal) {
        let reply = Reply::Refused(reason);
        self.record(format_args!("Reply({ticket:?}, {reply:?})"));
        self.sim.on_replica_reply(ticket, reply);
    }

    fn notify(&mut self, event: CoreEvent) {
        self.record(format_args!("Notify({event:?})"));
        if let CoreEvent::BecamePrimary { .. } = event {
            self.sim.stats.elections += 1;
        }
    }

    fn send_checkpoint(&mut self, _to: ReplicaId) {
        self.record(format_args!("Checkpoint"));
        self.sim.stats.checkpoint_requests += 1;
    }

    fn take_checkpoint(&mut self) {
        self.record(format_args!("Checkpoint"));
        self.sim.stats.checkpoint_requests += 1;
    }

    fn reconfigured(&mut self, id: u64, outcome: Result<(Slot, Membership), ReconfigRefusal>) {
        self.record(format_args!("Reconfigured({id}, {outcome:?})"));
        let sim = &mut *self.sim;
        match &outcome {
            Ok((slot, membership)) => {
                let slot = *slot;
                sim.stats.reconfigurations_made += 1;
                // A change reported made is the configuration chosen in its slot.
                if sim.checker.chosen_value(slot) != Some(&Value::Config(membership.clone())) {
                    let detail = format!(
                        "membership operation {id} reported made in slot {} as {membership:?}, which executed {:?}",
                        slot.0,
                        sim.checker.chosen_value(slot)
                    );
                    sim.checker.fail(Check::Contract, detail);
                }
            }
            Err(_) => sim.stats.reconfigurations_refused += 1,
        }
        sim.reconfig_outcomes.push((id, outcome));
    }

    fn contract_broken(&mut self, what: String) {
        self.record(format_args!("Contract({what:?})"));
        self.sim.checker.fail(Check::Contract, what);
    }
}

impl Sim {
    /// Hands an input (or a proposal or read) to an up replica: its driver steps the core
    /// and carries out the actions through the simulator as host, one by one, in order.
    pub(super) fn process(&mut self, node: usize, pending: Pending) {
        if !matches!(pending, Pending::Input(Input::Tick)) || self.verbose {
            self.record(format_args!("r{} <- {:?}", node + 1, pending));
        } else {
            let _ = write!(self.trace, "{} t{}", self.now, node);
        }
        // The driver leaves its node for the step: nothing the host does touches it, and a
        // host callback that did (a re-entrant step) would be a simulator bug.
        let mut driver = self.nodes[node].driver.take().expect("an up replica has a driver");
        let mut host = SimHost { sim: self, node };
        match pending {
            Pending::Input(input) => driver.step(input, &mut host),
            Pending::Propose { ticket, op, exclusive } => {
                let id = driver.propose(op.encode(), exclusive, ticket, &mut host);
                self.request_ids.insert(ticket, id);
            }
            Pending::Read { ticket, key, mode } => {
                driver.read(Bytes::from(vec![key]), mode, ticket, &mut host);
            }
        }
        self.nodes[node].driver = Some(driver);
    }

    /// Starts an fsync of the replica's queued writes, if none is in flight.
    pub(super) fn start_sync(&mut self, node: usize) {
        if self.nodes[node].disk.begin_sync().is_some() {
            let delay = self.rng.range(self.options.fsync_min, self.options.fsync_max);
            let incarnation = self.nodes[node].incarnation;
            self.schedule(delay, Event::SyncDone { node, incarnation });
            if self.faults_on && self.rng.chance(self.options.crash_in_sync_permille) {
                let at = self.rng.range(0, delay);
                self.schedule(at, Event::CrashInSync { node, incarnation });
            }
        }
    }

    /// An fsync completed: its writes are durable (the checkers learn the accepts), and the
    /// driver is told.
    pub(super) fn on_sync_done(&mut self, node: usize, incarnation: u64) {
        if self.nodes[node].incarnation != incarnation || self.nodes[node].state == NodeState::Down
        {
            return;
        }
        let now_ms = self.now * TICK_MS / TICK;
        let Some((seq, writes)) = self.nodes[node].disk.complete_sync(now_ms) else { return };
        let id = self.nodes[node].id;
        for write in &writes {
            if let Write::Accept(entry) = write {
                self.checker.durable_accept(id, entry);
            }
        }
        if self.options.storage_bug != Some(StorageBug::AckBeforeSync) {
            self.deliver(node, Pending::Input(Input::Durable { seq }));
        }
        self.start_sync(node);
    }

    /// A replica answered a proposal or read: a scripted one is recorded at once, a client's
    /// reply travels back over the network.
    pub(super) fn on_replica_reply(&mut self, ticket: u64, reply: Reply) {
        if ticket & SCRIPT_TICKET != 0 {
            self.script_reply(ticket, reply);
            return;
        }
        let delay = self.rng.range(50, 300);
        self.schedule(delay, Event::ClientReply { ticket, reply });
    }
}
