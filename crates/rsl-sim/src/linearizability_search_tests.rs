//! Tests of the search's two prunings (dead states and reads taken greedily): on the shape of
//! history that made seed 50000482 of the default swarm give up, on small histories it must
//! reject, and against the plain search on random histories, with which it must agree.

use super::*;
use crate::rng::Rng;

/// The plain Wing & Gong search with Lowe's memoisation, without either pruning.
const PLAIN: Search<'static> = Search {
    observed: None,
    greedy_reads: false,
    interchangeable: false,
    lost_tokens: false,
    reachable_reads: false,
    by_return: false,
    steps_max: TEST_STEPS_MAX,
    cache_bytes_max: SEARCH_CACHE_BYTES_MAX,
};

/// A history and the values its reads returned.
#[derive(Default)]
struct Builder {
    history: Vec<Operation>,
    observed: Observed,
    /// Per round of `racing_rounds`: the indices of the reads before its race, and the value
    /// they returned.
    quiet: Vec<(Vec<usize>, Vec<u64>)>,
}

impl Builder {
    fn read(&mut self, client: u32, value: &[u64], call: u64, ret: u64) {
        self.observed.add(value);
        let output = Some(Output::Value(Fingerprint::of(value)));
        self.history.push(Operation {
            client,
            op: Op::Get { key: 0 },
            call,
            ret: Some(ret),
            output,
        });
    }

    /// A write whose client gave up, known to have taken effect by `effect` (or not at all).
    fn racing(&mut self, client: u32, op: Op, call: u64, effect: Option<u64>) {
        self.history.push(Operation { client, op, call, ret: effect, output: None });
    }

    fn append(&mut self, client: u32, token: u64, call: u64, ret: u64, len: u32) {
        let op = Op::Append { key: 0, token };
        let output = Some(Output::Len(len));
        self.history.push(Operation { client, op, call, ret: Some(ret), output });
    }

    fn full(&self) -> Search<'_> {
        Search { observed: Some(&self.observed), ..Search::FULL }
    }
}

/// The shape of seed 50000482 (185 operations on one key, 8 clients): rounds in which the
/// clients read a quiet value, then fourteen writes (twelve appends, two puts) whose clients
/// all time out race with reads that still see the old value; the writes are executed
/// together, in an order unrelated to their calls, by one time (so each has that return and
/// no output), then one append returns its length, and the next round's reads see the value.
fn racing_rounds(seed: u64, rounds: u64) -> Builder {
    let mut rng = Rng::new(seed);
    let mut b = Builder::default();
    let mut value: Vec<u64> = Vec::new();
    let mut t = 1_000;
    let mut token = 1;
    for round in 0..=rounds {
        let start = b.history.len();
        for c in 0..8 {
            b.read(c, &value, t, t + 300);
            t += 100;
        }
        b.quiet.push(((start..b.history.len()).collect(), value.clone()));
        if round == rounds {
            break;
        }
        let mut writes = Vec::new();
        for i in 0..14u64 {
            let op =
                if i % 7 == 3 { Op::Put { key: 0, token } } else { Op::Append { key: 0, token } };
            token += 1;
            writes.push((op, t));
            // Reads of the old value keep landing between the writes' calls.
            if i % 2 == 1 {
                b.read(8 + i as u32, &value, t + 10, t + 400);
            }
            t += 150;
        }
        let effect = t + 1_000;
        rng.shuffle(&mut writes);
        for (i, (op, call)) in writes.iter().enumerate() {
            b.racing(i as u32, *op, *call, Some(effect));
            match *op {
                Op::Put { token, .. } => value = vec![token],
                Op::Append { token, .. } => value.push(token),
                Op::Get { .. } => unreachable!(),
            }
        }
        t = effect + 100;
        b.append(30, token, t, t + 200, value.len() as u32 + 1);
        value.push(token);
        token += 1;
        t += 300;
    }
    b
}

#[test]
fn racing_timed_out_writes_of_seed_50000482_are_accepted_within_budget() {
    let b = racing_rounds(7, 6);
    assert!(b.history.len() >= 185, "{} operations", b.history.len());
    let steps = check_history(&b.history, b.full()).expect("linearizable by construction");
    // 1.9 million steps, a tenth of the budget.
    assert!(steps < TEST_STEPS_MAX / 5, "{steps} steps");
    assert_eq!(check_observed(&b.history, &b.observed), Ok(()));
    // Without both prunings the search does not finish in a tenth of the budget (which keeps
    // the test fast). Measured with the whole budget: the plain search and greedy reads alone
    // give up; dead states alone finish in 13.7 million steps of the 20 million.
    let tenth = TEST_STEPS_MAX / 10;
    for (what, search) in [
        ("plain", Search { steps_max: tenth, ..PLAIN }),
        ("greedy reads only", Search { greedy_reads: true, steps_max: tenth, ..PLAIN }),
        ("dead states only", Search { observed: Some(&b.observed), steps_max: tenth, ..PLAIN }),
    ] {
        let result = check_history(&b.history, search);
        assert!(matches!(result, Err(Violation::Undecided { .. })), "{what}: {result:?}");
    }
}

/// A search whose cache of visited nodes outgrows its memory bound gives up (undecided, a
/// failure) rather than take the checker's process down: a history that the full search
/// accepts in about 1,200 steps, with room for only a hundred visited nodes. Proven by a
/// planted bug: without the bound's check the search finishes (`Ok(1214)`) and the test
/// fails.
#[test]
fn a_search_outgrowing_its_memory_gives_up() {
    let b = racing_rounds(7, 6);
    assert!(check_history(&b.history, b.full()).is_ok());
    let words = b.history.len().div_ceil(64);
    let small = Search { cache_bytes_max: 100 * (words * 8 + 64), ..b.full() };
    let result = check_history(&b.history, small);
    assert!(matches!(result, Err(Violation::Undecided { .. })), "{result:?}");
}

#[test]
fn a_race_seen_in_two_orders_is_rejected_within_budget() {
    // The same shape, but one read after a race sees two of its appends swapped while the
    // other reads see them in order: no order of the racing writes explains both. The search
    // must exhaust the orders of that race (and go back through the earlier ones) to prove
    // it, which the dead states make cheap.
    let mut b = racing_rounds(7, 6);
    // A round whose race left at least two appends after its last put (the value is
    // [put, appends of the race..., the append with a known length]).
    let (reads, value) = b.quiet.iter().skip(1).find(|(_, v)| v.len() >= 4).cloned().unwrap();
    let mut swapped = value.clone();
    let n = swapped.len();
    swapped.swap(n - 2, n - 3);
    b.observed.add(&swapped);
    b.history[reads[3]].output = Some(Output::Value(Fingerprint::of(&swapped)));
    let result = check_history(&b.history, b.full());
    assert!(matches!(result, Err(Violation::NotLinearizable { .. })), "{result:?}");
}

/// `check_observed` of `history` with the observations its reads' values make.
fn check_built(b: &Builder) -> Result<(), Violation> {
    check_observed(&b.history, &b.observed)
}

#[test]
fn small_non_linearizable_histories_are_rejected() {
    // Two appends race (their clients gave up; both executed by 100); one read sees them in
    // one order and a later read in the other.
    let mut b = Builder::default();
    b.racing(1, Op::Append { key: 0, token: 1 }, 0, Some(100));
    b.racing(2, Op::Append { key: 0, token: 2 }, 0, Some(100));
    b.read(3, &[1, 2], 110, 120);
    b.read(4, &[2, 1], 130, 140);
    assert!(matches!(check_built(&b), Err(Violation::NotLinearizable { .. })));
    // ... and with both reads in one order it passes.
    b.history.pop();
    b.read(4, &[1, 2], 130, 140);
    assert_eq!(check_built(&b), Ok(()));

    // A write executed by 100 that no read observed (a dead list) cannot be left out.
    let mut b = Builder::default();
    b.racing(1, Op::Append { key: 0, token: 1 }, 0, Some(100));
    b.racing(2, Op::Append { key: 0, token: 2 }, 0, Some(100));
    b.read(3, &[2], 110, 120);
    assert!(matches!(check_built(&b), Err(Violation::NotLinearizable { .. })));

    // Puts race: a list once replaced never comes back.
    let mut b = Builder::default();
    b.racing(1, Op::Put { key: 0, token: 1 }, 0, Some(100));
    b.racing(2, Op::Put { key: 0, token: 2 }, 0, Some(100));
    b.read(3, &[1], 50, 60);
    b.read(3, &[2], 61, 70);
    b.read(3, &[1], 71, 80);
    assert!(matches!(check_built(&b), Err(Violation::NotLinearizable { .. })));

    // A read that matches the current list is taken first; it must not hide that a later
    // read went back in time.
    let mut b = Builder::default();
    b.read(1, &[], 0, 100);
    b.racing(2, Op::Append { key: 0, token: 7 }, 5, Some(50));
    b.read(3, &[7], 10, 20);
    b.read(4, &[], 30, 40);
    assert!(matches!(check_built(&b), Err(Violation::NotLinearizable { .. })));

    // A dead list keeps its length: an append after it must return the right one.
    let mut b = Builder::default();
    b.racing(1, Op::Append { key: 0, token: 1 }, 0, Some(10));
    b.append(2, 2, 20, 30, 1);
    assert!(matches!(check_built(&b), Err(Violation::NotLinearizable { .. })));
    b.history.pop();
    b.append(2, 2, 20, 30, 2);
    assert_eq!(check_built(&b), Ok(()));
    // ... and counts every append made to it.
    let mut b = Builder::default();
    b.racing(1, Op::Append { key: 0, token: 1 }, 0, Some(10));
    b.racing(2, Op::Append { key: 0, token: 2 }, 0, Some(10));
    b.append(3, 3, 20, 30, 2);
    assert!(matches!(check_built(&b), Err(Violation::NotLinearizable { .. })));
}

#[test]
#[should_panic(expected = "not among the observations")]
fn a_read_value_missing_from_the_observations_is_a_programmer_error() {
    let mut b = Builder::default();
    b.read(1, &[], 0, 10);
    b.history[0].output = Some(Output::Value(Fingerprint::of(&[9])));
    let _ = check_built(&b);
}

/// Small random histories of one key, each operation's output either right (computed at a
/// point inside its interval) or, now and then, wrong; some clients give up. The pruned
/// search must give exactly the plain search's verdict, with every combination of prunings.
#[test]
fn the_pruned_search_agrees_with_the_plain_search() {
    let mut rng = Rng::new(2026);
    let (mut accepted, mut rejected) = (0, 0);
    for round in 0..3_000u64 {
        let mut b = Builder::default();
        let mut value: Vec<u64> = Vec::new();
        let mut t = 0;
        let count = rng.range(1, 9);
        for i in 0..count {
            t += rng.range(0, 10);
            let call = t - rng.range(0, 20).min(t);
            let ret = t + rng.range(0, 20);
            let token = round * 100 + i + 1;
            let wrong = rng.chance(250);
            let client = i as u32;
            match rng.below(3) {
                0 => {
                    let op = Op::Put { key: 0, token };
                    value = vec![token];
                    let ret = (!rng.chance(300)).then_some(ret);
                    b.history.push(Operation { client, op, call, ret, output: None });
                }
                1 => {
                    value.push(token);
                    match rng.below(4) {
                        0 => b.racing(client, Op::Append { key: 0, token }, call, Some(ret)),
                        1 => b.racing(client, Op::Append { key: 0, token }, call, None),
                        _ => {
                            let len = value.len() as u32 + u32::from(wrong);
                            b.append(client, token, call, ret, len);
                        }
                    }
                }
                _ => {
                    let mut seen = value.clone();
                    if wrong && !seen.is_empty() {
                        match rng.below(3) {
                            0 => seen.reverse(),
                            1 => drop(seen.pop()),
                            _ => seen = vec![seen[0]],
                        }
                    }
                    b.read(client, &seen, call, ret);
                }
            }
        }
        let plain = check_history(&b.history, PLAIN).map(drop);
        assert!(!matches!(plain, Err(Violation::Undecided { .. })), "round {round}");
        for prunings in 0..64u32 {
            let bit = |i: u32| prunings & (1 << i) != 0;
            let search = Search {
                greedy_reads: bit(0),
                observed: bit(1).then_some(&b.observed),
                interchangeable: bit(2),
                lost_tokens: bit(3),
                reachable_reads: bit(4),
                by_return: bit(5),
                ..PLAIN
            };
            let pruned = check_history(&b.history, search).map(drop);
            assert_eq!(
                pruned.is_ok(),
                plain.is_ok(),
                "round {round}, prunings {search:?}: {:?}",
                b.history
            );
        }
        if plain.is_ok() {
            accepted += 1;
        } else {
            rejected += 1;
        }
    }
    // Both verdicts must be common, or the comparison proves little.
    assert!(accepted > 500 && rejected > 500, "{accepted} accepted, {rejected} rejected");
}

/// The shape of seed 70033596 of `--reconfig` (115 operations on one key, 6 clients): the
/// cluster stalls while `n` writes are called (their clients time out and call more); one
/// put executes during the stall and reads see its value; then the stalled writes execute
/// one by one, in an order unrelated to their calls, each answered (a put `Ok`, an append
/// its length), and a read through the log called during the stall returns right after
/// each, seeing its value. Each stalled append may be tried before the stall's put, which
/// forgets it: a dead list whose token a later read returned.
fn stalled_burst(seed: u64, n: u64) -> Builder {
    let mut rng = Rng::new(seed);
    let mut b = Builder::default();
    b.history.push(Operation {
        client: 90,
        op: Op::Put { key: 0, token: 1 },
        call: 0,
        ret: Some(10),
        output: Some(Output::Ok),
    });
    b.read(91, &[1], 20, 30);
    let mut writes = Vec::new();
    for i in 0..n {
        let token = 100 + i;
        let op = if i % 5 == 4 { Op::Put { key: 0, token } } else { Op::Append { key: 0, token } };
        writes.push((op, 100 + 10 * i));
    }
    let stall = 100 + 10 * n;
    b.history.push(Operation {
        client: 92,
        op: Op::Put { key: 0, token: 2 },
        call: stall,
        ret: Some(stall + 10),
        output: Some(Output::Ok),
    });
    b.read(93, &[2], stall + 20, stall + 30);
    rng.shuffle(&mut writes);
    let mut value = vec![2];
    let mut t = stall + 100;
    for (i, (op, call)) in writes.into_iter().enumerate() {
        t += 10;
        let output = match op {
            Op::Put { token, .. } => {
                value = vec![token];
                Output::Ok
            }
            Op::Append { token, .. } => {
                value.push(token);
                Output::Len(value.len() as u32)
            }
            Op::Get { .. } => unreachable!(),
        };
        b.history.push(Operation {
            client: i as u32,
            op,
            call,
            ret: Some(t),
            output: Some(output),
        });
        b.read(100 + i as u32, &value, call + 1, t + 1);
    }
    b
}

#[test]
fn a_burst_of_writes_after_a_stall_as_in_seed_70033596_is_accepted_within_budget() {
    let b = stalled_burst(3, 30);
    let steps = check_history(&b.history, b.full()).expect("linearizable by construction");
    assert!(steps < TEST_STEPS_MAX / 100, "{steps} steps");
    assert_eq!(check_observed(&b.history, &b.observed), Ok(()));
    // The search before lost tokens (dead states and greedy reads, by call) gives up, here on
    // a tenth of the budget to keep the test fast. (Reachable reads and returns first, which
    // came later, would also prune these writes: a read of each stalled append's value is
    // pending when it is tried, and the writes executed in the order of their returns.)
    let before = Search {
        lost_tokens: false,
        reachable_reads: false,
        by_return: false,
        steps_max: TEST_STEPS_MAX / 10,
        ..b.full()
    };
    let result = check_history(&b.history, before);
    assert!(matches!(result, Err(Violation::Undecided { .. })), "{result:?}");
}

#[test]
fn a_burst_seen_in_an_impossible_order_is_rejected_within_budget() {
    // The same shape, but one read of the burst sees two of its appends swapped.
    let mut b = stalled_burst(3, 30);
    let reads: Vec<usize> = (0..b.history.len())
        .filter(|i| matches!(b.history[*i].output, Some(Output::Value(f)) if f.len >= 4))
        .collect();
    let last = *reads.last().expect("a read of four tokens");
    let value = match b.history[last].output {
        Some(Output::Value(f)) => b.observed.values[&f].clone(),
        _ => unreachable!(),
    };
    let mut swapped = value.clone();
    let n = swapped.len();
    swapped.swap(n - 1, n - 2);
    b.observed.add(&swapped);
    b.history[last].output = Some(Output::Value(Fingerprint::of(&swapped)));
    let result = check_history(&b.history, b.full());
    assert!(matches!(result, Err(Violation::NotLinearizable { .. })), "{result:?}");
}

/// Default seed 84814248's history (167 operations on key 0 from 7 clients, 95 of them
/// indeterminate; `rsl-sim --seed 84814248 --dump-history F`): a stall in which every client's
/// writes waited out their timeouts and executed in one burst late, while reads of the list
/// from before the stall kept returning. Reads of that old list were pending while each
/// write of the burst could be tried before them, and the search gave up on a billion steps.
#[test]
fn the_history_of_seed_84814248_is_decided_within_budget() {
    // Without reachable reads (by call, as it was before returns first) the search gives
    // up, here on the same budget.
    fn before(full: Search) -> Search {
        Search { reachable_reads: false, by_return: false, ..full }
    }
    decided_within_budget(84_814_248, include_str!("testdata/seed-84814248.history"), 167, before);
}

/// Default seed 88066138's history (228 operations on key 0 from 8 clients, one of them an
/// indeterminate read the search drops; 113 writes whose clients gave up, each with the time
/// and output of its execution; `rsl-sim --seed 88066138 --dump-history F`): partitions in
/// which writes waited and executed in bursts, reads between them seeing lists a burst's puts
/// and appends built. Trying the writes by call, the search gave up on a billion steps (180
/// s, 5.7 GB of memoised nodes); by return it takes one step an operation.
#[test]
fn the_history_of_seed_88066138_is_decided_within_budget() {
    // By call, the search gives up, here on the same budget.
    fn by_call(full: Search) -> Search {
        Search { by_return: false, ..full }
    }
    decided_within_budget(88_066_138, include_str!("testdata/seed-88066138.history"), 228, by_call);
}

/// A seed's dumped history (`text`, `operations` of them) reads back as written, the full
/// search decides it in a tenth of the unit tests' budget, and the search `without` a part
/// gives up on the whole of it.
fn decided_within_budget(seed: u64, text: &str, operations: usize, without: fn(Search) -> Search) {
    let (history, observed) = parse_history(text).expect("the history parses");
    assert_eq!(history.len(), operations);
    // What was written reads back the same.
    assert_eq!(write_history(&history, &observed), text);
    let full = Search { observed: Some(&observed), steps_max: TEST_STEPS_MAX, ..Search::FULL };
    let steps = check_history(&history, full).expect("linearizable");
    eprintln!("seed {seed}: {steps} steps");
    assert!(steps < TEST_STEPS_MAX / 10, "{steps} steps");
    let result = check_history(&history, without(full));
    assert!(matches!(result, Err(Violation::Undecided { .. })), "{result:?}");
}
