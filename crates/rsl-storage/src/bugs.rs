//! Bugs that can be planted in recovery (feature `planted-bugs`, never on in a normal
//! build), so the simulator can prove its checkers catch a storage layer that breaks the
//! rules of protocol-aware recovery (docs/testing.md, "planted bugs").

/// A bug planted in [`crate::SegmentLog`] recovery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlantedBug {
    /// Recovery treats the first bad record as the end of the log, corrupt or not: it
    /// discards it and everything after it (on the medium too) and reports nothing corrupt.
    TruncateAtCorruption,
    /// Recovery "repairs" a torn record whose header survived, zero-filling its lost bytes
    /// and checksumming it again, instead of discarding it as a torn tail.
    KeepTornWrite,
}
