//! Messages between replicas and their binary encoding.
//!
//! TODO(core): define the message bodies (prepare, promise, accept, accepted, nack, heartbeat,
//! catch-up ...) and `encode`/`decode` (decode never panics on any input).

use crate::types::ReplicaId;

/// A message between two replicas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub from: ReplicaId,
    pub to: ReplicaId,
    pub body: Body,
}

/// What a message says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {}
