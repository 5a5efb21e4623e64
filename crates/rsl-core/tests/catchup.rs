//! Catch-up liveness on a lone replica (id 1), one story per stall the simulator found with
//! `--reconfig` (docs/protocol.md, "Catch-up"): a lagging replica whose first two sources
//! cannot read the slots back asks every other peer in turn, and a replica that restarted
//! with a commit hint above what its peers report still finds someone to ask; and a
//! follower that misses nothing never asks.

#[path = "common/lone.rs"]
mod lone;

use lone::{b, batch, from, sent_to, step};
use rsl_core::message::Body;
use rsl_core::{Action, Config, Input, LogEntry, Recovered, Replica, Role, Slot, SlotValue};

fn chosen(slots: std::ops::RangeInclusive<u64>) -> Vec<LogEntry> {
    slots.map(|s| LogEntry { slot: Slot(s), ballot: b(1, 5), value: batch(s) }).collect()
}

/// Replica 1 of five lags three slots behind primary 5. The primary and replica 2 (the next
/// in id order) both answer without the slots (each lost them: a record corrupted on write,
/// so a read-back fails); only 4 can serve them. Seed 70043235 of `--reconfig`: the
/// lagging replica alternated between the primary and the one peer after it, both unable to
/// read the slots, and never asked the three others, 1,500 ticks long.
#[test]
fn a_lagging_replica_asks_every_peer_in_turn_until_one_serves_the_slots() {
    let mut r = Replica::new(Config::new(1, [1, 2, 3, 4, 5]), Recovered::default());
    let mut asked = Vec::new();
    for round in 1..200 {
        let heartbeat = Body::Heartbeat { ballot: b(1, 5), commit: Slot(3), round };
        let mut out = step(&mut r, from(5, heartbeat));
        out.extend(step(&mut r, Input::Tick));
        for (to, body) in sent_to(&out) {
            let Body::CatchupRequest { from: first, .. } = body else { continue };
            asked.push(to);
            let entries = if to == 4 { chosen(first.0..=3) } else { Vec::new() };
            step(&mut r, from(to, Body::CatchupReply { commit: Slot(3), entries }));
        }
        if r.status().executed == Slot(3) {
            break;
        }
    }
    assert_eq!(r.status().executed, Slot(3), "never caught up; asked {asked:?}");
    let first_four: Vec<u32> = asked.iter().copied().take(4).collect();
    assert_eq!(first_four, vec![5, 2, 3, 4], "the peers were not asked in turn: {asked:?}");
}

/// Replica 1 restarts with a commit hint of 5 (persisted when it was primary) but slot 2
/// corrupt, so its commit point is 1. Its peers know slots through 3 only (slots 4 and 5
/// were chosen by a quorum whose commit never reached them). A peer that reports a commit
/// point above 1 can serve slots 2 and 3, though it knows less than the hint. Seed
/// 70060725 of `--reconfig`: the restarted replica, a candidate whose promises came back
/// truncated until it caught up, never asked anyone (the hint's source was unknown after
/// the restart), and its candidacy kept the others from standing.
#[test]
fn a_replica_restarted_with_a_commit_hint_above_its_peers_still_catches_up() {
    let recovered = Recovered {
        promised: b(1, 1),
        commit: Slot(5),
        log: vec![LogEntry { slot: Slot(1), ballot: b(1, 1), value: batch(1) }],
        corrupt: vec![(Slot(2), b(1, 1))],
        ..Recovered::default()
    };
    let mut r = Replica::new(Config::new(1, [1, 2, 3]), recovered);
    assert_eq!(r.status().commit, Slot(1));
    let mut out = step(&mut r, from(2, Body::PreVote { ballot: b(2, 2), commit: Slot(3) }));
    for _ in 0..20 {
        out.extend(step(&mut r, Input::Tick));
    }
    let asked = sent_to(&out)
        .into_iter()
        .any(|(to, m)| to == 2 && matches!(m, Body::CatchupRequest { from: Slot(2), .. }));
    assert!(asked, "replica 2 knows slots 2 and 3 chosen but was not asked: {out:?}");
    let entries = vec![
        LogEntry { slot: Slot(2), ballot: b(1, 1), value: batch(2) },
        LogEntry { slot: Slot(3), ballot: b(1, 1), value: batch(3) },
    ];
    step(&mut r, from(2, Body::CatchupReply { commit: Slot(3), entries }));
    assert_eq!(r.status().commit, Slot(3));
}

/// Replica 1 follows primary 5. Level with every commit point it hears (it holds each slot
/// before it learns it chosen), it never asks for catch-up; behind (slots 21 to 25 never
/// reached it), it asks once per heartbeat interval however many heartbeats arrive in
/// between. Mutation testing: asking at every heartbeat while behind (`&&` to `||` in
/// `learn_commit`) passed every other test.
#[test]
fn a_follower_asks_for_catch_up_only_when_behind_and_once_per_heartbeat_interval() {
    let mut r = Replica::new(Config::new(1, [1, 2, 3, 4, 5]), Recovered::default());
    let requests = |out: &[rsl_core::Action]| {
        let sent = sent_to(out).into_iter();
        sent.filter(|(_, body)| matches!(body, Body::CatchupRequest { .. })).count()
    };
    let mut out = Vec::new();
    for s in 1..=20u64 {
        let entries = vec![SlotValue { slot: Slot(s), value: batch(s) }];
        let accept = Body::Accept { ballot: b(1, 5), commit: Slot(s - 1), entries };
        out.extend(step(&mut r, from(5, accept)));
        out.extend(step(&mut r, Input::Tick));
        let heartbeat = Body::Heartbeat { ballot: b(1, 5), commit: Slot(s), round: s };
        out.extend(step(&mut r, from(5, heartbeat)));
        out.extend(step(&mut r, Input::Tick));
    }
    assert_eq!(r.status().executed, Slot(20), "the follower did not learn the slots chosen");
    assert_eq!(requests(&out), 0, "a follower level with the commit point asked for catch-up");
    // Ten heartbeats saying slot 25 is chosen, all within one tick: one request.
    let mut out = Vec::new();
    for round in 21..=30 {
        let heartbeat = Body::Heartbeat { ballot: b(1, 5), commit: Slot(25), round };
        out.extend(step(&mut r, from(5, heartbeat)));
    }
    assert_eq!(requests(&out), 1, "asked more than once per heartbeat interval");
}

/// Replica 1 of three follows primary 2 (commit point 1) when replica 3's pre-vote says slots
/// through 3 are chosen. The primary, asked first, never answers and heartbeats the commit
/// point 1 again; then it falls silent and replica 1 stands for election. With no primary
/// left to ask, it asks replica 3, the one that reported a commit point above its own, not
/// the deposed primary, which was only level with it. Mutation testing: taking a source
/// level with this replica for the hint's (`commit > self.commit` to `>=` in
/// `note_commit_hint`) passed every other test.
#[test]
fn a_candidate_asks_for_catch_up_the_peer_that_reported_a_commit_point_above_its_own() {
    let mut r = Replica::new(Config::new(1, [1, 2, 3]), Recovered::default());
    let entries = vec![SlotValue { slot: Slot(1), value: batch(1) }];
    step(&mut r, from(2, Body::Accept { ballot: b(1, 2), commit: Slot::ZERO, entries }));
    step(&mut r, from(2, Body::Heartbeat { ballot: b(1, 2), commit: Slot(1), round: 1 }));
    assert_eq!(r.status().commit, Slot(1));
    let out = step(&mut r, from(3, Body::PreVote { ballot: b(2, 3), commit: Slot(3) }));
    let asked: Vec<u32> = requests(&out).into_iter().map(|(to, _)| to).collect();
    assert_eq!(asked, vec![2], "the primary was not asked first");
    step(&mut r, from(2, Body::Heartbeat { ballot: b(1, 2), commit: Slot(1), round: 2 }));
    let mut after_standing = Vec::new();
    for _ in 0..200 {
        let out = step(&mut r, Input::Tick);
        if r.status().role == Role::Candidate {
            after_standing.extend(requests(&out));
        }
        if !after_standing.is_empty() {
            break;
        }
    }
    assert_eq!(after_standing, vec![(3, Slot(2))], "the candidate asked the wrong peer");
}

/// The catch-up requests in `out` other than probes (a probe asks for one slot): each
/// destination with the first slot asked for.
fn requests(out: &[rsl_core::Action]) -> Vec<(u32, Slot)> {
    sent_to(out)
        .into_iter()
        .filter_map(|(to, body)| match body {
            Body::CatchupRequest { from, to: last } if last > from => Some((to, from)),
            _ => None,
        })
        .collect()
}

/// Replica 1 follows primary 2 with room for two entries in memory and holds slots 1 to 4.
/// Executing slot 1 drops it, and only it (slots 2 to 4 are not executed yet); executing
/// slots 2 and 3 drops slot 2, leaving two. A peer asking for slots 1 to 3 then has them
/// read back from storage, `catchup_entries_max` (2) of them. Mutation testing: never
/// dropping (`len() > max` to `==`), dropping one more (`>` to `>=`), or keeping the
/// executed point's own entry (`first > executed` to `>=` or `==` in `prune_memory`), and
/// reading back one or two more than a reply takes (`catchup_entries_max - 1` to `+` or
/// `/` in `on_catchup_request`) passed every other test.
#[test]
fn a_follower_keeps_the_newest_entries_in_memory_and_reads_older_ones_back() {
    let mut r = follower_with_two_entries_in_memory();
    let out = step(&mut r, from(3, Body::CatchupRequest { from: Slot(1), to: Slot(3) }));
    let loads: Vec<_> = out.iter().filter(|a| matches!(a, Action::LoadLog { .. })).collect();
    assert!(
        matches!(loads.as_slice(), [Action::LoadLog { from: Slot(1), to: Slot(2), .. }]),
        "slots 1 and 2 were not read back from storage: {out:?}"
    );
}

/// Replica 1 of [`follower_with_two_entries_in_memory`]: 65 catch-up requests for slot 1
/// from peers 2 and 3 in turn each wait for their own read of the log (a token of their
/// own); the oldest is forgotten, since 64 wait at most. The reads' results answer the
/// peer that asked, each once. Mutation testing: one token for every read (`next_token +=
/// 1` to `*=`) or forgetting every read but the newest (`loads.len() >= LOADS_PENDING_MAX`
/// to `<` in `on_catchup_request`) passed every other test.
#[test]
fn each_read_of_the_log_answers_its_own_requester_and_64_wait_at_most() {
    let mut r = follower_with_two_entries_in_memory();
    let mut tokens = Vec::new();
    for n in 0..65u32 {
        let requester = 2 + n % 2;
        let out =
            step(&mut r, from(requester, Body::CatchupRequest { from: Slot(1), to: Slot(1) }));
        match out.as_slice() {
            [Action::LoadLog { token, from: Slot(1), to: Slot(1) }] => {
                tokens.push((*token, requester))
            }
            other => panic!("request {n}: {other:?}"),
        }
    }
    let distinct: std::collections::BTreeSet<u64> = tokens.iter().map(|(t, _)| *t).collect();
    assert_eq!(distinct.len(), 65, "tokens shared: {tokens:?}");
    let entries = vec![LogEntry { slot: Slot(1), ballot: b(1, 2), value: batch(1) }];
    let dropped_before = r.status().counters.dropped;
    for (i, (token, requester)) in tokens.iter().enumerate() {
        let loaded = Input::LogLoaded { token: *token, entries: entries.clone() };
        let answered: Vec<u32> =
            sent_to(&step(&mut r, loaded)).into_iter().map(|(to, _)| to).collect();
        let expected = if i == 0 { vec![] } else { vec![*requester] };
        assert_eq!(answered, expected, "the read of request {i}");
        let again = Input::LogLoaded { token: *token, entries: entries.clone() };
        assert!(sent_to(&step(&mut r, again)).is_empty(), "request {i} answered twice");
    }
    assert_eq!(r.status().counters.dropped, dropped_before + 66, "reads not dropped");
}

/// Replica 1 of [`follower_with_two_entries_in_memory`] executed slots 1 to 3 and holds only
/// 3 and 4 in memory; its log cannot give slot 1 back (a record damaged after it was
/// written). One failed read answers the requester empty-handed (the fault may pass); the
/// second in a row asks for a checkpoint of the state as executed (slot 3), once per
/// election timeout; once that is saved, the next failed read sends it. A read that gives
/// the slot back starts the count again. Seed 86500434 of the default swarm: with two
/// replicas nobody else held the slot, and the follower asked for it 1,400 ticks long.
#[test]
fn a_slot_the_log_cannot_read_back_is_served_from_a_checkpoint() {
    let mut r = follower_with_two_entries_in_memory();
    let ask = |r: &mut Replica, entries: Vec<LogEntry>| {
        let out = step(r, from(2, Body::CatchupRequest { from: Slot(1), to: Slot(1) }));
        let [Action::LoadLog { token, .. }] = out.as_slice() else { panic!("{out:?}") };
        let out = step(r, Input::LogLoaded { token: *token, entries });
        let replied = sent_to(&out)
            .iter()
            .any(|(to, m)| *to == 2 && matches!(m, Body::CatchupReply { commit: Slot(3), .. }));
        assert!(replied, "the requester got no reply: {out:?}");
        out.into_iter().filter(|a| !matches!(a, Action::Send { .. })).collect::<Vec<Action>>()
    };
    let slot1 = vec![LogEntry { slot: Slot(1), ballot: b(1, 2), value: batch(1) }];
    assert!(ask(&mut r, Vec::new()).is_empty(), "one failed read is enough");
    assert!(ask(&mut r, slot1).is_empty());
    assert!(ask(&mut r, Vec::new()).is_empty(), "a read that worked did not reset the count");
    let taken = ask(&mut r, Vec::new());
    assert!(
        matches!(taken.as_slice(), [Action::TakeCheckpoint { slot: Slot(3), .. }]),
        "no checkpoint of the executed state asked for: {taken:?}"
    );
    assert!(ask(&mut r, Vec::new()).is_empty(), "a checkpoint asked again at once");
    step(&mut r, Input::CheckpointSaved { slot: Slot(3) });
    let sent = ask(&mut r, Vec::new());
    let to_requester = |a: &[Action]| matches!(a, [Action::SendCheckpoint { to }] if to.0 == 2);
    assert!(to_requester(&sent), "the checkpoint covering slot 1 was not sent: {sent:?}");
}

/// Replica 1 follows primary 2, holds slots 1 to 4 (room for two entries in memory,
/// `catchup_entries_max` 2) and executes slot 1, then slots 2 and 3: slots 3 and 4 remain in
/// memory.
fn follower_with_two_entries_in_memory() -> Replica {
    let mut config = Config::new(1, [1, 2, 3]);
    (config.pipeline_slots_max, config.log_memory_entries_max) = (2, 2);
    config.catchup_entries_max = 2;
    let mut r = Replica::new(config, Recovered::default());
    let entries = (1..=4).map(|s| SlotValue { slot: Slot(s), value: batch(s) }).collect();
    step(&mut r, from(2, Body::Accept { ballot: b(1, 2), commit: Slot::ZERO, entries }));
    let memory = |r: &Replica| r.memory_log().map(|(s, ..)| s.0).collect::<Vec<u64>>();
    assert_eq!(memory(&r), vec![1, 2, 3, 4]);
    step(&mut r, from(2, Body::Heartbeat { ballot: b(1, 2), commit: Slot(1), round: 1 }));
    assert_eq!((r.status().executed, memory(&r)), (Slot(1), vec![2, 3, 4]));
    step(&mut r, from(2, Body::Heartbeat { ballot: b(1, 2), commit: Slot(3), round: 2 }));
    assert_eq!((r.status().executed, memory(&r)), (Slot(3), vec![3, 4]));
    r
}

/// Replica 1 of three, kept out of elections, hears from replica 3's pre-vote that slots
/// through 3 are chosen, and hears no primary. It asks 3 at once and, unanswered, again at
/// every heartbeat interval of its own ticks; and after `election_ticks_max` ticks without a
/// primary it probes every peer for the slot after its commit point, once per such period.
/// Mutation testing: asking only when a message comes, never at a tick (`commit <
/// commit_hint` to `==` or `>` in `catchup_tick`), and probing a tick late (`now < heard +
/// quiet` to `<=` in `probe_tick`) passed every other test.
#[test]
fn a_replica_without_a_primary_asks_again_at_its_ticks_and_probes_every_peer() {
    let config = Config::new(1, [1, 2, 3]);
    let (every, quiet) = (u64::from(config.heartbeat_ticks), u64::from(config.election_ticks_max));
    let mut r = Replica::new(config, Recovered::default());
    step(&mut r, Input::SetCanBecomePrimary(false));
    let out = step(&mut r, from(3, Body::PreVote { ballot: b(2, 3), commit: Slot(3) }));
    assert_eq!(requests(&out), vec![(3, Slot(1))], "replica 3 was not asked at once");
    let (mut asked, mut probed) = (Vec::new(), Vec::new());
    for _ in 0..2 * quiet + 5 {
        let out = step(&mut r, Input::Tick);
        let now = r.status().now;
        for (to, first) in requests(&out) {
            asked.push((now, to, first));
        }
        let probes = sent_to(&out).into_iter().filter(|(_, body)| {
            matches!(body, Body::CatchupRequest { from: Slot(1), to: Slot(1) })
        });
        let mut to: Vec<u32> = probes.map(|(to, _)| to).collect();
        to.sort();
        if !to.is_empty() {
            assert_eq!(to, vec![2, 3], "a probe at tick {now}");
            probed.push(now);
        }
    }
    let expected: Vec<_> = (1..=(2 * quiet + 5) / every).map(|k| (k * every, 3, Slot(1))).collect();
    assert_eq!(asked, expected, "the requests at the ticks");
    assert_eq!(probed, vec![quiet, 2 * quiet], "the probes");
    assert_eq!(r.status().role, Role::Follower);
}

/// Replica 1 of three follows primary 2, which says slots through 5 are chosen; replies
/// carry two entries at most (a late one, which brought nothing while the replica was level,
/// is ignored). A reply that moves the commit point, still short of 5, is
/// followed at once by the next request, to the same peer; a reply that brings nothing asks
/// nobody at once (the next peer is asked at the next heartbeat interval). Mutation testing:
/// following a reply that brought nothing at once, or only such a reply, or none (`self.commit >
/// commit_before && self.commit < self.commit_hint`: `&&` to `||`, the first `>` to `==`,
/// `>=` or `<`, the `<` to `==`), and turning to the next peer after a reply that helped or
/// one that found the replica level (`stuck`'s `&&` to `||`, its `<` to `<=` in
/// `on_catchup_reply`) passed every other test.
#[test]
fn a_reply_that_helps_is_followed_at_once_by_the_next_request_to_the_same_peer() {
    let mut config = Config::new(1, [1, 2, 3]);
    config.catchup_entries_max = 2;
    let mut r = Replica::new(config, Recovered::default());
    // A late reply that brings nothing to a replica level with every commit point it knows
    // does not turn it from the primary.
    step(&mut r, from(2, Body::CatchupReply { commit: Slot::ZERO, entries: Vec::new() }));
    let out = step(&mut r, from(2, Body::Heartbeat { ballot: b(1, 2), commit: Slot(5), round: 1 }));
    assert_eq!(requests(&out), vec![(2, Slot(1))]);
    let reply = Body::CatchupReply { commit: Slot(5), entries: chosen_at(b(1, 2), 1..=2) };
    let out = step(&mut r, from(2, reply));
    assert_eq!(r.status().commit, Slot(2));
    assert_eq!(requests(&out), vec![(2, Slot(3))], "not followed at once, to the same peer");
    let out = step(&mut r, from(2, Body::CatchupReply { commit: Slot(5), entries: Vec::new() }));
    assert_eq!(requests(&out), vec![], "a reply that brought nothing was followed at once");
}

fn chosen_at(ballot: rsl_core::Ballot, slots: std::ops::RangeInclusive<u64>) -> Vec<LogEntry> {
    slots.map(|s| LogEntry { slot: Slot(s), ballot, value: batch(s) }).collect()
}

/// The cap on executed entries in memory applies when entries execute: replica 1, with room
/// for two, executes slots 1 and 2 (both stay), then accepts slots 3 and 4 without executing
/// anything, and keeps all four until something executes; executing slot 3 then drops the
/// executed entries beyond the cap. (The seventh mutation run kept `executed >
/// executed_before` to `>=` in `execute_chosen`, which prunes at every step: this pins the
/// schedule, so that a follower keeps the entries a lagging peer is most likely to ask for
/// until the log moves on.)
#[test]
fn executed_entries_beyond_the_cap_are_dropped_when_more_execute_not_at_an_accept() {
    let mut config = Config::new(1, [1, 2, 3]);
    (config.pipeline_slots_max, config.log_memory_entries_max) = (2, 2);
    let mut r = Replica::new(config, Recovered::default());
    let memory = |r: &Replica| r.memory_log().map(|(s, ..)| s.0).collect::<Vec<u64>>();
    let entries = (1..=2).map(|s| SlotValue { slot: Slot(s), value: batch(s) }).collect();
    step(&mut r, from(2, Body::Accept { ballot: b(1, 2), commit: Slot(2), entries }));
    step(&mut r, from(2, Body::Heartbeat { ballot: b(1, 2), commit: Slot(2), round: 1 }));
    assert_eq!((r.status().executed, memory(&r)), (Slot(2), vec![1, 2]));
    let entries = (3..=4).map(|s| SlotValue { slot: Slot(s), value: batch(s) }).collect();
    step(&mut r, from(2, Body::Accept { ballot: b(1, 2), commit: Slot(2), entries }));
    assert_eq!((r.status().executed, memory(&r)), (Slot(2), vec![1, 2, 3, 4]));
    step(&mut r, from(2, Body::Heartbeat { ballot: b(1, 2), commit: Slot(3), round: 2 }));
    assert_eq!(r.status().executed, Slot(3));
    assert!(memory(&r).len() < 4, "nothing dropped at the execution: {:?}", memory(&r));
}

/// A follower keeps executed entries in memory up to `log_memory_bytes_max` of their values,
/// whatever their count: at the bound exactly it keeps them, one byte under it drops the
/// oldest (storage still has it; a peer's request for it is read back with `LoadLog`); and
/// it keeps at least `pipeline_slots_max` entries (here 2) whatever their bytes.
#[test]
fn executed_entries_in_memory_stay_within_their_bytes() {
    let size = rsl_core::message::value_len(&batch(1));
    let memory_after = |bytes_max: usize| {
        let mut config = Config::new(1, [1, 2, 3]);
        config.log_memory_bytes_max = bytes_max;
        config.pipeline_slots_max = 2;
        let mut r = Replica::new(config, Recovered::default());
        let entries = (1..=4).map(|s| SlotValue { slot: Slot(s), value: batch(s) }).collect();
        step(&mut r, from(2, Body::Accept { ballot: b(1, 2), commit: Slot::ZERO, entries }));
        step(&mut r, from(2, Body::Heartbeat { ballot: b(1, 2), commit: Slot(3), round: 1 }));
        assert_eq!(r.status().executed, Slot(3));
        let memory: Vec<u64> = r.memory_log().map(|(s, ..)| s.0).collect();
        (memory, r)
    };
    // Three executed entries of `size` bytes each, and slot 4 (not executed: always kept).
    assert_eq!(memory_after(3 * size).0, vec![1, 2, 3, 4]);
    assert_eq!(memory_after(3 * size - 1).0, vec![2, 3, 4]);
    assert_eq!(memory_after(2 * size).0, vec![2, 3, 4]);
    assert_eq!(memory_after(0).0, vec![3, 4]);
    // The oldest dropped is read back from storage for a peer that asks for it.
    let (_, mut r) = memory_after(2 * size);
    let out = step(&mut r, from(3, Body::CatchupRequest { from: Slot(1), to: Slot(3) }));
    let loads = out.iter().filter(|a| matches!(a, Action::LoadLog { from: Slot(1), .. })).count();
    assert_eq!(loads, 1, "slot 1 was not read back from storage: {out:?}");
}
