//! The simulator's events: everything that happens at a simulated instant sits in one
//! priority queue ordered by (time, ticks first, sequence number), so a seed fully
//! determines the order.

use rsl_core::{Input, LogEntry, Message, ReadMode, Slot};

use crate::driver::Reply;
use crate::kv::Op;

/// Something waiting to be handed to a replica.
#[derive(Debug, Clone, Hash)]
pub(crate) enum Pending {
    Input(Input),
    Propose {
        ticket: u64,
        op: Op,
        exclusive: bool,
        /// The payload's size in bytes: the operation, padded (at least its 10 bytes).
        size: usize,
    },
    Read {
        ticket: u64,
        key: u8,
        mode: ReadMode,
    },
    /// The end of the replica's turn: the proposals it took at this instant go into slots
    /// together (`Driver::end_turn`, as the runtime's consensus thread ends each turn).
    EndOfTurn,
    /// A peer's checkpoint arrived: keep it, and install it if it is ahead.
    Install {
        slot: Slot,
        /// The checkpoint's header (the membership after `slot`).
        header: Vec<u8>,
        data: Vec<u8>,
    },
}

#[derive(Debug)]
pub(crate) enum Event {
    World,
    Tick {
        node: usize,
        incarnation: u64,
    },
    Deliver {
        msg: Message,
    },
    SyncDone {
        node: usize,
        incarnation: u64,
    },
    /// Power loss while an fsync is in flight (`Options::crash_in_sync_permille`).
    CrashInSync {
        node: usize,
        incarnation: u64,
    },
    /// A sync's report reaches the core (`Input::Durable`), a moment after the sync, as the
    /// runtime's I/O thread hands it to the consensus thread. Dropped if the replica
    /// restarted meanwhile (its new incarnation issued none of those writes).
    Durable {
        node: usize,
        incarnation: u64,
        seq: u64,
    },
    /// The planted `AckBeforeSync`: a write reported durable before its fsync.
    EarlyDurable {
        node: usize,
        incarnation: u64,
        seq: u64,
    },
    LogLoaded {
        node: usize,
        incarnation: u64,
        token: u64,
        entries: Vec<LogEntry>,
    },
    Arrive {
        node: usize,
        pending: Pending,
    },
    /// The events of the instant at which a replica took its first proposal of a turn were
    /// handled (scheduled at that instant, so after every event already due then): the
    /// replica's turn ends.
    EndOfTurn {
        node: usize,
    },
    ClientReply {
        ticket: u64,
        reply: Reply,
    },
    ClientWake {
        client: usize,
    },
    ClientRetry {
        client: usize,
        op_no: u64,
    },
    ClientTimeout {
        client: usize,
        op_no: u64,
    },
    Resume {
        node: usize,
        pause: u64,
    },
    Unstall {
        node: usize,
    },
    /// A checkpoint taken earlier is written to the store.
    CheckpointWritten {
        node: usize,
        incarnation: u64,
        slot: Slot,
        header: Vec<u8>,
        data: Vec<u8>,
    },
    /// A crashed replica restarts (if it is still down).
    Restart {
        node: usize,
    },
    /// The second half of a chained failure: the primary crashes if still at that ballot.
    CrashIfPrimary {
        node: usize,
        incarnation: u64,
        ballot: rsl_core::Ballot,
    },
    /// The state machine installed a checkpoint: the core is told.
    Installed {
        node: usize,
        incarnation: u64,
        slot: Slot,
        membership: Option<rsl_core::Membership>,
    },
    /// A streamed checkpoint reaches its receiver.
    CheckpointArrives {
        from: usize,
        to: usize,
        slot: Slot,
        header: Vec<u8>,
        data: Vec<u8>,
    },
}

#[derive(Debug)]
pub(crate) struct Scheduled {
    pub(crate) time: u64,
    pub(crate) seq: u64,
    pub(crate) event: Event,
}

impl Scheduled {
    /// The order of events due at one instant: a replica's tick before anything else, as
    /// the runtime's consensus thread ages its clock before it handles the events that
    /// arrived (`catch_up_ticks`: time first). Handled ahead of its tick, an input would
    /// meet a replica one tick behind the clock: a primary resumed from a pause at the
    /// instant of its tick served a lease read at the instant its lease ended (seed
    /// 70083309 with --reconfig, before this order).
    fn key(&self) -> (u64, bool, u64) {
        (self.time, !matches!(self.event, Event::Tick { .. }), self.seq)
    }
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key().cmp(&other.key())
    }
}

#[cfg(test)]
mod tests {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;

    use super::{Event, Scheduled};

    /// At one instant a replica's tick comes before anything else, whatever was scheduled
    /// first: the end of a pause scheduled when the pause began, a delivery scheduled when
    /// its message was sent. In the order of scheduling alone (the order before seed
    /// 70083309), the resume would pop first and the paused primary would handle its queued
    /// inputs one tick behind the clock.
    #[test]
    fn a_tick_comes_first_at_its_instant() {
        let mut queue = BinaryHeap::new();
        let at = |time, seq, event| Reverse(Scheduled { time, seq, event });
        queue.push(at(5_000, 1, Event::Resume { node: 0, pause: 1 }));
        queue.push(at(5_000, 2, Event::ClientWake { client: 0 }));
        queue.push(at(4_999, 3, Event::ClientWake { client: 1 }));
        queue.push(at(5_000, 4, Event::Tick { node: 0, incarnation: 1 }));
        queue.push(at(5_001, 5, Event::Tick { node: 1, incarnation: 1 }));
        let order: Vec<u64> = std::iter::from_fn(|| queue.pop().map(|Reverse(s)| s.seq)).collect();
        assert_eq!(order, [3, 4, 1, 2, 5]);
    }
}
