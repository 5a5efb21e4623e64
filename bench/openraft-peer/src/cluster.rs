//! The type configuration, the request, and the in-process network: an RPC to a peer is a
//! call on that peer's `Raft` handle (no encoding, no socket).

use std::collections::BTreeSet;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::RwLock;
use std::time::Duration;

use bytes::Bytes;
use openraft::Config;
use openraft::Raft;
use openraft::RaftNetworkFactory;
use openraft::RaftNetworkV2;
use openraft::error::RPCError;
use openraft::error::ReplicationClosed;
use openraft::error::StreamingError;
use openraft::error::Unreachable;
use openraft::network::RPCOption;
use openraft::raft::AppendEntriesRequest;
use openraft::raft::AppendEntriesResponse;
use openraft::raft::SnapshotResponse;
use openraft::raft::VoteRequest;
use openraft::raft::VoteResponse;
use openraft::type_config::alias::SnapshotOf;
use openraft::type_config::alias::VoteOf;

use crate::store::Counter;
use crate::store::MemLog;
use crate::store::Tally;

/// One client write: who sent it, its number among that client's writes, and an opaque body.
#[derive(Clone, Debug)]
pub struct Write {
    pub client: u32,
    pub serial: u64,
    pub body: Bytes,
}

impl fmt::Display for Write {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "write {}#{} ({} bytes)", self.client, self.serial, self.body.len())
    }
}

openraft::declare_raft_types!(
    /// Node ids are u64 and nodes carry no address; the response to a write is the number of
    /// writes the state machine had applied with it.
    pub Cfg:
        D = Write,
        R = u64,
        Node = (),
);

pub type Replica = Raft<Cfg, Counter>;

/// Every replica's handle by id, filled once all are built.
#[derive(Clone, Default)]
pub struct Switchboard(Arc<RwLock<HashMap<u64, Replica>>>);

impl Switchboard {
    fn get(&self, id: u64) -> Replica {
        self.0.read().expect("switchboard poisoned")[&id].clone()
    }
}

impl RaftNetworkFactory<Cfg> for Switchboard {
    type Network = Wire;

    async fn new_client(&mut self, target: u64, _node: &()) -> Wire {
        Wire { to: self.get(target) }
    }
}

/// The connection to one peer: its handle.
pub struct Wire {
    to: Replica,
}

fn unreachable<E: std::error::Error + 'static>(e: E) -> Unreachable<Cfg> {
    Unreachable::new(&e)
}

impl RaftNetworkV2<Cfg> for Wire {
    type SnapshotData = Tally;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<Cfg>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<Cfg>, RPCError<Cfg>> {
        self.to.append_entries(rpc).await.map_err(|e| unreachable(e).into())
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<Cfg>,
        _option: RPCOption,
    ) -> Result<VoteResponse<Cfg>, RPCError<Cfg>> {
        self.to.vote(rpc).await.map_err(|e| unreachable(e).into())
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<Cfg>,
        _option: RPCOption,
    ) -> Result<VoteResponse<Cfg>, RPCError<Cfg>> {
        self.to.pre_vote(rpc).await.map_err(|e| unreachable(e).into())
    }

    async fn full_snapshot(
        &mut self,
        vote: VoteOf<Cfg>,
        snapshot: SnapshotOf<Cfg, Tally>,
        _cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<Cfg>, StreamingError<Cfg>> {
        self.to.install_full_snapshot(vote, snapshot).await.map_err(|e| unreachable(e).into())
    }
}

/// The raft settings: openraft's defaults but for the election timeouts, the purge batch and
/// the entries an append may carry, set as openraft's benchmarks/minimal sets them.
pub fn config() -> Arc<Config> {
    let c = Config {
        election_timeout_min: 200,
        election_timeout_max: 2000,
        purge_batch_size: 1024,
        max_payload_entries: 1024,
        ..Default::default()
    };
    Arc::new(c.validate().expect("valid raft config"))
}

/// Starts `n` voters wired to each other, initializes them as one cluster, and waits until a
/// leader is elected and every voter has applied its first entry. Returns every handle and the
/// leader's id.
pub async fn start(n: u64) -> Result<(Vec<Replica>, u64), Box<dyn std::error::Error>> {
    let board = Switchboard::default();
    let cfg = config();
    let mut replicas = Vec::new();
    for id in 0..n {
        let r = Raft::new(id, cfg.clone(), board.clone(), MemLog::default(), Counter::default())
            .await?;
        board.0.write().expect("switchboard poisoned").insert(id, r.clone());
        replicas.push(r);
    }
    let voters: BTreeSet<u64> = (0..n).collect();
    replicas[0].initialize(voters).await?;
    let wait = Some(Duration::from_secs(30));
    let m = replicas[0]
        .wait(wait)
        .metrics(|m| m.current_leader.is_some(), "a leader is elected")
        .await?;
    let leader = m.current_leader.expect("waited for a leader");
    for r in &replicas {
        r.wait(wait).applied_index_at_least(Some(1), "the leader's first entry is applied").await?;
    }
    Ok((replicas, leader))
}
