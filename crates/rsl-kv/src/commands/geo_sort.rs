//! The order in which Redis sorts a search's results when COUNT keeps fewer than it found:
//! its partial quicksort (`pqsort`, a Bentley-McIlroy quicksort that only recurses into the
//! parts holding the first `count` positions), rewritten here from its description. Members at
//! equal distances come out in the order this algorithm leaves them, which a stable sort does
//! not reproduce; a full sort is glibc's `qsort`, a stable merge sort, so `sort_by` matches it.

use std::cmp::Ordering;

/// Sorts `v` so that its first `keep` items are the ones, and in the order, that Redis's
/// `pqsort(v, len, cmp, 0, keep - 1)` leaves there.
pub(super) fn partial_sort<T>(v: &mut [T], keep: usize, cmp: &dyn Fn(&T, &T) -> Ordering) {
    assert!(keep >= 1 && keep <= v.len(), "a partial sort keeps 1 to len items");
    let len = v.len();
    sort_part(v, 0, len, cmp, 0, keep - 1);
}

/// The median of three positions, as `med3` picks it.
fn median<T>(v: &[T], a: usize, b: usize, c: usize, cmp: &dyn Fn(&T, &T) -> Ordering) -> usize {
    let less = |x: usize, y: usize| cmp(&v[x], &v[y]) == Ordering::Less;
    let greater = |x: usize, y: usize| cmp(&v[x], &v[y]) == Ordering::Greater;
    if less(a, b) {
        if less(b, c) {
            b
        } else if less(a, c) {
            c
        } else {
            a
        }
    } else if greater(b, c) {
        b
    } else if less(a, c) {
        a
    } else {
        c
    }
}

fn insertion<T>(v: &mut [T], a: usize, n: usize, cmp: &dyn Fn(&T, &T) -> Ordering) {
    for m in a + 1..a + n {
        let mut l = m;
        while l > a && cmp(&v[l - 1], &v[l]) == Ordering::Greater {
            v.swap(l, l - 1);
            l -= 1;
        }
    }
}

/// Whether the part `[a, a + n)` holds any of the positions `first..=last`.
fn overlaps(a: usize, n: usize, first: usize, last: usize) -> bool {
    !((first < a && last < a) || (first >= a + n && last >= a + n))
}

/// Sorts the part of `n` items at `a`, recursing only into parts that overlap `first..=last`.
fn sort_part<T>(
    v: &mut [T],
    mut a: usize,
    mut n: usize,
    cmp: &dyn Fn(&T, &T) -> Ordering,
    first: usize,
    last: usize,
) {
    loop {
        if n < 7 {
            insertion(v, a, n, cmp);
            return;
        }
        let mut pm = a + n / 2;
        if n > 7 {
            let (mut pl, mut pn) = (a, a + n - 1);
            if n > 40 {
                let d = n / 8;
                pl = median(v, pl, pl + d, pl + 2 * d, cmp);
                pm = median(v, pm - d, pm, pm + d, cmp);
                pn = median(v, pn - 2 * d, pn - d, pn, cmp);
            }
            pm = median(v, pl, pm, pn, cmp);
        }
        v.swap(a, pm);
        // Three-way partition around v[a]: equal items gather at both ends, then move to the
        // middle.
        let (mut pa, mut pb) = (a + 1, a + 1);
        let (mut pc, mut pd) = (a + n - 1, a + n - 1);
        let mut swapped = false;
        loop {
            while pb <= pc {
                match cmp(&v[pb], &v[a]) {
                    Ordering::Greater => break,
                    Ordering::Equal => {
                        swapped = true;
                        v.swap(pa, pb);
                        pa += 1;
                    }
                    Ordering::Less => {}
                }
                pb += 1;
            }
            while pb <= pc {
                match cmp(&v[pc], &v[a]) {
                    Ordering::Less => break,
                    Ordering::Equal => {
                        swapped = true;
                        v.swap(pc, pd);
                        pd -= 1;
                    }
                    Ordering::Greater => {}
                }
                pc -= 1;
            }
            if pb > pc {
                break;
            }
            v.swap(pb, pc);
            swapped = true;
            pb += 1;
            pc -= 1;
        }
        if !swapped {
            // Nothing moved: the part is taken to be nearly sorted.
            insertion(v, a, n, cmp);
            return;
        }
        let pn = a + n;
        let r = (pa - a).min(pb - pa);
        swap_runs(v, a, pb - r, r);
        let r = (pd - pc).min(pn - pd - 1);
        swap_runs(v, pb, pn - r, r);
        let r = pb - pa;
        if r > 1 && overlaps(a, r, first, last) {
            sort_part(v, a, r, cmp, first, last);
        }
        let r = pd - pc;
        if r <= 1 {
            return;
        }
        (a, n) = (pn - r, r);
        if !overlaps(a, n, first, last) {
            return;
        }
    }
}

/// Swaps the `n` items at `x` with the `n` items at `y`, pairwise.
fn swap_runs<T>(v: &mut [T], x: usize, y: usize, n: usize) {
    for i in 0..n {
        v.swap(x + i, y + i);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kept_items_are_the_smallest_in_order() {
        let mut seed = 7u64;
        for len in 1..200 {
            for keep in [1, len / 3 + 1, len] {
                let mut v: Vec<u64> = (0..len)
                    .map(|_| {
                        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                        (seed >> 33) % 50
                    })
                    .collect();
                let mut sorted = v.clone();
                sorted.sort();
                partial_sort(&mut v, keep, &|a: &u64, b: &u64| a.cmp(b));
                assert_eq!(v[..keep], sorted[..keep], "len {len} keep {keep}");
            }
        }
    }

    /// Ties: items equal by the comparison come out as Redis's pqsort leaves them, not in
    /// their first order (redis-server 7.0.15: GEOSEARCH ... COUNT over members at one
    /// position).
    #[test]
    fn equal_items_are_not_kept_in_order() {
        let mut v: Vec<(u8, usize)> = (0..10).map(|i| (0, i)).collect();
        partial_sort(&mut v, 5, &|a: &(u8, usize), b: &(u8, usize)| a.0.cmp(&b.0));
        let order: Vec<usize> = v.iter().map(|x| x.1).collect();
        assert_ne!(order, (0..10).collect::<Vec<_>>());
    }
}
