//! Prometheus metrics: lock-free histograms and the text exposition format (served by
//! `metrics_http`). Data and rendering only: it imports none of the thread modules.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::status::{Role, Status};

/// Upper bounds of the latency buckets, in microseconds (the last bucket is +Inf).
pub const LATENCY_BUCKETS_MICROS: [u64; 16] = [
    50, 100, 200, 300, 500, 750, 1_000, 1_500, 2_000, 3_000, 5_000, 10_000, 20_000, 50_000,
    100_000, 1_000_000,
];

/// A latency histogram updated with relaxed atomics from any thread.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; LATENCY_BUCKETS_MICROS.len() + 1],
    sum_micros: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    pub fn record_micros(&self, micros: u64) {
        let i = LATENCY_BUCKETS_MICROS.iter().position(|&b| micros <= b);
        let i = i.unwrap_or(LATENCY_BUCKETS_MICROS.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Appends the histogram in seconds, as Prometheus expects.
    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (i, bound) in LATENCY_BUCKETS_MICROS.iter().enumerate() {
            cumulative += self.buckets[i].load(Ordering::Relaxed);
            let le = *bound as f64 / 1e6;
            let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {cumulative}");
        }
        cumulative += self.buckets[LATENCY_BUCKETS_MICROS.len()].load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {cumulative}");
    }
}

fn metric(out: &mut String, name: &str, kind: &str, help: &str, value: u64) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
}

/// Renders a replica's metrics in the Prometheus text format, from its status, its
/// histograms and `extra` text (the transport's counters).
pub(crate) fn render(s: &Status, h: &Histograms, extra: Option<&str>) -> String {
    let c = &s.counters;
    let mut out = String::new();
    let role = match s.role {
        Role::Primary => 2,
        Role::Candidate => 1,
        _ => 0,
    };
    metric(&mut out, "rsl_role", "gauge", "0 follower/learner, 1 candidate, 2 primary", role);
    metric(
        &mut out,
        "rsl_ballot_round",
        "gauge",
        "Round of the ballot this replica follows",
        s.ballot_round,
    );
    metric(&mut out, "rsl_committed_slot", "gauge", "Highest slot known chosen", s.committed);
    metric(&mut out, "rsl_executed_slot", "gauge", "Highest slot executed", s.executed);
    metric(&mut out, "rsl_proposals_total", "counter", "Requests proposed here", c.proposals);
    metric(
        &mut out,
        "rsl_slots_committed_total",
        "counter",
        "Slots executed here",
        c.slots_committed,
    );
    metric(
        &mut out,
        "rsl_overloaded_total",
        "counter",
        "Requests refused as overloaded",
        c.overloaded,
    );
    metric(
        &mut out,
        "rsl_bytes_sent_total",
        "counter",
        "Message bytes sent to peers",
        c.bytes_sent,
    );
    metric(
        &mut out,
        "rsl_bytes_received_total",
        "counter",
        "Message bytes received",
        c.bytes_received,
    );
    metric(
        &mut out,
        "rsl_rejected_messages_total",
        "counter",
        "Messages or frames rejected",
        c.rejected_messages,
    );
    metric(&mut out, "rsl_syncs_total", "counter", "Group commits (one sync each)", c.syncs);
    let _ = writeln!(out, "# HELP rsl_peer_connected 1 if the transport is connected to the peer\n# TYPE rsl_peer_connected gauge");
    for p in &s.peers {
        let up = u64::from(p.connected.unwrap_or(false));
        let _ = writeln!(out, "rsl_peer_connected{{peer=\"{}\"}} {up}", p.id);
    }
    let _ = writeln!(out, "# HELP rsl_peer_lag_slots Slots the peer is behind this replica's commit point\n# TYPE rsl_peer_lag_slots gauge");
    for p in &s.peers {
        let _ = writeln!(out, "rsl_peer_lag_slots{{peer=\"{}\"}} {}", p.id, p.lag_slots);
    }
    if let Some(extra) = extra {
        out.push_str(extra);
    }
    h.commit.render(
        &mut out,
        "rsl_commit_latency_seconds",
        "Proposal to execution on the proposer",
    );
    h.sync.render(&mut out, "rsl_sync_latency_seconds", "One group commit: writes plus fdatasync");
    out
}

/// The histograms a node keeps.
#[derive(Debug, Default)]
pub struct Histograms {
    pub commit: Histogram,
    pub sync: Histogram,
}
