//! Requests another member forwarded here (`crate::forward`): each checked, executed on this
//! replica only (never forwarded again), in the order the member sent them; a read-index
//! call answered with this replica's read index.

use std::sync::Arc;

use bytes::Bytes;
use rsl::PeerResponder;

use super::{started, AttemptFuture, Inner};
use crate::forward::{self, error_bytes, Attempt, Kind};
use crate::limits;
use crate::request::Request;

impl Inner {
    /// A request another member forwarded: executed here only, never forwarded again. The
    /// local try starts before this returns (on the transport's thread, in the order the
    /// member sent its requests); the rest runs on the engine's runtime.
    pub(super) fn forwarded(self: Arc<Self>, from: u32, call: Bytes, responder: PeerResponder) {
        if forward::is_read_index_call(&call) {
            return self.answer_read_index(responder);
        }
        if let Some(members) = forward::decode_batch_call(&call) {
            return self.forwarded_batch(from, members, responder);
        }
        let Some((kind, request)) = forward::decode_call(&call) else {
            let text = format!("ERR a malformed forwarded request from replica {from}");
            return responder.respond(forward::error_answer(text));
        };
        if let Err(reason) = self.check_forwarded(kind, &request) {
            let text = format!("ERR bad forwarded request from replica {from}: {reason}");
            return responder.respond(forward::error_answer(text));
        }
        let runtime = self.runtime.clone();
        let attempt = started(async move { self.local(kind, request).await });
        runtime.spawn(async move { responder.respond(forward::encode_answer(attempt.await)) });
    }

    /// A batch of requests another member forwarded (`crate::forward`): each checked, runs
    /// of one kind handed to the local replica at once ([`Inner::start_run`]) before this
    /// returns, in order; one answer carries each request's own outcome, in order.
    fn forwarded_batch(
        self: Arc<Self>,
        from: u32,
        members: Vec<(Kind, Bytes)>,
        responder: PeerResponder,
    ) {
        let mut attempts: Vec<(Kind, AttemptFuture)> = Vec::with_capacity(members.len());
        let mut run: Vec<Bytes> = Vec::new();
        let mut run_kind = Kind::Write;
        let flush = |run: &mut Vec<Bytes>, kind, attempts: &mut Vec<(Kind, AttemptFuture)>| {
            let requests = std::mem::take(run);
            match requests.len() {
                0 => {}
                1 => {
                    let (inner, request) = (Arc::clone(&self), requests.into_iter().next());
                    let request = request.expect("one");
                    let first = started(async move { inner.local(kind, request).await });
                    attempts.push((kind, first));
                }
                _ => attempts.extend(self.start_run(kind, requests).into_iter().map(|a| (kind, a))),
            }
        };
        for (kind, request) in members {
            if let Err(reason) = self.check_forwarded(kind, &request) {
                flush(&mut run, run_kind, &mut attempts);
                let text = format!("ERR bad forwarded request from replica {from}: {reason}");
                let refused = Attempt::Done(Ok(error_bytes(text)));
                attempts.push((kind, Box::pin(std::future::ready(refused))));
                continue;
            }
            if kind != run_kind {
                flush(&mut run, run_kind, &mut attempts);
                run_kind = kind;
            }
            run.push(request);
        }
        flush(&mut run, run_kind, &mut attempts);
        self.runtime.spawn(async move {
            let mut answers = Vec::with_capacity(attempts.len());
            for (kind, attempt) in attempts {
                answers.push((kind, attempt.await));
            }
            responder.respond(forward::encode_batch_answer(answers));
        });
    }

    fn check_forwarded(&self, kind: Kind, request: &[u8]) -> Result<(), String> {
        let request = Request::decode(request).map_err(|e| e.to_string())?;
        // WRITE carries anything that goes through the log (a read behind a write too).
        if kind == Kind::Read && request.is_write() {
            return Err("a write sent as a read".into());
        }
        if let Request::Write { stamp_ms, .. } = request {
            let limit = (self.options.clock)().saturating_add(limits::FORWARD_STAMP_AHEAD_MS_MAX);
            if stamp_ms > limit {
                return Err("its stamp is too far in the future".into());
            }
        }
        Ok(())
    }
}
