//! Membership changes at run time: the [`Node`] calls that add a learner, promote it, remove
//! a member or replace one by another (each answered once its configuration is chosen and
//! executed here, or refused with a [`MembershipError`]), and the consensus thread's side of
//! them: matching the core's answers (`Action::Reconfigured`) to the waiting callers, retrying
//! a promotion until the learner caught up, and keeping the transport's peer set and the
//! members' addresses in step with the executed membership.
//!
//! The membership carries each member's peer address and the application's data
//! (`rsl_core::MemberInfo`); members bootstrapped from the configuration carry their
//! configured address. A replica keeps as peers the members of the current membership and of
//! the one before it (and the configured members no executed membership has named yet: a
//! learner catching up through older memberships still reaches the members that joined
//! after them), so that a replica a change removed can still reach the new voters (it
//! serves them catch-up until a quorum of them executed the change, then stops with
//! [`StopCause::Removed`]), and the new voters can still answer it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use rsl_core::{MemberInfo, Membership, MembershipOp, ReconfigRefusal, ReplicaId, Slot};
use tokio::sync::oneshot;

use crate::channels::ToConsensus;
use crate::consensus::Router;
use crate::error::MembershipError;
use crate::members::{members_of, ClusterMember, MembershipChange};
use crate::node::Node;
use crate::status::StopCause;

impl Router {
    /// The core's answer to membership operation `id`.
    pub(crate) fn change_answered(
        &mut self,
        id: u64,
        outcome: Result<(Slot, Membership), ReconfigRefusal>,
    ) {
        let changes = &mut self.changes;
        let Some((op, reply)) = changes.waiting.remove(&id).or_else(|| changes.next.take()) else {
            return;
        };
        let result = match outcome {
            Ok((slot, m)) => {
                let made = MembershipChange { slot: slot.0, members: members_of(&m) };
                changes.answers.push((reply, Ok(made)));
                return;
            }
            Err(ReconfigRefusal::NotCaughtUp { .. }) => {
                changes.catching_up.push((op, reply));
                return;
            }
            Err(refusal) => Err(self.membership_error(refusal)),
        };
        let _ = reply.send(result);
    }

    fn membership_error(&self, refusal: ReconfigRefusal) -> MembershipError {
        let address = |p: Option<ReplicaId>| p.and_then(|p| self.shared.address_of(p.0));
        match refusal {
            ReconfigRefusal::NotPrimary { primary } => MembershipError::NotPrimary {
                primary: primary.map(|p| p.0),
                primary_addr: address(primary),
            },
            ReconfigRefusal::Superseded { primary } => MembershipError::Superseded {
                primary: primary.map(|p| p.0),
                primary_addr: address(primary),
            },
            ReconfigRefusal::InFlight => MembershipError::InFlight,
            ReconfigRefusal::UnknownMember { id } => MembershipError::UnknownMember { id: id.0 },
            ReconfigRefusal::AlreadyMember { id } => MembershipError::AlreadyMember { id: id.0 },
            ReconfigRefusal::NotCaughtUp { id, lag } => {
                MembershipError::NotCaughtUp { id: id.0, lag }
            }
            ReconfigRefusal::NoQuorum { live, quorum } => {
                MembershipError::NoQuorum { live, quorum }
            }
            ReconfigRefusal::Invalid { reason } => {
                MembershipError::Invalid { reason: reason.to_string() }
            }
            ReconfigRefusal::OutcomeUnknown => MembershipError::OutcomeUnknown,
        }
    }

    /// The executed membership is now `m`: the transport's peers become its members and
    /// those of the membership before it, and the members' addresses are updated.
    pub(crate) fn apply_membership(&mut self, m: &Membership, executed: bool) {
        let me = self.transport.id();
        let changes = &mut self.changes;
        let now: BTreeMap<u32, SocketAddr> = m
            .replicas()
            .filter(|id| id.0 != me)
            .filter_map(|id| {
                let recorded = m.info.get(&id).and_then(|i| i.addr.parse().ok());
                recorded.or_else(|| changes.configured.get(&id.0).copied()).map(|a| (id.0, a))
            })
            .collect();
        changes.publish = true;
        let Some(peers) = changes.transport_peers(m, me, now, executed) else { return };
        if let Err(e) = self.transport.set_peers(&peers) {
            tracing::error!(error = %e, "the transport refused the membership's peers");
        }
        let mut members: BTreeMap<u32, Option<SocketAddr>> =
            m.replicas().map(|id| (id.0, None)).collect();
        members.extend(peers.iter().map(|(id, a)| (*id, Some(*a))));
        *self.shared.members.write().expect("members lock") = members;
    }

    /// A configuration removed this replica and a quorum of the new voters executed it.
    pub(crate) fn removed(&mut self, slot: Slot) {
        let reason = format!("removed from the membership by the configuration at slot {}", slot.0);
        self.shared.stop(StopCause::Removed, reason);
        self.changes.removed = true;
    }
}

impl Node {
    /// Adds replica `id`, reached by its peers at `addr`, as a learner: it receives the log
    /// (or a checkpoint) and catches up, but does not vote. `data` is the application's, kept
    /// in the membership (rsl-kv keeps the member's client address there). The replica is
    /// started with `join` set ([`crate::NodeConfig::join`]) and waits to be added.
    ///
    /// Answered once the configuration is chosen and executed here; the errors say why not
    /// (not primary, naming the primary; a change in flight; already a member; no live
    /// quorum). Call it at the primary.
    pub async fn add_learner(
        &self,
        id: u32,
        addr: SocketAddr,
        data: Bytes,
    ) -> Result<MembershipChange, MembershipError> {
        let info = MemberInfo { addr: addr.to_string(), data };
        self.change(MembershipOp::AddLearner { id: ReplicaId(id), info }).await
    }

    /// Makes learner `id` a voter, once it has caught up: the call waits (up to the call
    /// timeout) while the learner is further behind than one catch-up message, or not
    /// answering the primary.
    pub async fn promote(&self, id: u32) -> Result<MembershipChange, MembershipError> {
        self.change(MembershipOp::Promote { id: ReplicaId(id) }).await
    }

    /// Removes voter or learner `id`. Refused if the voters left that answer the primary
    /// would not be a quorum. The removed replica stops once the new voters have executed
    /// the change ([`StopCause::Removed`]).
    pub async fn remove_member(&self, id: u32) -> Result<MembershipChange, MembershipError> {
        self.change(MembershipOp::Remove { id: ReplicaId(id) }).await
    }

    /// Makes learner `new` a voter in place of voter `old`, in one change (the number of
    /// voters stays the same); waits for `new` to catch up as [`Node::promote`] does.
    pub async fn replace_member(
        &self,
        old: u32,
        new: u32,
    ) -> Result<MembershipChange, MembershipError> {
        self.change(MembershipOp::Replace { old: ReplicaId(old), new: ReplicaId(new) }).await
    }

    /// The membership this replica has executed: every member with its role, address and
    /// data.
    pub fn members(&self) -> Vec<ClusterMember> {
        self.status().membership
    }

    async fn change(&self, op: MembershipOp) -> Result<MembershipChange, MembershipError> {
        let (reply, rx) = oneshot::channel();
        self.push(ToConsensus::Reconfigure { op, reply }).map_err(|_| MembershipError::Stopped)?;
        let timeout: Duration = self.call_timeout();
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err(MembershipError::Stopped),
            Err(_) => Err(MembershipError::Timeout { after: timeout }),
        }
    }
}
