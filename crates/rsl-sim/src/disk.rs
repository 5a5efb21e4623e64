//! A replica's simulated durable storage: it separates what was *written* from what is
//! *durable*.
//!
//! `Action::Persist` writes join the unsynced queue in seq order. An fsync takes everything
//! queued when it starts and, after a simulated delay, makes it durable at once (group
//! commit). A crash keeps the durable state plus a *prefix* of the unsynced queue (all of it
//! for a process crash, where the OS page cache survives; a random prefix, possibly empty, for
//! a machine crash: later writes are lost, a torn tail is discarded). Restart rebuilds
//! [`Recovered`] from what survived.
//!
//! [`StorageBug`] plants a storage bug in this model (the harness, not the core), to prove
//! the checkers catch a storage layer that breaks its contract.

use std::collections::{BTreeMap, VecDeque};

use rsl_core::{Ballot, LogEntry, Recovered, Slot, Value, Write};

/// A bug planted in the simulated storage (not in the core): selectable by name like the
/// core's planted bugs (`--bug NAME`), but needs no feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageBug {
    /// A write is reported durable (`Input::Durable`) as soon as it is written, before its
    /// fsync completes; a machine crash still loses it.
    AckBeforeSync,
    /// Recovery treats a corrupt record as the end of the log: it drops that record and every
    /// later one, and reports none of them in `Recovered::corrupt` (what protocol-aware
    /// recovery forbids: a dropped record may be a vote a chosen value depends on).
    TruncateAtCorruption,
    /// A machine crash tears the first write it loses, and recovery takes the torn record
    /// as whole instead of discarding it as a torn tail: a torn accept of a batch holds only
    /// its first half (or a no-op), a value nobody proposed at that ballot.
    KeepTornWrite,
}

impl StorageBug {
    pub const ALL: [StorageBug; 3] =
        [StorageBug::AckBeforeSync, StorageBug::TruncateAtCorruption, StorageBug::KeepTornWrite];

    pub fn name(self) -> String {
        format!("{self:?}")
    }

    /// A storage bug by its name (case-insensitive).
    pub fn parse(name: &str) -> Option<StorageBug> {
        StorageBug::ALL.into_iter().find(|b| b.name().eq_ignore_ascii_case(name))
    }
}

/// What is on the platter.
#[derive(Debug, Clone, Default)]
pub struct DiskState {
    pub promised: Ballot,
    pub log: BTreeMap<Slot, LogEntry>,
    pub commit: Slot,
    /// Records whose checksum will fail at the next start: (slot, ballot).
    pub corrupt: BTreeMap<Slot, Ballot>,
    /// The disk-loss marker (`Write::Rebuilding`).
    pub rebuilding: bool,
}

impl DiskState {
    fn apply(&mut self, write: &Write) {
        match write {
            Write::Promise(ballot) => self.promised = *ballot,
            Write::Accept(entry) => {
                self.corrupt.remove(&entry.slot);
                self.log.insert(entry.slot, entry.clone());
            }
            Write::Commit(slot) => self.commit = *slot,
            Write::TruncateSuffix { from } => {
                self.log.split_off(from);
                self.corrupt.split_off(from);
            }
            Write::TruncatePrefix { before } => {
                self.log = self.log.split_off(before);
                self.corrupt = self.corrupt.split_off(before);
            }
            Write::Rebuilding(on) => self.rebuilding = *on,
        }
    }
}

/// One replica's disk.
#[derive(Debug, Default)]
pub struct Disk {
    durable: DiskState,
    /// Written, not yet durable, in seq order.
    unsynced: VecDeque<(u64, Write)>,
    /// The fsync in flight covers writes up to this seq.
    syncing_to: Option<u64>,
    /// The last seq written by the current incarnation (seqs restart with a new one).
    last_seq: u64,
    /// Scripted: fsyncs are not started while held.
    pub held: bool,
    /// A planted storage bug (see [`StorageBug`]).
    pub bug: Option<StorageBug>,
}

impl Disk {
    pub fn new() -> Disk {
        Disk::default()
    }

    /// A disk with a planted storage bug (or none).
    pub fn with_bug(bug: Option<StorageBug>) -> Disk {
        Disk { bug, ..Disk::default() }
    }

    /// The empty disk that replaces a lost one, holding only the disk-loss marker (what an
    /// operator's "rejoin" leaves: the replica restarts rebuilding).
    pub fn wiped(bug: Option<StorageBug>) -> Disk {
        let durable = DiskState { rebuilding: true, ..DiskState::default() };
        Disk { durable, bug, ..Disk::default() }
    }

    pub fn durable(&self) -> &DiskState {
        &self.durable
    }

    pub fn unsynced(&self) -> usize {
        self.unsynced.len()
    }

    /// Queues a write. Seqs of one incarnation must strictly increase.
    pub fn write(&mut self, seq: u64, write: Write) {
        assert!(seq > self.last_seq, "persist seq {seq} after {}", self.last_seq);
        self.last_seq = seq;
        self.unsynced.push_back((seq, write));
    }

    /// Starts an fsync if none is in flight and something is queued; returns its last seq.
    pub fn begin_sync(&mut self) -> Option<u64> {
        if self.held || self.syncing_to.is_some() {
            return None;
        }
        let last = self.unsynced.back()?.0;
        self.syncing_to = Some(last);
        Some(last)
    }

    /// Completes the fsync in flight: its writes become durable. Returns the highest seq
    /// made durable and the writes, in order.
    pub fn complete_sync(&mut self) -> Option<(u64, Vec<Write>)> {
        let to = self.syncing_to.take()?;
        let mut done = Vec::new();
        while self.unsynced.front().is_some_and(|(seq, _)| *seq <= to) {
            let (_, write) = self.unsynced.pop_front().expect("front exists");
            self.durable.apply(&write);
            done.push(write);
        }
        Some((to, done))
    }

    /// A crash: the first `keep` unsynced writes reach the disk, the rest are lost, and an
    /// fsync in flight never completes. Returns the writes that survived (they are durable now).
    /// With [`StorageBug::KeepTornWrite`] planted, the first lost write survives torn.
    pub fn crash(&mut self, keep: usize) -> Vec<Write> {
        let mut survived = Vec::new();
        let torn = match self.unsynced.get(keep) {
            Some((_, Write::Accept(e))) if self.bug == Some(StorageBug::KeepTornWrite) => {
                let value = match &e.value {
                    Value::Batch(requests) if requests.len() > 1 => {
                        Value::Batch(requests[..requests.len() / 2].to_vec())
                    }
                    Value::Batch(_) => Value::Noop,
                    other => other.clone(),
                };
                Some(Write::Accept(LogEntry { value, ..e.clone() }))
            }
            _ => None,
        };
        for write in self.unsynced.drain(..).take(keep).map(|(_, w)| w).chain(torn) {
            self.durable.apply(&write);
            survived.push(write);
        }
        self.unsynced.clear();
        self.syncing_to = None;
        self.last_seq = 0;
        survived
    }

    /// Marks the durable record of `slot` corrupt (its checksum fails at the next start).
    pub fn corrupt(&mut self, slot: Slot) -> bool {
        match self.durable.log.get(&slot) {
            Some(entry) => {
                self.durable.corrupt.insert(slot, entry.ballot);
                true
            }
            None => false,
        }
    }

    /// Recovery at a restart: what the replica finds. With
    /// [`StorageBug::TruncateAtCorruption`] planted, the log is first cut at its lowest corrupt
    /// record (that record and all later ones are gone, and nothing is reported corrupt).
    pub fn recover(&mut self) -> Recovered {
        if self.bug == Some(StorageBug::TruncateAtCorruption) {
            if let Some(first) = self.durable.corrupt.keys().next().copied() {
                self.durable.log.split_off(&first);
                self.durable.corrupt.clear();
            }
        }
        self.recovered()
    }

    /// What a replica would find at start (without the effect of a planted bug).
    pub fn recovered(&self) -> Recovered {
        let log = self
            .durable
            .log
            .values()
            .filter(|e| !self.durable.corrupt.contains_key(&e.slot))
            .cloned()
            .collect();
        Recovered {
            promised: self.durable.promised,
            membership: None,
            checkpoint: Slot::ZERO,
            commit: self.durable.commit,
            log,
            corrupt: self.durable.corrupt.iter().map(|(s, b)| (*s, *b)).collect(),
            rebuilding: self.durable.rebuilding,
        }
    }

    /// Reads log entries `from..=to` as written (the page cache: durable plus unsynced).
    pub fn read_log(&self, from: Slot, to: Slot) -> Vec<LogEntry> {
        let mut view: BTreeMap<Slot, LogEntry> =
            self.durable.log.range(from..=to).map(|(s, e)| (*s, e.clone())).collect();
        for (_, write) in &self.unsynced {
            match write {
                Write::Accept(e) if e.slot >= from && e.slot <= to => {
                    view.insert(e.slot, e.clone());
                }
                Write::TruncateSuffix { from: f } => {
                    view.split_off(f);
                }
                Write::TruncatePrefix { before } => view = view.split_off(before),
                _ => {}
            }
        }
        view.into_values().collect()
    }
}

#[cfg(test)]
mod tests {
    use rsl_core::ReplicaId;

    use super::*;

    fn accept(slot: u64, round: u64) -> Write {
        Write::Accept(LogEntry {
            slot: Slot(slot),
            ballot: Ballot::new(round, ReplicaId(1)),
            value: Value::Noop,
        })
    }

    #[test]
    fn only_synced_writes_survive_a_machine_crash() {
        let mut disk = Disk::new();
        disk.write(1, Write::Promise(Ballot::new(1, ReplicaId(1))));
        disk.write(2, accept(1, 1));
        assert_eq!(disk.begin_sync(), Some(2));
        disk.write(3, accept(2, 1));
        assert_eq!(disk.begin_sync(), None, "one fsync at a time");
        let (seq, done) = disk.complete_sync().unwrap();
        assert_eq!((seq, done.len()), (2, 2));
        disk.write(4, Write::Commit(Slot(2)));
        disk.crash(0);
        let r = disk.recovered();
        assert_eq!(r.promised, Ballot::new(1, ReplicaId(1)));
        assert_eq!(r.log.len(), 1);
        assert_eq!(r.commit, Slot::ZERO);
        // A new incarnation starts its seqs again.
        disk.write(1, accept(3, 2));
    }

    #[test]
    fn crash_keeps_a_prefix_in_order_and_truncation_applies() {
        let mut disk = Disk::new();
        for s in 1..=4 {
            disk.write(s, accept(s, 1));
        }
        disk.write(5, Write::TruncateSuffix { from: Slot(3) });
        disk.write(6, accept(3, 2));
        assert_eq!(disk.read_log(Slot(1), Slot(9)).len(), 3);
        disk.crash(3);
        let r = disk.recovered();
        assert_eq!(r.log.iter().map(|e| e.slot.0).collect::<Vec<_>>(), vec![1, 2, 3]);
        assert_eq!(r.log[2].ballot.round, 1);
    }

    #[test]
    fn later_record_for_a_slot_wins_and_corruption_is_reported() {
        let mut disk = Disk::new();
        disk.write(1, accept(1, 1));
        disk.write(2, accept(1, 3));
        disk.begin_sync();
        disk.complete_sync();
        assert!(disk.corrupt(Slot(1)));
        assert!(!disk.corrupt(Slot(2)));
        let r = disk.recovered();
        assert!(r.log.is_empty());
        assert_eq!(r.corrupt, vec![(Slot(1), Ballot::new(3, ReplicaId(1)))]);
    }

    #[test]
    fn the_truncating_recovery_drops_the_corrupt_record_and_everything_after_it() {
        let mut disk = Disk::new();
        for s in 1..=4 {
            disk.write(s, accept(s, 1));
        }
        disk.begin_sync();
        disk.complete_sync();
        disk.corrupt(Slot(2));
        let mut correct = Disk { durable: disk.durable.clone(), ..Disk::new() };
        let r = correct.recover();
        assert_eq!(r.log.iter().map(|e| e.slot.0).collect::<Vec<_>>(), vec![1, 3, 4]);
        assert_eq!(r.corrupt.len(), 1);
        disk.bug = Some(StorageBug::TruncateAtCorruption);
        let r = disk.recover();
        assert_eq!(r.log.iter().map(|e| e.slot.0).collect::<Vec<_>>(), vec![1]);
        assert!(r.corrupt.is_empty());
        assert!(disk.durable().corrupt.is_empty(), "the cut is on the disk too");
        assert_eq!(StorageBug::parse("acKbeforesync"), Some(StorageBug::AckBeforeSync));
    }

    #[test]
    fn a_torn_write_survives_a_crash_only_with_the_bug() {
        let request = |seq| rsl_core::Request {
            id: rsl_core::RequestId { proposer: ReplicaId(1), incarnation: 1, seq },
            payload: bytes::Bytes::from_static(b"x"),
        };
        let batch = |slot| {
            Write::Accept(LogEntry {
                slot: Slot(slot),
                ballot: Ballot::new(1, ReplicaId(1)),
                value: Value::Batch(vec![request(1), request(2)]),
            })
        };
        for bug in [None, Some(StorageBug::KeepTornWrite)] {
            let mut disk = Disk::with_bug(bug);
            disk.write(1, batch(1));
            disk.write(2, batch(2));
            disk.write(3, batch(3));
            let survived = disk.crash(1);
            let r = disk.recovered();
            if bug.is_none() {
                assert_eq!((survived.len(), r.log.len()), (1, 1));
            } else {
                assert_eq!((survived.len(), r.log.len()), (2, 2));
                assert_eq!(r.log[1].value, Value::Batch(vec![request(1)]), "torn in half");
            }
        }
    }

    #[test]
    #[should_panic(expected = "persist seq")]
    fn seqs_must_increase() {
        let mut disk = Disk::new();
        disk.write(2, accept(1, 1));
        disk.write(2, accept(2, 1));
    }
}
