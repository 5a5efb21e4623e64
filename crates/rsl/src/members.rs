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
        Changes { configured, ..Changes::default() }
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
