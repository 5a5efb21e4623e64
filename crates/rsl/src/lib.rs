//! rsl: a multi-Paxos replicated state machine library.
//!
//! The application implements [`StateMachine`]; the engine calls it to execute committed
//! requests in slot order, to take and load checkpoints, and to serve local reads. The
//! application calls a [`Node`]: `replicate` a request (batched, or alone in its slot),
//! `read` at a chosen consistency, watch `status`, transfer primacy, shut down.
//!
//! ```no_run
//! # use rsl::{LocalCluster, LocalOptions, StateMachine, Snapshot};
//! # use bytes::Bytes;
//! # struct Counter(u64);
//! # struct Snap(u64);
//! # impl Snapshot for Snap { fn write_to(&self, out: &mut dyn std::io::Write) -> std::io::Result<()> { out.write_all(&self.0.to_le_bytes()) } }
//! # impl StateMachine for Counter {
//! #   fn execute(&mut self, _slot: u64, _r: &[u8]) -> Bytes { self.0 += 1; Bytes::from(self.0.to_string()) }
//! #   fn read(&self, _r: &[u8]) -> Bytes { Bytes::from(self.0.to_string()) }
//! #   fn snapshot(&self) -> Box<dyn Snapshot> { Box::new(Snap(self.0)) }
//! #   fn load_checkpoint(&mut self, i: &mut dyn std::io::Read) -> std::io::Result<()> { let mut b = [0; 8]; i.read_exact(&mut b)?; self.0 = u64::from_le_bytes(b); Ok(()) }
//! # }
//! # async fn demo() {
//! let cluster = LocalCluster::start(LocalOptions::default(), |_| Counter(0));
//! let response = cluster.nodes[0].replicate(Bytes::from_static(b"incr")).await;
//! # }
//! ```

mod channels;
mod checkpoint;
pub mod config;
mod consensus;
mod data_dir;
mod envelope;
pub mod error;
mod executor;
mod hub;
mod io_thread;
pub mod local;
pub mod metrics;
mod metrics_http;
mod net;
pub mod node;
mod shared;
mod shipping;
mod start;
pub mod state_machine;
pub mod status;

pub use config::NodeConfig;
pub use error::{ReplicateError, StartError};
pub use hub::LocalHub;
pub use local::{LocalCluster, LocalOptions};
pub use net::CLUSTER_NAME;
pub use node::{Node, ReadConsistency};
pub use rsl_store::StoreError;
pub use state_machine::{Notification, Snapshot, StateMachine};
pub use status::{Role, Status, View};
