//! One bank replica: an rsl [`Node`] with the [`Bank`] state machine, driven by text commands
//! on standard input, one answer line per command on standard output.
//!
//! | command | what it calls | answer |
//! | --- | --- | --- |
//! | `write REQUEST` | [`Node::replicate`] | `ok slot=N ...` or `err ...` |
//! | `read-at SLOT REQUEST` | [`Node::read`] with [`ReadConsistency::AtLeast`] | `ok ...` |
//! | `wait-primary [NOT]` | [`Node::watch`] until a primary other than `NOT` is known | `ok ID` |
//!
//! `err not-primary ID ADDR` names the primary to try instead and its peer address (`-` when
//! none is known). Closing
//! standard input shuts the replica down cleanly.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use rsl::{Node, NodeConfig, ReadConsistency, ReplicateError};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::bank::Bank;

/// How long `wait-primary` waits for an election.
const PRIMARY_WAIT: Duration = Duration::from_secs(10);

/// Runs a replica until its standard input closes.
pub fn run(config: &Path) -> anyhow::Result<()> {
    let config = NodeConfig::from_file(config)?;
    // Started outside any async runtime: the node runs its own threads.
    let node = Node::start(config, Bank::default()).context("starting the replica")?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let served = runtime.block_on(serve(&node));
    node.shutdown();
    served
}

async fn serve(node: &Node) -> anyhow::Result<()> {
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut out = tokio::io::stdout();
    while let Some(line) = lines.next_line().await? {
        let answer = answer(node, line.trim()).await;
        out.write_all(format!("{answer}\n").as_bytes()).await?;
        out.flush().await?;
    }
    Ok(())
}

async fn answer(node: &Node, line: &str) -> String {
    let (command, rest) = line.split_once(' ').unwrap_or((line, ""));
    match command {
        "write" => outcome(node.replicate(Bytes::from(rest.to_string())).await),
        "read-at" => {
            let (slot, request) = rest.split_once(' ').unwrap_or((rest, ""));
            let Ok(slot) = slot.parse() else { return format!("err bad slot {slot:?}") };
            let request = Bytes::from(request.to_string());
            outcome(node.read(request, ReadConsistency::AtLeast(slot)).await)
        }
        "wait-primary" => match wait_primary(node, rest.parse().ok()).await {
            Some(primary) => format!("ok {primary}"),
            None => "err no primary elected in time".to_string(),
        },
        _ => format!("err unknown command {command:?}"),
    }
}

fn outcome(result: Result<Bytes, ReplicateError>) -> String {
    match result {
        Ok(response) => format!("ok {}", String::from_utf8_lossy(&response)),
        // The primary's id, then its peer address (where the operator would reach it).
        Err(ReplicateError::NotPrimary { primary, primary_addr }) => format!(
            "err not-primary {} {}",
            primary.map_or("-".to_string(), |p| p.to_string()),
            primary_addr.map_or("-".to_string(), |a| a.to_string())
        ),
        Err(other) => format!("err {other}"),
    }
}

/// Waits on the node's view (an event, not a poll) until it knows a primary other than `not`.
async fn wait_primary(node: &Node, not: Option<u32>) -> Option<u32> {
    let mut view = node.watch();
    let wait = async {
        loop {
            if let Some(primary) = view.borrow_and_update().primary.filter(|&p| Some(p) != not) {
                return Some(primary);
            }
            view.changed().await.ok()?;
        }
    };
    tokio::time::timeout(PRIMARY_WAIT, wait).await.ok().flatten()
}
