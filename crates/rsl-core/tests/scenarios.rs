//! Scripted stories on the hand-wired cluster: stickiness, leases and reads, transfer,
//! keeping out of elections, superseded proposals, overload, reconfiguration, checkpoints,
//! catch-up from storage and corrupt slots in phase 1.

mod common;

use common::{Cluster, Outcome};
use rsl_core::{
    Action, Ballot, Config, Event, Input, Membership, ReadId, ReadMode, Recovered, Refusal,
    ReplicaId, Role, Slot, Write,
};

fn ready(c: &Cluster, i: usize, id: ReadId) -> bool {
    c.log.iter().any(|(j, a)| *j == i && matches!(a, Action::ReadReady { id: r } if *r == id))
}

fn refused(c: &Cluster, i: usize, id: ReadId) -> Option<Refusal> {
    c.log.iter().find_map(|(j, a)| match a {
        Action::ReadRefused { id: r, reason } if *j == i && *r == id => Some(reason.clone()),
        _ => None,
    })
}

fn settle(c: &mut Cluster, events: usize) {
    c.run(events);
}

#[test]
fn a_returning_partitioned_replica_does_not_disrupt_the_primary() {
    let mut c = Cluster::new(3, 21);
    let p = c.elect(20_000);
    settle(&mut c, 2_000);
    let ballot = c.replicas[p].status().ballot;
    let f = (p + 1) % 3;
    c.isolated[f] = true;
    c.run(20_000);
    assert!(c.replicas[f].status().counters.elections > 0, "the cut-off replica never tried");
    c.isolated[f] = false;
    c.run(20_000);
    assert_eq!(c.primary(), Some(p), "the primary was deposed");
    assert_eq!(c.replicas[p].status().ballot, ballot, "the ballot changed");
    assert_eq!(c.replicas[f].status().primary, Some(ReplicaId(p as u32 + 1)));
}

#[test]
fn a_primary_with_a_lease_serves_linearizable_reads_at_once() {
    let mut c = Cluster::new(3, 22);
    let p = c.elect(20_000);
    c.propose(p, false);
    settle(&mut c, 3_000);
    // Heartbeats flow in order: a quorum acknowledges a fresh round.
    for _ in 0..10 {
        c.step(p, Input::Tick);
        while !c.net.is_empty() {
            c.deliver_random();
            for i in 0..3 {
                c.sync(i);
            }
        }
    }
    c.step(p, Input::Read { id: ReadId(1), mode: ReadMode::Linearizable });
    assert!(ready(&c, p, ReadId(1)), "a read under the lease waited");
}

#[test]
fn without_a_lease_a_read_waits_for_a_quorum_round() {
    let mut c = Cluster::new(3, 23);
    let p = c.elect(20_000);
    settle(&mut c, 3_000);
    for i in 0..3 {
        c.isolated[i] = i != p;
    }
    for _ in 0..100 {
        c.step(p, Input::Tick);
    }
    c.net.clear();
    c.step(p, Input::Read { id: ReadId(7), mode: ReadMode::Linearizable });
    c.run(300);
    assert!(!ready(&c, p, ReadId(7)), "a read was served without a lease or a quorum");
    c.isolated = vec![false; 3];
    for _ in 0..2_000 {
        c.random_event();
        if ready(&c, p, ReadId(7)) || refused(&c, p, ReadId(7)).is_some() {
            break;
        }
    }
    assert!(ready(&c, p, ReadId(7)) || refused(&c, p, ReadId(7)).is_some(), "the read never ended");
}

#[test]
fn followers_refuse_linearizable_reads_and_serve_fast_reads_once_caught_up() {
    let mut c = Cluster::new(3, 24);
    let p = c.elect(20_000);
    settle(&mut c, 2_000);
    let f = (p + 1) % 3;
    c.step(f, Input::Read { id: ReadId(1), mode: ReadMode::Linearizable });
    let hint = Some(ReplicaId(p as u32 + 1));
    assert_eq!(refused(&c, f, ReadId(1)), Some(Refusal::NotPrimary { primary: hint }));
    let far = Slot(c.replicas[p].status().commit.0 + 1);
    c.step(f, Input::Read { id: ReadId(2), mode: ReadMode::AtLeast(far) });
    assert!(!ready(&c, f, ReadId(2)));
    c.propose(p, false);
    c.run(5_000);
    assert!(ready(&c, f, ReadId(2)), "the fast read never became ready");
}

#[test]
fn reads_beyond_the_limit_are_refused_overloaded() {
    let mut c = Cluster::with(3, 3, 25, |cfg| cfg.reads_queued_max = 2);
    let p = c.elect(20_000);
    for k in 0..3 {
        c.step(p, Input::Read { id: ReadId(k), mode: ReadMode::AtLeast(Slot(1_000)) });
    }
    assert_eq!(refused(&c, p, ReadId(2)), Some(Refusal::Overloaded));
}

#[test]
fn primacy_transfers_to_the_named_replica() {
    let mut c = Cluster::new(3, 26);
    let p = c.elect(20_000);
    c.propose(p, false);
    settle(&mut c, 3_000);
    let t = (p + 2) % 3;
    c.step(p, Input::TransferPrimacy { to: Some(ReplicaId(t as u32 + 1)) });
    let id = c.propose(p, false);
    assert_eq!(
        c.outcomes.get(&id),
        Some(&Outcome::Refused(Refusal::NotPrimary { primary: Some(ReplicaId(t as u32 + 1)) }))
    );
    for _ in 0..20_000 {
        if c.primary() == Some(t) {
            break;
        }
        c.random_event();
    }
    assert_eq!(c.primary(), Some(t), "the target did not take over");
    let id = c.propose(t, false);
    c.run(5_000);
    assert_eq!(c.outcomes.get(&id), Some(&Outcome::Executed));
}

#[test]
fn replicas_kept_out_of_elections_never_stand() {
    let mut c = Cluster::new(3, 27);
    c.step(0, Input::SetCanBecomePrimary(false));
    c.step(1, Input::SetCanBecomePrimary(false));
    let p = c.elect(50_000);
    assert_eq!(p, 2);
    // The primary itself gives up: nobody else may stand, so primacy cannot move...
    c.step(1, Input::SetCanBecomePrimary(true));
    c.step(2, Input::SetCanBecomePrimary(false));
    for _ in 0..50_000 {
        if c.primary() == Some(1) {
            break;
        }
        c.random_event();
    }
    assert_eq!(c.primary(), Some(1), "primacy did not move to the only eligible replica");
    assert!(c.replicas[0].status().counters.elections == 0, "a kept-out replica stood");
}

#[test]
fn proposals_in_lost_slots_are_refused_as_superseded() {
    let mut c = Cluster::new(3, 28);
    let p = c.elect(20_000);
    settle(&mut c, 2_000);
    c.isolated[p] = true;
    let lost: Vec<_> = (0..3).map(|_| c.propose(p, false)).collect();
    c.run(300);
    let q = loop {
        c.random_event();
        if let Some(q) = (0..3).find(|&i| i != p && c.replicas[i].status().role == Role::Primary) {
            break q;
        }
    };
    // The new primary's slots cover the old primary's (an outcome waits for its slot).
    let won = c.propose(q, false);
    for _ in 0..4 {
        c.propose(q, true);
    }
    c.run(2_000);
    c.isolated[p] = false;
    c.run(20_000);
    assert_eq!(c.outcomes.get(&won), Some(&Outcome::Executed));
    for id in lost {
        match c.outcomes.get(&id) {
            Some(Outcome::Refused(Refusal::Superseded { .. } | Refusal::NotPrimary { .. })) => {}
            other => panic!("{id:?}: expected a refusal, got {other:?}"),
        }
    }
}

#[test]
fn a_full_queue_refuses_overloaded() {
    let mut c = Cluster::with(3, 3, 29, |cfg| {
        cfg.proposals_queued_max = 2;
        cfg.pipeline_slots_max = 1;
        cfg.log_memory_entries_max = 1;
    });
    let p = c.elect(20_000);
    c.isolated = vec![true; 3];
    let ids: Vec<_> = (0..5).map(|_| c.propose(p, false)).collect();
    let overloaded = ids
        .iter()
        .filter(|id| c.outcomes.get(id) == Some(&Outcome::Refused(Refusal::Overloaded)))
        .count();
    assert!(overloaded >= 2, "only {overloaded} refused");
}

#[test]
fn a_learner_catches_up_and_becomes_a_voter() {
    let mut c = Cluster::with(4, 3, 30, |_| {});
    assert_eq!(c.replicas[3].status().role, Role::Learner);
    let p = c.elect(20_000);
    for _ in 0..5 {
        c.propose(p, false);
    }
    settle(&mut c, 3_000);
    c.step(p, Input::ChangeMembership(Membership::new([1, 2, 3, 4])));
    c.run(30_000);
    let want = Membership::new([1, 2, 3, 4]);
    for r in &c.replicas {
        assert_eq!(r.status().membership, want, "{:?}", r.status().id);
    }
    assert_eq!(c.replicas[3].status().role, Role::Follower);
    let changes = c
        .log
        .iter()
        .filter(|(_, a)| matches!(a, Action::Notify(Event::ConfigurationChanged { .. })))
        .count();
    assert!(changes >= 8, "two changes on four replicas, got {changes}");
    let p = c.primary().expect("a primary");
    let id = c.propose(p, false);
    c.run(5_000);
    assert_eq!(c.outcomes.get(&id), Some(&Outcome::Executed));
}

#[test]
fn checkpoints_are_requested_and_truncate_the_log() {
    let mut c = Cluster::with(3, 3, 31, |cfg| {
        cfg.checkpoint_interval_slots = 4;
        cfg.log_kept_slots = 1;
    });
    let p = c.elect(20_000);
    for _ in 0..10 {
        c.propose(p, true);
        c.run(200);
    }
    c.run(3_000);
    assert!(c.log.iter().any(|(i, a)| *i == p && matches!(a, Action::TakeCheckpoint)));
    let executed = c.replicas[p].status().executed;
    let mut out = Vec::new();
    c.replicas[p].step(Input::CheckpointSaved { slot: executed }, &mut out);
    let before = Slot(executed.0);
    assert!(
        out.iter().any(|a| matches!(a, Action::Persist { write: Write::TruncatePrefix { before: b }, .. } if *b == before)),
        "{out:?}"
    );
}

#[test]
fn a_lagging_replica_catches_up_from_storage_and_checkpoints() {
    let mut c = Cluster::with(3, 3, 32, |cfg| {
        cfg.pipeline_slots_max = 2;
        cfg.log_memory_entries_max = 2;
        cfg.catchup_entries_max = 3;
    });
    let p = c.elect(20_000);
    settle(&mut c, 1_000);
    let f = (p + 1) % 3;
    c.isolated[f] = true;
    for _ in 0..20 {
        c.propose(p, true);
        c.run(100);
    }
    c.run(2_000);
    c.isolated[f] = false;
    c.run(20_000);
    let commit = c.replicas[p].status().commit;
    assert_eq!(c.replicas[f].status().executed, commit);
    let loads = c.log.iter().filter(|(_, a)| matches!(a, Action::LoadLog { .. })).count();
    assert!(loads > 0, "no catch-up went through storage");
}

#[test]
fn a_slot_lost_to_corruption_blocks_phase_1_until_every_voter_answers() {
    let mut c = Cluster::new(3, 33);
    // Replica 2 accepted slot 1 at ballot (1, 3) and lost the value.
    let corrupt = Recovered {
        promised: Ballot::new(1, ReplicaId(3)),
        corrupt: vec![(Slot(1), Ballot::new(1, ReplicaId(3)))],
        ..Recovered::default()
    };
    c.replicas[1] = rsl_core::Replica::new(common::config(2, 3, 33), corrupt);
    c.step(1, Input::SetCanBecomePrimary(false));
    c.up[2] = false;
    c.run(20_000);
    assert_eq!(c.primary(), None, "a primary guessed a value that may be chosen");
    c.up[2] = true;
    c.step(2, Input::SetCanBecomePrimary(false));
    let p = c.elect(50_000);
    assert_eq!(p, 0);
    c.run(5_000);
    assert!(c.replicas[1].status().executed >= Slot(1), "the corrupt slot was never repaired");
}

#[test]
fn a_restarted_replica_recovers_its_log_and_commit() {
    let mut c = Cluster::new(3, 34);
    let p = c.elect(20_000);
    for _ in 0..5 {
        c.propose(p, false);
    }
    c.run(5_000);
    let f = (p + 1) % 3;
    for i in 0..3 {
        c.sync(i);
    }
    let executed = c.replicas[f].status().executed;
    c.crash(f);
    c.restart(f, 34);
    let mut out = Vec::new();
    c.replicas[f].step(Input::Tick, &mut out);
    let replayed = out.iter().filter(|a| matches!(a, Action::Execute { .. })).count() as u64;
    assert!(replayed > 0 && replayed <= executed.0, "replayed {replayed} of {executed:?}");
}

#[test]
fn configs_are_validated() {
    let mut cfg = Config::new(1, [1, 2, 3]);
    cfg.lease_ticks = cfg.election_ticks_min;
    assert_eq!(cfg.validate().unwrap_err().field, "lease_ticks");
    let mut cfg = Config::new(1, [1, 2, 3]);
    cfg.log_memory_entries_max = 1;
    assert_eq!(cfg.validate().unwrap_err().field, "log_memory_entries_max");
}

#[test]
fn a_primary_cut_off_from_the_majority_steps_down_and_refuses_its_queue() {
    let mut c = Cluster::with(3, 3, 35, |cfg| cfg.pipeline_slots_max = 1);
    let p = c.elect(20_000);
    settle(&mut c, 2_000);
    c.isolated[p] = true;
    let ids: Vec<_> = (0..3).map(|_| c.propose(p, false)).collect();
    for _ in 0..200 {
        c.step(p, Input::Tick);
        c.sync(p);
    }
    assert_ne!(c.replicas[p].status().role, Role::Primary, "an isolated primary kept its role");
    let queued = &ids[1..];
    for id in queued {
        assert!(
            matches!(c.outcomes.get(id), Some(Outcome::Refused(Refusal::NotPrimary { .. }))),
            "{id:?}: {:?}",
            c.outcomes.get(id)
        );
    }
    assert!(c
        .log
        .iter()
        .any(|(i, a)| *i == p && matches!(a, Action::Notify(Event::LostPrimacy { .. }))));
}

#[test]
fn a_transfer_that_does_not_complete_relinquishes_primacy() {
    let mut c = Cluster::new(3, 36);
    let p = c.elect(20_000);
    settle(&mut c, 2_000);
    let t = (p + 1) % 3;
    c.isolated[t] = true;
    c.step(p, Input::TransferPrimacy { to: Some(ReplicaId(t as u32 + 1)) });
    for _ in 0..100 {
        c.step(p, Input::Tick);
    }
    assert_ne!(
        c.replicas[p].status().role,
        Role::Primary,
        "a failed transfer resumed at the same ballot"
    );
    c.isolated[t] = false;
    let q = c.elect(50_000);
    let id = c.propose(q, false);
    c.run(5_000);
    assert_eq!(c.outcomes.get(&id), Some(&Outcome::Executed));
}

#[test]
fn a_new_primary_reports_when_it_has_recovered() {
    let mut c = Cluster::new(3, 37);
    let p = c.elect(20_000);
    c.run(3_000);
    let events: Vec<&Event> = c
        .log
        .iter()
        .filter_map(|(i, a)| if let Action::Notify(e) = a { (*i == p).then_some(e) } else { None })
        .collect();
    assert!(matches!(events.first(), Some(Event::BecamePrimary { .. })), "{events:?}");
    assert!(events.contains(&&Event::PrimaryRecovered), "{events:?}");
}

#[test]
fn a_removed_voter_stops_counting() {
    let mut c = Cluster::new(3, 38);
    let p = c.elect(20_000);
    settle(&mut c, 2_000);
    let gone = (p + 1) % 3;
    let keep: Vec<u32> = (0..3).filter(|i| *i != gone).map(|i| i as u32 + 1).collect();
    c.step(p, Input::ChangeMembership(Membership::new(keep.clone())));
    c.run(10_000);
    assert_eq!(c.replicas[p].status().membership, Membership::new(keep));
    assert_eq!(c.replicas[gone].status().role, Role::Learner);
    // The two remaining voters commit without the removed one.
    c.up[gone] = false;
    let id = c.propose(p, false);
    c.run(5_000);
    assert_eq!(c.outcomes.get(&id), Some(&Outcome::Executed));
}

#[test]
fn the_primary_reports_its_peers_health() {
    let mut c = Cluster::new(3, 39);
    let p = c.elect(20_000);
    c.propose(p, false);
    c.run(3_000);
    let status = c.replicas[p].status();
    assert_eq!(status.peers.len(), 2);
    for peer in &status.peers {
        assert!(peer.last_contact.is_some(), "{peer:?}");
        assert!(peer.commit.0 + 1 >= status.commit.0, "{peer:?} lags {:?}", status.commit);
    }
    let f = (p + 1) % 3;
    assert!(c.replicas[f].status().peers.is_empty());
}

#[test]
fn a_lagging_candidate_catches_up_before_completing_phase_1() {
    let mut c = Cluster::with(3, 3, 40, |cfg| {
        cfg.pipeline_slots_max = 2;
        cfg.promise_entries_max = 2;
        cfg.catchup_entries_max = 4;
    });
    let p = c.elect(20_000);
    settle(&mut c, 1_000);
    let f = (p + 1) % 3;
    let g = (p + 2) % 3;
    c.isolated[f] = true;
    for _ in 0..20 {
        c.propose(p, true);
        c.run(100);
    }
    c.run(2_000);
    let commit = c.replicas[p].status().commit;
    assert!(commit >= Slot(15), "commit {commit:?}");
    c.crash(p);
    c.step(g, Input::SetCanBecomePrimary(false));
    c.isolated[f] = false;
    for _ in 0..100_000 {
        if c.primary() == Some(f) {
            break;
        }
        c.random_event();
    }
    assert_eq!(c.primary(), Some(f), "the lagging replica never completed phase 1");
    assert!(c.replicas[f].status().counters.catchups > 0);
    assert!(c.replicas[f].status().commit >= commit, "the new primary lost committed slots");
}

/// One tick for every replica, then every message delivered and every disk synced.
fn lockstep(c: &mut Cluster) {
    for i in 0..c.replicas.len() {
        c.step(i, Input::Tick);
    }
    while !c.net.is_empty() {
        c.deliver_random();
        for i in 0..c.replicas.len() {
            c.sync(i);
        }
    }
}

#[test]
fn a_cut_off_primary_stops_serving_lease_reads_before_another_primary_exists() {
    let mut c = Cluster::new(3, 41);
    let p = c.elect(20_000);
    for _ in 0..20 {
        lockstep(&mut c);
    }
    c.step(p, Input::Read { id: ReadId(0), mode: ReadMode::Linearizable });
    assert!(ready(&c, p, ReadId(0)), "no lease to begin with");
    c.isolated[p] = true;
    let mut lease_reads = 0;
    for k in 1..400 {
        lockstep(&mut c);
        let other = (0..3).find(|&i| i != p && c.replicas[i].status().role == Role::Primary);
        let id = ReadId(k);
        c.step(p, Input::Read { id, mode: ReadMode::Linearizable });
        if ready(&c, p, id) {
            lease_reads += 1;
            assert!(
                other.is_none(),
                "tick {k}: a lease read at the old primary while {other:?} leads"
            );
        }
        if other.is_some() {
            return assert!(lease_reads > 0, "the lease never covered a read after the cut");
        }
    }
    panic!("no new primary was elected");
}

#[test]
fn proposals_skipped_by_an_installed_checkpoint_have_an_unknown_outcome() {
    // The primary proposes with its accepts lost, then learns (through a peer's checkpoint)
    // that the cluster moved far past its slot: whether its request was executed is not
    // known here, and must not be reported as definitely superseded (a client would retry).
    let mut c = Cluster::new(3, 61);
    let p = c.elect(20_000);
    settle(&mut c, 2_000);
    c.isolated[p] = true;
    let id = c.propose(p, false);
    c.run(200);
    assert_eq!(c.outcomes.get(&id), None, "no outcome yet while cut off");
    c.step(p, Input::CheckpointInstalled { slot: Slot(1_000), membership: None });
    assert_eq!(c.outcomes.get(&id), Some(&Outcome::Refused(Refusal::OutcomeUnknown)));
    assert_eq!(c.replicas[p].status().executed, Slot(1_000));
}
