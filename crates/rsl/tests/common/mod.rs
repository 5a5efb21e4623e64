//! Helpers shared by the runtime's tests over `Node::start`: a journal state machine,
//! configurations of three replicas on loopback ports, and waiting for a primary.
#![allow(dead_code)]

use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use rsl::config::{Member, TlsFiles};
use rsl::{Node, NodeConfig, ReplicateError, Role, Snapshot, StateMachine};

/// Appends every executed request to a shared list; checkpoints the list.
#[derive(Clone, Default)]
pub struct Journal(pub Arc<Mutex<Vec<Vec<u8>>>>);

pub struct JournalSnapshot(Vec<Vec<u8>>);

impl Snapshot for JournalSnapshot {
    fn write_to(&self, out: &mut dyn io::Write) -> io::Result<()> {
        for entry in &self.0 {
            out.write_all(&(entry.len() as u32).to_le_bytes())?;
            out.write_all(entry)?;
        }
        Ok(())
    }
}

impl StateMachine for Journal {
    fn execute(&mut self, _slot: u64, request: &[u8]) -> Bytes {
        let mut j = self.0.lock().unwrap();
        j.push(request.to_vec());
        Bytes::from(j.len().to_string())
    }
    fn read(&self, _request: &[u8]) -> Bytes {
        Bytes::from(self.0.lock().unwrap().len().to_string())
    }
    fn snapshot(&self) -> Box<dyn Snapshot> {
        Box::new(JournalSnapshot(self.0.lock().unwrap().clone()))
    }
    fn load_checkpoint(&mut self, input: &mut dyn io::Read) -> io::Result<()> {
        let mut all = Vec::new();
        input.read_to_end(&mut all)?;
        let mut j = self.0.lock().unwrap();
        j.clear();
        let mut rest = &all[..];
        while rest.len() >= 4 {
            let n = u32::from_le_bytes(rest[..4].try_into().unwrap()) as usize;
            j.push(rest[4..4 + n].to_vec());
            rest = &rest[4 + n..];
        }
        Ok(())
    }
}

/// A free loopback port below the kernel's ephemeral range, never handed out twice in this
/// process (binding port 0 gave ports an outgoing connection could take before the replica
/// listened: `AddrInUse` once in a full run).
pub fn free_port() -> u16 {
    rsl_net::free_loopback_ports(1).expect("a free port")[0]
}

pub fn configs(root: &Path, tls: bool) -> Vec<NodeConfig> {
    let members: Vec<Member> = (1..=3)
        .map(|id| Member { id, addr: format!("127.0.0.1:{}", free_port()).parse().unwrap() })
        .collect();
    let certs = root.join("certs");
    if tls {
        rsl_net::generate_cluster_certs(&certs, rsl::CLUSTER_NAME, &[1, 2, 3]).unwrap();
    }
    (1..=3)
        .map(|id| {
            let text =
                format!("id = {id}\ndata_dir = {:?}\nmembers = []", root.join(id.to_string()));
            let mut c: NodeConfig = toml::from_str(&text).unwrap();
            c.members = members.clone();
            c.tls = tls.then(|| TlsFiles {
                ca: certs.join("ca.pem"),
                cert: certs.join(format!("replica-{id}.pem")),
                key: certs.join(format!("replica-{id}.key.pem")),
            });
            c.validate().unwrap();
            c
        })
        .collect()
}

/// Starts one replica per configuration, each with a fresh journal it shares with the test.
pub fn start_all(cfgs: &[NodeConfig]) -> (Vec<Journal>, Vec<Option<Node>>) {
    let journals: Vec<Journal> = cfgs.iter().map(|_| Journal::default()).collect();
    let nodes = cfgs
        .iter()
        .zip(&journals)
        .map(|(c, j)| Some(Node::start(c.clone(), j.clone()).unwrap()))
        .collect();
    (journals, nodes)
}

pub async fn primary_of(nodes: &[Option<Node>]) -> usize {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut watches: Vec<_> = nodes.iter().flatten().map(|n| n.watch()).collect();
    loop {
        let live: Vec<(usize, &Node)> =
            nodes.iter().enumerate().filter_map(|(i, n)| n.as_ref().map(|n| (i, n))).collect();
        if let Some((i, p)) =
            live.iter().find(|(_, n)| n.watch().borrow().role == Some(Role::Primary))
        {
            let agree =
                live.iter().filter(|(_, n)| n.watch().borrow().primary == Some(p.id())).count();
            if agree * 2 > nodes.len() {
                return *i;
            }
        }
        let changes = watches.iter_mut().map(|w| Box::pin(w.changed()));
        tokio::time::timeout_at(deadline, futures_util::future::select_all(changes))
            .await
            .expect("no primary within 10 s")
            .0
            .unwrap();
    }
}

pub async fn write(nodes: &[Option<Node>], payload: &[u8]) -> usize {
    for _ in 0..100 {
        let p = primary_of(nodes).await;
        match nodes[p].as_ref().unwrap().replicate(Bytes::copy_from_slice(payload)).await {
            Ok(r) => return std::str::from_utf8(&r).unwrap().parse().unwrap(),
            Err(ReplicateError::NotPrimary { .. } | ReplicateError::Superseded { .. }) => continue,
            Err(e) => panic!("{e}"),
        }
    }
    panic!("write never succeeded");
}
