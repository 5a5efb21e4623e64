//! rsl-nemesis: a real-process nemesis suite for rsl-kv, in the style of Jepsen.
//!
//! Three `rsl-kv run` processes, each in its own network namespace joined to a bridge, each
//! on its own small filesystem; concurrent clients over RESP recording every operation's
//! invocation, completion and result; faults drawn from a seed (kill -9 and restart,
//! SIGSTOP/SIGCONT, partitions, a full disk, clean restarts, the largest values); at the end,
//! everything healed, a final read of every key through every replica, then from every
//! replica's own state. The history is checked for linearizability by the simulator's checker
//! and for lost acknowledged writes, and the run prints its figures (operations, faults by
//! kind, unavailability) and verdicts.
//!
//! The modules, in the order a run uses them: [`netns`] (namespaces, bridge, partitions),
//! [`disk`] (the small filesystems), [`cluster`] (the replica processes), [`workload`] (the
//! clients), [`faults`] (the nemesis), [`history`] (records and the file format), [`check`]
//! (the checkers), [`report`] (figures) and [`run`] (one whole run). See docs/testing.md,
//! "Real-process nemesis".

pub mod check;
pub mod cluster;
pub mod disk;
pub mod faults;
pub mod history;
pub mod netns;
pub mod report;
pub mod run;
pub mod workload;
