//! The simulator's events: everything that happens at a simulated instant sits in one
//! priority queue ordered by (time, sequence number), so a seed fully determines the order.

use rsl_core::{Input, LogEntry, Message, ReadMode};

use crate::driver::Reply;
use crate::kv::Op;

/// Something waiting to be handed to a replica.
#[derive(Debug, Clone)]
pub(crate) enum Pending {
    Input(Input),
    Propose { ticket: u64, op: Op, exclusive: bool },
    Read { ticket: u64, key: u8, mode: ReadMode },
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
}

#[derive(Debug)]
pub(crate) struct Scheduled {
    pub(crate) time: u64,
    pub(crate) seq: u64,
    pub(crate) event: Event,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.time, self.seq) == (other.time, other.seq)
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
        (self.time, self.seq).cmp(&(other.time, other.seq))
    }
}
