//! Scenarios on a hand-wired cluster: election, replication, failover, outcomes.

mod common;

use common::{Cluster, Outcome};
use rsl_core::{Input, Role, Slot};

#[test]
fn three_replicas_elect_a_primary_and_replicate() {
    let mut c = Cluster::new(3, 7);
    let p = c.elect(20_000);
    let ids: Vec<_> = (0..50).map(|k| c.propose(p, k % 10 == 0)).collect();
    c.run(20_000);
    for id in &ids {
        assert_eq!(c.outcomes.get(id), Some(&Outcome::Executed), "{id:?}");
    }
    let commit = c.replicas[p].status().commit;
    assert!(commit >= Slot(2), "commit {commit:?}");
    for i in 0..3 {
        assert_eq!(c.replicas[i].status().executed, commit, "replica {i} executed everything");
    }
}

#[test]
fn a_follower_refuses_proposals_with_a_hint() {
    let mut c = Cluster::new(3, 11);
    let p = c.elect(20_000);
    c.run(2_000);
    let f = (p + 1) % 3;
    let id = c.propose(f, false);
    match c.outcomes.get(&id) {
        Some(Outcome::Refused(rsl_core::Refusal::NotPrimary { primary })) => {
            assert_eq!(*primary, Some(rsl_core::ReplicaId(p as u32 + 1)))
        }
        other => panic!("expected NotPrimary, got {other:?}"),
    }
}

#[test]
fn failover_after_the_primary_dies() {
    let mut c = Cluster::new(3, 3);
    let p = c.elect(20_000);
    for _ in 0..10 {
        c.propose(p, false);
    }
    c.run(3_000);
    c.up[p] = false;
    c.net.retain(|m| m.from.0 as usize != p + 1);
    let q = c.elect(200_000);
    assert_ne!(p, q);
    let id = c.propose(q, false);
    c.run(20_000);
    assert_eq!(c.outcomes.get(&id), Some(&Outcome::Executed));
}

#[test]
fn lossy_network_keeps_agreement_and_outcomes() {
    for seed in 1..6 {
        let mut c = Cluster::new(3, seed);
        c.loss_permille = 100;
        c.dup_permille = 50;
        let mut n = 0;
        for _ in 0..40 {
            if let Some(p) = c.primary() {
                c.propose(p, false);
                n += 1;
            }
            c.run(500);
        }
        c.loss_permille = 0;
        c.dup_permille = 0;
        c.run(30_000);
        assert!(n > 0);
        assert!(c.all_settled(), "seed {seed}: a proposal has no outcome");
        let p = c.primary().expect("a primary");
        assert_eq!(c.replicas[p].status().role, Role::Primary);
    }
}

#[test]
fn single_replica_cluster_commits_alone() {
    let mut c = Cluster::new(1, 5);
    let p = c.elect(1_000);
    let id = c.propose(p, false);
    for _ in 0..10 {
        c.sync(0);
        c.step(0, Input::Tick);
    }
    assert_eq!(c.outcomes.get(&id), Some(&Outcome::Executed));
}
