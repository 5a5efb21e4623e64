//! The scripting API of scenarios: run for a while or until a condition holds, cut and heal
//! links, filter messages, hold fsyncs, feed any input, propose and read with a ticket, and
//! observe each replica (status, executed point, key-value state, disk).

use rsl_core::{Input, Message, ReadMode, ReplicaId, Role, Slot, Status};

use super::event::Pending;
use super::{NodeState, Sim, SCRIPT_TICKET};
use crate::checker::Check;
use crate::disk::Disk;
use crate::driver::Reply;
use crate::kv::{Kv, Op};
use crate::linearizability::Operation;
use crate::net::FilterAction;
use crate::options::TICK;

impl Sim {
    /// Runs `ticks` ticks of simulated time.
    pub fn run_ticks(&mut self, ticks: u64) {
        let until = self.now + ticks * TICK;
        self.run_to(until);
    }

    /// Runs until `cond` holds (checked every tick) or `ticks_max` ticks pass; returns
    /// whether it held.
    pub fn run_until(&mut self, mut cond: impl FnMut(&Sim) -> bool, ticks_max: u64) -> bool {
        for _ in 0..ticks_max {
            if cond(self) {
                return true;
            }
            self.run_ticks(1);
            if self.checker.failure.is_some() {
                return false;
            }
        }
        cond(self)
    }

    /// Cuts the links between `a` and `b` both ways.
    pub fn partition(&mut self, a: ReplicaId, b: ReplicaId) {
        self.record(format_args!("partition {a:?} <-> {b:?}"));
        self.net.cut_both(a, b);
    }

    /// Cuts `from -> to` only.
    pub fn partition_one_way(&mut self, from: ReplicaId, to: ReplicaId) {
        self.record(format_args!("cut {from:?} -> {to:?}"));
        self.net.cut(from, to);
    }

    /// Cuts a replica off from every other, both ways.
    pub fn isolate(&mut self, id: ReplicaId) {
        for other in self.ids() {
            if other != id {
                self.partition(id, other);
            }
        }
    }

    /// Restores every link (filters stay).
    pub fn heal(&mut self) {
        self.record(format_args!("heal partitions"));
        self.net.heal();
    }

    /// Drops every message `matches` accepts, until `clear_filters`.
    pub fn drop_messages(&mut self, matches: impl FnMut(&Message) -> bool + 'static) {
        self.net.add_filter(matches, FilterAction::Drop);
    }

    /// Delays every message `matches` accepts by `ticks` extra ticks.
    pub fn delay_messages(&mut self, matches: impl FnMut(&Message) -> bool + 'static, ticks: u64) {
        self.net.add_filter(matches, FilterAction::Delay(ticks * TICK));
    }

    /// Delivers every message `matches` accepts twice.
    pub fn duplicate_messages(&mut self, matches: impl FnMut(&Message) -> bool + 'static) {
        self.net.add_filter(matches, FilterAction::Duplicate);
    }

    pub fn clear_filters(&mut self) {
        self.net.clear_filters();
    }

    /// Network-wide loss, per mille.
    pub fn set_loss(&mut self, permille: u32) {
        self.net.loss_permille = permille;
    }

    /// Holds (or releases) a replica's fsyncs: writes stay unsynced while held.
    pub fn hold_fsync(&mut self, id: ReplicaId, held: bool) {
        let i = self.index(id);
        self.nodes[i].disk.held = held;
        if !held {
            self.start_sync(i);
        }
    }

    /// Feeds any input to a replica (e.g. `TransferPrimacy`).
    pub fn input(&mut self, id: ReplicaId, input: Input) {
        let i = self.index(id);
        self.deliver(i, Pending::Input(input));
    }

    /// Asks replica `id` for a membership operation; returns the id its answer carries
    /// (see [`Sim::reconfig_outcome`]).
    pub fn reconfigure(&mut self, id: ReplicaId, op: rsl_core::MembershipOp) -> u64 {
        self.next_reconfig += 1;
        let change = self.next_reconfig;
        self.input(id, Input::Reconfigure { id: change, op });
        change
    }

    /// The answer to the membership operation `change`, once it came.
    pub fn reconfig_outcome(&self, change: u64) -> Option<&super::ReconfigAnswer> {
        self.reconfig_outcomes.iter().find(|(id, _)| *id == change).map(|(_, o)| o)
    }

    /// Sets a replica's can-become-primary (kept across its restarts).
    pub fn set_can_become_primary(&mut self, id: ReplicaId, can: bool) {
        let i = self.index(id);
        self.nodes[i].can_become_primary = can;
        self.deliver(i, Pending::Input(Input::SetCanBecomePrimary(can)));
    }

    /// Proposes `op` at replica `id` directly (no client hop); returns a ticket for
    /// [`Sim::reply`]. The operation joins the checked history.
    pub fn propose(&mut self, id: ReplicaId, op: Op) -> u64 {
        let ticket = self.new_script_ticket(op);
        let i = self.index(id);
        self.deliver(i, Pending::Propose { ticket, op, exclusive: false, size: 10 });
        ticket
    }

    /// Proposes `op` padded to `size` payload bytes (see [`Op::encode_sized`]) at replica
    /// `id`, exclusive or not; returns a ticket for [`Sim::reply`].
    pub fn propose_sized(&mut self, id: ReplicaId, op: Op, size: usize, exclusive: bool) -> u64 {
        let ticket = self.new_script_ticket(op);
        let i = self.index(id);
        self.deliver(i, Pending::Propose { ticket, op, exclusive, size });
        ticket
    }

    /// Reads `key` at replica `id` with `mode`; returns a ticket for [`Sim::reply`].
    pub fn read(&mut self, id: ReplicaId, key: u8, mode: ReadMode) -> u64 {
        let ticket = self.new_script_ticket(Op::Get { key });
        let i = self.index(id);
        self.deliver(i, Pending::Read { ticket, key, mode });
        ticket
    }

    pub(super) fn new_script_ticket(&mut self, op: Op) -> u64 {
        self.next_script += 1;
        let ticket = SCRIPT_TICKET | self.next_script;
        self.script_ops.insert(ticket, (op, self.now));
        ticket
    }

    pub(super) fn script_reply(&mut self, ticket: u64, reply: Reply) {
        // An unknown outcome leaves the operation open: the history holds it as
        // indeterminate (it may have executed in the slot a checkpoint skipped).
        let unknown = matches!(reply, Reply::Refused(rsl_core::Refusal::OutcomeUnknown));
        let open = if unknown { None } else { self.script_ops.remove(&ticket) };
        if let Some((op, call)) = open {
            let client = (1 << 20) + (ticket & !SCRIPT_TICKET) as u32;
            if let Reply::Done { response, .. } = &reply {
                match self.decode_reply(op, response) {
                    Some(output) => self.history.push(Operation {
                        client,
                        op,
                        call,
                        ret: Some(self.now),
                        output: Some(output),
                    }),
                    None => self.checker.fail(Check::Contract, format!("bad response to {op:?}")),
                }
            }
        }
        self.script_replies.insert(ticket, reply);
    }

    /// The answer to a scripted proposal or read, if it came.
    pub fn reply(&self, ticket: u64) -> Option<&Reply> {
        self.script_replies.get(&ticket)
    }

    /// Asserts a condition about the cluster, failing the run with `what` if it is false.
    pub fn expect(&mut self, cond: bool, what: &str) {
        if !cond {
            self.checker.fail(Check::Contract, format!("scenario expectation: {what}"));
        }
    }

    // ----- observation -----

    pub fn ids(&self) -> Vec<ReplicaId> {
        self.nodes.iter().map(|n| n.id).collect()
    }

    pub fn state(&self, id: ReplicaId) -> NodeState {
        self.nodes[self.index(id)].state
    }

    /// The core's status of an up (or paused) replica.
    pub fn status(&self, id: ReplicaId) -> Option<Status> {
        self.nodes[self.index(id)].driver.as_ref().map(|d| d.status())
    }

    /// The replica that is primary with the highest ballot among up replicas, if any.
    pub fn primary(&self) -> Option<ReplicaId> {
        self.nodes
            .iter()
            .filter(|n| n.state == NodeState::Up)
            .filter_map(|n| n.driver.as_ref().map(|d| d.status()))
            .filter(|s| s.role == Role::Primary)
            .max_by_key(|s| s.ballot)
            .map(|s| s.id)
    }

    /// A replica other than `me` that is up and primary (at any ballot), if any.
    pub fn primary_other_than(&self, me: ReplicaId) -> Option<ReplicaId> {
        let up = self.nodes.iter().filter(|n| n.id != me && n.state == NodeState::Up);
        let mut primaries = up.filter_map(|n| n.driver.as_ref().map(|d| d.status()));
        primaries.find(|s| s.role == Role::Primary).map(|s| s.id)
    }

    /// The last slot a replica executed (this incarnation), or zero if it is down.
    pub fn executed(&self, id: ReplicaId) -> Slot {
        self.nodes[self.index(id)].driver.as_ref().map_or(Slot::ZERO, |d| d.status().executed)
    }

    /// A replica's key-value state.
    pub fn kv(&self, id: ReplicaId) -> Option<&Kv> {
        let node = &self.nodes[self.index(id)];
        node.driver.as_ref().map(|_| &node.machine.0)
    }

    /// The replica's durable disk.
    pub fn disk(&self, id: ReplicaId) -> &Disk {
        &self.nodes[self.index(id)].disk
    }

    /// The core's notifications to the application at `id`, over all its incarnations.
    pub fn notifications(&self, id: ReplicaId) -> &[rsl_core::Notification] {
        &self.nodes[self.index(id)].notes
    }

    /// Messages sent so far, and lost so far.
    pub fn messages(&self) -> (u64, u64) {
        (self.net.sent, self.net.dropped)
    }
}
