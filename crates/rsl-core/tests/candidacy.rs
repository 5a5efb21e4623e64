//! A lone candidate's timing, driven by hand (replica 1 of 1, 2, 3; its peers never answer):
//! when it stands, how often it asks again within a candidacy, and how its timeout backs off
//! across candidacies that run out.

#[path = "common/lone.rs"]
mod lone;

use lone::{sent_to, step};
use rsl_core::message::Body;
use rsl_core::{Config, Input, Recovered, Replica};

/// Ticks a lone replica whose peers never answer for `ticks` ticks; returns, per tick (from
/// tick 1), the number of candidacies begun so far and the peers it asked for a pre-vote.
fn run_alone(ticks: u64) -> (Config, Vec<(u64, Vec<u32>)>) {
    let config = Config::new(1, [1, 2, 3]);
    let mut r = Replica::new(config.clone(), Recovered::default());
    let mut trace = Vec::new();
    for _ in 0..ticks {
        let out = step(&mut r, Input::Tick);
        let mut asked: Vec<u32> = sent_to(&out)
            .into_iter()
            .filter(|(_, body)| matches!(body, Body::PreVote { .. }))
            .map(|(to, _)| to)
            .collect();
        asked.sort();
        trace.push((r.status().counters.elections, asked));
    }
    (config, trace)
}

/// A candidacy that hears nobody asks every voter again once per heartbeat interval (not at
/// every tick). The first candidacy's timeout is one election timeout; each one that runs out
/// doubles the next, up to four election timeouts (`ELECTION_BACKOFF_MAX`, 2 doublings).
#[test]
fn an_unanswered_candidate_asks_once_per_heartbeat_and_backs_off_up_to_four_timeouts() {
    let (config, trace) = run_alone(800);
    let (min, max) = (u64::from(config.election_ticks_min), u64::from(config.election_ticks_max));
    let heartbeat = u64::from(config.heartbeat_ticks);
    // The ticks at which a candidacy began.
    let mut starts = Vec::new();
    let mut before = 0;
    for (i, (elections, _)) in trace.iter().enumerate() {
        if *elections > before {
            assert_eq!(*elections, before + 1, "two candidacies at one tick");
            starts.push(i as u64 + 1);
            before = *elections;
        }
    }
    assert!(starts.len() >= 5, "candidacies at {starts:?}");
    assert!((min..max).contains(&starts[0]), "the first candidacy at tick {}", starts[0]);
    for (k, gap) in starts.windows(2).map(|w| w[1] - w[0]).enumerate() {
        let backoff = (k as u32).min(2);
        let (low, high) = (min << backoff, (max - 1) << backoff);
        assert!((low..=high).contains(&gap), "candidacy {} after {gap} ticks: {starts:?}", k + 2);
    }
    // Within each candidacy, the pre-vote goes to both peers at its start and then exactly
    // every heartbeat interval.
    for (i, (_, asked)) in trace.iter().enumerate() {
        let tick = i as u64 + 1;
        let Some(start) = starts.iter().rev().find(|s| **s <= tick) else {
            assert!(asked.is_empty(), "asked before standing, at tick {tick}");
            continue;
        };
        let due = (tick - start) % heartbeat == 0;
        let expected: Vec<u32> = if due { vec![2, 3] } else { vec![] };
        assert_eq!(asked, &expected, "at tick {tick}, candidacy from {start}");
    }
}
