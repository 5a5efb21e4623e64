//! The workload: simulated clients, each with one operation outstanding, that send writes
//! and reads to the replica they believe is primary, retry on refusals, give up on timeouts
//! (the outcome is then indeterminate), and record the history the linearizability checker
//! judges.

use rsl_core::{ReadMode, Slot};

use super::event::{Event, Pending};
use super::{Sim, SCRIPT_TICKET};
use crate::checker::Check;
use crate::driver::Reply;
use crate::kv::{decode_output, decode_value, Op, Output};
use crate::linearizability::{Observed, Operation};
use crate::options::TICK;

#[derive(Debug, Clone)]
pub(super) struct Current {
    pub(super) op: Op,
    pub(super) via_log: bool,
    pub(super) exclusive: bool,
    /// The request's payload size (bytes), drawn once for all its tries.
    pub(super) size: usize,
    pub(super) call: u64,
    pub(super) op_no: u64,
    /// The attempt number of its first try (its tickets run from here to the client's last).
    pub(super) first_attempt: u64,
}

#[derive(Debug)]
pub(super) struct Client {
    pub(super) target: usize,
    pub(super) op_no: u64,
    pub(super) attempt: u64,
    pub(super) current: Option<Current>,
    pub(super) tokens: u64,
}

impl Sim {
    pub(super) fn client_next(&mut self, c: usize) {
        if !self.clients_active || self.clients[c].current.is_some() {
            return;
        }
        let key = self.rng.below(u64::from(self.options.keys.max(1))) as u8;
        let client = &mut self.clients[c];
        client.tokens += 1;
        client.op_no += 1;
        let token = ((c as u64 + 1) << 40) | client.tokens;
        let op_no = client.op_no;
        let op = match self.rng.below(100) {
            0..=34 => Op::Append { key, token },
            35..=49 => Op::Put { key, token },
            _ => Op::Get { key },
        };
        let via_log = self.rng.chance(self.options.read_through_log_permille);
        let exclusive = self.rng.chance(self.options.exclusive_permille);
        let size = self.draw_size();
        let first_attempt = self.clients[c].attempt + 1;
        let call = self.now;
        self.clients[c].current =
            Some(Current { op, via_log, exclusive, size, call, op_no, first_attempt });
        self.client_send(c);
        let timeout = self.options.client_timeout_ticks * TICK;
        self.schedule(timeout, Event::ClientTimeout { client: c, op_no });
    }

    pub(super) fn client_send(&mut self, c: usize) {
        let client = &mut self.clients[c];
        let Some(cur) = client.current.clone() else { return };
        client.attempt += 1;
        let ticket = ((c as u64) << 32) | client.attempt;
        let mut node = client.target;
        let pending = match cur.op {
            Op::Get { key } if self.options.stale_reads => {
                node = self.rng.below(self.nodes.len() as u64) as usize;
                Pending::Read { ticket, key, mode: ReadMode::AtLeast(Slot::ZERO) }
            }
            Op::Get { key } if !cur.via_log => {
                Pending::Read { ticket, key, mode: ReadMode::Linearizable }
            }
            op => Pending::Propose { ticket, op, exclusive: cur.exclusive, size: cur.size },
        };
        let delay = self.rng.range(50, 300);
        self.schedule(delay, Event::Arrive { node, pending });
    }

    pub(super) fn on_client_reply(&mut self, ticket: u64, reply: Reply) {
        let c = (ticket >> 32) as usize;
        let client = &self.clients[c];
        let Some(cur) = client.current.clone() else { return };
        if ticket & 0xffff_ffff != client.attempt {
            return;
        }
        match reply {
            Reply::Done { slot, response } => {
                let Some(output) = self.decode_reply(cur.op, &response) else {
                    self.checker.fail(Check::Contract, format!("bad response to {:?}", cur.op));
                    return;
                };
                self.history.push(Operation {
                    client: c as u32,
                    op: cur.op,
                    call: cur.call,
                    ret: Some(self.now),
                    output: Some(output),
                });
                self.stats.ops_ok += 1;
                if cur.op.is_write() && self.healed_at.is_some_and(|h| cur.call >= h) {
                    self.liveness_slot.get_or_insert(slot);
                }
                self.clients[c].current = None;
                let think = self.rng.range(0, 4 * TICK);
                self.schedule(think, Event::ClientWake { client: c });
            }
            Reply::Refused(rsl_core::Refusal::TooLarge { .. }) => {
                // Refused at the door, definitely not executed (the host checked the size
                // against the limit): the operation had no effect, and retrying cannot help.
                self.clients[c].current = None;
                self.schedule(1, Event::ClientWake { client: c });
            }
            Reply::Refused(rsl_core::Refusal::OutcomeUnknown) => {
                // The replica skipped the request's slot by installing a checkpoint: it may
                // or may not have executed, so the client must not retry it blindly; its
                // outcome is indeterminate, as after a timeout.
                self.on_client_timeout(c, cur.op_no);
            }
            Reply::Refused(reason) => {
                let hint = match reason {
                    rsl_core::Refusal::NotPrimary { primary }
                    | rsl_core::Refusal::Superseded { primary } => primary,
                    _ => None,
                };
                let n = self.nodes.len() as u64;
                self.clients[c].target = match hint {
                    Some(p) if p.0 >= 1 && u64::from(p.0) <= n => p.0 as usize - 1,
                    _ => self.rng.below(n) as usize,
                };
                let backoff = self.rng.range(TICK / 2, 3 * TICK);
                self.schedule(backoff, Event::ClientRetry { client: c, op_no: cur.op_no });
            }
        }
    }

    /// Decodes a replica's response to `op` for the history; a read's value joins the
    /// observations the checker needs.
    pub(super) fn decode_reply(&mut self, op: Op, response: &[u8]) -> Option<Output> {
        observe(&mut self.observed, op, response);
        decode_output(op, response)
    }

    /// A request's size: most carry their 10-byte operation; `large_permille` of them are
    /// drawn at and near each limit (the request maximum and one byte past it, a slot's
    /// batch, the largest request one message carries alone) or anywhere up to the maximum.
    pub(super) fn draw_size(&mut self) -> usize {
        let o = &self.options;
        // No draw at all without large requests: the seeds' runs stay what they were.
        if o.large_permille == 0 || !self.rng.chance(o.large_permille) {
            return 10;
        }
        let max = o.request_bytes_max;
        // A request alone in an entry of one message: the message limit less the framing.
        let framing = rsl_core::limits::ENTRY_FRAMING_BYTES_MAX
            + rsl_core::limits::BATCH_HEADER_BYTES_MAX
            + rsl_core::limits::REQUEST_FRAMING_BYTES_MAX;
        let one_message = o.message_bytes_max.saturating_sub(framing).min(max);
        let jitter = self.rng.below(4) as usize;
        let size = match self.rng.below(10) {
            0 | 1 => max,
            2 => max + 1,
            3 => max - jitter.min(max),
            4 => (o.batch_bytes_max + 1).saturating_sub(jitter.min(2)),
            5 => one_message - jitter.min(one_message),
            _ => self.rng.range(10, max.max(10) as u64) as usize,
        };
        size.max(10)
    }

    pub(super) fn on_client_timeout(&mut self, c: usize, op_no: u64) {
        let Some(cur) = self.clients[c].current.clone() else { return };
        if cur.op_no != op_no {
            return;
        }
        self.push_indeterminate(c, &cur);
        self.clients[c].current = None;
        self.clients[c].target = self.rng.below(self.nodes.len() as u64) as usize;
        self.schedule(1, Event::ClientWake { client: c });
    }

    /// Starts `n` clients issuing random operations (each one outstanding at a time).
    pub fn start_clients(&mut self, n: usize) {
        self.clients_active = true;
        for _ in 0..n {
            let target = self.rng.below(self.nodes.len() as u64) as usize;
            self.clients.push(Client { target, op_no: 0, attempt: 0, current: None, tokens: 0 });
            let c = self.clients.len() - 1;
            let delay = self.rng.range(0, TICK);
            self.schedule(delay, Event::ClientWake { client: c });
        }
    }

    /// Clients finish their current operation and issue no more.
    pub fn stop_clients(&mut self) {
        self.clients_active = false;
    }

    /// Ends the run's bookkeeping: operations still outstanding become indeterminate.
    pub(super) fn close_history(&mut self) {
        for c in 0..self.clients.len() {
            if let Some(cur) = self.clients[c].current.take() {
                self.push_indeterminate(c, &cur);
            }
        }
        for (ticket, (op, call)) in std::mem::take(&mut self.script_ops) {
            let client = (1 << 20) + (ticket & !SCRIPT_TICKET) as u32;
            self.indeterminate.push((self.history.len(), vec![ticket]));
            self.history.push(Operation { client, op, call, ret: None, output: None });
        }
    }

    pub(super) fn push_indeterminate(&mut self, c: usize, cur: &Current) {
        let tickets =
            (cur.first_attempt..=self.clients[c].attempt).map(|a| ((c as u64) << 32) | a).collect();
        self.indeterminate.push((self.history.len(), tickets));
        let op =
            Operation { client: c as u32, op: cur.op, call: cur.call, ret: None, output: None };
        self.history.push(op);
        self.stats.ops_indeterminate += 1;
    }

    /// The history to check. An operation whose client gave up (indeterminate) is resolved
    /// with what the simulator knows: if a replica answered it, it returned then with that
    /// output (the reply was lost or came too late, which the system's behaviour cannot
    /// depend on); otherwise a write some replica executed took effect by its first
    /// execution anywhere (an executed write is chosen, and every read invoked later must see
    /// it); a write no replica executed is left out (no operation can have observed it, which
    /// is the same as ordering it last). Both keep the search small after crash-heavy runs.
    /// It comes with every value a read in it returned.
    pub(super) fn checked_history(&self) -> (Vec<Operation>, Observed) {
        let mut history = self.history.clone();
        let mut observed = self.observed.clone();
        let mut skip = vec![false; history.len()];
        for (index, tickets) in &self.indeterminate {
            let o = &mut history[*index];
            let answered = tickets.iter().find_map(|t| self.replica_replies.get(t));
            if let Some(output) = answered.and_then(|(_, response)| decode_output(o.op, response)) {
                observe(&mut observed, o.op, &answered.expect("answered").1);
                o.ret = answered.map(|(time, _)| *time);
                o.output = Some(output);
                continue;
            }
            let ids = tickets.iter().filter_map(|t| self.request_ids.get(t));
            let effect = ids.filter_map(|id| self.first_executed.get(id)).min();
            match effect {
                Some(time) if o.op.is_write() => o.ret = Some((*time).max(o.call)),
                _ => skip[*index] = o.op.is_write(),
            }
        }
        let history = history.into_iter().zip(skip).filter(|(_, s)| !s).map(|(o, _)| o).collect();
        (history, observed)
    }
}

/// Adds the value of a read's response to `observed` (other responses carry no value).
fn observe(observed: &mut Observed, op: Op, response: &[u8]) {
    if let (Op::Get { .. }, Some(tokens)) = (op, decode_value(response)) {
        observed.add(&tokens);
    }
}
