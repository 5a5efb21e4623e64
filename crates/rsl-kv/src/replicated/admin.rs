//! The replicated engine's admin commands: `RSL.STATUS [ALL]` (this replica's status, or
//! every member's as each one reports it over its client port), `RSL.TRANSFER <id>` and
//! `RSL.CHECKPOINT`.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rsl::Role;

use super::Inner;
use crate::admin::{render_fields, status_fields};
use crate::client::{describe, Client};
use crate::engine::EngineError;
use crate::forward::error_bytes;
use crate::limits;
use crate::resp::{parse_i64, Reply};

impl Inner {
    /// This replica's status fields (`RSL.STATUS`, INFO's `# Rsl`).
    pub(super) fn status_fields(&self) -> Vec<(&'static str, String)> {
        let mut fields = status_fields(&self.node.status(), self.options.clients[&self.id]);
        let counts = &self.reads.counts;
        let count = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed).to_string();
        fields.extend([
            ("rsl_read_index_calls_total", count(&counts.calls)),
            ("rsl_read_index_runs_total", count(&counts.runs)),
            ("rsl_read_index_fallbacks_total", count(&counts.fallbacks)),
            ("rsl_read_index_behind_total", count(&counts.behind)),
            ("rsl_read_index_learned_total", count(&counts.learned)),
            ("rsl_read_index_held_writes_total", count(&counts.held)),
            ("rsl_reads_here_total", count(&self.reads_here)),
        ]);
        fields
    }

    /// The client address of member `id`, as the membership this replica executed records
    /// it (the configuration's for a bootstrap member that records none): after a member is
    /// replaced, the configuration file no longer says who the members are or where.
    pub(super) fn member_client_addr(&self, id: u32) -> Option<SocketAddr> {
        crate::members::client_addr_of(&self.node, &self.options.clients, id)
    }

    /// `RSL.STATUS`: this replica's status; `RSL.STATUS ALL`: every member's (of the
    /// membership this replica executed), as an array.
    pub(super) async fn status_command(
        self: &Arc<Self>,
        args: &[Bytes],
    ) -> Result<Bytes, EngineError> {
        match args {
            [_] => Ok(Reply::Bulk(Bytes::from(render_fields(&self.status_fields()))).to_bytes()),
            [_, all] if all.eq_ignore_ascii_case(b"all") => {
                let mut tasks = tokio::task::JoinSet::new();
                let clients = &self.options.clients;
                for m in self.node.members() {
                    let addr = crate::members::client_addr(&m, clients);
                    let inner = Arc::clone(self);
                    tasks.spawn(async move { (m.id, inner.member_status(m.id, addr).await) });
                }
                let mut reports: Vec<(u32, String)> = tasks.join_all().await;
                reports.sort();
                let items = reports.into_iter().map(|(_, text)| Reply::Bulk(Bytes::from(text)));
                Ok(Reply::Array(items.collect()).to_bytes())
            }
            _ => Ok(error_bytes("ERR syntax error: RSL.STATUS [ALL]")),
        }
    }

    pub(super) async fn member_status(&self, id: u32, addr: Option<SocketAddr>) -> String {
        if id == self.id {
            return render_fields(&self.status_fields());
        }
        let unreachable = |why: String| {
            let fields = [
                ("rsl_replica_id", id.to_string()),
                ("rsl_health", format!("unreachable ({why})")),
                ("rsl_client_addr", addr.map_or("-".to_string(), |a| a.to_string())),
            ];
            render_fields(&fields)
        };
        let Some(addr) = addr else {
            return unreachable("the membership records no client address".to_string());
        };
        match self.ask_member(id, addr, &[b"RSL.STATUS".as_slice()]).await {
            Ok(Reply::Bulk(text)) => String::from_utf8_lossy(&text).into_owned(),
            Ok(other) => unreachable(describe(&other)),
            Err(e) => unreachable(e.to_string()),
        }
    }

    /// Sends one command to another member's client port, bounded in time.
    pub(super) async fn ask_member(
        &self,
        id: u32,
        addr: SocketAddr,
        args: &[&[u8]],
    ) -> std::io::Result<Reply> {
        let wait = Duration::from_millis(limits::ADMIN_PEER_WAIT_MS_MAX);
        let password = self.options.requirepass.as_deref();
        let tls = crate::client::tls_for(self.options.tls.as_ref(), id);
        let mut client = Client::connect_tls_auth(addr, tls.as_ref(), password, wait).await?;
        client.cmd(args).await
    }

    /// `RSL.TRANSFER <id>`: hands primacy to replica `id` and waits until it has it.
    pub(super) async fn transfer(&self, args: &[Bytes]) -> Result<Bytes, EngineError> {
        let [_, to] = args else {
            return Ok(error_bytes("ERR wrong number of arguments for 'rsl.transfer' command"));
        };
        let Some(to) = parse_i64(to).and_then(|n| u32::try_from(n).ok()) else {
            return Ok(error_bytes("ERR the replica id is not an integer"));
        };
        if !self.node.members().iter().any(|m| m.id == to && m.voter) {
            return Ok(error_bytes(format!("ERR replica {to} is not a voter")));
        }
        let seen = *self.view.borrow();
        if seen.role != Some(Role::Primary) {
            let Some(primary) = seen.primary else {
                return Ok(error_bytes("TRYAGAIN no primary is known"));
            };
            // Only the primary can hand primacy over: ask it.
            let Some(addr) = self.member_client_addr(primary) else {
                return Ok(error_bytes(format!(
                    "ERR no client address known for the primary {primary}"
                )));
            };
            let to = to.to_string();
            return Ok(
                match self.ask_member(primary, addr, &[b"RSL.TRANSFER", to.as_bytes()]).await {
                    Ok(reply) => reply.to_bytes(),
                    Err(e) => error_bytes(format!("ERR the primary {primary} did not answer: {e}")),
                },
            );
        }
        if to == self.id {
            return Ok(
                Reply::Simple(Bytes::from(format!("OK replica {to} is the primary"))).to_bytes()
            );
        }
        let mut view = self.node.watch();
        self.node.transfer_primacy(Some(to));
        let wait = Duration::from_millis(limits::TRANSFER_WAIT_MS_MAX);
        let done = tokio::time::timeout(wait, view.wait_for(|v| v.primary == Some(to))).await;
        Ok(match done {
            Ok(Ok(_)) => Reply::Simple(Bytes::from(format!("OK replica {to} is the primary"))),
            _ => Reply::error(format!("ERR replica {to} did not take over within {wait:?}")),
        }
        .to_bytes())
    }

    /// `RSL.CHECKPOINT`: takes a checkpoint of this replica's state now.
    pub(super) fn checkpoint(&self, args: &[Bytes]) -> Bytes {
        if args.len() != 1 {
            return error_bytes("ERR wrong number of arguments for 'rsl.checkpoint' command");
        }
        let executed = self.node.status().executed;
        self.node.checkpoint_now();
        let text = format!("OK checkpoint of replica {} requested at slot {executed}", self.id);
        Reply::Simple(Bytes::from(text)).to_bytes()
    }
}
