//! Blocking pops (BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BZPOPMIN, BZPOPMAX): the machine never
//! blocks (with nothing to pop it answers null at once), so the server loops: it registers
//! with the hub for the command's keys, tries the pop as a replicated write, and on a null
//! answer waits until the hub says a key may be ready (a replicated push executed on this
//! replica) or the timeout passes, then tries again. Registering before each try means a push
//! that lands between the try and the wait still wakes the loop.
//!
//! Every try is a write through the log, so the pop itself is replicated and happens in one
//! place in the log's order on every replica. Blocked clients are served by whichever tries
//! first after a push, not strictly in the order they blocked as in Redis.
//!
//! A pop must not take an element for a client that left: the connection keeps reading while
//! a pop is pending (whatever its pipeline holds) so that it sees the client leave, and drops
//! the pop's receiver, which ends the loop before its next try. A try already submitted when
//! the client leaves may still pop: that element is lost with the connection, as a reply
//! Redis has written for a client that just closed is.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use tokio::time::Instant;

use super::session::Session;
use super::{ready, Pending};
use crate::commands::lists::timeout_arg;
use crate::engine::{EngineError, EngineReply};
use crate::request::Request;
use crate::resp::{Command, Proto, Reply};

/// The keys a blocking command waits for: its source for the moves, else every argument but
/// the name and the timeout.
fn blocked_keys(args: &[Bytes]) -> Vec<Bytes> {
    let name = args[0].to_ascii_lowercase();
    if name == b"blmove" || name == b"brpoplpush" {
        vec![args[1].clone()]
    } else {
        args[1..args.len() - 1].to_vec()
    }
}

/// Starts XREAD or XREADGROUP with BLOCK, if it has that option and parses: a task tries the
/// command without BLOCK (XREAD as a read, XREADGROUP as a replicated write) until it
/// answers something other than null, as the module's doc says for the pops. XREAD's `$`
/// is resolved first to each stream's last id (XINFO STREAM's `last-generated-id`, `0-0`
/// for a missing key), so that the tries read only what arrives after the call.
/// `None` when the command does not block here (no BLOCK, or an error the machine answers).
pub(super) fn start_stream(session: &mut Session, args: &Command) -> Option<Pending> {
    let group = args[0].eq_ignore_ascii_case(b"xreadgroup");
    let parsed = crate::commands::streams::read_args(args, group).ok()?;
    let block_ms = parsed.block_ms?;
    let keys = parsed.keys.to_vec();
    let resolve: Vec<Option<Bytes>> = parsed
        .ids
        .iter()
        .zip(&keys)
        .map(|(id, key)| (&id[..] == b"$").then(|| key.clone()))
        .collect();
    // The tries: the same command without its BLOCK option (walked as the parser walks it,
    // so that a group or consumer named "block" stays).
    let streams_at = args.len() - 2 * keys.len() - 1;
    let mut tries = vec![args[0].clone()];
    let mut i = 1;
    while i < streams_at {
        let width = match () {
            _ if args[i].eq_ignore_ascii_case(b"block") => {
                i += 2;
                continue;
            }
            _ if args[i].eq_ignore_ascii_case(b"count") => 2,
            _ if args[i].eq_ignore_ascii_case(b"group") => 3,
            _ => 1,
        };
        tries.extend_from_slice(&args[i..i + width]);
        i += width;
    }
    tries.extend_from_slice(&args[streams_at..]);
    let proto = session.proto;
    let engine = Arc::clone(&session.shared.engine);
    let clock = session.shared.config.clock.clone();
    let hub = engine.hub();
    let info = Arc::clone(&session.info);
    let deadline = (block_ms > 0).then(|| Instant::now() + Duration::from_millis(block_ms));
    let (tx, rx) = EngineReply::channel();
    tokio::spawn(async move {
        let mut tx = tx;
        let ids_at = tries.len() - keys.len();
        let work = async {
            for (n, key) in resolve.iter().enumerate() {
                let Some(key) = key else { continue };
                let info_args =
                    vec![Bytes::from_static(b"XINFO"), Bytes::from_static(b"STREAM"), key.clone()];
                let request = Request::read(clock(), Proto::Resp2, info_args);
                let bytes = engine.read(request.encode()).await?;
                tries[ids_at + n] = last_generated_id(&bytes);
            }
            run(engine, clock, hub, keys, tries, proto, deadline, &info, group).await
        };
        let outcome = tokio::select! {
            biased;
            () = tx.closed() => Err(EngineError::Dropped),
            outcome = work => outcome,
        };
        info.blocked.store(false, Ordering::Relaxed);
        let _ = tx.send(outcome);
    });
    Some(Pending::Blocked(rx))
}

/// The `last-generated-id` field of an XINFO STREAM reply in RESP2, or `0-0` (a missing key;
/// a key of another type makes the tries answer WRONGTYPE).
fn last_generated_id(reply: &[u8]) -> Bytes {
    let mut buf = bytes::BytesMut::from(reply);
    if let Ok(Some(Reply::Array(items))) = crate::resp::parse_reply(&mut buf) {
        for pair in items.chunks(2) {
            if let [Reply::Bulk(name), Reply::Bulk(id)] = pair {
                if &name[..] == b"last-generated-id" {
                    return id.clone();
                }
            }
        }
    }
    Bytes::from_static(b"0-0")
}

/// Whether reply bytes are a null (nothing to pop).
fn is_null(bytes: &[u8]) -> bool {
    matches!(bytes, b"*-1\r\n" | b"$-1\r\n" | b"_\r\n")
}

/// Starts a blocking command: a task loops as the module's doc says and answers once.
pub(super) fn start(session: &mut Session, args: Command) -> Pending {
    let proto = session.proto;
    let timeout = match timeout_arg(&args[args.len() - 1]) {
        Ok(seconds) => seconds,
        // The machine answers the same error; no need to go through the log for it.
        Err(e) => return ready(e, proto),
    };
    let engine = Arc::clone(&session.shared.engine);
    let clock = session.shared.config.clock.clone();
    let hub = engine.hub();
    let keys = blocked_keys(&args);
    let info = Arc::clone(&session.info);
    let deadline =
        (timeout > 0.0).then(|| Instant::now() + Duration::from_secs_f64(timeout.min(1e9)));
    let (tx, rx) = EngineReply::channel();
    tokio::spawn(async move {
        let mut tx = tx;
        let outcome = tokio::select! {
            // A client that left is looked at first: a pop whose client is gone never starts
            // another try, even when a push woke it at the same moment.
            biased;
            () = tx.closed() => Err(EngineError::Dropped),
            outcome = run(engine, clock, hub, keys, args, proto, deadline, &info, true) => outcome,
        };
        info.blocked.store(false, Ordering::Relaxed);
        let _ = tx.send(outcome);
    });
    Pending::Blocked(rx)
}

#[allow(clippy::too_many_arguments)]
async fn run(
    engine: Arc<dyn crate::engine::Engine>,
    clock: super::Clock,
    hub: Option<crate::hub::Hub>,
    keys: Vec<Bytes>,
    args: Command,
    proto: Proto,
    deadline: Option<Instant>,
    info: &super::clients::ClientInfo,
    logged: bool,
) -> Result<Bytes, EngineError> {
    let timed_out = || Ok(Reply::NullArray.to_bytes_in(proto));
    loop {
        let waiter = hub.as_ref().map(|h| h.wait_keys(&keys));
        let bytes = if logged {
            let request = Request::command(clock(), proto, args.clone());
            engine.write(request.encode()).await
        } else {
            engine.read(Request::read(clock(), proto, args.clone()).encode()).await
        };
        let bytes = bytes?;
        if !is_null(&bytes) {
            return Ok(bytes);
        }
        // Without a hub nothing would wake the loop: answer as a timeout.
        let Some(waiter) = waiter else { return timed_out() };
        // Blocked (CLIENT LIST's flag b) while waiting, as in Redis.
        info.blocked.store(true, Ordering::Relaxed);
        match deadline {
            None => waiter.ready().await,
            Some(deadline) => {
                if tokio::time::timeout_at(deadline, waiter.ready()).await.is_err() {
                    return timed_out();
                }
            }
        }
    }
}
