//! What a replica process reports on its standard output, as whoever supervises it reads it:
//! one line when it listens, one every time its role, primary or ballot changes. The local
//! cluster ([`super::Cluster`]) and the real-process nemesis (crate `rsl-nemesis`) both start
//! `rsl-kv run` processes and follow them through these reports, so that waiting for a
//! primary is waiting for a report, not polling.

use std::collections::BTreeMap;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::ChildStdout;
use tokio::sync::mpsc;

/// The line prefix of a replica's role reports: `rsl-kv: replica ID role=R primary=P ballot=B`.
pub const ROLE_LINE_PREFIX: &str = "rsl-kv: replica ";
/// The line prefix of a replica's first line: `rsl-kv: listening on ADDR (replica ID)`.
pub const LISTENING_LINE_PREFIX: &str = "rsl-kv: listening on ";

/// What a replica last reported on its stdout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaView {
    /// `primary`, `follower`, `candidate`, `learner` or `starting`.
    pub role: String,
    /// The primary it follows, if known.
    pub primary: Option<u32>,
    /// `round.replica`.
    pub ballot: String,
}

/// Something a replica process said or did. `generation` counts the starts of replica `id`,
/// so that a report of a process that was since replaced is recognised and dropped.
#[derive(Debug)]
pub enum ReplicaReport {
    /// It prints this once it listens for clients.
    Listening { id: u32, generation: u32 },
    /// Its role, primary or ballot changed.
    Role { id: u32, generation: u32, view: ReplicaView },
    /// Its standard output closed: the process ended.
    Exited { id: u32, generation: u32 },
}

/// Reads the report in one line of replica `id`'s output, if the line is one.
pub fn parse_line(line: &str, id: u32, generation: u32) -> Option<ReplicaReport> {
    if line.starts_with(LISTENING_LINE_PREFIX) {
        return Some(ReplicaReport::Listening { id, generation });
    }
    let rest = line.strip_prefix(ROLE_LINE_PREFIX)?;
    let mut view = ReplicaView { role: String::new(), primary: None, ballot: String::new() };
    for word in rest.split_whitespace().skip(1) {
        match word.split_once('=') {
            Some(("role", role)) => view.role = role.to_string(),
            Some(("primary", primary)) => view.primary = primary.parse().ok(),
            Some(("ballot", ballot)) => view.ballot = ballot.to_string(),
            _ => {}
        }
    }
    Some(ReplicaReport::Role { id, generation, view })
}

/// Reads replica `id`'s stdout on a task of its own and sends every report to `reports`,
/// ending with [`ReplicaReport::Exited`] when the output closes.
pub fn forward_reports(
    stdout: ChildStdout,
    id: u32,
    generation: u32,
    reports: mpsc::UnboundedSender<ReplicaReport>,
) {
    tokio::spawn(async move {
        let mut lines = BufReader::new(stdout).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(report) = parse_line(&line, id, generation) {
                let _ = reports.send(report);
            }
        }
        let _ = reports.send(ReplicaReport::Exited { id, generation });
    });
}

/// The replica of `live` that says it is primary and that a majority of a cluster of
/// `replicas` (counted among `live`, itself included) follows, if any.
pub fn agreed_primary(
    live: &[u32],
    views: &BTreeMap<u32, ReplicaView>,
    replicas: usize,
) -> Option<u32> {
    let majority = replicas / 2 + 1;
    live.iter().copied().filter(|id| views.get(id).is_some_and(|v| v.role == "primary")).find(
        |&p| {
            let agree =
                |id: &&u32| views.get(id).is_some_and(|v| v.primary == Some(p) || **id == p);
            live.iter().filter(agree).count() >= majority
        },
    )
}

/// The role line a replica prints (read by [`parse_line`]).
pub fn role_line(id: u32, view: &rsl::View, ballot_replica: u32) -> String {
    let role = view.role.map_or("starting".to_string(), |r| r.to_string());
    let primary = view.primary.map_or("-".to_string(), |p| p.to_string());
    format!(
        "{ROLE_LINE_PREFIX}{id} role={role} primary={primary} ballot={}.{ballot_replica}",
        view.ballot_round
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replica_lines_become_reports() {
        let line = format!("{ROLE_LINE_PREFIX}2 role=follower primary=3 ballot=4.3");
        match parse_line(&line, 2, 7) {
            Some(ReplicaReport::Role { id: 2, generation: 7, view }) => {
                let want =
                    ReplicaView { role: "follower".into(), primary: Some(3), ballot: "4.3".into() };
                assert_eq!(view, want);
            }
            other => panic!("{other:?}"),
        }
        let line = format!("{LISTENING_LINE_PREFIX}10.213.0.1:6379 (replica 1)");
        let listening = parse_line(&line, 1, 1);
        assert!(matches!(listening, Some(ReplicaReport::Listening { id: 1, generation: 1 })));
        assert!(parse_line("something else", 1, 1).is_none());
    }

    #[test]
    fn a_primary_needs_a_majority_of_the_cluster_following_it() {
        let view = |role: &str, primary: Option<u32>| ReplicaView {
            role: role.into(),
            primary,
            ballot: "1.1".into(),
        };
        let mut views = BTreeMap::new();
        views.insert(1, view("primary", Some(1)));
        views.insert(2, view("follower", Some(1)));
        views.insert(3, view("follower", Some(2)));
        assert_eq!(agreed_primary(&[1, 2, 3], &views, 3), Some(1));
        // Two of five is no majority, even if both live replicas agree.
        assert_eq!(agreed_primary(&[1, 2], &views, 5), None);
        // A replica that follows someone else does not count.
        views.insert(2, view("follower", Some(3)));
        assert_eq!(agreed_primary(&[1, 2, 3], &views, 3), None);
    }
}
