//! Checkpoints, as the runtime handles them: `TakeCheckpoint` snapshots the key-value
//! machine at once and writes it to the replica's checkpoint store (the real one, on its
//! simulated medium) a little later, one at a time, then reports `CheckpointSaved`;
//! `SendCheckpoint` streams the newest checkpoint that verifies to the peer over the
//! simulated network, which keeps it in its own store and, if it is ahead of what it executed,
//! installs it and reports `CheckpointInstalled`; a restart loads the newest checkpoint that
//! verifies (corrupt ones are skipped) and replays the log after it.
//!
//! A checkpoint carries the membership after its slot in its header, as in the runtime
//! (`rsl_store::encode_checkpoint_header`): the core hears it with `CheckpointInstalled`, and
//! a restart recovers it, since the configurations up to the checkpoint are skipped.
//!
//! Every checkpoint a replica loads or installs is checked against the reference state:
//! the chosen values of slots 1 to its slot applied in order (`Check::Checkpoint`); the
//! membership every replica believes is checked after every step (`Check::Membership`).

use rsl_core::{Input, Membership, Recovered, ReplicaId, Slot, Value};

use super::event::{Event, Pending};
use super::{KvMachine, NodeState, Sim};
use crate::bugs::StorageBug;
use crate::checker::Check;
use crate::kv::Kv;

impl Sim {
    /// The core asked replica `node` for a checkpoint of its state after `slot`, its last
    /// executed slot, under `membership`: snapshot now, write later (skipped while one is
    /// being written, and when the machine installed a newer checkpoint the core has not
    /// heard of yet, as the runtime does).
    pub(super) fn take_checkpoint(&mut self, node: usize, slot: Slot, membership: &Membership) {
        let n = &mut self.nodes[node];
        if n.checkpoint_writing || n.machine.1 != slot {
            return;
        }
        n.checkpoint_writing = true;
        let header = match self.options.storage_bug {
            // The planted bug: checkpoints without the membership, as before they carried it.
            Some(StorageBug::CheckpointWithoutMembership) => Vec::new(),
            _ => rsl_store::encode_checkpoint_header(membership),
        };
        let (mut slot, data) = (n.machine.1, n.machine.0.snapshot());
        if self.options.storage_bug == Some(StorageBug::CheckpointSlotOffByOne) && slot.0 > 1 {
            // The planted bug: the state after slot s labelled as the state after s - 1.
            slot = Slot(slot.0 - 1);
        }
        let incarnation = n.incarnation;
        self.stats.checkpoints_taken += 1;
        let delay = 2 * self.rng.range(self.options.fsync_min, self.options.fsync_max);
        self.schedule(delay, Event::CheckpointWritten { node, incarnation, slot, header, data });
    }

    /// The checkpoint is durably in the store: the core may truncate the log below it.
    pub(super) fn on_checkpoint_written(
        &mut self,
        node: usize,
        incarnation: u64,
        slot: Slot,
        header: &[u8],
        data: &[u8],
    ) {
        let n = &mut self.nodes[node];
        if n.incarnation != incarnation || n.state == NodeState::Down {
            return;
        }
        n.checkpoint_writing = false;
        let id = n.id;
        if let Err(e) = n.disk.save_checkpoint(slot, header, data) {
            // The store verifies what it wrote before publishing it: a write the disk
            // corrupted fails the commit, and the checkpoint is simply not taken (the core
            // keeps its log and asks again later), as in the runtime.
            self.record(format_args!("{id:?} failed to save checkpoint {}: {e}", slot.0));
            self.stats.checkpoints_failed += 1;
            return;
        }
        self.record(format_args!("{id:?} saved checkpoint {}", slot.0));
        self.deliver(node, Pending::Input(Input::CheckpointSaved { slot }));
    }

    /// The core asked replica `node` to stream its newest checkpoint to `to`.
    pub(super) fn send_checkpoint(&mut self, node: usize, to: ReplicaId) {
        let Some((slot, header, data)) = self.nodes[node].disk.newest_checkpoint() else {
            return;
        };
        let from = self.nodes[node].id;
        self.stats.checkpoints_sent += 1;
        let lost = self.net.is_cut(from, to) || self.rng.chance(self.net.loss_permille);
        if lost {
            return;
        }
        // A checkpoint is larger than a message: several round trips' worth of delay.
        let delay = 2 * self.rng.range(self.net.delay_min, self.net.delay_max);
        let to = self.index(to);
        self.schedule(delay, Event::CheckpointArrives { from: node, to, slot, header, data });
    }

    /// A streamed checkpoint reached `to` (if the link still holds).
    pub(super) fn on_checkpoint_arrives(
        &mut self,
        from: usize,
        to: usize,
        slot: Slot,
        header: Vec<u8>,
        data: Vec<u8>,
    ) {
        if self.net.is_cut(self.nodes[from].id, self.nodes[to].id) {
            return;
        }
        self.deliver(to, Pending::Install { slot, header, data });
    }

    /// Replica `node` received a checkpoint: it keeps it in its store and, if the state
    /// machine has not executed past it, loads it; the core hears of it a little later (in
    /// the runtime the executor loads it and tells the consensus thread, which may have
    /// executed more meanwhile: installs race with executes).
    pub(super) fn install_checkpoint(
        &mut self,
        node: usize,
        slot: Slot,
        header: &[u8],
        data: &[u8],
    ) {
        let id = self.nodes[node].id;
        if let Err(e) = self.nodes[node].disk.save_checkpoint(slot, header, data) {
            // As in the runtime, a received checkpoint is installed only once it is safely in
            // the store; the core asks again.
            self.record(format_args!("{id:?} failed to keep checkpoint {}: {e}", slot.0));
            self.stats.checkpoints_failed += 1;
            return;
        }
        if slot <= self.nodes[node].machine.1 {
            return;
        }
        let Some(kv) = Kv::restore(data) else {
            let detail = format!("{id:?} received an unreadable checkpoint");
            return self.checker.fail(Check::Checkpoint, detail);
        };
        let membership = match rsl_store::decode_checkpoint_header(header) {
            Ok(m) => m,
            Err(e) => {
                let detail = format!("{id:?} received a checkpoint whose header is bad: {e}");
                return self.checker.fail(Check::Checkpoint, detail);
            }
        };
        self.stats.checkpoints_installed += 1;
        self.claim_checkpoint(id, slot, kv.digest());
        self.nodes[node].machine = KvMachine(kv, slot);
        let incarnation = self.nodes[node].incarnation;
        let delay = self.rng.range(0, self.options.fsync_max);
        self.schedule(delay, Event::Installed { node, incarnation, slot, membership });
    }

    /// The core hears that the state machine installed a checkpoint.
    pub(super) fn on_installed(
        &mut self,
        node: usize,
        incarnation: u64,
        slot: Slot,
        membership: Option<Membership>,
    ) {
        if self.nodes[node].incarnation == incarnation {
            let installed = Input::CheckpointInstalled { slot, membership };
            self.deliver(node, Pending::Input(installed));
        }
    }

    /// At a restart: loads the newest checkpoint that verifies into the machine and what
    /// the core recovers (the log after it, the commit point at least at it, the membership
    /// after it).
    pub(super) fn load_checkpoint(&mut self, node: usize, recovered: &mut Recovered) {
        let Some((slot, header, data)) = self.nodes[node].disk.newest_checkpoint() else {
            return;
        };
        let id = self.nodes[node].id;
        let Some(kv) = Kv::restore(&data) else {
            return self
                .checker
                .fail(Check::Checkpoint, format!("{id:?} saved an unreadable checkpoint"));
        };
        match rsl_store::decode_checkpoint_header(&header) {
            Ok(Some(m)) => recovered.membership = Some(m),
            Ok(None) => {}
            Err(e) => {
                let detail = format!("{id:?} saved a checkpoint whose header is bad: {e}");
                return self.checker.fail(Check::Checkpoint, detail);
            }
        }
        self.stats.checkpoints_loaded += 1;
        self.claim_checkpoint(id, slot, kv.digest());
        self.nodes[node].machine = KvMachine(kv, slot);
        self.checker.checkpoint(id, slot);
        recovered.checkpoint = slot;
        recovered.log.retain(|e| e.slot > slot);
        recovered.commit = recovered.commit.max(slot);
    }

    fn claim_checkpoint(&mut self, id: ReplicaId, slot: Slot, digest: u64) {
        self.checkpoint_claims.push((id, slot, digest));
    }

    /// Every checkpoint loaded or installed holds the state of the chosen log up to its slot.
    pub(super) fn check_checkpoints(&mut self) {
        let claims = std::mem::take(&mut self.checkpoint_claims);
        let Some(last) = claims.iter().map(|(_, s, _)| *s).max() else { return };
        let mut digests = std::collections::BTreeMap::new();
        let mut kv = Kv::new();
        let mut slot = Slot::ZERO;
        digests.insert(slot, kv.digest());
        while slot < last {
            slot = slot.next();
            match self.checker.chosen_value(slot) {
                Some(Value::Batch(requests)) => {
                    for r in requests.iter() {
                        kv.execute(&r.payload);
                    }
                }
                Some(_) => {}
                // Nobody executed it: the checkpoints above it cannot be checked.
                None => break,
            }
            digests.insert(slot, kv.digest());
        }
        for (id, slot, digest) in claims {
            if digests.get(&slot).is_some_and(|d| *d != digest) {
                let detail = format!(
                    "{id:?} holds a checkpoint at slot {} that is not the state of the chosen log there",
                    slot.0
                );
                return self.checker.fail(Check::Checkpoint, detail);
            }
        }
    }
}
