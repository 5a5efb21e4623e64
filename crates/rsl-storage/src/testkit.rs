//! Deterministic payloads for tests, crash tests and benchmarks: the bytes of a record are a
//! function of (slot, ballot, length), so a reader can check any record it gets back.

/// `len` pseudo-random bytes determined by `slot` and `ballot`.
pub fn payload(slot: u64, ballot: u128, len: usize) -> Vec<u8> {
    let mut x = slot.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (ballot as u64).rotate_left(17) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A length in `0..len_max` determined by `slot`.
pub fn length_for(slot: u64, len_max: usize) -> usize {
    (slot.wrapping_mul(2_654_435_761) % len_max.max(1) as u64) as usize
}

/// The ballot the crash test writes for `slot`.
pub fn ballot_for(slot: u64) -> u128 {
    (u128::from(slot / 100) << 64) | u128::from(slot % 7)
}
