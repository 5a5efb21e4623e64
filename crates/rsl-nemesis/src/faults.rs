//! The nemesis: which fault comes next, for how long, and how each is made and healed.
//!
//! Faults come one at a time: a quiet gap, a fault held for a drawn duration, its heal. The
//! first faults of a run cover every enabled kind once, in an order drawn from the seed, so
//! that even a short run meets them all; after that each is drawn uniformly. Everything
//! random comes from the seed; the targets also depend on which replica is primary when the
//! fault starts, which the run observes.
//!
//! | kind | what | healed by |
//! | --- | --- | --- |
//! | `kill-primary`, `kill-follower` | SIGKILL | a restart on the same disk |
//! | `kill-all` | SIGKILL of every replica | restarting them all |
//! | `pause-primary`, `pause-follower` | SIGSTOP | SIGCONT |
//! | `isolate-primary`, `isolate-follower` | blackhole routes both ways to the others | removing them |
//! | `primary-mute` | the primary cannot send to the others (one-way) | removing the routes |
//! | `primary-deaf` | the others cannot send to the primary (one-way) | removing the routes |
//! | `bridge` | one link between two followers cut (each still sees the primary) | removing it |
//! | `restart` | SIGTERM (a clean stop) of any replica | starting it again |
//! | `disk-full`, `disk-full-majority` | one or two replicas' filesystems cut to what they hold | their full size back |
//! | `big-values` | the largest value rsl-kv accepts, one byte more, a probe past the limit, the 1 MiB boundary, a random large size | nothing (the writes end by themselves) |

use std::time::Duration;

use anyhow::Context;
use rand::rngs::Xoshiro256PlusPlus;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use rsl_kv::limits::VALUE_BYTES_MAX;

use crate::cluster::{Clock, Cluster};
use crate::disk::Disk;
use crate::history::{set_value_bytes_max, Kind};
use crate::netns::Net;
use crate::workload::{BigJob, BigOp, Workload};

/// A kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, clap::ValueEnum)]
pub enum FaultKind {
    /// SIGKILL the primary, restart it later.
    KillPrimary,
    /// SIGKILL a follower, restart it later.
    KillFollower,
    /// SIGKILL every replica, restart them all.
    KillAll,
    /// SIGSTOP the primary, SIGCONT later.
    PausePrimary,
    /// SIGSTOP a follower.
    PauseFollower,
    /// Cut the primary from the others, both ways.
    IsolatePrimary,
    /// Cut a follower from the others, both ways.
    IsolateFollower,
    /// The primary cannot send to the others.
    PrimaryMute,
    /// The others cannot send to the primary.
    PrimaryDeaf,
    /// Cut the link between two followers.
    Bridge,
    /// Stop a replica cleanly (SIGTERM), start it later.
    Restart,
    /// Fill one replica's filesystem.
    DiskFull,
    /// Fill two replicas' filesystems (a majority of three).
    DiskFullMajority,
    /// Write the largest values.
    BigValues,
}

impl FaultKind {
    /// Every kind, in a fixed order.
    pub const ALL: [FaultKind; 14] = [
        FaultKind::KillPrimary,
        FaultKind::KillFollower,
        FaultKind::KillAll,
        FaultKind::PausePrimary,
        FaultKind::PauseFollower,
        FaultKind::IsolatePrimary,
        FaultKind::IsolateFollower,
        FaultKind::PrimaryMute,
        FaultKind::PrimaryDeaf,
        FaultKind::Bridge,
        FaultKind::Restart,
        FaultKind::DiskFull,
        FaultKind::DiskFullMajority,
        FaultKind::BigValues,
    ];

    /// Its name on the command line and in the figures.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::KillPrimary => "kill-primary",
            FaultKind::KillFollower => "kill-follower",
            FaultKind::KillAll => "kill-all",
            FaultKind::PausePrimary => "pause-primary",
            FaultKind::PauseFollower => "pause-follower",
            FaultKind::IsolatePrimary => "isolate-primary",
            FaultKind::IsolateFollower => "isolate-follower",
            FaultKind::PrimaryMute => "primary-mute",
            FaultKind::PrimaryDeaf => "primary-deaf",
            FaultKind::Bridge => "bridge",
            FaultKind::Restart => "restart",
            FaultKind::DiskFull => "disk-full",
            FaultKind::DiskFullMajority => "disk-full-majority",
            FaultKind::BigValues => "big-values",
        }
    }
}

/// How long faults last and the gaps between them.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Quiet time between a heal and the next fault, at least.
    pub gap_min: Duration,
    /// ... and at most.
    pub gap_max: Duration,
    /// A fault's duration, at least.
    pub hold_min: Duration,
    /// ... and at most.
    pub hold_max: Duration,
}

impl Timing {
    /// Shorter gaps and faults, so that a short run (CI's) meets every kind.
    pub fn quick() -> Timing {
        Timing {
            gap_min: Duration::from_secs(1),
            gap_max: Duration::from_secs(2),
            hold_min: Duration::from_secs(2),
            hold_max: Duration::from_secs(4),
        }
    }
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            gap_min: Duration::from_secs(2),
            gap_max: Duration::from_secs(5),
            hold_min: Duration::from_secs(2),
            hold_max: Duration::from_secs(8),
        }
    }
}

/// One fault as it happened.
#[derive(Debug, Clone)]
pub struct FaultEvent {
    /// Its kind.
    pub kind: FaultKind,
    /// The replicas it hit.
    pub targets: Vec<u32>,
    /// The primary when it started, as the replicas reported.
    pub primary: Option<u32>,
    /// When it started (µs since the run started).
    pub start_us: u64,
    /// When it was healed.
    pub heal_us: Option<u64>,
    /// What happened, for the log (a restart that failed, a disk's size...).
    pub note: String,
}

impl FaultEvent {
    /// Its line in `faults.tsv`: start, kind, targets, primary, heal, note.
    pub fn line(&self) -> String {
        let ids = |v: &[u32]| v.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
        let or_dash = |v: Option<u64>| v.map_or("-".to_string(), |t| t.to_string());
        format!(
            "{}\t{}\t{}\t{}\t{}\t{}",
            self.start_us,
            self.kind.name(),
            ids(&self.targets),
            or_dash(self.primary.map(u64::from)),
            or_dash(self.heal_us),
            self.note.replace(['\t', '\n'], " ")
        )
    }

    /// Parses a line written by [`FaultEvent::line`].
    pub fn parse(line: &str) -> Option<FaultEvent> {
        let f: Vec<&str> = line.splitn(6, '\t').collect();
        let [start, kind, targets, primary, heal, note] = f[..] else { return None };
        // Also the first format, which wrote `[1, 2]` and `Some(2)`.
        let dash = |t: &str| -> Option<Option<u64>> {
            let t = t.trim_start_matches("Some(").trim_end_matches(')');
            if t == "-" || t == "None" {
                Some(None)
            } else {
                t.parse().ok().map(Some)
            }
        };
        Some(FaultEvent {
            kind: FaultKind::ALL.into_iter().find(|k| k.name() == kind)?,
            targets: targets
                .trim_matches(|c| c == '[' || c == ']')
                .split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(|t| t.parse().ok())
                .collect::<Option<_>>()?,
            primary: dash(primary)?.map(|p| p as u32),
            start_us: start.parse().ok()?,
            heal_us: dash(heal)?,
            note: note.to_string(),
        })
    }
}

/// What must be undone.
#[derive(Debug)]
enum Undo {
    Start(Vec<u32>),
    Continue(Vec<u32>),
    Unblock(Vec<(u32, u32)>),
    Free(Vec<u32>),
    Nothing,
}

/// A fault in force.
#[derive(Debug)]
pub struct Active {
    /// The record of it.
    pub event: FaultEvent,
    undo: Undo,
}

/// The machinery a fault acts on.
#[derive(Debug)]
pub struct Rig<'a> {
    /// The replicas.
    pub cluster: &'a mut Cluster,
    /// The network.
    pub net: &'a mut Net,
    /// The filesystems, by replica (index `id - 1`).
    pub disks: &'a mut [Disk],
    /// The clients (for the big values).
    pub workload: &'a Workload,
}

/// The fault schedule.
#[derive(Debug)]
pub struct Nemesis {
    rng: Xoshiro256PlusPlus,
    kinds: Vec<FaultKind>,
    cover: Vec<FaultKind>,
    timing: Timing,
    big_jobs: u32,
}

impl Nemesis {
    /// A schedule over `kinds` drawn from `seed`.
    pub fn new(seed: u64, kinds: &[FaultKind], timing: Timing) -> Nemesis {
        assert!(!kinds.is_empty(), "at least one kind of fault");
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let mut cover = kinds.to_vec();
        cover.shuffle(&mut rng);
        cover.reverse(); // popped from the end
        Nemesis { rng, kinds: kinds.to_vec(), cover, timing, big_jobs: 0 }
    }

    /// The next kind: every kind once first, then uniformly.
    pub fn next_kind(&mut self) -> FaultKind {
        self.cover.pop().unwrap_or_else(|| self.kinds[self.rng.random_range(0..self.kinds.len())])
    }

    fn between(&mut self, min: Duration, max: Duration) -> Duration {
        let ms = self.rng.random_range(min.as_millis() as u64..=max.as_millis() as u64);
        Duration::from_millis(ms)
    }

    /// The quiet gap before the next fault.
    pub fn gap(&mut self) -> Duration {
        self.between(self.timing.gap_min, self.timing.gap_max)
    }

    /// How long a fault of `kind` lasts.
    pub fn hold(&mut self, kind: FaultKind) -> Duration {
        let hold = self.between(self.timing.hold_min, self.timing.hold_max);
        match kind {
            // Every replica down: short, so the run spends its time on partial failures.
            FaultKind::KillAll => hold.min(Duration::from_secs(3)),
            // Long enough for the large writes to travel.
            FaultKind::BigValues => hold.max(Duration::from_secs(10)),
            _ => hold,
        }
    }

    fn pick(&mut self, from: &[u32]) -> Option<u32> {
        (!from.is_empty()).then(|| from[self.rng.random_range(0..from.len())])
    }

    /// Starts a fault of `kind`. Its start time is taken once it is in force (the processes
    /// killed or stopped, every route in place, the disks filled), not before: asking for the
    /// primary and installing routes take tens of milliseconds on a loaded machine, and an
    /// operation that completed in between would count as served under the fault.
    pub async fn apply(
        &mut self,
        kind: FaultKind,
        rig: &mut Rig<'_>,
        clock: &Clock,
    ) -> anyhow::Result<Active> {
        let primary = rig.cluster.ask_primary().await;
        let running: Vec<u32> =
            rig.cluster.ids().into_iter().filter(|&id| rig.cluster.is_running(id)).collect();
        let followers: Vec<u32> =
            running.iter().copied().filter(|&id| Some(id) != primary).collect();
        // Without a known primary, a "primary" fault hits any running replica.
        let primary_or_any = match primary {
            Some(p) if running.contains(&p) => Some(p),
            _ => self.pick(&running),
        };
        let mut note = String::new();
        let (targets, undo) = match kind {
            FaultKind::KillPrimary | FaultKind::KillFollower => {
                let target = if kind == FaultKind::KillPrimary {
                    primary_or_any
                } else {
                    self.pick(&followers)
                };
                let targets: Vec<u32> = target.into_iter().collect();
                for &id in &targets {
                    rig.cluster.kill(id).await?;
                }
                (targets.clone(), Undo::Start(targets))
            }
            FaultKind::KillAll => {
                for &id in &running {
                    rig.cluster.kill(id).await?;
                }
                (running.clone(), Undo::Start(running.clone()))
            }
            FaultKind::PausePrimary | FaultKind::PauseFollower => {
                let target = if kind == FaultKind::PausePrimary {
                    primary_or_any
                } else {
                    self.pick(&followers)
                };
                let targets: Vec<u32> = target.into_iter().collect();
                for &id in &targets {
                    rig.cluster.signal(id, libc::SIGSTOP)?;
                }
                (targets.clone(), Undo::Continue(targets))
            }
            FaultKind::IsolatePrimary | FaultKind::IsolateFollower => {
                let all = rig.cluster.ids();
                let others: Vec<u32> =
                    all.iter().copied().filter(|&id| Some(id) != primary).collect();
                let target = if kind == FaultKind::IsolatePrimary {
                    primary.or_else(|| self.pick(&all))
                } else {
                    self.pick(&others)
                };
                let targets: Vec<u32> = target.into_iter().collect();
                let mut cut = Vec::new();
                for &id in &targets {
                    for other in all.iter().copied().filter(|&o| o != id) {
                        cut.extend([(id, other), (other, id)]);
                    }
                }
                self.block(rig, &cut)?;
                (targets, Undo::Unblock(cut))
            }
            FaultKind::PrimaryMute | FaultKind::PrimaryDeaf => {
                let all = rig.cluster.ids();
                let target = primary.or_else(|| self.pick(&all));
                let targets: Vec<u32> = target.into_iter().collect();
                let mut cut = Vec::new();
                for &p in &targets {
                    for other in all.iter().copied().filter(|&o| o != p) {
                        cut.push(if kind == FaultKind::PrimaryMute {
                            (p, other)
                        } else {
                            (other, p)
                        });
                    }
                }
                self.block(rig, &cut)?;
                (targets, Undo::Unblock(cut))
            }
            FaultKind::Bridge => {
                let all = rig.cluster.ids();
                let mut pair: Vec<u32> =
                    all.iter().copied().filter(|&id| Some(id) != primary).collect();
                pair.shuffle(&mut self.rng);
                pair.truncate(2);
                let cut = match pair[..] {
                    [a, b] => vec![(a, b), (b, a)],
                    _ => Vec::new(),
                };
                self.block(rig, &cut)?;
                (pair, Undo::Unblock(cut))
            }
            FaultKind::Restart => {
                let targets: Vec<u32> = self.pick(&running).into_iter().collect();
                for &id in &targets {
                    if !rig.cluster.terminate(id).await? {
                        note = format!(
                            "replica {id} did not stop within the limit after SIGTERM; killed"
                        );
                    }
                }
                (targets.clone(), Undo::Start(targets))
            }
            FaultKind::DiskFull | FaultKind::DiskFullMajority => {
                let mut all = rig.cluster.ids();
                all.shuffle(&mut self.rng);
                all.truncate(if kind == FaultKind::DiskFull { 1 } else { 2 });
                let mut sizes = Vec::new();
                for &id in &all {
                    let bytes = rig.disks[(id - 1) as usize].fill()?;
                    sizes.push(format!("replica {id} at {} MiB", bytes >> 20));
                }
                note = format!("filled: {}", sizes.join(", "));
                (all.clone(), Undo::Free(all))
            }
            FaultKind::BigValues => {
                let job = self.big_job(&rig.cluster.ids());
                note = format!("{} operations on {}", job.ops.len(), job.key);
                rig.workload.big_job(job);
                (Vec::new(), Undo::Nothing)
            }
        };
        let start_us = clock.now_us();
        let event = FaultEvent { kind, targets, primary, start_us, heal_us: None, note };
        Ok(Active { event, undo })
    }

    fn block(&mut self, rig: &mut Rig<'_>, cut: &[(u32, u32)]) -> anyhow::Result<()> {
        for &(from, to) in cut {
            rig.net.block(from, to).with_context(|| format!("cutting {from} -> {to}"))?;
        }
        Ok(())
    }

    /// The largest values, at the primary (found when each operation starts) and through
    /// random replicas.
    fn big_job(&mut self, ids: &[u32]) -> BigJob {
        let key = format!("b{}", self.big_jobs);
        self.big_jobs += 1;
        let target = None;
        let any = self.pick(ids);
        let another = self.pick(ids);
        // One SET carries at most its request's limit less the key and framing; APPEND may
        // grow the value up to VALUE_BYTES_MAX.
        let set_max = set_value_bytes_max(&key);
        let random_bytes = self.rng.random_range(64 << 10..=set_max);
        let op = |kind, bytes, replica, after_ack| BigOp { kind, bytes, replica, after_ack };
        let ops = vec![
            op(Kind::Set, set_max, target, false),
            op(Kind::Get, 0, any, false),
            // Only if that SET was acknowledged is the value known: an APPEND that would
            // make it one byte longer than VALUE_BYTES_MAX must be refused.
            op(Kind::Append, VALUE_BYTES_MAX + 1 - set_max, target, true),
            op(Kind::Set, set_max + 1, target, false),
            op(Kind::Get, 0, another, false),
            op(Kind::Set, 1 << 20, any, false),
            op(Kind::Set, (1 << 20) + 1, another, false),
            op(Kind::Set, random_bytes, any, false),
            op(Kind::Get, 0, target, false),
            // Small again, so that checkpoints and the final reads stay small.
            op(Kind::Set, 64, target, false),
        ];
        BigJob { key, ops }
    }
}

impl Active {
    /// Undoes the fault. A replica that would not start again is noted in the event (the run
    /// goes on; the final phase tries again); an error is one the run cannot survive (a route
    /// or a mount that cannot be undone).
    pub async fn heal(&mut self, rig: &mut Rig<'_>, now_us: u64) -> anyhow::Result<()> {
        self.event.heal_us = Some(now_us);
        match std::mem::replace(&mut self.undo, Undo::Nothing) {
            Undo::Start(ids) => {
                for id in ids {
                    if rig.cluster.is_running(id) {
                        continue;
                    }
                    if let Err(e) = rig.cluster.start(id).await {
                        self.event
                            .note
                            .push_str(&format!(" replica {id} did not start again: {e:#}"));
                    }
                }
            }
            Undo::Continue(ids) => {
                for id in ids {
                    if rig.cluster.is_paused(id) {
                        rig.cluster.signal(id, libc::SIGCONT)?;
                    }
                }
            }
            Undo::Unblock(cut) => {
                for (from, to) in cut {
                    rig.net.unblock(from, to)?;
                }
            }
            Undo::Free(ids) => {
                for id in ids {
                    rig.disks[(id - 1) as usize].free()?;
                }
            }
            Undo::Nothing => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_schedule_covers_every_kind_first_and_replays_from_its_seed() {
        let draw = |seed| {
            let mut n = Nemesis::new(seed, &FaultKind::ALL, Timing::default());
            (0..40).map(|_| (n.next_kind(), n.gap(), n.hold(FaultKind::Bridge))).collect::<Vec<_>>()
        };
        let a = draw(7);
        assert_eq!(a, draw(7), "a seed replays");
        assert_ne!(a, draw(8), "seeds differ");
        let mut first: Vec<FaultKind> = a[..FaultKind::ALL.len()].iter().map(|x| x.0).collect();
        first.sort();
        assert_eq!(first, FaultKind::ALL.to_vec(), "every kind once first");
        for (_, gap, hold) in a {
            assert!(gap >= Duration::from_secs(2) && gap <= Duration::from_secs(5));
            assert!(hold >= Duration::from_secs(2) && hold <= Duration::from_secs(8));
        }
        let mut n = Nemesis::new(1, &[FaultKind::KillAll, FaultKind::BigValues], Timing::default());
        for _ in 0..20 {
            assert!(n.hold(FaultKind::KillAll) <= Duration::from_secs(3));
            assert!(n.hold(FaultKind::BigValues) >= Duration::from_secs(10));
        }
    }

    #[test]
    fn fault_events_round_trip_through_their_lines() {
        let e = FaultEvent {
            kind: FaultKind::DiskFullMajority,
            targets: vec![3, 1],
            primary: Some(2),
            start_us: 12,
            heal_us: None,
            note: "filled:\treplica 3".into(),
        };
        let back = FaultEvent::parse(&e.line()).expect("parses");
        assert_eq!((back.kind, back.targets, back.primary), (e.kind, e.targets.clone(), e.primary));
        assert_eq!(
            (back.start_us, back.heal_us, back.note.as_str()),
            (12, None, "filled: replica 3")
        );
        let none = FaultEvent { targets: vec![], primary: None, heal_us: Some(40), ..e };
        let back = FaultEvent::parse(&none.line()).expect("parses");
        assert_eq!((back.targets, back.primary, back.heal_us), (vec![], None, Some(40)));
        let first_format = FaultEvent::parse("5\tbridge\t[3, 1]\tSome(2)\t9\t").expect("parses");
        assert_eq!((first_format.targets, first_format.primary), (vec![3, 1], Some(2)));
        assert!(FaultEvent::parse("5\tno-such-fault\t\t-\t-\t").is_none());
    }

    #[test]
    fn a_big_job_writes_at_the_limit_and_one_past_it() {
        let mut n = Nemesis::new(3, &[FaultKind::BigValues], Timing::default());
        let job = n.big_job(&[1, 2, 3]);
        assert_eq!(job.key, "b0");
        let sets: Vec<usize> =
            job.ops.iter().filter(|o| o.kind == Kind::Set).map(|o| o.bytes).collect();
        let set_max = set_value_bytes_max("b0");
        assert_eq!(
            set_max,
            rsl_kv::limits::REQUEST_BYTES_MAX - rsl_kv::limits::SET_FRAMING_BYTES - 2
        );
        assert!(sets.contains(&set_max) && sets.contains(&(set_max + 1)));
        assert!(sets.iter().all(|&b| b <= set_max + 1));
        assert_eq!(job.ops[0].replica, None, "the largest value goes to the primary");
        let append: Vec<&BigOp> = job.ops.iter().filter(|o| o.kind == Kind::Append).collect();
        assert!(append.len() == 1 && append[0].after_ack);
        assert_eq!(set_max + append[0].bytes, VALUE_BYTES_MAX + 1, "one byte past the limit");
        assert_eq!(n.big_job(&[1, 2, 3]).key, "b1");
    }
}
