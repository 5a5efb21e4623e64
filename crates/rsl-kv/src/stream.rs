//! The stream value type (XADD, XRANGE, consumer groups): its entries by id, the counters
//! Redis 7 keeps beside them, and its consumer groups with their pending entries.
//!
//! Every part is a persistent `imbl` map, like the other collections, so a checkpoint's
//! snapshot stays O(1). An entry is its id and its field-value pairs, flat. Ids are Redis's
//! `ms-seq` pairs of u64; the id XADD generates for `*` comes from the machine's clock (the
//! request's stamp), never from a replica's own wall clock, so every replica generates the
//! same id at the same point in the log.
//!
//! Unlike the other collections a stream is kept when it empties (XDEL, XTRIM), as in Redis:
//! its last id and its groups still matter.

use bytes::Bytes;
use imbl::{OrdMap, OrdSet};

use crate::resp::Reply;

/// A stream entry's id: milliseconds and a sequence number, ordered as a pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Hash)]
pub struct StreamId {
    /// The milliseconds part.
    pub ms: u64,
    /// The sequence part.
    pub seq: u64,
}

impl StreamId {
    /// `0-0`, below every entry.
    pub const MIN: StreamId = StreamId { ms: 0, seq: 0 };
    /// The largest id.
    pub const MAX: StreamId = StreamId { ms: u64::MAX, seq: u64::MAX };

    /// The next id, `None` after [`StreamId::MAX`].
    pub fn next(self) -> Option<StreamId> {
        match self.seq.checked_add(1) {
            Some(seq) => Some(StreamId { ms: self.ms, seq }),
            None => Some(StreamId { ms: self.ms.checked_add(1)?, seq: 0 }),
        }
    }

    /// The previous id, `None` before [`StreamId::MIN`].
    pub fn prev(self) -> Option<StreamId> {
        match self.seq.checked_sub(1) {
            Some(seq) => Some(StreamId { ms: self.ms, seq }),
            None => Some(StreamId { ms: self.ms.checked_sub(1)?, seq: u64::MAX }),
        }
    }

    /// The id as Redis writes it, `ms-seq`.
    pub fn text(self) -> String {
        format!("{}-{}", self.ms, self.seq)
    }

    /// The id as a bulk reply.
    pub fn reply(self) -> Reply {
        Reply::Bulk(Bytes::from(self.text()))
    }

    /// Parses `ms-seq`, or `ms` alone with `seq_default` as its sequence. Both parts are
    /// unsigned decimal integers as Redis's `string2ull` takes them.
    pub fn parse(arg: &[u8], seq_default: u64) -> Option<StreamId> {
        match arg.iter().position(|&b| b == b'-') {
            None => Some(StreamId { ms: parse_u64(arg)?, seq: seq_default }),
            Some(dash) => {
                Some(StreamId { ms: parse_u64(&arg[..dash])?, seq: parse_u64(&arg[dash + 1..])? })
            }
        }
    }
}

/// An unsigned decimal as Redis's `string2ull` reads it (no sign, no spaces, no overflow).
fn parse_u64(text: &[u8]) -> Option<u64> {
    if text.is_empty() || text.len() > 20 || !text.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(text).ok()?.parse().ok()
}

/// An entry delivered to a consumer of a group and not yet acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingEntry {
    /// The consumer that owns it.
    pub consumer: Bytes,
    /// When it was last delivered (the machine's clock), in Unix milliseconds.
    pub delivered_ms: u64,
    /// How many times it was delivered.
    pub deliveries: u64,
}

/// A consumer of a group.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Consumer {
    /// When it was last seen (created, read or claimed), in Unix milliseconds.
    pub seen_ms: u64,
    /// The ids of its pending entries.
    pub pending: OrdSet<StreamId>,
}

/// A consumer group.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Group {
    /// The last id delivered to the group (XREADGROUP's `>` reads after it).
    pub last_id: StreamId,
    /// How many entries the group has read, when known (Redis 7's `entries-read`).
    pub entries_read: Option<u64>,
    /// Every pending entry of every consumer, by id (the group's PEL).
    pub pending: OrdMap<StreamId, PendingEntry>,
    /// The consumers, by name.
    pub consumers: OrdMap<Bytes, Consumer>,
}

/// A stream: entries by id and Redis 7's counters, and the consumer groups.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Stream {
    /// Each entry's field-value pairs, flat (field, value, field, value...), by id.
    pub entries: OrdMap<StreamId, Vec<Bytes>>,
    /// The largest id ever added (XADD's floor), even if that entry was deleted.
    pub last_id: StreamId,
    /// The largest id deleted by XDEL (Redis's `max-deleted-entry-id`).
    pub max_deleted: StreamId,
    /// How many entries were ever added (Redis's `entries-added`).
    pub entries_added: u64,
    /// The consumer groups, by name.
    pub groups: OrdMap<Bytes, Group>,
}

impl Stream {
    /// The number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there is no entry (the stream itself stays).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The first entry's id, or `0-0` when empty (Redis's `recorded-first-entry-id`).
    pub fn first_id(&self) -> StreamId {
        self.entries.get_min().map_or(StreamId::MIN, |(id, _)| *id)
    }

    /// An entry as Redis replies it: `[id, [field, value, ...]]`.
    pub fn entry_reply(id: StreamId, fields: &[Bytes]) -> Reply {
        Reply::Array(vec![
            id.reply(),
            Reply::Array(fields.iter().cloned().map(Reply::Bulk).collect()),
        ])
    }

    /// Removes entries from the head while `over` says the stream is still beyond the
    /// threshold, at most `limit` of them (0: no limit); returns how many went. Trimming
    /// leaves `max_deleted` alone, as Redis does.
    pub fn trim(&mut self, threshold: Trim, limit: usize) -> usize {
        let mut removed = 0;
        while limit == 0 || removed < limit {
            let Some((first, _)) = self.entries.get_min() else { break };
            let first = *first;
            let go = match threshold {
                Trim::MaxLen(n) => self.entries.len() as u64 > n,
                Trim::MinId(id) => first < id,
            };
            if !go {
                break;
            }
            self.entries.remove(&first);
            removed += 1;
        }
        removed
    }

    /// An estimate of the bytes the stream takes (MEMORY USAGE, INFO memory).
    pub fn memory_bytes(&self) -> usize {
        const ENTRY_OVERHEAD_BYTES: usize = 64;
        let entries: usize = self
            .entries
            .values()
            .map(|f| f.iter().map(Bytes::len).sum::<usize>() + ENTRY_OVERHEAD_BYTES)
            .sum();
        let groups: usize = self
            .groups
            .iter()
            .map(|(name, g)| name.len() + g.pending.len() * ENTRY_OVERHEAD_BYTES)
            .sum();
        entries + groups
    }

    /// Checks the groups' invariants (each pending entry is in its consumer's set and back).
    pub fn check_invariants(&self) {
        for (name, group) in self.groups.iter() {
            let owned: usize = group.consumers.values().map(|c| c.pending.len()).sum();
            assert_eq!(owned, group.pending.len(), "group {name:?}: pending sets disagree");
            for (id, pending) in group.pending.iter() {
                let consumer = group.consumers.get(&pending.consumer).expect("owner exists");
                assert!(consumer.pending.contains(id), "group {name:?}: {id:?} not owned");
            }
        }
    }
}

/// A trimming threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trim {
    /// Keep at most this many entries.
    MaxLen(u64),
    /// Remove the entries below this id.
    MinId(StreamId),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_as_redis_reads_them() {
        assert_eq!(StreamId::parse(b"5", 7), Some(StreamId { ms: 5, seq: 7 }));
        assert_eq!(StreamId::parse(b"5-3", 7), Some(StreamId { ms: 5, seq: 3 }));
        let max = b"18446744073709551615-18446744073709551615";
        assert_eq!(StreamId::parse(max, 0), Some(StreamId::MAX));
        for bad in [&b""[..], b"-", b"5-", b"-5", b"x", b"1-18446744073709551616", b"+1", b" 1"] {
            assert_eq!(StreamId::parse(bad, 0), None, "{bad:?}");
        }
        assert_eq!(StreamId::MAX.next(), None);
        assert_eq!(StreamId::MIN.prev(), None);
        assert_eq!(StreamId { ms: 1, seq: u64::MAX }.next(), Some(StreamId { ms: 2, seq: 0 }));
        assert_eq!(StreamId { ms: 2, seq: 0 }.prev(), Some(StreamId { ms: 1, seq: u64::MAX }));
    }
}
