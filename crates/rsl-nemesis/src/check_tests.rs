//! The checkers on hand-made histories (each must be rejected or accepted for a stated
//! reason) and on random histories that are correct by construction, with and without a
//! planted lie.

use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};

use super::*;
use crate::history::token;

/// The checkers with no token sighted by a read (the finals' tokens are added by `check`).
fn check(h: &[Record], f: &[(u32, String, Observed)], threads: usize) -> Verdicts {
    super::check(h, f, &Sightings::new(), threads)
}

fn rec(
    client: u32,
    kind: Kind,
    key: &str,
    tok: u64,
    span: (u64, Option<u64>),
    out: Outcome,
) -> Record {
    let bytes = match kind {
        Kind::Get => 0,
        _ if KeyClass::of(key) == KeyClass::Big => 1000,
        _ => ELEMENT_BYTES as u64,
    };
    Record {
        client,
        replica: 1,
        kind,
        key: key.into(),
        token: tok,
        bytes,
        call_us: span.0,
        ret_us: span.1,
        outcome: out,
    }
}

fn append(client: u32, tok: u64, call: u64, ret: u64, len: u64) -> Record {
    rec(
        client,
        Kind::Append,
        "n0.0",
        tok,
        (call, Some(ret)),
        Outcome::Len(len * ELEMENT_BYTES as u64),
    )
}

fn set(client: u32, tok: u64, call: u64, ret: u64) -> Record {
    rec(client, Kind::Set, "n0.0", tok, (call, Some(ret)), Outcome::Ok)
}

fn get(client: u32, tokens: &[u64], call: u64, ret: u64) -> Record {
    let v = Outcome::Value(Value::of_list(tokens));
    rec(client, Kind::Get, "n0.0", 0, (call, Some(ret)), v)
}

fn finals(tokens: &[u64]) -> Vec<(u32, String, Observed)> {
    (1..=3).map(|r| (r, "n0.0".to_string(), Observed::List(tokens.to_vec()))).collect()
}

#[test]
fn a_correct_history_passes_every_checker() {
    let h = vec![
        set(1, 10, 0, 5),
        append(2, 11, 6, 9, 2),
        get(3, &[10, 11], 10, 12),
        append(1, 12, 13, 20, 3),
        get(2, &[10, 11], 14, 15),
    ];
    let v = check(&h, &finals(&[10, 11, 12]), 2);
    assert!(v.passed(), "{v:?}");
    assert_eq!((v.keys, v.operations), (1, 5));
}

#[test]
fn a_stale_read_is_a_violation() {
    let h = vec![set(1, 10, 0, 5), append(2, 11, 6, 9, 2), get(3, &[10], 10, 12)];
    let v = check(&h, &finals(&[10, 11]), 1);
    assert_eq!(v.violations.len(), 1, "{v:?}");
    assert!(v.lost.is_empty() && v.anomalies.is_empty(), "{v:?}");
}

#[test]
fn an_acknowledged_write_missing_at_the_end_is_lost_unless_a_set_replaced_it() {
    // Token 12 was acknowledged after the head SET 10 returned: nothing may replace it.
    let h = vec![set(1, 10, 0, 5), append(2, 11, 6, 9, 2), append(1, 12, 13, 20, 3)];
    let v = check(&h, &finals(&[10, 11]), 1);
    assert_eq!(v.lost.len(), 3, "one per replica: {v:?}");
    assert!(v.lost[0].contains("token c"), "{}", v.lost[0]);
    // A SET invoked after the appends returned replaces them legitimately.
    let h = vec![append(2, 11, 0, 3, 1), append(1, 12, 4, 6, 2), set(3, 13, 7, 9)];
    let v = check(&h, &finals(&[13]), 1);
    assert!(v.passed(), "{v:?}");
    // A list whose head is an APPEND was never replaced: every acknowledged write must be in it.
    let h = vec![append(2, 11, 0, 3, 1), append(1, 12, 4, 6, 2)];
    let v = check(&h, &finals(&[11]), 1);
    assert_eq!(v.lost.len(), 3, "{v:?}");
}

#[test]
fn unknown_writes_may_or_may_not_appear_but_refused_ones_must_not() {
    let unknown = |tok, call| {
        rec(4, Kind::Append, "n0.0", tok, (call, None), Outcome::Unknown("timed out".into()))
    };
    let refused = |tok, call| {
        let out = Outcome::Failed("TRYAGAIN not primary".into());
        rec(4, Kind::Append, "n0.0", tok, (call, Some(call + 1)), out)
    };
    for final_value in [&[10][..], &[10, 20][..]] {
        let h = vec![set(1, 10, 0, 5), unknown(20, 6)];
        assert!(check(&h, &finals(final_value), 1).passed(), "{final_value:?}");
    }
    let h = vec![set(1, 10, 0, 5), refused(20, 6)];
    assert!(check(&h, &finals(&[10]), 1).passed());
    let v = check(&h, &finals(&[10, 20]), 1);
    assert!(v.anomalies.iter().any(|a| a.contains("refused with")), "{v:?}");
    let mut h = h;
    h.push(get(2, &[10, 20], 30, 31));
    assert_eq!(check(&h, &finals(&[10, 20]), 1).violations.len(), 1, "a refused write seen");
}

#[test]
fn values_nobody_wrote_and_replicas_that_disagree_are_anomalies() {
    let h = vec![set(1, 10, 0, 5)];
    let v = check(&h, &finals(&[10, 99]), 1);
    assert!(v.anomalies.iter().any(|a| a.contains("never written")), "{v:?}");
    let mut f = finals(&[10]);
    f[2].2 = Observed::List(vec![]);
    let v = check(&h, &f, 1);
    assert!(v.anomalies.iter().any(|a| a.contains("disagree")), "{v:?}");
    assert_eq!(v.lost.len(), 1, "replica 3 lost the SET: {v:?}");
    f[2].2 = Observed::Unread("timed out".into());
    let v = check(&h, &f, 1);
    assert!(v.passed() && v.unverified.len() == 1, "unverified, not passed silently: {v:?}");
    f[2].2 = Observed::Malformed("element 0".into());
    assert!(!check(&h, &f, 1).passed());
    let mut h = h;
    h.push(rec(2, Kind::Get, "n0.0", 0, (6, Some(7)), Outcome::Corrupt("element 0".into())));
    let v = check(&h, &finals(&[10]), 1);
    assert!(v.anomalies.iter().any(|a| a.contains("read a value nobody wrote")), "{v:?}");
}

#[test]
fn big_keys_are_registers_with_sizes_and_a_limit() {
    let big_set =
        |client, tok, call, ret| rec(client, Kind::Set, "b0", tok, (call, Some(ret)), Outcome::Ok);
    let big_get = |tok: Option<u64>, call, ret| {
        let v = tok.map_or(Value::EMPTY, |t| Value::of_big(t, 1000));
        rec(3, Kind::Get, "b0", 0, (call, Some(ret)), Outcome::Value(v))
    };
    let f = |tok: Option<u64>, bytes| -> Vec<(u32, String, Observed)> {
        vec![(1, "b0".into(), Observed::Big(tok.map(|t| (t, bytes))))]
    };
    let h =
        vec![big_get(None, 0, 1), big_set(1, 5, 2, 4), big_get(Some(5), 5, 6), big_set(2, 6, 7, 9)];
    assert!(check(&h, &f(Some(6), 1000), 1).passed());
    assert_eq!(check(&h, &f(Some(5), 1000), 1).lost.len(), 1, "SET 6 came after 5");
    assert_eq!(check(&h, &f(None, 0), 1).lost.len(), 2);
    let v = check(&h, &f(Some(6), 999), 1);
    assert!(v.anomalies.iter().any(|a| a.contains("999 bytes")), "{v:?}");
    let mut stale = h.clone();
    stale.push(big_get(Some(5), 10, 11));
    assert_eq!(check(&stale, &f(Some(6), 1000), 1).violations.len(), 1);
    // Past the limit: refusals are fine, acknowledgements are not.
    let set_max = set_value_bytes_max("b0") as u64;
    let mut at = big_set(1, 7, 12, 13);
    at.bytes = set_max;
    let mut h_at = h.clone();
    h_at.push(at);
    let v = check(&h_at, &f(Some(7), set_max), 1);
    assert!(v.anomalies.is_empty(), "a SET at its limit is fine: {v:?}");
    let mut over = big_set(1, 7, 12, 13);
    over.bytes = set_max + 1;
    over.outcome = Outcome::Failed("ERR key or value too large".into());
    let mut h2 = h.clone();
    h2.push(over.clone());
    assert!(check(&h2, &f(Some(6), 1000), 1).passed());
    over.outcome = Outcome::Ok;
    h2.push(over);
    assert!(!check(&h2, &f(Some(6), 1000), 1).anomalies.is_empty());
    let mut probe = rec(1, Kind::Append, "b0", 8, (14, Some(15)), Outcome::Len(1001));
    let mut h3 = h.clone();
    h3.push(probe.clone());
    assert!(check(&h3, &f(Some(6), 1000), 1).anomalies.iter().any(|a| a.contains("APPEND")));
    probe.outcome = Outcome::Failed("ERR string exceeds maximum allowed size".into());
    h3.pop();
    h3.push(probe);
    assert!(check(&h3, &f(Some(6), 1000), 1).passed());
}

#[test]
fn an_undecided_search_is_not_a_pass() {
    let v = Verdicts { undecided: vec!["n0.0: gave up".into()], ..Verdicts::default() };
    assert!(!v.passed());
}

#[test]
fn unknown_writes_a_read_showed_are_pinned_where_it_showed_them() {
    // Twenty appends of unknown outcome, all pending from the start; then twenty epochs, each a
    // SET and a read that shows one of the appends after it. Left free, each append could have
    // taken effect (and been replaced) in any earlier epoch, and the search gives up (it does,
    // after 45 s, with no sightings); pinned by its sighting, each has one place.
    let mut h = Vec::new();
    let mut sightings = Sightings::new();
    for k in 0..20u64 {
        let unknown = Outcome::Unknown("timed out".into());
        h.push(rec(7, Kind::Append, "n0.0", 100 + k, (k, None), unknown));
    }
    for k in 0..20u64 {
        let t = 1000 + 10 * k;
        h.push(set(1, 200 + k, t, t + 1));
        h.push(get(2, &[200 + k, 100 + k], t + 2, t + 3));
        sight(&mut sightings, &[200 + k, 100 + k], t + 3);
    }
    let f = finals(&[219, 119]);
    let v = super::check(&h, &f, &sightings, 1);
    assert!(v.passed() && v.undecided.is_empty(), "{v:?}");
    // A sighting is a fact about the history: one that contradicts it is still a violation.
    h.push(get(3, &[219], 1300, 1301));
    assert_eq!(super::check(&h, &f, &sightings, 1).violations.len(), 1);
}

#[test]
fn unknown_writes_nobody_saw_do_not_blow_up_the_search_nor_hide_their_effect() {
    let unknown = |tok, call| {
        rec(
            4,
            Kind::Append,
            "n0.0",
            tok,
            (call, None),
            Outcome::Unknown("ERR shutting down".into()),
        )
    };
    // Hundreds of unknown appends nobody saw, then reads that show none of them: the search
    // leaves them out first and passes at once.
    let mut h = vec![set(1, 10, 0, 5)];
    h.extend((0..400).map(|i| unknown(100 + i, 6 + i)));
    h.push(get(2, &[10], 1000, 1001));
    h.push(append(3, 11, 1002, 1003, 2));
    h.push(get(2, &[10, 11], 1004, 1005));
    let v = check(&h, &finals(&[10, 11]), 1);
    assert!(v.passed() && v.undecided.is_empty(), "{v:?}");
    // Hundreds of unknown appends nobody saw, one of which did take effect (the next lengths
    // count it) before a SET replaced it unseen: a window of neighbours finds it.
    let mut h = vec![set(1, 10, 0, 5), append(2, 11, 6, 7, 2)];
    h.extend((0..300).map(|i| unknown(100 + i, 10 + i)));
    h.extend([append(3, 12, 400, 410, 4), append(5, 13, 400, 410, 5), set(1, 14, 400, 410)]);
    h.push(get(2, &[14], 411, 412));
    let v = check(&h, &finals(&[14]), 1);
    assert!(v.passed() && v.undecided.is_empty(), "{v:?}");
    // An unknown append nobody saw that did take effect (the next length counts it) before a
    // SET replaced it: leaving it out finds no linearization, so the whole history is searched.
    let h = vec![
        set(1, 10, 0, 1),
        unknown(20, 2),
        append(2, 11, 3, 4, 3),
        set(1, 12, 5, 6),
        get(3, &[12], 7, 8),
    ];
    let v = check(&h, &finals(&[12]), 1);
    assert!(v.passed(), "{v:?}");
    // Without it the length is impossible.
    let v = check(&h[..1].iter().chain(&h[2..]).cloned().collect::<Vec<_>>(), &finals(&[12]), 1);
    assert_eq!(v.violations.len(), 1, "{v:?}");
}

/// A random history of `clients` concurrent clients on `keys` list keys and one big key,
/// linearizable by construction: each operation takes effect at one instant inside its
/// interval, in instant order, against a model; some writes time out (with or without
/// effect), some are refused (no effect). Returns it with every replica's final values.
type Finals = Vec<(u32, String, Observed)>;

fn random_history(seed: u64) -> (Vec<Record>, Finals, Sightings) {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let keys: Vec<String> = (0..rng.random_range(1..4)).map(|i| format!("n0.{i}")).collect();
    let all_keys: Vec<String> = keys.iter().cloned().chain(["b0".to_string()]).collect();
    // (instant, record index) of every effect, applied in instant order afterwards.
    let mut records = Vec::new();
    let mut effects: Vec<(u64, usize)> = Vec::new();
    let mut clock = [0u64; 6];
    for i in 0..rng.random_range(20..200) {
        let client = rng.random_range(0..6u32);
        let call = clock[client as usize] + rng.random_range(1..50);
        let ret = call + rng.random_range(1..200);
        clock[client as usize] = ret;
        let key = all_keys[rng.random_range(0..all_keys.len())].clone();
        let big = KeyClass::of(&key) == KeyClass::Big;
        let kind = match rng.random_range(0..10) {
            0..4 => Kind::Get,
            4..6 => Kind::Set,
            _ if big => Kind::Set,
            _ => Kind::Append,
        };
        let tok = if kind == Kind::Get { 0 } else { token(client, i) };
        let fate = rng.random_range(0..20);
        let effect = kind.is_write() && fate != 0; // fate 0: refused or lost in flight
        let outcome = match fate {
            0 if kind.is_write() => Outcome::Failed("TRYAGAIN not primary".into()),
            1 | 2 => Outcome::Unknown("timed out".into()), // with (2) or without (1) effect
            _ => Outcome::Ok,                              // filled in when the effect is applied
        };
        let effect = effect && fate != 1;
        let ret_us = match outcome {
            Outcome::Unknown(_) => None,
            _ => Some(ret),
        };
        let mut r = rec(client, kind, &key, tok, (call, ret_us), outcome);
        if big && kind == Kind::Set {
            r.bytes = rng.random_range(17..5000);
        }
        if effect || (kind == Kind::Get && matches!(r.outcome, Outcome::Ok)) {
            effects.push((rng.random_range(call..=ret), records.len()));
        }
        records.push(r);
    }
    effects.sort_unstable();
    let mut state: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut sizes: HashMap<u64, u64> = HashMap::new();
    let mut observed = Sightings::new();
    for (_, i) in effects {
        let r = &mut records[i];
        let list = state.entry(r.key.clone()).or_default();
        let known = matches!(r.outcome, Outcome::Ok);
        match r.kind {
            Kind::Set => {
                *list = vec![r.token];
                sizes.insert(r.token, r.bytes);
            }
            Kind::Append => {
                list.push(r.token);
                if known {
                    r.outcome = Outcome::Len((list.len() * ELEMENT_BYTES) as u64);
                }
            }
            Kind::Get => {
                sight(&mut observed, list, r.ret_us.expect("a read that took effect returned"));
                r.outcome = Outcome::Value(match (KeyClass::of(&r.key), list.first()) {
                    (KeyClass::Big, Some(&t)) => Value::of_big(t, sizes[&t]),
                    _ => Value::of_list(list),
                });
            }
        }
    }
    let finals = (1..=3)
        .flat_map(|replica| {
            let state = &state;
            let sizes = &sizes;
            all_keys.iter().map(move |key| {
                let list = state.get(key).cloned().unwrap_or_default();
                let observed = match KeyClass::of(key) {
                    KeyClass::Big => Observed::Big(list.first().map(|&t| (t, sizes[&t]))),
                    KeyClass::List => Observed::List(list),
                };
                (replica, key.clone(), observed)
            })
        })
        .collect();
    // Reads that were never applied (none, by construction) would keep `Outcome::Ok`.
    assert!(records.iter().all(|r| r.kind != Kind::Get || !matches!(r.outcome, Outcome::Ok)));
    (records, finals, observed)
}

#[test]
fn random_correct_histories_pass_and_their_planted_copies_fail() {
    let (mut stale_caught, mut phantom_caught) = (0, 0);
    for seed in 0..300 {
        let (h, f, observed) = random_history(seed);
        let v = super::check(&h, &f, &observed, 2);
        assert!(v.passed(), "seed {seed}: {v:?}");
        assert!(check(&h, &f, 2).passed(), "seed {seed}: without the observed tokens");
        if let Some(plant) = plant_stale_read(&h) {
            let records: Vec<&Record> = plant.records.iter().collect();
            let result = linearizable(&plant.key, &records, &observed, &mut Vec::new()).result;
            assert!(
                matches!(result, Err(Violation::NotLinearizable { .. })),
                "seed {seed}: {} not caught",
                plant.what
            );
            stale_caught += 1;
        }
        if let Some((plant, replica, observed)) = plant_phantom_write(&h, &f) {
            let records: Vec<&Record> = plant.records.iter().collect();
            let (mut lost, mut anomalies) = (Vec::new(), Vec::new());
            lost_writes(&plant.key, &records, replica, &observed, &mut lost, &mut anomalies);
            assert_eq!(lost.len(), 1, "seed {seed}: {}: {lost:?}", plant.what);
            phantom_caught += 1;
        }
    }
    assert!(stale_caught > 200 && phantom_caught > 200, "{stale_caught} {phantom_caught}");
}
