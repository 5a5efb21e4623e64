//! The replicated keyspace: keys and their values, expiry, the versions WATCH compares, the
//! scripts EVALSHA runs, and the seed of the deterministic random choices (SPOP, RANDOMKEY).
//!
//! Everything here is replicated state: every replica holds the same `Db` after the same
//! slot, and a checkpoint carries all of it. Invariants, checked by [`Db::check_invariants`]:
//! the expiry index holds exactly the `(deadline, key)` pairs of stored keys that have a
//! deadline; after a write request's clock advance no stored key's deadline is before `now_ms`;
//! no stored collection is empty; every key's version is at most `mods`; the tombstones hold
//! at most [`limits::WATCH_TOMBSTONES_MAX`] keys.
//!
//! Versions: `mods` counts write requests; every key a write creates or changes gets the
//! current count as its version, and every key it deletes (DEL, an expiry, an emptied
//! collection) leaves a tombstone with that count. A transaction that watched keys at count
//! `since` aborts if a watched key's version or tombstone is later, or (for an absent key) if
//! a FLUSHALL or the pruning of old tombstones happened after `since`, since then nothing
//! proves the key untouched. So EXEC decides the same way on every replica.

use bytes::Bytes;
use imbl::{OrdMap, OrdSet};

use crate::limits;
use crate::value::Value;

/// A stored key: 16 bytes in the map (where a `Bytes` takes 32) and an allocation of exactly
/// its length. Cloning one copies it, which the map does only when it copies a B-tree node
/// (after a checkpoint's snapshot) or takes a separator for a branch.
pub type Key = Box<[u8]>;

/// One stored key's entry. The map holds it boxed (see [`Db::keys`]), and it packs "no
/// deadline" into the deadline itself, because its size is paid once per key: 56 bytes here,
/// where an `Option<u64>` deadline would make it 64.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The value.
    pub value: Value,
    /// Unix milliseconds after which the key is gone; [`NO_DEADLINE`] for no expiry.
    deadline_ms: u64,
    /// The modification count (`Db::mods`) of the write that last changed the key.
    pub version: u64,
}

/// The deadline an entry without expiry holds. Deadlines come from commands as positive
/// `i64`s, and a checkpoint holding this one is refused as corrupt, so no real deadline is it.
pub const NO_DEADLINE: u64 = u64::MAX;

impl Entry {
    /// An entry for `value` with deadline `expire_at_ms`, last changed at count `version`.
    pub fn new(value: Value, expire_at_ms: Option<u64>, version: u64) -> Entry {
        let deadline_ms = expire_at_ms.unwrap_or(NO_DEADLINE);
        assert!(expire_at_ms != Some(NO_DEADLINE), "a deadline is never u64::MAX");
        Entry { value, deadline_ms, version }
    }

    /// Unix milliseconds after which the key is gone; `None` for no expiry.
    pub fn expire_at_ms(&self) -> Option<u64> {
        (self.deadline_ms != NO_DEADLINE).then_some(self.deadline_ms)
    }

    /// Sets the deadline (the caller keeps [`Db::expiries`] in step).
    fn set_expire_at_ms(&mut self, expire_at_ms: Option<u64>) {
        assert!(expire_at_ms != Some(NO_DEADLINE), "a deadline is never u64::MAX");
        self.deadline_ms = expire_at_ms.unwrap_or(NO_DEADLINE);
    }

    /// Whether the key is live at `now_ms` (Redis's rule: gone once now is past the deadline).
    pub fn live_at(&self, now_ms: u64) -> bool {
        now_ms <= self.deadline_ms
    }
}

/// A copy of `bytes` in an allocation of its own and of its exact size, to store in the
/// keyspace. A request's argument is shared with the request (cloning it allocates a shared
/// header, 24 bytes, on top of the data), and a slice can hold a larger buffer alive; a stored
/// copy holds only its own bytes. Arguments above [`COMPACT_BYTES_MAX`] are kept as they are,
/// since copying them would cost more than the header saves.
pub fn compact(bytes: &Bytes) -> Bytes {
    if bytes.len() <= COMPACT_BYTES_MAX {
        Bytes::copy_from_slice(bytes)
    } else {
        bytes.clone()
    }
}

/// The largest argument [`compact`] copies, in bytes.
pub const COMPACT_BYTES_MAX: usize = 4096;

/// The whole replicated state: cheap to clone, since every map is persistent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Db {
    /// The keyspace. A key is a [`Key`] and its entry is boxed, so that a B-tree leaf holds
    /// 16 slots of 24 bytes rather than of 96: a leaf filled by keys inserted in order is only
    /// half used, and each unused slot costs its size (crates/rsl-kv/README.md, "Memory").
    pub keys: OrdMap<Key, Box<Entry>>,
    /// `(expire_at_ms, key)` for every stored key that has an expiry.
    pub expiries: OrdSet<(u64, Bytes)>,
    /// The largest write stamp executed so far.
    pub now_ms: u64,
    /// The number of write requests executed (the versions' clock).
    pub mods: u64,
    /// Recently deleted keys and the count at which they went.
    pub tombstones: OrdMap<Bytes, u64>,
    /// The tombstones in the order they were made, to prune the oldest.
    pub tombstone_order: OrdSet<(u64, Bytes)>,
    /// The latest count whose tombstones were pruned (or cleared by FLUSHALL).
    pub tombstone_horizon: u64,
    /// Scripts loaded by SCRIPT LOAD or EVAL, by their lower-case SHA1 in hex.
    pub scripts: OrdMap<Bytes, Bytes>,
    /// The state of the deterministic random generator.
    pub seed: u64,
}

impl Db {
    /// The key's entry if it is live at `now_ms`.
    pub fn live(&self, key: &[u8], now_ms: u64) -> Option<&Entry> {
        self.keys.get(key).map(|e| &**e).filter(|e| e.live_at(now_ms))
    }

    /// Starts a write request stamped `stamp_ms`: counts it, moves the clock forward (never
    /// back) and removes the keys that expired.
    pub fn begin_write(&mut self, stamp_ms: u64) {
        self.mods += 1;
        let before = self.now_ms;
        self.now_ms = before.max(stamp_ms);
        while let Some((at, key)) = self.expiries.get_min().cloned() {
            if at >= self.now_ms {
                break;
            }
            let removed = self.remove(&key);
            assert_eq!(removed.and_then(|e| e.expire_at_ms()), Some(at));
        }
    }

    /// Stores `value` at `key` with `expire_at_ms`, replacing any value; a deadline already
    /// passed deletes the key instead.
    pub fn store(&mut self, key: Bytes, value: Value, expire_at_ms: Option<u64>) {
        assert!(!value.is_empty(), "an empty collection is never stored");
        self.remove(&key);
        if expire_at_ms.is_some_and(|at| at < self.now_ms) {
            return;
        }
        let value = match value {
            Value::Str(s) => Value::Str(compact(&s)),
            other => other,
        };
        if let Some(at) = expire_at_ms {
            self.expiries.insert((at, compact(&key)));
        }
        self.keys.insert(Key::from(&key[..]), Box::new(Entry::new(value, expire_at_ms, self.mods)));
    }

    /// Creates `key` with an empty collection, which the caller fills before the request ends.
    pub fn create(&mut self, key: Bytes, value: Value) {
        assert!(!self.keys.contains_key(&key[..]), "the key is new");
        self.keys.insert(Key::from(&key[..]), Box::new(Entry::new(value, None, self.mods)));
    }

    /// The key's entry, to change its value in place (its version moves to now). The caller
    /// must not leave a collection empty: call [`Db::remove_if_empty`] after.
    pub fn entry_mut(&mut self, key: &[u8]) -> Option<&mut Entry> {
        let mods = self.mods;
        let entry = self.keys.get_mut(key)?;
        entry.version = mods;
        Some(&mut **entry)
    }

    /// Removes `key` if it holds an emptied collection.
    pub fn remove_if_empty(&mut self, key: &[u8]) {
        if self.keys.get(key).is_some_and(|e| e.value.is_empty()) {
            self.remove(key);
        }
    }

    /// Sets or clears the key's deadline; a deadline already passed deletes the key. Returns
    /// whether the key exists.
    pub fn set_expiry(&mut self, key: &[u8], expire_at_ms: Option<u64>) -> bool {
        let Some(entry) = self.keys.get(key) else { return false };
        if expire_at_ms.is_some_and(|at| at < self.now_ms) {
            self.remove(key);
            return true;
        }
        let old = entry.expire_at_ms();
        let key = Bytes::copy_from_slice(key);
        if let Some(at) = old {
            let indexed = self.expiries.remove(&(at, key.clone()));
            assert!(indexed.is_some(), "an expiring key is indexed");
        }
        if let Some(at) = expire_at_ms {
            self.expiries.insert((at, key.clone()));
        }
        let entry = self.entry_mut(&key).expect("the key exists");
        entry.set_expire_at_ms(expire_at_ms);
        true
    }

    /// Removes `key`, leaving a tombstone for WATCH.
    pub fn remove(&mut self, key: &[u8]) -> Option<Entry> {
        let entry = *self.keys.remove(key)?;
        let key = Bytes::copy_from_slice(key);
        if let Some(at) = entry.expire_at_ms() {
            let indexed = self.expiries.remove(&(at, key.clone()));
            assert!(indexed.is_some(), "an expiring key is indexed");
        }
        self.bury(key);
        Some(entry)
    }

    fn bury(&mut self, key: Bytes) {
        if let Some(old) = self.tombstones.insert(key.clone(), self.mods) {
            self.tombstone_order.remove(&(old, key.clone()));
        }
        self.tombstone_order.insert((self.mods, key));
        while self.tombstones.len() > limits::WATCH_TOMBSTONES_MAX {
            let (count, oldest) = self.tombstone_order.remove_min().expect("a tombstone");
            self.tombstones.remove(&oldest);
            self.tombstone_horizon = self.tombstone_horizon.max(count);
        }
    }

    /// Removes every key (FLUSHALL).
    pub fn flush(&mut self) {
        self.keys = OrdMap::new();
        self.expiries = OrdSet::new();
        self.tombstones = OrdMap::new();
        self.tombstone_order = OrdSet::new();
        self.tombstone_horizon = self.mods;
    }

    /// Whether `key` may have changed after modification count `since` (see the module doc).
    pub fn changed_since(&self, key: &[u8], since: u64) -> bool {
        match self.keys.get(key) {
            Some(entry) => entry.version > since,
            None => {
                self.tombstone_horizon > since
                    || self.tombstones.get(key).is_some_and(|&count| count > since)
            }
        }
    }

    /// The next deterministic random number (splitmix64 over the replicated seed).
    pub fn random(&mut self) -> u64 {
        self.seed = self.seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.seed)
    }

    /// Checks the invariants in the module doc; panics if one is broken. O(n): for tests.
    pub fn check_invariants(&self) {
        let with_expiry = self.keys.values().filter(|e| e.expire_at_ms().is_some()).count();
        assert_eq!(with_expiry, self.expiries.len(), "one index entry per expiring key");
        for (at, key) in self.expiries.iter() {
            let entry = self.keys.get(&key[..]).expect("an indexed key is stored");
            assert_eq!(entry.expire_at_ms(), Some(*at), "the index matches the entry");
            assert!(*at >= self.now_ms, "no stored key is expired");
        }
        for (key, entry) in self.keys.iter() {
            assert!(key.len() <= limits::KEY_BYTES_MAX);
            assert!(!entry.value.is_empty(), "no stored collection is empty");
            assert!(entry.version <= self.mods, "a version is never ahead of the count");
            if let crate::value::Value::Stream(stream) = &entry.value {
                stream.check_invariants();
            }
        }
        assert!(self.tombstones.len() <= limits::WATCH_TOMBSTONES_MAX);
        assert_eq!(self.tombstones.len(), self.tombstone_order.len());
    }
}

/// splitmix64's output function: a well-mixed 64-bit hash of `x`.
pub fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_packed_deadline_reads_back() {
        let s = || Value::Str(Bytes::from_static(b"v"));
        let none = Entry::new(s(), None, 3);
        assert_eq!(none.expire_at_ms(), None);
        assert!(none.live_at(u64::MAX - 1) && none.live_at(0), "no deadline is live forever");
        for at in [0, 1, 1_700_000_000_000, i64::MAX as u64, NO_DEADLINE - 1] {
            let mut entry = Entry::new(s(), Some(at), 3);
            assert_eq!(entry.expire_at_ms(), Some(at));
            assert!(entry.live_at(at) && !entry.live_at(at + 1), "gone once now is past {at}");
            entry.set_expire_at_ms(None);
            assert_eq!(entry.expire_at_ms(), None);
            entry.set_expire_at_ms(Some(at));
            assert_eq!((entry.expire_at_ms(), entry.version), (Some(at), 3));
        }
    }

    #[test]
    #[should_panic(expected = "never u64::MAX")]
    fn the_sentinel_is_not_a_deadline() {
        Entry::new(Value::Str(Bytes::from_static(b"v")), Some(NO_DEADLINE), 0);
    }

    #[test]
    fn a_stored_string_holds_only_its_own_bytes() {
        let mut db = Db::default();
        // Arguments as a request holds them: slices of one larger buffer.
        let request = Bytes::from(b"SET key value and more".to_vec());
        db.store(request.slice(4..7), Value::Str(request.slice(8..13)), None);
        drop(request);
        assert_eq!(db.keys.keys().map(|k| &k[..]).collect::<Vec<_>>(), [b"key"]);
        let Value::Str(value) = db.remove(b"key").expect("stored").value else { panic!() };
        let value = value.try_into_mut().expect("nothing else holds the stored value");
        assert_eq!((&value[..], value.capacity()), (&b"value"[..], 5), "not the request's buffer");
        db.check_invariants();
    }
}
