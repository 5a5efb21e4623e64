//! The coverage report of a campaign: how often each interesting path of the protocol and
//! each fault fired, summed over the seeds, and on how many seeds. Printed at the end of
//! `rsl-sim --seeds N`, so a path the swarm never reaches shows as a zero at a glance.

use crate::Stats;

/// A path of the report: its name, and how often it fired in one seed (from its counters).
pub type Path = (&'static str, fn(&Stats) -> u64);

/// The one line that counts a fault of the simulator's, not a path: it should stay at zero
/// (`Sim::over_the_fault_model`).
const OVER_THE_MODEL: &str = "world ticks over the fault model's lost-data bound";

/// The paths the report lists, each read from one seed's counters.
pub const PATHS: [Path; 48] = [
    ("elections won", |s| s.elections),
    ("phase 1 with competing values", |s| s.phase1_competing),
    ("phase 1 over a slot reported lost, not ruled out", |s| s.phase1_lost),
    ("late votes of an earlier ballot at its primary", |s| s.late_votes),
    ("lease reads", |s| s.lease_reads),
    ("primacy transfers", |s| s.transfers),
    ("replicas told what a primary said is chosen", |s| s.chosen_told),
    ("  of which moved its commit point (learned)", |s| s.chosen_learned),
    ("transfers that timed out", |s| s.transfers_timed_out),
    ("learners promoted", |s| s.promotions),
    ("membership operations taken by a replica", |s| s.reconfigurations_asked),
    ("  waiting for the slots before them to execute", |s| s.configs_behind_slots),
    ("  answered made", |s| s.reconfigurations_made),
    ("  answered refused", |s| s.reconfigurations_refused),
    ("    of which superseded (another value in the slot)", |s| s.reconfigurations_superseded),
    ("  unanswered (the replica went down first)", |s| s.reconfigurations_unanswered),
    ("  unanswered (its slot undecided at the end)", |s| s.reconfigurations_undecided),
    ("crashes of a primary with a loaded pipeline", |s| s.loaded_crashes),
    ("partial accepts (a minority gets a slot)", |s| s.partial_accepts),
    ("primary crashes holding back its late votes", |s| s.votes_held),
    ("primary crashes rotting its newest records", |s| s.tails_lost),
    ("checkpoint fallbacks over a truncated log", |s| s.fallbacks),
    ("restarts that lost slots to an older checkpoint", |s| s.restarts_lost_slots),
    ("learners cut off and made the voters", |s| s.cut_off_changes),
    ("seeds drawing growths that lose a slot", |s| s.grow_lost_drawn),
    ("  growths started (a voter cut off)", |s| s.grow_lost_started),
    ("  growths the primary executed", |s| s.grow_lost_grown),
    ("  growths losing a slot after them", |s| s.grow_lost),
    ("  growths given up", |s| s.grow_lost_given_up),
    ("catch-up read back from the log (LoadLog)", |s| s.log_loads),
    ("checkpoints taken", |s| s.checkpoints_taken),
    ("checkpoints streamed to a peer", |s| s.checkpoints_sent),
    ("checkpoint installs", |s| s.checkpoints_installed),
    ("  installs at or below the executed point (checked)", |s| s.stale_installs),
    ("checkpoints loaded at a restart", |s| s.checkpoints_loaded),
    ("proposals whose slot an install skipped (outcome unknown)", |s| s.outcomes_unknown),
    ("disk wipes", |s| s.wipes),
    ("rebuilds completed", |s| s.rebuilds),
    ("crashes", |s| s.crashes),
    ("machine crashes", |s| s.machine_crashes),
    ("power losses inside an fsync", |s| s.power_losses),
    ("records corrupted on write", |s| s.storage.writes_corrupted),
    ("reads corrupted", |s| s.storage.reads_corrupted),
    ("records corrupted at rest", |s| s.storage.rests_corrupted),
    ("checkpoints corrupted at rest (skipped at load)", |s| s.storage.checkpoints_corrupted),
    ("torn tails discarded at recovery", |s| s.storage.torn_tails),
    ("corrupt records reported at recovery", |s| s.storage.reported_corrupt),
    (OVER_THE_MODEL, |s| s.fault_model_over),
];

/// Totals over a campaign.
#[derive(Debug, Clone, Default)]
pub struct Coverage {
    /// Per path: the total count and the seeds on which it fired at least once.
    pub counts: Vec<(u64, u64)>,
    pub seeds: u64,
}

impl Coverage {
    pub fn new() -> Coverage {
        Coverage { counts: vec![(0, 0); PATHS.len()], seeds: 0 }
    }

    /// Adds one seed's counters.
    pub fn add(&mut self, stats: &Stats) {
        self.seeds += 1;
        for (i, (_, read)) in PATHS.iter().enumerate() {
            let n = read(stats);
            self.counts[i].0 += n;
            self.counts[i].1 += u64::from(n > 0);
        }
    }

    /// The report, one line per path; a path no seed reached is marked.
    pub fn report(&self) -> String {
        let mut out =
            format!("coverage over {} seeds (total, seeds that reached it):\n", self.seeds);
        for ((name, _), (total, seeds)) in PATHS.iter().zip(&self.counts) {
            // A measure of the simulator's own faults: zero is what it should be.
            let mark = match (*total == 0, *name == OVER_THE_MODEL) {
                (true, false) => "   <- never reached",
                (false, true) => "   <- over the fault model (see the seeds' traces)",
                _ => "",
            };
            out += &format!("  {name:<48} {total:>10} {seeds:>8}{mark}\n");
        }
        out
    }
}
