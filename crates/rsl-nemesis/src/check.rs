//! The checkers: is the history linearizable, was an acknowledged write lost, and do the
//! replicas hold the same, well-formed values at the end?
//!
//! **Linearizability** is decided by the project's own checker, the simulator's Wing–Gong
//! search with Lowe's memoisation ([`rsl_sim::linearizability`]), key by key: a list key is
//! its put/append/get register, a big key its put/get register. A write whose outcome is
//! unknown may take effect anywhere after its invocation or not at all; a refused write is left
//! out (it had no effect, by rsl-kv's contract: if it did take effect, a read shows a token
//! nobody wrote and the history is rejected). A search that gives up is a failure, not a pass.
//!
//! **Lost writes** are judged on what each replica holds at the end, read from its own
//! state after healing: every acknowledged write must be there unless a later `SET` may have
//! replaced it. For a list, only the `SET` at the head of the final value can have replaced
//! anything (a `SET` replaces the whole list, and nothing deletes a key), so an acknowledged
//! write missing from the final value is lost unless it was invoked before that `SET`
//! returned. For a big key the final token must not be followed, in real time, by an
//! acknowledged `SET` of another token.
//!
//! **Anomalies** are everything else that must not happen: a value no client wrote (a
//! malformed value, an unknown token, a token of a refused write, a big value of the wrong
//! size), an acknowledged write past rsl-kv's value limit, replicas that disagree at the end.
//! A final value that could not be read leaves the run **unverified** (inconclusive), not
//! passed.
//!
//! [`plant_stale_read`] and [`plant_phantom_write`] make a planted copy of a real history
//! (a client that reports a stale read; a client that reports an acknowledged write it never
//! sent) to prove, on every run, that the checkers reject it.

use std::collections::{BTreeMap, HashMap, HashSet};

use rsl_kv::limits::VALUE_BYTES_MAX;
use rsl_sim::kv::{Op, Output};
use rsl_sim::linearizability::{self, Operation, Violation};

use crate::history::{
    set_value_bytes_max, sight, KeyClass, Kind, Observed, Outcome, Record, Sighting, Sightings,
    Value, ELEMENT_BYTES,
};

/// Everything the checkers found.
#[derive(Debug, Clone, Default)]
pub struct Verdicts {
    /// Keys whose histories were checked.
    pub keys: usize,
    /// Operations handed to the linearizability checker.
    pub operations: usize,
    /// Keys whose histories have no linearization.
    pub violations: Vec<String>,
    /// Keys on which the linearizability search gave up (a failure too).
    pub undecided: Vec<String>,
    /// Acknowledged writes missing at the end.
    pub lost: Vec<String>,
    /// Values nobody wrote, replicas that disagree, over-limit writes acknowledged.
    pub anomalies: Vec<String>,
    /// Final values that could not be read: safety not verified for them.
    pub unverified: Vec<String>,
}

impl Verdicts {
    /// Whether the run is safe: nothing found.
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
            && self.undecided.is_empty()
            && self.lost.is_empty()
            && self.anomalies.is_empty()
    }
}

/// The records of each key, in invocation order.
pub fn by_key(history: &[Record]) -> BTreeMap<&str, Vec<&Record>> {
    let mut keys: BTreeMap<&str, Vec<&Record>> = BTreeMap::new();
    for r in history {
        keys.entry(r.key.as_str()).or_default().push(r);
    }
    for records in keys.values_mut() {
        records.sort_by_key(|r| (r.call_us, r.client));
    }
    keys
}

/// When a write's effect can no longer be pending: its return, or never if unknown.
fn ret_or_never(r: &Record) -> u64 {
    match r.outcome {
        Outcome::Ok | Outcome::Len(_) => r.ret_us.unwrap_or(u64::MAX),
        _ => u64::MAX,
    }
}

/// The operation the simulator's checker sees for `r`, if any (all on its key 0).
///
/// A write of unknown outcome that a read showed did take effect, and before that read
/// returned; its place in the value the read showed is its place when it took effect (nothing
/// removed it in between, or the read would not show it). So it becomes an operation that
/// returned when that read did, with that output: no linearization of the history is lost,
/// and the search no longer tries it everywhere after its invocation.
fn operation(r: &Record, sightings: &Sightings, anomalies: &mut Vec<String>) -> Option<Operation> {
    let class = KeyClass::of(&r.key);
    let limit = if r.kind == Kind::Set { set_value_bytes_max(&r.key) } else { VALUE_BYTES_MAX };
    if r.kind.is_write() && r.bytes > limit as u64 && r.outcome.is_ok() {
        anomalies.push(format!(
            "{}: a {}-byte {} past its {limit}-byte limit was acknowledged",
            r.key,
            r.bytes,
            r.kind.word()
        ));
    }
    if let Outcome::Value(v) = &r.outcome {
        if v.bytes > VALUE_BYTES_MAX as u64 {
            anomalies.push(format!(
                "{}: a read returned {} bytes, past the value limit",
                r.key, v.bytes
            ));
        }
    }
    let (op, out) = match (r.kind, &r.outcome) {
        (_, Outcome::Failed(_)) => return None,
        (Kind::Get, Outcome::Value(v)) => (Op::Get { key: 0 }, Some(Output::Value(v.fingerprint))),
        (Kind::Get, _) => return None,
        (Kind::Set, Outcome::Ok) => (Op::Put { key: 0, token: r.token }, Some(Output::Ok)),
        (Kind::Set, Outcome::Unknown(_)) => {
            let sighted = sighted(r, sightings).filter(|s| s.position == 1);
            let op = Op::Put { key: 0, token: r.token };
            let ret = sighted.map(|s| (s.ret_us, Output::Ok));
            return Some(checked_op(r, op, ret));
        }
        (Kind::Append, _) if class == KeyClass::Big => {
            if r.outcome.is_ok() {
                anomalies.push(format!(
                    "{}: an APPEND past the value limit was acknowledged ({:?})",
                    r.key, r.outcome
                ));
            }
            return None;
        }
        (Kind::Append, Outcome::Len(n)) if n.is_multiple_of(ELEMENT_BYTES as u64) => {
            let len = u32::try_from(n / ELEMENT_BYTES as u64).expect("lists stay short");
            (Op::Append { key: 0, token: r.token }, Some(Output::Len(len)))
        }
        (Kind::Append, Outcome::Len(n)) => {
            anomalies.push(format!("{}: APPEND answered length {n}, not whole elements", r.key));
            (Op::Append { key: 0, token: r.token }, None)
        }
        (Kind::Append, Outcome::Unknown(_)) => {
            let op = Op::Append { key: 0, token: r.token };
            let ret = sighted(r, sightings).map(|s| (s.ret_us, Output::Len(s.position)));
            return Some(checked_op(r, op, ret));
        }
        (kind, outcome) => {
            anomalies.push(format!("{}: {} answered {outcome:?}", r.key, kind.word()));
            return None;
        }
    };
    let ret = match (out, r.ret_us) {
        (Some(out), Some(t)) => Some((t, out)),
        _ => None,
    };
    Some(checked_op(r, op, ret))
}

/// The checker's operation for `r`: returned at a time with an output, or neither (it may
/// take effect any time after its call, or never).
fn checked_op(r: &Record, op: Op, ret: Option<(u64, Output)>) -> Operation {
    let (ret, output) = ret.map_or((None, None), |(t, out)| (Some(t), Some(out)));
    Operation { client: r.client, op, call: r.call_us, ret, output }
}

/// The first sighting of `r`'s token, if it was after `r` was invoked (one before is a
/// violation the search must find, so it is not used).
fn sighted(r: &Record, sightings: &Sightings) -> Option<Sighting> {
    sightings.get(&r.token).copied().filter(|s| s.ret_us >= r.call_us)
}

/// Checks one key's records for linearizability; also reports the anomalies the records
/// themselves show. Returns the number of operations checked.
///
/// A write whose outcome is unknown and whose token no read and no final value ever showed
/// is first left out: that is choosing "it had no effect", which the checker may choose
/// anyway, so a linearization without it is one of the whole history. When that finds no
/// linearization (such a write did take effect: a later APPEND's length counts it, before a
/// SET replaced it unseen), they are added a window of neighbours at a time (8, then 32), and
/// only then is the whole history searched: every unknown write multiplies the search, and a
/// replica that answers every request with an error at once makes hundreds. Every pass is a
/// linearization of the whole history; only the whole search reports a violation.
pub fn linearizable(
    key: &str,
    records: &[&Record],
    sightings: &Sightings,
    anomalies: &mut Vec<String>,
) -> KeyCheck {
    for r in records {
        if let Outcome::Corrupt(why) = &r.outcome {
            anomalies.push(format!("{key}: client {} read a value nobody wrote: {why}", r.client));
        }
    }
    let ops: Vec<(Operation, bool)> = records
        .iter()
        .filter_map(|r| {
            let op = operation(r, sightings, anomalies)?;
            let unseen = op.ret.is_none() && r.kind.is_write() && !sightings.contains_key(&r.token);
            Some((op, unseen))
        })
        .collect();
    let seen: Vec<Operation> =
        ops.iter().filter(|(_, unseen)| !unseen).map(|(op, _)| op.clone()).collect();
    let unseen: Vec<Operation> =
        ops.iter().filter(|(_, unseen)| *unseen).map(|(op, _)| op.clone()).collect();
    let operations = ops.len();
    let pass = KeyCheck { operations, result: Ok(()), pruned: None };
    let mut pruned = None;
    if !unseen.is_empty() {
        match linearizability::check(&seen) {
            Ok(()) => return pass,
            Err(v) => pruned = Some((unseen.len(), v)),
        }
    }
    // Some unknown write nobody saw did take effect (an APPEND's length counts it before a
    // SET replaced it). Try them a few neighbours at a time before the whole search.
    for size in UNSEEN_WINDOWS.into_iter().filter(|&size| unseen.len() > size) {
        for start in (0..unseen.len()).step_by(size / 2) {
            let window = &unseen[start..(start + size).min(unseen.len())];
            let ops: Vec<Operation> = seen.iter().chain(window).cloned().collect();
            if linearizability::check(&ops).is_ok() {
                return pass;
            }
        }
    }
    let all: Vec<Operation> = ops.into_iter().map(|(op, _)| op).collect();
    KeyCheck { operations, result: linearizability::check(&all), pruned }
}

/// How many unknown writes nobody saw (neighbours in invocation order) are tried at a time
/// before the whole search: windows of each size in turn, overlapping by half.
pub const UNSEEN_WINDOWS: [usize; 2] = [8, 32];

/// The linearizability verdict on one key.
#[derive(Debug, Clone)]
pub struct KeyCheck {
    /// Operations handed to the checker.
    pub operations: usize,
    /// The verdict on the whole history of the key.
    pub result: Result<(), Violation>,
    /// When unknown writes nobody saw were left out first and that found no linearization:
    /// how many, and why (where to look when the whole search gives up).
    pub pruned: Option<(usize, Violation)>,
}

/// The acknowledged writes of one key missing from `observed` (one replica's final value),
/// and the anomalies the value shows.
pub fn lost_writes(
    key: &str,
    records: &[&Record],
    replica: u32,
    observed: &Observed,
    lost: &mut Vec<String>,
    anomalies: &mut Vec<String>,
) {
    let writes: HashMap<u64, &Record> =
        records.iter().filter(|r| r.kind.is_write()).map(|r| (r.token, *r)).collect();
    let acked = records.iter().filter(|r| r.kind.is_write() && ret_or_never(r) < u64::MAX);
    let tokens: Vec<u64> = match observed {
        Observed::List(tokens) => tokens.clone(),
        Observed::Big(Some((token, bytes))) => {
            if *bytes > VALUE_BYTES_MAX as u64 {
                anomalies.push(format!(
                    "{key}: replica {replica} holds {bytes} bytes, past the value limit"
                ));
            }
            if let Some(w) = writes.get(token).filter(|w| w.bytes != *bytes) {
                anomalies.push(format!(
                    "{key}: replica {replica} holds {bytes} bytes for a SET of {} bytes",
                    w.bytes
                ));
            }
            vec![*token]
        }
        Observed::Big(None) => Vec::new(),
        Observed::Malformed(why) => {
            anomalies.push(format!("{key}: replica {replica} holds a value nobody wrote: {why}"));
            return;
        }
        Observed::Unread(_) => return,
    };
    for t in &tokens {
        match writes.get(t) {
            None => {
                anomalies.push(format!("{key}: replica {replica} holds token {t:x}, never written"))
            }
            Some(w) => {
                if let Outcome::Failed(why) = &w.outcome {
                    anomalies.push(format!(
                        "{key}: replica {replica} holds token {t:x} of a write refused with {why:?}"
                    ));
                }
            }
        }
    }
    let present: HashSet<u64> = tokens.iter().copied().collect();
    // Only the first element can be a SET that replaced earlier writes.
    let head_set = tokens.first().and_then(|t| writes.get(t)).filter(|w| w.kind == Kind::Set);
    let replaced_before = head_set.map_or(0, |h| ret_or_never(h));
    for w in acked {
        if present.contains(&w.token) || w.call_us < replaced_before {
            continue;
        }
        lost.push(format!(
            "{key}: replica {replica} lacks the acknowledged {} of token {:x} by client {} \
             (invoked at {:.3} s, acknowledged at {:.3} s)",
            w.kind.word(),
            w.token,
            w.client,
            w.call_us as f64 / 1e6,
            w.ret_us.unwrap_or(0) as f64 / 1e6,
        ));
    }
}

/// Checks a key's whole story: linearizability, lost writes and agreement at the end.
fn check_key(
    key: &str,
    records: &[&Record],
    finals: &[(u32, &Observed)],
    sightings: &Sightings,
    verdicts: &mut Verdicts,
) {
    verdicts.keys += 1;
    let KeyCheck { operations, result, pruned } =
        linearizable(key, records, sightings, &mut verdicts.anomalies);
    verdicts.operations += operations;
    let without = |pruned: &Option<(usize, Violation)>| match pruned {
        Some((n, v)) => format!("; without the {n} unknown writes no read showed: {v}"),
        None => String::new(),
    };
    match result {
        Ok(()) => {}
        Err(Violation::NotLinearizable { detail, operations, .. }) => verdicts
            .violations
            .push(format!("{key}: no linearization of its {operations} operations; {detail}")),
        Err(Violation::Undecided { operations, .. }) => verdicts.undecided.push(format!(
            "{key}: the search gave up over {operations} operations{}",
            without(&pruned)
        )),
    }
    for (replica, observed) in finals {
        if let Observed::Unread(why) = observed {
            verdicts.unverified.push(format!("{key}: replica {replica}'s final value: {why}"));
        }
        lost_writes(key, records, *replica, observed, &mut verdicts.lost, &mut verdicts.anomalies);
    }
    let read: Vec<&(u32, &Observed)> =
        finals.iter().filter(|(_, o)| !matches!(o, Observed::Unread(_))).collect();
    if read.windows(2).any(|w| w[0].1 != w[1].1) {
        let views: Vec<String> = read.iter().map(|(r, o)| format!("replica {r}: {o:?}")).collect();
        verdicts.anomalies.push(format!("{key}: replicas disagree: {}", views.join("; ")));
    }
}

/// Checks a whole run: `history` (final linearizable reads included), what each replica
/// held for each key at the end, and where reads first showed each token. Keys are checked on
/// up to `threads` threads.
pub fn check(
    history: &[Record],
    finals: &[(u32, String, Observed)],
    sightings: &Sightings,
    threads: usize,
) -> Verdicts {
    // The final values were read after every operation: a sighting at the end of the run.
    let end = history.iter().map(|r| r.ret_us.unwrap_or(r.call_us)).max().unwrap_or(0) + 1;
    let mut sightings = sightings.clone();
    for (_, _, o) in finals {
        match o {
            Observed::List(tokens) => sight(&mut sightings, tokens, end),
            Observed::Big(Some((token, _))) => sight(&mut sightings, &[*token], end),
            _ => {}
        }
    }
    let sightings = &sightings;
    let keys = by_key(history);
    let mut final_by_key: HashMap<&str, Vec<(u32, &Observed)>> = HashMap::new();
    for (replica, key, observed) in finals {
        final_by_key.entry(key.as_str()).or_default().push((*replica, observed));
    }
    let mut verdicts = Verdicts::default();
    for key in final_by_key.keys() {
        if !keys.contains_key(key) {
            verdicts.anomalies.push(format!("{key}: a final value of a key no client wrote"));
        }
    }
    let keys: Vec<(&str, Vec<&Record>)> = keys.into_iter().collect();
    let chunk = keys.len().div_ceil(threads.max(1)).max(1);
    let parts: Vec<Verdicts> = std::thread::scope(|scope| {
        let handles: Vec<_> = keys
            .chunks(chunk)
            .map(|part| {
                let final_by_key = &final_by_key;
                scope.spawn(move || {
                    let mut v = Verdicts::default();
                    for (key, records) in part {
                        let finals = final_by_key.get(key).map_or(&[][..], Vec::as_slice);
                        check_key(key, records, finals, sightings, &mut v);
                    }
                    v
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("a checker thread panicked")).collect()
    });
    for part in parts {
        verdicts.keys += part.keys;
        verdicts.operations += part.operations;
        verdicts.violations.extend(part.violations);
        verdicts.undecided.extend(part.undecided);
        verdicts.lost.extend(part.lost);
        verdicts.anomalies.extend(part.anomalies);
        verdicts.unverified.extend(part.unverified);
    }
    verdicts
}

/// A planted copy of one key's history.
#[derive(Debug, Clone)]
pub struct Plant {
    /// The key.
    pub key: String,
    /// Its records, with the planted lie.
    pub records: Vec<Record>,
    /// What was planted.
    pub what: String,
}

/// A client that reports a stale read: on the first list key where a client read `V0`, an
/// acknowledged write was invoked after that read returned, and a later read was invoked after
/// the write returned, the later read reports `V0`. No state after the write can equal `V0`
/// (nothing deletes a key, and `V0`'s first element was written before the write), so a
/// correct checker must reject it.
pub fn plant_stale_read(history: &[Record]) -> Option<Plant> {
    for (key, records) in by_key(history) {
        if KeyClass::of(key) != KeyClass::List {
            continue;
        }
        let reads: Vec<(usize, &Record)> = records
            .iter()
            .enumerate()
            .filter(|(_, r)| matches!(r.outcome, Outcome::Value(_)) && r.ret_us.is_some())
            .map(|(i, r)| (i, *r))
            .collect();
        for &(_, r0) in &reads {
            let r0_ret = r0.ret_us.expect("filtered");
            let Some(w) = records
                .iter()
                .filter(|w| w.kind.is_write() && w.call_us > r0_ret)
                .find(|w| ret_or_never(w) < u64::MAX)
            else {
                continue;
            };
            let w_ret = ret_or_never(w);
            let Some(&(i, r)) =
                reads.iter().find(|(_, r)| r.call_us > w_ret && r.outcome != r0.outcome)
            else {
                continue;
            };
            let mut planted: Vec<Record> = records.iter().map(|r| (*r).clone()).collect();
            planted[i].outcome = r0.outcome.clone();
            let what = format!(
                "client {} reports at {:.3} s the value client {} read at {:.3} s, though the {} of \
                 token {:x} was acknowledged in between",
                r.client,
                r.call_us as f64 / 1e6,
                r0.client,
                r0.call_us as f64 / 1e6,
                w.kind.word(),
                w.token,
            );
            return Some(Plant { key: key.to_string(), records: planted, what });
        }
    }
    None
}

/// A client that reports an acknowledged APPEND it never sent, on the first list key whose
/// final value (read from `observed`) does not start with a `SET` of unknown outcome; the
/// phantom is invoked after that `SET` returned, so nothing may have replaced it and the
/// lost-write check must report it.
pub fn plant_phantom_write(
    history: &[Record],
    finals: &[(u32, String, Observed)],
) -> Option<(Plant, u32, Observed)> {
    let keys = by_key(history);
    for (replica, key, observed) in finals {
        let (Some(records), Observed::List(tokens)) = (keys.get(key.as_str()), observed) else {
            continue;
        };
        let head = tokens.first().and_then(|t| records.iter().find(|r| r.token == *t));
        let after = match head {
            Some(h) if h.kind == Kind::Set => ret_or_never(h),
            _ => records[0].call_us,
        };
        if after == u64::MAX {
            continue;
        }
        let mut planted: Vec<Record> = records.iter().map(|r| (*r).clone()).collect();
        let len = (tokens.len() + 1) * ELEMENT_BYTES;
        let phantom = Record {
            client: u32::MAX,
            replica: *replica,
            kind: Kind::Append,
            key: key.clone(),
            token: u64::MAX,
            bytes: ELEMENT_BYTES as u64,
            call_us: after + 1,
            ret_us: Some(after + 2),
            outcome: Outcome::Len(len as u64),
        };
        planted.push(phantom);
        planted.sort_by_key(|r| (r.call_us, r.client));
        let what = format!(
            "a client reports an acknowledged APPEND of token {:x} to {key} at {:.3} s that it \
             never sent",
            u64::MAX,
            (after + 1) as f64 / 1e6
        );
        let plant = Plant { key: key.clone(), records: planted, what };
        return Some((plant, *replica, observed.clone()));
    }
    None
}

/// A read's value from its outcome (for tests and plants).
pub fn value_of(outcome: &Outcome) -> Option<Value> {
    match outcome {
        Outcome::Value(v) => Some(*v),
        _ => None,
    }
}

#[cfg(test)]
#[path = "check_tests.rs"]
mod tests;
