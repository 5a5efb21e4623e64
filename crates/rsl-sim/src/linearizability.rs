//! A linearizability checker for the key-value histories, in the style of Wing & Gong with
//! Lowe's memoisation (the algorithm Porcupine and Knossos use), written for this project.
//!
//! The history is split per key (operations on different keys commute, so a history is
//! linearizable iff each key's sub-history is). For each key the checker searches for a total
//! order that respects real time (an operation that returned before another was invoked comes
//! first) and the sequential semantics of [`Kv`](crate::kv::Kv). An *indeterminate* operation
//! (the client timed out) is given an infinite return time and accepts any output, so it may
//! take effect anywhere after its invocation or, by being ordered last, not at all.
//! Indeterminate reads are dropped: a read has no effect. An operation whose client gave up
//! but which the simulator knows took effect by some time (a replica executed it, or answered
//! it) carries that time as its return, with its output if a replica produced one: a write
//! executed anywhere must be visible to every operation invoked after it (see
//! `Sim::checked_history`), which bounds the search.
//!
//! **Dead states.** Appends whose output is unknown may take effect in any order, and each
//! order leaves a different list, so memoisation alone cannot merge them: fourteen such
//! appends racing on one key (seed 50000482 of the default swarm) are 14! states. When the
//! checker is told which values reads returned ([`Observed`]: each with all its prefixes),
//! a list that is a prefix of no observed value is *dead*: no read can ever see it or any
//! list grown from it by appends, so until a put replaces it only its length matters (to
//! the appends whose returned length is known). All dead lists of one length are therefore
//! one state, `State::Dead(len)`, and the search merges them. The abstraction is exact (a
//! history is accepted with it iff it is accepted without it): a read never matches a dead
//! state, an append's length check sees the same length, and a put forgets the list.
//!
//! **Reads first.** A read that may be linearized next and returned the current state is
//! linearized at once, with no alternative tried at that point (see `matching_read` for
//! why no linearization is lost). Without it, a search that placed racing writes before a
//! read of the old value explored every subset of those writes before the read's return
//! stopped it. Both prunings are checked against the plain search on random histories.

use std::collections::{HashMap, HashSet};

use crate::kv::{Fingerprint, Op, Output};

/// One client operation as observed by the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    pub client: u32,
    pub op: Op,
    /// When the client invoked it (simulated time).
    pub call: u64,
    /// When it returned, or the latest time it took effect; `None` if it may take effect
    /// any time after its call, or never.
    pub ret: Option<u64>,
    /// What it returned; `None` if unknown (any output is accepted).
    pub output: Option<Output>,
}

/// Why a history was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// No linearization exists for this key's operations.
    NotLinearizable { key: u8, operations: usize, detail: String },
    /// The search exceeded its budget (not a proof either way).
    Undecided { key: u8, operations: usize },
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Violation::NotLinearizable { key, operations, detail } => {
                write!(f, "key {key}: no linearization of its {operations} operations; {detail}")
            }
            Violation::Undecided { key, operations } => {
                write!(f, "key {key}: linearizability search over {operations} operations gave up")
            }
        }
    }
}

/// Search steps allowed per key before giving up (a give-up is a failure). Raised from 20
/// million on 2026-12-06: default seed 83121886 (195 operations on one key, 119 of them
/// indeterminate) gave up at 20 million and is linearizable, found in about 26 s within this
/// budget; the searches that gave up before (one seed in 50,000 to 100,000) cost a campaign
/// that much time instead of a false failure.
pub const SEARCH_STEPS_MAX: u64 = 1_000_000_000;

/// The memory the search's cache of visited nodes may take (estimated per entry: the set of
/// linearized operations and the state, with the table's overhead) before the search gives up
/// as on its step budget. Without it a search over thousands of operations with hundreds of
/// unknown writes on one key ran the nemesis's checker out of memory (24 GB, killed by the
/// kernel) long before its billion steps: now it reports the key undecided (a failure).
pub const SEARCH_CACHE_BYTES_MAX: usize = 2 << 30;

/// The budget the search's unit tests measure their prunings against (the budget they were
/// written for: their bounds are fractions of it).
#[cfg(test)]
pub(crate) const TEST_STEPS_MAX: u64 = 20_000_000;

/// Every value reads returned, as the set of the fingerprints of all its prefixes (the
/// empty list, its first token, its first two, ..., the whole value). The checker treats a
/// list outside this set as dead (see the module documentation).
#[derive(Debug, Clone, Default)]
pub struct Observed {
    prefixes: HashSet<Fingerprint>,
    /// The tokens of each value (by its fingerprint).
    values: HashMap<Fingerprint, Vec<u64>>,
}

impl Observed {
    pub fn new() -> Observed {
        Observed::default()
    }

    /// Records a value a read returned.
    pub fn add(&mut self, tokens: &[u64]) {
        let mut f = Fingerprint::EMPTY;
        self.prefixes.insert(f);
        for token in tokens {
            f = f.push(*token);
            self.prefixes.insert(f);
        }
        self.values.insert(f, tokens.to_vec());
    }

    fn contains(&self, f: Fingerprint) -> bool {
        self.prefixes.contains(&f)
    }
}

/// A key's state as the search tracks it: the list itself (by fingerprint), or only its
/// length once it is dead (no read can observe it or any list appends grow from it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum State {
    Live(Fingerprint),
    Dead(u32),
}

impl State {
    fn len(self) -> u32 {
        match self {
            State::Live(f) => f.len,
            State::Dead(len) => len,
        }
    }
}

/// The state holding the list `f`: dead if observations are known and no read returned a
/// value `f` is a prefix of. Without observations every list is tracked exactly.
fn canonical(f: Fingerprint, observed: Option<&Observed>) -> State {
    match observed {
        Some(o) if !o.contains(f) => State::Dead(f.len),
        _ => State::Live(f),
    }
}

/// The sequential specification: the state after `op`, if `output` is possible from `state`.
fn step(
    state: State,
    op: Op,
    output: Option<Output>,
    observed: Option<&Observed>,
) -> Option<State> {
    match (op, output) {
        (Op::Put { token, .. }, None | Some(Output::Ok)) => {
            Some(canonical(Fingerprint::EMPTY.push(token), observed))
        }
        (Op::Append { token, .. }, out) => {
            let len = state.len() + 1;
            if out.is_some_and(|o| o != Output::Len(len)) {
                return None;
            }
            Some(match state {
                State::Live(f) => canonical(f.push(token), observed),
                State::Dead(_) => State::Dead(len),
            })
        }
        (Op::Get { .. }, None) => Some(state),
        (Op::Get { .. }, Some(Output::Value(seen))) => {
            (state == State::Live(seen)).then_some(state)
        }
        _ => None,
    }
}

/// Checks the whole history, key by key, tracking every list exactly (for callers that do
/// not know the values reads returned, only their fingerprints).
pub fn check(history: &[Operation]) -> Result<(), Violation> {
    check_history(history, Search { observed: None, ..Search::FULL }).map(drop)
}

/// Checks the whole history, key by key, merging the lists no read observed
/// ([`Observed`] must hold every value a read in `history` returned). Accepts exactly the
/// histories [`check`] accepts, but finishes on races of appends whose outputs are unknown.
pub fn check_observed(history: &[Operation], observed: &Observed) -> Result<(), Violation> {
    for o in history {
        if let Some(Output::Value(seen)) = o.output {
            // A value missing from the observations would make its own read impossible.
            assert!(observed.contains(seen), "a read's value is not among the observations");
        }
    }
    check_history(history, Search { observed: Some(observed), ..Search::FULL }).map(drop)
}

#[path = "linearizability_text.rs"]
mod text;
pub use text::{parse_history, write_history};

/// How the search runs: the full checker, or (in tests) parts of it, to compare.
#[derive(Debug, Clone, Copy)]
struct Search<'a> {
    /// The values reads returned, if known: lists outside them are merged as dead.
    observed: Option<&'a Observed>,
    /// Take a read that returned the current state at once (see [`matching_read`]).
    greedy_reads: bool,
    /// Linearize interchangeable writes in the order of their intervals (see
    /// [`interchangeable_before`]); needs `observed`.
    interchangeable: bool,
    /// Backtrack at a write that loses a token a read returned (see [`lost`]); needs
    /// `observed`.
    lost_tokens: bool,
    /// Backtrack at a write after which a read not yet linearized can never see its value
    /// (see [`Reads`]); needs `observed`.
    reachable_reads: bool,
    /// Try the operations that may come next in the order of their returns, not of their
    /// calls (see [`Candidates`]).
    by_return: bool,
    steps_max: u64,
    /// [`SEARCH_CACHE_BYTES_MAX`], or less in its test.
    cache_bytes_max: usize,
}

impl Search<'_> {
    const FULL: Search<'static> = Search {
        observed: None,
        greedy_reads: true,
        interchangeable: true,
        lost_tokens: true,
        reachable_reads: true,
        by_return: true,
        steps_max: SEARCH_STEPS_MAX,
        cache_bytes_max: SEARCH_CACHE_BYTES_MAX,
    };
}

/// Checks `history` key by key; returns the search steps it took.
fn check_history(history: &[Operation], search: Search) -> Result<u64, Violation> {
    let mut keys: Vec<u8> = history.iter().map(|o| o.op.key()).collect();
    keys.sort_unstable();
    keys.dedup();
    let mut steps = 0;
    for key in keys {
        let ops: Vec<&Operation> = history
            .iter()
            .filter(|o| o.op.key() == key && (o.output.is_some() || o.op.is_write()))
            .collect();
        steps += check_key(key, &ops, search)?;
    }
    Ok(steps)
}

const NONE: usize = usize::MAX;

/// A node of the doubly linked list of call and return events.
#[derive(Debug, Clone)]
struct Node {
    op: usize,
    is_call: bool,
    /// For a call: the index of its return node.
    partner: usize,
    prev: usize,
    next: usize,
}

struct List {
    nodes: Vec<Node>,
}

impl List {
    /// Builds the list of events sorted by time; node 0 is the head sentinel.
    fn new(ops: &[&Operation]) -> List {
        let mut events: Vec<(u64, u8, usize)> = Vec::with_capacity(ops.len() * 2);
        for (i, o) in ops.iter().enumerate() {
            assert!(o.ret.is_none_or(|t| t >= o.call), "operation returns before its call");
            events.push((o.call, 0, i));
            events.push((o.ret.unwrap_or(u64::MAX), 1, i));
        }
        // Calls sort before returns at the same instant: such operations count as concurrent.
        events.sort_unstable();
        let mut nodes =
            vec![Node { op: NONE, is_call: false, partner: NONE, prev: NONE, next: NONE }];
        let mut call_node = vec![NONE; ops.len()];
        for (i, (_, kind, op)) in events.iter().enumerate() {
            let index = i + 1;
            nodes.push(Node { op: *op, is_call: *kind == 0, partner: NONE, prev: i, next: NONE });
            nodes[i].next = index;
            if *kind == 0 {
                call_node[*op] = index;
            } else {
                nodes[call_node[*op]].partner = index;
            }
        }
        List { nodes }
    }

    fn unlink(&mut self, n: usize) {
        let (prev, next) = (self.nodes[n].prev, self.nodes[n].next);
        self.nodes[prev].next = next;
        if next != NONE {
            self.nodes[next].prev = prev;
        }
    }

    fn relink(&mut self, n: usize) {
        let (prev, next) = (self.nodes[n].prev, self.nodes[n].next);
        self.nodes[prev].next = n;
        if next != NONE {
            self.nodes[next].prev = n;
        }
    }

    /// Removes a call and its return (the operation is linearized).
    fn lift(&mut self, call: usize) {
        self.unlink(call);
        self.unlink(self.nodes[call].partner);
    }

    /// Undoes `lift`, in reverse order.
    fn unlift(&mut self, call: usize) {
        self.relink(self.nodes[call].partner);
        self.relink(call);
    }
}

/// The tokens of the values the reads among `ops` returned: a write of one of them must
/// leave a live list (see [`lost`]).
fn read_tokens(ops: &[&Operation], observed: Option<&Observed>) -> HashSet<u64> {
    let Some(observed) = observed else { return HashSet::new() };
    let values = ops.iter().filter_map(|o| match o.output {
        Some(Output::Value(f)) => Some(f),
        _ => None,
    });
    values.flat_map(|f| observed.values.get(&f).into_iter().flatten().copied()).collect()
}

/// Whether writing `op` (leaving `next`) loses a token some read returned. **Lost tokens**:
/// a write that leaves a dead list can never be seen, nor can any list grown from it by
/// appends (each token is written once, so a list holding it grows from this one), and a put
/// forgets it; so if a read returned a value holding its token, that read can no longer be
/// linearized (nor could it before, its value holding a token not yet written), and the
/// search backtracks at once instead of finding out at that read, perhaps hundreds of
/// operations later (seed 70033596 of `--reconfig`: appends whose values later reads
/// returned, tried before a put that forgot them, gave up on the budget).
fn lost(op: Op, next: State, read_tokens: &HashSet<u64>) -> bool {
    let token = match op {
        Op::Put { token, .. } | Op::Append { token, .. } => token,
        Op::Get { .. } => return false,
    };
    matches!(next, State::Dead(_)) && read_tokens.contains(&token)
}

/// Writes that have the same effect on every state: puts, or appends with the same known
/// output (or none), whose tokens no read returned. With dead states such a write turns
/// every state into the same one (`Dead(1)` for a put, `Dead(len + 1)` for an append, or
/// no state when an append's known length does not fit), whichever its token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Interchangeable {
    Put,
    Append(Option<Output>),
}

impl Interchangeable {
    fn of(o: &Operation, read_tokens: &HashSet<u64>) -> Option<Interchangeable> {
        match o.op {
            Op::Put { token, .. } if !read_tokens.contains(&token) => {
                matches!(o.output, None | Some(Output::Ok)).then_some(Interchangeable::Put)
            }
            Op::Append { token, .. } if !read_tokens.contains(&token) => {
                Some(Interchangeable::Append(o.output))
            }
            _ => None,
        }
    }
}

/// For each operation, the interchangeable writes that must be linearized before it:
/// those of its class whose call and return are both no later than its own (the earlier
/// index first when the intervals are equal). This loses no linearization: if Y is
/// linearized before such an X, swapping the two keeps real-time order (X moves to an
/// earlier place, which its earlier call allows; Y to a later one, which its later return
/// allows) and every state (they have the same effect), and each such swap lowers the
/// number of pairs out of this order, so some linearization has none. A race of n such
/// writes whose intervals do not nest is then searched in one order instead of n!, and
/// its 2^n subsets shrink to n + 1 (seed 70033596 of `--reconfig`: 30 writes executed in
/// one burst after a long stall, which gave up on the budget).
fn interchangeable_before(ops: &[&Operation], read_tokens: &HashSet<u64>) -> Vec<Vec<usize>> {
    let mut before = vec![Vec::new(); ops.len()];
    let class: Vec<Option<Interchangeable>> =
        ops.iter().map(|o| Interchangeable::of(o, read_tokens)).collect();
    let ret = |o: &Operation| o.ret.unwrap_or(u64::MAX);
    for (y, b) in before.iter_mut().enumerate() {
        let Some(c) = class[y] else { continue };
        for x in (0..ops.len()).filter(|x| *x != y && class[*x] == Some(c)) {
            let (ox, oy) = (ops[x], ops[y]);
            let no_later = ox.call <= oy.call && ret(ox) <= ret(oy);
            let equal = ox.call == oy.call && ret(ox) == ret(oy);
            if no_later && (!equal || x < y) {
                b.push(x);
            }
        }
    }
    before
}

/// **Reachable reads.** Every read with a known value must be linearized where the list is
/// that value, and each token is written once, so a list can become a read's value `v` only
/// by growing from one of its prefixes with the appends of its remaining tokens, or from
/// nothing with the put of its first token and the appends of the rest. A write after which
/// some read not yet linearized can reach its value neither way, even with every write not
/// yet linearized available in any order, leaves a node with no linearization: the search
/// backtracks at once instead of finding out at that read's return, perhaps after every
/// subset of the writes racing with it (default seed 84814248: reads of an old list
/// returning after a burst of writes was called, whose clients waited out a stall, gave up
/// on a billion steps).
struct Reads {
    /// Each distinct value reads returned: its tokens, the fingerprints of its prefixes
    /// (`prefixes[i]` holds the first `i` tokens), and the reads that returned it.
    values: Vec<(Vec<u64>, Vec<Fingerprint>, Vec<usize>)>,
    /// The writes of each token: the operation and whether it is a put.
    writers: HashMap<u64, Vec<(usize, bool)>>,
}

impl Reads {
    fn new(ops: &[&Operation], observed: &Observed) -> Reads {
        let mut by_value: HashMap<Fingerprint, usize> = HashMap::new();
        let mut values: Vec<(Vec<u64>, Vec<Fingerprint>, Vec<usize>)> = Vec::new();
        let mut writers: HashMap<u64, Vec<(usize, bool)>> = HashMap::new();
        for (i, o) in ops.iter().enumerate() {
            match (o.op, o.output) {
                (Op::Put { token, .. }, _) => writers.entry(token).or_default().push((i, true)),
                (Op::Append { token, .. }, _) => writers.entry(token).or_default().push((i, false)),
                (Op::Get { .. }, Some(Output::Value(f))) => {
                    let v = *by_value.entry(f).or_insert_with(|| {
                        let tokens = observed.values[&f].clone();
                        let mut prefixes = vec![Fingerprint::EMPTY];
                        for t in &tokens {
                            prefixes.push(prefixes[prefixes.len() - 1].push(*t));
                        }
                        values.push((tokens, prefixes, Vec::new()));
                        values.len() - 1
                    });
                    values[v].2.push(i);
                }
                (Op::Get { .. }, _) => {}
            }
        }
        Reads { values, writers }
    }

    /// Whether every read not in `linearized` can still see its value from `state`, with the
    /// writes not in `linearized` (an over-approximation: their order is not checked).
    fn all_reachable(&self, state: State, linearized: &[u64]) -> bool {
        let done = |op: usize| linearized[op / 64] & (1 << (op % 64)) != 0;
        let available = |token: &u64, put: bool| {
            self.writers.get(token).is_some_and(|w| w.iter().any(|(op, p)| *p == put && !done(*op)))
        };
        self.values.iter().all(|(tokens, prefixes, reads)| {
            if reads.iter().all(|r| done(*r)) {
                return true;
            }
            let grows = match state {
                State::Live(f) => {
                    let n = f.len as usize;
                    n <= tokens.len()
                        && prefixes[n] == f
                        && tokens[n..].iter().all(|t| available(t, false))
                }
                State::Dead(_) => false,
            };
            grows
                || (!tokens.is_empty()
                    && available(&tokens[0], true)
                    && tokens[1..].iter().all(|t| available(t, false)))
        })
    }
}

/// **Returns first.** The order in which the search tries the operations that may be
/// linearized next (the calls before the list's first return): by call, as Wing & Gong's
/// list gives them, or by return (then by call). Either order tries every one of them, so
/// the verdict is the same; the order decides how soon a linearization is found. A write's
/// return is when it took effect at the latest (see `Sim::checked_history`), and the writes
/// of a burst took effect in their slots' order, so trying them by return follows the order
/// they executed in; by call, the search first tried every subset of a burst of writes
/// whose clients waited out a stall before the read that saw them (default seed 88066138:
/// 227 operations on one key, 113 writes whose outputs are known, gave up on a billion
/// steps).
#[derive(Clone, Copy)]
struct Candidates<'a> {
    /// Each operation's place in the order of returns, if the search goes by return.
    rank: Option<&'a [usize]>,
}

impl Candidates<'_> {
    /// The first operation to try at the current node: a call node, or the list's first
    /// return node if there is no call before it.
    fn first(self, list: &List) -> usize {
        match self.rank {
            None => list.nodes[0].next,
            Some(rank) => Self::least_above(list, rank, None),
        }
    }

    /// The operation to try after the call node `after` at the same node, or the list's first
    /// return node once every one was tried.
    fn next(self, list: &List, after: usize) -> usize {
        match self.rank {
            None => list.nodes[after].next,
            Some(rank) => Self::least_above(list, rank, Some(rank[list.nodes[after].op])),
        }
    }

    /// The call before the first return whose rank is the least above `floor`, or that
    /// first return node.
    fn least_above(list: &List, rank: &[usize], floor: Option<usize>) -> usize {
        let mut best: Option<(usize, usize)> = None;
        let mut n = list.nodes[0].next;
        while n != NONE && list.nodes[n].is_call {
            let r = rank[list.nodes[n].op];
            if floor.is_none_or(|f| r > f) && best.is_none_or(|(b, _)| r < b) {
                best = Some((r, n));
            }
            n = list.nodes[n].next;
        }
        best.map_or(n, |(_, node)| node)
    }
}

/// Each operation's place when sorted by return (an indeterminate one last), then by call.
fn return_ranks(ops: &[&Operation]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..ops.len()).collect();
    order.sort_by_key(|i| (ops[*i].ret.unwrap_or(u64::MAX), ops[*i].call, *i));
    let mut rank = vec![0; ops.len()];
    for (place, i) in order.into_iter().enumerate() {
        rank[i] = place;
    }
    rank
}

/// Searches for a linearization of one key's operations; returns the steps it took.
fn check_key(key: u8, ops: &[&Operation], search: Search) -> Result<u64, Violation> {
    let Search { observed, steps_max, cache_bytes_max, .. } = search;
    // Both prunings need dead states: without them every list is live.
    let read_tokens = read_tokens(ops, observed);
    let before = match search.interchangeable && observed.is_some() {
        true => interchangeable_before(ops, &read_tokens),
        false => vec![Vec::new(); ops.len()],
    };
    let lost_tokens = search.lost_tokens && observed.is_some();
    let reads = observed.filter(|_| search.reachable_reads).map(|o| Reads::new(ops, o));
    let mut list = List::new(ops);
    let ranks = search.by_return.then(|| return_ranks(ops));
    let candidates = Candidates { rank: ranks.as_deref() };
    let greedy_reads = search.greedy_reads;
    let words = ops.len().div_ceil(64);
    let mut linearized = vec![0u64; words];
    let mut cache: HashSet<(Vec<u64>, State)> = HashSet::new();
    let entry_bytes = words * 8 + std::mem::size_of::<(Vec<u64>, State)>() + 16;
    let cache_entries_max = cache_bytes_max / entry_bytes;
    // The moves taken: the call node linearized, the state before it, and whether it was
    // forced (a read taken first, whose node has no other move worth trying).
    let mut stack: Vec<(usize, State, bool)> = Vec::new();
    let mut state = State::Live(Fingerprint::EMPTY);
    let mut entry = candidates.first(&list);
    // Whether the search just reached a node (a set of linearized operations and a state)
    // and has not yet looked for a forced read there.
    let mut fresh = true;
    let mut steps = 0u64;
    let mut deepest = (0usize, NONE);
    while list.nodes[0].next != NONE {
        steps += 1;
        if steps > steps_max || cache.len() > cache_entries_max {
            return Err(Violation::Undecided { key, operations: ops.len() });
        }
        if std::mem::take(&mut fresh) && greedy_reads {
            if let Some(call) = matching_read(&list, ops, state) {
                let op = list.nodes[call].op;
                let (word, bit) = (op / 64, 1u64 << (op % 64));
                linearized[word] |= bit;
                if cache.insert((linearized.clone(), state)) {
                    stack.push((call, state, true));
                    list.lift(call);
                    entry = candidates.first(&list);
                    fresh = true;
                    continue;
                }
                // Seen before and failed: this node fails too.
                linearized[word] &= !bit;
                match backtrack(&mut list, &mut stack, &mut linearized, &mut state) {
                    Some(call) => entry = candidates.next(&list, call),
                    None => return Err(not_linearizable(key, ops, deepest)),
                }
                continue;
            }
        }
        let node = &list.nodes[entry];
        if node.is_call {
            let op = ops[node.op];
            // An interchangeable write waits for those that must come before it.
            let waits = before[node.op].iter().any(|x| linearized[x / 64] & (1 << (x % 64)) == 0);
            let loses = |next: &State| lost_tokens && lost(op.op, *next, &read_tokens);
            let next = step(state, op.op, op.output, observed).filter(|n| !waits && !loses(n));
            if let Some(next) = next {
                let (word, bit) = (node.op / 64, 1u64 << (node.op % 64));
                linearized[word] |= bit;
                let strands = |reads: &Reads| !reads.all_reachable(next, &linearized);
                let strands = op.op.is_write() && reads.as_ref().is_some_and(strands);
                if !strands && cache.insert((linearized.clone(), next)) {
                    stack.push((entry, state, false));
                    state = next;
                    list.lift(entry);
                    entry = candidates.first(&list);
                    fresh = true;
                    continue;
                }
                linearized[word] &= !bit;
            }
            entry = candidates.next(&list, entry);
        } else {
            // A return event: every operation that must precede it has been tried. Backtrack.
            if stack.len() >= deepest.0 {
                deepest = (stack.len(), node.op);
            }
            match backtrack(&mut list, &mut stack, &mut linearized, &mut state) {
                Some(call) => entry = candidates.next(&list, call),
                None => return Err(not_linearizable(key, ops, deepest)),
            }
        }
    }
    Ok(steps)
}

/// Undoes moves until one that was not forced, and returns its call node (the search tries
/// the next one after it there), or `None` if the search is exhausted.
fn backtrack(
    list: &mut List,
    stack: &mut Vec<(usize, State, bool)>,
    linearized: &mut [u64],
    state: &mut State,
) -> Option<usize> {
    loop {
        let (call, previous, forced) = stack.pop()?;
        let op = list.nodes[call].op;
        linearized[op / 64] &= !(1u64 << (op % 64));
        *state = previous;
        list.unlift(call);
        if !forced {
            return Some(call);
        }
    }
}

/// A read among the operations that may be linearized next (the calls before the first
/// return of the list) that returned the current state, if any. Linearizing it first loses
/// no linearization, so the search takes it and tries nothing else at this node: take any
/// linearization from here and move the read to its front. The read still sees what it
/// returned (the current state); every other operation sees what it saw (a read changes
/// nothing); and real-time order still holds, since no pending operation returned before
/// the read was called (its call precedes the list's first return), so none had to precede
/// it. The order in which the search tries the other operations is unchanged.
fn matching_read(list: &List, ops: &[&Operation], state: State) -> Option<usize> {
    let State::Live(current) = state else { return None };
    let mut n = list.nodes[0].next;
    while n != NONE && list.nodes[n].is_call {
        let o = ops[list.nodes[n].op];
        if matches!(o.op, Op::Get { .. }) && o.output == Some(Output::Value(current)) {
            return Some(n);
        }
        n = list.nodes[n].next;
    }
    None
}

fn not_linearizable(key: u8, ops: &[&Operation], deepest: (usize, usize)) -> Violation {
    let (depth, op) = deepest;
    let stuck = ops.get(op).map_or_else(String::new, |o| {
        format!(
            "at best {depth} operations linearized before client {} {:?} (called {}, returned {:?} {:?}) had to return",
            o.client, o.op, o.call, o.ret, o.output
        )
    });
    Violation::NotLinearizable { key, operations: ops.len(), detail: stuck }
}

#[cfg(test)]
#[path = "linearizability_search_tests.rs"]
mod search_tests;

#[cfg(test)]
#[path = "linearizability_tests.rs"]
mod tests;
