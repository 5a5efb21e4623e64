//! The sans-I/O multi-Paxos core of rsl.
//!
//! A [`Replica`] is a plain struct: it takes an [`Input`] (a message, a tick, "writes up to
//! here are durable", a client proposal) and returns [`Action`]s (send, persist, execute,
//! refuse, notify). It contains no clock, socket, file, thread, async runtime or source of
//! randomness, so the same code runs in production, in the deterministic simulator and under
//! property tests. See `docs/protocol.md` for the protocol and why it is safe.

#[macro_use]
mod contract;

mod acceptor;
#[cfg(feature = "planted-bugs")]
pub mod bugs;
pub mod config;
mod election;
pub mod io;
mod learner;
pub mod message;
mod primary;
pub mod replica;
mod rng;
pub mod types;

pub use config::{Config, ConfigError};
pub use io::{Action, Event, Input, LogEntry, ReadId, ReadMode, Refusal, Write};
pub use message::{Body, DecodeError, Message};
pub use replica::{Counters, Recovered, Replica, Role, Status};
pub use types::{Ballot, Membership, ReplicaId, Request, RequestId, Slot, Value};
