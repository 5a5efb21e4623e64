//! The simulator's 64-bit digest: of a run's events (the trace, equal for two runs of one
//! seed: the determinism check), of a value (the checkers compare values by digest) and of a
//! machine's state. Events and values are fed as values (`std::hash::Hash`), not as their
//! debug text: formatting every message, write and value was about 40 % of a seed's CPU time.
//!
//! The digest takes each write eight bytes at a time (a last partial word with its length),
//! and each step is a bijection of the state for a given word (rotate, xor the word, multiply
//! by an odd constant), so two inputs of as many words that differ anywhere never meet again;
//! the number of words and a final mixing go in at the end.

use std::hash::{Hash, Hasher};

/// A streaming 64-bit digest (see the module's doc).
#[derive(Debug, Clone, Copy)]
pub struct Digest {
    state: u64,
    words: u64,
}

/// A bijection of 64-bit words that spreads every bit (the finaliser of MurmurHash3's 64-bit
/// variant: xor-shifts and odd multipliers, each invertible).
fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

impl Digest {
    pub fn new() -> Digest {
        Digest { state: 0x6a09_e667_f3bc_c908, words: 0 }
    }

    fn word(&mut self, word: u64) {
        self.state = (self.state.rotate_left(23) ^ word).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        self.words += 1;
    }

    /// Records one event: `item` with what it is.
    pub fn event<T: Hash + ?Sized>(&mut self, time: u64, label: &str, item: &T) {
        self.word(time);
        self.write(label.as_bytes());
        item.hash(self);
    }

    /// The digest of `value`.
    pub fn of<T: Hash + ?Sized>(value: &T) -> u64 {
        let mut d = Digest::new();
        value.hash(&mut d);
        d.digest()
    }

    /// The digest of everything so far.
    pub fn digest(&self) -> u64 {
        mix(self.state ^ mix(self.words))
    }
}

impl Default for Digest {
    fn default() -> Self {
        Digest::new()
    }
}

impl Hasher for Digest {
    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for chunk in &mut words {
            self.word(u64::from_le_bytes(chunk.try_into().expect("eight bytes")));
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            let mut tail = [0u8; 8];
            tail[..rest.len()].copy_from_slice(rest);
            tail[7] = rest.len() as u8;
            self.word(u64::from_le_bytes(tail));
        }
    }

    fn write_u8(&mut self, x: u8) {
        self.word(u64::from(x));
    }

    fn write_u16(&mut self, x: u16) {
        self.word(u64::from(x));
    }

    fn write_u32(&mut self, x: u32) {
        self.word(u64::from(x));
    }

    fn write_u64(&mut self, x: u64) {
        self.word(x);
    }

    fn write_usize(&mut self, x: usize) {
        self.word(x as u64);
    }

    fn finish(&self) -> u64 {
        self.digest()
    }
}

impl std::fmt::Write for Digest {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.write(s.as_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_changed_byte_or_length_changes_the_digest() {
        let whole: Vec<u8> = (0..=40).collect();
        let a = Digest::of(&whole[..]);
        assert_eq!(a, Digest::of(&whole.clone()[..]));
        for i in 0..whole.len() {
            let mut changed = whole.clone();
            changed[i] ^= 1;
            assert_ne!(a, Digest::of(&changed[..]), "byte {i}");
        }
        for len in 0..whole.len() {
            assert_ne!(a, Digest::of(&whole[..len]), "length {len}");
        }
        let mut longer = whole.clone();
        longer.push(0);
        assert_ne!(a, Digest::of(&longer[..]));
        // A short write and the same bytes with a zero after them (one padded word each).
        let mut raw = (Digest::new(), Digest::new());
        raw.0.write(&[1, 2]);
        raw.1.write(&[1, 2, 0]);
        assert_ne!(raw.0.digest(), raw.1.digest());
    }

    #[test]
    fn values_that_differ_in_structure_differ() {
        type Parts = Vec<Vec<u8>>;
        let pairs: [(Parts, Parts); 3] = [
            (vec![vec![1], vec![2]], vec![vec![1, 2]]),
            (vec![vec![]], vec![]),
            (vec![vec![0; 8], vec![]], vec![vec![0; 8]]),
        ];
        for (a, b) in pairs {
            assert_ne!(Digest::of(&a), Digest::of(&b), "{a:?} and {b:?}");
        }
    }
}
