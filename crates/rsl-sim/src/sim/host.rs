//! The simulator as the driver's host: what a replica's driver asks of the world (send,
//! persist, load the log, execute, serve a read, refuse, notify, checkpoints) is carried out
//! on the simulated network, disk and key-value machine as the driver asks it, in order.
//!
//! There is one representation of a replica's effects: the [`Host`] callbacks of the shared
//! driver (`rsl_core::driver`), which the production runtime implements too. The simulator
//! does not collect them into a list of its own first.

use std::hash::Hash;

use bytes::Bytes;
use rsl_core::message::Body;
use rsl_core::{
    Ballot, Input, Membership, Message, Notification, ReadMode, ReconfigRefusal, Refusal,
    ReplicaId, Role, Slot, Value, Write,
};

use super::event::{Event, Pending};
use super::{message_kind, NodeState, Sim, SCRIPT_TICKET};
use crate::bugs::StorageBug;
use crate::cause::{check_stickiness, LeaseRead};
use crate::checker::Check;
use crate::driver::{Host, Machine, Reply};
use crate::options::TICK;

/// Simulated milliseconds per tick, for the storage's commit-hint interval.
const TICK_MS: u64 = 10;

/// The world as seen by one replica's driver during one step, and what the step did that
/// the checks at the cause look at once it is over.
struct SimHost<'a> {
    sim: &'a mut Sim,
    node: usize,
    /// The step sent a heartbeat round.
    heartbeats: bool,
    /// Tickets the step refused.
    refused: Vec<u64>,
    /// The step completed phase 1 at this ballot.
    became_primary: Option<Ballot>,
}

impl SimHost<'_> {
    /// The host of `node` for one step, which has done nothing yet.
    fn new(sim: &mut Sim, node: usize) -> SimHost<'_> {
        SimHost { sim, node, heartbeats: false, refused: Vec::new(), became_primary: None }
    }

    /// Records an effect in the trace, as a value (`label` and `item`), and prints it when
    /// verbose as `r<i> -> <show>`.
    fn record<T: Hash + ?Sized>(&mut self, label: &str, item: &T, show: std::fmt::Arguments<'_>) {
        let sim = &mut *self.sim;
        sim.trace.event(sim.now, label, &(self.node, item));
        sim.show(format_args!("r{} -> {}", self.node + 1, show));
    }
}

impl Host<u64> for SimHost<'_> {
    fn send(&mut self, to: ReplicaId, msg: Message) {
        if self.sim.verbose {
            self.sim.show(format_args!("r{} -> Send({to:?}, {msg:?})", self.node + 1));
        }
        let sim = &mut *self.sim;
        let id = sim.nodes[self.node].id;
        sim.stats.messages += 1;
        *sim.stats.kinds.entry(message_kind(&msg)).or_default() += 1;
        assert_eq!((msg.from, msg.to), (id, to), "message addressing");
        sim.trace.event(sim.now, "s", &(id, to));
        if let Body::Accepted { ballot, slots } = &msg.body {
            // A vote for a slot this incarnation did not write at that ballot: the acceptor
            // knows the slot chosen (or dropped it from memory as executed).
            let written = &sim.nodes[self.node].written;
            let unwritten =
                slots.iter().filter(|s| !written.get(s).is_some_and(|w| w.contains(ballot)));
            let vouched: Vec<_> = unwritten.map(|s| (id, *s, *ballot)).collect();
            sim.vouched.extend(vouched);
        }
        if let Body::StartElection { ballot } = msg.body {
            let incarnation = sim.nodes[self.node].incarnation;
            sim.causes.transfer_consented((id, incarnation, ballot));
        }
        if let Body::Heartbeat { ballot, round, .. } = msg.body {
            self.heartbeats = true;
            let incarnation = sim.nodes[self.node].incarnation;
            sim.causes.heartbeat_sent((id, incarnation, ballot), round, sim.now);
        }
        // Every message crosses the wire codec, as in production, and must fit the frame the
        // transport carries (issue 8: a message above it wedged a cluster). Neither report
        // prints the message whole: its values may be large.
        let bytes = msg.encode();
        sim.stats.largest_message = sim.stats.largest_message.max(bytes.len() as u64);
        let brief = || format!("{msg:?}").chars().take(200).collect::<String>();
        if bytes.len() > sim.options.message_bytes_max || bytes.len() != msg.encoded_len() {
            let detail = format!(
                "a message of {} bytes (the encoder measured {}), above the limit of {} (message_bytes_max): {}",
                bytes.len(),
                msg.encoded_len(),
                sim.options.message_bytes_max,
                brief()
            );
            sim.checker.fail(Check::Limits, detail);
        }
        match Message::decode(&bytes) {
            Ok(decoded) if decoded == msg => {}
            Ok(_) => {
                let detail = format!("wire codec does not round-trip {}", brief());
                sim.checker.fail(Check::Contract, detail);
            }
            Err(e) => {
                let detail = format!("wire codec does not decode {}: {e:?}", brief());
                sim.checker.fail(Check::Contract, detail);
            }
        }
        for delay in sim.net.route(&mut sim.rng, &msg, sim.now) {
            sim.schedule(delay, Event::Deliver { msg: msg.clone() });
        }
    }

    fn send_when_durable(&mut self, seq: u64, to: ReplicaId, msg: Message) {
        self.record("SendWhenDurable", &(seq, to), format_args!("SendWhenDurable({seq}, {msg:?})"));
        if self.sim.options.storage_bug == Some(StorageBug::SendBeforeSync) {
            return self.send(to, msg);
        }
        self.sim.nodes[self.node].sends_when_durable.push((seq, to, msg));
    }

    fn persist(&mut self, seq: u64, write: Write) {
        self.record("Persist", &(seq, &write), format_args!("Persist({seq:?}, {write:?})"));
        let (sim, node) = (&mut *self.sim, self.node);
        if let Write::Accept(entry) = &write {
            sim.nodes[node].written.entry(entry.slot).or_default().push(entry.ballot);
            if matches!(entry.value, Value::Config(_)) {
                let id = sim.nodes[node].id;
                sim.checker.config_written(id, entry.slot);
            }
        }
        if let Write::TruncatePrefix { before } = &write {
            // The records below a checkpoint are gone: a vote for one of those slots now
            // rests on the slot being chosen (vouched), not on a record (seed 12400773: a
            // replica installed a checkpoint over a slot it had just accepted at the new
            // primary's ballot, then voted for it).
            let written = &mut sim.nodes[node].written;
            *written = written.split_off(before);
        }
        sim.nodes[node].disk.write(seq, write);
        if sim.options.storage_bug == Some(StorageBug::AckBeforeSync) {
            let incarnation = sim.nodes[node].incarnation;
            sim.schedule(0, Event::EarlyDurable { node, incarnation, seq });
        }
        sim.start_sync(node);
    }

    fn load_log(&mut self, token: u64, from: Slot, to: Slot) {
        self.record(
            "LoadLog",
            &(token, from, to),
            format_args!("LoadLog({token:?}, {from:?}, {to:?})"),
        );
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
        self.record(
            "Execute",
            &(slot, &value, &callers),
            format_args!("Execute({slot:?}, {value:?}, {callers:?})"),
        );
        let (sim, node) = (&mut *self.sim, self.node);
        let id = sim.nodes[node].id;
        sim.stats.max_slot = sim.stats.max_slot.max(slot.0);
        // A slot this primary proposed (at its ballots, this incarnation) and could not know
        // chosen otherwise (it heard of no commit point covering it): it counted the votes.
        let n = &sim.nodes[node];
        if n.primacy.is_some() && slot > n.heard_commit {
            let own = |b: &&Ballot| b.owner() == id;
            let ballots: Vec<Ballot> =
                (n.written.get(&slot).into_iter().flatten()).filter(own).copied().collect();
            if !ballots.is_empty() {
                let vouched = |r: ReplicaId, b: Ballot| sim.vouched.contains(&(r, slot, b));
                sim.checker.counted(id, slot, &ballots, &value, vouched);
            }
        }
        sim.checker.execute(id, slot, &value);
        if slot <= sim.nodes[node].machine.1 {
            // Covered by a checkpoint the state machine installed meanwhile (its callers
            // hear nothing, as in the runtime: their outcome is unknown).
            return;
        }
        sim.nodes[node].machine.1 = slot;
        if let Value::Batch(requests) = value {
            for request in requests.iter() {
                sim.first_executed.entry(request.id).or_insert(sim.now);
                if sim.oversized.contains(&request.id) {
                    let detail = format!(
                        "{id:?} executed {:?} of {} bytes, above request_bytes_max {}",
                        request.id,
                        request.payload.len(),
                        sim.options.request_bytes_max
                    );
                    sim.checker.fail(Check::Limits, detail);
                }
            }
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
        self.record("Read", &(ticket, &query), format_args!("Read({ticket:?}, {query:?})"));
        let (sim, node) = (&mut *self.sim, self.node);
        let machine = &sim.nodes[node].machine;
        let (response, slot) = (machine.read(&query), machine.1);
        sim.on_replica_reply(ticket, Reply::Done { slot, response });
    }

    fn refused(&mut self, ticket: u64, reason: Refusal) {
        self.refused.push(ticket);
        self.sim.stats.outcomes_unknown += u64::from(reason == Refusal::OutcomeUnknown);
        if let Some(id) = self.sim.request_ids.get(&ticket).copied() {
            self.sim.checker.refused(id, &reason);
        }
        // A request above the limit is refused as too large at the door (synchronously,
        // whatever the replica's role), and only such a request.
        let oversized = self.sim.oversized_tickets.contains(&ticket);
        let limit = self.sim.options.request_bytes_max;
        let right = match reason {
            Refusal::TooLarge { size, max } => oversized && size > max && max == limit,
            _ => !oversized,
        };
        if !right {
            let detail = format!("ticket {ticket} refused {reason:?} (request_bytes_max {limit})");
            self.sim.checker.fail(Check::Limits, detail);
        }
        let reply = Reply::Refused(reason);
        self.record("Reply", &(ticket, &reply), format_args!("Reply({ticket:?}, {reply:?})"));
        self.sim.on_replica_reply(ticket, reply);
    }

    fn notify(&mut self, event: Notification) {
        self.record("Notify", &event, format_args!("Notify({event:?})"));
        let (now, guard) = (self.sim.now, u64::from(self.sim.options.election_ticks_min));
        let stats = &mut self.sim.stats;
        let node = &mut self.sim.nodes[self.node];
        match &event {
            Notification::BecamePrimary { ballot } => {
                stats.elections += 1;
                node.primacy = Some(*ballot);
                self.became_primary = Some(*ballot);
                // Its own log counts too (a restarted primary may hold one value, a promise
                // another).
                let own = &node.disk.durable().log;
                let competing = node.reports.iter().any(|(slot, values)| {
                    let mine = own.get(slot).map(|e| crate::checker::value_digest(&e.value));
                    values.len() + usize::from(mine.is_some_and(|d| !values.contains(&d))) > 1
                });
                stats.phase1_competing += u64::from(competing);
                node.reports.clear();
                node.transfer_asked = None;
            }
            Notification::LostPrimacy { .. } => {
                node.primacy = None;
                // A transfer whose target did not take over within an election timeout: the
                // primary relinquished.
                let asked = node.transfer_asked.take();
                let timed_out = asked.is_some_and(|t| now >= t + guard * TICK);
                stats.transfers_timed_out += u64::from(timed_out);
            }
            Notification::ConfigurationChanged { .. } => {}
            Notification::PrimaryRecovered | Notification::Removed { .. } => {}
        }
        self.sim.nodes[self.node].notes.push(event);
    }

    fn send_checkpoint(&mut self, to: ReplicaId) {
        self.record("SendCheckpoint", &to, format_args!("SendCheckpoint({to:?})"));
        self.sim.stats.checkpoint_requests += 1;
        self.sim.send_checkpoint(self.node, to);
    }

    fn take_checkpoint(&mut self, slot: Slot, membership: Membership) {
        self.record("TakeCheckpoint", &slot, format_args!("TakeCheckpoint({})", slot.0));
        self.sim.stats.checkpoint_requests += 1;
        self.sim.take_checkpoint(self.node, slot, &membership);
    }

    fn reconfigured(&mut self, id: u64, outcome: Result<(Slot, Membership), ReconfigRefusal>) {
        self.record(
            "Reconfigured",
            &(id, &outcome),
            format_args!("Reconfigured({id}, {outcome:?})"),
        );
        let sim = &mut *self.sim;
        // Every operation is answered exactly once, by the replica it was handed to.
        let node = self.node;
        match sim.reconfig_asked.get_mut(&id) {
            Some((asked, _, answered)) if *asked == node && !*answered => *answered = true,
            asked => {
                let detail = format!(
                    "{:?} answered membership operation {id} ({outcome:?}), handed to {:?}{}",
                    sim.nodes[node].id,
                    asked.as_ref().map(|(n, _, _)| sim.nodes[*n].id),
                    if asked.is_some_and(|a| a.2) { " and answered before" } else { "" }
                );
                sim.checker.fail(Check::Answers, detail);
            }
        }
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
            Err(refusal) => {
                sim.stats.reconfigurations_refused += 1;
                let superseded = matches!(refusal, ReconfigRefusal::Superseded { .. });
                sim.stats.reconfigurations_superseded += u64::from(superseded);
            }
        }
        sim.reconfig_outcomes.push((id, outcome));
    }

    fn contract_broken(&mut self, what: String) {
        self.record("Contract", &what, format_args!("Contract({what:?})"));
        self.sim.checker.fail(Check::Contract, what);
    }
}

impl Sim {
    /// Hands an input (or a proposal or read) to an up replica: its driver steps the core
    /// and carries out the actions through the simulator as host, one by one, in order.
    pub(super) fn process(&mut self, node: usize, pending: Pending) {
        if let Pending::Input(Input::Durable { seq }) = pending {
            // A replica paused when its sync completed sends what waited for it on resuming,
            // before its core hears of the sync, as the runtime's I/O thread would.
            self.release_sends(node, seq);
        }
        self.trace.event(self.now, "<-", &(node, &pending));
        if !matches!(pending, Pending::Input(Input::Tick)) {
            self.show(format_args!("r{} <- {:?}", node + 1, pending));
        }
        // The driver leaves its node for the step: nothing the host does touches it, and a
        // host callback that did (a re-entrant step) would be a simulator bug.
        let mut driver = self.nodes[node].driver.take().expect("an up replica has a driver");
        let mut host = SimHost::new(self, node);
        let mut lease_read = None;
        // A message from a primary (heartbeat or accept: the follower may adopt it) or a
        // prepare (the follower may promise it): what the stickiness check looks at.
        let mut contact = None;
        let mut prepare = None;
        match pending {
            Pending::Input(input) => {
                if let Input::CheckpointInstalled { slot, .. } = input {
                    // The core continues after the checkpoint if it is ahead of what it
                    // executed (it executes the slots after it in this very step).
                    let status = driver.status();
                    if slot > status.executed {
                        host.sim.checker.checkpoint(status.id, slot);
                    } else {
                        host.sim.check_stale_install(driver.replica(), &input);
                    }
                }
                let mut operation = None;
                if let Input::Reconfigure { id, .. } = input {
                    let incarnation = host.sim.nodes[node].incarnation;
                    host.sim.reconfig_asked.insert(id, (node, incarnation, false));
                    host.sim.stats.reconfigurations_asked += 1;
                    operation = Some(id);
                }
                match &input {
                    Input::Receive(Message {
                        from,
                        body: Body::Heartbeat { ballot, .. } | Body::Accept { ballot, .. },
                        ..
                    }) => contact = Some((*from, *ballot)),
                    Input::Receive(Message {
                        body: Body::Promise { ballot, entries, unknown, .. },
                        ..
                    }) => {
                        let n = &mut host.sim.nodes[node];
                        for e in entries {
                            let digest = crate::checker::value_digest(&e.value);
                            n.reports.entry(e.slot).or_default().insert(digest);
                            let known = n.promised_known.entry((*ballot, e.slot)).or_default();
                            *known = (*known).max(e.ballot);
                        }
                        for u in unknown {
                            let lost = n.promised_lost.entry((*ballot, u.slot)).or_default();
                            *lost = (*lost).max(u.ballot);
                        }
                    }
                    Input::Receive(Message { body: Body::Accepted { ballot, slots }, .. }) => {
                        // A vote of another of this primary's ballots, for a slot its
                        // primacy may have in flight: the path `CountVotesFromOtherBallots`
                        // needs.
                        let s = driver.status();
                        let late = s.role == Role::Primary
                            && ballot.owner() == s.id
                            && *ballot != s.ballot
                            && slots.iter().any(|x| *x > s.commit);
                        host.sim.stats.late_votes += u64::from(late);
                    }
                    Input::TransferPrimacy { .. } if host.sim.nodes[node].primacy.is_some() => {
                        host.sim.stats.transfers += 1;
                        host.sim.nodes[node].transfer_asked = Some(host.sim.now);
                    }
                    Input::Receive(Message {
                        from,
                        body: Body::Prepare { ballot, transfer, .. },
                        ..
                    }) => {
                        let s = driver.status();
                        let follows = (s.primary, s.ballot);
                        prepare = Some((*from, *ballot, *transfer, s.promised, s.now, follows));
                    }
                    _ => {}
                }
                match &input {
                    Input::Receive(Message {
                        from,
                        body: Body::HeartbeatAck { ballot, round, .. },
                        ..
                    }) => {
                        let n = &host.sim.nodes[node];
                        let p = (n.id, n.incarnation, *ballot);
                        host.sim.causes.heartbeat_acked(p, *from, *round);
                    }
                    Input::Receive(Message {
                        body:
                            Body::CatchupReply { commit, .. }
                            | Body::Accept { commit, .. }
                            | Body::Heartbeat { commit, .. },
                        ..
                    })
                    // What a primary said is chosen (`--read-index`): a commit point heard
                    // from a peer as well (seed 96035196: a primary executed a slot chosen
                    // at the ballot before its own, learned from such a claim, before its
                    // own vote at its new ballot was durable).
                    | Input::Chosen { commit, .. } => {
                        let heard = &mut host.sim.nodes[node].heard_commit;
                        *heard = (*heard).max(*commit);
                    }
                    _ => {}
                }
                driver.step(input, &mut host);
                // Neither answered nor in a slot: its configuration waits for the slots
                // before it to execute (`Replica::propose_config`).
                if let Some(id) = operation {
                    let answered = host.sim.reconfig_asked.get(&id).is_some_and(|a| a.2);
                    let in_slot = driver.replica().changes_waiting().any(|(_, i)| i == id);
                    host.sim.stats.configs_behind_slots += u64::from(!answered && !in_slot);
                }
            }
            Pending::Propose { ticket, op, exclusive, size } => {
                let oversized = size > host.sim.options.request_bytes_max;
                if oversized {
                    host.sim.oversized_tickets.insert(ticket);
                    host.sim.stats.too_large += 1;
                }
                // The first proposal of the replica's turn ends the turn once the events
                // due at this instant are handled: the proposals taken meanwhile share
                // slots, as those of one turn of the runtime's consensus thread do.
                if !driver.turn_pending() {
                    host.sim.schedule(0, Event::EndOfTurn { node });
                }
                let id = driver.propose(op.encode_sized(size), exclusive, ticket, &mut host);
                host.sim.request_ids.insert(ticket, id);
                if oversized {
                    host.sim.oversized.insert(id);
                }
            }
            Pending::Read { ticket, key, mode } => {
                driver.read(Bytes::from(vec![key]), mode, ticket, &mut host);
                lease_read = (mode == ReadMode::Linearizable).then_some(ticket);
            }
            Pending::EndOfTurn => driver.end_turn(&mut host),
            Pending::Install { slot, header, data } => {
                host.sim.install_checkpoint(node, slot, &header, &data)
            }
        }
        let SimHost { heartbeats, refused, became_primary, .. } = host;
        let status = driver.status();
        self.nodes[node].driver = Some(driver);
        self.checker.check_membership(status.id, status.executed, &status.membership);
        if let Some((from, ballot)) = contact {
            if status.primary == Some(from) && status.ballot == ballot {
                self.nodes[node].heard = status.now;
            }
        }
        if let Some((from, ballot, transfer, promised, now, follows)) = prepare {
            if status.promised == ballot && ballot > promised {
                let guard = u64::from(self.options.election_ticks_min);
                let heard = self.nodes[node].heard;
                let id = status.id;
                let result = check_stickiness(id, heard, now, follows, from, transfer, guard);
                if let Err(detail) = result {
                    self.checker.fail(Check::Lease, detail);
                }
            }
        }
        if let Some(ballot) = became_primary.filter(|b| status.ballot == *b) {
            let result = self.causes.check_phase1(status.id, ballot, &status.membership);
            if let Err(detail) = result {
                self.checker.fail(Check::Promises, detail);
            }
            self.count_phase1_lost(node, ballot, status.commit);
            self.chain_failure(status.id, ballot);
        }
        if became_primary.is_some() && !self.held_votes.is_empty() {
            self.release_votes(Some(status.id));
        }
        // A linearizable read the primary took without sending a heartbeat round and without
        // refusing it was decided under its lease.
        let decided = lease_read.is_some_and(|t| !heartbeats && !refused.contains(&t));
        if decided && status.role == Role::Primary {
            self.check_lease_read(node, &status);
        }
    }

    /// An install at or below the replica's executed point (it executed past the slot while
    /// its state machine loaded the checkpoint: installs race with executes) must change
    /// nothing (`Input::CheckpointInstalled`). Checked at the cause, before the step: the
    /// input is handled on a copy of the core, which must come out with the same executed
    /// point, commit point, checkpoint, truncation and log in memory, and no action. (A core
    /// that moved its executed point back would go on, in the same step, to execute slots
    /// again or trip over slots its log no longer holds.)
    fn check_stale_install(&mut self, replica: &rsl_core::Replica, input: &Input) {
        self.stats.stale_installs += 1;
        let (copy, actions) = replica.handled_on_copy(input.clone());
        let (before, after) = (replica.status(), copy.status());
        let points = |s: &rsl_core::Status| (s.executed, s.commit, s.checkpoint, s.truncated);
        let same_log = replica.memory_log().eq(copy.memory_log());
        if points(&before) != points(&after) || !same_log || !actions.is_empty() {
            let log = |r: &rsl_core::Replica| r.memory_log().map(|e| e.0 .0).collect::<Vec<_>>();
            let (old, new) = (log(replica), log(&copy));
            let (old_log, new_log) = (old.first().zip(old.last()), new.first().zip(new.last()));
            let detail = format!(
                "{:?} handled {input:?} at or below its executed point, which must change nothing: \
                 (executed, commit, checkpoint, truncated) {:?} -> {:?}, log in memory {} entries \
                 {old_log:?} -> {} {new_log:?}, {} actions",
                before.id,
                points(&before),
                points(&after),
                old.len(),
                new.len(),
                actions.len()
            );
            self.checker.fail(Check::StaleInstall, detail);
        }
    }

    /// Counts a phase 1 completed at `ballot` over a slot above `commit` that a promise of
    /// that ballot, or the candidate's own recovery, reported lost, with no value reported
    /// (or in its own log) at a ballot as high: the path `Phase1IgnoresUnknown` needs.
    fn count_phase1_lost(&mut self, node: usize, ballot: Ballot, commit: Slot) {
        let n = &self.nodes[node];
        let of_ballot = |m: &std::collections::BTreeMap<(Ballot, Slot), Ballot>| {
            m.iter()
                .filter(|((b, _), _)| *b == ballot)
                .map(|((_, s), x)| (*s, *x))
                .collect::<Vec<_>>()
        };
        let known = of_ballot(&n.promised_known);
        let own = &n.disk.durable().log;
        let lost =
            of_ballot(&n.promised_lost).into_iter().chain(n.recovered_corrupt.iter().copied());
        let open = lost.filter(|(slot, _)| *slot > commit).any(|(slot, lost)| {
            let reported = known.iter().filter(|(s, _)| *s == slot).map(|(_, b)| *b);
            let mine = own.get(&slot).map(|e| e.ballot);
            reported.chain(mine).all(|b| b < lost)
        });
        self.stats.phase1_lost += u64::from(open);
    }

    /// The lease check at the moment a primary decides a lease read (see `crate::cause`).
    fn check_lease_read(&mut self, node: usize, status: &rsl_core::Status) {
        self.stats.lease_reads += 1;
        let rivals: Vec<(ReplicaId, Option<Ballot>, Ballot)> = (self.nodes.iter())
            .filter(|n| n.id != status.id)
            .map(|n| match &n.driver {
                Some(d) => {
                    let s = d.status();
                    (n.id, (s.role == Role::Primary).then_some(s.ballot), s.promised)
                }
                None => (n.id, None, n.disk.durable().promised),
            })
            .collect();
        let read = LeaseRead {
            primary: status.id,
            incarnation: self.nodes[node].incarnation,
            ballot: status.ballot,
            membership: status.membership.clone(),
            now: self.now,
        };
        let guard = u64::from(self.options.election_ticks_min);
        if let Err(detail) = self.causes.check_lease_read(&read, &rivals, guard) {
            self.checker.fail(Check::Lease, detail);
        }
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
            match write {
                Write::Accept(entry) => self.checker.durable_accept(id, entry),
                Write::Promise(ballot) => self.causes.promise_durable(id, *ballot),
                Write::Rebuilding(false) => self.stats.rebuilds += 1,
                _ => {}
            }
        }
        if self.options.votes_from_core {
            if self.options.storage_bug != Some(StorageBug::AckBeforeSync) {
                self.deliver(node, Pending::Input(Input::Durable { seq }));
            }
        } else if self.options.storage_bug != Some(StorageBug::AckBeforeSync) {
            // As the runtime's I/O thread: what waited for the sync leaves at once; the core
            // hears of the sync a moment later (a hand-over between threads), and may step
            // other inputs meanwhile. One time in ten the consensus thread is busy for longer
            // than a round trip, so that answers to the votes just sent (a commit point
            // covering them, a prepare) can arrive before the core knows them durable.
            if self.nodes[node].state == NodeState::Up {
                self.release_sends(node, seq);
            }
            let (min, max) = (self.options.delay_min, self.options.delay_max);
            let handover = if self.rng.chance(100) {
                self.rng.range(0, 2 * max + min)
            } else {
                self.rng.range(0, min)
            };
            self.schedule(handover, Event::Durable { node, incarnation, seq });
        }
        self.start_sync(node);
    }

    /// Sends the promises and votes of `node` that waited for writes up to `seq`, in the
    /// order the core handed them over.
    pub(super) fn release_sends(&mut self, node: usize, seq: u64) {
        let waiting = &mut self.nodes[node].sends_when_durable;
        if waiting.iter().all(|(s, ..)| *s > seq) {
            return;
        }
        let (ready, still): (Vec<_>, Vec<_>) = waiting.drain(..).partition(|(s, ..)| *s <= seq);
        self.nodes[node].sends_when_durable = still;
        let mut host = SimHost::new(self, node);
        for (_, to, msg) in ready {
            host.send(to, msg);
        }
    }

    /// A replica answered a proposal or read: a scripted one is recorded at once, a client's
    /// reply travels back over the network.
    pub(super) fn on_replica_reply(&mut self, ticket: u64, reply: Reply) {
        if ticket & SCRIPT_TICKET != 0 {
            self.script_reply(ticket, reply);
            return;
        }
        if let Reply::Done { response, .. } = &reply {
            self.replica_replies.insert(ticket, (self.now, response.clone()));
        }
        let delay = self.rng.range(50, 300);
        self.schedule(delay, Event::ClientReply { ticket, reply });
    }
}
