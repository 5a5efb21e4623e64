//! Each planted bug produces the misbehavior it names, and the core's own contracts stay
//! quiet about it (they are disabled for that bug), so only the simulator's checkers can
//! catch it. Run with `--features planted-bugs`; without it, the same stories show the
//! correct behavior.

#[path = "common/lone.rs"]
mod lone;

use bytes::Bytes;
use lone::{b, batch, from, sent, step};
use rsl_core::message::Body;
use rsl_core::{
    Action, Ballot, Config, Input, LogEntry, Recovered, Replica, ReplicaId, RequestId, Slot,
    SlotValue, Value,
};

#[cfg(feature = "planted-bugs")]
use rsl_core::bugs::{Bug, Bugs};

fn replica(bug: Option<&str>) -> Replica {
    let mut config = Config::new(1, [1, 2, 3]);
    plant(&mut config, bug);
    Replica::new(config, Recovered::default())
}

#[cfg(feature = "planted-bugs")]
fn plant(config: &mut Config, bug: Option<&str>) {
    let bug = match bug {
        None => return,
        Some("AcceptorIgnoresPromise") => Bug::AcceptorIgnoresPromise,
        Some("SkipPhase1Reproposal") => Bug::SkipPhase1Reproposal,
        Some("CountOwnVoteBeforeDurable") => Bug::CountOwnVoteBeforeDurable,
        Some("SendBeforePersist") => Bug::SendBeforePersist,
        Some("CommitOnMinority") => Bug::CommitOnMinority,
        Some("ExecuteOutOfOrder") => Bug::ExecuteOutOfOrder,
        Some("WipedReplicaVotes") => Bug::WipedReplicaVotes,
        Some(other) => panic!("unknown bug {other}"),
    };
    config.bugs = Bugs(vec![bug]);
}

#[cfg(not(feature = "planted-bugs"))]
fn plant(_config: &mut Config, bug: Option<&str>) {
    assert!(bug.is_none(), "planting needs the planted-bugs feature");
}

/// The bug under test when the feature is on, none otherwise.
fn bug(name: &'static str) -> Option<&'static str> {
    if cfg!(feature = "planted-bugs") {
        Some(name)
    } else {
        None
    }
}

fn last_seq(out: &[Action]) -> u64 {
    out.iter()
        .rev()
        .find_map(|a| if let Action::Persist { seq, .. } = a { Some(*seq) } else { None })
        .unwrap_or(0)
}

fn accept(ballot: Ballot, commit: u64, slot: u64, value: Value) -> Input {
    from(
        ballot.replica,
        Body::Accept {
            ballot,
            commit: Slot(commit),
            entries: vec![SlotValue { slot: Slot(slot), value }],
        },
    )
}

#[test]
fn acceptor_ignores_promise() {
    let planted = bug("AcceptorIgnoresPromise");
    let mut r = replica(planted);
    let out = step(&mut r, accept(b(5, 3), 0, 1, batch(1)));
    step(&mut r, Input::Durable { seq: last_seq(&out) });
    let out = step(&mut r, accept(b(4, 2), 0, 1, batch(2)));
    let overwrote = out.iter().any(|a| matches!(a, Action::Persist { .. }));
    assert_eq!(overwrote, planted.is_some(), "{out:?}");
}

#[test]
fn send_before_persist() {
    let planted = bug("SendBeforePersist");
    let mut r = replica(planted);
    let out = step(&mut r, accept(b(1, 2), 0, 1, batch(1)));
    let voted = sent(&out).iter().any(|m| matches!(m, Body::Accepted { .. }));
    assert_eq!(voted, planted.is_some(), "{out:?}");
}

#[test]
fn wiped_replica_votes() {
    // A replica told its disk was lost: once its marker writes are durable, it promises at
    // once with the bug, never without (it waits for a primary's fresh phase 1).
    let planted = bug("WipedReplicaVotes");
    let mut config = Config::new(1, [1, 2, 3]);
    plant(&mut config, planted);
    let mut r = Replica::new(config, Recovered { rebuilding: true, ..Recovered::default() });
    // Past the election timeout (a restarted replica first refuses every candidate).
    for _ in 0..1000 {
        let mut out = step(&mut r, Input::Tick);
        while last_seq(&out) > 0 {
            out = step(&mut r, Input::Durable { seq: last_seq(&out) });
        }
    }
    let prepare = Body::Prepare { ballot: b(1000, 2), after: Slot::ZERO, transfer: None };
    let out = step(&mut r, from(2, prepare));
    let out = step(&mut r, Input::Durable { seq: last_seq(&out) });
    let promised = sent(&out).iter().any(|m| matches!(m, Body::Promise { .. }));
    assert_eq!(promised, planted.is_some(), "{out:?}");
    assert_eq!(r.status().rebuilding, planted.is_none());
}

#[test]
fn execute_out_of_order() {
    let planted = bug("ExecuteOutOfOrder");
    let mut r = replica(planted);
    let out = step(&mut r, accept(b(1, 2), 0, 2, batch(2)));
    step(&mut r, Input::Durable { seq: last_seq(&out) });
    let out = step(&mut r, from(2, Body::Heartbeat { ballot: b(1, 2), commit: Slot(2), round: 1 }));
    let executed = out.iter().any(|a| matches!(a, Action::Execute { slot: Slot(2), .. }));
    assert_eq!(executed, planted.is_some(), "{out:?}");
}

/// Makes replica 1 primary of {1, 2, 3} with replica 2's promise reporting `entries`;
/// returns the accepts phase 1 sent and the seq of the last write.
fn elect(r: &mut Replica, entries: Vec<LogEntry>) -> (Vec<Body>, u64) {
    let mut ballot = None;
    for _ in 0..200 {
        let out = step(r, Input::Tick);
        ballot = sent(&out).iter().find_map(|m| {
            if let Body::PreVote { ballot, .. } = m {
                Some(*ballot)
            } else {
                None
            }
        });
        if ballot.is_some() {
            break;
        }
    }
    let _ = ballot.expect("no pre-vote");
    let out = step(r, from(2, Body::PreVoteReply { ballot: ballot.unwrap(), granted: true }));
    let ballot = r.status().promised;
    step(r, Input::Durable { seq: last_seq(&out) });
    let promise = Body::Promise {
        ballot,
        commit: Slot::ZERO,
        entries,
        unknown: vec![],
        after: Slot::ZERO,
        more_after: None,
        dropped: false,
    };
    let out = step(r, from(2, promise));
    (sent(&out), last_seq(&out))
}

#[test]
fn skip_phase1_reproposal() {
    let planted = bug("SkipPhase1Reproposal");
    let mut r = replica(planted);
    let accepted = LogEntry { slot: Slot(1), ballot: b(0, 3), value: batch(1) };
    let (accepts, _) = elect(&mut r, vec![accepted]);
    assert!(!accepts.is_empty(), "phase 1 did not complete");
    let reproposed = accepts.iter().any(|m| match m {
        Body::Accept { entries, .. } => {
            entries.contains(&SlotValue { slot: Slot(1), value: batch(1) })
        }
        _ => false,
    });
    assert_eq!(reproposed, planted.is_none(), "{accepts:?}");
}

/// A primary that proposes one request; returns its commit point after its own write is
/// durable (`sync`) and after `votes` followers voted.
fn commit_after(planted: Option<&str>, sync: bool, votes: u32) -> Slot {
    let mut r = replica(planted);
    let (_, seq) = elect(&mut r, vec![]);
    step(&mut r, Input::Durable { seq });
    let ballot = r.status().ballot;
    step(&mut r, from(2, Body::Accepted { ballot, slots: vec![Slot(1)] }));
    assert_eq!(r.status().commit, Slot(1), "the phase-1 no-op is chosen");
    let id = RequestId { proposer: ReplicaId(1), incarnation: 1, seq: 1 };
    let out =
        step(&mut r, Input::Propose { id, payload: Bytes::from_static(b"x"), exclusive: false });
    if sync {
        step(&mut r, Input::Durable { seq: last_seq(&out) });
    }
    for v in 0..votes {
        step(&mut r, from(2 + v, Body::Accepted { ballot, slots: vec![Slot(2)] }));
    }
    r.status().commit
}

#[test]
fn count_own_vote_before_durable() {
    let planted = bug("CountOwnVoteBeforeDurable");
    let commit = commit_after(planted, false, 1);
    assert_eq!(commit >= Slot(2), planted.is_some(), "commit {commit:?}");
}

#[test]
fn commit_on_minority() {
    let planted = bug("CommitOnMinority");
    let commit = commit_after(planted, true, 0);
    assert_eq!(commit >= Slot(2), planted.is_some(), "commit {commit:?}");
}
