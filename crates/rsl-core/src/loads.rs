//! The state of catch-up reads of the log (`Action::LoadLog`): which requester each read
//! answers, and the slot reads failed to give back (learner.rs serves catch-up; docs/protocol.md,
//! "Catch-up").

use std::collections::BTreeMap;

use crate::types::{ReplicaId, Slot};

/// Catch-up answers that wait for `LoadLog` (older requests are forgotten; the requester
/// retries on its next tick).
pub(crate) const LOADS_PENDING_MAX: usize = 64;

/// Reads of the log in a row that fail to give back the same slot before this replica
/// serves it from a checkpoint instead (one failed read may be a passing fault).
pub(crate) const UNREADABLE_BEFORE_CHECKPOINT: u32 = 2;

/// Reads of the log waiting to answer catch-up requests, and the slot they failed to read.
#[derive(Debug, Clone, Default)]
pub(crate) struct Loads {
    /// Each read's token: the requester and the first slot it asked for.
    pub(crate) pending: BTreeMap<u64, (ReplicaId, Slot)>,
    /// The first slot asked for that the last reads failed to give back, and how many
    /// failed in a row.
    pub(crate) unreadable: Option<(Slot, u32)>,
    /// The tick this replica last asked for a checkpoint to replace a slot its log lost.
    pub(crate) repair_asked: Option<u64>,
}
