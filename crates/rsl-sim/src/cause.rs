//! Checks at the cause, with the simulator's global knowledge: what a primary did must be
//! justified by what the other replicas durably did, at the moment it did it. The end-to-end
//! checkers (agreement, linearizability) see a broken rule only when an unlikely chain of
//! events turns it into a wrong answer; these see the broken rule itself.
//!
//! * **Lease** ([`Check::Lease`](crate::checker::Check::Lease)): whenever a primary decides
//!   to serve a linearizable read under its lease, no other replica is primary at a higher
//!   ballot, no quorum has promised a higher ballot, and the lease's evidence justifies it: a
//!   quorum (the primary included) acknowledged heartbeats of this primacy sent less than
//!   `election_ticks_min - 1` ticks of the fastest clock ago. Each acknowledging follower
//!   refuses other candidates for `election_ticks_min` of its own ticks after receiving the
//!   heartbeat, and no clock runs faster than the nominal tick, so that is how long the
//!   evidence lasts, whatever the drift; a lease that outlives it (a lease computed without
//!   the drift allowance, from unacknowledged rounds, from another ballot's or a learner's
//!   acknowledgements) fails here.
//! * **Promises** ([`Check::Promises`](crate::checker::Check::Promises)): a replica becomes
//!   primary at ballot `b` only when a quorum of its voters has durably written a promise
//!   of `b` (recorded when the simulated fsync completes).
//! * **Votes** ([`Check::Votes`](crate::checker::Check::Votes)), in the checker: a primary
//!   executes a slot it proposed at its ballot only once a quorum of the voters governing
//!   that slot durably accepted it at that ballot (`Checker::counted`).

use std::collections::{BTreeMap, BTreeSet};

use rsl_core::{Ballot, Membership, ReplicaId};

use crate::options::TICK;

/// One primacy the simulator watches: a replica's incarnation at one ballot.
type Primacy = (ReplicaId, u64, Ballot);

/// Evidence of one primacy: heartbeat rounds sent and acknowledged.
#[derive(Debug, Default)]
struct Evidence {
    /// The global time each heartbeat round was first sent.
    sent: BTreeMap<u64, u64>,
    /// Each peer's highest round whose acknowledgement reached the primary.
    acked: BTreeMap<ReplicaId, u64>,
    /// The primary sent `StartElection`: it consented to a transfer, and acceptors may now
    /// promise the target inside the leases they granted.
    consented: bool,
}

/// What a primary looks like to the lease check at the moment it decides a lease read.
#[derive(Debug, Clone)]
pub struct LeaseRead {
    pub primary: ReplicaId,
    pub incarnation: u64,
    pub ballot: Ballot,
    pub membership: Membership,
    /// Global time, in units.
    pub now: u64,
}

/// The stickiness check: an acceptor that heard a live primary refuses every other
/// candidate's prepare for `election_ticks_min` of its own ticks (that is what the primary's
/// lease stands on), unless the prepare comes from the primary it follows or carries that
/// primary's own transfer. `heard` is its tick count when it last adopted a primary (tick 0
/// just after a restart: a restarted replica acts as if it had just heard one), `now` its
/// tick count when it promised `candidate`'s ballot; `follows` the primary and ballot it
/// followed (or led) just before.
pub fn check_stickiness(
    acceptor: ReplicaId,
    heard: u64,
    now: u64,
    follows: (Option<ReplicaId>, Ballot),
    candidate: ReplicaId,
    transfer: Option<Ballot>,
    guard_ticks: u64,
) -> Result<(), String> {
    let (primary, ballot) = follows;
    let exempt = primary == Some(candidate) || (ballot > Ballot::ZERO && transfer == Some(ballot));
    if exempt || now >= heard + guard_ticks {
        return Ok(());
    }
    Err(format!(
        "{acceptor:?} promised {candidate:?}'s ballot at its tick {now}, {} ticks after it last heard a primary (it follows {primary:?} at {ballot:?}; it must refuse for {guard_ticks})",
        now - heard
    ))
}

/// The state behind the checks at the cause.
#[derive(Debug, Default)]
pub struct Causes {
    /// The current primacy of each replica incarnation, with its evidence.
    primacies: BTreeMap<(ReplicaId, u64), (Ballot, Evidence)>,
    /// Every promise that became durable: (replica, ballot).
    durable_promises: BTreeSet<(ReplicaId, Ballot)>,
}

impl Causes {
    fn evidence(&mut self, p: Primacy) -> &mut Evidence {
        let (replica, incarnation, ballot) = p;
        let entry = self.primacies.entry((replica, incarnation)).or_default();
        if entry.0 != ballot {
            *entry = (ballot, Evidence::default());
        }
        &mut entry.1
    }

    /// The primary of `p` sent heartbeat `round` at global time `now`.
    pub fn heartbeat_sent(&mut self, p: Primacy, round: u64, now: u64) {
        self.evidence(p).sent.entry(round).or_insert(now);
    }

    /// An acknowledgement of `round` at `p`'s ballot from `from` reached `p`'s replica; it
    /// counts only while that replica's primacy is at that ballot.
    pub fn heartbeat_acked(&mut self, p: Primacy, from: ReplicaId, round: u64) {
        let (replica, incarnation, ballot) = p;
        let Some((b, evidence)) = self.primacies.get_mut(&(replica, incarnation)) else { return };
        if *b == ballot {
            let acked = evidence.acked.entry(from).or_insert(0);
            *acked = (*acked).max(round);
        }
    }

    /// The primary of `p` sent `StartElection` (consent to break its leases).
    pub fn transfer_consented(&mut self, p: Primacy) {
        self.evidence(p).consented = true;
    }

    /// A promise of `ballot` became durable on `replica`.
    pub fn promise_durable(&mut self, replica: ReplicaId, ballot: Ballot) {
        self.durable_promises.insert((replica, ballot));
    }

    /// Phase 1 at `ballot` completed at `primary` under `membership`: a quorum of its voters
    /// must have durably promised `ballot`.
    pub fn check_phase1(
        &self,
        primary: ReplicaId,
        ballot: Ballot,
        membership: &Membership,
    ) -> Result<(), String> {
        let promised: Vec<ReplicaId> = (membership.voters.iter())
            .filter(|v| self.durable_promises.contains(&(**v, ballot)))
            .copied()
            .collect();
        if promised.len() >= membership.quorum() {
            return Ok(());
        }
        Err(format!(
            "{primary:?} became primary at {ballot:?} with durable promises only from {promised:?} of voters {:?}",
            membership.voters
        ))
    }

    /// A primary decided to serve a read under its lease. `rivals` lists every other
    /// replica with its role-and-ballot if primary, and its promise (in memory if up,
    /// durable if down); `guard_ticks` is the followers' `election_ticks_min`.
    pub fn check_lease_read(
        &mut self,
        read: &LeaseRead,
        rivals: &[(ReplicaId, Option<Ballot>, Ballot)],
        guard_ticks: u64,
    ) -> Result<(), String> {
        let LeaseRead { primary, ballot, ref membership, now, .. } = *read;
        if let Some((rival, Some(b), _)) =
            rivals.iter().find(|(_, b, _)| b.is_some_and(|b| b > ballot))
        {
            return Err(format!(
                "{primary:?} served a lease read at {ballot:?} while {rival:?} is primary at {b:?}"
            ));
        }
        let above: Vec<ReplicaId> = rivals
            .iter()
            .filter(|(r, _, promised)| membership.is_voter(*r) && *promised > ballot)
            .map(|(r, _, _)| *r)
            .collect();
        if above.len() >= membership.quorum() {
            return Err(format!(
                "{primary:?} served a lease read at {ballot:?} while a quorum {above:?} has promised a higher ballot"
            ));
        }
        // Each follower's guard lasts at least `guard_ticks - 1` nominal ticks after the send
        // of the round it acknowledged (it may receive it just before its own tick).
        let horizon = guard_ticks.saturating_sub(1) * TICK;
        let evidence = self.evidence((primary, read.incarnation, ballot));
        if evidence.consented {
            return Err(format!(
                "{primary:?} served a lease read at {ballot:?} after it sent StartElection (its acceptors may promise the transfer's target)"
            ));
        }
        let fresh = |r: &u64| evidence.sent.get(r).is_some_and(|sent| now < sent + horizon);
        let guarded: Vec<ReplicaId> = (membership.voters.iter())
            .filter(|v| **v != primary && evidence.acked.get(v).is_some_and(fresh))
            .copied()
            .collect();
        let count = guarded.len() + usize::from(membership.is_voter(primary));
        if count >= membership.quorum() {
            return Ok(());
        }
        Err(format!(
            "{primary:?} served a lease read at {ballot:?} at tick {:.3} with fresh acknowledgements only from {guarded:?} of voters {:?} (acked rounds {:?})",
            now as f64 / TICK as f64,
            membership.voters,
            evidence.acked
        ))
    }
}
