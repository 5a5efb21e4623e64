//! rsl: a multi-Paxos replicated state machine library.
//!
//! The application implements [`StateMachine`] (and [`Snapshot`] for its checkpoints); the
//! engine calls it to execute chosen requests in slot order on every replica, to take and
//! load checkpoints, and to serve local reads. The application calls a [`Node`]:
//! [`Node::replicate`] a request (batched, or alone in its slot), [`Node::read`] at a chosen
//! [`ReadConsistency`], [`Node::watch`] role and health, transfer primacy, shut down. Every
//! call ends: with the state machine's response, or with a [`ReplicateError`] that says
//! whether the request may have executed (each call has a deadline,
//! `consensus.call_timeout_ms`). A state machine that shares its state with the application
//! (behind a lock it takes to execute) lets the application serve reads on its own threads:
//! [`Node::read_here`] says when the state already holds what a read must see. Another
//! replica serves linearizable reads by read index: it asks the primary for
//! [`Node::read_index`] (and what [`Node::chosen`] says, which it learns with
//! [`Node::learn_chosen`] rather than wait for the primary's next message), then reads at
//! [`ReadConsistency::AtLeast`] that index.
//!
//! A replica in production is started with [`Node::start`] from a [`NodeConfig`] (storage in
//! a data directory, TCP with mutual TLS between replicas, a Prometheus endpoint); a whole
//! cluster in one process, for tests, with [`LocalCluster`]:
//!
//! ```
//! use std::io;
//! use std::time::Duration;
//!
//! use bytes::Bytes;
//! use rsl::{LocalCluster, LocalOptions, ReadConsistency, ReplicateError, Snapshot, StateMachine};
//!
//! /// The replicated state: a counter that each request adds one to.
//! #[derive(Default)]
//! struct Counter(u64);
//!
//! /// A checkpoint of it (a copy: the state is eight bytes).
//! struct Saved(u64);
//!
//! impl Snapshot for Saved {
//!     fn write_to(&self, out: &mut dyn io::Write) -> io::Result<()> {
//!         out.write_all(&self.0.to_le_bytes())
//!     }
//! }
//!
//! impl StateMachine for Counter {
//!     fn execute(&mut self, _slot: u64, _request: &[u8]) -> Bytes {
//!         self.0 += 1;
//!         Bytes::from(self.0.to_string())
//!     }
//!     fn read(&self, _request: &[u8]) -> Bytes {
//!         Bytes::from(self.0.to_string())
//!     }
//!     fn snapshot(&self) -> Box<dyn Snapshot> {
//!         Box::new(Saved(self.0))
//!     }
//!     fn load_checkpoint(&mut self, input: &mut dyn io::Read) -> io::Result<()> {
//!         let mut bytes = [0; 8];
//!         input.read_exact(&mut bytes)?;
//!         self.0 = u64::from_le_bytes(bytes);
//!         Ok(())
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let cluster = LocalCluster::start(LocalOptions::default(), |_| Counter::default());
//! let primary = cluster.wait_for_primary(Duration::from_secs(10)).await.expect("elected");
//! assert_eq!(primary.replicate(Bytes::from_static(b"+1")).await, Ok(Bytes::from("1")));
//!
//! // A follower refuses writes and names the primary.
//! let follower = cluster.nodes.iter().find(|n| n.id() != primary.id()).unwrap();
//! let refused = follower.replicate(Bytes::from_static(b"+1")).await;
//! assert!(matches!(refused, Err(ReplicateError::NotPrimary { primary: Some(_), .. })));
//!
//! // Any replica serves a read once it has executed the slot the caller saw.
//! let slot = primary.status().executed;
//! let read = follower.read(Bytes::new(), ReadConsistency::AtLeast(slot)).await;
//! assert_eq!(read, Ok(Bytes::from("1")));
//! # }
//! ```
//!
//! The public surface is what this root re-exports, plus the configuration schema in
//! [`config`]; everything else is private to the runtime.

#![warn(missing_docs)]

mod channels;
mod checkpoint;
pub mod config;
mod consensus;
mod data_dir;
mod deadline;
mod envelope;
mod error;
mod executor;
mod hub;
mod io_thread;
mod local;
mod members;
mod membership;
mod metrics;
mod metrics_http;
mod net;
mod node;
mod peer_call;
mod shared;
mod shipping;
mod start;
mod state_machine;
mod status;

pub use config::{ConfigError, Member, NodeConfig, REQUEST_BYTES_MAX_DEFAULT};
pub use error::{MembershipError, ReplicateError, StartError};
pub use hub::LocalHub;
pub use local::{LocalCluster, LocalOptions};
pub use members::{ClusterMember, MembershipChange};
pub use net::CLUSTER_NAME;
pub use node::{Node, ReadConsistency, ReplicateOptions};
pub use peer_call::{
    PeerCallError, PeerResponder, PEER_CALLS_SERVING_MAX, PEER_CALLS_WAITING_MAX,
    PEER_CALL_BYTES_MAX,
};
pub use rsl_store::StoreError;
pub use state_machine::{Notification, Snapshot, StateMachine};
pub use status::{Chosen, CounterValues, Health, PeerHealth, Role, Status, StopCause, View};
