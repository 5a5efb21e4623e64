//! The core's planted bugs by name (feature `planted-bugs`).

use rsl_core::bugs::Bug;

/// Every planted bug. `exhaustive` fails to compile when the core adds one, so this list
/// cannot fall behind.
pub const ALL: [Bug; 7] = [
    Bug::AcceptorIgnoresPromise,
    Bug::SkipPhase1Reproposal,
    Bug::CountOwnVoteBeforeDurable,
    Bug::SendBeforePersist,
    Bug::CommitOnMinority,
    Bug::ExecuteOutOfOrder,
    Bug::WipedReplicaVotes,
];

#[allow(dead_code)]
fn exhaustive(bug: Bug) {
    match bug {
        Bug::AcceptorIgnoresPromise
        | Bug::SkipPhase1Reproposal
        | Bug::CountOwnVoteBeforeDurable
        | Bug::SendBeforePersist
        | Bug::CommitOnMinority
        | Bug::ExecuteOutOfOrder
        | Bug::WipedReplicaVotes => {}
    }
}

pub fn name(bug: Bug) -> String {
    format!("{bug:?}")
}

/// A bug by its name (case-insensitive).
pub fn parse(name: &str) -> Option<Bug> {
    ALL.into_iter().find(|b| format!("{b:?}").eq_ignore_ascii_case(name))
}
