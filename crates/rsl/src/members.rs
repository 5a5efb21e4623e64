//! The membership as the runtime reports it ([`ClusterMember`], [`MembershipChange`]) and the
//! consensus thread's bookkeeping of membership calls ([`Changes`]). Data only: it imports
//! none of the thread modules (the calls and their handling are in `membership`).

use std::collections::BTreeMap;
use std::net::SocketAddr;

use bytes::Bytes;
use rsl_core::{Membership, MembershipOp, ReplicaId};
use tokio::sync::oneshot;

use crate::error::MembershipError;

/// One member of the membership, as [`crate::Node::members`] and the membership calls report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterMember {
    /// The replica's id.
    pub id: u32,
    /// A voter (counts in quorums, may become primary) or a learner (receives the log).
    pub voter: bool,
    /// Where its peers reach it, if the membership records it.
    pub addr: Option<SocketAddr>,
    /// What the application attached when it added the member (rsl-kv: its client address).
    pub data: Bytes,
}

/// A membership change that was made: the slot its configuration was chosen in, and the
/// members after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MembershipChange {
    /// The slot of the configuration.
    pub slot: u64,
    /// Every member after the change, voters first.
    pub members: Vec<ClusterMember>,
}

/// The members of `m`, voters first, each with what the membership records of it.
pub(crate) fn members_of(m: &Membership) -> Vec<ClusterMember> {
    let member = |id: ReplicaId, voter: bool| {
        let info = m.info.get(&id);
        ClusterMember {
            id: id.0,
            voter,
            addr: info.and_then(|i| i.addr.parse().ok()),
            data: info.map(|i| i.data.clone()).unwrap_or_default(),
        }
    };
    let voters = m.voters.iter().map(|id| member(*id, true));
    voters.chain(m.learners.iter().map(|id| member(*id, false))).collect()
}

/// The reply channel of one membership call.
pub(crate) type ChangeReply = oneshot::Sender<Result<MembershipChange, MembershipError>>;

/// The consensus thread's membership state (kept in its [`Router`]).
#[derive(Default)]
pub(crate) struct Changes {
    /// The reply of the operation being handed to the core: the core refuses at once, within
    /// the same step, before the driver returned the operation's id.
    pub(crate) next: Option<(MembershipOp, ChangeReply)>,
    /// Operations proposed, by the id the driver gave them.
    pub(crate) waiting: BTreeMap<u64, (MembershipOp, ChangeReply)>,
    /// Promotions (and replacements) refused because the learner has not caught up yet:
    /// asked again every tick until the caller gives up.
    pub(crate) catching_up: Vec<(MembershipOp, ChangeReply)>,
    /// The configured addresses, for members the membership records no address for.
    pub(crate) configured: BTreeMap<u32, SocketAddr>,
    /// The peers of the membership before the current one.
    pub(crate) peers_before: BTreeMap<u32, SocketAddr>,
    /// The peers of the current membership.
    pub(crate) peers_now: BTreeMap<u32, SocketAddr>,
    /// Configured members no executed membership has named yet: kept as peers. A learner
    /// that joins a running cluster executes the log's older memberships first; were its
    /// peers only theirs, it would refuse a member that joined later (the primary, perhaps)
    /// and never hear of anything newer (found by `rsl-kv cluster --replace-all`: "hello
    /// names replica 5, which is not a peer", the learner falling behind for good).
    pub(crate) unconfirmed: BTreeMap<u32, SocketAddr>,
    /// The membership changed since the status was last published.
    pub(crate) publish: bool,
    /// Answers to send once the status shows the change (at the end of the turn), so that a
    /// caller that reads the status after its answer sees the membership it was told.
    pub(crate) answers: Vec<(ChangeReply, Result<MembershipChange, MembershipError>)>,
    /// A configuration removed this replica and the new voters no longer need it: the
    /// consensus thread stops.
    pub(crate) removed: bool,
}

impl Changes {
    /// No call waiting yet; `configured` holds the addresses the configuration names.
    pub(crate) fn new(configured: BTreeMap<u32, SocketAddr>) -> Changes {
        Changes { unconfirmed: configured.clone(), configured, ..Changes::default() }
    }

    /// The executed membership's peers are `now` (`m`'s members, without this replica,
    /// `me`): returns the transport's new peer set (those of the membership before, of this
    /// one, and the configured members no membership named yet), or None if it is unchanged.
    /// `executed` is false for the membership a replica starts with: a joining replica's is
    /// only its configuration (bootstrapped into an empty data directory), not a membership
    /// the log chose, so it confirms nothing.
    pub(crate) fn transport_peers(
        &mut self,
        m: &rsl_core::Membership,
        me: u32,
        now: BTreeMap<u32, SocketAddr>,
        executed: bool,
    ) -> Option<BTreeMap<u32, SocketAddr>> {
        let unconfirmed = self.unconfirmed.len();
        let named = |id: u32| executed && m.replicas().any(|r| r.0 == id);
        self.unconfirmed.retain(|id, _| *id != me && !named(*id));
        if now == self.peers_now && self.unconfirmed.len() == unconfirmed {
            return None;
        }
        if now != self.peers_now {
            self.peers_before = std::mem::replace(&mut self.peers_now, now);
        }
        let mut peers = self.peers_before.clone();
        peers.extend(self.peers_now.iter().map(|(id, a)| (*id, *a)));
        for (id, a) in &self.unconfirmed {
            peers.entry(*id).or_insert(*a);
        }
        Some(peers)
    }

    /// Takes the operations to ask the core for again (the callers still waiting).
    pub(crate) fn retries(&mut self) -> Vec<(MembershipOp, ChangeReply)> {
        let all = std::mem::take(&mut self.catching_up);
        all.into_iter().filter(|(_, reply)| !reply.is_closed()).collect()
    }

    /// The operation about to be stepped into the core, then the id the driver gave it.
    pub(crate) fn begin(&mut self, op: MembershipOp, reply: ChangeReply) {
        self.next = Some((op, reply));
    }

    pub(crate) fn proposed(&mut self, id: u64) {
        if let Some(waiter) = self.next.take() {
            self.waiting.insert(id, waiter);
        }
    }

    /// Every caller still waiting (at shutdown).
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = ChangeReply> + '_ {
        let next = self.next.take().into_iter();
        let catching_up = self.catching_up.drain(..);
        let waiting = self.waiting.split_off(&0).into_values();
        let answered = self.answers.drain(..).map(|(r, _)| r);
        next.chain(waiting).chain(catching_up).map(|(_, r)| r).chain(answered)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::net::SocketAddr;

    use rsl_core::Membership;

    use super::Changes;

    fn addr(id: u32) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 7000 + id as u16))
    }

    fn peers_of(m: &Membership, me: u32) -> BTreeMap<u32, SocketAddr> {
        m.replicas().filter(|r| r.0 != me).map(|r| (r.0, addr(r.0))).collect()
    }

    #[test]
    fn a_joining_learner_keeps_its_configured_peers_through_older_memberships() {
        // Replica 6 joins a cluster of 2, 3, 5 (5 joined later than the log's first
        // membership, 1, 2, 3). Executing the old memberships must not drop 5.
        let me = 6;
        let mut changes = Changes::new([2, 3, 5].into_iter().map(|i| (i, addr(i))).collect());
        // It starts with its configuration bootstrapped as its membership: that confirms
        // nothing (found in `rsl-kv cluster --replace-all` after the first version of this).
        let boot = Membership::new([2, 3, 5]);
        changes.transport_peers(&boot, me, peers_of(&boot, me), false).expect("changed");
        let old = Membership::new([1, 2, 3]);
        let peers = changes.transport_peers(&old, me, peers_of(&old, me), true).expect("changed");
        assert!(peers.contains_key(&5), "the configured member 5 was dropped: {peers:?}");
        assert!(peers.contains_key(&1));
        // Once a membership names 5, it is a member like any other: the change after the
        // one that removes it drops it (the one before a change stays reachable).
        let with5 = Membership::new([2, 3, 5, 6]);
        let peers =
            changes.transport_peers(&with5, me, peers_of(&with5, me), true).expect("changed");
        assert!(peers.contains_key(&5) && peers.contains_key(&1));
        let without5 = Membership::new([2, 3, 6]);
        changes.transport_peers(&without5, me, peers_of(&without5, me), true).expect("changed");
        let again = Membership::new([2, 3, 6, 7]);
        let peers =
            changes.transport_peers(&again, me, peers_of(&again, me), true).expect("changed");
        assert!(!peers.contains_key(&5), "a removed member stayed a peer: {peers:?}");
        assert_eq!(changes.transport_peers(&again, me, peers_of(&again, me), true), None);
    }
}
