//! Membership changes at run time over `Node::start` (segment files, TCP on loopback): a
//! replica started to join waits to be added, catches up as a learner, is promoted; members
//! are removed and replaced until none of the original three is left, each removed replica
//! stopping with `StopCause::Removed`; every write stays readable. And the refusals.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use common::{configs, free_port, start_all, Journal};
use rsl::config::Member;
use rsl::{
    Health, MembershipError, Node, NodeConfig, ReadConsistency, ReplicateError, Role, StopCause,
};

const WAIT: Duration = Duration::from_secs(20);

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

fn addr() -> SocketAddr {
    format!("127.0.0.1:{}", free_port()).parse().unwrap()
}

/// A replica `id` that joins the cluster `members` (it knows their addresses), in `root`.
fn joiner(root: &std::path::Path, id: u32, members: &[Member]) -> (NodeConfig, Journal, Node) {
    let config = NodeConfig::joining(id, root.join(id.to_string()), members.to_vec(), addr());
    let journal = Journal::default();
    let node = Node::start(config.clone(), journal.clone()).unwrap();
    (config, journal, node)
}

/// Waits until `node` executed what the primary has executed now.
async fn caught_up(primary: &Node, node: &Node) {
    let slot = primary.status().executed;
    let read = node.read(Bytes::new(), ReadConsistency::AtLeast(slot));
    tokio::time::timeout(WAIT, read).await.expect("no catch-up within 20 s").unwrap();
}

/// Waits until `node` stopped because a change removed it.
async fn stops_removed(node: &Node) {
    let mut view = node.watch();
    let removed = view.wait_for(|v| v.health == Health::Stopped(StopCause::Removed));
    tokio::time::timeout(WAIT, removed).await.expect("the removed replica did not stop").unwrap();
    assert!(node.status().stop_reason.unwrap().contains("removed"));
}

/// The index of the primary that a majority of the running replicas follow (`nodes[i]` is
/// replica `i + 1`, `None` where it is not running).
async fn primary_of(nodes: &[Option<Node>]) -> usize {
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut watches: Vec<_> = nodes.iter().flatten().map(|n| n.watch()).collect();
    loop {
        let live: Vec<(usize, &Node)> =
            nodes.iter().enumerate().filter_map(|(i, n)| n.as_ref().map(|n| (i, n))).collect();
        let primary = live.iter().find(|(_, n)| n.watch().borrow().role == Some(Role::Primary));
        if let Some((i, p)) = primary {
            let agree =
                live.iter().filter(|(_, n)| n.watch().borrow().primary == Some(p.id())).count();
            if agree * 2 > live.len() {
                return *i;
            }
        }
        let changes = watches.iter_mut().map(|w| Box::pin(w.changed()));
        tokio::time::timeout_at(deadline, futures_util::future::select_all(changes))
            .await
            .expect("no primary within 20 s")
            .0
            .unwrap();
    }
}

/// Writes `payload` at the primary (retrying while primacy moves); returns the number of
/// requests the primary has executed with it.
async fn write(nodes: &[Option<Node>], payload: &[u8]) -> usize {
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

/// Makes a membership call again while it is refused for want of a live quorum, as a caller
/// should: on a loaded machine the primary may for a moment have heard from too few voters
/// lately (seen in CI's full run at load 18: promote refused with 2 live of 3 needed).
async fn until_quorum<F, Fut>(mut call: F) -> Result<rsl::MembershipChange, MembershipError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<rsl::MembershipChange, MembershipError>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match call().await {
            Err(MembershipError::NoQuorum { .. }) if tokio::time::Instant::now() < deadline => {
                // A retry pause, not a wait for a condition: the refusal has no event to await.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => return other,
        }
    }
}

fn voters(change: &rsl::MembershipChange) -> Vec<u32> {
    change.members.iter().filter(|m| m.voter).map(|m| m.id).collect()
}

#[test]
fn every_member_is_replaced_one_at_a_time_and_every_write_survives() {
    rt().block_on(async {
        let root = tempfile::tempdir().unwrap();
        let cfgs = configs(root.path(), false);
        let members = cfgs[0].members.clone();
        let (_, mut nodes) = start_all(&cfgs);
        nodes.extend([None, None, None]);
        let mut written = 0;
        for i in 0..10u8 {
            written = write(&nodes, &[i; 8]).await;
        }
        let mut journals = Vec::new();
        for (k, new) in [4u32, 5, 6].into_iter().enumerate() {
            let (config, journal, node) = joiner(root.path(), new, &members);
            assert!(node.status().joining, "a joining replica is no member yet");
            journals.push(journal);
            nodes[new as usize - 1] = Some(node);
            let p = primary_of(&nodes).await;
            let primary = nodes[p].as_ref().unwrap();
            let data = Bytes::from(format!("client of {new}"));
            let change = primary.add_learner(new, config.listen_addr(), data.clone()).await;
            let change = change.unwrap();
            let added = change.members.iter().find(|m| m.id == new).unwrap();
            assert!(!added.voter && added.addr == Some(config.listen_addr()) && added.data == data);
            let learner = nodes[new as usize - 1].as_ref().unwrap();
            caught_up(primary, learner).await;
            let mut view = learner.watch();
            let member = view.wait_for(|v| !v.joining);
            tokio::time::timeout(WAIT, member).await.expect("still joining").unwrap();
            // Replace an original member that is not the primary (the last one is the primary:
            // it hands primacy over first).
            let old = (1..=3u32).find(|o| nodes[*o as usize - 1].is_some() && *o as usize - 1 != p);
            let old = match old {
                Some(old) => old,
                None => {
                    assert_eq!(k, 2);
                    primary.transfer_primacy(None);
                    let mut view = primary.watch();
                    let moved = view.wait_for(|v| v.role != Some(Role::Primary));
                    tokio::time::timeout(WAIT, moved).await.expect("primacy stayed").unwrap();
                    p as u32 + 1
                }
            };
            let p = primary_of(&nodes).await;
            let primary = nodes[p].as_ref().unwrap();
            let change = until_quorum(|| primary.replace_member(old, new)).await.unwrap();
            assert!(voters(&change).contains(&new) && !voters(&change).contains(&old));
            assert_eq!(voters(&change).len(), 3);
            let removed = nodes[old as usize - 1].take().unwrap();
            stops_removed(&removed).await;
            removed.shutdown();
            written = write(&nodes, format!("after {new}").as_bytes()).await;
        }
        // None of the original members is left; the new ones hold every write, in order.
        let p = primary_of(&nodes).await;
        assert!(p >= 3);
        let primary = nodes[p].as_ref().unwrap();
        let m = primary.members();
        assert_eq!(
            m.iter().map(|m| (m.id, m.voter)).collect::<Vec<_>>(),
            [(4, true), (5, true), (6, true)]
        );
        for (i, node) in nodes[3..].iter().enumerate() {
            let node = node.as_ref().unwrap();
            caught_up(primary, node).await;
            let journal = journals[i].0.lock().unwrap().clone();
            // A joiner executes the log from the start (no checkpoint was needed).
            assert_eq!(journal.len(), written, "replica {}", node.id());
            assert!(journal[..10].iter().enumerate().all(|(k, e)| *e == vec![k as u8; 8]));
        }
        for n in nodes.iter().flatten() {
            n.shutdown();
        }
    });
}

#[test]
fn a_cluster_grows_to_five_voters_and_shrinks_back_to_three() {
    rt().block_on(async {
        let root = tempfile::tempdir().unwrap();
        let cfgs = configs(root.path(), false);
        let members = cfgs[0].members.clone();
        let (_, mut nodes) = start_all(&cfgs);
        nodes.extend([None, None]);
        write(&nodes, b"one").await;
        for new in [4u32, 5] {
            let (config, _, node) = joiner(root.path(), new, &members);
            nodes[new as usize - 1] = Some(node);
            let p = primary_of(&nodes).await;
            let primary = nodes[p].as_ref().unwrap();
            primary.add_learner(new, config.listen_addr(), Bytes::new()).await.unwrap();
            // Promotion waits for the learner to catch up by itself.
            let change = until_quorum(|| primary.promote(new)).await.unwrap();
            assert!(voters(&change).contains(&new));
        }
        let p = primary_of(&nodes).await;
        assert_eq!(nodes[p].as_ref().unwrap().status().members, [1, 2, 3, 4, 5]);
        write(&nodes, b"five").await;
        for gone in [4u32, 5] {
            let p = primary_of(&nodes).await;
            let primary = nodes[p].as_ref().unwrap();
            let change = until_quorum(|| primary.remove_member(gone)).await.unwrap();
            assert!(!change.members.iter().any(|m| m.id == gone));
            let removed = nodes[gone as usize - 1].take().unwrap();
            stops_removed(&removed).await;
        }
        let p = primary_of(&nodes).await;
        assert_eq!(nodes[p].as_ref().unwrap().status().members, [1, 2, 3]);
        write(&nodes, b"three").await;
        for n in nodes.iter().flatten() {
            n.shutdown();
        }
    });
}

#[test]
fn membership_calls_are_refused_with_the_reason() {
    rt().block_on(async {
        let root = tempfile::tempdir().unwrap();
        let mut cfgs = configs(root.path(), false);
        for c in &mut cfgs {
            c.consensus.call_timeout_ms = 1_000;
            // The reasons asserted below name one primary: its followers wait 1.5 to 2 s
            // before an election, so that a loaded machine's stall does not depose it
            // between the calls (seen once at load 8+: a call refused `Superseded`).
            c.consensus.election_ticks_min = 150;
            c.consensus.election_ticks_max = 200;
        }
        let (_, nodes) = start_all(&cfgs);
        write(&nodes, b"x").await;
        let p = primary_of(&nodes).await;
        let primary = nodes[p].as_ref().unwrap();
        let f = nodes.iter().flatten().find(|n| n.id() != primary.id()).unwrap();
        let refused = f.remove_member(primary.id()).await;
        let expected = MembershipError::NotPrimary {
            primary: Some(primary.id()),
            primary_addr: Some(cfgs[p].listen_addr()),
        };
        assert_eq!(refused, Err(expected));
        assert_eq!(primary.remove_member(9).await, Err(MembershipError::UnknownMember { id: 9 }));
        assert_eq!(
            primary.promote(f.id()).await,
            Err(MembershipError::UnknownMember { id: f.id() })
        );
        let again = primary.add_learner(f.id(), addr(), Bytes::new()).await;
        assert_eq!(again, Err(MembershipError::AlreadyMember { id: f.id() }));
        // A learner that never runs never catches up: the promotion waits until its deadline.
        primary.add_learner(9, addr(), Bytes::new()).await.unwrap();
        let refused = primary.promote(9).await;
        assert!(matches!(refused, Err(MembershipError::Timeout { .. })), "{refused:?}");
        primary.remove_member(9).await.unwrap();
        assert_eq!(primary.members().len(), 3);
        for n in nodes.iter().flatten() {
            n.shutdown();
        }
    });
}

/// The newest checkpoint in a replica's data directory, if any.
fn newest_checkpoint(dir: &std::path::Path) -> Option<u64> {
    let entries = std::fs::read_dir(dir.join("checkpoints")).ok()?;
    let names = entries.filter_map(|e| e.ok()?.file_name().into_string().ok());
    let slots = names.filter_map(|n| n.strip_prefix("ckpt-")?.strip_suffix(".ckpt")?.parse().ok());
    slots.max()
}

/// Learners are added, then every voter checkpoints past the configurations that added them
/// and truncates its log behind the checkpoint. A voter restarted on its data directory, and
/// a new replica that can only catch up by receiving a checkpoint, both believe the
/// membership of the checkpoint's slot (the learners with their addresses and data), as if
/// they had executed the log; the new one knows at once that it is a member.
#[test]
fn a_replica_restored_from_a_checkpoint_knows_the_membership_of_its_slot() {
    rt().block_on(async {
        let root = tempfile::tempdir().unwrap();
        let mut cfgs = configs(root.path(), false);
        for c in &mut cfgs {
            c.storage.checkpoint_interval_slots = 10;
            c.storage.log_kept_slots = 2;
        }
        let members = cfgs[0].members.clone();
        let (_, mut nodes) = start_all(&cfgs);
        nodes.extend([None, None]);
        write(&nodes, b"first").await;
        let (c4, _, n4) = joiner(root.path(), 4, &members);
        nodes[3] = Some(n4);
        let p = primary_of(&nodes).await;
        let primary = nodes[p].as_ref().unwrap();
        primary.add_learner(4, c4.listen_addr(), Bytes::from_static(b"four")).await.unwrap();
        // Replica 5 is added before it ever runs.
        let c5 = NodeConfig::joining(5, root.path().join("5"), members.clone(), addr());
        let change = primary.add_learner(5, c5.listen_addr(), Bytes::from_static(b"five"));
        let change = change.await.unwrap();
        let expected = change.members.clone();
        assert_eq!(expected.len(), 5);
        // Each write alone in its slot, until every voter checkpointed past the change.
        let past =
            |dir: &std::path::Path| newest_checkpoint(dir).is_some_and(|s| s > change.slot + 4);
        let mut written = 0u32;
        while !cfgs.iter().all(|c| past(&c.data_dir)) {
            assert!(written < 2_000, "no checkpoint past slot {} on every voter", change.slot);
            let payload = Bytes::copy_from_slice(&written.to_le_bytes());
            primary.replicate_exclusive(payload).await.unwrap();
            written += 1;
        }
        // A voter restarted on its directory: the membership of its checkpoint at once.
        let f = (0..3).find(|i| *i != p).unwrap();
        nodes[f].take().unwrap().shutdown();
        let restarted = Node::start(cfgs[f].clone(), Journal::default()).unwrap();
        assert_eq!(restarted.members(), expected, "the restarted voter");
        nodes[f] = Some(restarted);
        // Replica 5 catches up by a checkpoint (the slots it lacks are truncated everywhere)
        // and is a member with the membership of the checkpoint.
        let n5 = Node::start(c5.clone(), Journal::default()).unwrap();
        assert!(n5.status().joining);
        nodes[4] = Some(n5);
        let p = primary_of(&nodes).await;
        let n5 = nodes[4].as_ref().unwrap();
        caught_up(nodes[p].as_ref().unwrap(), n5).await;
        assert!(newest_checkpoint(&c5.data_dir).is_some(), "replica 5 received no checkpoint");
        // The read above may be answered by the executor before the consensus thread has
        // taken in the installed checkpoint's membership: wait for the view to say so.
        let mut view = n5.watch();
        let joined = view.wait_for(|v| !v.joining);
        tokio::time::timeout(WAIT, joined).await.expect("replica 5 still joining").unwrap();
        let st = n5.status();
        assert!(!st.joining, "replica 5 still believes it is joining");
        assert_eq!(st.membership, expected, "replica 5");
        // Both count in the cluster as what they are: 5 may now be promoted.
        let primary = nodes[p].as_ref().unwrap();
        let promoted = until_quorum(|| primary.promote(5)).await.unwrap();
        assert!(voters(&promoted).contains(&5));
        for n in nodes.iter().flatten() {
            n.shutdown();
        }
    });
}
