//! What one run of the simulator does: cluster size, durations, and which faults are enabled
//! at what rates. [`Options::swarm`] draws them from the seed ("swarm testing": each seed
//! explores a different mix, so rare interleavings that one fixed mix never reaches get hit).

use crate::bugs::StorageBug;
use crate::rng::Rng;

/// Simulated time units per tick (a replica with no drift ticks every `TICK` units).
pub const TICK: u64 = 1000;

/// Every knob of one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub seed: u64,
    pub replicas: usize,
    /// Length of the fault phase, in ticks.
    pub fault_ticks: u64,
    /// Bound on the liveness phase: the healed cluster must commit and converge within it.
    pub liveness_ticks: u64,
    /// Network: per-message loss and duplication (per mille), delay range (time units).
    pub loss_permille: u32,
    pub duplicate_permille: u32,
    pub delay_min: u64,
    pub delay_max: u64,
    /// Per tick: chance a partition starts (when none) and ends (when one is on).
    pub partition_permille: u32,
    pub partition_heal_permille: u32,
    /// Per tick: chance a replica crashes, and chance a crashed replica restarts.
    pub crash_permille: u32,
    pub restart_permille: u32,
    /// Chance (per mille) that a crash is a machine crash (loses a suffix of unsynced writes)
    /// rather than a process crash (the page cache survives).
    pub machine_crash_permille: u32,
    /// Chance (per mille) that a machine crash also corrupts one durable log record.
    pub corrupt_permille: u32,
    /// Chance (per mille) that a crash wipes the replica's whole disk: it restarts empty and
    /// rebuilding (at most one replica wiped and not yet rebuilt at a time).
    pub wipe_permille: u32,
    /// Chance (per mille) that a machine crash tears the unsynced writes (a seeded prefix
    /// survives with the next write torn, or a seeded subset of sectors, half each) rather
    /// than losing them all.
    pub tear_permille: u32,
    /// Chance (per mille) that a machine crash hits a replica while an fsync is in flight
    /// (drawn when the fsync starts): power loss with writes half on the platter.
    pub crash_in_sync_permille: u32,
    /// Chance (per mille) that an accepted record lands with a corrupt payload byte, on a
    /// replica with a faulty disk.
    pub write_corrupt_permille: u32,
    /// Chance (per mille) that a log read (catch-up, recovery) returns a flipped byte, on a
    /// replica with a faulty disk.
    pub read_corrupt_permille: u32,
    /// Safety only: storage faults may hit every replica (no minority limit), and the
    /// liveness phase is not required (a cluster whose only copies are corrupt may stop);
    /// every safety checker stays on.
    pub safety_only: bool,
    /// Per tick: chance a replica pauses (for up to `pause_ticks_max`).
    pub pause_permille: u32,
    pub pause_ticks_max: u64,
    /// Per tick: chance the primary is asked to transfer primacy.
    pub transfer_permille: u32,
    /// The most two replicas' tick rates differ (per mille); also the core's allowance.
    pub drift_permille: u32,
    /// Per tick: chance a replica's disk stalls (no fsync completes) for up to 100 ticks.
    pub stall_permille: u32,
    /// fsync delay range (time units).
    pub fsync_min: u64,
    pub fsync_max: u64,
    /// Whether one replica is kept out of elections (can-become-primary false).
    pub one_cannot_lead: bool,
    pub clients: usize,
    pub keys: u8,
    /// A client gives up on an operation after this many ticks (its outcome is indeterminate).
    pub client_timeout_ticks: u64,
    /// Chance (per mille) that a read goes through the log as a request.
    pub read_through_log_permille: u32,
    pub exclusive_permille: u32,
    /// Core knobs.
    pub pipeline_slots_max: u64,
    pub batch_requests_max: usize,
    /// The planted bug, by name (needs the `planted-bugs` feature).
    pub bug: Option<String>,
    /// Run the durable-commit check (on by default; off only to show the end-to-end checkers
    /// catch a bug on their own).
    pub durable_commit_check: bool,
    /// Cross-check every recovery against the acknowledged state (on by default; off only
    /// to show the protocol-level checkers catch a storage bug on their own).
    pub storage_check: bool,
    /// A bug planted in the harness rather than the core: clients send their reads to a
    /// random replica as fast reads of slot 0, so stale reads are served. Proves the
    /// linearizability checker catches what the per-slot checkers cannot see.
    pub stale_reads: bool,
    /// A bug planted in the simulated disk (see [`StorageBug`]); no feature needed.
    pub storage_bug: Option<StorageBug>,
    /// Replicas beyond `replicas` that start outside the membership (candidates to add).
    pub spares: usize,
    /// Per tick: chance the primary is asked to change the membership to a random set of
    /// 3 to 7 voters drawn from all replicas.
    pub reconfig_permille: u32,
}

impl Options {
    /// A quiet cluster for scripted scenarios: a reliable network with a small delay, fast
    /// fsyncs, no faults, no drift, no background clients.
    pub fn quiet(replicas: usize, seed: u64) -> Options {
        Options {
            seed,
            replicas,
            fault_ticks: 0,
            liveness_ticks: 1000,
            loss_permille: 0,
            duplicate_permille: 0,
            delay_min: 200,
            delay_max: 400,
            partition_permille: 0,
            partition_heal_permille: 0,
            crash_permille: 0,
            restart_permille: 0,
            machine_crash_permille: 0,
            corrupt_permille: 0,
            wipe_permille: 0,
            tear_permille: 0,
            crash_in_sync_permille: 0,
            write_corrupt_permille: 0,
            read_corrupt_permille: 0,
            safety_only: false,
            pause_permille: 0,
            pause_ticks_max: 0,
            transfer_permille: 0,
            drift_permille: 0,
            stall_permille: 0,
            fsync_min: 100,
            fsync_max: 300,
            one_cannot_lead: false,
            clients: 0,
            keys: 3,
            client_timeout_ticks: 200,
            read_through_log_permille: 0,
            exclusive_permille: 0,
            pipeline_slots_max: 16,
            batch_requests_max: 16,
            bug: None,
            durable_commit_check: true,
            storage_check: true,
            stale_reads: false,
            storage_bug: None,
            spares: 0,
            reconfig_permille: 0,
        }
    }

    /// Draws a fault mix from the seed (the seed also drives the run itself).
    pub fn swarm(seed: u64) -> Options {
        let mut r = Rng::new(seed ^ 0x5157_4152_4d00_0000);
        let on = |r: &mut Rng, permille: u32| r.chance(permille);
        let replicas = r.pick(&[3, 3, 3, 5, 5, 7]);
        let mut o = Options::quiet(replicas, seed);
        o.fault_ticks = 1000;
        o.liveness_ticks = 1500;
        if on(&mut r, 700) {
            o.loss_permille = r.range(0, 300) as u32;
        }
        if on(&mut r, 500) {
            o.duplicate_permille = r.range(0, 100) as u32;
        }
        o.delay_min = r.range(50, 500);
        o.delay_max =
            o.delay_min + if on(&mut r, 500) { r.range(0, 8000) } else { r.range(0, 1000) };
        if on(&mut r, 600) {
            o.partition_permille = r.range(2, 30) as u32;
            o.partition_heal_permille = r.range(5, 50) as u32;
        }
        if on(&mut r, 600) {
            o.crash_permille = r.range(1, 20) as u32;
            o.restart_permille = r.range(5, 60) as u32;
            o.machine_crash_permille = r.range(0, 1000) as u32;
            o.corrupt_permille = if on(&mut r, 300) { r.range(0, 300) as u32 } else { 0 };
        }
        if on(&mut r, 400) {
            o.pause_permille = r.range(1, 20) as u32;
            o.pause_ticks_max = r.range(5, 200);
        }
        if on(&mut r, 300) {
            o.transfer_permille = r.range(1, 20) as u32;
        }
        if on(&mut r, 700) {
            o.drift_permille = r.range(1, 100) as u32;
        }
        if on(&mut r, 300) {
            o.stall_permille = r.range(1, 20) as u32;
        }
        o.fsync_min = r.range(20, 500);
        o.fsync_max = o.fsync_min + r.range(0, 2000);
        o.one_cannot_lead = on(&mut r, 200);
        o.clients = r.range(1, 8) as usize;
        o.keys = r.range(1, 5) as u8;
        o.client_timeout_ticks = r.range(60, 300);
        o.read_through_log_permille = r.range(0, 300) as u32;
        o.exclusive_permille = if on(&mut r, 300) { r.range(0, 300) as u32 } else { 0 };
        o.pipeline_slots_max = r.pick(&[1, 2, 4, 16, 64]);
        o.batch_requests_max = r.pick(&[1, 2, 8, 64]);
        // Storage faults (drawn last, so the knobs above stay what they were per seed).
        o.tear_permille = r.range(0, 1000) as u32;
        if o.crash_permille > 0 && on(&mut r, 300) {
            o.crash_in_sync_permille = r.range(1, 10) as u32;
        }
        if on(&mut r, 300) {
            o.write_corrupt_permille = r.range(1, 30) as u32;
        }
        if on(&mut r, 300) {
            o.read_corrupt_permille = r.range(1, 200) as u32;
        }
        // Drawn from a stream of its own, so the rest of the mix is what it was before the
        // wipe fault existed.
        let mut w = Rng::new(seed ^ 0x5749_5045_0000_0000);
        if o.crash_permille > 0 && on(&mut w, 400) {
            o.wipe_permille = w.range(50, 500) as u32;
        }
        // Membership changes in a third of the seeds, drawn from a stream of their own too:
        // a seed that does not draw them runs as it did before they joined the swarm.
        let mut c = Rng::new(seed ^ 0x4d45_4d42_4552_0000);
        if on(&mut c, 333) {
            o = o.with_reconfiguration();
        }
        o
    }

    /// Plants a core bug by name (needs the `planted-bugs` feature). `WipedReplicaVotes`
    /// shows only through disk loss, so a seed that draws crashes also wipes at least a
    /// third of the time.
    pub fn with_bug(mut self, name: &str) -> Options {
        self.bug = Some(name.to_string());
        if name.eq_ignore_ascii_case("WipedReplicaVotes") && self.crash_permille > 0 {
            self.wipe_permille = self.wipe_permille.max(333);
        }
        self
    }

    /// Safety-only mode: storage faults on every replica, more of them, and no liveness
    /// requirement (`--safety-only`).
    pub fn safety_only(mut self) -> Options {
        self.safety_only = true;
        let mut r = Rng::new(self.seed ^ 0x5341_4645_5459_0000);
        if self.crash_permille > 0 {
            self.machine_crash_permille = self.machine_crash_permille.max(300);
            self.corrupt_permille = self.corrupt_permille.max(r.range(100, 1000) as u32);
        }
        self.write_corrupt_permille = self.write_corrupt_permille.max(r.range(0, 50) as u32);
        self.read_corrupt_permille = self.read_corrupt_permille.max(r.range(0, 300) as u32);
        self
    }

    /// Adds membership changes to a swarm run: 0 to 2 spare replicas outside the initial
    /// membership, and a per-tick chance of asking the primary for a random new membership.
    /// [`Options::swarm`] draws it for a third of the seeds; `--reconfig` forces it on every
    /// seed. Idempotent: its draws come from a stream of their own.
    pub fn with_reconfiguration(mut self) -> Options {
        let mut r = Rng::new(self.seed ^ 0x5245_434f_4e46_0000);
        self.spares = r.range(0, 2) as usize;
        self.reconfig_permille = r.range(1, 10) as u32;
        self
    }

    /// Plants a storage bug. For [`StorageBug::TruncateAtCorruption`], a seed that draws
    /// crashes also gets machine crashes at least half the time, each corrupting a record
    /// (the bug shows only through corruption, which the plain swarm draws rarely).
    pub fn with_storage_bug(mut self, bug: StorageBug) -> Options {
        self.storage_bug = Some(bug);
        if bug == StorageBug::TruncateAtCorruption && self.crash_permille > 0 {
            self.machine_crash_permille = self.machine_crash_permille.max(500);
            self.corrupt_permille = 1000;
        }
        if bug == StorageBug::KeepTornWrite && self.crash_permille > 0 {
            // The bug shows only when a machine crash tears a record: power losses during
            // fsyncs find writes half written.
            self.machine_crash_permille = self.machine_crash_permille.max(500);
            self.tear_permille = 1000;
            self.crash_in_sync_permille = self.crash_in_sync_permille.max(100);
        }
        self
    }

    /// Scales both phases to `ticks` of faults (the liveness bound stays generous).
    pub fn with_ticks(mut self, ticks: u64) -> Options {
        self.fault_ticks = ticks;
        self
    }

    /// A one-line summary of the faults drawn, for failure reports.
    pub fn summary(&self) -> String {
        format!(
            "replicas={} ticks={} loss={}‰ dup={}‰ delay={}..{} partitions={}‰ crashes={}‰ (machine {}‰, tear {}‰, in-sync {}‰, corrupt {}‰, wipe {}‰) corrupt-on-write={}‰ corrupt-on-read={}‰ pauses={}‰ stalls={}‰ transfers={}‰ reconfig={}‰ spares={} drift={}‰ fsync={}..{} clients={} keys={} pipeline={} batch={}{}{}{}",
            self.replicas,
            self.fault_ticks,
            self.loss_permille,
            self.duplicate_permille,
            self.delay_min,
            self.delay_max,
            self.partition_permille,
            self.crash_permille,
            self.machine_crash_permille,
            self.tear_permille,
            self.crash_in_sync_permille,
            self.corrupt_permille,
            self.wipe_permille,
            self.write_corrupt_permille,
            self.read_corrupt_permille,
            self.pause_permille,
            self.stall_permille,
            self.transfer_permille,
            self.reconfig_permille,
            self.spares,
            self.drift_permille,
            self.fsync_min,
            self.fsync_max,
            self.clients,
            self.keys,
            self.pipeline_slots_max,
            self.batch_requests_max,
            if self.one_cannot_lead { " one-cannot-lead" } else { "" },
            if self.safety_only { " safety-only" } else { "" },
            self.bug
                .clone()
                .or(self.storage_bug.map(StorageBug::name))
                .map(|b| format!(" bug={b}"))
                .unwrap_or_default(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swarm_is_a_function_of_the_seed_and_varies() {
        assert_eq!(Options::swarm(5), Options::swarm(5));
        let sizes: std::collections::BTreeSet<usize> =
            (0..100).map(|s| Options::swarm(s).replicas).collect();
        assert_eq!(sizes.into_iter().collect::<Vec<_>>(), vec![3, 5, 7]);
        let lossy = (0..100).filter(|s| Options::swarm(*s).loss_permille > 0).count();
        assert!((30..100).contains(&lossy), "{lossy}");
        // Membership changes are drawn for some seeds, not all; forcing them is idempotent.
        let changing = (0..300).filter(|s| Options::swarm(*s).reconfig_permille > 0).count();
        assert!((60..150).contains(&changing), "{changing}");
        for s in 0..100 {
            let o = Options::swarm(s);
            let forced = o.clone().with_reconfiguration();
            assert!(forced.reconfig_permille > 0);
            if o.reconfig_permille > 0 {
                assert_eq!(forced, o);
            }
        }
        for s in 0..100 {
            let o = Options::swarm(s);
            assert!(o.loss_permille <= 300 && o.delay_min <= o.delay_max);
            assert!(o.fsync_min <= o.fsync_max && o.clients >= 1 && o.keys >= 1);
        }
    }
}
