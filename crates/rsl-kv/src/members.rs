//! `RSL.MEMBERS`: the membership as the client port shows and changes it (what
//! `rsl-kv member ...` sends).
//!
//! | command | does |
//! | --- | --- |
//! | `RSL.MEMBERS [LIST]` | one bulk string per member: `id`, `role` (voter or learner), `peer` and `client` addresses, and at the primary `lag` (slots behind its commit point) |
//! | `RSL.MEMBERS ADD <id> <peer-addr> <client-addr>` | adds replica `id` as a learner (it was started with `join = true`) |
//! | `RSL.MEMBERS PROMOTE <id>` | makes learner `id` a voter once it caught up (waits for it) |
//! | `RSL.MEMBERS REMOVE <id>` | removes member `id` (the removed replica's process exits) |
//! | `RSL.MEMBERS REPLACE <old> <new>` | makes learner `new` a voter in place of voter `old` |
//!
//! A change may be sent to any member: one that is not the primary relays it once to the
//! primary's client port and answers with the primary's reply. A member's client address is
//! the application data the membership carries for it (`ADD` records it), or for a member of
//! the bootstrap configuration the one `kv.clients` names.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use rsl::{ClusterMember, MembershipChange, MembershipError, Node};

use crate::client::{tls_for, Client, Reach};
use crate::resp::{parse_i64, Reply};
use crate::tls::TlsArgs;

/// How long a relayed change (or `rsl-kv member`) waits for the primary's answer at most: a
/// promotion waits for its learner to catch up, up to the replica's call timeout.
pub const MEMBER_CHANGE_WAIT_MS_MAX: u64 = 30_000;

/// How long `rsl-kv member` sends a change again after a refusal for a passing reason, by
/// default (`--retry-ms`).
pub const MEMBER_RETRY_MS_DEFAULT: u64 = 10_000;

/// The pause between two attempts of `rsl-kv member` after a passing refusal.
const MEMBER_RETRY_PAUSE: Duration = Duration::from_millis(200);

/// What the refusals for a passing reason say (`MembershipError::NotPrimary`, `NoQuorum`,
/// `InFlight`). Each made no change, and each ends by itself: "not primary" during an
/// election (which a change of the voters may cause: a primary whose phase 1 does not cover
/// the new voters runs it again, docs/protocol.md "Reconfiguration"), "would leave no quorum"
/// while a new primary has not yet heard from the voters, "in flight" until the change before
/// executes.
pub const PASSING_REFUSALS: [&str; 3] =
    ["ERR not primary", "ERR would leave no quorum", "ERR another membership change is in flight"];

/// The last argument of a relayed change: the primary it reaches does not relay it again.
const RELAYED: &[u8] = b"RELAYED";

/// A member's client address: what the membership records, else the configuration's.
pub fn client_addr(
    member: &ClusterMember,
    configured: &BTreeMap<u32, SocketAddr>,
) -> Option<SocketAddr> {
    let recorded = std::str::from_utf8(&member.data).ok().and_then(|t| t.parse().ok());
    recorded.or_else(|| configured.get(&member.id).copied())
}

/// The client address of member `id` as this replica knows it.
pub fn client_addr_of(
    node: &Node,
    configured: &BTreeMap<u32, SocketAddr>,
    id: u32,
) -> Option<SocketAddr> {
    let members = node.members();
    match members.iter().find(|m| m.id == id) {
        Some(m) => client_addr(m, configured),
        None => configured.get(&id).copied(),
    }
}

/// Answers `RSL.MEMBERS ...` (`args[0]` is the command name).
pub async fn command(
    node: &Node,
    configured: &BTreeMap<u32, SocketAddr>,
    reach: Reach<'_>,
    args: &[Bytes],
) -> Reply {
    let mut args: Vec<&[u8]> = args[1..].iter().map(|a| &a[..]).collect();
    let relayed = args.last().is_some_and(|a| a.eq_ignore_ascii_case(RELAYED));
    if relayed {
        args.pop();
    }
    let op = args.first().map(|a| a.to_ascii_uppercase()).unwrap_or_else(|| b"LIST".to_vec());
    let ids: Option<Vec<u32>> = args.iter().skip(1).map(|a| id_of(a)).collect();
    let change = match (&op[..], args.len()) {
        (b"LIST", 1) | (b"LIST", 0) => return list(node, configured),
        (b"ADD", 4) => {
            let (Some(id), Some(peer), Some(client)) =
                (id_of(args[1]), addr(args[2]), addr(args[3]))
            else {
                return Reply::error("ERR RSL.MEMBERS ADD <id> <peer-addr> <client-addr>");
            };
            node.add_learner(id, peer, Bytes::from(client.to_string())).await
        }
        (b"PROMOTE", 2) | (b"REMOVE", 2) | (b"REPLACE", 3) if ids.is_none() => {
            return Reply::error("ERR a replica id is not a number");
        }
        (b"PROMOTE", 2) => node.promote(ids.unwrap()[0]).await,
        (b"REMOVE", 2) => node.remove_member(ids.unwrap()[0]).await,
        (b"REPLACE", 3) => {
            let ids = ids.unwrap();
            node.replace_member(ids[0], ids[1]).await
        }
        _ => {
            return Reply::error(
                "ERR syntax error: RSL.MEMBERS [LIST | ADD <id> <peer-addr> <client-addr> | \
                 PROMOTE <id> | REMOVE <id> | REPLACE <old> <new>]",
            )
        }
    };
    match change {
        Ok(made) => made_reply(&made),
        Err(MembershipError::NotPrimary { primary: Some(p), .. }) if !relayed => {
            let Some(to) = client_addr_of(node, configured, p) else {
                return Reply::error(format!(
                    "ERR not primary; the primary {p} has no client address"
                ));
            };
            relay(p, to, reach, &args).await
        }
        Err(e) => Reply::error(format!("ERR {e}")),
    }
}

fn id_of(arg: &[u8]) -> Option<u32> {
    parse_i64(arg).and_then(|n| u32::try_from(n).ok())
}

fn addr(arg: &[u8]) -> Option<SocketAddr> {
    std::str::from_utf8(arg).ok()?.parse().ok()
}

/// Every member, one bulk string each (`field:value` lines, as `RSL.STATUS` writes them).
fn list(node: &Node, configured: &BTreeMap<u32, SocketAddr>) -> Reply {
    let status = node.status();
    let lag = |id: u32| {
        let primary = status.primary == Some(status.id);
        let peer = status.peers.iter().find(|p| p.id == id);
        match (primary, peer) {
            (true, Some(p)) => p.lag_slots.to_string(),
            (true, None) => "0".to_string(),
            _ => "-".to_string(),
        }
    };
    let show = |a: Option<SocketAddr>| a.map_or("-".to_string(), |a| a.to_string());
    let items = status
        .membership
        .iter()
        .map(|m| {
            let text = format!(
                "id:{}\r\nrole:{}\r\npeer:{}\r\nclient:{}\r\nlag:{}\r\n",
                m.id,
                if m.voter { "voter" } else { "learner" },
                show(m.addr),
                show(client_addr(m, configured)),
                lag(m.id),
            );
            Reply::Bulk(Bytes::from(text))
        })
        .collect();
    Reply::Array(items)
}

/// `OK slot <n> members 1:voter,4:learner`.
fn made_reply(made: &MembershipChange) -> Reply {
    let members: Vec<String> = made
        .members
        .iter()
        .map(|m| format!("{}:{}", m.id, if m.voter { "voter" } else { "learner" }))
        .collect();
    let text = format!("OK slot {} members {}", made.slot, members.join(","));
    Reply::Simple(Bytes::from(text))
}

/// Sends the change to the primary's client port, marked relayed.
async fn relay(id: u32, to: SocketAddr, reach: Reach<'_>, args: &[&[u8]]) -> Reply {
    let wait = Duration::from_millis(MEMBER_CHANGE_WAIT_MS_MAX);
    let mut command: Vec<&[u8]> = vec![b"RSL.MEMBERS"];
    command.extend_from_slice(args);
    command.push(RELAYED);
    let answer = async {
        let tls = tls_for(reach.tls, id);
        let mut client = Client::connect_tls_auth(to, tls.as_ref(), reach.password, wait).await?;
        client.cmd(&command).await
    };
    match answer.await {
        Ok(reply) => reply,
        Err(e) => Reply::error(format!("ERR the primary at {to} did not answer: {e}")),
    }
}

/// `rsl-kv member ...`: lists or changes the membership through any member's client port.
#[derive(Debug, clap::Args)]
pub struct MemberArgs {
    /// The client address of any member (a change is relayed to the primary).
    #[arg(long, global = true, default_value = "127.0.0.1:6379")]
    pub addr: SocketAddr,
    /// The client password, if the cluster has one.
    #[arg(long, global = true)]
    pub password: Option<String>,
    /// TLS, when the client ports speak it.
    #[command(flatten)]
    pub tls: TlsArgs,
    /// How long to send a change again while it is refused for a passing reason (no primary
    /// during an election, a new primary that has not heard from the voters yet, another
    /// change in flight), in milliseconds; 0 sends it once.
    #[arg(long, global = true, default_value_t = MEMBER_RETRY_MS_DEFAULT)]
    pub retry_ms: u64,
    /// What to do.
    #[command(subcommand)]
    pub op: MemberOp,
}

/// One `rsl-kv member` operation.
#[derive(Debug, clap::Subcommand)]
pub enum MemberOp {
    /// Prints every member: id, role, peer and client addresses, and its lag at the primary.
    List,
    /// Adds a replica started with `join = true` as a learner.
    Add {
        /// Its replica id (never used before in this cluster).
        #[arg(long)]
        id: u32,
        /// Where the other replicas reach it (its `listen` address).
        #[arg(long)]
        peer: SocketAddr,
        /// Where Redis clients reach it (its `kv.listen` address).
        #[arg(long)]
        client: SocketAddr,
    },
    /// Makes a learner a voter once it has caught up (waits for it).
    Promote {
        /// The learner's id.
        #[arg(long)]
        id: u32,
    },
    /// Removes a member; its process exits once the others no longer need it.
    Remove {
        /// The member's id.
        #[arg(long)]
        id: u32,
    },
    /// Makes a learner a voter in place of a voter, in one change.
    Replace {
        /// The voter that leaves.
        #[arg(long)]
        old: u32,
        /// The learner that takes its place.
        #[arg(long)]
        new: u32,
    },
}

/// Runs `rsl-kv member ...` and returns what to print.
pub async fn member(args: MemberArgs) -> std::io::Result<String> {
    let words: Vec<String> = match args.op {
        MemberOp::List => vec!["LIST".into()],
        MemberOp::Add { id, peer, client } => {
            vec!["ADD".into(), id.to_string(), peer.to_string(), client.to_string()]
        }
        MemberOp::Promote { id } => vec!["PROMOTE".into(), id.to_string()],
        MemberOp::Remove { id } => vec!["REMOVE".into(), id.to_string()],
        MemberOp::Replace { old, new } => vec!["REPLACE".into(), old.to_string(), new.to_string()],
    };
    let mut command: Vec<&[u8]> = vec![b"RSL.MEMBERS"];
    command.extend(words.iter().map(|w| w.as_bytes()));
    let wait = Duration::from_millis(MEMBER_CHANGE_WAIT_MS_MAX);
    let tls = args.tls.client_tls().map_err(std::io::Error::other)?;
    let password = args.password.as_deref();
    let retry_until = tokio::time::Instant::now() + Duration::from_millis(args.retry_ms);
    loop {
        let mut client = Client::connect_tls_auth(args.addr, tls.as_ref(), password, wait).await?;
        let text = match client.cmd(&command).await? {
            Reply::Error(text) => String::from_utf8_lossy(&text).into_owned(),
            Reply::Array(items) => return Ok(members_table(&items)),
            other => return Ok(crate::client::describe(&other)),
        };
        let passing = PASSING_REFUSALS.iter().any(|r| text.starts_with(r));
        if !passing || tokio::time::Instant::now() >= retry_until {
            return Err(std::io::Error::other(text));
        }
        // Said on stderr as it happens, so that an operator sees why the command waits.
        eprintln!("rsl-kv member: refused for now ({text}); trying again");
        tokio::time::sleep(MEMBER_RETRY_PAUSE).await;
    }
}

/// The member list as a table.
fn members_table(items: &[Reply]) -> String {
    let mut out =
        format!("{:<8} {:<8} {:<22} {:<22} {:>8}\n", "replica", "role", "peer", "client", "lag");
    for item in items {
        let Reply::Bulk(text) = item else { continue };
        let r = crate::admin::StatusReport::parse(&String::from_utf8_lossy(text));
        out.push_str(&format!(
            "{:<8} {:<8} {:<22} {:<22} {:>8}\n",
            r.get("id"),
            r.get("role"),
            r.get("peer"),
            r.get("client"),
            r.get("lag")
        ));
    }
    out
}
