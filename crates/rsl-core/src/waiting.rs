//! The driver's waiting callers, kept in the order their ids were counted out.
//!
//! The driver numbers its proposals and reads with a counter that only goes up, and the core
//! answers them nearly in that order (a primary fills slots in the order it took requests;
//! refusals come in bulk). So the callers sit in a ring indexed by `seq - base`: taking a
//! caller is a push at the back, answering one is an index, and the answered ones at the front
//! are popped. No hashing, no probing, no rehash as the number waiting grows, where a hash map
//! keyed by id spent a tenth of a busy primary's consensus thread (docs/benchmarks.md).
//!
//! The cost of the shape: an old caller still waiting keeps the ring from shrinking past it,
//! one empty cell (`Option<T>`) for each caller answered after it. The core answers every
//! proposal and read it takes (the driver's contract), so the pin lasts as long as the
//! oldest answer does.

use std::collections::VecDeque;

/// Callers keyed by a sequence number that the owner counts out in ascending order.
#[derive(Debug)]
pub(crate) struct Waiting<T> {
    /// The sequence number of `cells[0]`.
    base: u64,
    cells: VecDeque<Option<T>>,
    /// How many cells hold a caller.
    len: usize,
}

impl<T> Default for Waiting<T> {
    fn default() -> Self {
        Waiting { base: 0, cells: VecDeque::new(), len: 0 }
    }
}

impl<T> Waiting<T> {
    /// Takes `caller` under `seq`, which must be above every seq taken before. Returns false
    /// (and takes nothing) when it is not.
    pub(crate) fn insert(&mut self, seq: u64, caller: T) -> bool {
        if self.cells.is_empty() {
            if seq < self.base {
                return false;
            }
            self.base = seq;
        }
        let Some(gap) = seq.checked_sub(self.base + self.cells.len() as u64) else {
            return false;
        };
        // Counted-out ids arrive one after another; a gap (ids taken elsewhere) is filled
        // with empty cells.
        for _ in 0..gap {
            self.cells.push_back(None);
        }
        self.cells.push_back(Some(caller));
        self.len += 1;
        true
    }

    /// Takes out the caller waiting under `seq`, if any.
    pub(crate) fn remove(&mut self, seq: u64) -> Option<T> {
        let index = usize::try_from(seq.checked_sub(self.base)?).ok()?;
        let caller = self.cells.get_mut(index)?.take()?;
        self.len -= 1;
        while let Some(None) = self.cells.front() {
            self.cells.pop_front();
            self.base += 1;
        }
        Some(caller)
    }

    /// How many callers wait.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Takes out every caller, oldest first.
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = T> + '_ {
        self.base += self.cells.len() as u64;
        self.len = 0;
        self.cells.drain(..).flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::Waiting;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    #[derive(Debug, Clone)]
    enum Op {
        /// Take a caller under the next id, this many ids past the last one taken.
        Insert(u8),
        /// Answer the id this far (modulo) into the ids taken so far, oldest first.
        Remove(u16),
        /// Answer an id never taken.
        RemoveUnknown(u16),
        Drain,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (0u8..3).prop_map(Op::Insert),
            5 => any::<u16>().prop_map(Op::Remove),
            1 => any::<u16>().prop_map(Op::RemoveUnknown),
            1 => Just(Op::Drain),
        ]
    }

    proptest! {
        /// The ring answers as a map keyed by id would, whatever the order of answers.
        #[test]
        fn the_ring_answers_as_a_map_would(ops in proptest::collection::vec(op(), 0..400)) {
            let mut ring = Waiting::default();
            let mut model = BTreeMap::new();
            let mut taken: Vec<u64> = Vec::new();
            let mut next = 1u64;
            for op in ops {
                match op {
                    Op::Insert(skip) => {
                        next += u64::from(skip);
                        prop_assert!(ring.insert(next, next * 10));
                        model.insert(next, next * 10);
                        taken.push(next);
                        next += 1;
                        // An id at or below one taken before is refused and changes nothing.
                        prop_assert!(!ring.insert(next - 1, 0));
                    }
                    Op::Remove(at) if !taken.is_empty() => {
                        let seq = taken[usize::from(at) % taken.len()];
                        prop_assert_eq!(ring.remove(seq), model.remove(&seq));
                    }
                    Op::Remove(_) => {}
                    Op::RemoveUnknown(at) => {
                        let seq = next + u64::from(at);
                        prop_assert_eq!(ring.remove(seq), None);
                    }
                    Op::Drain => {
                        let got: Vec<u64> = ring.drain().collect();
                        let want: Vec<u64> = std::mem::take(&mut model).into_values().collect();
                        prop_assert_eq!(got, want);
                    }
                }
                prop_assert_eq!(ring.len(), model.len());
                // Answered ids at the front are let go: the ring holds no more cells than the
                // span from the oldest caller waiting to the newest id taken.
                let span = match (model.keys().next(), taken.last()) {
                    (Some(first), Some(last)) => (last - first + 1) as usize,
                    _ => 0,
                };
                prop_assert!(ring.cells.len() <= span, "{} cells for a span of {span}", ring.cells.len());
            }
        }
    }
}
