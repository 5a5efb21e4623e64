//! Every limit of the transport, in one place.
//!
//! Names follow the project rule: `*_max` (or `*_min`) with the unit last. The const assertions
//! at the bottom state how the limits relate; a change that breaks a relation fails to compile.

use std::time::Duration;

/// Bytes of a frame header: `u32` payload length, `u32` crc32c, `u8` kind.
pub const FRAME_HEADER_BYTES: usize = 9;

/// The largest payload one frame may carry. A peer that announces more is hostile or broken:
/// the connection is closed before any of the payload is buffered. Its size: the engine's
/// largest request (16 MiB) plus 64 KiB for the framing of the message that carries it; the
/// engine sets its message limit to this, and `rsl` asserts that its default request limit
/// and message framing fit (docs/limits.md). The transport itself knows nothing of requests.
pub const FRAME_PAYLOAD_BYTES_MAX: usize = (16 << 20) + (64 << 10);

/// The largest frame on the wire, header included.
pub const FRAME_BYTES_MAX: usize = FRAME_HEADER_BYTES + FRAME_PAYLOAD_BYTES_MAX;

/// The longest cluster name a hello frame may carry.
pub const CLUSTER_NAME_BYTES_MAX: usize = 64;

/// The exact size of a hello payload is 4 (magic) + 2 (version) + 4 (id) + 2 (name length) +
/// the name; this is its maximum.
pub const HELLO_PAYLOAD_BYTES_MAX: usize = 12 + CLUSTER_NAME_BYTES_MAX;

/// The writer stops gathering queued frames into one write once the batch holds this many
/// bytes (a single larger frame still goes out whole).
pub const WRITE_BATCH_BYTES_MAX: usize = 256 * 1024;

/// A frame of at most this many bytes (header included), sent while nothing is queued for its
/// peer over a plaintext connection, is written by the sender's own thread
/// (`crate::direct`); a larger one always goes through the queue and the writer task, whose
/// vectored writes do not copy it.
pub const DIRECT_FRAME_BYTES_MAX: usize = 64 * 1024;

/// A part of a shared payload (`crate::parts`) of at most this many bytes is copied into the
/// writer's batch buffer; a larger one is written from where it is (a vectored write), so
/// that a 16 MiB value is never copied on its way to the socket, and the small stretches
/// between values do not each take an entry of the vector.
pub const PART_COPY_BYTES_MAX: usize = 16 * 1024;

/// The reader asks the socket for at least this much buffer space per read.
pub const READ_CHUNK_BYTES_MIN: usize = 64 * 1024;

/// A received payload of at most this many bytes is copied out of the connection's read
/// buffer; a larger one is handed over as a slice of it (a 16 MiB request is not copied). A
/// slice keeps the whole read allocation alive for as long as the application keeps the
/// payload: a follower keeps accepted values in its log, and when every small accept pinned
/// a 64 KiB read buffer, each read took fresh memory from the kernel and a follower's memory
/// grew with its log: rsl-kv's unpipelined writes lost about a third of their throughput
/// (docs/benchmarks.md, "The unpipelined SET regression").
pub const FRAME_COPY_BYTES_MAX: usize = READ_CHUNK_BYTES_MIN;

/// The most peers one transport may name.
pub const PEERS_MAX: usize = 64;

/// Default bound on the frames queued for one peer.
pub const QUEUE_FRAMES_MAX_DEFAULT: usize = 8192;

/// Default bound on the payload bytes queued for one peer.
pub const QUEUE_BYTES_MAX_DEFAULT: usize = 64 * 1024 * 1024;

/// Default bound on the received frames waiting for the application.
pub const INCOMING_FRAMES_MAX_DEFAULT: usize = 8192;

/// Default first reconnection delay.
pub const BACKOFF_INITIAL_DEFAULT: Duration = Duration::from_millis(50);

/// Default cap on the reconnection delay.
pub const BACKOFF_MAX_DEFAULT: Duration = Duration::from_secs(2);

/// Default time a connection has to complete TCP connect, TLS and the hello exchange.
pub const HANDSHAKE_TIMEOUT_DEFAULT: Duration = Duration::from_secs(5);

/// Default interval after which an idle connection sends a ping frame.
pub const PING_INTERVAL_DEFAULT: Duration = Duration::from_millis(500);

/// Default time without any byte from a peer after which its connection is presumed dead and
/// closed (several ping intervals, so that one delayed ping does not close it).
pub const IDLE_TIMEOUT_DEFAULT: Duration = Duration::from_secs(3);

/// Pause of the listener after a failed `accept` (out of file descriptors and similar), so
/// that it does not spin.
pub const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// Connections being handshaken at once on the listener; more are refused at once, so that a
/// flood of idle sockets cannot exhaust memory.
pub const HANDSHAKES_PENDING_MAX: usize = 256;

const _: () = assert!(FRAME_HEADER_BYTES == 4 + 4 + 1);
const _: () = assert!(FRAME_PAYLOAD_BYTES_MAX <= u32::MAX as usize);
const _: () = assert!(HELLO_PAYLOAD_BYTES_MAX <= FRAME_PAYLOAD_BYTES_MAX);
const _: () = assert!(CLUSTER_NAME_BYTES_MAX <= u16::MAX as usize);
const _: () = assert!(WRITE_BATCH_BYTES_MAX >= FRAME_HEADER_BYTES + 64);
const _: () = assert!(QUEUE_BYTES_MAX_DEFAULT >= FRAME_PAYLOAD_BYTES_MAX);
const _: () = assert!(READ_CHUNK_BYTES_MIN >= FRAME_HEADER_BYTES);
const _: () = assert!(IDLE_TIMEOUT_DEFAULT.as_millis() >= 3 * PING_INTERVAL_DEFAULT.as_millis());
