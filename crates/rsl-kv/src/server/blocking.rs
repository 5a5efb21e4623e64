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
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::session::Session;
use super::{ready, Pending};
use crate::commands::lists::timeout_arg;
use crate::engine::EngineError;
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
    let (tx, rx) = oneshot::channel();
    tokio::spawn(async move {
        let mut tx = tx;
        let outcome = tokio::select! {
            // A client that left is looked at first: a pop whose client is gone never starts
            // another try, even when a push woke it at the same moment.
            biased;
            () = tx.closed() => Err(EngineError::Dropped),
            outcome = run(engine, clock, hub, keys, args, proto, deadline, &info) => outcome,
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
) -> Result<Bytes, EngineError> {
    let timed_out = || Ok(Reply::NullArray.to_bytes_in(proto));
    loop {
        let waiter = hub.as_ref().map(|h| h.wait_keys(&keys));
        let request = Request::command(clock(), proto, args.clone());
        let bytes = engine.write(request.encode()).await.map_err(|_| EngineError::Dropped)??;
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
