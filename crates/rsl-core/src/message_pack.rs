//! Packing list items into messages: a message the core builds stays within
//! `Config::message_bytes_max` however many items it carries.

use crate::limits::{LIST_LEN_BYTES_MAX, MESSAGE_HEADER_BYTES_MAX, WIRE_ITEMS_MAX};

/// Fills one message with list items, up to the message's byte limit and a count limit, so
/// that no message the core builds is larger than `Config::message_bytes_max`. The first item
/// always goes in: with consistent limits it fits (`Config::validate`); a value written under
/// larger limits than the current ones is sent alone, and a transport with the smaller frame
/// refuses it (docs/limits.md).
#[derive(Debug)]
pub(crate) struct Packer {
    left: usize,
    count: usize,
    count_max: usize,
}

impl Packer {
    /// A message of at most `message_bytes_max` bytes whose body, with its `lists` lists
    /// empty, encodes to `empty_body` bytes; at most `count_max` items in all.
    pub(crate) fn new(
        message_bytes_max: usize,
        empty_body: usize,
        lists: usize,
        count_max: usize,
    ) -> Packer {
        // An empty list's length takes one byte, a full one up to LIST_LEN_BYTES_MAX.
        let used = MESSAGE_HEADER_BYTES_MAX + empty_body + lists * (LIST_LEN_BYTES_MAX - 1);
        let count_max = count_max.clamp(1, WIRE_ITEMS_MAX);
        Packer { left: message_bytes_max.saturating_sub(used), count: 0, count_max }
    }

    /// Takes an item of `len` encoded bytes if it fits (the first always does).
    pub(crate) fn take(&mut self, len: usize) -> bool {
        if self.count >= self.count_max || (self.count > 0 && len > self.left) {
            return false;
        }
        self.left = self.left.saturating_sub(len);
        self.count += 1;
        true
    }
}

/// Splits `items` into consecutive runs, each filling one message that `packer` describes
/// (a fresh one per run); `len` is an item's encoded length.
pub(crate) fn split<T>(
    items: impl IntoIterator<Item = T>,
    len: impl Fn(&T) -> usize,
    packer: impl Fn() -> Packer,
) -> Vec<Vec<T>> {
    let mut runs = Vec::new();
    let mut run = Vec::new();
    let mut p = packer();
    for item in items {
        let n = len(&item);
        if !p.take(n) {
            runs.push(std::mem::take(&mut run));
            p = packer();
            let first = p.take(n);
            debug_assert!(first, "the first item always fits");
        }
        run.push(item);
    }
    if !run.is_empty() {
        runs.push(run);
    }
    runs
}
