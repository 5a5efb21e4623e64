//! The story of a wiped disk, told twice on the same script: with the core's rule (a
//! replica that lost its disk rebuilds before it promises or votes) the cluster waits and
//! keeps the chosen write; with the planted bug `WipedReplicaVotes` the simulator's checkers
//! catch the lost write. The core's other stories are in `rsl-core/tests/` (replication,
//! elections, reads, recovery, membership, checkpoints), on this same harness.

use rsl_core::{ReplicaId, Slot};
use rsl_sim::{Options, Sim, ELECTION_WAIT_TICKS};

/// The story of a wiped voter: slot s is chosen by the primary and one follower (the
/// "voter"); the other follower ("away") never saw it. The primary goes down and the voter
/// loses its whole disk and restarts empty. Returns the cluster 600 ticks later, with the
/// primary still down: the only copies of s are on the primary's disk and in the voter's
/// lost vote.
fn a_voter_loses_its_disk(options: Options) -> (Sim, [ReplicaId; 3], Slot) {
    let mut sim = Sim::new(options);
    let p = sim.elect();
    sim.append(p, 0, 1);
    let fs = sim.others(p);
    let (voter, away) = (fs[0], fs[1]);
    sim.isolate(away);
    let s = sim.append(p, 0, 2);
    sim.crash_with(p, false);
    sim.wipe(voter);
    sim.heal();
    sim.restart(voter);
    sim.run_ticks(600);
    (sim, [p, voter, away], s)
}

#[test]
fn a_replica_whose_disk_was_wiped_does_not_vote_until_rebuilt() {
    // Were the voter to promise as if it had never voted, "away" and the voter would form a
    // quorum that knows nothing of s and fill it with a no-op (the planted bug below shows
    // the simulator catching exactly that). Rebuilding, it refuses: no primary until the old
    // one returns, then s keeps its value, and the voter rebuilds and votes again.
    let (mut sim, [p, voter, away], s) = a_voter_loses_its_disk(Options::quiet(3, 27));
    sim.assert_no_failure();
    assert_eq!(sim.primary(), None, "a quorum formed with a replica that lost its votes");
    assert!(sim.status(voter).unwrap().rebuilding);
    assert!(sim.disk(voter).durable().rebuilding, "the marker is not durable");
    assert!(sim.executed(away) < s, "away learned slot {} without the primary", s.0);
    sim.restart(p);
    let elected = sim.run_until(|s| s.primary().is_some(), ELECTION_WAIT_TICKS);
    assert!(elected, "no primary once the old one is back");
    let elected_at = sim.status(sim.primary().unwrap()).unwrap().ballot;
    let rebuilt = sim.run_until(|s| !s.disk(voter).durable().rebuilding, 400);
    sim.assert_no_failure();
    assert!(rebuilt, "the voter did not finish rebuilding");
    // A phase 1 that began after the wipe (the election's own, when the voter's rebuild
    // request reached the candidate in time, or a fresh one the primary ran for it) rebuilt
    // the voter, at a ballot it promised.
    let q = sim.primary().expect("a primary after the rebuild");
    let ballot = sim.status(q).unwrap().ballot;
    assert!(ballot >= elected_at, "the primary's ballot went down");
    let status = sim.status(voter).unwrap();
    assert!(!status.rebuilding && status.promised >= ballot, "{status:?}");
    sim.append(q, 0, 3);
    sim.converge();
    for id in sim.ids() {
        assert_eq!(sim.kv(id).unwrap().value(0), &[1, 2, 3], "{id:?}");
    }
    // The rebuilt voter votes again: with the primary's old peer cut off, it forms the quorum.
    let q = sim.primary().unwrap();
    let other = [p, away].into_iter().find(|i| *i != q).unwrap();
    sim.isolate(other);
    sim.append(q, 0, 4);
    sim.heal();
    sim.converge();
    sim.end();
}

#[cfg(feature = "planted-bugs")]
#[test]
fn a_wiped_replica_that_votes_at_once_loses_a_chosen_write() {
    // The same story with the planted bug `WipedReplicaVotes`: the voter skips the rebuild,
    // "away" wins with its promise and fills s with a no-op over the chosen write.
    let options = Options { bug: Some("WipedReplicaVotes".into()), ..Options::quiet(3, 27) };
    let (mut sim, [p, ..], s) = a_voter_loses_its_disk(options);
    sim.restart(p);
    sim.run_ticks(300);
    sim.finish();
    let failure = sim.failure().expect("the lost vote went unnoticed");
    assert!(
        matches!(failure.check, rsl_sim::Check::Agreement | rsl_sim::Check::AckedWriteLost),
        "slot {}: {failure}",
        s.0
    );
}

/// A follower's machine crash with several unsynced accepts, torn (`tear_permille` 1000);
/// returns the suspects its recovery reports. With `wipe_first`, the other follower lost its
/// disk just before and is rebuilding. One request per slot: the proposals of one instant
/// would otherwise share a slot, one write.
fn torn_crash(seed: u64, wipe_first: bool) -> usize {
    let options = Options { tear_permille: 1000, batch_requests_max: 1, ..Options::quiet(3, seed) };
    let mut sim = Sim::new(options);
    let p = sim.elect();
    sim.append(p, 0, 1);
    let fs = sim.others(p);
    let (x, w) = (fs[0], fs[1]);
    if wipe_first {
        sim.wipe(w);
        sim.restart(w);
    }
    sim.hold_fsync(x, true);
    for token in 2..=6 {
        sim.propose(p, rsl_sim::kv::Op::Append { key: 0, token });
    }
    sim.run_ticks(3);
    assert!(sim.disk(x).unsynced() >= 3, "no unsynced writes to tear");
    sim.crash_with(x, true);
    sim.restart(x);
    sim.assert_no_failure();
    sim.disk(x).durable().corrupt.len()
}

#[test]
fn while_a_replica_rebuilds_a_machine_crash_elsewhere_does_not_tear() {
    // A torn tail leaves suspects (possibly accepted records recovery cannot read), which
    // phase 1 treats like corrupt records: with a replica rebuilding too, a three-replica
    // cluster would have two replicas that lost data, beyond the fault model, and stall (the
    // default swarm's seeds 5005340 and 5016162 did). The simulator keeps lost data to one
    // replica at a time: the crash loses the unsynced writes cleanly instead.
    let seeds = 0..20;
    let torn = seeds.clone().filter(|s| torn_crash(*s, false) > 0).count();
    assert!(torn > 0, "no torn crash left suspects: the control proves nothing");
    for seed in seeds {
        assert_eq!(torn_crash(seed, true), 0, "seed {seed}: torn during a rebuild");
    }
}

#[test]
fn a_record_rotting_on_a_crashed_replica_forbids_a_wipe_elsewhere_at_once() {
    // Rot at rest on a crashed replica is lost data from the moment it rots, although its
    // recovery reports it only at the restart. Were another replica wiped in between, a
    // three-voter cluster would hold two replicas that lost data, beyond the fault model:
    // phase 1 waits for every voter's promise to rule out the corrupt slot, and the wiped
    // one promises nothing until rebuilt, which needs a phase 1 (`--reconfig --seed
    // 70046707` waited for good). The swarm draws a wipe only where `may_wipe` allows it.
    let mut sim = Sim::new(Options::quiet(3, 1));
    let p = sim.elect();
    let s = sim.append(p, 0, 1);
    sim.converge();
    let fs = sim.others(p);
    let (rotten, w) = (fs[0], fs[1]);
    assert!(sim.may_wipe(w), "the control: a wipe is allowed while no disk lost data");
    sim.crash(rotten);
    assert!(sim.may_wipe(w), "a clean crash is no lost data");
    assert!(sim.corrupt_record(rotten, s), "no record of slot {} to rot", s.0);
    assert!(!sim.may_wipe(w), "a wipe allowed while a crashed replica's record rotted");
    sim.restart(rotten);
    assert!(!sim.disk(rotten).durable().corrupt.is_empty(), "the recovery missed the rot");
    assert!(!sim.may_wipe(w), "a wipe allowed while a replica holds a corrupt record");
    sim.converge();
    sim.end();
}

#[test]
fn beside_a_disk_that_corrupts_on_write_a_machine_crash_elsewhere_does_not_tear() {
    // A disk that corrupts records on write may hold a bad copy of a slot nobody has read
    // yet: latent lost data. A torn tail on another replica (suspects) could hit the same
    // slot, two replicas without its value: seed 72012642 of the default swarm, two voters,
    // waited for good. So beside such a disk a machine crash loses unsynced writes cleanly.
    let mut torn = 0;
    // A tear leaves suspects in a few crashes in a hundred (4 of seeds 0..100).
    for seed in 0..100 {
        let options = Options { tear_permille: 1000, ..Options::quiet(3, seed) };
        let latent = Options { write_corrupt_permille: 1, ..options.clone() };
        for (options, beside_latent) in [(options, false), (latent, true)] {
            let mut sim = Sim::new(options);
            let p = sim.elect();
            sim.append(p, 0, 1);
            let faulty = |sim: &Sim, id| sim.disk(id).faults.write_corrupt_permille > 0;
            let others = sim.others(p);
            let Some(x) = others.iter().copied().find(|x| !faulty(&sim, *x)) else { continue };
            if beside_latent && !sim.ids().into_iter().any(|id| faulty(&sim, id)) {
                continue;
            }
            sim.hold_fsync(x, true);
            // A sync already in flight completes (and, syncing the whole store, would make
            // the writes below durable): let it end before they come.
            sim.run_ticks(1);
            for token in 2..=6 {
                sim.propose(p, rsl_sim::kv::Op::Append { key: 0, token });
            }
            sim.run_ticks(3);
            sim.crash_with(x, true);
            sim.restart(x);
            let suspects = sim.disk(x).durable().corrupt.len();
            if beside_latent {
                assert_eq!(suspects, 0, "seed {seed}: torn beside a disk that corrupts on write");
            } else {
                torn += usize::from(suspects > 0);
            }
        }
    }
    assert!(torn > 0, "no torn crash left suspects: the control proves nothing");
}
