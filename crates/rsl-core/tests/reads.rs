//! Stories of reads on the simulator's harness (`rsl_sim::Sim`): lease reads at the primary,
//! quorum rounds without a lease, a lease that ends before another primary can exist, fast
//! reads, and stale reads a deposed or paused primary must not serve. Every story ends with
//! all of the simulator's checkers, linearizability of the scripted reads included.

use rsl_core::{Input, ReadMode, Refusal, Role, Slot};
use rsl_sim::driver::Reply;
use rsl_sim::{Options, Sim, ELECTION_WAIT_TICKS};

fn quiet(replicas: usize, seed: u64) -> Sim {
    Sim::new(Options::quiet(replicas, seed))
}

#[test]
fn a_primary_with_a_lease_serves_linearizable_reads_at_once() {
    let mut sim = quiet(3, 22);
    let p = sim.elect();
    sim.append(p, 0, 1);
    sim.run_ticks(10);
    let t = sim.read(p, 0, ReadMode::Linearizable);
    assert!(matches!(sim.reply(t), Some(Reply::Done { .. })), "a read under the lease waited");
    assert_eq!(sim.kv(p).unwrap().value(0), &[1]);
    sim.end();
}

#[test]
fn without_a_lease_a_read_waits_for_a_quorum_round() {
    // The primary hears nobody for 22 ticks: its lease (20 ticks) is gone, though nobody has
    // timed out yet (an election timeout is at least 30). A read must wait for a heartbeat
    // round that a quorum acknowledges.
    let mut sim = quiet(3, 23);
    let p = sim.elect();
    sim.append(p, 0, 1);
    sim.isolate(p);
    sim.run_ticks(22);
    assert_eq!(sim.status(p).unwrap().role, Role::Primary);
    let t = sim.read(p, 0, ReadMode::Linearizable);
    assert!(sim.reply(t).is_none(), "a read was served without a lease");
    sim.run_ticks(1);
    assert!(sim.reply(t).is_none(), "a read was served without a quorum");
    sim.heal();
    assert!(sim.run_until(|s| s.reply(t).is_some(), 20), "the read never ended");
    assert!(matches!(sim.reply(t), Some(Reply::Done { .. })), "{:?}", sim.reply(t));
    sim.end();
}

#[test]
fn a_cut_off_primary_stops_serving_lease_reads_before_another_primary_exists() {
    let mut sim = quiet(3, 41);
    let p = sim.elect();
    sim.append(p, 0, 1);
    let t = sim.read(p, 0, ReadMode::Linearizable);
    assert!(sim.reply(t).is_some(), "no lease to begin with");
    sim.isolate(p);
    let mut lease_reads = 0;
    for tick in 0..ELECTION_WAIT_TICKS {
        let other = sim.primary_other_than(p);
        let t = sim.read(p, 0, ReadMode::Linearizable);
        if matches!(sim.reply(t), Some(Reply::Done { .. })) {
            lease_reads += 1;
            assert!(other.is_none(), "tick {tick}: a lease read at {p:?} while {other:?} leads");
        }
        if other.is_some() {
            assert!(lease_reads > 0, "the lease never covered a read after the cut");
            sim.heal();
            return sim.end();
        }
        sim.run_ticks(1);
    }
    panic!("no new primary was elected");
}

#[test]
fn followers_refuse_linearizable_reads_and_name_the_primary() {
    let mut sim = quiet(3, 24);
    let p = sim.elect();
    let f = sim.others(p)[0];
    let t = sim.read(f, 0, ReadMode::Linearizable);
    let hint = Reply::Refused(Refusal::NotPrimary { primary: Some(p) });
    assert_eq!(sim.reply(t), Some(&hint));
    sim.end();
}

#[test]
fn a_fast_read_waits_for_its_slot() {
    // A fast read waits at a cut-off follower until it has executed the slot it asks for.
    let mut sim = quiet(3, 18);
    let p = sim.elect();
    let f = sim.others(p)[0];
    let slot = sim.append(p, 0, 1);
    sim.isolate(f);
    let slot2 = sim.append(p, 0, 2);
    assert!(slot2 > slot);
    let t = sim.read(f, 0, ReadMode::AtLeast(slot2));
    sim.run_ticks(20);
    assert!(sim.reply(t).is_none(), "a fast read served before its slot");
    sim.heal();
    assert!(sim.run_until(|s| s.reply(t).is_some(), 200));
    match sim.reply(t) {
        Some(Reply::Done { slot, .. }) => assert!(*slot >= slot2),
        other => panic!("the fast read answered {other:?}"),
    }
    assert_eq!(sim.kv(f).unwrap().value(0), &[1, 2]);
    sim.end();
}

#[test]
fn reads_beyond_the_limit_are_refused_overloaded() {
    let mut sim = Sim::new(Options { reads_queued_max: 2, ..Options::quiet(3, 25) });
    let p = sim.elect();
    let far = ReadMode::AtLeast(Slot(1_000));
    let tickets: Vec<u64> = (0..3).map(|_| sim.read(p, 0, far)).collect();
    assert!(sim.reply(tickets[1]).is_none(), "a read within the limit was answered");
    assert_eq!(sim.reply(tickets[2]), Some(&Reply::Refused(Refusal::Overloaded)));
    sim.end();
}

#[test]
fn a_deposed_primary_does_not_serve_a_stale_read() {
    // The primary is cut off; the others elect a new one that commits a write. A linearizable
    // read at the old primary must not return the old value (its lease must have expired).
    let mut sim = quiet(3, 15);
    let p = sim.elect();
    sim.append(p, 0, 1);
    let t = sim.read(p, 0, ReadMode::Linearizable);
    assert!(sim.run_until(|s| s.reply(t).is_some(), 50));
    assert!(matches!(sim.reply(t), Some(Reply::Done { .. })));
    sim.isolate(p);
    let ok = sim.run_until(|s| s.primary_other_than(p).is_some(), ELECTION_WAIT_TICKS);
    assert!(ok, "no new primary");
    let q = sim.primary_other_than(p).unwrap();
    sim.append(q, 0, 2);
    let stale = sim.read(p, 0, ReadMode::Linearizable);
    sim.run_ticks(50);
    if let Some(Reply::Done { .. }) = sim.reply(stale) {
        let value = sim.kv(p).unwrap().value(0).to_vec();
        assert!(value.contains(&2), "stale read served by a deposed primary: {value:?}");
    }
    sim.heal();
    sim.end();
}

#[test]
fn a_paused_primary_does_not_serve_a_stale_read_when_it_resumes() {
    // The primary pauses right after renewing its lease; a new primary commits; on resume it
    // first learns how much time passed, so its lease is gone.
    let mut sim = quiet(3, 16);
    let p = sim.elect();
    sim.append(p, 0, 1);
    sim.pause(p);
    let ok = sim.run_until(|s| s.primary().is_some_and(|q| q != p), ELECTION_WAIT_TICKS);
    assert!(ok, "no new primary while the old one is paused");
    let q = sim.primary().unwrap();
    sim.append(q, 0, 2);
    let stale = sim.read(p, 0, ReadMode::Linearizable); // queued while paused
    sim.resume(p);
    sim.run_ticks(60);
    if let Some(Reply::Done { .. }) = sim.reply(stale) {
        let value = sim.kv(p).unwrap().value(0).to_vec();
        assert!(value.contains(&2), "stale read after a pause: {value:?}");
    }
    sim.end();
}

#[test]
fn a_lease_read_after_a_primary_change_sees_the_new_writes() {
    let mut sim = quiet(5, 17);
    let p = sim.elect();
    sim.append(p, 3, 1);
    let to = sim.others(p)[0];
    sim.input(p, Input::TransferPrimacy { to: Some(to) });
    assert!(sim.run_until(|s| s.primary() == Some(to), 100));
    sim.append(to, 3, 2);
    for id in sim.ids() {
        let t = sim.read(id, 3, ReadMode::Linearizable);
        sim.run_ticks(30);
        if let Some(Reply::Done { .. }) = sim.reply(t) {
            assert_eq!(sim.kv(id).unwrap().value(3), &[1, 2], "{id:?} served a stale read");
        }
    }
    sim.end();
}
