//! The consensus thread: it owns the core through the driver the simulator also runs
//! (`rsl_core::Driver`, which keeps the waiting callers), takes events from one bounded
//! channel ([`ToConsensus`]: client proposals and reads, peer messages, durability reports,
//! control) plus a tick every `tick`, steps the core, and routes its actions: sends to the
//! transport, writes to the I/O thread, executes and reads to the executor thread, checkpoint
//! offers to the shipping thread, refusals straight to the waiting callers. It never blocks
//! on disk, network, the state machine or a status reader.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use crossbeam_channel::{Receiver, Sender};
use rsl_core::{
    Driver, Host, Input, Membership, Message, ReconfigRefusal, Refusal, ReplicaId, Slot, Value,
    Write,
};
use rsl_net::Transport;

use crate::channels::{SendWhenDurable, ToConsensus, ToExecutor, ToIo, ToShipping, Waiter};
use crate::envelope::{open, Channel, Sealed};
use crate::error::ReplicateError;
use crate::shared::Shared;
use crate::state_machine::Notification;
use crate::status::{StopCause, View};

/// Ticks delivered at once after a stall; more than any lease or election timeout.
pub(crate) const TICKS_CATCH_UP_MAX: u32 = 1_000;
/// Events the consensus thread handles before it flushes actions (bounds batching latency).
pub(crate) const EVENTS_PER_TURN_MAX: usize = 4096;
/// Ticks caught up at once from which the thread says it ran late (10 ticks: 100 ms with the
/// default tick, a third of the default election timeout).
const TICKS_LATE_WARN: u32 = 10;
/// One event or flush that takes longer than this is logged as slow.
const SLOW_STEP_WARN: Duration = Duration::from_millis(50);

/// Logs `what` when it took longer than [`SLOW_STEP_WARN`], from `started` to `ended`.
fn warn_if_slow(what: &str, started: Instant, ended: Instant) {
    let took = ended.saturating_duration_since(started);
    if took > SLOW_STEP_WARN {
        tracing::warn!(what, took_ms = took.as_millis() as u64, "the consensus thread was slow");
    }
}

/// The consensus thread's state: the shared driver (`rsl_core::Driver`, the same code the
/// simulator runs) and the router that carries out its actions on this process's threads.
pub(crate) struct Consensus {
    driver: Driver<Waiter>,
    router: Router,
    tick: Duration,
}

/// The consensus thread's [`Host`]: sends go to the transport, writes to the I/O thread
/// (handed over once per turn), executions and reads to the executor thread, refusals
/// straight to the waiting caller.
pub(crate) struct Router {
    pub(crate) transport: Arc<dyn Transport>,
    pub(crate) shipping: Option<Sender<ToShipping>>,
    pub(crate) io: Sender<ToIo>,
    pub(crate) exec: Sender<ToExecutor>,
    /// What the turn has for the executor, in order: sent at the turn's flush, after the
    /// primary's claim of what is chosen is published (`Consensus::publish_chosen`), so that
    /// a slot executed is always within the claim a follower is given (`Node::chosen`).
    pub(crate) exec_out: Vec<ToExecutor>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) writes: Vec<(u64, Write)>,
    /// The turn's promises and votes that leave from the I/O thread after its sync.
    pub(crate) sends_when_durable: Vec<SendWhenDurable>,
    /// The turn's other messages, sealed, sent at its flush after its writes.
    pub(crate) outbox: Vec<(u32, Sealed)>,
    /// Encodes each large message body once for all its receivers.
    pub(crate) sealer: crate::envelope::Sealer,
    /// Membership calls waiting for the core, and the peer set (`membership`).
    pub(crate) changes: crate::members::Changes,
}

impl Consensus {
    pub(crate) fn new(driver: Driver<Waiter>, mut router: Router, tick: Duration) -> Consensus {
        // What the core recovered is the status until the first tick publishes more.
        let core = driver.status();
        router.apply_membership(&core.membership, false);
        router.shared.status.lock().expect("status lock").update(&core);
        router.shared.view.send_replace(View::of(&core, router.shared.health()));
        Consensus { driver, router, tick }
    }

    /// The thread's loop, until a `Stop` event or every sender is gone.
    pub(crate) fn run(mut self, events: Receiver<ToConsensus>) {
        let mut next_tick = Instant::now() + self.tick;
        loop {
            let first = match events.recv_deadline(next_tick) {
                Ok(e) => Some(e),
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => None,
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return,
            };
            // Time first: after a stall (the process paused, the machine overloaded) the
            // ticks that passed must age the lease and the timers before any event that
            // arrived meanwhile is handled, or a paused primary would serve a lease read it
            // no longer holds. Checked again before each event of the turn: the thread can
            // be descheduled between two of them too (the simulator orders a replica's
            // tick before anything else due at its instant for the same reason). One clock
            // read per event, taken after the event left the channel: it ages the ticks,
            // ends the previous event's timing and starts this one's (which so includes the
            // ticks caught up before it).
            let mut now = Instant::now();
            self.catch_up_ticks(now, &mut next_tick);
            let mut stop = false;
            let mut flushing = "a turn's ticks and the flush of their actions";
            if let Some(e) = first {
                flushing = "flushing the actions of a turn";
                let mut timing = (e.kind(), now);
                stop |= self.handle(e, now);
                for e in events.try_iter().take(EVENTS_PER_TURN_MAX) {
                    now = Instant::now();
                    warn_if_slow(timing.0, timing.1, now);
                    self.catch_up_ticks(now, &mut next_tick);
                    timing = (e.kind(), now);
                    stop |= self.handle(e, now);
                }
                now = Instant::now();
                warn_if_slow(timing.0, timing.1, now);
            }
            // The turn's proposals go into slots together (`Config::propose_at_turn_end`).
            self.driver.end_turn(&mut self.router);
            // The core's lease after the turn, asked once for both publications.
            let lease = self.driver.replica().lease_read();
            self.flush(lease.is_some());
            self.publish_lease(next_tick, lease);
            warn_if_slow(flushing, now, Instant::now());
            if stop || self.router.changes.removed {
                self.stop();
                return;
            }
        }
    }

    /// Steps the core once per tick that has passed, up to `TICKS_CATCH_UP_MAX` (beyond that
    /// every lease and timeout has expired anyway).
    fn catch_up_ticks(&mut self, now: Instant, next_tick: &mut Instant) {
        let mut ticks = 0;
        while *next_tick <= now && ticks < TICKS_CATCH_UP_MAX {
            self.step(Input::Tick);
            *next_tick += self.tick;
            ticks += 1;
        }
        if *next_tick <= now {
            *next_tick = now + self.tick;
        }
        if ticks >= TICKS_LATE_WARN {
            // The thread was held up (descheduled, paused, or busy on one event): followers
            // may have started an election meanwhile. Said where an operator looks.
            tracing::warn!(ticks, "the consensus thread ran its ticks late");
        }
        if ticks > 0 {
            // Promotions wait for their learner to catch up: asked again every tick.
            for (op, reply) in self.router.changes.retries() {
                self.reconfigure(op, reply);
            }
            self.publish_status();
        }
    }

    /// Handles one event taken from the channel at `now`; returns true on stop.
    fn handle(&mut self, event: ToConsensus, now: Instant) -> bool {
        match event {
            ToConsensus::Propose { payload, exclusive, reply } => {
                self.router.shared.metrics.counters.proposals.inc();
                let waiter = Waiter { reply, since: now };
                self.driver.propose(payload, exclusive, waiter, &mut self.router);
            }
            ToConsensus::ProposeBatch { proposals } => {
                let counters = &self.router.shared.metrics.counters;
                counters.proposals.inc_by(proposals.len() as u64);
                for (payload, reply) in proposals {
                    let waiter = Waiter { reply, since: now };
                    self.driver.propose(payload, false, waiter, &mut self.router);
                }
            }
            ToConsensus::Read { request, mode, reply } => {
                let waiter = Waiter { reply, since: now };
                self.driver.read(request, mode, waiter, &mut self.router);
            }
            ToConsensus::Receive { from, payload } => self.receive(from, payload),
            ToConsensus::ReceiveParts { from, head, body } => self.receive_parts(from, head, body),
            ToConsensus::Durable { seq } => self.step(Input::Durable { seq }),
            ToConsensus::Core(input) => self.step(input),
            ToConsensus::Learn { chosen, reply } => {
                let ballot =
                    rsl_core::Ballot { round: chosen.ballot_round, replica: chosen.primary };
                let from = rsl_core::ReplicaId(chosen.primary);
                self.step(Input::Chosen { from, ballot, commit: rsl_core::Slot(chosen.through) });
                let _ = reply.send(self.driver.commit().0);
            }
            ToConsensus::Reconfigure { op, reply } => self.reconfigure(op, reply),
            ToConsensus::CheckpointNow => {
                // The state after the last slot sent to the executor, and its membership.
                let core = self.driver.status();
                let (slot, membership) = (core.executed, core.membership);
                self.router.exec_out.push(ToExecutor::Checkpoint { slot, membership });
            }
            ToConsensus::Install(install) => {
                self.router.exec_out.push(ToExecutor::Install(install));
            }
            ToConsensus::Stop => return true,
        }
        false
    }

    /// A payload from a peer: opens its envelope and hands the body to its channel.
    fn receive(&mut self, from: u32, payload: Bytes) {
        let counters = &self.router.shared.metrics.counters;
        counters.bytes_received.inc_by(payload.len() as u64);
        match open(&payload) {
            // Shared: a large request's payload is not copied again on this thread.
            Some((Channel::Consensus, body)) => match Message::decode_shared(&body) {
                // The transport authenticated `from`; a message claiming another sender is
                // hostile.
                Ok(msg) if msg.from.0 == from => self.step(Input::Receive(msg)),
                Ok(_) | Err(_) => {
                    self.reject(from, "a message that does not decode or lies about its sender")
                }
            },
            Some((Channel::Shipping, body)) => {
                if let Some(s) = &self.router.shipping {
                    let _ = s.send(ToShipping::Frame { from, payload: body });
                }
            }
            // Delivered to `peer_call` before this queue; one here came by another path.
            Some((Channel::Calls, _)) => self.reject(from, "a peer call outside its inbox"),
            None => self.reject(from, "a payload in no known envelope"),
        }
    }

    /// A consensus message in two pieces (`ToConsensus::ReceiveParts`): decoded as
    /// [`Consensus::receive`] decodes one whole, its payloads sharing `body`.
    fn receive_parts(&mut self, from: u32, head: Bytes, body: Bytes) {
        let counters = &self.router.shared.metrics.counters;
        counters.bytes_received.inc_by((head.len() + body.len()) as u64);
        match head.split_first() {
            Some((&c, header)) if c == Channel::Consensus as u8 => {
                match Message::decode_parts(header, &body) {
                    Ok(msg) if msg.from.0 == from => self.step(Input::Receive(msg)),
                    Ok(_) | Err(_) => {
                        self.reject(from, "a message that does not decode or lies about its sender")
                    }
                }
            }
            _ => self.reject(from, "a message in parts outside the consensus envelope"),
        }
    }

    fn reject(&self, from: u32, what: &'static str) {
        self.router.shared.metrics.counters.rejected_messages.inc();
        tracing::warn!(from, what, "rejected a payload from a peer");
    }

    fn reconfigure(&mut self, op: rsl_core::MembershipOp, reply: crate::members::ChangeReply) {
        self.router.changes.begin(op.clone(), reply);
        let id = self.driver.reconfigure(op, &mut self.router);
        self.router.changes.proposed(id);
    }

    fn step(&mut self, input: Input) {
        self.driver.step(input, &mut self.router);
    }

    /// Hands the turn's writes to the I/O thread and publishes the status; `leased`: the core
    /// holds its lease after the turn.
    fn flush(&mut self, leased: bool) {
        self.publish_chosen(leased);
        // The turn's writes first, so that the sync behind this replica's own votes starts
        // while its messages travel; then the messages, all at once (one wake of the
        // transport's thread for every peer); then the executor. On a machine whose cores
        // are shared, each thread woken may take the core from this one: a write handed
        // over last (after a send had woken the transport, and the peers' threads had run)
        // started its sync a quarter of a millisecond after the request arrived, and a
        // primary's own vote was the last to count.
        self.router.flush_writes();
        self.router.flush_sends();
        for message in self.router.exec_out.drain(..) {
            let _ = self.router.exec.send(message);
        }
        self.router.sealer.end_turn();
        let core = self.driver.status();
        let view = View::of(&core, self.router.shared.health());
        let changed =
            self.router.shared.view.send_if_modified(|v| std::mem::replace(v, view) != view);
        // A membership change is published at once, before the calls that made it are
        // answered; so is a change of the view (role, primary, joining, health), so that
        // `status()` agrees with `watch()` as soon as the watch fires (a reader holding the
        // status lock would otherwise postpone it to the next tick).
        if std::mem::take(&mut self.router.changes.publish) || changed {
            self.publish_status_now();
        }
        for (reply, answer) in self.router.changes.answers.drain(..) {
            let _ = reply.send(answer);
        }
    }

    /// Publishes the core's lease for reads served without this thread (`Node::read`), or
    /// clears it. The core's current tick became due at `next_tick - tick` (the ticks are
    /// caught up before every event, and a tick is stepped only once due; after a stall
    /// beyond `TICKS_CATCH_UP_MAX` the count restarts from the instant of the catch-up, later
    /// than the truth, when every lease has run out anyway), and the heartbeat round the
    /// lease counts from was sent at or after its own tick became due: so the lease ends
    /// `ticks_left` ticks after the current tick became due, the same instant at which the
    /// core's own count would reach the end with its ticks on time.
    fn publish_lease(&self, next_tick: Instant, read: Option<rsl_core::LeaseRead>) {
        let lease = &self.router.shared.lease;
        match read {
            Some(read) => {
                let ticks = u32::try_from(read.ticks_left).unwrap_or(u32::MAX);
                let end = next_tick.checked_sub(self.tick).unwrap_or(next_tick)
                    + self.tick.saturating_mul(ticks);
                lease.publish(end, read.index.0);
            }
            None => lease.clear(),
        }
    }

    /// Publishes what this primary says is chosen (`Node::chosen`): its ballot and commit
    /// point, from one state of the core, under one lock (a pair read torn across two
    /// primacies of this replica could pair an older ballot with a later commit point, and
    /// values of that ballot never chosen would pass for chosen); nothing unless it holds its
    /// lease. Before the turn's messages to the executor go out.
    ///
    /// The lease's index is raised to the commit point first, as before any message that
    /// carries it (`Router::send`): a follower given the claim may execute those slots and
    /// serve reads from them at once, so a lease read here that starts after must wait for
    /// them too. The index published with the lease at the end of the turn came too late: the
    /// nemesis caught a stale read at a primary after a fresh one at a follower, the
    /// consensus thread preempted between the two publications (test
    /// `what_a_primary_says_is_chosen_is_within_its_lease_index`).
    fn publish_chosen(&self, leased: bool) {
        let ballot = self.driver.replica().primary_ballot().filter(|_| leased);
        let chosen = ballot.map(|ballot| (ballot.round, self.driver.commit().0));
        if let Some((_, through)) = chosen {
            self.router.shared.lease.raise_index(through);
        }
        *self.router.shared.chosen.lock().expect("chosen lock") = chosen;
    }

    /// Publishes the full status (every tick, and on role changes). Never waits for a reader.
    fn publish_status(&mut self) {
        if let Ok(mut status) = self.router.shared.status.try_lock() {
            Self::fill_status(&self.driver, &self.router, self.tick, &mut status);
        }
    }

    /// Publishes the full status, waiting for a reader that holds it (a membership change:
    /// its callers are answered right after).
    fn publish_status_now(&mut self) {
        let mut status = self.router.shared.status.lock().expect("status lock");
        Self::fill_status(&self.driver, &self.router, self.tick, &mut status);
    }

    fn fill_status(
        driver: &Driver<Waiter>,
        router: &Router,
        tick: Duration,
        status: &mut crate::status::Status,
    ) {
        let core = driver.status();
        status.update(&core);
        let tick_ms = tick.as_millis() as u64;
        let transport = &router.transport;
        status.update_peers(&core, tick_ms, |p| transport.peer_status(p).map(|s| s.connected));
    }

    fn stop(&mut self) {
        let router = &mut self.router;
        // A failure recorded its own cause first; otherwise this is a shutdown.
        router.shared.stop(StopCause::Shutdown, "shut down".to_string());
        let error = router.shared.stop_error();
        for waiter in self.driver.drain_callers() {
            let _ = waiter.reply.send(Err(error.clone()));
        }
        for reply in router.changes.drain() {
            let _ = reply.send(Err(crate::error::MembershipError::Stopped));
        }
        // What the last turn had for the transport and the executor goes before the
        // shutdown (a stop flushed already; a removal mid-turn may not have).
        router.flush_sends();
        for message in router.exec_out.drain(..) {
            let _ = router.exec.send(message);
        }
        let _ = router.exec.send(ToExecutor::Notify(Notification::ShuttingDown));
        let _ = router.exec.send(ToExecutor::Stop);
        // Dropping the senders lets the I/O and shipping threads drain what they have and
        // exit.
        router.io = crossbeam_channel::bounded(0).0;
        router.shipping = None;
    }
}

impl Router {
    /// The caller's error for a refusal of the core, naming the primary's address where the
    /// configuration gives one.
    fn refusal_error(&self, reason: Refusal) -> ReplicateError {
        let address = |p: Option<ReplicaId>| p.and_then(|p| self.shared.address_of(p.0));
        match reason {
            Refusal::NotPrimary { primary } => ReplicateError::NotPrimary {
                primary: primary.map(|p| p.0),
                primary_addr: address(primary),
            },
            Refusal::Superseded { primary } => ReplicateError::Superseded {
                primary: primary.map(|p| p.0),
                primary_addr: address(primary),
            },
            Refusal::OutcomeUnknown => ReplicateError::OutcomeUnknown,
            Refusal::Overloaded => ReplicateError::Overloaded,
            Refusal::ShuttingDown => self.shared.stop_error(),
            Refusal::TooLarge { size, max } => ReplicateError::TooLarge { size, max },
        }
    }

    fn flush_writes(&mut self) {
        if !self.writes.is_empty() || !self.sends_when_durable.is_empty() {
            let writes = std::mem::take(&mut self.writes);
            let sends = std::mem::take(&mut self.sends_when_durable);
            let _ = self.io.send(ToIo::Writes { writes, sends });
        }
    }

    /// Hands the turn's messages to the transport, each peer's in the order the core sent
    /// them, all of a peer's in one call (one write to an idle peer).
    fn flush_sends(&mut self) {
        crate::envelope::send_sealed_all(&*self.transport, self.outbox.drain(..));
    }

    /// What every message needs before it leaves, whichever thread sends it: a commit point
    /// it carries raises the lease's read index; a transfer's `StartElection` ends the lease.
    /// Then it is sealed for the transport (counted as sent).
    fn seal(&mut self, msg: &Message) -> Sealed {
        if let Some(commit) = commit_carried(&msg.body) {
            self.shared.lease.raise_index(commit.0);
        }
        if matches!(msg.body, rsl_core::Body::StartElection { .. }) {
            // A transfer's target may break the lease at once: no read may start under it
            // from here on (the core stopped serving them when the transfer began).
            self.shared.lease.clear();
        }
        let sealed = self.sealer.seal(msg);
        self.shared.metrics.counters.bytes_sent.inc_by(sealed.len() as u64);
        sealed
    }
}

impl Host<Waiter> for Router {
    fn send(&mut self, to: ReplicaId, msg: Message) {
        // Sent at the turn's flush, after its writes (`Consensus::flush`).
        let sealed = self.seal(&msg);
        self.outbox.push((to.0, sealed));
    }

    fn send_when_durable(&mut self, seq: u64, to: ReplicaId, msg: Message) {
        // Handed to the I/O thread with the turn's writes, the one it waits for among them
        // or before them: it leaves right after the sync that makes it durable.
        let sealed = self.seal(&msg);
        self.sends_when_durable.push(SendWhenDurable { seq, to: to.0, sealed });
    }

    fn persist(&mut self, seq: u64, write: Write) {
        self.writes.push((seq, write));
    }

    fn load_log(&mut self, token: u64, from: Slot, to: Slot) {
        // Reads go through the I/O thread, after the writes queued before them.
        self.flush_writes();
        let _ = self.io.send(ToIo::Load { token, from, to });
    }

    fn execute(&mut self, slot: Slot, value: Value, callers: Vec<Option<Waiter>>) {
        let counters = &self.shared.metrics.counters;
        counters.slots_committed.inc();
        if let Value::Batch(requests) = &value {
            counters.requests_committed.inc_by(requests.len() as u64);
        }
        self.exec_out.push(ToExecutor::Execute { slot, value, replies: callers });
    }

    fn read(&mut self, caller: Waiter, query: Bytes) {
        self.exec_out.push(ToExecutor::Read { request: query, reply: caller.reply });
    }

    fn refused(&mut self, caller: Waiter, reason: Refusal) {
        if reason == Refusal::Overloaded {
            self.shared.metrics.counters.overloaded.inc();
        }
        let _ = caller.reply.send(Err(self.refusal_error(reason)));
    }

    fn reconfigured(&mut self, id: u64, outcome: Result<(Slot, Membership), ReconfigRefusal>) {
        self.change_answered(id, outcome);
    }

    fn notify(&mut self, event: rsl_core::Notification) {
        if matches!(
            event,
            rsl_core::Notification::LostPrimacy { .. }
                | rsl_core::Notification::ConfigurationChanged { .. }
                | rsl_core::Notification::Removed { .. }
        ) {
            // Cleared before anything else of this step is carried out; the end of the turn
            // publishes what the core then holds.
            self.shared.lease.clear();
        }
        match &event {
            // An operator reading the log sees every change of primary, as etcd logs its
            // leader changes.
            rsl_core::Notification::BecamePrimary { ballot } => {
                tracing::info!(ballot = %format_args!("{}.{}", ballot.round, ballot.replica), "became primary")
            }
            rsl_core::Notification::LostPrimacy { primary } => {
                tracing::info!(new_primary = ?primary.map(|p| p.0), "lost primacy")
            }
            rsl_core::Notification::Removed { slot } => return self.removed(*slot),
            rsl_core::Notification::ConfigurationChanged { membership, .. } => {
                self.apply_membership(membership, true)
            }
            _ => {}
        }
        self.exec_out.push(ToExecutor::Notify(notification(event)));
    }

    fn send_checkpoint(&mut self, to: ReplicaId) {
        match &self.shipping {
            Some(s) => {
                let _ = s.send(ToShipping::Offer { to: to.0 });
            }
            None => tracing::warn!(to = to.0, "a peer needs a checkpoint; none kept here"),
        }
    }

    fn take_checkpoint(&mut self, slot: Slot, membership: Membership) {
        self.exec_out.push(ToExecutor::Checkpoint { slot, membership });
    }

    fn contract_broken(&mut self, what: String) {
        // Every such report is a bug in the core; the simulator fails on it. Here the caller
        // concerned has already been answered (or never was), so log it loudly and go on.
        tracing::error!(what, "the consensus core broke its boundary contract");
    }
}

/// The commit point a message tells its receiver, if it carries one: what the receiver may
/// execute (and acknowledge) once it arrives.
fn commit_carried(body: &rsl_core::Body) -> Option<Slot> {
    use rsl_core::Body as B;
    match body {
        B::PreVote { commit, .. }
        | B::Promise { commit, .. }
        | B::Accept { commit, .. }
        | B::Heartbeat { commit, .. }
        | B::HeartbeatAck { commit, .. }
        | B::CatchupReply { commit, .. } => Some(*commit),
        B::PreVoteReply { .. }
        | B::Prepare { .. }
        | B::Nack { .. }
        | B::Accepted { .. }
        | B::CatchupRequest { .. }
        | B::StartElection { .. }
        | B::Rebuild { .. }
        | B::Rebuilt { .. } => None,
    }
}

/// The application's notification for one of the core's.
fn notification(event: rsl_core::Notification) -> Notification {
    use rsl_core::Notification as N;
    match event {
        N::BecamePrimary { ballot } => Notification::BecamePrimary { ballot_round: ballot.round },
        N::PrimaryRecovered => Notification::PrimaryRecovered,
        N::LostPrimacy { primary } => Notification::LostPrimacy { primary: primary.map(|p| p.0) },
        N::ConfigurationChanged { slot, membership } => Notification::ConfigurationChanged {
            slot: slot.0,
            members: membership.voters.iter().map(|v| v.0).collect(),
        },
        N::Removed { .. } => unreachable!("handled by the router"),
    }
}

#[cfg(test)]
mod tests {
    use rsl_core::{Ballot, Body, Slot};

    use super::commit_carried;

    /// Every message that tells its receiver a commit point is seen as such (the read index
    /// of lease reads is raised before it leaves).
    #[test]
    fn the_commit_point_of_each_message_that_carries_one_is_seen() {
        let (ballot, commit) = (Ballot { round: 2, replica: 1 }, Slot(7));
        let carrying = [
            Body::PreVote { ballot, commit },
            Body::Accept { ballot, commit, entries: Vec::new() },
            Body::Heartbeat { ballot, commit, round: 3 },
            Body::HeartbeatAck { ballot, round: 3, commit },
            Body::CatchupReply { commit, entries: Vec::new() },
        ];
        for body in carrying {
            assert_eq!(commit_carried(&body), Some(commit), "{body:?}");
        }
        let quiet = [
            Body::StartElection { ballot },
            Body::Accepted { ballot, slots: vec![Slot(7)] },
            Body::CatchupRequest { from: Slot(1), to: Slot(7) },
        ];
        for body in quiet {
            assert_eq!(commit_carried(&body), None, "{body:?}");
        }
    }
}
