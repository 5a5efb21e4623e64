//! The TCP side of a replica started with `Node::start`: a small tokio runtime of its own,
//! the transport (`rsl_net::TcpTransport`, mutual TLS when configured), the task that feeds
//! peer payloads to the consensus thread, and the metrics endpoint. The runtime is shut down
//! in the background, never dropped in place, so that starting and stopping a replica works
//! from inside the caller's own async runtime.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use rsl_net::{Security, TcpTransport, TlsIdentity, TransportConfig};

use crate::config::NodeConfig;
use crate::error::StartError;
use crate::metrics::ReadAtScrape;
use crate::peer_call::{Inbox, PeerCalls};
use crate::shared::Shared;

/// The name every replica of a cluster carries in its transport hello.
pub const CLUSTER_NAME: &str = "rsl";

/// A replica's network runtime: one worker thread for the transport and the metrics
/// endpoint. Dropping it shuts it down in the background (dropping a tokio runtime in place
/// panics inside an async context).
pub(crate) struct NetRuntime {
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for NetRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl NetRuntime {
    pub(crate) fn new(id: u32) -> Result<NetRuntime, StartError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(format!("rsl-net-{id}"))
            .enable_all()
            .build()
            .map_err(StartError::Threads)?;
        Ok(NetRuntime { runtime: Some(runtime) })
    }

    fn handle(&self) -> &tokio::runtime::Runtime {
        self.runtime.as_ref().expect("the runtime lives until drop")
    }

    /// Runs `future` to completion on this runtime from a thread of its own, so that it
    /// works whether or not the caller is itself inside an async runtime.
    pub(crate) fn block_on<F: std::future::Future + Send>(&self, future: F) -> F::Output
    where
        F::Output: Send,
    {
        let runtime = self.handle();
        std::thread::scope(|s| {
            s.spawn(|| runtime.block_on(future)).join().expect("block_on thread panicked")
        })
    }

    /// Binds the peer port and starts the transport; peer payloads go to `inbox`.
    pub(crate) fn start_transport(
        &self,
        config: &NodeConfig,
        inbox: Inbox,
    ) -> Result<TcpTransport, StartError> {
        let (transport, mut incoming) =
            self.block_on(TcpTransport::start(transport_config(config)?))?;
        self.handle().spawn(async move {
            while let Some(m) = incoming.recv().await {
                // A full channel drops the message: Paxos retransmits what matters.
                inbox.deliver(m.from, m.payload);
            }
        });
        Ok(transport)
    }

    /// Ends the peer calls waiting on a member as soon as the connection to it breaks,
    /// rather than at their deadlines.
    pub(crate) fn watch_disconnects(&self, transport: &TcpTransport, calls: &Arc<PeerCalls>) {
        for peer in transport.stats().peers.iter().map(|p| p.id) {
            let (transport, calls) = (transport.clone(), Arc::clone(calls));
            self.handle().spawn(async move {
                loop {
                    transport.wait_connected(peer, true).await;
                    transport.wait_connected(peer, false).await;
                    calls.peer_lost(peer);
                }
            });
        }
    }

    /// Adds the transport's rejected frames and handshakes (an unauthenticated, malformed or
    /// oversized connection attempt) to the replica's `rejected_messages` counter, so that
    /// `rsl_rejected_messages_total` counts what its help text says: messages or frames
    /// rejected.
    pub(crate) fn count_rejections(&self, transport: TcpTransport, shared: Arc<Shared>) {
        self.handle().spawn(async move {
            let mut seen = 0;
            loop {
                transport.wait_rejections(seen + 1).await;
                let stats = transport.stats();
                let now = stats.rejected_frames + stats.rejected_handshakes;
                shared.metrics.counters.rejected_messages.inc_by(now - seen);
                seen = now;
            }
        });
    }

    /// Serves `GET /metrics` on `addr` until the replica stops.
    pub(crate) fn serve_metrics(
        &self,
        addr: SocketAddr,
        shared: Arc<Shared>,
    ) -> Result<(), StartError> {
        let listener = self
            .block_on(tokio::net::TcpListener::bind(addr))
            .map_err(|source| StartError::Metrics { addr, source })?;
        self.handle().spawn(crate::metrics_http::serve(shared, listener));
        Ok(())
    }
}

fn transport_config(config: &NodeConfig) -> Result<TransportConfig, StartError> {
    let peers: BTreeMap<u32, _> =
        config.members.iter().filter(|m| m.id != config.id).map(|m| (m.id, m.addr)).collect();
    let mut t = TransportConfig::new(CLUSTER_NAME, config.id, config.listen_addr(), peers);
    if let Some(tls) = &config.tls {
        let identity = TlsIdentity::from_pem_files(&tls.ca, &tls.cert, &tls.key)?;
        t.security = Security::MutualTls(identity);
    }
    Ok(t)
}

/// The transport's counters, read at each scrape (names without `_total`).
pub(crate) fn transport_counters(transport: TcpTransport) -> ReadAtScrape {
    ReadAtScrape(Box::new(move || {
        let s = transport.stats();
        vec![
            ("rsl_net_frames_sent", "Data frames written to peers", s.frames_sent),
            (
                "rsl_net_direct_writes",
                "Data frames written by the sending thread itself, the peer being idle",
                s.direct_writes,
            ),
            ("rsl_net_bytes_sent", "Wire bytes written to peers", s.bytes_sent),
            ("rsl_net_frames_received", "Data frames received from peers", s.frames_received),
            ("rsl_net_bytes_received", "Wire bytes received from peers", s.bytes_received),
            (
                "rsl_net_rejected_frames",
                "Frames that closed their connection (malformed, bad checksum, oversized, unauthenticated)",
                s.rejected_frames,
            ),
            (
                "rsl_net_rejected_handshakes",
                "Inbound connections refused before a valid hello (TLS or timeout)",
                s.rejected_handshakes,
            ),
            ("rsl_net_reconnects", "Connections re-established to a peer", s.reconnects),
            (
                "rsl_net_queue_full_drops",
                "Sends dropped because a peer's queue was full",
                s.queue_full_drops,
            ),
        ]
    }))
}
