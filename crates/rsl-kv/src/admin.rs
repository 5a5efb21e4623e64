//! What the admin subcommands read: every member's status (from `RSL.STATUS ALL` on any
//! member) and the table `rsl-kv status` and the local cluster command print.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use crate::client::{describe, Client};
use crate::resp::Reply;

/// How far behind the most advanced member a replica may be before it is reported lagging,
/// in executed slots.
pub const LAG_SLOTS_HEALTHY_MAX: u64 = 1_000;

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

    /// Whether the member answered.
    pub fn reachable(&self) -> bool {
        self.get("health") == "ok"
    }
}

/// Asks the member at `addr` for every member's status.
pub async fn fetch_status(
    addr: SocketAddr,
    password: Option<&str>,
    timeout: Duration,
) -> io::Result<Vec<StatusReport>> {
    let mut client = Client::connect_auth(addr, password, timeout).await?;
    match client.cmd(&["RSL.STATUS", "ALL"]).await? {
        Reply::Array(items) => Ok(items
            .iter()
            .map(|item| match item {
                Reply::Bulk(text) => StatusReport::parse(&String::from_utf8_lossy(text)),
                other => StatusReport::parse(&format!("health:bad reply {}", describe(other))),
            })
            .collect()),
        other => Err(io::Error::other(format!("RSL.STATUS ALL answered {}", describe(&other)))),
    }
}

/// Sends one admin command to `addr` and returns the reply as text; an error reply is an
/// error.
pub async fn admin_command(
    addr: SocketAddr,
    password: Option<&str>,
    args: &[&str],
    timeout: Duration,
) -> io::Result<String> {
    let mut client = Client::connect_auth(addr, password, timeout).await?;
    match client.cmd(args).await? {
        Reply::Error(text) => Err(io::Error::other(String::from_utf8_lossy(&text).into_owned())),
        other => Ok(describe(&other)),
    }
}

/// The status table: one row per member, with its lag behind the most advanced member.
pub fn status_table(reports: &[StatusReport]) -> String {
    let executed_max = reports.iter().filter_map(|r| r.number("executed")).max().unwrap_or(0);
    let mut out = format!(
        "{:<8} {:<22} {:<10} {:<8} {:<8} {:>10} {:>10} {:>8}  {}\n",
        "replica", "client", "role", "primary", "ballot", "committed", "executed", "lag", "health"
    );
    for r in reports {
        let lag = r.number("executed").map(|e| executed_max - e);
        let health = match lag {
            _ if !r.reachable() => r.get("health").to_string(),
            _ if r.get("rebuilding") == "1" => "rebuilding".to_string(),
            Some(lag) if lag > LAG_SLOTS_HEALTHY_MAX => "lagging".to_string(),
            _ => "ok".to_string(),
        };
        out.push_str(&format!(
            "{:<8} {:<22} {:<10} {:<8} {:<8} {:>10} {:>10} {:>8}  {}\n",
            r.get("id"),
            r.get("client_addr"),
            r.get("role"),
            r.get("primary"),
            r.get("ballot"),
            r.get("committed"),
            r.get("executed"),
            lag.map_or("-".to_string(), |l| l.to_string()),
            health,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_shows_lag_unreachable_and_rebuilding_members() {
        let up = |id: u32, executed: u64| {
            StatusReport::parse(&format!(
                "id:{id}\r\nhealth:ok\r\nclient_addr:127.0.0.1:1\r\nrole:follower\r\nprimary:1\r\n\
                 ballot:2.1\r\ncommitted:{executed}\r\nexecuted:{executed}\r\n"
            ))
        };
        let down = StatusReport::parse("id:3\r\nhealth:unreachable (refused)\r\n");
        let rebuilding = StatusReport::parse(
            "id:4\r\nhealth:ok\r\nrole:follower\r\nexecuted:5000\r\nrebuilding:1\r\n",
        );
        let table = status_table(&[up(1, 5000), up(2, 3000), down, rebuilding]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 5, "{table}");
        assert!(lines[4].ends_with("rebuilding"), "{table}");
        assert!(lines[1].contains("5000") && lines[1].ends_with("ok"), "{table}");
        assert!(lines[2].contains("2000") && lines[2].ends_with("lagging"), "{table}");
        assert!(lines[3].ends_with("unreachable (refused)"), "{table}");
    }
}
