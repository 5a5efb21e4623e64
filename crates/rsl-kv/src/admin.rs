//! A replica's status fields, and what the admin subcommands read: every member's status
//! (from `RSL.STATUS ALL` on any member) and the table `rsl-kv status` and the local cluster
//! command print.
//!
//! One name per field, everywhere: `RSL.STATUS` and INFO's `# Rsl` section render the same
//! [`status_fields`], named like the Prometheus metric of the same quantity where there is one
//! (`rsl_executed_slot`, `rsl_proposals_total`); `rsl_role` is the role's word here and a
//! number in the metrics.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use rsl::Status;

use crate::client::{describe, Client, Reach};
use crate::resp::Reply;

/// How far behind the most advanced member a replica may be before it is reported lagging,
/// in executed slots.
pub const LAG_SLOTS_HEALTHY_MAX: u64 = 1_000;

/// A replica's status as `(name, value)` fields, in the order they are shown. `rsl_health` is
/// `ok`, `disk-full` or `stopped (cause)`, and `rsl_stop_reason` says why in words (`-` while
/// healthy).
pub fn status_fields(s: &Status, client_addr: SocketAddr) -> Vec<(&'static str, String)> {
    let c = &s.counters;
    let members: Vec<String> = s.members.iter().map(u32::to_string).collect();
    vec![
        ("rsl_replica_id", s.id.to_string()),
        ("rsl_health", s.health.to_string()),
        ("rsl_stop_reason", s.stop_reason.clone().unwrap_or_else(|| "-".to_string())),
        ("rsl_client_addr", client_addr.to_string()),
        ("rsl_role", s.role.to_string()),
        ("rsl_primary", s.primary.map_or("-".to_string(), |p| p.to_string())),
        ("rsl_ballot", format!("{}.{}", s.ballot_round, s.ballot_replica)),
        ("rsl_committed_slot", s.committed.to_string()),
        ("rsl_executed_slot", s.executed.to_string()),
        ("rsl_checkpoint_slot", s.checkpoint.to_string()),
        ("rsl_log_first_slot", s.log_first.to_string()),
        ("rsl_members", members.join(",")),
        ("rsl_rebuilding", u8::from(s.rebuilding).to_string()),
        ("rsl_proposals_total", c.proposals.to_string()),
        ("rsl_slots_committed_total", c.slots_committed.to_string()),
        ("rsl_requests_committed_total", c.requests_committed.to_string()),
        ("rsl_overloaded_total", c.overloaded.to_string()),
        ("rsl_rejected_messages_total", c.rejected_messages.to_string()),
        ("rsl_lease_reads_total", c.lease_reads.to_string()),
        ("rsl_index_reads_total", c.index_reads.to_string()),
    ]
}

/// Fields as `name:value` lines, each ending in CRLF.
pub fn render_fields<N: AsRef<str>>(fields: &[(N, String)]) -> String {
    fields.iter().map(|(name, value)| format!("{}:{value}\r\n", name.as_ref())).collect()
}

/// One member's status as it reported it (`field:value` lines), or as unreachable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusReport {
    /// The fields by name.
    pub fields: BTreeMap<String, String>,
}

impl StatusReport {
    /// Parses `field:value` lines.
    pub fn parse(text: &str) -> StatusReport {
        let fields = text
            .lines()
            .filter_map(|line| line.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        StatusReport { fields }
    }

    /// A field's text, or `-`.
    pub fn get(&self, field: &str) -> &str {
        self.fields.get(field).map_or("-", String::as_str)
    }

    /// A numeric field.
    pub fn number(&self, field: &str) -> Option<u64> {
        self.fields.get(field)?.parse().ok()
    }

    /// Whether the member answered and is healthy.
    pub fn healthy(&self) -> bool {
        self.get("rsl_health") == "ok"
    }
}

/// Asks the member at `addr` for every member's status.
pub async fn fetch_status(
    addr: SocketAddr,
    reach: Reach<'_>,
    timeout: Duration,
) -> io::Result<Vec<StatusReport>> {
    let mut client = Client::connect_tls_auth(addr, reach.tls, reach.password, timeout).await?;
    match client.cmd(&["RSL.STATUS", "ALL"]).await? {
        Reply::Array(items) => Ok(items
            .iter()
            .map(|item| match item {
                Reply::Bulk(text) => StatusReport::parse(&String::from_utf8_lossy(text)),
                other => StatusReport::parse(&format!("rsl_health:bad reply {}", describe(other))),
            })
            .collect()),
        other => Err(io::Error::other(format!("RSL.STATUS ALL answered {}", describe(&other)))),
    }
}

/// Sends one admin command to `addr` and returns the reply as text; an error reply is an
/// error.
pub async fn admin_command(
    addr: SocketAddr,
    reach: Reach<'_>,
    args: &[&str],
    timeout: Duration,
) -> io::Result<String> {
    let mut client = Client::connect_tls_auth(addr, reach.tls, reach.password, timeout).await?;
    match client.cmd(args).await? {
        Reply::Error(text) => Err(io::Error::other(String::from_utf8_lossy(&text).into_owned())),
        other => Ok(describe(&other)),
    }
}

/// The status table: one row per member, with its lag behind the most advanced member.
pub fn status_table(reports: &[StatusReport]) -> String {
    let executed_max =
        reports.iter().filter_map(|r| r.number("rsl_executed_slot")).max().unwrap_or(0);
    let mut out = format!(
        "{:<8} {:<22} {:<10} {:<8} {:<8} {:>10} {:>10} {:>8}  {}\n",
        "replica", "client", "role", "primary", "ballot", "committed", "executed", "lag", "health"
    );
    for r in reports {
        let lag = r.number("rsl_executed_slot").map(|e| executed_max - e);
        let health = match lag {
            _ if !r.healthy() => r.get("rsl_health").to_string(),
            _ if r.get("rsl_rebuilding") == "1" => "rebuilding".to_string(),
            Some(lag) if lag > LAG_SLOTS_HEALTHY_MAX => "lagging".to_string(),
            _ => "ok".to_string(),
        };
        out.push_str(&format!(
            "{:<8} {:<22} {:<10} {:<8} {:<8} {:>10} {:>10} {:>8}  {}\n",
            r.get("rsl_replica_id"),
            r.get("rsl_client_addr"),
            r.get("rsl_role"),
            r.get("rsl_primary"),
            r.get("rsl_ballot"),
            r.get("rsl_committed_slot"),
            r.get("rsl_executed_slot"),
            lag.map_or("-".to_string(), |l| l.to_string()),
            health,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real replica's status (of a local cluster that is not started up yet).
    fn a_status() -> Status {
        let cluster =
            rsl::LocalCluster::start(rsl::LocalOptions::default(), |_| crate::KvMachine::new());
        cluster.nodes[0].status()
    }

    #[test]
    fn the_table_shows_lag_unreachable_and_rebuilding_members() {
        let status = a_status();
        let up = |id: u32, executed: u64| {
            let mut s = status.clone();
            (s.id, s.role, s.primary) = (id, rsl::Role::Follower, Some(1));
            (s.ballot_round, s.ballot_replica) = (2, 1);
            (s.committed, s.executed) = (executed, executed);
            let addr = "127.0.0.1:1".parse().unwrap();
            StatusReport::parse(&render_fields(&status_fields(&s, addr)))
        };
        let down = StatusReport::parse("rsl_replica_id:3\r\nrsl_health:unreachable (refused)\r\n");
        let full = {
            let mut s = status.clone();
            (s.id, s.health) = (5, rsl::Health::DiskFull);
            StatusReport::parse(&render_fields(&status_fields(&s, "127.0.0.1:5".parse().unwrap())))
        };
        let rebuilding = StatusReport::parse(
            "rsl_replica_id:4\r\nrsl_health:ok\r\nrsl_role:follower\r\nrsl_executed_slot:5000\r\n\
             rsl_rebuilding:1\r\n",
        );
        let table = status_table(&[up(1, 5000), up(2, 3000), down, rebuilding, full]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 6, "{table}");
        assert!(lines[5].ends_with("disk-full"), "{table}");
        assert!(lines[4].ends_with("rebuilding"), "{table}");
        assert!(lines[1].contains("5000") && lines[1].ends_with("ok"), "{table}");
        assert!(lines[2].contains("2000") && lines[2].ends_with("lagging"), "{table}");
        assert!(lines[3].ends_with("unreachable (refused)"), "{table}");
        assert!(lines[1].starts_with("1 ") && lines[1].contains(" follower "), "{table}");
    }

    #[test]
    fn every_status_field_has_one_name() {
        let s = a_status();
        let fields = status_fields(&s, "127.0.0.1:1".parse().unwrap());
        let mut names: Vec<&str> = fields.iter().map(|(n, _)| *n).collect();
        assert!(names.iter().all(|n| n.starts_with("rsl_")), "{names:?}");
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), fields.len(), "a field appears twice");
        let report = StatusReport::parse(&render_fields(&fields));
        assert_eq!(report.fields.len(), fields.len());
        assert!(report.healthy());
    }
}
