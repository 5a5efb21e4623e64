//! A tiny deterministic pseudo-random sequence (splitmix64) for election timeouts.
//!
//! The core has no source of randomness: the driver passes a seed in the config, so the same
//! seed gives the same timeouts, and a simulator run replays exactly. It is public because
//! it is also the seed expander of the simulator's generator (`rsl_sim::rng`), so the
//! project has one splitmix64; `rsl-storage` keeps its own copy for its seeded test medium,
//! since the storage must not depend on the core.

/// splitmix64: a 64-bit state advanced by a constant and mixed; good enough to spread
/// election timeouts, and trivially reproducible.
#[derive(Debug, Clone)]
pub struct Rng {
    state: u64,
}

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng { state: seed }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `[low, high)`; `high > low`.
    pub fn range(&mut self, low: u64, high: u64) -> u64 {
        assert!(high > low, "empty range {low}..{high}");
        low + self.next_u64() % (high - low)
    }
}

#[cfg(test)]
mod tests {
    use super::Rng;

    #[test]
    fn the_same_seed_gives_the_same_sequence() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        let xs: Vec<u64> = (0..8).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..8).map(|_| b.next_u64()).collect();
        assert_eq!(xs, ys);
        assert_ne!(Rng::new(8).next_u64(), xs[0], "different seeds, different sequences");
    }

    #[test]
    fn a_range_stays_in_range_and_covers_it() {
        let mut rng = Rng::new(42);
        let mut seen = [false; 30];
        for _ in 0..2_000 {
            let x = rng.range(30, 60);
            assert!((30..60).contains(&x));
            seen[(x - 30) as usize] = true;
        }
        assert!(seen.iter().all(|s| *s), "some timeouts never drawn");
    }
}
