//! The replica state machine: acceptor, proposer (primary) and learner in one struct.
//!
//! `step` is the only entry point: it dispatches one input to a short handler
//! (`on_prepare`, `on_accept`, `on_tick` ...) in the sibling modules `acceptor`, `election`,
//! `primary` and `learner`, then releases held messages, executes chosen slots and, in
//! debug builds, checks every invariant. The state's invariants (checked by
//! [`Replica::invariants`]):
//!
//! - every accepted ballot is at or below the promise;
//! - `executed <= commit`, and every slot in `(mem_base, commit]` is held and chosen;
//! - a held message waits for a write that was issued (`seq < next_seq`) and not yet durable;
//! - only the primary has primacy state, only a candidate has election state;
//! - the primary's in-flight slots are above the commit point and in its log at its ballot.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::config::Config;
use crate::io::{Action, Input, ReadId, Write};
use crate::message::{Body, Message};
use crate::rng::Rng;
use crate::types::{Ballot, LogEntry, Membership, ReplicaId, RequestId, Slot, UnknownValue, Value};

/// What a replica finds on its disk at start.
#[derive(Debug, Clone, Default)]
pub struct Recovered {
    /// The highest ballot it promised.
    pub promised: Ballot,
    /// Its membership as last persisted, if any (otherwise the config's).
    pub membership: Option<Membership>,
    /// The slot of the checkpoint the state machine was loaded from (`Slot::ZERO` if none):
    /// execution resumes after it.
    pub checkpoint: Slot,
    /// The persisted commit hint.
    pub commit: Slot,
    /// Accepted entries above `checkpoint`, ascending by slot, the latest ballot per slot.
    pub log: Vec<LogEntry>,
    /// Slots whose records were found corrupt: the replica accepted something there at this
    /// ballot but lost the value. It must not vote as if it never accepted them.
    pub corrupt: Vec<(Slot, Ballot)>,
    /// The replica lost its disk (the driver was told so, or found the `Write::Rebuilding`
    /// marker): it must rebuild before it promises or votes again (docs/protocol.md, "Disk
    /// loss"). The driver must also give such a replica a `Config::rng_seed` it never had
    /// before: the rebuild request's nonce is drawn from it.
    pub rebuilding: bool,
    /// For a replica that joined a running cluster: the slot of the configuration that
    /// made it a member, once durable (`Write::MemberSince`). `None` for a bootstrapped
    /// replica, and for a joining one still waiting to be added (`Config::joining` says
    /// which).
    pub member_since: Option<Slot>,
}

/// A replica's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Follower,
    Candidate,
    Primary,
    Learner,
}

/// A snapshot of a replica's state, for status pages and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub id: ReplicaId,
    pub role: Role,
    pub primary: Option<ReplicaId>,
    pub ballot: Ballot,
    pub promised: Ballot,
    pub commit: Slot,
    pub executed: Slot,
    /// The newest checkpoint saved or installed here (`Slot::ZERO`: none).
    pub checkpoint: Slot,
    /// The log is kept after this slot; a peer that needs an earlier one is sent the
    /// checkpoint instead.
    pub truncated: Slot,
    pub membership: Membership,
    /// Counted, dropped inputs and notable events.
    pub counters: Counters,
    /// Ticks since this replica started.
    pub now: u64,
    /// At the primary: each peer's health as the primary sees it (empty elsewhere).
    pub peers: Vec<PeerStatus>,
    /// Rebuilding after a disk loss: it neither promises, votes nor stands for election yet.
    pub rebuilding: bool,
    /// Joining a running cluster: not yet a member (no configuration added it yet).
    pub joining: bool,
    /// The slot of the configuration that removed this replica, if one did; `removed_done`
    /// once a quorum of the new voters executed it (`Notification::Removed`).
    pub removed: Option<Slot>,
    pub removed_done: bool,
}

/// One peer's health, as the primary sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerStatus {
    pub id: ReplicaId,
    /// The commit point it last acknowledged (lag = the primary's commit minus this).
    pub commit: Slot,
    /// The tick of its last acknowledgement, if any.
    pub last_contact: Option<u64>,
}

/// Counters of normal-but-notable events (stale messages, refusals ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counters {
    /// Messages dropped as stale, duplicated or not meant for this role.
    pub dropped: u64,
    /// Accepts refused because they conflict with a value at the same ballot or a chosen slot
    /// (only a buggy primary sends these).
    pub conflicts: u64,
    /// Prepares and pre-votes refused because a live primary holds this replica's lease.
    pub sticky_refusals: u64,
    /// Elections started.
    pub elections: u64,
    /// Catch-up requests sent.
    pub catchups: u64,
}

/// One accepted entry in memory.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) ballot: Ballot,
    pub(crate) value: Value,
    /// The write that made it durable; votes for it wait for this seq.
    pub(crate) seq: u64,
    /// Known chosen (the value every replica will execute in this slot).
    pub(crate) chosen: bool,
    /// The value's encoded length (`message::value_len`), measured once: the primary sizes
    /// its accepts by it, and the byte count of the executed entries in memory adds and
    /// subtracts it (each a walk of the slot's requests, several a slot before).
    pub(crate) bytes: usize,
}

impl Entry {
    pub(crate) fn new(ballot: Ballot, value: Value, seq: u64, chosen: bool) -> Entry {
        let bytes = crate::message::value_len(&value);
        Entry { ballot, value, seq, chosen, bytes }
    }
}

/// A message waiting for the write it depends on.
#[derive(Debug, Clone)]
pub(crate) struct Held {
    pub(crate) seq: u64,
    pub(crate) to: ReplicaId,
    pub(crate) body: Body,
}

/// What one acceptor reported in its promise, assembled from its pages (one page, or a
/// report in progress, has the same shape).
#[derive(Debug, Clone, Default)]
pub(crate) struct Report {
    /// The acceptor's commit point when it sent the first page: its entries at or below it
    /// are chosen values. Its commit point only grows and a chosen slot never changes, so
    /// this holds for the later pages too (a later page's higher commit point would not hold
    /// for the earlier pages, so it is not taken).
    pub(crate) commit: Slot,
    pub(crate) entries: Vec<LogEntry>,
    pub(crate) unknown: Vec<UnknownValue>,
    /// `Some(s)`: the report continues with a page after slot `s`.
    pub(crate) more_after: Option<Slot>,
    /// The acceptor no longer holds some entries the report needs (chosen ones it dropped):
    /// the candidate catches up, then asks for the report again from its first page.
    pub(crate) dropped: bool,
}

impl Report {
    /// Every page arrived, and nothing was dropped: the report counts for phase 1.
    pub(crate) fn complete(&self) -> bool {
        self.more_after.is_none() && !self.dropped
    }

    /// Appends the next page (its slots all follow this report's).
    pub(crate) fn extend(&mut self, page: Report) {
        require!(!self.dropped && self.more_after.is_some(), "extending a finished report");
        self.entries.extend(page.entries);
        self.unknown.extend(page.unknown);
        self.more_after = page.more_after;
        self.dropped = page.dropped;
    }
}

/// A candidate's state: first the pre-vote, then phase 1.
#[derive(Debug, Clone)]
pub(crate) struct Election {
    pub(crate) ballot: Ballot,
    pub(crate) prevote: bool,
    pub(crate) grants: BTreeSet<ReplicaId>,
    pub(crate) promises: BTreeMap<ReplicaId, Report>,
    /// The seq of the candidate's own promise write (its own promise counts once durable).
    pub(crate) own_seq: u64,
    pub(crate) transfer: Option<Ballot>,
    pub(crate) last_sent: u64,
    /// Rebuild requests (replica, nonce) this phase 1 answers: it started after they arrived.
    pub(crate) rebuilds: BTreeMap<ReplicaId, u64>,
}

/// A slot the primary proposed and has not yet seen chosen.
#[derive(Debug, Clone)]
pub(crate) struct InFlight {
    pub(crate) votes: BTreeSet<ReplicaId>,
    pub(crate) own_seq: u64,
    /// The tick the slot was last sent (or resent).
    pub(crate) sent_at: u64,
    /// The heartbeat round current when it was last sent: a peer that acknowledged a later
    /// round received it (the transport delivers in order), so only its vote is missing.
    pub(crate) sent_round: u64,
    /// The wait before a resend: it doubles with each resend, up to `election_ticks_min`.
    pub(crate) resend_ticks: u64,
    /// The value's encoded size (for `pipeline_bytes_max`).
    pub(crate) bytes: usize,
}

/// A proposal waiting for a slot.
#[derive(Debug, Clone)]
pub(crate) struct Queued {
    pub(crate) id: RequestId,
    pub(crate) payload: bytes::Bytes,
    pub(crate) exclusive: bool,
}

/// A fast read (`ReadMode::AtLeast`) waiting until this replica has executed `slot`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FastRead {
    pub(crate) id: ReadId,
    pub(crate) slot: Slot,
}

/// What the primary last heard from a peer's heartbeat acknowledgements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ack {
    /// The highest heartbeat round acknowledged (leases and quorum reads).
    pub(crate) round: u64,
    /// The highest commit point reported (lag, transfers, promotions).
    pub(crate) commit: Slot,
}

/// A rebuild request the primary answered: the requester's nonce and the answer, sent again
/// if the same request comes again.
#[derive(Debug, Clone)]
pub(crate) struct RebuildAnswer {
    pub(crate) nonce: u64,
    pub(crate) body: Body,
}

/// A linearizable read waiting at the primary.
#[derive(Debug, Clone)]
pub(crate) struct LinRead {
    pub(crate) id: ReadId,
    /// Executed must reach this slot.
    pub(crate) index: Slot,
    /// A majority must have acknowledged this heartbeat round (0: the lease covered it).
    pub(crate) round: u64,
}

/// A primacy transfer in progress.
#[derive(Debug, Clone)]
pub(crate) struct Transfer {
    pub(crate) target: ReplicaId,
    pub(crate) deadline: u64,
    pub(crate) sent: bool,
}

/// The primary's state.
#[derive(Debug, Clone)]
pub(crate) struct Primacy {
    pub(crate) ballot: Ballot,
    pub(crate) next_slot: Slot,
    /// The last slot phase 1 re-proposed: once it executes, every earlier primary's
    /// committed value has executed here (PrimaryRecovered).
    pub(crate) recovery_slot: Slot,
    pub(crate) recovered: bool,
    pub(crate) inflight: BTreeMap<Slot, InFlight>,
    pub(crate) queue: VecDeque<Queued>,
    /// Payload bytes in `queue`.
    pub(crate) queued_bytes: usize,
    /// New slots of this step, sent to every peer in one accept at the end of the step.
    pub(crate) outbox: Vec<Slot>,
    /// The slot of a configuration change not yet executed (nothing is proposed after it).
    pub(crate) config_slot: Option<Slot>,
    /// A membership to propose once the learners it promotes have caught up.
    pub(crate) config_target: Option<Membership>,
    /// A configuration (and its operation's id) to propose once the slots before it execute.
    pub(crate) config_waiting: Option<(Membership, Option<u64>)>,
    pub(crate) round: u64,
    pub(crate) round_sent: BTreeMap<u64, u64>,
    /// Per peer: the highest heartbeat round acknowledged and its commit point.
    pub(crate) acks: BTreeMap<ReplicaId, Ack>,
    /// Per peer: the tick of its last acknowledgement.
    pub(crate) last_ack: BTreeMap<ReplicaId, u64>,
    pub(crate) last_heartbeat: u64,
    /// The tick primacy began.
    pub(crate) since: u64,
    /// Replicas removed by an executed configuration, until they acknowledge it.
    pub(crate) departing: BTreeMap<ReplicaId, Slot>,
    pub(crate) reads: VecDeque<LinRead>,
    pub(crate) transfer: Option<Transfer>,
    /// Rebuild requests answered by this primacy's phase 1, per requester.
    pub(crate) rebuilt: BTreeMap<ReplicaId, RebuildAnswer>,
    /// The replicas whose complete promises (and our own) completed phase 1 at this ballot.
    /// Every slot this primary proposes must be governed by a membership of which they hold
    /// a quorum (docs/protocol.md, "Reconfiguration").
    pub(crate) promisers: BTreeSet<ReplicaId>,
}

/// One replica of the cluster.
#[derive(Debug, Clone)]
pub struct Replica {
    pub(crate) config: Config,
    pub(crate) id: ReplicaId,
    pub(crate) membership: Membership,
    pub(crate) membership_slot: Slot,
    pub(crate) role: Role,
    pub(crate) can_be_primary: bool,
    pub(crate) primary: Option<ReplicaId>,
    pub(crate) primary_ballot: Ballot,
    pub(crate) promised: Ballot,
    /// The seq of the newest promise write.
    pub(crate) promised_seq: u64,
    /// The highest ballot seen anywhere (new ballots go above it).
    pub(crate) seen: Ballot,
    pub(crate) log: BTreeMap<Slot, Entry>,
    pub(crate) corrupt: BTreeMap<Slot, Ballot>,
    /// Every slot up to here is chosen and its value known (or checkpointed).
    pub(crate) commit: Slot,
    /// The highest commit point heard from a peer, and who said it.
    pub(crate) commit_hint: Slot,
    pub(crate) hint_from: Option<ReplicaId>,
    pub(crate) executed: Slot,
    /// The state machine's newest checkpoint.
    pub(crate) checkpoint: Slot,
    /// Every slot at or below this is gone from storage (only a checkpoint has it).
    pub(crate) truncated: Slot,
    /// Executed entries at or below this are gone from memory (storage still has them).
    pub(crate) mem_base: Slot,
    /// Value bytes of the executed entries still held in memory (`value_len` of each):
    /// bounded by `Config::log_memory_bytes_max`.
    pub(crate) mem_bytes: usize,
    pub(crate) next_seq: u64,
    pub(crate) durable: u64,
    pub(crate) held: Vec<Held>,
    /// Messages handed to the driver to send once durable (`Config::held_sends_to_driver`),
    /// counted, for the checks that a vote waits iff its writes are not durable.
    pub(crate) handed: u64,
    pub(crate) now: u64,
    pub(crate) last_contact: u64,
    pub(crate) election_deadline: u64,
    /// How many times in a row this replica's candidacy ran out of time (at most
    /// `ELECTION_BACKOFF_MAX`): each doubles the next election timeout, so that a phase 1
    /// whose promises carry large values, slower to move than one timeout, completes in the
    /// end instead of starting over forever. Back to 0 once a primary is followed or won.
    pub(crate) election_backoff: u32,
    pub(crate) rng: Rng,
    pub(crate) election: Option<Election>,
    pub(crate) primacy: Option<Primacy>,
    /// This replica's proposals placed in slots, waiting for the slot to execute.
    pub(crate) outcomes: BTreeMap<Slot, Vec<RequestId>>,
    /// Fast reads waiting for `executed >= slot`.
    pub(crate) reads: VecDeque<FastRead>,
    pub(crate) catchup_sent: Option<u64>,
    /// The tick this replica last probed its peers for their commit point (`probe_tick`).
    pub(crate) probe_sent: u64,
    /// Where the next catch-up request goes after a reply that brought none of the slots
    /// asked for (its sender may be unable to read them back): the peer after that sender in
    /// id order, in place of the primary or the hint's source, until some peer helps.
    pub(crate) catchup_next: Option<ReplicaId>,
    pub(crate) loads: crate::loads::Loads,
    pub(crate) next_token: u64,
    pub(crate) checkpoint_asked: Slot,
    pub(crate) commit_persisted: Slot,
    /// Set while rebuilding after a disk loss (see `rebuild.rs`).
    pub(crate) rebuild: Option<Rebuild>,
    /// The slot from which this replica is a member: zero for a bootstrapped replica, the
    /// slot of the configuration that added it for one that joined; `None` while joining.
    pub(crate) member_since: Option<Slot>,
    /// Set once a configuration removed this replica (see `reconfig.rs`).
    pub(crate) removal: Option<Removal>,
    /// Membership operations this replica proposed, by the slot they wait for: settled when
    /// the slot executes (made, or superseded by another value).
    pub(crate) change_outcomes: BTreeMap<Slot, (u64, Membership)>,
    pub(crate) counters: Counters,
}

/// The state of a replica rebuilding after a disk loss.
#[derive(Debug, Clone)]
pub(crate) struct Rebuild {
    /// This incarnation's request; only a `Rebuilt` with the same nonce counts.
    pub(crate) nonce: u64,
    /// The seq of the core's own write of the marker (0: not issued yet).
    pub(crate) marker_seq: u64,
    /// The tick the request was last sent.
    pub(crate) last_sent: Option<u64>,
    /// From the primary's `Rebuilt`, once it came.
    pub(crate) granted: Option<Grant>,
    /// The write clearing the marker; the replica is rebuilt once it is durable.
    pub(crate) clear_seq: Option<u64>,
}

/// A replica a configuration removed: it keeps answering catch-up requests (the new voters
/// may need what it knows) until a quorum of the new voters say they executed the change.
#[derive(Debug, Clone)]
pub(crate) struct Removal {
    /// The slot of the configuration that removed it.
    pub(crate) slot: Slot,
    /// The commit points the new voters reported (catch-up replies, heartbeats).
    pub(crate) heard: BTreeMap<ReplicaId, Slot>,
    /// `Notification::Removed` was emitted.
    pub(crate) done: bool,
    /// The tick it last probed the new voters.
    pub(crate) probed: Option<u64>,
}

/// A primary's answer to a rebuild request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Grant {
    /// The ballot of a phase 1 that started after the request arrived.
    pub(crate) ballot: Ballot,
    /// The last slot that phase 1 re-proposed.
    pub(crate) through: Slot,
}

impl Replica {
    /// Starts a replica from what its disk holds. Panics on an invalid config.
    pub fn new(config: Config, recovered: Recovered) -> Replica {
        config.validate().expect("invalid config");
        let mut rng = Rng::new(config.rng_seed);
        let deadline =
            rng.range(u64::from(config.election_ticks_min), u64::from(config.election_ticks_max));
        let membership = recovered.membership.clone().unwrap_or_else(|| config.membership.clone());
        let mut replica = Replica {
            id: config.id,
            role: Role::Follower,
            membership,
            membership_slot: Slot::ZERO,
            can_be_primary: true,
            primary: None,
            primary_ballot: Ballot::ZERO,
            promised: recovered.promised,
            promised_seq: 0,
            seen: recovered.promised,
            log: BTreeMap::new(),
            corrupt: BTreeMap::new(),
            commit: recovered.checkpoint,
            commit_hint: recovered.commit,
            hint_from: None,
            executed: recovered.checkpoint,
            checkpoint: recovered.checkpoint,
            truncated: recovered.checkpoint,
            mem_base: recovered.checkpoint,
            mem_bytes: 0,
            next_seq: 0,
            durable: 0,
            held: Vec::new(),
            handed: 0,
            now: 0,
            // A restarted replica may have granted a lease it no longer remembers: it acts
            // as if it just heard a primary, refusing other candidates for a timeout.
            last_contact: 0,
            election_deadline: deadline,
            election_backoff: 0,
            rng,
            election: None,
            primacy: None,
            outcomes: BTreeMap::new(),
            reads: VecDeque::new(),
            catchup_sent: None,
            probe_sent: 0,
            catchup_next: None,
            loads: crate::loads::Loads::default(),
            next_token: 1,
            checkpoint_asked: recovered.checkpoint,
            commit_persisted: recovered.commit,
            rebuild: None,
            member_since: None,
            removal: None,
            change_outcomes: BTreeMap::new(),
            counters: Counters::default(),
            config,
        };
        replica.start_rebuild(recovered.rebuilding);
        replica.start_membership(recovered.member_since);
        replica.recover(recovered);
        replica.invariants();
        replica
    }

    /// Loads the recovered log: entries at or below the commit hint are chosen.
    fn recover(&mut self, recovered: Recovered) {
        // A corrupt record at or below the checkpoint no longer matters: the checkpoint
        // holds the slot's effect.
        for (slot, ballot) in recovered.corrupt.into_iter().filter(|(s, _)| *s > self.checkpoint) {
            self.corrupt.insert(slot, ballot);
            self.promised = self.promised.max(ballot);
        }
        for e in recovered.log {
            // A chosen entry installed by catch-up may carry a ballot above the promise;
            // raising the promise to it is always safe (a promise only forbids).
            self.promised = self.promised.max(e.ballot);
            if e.slot <= self.checkpoint {
                continue;
            }
            let chosen = e.slot <= recovered.commit;
            self.log.insert(e.slot, Entry::new(e.ballot, e.value, 0, chosen));
        }
        // The persisted commit point says every slot up to it was in this log or a
        // checkpoint. A slot up to it that is in neither was lost: the newest checkpoint was
        // corrupt at rest and the driver fell back to an older one, while the log had been
        // truncated behind the newest (seed 74099885 with --reconfig: the replica promised
        // such slots as empty and a quorum without their only other holder filled one with a
        // no-op over a chosen value). It may have voted for them at any ballot up to its
        // promise: it reports them lost there, as corrupt records, and catch-up repairs them.
        let lost: Vec<Slot> = (self.checkpoint.0 + 1..=recovered.commit.0)
            .map(Slot)
            .filter(|s| !self.log.contains_key(s) && !self.corrupt.contains_key(s))
            .collect();
        let ignore_lost = planted!(self, RecoveryIgnoresLostSlots);
        for slot in lost.into_iter().filter(|_| !ignore_lost) {
            self.corrupt.insert(slot, self.promised);
        }
        self.seen = self.promised;
        self.role = self.follower_role();
        self.advance_commit();
    }

    /// Takes one input and appends the resulting actions to `out`.
    pub fn step(&mut self, input: Input, out: &mut Vec<Action>) {
        // A deferred proposal only queues; every other input's step fills the pipeline.
        let fill = !(self.config.propose_at_turn_end && matches!(input, Input::Propose { .. }));
        self.handle(input, out);
        self.after_step(fill, out);
        // The cheap checks run after every step in every build (ARCHITECTURE.md, invariant
        // 5): a replica in an impossible state stops rather than corrupt the cluster. The
        // walks over the log and the in-flight slots run in debug builds and wherever the
        // driver checks (the simulator, the tests).
        self.invariants_cheap();
        #[cfg(debug_assertions)]
        self.invariants_walks();
    }

    /// What handling `input` alone does, on a copy of this replica (which stays unchanged):
    /// the copy afterwards and the actions the handling produced, before the work every step
    /// ends with (new slots out, chosen slots executed, held messages released). For checks
    /// of an input's own documented effect at its cause, before the rest of a step can act
    /// on it: the simulator verifies that an install at or below the executed point changes
    /// nothing (`Input::CheckpointInstalled`).
    pub fn handled_on_copy(&self, input: Input) -> (Replica, Vec<Action>) {
        let mut copy = self.clone();
        let mut out = Vec::new();
        copy.handle(input, &mut out);
        (copy, out)
    }

    /// The accepted entries held in memory, in slot order: slot, ballot, value, and whether
    /// it is known chosen (for status pages, tests and the simulator's checks).
    pub fn memory_log(&self) -> impl Iterator<Item = (Slot, Ballot, &Value, bool)> + '_ {
        self.log.iter().map(|(s, e)| (*s, e.ballot, &e.value, e.chosen))
    }

    /// The membership operations this replica proposed that wait for their slot to execute
    /// (slot, operation id): a slot no quorum has decided yet keeps its operation waiting,
    /// on this replica, until the slot executes (or an installed checkpoint skips it). For
    /// status pages and the simulator's check that every operation is answered.
    pub fn changes_waiting(&self) -> impl Iterator<Item = (Slot, u64)> + '_ {
        self.change_outcomes.iter().map(|(s, (id, _))| (*s, *id))
    }

    /// The input's own handler, without the work every step ends with.
    fn handle(&mut self, input: Input, out: &mut Vec<Action>) {
        match input {
            Input::Tick => self.on_tick(out),
            Input::Receive(msg) => self.on_receive(msg, out),
            Input::Durable { seq } => self.on_durable(seq, out),
            Input::Propose { id, payload, exclusive } => {
                self.on_propose(Queued { id, payload, exclusive }, out)
            }
            Input::EndOfTurn => {}
            Input::Read { id, mode } => self.on_read(id, mode, out),
            Input::TransferPrimacy { to } => self.on_transfer(to, out),
            Input::SetCanBecomePrimary(can) => self.on_set_can_become_primary(can, out),
            Input::ChangeMembership(m) => self.on_change_membership(m, out),
            Input::Reconfigure { id, op } => self.on_reconfigure(id, op, out),
            Input::CheckpointSaved { slot } => self.on_checkpoint_saved(slot, out),
            Input::LogLoaded { token, entries } => self.on_log_loaded(token, entries, out),
            Input::CheckpointInstalled { slot, membership } => {
                self.on_checkpoint_installed(slot, membership, out)
            }
            // As a heartbeat's commit point, and only where a heartbeat's would be learned
            // (never from a ballot below the promised one).
            Input::Chosen { from, ballot, commit } => {
                if from != self.id && ballot >= self.promised {
                    self.learn_commit(from, ballot, commit, out);
                }
            }
        }
    }

    /// Work every step ends with: new slots go out (unless `fill` is false: a proposal
    /// deferred to the end of the driver's turn), chosen slots execute, the commit hint is
    /// persisted, held messages whose writes are durable are released.
    fn after_step(&mut self, fill: bool, out: &mut Vec<Action>) {
        self.flush_accepts(out);
        self.execute_chosen(out);
        self.propose_waiting_config(out); // before new requests (`propose_config`)
        if fill {
            self.fill_pipeline(out);
        }
        self.flush_accepts(out);
        if self.commit > self.commit_persisted {
            self.commit_persisted = self.commit;
            self.persist(Write::Commit(self.commit), out);
        }
        self.rebuild_after_step(out);
        self.release_held(out);
    }

    fn on_receive(&mut self, msg: Message, out: &mut Vec<Action>) {
        if msg.to != self.id || msg.from == self.id || !crate::message::well_formed(&msg) {
            self.counters.dropped += 1;
            return;
        }
        let from = msg.from;
        match msg.body {
            Body::PreVote { ballot, commit } => self.on_prevote(from, ballot, commit, out),
            Body::PreVoteReply { ballot, granted } => {
                self.on_prevote_reply(from, ballot, granted, out)
            }
            Body::Prepare { ballot, after, transfer } => {
                self.on_prepare(from, ballot, after, transfer, out)
            }
            Body::Promise { ballot, commit, after, entries, unknown, more_after, dropped } => {
                let page = Report { commit, entries, unknown, more_after, dropped };
                self.on_promise(from, ballot, after, page, out)
            }
            Body::Nack { ballot, promised } => self.on_nack(ballot, promised, out),
            Body::Accept { ballot, commit, entries } => {
                self.on_accept(from, ballot, commit, entries, out)
            }
            Body::Accepted { ballot, slots } => self.on_accepted(from, ballot, &slots),
            Body::Heartbeat { ballot, commit, round } => {
                self.on_heartbeat(from, ballot, commit, round, out)
            }
            Body::HeartbeatAck { ballot, round, commit } => {
                self.on_heartbeat_ack(from, ballot, round, commit, out)
            }
            Body::CatchupRequest { from: first, to } => {
                self.on_catchup_request(from, first, to, out)
            }
            Body::CatchupReply { commit, entries } => {
                self.on_catchup_reply(from, commit, entries, out)
            }
            Body::StartElection { ballot } => self.on_start_election(from, ballot, out),
            Body::Rebuild { nonce } => self.on_rebuild(from, nonce, out),
            Body::Rebuilt { nonce, ballot, through } => {
                self.on_rebuilt(from, nonce, ballot, through, out)
            }
        }
    }

    /// Writes up to `seq` are durable: held messages and the primary's own votes and the
    /// candidate's own promise may now count.
    fn on_durable(&mut self, seq: u64, out: &mut Vec<Action>) {
        require!(seq <= self.next_seq, "durable {seq} was never issued");
        let durable_before = self.durable;
        self.durable = self.durable.max(seq);
        self.rebuild_durable();
        self.count_own_votes();
        self.check_phase1(out);
        ensure!(self.durable >= durable_before, "durability went back");
        if let Some(l) = &self.primacy {
            let own = l.inflight.values().filter(|f| f.own_seq <= self.durable);
            ensure!(
                own.clone().all(|f| f.votes.contains(&self.id)),
                "a durable own vote not counted"
            );
        }
    }

    /// Issues a write; returns its seq.
    pub(crate) fn persist(&mut self, write: Write, out: &mut Vec<Action>) -> u64 {
        self.next_seq += 1;
        out.push(Action::Persist { seq: self.next_seq, write });
        self.next_seq
    }

    /// Sends now.
    pub(crate) fn send(&self, to: ReplicaId, body: Body, out: &mut Vec<Action>) {
        out.push(Action::Send { to, msg: self.message(to, body) });
    }

    /// A message from this replica, checked as every message it sends is: never to itself,
    /// no promise or vote while it rebuilds.
    fn message(&self, to: ReplicaId, body: Body) -> Message {
        require!(to != self.id, "sending {body:?} to itself");
        require!(
            self.rebuild.is_none() || !matches!(body, Body::Promise { .. } | Body::Accepted { .. }),
            "a rebuilding replica sends {body:?}"
        );
        Message { from: self.id, to, body }
    }

    /// Sends once every write up to `seq` is durable (persist before send).
    pub(crate) fn send_after(
        &mut self,
        seq: u64,
        to: ReplicaId,
        body: Body,
        out: &mut Vec<Action>,
    ) {
        if seq <= self.durable || planted!(self, SendBeforePersist) {
            self.send(to, body, out);
        } else if self.config.held_sends_to_driver {
            self.handed += 1;
            out.push(Action::SendWhenDurable { seq, to, msg: self.message(to, body) });
        } else {
            self.held.push(Held { seq, to, body });
        }
    }

    /// Messages waiting for a write to be durable: held here, or handed to the driver.
    pub(crate) fn waiting_sends(&self) -> u64 {
        self.held.len() as u64 + self.handed
    }

    fn release_held(&mut self, out: &mut Vec<Action>) {
        if self.held.iter().all(|h| h.seq > self.durable) {
            return;
        }
        let held = std::mem::take(&mut self.held);
        for h in held {
            if h.seq <= self.durable {
                self.send(h.to, h.body, out);
            } else {
                self.held.push(h);
            }
        }
        ensure!(self.held.iter().all(|h| h.seq > self.durable), "a durable message still held");
    }

    /// A fresh random election deadline, stretched by the election backoff.
    pub(crate) fn reset_election_timer(&mut self) {
        let min = u64::from(self.config.election_ticks_min);
        let max = u64::from(self.config.election_ticks_max);
        self.election_deadline = self.now + (self.rng.range(min, max) << self.election_backoff);
    }

    /// The role of a replica that is not primary nor candidate.
    pub(crate) fn follower_role(&self) -> Role {
        if self.membership.is_voter(self.id) {
            Role::Follower
        } else {
            Role::Learner
        }
    }

    /// Every other replica that receives the log.
    pub(crate) fn peers(&self) -> Vec<ReplicaId> {
        let mut peers: Vec<ReplicaId> = self.membership.replicas().collect();
        if let Some(l) = &self.primacy {
            peers.extend(l.config_target.iter().flat_map(|m| m.replicas()));
            peers.extend(l.departing.keys());
        }
        peers.sort();
        peers.dedup();
        peers.retain(|&p| p != self.id);
        peers
    }

    pub fn status(&self) -> Status {
        Status {
            id: self.id,
            role: self.role,
            primary: self.primary,
            ballot: self.primary_ballot,
            promised: self.promised,
            commit: self.commit,
            executed: self.executed,
            checkpoint: self.checkpoint,
            truncated: self.truncated,
            membership: self.membership.clone(),
            counters: self.counters,
            now: self.now,
            peers: self.peer_status(),
            rebuilding: self.rebuild.is_some(),
            joining: self.member_since.is_none(),
            removed: self.removal.as_ref().map(|r| r.slot),
            removed_done: self.removal.as_ref().is_some_and(|r| r.done),
        }
    }

    fn peer_status(&self) -> Vec<PeerStatus> {
        let Some(l) = &self.primacy else { return Vec::new() };
        let peer = |id: ReplicaId| PeerStatus {
            id,
            commit: l.acks.get(&id).map_or(Slot::ZERO, |a| a.commit),
            last_contact: l.last_ack.get(&id).copied(),
        };
        self.peers().into_iter().map(peer).collect()
    }
}
