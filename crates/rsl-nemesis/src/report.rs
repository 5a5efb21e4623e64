//! The figures of a run: operations by outcome, the errors clients saw, faults by kind,
//! unavailability, the largest values, and the verdicts.
//!
//! **Unavailability** is measured on successful operations only: the longest interval in
//! which no operation completed successfully. Over the whole run (while the clients ran), and
//! for each fault over its window, from its start to the start of the next fault (so the
//! window holds the fault, its heal and the recovery after it). It is given for all
//! operations and for writes alone: an isolated primary may go on serving reads from its
//! lease while no write can commit, and a cluster whose disks are full should go on serving
//! reads. Also per fault: the time from its start to the completion of the first successful
//! write *invoked after* it started (a write already in flight may still succeed just after a
//! primary is paused, which says nothing about availability).

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

/// The completion times of the successful operations, sorted.
#[derive(Debug, Clone)]
pub struct Successes {
    rets: Vec<u64>,
    /// (call, ret) of every success, by call.
    by_call: Vec<(u64, u64)>,
    /// The earliest ret among `by_call[i..]`.
    suffix_min: Vec<u64>,
}

impl Successes {
    /// Indexes the successful operations of `history` that `include` selects.
    pub fn new(history: &[Record], include: impl Fn(&Record) -> bool) -> Successes {
        let mut by_call: Vec<(u64, u64)> = history
            .iter()
            .filter(|r| r.outcome.is_ok() && include(r))
            .filter_map(|r| Some((r.call_us, r.ret_us?)))
            .collect();
        by_call.sort_unstable();
        let mut suffix_min = vec![u64::MAX; by_call.len() + 1];
        for i in (0..by_call.len()).rev() {
            suffix_min[i] = suffix_min[i + 1].min(by_call[i].1);
        }
        let mut rets: Vec<u64> = by_call.iter().map(|&(_, ret)| ret).collect();
        rets.sort_unstable();
        Successes { rets, by_call, suffix_min }
    }

    /// When the first success invoked at or after `t` completed, if one did.
    pub fn first_after(&self, t: u64) -> Option<u64> {
        let i = self.by_call.partition_point(|&(call, _)| call < t);
        Some(self.suffix_min[i]).filter(|&ret| ret != u64::MAX)
    }

    /// The longest interval within `[from, to]` with no successful completion: (start, length).
    pub fn longest_gap(&self, from: u64, to: u64) -> (u64, u64) {
        let mut best = (from, 0);
        let mut last = from;
        let first = self.rets.partition_point(|&r| r < from);
        for &ret in self.rets[first..].iter().take_while(|&&r| r <= to) {
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
    /// The replicas' log files.
    pub logs: &'a [std::path::PathBuf],
}

/// Lines of the replicas' logs worth a reader's attention, counted by pattern.
pub const LOG_PATTERNS: [&str; 7] = [
    "panicked at",
    "storage failed",
    "rejected a message",
    "discarded a torn tail",
    "became primary",
    "the consensus thread was slow",
    "ran its ticks late",
];

fn replica_logs(out: &mut String, logs: &[std::path::PathBuf]) {
    let _ = writeln!(out, "\n== replica logs");
    for path in logs {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let name = path.file_name().map_or(String::new(), |n| n.to_string_lossy().into_owned());
        let counts: Vec<String> = LOG_PATTERNS
            .iter()
            .map(|p| (p, text.lines().filter(|l| l.contains(p)).collect::<Vec<_>>()))
            .filter(|(_, lines)| !lines.is_empty())
            .map(|(p, lines)| {
                let first: String = lines[0].chars().take(160).collect();
                format!("\n  {} x \"{p}\", first: {first}", lines.len())
            })
            .collect();
        let summary =
            if counts.is_empty() { " nothing notable".to_string() } else { counts.concat() };
        let _ = writeln!(out, "{name}:{summary}");
    }
}

/// The report as text.
pub fn render(i: &Inputs<'_>) -> String {
    let mut out = String::new();
    operations(&mut out, i.history);
    errors(&mut out, i.history);
    let all = Successes::new(i.history, |r| r.client < 1000);
    let writes = Successes::new(i.history, |r| r.client < 1000 && r.kind.is_write());
    faults(&mut out, i, &all, &writes);
    replica_logs(&mut out, i.logs);
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
    let _ =
        writeln!(out, "{:<8} {:>10} {:>10} {:>10} {:>10}", "", "ok", "failed", "unknown", "total");
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

fn faults(out: &mut String, i: &Inputs<'_>, all: &Successes, writes: &Successes) {
    let (from, to) = i.load;
    let _ = writeln!(out, "\n== availability");
    for (what, s) in [("", all), (" of writes", writes)] {
        let (gap_start, gap) = s.longest_gap(from, to);
        let during: Vec<&str> = i
            .faults
            .iter()
            .filter(|f| f.start_us <= gap_start + gap && f.heal_us.unwrap_or(u64::MAX) >= gap_start)
            .map(|f| f.kind.name())
            .collect();
        let _ = writeln!(
            out,
            "longest unavailability{what}: {} from {} (faults in force: {})",
            secs(gap),
            secs(gap_start),
            if during.is_empty() { "none".to_string() } else { during.join(", ") }
        );
    }
    let _ = writeln!(
        out,
        "\nlongest interval without a successful operation (all, writes) from each fault's start to the\n\
         next fault's; and from its start to the first successful write invoked after it\n\
         {:<20} {:>5} {:>22} {:>22} {:>22}",
        "fault", "count", "all: max (median)", "writes: max (median)", "1st write: max (median)"
    );
    for kind in FaultKind::ALL {
        let windows: Vec<(u64, u64)> = i
            .faults
            .iter()
            .enumerate()
            .filter(|(_, f)| f.kind == kind)
            .map(|(n, f)| (f.start_us, i.faults.get(n + 1).map_or(to, |next| next.start_us)))
            .collect();
        if windows.is_empty() {
            continue;
        }
        let cell = |gaps: Vec<u64>| {
            let max = gaps.iter().copied().max().unwrap_or(0);
            format!("{} ({})", secs(max), secs(median(gaps)))
        };
        let gaps = |s: &Successes| windows.iter().map(|&(a, b)| s.longest_gap(a, b).1).collect();
        // No write succeeding before the clients stopped counts as the rest of the run.
        let first = windows
            .iter()
            .map(|&(a, _)| writes.first_after(a).unwrap_or(to).saturating_sub(a))
            .collect();
        let _ = writeln!(
            out,
            "{:<20} {:>5} {:>22} {:>22} {:>22}",
            kind.name(),
            windows.len(),
            cell(gaps(all)),
            cell(gaps(writes)),
            cell(first)
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
    let _ = writeln!(
        out,
        "\n== the largest values (a SET of b0 carries at most {} bytes; a value is at most {})",
        crate::history::set_value_bytes_max("b0"),
        rsl_kv::limits::VALUE_BYTES_MAX
    );
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
    let _ =
        writeln!(out, "final values not read (safety unverified for them): {}", v.unverified.len());
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

    /// Successes ending at 10, 120, 210 and 300; a failure ending at 500; one unfinished.
    fn history() -> Vec<Record> {
        vec![
            op(0, Some(10), true),
            op(5, Some(120), true),
            op(60, Some(500), false),
            op(70, Some(300), true),
            op(200, Some(210), true),
            op(400, None, false),
        ]
    }

    #[test]
    fn unavailability_is_the_longest_interval_without_a_success() {
        let h = history();
        let s = Successes::new(&h, |_| true);
        assert_eq!(s.longest_gap(0, 1000), (300, 700), "nothing succeeded after 300");
        assert_eq!(s.longest_gap(0, 300), (10, 110));
        assert_eq!(s.longest_gap(130, 250), (130, 80), "clipped to the window");
        let none = Successes::new(&h, |r| r.call_us > 1000);
        assert_eq!(none.longest_gap(50, 60), (50, 10));
    }

    #[test]
    fn the_first_success_after_a_fault_is_one_invoked_after_it() {
        let h = history();
        let s = Successes::new(&h, |_| true);
        assert_eq!(s.first_after(0), Some(10));
        // The one invoked at 5 completed at 120, but was in flight when the fault began.
        assert_eq!(s.first_after(6), Some(210), "the earliest completion, not the earliest call");
        assert_eq!(s.first_after(200), Some(210));
        assert_eq!(s.first_after(201), None, "the failure and the unfinished one do not count");
    }

    #[test]
    fn error_texts_are_grouped_without_their_numbers() {
        assert_eq!(
            error_class("TRYAGAIN not primary; the primary is 10.213.0.2:6379"),
            "TRYAGAIN not primary; the primary is N.N.N.N:N"
        );
    }
}
