//! The simulated network between replicas: per-message delay (a spread of delays reorders),
//! loss, duplication, and partitions as a set of cut *directed* links, so both symmetric and
//! one-way partitions are expressible. Scripted scenarios add filters that drop or delay the
//! messages they match.

use std::collections::BTreeSet;

use rsl_core::{Message, ReplicaId};

use crate::rng::Rng;

/// What a scripted filter does to the messages it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterAction {
    Drop,
    /// Delivered this many extra time units late.
    Delay(u64),
    /// Delivered twice.
    Duplicate,
}

type Matcher = Box<dyn FnMut(&Message) -> bool>;

/// The network's fault settings and scripted filters.
pub struct Network {
    pub loss_permille: u32,
    pub duplicate_permille: u32,
    pub delay_min: u64,
    pub delay_max: u64,
    /// Cut links, `(from, to)`.
    blocked: BTreeSet<(ReplicaId, ReplicaId)>,
    filters: Vec<(Matcher, FilterAction)>,
    /// The swarm's partial accepts: accepts from this replica to these are lost until then.
    pub partial: Option<(ReplicaId, Vec<ReplicaId>, u64)>,
    pub sent: u64,
    pub dropped: u64,
}

impl std::fmt::Debug for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Network")
            .field("loss_permille", &self.loss_permille)
            .field("blocked", &self.blocked)
            .field("filters", &self.filters.len())
            .finish()
    }
}

impl Network {
    pub fn new(
        loss_permille: u32,
        duplicate_permille: u32,
        delay_min: u64,
        delay_max: u64,
    ) -> Self {
        Network {
            loss_permille,
            duplicate_permille,
            delay_min,
            delay_max,
            blocked: BTreeSet::new(),
            filters: Vec::new(),
            partial: None,
            sent: 0,
            dropped: 0,
        }
    }

    /// Cuts `from -> to` only.
    pub fn cut(&mut self, from: ReplicaId, to: ReplicaId) {
        self.blocked.insert((from, to));
    }

    /// Cuts both directions.
    pub fn cut_both(&mut self, a: ReplicaId, b: ReplicaId) {
        self.cut(a, b);
        self.cut(b, a);
    }

    pub fn is_cut(&self, from: ReplicaId, to: ReplicaId) -> bool {
        self.blocked.contains(&(from, to))
    }

    pub fn partitioned(&self) -> bool {
        !self.blocked.is_empty()
    }

    /// Restores every link (filters stay).
    pub fn heal(&mut self) {
        self.blocked.clear();
    }

    pub fn add_filter(
        &mut self,
        matcher: impl FnMut(&Message) -> bool + 'static,
        action: FilterAction,
    ) {
        self.filters.push((Box::new(matcher), action));
    }

    pub fn clear_filters(&mut self) {
        self.filters.clear();
        self.partial = None;
    }

    /// Decides the fate of one message sent at `now`: the delays of the copies to deliver
    /// (none if it is lost).
    pub fn route(&mut self, rng: &mut Rng, msg: &Message, now: u64) -> Vec<u64> {
        self.sent += 1;
        let mut extra = 0;
        let mut copies = 1;
        for (matcher, action) in &mut self.filters {
            if matcher(msg) {
                match *action {
                    FilterAction::Drop => copies = 0,
                    FilterAction::Delay(d) => extra += d,
                    FilterAction::Duplicate => copies = copies.min(1) * 2,
                }
            }
        }
        if self.is_cut(msg.from, msg.to) || rng.chance(self.loss_permille) {
            copies = 0;
        }
        let partial = self.partial.as_ref().is_some_and(|(from, to, until)| {
            *from == msg.from && to.contains(&msg.to) && now < *until
        });
        if partial && matches!(msg.body, rsl_core::message::Body::Accept { .. }) {
            copies = 0;
        }
        if copies == 1 && rng.chance(self.duplicate_permille) {
            copies = 2;
        }
        if copies == 0 {
            self.dropped += 1;
        }
        (0..copies).map(|_| rng.range(self.delay_min, self.delay_max) + extra).collect()
    }
}
