//! The fault model's unit tests (`super`).

use super::faulty_disks;
use crate::options::Options;
use crate::rng::Rng;

/// A chain of `grow_lost_permille` under way will rot a slot of its victim: no other
/// replica's disk may be wiped meanwhile, or two replicas lose data at once (seed
/// 87792068: the chain began at tick 524 with replica 1 as its victim, replica 3's disk
/// was wiped at 533, the chain rotted replica 1's slot 52 at 732 while 3 rebuilt, and
/// no phase 1 could rule the slot out without 3's promise: the cluster waited for good).
#[test]
fn no_wipe_while_a_growth_that_loses_a_slot_is_under_way() {
    use super::super::{GrowLost, Sim};
    use rsl_core::{Membership, ReplicaId};
    let o = Options { replicas: 3, learners: 2, grow_lost_permille: 20, ..Options::quiet(3, 7) };
    let mut sim = Sim::new(o);
    assert!(sim.may_wipe(ReplicaId(3)), "the control: a wipe with nothing else lost");
    sim.grow_lost = Some(GrowLost {
        p: ReplicaId(2),
        r: ReplicaId(1),
        c: ReplicaId(3),
        learners: vec![ReplicaId(4), ReplicaId(5)],
        target: Membership::new([1, 2, 3, 4, 5]),
        slot: None,
        until: u64::MAX,
        notes_from: 0,
    });
    assert!(!sim.may_wipe(ReplicaId(3)), "a wipe beside the chain's victim");
    assert!(sim.may_wipe(ReplicaId(1)), "the victim's own disk: still one replica");
}

/// The fault model's bound holds a wiped disk beside nothing else lost, and is exceeded by
/// a second replica's loss beside it in a cluster of one faulty disk (seed 87792068's
/// shape: a wipe, then the chain's rot of another replica), which names the replicas;
/// safety-only mode has no bound.
#[test]
fn the_fault_model_bound_allows_one_loss_per_faulty_disk_and_one_wipe() {
    use super::super::Sim;
    use crate::disk::{Disk, DiskFaults};
    use rsl_core::ReplicaId;
    let o = Options { replicas: 3, learners: 2, grow_lost_permille: 20, ..Options::quiet(3, 7) };
    let mut sim = Sim::new(o);
    assert_eq!(sim.nodes.iter().filter(|n| n.faulty).count(), 1, "one faulty disk");
    assert_eq!(sim.over_the_fault_model(), None);
    sim.nodes[2].disk = Disk::wiped(1, None, DiskFaults::default());
    assert!(sim.lost_data(2), "a wiped disk holds lost data until it rebuilt");
    assert_eq!(sim.over_the_fault_model(), None, "one wipe alone");
    sim.nodes[0].disk = Disk::wiped(2, None, DiskFaults::default());
    assert_eq!(sim.over_the_fault_model(), Some(vec![ReplicaId(1), ReplicaId(3)]));
    sim.options = Options { safety_only: true, ..sim.options.clone() };
    assert_eq!(sim.over_the_fault_model(), None, "safety-only mode has no bound");
}

/// Five replicas may hold two faulty disks, unless membership changes may shrink the
/// cluster to three voters, of which two faulty disks would be a majority.
#[test]
fn a_cluster_that_may_shrink_to_three_has_one_faulty_disk() {
    let faulty = |o: &Options| faulty_disks(o, &mut Rng::new(7)).iter().filter(|f| **f).count();
    let fixed = Options::quiet(5, 7);
    assert_eq!(faulty(&fixed), 2, "the control: two faulty disks of five");
    let changing = Options { reconfig_permille: 5, ..Options::quiet(5, 7) };
    assert_eq!(faulty(&changing), 1, "two faulty disks where three voters may remain");
    let spares = Options { spares: 1, reconfig_permille: 5, ..Options::quiet(5, 7) };
    assert_eq!(faulty(&spares), 1);
}

/// The path of `Options::grow_lost_permille` starts only with its faulty disk on one of
/// the three voters; drawn among all five replicas, it sat on a learner on two seeds in
/// five and the path never started there.
#[test]
fn the_faulty_disk_of_a_growth_that_loses_a_slot_is_a_voters() {
    let o = Options { replicas: 3, learners: 2, grow_lost_permille: 20, ..Options::quiet(3, 7) };
    for seed in 0..50 {
        let faulty = faulty_disks(&o, &mut Rng::new(seed));
        let at: Vec<usize> = (0..faulty.len()).filter(|i| faulty[*i]).collect();
        assert!(at.len() == 1 && at[0] < 3, "seed {seed}: faulty disks at {at:?}");
    }
    // The control: without the knob, the one faulty disk of five lands on a learner too.
    let control = Options { grow_lost_permille: 0, spares: 1, ..o };
    let on_learner =
        (0..50).any(|seed| faulty_disks(&control, &mut Rng::new(seed))[3..].contains(&true));
    assert!(on_learner, "the control never put the faulty disk on a learner");
}
