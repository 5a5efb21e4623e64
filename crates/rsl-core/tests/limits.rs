//! The size limits: a request at the maximum goes through every message kind and one above it
//! is refused; no message the core builds exceeds `message_bytes_max` (accepts, catch-up
//! replies and promises are split by bytes, a promise into pages); the configuration refuses
//! limits that do not chain; and a property test runs clusters with request sizes drawn up to
//! the limit on the simulator, whose host checks every message sent (size and round trip).

#[path = "common/lone.rs"]
mod lone;

use bytes::Bytes;
use lone::{b, from, sent, sent_to, step};
use proptest::prelude::*;
use rsl_core::limits::{
    ENTRY_FRAMING_BYTES_MAX, MESSAGE_BYTES_MAX_DEFAULT, REQUEST_BYTES_MAX_DEFAULT, VALUE_BYTES_MAX,
};
use rsl_core::message::{value_len, Body};
use rsl_core::{
    Action, Ballot, Config, Input, LogEntry, Message, Recovered, Refusal, Replica, ReplicaId,
    Request, RequestId, Role, Slot, SlotValue, UnknownValue, Value,
};
use rsl_sim::driver::Reply;
use rsl_sim::kv::Op;
use rsl_sim::{Options, Sim};

/// Limits small enough that one request fills a message: a 1,000-byte request maximum and
/// the smallest message limit that carries it.
fn small(c: &mut Config) {
    c.request_bytes_max = 1000;
    c.batch_bytes_max = 300;
    c.batch_requests_max = 4;
    // A short pipeline makes proposals queue, so that several slots go out in one step.
    c.pipeline_slots_max = 2;
    c.message_bytes_max = c.value_bytes_max() + ENTRY_FRAMING_BYTES_MAX;
}

fn small_config(id: u32) -> Config {
    let mut c = Config::new(id, [1, 2, 3]);
    small(&mut c);
    c
}

/// The simulator's options for a quiet cluster of `n` under the `small` limits.
fn small_options(n: usize, seed: u64) -> Options {
    let mut c = Config::new(1, [1]);
    small(&mut c);
    Options {
        request_bytes_max: c.request_bytes_max,
        batch_bytes_max: c.batch_bytes_max,
        batch_requests_max: c.batch_requests_max,
        pipeline_slots_max: c.pipeline_slots_max,
        message_bytes_max: c.message_bytes_max,
        ..Options::quiet(n, seed)
    }
}

/// Waits (up to `ticks`) for the answers to `tickets` and returns them.
fn answers(sim: &mut Sim, tickets: &[u64], ticks: u64) -> Vec<Reply> {
    let ok = sim.run_until(|s| tickets.iter().all(|t| s.reply(*t).is_some()), ticks);
    sim.assert_no_failure();
    assert!(ok, "no answer within {ticks} ticks");
    tickets.iter().map(|t| sim.reply(*t).expect("answered").clone()).collect()
}

/// A one-request batch of `size` payload bytes, distinct for each `n`.
fn big(n: u64, size: usize) -> Value {
    let id = RequestId { proposer: ReplicaId(9), incarnation: 0, seq: n };
    Value::Batch(vec![Request { id, payload: Bytes::from(vec![n as u8; size]) }].into())
}

/// Every message `out` sends, checked against the limit; panics naming the kind otherwise.
fn check_sizes(out: &[Action], max: usize) {
    for a in out {
        if let Action::Send { msg, .. } = a {
            let len = msg.encode().len();
            let kind: String = format!("{:?}", msg.body).chars().take(40).collect();
            assert!(len <= max, "{kind}... is {len} bytes, above {max}");
        }
    }
}

fn durable(r: &mut Replica, out: &[Action]) -> Vec<Action> {
    let seq = out.iter().rev().find_map(|a| match a {
        Action::Persist { seq, .. } => Some(*seq),
        _ => None,
    });
    seq.map_or_else(Vec::new, |seq| step(r, Input::Durable { seq }))
}

#[test]
fn the_defaults_chain() {
    let c = Config::new(1, [1, 2, 3]);
    c.validate().expect("the defaults validate");
    assert_eq!(c.request_bytes_max, REQUEST_BYTES_MAX_DEFAULT);
    assert_eq!(c.message_bytes_max, MESSAGE_BYTES_MAX_DEFAULT);
    assert!(c.value_bytes_max() + ENTRY_FRAMING_BYTES_MAX <= c.message_bytes_max);
    assert!(c.value_bytes_max() < VALUE_BYTES_MAX);
}

#[test]
fn limits_that_do_not_chain_are_refused_naming_the_field() {
    let mut c = Config::new(1, [1, 2, 3]);
    c.request_bytes_max = c.message_bytes_max;
    assert_eq!(c.validate().map_err(|e| e.field), Err("message_bytes_max"));
    // The smallest message that carries the largest value passes; one byte less does not.
    c.message_bytes_max = c.value_bytes_max() + ENTRY_FRAMING_BYTES_MAX;
    assert_eq!(c.validate(), Ok(()));
    c.message_bytes_max -= 1;
    assert_eq!(c.validate().map_err(|e| e.field), Err("message_bytes_max"));
    let mut c = Config::new(1, [1, 2, 3]);
    c.request_bytes_max = VALUE_BYTES_MAX;
    c.message_bytes_max = usize::MAX;
    assert_eq!(c.validate().map_err(|e| e.field), Err("request_bytes_max"));
    let mut c = Config::new(1, [1, 2, 3]);
    c.request_bytes_max = 0;
    assert_eq!(c.validate().map_err(|e| e.field), Err("request_bytes_max"));
    let mut c = Config::new(1, [1, 2, 3]);
    c.batch_requests_max = (1 << 20) + 1;
    assert_eq!(c.validate().map_err(|e| e.field), Err("batch_requests_max"));
}

/// `ENTRY_FRAMING_BYTES_MAX` bounds what every message kind that carries one entry adds
/// around the entry's value, with every integer at its widest.
#[test]
fn the_entry_framing_bound_holds_for_the_widest_fields() {
    let wide = Ballot { round: u64::MAX, replica: u32::MAX };
    let slot = Slot(u64::MAX - 1);
    let value = Value::Noop;
    let entry = LogEntry { slot, ballot: wide, value: value.clone() };
    let bodies = [
        Body::Accept {
            ballot: wide,
            commit: slot,
            entries: vec![SlotValue { slot, value: value.clone() }],
        },
        Body::CatchupReply { commit: slot, entries: vec![entry.clone()] },
        Body::Promise {
            ballot: wide,
            commit: slot,
            after: slot,
            entries: vec![entry],
            unknown: Vec::new(),
            more_after: Some(slot),
            dropped: true,
        },
    ];
    for body in bodies {
        let msg = Message { from: ReplicaId(u32::MAX), to: ReplicaId(u32::MAX), body };
        let framing = msg.encoded_len() - rsl_core::message::value_len(&value);
        // Lists of up to 2^20 items take up to two more bytes per list than one item does.
        assert!(framing + 2 * 2 <= ENTRY_FRAMING_BYTES_MAX, "{framing} bytes of framing");
    }
}

#[test]
fn a_request_at_the_maximum_executes_and_one_byte_more_is_refused() {
    let mut sim = Sim::new(small_options(1, 5));
    let p = sim.elect();
    let at = sim.propose_sized(p, Op::Append { key: 0, token: 1 }, 1000, false);
    let above = sim.propose_sized(p, Op::Append { key: 0, token: 2 }, 1001, false);
    let replies = answers(&mut sim, &[at, above], 10);
    assert!(matches!(replies[0], Reply::Done { .. }), "{:?}", replies[0]);
    let too_large = Refusal::TooLarge { size: 1001, max: 1000 };
    assert_eq!(replies[1], Reply::Refused(too_large));
    assert_eq!(sim.kv(p).unwrap().value(0), &[1]);
    sim.end();
}

/// A follower refuses an oversized proposal as too large, not as "not primary": retrying
/// elsewhere cannot help.
#[test]
fn an_oversized_request_is_refused_as_too_large_anywhere() {
    let mut r = Replica::new(small_config(1), Recovered::default());
    let id = RequestId { proposer: ReplicaId(1), incarnation: 1, seq: 1 };
    let payload = Bytes::from(vec![0; 1001]);
    let out = step(&mut r, Input::Propose { id, payload, exclusive: false });
    let refused = out.iter().any(|a| {
        matches!(a, Action::Refuse { reason: Refusal::TooLarge { size: 1001, max: 1000 }, .. })
    });
    assert!(refused, "{out:?}");
}

#[test]
fn a_promise_larger_than_a_message_comes_in_pages() {
    let config = small_config(1);
    let max = config.message_bytes_max;
    let mut r = Replica::new(config, Recovered::default());
    let values: Vec<Value> = (1..=5).map(|n| big(n, 1000)).collect();
    let entries = values
        .iter()
        .enumerate()
        .map(|(i, v)| SlotValue { slot: Slot(i as u64 + 1), value: v.clone() });
    // Replica 2's accept is split as a primary would split it: one maximal entry each.
    for e in entries {
        let out = step(
            &mut r,
            from(2, Body::Accept { ballot: b(1, 2), commit: Slot::ZERO, entries: vec![e] }),
        );
        durable(&mut r, &out);
    }
    let mut after = Slot::ZERO;
    let mut reported = Vec::new();
    let mut pages = 0;
    loop {
        // From the primary it follows: no lease holds it back.
        let prepare = Body::Prepare { ballot: b(2, 2), after, transfer: None };
        let mut out = step(&mut r, from(2, prepare));
        out.extend(durable(&mut r, &out));
        check_sizes(&out, max);
        let [Body::Promise { entries, more_after, dropped: false, after: a, .. }] = &sent(&out)[..]
        else {
            panic!("expected one promise page");
        };
        assert_eq!(*a, after);
        pages += 1;
        reported.extend(entries.iter().map(|e| e.value.clone()));
        match more_after {
            Some(next) => after = *next,
            None => break,
        }
    }
    assert!(pages >= 3, "{pages} pages for five maximal entries");
    assert_eq!(reported, values, "the pages report every entry once, in slot order");
}

#[test]
fn unknown_slots_are_paged_with_the_entries_in_slot_order() {
    let mut config = small_config(1);
    config.promise_entries_max = 2;
    let corrupt = vec![(Slot(2), b(1, 2)), (Slot(4), b(1, 2))];
    let log =
        [1, 3, 5].map(|s| LogEntry { slot: Slot(s), ballot: b(1, 2), value: big(s, 10) }).to_vec();
    let recovered = Recovered { promised: b(1, 2), log, corrupt, ..Recovered::default() };
    let mut r = Replica::new(config, recovered);
    // A restarted replica honours a lease it may have granted: wait it out.
    for _ in 0..40 {
        step(&mut r, Input::Tick);
    }
    let mut after = Slot::ZERO;
    let mut slots = Vec::new();
    loop {
        let mut out =
            step(&mut r, from(3, Body::Prepare { ballot: b(2, 3), after, transfer: None }));
        out.extend(durable(&mut r, &out));
        let [Body::Promise { entries, unknown, more_after, .. }] = &sent(&out)[..] else {
            panic!("expected one promise page");
        };
        assert!(entries.len() + unknown.len() <= 2, "promise_entries_max holds");
        slots.extend(entries.iter().map(|e| (e.slot, true)));
        slots.extend(unknown.iter().map(|u: &UnknownValue| (u.slot, false)));
        match more_after {
            Some(next) => after = *next,
            None => break,
        }
    }
    slots.sort();
    let expected = [(1, true), (2, false), (3, true), (4, false), (5, true)];
    assert_eq!(slots, expected.map(|(s, known)| (Slot(s), known)).to_vec());
}

/// Makes replica 1 of {1, 2, 3} a candidate in phase 1 with its own promise durable; returns
/// its ballot.
fn candidate(r: &mut Replica) -> Ballot {
    for _ in 0..1000 {
        let out = step(r, Input::Tick);
        let Some(ballot) = sent(&out).iter().find_map(|m| match m {
            Body::PreVote { ballot, .. } => Some(*ballot),
            _ => None,
        }) else {
            continue;
        };
        let out = step(r, from(2, Body::PreVoteReply { ballot, granted: true }));
        durable(r, &out);
        return r.status().promised;
    }
    panic!("never stood for election");
}

#[test]
fn a_candidate_waits_for_every_page_then_reproposes_every_value() {
    let config = small_config(1);
    let max = config.message_bytes_max;
    let mut r = Replica::new(config, Recovered::default());
    let ballot = candidate(&mut r);
    let values: Vec<Value> = (1..=3).map(|n| big(n, 1000)).collect();
    let page = |n: usize, more: bool| Body::Promise {
        ballot,
        commit: Slot::ZERO,
        after: Slot(n as u64),
        entries: vec![LogEntry {
            slot: Slot(n as u64 + 1),
            ballot: b(0, 3),
            value: values[n].clone(),
        }],
        unknown: Vec::new(),
        more_after: more.then_some(Slot(n as u64 + 1)),
        dropped: false,
    };
    for n in 0..2 {
        let out = step(&mut r, from(2, page(n, true)));
        assert_eq!(r.status().role, Role::Candidate, "primary before the last page");
        let asked = Body::Prepare { ballot, after: Slot(n as u64 + 1), transfer: None };
        assert_eq!(sent_to(&out), vec![(2, asked)], "the next page is asked for at once");
    }
    // A late copy of the first page does not set the report back.
    step(&mut r, from(2, page(0, true)));
    let out = step(&mut r, from(2, page(2, false)));
    assert_eq!(r.status().role, Role::Primary);
    check_sizes(&out, max);
    let proposed: Vec<SlotValue> = sent_to(&out)
        .into_iter()
        .filter(|(to, _)| *to == 2)
        .flat_map(|(_, m)| match m {
            Body::Accept { entries, .. } => entries,
            _ => Vec::new(),
        })
        .collect();
    let expected: Vec<SlotValue> = values
        .iter()
        .enumerate()
        .map(|(i, v)| SlotValue { slot: Slot(i as u64 + 1), value: v.clone() })
        .collect();
    assert_eq!(proposed, expected, "every value re-proposed, in accepts within the limit");
}

/// The real defaults: a 16 MiB request is carried by an accept, a catch-up reply and a
/// promise, each within the default message limit; 16 MiB + 1 is refused.
#[test]
fn a_maximal_request_fits_every_message_at_the_default_limits() {
    let mut sim = Sim::new(Options::quiet(3, 21));
    let p = sim.elect();
    let lagging = sim.others(p)[0];
    sim.isolate(lagging);
    let (max, op) = (REQUEST_BYTES_MAX_DEFAULT, Op::Append { key: 0, token: 1 });
    let at = sim.propose_sized(p, op, max, true);
    let above = sim.propose_sized(p, Op::Append { key: 0, token: 2 }, max + 1, true);
    let replies = answers(&mut sim, &[at, above], 200);
    assert!(matches!(replies[0], Reply::Done { .. }), "{:?}", replies[0]);
    let too_large = Refusal::TooLarge { size: max + 1, max };
    assert_eq!(replies[1], Reply::Refused(too_large));
    // The lagging replica learns the slot by catch-up (or a resent accept).
    sim.heal();
    sim.converge();
    let commit = sim.status(p).unwrap().commit;
    assert_eq!(sim.executed(lagging), commit);
    assert_eq!(sim.kv(lagging).unwrap().value(0), &[1]);
    let largest = sim.stats.largest_message as usize;
    assert!(largest > REQUEST_BYTES_MAX_DEFAULT, "a maximal request was sent");
    assert!(largest <= MESSAGE_BYTES_MAX_DEFAULT);
    sim.end();

    // A promise carrying it, from a lone acceptor.
    let mut r = Replica::new(Config::new(1, [1, 2, 3]), Recovered::default());
    let value = big(1, REQUEST_BYTES_MAX_DEFAULT);
    let accept = Body::Accept {
        ballot: b(1, 2),
        commit: Slot::ZERO,
        entries: vec![SlotValue { slot: Slot(1), value }],
    };
    let out = step(&mut r, from(2, accept));
    durable(&mut r, &out);
    let mut out =
        step(&mut r, from(2, Body::Prepare { ballot: b(2, 2), after: Slot::ZERO, transfer: None }));
    out.extend(durable(&mut r, &out));
    check_sizes(&out, MESSAGE_BYTES_MAX_DEFAULT);
    let pages = sent(&out);
    assert!(
        matches!(&pages[..], [Body::Promise { entries, more_after: None, .. }] if entries.len() == 1)
    );
}

/// A random run with loss, duplication, crashes, pauses, transfers and client requests
/// sized up to and past the maximum (`Options::large_permille`), then healing: the
/// simulator's host checks that every message sent is within the limit and decodes to
/// itself, every request above the limit is refused as too large and none within it, every
/// proposal ends in one outcome, and the healed cluster commits and converges.
fn sized_run(seed: u64, n: usize) -> Sim {
    let mut o = small_options(n, seed);
    o.fault_ticks = 300;
    o.loss_permille = 50;
    o.duplicate_permille = 30;
    o.crash_permille = 5;
    o.restart_permille = 30;
    o.transfer_permille = 10;
    o.clients = 4;
    o.large_permille = 700;
    let mut sim = Sim::new(o);
    sim.run_swarm();
    sim
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn every_message_the_core_builds_fits_and_decodes(seed in any::<u64>(), five in any::<bool>()) {
        let mut sim = sized_run(seed, if five { 5 } else { 3 });
        prop_assert!(sim.failure().is_none(), "{}", sim.failure().unwrap());
        prop_assert!(sim.primary().is_some(), "no primary after healing");
        sim.converge();
        let commit = sim.status(sim.primary().unwrap()).unwrap().commit;
        for id in sim.ids() {
            prop_assert_eq!(sim.executed(id), commit, "{:?} lags", id);
        }
    }
}

/// A slot a peer has not voted for is resent with waits that double up to an election
/// timeout, not with every heartbeat; and a peer that acknowledged a heartbeat sent after the
/// slot (so it received it: the transport delivers in order) gets it again only after an
/// election timeout. A maximal value on a slow disk is not sent again and again while its
/// first copy is still being written.
#[test]
fn unvoted_slots_are_resent_with_growing_waits() {
    let config = small_config(1);
    let (heartbeat, cap) =
        (u64::from(config.heartbeat_ticks), u64::from(config.election_ticks_min));
    let mut r = primary(|_| {});
    let id = RequestId { proposer: ReplicaId(1), incarnation: 1, seq: 1 };
    let payload = Bytes::from(vec![1; 1000]);
    let out = step(&mut r, Input::Propose { id, payload, exclusive: false });
    durable(&mut r, &out);
    // Replica 2 acknowledges every heartbeat (so the primary stays) but never votes;
    // replica 3 is silent.
    let (mut to_two, mut to_three) = (Vec::new(), Vec::new());
    for tick in 1..=300u64 {
        let out = step(&mut r, Input::Tick);
        for (to, body) in sent_to(&out) {
            match body {
                Body::Accept { .. } if to == 2 => to_two.push(tick),
                Body::Accept { .. } if to == 3 => to_three.push(tick),
                Body::Heartbeat { ballot, round, .. } if to == 2 => {
                    let ack = Body::HeartbeatAck { ballot, round, commit: Slot::ZERO };
                    step(&mut r, from(2, ack));
                }
                _ => {}
            }
        }
    }
    assert_eq!(r.status().role, Role::Primary);
    let waits = |at: &[u64]| at.windows(2).map(|w| w[1] - w[0]).collect::<Vec<u64>>();
    let three = waits(&to_three);
    assert!(to_three[0] >= 2 * heartbeat, "the first resend came at {}", to_three[0]);
    // A small value first waits two heartbeat intervals (`resend_ticks_first`), then twice
    // that; resends go out with the heartbeats, so the second comes exactly four intervals
    // after the first (2 + 5 ticks, then 14, would make it three).
    assert_eq!(three[0], 4 * heartbeat, "{to_three:?}");
    assert!(three.windows(2).all(|w| w[1] >= w[0]), "waits shrink: {to_three:?}");
    assert!(three.iter().all(|w| *w <= cap + heartbeat), "waits beyond the cap: {to_three:?}");
    assert!(to_three.len() <= 12, "{} resends to a silent peer in 300 ticks", to_three.len());
    assert!(to_two.len() >= 2, "a peer that received it still gets it now and then");
    assert!(to_two[0] >= cap && waits(&to_two).iter().all(|w| *w >= cap), "{to_two:?}");
}

/// Makes replica 1 of {1, 2, 3} primary with `tune`d limits (replica 2's empty promise).
fn primary(tune: impl Fn(&mut Config)) -> Replica {
    let mut config = small_config(1);
    tune(&mut config);
    let mut r = Replica::new(config, Recovered::default());
    let ballot = candidate(&mut r);
    let promise = Body::Promise {
        ballot,
        commit: Slot::ZERO,
        after: Slot::ZERO,
        entries: Vec::new(),
        unknown: Vec::new(),
        more_after: None,
        dropped: false,
    };
    let out = step(&mut r, from(2, promise));
    durable(&mut r, &out);
    assert_eq!(r.status().role, Role::Primary);
    r
}

fn propose(r: &mut Replica, seq: u64, size: usize) -> Vec<Action> {
    let id = RequestId { proposer: ReplicaId(1), incarnation: 1, seq };
    step(r, Input::Propose { id, payload: Bytes::from(vec![0; size]), exclusive: false })
}

/// The slots an accept in `out` carries (to replica 2).
fn accepted_slots(out: &[Action]) -> Vec<Slot> {
    sent_to(out)
        .into_iter()
        .filter(|(to, _)| *to == 2)
        .flat_map(|(_, m)| match m {
            Body::Accept { entries, .. } => entries.into_iter().map(|e| e.slot).collect(),
            _ => Vec::new(),
        })
        .collect()
}

/// `pipeline_bytes_max` bounds the value bytes in flight (a slot alone always goes): with
/// room for two maximal values, the third waits until a slot is chosen.
#[test]
fn the_pipeline_is_bounded_by_bytes() {
    let mut r = primary(|c| {
        c.pipeline_slots_max = 64;
        c.pipeline_bytes_max = 2000;
    });
    let mut proposed = Vec::new();
    for seq in 1..=4 {
        let out = propose(&mut r, seq, 1000);
        proposed.extend(accepted_slots(&out));
        // The primary's own writes are durable: its own votes count.
        proposed.extend(accepted_slots(&durable(&mut r, &out)));
    }
    // The phase-1 no-op (slot 1) and two maximal requests are in flight; the rest queue.
    assert_eq!(proposed, vec![Slot(2), Slot(3)], "{proposed:?}");
    // Replica 2 votes for everything in flight: slots are chosen and the queue moves on.
    let ballot = r.status().promised;
    let vote = Body::Accepted { ballot, slots: vec![Slot(1), Slot(2), Slot(3)] };
    let out = step(&mut r, from(2, vote));
    assert_eq!(accepted_slots(&out), vec![Slot(4), Slot(5)]);
}

/// A slot goes out while the value bytes in flight are below `pipeline_bytes_max`, not once
/// they reach it: with the no-op and one request in flight at exactly the bound, the next
/// request waits; with one byte more of room, it goes too.
#[test]
fn the_pipeline_takes_a_slot_only_below_its_byte_bound() {
    let request = |seq| {
        let id = RequestId { proposer: ReplicaId(1), incarnation: 1, seq };
        Value::Batch(vec![Request { id, payload: Bytes::from(vec![0; 1000]) }].into())
    };
    let at_bound = value_len(&Value::Noop) + value_len(&request(1));
    for (bound, goes) in [(at_bound, false), (at_bound + 1, true)] {
        let mut r = primary(|c| {
            c.pipeline_slots_max = 64;
            c.pipeline_bytes_max = bound;
        });
        let mut proposed = Vec::new();
        for seq in 1..=2 {
            let out = propose(&mut r, seq, 1000);
            proposed.extend(accepted_slots(&out));
            proposed.extend(accepted_slots(&durable(&mut r, &out)));
        }
        let expected = if goes { vec![Slot(2), Slot(3)] } else { vec![Slot(2)] };
        assert_eq!(proposed, expected, "{bound} bytes of pipeline, {at_bound} in flight");
    }
}

/// A batch takes queued requests while their payload bytes stay within `batch_bytes_max`:
/// three of 100 bytes fill a bound of 300 exactly and go in one slot; the fourth, of one
/// byte, waits for the next.
#[test]
fn a_batch_fills_up_to_its_byte_bound_exactly() {
    let mut r = primary(|c| {
        c.pipeline_slots_max = 1;
        c.batch_bytes_max = 300;
        c.batch_requests_max = 4;
    });
    // Slot 1 (the no-op) fills the pipeline: proposals queue.
    for (seq, size) in [(1, 100), (2, 100), (3, 100), (4, 1)] {
        assert!(accepted_slots(&propose(&mut r, seq, size)).is_empty());
    }
    let ballot = r.status().promised;
    let out = step(&mut r, from(2, Body::Accepted { ballot, slots: vec![Slot(1)] }));
    let batches: Vec<(Slot, Vec<usize>)> = sent_to(&out)
        .into_iter()
        .filter(|(to, _)| *to == 2)
        .flat_map(|(_, m)| match m {
            Body::Accept { entries, .. } => entries,
            _ => Vec::new(),
        })
        .map(|e| match e.value {
            Value::Batch(requests) => (e.slot, requests.iter().map(|q| q.payload.len()).collect()),
            other => panic!("{other:?} in slot {:?}", e.slot),
        })
        .collect();
    assert_eq!(batches, vec![(Slot(2), vec![100, 100, 100])]);
}

/// `proposals_queued_bytes_max` bounds the payload bytes waiting for a slot: beyond it a
/// proposal is refused as overloaded (one always enters an empty queue).
#[test]
fn the_queue_is_bounded_by_bytes() {
    let mut r = primary(|c| {
        c.pipeline_slots_max = 1;
        c.proposals_queued_bytes_max = 2500;
    });
    // Slot 1 (the no-op) fills the pipeline: proposals queue.
    let refused = |out: &[Action]| {
        out.iter().any(|a| matches!(a, Action::Refuse { reason: Refusal::Overloaded, .. }))
    };
    assert!(!refused(&propose(&mut r, 1, 1000)));
    assert!(!refused(&propose(&mut r, 2, 1000)));
    assert!(refused(&propose(&mut r, 3, 1000)), "2,500 bytes hold two of 1,000, not three");
    assert!(!refused(&propose(&mut r, 4, 500)), "500 more bytes fit");
}

/// A maximal request enters the queue whenever the queue has room for it: behind queued
/// requests that leave exactly its size free (at the bound), it is taken; with one byte
/// more queued (one above), it is refused as overloaded; into an empty queue it always goes.
#[test]
fn a_maximal_request_enters_a_queue_with_room_for_it() {
    let refused = |out: &[Action]| {
        out.iter().any(|a| matches!(a, Action::Refuse { reason: Refusal::Overloaded, .. }))
    };
    for (queued, taken) in [(1500, true), (1501, false)] {
        let mut r = primary(|c| {
            c.pipeline_slots_max = 1;
            c.proposals_queued_bytes_max = 2500;
        });
        let max = 1000;
        // Slot 1 (the no-op) fills the pipeline: proposals queue.
        assert!(!refused(&propose(&mut r, 1, max)));
        assert!(!refused(&propose(&mut r, 2, queued - max)));
        assert_eq!(!refused(&propose(&mut r, 3, max)), taken, "{queued} bytes queued before");
    }
    let mut r = primary(|c| {
        c.pipeline_slots_max = 1;
        c.proposals_queued_bytes_max = 1000;
    });
    assert!(!refused(&propose(&mut r, 1, 1000)), "a maximal request enters an empty queue");
    assert!(refused(&propose(&mut r, 2, 1)), "and fills a queue of its size");
}

/// Accepts to `to` that carry a request of at least `size` bytes, counted as they are sent.
fn count_accepts(sim: &mut Sim, to: ReplicaId, size: usize) -> std::rc::Rc<std::cell::Cell<u32>> {
    let count = std::rc::Rc::new(std::cell::Cell::new(0));
    let seen = count.clone();
    sim.drop_messages(move |m| {
        let carries = |e: &SlotValue| match &e.value {
            Value::Batch(reqs) => reqs.iter().any(|r| r.payload.len() >= size),
            _ => false,
        };
        if m.to == to
            && matches!(&m.body, Body::Accept { entries, .. } if entries.iter().any(carries))
        {
            seen.set(seen.get() + 1);
        }
        false
    });
    count
}

/// A follower whose link is slow has not yet acknowledged the heartbeats queued behind an
/// accept. A small accept is sent again after two heartbeat intervals (it may have been lost);
/// a maximal one not before its bytes could have crossed at `RESEND_BYTES_PER_TICK`: every
/// copy would queue before the heartbeats and the primary, unheard, would step down (seen
/// with 16 MiB values in the real-process nemesis suite). The value still reaches the
/// follower once the link is fast again.
#[test]
fn a_maximal_accept_is_not_sent_again_while_its_bytes_may_still_be_crossing() {
    use rsl_core::limits::RESEND_BYTES_PER_TICK;
    let heartbeat = u64::from(Config::new(1, [1]).heartbeat_ticks);
    for (size, token) in [(64, 1), (REQUEST_BYTES_MAX_DEFAULT, 2)] {
        let mut sim = Sim::new(Options::quiet(3, 22));
        let p = sim.elect();
        let slow = sim.others(p)[0];
        let transfer = (size / RESEND_BYTES_PER_TICK) as u64;
        let first_resend = 2 * heartbeat + transfer;
        // Everything the primary sends the followers arrives 25 ticks late (both: a slot one
        // of them votes for is chosen and no longer resent; less than an election timeout).
        sim.delay_messages(move |m| m.from == p, 25);
        let count = count_accepts(&mut sim, slow, size);
        let ticket = sim.propose_sized(p, Op::Append { key: 0, token }, size, true);
        sim.run_ticks(24);
        if first_resend < 15 {
            assert!(count.get() >= 2, "a {size}-byte accept sent {} times", count.get());
        } else {
            assert!(first_resend > 24, "the test's window is within the wait");
            assert_eq!(count.get(), 1, "a {size}-byte accept sent again while crossing");
        }
        sim.clear_filters();
        let done = |s: &Sim| matches!(s.reply(ticket), Some(Reply::Done { .. }));
        assert!(sim.run_until(done, 1000), "{size} bytes: {:?}", sim.reply(ticket));
        let at_slow = |s: &Sim| s.kv(slow).is_some_and(|k| k.value(0) == [token]);
        assert!(sim.run_until(at_slow, 1000), "the {size}-byte value never reached the follower");
        sim.end();
    }
}
