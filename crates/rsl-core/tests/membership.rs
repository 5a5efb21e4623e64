//! Stories of membership changes on the simulator's harness (`rsl_sim::Sim`): a learner
//! joins and becomes a voter, a removed voter stops counting, a primary removes itself, and
//! the new voters are not stranded when the commit of a change is lost. Every story ends with
//! all of the simulator's checkers. (The rules of reconfiguration no seed exercises are
//! pinned on a lone replica in `reconfig.rs`.)

use rsl_core::message::Body;
use rsl_core::{Input, Membership, Notification, ReplicaId, Role};
use rsl_sim::{Options, Sim, ELECTION_WAIT_TICKS};

fn quiet(replicas: usize, seed: u64) -> Sim {
    Sim::new(Options::quiet(replicas, seed))
}

fn r(id: u32) -> ReplicaId {
    ReplicaId(id)
}

#[test]
fn a_new_replica_joins_as_a_learner_and_becomes_a_voter() {
    // Three voters and one spare; the spare is added, catches up, and the cluster commits
    // with it as a voter while one old voter is removed.
    let options = Options { spares: 1, ..Options::quiet(3, 28) };
    let mut sim = Sim::new(options);
    assert_eq!(sim.status(r(4)).unwrap().role, Role::Learner);
    let p = sim.elect();
    for token in 1..=5 {
        sim.append(p, 0, token);
    }
    let old = sim.others(p).into_iter().find(|o| *o != r(4)).unwrap();
    let voters: Vec<u32> = [1, 2, 3, 4].into_iter().filter(|v| *v != old.0).collect();
    sim.input(p, Input::ChangeMembership(Membership::new(voters.clone())));
    let ok = sim.run_until(
        |s| s.status(r(4)).is_some_and(|st| st.membership.is_voter(r(4))),
        ELECTION_WAIT_TICKS,
    );
    sim.assert_no_failure();
    assert!(ok, "the new replica never became a voter");
    // Two changes: the current voters with the new replica as a learner, then the target.
    let changes = sim.notifications(r(4)).iter();
    let changes =
        changes.filter(|e| matches!(e, Notification::ConfigurationChanged { .. })).count();
    assert_eq!(changes, 2, "{:?}", sim.notifications(r(4)));
    let q = sim.elect();
    sim.append(q, 0, 6);
    assert!(sim.run_until(|s| s.executed(r(4)) >= s.executed(q), 100));
    assert_eq!(sim.kv(r(4)).unwrap().value(0), &[1, 2, 3, 4, 5, 6]);
    sim.end();
}

#[test]
fn a_removed_voter_stops_counting() {
    let mut sim = quiet(3, 38);
    let p = sim.elect();
    sim.append(p, 0, 1);
    let gone = sim.others(p)[0];
    let keep: Vec<u32> = sim.ids().into_iter().filter(|i| *i != gone).map(|i| i.0).collect();
    sim.input(p, Input::ChangeMembership(Membership::new(keep.clone())));
    let ok = sim.run_until(|s| s.status(gone).unwrap().role == Role::Learner, 100);
    assert!(ok, "the removed voter still votes");
    assert_eq!(sim.status(p).unwrap().membership, Membership::new(keep));
    // The two remaining voters commit without the removed one.
    sim.crash_with(gone, false);
    sim.append(p, 0, 2);
    sim.end();
}

#[test]
fn a_primary_that_removes_itself_hands_over_to_the_new_members() {
    // The primary commits a membership without itself. The new voters must learn that the
    // change is committed and elect one of them; the cluster keeps committing.
    let mut sim = quiet(5, 27);
    let p = sim.elect();
    sim.append(p, 0, 1);
    let rest = sim.others(p);
    let voters: Vec<u32> = rest[..3].iter().map(|r| r.0).collect();
    sim.input(p, Input::ChangeMembership(Membership::new(voters.clone())));
    let ok =
        sim.run_until(|s| s.primary().is_some_and(|q| voters.contains(&q.0)), ELECTION_WAIT_TICKS);
    sim.assert_no_failure();
    assert!(ok, "no primary among the new voters {voters:?}");
    let q = sim.primary().unwrap();
    sim.append(q, 0, 2);
    for v in &voters {
        let id = r(*v);
        assert!(sim.run_until(|s| s.executed(id) >= s.executed(q), 100), "{id:?} lags");
        assert_eq!(sim.kv(id).unwrap().value(0), &[1, 2]);
    }
    sim.end();
}

#[test]
fn a_primary_that_removes_itself_and_whose_last_commit_is_lost_still_hands_over() {
    // As above, but every message from the old primary that carries the commit of the
    // configuration slot is lost (the network may lose any message). The new voters must
    // still find out, from the old primary or from each other, and elect a primary.
    let mut sim = quiet(5, 29);
    let p = sim.elect();
    sim.append(p, 0, 1);
    let config_slot = sim.executed(p).0 + 1;
    sim.drop_messages(move |m| {
        m.from == p
            && match m.body {
                Body::Accept { commit, .. } | Body::Heartbeat { commit, .. } => {
                    commit.0 >= config_slot
                }
                Body::CatchupReply { .. } => true,
                _ => false,
            }
    });
    let rest = sim.others(p);
    let voters: Vec<u32> = rest[..3].iter().map(|r| r.0).collect();
    sim.input(p, Input::ChangeMembership(Membership::new(voters.clone())));
    let ok = sim
        .run_until(|s| s.primary().is_some_and(|q| voters.contains(&q.0)), 3 * ELECTION_WAIT_TICKS);
    sim.assert_no_failure();
    assert!(ok, "stuck: no primary among the new voters {voters:?} after the old one left");
    sim.clear_filters();
    let q = sim.primary().unwrap();
    sim.append(q, 0, 2);
    sim.end();
}

#[test]
fn a_voter_that_missed_the_commit_of_its_promotion_is_not_stuck_behind_it() {
    // Five replicas shrink to {p, a, b}; then move to {a, c, d}: c and d join as learners,
    // and the final configuration removes p and b. Its commit reaches b but not a, c, d (the
    // network may lose any message). The replicas that know it is committed must not leave
    // the others campaigning forever under the old configuration.
    let mut sim = quiet(5, 30);
    let p = sim.elect();
    sim.append(p, 0, 1);
    let rest = sim.others(p);
    let (a, b, c, d) = (rest[0], rest[1], rest[2], rest[3]);
    sim.input(p, Input::ChangeMembership(Membership::new([p.0, a.0, b.0])));
    sim.run_ticks(30);
    assert_eq!(sim.status(p).unwrap().membership.voters.len(), 3);
    sim.append(p, 0, 2);
    let final_slot = sim.executed(p).0 + 2;
    // Only what tells of the final slot's commit is lost: c and d, removed by the shrink,
    // must still catch up from p on the slots before it, since a learner is promoted only
    // once it acknowledged the configuration that staged it (docs/protocol.md, "Liveness
    // of membership changes", cause 6).
    sim.drop_messages(move |m| {
        m.from == p
            && [a, c, d].contains(&m.to)
            && match m.body {
                Body::Accept { commit, .. }
                | Body::Heartbeat { commit, .. }
                | Body::CatchupReply { commit, .. } => commit.0 >= final_slot,
                _ => false,
            }
    });
    sim.input(p, Input::ChangeMembership(Membership::new([a.0, c.0, d.0])));
    let ok = sim.run_until(
        |s| s.primary().is_some_and(|q| [a, c, d].contains(&q)),
        3 * ELECTION_WAIT_TICKS,
    );
    sim.assert_no_failure();
    let executed: Vec<u64> = sim.ids().iter().map(|i| sim.executed(*i).0).collect();
    assert!(ok, "no primary among the new voters; executed {executed:?}");
    sim.clear_filters();
    let q = sim.primary().unwrap();
    sim.append(q, 0, 3);
    sim.end();
}
