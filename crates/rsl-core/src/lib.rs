//! The sans-I/O multi-Paxos core of rsl.
//!
//! A [`Replica`] is a plain struct: it takes an [`Input`] (a message, a tick, "writes up to
//! here are durable", a client proposal) and returns [`Action`]s (send, persist, execute,
//! refuse, notify). It contains no clock, socket, file, thread, async runtime or source of
//! randomness, so the same code runs in production, in the deterministic simulator and under
//! property tests. See `docs/protocol.md` for the protocol and why it is safe.
//!
//! The driver loop, for a single-replica cluster whose "disk" is durable at once:
//!
//! ```
//! use rsl_core::{Action, Config, Input, Recovered, Replica, ReplicaId, RequestId};
//!
//! let mut replica = Replica::new(Config::new(1, [1]), Recovered::default());
//! let mut inputs = vec![Input::Tick; 100];
//! let id = RequestId { proposer: ReplicaId(1), incarnation: 1, seq: 1 };
//! let mut executed = Vec::new();
//! let mut proposed = false;
//! while let Some(input) = inputs.pop() {
//!     let mut actions = Vec::new();
//!     replica.step(input, &mut actions);
//!     for action in actions {
//!         match action {
//!             // A real driver writes and fsyncs, then reports; sends go to peers.
//!             Action::Persist { seq, .. } => inputs.push(Input::Durable { seq }),
//!             Action::Execute { slot, value } => executed.push((slot, value)),
//!             Action::Notify(rsl_core::Notification::BecamePrimary { .. }) if !proposed => {
//!                 proposed = true;
//!                 let payload = bytes::Bytes::from_static(b"set x 1");
//!                 inputs.push(Input::Propose { id, payload, exclusive: false });
//!             }
//!             _ => {}
//!         }
//!     }
//! }
//! // The phase-1 no-op, then the request.
//! assert_eq!(executed.len(), 2);
//! ```

#[macro_use]
mod contract;

mod acceptor;
#[cfg(feature = "planted-bugs")]
pub mod bugs;
pub mod config;
pub mod driver;
mod election;
mod invariants;
pub mod io;
mod learner;
pub mod limits;
mod loads;
pub mod message;
mod primary;
mod rebuild;
mod reconfig;
pub mod replica;
pub mod rng;
pub mod types;
mod waiting;

pub use config::{Config, ConfigError};
pub use driver::{Driver, Host};
pub use io::{
    Action, Input, MembershipOp, Notification, ReadId, ReadMode, ReconfigRefusal, Refusal, Write,
};
pub use message::{Body, DecodeError, Message};
pub use primary::LeaseRead;
pub use replica::{Counters, PeerStatus, Recovered, Replica, Role, Status};
pub use types::{
    Ballot, LogEntry, MemberInfo, Membership, ReplicaId, Request, RequestId, Slot, SlotValue,
    UnknownValue, Value,
};
