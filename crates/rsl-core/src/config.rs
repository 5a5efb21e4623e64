//! Every knob and limit of the core, in one place, with defaults that work unconfigured.
//!
//! Time is counted in ticks; the driver decides how long a tick is (production: 10 ms). The
//! size limits form a chain (a request fits a slot's value, a value fits a message and a log
//! record) that [`Config::validate`] checks; [`crate::limits`] explains it.

use crate::limits::{
    BATCH_HEADER_BYTES_MAX, CONFIG_IDS_VALUE_BYTES_MAX, ENTRY_FRAMING_BYTES_MAX,
    LOG_MEMORY_BYTES_MAX_DEFAULT, MESSAGE_BYTES_MAX_DEFAULT, REQUEST_BYTES_MAX_DEFAULT,
    REQUEST_FRAMING_BYTES_MAX, VALUE_BYTES_MAX, VOTERS_MAX, WIRE_ITEMS_MAX,
};
use crate::types::{Membership, ReplicaId};

/// The core's configuration. Validate with [`Config::validate`] before use.
#[derive(Debug, Clone)]
pub struct Config {
    /// This replica.
    pub id: ReplicaId,
    /// The initial membership (bootstrap); later changes arrive as slot values. For a
    /// replica that joins a running cluster (`joining`), the members it knows to start with:
    /// it learns the real membership from the log or a checkpoint.
    pub membership: Membership,
    /// This replica joins a running cluster: it is not a member until a configuration adds
    /// it (it waits to be added rather than bootstrapping a cluster of its own). Read only
    /// until it became a member (`Write::MemberSince`).
    pub joining: bool,
    /// Slots the primary keeps in flight (proposed, not yet chosen).
    pub pipeline_slots_max: u64,
    /// Value bytes the primary keeps in flight: it proposes a new slot only while fewer are
    /// (a slot alone always goes). Bounds the memory of the pipeline and the tail of values a
    /// new primary's phase 1 must gather when requests are large.
    pub pipeline_bytes_max: usize,
    /// Requests in one slot's batch.
    pub batch_requests_max: usize,
    /// A proposal only queues: the queued proposals go into slots at the driver's
    /// [`crate::Input::EndOfTurn`] (or at the next other input's step), so that the requests
    /// a driver takes in one turn share slots. Otherwise each proposal goes into a slot as
    /// soon as it arrives while the pipeline has room (one request per slot under a load of
    /// unpipelined clients).
    pub propose_at_turn_end: bool,
    /// A promise or a vote that waits for a write to be durable is handed to the driver at
    /// once as [`crate::Action::SendWhenDurable`], for the driver to send right after its
    /// sync, rather than held in the core until [`crate::Input::Durable`] is stepped (which
    /// costs a hand-over from the storage's thread back to the core's before the message
    /// leaves).
    pub held_sends_to_driver: bool,
    /// Payload bytes in one slot's batch (a single larger request still gets a slot alone).
    pub batch_bytes_max: usize,
    /// The largest request payload: a larger proposal is refused (`Refusal::TooLarge`), so
    /// that everything accepted fits one slot, one message and one log record.
    pub request_bytes_max: usize,
    /// The largest message the core builds: accepts, catch-up replies and promises are split
    /// to stay within it. The transport must carry a message of this size (the runtime sets
    /// it to the transport's frame limit).
    pub message_bytes_max: usize,
    /// Proposals waiting for a slot before new ones are refused as overloaded.
    pub proposals_queued_max: usize,
    /// Payload bytes of the proposals waiting for a slot before new ones are refused as
    /// overloaded (a proposal into an empty queue is always taken). At least
    /// `request_bytes_max`, so that a maximal request enters whenever the queue has room.
    pub proposals_queued_bytes_max: usize,
    /// Reads waiting to be served before new ones are refused as overloaded.
    pub reads_queued_max: usize,
    /// The primary sends a heartbeat (carrying the commit point) this often.
    pub heartbeat_ticks: u32,
    /// A replica that hears no primary for a random time in this range starts an election.
    pub election_ticks_min: u32,
    pub election_ticks_max: u32,
    /// How long a majority's heartbeat acknowledgement lets the primary serve reads locally.
    /// Must be below `election_ticks_min` minus the drift allowance.
    pub lease_ticks: u32,
    /// The most two replicas' tick rates may differ, in parts per thousand.
    pub clock_drift_permille: u32,
    /// Log entries sent in one catch-up message (fewer if they would exceed
    /// `message_bytes_max`).
    pub catchup_entries_max: usize,
    /// Accepted entries (and unknown slots) reported in one promise page (fewer if they would
    /// exceed `message_bytes_max`; the candidate asks for the next page).
    pub promise_entries_max: usize,
    /// Ask the application for a checkpoint (`Action::TakeCheckpoint`) every this many
    /// executed slots; 0 never asks (the driver decides).
    pub checkpoint_interval_slots: u64,
    /// Log records kept in storage below a saved checkpoint, so that a slightly lagging peer
    /// catches up from the log rather than needing a whole checkpoint.
    pub log_kept_slots: u64,
    /// Executed log entries kept in memory (older ones are read back with `LoadLog`).
    pub log_memory_entries_max: usize,
    /// Value bytes of the executed log entries kept in memory (`message::value_len` of each;
    /// older ones are read back with `LoadLog`), with at least `pipeline_slots_max` entries
    /// kept whatever their size. A count alone let a replica hold 100,000 slots of up to a
    /// batch's 256 KiB each, or of a 16 MiB request each.
    pub log_memory_bytes_max: usize,
    /// Seed of the core's deterministic pseudo-random sequence (election timeouts). The
    /// driver draws it; the core has no source of randomness of its own.
    pub rng_seed: u64,
    /// Planted bugs, for proving the simulator's checkers can fail. Test builds only.
    #[cfg(feature = "planted-bugs")]
    pub bugs: crate::bugs::Bugs,
}

/// A configuration that cannot work, naming the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub field: &'static str,
    pub reason: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid configuration: {}: {}", self.field, self.reason)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// A configuration with the defaults, for replica `id` of a cluster of `voters`.
    pub fn new(id: u32, voters: impl IntoIterator<Item = u32>) -> Config {
        Config {
            id: ReplicaId(id),
            membership: Membership::new(voters),
            joining: false,
            pipeline_slots_max: 64,
            pipeline_bytes_max: 2 * REQUEST_BYTES_MAX_DEFAULT,
            batch_requests_max: 1024,
            propose_at_turn_end: false,
            held_sends_to_driver: false,
            batch_bytes_max: 256 * 1024,
            request_bytes_max: REQUEST_BYTES_MAX_DEFAULT,
            message_bytes_max: MESSAGE_BYTES_MAX_DEFAULT,
            proposals_queued_max: 65_536,
            proposals_queued_bytes_max: 4 * REQUEST_BYTES_MAX_DEFAULT,
            reads_queued_max: 65_536,
            heartbeat_ticks: 5,
            election_ticks_min: 30,
            election_ticks_max: 60,
            lease_ticks: 20,
            clock_drift_permille: 50,
            catchup_entries_max: 256,
            promise_entries_max: 4096,
            checkpoint_interval_slots: 100_000,
            log_kept_slots: 10_000,
            log_memory_entries_max: 100_000,
            log_memory_bytes_max: LOG_MEMORY_BYTES_MAX_DEFAULT,
            rng_seed: u64::from(id),
            #[cfg(feature = "planted-bugs")]
            bugs: crate::bugs::Bugs::default(),
        }
    }

    /// The largest value one slot can hold under these limits, encoded (without the log's
    /// version byte): a batch of small requests, a maximal request alone, or a configuration
    /// without member info (a membership operation whose value would be larger is refused).
    pub fn value_bytes_max(&self) -> usize {
        let requests = self.batch_requests_max.saturating_mul(REQUEST_FRAMING_BYTES_MAX);
        let batch =
            BATCH_HEADER_BYTES_MAX.saturating_add(requests).saturating_add(self.batch_bytes_max);
        let alone = BATCH_HEADER_BYTES_MAX + REQUEST_FRAMING_BYTES_MAX;
        let alone = alone.saturating_add(self.request_bytes_max);
        batch.max(alone).max(CONFIG_IDS_VALUE_BYTES_MAX)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |field, reason: &str| Err(ConfigError { field, reason: reason.to_string() });
        let n = self.membership.voters.len();
        if (n == 0 && !self.joining) || n > VOTERS_MAX {
            return err("membership", "needs 1 to 9 voters");
        }
        if self.joining && self.membership.contains(self.id) {
            return err("membership", "a joining replica is not a member of what it knows");
        }
        let mut voters = self.membership.voters.clone();
        voters.sort();
        voters.dedup();
        if voters.len() != n {
            return err("membership", "voters must be distinct");
        }
        if self.pipeline_slots_max == 0 {
            return err("pipeline_slots_max", "must be at least 1");
        }
        if self.pipeline_bytes_max == 0 || self.proposals_queued_bytes_max == 0 {
            return err("pipeline_bytes_max", "byte limits must be at least 1");
        }
        if self.batch_requests_max == 0 {
            return err("batch_requests_max", "must be at least 1");
        }
        if self.batch_bytes_max == 0 {
            return err("batch_bytes_max", "must be at least 1");
        }
        self.validate_sizes()?;
        if self.heartbeat_ticks == 0 {
            return err("heartbeat_ticks", "must be at least 1");
        }
        if self.election_ticks_min <= self.heartbeat_ticks * 2 {
            return err("election_ticks_min", "must exceed twice heartbeat_ticks");
        }
        if self.election_ticks_max <= self.election_ticks_min {
            return err("election_ticks_max", "must exceed election_ticks_min");
        }
        if self.clock_drift_permille >= 500 {
            return err("clock_drift_permille", "must be below 500");
        }
        let drift = u64::from(self.election_ticks_min) * u64::from(self.clock_drift_permille);
        let safe = u64::from(self.election_ticks_min) - drift.div_ceil(1000) - 1;
        if u64::from(self.lease_ticks) > safe {
            return err("lease_ticks", "must be below election_ticks_min less the drift allowance");
        }
        if self.catchup_entries_max == 0 || self.catchup_entries_max > WIRE_ITEMS_MAX {
            return err("catchup_entries_max", "must be 1 to 2^20");
        }
        if self.promise_entries_max == 0 || self.promise_entries_max > WIRE_ITEMS_MAX {
            return err("promise_entries_max", "must be 1 to 2^20");
        }
        if self.log_memory_entries_max < self.pipeline_slots_max as usize {
            return err("log_memory_entries_max", "must hold at least the pipeline");
        }
        Ok(())
    }

    /// The size chain: a maximal request fits one slot's value, the largest value fits one
    /// message with its framing and one log record, and no list is longer than the wire's
    /// item limit.
    fn validate_sizes(&self) -> Result<(), ConfigError> {
        let err = |field, reason: String| Err(ConfigError { field, reason });
        if self.batch_requests_max > WIRE_ITEMS_MAX {
            return err("batch_requests_max", format!("must be at most {WIRE_ITEMS_MAX}"));
        }
        if self.request_bytes_max == 0 {
            return err("request_bytes_max", "must be at least 1".to_string());
        }
        let value = self.value_bytes_max();
        if value.saturating_add(1) > VALUE_BYTES_MAX {
            return err(
                "request_bytes_max",
                format!(
                    "a slot's value could take {value} bytes, above the {VALUE_BYTES_MAX} a log \
                     record holds (lower request_bytes_max, batch_bytes_max or batch_requests_max)"
                ),
            );
        }
        let message = value.saturating_add(ENTRY_FRAMING_BYTES_MAX);
        if message > self.message_bytes_max {
            return err(
                "message_bytes_max",
                format!(
                    "must be at least {message}: the largest value (request_bytes_max \
                     {}, or a batch) with the framing of the message that carries it",
                    self.request_bytes_max
                ),
            );
        }
        if self.proposals_queued_bytes_max < self.request_bytes_max {
            // A proposal enters a queue with room for it, or an empty one: below one maximal
            // request, the largest requests would enter only an empty queue, and under any
            // load be refused as overloaded however often they were retried.
            return err(
                "proposals_queued_bytes_max",
                format!(
                    "must be at least request_bytes_max ({}), or the largest requests would be \
                     refused as overloaded whenever anything else is queued",
                    self.request_bytes_max
                ),
            );
        }
        Ok(())
    }
}
