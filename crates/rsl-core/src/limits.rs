//! The core's fixed limits, and the bounds the configurable ones are validated against.
//!
//! A request travels through every layer as one piece, so each layer must carry the largest
//! request the API accepts. The chain, and the relation that keeps each link whole
//! (`Config::validate` checks the configurable ones; the crates that join two layers assert
//! the rest; docs/limits.md has the table of every limit in the system):
//!
//! - request (`Config::request_bytes_max`) ≤ one slot's value (`Config::value_bytes_max`,
//!   a request alone in its slot or a batch of small ones);
//! - value + [`ENTRY_FRAMING_BYTES_MAX`] ≤ one message (`Config::message_bytes_max`): an
//!   accept, a catch-up reply or a promise page holding that value alone; the core splits
//!   every list it sends by bytes, so no message it builds is larger;
//! - message, in the runtime's envelope, ≤ the transport's frame
//!   (`rsl_net::limits::FRAME_PAYLOAD_BYTES_MAX`, asserted and checked by the runtime);
//! - value as the log stores it ≤ [`VALUE_BYTES_MAX`] ≤ one storage record
//!   (`rsl_storage::limits::RECORD_PAYLOAD_BYTES_MAX`, asserted in `rsl-store`).
//!
//! The decoder's limits are never below what the encoder produces: a byte string is bounded
//! only by the bytes that remain, and a list by [`WIRE_ITEMS_MAX`], which no list the core
//! builds exceeds.

/// The most items (entries, slots, requests, replicas) one list may hold on the wire. The
/// decoder refuses a longer list before allocating it; every list the core builds is bounded
/// by a knob validated against this, or split.
pub const WIRE_ITEMS_MAX: usize = 1 << 20;

/// Bytes of a list's length on the wire at most: a varint of at most [`WIRE_ITEMS_MAX`].
pub const LIST_LEN_BYTES_MAX: usize = 3;

/// The default `Config::request_bytes_max`: 16 MiB, a round size the whole chain carries
/// (a maximal request plus its framing fits the default message, frame and record limits).
pub const REQUEST_BYTES_MAX_DEFAULT: usize = 16 << 20;

/// The default `Config::log_memory_bytes_max`: 64 MiB of executed values in memory (four
/// maximal requests; at 64-byte requests about 700,000), beyond which the oldest are read back
/// from storage when a peer asks for them.
pub const LOG_MEMORY_BYTES_MAX_DEFAULT: usize = 64 << 20;

/// The default `Config::message_bytes_max`: a maximal request plus room for the framing of
/// the message around it (a few hundred bytes; 32 KiB leaves room for batching knobs). The
/// runtime's transport frame is larger still (16 MiB + 64 KiB, with the runtime's envelope
/// byte), which `rsl` asserts.
pub const MESSAGE_BYTES_MAX_DEFAULT: usize = REQUEST_BYTES_MAX_DEFAULT + (32 << 10);

/// The largest encoded slot value as the log stores it (with its version byte), whatever the
/// configuration: storage's record limit is at least this (asserted in `rsl-store`).
pub const VALUE_BYTES_MAX: usize = 64 << 20;

/// Bytes a message's header takes at most: the version, the sender and the receiver.
pub const MESSAGE_HEADER_BYTES_MAX: usize = 1 + 5 + 5;

/// Bytes any message that carries one entry adds around the entry's value at most: the
/// header, the body's fixed fields, the list lengths and the entry's slot and ballot (the
/// largest is a promise page; a test encodes each kind with the widest fields).
pub const ENTRY_FRAMING_BYTES_MAX: usize = 128;

/// Bytes a batch value adds before its requests at most: the tag and the request count.
pub const BATCH_HEADER_BYTES_MAX: usize = 1 + LIST_LEN_BYTES_MAX;

/// Bytes one request adds to a batch beyond its payload at most: its id (proposer,
/// incarnation, sequence number) and the payload's length, each a varint.
pub const REQUEST_FRAMING_BYTES_MAX: usize = 5 + 10 + 10 + 10;

/// The slowest rate, in bytes per tick, at which the primary's resend timer assumes an accept
/// crosses to a follower: a slot waits one more tick before its first resend for every this
/// many bytes of its value, and at least as long between resends. 256 KiB a tick is 25 MiB/s
/// at the default 10 ms tick, slower than any link between replicas (a loaded two-core
/// machine moved a 16 MiB accept over TLS in 0.1-0.7 s). Without it, a follower that had not
/// yet received a 16 MiB accept (and so had not acknowledged the heartbeats queued behind it)
/// was sent the value again after 100, 300 and 600 ms: each copy queued before the
/// heartbeats, and the primary, unheard, stepped down (docs/testing.md, "Big values").
pub const RESEND_BYTES_PER_TICK: usize = 256 << 10;

/// The most voters a membership may have.
pub const VOTERS_MAX: usize = 9;

/// The most learners a membership may have (replicas catching up before they vote).
pub const LEARNERS_MAX: usize = 64;

/// The longest address a member's info may carry (a `host:port`; a DNS name is at most 253
/// bytes).
pub const MEMBER_ADDR_BYTES_MAX: usize = 256;

/// The most bytes of the application's data a member's info may carry (rsl-kv keeps its
/// client address there).
pub const MEMBER_DATA_BYTES_MAX: usize = 1024;

/// Bytes one member's info takes in a configuration value at most: its id, and its address
/// and data with their lengths.
pub const MEMBER_INFO_BYTES_MAX: usize = 5 + 2 + MEMBER_ADDR_BYTES_MAX + 2 + MEMBER_DATA_BYTES_MAX;

/// The largest configuration value without member info (a bootstrap membership, or one the
/// simulator's random changes make): the tag and two lists of replica ids (a staged
/// membership adds the new voters to the learners). Every configuration's value limit
/// (`Config::value_bytes_max`) holds at least this much.
pub const CONFIG_IDS_VALUE_BYTES_MAX: usize =
    1 + 2 * (LIST_LEN_BYTES_MAX + (VOTERS_MAX + LEARNERS_MAX + VOTERS_MAX) * 5);

/// The largest configuration value: the tag, two lists of replica ids (a staged membership
/// adds the new voters to the learners), and every member's info. A membership operation
/// whose value would exceed the configuration's value limit (`Config::value_bytes_max`, at
/// least `CONFIG_IDS_VALUE_BYTES_MAX`) is refused, so under small request limits fewer or
/// shorter member infos fit.
pub const CONFIG_VALUE_BYTES_MAX: usize = 1
    + 3 * LIST_LEN_BYTES_MAX
    + (VOTERS_MAX + LEARNERS_MAX + VOTERS_MAX) * (5 + MEMBER_INFO_BYTES_MAX);

const _: () = assert!(WIRE_ITEMS_MAX < 1 << (7 * LIST_LEN_BYTES_MAX));
const _: () = assert!(
    BATCH_HEADER_BYTES_MAX
        + REQUEST_FRAMING_BYTES_MAX
        + REQUEST_BYTES_MAX_DEFAULT
        + ENTRY_FRAMING_BYTES_MAX
        <= MESSAGE_BYTES_MAX_DEFAULT
);
const _: () = assert!(MESSAGE_BYTES_MAX_DEFAULT < VALUE_BYTES_MAX);
const _: () = assert!(CONFIG_VALUE_BYTES_MAX + ENTRY_FRAMING_BYTES_MAX < MESSAGE_BYTES_MAX_DEFAULT);
