//! Forwarding a client's request to the primary, between members only.
//!
//! A replica that is not the primary hands the request (already encoded by the server) to
//! the primary as an rsl peer call ([`rsl::Node::call_peer`]): it travels on the replicas' own
//! connection, which mutual TLS authenticates with the cluster's certificates, so only a
//! member can forward, and the client port has no forwarding command at all. The primary's
//! handler executes it locally only (a forwarded request is never forwarded again, so there is
//! no forwarding loop) and answers with the state machine's reply, or with "not primary" and
//! the primary it knows, which sends the forwarder to try again.
//!
//! The call, and its answer:
//!
//! | call | answer |
//! | --- | --- |
//! | 1 byte: `W` (through the log) or `R` (a linearizable read) | 1 byte: [`ANSWER_REPLY`], [`ANSWER_NOT_PRIMARY`] or [`ANSWER_ERROR`] |
//! | the encoded request | the machine's RESP reply; the primary's id (4 bytes) or nothing; a RESP error reply |
//!
//! Waiting on a deposed primary: a forwarded request waits for its answer, for the call's
//! deadline, or for this replica to learn of another primary, whichever comes first
//! ([`await_answer`]). In the last case a read is tried again at once at the new primary (reads
//! are always safe to repeat), and a write, which the old primary may still have executed,
//! answers that its outcome is unknown once [`limits::DEPOSED_REPLY_WAIT_MS_MAX`] has passed
//! without an answer (a primary that handed over primacy on purpose still answers within it).
//! A request that was never sent (no connection, too many in flight) is tried again.

use std::future::Future;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use rsl::{PeerCallError, Role, View};
use tokio::sync::watch;

use crate::engine::EngineError;
use crate::limits;
use crate::resp::Reply;

/// The answer carries the state machine's reply.
pub const ANSWER_REPLY: u8 = 0;
/// The callee is not the primary; the primary it knows follows, if any.
pub const ANSWER_NOT_PRIMARY: u8 = 1;
/// The callee refused or failed the request; a RESP error reply for the client follows.
pub const ANSWER_ERROR: u8 = 2;

/// How a request is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Through the log (writes, and reads that follow a connection's unanswered write).
    Write,
    /// A linearizable read.
    Read,
}

impl Kind {
    fn byte(self) -> u8 {
        match self {
            Kind::Write => b'W',
            Kind::Read => b'R',
        }
    }
}

/// The end of one try at a request.
#[derive(Debug)]
pub enum Attempt {
    /// The request's outcome: reply bytes for the client (an error reply included), or an
    /// engine error.
    Done(Result<Bytes, EngineError>),
    /// The request was not executed; try again, at `hint` if it names the primary.
    Retry {
        /// The primary, if the refusal named one.
        hint: Option<u32>,
    },
}

/// An error reply as bytes.
pub fn error_bytes(text: impl AsRef<str>) -> Bytes {
    Reply::error(text).to_bytes()
}

/// The reply a client hears when a write's outcome is unknown (it may or may not have been
/// applied), saying why.
pub fn unknown_outcome(why: impl std::fmt::Display) -> Bytes {
    error_bytes(format!("ERR outcome unknown: {why}; the write may or may not have been applied"))
}

/// The payload of a forwarding call.
pub fn encode_call(kind: Kind, request: &[u8]) -> Bytes {
    let mut call = BytesMut::with_capacity(1 + request.len());
    call.put_u8(kind.byte());
    call.put_slice(request);
    call.freeze()
}

/// The kind and request of a forwarding call; `None` if it is not one.
pub fn decode_call(call: &Bytes) -> Option<(Kind, Bytes)> {
    let kind = match call.first()? {
        b'W' => Kind::Write,
        b'R' => Kind::Read,
        _ => return None,
    };
    Some((kind, call.slice(1..)))
}

/// The answer to a forwarding call, from the callee's local attempt.
pub fn encode_answer(attempt: Attempt) -> Bytes {
    let mut answer = BytesMut::new();
    match attempt {
        Attempt::Done(Ok(reply)) => {
            answer.put_u8(ANSWER_REPLY);
            answer.put_slice(&reply);
        }
        Attempt::Done(Err(e)) => {
            answer.put_u8(ANSWER_ERROR);
            answer.put_slice(&e.to_reply().to_bytes());
        }
        Attempt::Retry { hint } => {
            answer.put_u8(ANSWER_NOT_PRIMARY);
            if let Some(primary) = hint {
                answer.put_u32_le(primary);
            }
        }
    }
    answer.freeze()
}

/// An answer that carries a RESP error reply for the client.
pub fn error_answer(text: impl AsRef<str>) -> Bytes {
    let reply = error_bytes(text);
    let mut answer = BytesMut::with_capacity(1 + reply.len());
    answer.put_u8(ANSWER_ERROR);
    answer.put_slice(&reply);
    answer.freeze()
}

/// What the forwarder does with an answer.
fn decode_answer(answer: Bytes) -> Attempt {
    match answer.first() {
        Some(&ANSWER_REPLY) | Some(&ANSWER_ERROR) => Attempt::Done(Ok(answer.slice(1..))),
        Some(&ANSWER_NOT_PRIMARY) => {
            let hint = answer.get(1..5).map(|b| u32::from_le_bytes(b.try_into().expect("4")));
            Attempt::Retry { hint }
        }
        _ => Attempt::Done(Err(EngineError::Internal("a malformed forwarding answer".into()))),
    }
}

/// What a failed forwarding call means for the request.
fn call_failed(kind: Kind, error: PeerCallError) -> Attempt {
    match error {
        // Never handled: safe to try again, after the pause or the next view change.
        PeerCallError::NotConnected { .. }
        | PeerCallError::UnknownPeer { .. }
        | PeerCallError::NoHandler { .. } => Attempt::Retry { hint: None },
        PeerCallError::Overloaded { .. } | PeerCallError::PeerOverloaded { .. } => {
            Attempt::Done(Err(EngineError::Overloaded))
        }
        PeerCallError::TooLarge { size, max } => Attempt::Done(Ok(error_bytes(format!(
            "ERR request of {size} bytes is too large to forward (at most {max}); send it to \
             the primary"
        )))),
        PeerCallError::AnswerTooLarge { max, .. } => Attempt::Done(Ok(error_bytes(format!(
            "ERR the primary's reply is too large to forward (at most {max} bytes); send the \
             command to the primary"
        )))),
        PeerCallError::ShuttingDown => Attempt::Done(Err(EngineError::ShuttingDown)),
        // Possibly handled: a read is repeated, a write's outcome is unknown.
        e @ (PeerCallError::Timeout { .. }
        | PeerCallError::Lost { .. }
        | PeerCallError::Dropped { .. }) => match kind {
            Kind::Read => Attempt::Retry { hint: None },
            Kind::Write => Attempt::Done(Ok(unknown_outcome(e))),
        },
    }
}

/// Whether this replica, by `view`, follows another primary than `target` (or is itself the
/// primary): the primary a request was forwarded to has been deposed.
fn moved_on(view: &View, target: u32) -> bool {
    view.role == Some(Role::Primary) || view.primary.is_some_and(|p| p != target)
}

/// Waits for the answer of a call forwarded to `target`, or for this replica to learn of
/// another primary (module comment).
pub async fn await_answer(
    kind: Kind,
    target: u32,
    call: impl Future<Output = Result<Bytes, PeerCallError>>,
    mut view: watch::Receiver<View>,
) -> Attempt {
    tokio::pin!(call);
    let deposed = async {
        if view.wait_for(|v| moved_on(v, target)).await.is_err() {
            // The replica is gone: only the call can end now (it will, as shutting down).
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        biased;
        answer = &mut call => return settle(kind, answer),
        () = deposed => {}
    }
    if kind == Kind::Read {
        return Attempt::Retry { hint: None };
    }
    let grace = Duration::from_millis(limits::DEPOSED_REPLY_WAIT_MS_MAX);
    match tokio::time::timeout(grace, call).await {
        Ok(answer) => settle(kind, answer),
        Err(_) => Attempt::Done(Ok(unknown_outcome(format_args!(
            "replica {target}, the primary it was sent to, was deposed while it waited"
        )))),
    }
}

fn settle(kind: Kind, answer: Result<Bytes, PeerCallError>) -> Attempt {
    match answer {
        Ok(answer) => decode_answer(answer),
        Err(e) => call_failed(kind, e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(role: Role, primary: Option<u32>) -> View {
        View { role: Some(role), primary, ..View::default() }
    }

    #[test]
    fn calls_and_answers_round_trip() {
        let call = encode_call(Kind::Write, b"request");
        assert_eq!(decode_call(&call), Some((Kind::Write, Bytes::from_static(b"request"))));
        let call = encode_call(Kind::Read, b"");
        assert_eq!(decode_call(&call), Some((Kind::Read, Bytes::new())));
        assert_eq!(decode_call(&Bytes::from_static(b"Xrequest")), None);
        assert_eq!(decode_call(&Bytes::new()), None);

        let reply = Bytes::from_static(b"+OK\r\n");
        let done = decode_answer(encode_answer(Attempt::Done(Ok(reply.clone()))));
        assert!(matches!(done, Attempt::Done(Ok(r)) if r == reply));
        let refused = decode_answer(encode_answer(Attempt::Done(Err(EngineError::Overloaded))));
        assert!(matches!(refused, Attempt::Done(Ok(r)) if r.starts_with(b"-ERR overloaded")));
        let text = decode_answer(error_answer("ERR bad"));
        assert!(matches!(text, Attempt::Done(Ok(r)) if r[..] == b"-ERR bad\r\n"[..]));
        for hint in [None, Some(7)] {
            let retry = decode_answer(encode_answer(Attempt::Retry { hint }));
            assert!(matches!(retry, Attempt::Retry { hint: h } if h == hint));
        }
        assert!(matches!(decode_answer(Bytes::from_static(&[9])), Attempt::Done(Err(_))));
    }

    #[test]
    fn a_primary_is_deposed_once_another_is_known_or_this_replica_leads() {
        assert!(!moved_on(&view(Role::Follower, Some(1)), 1));
        assert!(!moved_on(&view(Role::Candidate, None), 1));
        assert!(!moved_on(&view(Role::Follower, None), 1));
        assert!(moved_on(&view(Role::Follower, Some(2)), 1));
        assert!(moved_on(&view(Role::Primary, Some(3)), 1));
    }

    #[test]
    fn a_failed_call_is_retried_only_when_it_cannot_have_run_or_is_a_read() {
        let not_sent = [
            PeerCallError::NotConnected { to: 1 },
            PeerCallError::UnknownPeer { to: 1 },
            PeerCallError::NoHandler { to: 1 },
        ];
        for e in not_sent {
            assert!(!e.maybe_handled());
            for kind in [Kind::Read, Kind::Write] {
                assert!(matches!(call_failed(kind, e.clone()), Attempt::Retry { hint: None }));
            }
        }
        let maybe = [
            PeerCallError::Timeout { to: 1, wait_ms: 5 },
            PeerCallError::Lost { to: 1 },
            PeerCallError::Dropped { to: 1 },
        ];
        for e in maybe {
            assert!(e.maybe_handled());
            assert!(matches!(call_failed(Kind::Read, e.clone()), Attempt::Retry { .. }));
            let Attempt::Done(Ok(reply)) = call_failed(Kind::Write, e) else { panic!() };
            assert!(reply.starts_with(b"-ERR outcome unknown: "), "{reply:?}");
        }
    }

    /// A call that never answers, for the deposed-primary tests.
    fn silent() -> impl Future<Output = Result<Bytes, PeerCallError>> {
        std::future::pending()
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_on_a_deposed_primary_ends_when_another_is_learned() {
        let (tx, rx) = watch::channel(view(Role::Follower, Some(1)));
        let read = tokio::spawn(await_answer(Kind::Read, 1, silent(), rx.clone()));
        let write = tokio::spawn(await_answer(Kind::Write, 1, silent(), rx.clone()));
        // A new ballot from the same primary changes nothing.
        tx.send_replace(View { ballot_round: 9, ..view(Role::Follower, Some(1)) });
        tokio::task::yield_now().await;
        assert!(!read.is_finished() && !write.is_finished());
        tx.send_replace(view(Role::Follower, Some(2)));
        assert!(matches!(read.await.unwrap(), Attempt::Retry { hint: None }));
        let Attempt::Done(Ok(reply)) = write.await.unwrap() else { panic!("not done") };
        assert!(reply.starts_with(b"-ERR outcome unknown: replica 1, the primary"), "{reply:?}");

        // A deposed primary that still answers within the grace period is heard.
        let answer = async {
            tokio::time::sleep(Duration::from_millis(limits::DEPOSED_REPLY_WAIT_MS_MAX / 2)).await;
            Ok(encode_answer(Attempt::Done(Ok(Bytes::from_static(b":1\r\n")))))
        };
        let late = await_answer(Kind::Write, 1, answer, rx).await;
        assert!(matches!(late, Attempt::Done(Ok(r)) if r[..] == b":1\r\n"[..]));
    }
}
