//! HyperLogLog: PFADD, PFCOUNT, PFMERGE, over Redis's own representation, so that every
//! estimate is the one Redis gives.
//!
//! A HyperLogLog is a string holding Redis's header (`HYLL`, the encoding, three unused bytes,
//! the cached cardinality) and 16,384 six-bit registers. An element sets register
//! `h mod 2^14` to at least the position of the first 1 bit of `h >> 14`, where `h` is
//! MurmurHash64A of the element with Redis's seed; PFCOUNT is Redis's estimator (Ertl's, with
//! the tau and sigma corrections) over the registers' histogram. So the same elements give
//! the same registers and the same count as in Redis, on every replica.
//!
//! rsl-kv always writes the dense encoding (12,304 bytes), where Redis keeps a small
//! HyperLogLog sparse (a few bytes per run of registers) until it grows: a GET of one answers
//! other bytes than Redis, and a small one takes more memory. A sparse value (SET by a client
//! from Redis) is read, and written back dense. PFCOUNT is a read here: it never stores the
//! cached cardinality (Redis's PFCOUNT does), and it answers a valid cached one as Redis does.

use bytes::Bytes;

use super::strings::put_string;
use super::{read, write, CmdResult, CommandDef, Ctx, View, K1, KALL};
use crate::resp::Reply;
use crate::value::Value;

pub(super) const COMMANDS: &[CommandDef] = &[
    write("pfadd", -2, K1, pfadd),
    read("pfcount", -2, KALL, pfcount),
    write("pfmerge", -2, KALL, pfmerge),
];

/// Redis's `HLL_P`: the bits of the hash that choose a register.
const P: u32 = 14;
/// The number of registers.
const REGISTERS: usize = 1 << P;
/// Bits per register in the dense encoding.
const REGISTER_BITS: usize = 6;
/// The largest register value.
const REGISTER_MAX: u8 = (1 << REGISTER_BITS) - 1;
/// Redis's `HLL_Q`: the hash bits left to count the run of zeros in.
const Q: usize = 64 - P as usize;
/// The header: magic, encoding, 3 unused bytes, 8 bytes of cached cardinality.
const HEADER_BYTES: usize = 16;
/// The dense encoding's size, in bytes.
const DENSE_BYTES: usize = HEADER_BYTES + REGISTERS * REGISTER_BITS / 8;
const ENCODING_DENSE: u8 = 0;
const ENCODING_SPARSE: u8 = 1;
/// The cache's "invalid" flag: the top bit of its last byte.
const CACHE_INVALID: u8 = 1 << 7;

const ERR_NOT_HLL: &str = "WRONGTYPE Key is not a valid HyperLogLog string value.";
const ERR_CORRUPT: &str = "INVALIDOBJ Corrupted HLL object detected";

/// The registers of one HyperLogLog, one byte each.
type Registers = Box<[u8; REGISTERS]>;

fn empty() -> Registers {
    Box::new([0; REGISTERS])
}

/// MurmurHash64A as Redis has it (little-endian reads, its tail handling).
fn murmur64a(data: &[u8], seed: u64) -> u64 {
    const M: u64 = 0xc6a4_a793_5bd1_e995;
    const R: u32 = 47;
    let mut h = seed ^ (data.len() as u64).wrapping_mul(M);
    let mut chunks = data.chunks_exact(8);
    for chunk in &mut chunks {
        let mut k = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h ^= k;
        h = h.wrapping_mul(M);
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        for (i, &byte) in tail.iter().enumerate() {
            h ^= u64::from(byte) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> R;
    h = h.wrapping_mul(M);
    h ^= h >> R;
    h
}

/// The register an element goes to and the value it offers (Redis's `hllPatLen`).
fn register_of(element: &[u8]) -> (usize, u8) {
    let hash = murmur64a(element, 0xadc8_3b19);
    let index = (hash & (REGISTERS as u64 - 1)) as usize;
    let rest = (hash >> P) | (1 << Q);
    (index, rest.trailing_zeros() as u8 + 1)
}

/// The registers of a stored value, `Ok(None)` for a missing key, WRONGTYPE for another type
/// or a string that is not a HyperLogLog, INVALIDOBJ for a corrupt sparse one.
fn registers(value: Option<&Value>) -> Result<Option<(Registers, &[u8])>, Reply> {
    let bytes = match value {
        None => return Ok(None),
        Some(Value::Str(s)) => &s[..],
        Some(_) => return Err(super::wrongtype()),
    };
    if bytes.len() < HEADER_BYTES || &bytes[..4] != b"HYLL" || bytes[4] > ENCODING_SPARSE {
        return Err(Reply::error(ERR_NOT_HLL));
    }
    let mut registers = empty();
    if bytes[4] == ENCODING_DENSE {
        if bytes.len() != DENSE_BYTES {
            return Err(Reply::error(ERR_NOT_HLL));
        }
        let dense = &bytes[HEADER_BYTES..];
        for (i, register) in registers.iter_mut().enumerate() {
            let bit = i * REGISTER_BITS;
            let low = usize::from(dense[bit / 8]) >> (bit % 8);
            let high = dense.get(bit / 8 + 1).map_or(0, |&b| usize::from(b) << (8 - bit % 8));
            *register = ((low | high) & usize::from(REGISTER_MAX)) as u8;
        }
    } else {
        sparse_registers(&bytes[HEADER_BYTES..], &mut registers)?;
    }
    Ok(Some((registers, bytes)))
}

/// Decodes Redis's sparse runs: ZERO `00xxxxxx` (x+1 zeros), XZERO `01xxxxxx yyyyyyyy`
/// (xy+1 zeros), VAL `1vvvvvxx` (x+1 registers of value v+1); they must cover every register.
fn sparse_registers(runs: &[u8], registers: &mut Registers) -> Result<(), Reply> {
    let corrupt = || Reply::error(ERR_CORRUPT);
    let mut index = 0usize;
    let mut i = 0;
    while i < runs.len() {
        let op = runs[i];
        let (len, value) = if op & 0xc0 == 0 {
            i += 1;
            (usize::from(op & 0x3f) + 1, 0)
        } else if op & 0xc0 == 0x40 {
            let low = *runs.get(i + 1).ok_or_else(corrupt)?;
            i += 2;
            ((usize::from(op & 0x3f) << 8 | usize::from(low)) + 1, 0)
        } else {
            i += 1;
            (usize::from(op & 0x3) + 1, ((op >> 2) & 0x1f) + 1)
        };
        if index + len > REGISTERS {
            return Err(corrupt());
        }
        registers[index..index + len].fill(value);
        index += len;
    }
    if index != REGISTERS {
        return Err(corrupt());
    }
    Ok(())
}

/// The dense encoding of `registers`, with the cache marked invalid.
fn dense(registers: &[u8; REGISTERS]) -> Bytes {
    let mut out = vec![0u8; DENSE_BYTES];
    out[..4].copy_from_slice(b"HYLL");
    out[4] = ENCODING_DENSE;
    out[15] = CACHE_INVALID;
    let dense = &mut out[HEADER_BYTES..];
    for (i, &register) in registers.iter().enumerate() {
        let bit = i * REGISTER_BITS;
        let value = u16::from(register) << (bit % 8);
        dense[bit / 8] |= value as u8;
        if let Some(next) = dense.get_mut(bit / 8 + 1) {
            *next |= (value >> 8) as u8;
        }
    }
    Bytes::from(out)
}

/// Redis's `hllSigma`.
fn sigma(mut x: f64) -> f64 {
    if x == 1.0 {
        return f64::INFINITY;
    }
    let mut y = 1.0;
    let mut z = x;
    loop {
        x *= x;
        let before = z;
        z += x * y;
        y += y;
        if before == z {
            return z;
        }
    }
}

/// Redis's `hllTau`.
fn tau(mut x: f64) -> f64 {
    if x == 0.0 || x == 1.0 {
        return 0.0;
    }
    let mut y = 1.0;
    let mut z = 1.0 - x;
    loop {
        x = x.sqrt();
        let before = z;
        y *= 0.5;
        z -= (1.0 - x).powi(2) * y;
        if before == z {
            return z / 3.0;
        }
    }
}

/// Redis's `hllCount`: the estimate from the registers' histogram.
fn count(registers: &[u8; REGISTERS]) -> i64 {
    let mut histogram = [0u32; 64];
    for &register in registers.iter() {
        histogram[usize::from(register)] += 1;
    }
    let m = REGISTERS as f64;
    let mut z = m * tau((m - f64::from(histogram[Q + 1])) / m);
    for j in (1..=Q).rev() {
        z += f64::from(histogram[j]);
        z *= 0.5;
    }
    z += m * sigma(f64::from(histogram[0]) / m);
    const ALPHA_INF: f64 = 0.721_347_520_444_481_7;
    (ALPHA_INF * m * m / z).round() as i64
}

fn pfadd(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let view = ctx.view();
    let (mut regs, created) = match registers(view.get(&args[1]))? {
        Some((regs, _)) => (regs, false),
        None => (empty(), true),
    };
    let mut changed = created;
    for element in &args[2..] {
        let (index, value) = register_of(element);
        if regs[index] < value {
            regs[index] = value;
            changed = true;
        }
    }
    if changed {
        put_string(ctx, &args[1], dense(&regs));
    }
    Ok(Reply::Integer(i64::from(changed)))
}

fn pfcount(view: &View<'_>, args: &[Bytes]) -> CmdResult {
    if args.len() == 2 {
        let Some((regs, bytes)) = registers(view.get(&args[1]))? else {
            return Ok(Reply::Integer(0));
        };
        if bytes[15] & CACHE_INVALID == 0 {
            let cached = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes"));
            return Ok(Reply::Integer(cached as i64));
        }
        return Ok(Reply::Integer(count(&regs)));
    }
    let mut merged = empty();
    for key in &args[1..] {
        if let Some((regs, _)) = registers(view.get(key))? {
            merge(&mut merged, &regs);
        }
    }
    Ok(Reply::Integer(count(&merged)))
}

fn merge(into: &mut [u8; REGISTERS], from: &[u8; REGISTERS]) {
    for (a, &b) in into.iter_mut().zip(from.iter()) {
        *a = (*a).max(b);
    }
}

fn pfmerge(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    // As in Redis, the destination's own registers are part of the merge.
    let mut merged = empty();
    let view = ctx.view();
    for key in &args[1..] {
        if let Some((regs, _)) = registers(view.get(key))? {
            merge(&mut merged, &regs);
        }
    }
    put_string(ctx, &args[1], dense(&merged));
    Ok(Reply::ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dense_encoding_reads_back() {
        let mut regs = empty();
        for (i, r) in regs.iter_mut().enumerate() {
            *r = (i * 7 % 64) as u8;
        }
        let bytes = dense(&regs);
        assert_eq!(bytes.len(), DENSE_BYTES);
        let value = Value::Str(bytes);
        let (back, _) = registers(Some(&value)).unwrap().unwrap();
        assert_eq!(back, regs);
    }

    #[test]
    fn an_empty_hyperloglog_counts_zero_and_one_element_one() {
        let mut regs = empty();
        assert_eq!(count(&regs), 0);
        let (index, value) = register_of(b"a");
        regs[index] = value;
        assert_eq!(count(&regs), 1);
    }

    #[test]
    fn sparse_runs_must_cover_every_register() {
        // XZERO of 16384 zeros: 0x7f 0xff.
        let mut regs = empty();
        assert!(sparse_registers(&[0x7f, 0xff], &mut regs).is_ok());
        assert!(sparse_registers(&[0x7f, 0xfe], &mut regs).is_err(), "one short");
        assert!(sparse_registers(&[0x7f, 0xff, 0x00], &mut regs).is_err(), "one over");
        // A VAL run of 2 registers of value 3, then XZERO for the rest (16382 = 0x3ffe).
        assert!(sparse_registers(&[0x80 | (2 << 2) | 1, 0x7f, 0xfd], &mut regs).is_ok());
        assert_eq!(&regs[..3], &[3, 3, 0]);
    }
}
