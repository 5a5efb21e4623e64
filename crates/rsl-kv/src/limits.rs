//! Every limit of rsl-kv, in one place.
//!
//! Each limit is named `*_max` (or `*_min`) with its unit last. The relations between them are
//! checked at compile time below, so that changing one cannot silently break another: every
//! request the server hands to the engine fits what the engine replicates (one rsl request),
//! no field of such a request exceeds its own limit, and the parser takes a bulk larger than
//! any request, so that a too-large write is answered with an error naming the limit rather
//! than closing the connection. docs/limits.md has the table of every limit in the system.

/// The largest encoded request the server hands to the engine, in bytes: rsl's default
/// `consensus.request_bytes_max` (16 MiB). A write carries its keys and values in one request,
/// so a SET's value is at most this less its key and [`SET_FRAMING_BYTES`]; a larger one is
/// answered `-ERR key or value too large ...` (the engine may configure a lower limit).
pub const REQUEST_BYTES_MAX: usize = rsl::REQUEST_BYTES_MAX_DEFAULT;

/// Bytes a `SET key value` without options adds to its key and value in its request: the
/// format version, the kind, the stamp, the protocol, the argument count, the three argument
/// lengths and the command name (`request.rs`; a test there pins this to the encoder).
pub const SET_FRAMING_BYTES: usize = 1 + 1 + 8 + 1 + 4 + 3 * 4 + b"SET".len();

/// The largest bulk string a client may send, in bytes (Redis's `proto-max-bulk-len` is
/// 512 MiB; we keep it lower because a request is replicated to every replica). Above
/// [`REQUEST_BYTES_MAX`], so that a write too large to replicate is parsed and refused with an
/// error naming the limit; a larger bulk is a protocol error that closes the connection.
pub const BULK_BYTES_MAX: usize = 64 << 20;

/// The most elements a client request array may have.
pub const ARRAY_LEN_MAX: usize = 1 << 20;

/// The longest inline command line (`PING\r\n`), in bytes, as Redis's `PROTO_INLINE_MAX_SIZE`.
pub const INLINE_BYTES_MAX: usize = 64 << 10;

/// The longest header line (`*3\r\n`, `$5\r\n`, `:12\r\n`) in bytes, CRLF included.
pub const HEADER_BYTES_MAX: usize = 32;

/// The deepest nesting of arrays the reply parser accepts (replies are parsed by clients and
/// tests; requests are flat).
pub const REPLY_DEPTH_MAX: usize = 32;

/// The longest key, in bytes (one request carries it).
pub const KEY_BYTES_MAX: usize = REQUEST_BYTES_MAX;

/// The longest value, in bytes, including one grown by APPEND (one SET carries at most
/// `REQUEST_BYTES_MAX - SET_FRAMING_BYTES` less its key; APPEND grows a value up to this).
pub const VALUE_BYTES_MAX: usize = REQUEST_BYTES_MAX;

/// The most input, in bytes, a connection buffers behind a barrier (a blocking pop or a WATCH
/// waiting for its answer). It keeps reading that far so that it sees a client that leaves
/// while blocked (whose pop must then not take an element); a client that sends more behind a
/// barrier is disconnected, as Redis disconnects a client past its query buffer limit. One
/// request of the largest size fits.
pub const BARRIER_INPUT_BYTES_MAX: usize = REQUEST_BYTES_MAX;

/// The most replies one connection may have outstanding (pipelined commands submitted but not
/// yet written back). When reached, the connection stops reading until replies drain, unless
/// a barrier (a blocking pop, a WATCH) waits among them: then it dispatches nothing anyway and
/// keeps reading up to [`BARRIER_INPUT_BYTES_MAX`], so that it sees a client that leaves.
pub const PIPELINE_DEPTH_MAX: usize = 1024;

/// The most client connections served at once; more are refused with an error.
pub const CLIENTS_MAX: usize = 10_000;

/// How long a client of a TLS client port has to complete its handshake, in milliseconds; a
/// client that has not (a plaintext client waiting for the server to speak first) is
/// disconnected.
pub const TLS_HANDSHAKE_MS_MAX: u64 = 10_000;

/// The capacity reserved in a connection's read buffer before each read, in bytes.
pub const READ_CHUNK_BYTES_MIN: usize = 16 << 10;

/// The most argument bytes quoted back in an "unknown command" error, as Redis does.
pub const UNKNOWN_ARGS_BYTES_MAX: usize = 128;

/// How long a replicated request waits for a primary to exist (an election in progress)
/// before the client hears `-TRYAGAIN`, in milliseconds.
pub const PRIMARY_WAIT_MS_MAX: u64 = 5_000;

/// The pause before a request that found no primary (or a stale one) tries again, unless the
/// replica's view of the primary changes first, in milliseconds.
pub const RETRY_PAUSE_MS_MAX: u64 = 20;

/// The largest request a replica forwards to the primary, in bytes: it travels as one rsl
/// peer call with a one-byte header (`forward`).
pub const FORWARD_BYTES_MAX: usize = rsl::PEER_CALL_BYTES_MAX - 1;

/// How long a forwarded write still waits for the answer of a primary this replica has just
/// learned was deposed, before its client hears that the outcome is unknown, in milliseconds.
/// A primary that handed over primacy on purpose answers within it (its last slots are chosen
/// as the new primary starts); a paused or isolated one does not, and its clients' wait ends.
pub const DEPOSED_REPLY_WAIT_MS_MAX: u64 = 100;

/// How far ahead of the primary's clock a forwarded write's stamp may be, in milliseconds (a
/// larger one would move every replica's expiry clock into the future).
pub const FORWARD_STAMP_AHEAD_MS_MAX: u64 = 60_000;

/// How long an admin command waits for another member (connect and reply), in milliseconds.
pub const ADMIN_PEER_WAIT_MS_MAX: u64 = 1_000;

/// How long `RSL.TRANSFER` waits for the new primary to take over, in milliseconds.
pub const TRANSFER_WAIT_MS_MAX: u64 = 5_000;

/// The most commands one MULTI may queue; past it the transaction fails at EXEC
/// (EXECABORT), as one request carries them all.
pub const MULTI_QUEUED_MAX: usize = 100_000;

/// The deleted keys the machine remembers for WATCH. An EXEC that watched an absent key
/// before the oldest one remembered aborts, since nothing proves the key untouched.
pub const WATCH_TOMBSTONES_MAX: usize = 10_000;

/// The messages queued for one pub/sub subscriber; past it the subscriber is disconnected, as
/// Redis does past its pub/sub output buffer limit.
pub const SUBSCRIBER_QUEUED_MAX: usize = 65_536;

/// The cells of LCS's dynamic-programming table (the product of the two lengths).
pub const LCS_CELLS_MAX: usize = 1 << 26;

/// The largest count SRANDMEMBER, HRANDFIELD and ZRANDMEMBER accept (a negative count asks
/// for that many picks with repeats).
pub const RANDOM_COUNT_MAX: usize = 1 << 20;

/// The Lua instructions one script may run (counted in steps of a thousand). A script that
/// runs past it fails, at the same instruction on every replica.
pub const SCRIPT_INSTRUCTIONS_MAX: u64 = 100_000_000;

/// The memory one script's Lua state may allocate, in bytes.
pub const SCRIPT_MEMORY_BYTES_MAX: usize = 256 << 20;

const _: () = assert!(INLINE_BYTES_MAX <= BULK_BYTES_MAX);
const _: () = assert!(RETRY_PAUSE_MS_MAX < PRIMARY_WAIT_MS_MAX);
const _: () = assert!(KEY_BYTES_MAX <= BULK_BYTES_MAX);
const _: () = assert!(VALUE_BYTES_MAX <= BULK_BYTES_MAX);
// A request within the limit has no key or value over its own limit, so the server's check of
// the request's size is the only size check a write needs before it is encoded.
const _: () = assert!(REQUEST_BYTES_MAX <= KEY_BYTES_MAX && REQUEST_BYTES_MAX <= VALUE_BYTES_MAX);
const _: () = assert!(BULK_BYTES_MAX > REQUEST_BYTES_MAX);
const _: () = assert!(FORWARD_BYTES_MAX >= REQUEST_BYTES_MAX);
const _: () = assert!(KEY_BYTES_MAX <= u32::MAX as usize && VALUE_BYTES_MAX <= u32::MAX as usize);
const _: () = assert!(ARRAY_LEN_MAX <= u32::MAX as usize);
const _: () = assert!(PIPELINE_DEPTH_MAX >= 1 && CLIENTS_MAX >= 1);
