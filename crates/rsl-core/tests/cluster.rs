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

mod random {
    use super::common::{Cluster, TestRng};
    use proptest::prelude::*;

    /// Runs a random schedule with loss, duplication, reordering, slow disks and crashes,
    /// then heals everything and checks liveness: every proposal settled, all replicas
    /// executed the same slots. Agreement and in-order execution are checked at every step.
    fn schedule(seed: u64, n: u32, crashes: bool) -> Cluster {
        let mut c = Cluster::new(n, seed);
        let mut rng = TestRng(seed ^ 0x5eed);
        c.loss_permille = 50;
        c.dup_permille = 30;
        let mut down: Vec<usize> = Vec::new();
        for _ in 0..30 {
            let i = rng.below(u64::from(n)) as usize;
            let target = c.primary().unwrap_or(i);
            for _ in 0..rng.below(4) {
                c.propose(target, rng.below(5) == 0);
            }
            c.run(300);
            if rng.below(8) == 0 {
                if let Some(p) = c.primary() {
                    c.step(p, rsl_core::Input::TransferPrimacy { to: None });
                }
            }
            if crashes && rng.below(6) == 0 && down.len() < (n as usize - 1) / 2 {
                let victim = rng.below(u64::from(n)) as usize;
                if c.up[victim] {
                    c.crash(victim);
                    down.push(victim);
                }
            } else if let Some(i) = down.pop() {
                c.restart(i, seed);
            }
        }
        for i in down {
            c.restart(i, seed);
        }
        c.loss_permille = 0;
        c.dup_permille = 0;
        c.run(30_000 * n as usize / 3);
        c
    }

    fn check_healed(c: &Cluster) -> Result<(), TestCaseError> {
        prop_assert!(c.all_settled(), "a proposal has no outcome");
        let p = c.primary();
        prop_assert!(p.is_some(), "no primary after healing");
        let commit = c.replicas[p.unwrap()].status().commit;
        for r in &c.replicas {
            prop_assert_eq!(r.status().executed, commit, "{:?} lags", r.status().id);
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        #[test]
        fn three_replicas_agree_under_random_schedules(seed in any::<u64>()) {
            let c = schedule(seed, 3, false);
            check_healed(&c)?;
        }

        #[test]
        fn replicas_agree_through_crashes(seed in any::<u64>(), five in any::<bool>()) {
            let c = schedule(seed, if five { 5 } else { 3 }, true);
            check_healed(&c)?;
        }
    }
}
