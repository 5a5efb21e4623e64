//! rsl: a multi-Paxos replicated state machine library.
//!
//! The application implements [`StateMachine`]; the engine calls it to execute committed
//! requests in slot order, to take and load checkpoints, and to serve local reads.

pub mod state_machine;

pub use state_machine::{Notification, Snapshot, StateMachine};
