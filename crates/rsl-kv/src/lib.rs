//! rsl-kv: a replicated key-value server on rsl, speaking the Redis protocol (RESP2 and RESP3).
//!
//! The crate's layers, each its own module:
//!
//! - [`resp`]: the request parser and the reply encoder (RESP2 and RESP3);
//! - [`request`]: the compact binary form of the requests the engine replicates (each carries
//!   a command's arguments);
//! - [`machine`]: [`KvMachine`], the deterministic state machine every replica runs
//!   (an [`rsl::StateMachine`]), over the keyspace in [`db`] (values in [`value`]), running the
//!   data commands of [`commands`] (the geo commands' geometry in [`geohash`]), checkpointed by
//!   [`checkpoint`];
//! - [`hub`]: where a replica's machine hands pub/sub messages and blocked-pop wake-ups to its
//!   server;
//! - [`server`]: the TCP server, generic over an [`Engine`] that executes requests, with
//!   [`LocalEngine`] as the unreplicated one;
//! - [`replicated`]: [`ReplicatedEngine`], the engine over an [`rsl::Node`], forwarding to
//!   the primary from any replica ([`forward`]: between members only, over their own
//!   authenticated transport);
//! - [`config`]: a replicated server's TOML configuration; [`launch`]: starting a cluster of
//!   `rsl-kv run` processes on loopback (the local cluster command and the tests);
//!   [`client`]: a small RESP client; [`tls`]: TLS on the client port (both ends).
//!
//! All limits live in [`limits`].
//!
//! The flow of one write: the server parses `SET k v`, stamps it with its clock and encodes a
//! [`request::Request`] that carries the command itself; the engine replicates the bytes and,
//! once committed, every replica's machine executes them and returns the reply, which the
//! proposer's server writes back:
//!
//! ```
//! use bytes::Bytes;
//! use rsl::StateMachine;
//! use rsl_kv::request::{Request, WriteOp};
//! use rsl_kv::resp::Proto;
//! use rsl_kv::KvMachine;
//!
//! let args = |words: &[&str]| words.iter().map(|w| Bytes::from(w.to_string())).collect();
//! let set = Request::command(1_000, Proto::Resp2, args(&["SET", "k", "v", "PX", "500"]));
//! let mut replica = KvMachine::new();
//! assert_eq!(&replica.execute(1, &set.encode())[..], b"+OK\r\n");
//! let get = Request::read(1_000, Proto::Resp2, args(&["GET", "k"]));
//! assert_eq!(&replica.read(&get.encode())[..], b"$1\r\nv\r\n");
//! // A later write stamped past the deadline expires the key, on every replica alike.
//! let tick = Request::Write { stamp_ms: 1_501, op: WriteOp::Tick };
//! replica.execute(2, &tick.encode());
//! assert_eq!(&replica.read(&get.encode())[..], b"$-1\r\n");
//! ```

pub mod admin;
pub mod checkpoint;
pub mod client;
pub mod commands;
pub mod config;
pub mod db;
pub mod engine;
pub mod forward;
pub mod geohash;
pub mod glob;
pub mod hub;
pub mod launch;
pub mod limits;
pub mod machine;
pub mod members;
pub mod replicated;
pub mod request;
pub mod request_v1;
pub mod resp;
pub mod server;
pub mod stream;
pub mod tls;
pub mod value;

pub use checkpoint::KvSnapshot;
pub use config::KvConfig;
pub use engine::{Engine, EngineError, EngineReply, EngineSender, LocalEngine, Submitted};
pub use hub::Hub;
pub use machine::{KvMachine, KvReader};
pub use replicated::{ReplicatedEngine, ReplicatedOptions};
pub use server::{serve, Clock, ServerConfig};
