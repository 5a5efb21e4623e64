//! A tiny deterministic pseudo-random sequence (splitmix64) for election timeouts.
//!
//! The core has no source of randomness: the driver passes a seed in the config, so the same
//! seed gives the same timeouts, and a simulator run replays exactly.

/// splitmix64: a 64-bit state advanced by a constant and mixed; good enough to spread
/// election timeouts, and trivially reproducible.
#[derive(Debug, Clone)]
pub(crate) struct Rng {
    state: u64,
}

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng { state: seed }
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `[low, high)`; `high > low`.
    pub(crate) fn range(&mut self, low: u64, high: u64) -> u64 {
        assert!(high > low, "empty range {low}..{high}");
        low + self.next_u64() % (high - low)
    }
}
