//! rsl-kv: a replicated key-value server on rsl, speaking the Redis protocol (RESP2).
//!
//! The crate has four layers, each its own module:
//!
//! - [`resp`]: the RESP2 request parser and reply encoder;
//! - [`request`]: the compact binary form of the requests the engine replicates;
//! - [`machine`]: [`KvMachine`], the deterministic state machine every replica runs
//!   (an [`rsl::StateMachine`]);
//! - [`server`]: the TCP server, generic over an [`Engine`] that executes requests, with
//!   [`LocalEngine`] as the unreplicated one;
//! - [`replicated`]: [`ReplicatedEngine`], the engine over an [`rsl::Node`], forwarding to
//!   the primary from any replica;
//! - [`config`]: a replicated server's TOML configuration; [`launch`]: starting a cluster of
//!   `rsl-kv run` processes on loopback (the local cluster command and the tests);
//!   [`client`]: a small RESP client.
//!
//! All limits live in [`limits`].
//!
//! The flow of one write: the server parses `SET k v`, stamps it with its clock and encodes a
//! [`request::Request`]; the engine replicates the bytes and, once committed, every replica's
//! machine executes them and returns the RESP reply, which the proposer's server writes back:
//!
//! ```
//! use rsl::StateMachine;
//! use rsl_kv::request::{Request, SetCondition, SetExpiry, WriteOp};
//! use rsl_kv::KvMachine;
//!
//! let set = Request::Write {
//!     stamp_ms: 1_000,
//!     op: WriteOp::Set {
//!         key: "k".into(),
//!         value: "v".into(),
//!         condition: SetCondition::Always,
//!         expiry: SetExpiry::At(1_500),
//!         get: false,
//!     },
//! };
//! let mut replica = KvMachine::new();
//! assert_eq!(&replica.execute(1, &set.encode())[..], b"+OK\r\n");
//! let get = Request::Read(rsl_kv::request::ReadOp::Get { key: "k".into() });
//! assert_eq!(&replica.read(&get.encode())[..], b"$1\r\nv\r\n");
//! // A later write stamped past the deadline expires the key, on every replica alike.
//! let tick = Request::Write { stamp_ms: 1_501, op: WriteOp::Tick };
//! replica.execute(2, &tick.encode());
//! assert_eq!(&replica.read(&get.encode())[..], b"$-1\r\n");
//! ```

pub mod admin;
pub mod client;
pub mod config;
pub mod engine;
pub mod launch;
pub mod limits;
pub mod machine;
pub mod members;
pub mod replicated;
pub mod request;
pub mod resp;
pub mod server;

pub use config::KvConfig;
pub use engine::{Engine, EngineError, EngineReply, LocalEngine};
pub use machine::{KvMachine, KvSnapshot};
pub use replicated::{ReplicatedEngine, ReplicatedOptions};
pub use server::{serve, Clock, ServerConfig};
