//! The figures of a run: operations by outcome, the errors clients saw, faults by kind,
//! unavailability, the largest values, and the verdicts.
//!
//! **Unavailability** is measured on successful operations only. The longest unavailability
//! is the longest interval, while the clients ran, in which no operation completed
//! successfully. The unavailability after a fault is the time from the fault's start to the
//! completion of the first successful operation *invoked after* the fault started (an
//! operation already in flight may still succeed just after a primary is paused, which says
//! nothing about availability); likewise after its heal, for recovery.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::check::Verdicts;
use crate::cluster::UnexpectedExit;
use crate::faults::{FaultEvent, FaultKind};
use crate::history::{KeyClass, Kind, Outcome, Record};

/// Whether a planted lie was caught.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlantResult {
    /// The checker named rejected it.
    Caught(String),
    /// It passed the checkers: the checkers are broken.
    Missed(String),
    /// The history had no place for it (too short).
    NotTried,
}

/// Answers "when did the first successful operation invoked at or after `t` complete?".
#[derive(Debug, Clone)]
pub struct Successes {
    /// (call, ret) of every successful operation, by call.
    by_call: Vec<(u64, u64)>,
    /// The earliest ret among `by_call[i..]`.
    suffix_min: Vec<u64>,
    /// Every successful completion, sorted.
    rets: Vec<u64>,
}

impl Successes {
    /// Indexes the successful operations of `history`.
    pub fn new(history: &[Record]) -> Successes {
        let mut by_call: Vec<(u64, u64)> = history
            .iter()
            .filter(|r| r.outcome.is_ok())
            .filter_map(|r| Some((r.call_us, r.ret_us?)))
            .collect();
        by_call.sort_unstable();
        let mut suffix_min = vec![u64::MAX; by_call.len() + 1];
        for i in (0..by_call.len()).rev() {
            suffix_min[i] = suffix_min[i + 1].min(by_call[i].1);
        }
        let mut rets: Vec<u64> = by_call.iter().map(|&(_, r)| r).collect();
        rets.sort_unstable();
        Successes { by_call, suffix_min, rets }
    }

    /// The completion of the first successful operation invoked at or after `t`.
    pub fn first_after(&self, t: u64) -> Option<u64> {
        let i = self.by_call.partition_point(|&(call, _)| call < t);
        let ret = self.suffix_min[i];
        (ret != u64::MAX).then_some(ret)
    }

    /// The longest interval within `[from, to]` with no successful completion: (start, length).
    pub fn longest_gap(&self, from: u64, to: u64) -> (u64, u64) {
        let mut best = (from, 0);
        let mut last = from;
        for &ret in self.rets.iter().filter(|&&r| r >= from && r <= to) {
            if ret - last > best.1 {
                best = (last, ret - last);
            }
            last = ret;
        }
        if to.saturating_sub(last) > best.1 {
            best = (last, to - last);
        }
        best
    }
}

fn secs(us: u64) -> String {
    format!("{:.2} s", us as f64 / 1e6)
}

/// An error text with numbers and addresses taken out, so that the same error counts once.
fn error_class(text: &str) -> String {
    let mut out = String::new();
    let mut last_digit = false;
    for c in text.chars().take(80) {
        if c.is_ascii_digit() {
            if !last_digit {
                out.push('N');
            }
            last_digit = true;
        } else {
            last_digit = false;
            out.push(c);
        }
    }
    out
}

/// Everything the report needs.
#[derive(Debug)]
pub struct Inputs<'a> {
    /// The history, final reads included.
    pub history: &'a [Record],
    /// When the clients started and stopped.
    pub load: (u64, u64),
    /// The faults.
    pub faults: &'a [FaultEvent],
    /// Replica processes that ended by themselves.
    pub exits: &'a [UnexpectedExit],
    /// Every change of primary the replicas reported, in order: (µs, new primary).
    pub primaries: &'a [(u64, u32)],
    /// The verdicts.
    pub verdicts: &'a Verdicts,
    /// The planted lies.
    pub plants: &'a [(String, PlantResult)],
    /// Notes from the final phase (replicas restarted to recover, and so on).
    pub notes: &'a [String],
}

/// The report as text.
pub fn render(i: &Inputs<'_>) -> String {
    let mut out = String::new();
    operations(&mut out, i.history);
    errors(&mut out, i.history);
    let load: Vec<Record> = i.history.iter().filter(|r| r.client < 1000).cloned().collect();
    let successes = Successes::new(&load);
    faults(&mut out, i, &successes);
    big_values(&mut out, i.history);
    let _ = writeln!(out, "\n== events");
    let _ = writeln!(out, "primary changes reported: {}", i.primaries.len());
    for e in i.exits {
        let _ = writeln!(
            out,
            "replica {} exited by itself at {} ({}); its log ends:\n  {}",
            e.id,
            secs(e.at_us),
            e.status,
            e.log_tail.replace('\n', "\n  ")
        );
    }
    for note in i.notes {
        let _ = writeln!(out, "{note}");
    }
    verdicts(&mut out, i);
    out
}

fn operations(out: &mut String, history: &[Record]) {
    let _ = writeln!(out, "== operations");
    let mut rows: BTreeMap<&str, [u64; 3]> = BTreeMap::new();
    for r in history {
        let row = rows.entry(r.kind.word()).or_default();
        match r.outcome {
            Outcome::Ok | Outcome::Len(_) | Outcome::Value(_) | Outcome::Corrupt(_) => row[0] += 1,
            Outcome::Failed(_) => row[1] += 1,
            Outcome::Unknown(_) => row[2] += 1,
        }
    }
    let total = rows.values().fold([0; 3], |a, r| [a[0] + r[0], a[1] + r[1], a[2] + r[2]]);
    let _ = writeln!(out, "{:<8} {:>10} {:>10} {:>10} {:>10}", "", "ok", "failed", "unknown", "total");
    for (kind, r) in rows.iter().chain([(&"all", &total)]) {
        let sum: u64 = r.iter().sum();
        let _ = writeln!(out, "{kind:<8} {:>10} {:>10} {:>10} {sum:>10}", r[0], r[1], r[2]);
    }
}

fn errors(out: &mut String, history: &[Record]) {
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for r in history {
        if let Outcome::Failed(t) | Outcome::Unknown(t) = &r.outcome {
            let class = if matches!(r.outcome, Outcome::Failed(_)) { "failed" } else { "unknown" };
            *counts.entry(format!("{class}: {}", error_class(t))).or_default() += 1;
        }
    }
    let mut counts: Vec<(String, u64)> = counts.into_iter().collect();
    counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let _ = writeln!(out, "\n== errors clients saw (most frequent first)");
    for (text, n) in counts.iter().take(12) {
        let _ = writeln!(out, "{n:>9}  {text}");
    }
}

fn median(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

fn faults(out: &mut String, i: &Inputs<'_>, s: &Successes) {
    let (from, to) = i.load;
    let (gap_start, gap) = s.longest_gap(from, to);
    let during: Vec<&str> = i
        .faults
        .iter()
        .filter(|f| f.start_us <= gap_start + gap && f.heal_us.unwrap_or(u64::MAX) >= gap_start)
        .map(|f| f.kind.name())
        .collect();
    let _ = writeln!(out, "\n== availability");
    let _ = writeln!(
        out,
        "longest unavailability: {} from {} (faults in force or just healed: {})",
        secs(gap),
        secs(gap_start),
        if during.is_empty() { "none".to_string() } else { during.join(", ") }
    );
    let _ = writeln!(
        out,
        "\n{:<20} {:>5} {:>22} {:>22}",
        "fault", "count", "unavailable max (med)", "after heal max (med)"
    );
    for kind in FaultKind::ALL {
        let events: Vec<&FaultEvent> = i.faults.iter().filter(|f| f.kind == kind).collect();
        if events.is_empty() {
            continue;
        }
        let wait = |t: u64| s.first_after(t).map_or(to.saturating_sub(t), |r| r - t);
        let after: Vec<u64> = events.iter().map(|f| wait(f.start_us)).collect();
        let healed: Vec<u64> = events.iter().filter_map(|f| f.heal_us).map(wait).collect();
        let cell = |v: &Vec<u64>| {
            let max = v.iter().copied().max().unwrap_or(0);
            format!("{} ({})", secs(max), secs(median(v.clone())))
        };
        let _ = writeln!(
            out,
            "{:<20} {:>5} {:>22} {:>22}",
            kind.name(),
            events.len(),
            cell(&after),
            cell(&healed)
        );
    }
}

fn big_values(out: &mut String, history: &[Record]) {
    let big: Vec<&Record> = history
        .iter()
        .filter(|r| KeyClass::of(&r.key) == KeyClass::Big && r.client < 1000)
        .collect();
    if big.is_empty() {
        return;
    }
    let _ = writeln!(out, "\n== the largest values (limit {} bytes)", rsl_kv::limits::VALUE_BYTES_MAX);
    for r in big {
        let took = r.ret_us.map_or("-".to_string(), |t| secs(t - r.call_us));
        let what = match (r.kind, &r.outcome) {
            (Kind::Get, Outcome::Value(v)) => format!("read {} bytes", v.bytes),
            (_, Outcome::Ok) => "OK".to_string(),
            (_, o) => format!("{o:?}"),
        };
        let size = if r.kind.is_write() { format!(" {} B", r.bytes) } else { String::new() };
        let _ = writeln!(
            out,
            "{:>10} {} {}{size} via replica {}: {what} in {took}",
            secs(r.call_us),
            r.key,
            r.kind.word(),
            r.replica
        );
    }
}

fn verdicts(out: &mut String, i: &Inputs<'_>) {
    let v = i.verdicts;
    let _ = writeln!(out, "\n== verdicts");
    let _ = writeln!(
        out,
        "linearizability: {} keys, {} operations checked: {} violations, {} undecided",
        v.keys,
        v.operations,
        v.violations.len(),
        v.undecided.len()
    );
    let _ = writeln!(out, "lost acknowledged writes: {}", v.lost.len());
    let _ = writeln!(out, "anomalies: {}", v.anomalies.len());
    let _ = writeln!(out, "final values not read (safety unverified for them): {}", v.unverified.len());
    for (title, items) in [
        ("violation", &v.violations),
        ("undecided", &v.undecided),
        ("lost", &v.lost),
        ("anomaly", &v.anomalies),
        ("unverified", &v.unverified),
    ] {
        for item in items.iter().take(10) {
            let _ = writeln!(out, "  {title}: {item}");
        }
        if items.len() > 10 {
            let _ = writeln!(out, "  ... and {} more", items.len() - 10);
        }
    }
    for (what, result) in i.plants {
        let text = match result {
            PlantResult::Caught(by) => format!("caught by {by}"),
            PlantResult::Missed(why) => format!("MISSED: {why}"),
            PlantResult::NotTried => "not tried (no place for it in this history)".into(),
        };
        let _ = writeln!(out, "planted {what}: {text}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Value;

    fn op(call: u64, ret: Option<u64>, ok: bool) -> Record {
        Record {
            client: 1,
            replica: 1,
            kind: Kind::Get,
            key: "n0.0".into(),
            token: 0,
            bytes: 0,
            call_us: call,
            ret_us: ret,
            outcome: if ok { Outcome::Value(Value::EMPTY) } else { Outcome::Unknown("x".into()) },
        }
    }

    #[test]
    fn unavailability_counts_only_successes_invoked_after_the_fault() {
        let h = vec![
            op(0, Some(10), true),
            op(5, Some(120), true), // in flight at the fault: does not count after 50
            op(60, Some(500), false),
            op(70, Some(300), true),
            op(200, Some(210), true),
            op(400, None, false),
        ];
        let s = Successes::new(&h);
        assert_eq!(s.first_after(50), Some(210), "the op invoked at 200 completes first");
        assert_eq!(s.first_after(0), Some(10));
        assert_eq!(s.first_after(201), None);
        assert_eq!(s.longest_gap(0, 1000), (300, 700), "nothing succeeded after 300");
        assert_eq!(s.longest_gap(0, 300), (10, 110));
    }

    #[test]
    fn error_texts_are_grouped_without_their_numbers() {
        assert_eq!(
            error_class("TRYAGAIN not primary; the primary is 10.213.0.2:6379"),
            "TRYAGAIN not primary; the primary is N.N.N.N:N"
        );
    }
}
