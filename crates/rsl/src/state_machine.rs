//! The contract between the engine and the application's state machine.
//!
//! The engine calls these methods from one thread, in a fixed order: `load_checkpoint` (at
//! most once, at start), then for every committed slot `before_batch`, `execute` for each
//! request of the slot in order, `after_batch`. `execute` must be deterministic: the same
//! requests in the same order produce the same state and responses on every replica.

use std::io;

use bytes::Bytes;

/// Events the engine reports to the application.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)] // The fields are described with their variants.
pub enum Notification {
    /// This replica won an election and is now primary for `ballot`.
    BecamePrimary { ballot_round: u64 },
    /// Everything that earlier primaries committed has been executed here, so the primary's
    /// local state is complete (RSL's NotifyPrimaryRecovered).
    PrimaryRecovered,
    /// This replica is no longer primary; `primary` is the new one if known.
    LostPrimacy { primary: Option<u32> },
    /// A configuration change was executed at `slot`; `members` are the voters after it.
    ConfigurationChanged { slot: u64, members: Vec<u32> },
    /// The engine is shutting down; no more calls follow.
    ShuttingDown,
}

/// A cheap, immutable view of the state taken at a slot boundary, written out off the
/// consensus path while the engine keeps executing.
pub trait Snapshot: Send + 'static {
    /// Writes the whole state to `out`. Called on a background thread.
    fn write_to(&self, out: &mut dyn io::Write) -> io::Result<()>;
}

/// The application's replicated state.
pub trait StateMachine: Send + 'static {
    /// Applies one committed request and returns the response for its proposer.
    /// Called exactly once per request per replica lifetime-with-its-disk, in slot order.
    fn execute(&mut self, slot: u64, request: &[u8]) -> Bytes;

    /// Called before the requests of `slot` are executed.
    fn before_batch(&mut self, _slot: u64) {}

    /// Called after the requests of `slot` are executed.
    fn after_batch(&mut self, _slot: u64) {}

    /// Serves a read-only request against the local state.
    fn read(&self, request: &[u8]) -> Bytes;

    /// Returns a snapshot of the current state (after the last executed slot). It must be
    /// cheap (a persistent data structure or copy-on-write), since the engine calls it on the
    /// consensus path and writes it out elsewhere.
    fn snapshot(&self) -> Box<dyn Snapshot>;

    /// Replaces the state with the one `input` holds, as written by [`Snapshot::write_to`].
    fn load_checkpoint(&mut self, input: &mut dyn io::Read) -> io::Result<()>;

    /// Receives engine events.
    fn notify(&mut self, _event: Notification) {}

    /// Whether this replica may stand for election. Checked before each candidacy.
    fn can_become_primary(&self) -> bool {
        true
    }
}
