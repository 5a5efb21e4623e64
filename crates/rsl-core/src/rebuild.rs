//! Disk loss: how a replica that lost its whole disk rejoins without breaking safety.
//!
//! A replica whose disk was wiped forgot its promises and its votes, and a primary may have
//! counted (or may still count) those votes. So, while *rebuilding* (`Recovered::rebuilding`,
//! kept durably by the `Write::Rebuilding` marker), it answers no prepare, votes for no
//! accept and never stands for election; it still follows the primary, learns chosen slots
//! (commit points, catch-up) and persists them. It sends `Rebuild { nonce }` (a nonce per
//! incarnation) to its peers until a primary answers. A primary that receives a nonce it has
//! not served starts a fresh phase 1 at a higher ballot `B` (the request arrived before it
//! started), and once phase 1 completes, with `T` the last slot it re-proposed, answers
//! `Rebuilt { nonce, ballot: B, through: T }`. The rebuilding replica then promises `B`
//! durably, waits until its commit point reaches `T`, durably clears the marker, and only
//! once that write is durable promises and votes again.
//!
//! Why this is safe is in docs/protocol.md ("Disk loss"). In short: `B`'s phase 1 completed
//! with a quorum of promises from *other* replicas, every one given after the disk loss, so
//! every value chosen at a ballot below `B` (even counting a lost vote) was reported to it
//! and lies at or below `T`, and no ballot below `B` can choose anything any more. Once the
//! replica knows the chosen value of every slot up to `T` (and reports them as chosen in its
//! promises, see `Report::commit`), its lost votes no longer matter.

use crate::io::{Action, Write};
use crate::message::Body;
use crate::replica::{Grant, Rebuild, RebuildAnswer, Replica, Role};
use crate::types::{Ballot, ReplicaId, Slot};

impl Replica {
    /// At start: a replica told its disk was lost begins rebuilding.
    pub(crate) fn start_rebuild(&mut self, rebuilding: bool) {
        if !rebuilding {
            return;
        }
        let nonce = self.rng.next_u64();
        // The planted bug grants itself the rebuild: it clears the marker as soon as it is
        // written and votes again, as if it had never voted.
        let granted = planted!(self, WipedReplicaVotes)
            .then_some(Grant { ballot: Ballot::ZERO, through: Slot::ZERO });
        self.rebuild =
            Some(Rebuild { nonce, marker_seq: 0, last_sent: None, granted, clear_seq: None });
        ensure!(self.primacy.is_none() && self.election.is_none(), "rebuilding while primary");
    }

    /// True while this replica must neither promise nor vote.
    pub(crate) fn rebuilding(&self) -> bool {
        self.rebuild.is_some()
    }

    /// Every step ends here: the marker is written first of all (so a crash during the rebuild
    /// restarts rebuilding, whatever the driver persisted), and cleared once the commit point
    /// reaches the end of the granting phase 1's tail. The clearing write comes after the
    /// entries and the commit hint it relies on, so whoever finds it cleared finds them too.
    pub(crate) fn rebuild_after_step(&mut self, out: &mut Vec<Action>) {
        let Some(r) = &self.rebuild else { return };
        if r.marker_seq == 0 {
            let seq = self.persist(Write::Rebuilding(true), out);
            self.rebuild.as_mut().expect("rebuilding").marker_seq = seq;
            return;
        }
        let Some(Grant { ballot, through }) = r.granted else { return };
        if r.clear_seq.is_some() || self.commit < through {
            return;
        }
        require!(self.promised >= ballot, "clearing the marker below the promise {ballot:?}");
        require!(self.commit_persisted >= through, "clearing the marker before the commit hint");
        let seq = self.persist(Write::Rebuilding(false), out);
        self.rebuild.as_mut().expect("rebuilding").clear_seq = Some(seq);
    }

    /// Writes became durable: once the clearing write is, the replica is an acceptor again.
    pub(crate) fn rebuild_durable(&mut self) {
        let Some(r) = &self.rebuild else { return };
        let Some(seq) = r.clear_seq.filter(|s| *s <= self.durable) else { return };
        let Grant { ballot, through } = r.granted.expect("cleared without a grant");
        require!(seq > r.marker_seq, "the marker cleared before it was written");
        self.rebuild = None;
        // Standing at once would only disrupt the primary that just rebuilt us.
        self.last_contact = self.now;
        self.reset_election_timer();
        ensure!(self.promised >= ballot, "rebuilt with a promise below {ballot:?}");
        ensure!(self.commit >= through, "rebuilt with the commit point below {through:?}");
    }

    /// Asks the peers for a rebuild every heartbeat period until a primary grants one.
    pub(crate) fn rebuild_tick(&mut self, out: &mut Vec<Action>) {
        let every = u64::from(self.config.heartbeat_ticks);
        let now = self.now;
        let Some(r) = self.rebuild.as_mut() else { return };
        if r.granted.is_some() || r.last_sent.is_some_and(|t| now < t + every) {
            return;
        }
        r.last_sent = Some(now);
        let nonce = r.nonce;
        for to in self.peers() {
            self.send(to, Body::Rebuild { nonce }, out);
        }
    }

    /// At the primary: a replica rebuilds. An answered nonce gets the same answer again;
    /// a new one gets a fresh phase 1, started now, after the request arrived.
    pub(crate) fn on_rebuild(&mut self, from: ReplicaId, nonce: u64, out: &mut Vec<Action>) {
        let member = self.membership.replicas().any(|r| r == from);
        let Some(l) = self.primacy.as_ref().filter(|_| member) else {
            self.counters.dropped += 1;
            return;
        };
        if let Some(answer) = l.rebuilt.get(&from).filter(|a| a.nonce == nonce) {
            let body = answer.body.clone();
            return self.send(from, body, out);
        }
        if l.transfer.is_some() {
            // Primacy is being handed over; the next primary will answer the resent request.
            self.counters.dropped += 1;
            return;
        }
        let ballot_before = self.promised;
        self.counters.elections += 1;
        self.step_down(None, out);
        self.start_prepare(None, out);
        let e = self.election.as_mut().expect("phase 1 started");
        e.rebuilds.insert(from, nonce);
        ensure!(self.promised > ballot_before, "a rebuild's phase 1 not at a higher ballot");
        ensure!(self.role == Role::Candidate, "a rebuild's phase 1 did not start");
    }

    /// At a new primary, phase 1 complete: answers the rebuild requests that arrived before
    /// it started, with its ballot and the last slot it re-proposed.
    pub(crate) fn answer_rebuilds(
        &mut self,
        rebuilds: std::collections::BTreeMap<ReplicaId, u64>,
        out: &mut Vec<Action>,
    ) {
        let l = self.primacy.as_mut().expect("answering rebuilds without primacy");
        let (ballot, through) = (l.ballot, l.recovery_slot);
        let mut answers = Vec::with_capacity(rebuilds.len());
        for (to, nonce) in rebuilds {
            let body = Body::Rebuilt { nonce, ballot, through };
            l.rebuilt.insert(to, RebuildAnswer { nonce, body: body.clone() });
            answers.push((to, body));
        }
        for (to, body) in answers {
            self.send(to, body, out);
        }
    }

    /// At the rebuilding replica: the primary's phase 1 at `ballot` answered this
    /// incarnation's request. Promise it (durably) and wait for the commit point.
    pub(crate) fn on_rebuilt(
        &mut self,
        from: ReplicaId,
        nonce: u64,
        ballot: Ballot,
        through: Slot,
        out: &mut Vec<Action>,
    ) {
        require!(ballot.owner() == from, "rebuilt {ballot:?} not owned by its sender {from:?}");
        let Some(r) = self.rebuild.as_ref() else {
            self.counters.dropped += 1;
            return;
        };
        if r.nonce != nonce || r.granted.is_some() {
            self.counters.dropped += 1;
            return;
        }
        if ballot > self.promised {
            self.raise_promise(ballot, out);
        }
        self.rebuild.as_mut().expect("rebuilding").granted = Some(Grant { ballot, through });
        ensure!(self.promised >= ballot, "granted a rebuild without promising {ballot:?}");
        ensure!(self.rebuilding(), "a grant ended the rebuild before the commit point");
    }

    /// The rebuild's invariants.
    pub(crate) fn check_rebuild(&self) {
        let Some(r) = &self.rebuild else { return };
        invariant!(
            self.primacy.is_none() && self.election.is_none(),
            "a rebuilding replica leads or stands"
        );
        invariant!(
            self.held
                .iter()
                .all(|h| !matches!(h.body, Body::Promise { .. } | Body::Accepted { .. })),
            "a rebuilding replica holds a promise or a vote"
        );
        if let Some(Grant { ballot, through }) = r.granted {
            invariant!(self.promised >= ballot, "granted {ballot:?} above the promise");
            invariant!(
                r.clear_seq.is_none() || self.commit >= through,
                "cleared below {through:?}"
            );
        }
        invariant!(r.clear_seq.is_none() || r.granted.is_some(), "cleared without a grant");
    }
}
