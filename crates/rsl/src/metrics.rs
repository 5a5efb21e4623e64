//! A replica's metrics, on `prometheus-client`: one registry per replica (several replicas may
//! share a process, in tests and in `LocalCluster`), the counters its threads increment, the
//! latency histograms, and gauges set from the status at each scrape. Encoded in the
//! Prometheus text format (served by `metrics_http`). Data only: it imports none of the
//! thread modules.

use std::sync::Mutex;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::status::{CounterValues, Health, Role, Status};

/// Upper bounds of the latency buckets, in seconds (the last bucket is +Inf).
pub(crate) const LATENCY_BUCKETS_SECONDS: [f64; 16] = [
    0.000_05, 0.000_1, 0.000_2, 0.000_3, 0.000_5, 0.000_75, 0.001, 0.001_5, 0.002, 0.003, 0.005,
    0.01, 0.02, 0.05, 0.1, 1.0,
];

/// The counters the runtime's threads increment (relaxed atomics on the hot path). Each is
/// registered in the replica's registry under the name in its comment (`_total` added).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// `rsl_proposals`.
    pub(crate) proposals: Counter,
    /// `rsl_slots_committed`.
    pub(crate) slots_committed: Counter,
    /// `rsl_requests_committed`.
    pub(crate) requests_committed: Counter,
    /// `rsl_overloaded`.
    pub(crate) overloaded: Counter,
    /// `rsl_timeouts`.
    pub(crate) timeouts: Counter,
    /// `rsl_bytes_sent`.
    pub(crate) bytes_sent: Counter,
    /// `rsl_bytes_received`.
    pub(crate) bytes_received: Counter,
    /// `rsl_rejected_messages`.
    pub(crate) rejected_messages: Counter,
    /// `rsl_syncs`.
    pub(crate) syncs: Counter,
    /// `rsl_sync_micros`.
    pub(crate) sync_micros_total: Counter,
    /// `rsl_disk_full`.
    pub(crate) disk_full: Counter,
    /// `rsl_lease_reads`.
    pub(crate) lease_reads: Counter,
    /// `rsl_index_reads`.
    pub(crate) index_reads: Counter,
}

impl Counters {
    pub(crate) fn snapshot(&self) -> CounterValues {
        CounterValues {
            proposals: self.proposals.get(),
            slots_committed: self.slots_committed.get(),
            requests_committed: self.requests_committed.get(),
            overloaded: self.overloaded.get(),
            timeouts: self.timeouts.get(),
            bytes_sent: self.bytes_sent.get(),
            bytes_received: self.bytes_received.get(),
            rejected_messages: self.rejected_messages.get(),
            syncs: self.syncs.get(),
            sync_micros_total: self.sync_micros_total.get(),
            disk_full: self.disk_full.get(),
            lease_reads: self.lease_reads.get(),
            index_reads: self.index_reads.get(),
        }
    }
}

/// A latency histogram in seconds, recorded from microseconds.
#[derive(Debug, Clone)]
pub(crate) struct Latency(Histogram);

impl Default for Latency {
    fn default() -> Self {
        Latency(Histogram::new(LATENCY_BUCKETS_SECONDS))
    }
}

impl Latency {
    pub(crate) fn record_micros(&self, micros: u64) {
        self.0.observe(micros as f64 / 1e6);
    }
}

/// Label of a per-peer gauge.
type PeerLabel = Vec<(&'static str, String)>;

/// Gauges set from the status at each scrape.
#[derive(Debug, Default)]
struct Gauges {
    role: Gauge,
    ballot_round: Gauge,
    committed: Gauge,
    executed: Gauge,
    checkpoint: Gauge,
    log_first: Gauge,
    disk_full: Gauge,
    stopped: Gauge,
    peer_connected: Family<PeerLabel, Gauge>,
    peer_lag: Family<PeerLabel, Gauge>,
}

/// One replica's metrics: its own registry and everything registered in it.
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Mutex<Registry>,
    pub(crate) counters: Counters,
    /// Proposal to execution on the proposer.
    pub(crate) commit: Latency,
    /// One group commit: writes plus sync.
    pub(crate) sync: Latency,
    gauges: Gauges,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub(crate) fn new() -> Metrics {
        let counters = Counters::default();
        let gauges = Gauges::default();
        let (commit, sync) = (Latency::default(), Latency::default());
        let mut r = Registry::default();
        let c = &counters;
        r.register("rsl_proposals", "Requests proposed here", c.proposals.clone());
        r.register("rsl_slots_committed", "Slots executed here", c.slots_committed.clone());
        let requests = c.requests_committed.clone();
        r.register("rsl_requests_committed", "Requests executed here (in slots)", requests);
        r.register("rsl_overloaded", "Calls refused as overloaded", c.overloaded.clone());
        r.register("rsl_timeouts", "Calls that ended at their deadline", c.timeouts.clone());
        r.register("rsl_bytes_sent", "Message bytes sent to peers", c.bytes_sent.clone());
        r.register("rsl_bytes_received", "Message bytes received", c.bytes_received.clone());
        let rejected = c.rejected_messages.clone();
        r.register("rsl_rejected_messages", "Messages or frames rejected", rejected);
        r.register("rsl_syncs", "Group commits (one sync each)", c.syncs.clone());
        let micros = c.sync_micros_total.clone();
        r.register("rsl_sync_micros", "Microseconds spent in group commits", micros);
        let full = c.disk_full.clone();
        r.register("rsl_disk_full", "Group commits that failed on a full disk", full);
        let lease = c.lease_reads.clone();
        r.register("rsl_lease_reads", "Linearizable reads served under the lease, directly", lease);
        let index = c.index_reads.clone();
        r.register(
            "rsl_index_reads",
            "Reads at an index (AtLeast) batched, served directly",
            index,
        );
        let g = &gauges;
        r.register("rsl_role", "0 follower/learner, 1 candidate, 2 primary", g.role.clone());
        let round = g.ballot_round.clone();
        r.register("rsl_ballot_round", "Round of the ballot this replica follows", round);
        r.register("rsl_committed_slot", "Highest slot known chosen", g.committed.clone());
        r.register("rsl_executed_slot", "Highest slot executed", g.executed.clone());
        let checkpoint = g.checkpoint.clone();
        r.register("rsl_checkpoint_slot", "Slot of the newest checkpoint here", checkpoint);
        r.register("rsl_log_first_slot", "First slot the log still holds", g.log_first.clone());
        let full = g.disk_full.clone();
        r.register("rsl_disk_full", "1 while writes are refused on a full disk", full);
        r.register("rsl_stopped", "1 once the replica has stopped", g.stopped.clone());
        let connected = g.peer_connected.clone();
        r.register("rsl_peer_connected", "1 if the transport is connected to the peer", connected);
        let lag = g.peer_lag.clone();
        r.register("rsl_peer_lag_slots", "Slots the peer is behind this commit point", lag);
        let help = "Proposal to execution on the proposer";
        r.register("rsl_commit_latency_seconds", help, commit.0.clone());
        let help = "One group commit: writes plus fdatasync";
        r.register("rsl_sync_latency_seconds", help, sync.0.clone());
        Metrics { registry: Mutex::new(r), counters, commit, sync, gauges }
    }

    /// Adds a collector read at each scrape (the transport's counters).
    pub(crate) fn register_collector(&self, collector: Box<dyn Collector>) {
        self.registry.lock().expect("registry lock").register_collector(collector);
    }

    /// Sets the gauges from `status` and encodes everything in the Prometheus text format.
    pub(crate) fn render(&self, status: &Status) -> String {
        self.set_gauges(status);
        let mut out = String::new();
        let registry = self.registry.lock().expect("registry lock");
        prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)
            .expect("encoding into a String cannot fail");
        out
    }

    fn set_gauges(&self, s: &Status) {
        let g = &self.gauges;
        let role = match s.role {
            Role::Primary => 2,
            Role::Candidate => 1,
            _ => 0,
        };
        g.role.set(role);
        g.ballot_round.set(s.ballot_round as i64);
        g.committed.set(s.committed as i64);
        g.executed.set(s.executed as i64);
        g.checkpoint.set(s.checkpoint as i64);
        g.log_first.set(s.log_first as i64);
        g.disk_full.set(i64::from(s.health == Health::DiskFull));
        g.stopped.set(i64::from(matches!(s.health, Health::Stopped(_))));
        // Members come and go: only the current peers are reported.
        g.peer_connected.clear();
        g.peer_lag.clear();
        for p in &s.peers {
            let label = vec![("peer", p.id.to_string())];
            g.peer_connected.get_or_create(&label).set(i64::from(p.connected.unwrap_or(false)));
            g.peer_lag.get_or_create(&label).set(p.lag_slots as i64);
        }
    }
}

/// Counters kept elsewhere (the transport's), read at each scrape: `(name, help, value)`,
/// the name without `_total`.
pub(crate) struct ReadAtScrape(
    pub(crate) Box<dyn Fn() -> Vec<(&'static str, &'static str, u64)> + Send + Sync>,
);

impl std::fmt::Debug for ReadAtScrape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReadAtScrape")
    }
}

impl Collector for ReadAtScrape {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for (name, help, value) in (self.0)() {
            let counter = ConstCounter::new(value);
            let metric = encoder.encode_descriptor(name, help, None, counter.metric_type())?;
            counter.encode(metric)?;
        }
        Ok(())
    }
}
