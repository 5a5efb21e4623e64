//! What a replica's threads share: the status they publish, the view callers wait on, the
//! counters and histograms, the members' addresses, and whether (and why) the replica
//! stopped. Data only: it imports none of the thread modules.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use crate::error::ReplicateError;
use crate::metrics::Metrics;
use crate::status::{Health, Status, StopCause, View};

/// Why the replica stopped, kept once.
#[derive(Debug, Clone)]
struct Stopped {
    cause: StopCause,
    reason: String,
}

/// Where a replica's parts are shared between threads.
pub(crate) struct Shared {
    pub(crate) status: Mutex<Status>,
    /// Role, primary, ballot and health, published on every change so callers can await them.
    pub(crate) view: tokio::sync::watch::Sender<View>,
    /// Counters, latency histograms and the registry they are scraped from.
    pub(crate) metrics: Metrics,
    /// The last slot the executor executed (or installed from a checkpoint).
    pub(crate) executed: AtomicU64,
    /// The last slot whose execution the state machine has finished (or installed from a
    /// checkpoint): its state reflects every slot up to this one. `executed` is published
    /// before a slot executes (so a caller answered from it sees its slot there), this one
    /// after (so a caller that reads the state machine's shared state on its own thread,
    /// `Node::read_here`, sees every slot up to it in that state).
    pub(crate) applied: AtomicU64,
    /// Every member this replica knows, with its peer address where it has one (a
    /// `LocalCluster`'s replicas have none). The consensus thread replaces it as the
    /// executed membership changes.
    pub(crate) members: RwLock<BTreeMap<u32, Option<SocketAddr>>>,
    /// How long a call waits unless it says otherwise (`consensus.call_timeout_ms`).
    pub(crate) call_timeout: Duration,
    stopped_flag: AtomicBool,
    stopped: Mutex<Option<Stopped>>,
    /// The reason writes are refused while the disk is full, if it is.
    disk_full: Mutex<Option<String>>,
    /// The primary's lease, for linearizable reads served without the consensus thread.
    pub(crate) lease: LeasePublication,
    /// While the lease is published: the primary's ballot round and its commit point, as
    /// one core state had them together (`Node::chosen`).
    pub(crate) chosen: Mutex<Option<(u64, u64)>>,
}

/// The primary's lease as the consensus thread publishes it, so that a caller can serve a
/// linearizable read without a round trip through that thread (`Node::read`): until which
/// instant it holds (one clock read decides) and the slot the state must have executed
/// before the read is served. docs/protocol.md, "Leases and reads", has the argument.
///
/// The consensus thread publishes it at the end of every turn from the core's
/// `Replica::lease_read`, and clears it before it carries out an action that ends primacy or
/// starts a transfer. Two atomics, written index first and end last (release), read end
/// first (acquire): a caller that sees an end sees the index published with it or a later,
/// higher one (the index never goes back).
pub(crate) struct LeasePublication {
    base: Instant,
    /// Nanoseconds after `base` at which the lease ends; 0: no lease.
    end: AtomicU64,
    index: AtomicU64,
}

impl LeasePublication {
    fn new() -> LeasePublication {
        LeasePublication { base: Instant::now(), end: AtomicU64::new(0), index: AtomicU64::new(0) }
    }

    fn nanos(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.base).as_nanos() as u64
    }

    /// The lease holds until `end`; a read must wait for the state to execute `index`.
    pub(crate) fn publish(&self, end: Instant, index: u64) {
        self.index.fetch_max(index, Ordering::Release);
        self.end.store(self.nanos(end).max(1), Ordering::Release);
    }

    /// A message about to leave says every slot up to `commit` is chosen: a read that starts
    /// from now on waits for the state to execute it. Without this, a follower told the new
    /// commit point in the middle of a turn could execute a write and acknowledge it, and a
    /// read the writer then sends here could be served before this replica's executor has
    /// the slot (the index published at the end of the previous turn is below it, and the
    /// consensus thread may be preempted between sending the message and handing the slot to
    /// the executor: the core sends a turn's accepts, which carry the commit point, before
    /// its executes). The claim of what is chosen that a read-index answer carries
    /// (`Consensus::publish_chosen`) raises it the same way.
    pub(crate) fn raise_index(&self, commit: u64) {
        self.index.fetch_max(commit, Ordering::Release);
    }

    /// No lease (stepped down, handing over, not recovered, or it ran out).
    pub(crate) fn clear(&self) {
        self.end.store(0, Ordering::Release);
    }

    /// The index a linearizable read started at `now` must wait for, if the lease holds at
    /// `now`.
    pub(crate) fn check(&self, now: Instant) -> Option<u64> {
        let end = self.end.load(Ordering::Acquire);
        if end == 0 || self.nanos(now) >= end {
            return None;
        }
        Some(self.index.load(Ordering::Acquire))
    }
}

impl Shared {
    /// A replica's shared state before its threads start; `executed` is the slot its
    /// checkpoint covers.
    pub(crate) fn new(
        id: u32,
        executed: u64,
        members: BTreeMap<u32, Option<SocketAddr>>,
        call_timeout: Duration,
    ) -> Shared {
        Shared {
            status: Mutex::new(Status::starting(id)),
            view: tokio::sync::watch::Sender::new(View::default()),
            metrics: Metrics::new(),
            executed: AtomicU64::new(executed),
            applied: AtomicU64::new(executed),
            members: RwLock::new(members),
            call_timeout,
            stopped_flag: AtomicBool::new(false),
            stopped: Mutex::new(None),
            disk_full: Mutex::new(None),
            lease: LeasePublication::new(),
            chosen: Mutex::new(None),
        }
    }

    /// A consistent copy of the status, with the live executed slot, counters and health.
    pub(crate) fn status(&self) -> Status {
        let mut status = self.status.lock().expect("status lock").clone();
        status.executed = self.executed.load(Ordering::Acquire);
        // The full status is published once per tick; what is executed is chosen, so the
        // commit point is at least the live executed slot.
        status.committed = status.committed.max(status.executed);
        status.counters = self.metrics.counters.snapshot();
        status.health = self.health();
        status.stop_reason = match self.stopped.lock().expect("stop lock").as_ref() {
            Some(s) => Some(s.reason.clone()),
            None => self.disk_full.lock().expect("disk lock").clone(),
        };
        status
    }

    pub(crate) fn is_running(&self) -> bool {
        !self.stopped_flag.load(Ordering::Acquire)
    }

    /// Serving, refusing writes on a full disk, or stopped.
    pub(crate) fn health(&self) -> Health {
        if let Some(s) = self.stopped.lock().expect("stop lock").as_ref() {
            return Health::Stopped(s.cause);
        }
        match self.disk_full.lock().expect("disk lock").is_some() {
            true => Health::DiskFull,
            false => Health::Ok,
        }
    }

    /// Marks the replica stopped for `cause` (the first cause wins); publishes it in the view.
    /// Returns false if it had already stopped.
    pub(crate) fn stop(&self, cause: StopCause, reason: String) -> bool {
        {
            let mut stopped = self.stopped.lock().expect("stop lock");
            if stopped.is_some() {
                return false;
            }
            if cause != StopCause::Shutdown {
                tracing::error!(%cause, reason, "this replica stopped");
            }
            *stopped = Some(Stopped { cause, reason });
            self.stopped_flag.store(true, Ordering::Release);
        }
        self.publish_health();
        true
    }

    /// Sets or clears the full-disk state (the I/O thread, on ENOSPC and on recovery).
    pub(crate) fn set_disk_full(&self, reason: Option<String>) {
        *self.disk_full.lock().expect("disk lock") = reason;
        self.publish_health();
    }

    /// The full-disk refusal, while the disk is full.
    pub(crate) fn disk_full_error(&self) -> Option<ReplicateError> {
        let reason = self.disk_full.lock().expect("disk lock").clone()?;
        Some(ReplicateError::DiskFull { reason })
    }

    fn publish_health(&self) {
        let health = self.health();
        self.view.send_if_modified(|v| std::mem::replace(&mut v.health, health) != health);
    }

    /// The error every call gets once the replica has stopped: `ShuttingDown` after a
    /// shutdown, `Stopped` with the reason after a failure.
    pub(crate) fn stop_error(&self) -> ReplicateError {
        match self.stopped.lock().expect("stop lock").as_ref() {
            Some(Stopped { cause, reason }) if *cause != StopCause::Shutdown => {
                ReplicateError::Stopped { reason: reason.clone() }
            }
            _ => ReplicateError::ShuttingDown,
        }
    }

    /// The peer address of member `id`, where known.
    pub(crate) fn address_of(&self, id: u32) -> Option<SocketAddr> {
        self.members.read().expect("members lock").get(&id).copied().flatten()
    }

    /// Whether `id` is a member this replica knows.
    pub(crate) fn knows_member(&self, id: u32) -> bool {
        self.members.read().expect("members lock").contains_key(&id)
    }

    /// The replica's metrics in the Prometheus text format.
    pub(crate) fn metrics_text(&self) -> String {
        self.metrics.render(&self.status())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A published lease serves reads until its end and not from its end on, whatever the
    /// consensus thread does meanwhile (it may be stalled and not clear it). Proven by a
    /// planted bug: a check that ignores the end serves the read at the end.
    #[test]
    fn a_published_lease_ends_at_its_end() {
        let lease = LeasePublication::new();
        let now = Instant::now();
        assert_eq!(lease.check(now), None, "nothing published");
        let end = now + Duration::from_millis(200);
        lease.publish(end, 7);
        assert_eq!(lease.check(now), Some(7));
        assert_eq!(lease.check(end - Duration::from_nanos(1)), Some(7));
        assert_eq!(lease.check(end), None, "at its end");
        assert_eq!(lease.check(end + Duration::from_secs(1)), None, "after its end");
        lease.publish(end, 9);
        lease.clear();
        assert_eq!(lease.check(now), None, "cleared");
    }

    /// A commit point a message carries out raises the index of every read that starts
    /// after it, at once (not at the end of the consensus thread's turn), and a later
    /// publication never lowers it. Proven by planted bugs: `raise_index` doing nothing, and
    /// `publish` storing its index over a higher one, each fail here.
    #[test]
    fn a_commit_point_sent_raises_the_read_index_at_once() {
        let lease = LeasePublication::new();
        let now = Instant::now();
        let end = now + Duration::from_millis(200);
        lease.publish(end, 3);
        lease.raise_index(5);
        assert_eq!(lease.check(now), Some(5), "a read waits for the commit point sent");
        lease.publish(end, 4);
        assert_eq!(lease.check(now), Some(5), "the index never goes back");
        lease.raise_index(2);
        assert_eq!(lease.check(now), Some(5));
    }
}
