//! Unit tests of the search on small histories.

use super::*;

fn w(client: u32, token: u64, call: u64, ret: Option<(u64, u32)>) -> Operation {
    Operation {
        client,
        op: Op::Append { key: 0, token },
        call,
        ret: ret.map(|(t, _)| t),
        output: ret.map(|(_, len)| Output::Len(len)),
    }
}

fn r(client: u32, seen: &[u64], call: u64, ret: u64) -> Operation {
    Operation {
        client,
        op: Op::Get { key: 0 },
        call,
        ret: Some(ret),
        output: Some(Output::Value(Fingerprint::of(seen))),
    }
}

fn put(client: u32, key: u8, token: u64, call: u64, ret: u64) -> Operation {
    Operation { client, op: Op::Put { key, token }, call, ret: Some(ret), output: Some(Output::Ok) }
}

fn get(client: u32, key: u8, seen: &[u64], call: u64, ret: u64) -> Operation {
    Operation {
        client,
        op: Op::Get { key },
        call,
        ret: Some(ret),
        output: Some(Output::Value(Fingerprint::of(seen))),
    }
}

#[test]
fn sequential_history_is_accepted() {
    let h = vec![w(1, 10, 0, Some((5, 1))), w(2, 11, 6, Some((9, 2))), r(1, &[10, 11], 10, 12)];
    assert_eq!(check(&h), Ok(()));
}

#[test]
fn stale_read_after_completed_write_is_rejected() {
    let h = vec![w(1, 10, 0, Some((5, 1))), r(2, &[], 6, 8)];
    assert!(matches!(check(&h), Err(Violation::NotLinearizable { key: 0, .. })));
}

#[test]
fn concurrent_writes_may_take_either_order() {
    let h = vec![w(1, 10, 0, Some((10, 2))), w(2, 11, 1, Some((9, 1))), r(3, &[11, 10], 11, 12)];
    assert_eq!(check(&h), Ok(()));
    let bad = vec![w(1, 10, 0, Some((10, 2))), w(2, 11, 1, Some((9, 1))), r(3, &[10, 11], 11, 12)];
    assert!(check(&bad).is_err(), "the lengths fix the order 11 then 10");
}

#[test]
fn read_concurrent_with_write_sees_before_or_after() {
    for seen in [&[][..], &[7][..]] {
        let h = vec![w(1, 7, 0, Some((10, 1))), r(2, seen, 2, 4)];
        assert_eq!(check(&h), Ok(()), "{seen:?}");
    }
}

#[test]
fn reads_must_not_go_back_in_time() {
    // Both reads overlap the write, but the second starts after the first returned.
    let h = vec![w(1, 7, 0, Some((100, 1))), r(2, &[7], 10, 20), r(3, &[], 30, 40)];
    assert!(check(&h).is_err());
}

#[test]
fn indeterminate_write_may_or_may_not_take_effect() {
    let applied = vec![w(1, 7, 0, None), r(2, &[7], 50, 60)];
    assert_eq!(check(&applied), Ok(()));
    let not_applied = vec![w(1, 7, 0, None), r(2, &[], 50, 60), w(2, 8, 61, Some((70, 1)))];
    assert_eq!(check(&not_applied), Ok(()));
    // ... but once seen it cannot disappear, and it cannot take effect before its call.
    let vanished = vec![w(1, 7, 0, None), r(2, &[7], 50, 60), r(2, &[], 61, 62)];
    assert!(check(&vanished).is_err());
    let too_early = vec![r(2, &[7], 0, 5), w(1, 7, 6, None)];
    assert!(check(&too_early).is_err());
}

#[test]
fn a_write_known_to_have_taken_effect_by_a_time_must_be_seen_after_it() {
    // The client gave up on the append, but a replica executed it by time 10: a read
    // invoked after that must see it, whatever its output was.
    let effected = Operation { ret: Some(10), output: None, ..w(1, 7, 0, None) };
    let stale = vec![effected.clone(), r(2, &[], 20, 25)];
    assert!(check(&stale).is_err(), "a read after the effect did not see it");
    let fresh = vec![effected.clone(), r(2, &[7], 20, 25)];
    assert_eq!(check(&fresh), Ok(()));
    // It took effect: it cannot be dropped, even if nothing read it.
    let concurrent = vec![effected, r(2, &[], 5, 8)];
    assert_eq!(check(&concurrent), Ok(()), "a read before the effect time may miss it");
}

#[test]
fn value_nobody_wrote_is_rejected_and_lost_write_is_rejected() {
    assert!(check(&[r(1, &[99], 0, 1)]).is_err());
    let lost = vec![w(1, 1, 0, Some((2, 1))), w(1, 2, 3, Some((4, 2))), r(2, &[2], 5, 6)];
    assert!(check(&lost).is_err());
}

#[test]
fn append_length_must_match_position() {
    let h = vec![w(1, 1, 0, Some((2, 2)))];
    assert!(check(&h).is_err());
}

#[test]
fn puts_replace_and_keys_are_independent() {
    let h = vec![
        put(1, 1, 5, 0, 2),
        put(1, 2, 6, 3, 4),
        put(2, 1, 7, 5, 6),
        get(3, 1, &[7], 7, 8),
        get(3, 2, &[6], 9, 10),
    ];
    assert_eq!(check(&h), Ok(()));
    let mut bad = h.clone();
    bad[4] = get(3, 2, &[5], 9, 10);
    assert!(matches!(check(&bad), Err(Violation::NotLinearizable { key: 2, .. })));
}

#[test]
fn many_concurrent_clients_with_timeouts_stay_tractable() {
    // 8 clients, each appending in turn with overlapping intervals, some indeterminate,
    // followed by one read of the true order.
    let mut h = Vec::new();
    let mut order = Vec::new();
    let mut t = 0;
    for round in 0..40u64 {
        for c in 0..8u32 {
            let token = round * 8 + u64::from(c);
            order.push(token);
            let len = order.len() as u32;
            let ret = if token % 7 == 3 { None } else { Some((t + 20 + u64::from(c), len)) };
            h.push(w(c, token, t + u64::from(c), ret));
        }
        t += 10;
    }
    // All writes complete at distinct times with lengths fixing the order.
    h.push(r(99, &order, t + 100, t + 101));
    assert_eq!(check(&h), Ok(()));
}

/// Random histories made linearizable by construction (each operation takes effect at a
/// point inside its interval, outputs computed sequentially; some operations time out,
/// with or without effect) must all be accepted: no false alarms in the swarm.
#[test]
fn random_linearizable_histories_are_accepted() {
    use crate::rng::Rng;
    let mut rng = Rng::new(99);
    for round in 0..300 {
        let keys = rng.range(1, 3) as u8;
        let mut state = vec![Vec::<u64>::new(); usize::from(keys)];
        let mut h: Vec<Operation> = Vec::new();
        let mut t = 100;
        for i in 0..rng.range(1, 60) {
            t += rng.range(1, 20);
            let key = rng.below(u64::from(keys)) as u8;
            let call = t - rng.range(0, 60).min(t);
            let ret = t + rng.range(0, 60);
            let token = round * 1000 + i;
            let k = usize::from(key);
            let (op, out) = match rng.below(3) {
                0 => {
                    state[k] = vec![token];
                    (Op::Put { key, token }, Output::Ok)
                }
                1 => {
                    state[k].push(token);
                    (Op::Append { key, token }, Output::Len(state[k].len() as u32))
                }
                _ => (Op::Get { key }, Output::Value(Fingerprint::of(&state[k]))),
            };
            let (ret, output) = match rng.below(100) {
                // The client gave up: its effect time may still be known, or not.
                0 => (None, None),
                1 => (Some(ret), None),
                _ => (Some(ret), Some(out)),
            };
            h.push(Operation { client: i as u32, op, call, ret, output });
            if rng.chance(50) {
                // A timed-out write that never took effect.
                let op = Op::Append { key, token: token + 500 };
                h.push(Operation { client: 900 + i as u32, op, call, ret: None, output: None });
            }
        }
        assert_eq!(check(&h), Ok(()), "round {round}: {h:?}");
        // Corrupt one completed read to a value no state ever had: it must be rejected.
        if let Some(i) = h.iter().position(|o| matches!(o.op, Op::Get { .. }) && o.output.is_some())
        {
            h[i].output = Some(Output::Value(Fingerprint::of(&[u64::MAX])));
            assert!(check(&h).is_err(), "round {round}: a read of a value nobody wrote");
        }
    }
}
