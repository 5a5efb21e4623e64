//! The simulator's side of the per-replica driver.
//!
//! The driver itself is [`rsl_core::driver::Driver`], the same code the production runtime
//! (`rsl`) runs on its consensus thread: it feeds inputs to the core, keeps the waiting
//! callers and checks the core's boundary contract. The simulator's callers are ticket
//! numbers; its [`Host`] buffers the effects of a step and applies them to the simulated
//! network, disk and [`Machine`] right after it (see `sim.rs`).

use bytes::Bytes;
use rsl_core::{Refusal, Request, Slot};

pub use rsl_core::driver::{Driver, Host};

/// The application's state machine, as the simulator runs it.
pub trait Machine {
    /// Applies one committed request and returns the response for its proposer.
    fn execute(&mut self, slot: Slot, request: &Request) -> Bytes;
    /// Serves a read-only query against the local state.
    fn read(&self, query: &[u8]) -> Bytes;
}

/// The answer to one proposal or read.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Reply {
    /// Executed in `slot` (a write), or served after `slot` was executed (a read).
    Done { slot: Slot, response: Bytes },
    /// Refused; the request was definitely not executed.
    Refused(Refusal),
}
