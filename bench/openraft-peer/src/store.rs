//! Storage kept in memory: the log (shared between the writer and the replication tasks'
//! readers, behind one mutex) and the state machine (owned by openraft's state-machine task, so
//! no lock on the apply path).

use std::collections::VecDeque;
use std::fmt::Debug;
use std::io;
use std::ops::Bound;
use std::ops::RangeBounds;
use std::sync::Arc;
use std::sync::Mutex;

use futures_util::Stream;
use futures_util::TryStreamExt;
use openraft::EntryPayload;
use openraft::LogState;
use openraft::OptionalSend;
use openraft::RaftLogReader;
use openraft::RaftSnapshotBuilder;
use openraft::entry::RaftEntry;
use openraft::storage::EntryResponder;
use openraft::storage::IOFlushed;
use openraft::storage::RaftLogStorage;
use openraft::storage::RaftStateMachine;
use openraft::type_config::alias::EntryOf;
use openraft::type_config::alias::LogIdOf;
use openraft::type_config::alias::SnapshotMetaOf;
use openraft::type_config::alias::SnapshotOf;
use openraft::type_config::alias::StoredMembershipOf;
use openraft::type_config::alias::VoteOf;

use crate::cluster::Cfg;

/// What the log holds: the vote, the entries still kept, and where the kept ones begin.
#[derive(Default)]
struct Held {
    vote: Option<VoteOf<Cfg>>,
    committed: Option<LogIdOf<Cfg>>,
    purged: Option<LogIdOf<Cfg>>,
    /// Index of `entries[0]`.
    first: u64,
    entries: VecDeque<EntryOf<Cfg>>,
}

impl Held {
    /// The positions in `entries` of the indexes in `range`, clamped to what is held.
    fn positions(&self, range: &impl RangeBounds<u64>) -> std::ops::Range<usize> {
        let end_held = self.first + self.entries.len() as u64;
        let lo = match range.start_bound() {
            Bound::Included(&i) => i,
            Bound::Excluded(&i) => i + 1,
            Bound::Unbounded => 0,
        }
        .clamp(self.first, end_held);
        let hi = match range.end_bound() {
            Bound::Included(&i) => i + 1,
            Bound::Excluded(&i) => i,
            Bound::Unbounded => end_held,
        }
        .clamp(lo, end_held);
        (lo - self.first) as usize..(hi - self.first) as usize
    }
}

/// One replica's log. Cloning shares it: the clone is the reader openraft's replication hands
/// out.
#[derive(Clone, Default)]
pub struct MemLog(Arc<Mutex<Held>>);

impl MemLog {
    fn held(&self) -> std::sync::MutexGuard<'_, Held> {
        self.0.lock().expect("log mutex poisoned")
    }
}

impl RaftLogReader<Cfg> for MemLog {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<EntryOf<Cfg>>, io::Error> {
        let held = self.held();
        let at = held.positions(&range);
        Ok(held.entries.range(at).cloned().collect())
    }

    async fn read_vote(&mut self) -> Result<Option<VoteOf<Cfg>>, io::Error> {
        Ok(self.held().vote)
    }
}

impl RaftLogStorage<Cfg> for MemLog {
    type LogReader = MemLog;

    async fn get_log_state(&mut self) -> Result<LogState<Cfg>, io::Error> {
        let held = self.held();
        let last = held.entries.back().map(|e| e.log_id()).or(held.purged);
        Ok(LogState { last_purged_log_id: held.purged, last_log_id: last })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &VoteOf<Cfg>) -> Result<(), io::Error> {
        self.held().vote = Some(*vote);
        Ok(())
    }

    async fn save_committed(&mut self, committed: Option<LogIdOf<Cfg>>) -> Result<(), io::Error> {
        self.held().committed = committed;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogIdOf<Cfg>>, io::Error> {
        Ok(self.held().committed)
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<Cfg>) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = EntryOf<Cfg>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        {
            let mut held = self.held();
            for e in entries {
                if held.entries.is_empty() {
                    held.first = e.index();
                }
                let next = held.first + held.entries.len() as u64;
                if e.index() != next {
                    return Err(io::Error::other(format!(
                        "append at index {} where the log's next is {next}",
                        e.index()
                    )));
                }
                held.entries.push_back(e);
            }
        }
        // Nothing to flush: memory is as durable as this log gets.
        callback.io_completed(Ok(()));
        Ok(())
    }

    async fn truncate_after(&mut self, last: Option<LogIdOf<Cfg>>) -> Result<(), io::Error> {
        let mut held = self.held();
        let keep_below = last.map_or(0, |l| l.index() + 1);
        let keep = keep_below.saturating_sub(held.first) as usize;
        held.entries.truncate(keep);
        Ok(())
    }

    async fn purge(&mut self, upto: LogIdOf<Cfg>) -> Result<(), io::Error> {
        let mut held = self.held();
        let drop_below = upto.index() + 1;
        let n = (drop_below.saturating_sub(held.first) as usize).min(held.entries.len());
        held.entries.drain(..n);
        held.first = held.first.max(drop_below);
        held.purged = Some(upto);
        Ok(())
    }
}

/// The state machine's whole state, which is also its snapshot: how many writes it applied and
/// how many payload bytes they carried. Snapshots travel in-process, so they are this struct,
/// never bytes.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    pub writes: u64,
    pub bytes: u64,
}

type Snap = SnapshotOf<Cfg, Tally>;

/// One replica's state machine.
#[derive(Default)]
pub struct Counter {
    applied: Option<LogIdOf<Cfg>>,
    membership: StoredMembershipOf<Cfg>,
    tally: Tally,
    /// The latest snapshot built or installed, shared with the snapshot builders.
    latest: Arc<Mutex<Option<Snap>>>,
}

/// Builds a snapshot of the state as it was when openraft asked for the builder.
pub struct Freeze {
    meta: SnapshotMetaOf<Cfg>,
    tally: Tally,
    latest: Arc<Mutex<Option<Snap>>>,
}

impl RaftSnapshotBuilder<Cfg> for Freeze {
    type SnapshotData = Tally;

    async fn build_snapshot(&mut self) -> Result<Snap, io::Error> {
        let snap = Snap { meta: self.meta.clone(), snapshot: self.tally.clone() };
        *self.latest.lock().expect("snapshot mutex poisoned") = Some(snap.clone());
        Ok(snap)
    }
}

impl RaftStateMachine<Cfg> for Counter {
    type SnapshotData = Tally;
    type SnapshotBuilder = Freeze;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogIdOf<Cfg>>, StoredMembershipOf<Cfg>), io::Error> {
        Ok((self.applied, self.membership.clone()))
    }

    async fn apply<S>(&mut self, mut entries: S) -> Result<(), io::Error>
    where
        S: Stream<Item = Result<EntryResponder<Cfg>, io::Error>> + Unpin + OptionalSend,
    {
        while let Some((entry, responder)) = entries.try_next().await? {
            let log_id = entry.log_id();
            match entry.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(req) => {
                    self.tally.writes += 1;
                    self.tally.bytes += req.body.len() as u64;
                }
                EntryPayload::Membership(m) => {
                    self.membership = StoredMembershipOf::<Cfg>::new(Some(log_id), m);
                }
            }
            self.applied = Some(log_id);
            if let Some(r) = responder {
                r.send(self.tally.writes);
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        Freeze {
            meta: SnapshotMetaOf::<Cfg> {
                last_log_id: self.applied,
                last_membership: self.membership.clone(),
            },
            tally: self.tally.clone(),
            latest: self.latest.clone(),
        }
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMetaOf<Cfg>,
        snapshot: Tally,
    ) -> Result<(), io::Error> {
        self.applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        self.tally = snapshot.clone();
        *self.latest.lock().expect("snapshot mutex poisoned") =
            Some(Snap { meta: meta.clone(), snapshot });
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snap>, io::Error> {
        Ok(self.latest.lock().expect("snapshot mutex poisoned").clone())
    }
}
