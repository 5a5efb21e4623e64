//! What a checkpoint carries beside the application's state: the membership in effect after
//! its slot, in the caller's header of `rsl-storage`'s checkpoint files (opaque bytes to the
//! storage). The runtime and the simulator write and read it here, so both restore the
//! membership the same way.
//!
//! A replica that loads or installs a checkpoint skips the log up to its slot, and with it
//! every configuration value in that range: without the membership in the checkpoint it
//! would count quorums and address peers under the membership of its metadata (the one it
//! was bootstrapped with) until the next change executed (docs/protocol.md, "Checkpoints
//! and the membership").
//!
//! | version | header bytes |
//! | --- | --- |
//! | 0 | empty: written before checkpoints carried the membership (the replica keeps its own) |
//! | 1 | `1`, the length (u32 LE) of the value, the membership encoded as a configuration value |

use rsl_core::{Membership, Value};

use crate::{decode_value, encode_value, StoreError};

/// The checkpoint header version written now.
pub const CHECKPOINT_HEADER_VERSION: u8 = 1;

/// The largest checkpoint header: the version, the length, the largest configuration value.
pub const CHECKPOINT_HEADER_BYTES_MAX: usize = 1 + 4 + rsl_core::limits::CONFIG_VALUE_BYTES_MAX;

const _: () =
    assert!(CHECKPOINT_HEADER_BYTES_MAX <= rsl_storage::limits::CHECKPOINT_CALLER_HEADER_BYTES_MAX);

/// The header of a checkpoint of the state after a slot whose membership is `membership`.
pub fn encode_checkpoint_header(membership: &Membership) -> Vec<u8> {
    let value = encode_value(&Value::Config(membership.clone()));
    let mut b = Vec::with_capacity(5 + value.len());
    b.push(CHECKPOINT_HEADER_VERSION);
    b.extend_from_slice(&(value.len() as u32).to_le_bytes());
    b.extend_from_slice(&value);
    assert!(b.len() <= CHECKPOINT_HEADER_BYTES_MAX, "a membership within the limits");
    b
}

/// The membership a checkpoint header carries: `None` for a header of version 0 (a
/// checkpoint written before they carried it). A header of an unknown version, or one that
/// does not decode, is an error (the checkpoint's checksums passed, so it is a bug or a
/// newer version, not rot).
pub fn decode_checkpoint_header(b: &[u8]) -> Result<Option<Membership>, StoreError> {
    let Some((&version, rest)) = b.split_first() else { return Ok(None) };
    let bad = || StoreError::MalformedCheckpointHeader { version };
    if version != CHECKPOINT_HEADER_VERSION || rest.len() < 4 {
        return Err(bad());
    }
    let n = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
    let value = rest.get(4..).filter(|v| v.len() == n).ok_or_else(bad)?;
    match decode_value(value) {
        Ok(Value::Config(m)) => Ok(Some(m)),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use rsl_core::{MemberInfo, ReplicaId};

    use super::*;

    #[test]
    fn a_header_round_trips_and_an_old_empty_one_carries_no_membership() {
        let mut m = Membership::new([1, 2, 3]);
        m.learners.push(ReplicaId(4));
        let info = MemberInfo { addr: "10.0.0.4:7001".into(), data: b"c".to_vec().into() };
        m.info.insert(ReplicaId(4), info);
        let b = encode_checkpoint_header(&m);
        assert_eq!(b[0], CHECKPOINT_HEADER_VERSION);
        assert_eq!(decode_checkpoint_header(&b).unwrap(), Some(m));
        assert_eq!(decode_checkpoint_header(&[]).unwrap(), None);
        for cut in 1..b.len() {
            assert!(decode_checkpoint_header(&b[..cut]).is_err(), "cut at {cut}");
        }
        let mut newer = b.clone();
        newer[0] = CHECKPOINT_HEADER_VERSION + 1;
        assert!(decode_checkpoint_header(&newer).is_err());
        let mut longer = b;
        longer.push(0);
        assert!(decode_checkpoint_header(&longer).is_err());
    }

    #[test]
    fn the_largest_membership_fits_the_header_limit() {
        let info = |id: u32| MemberInfo {
            addr: "a".repeat(rsl_core::limits::MEMBER_ADDR_BYTES_MAX),
            data: vec![id as u8; rsl_core::limits::MEMBER_DATA_BYTES_MAX].into(),
        };
        let voters = rsl_core::limits::VOTERS_MAX as u32;
        let mut m = Membership::new(1..=voters);
        let learners = voters + 1..=voters + rsl_core::limits::LEARNERS_MAX as u32;
        m.learners = learners.map(ReplicaId).collect();
        for id in m.replicas().collect::<Vec<_>>() {
            m.info.insert(id, info(id.0));
        }
        let b = encode_checkpoint_header(&m);
        assert!(b.len() <= CHECKPOINT_HEADER_BYTES_MAX, "{} bytes", b.len());
        assert_eq!(decode_checkpoint_header(&b).unwrap(), Some(m));
    }
}
