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
//! A run of a connection's pipelined commands read together goes as one **batch call**, one
//! message carrying each command and one answer carrying each command's answer, in order:
//!
//! | batch call | batch answer |
//! | --- | --- |
//! | 1 byte: `B`; the count (4 bytes, little-endian) | 1 byte: [`ANSWER_BATCH`]; the count (4 bytes) |
//! | per command: `W` or `R`, its length (4 bytes), the encoded request | per command: its answer's length (4 bytes), its answer (as a single call's, above) |
//!
//! A **read-index call** asks the primary only for the slot a linearizable read starting now
//! must wait for ([`rsl::Node::read_index`]); the follower then serves its reads from its own
//! state once it has executed that slot (`crate::replicated`, module `read_index`):
//!
//! | read-index call | answer |
//! | --- | --- |
//! | 1 byte: `I` | 1 byte: [`ANSWER_INDEX`] and the index (8 bytes, little-endian); or [`ANSWER_NOT_PRIMARY`] and the primary's id (4 bytes) or nothing (not primary, or no lease) |
//!
//! Any other answer (a primary of a build before read-index calls answers [`ANSWER_ERROR`])
//! sends the reads to the primary as today's reads.
//!
//! The primary executes a batch's runs of one kind at once (`Node::replicate_batch`,
//! `Node::read_batch`) and answers each command with its own outcome. An answer larger than a
//! call may carry keeps the replies that fit, in order; each command after them is answered
//! "retry" if it is a read (a read is safe to repeat) or, if a write, with an error saying its
//! reply was too large to forward (it was executed: it is never repeated).
//!
//! At most once, for a batch as for a single request: only a command the primary answered
//! "not primary" (it was not executed) is sent again, alone, after the answer; a command whose
//! answer is an outcome, an error included, is never sent again, and when the whole call's
//! fate is unknown (timed out, lost, its primary deposed) every write of the batch answers
//! that its outcome is unknown while its reads are tried again. A batch split across a
//! primary change (the old primary executed its first commands and refused the rest) thus
//! ends with the first commands' replies from the old primary and the rest executed once, at
//! the new one, in their order. A batch call refused as a whole with an error (a primary of a
//! build before batch calls, mid-upgrade, takes one for a malformed request) executed
//! nothing: each of its commands is sent again alone, at once ([`Attempt::Resend`]).
//!
//! Waiting on a deposed primary: a forwarded request waits for its answer, for the call's
//! deadline (the replica's `consensus.call_timeout_ms`, as its own calls: [`rsl::Node::
//! call_timeout`]), or for this replica to learn of another primary, whichever comes first
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
/// The answer to a batch call: one answer per command follows (module comment).
pub const ANSWER_BATCH: u8 = 3;
/// The first byte of a batch call.
const BATCH_CALL: u8 = b'B';
/// A read-index call (its only byte).
const READ_INDEX_CALL: u8 = b'I';
/// The answer to a read-index call: the index follows (8 bytes, little-endian).
pub const ANSWER_INDEX: u8 = 4;
/// Bytes a batch call (or answer) takes besides its members: the tag and the count.
pub const BATCH_HEADER_BYTES: usize = 1 + 4;
/// Bytes a member of a batch call takes besides its request: its kind and its length.
pub const BATCH_MEMBER_BYTES: usize = 1 + 4;
/// The largest forwarded batch call and answer, in bytes.
pub const BATCH_BYTES_MAX: usize = rsl::PEER_CALL_BYTES_MAX;
/// The error a write of a batch hears when its reply did not fit the batch's answer.
const WRITE_REPLY_OVERFLOW: &str = "ERR the primary's reply is too large to forward with the \
     other replies of its pipeline; the write was applied";
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
    /// The request was not executed: its batch call was refused as a whole (a primary of a
    /// version before batch calls refuses one as a malformed request); send it again at
    /// once, alone, to the same replica.
    Resend,
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
        // Not made by a callee's own attempt (only by a forwarder, of a batch's answer); as
        // an answer, it means "not executed, try again".
        Attempt::Resend => answer.put_u8(ANSWER_NOT_PRIMARY),
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

/// The payload of a batch call: `members`, in order (module comment). The caller keeps it
/// within [`BATCH_BYTES_MAX`] ([`batch_call_bytes`]).
pub fn encode_batch_call(members: &[(Kind, Bytes)]) -> Bytes {
    let size = batch_call_bytes(members.iter().map(|(_, r)| r.len()));
    let mut call = BytesMut::with_capacity(size);
    call.put_u8(BATCH_CALL);
    call.put_u32_le(u32::try_from(members.len()).expect("a batch's count fits 4 bytes"));
    for (kind, request) in members {
        call.put_u8(kind.byte());
        call.put_u32_le(u32::try_from(request.len()).expect("a request's size fits 4 bytes"));
        call.put_slice(request);
    }
    call.freeze()
}

/// The size of a batch call of requests of these sizes.
pub fn batch_call_bytes(sizes: impl IntoIterator<Item = usize>) -> usize {
    BATCH_HEADER_BYTES + sizes.into_iter().map(|n| BATCH_MEMBER_BYTES + n).sum::<usize>()
}

/// The members of a batch call, in order; `None` if it is not one (a single call, or a
/// malformed batch).
pub fn decode_batch_call(call: &Bytes) -> Option<Vec<(Kind, Bytes)>> {
    if call.first() != Some(&BATCH_CALL) {
        return None;
    }
    let count = u32::from_le_bytes(call.get(1..5)?.try_into().ok()?) as usize;
    let mut members = Vec::with_capacity(count.min(call.len() / BATCH_MEMBER_BYTES));
    let mut at = BATCH_HEADER_BYTES;
    for _ in 0..count {
        let kind = match call.get(at)? {
            b'W' => Kind::Write,
            b'R' => Kind::Read,
            _ => return None,
        };
        let len = u32::from_le_bytes(call.get(at + 1..at + 5)?.try_into().ok()?) as usize;
        let start = at + BATCH_MEMBER_BYTES;
        let end = start.checked_add(len).filter(|&end| end <= call.len())?;
        members.push((kind, call.slice(start..end)));
        at = end;
    }
    (at == call.len()).then_some(members)
}

/// The answer to a batch call: each member's attempt, in order, as many as fit
/// [`BATCH_BYTES_MAX`]; a member after those is answered "retry" if a read, else with an
/// error saying its reply did not fit (module comment).
pub fn encode_batch_answer(attempts: Vec<(Kind, Attempt)>) -> Bytes {
    encode_batch_answer_within(attempts, BATCH_BYTES_MAX)
}

fn encode_batch_answer_within(attempts: Vec<(Kind, Attempt)>, max: usize) -> Bytes {
    let overflow = |kind| match kind {
        Kind::Read => encode_answer(Attempt::Retry { hint: None }),
        Kind::Write => error_answer(WRITE_REPLY_OVERFLOW),
    };
    // Room kept for the members after each one, should their replies not fit.
    let reserve = 4 + 1 + error_bytes(WRITE_REPLY_OVERFLOW).len();
    let n = attempts.len();
    let mut answer = BytesMut::with_capacity(BATCH_HEADER_BYTES + n * 8);
    answer.put_u8(ANSWER_BATCH);
    answer.put_u32_le(u32::try_from(n).expect("a batch's count fits 4 bytes"));
    for (i, (kind, attempt)) in attempts.into_iter().enumerate() {
        let mut one = encode_answer(attempt);
        let after = (n - i - 1) * reserve;
        if answer.len() + 4 + one.len() + after > max {
            one = overflow(kind);
        }
        answer.put_u32_le(u32::try_from(one.len()).expect("an answer's size fits 4 bytes"));
        answer.put_slice(&one);
    }
    answer.freeze()
}

/// What the forwarder does with the answer to a batch call of `n` members: each member's
/// attempt, in order. A single error answer is a refusal of the whole call, none of it
/// executed: by a primary of a version before batch calls (to which a batch call is a
/// malformed request: mixed versions during a rolling upgrade), or of a batch this one
/// judged malformed; each member is sent again alone ([`Attempt::Resend`]). Any other
/// single answer applies to every member.
fn decode_batch_answer(answer: Bytes, n: usize) -> Vec<Attempt> {
    let malformed =
        || (0..n).map(|_| Attempt::Done(Err(EngineError::Internal(MALFORMED.into())))).collect();
    match answer.first() {
        Some(&ANSWER_BATCH) => {}
        Some(&ANSWER_ERROR) => return (0..n).map(|_| Attempt::Resend).collect(),
        Some(&ANSWER_REPLY) | Some(&ANSWER_NOT_PRIMARY) => {
            return (0..n).map(|_| decode_answer(answer.clone())).collect();
        }
        _ => return malformed(),
    }
    let count = answer.get(1..5).map(|b| u32::from_le_bytes(b.try_into().expect("4")) as usize);
    if count != Some(n) {
        return malformed();
    }
    let mut attempts = Vec::with_capacity(n);
    let mut at = BATCH_HEADER_BYTES;
    for _ in 0..n {
        let Some(len) = answer.get(at..at + 4) else { return malformed() };
        let len = u32::from_le_bytes(len.try_into().expect("4")) as usize;
        let Some(end) = (at + 4).checked_add(len).filter(|&end| end <= answer.len()) else {
            return malformed();
        };
        attempts.push(decode_answer(answer.slice(at + 4..end)));
        at = end;
    }
    if at != answer.len() {
        return malformed();
    }
    attempts
}

const MALFORMED: &str = "a malformed forwarding answer";

/// What the forwarder does with an answer.
fn decode_answer(answer: Bytes) -> Attempt {
    match answer.first() {
        Some(&ANSWER_REPLY) | Some(&ANSWER_ERROR) => Attempt::Done(Ok(answer.slice(1..))),
        Some(&ANSWER_NOT_PRIMARY) => {
            let hint = answer.get(1..5).map(|b| u32::from_le_bytes(b.try_into().expect("4")));
            Attempt::Retry { hint }
        }
        _ => Attempt::Done(Err(EngineError::Internal(MALFORMED.into()))),
    }
}

/// The payload of a read-index call.
pub fn read_index_call() -> Bytes {
    Bytes::from_static(&[READ_INDEX_CALL])
}

/// Whether `call` is a read-index call.
pub fn is_read_index_call(call: &[u8]) -> bool {
    call == [READ_INDEX_CALL]
}

/// The answer to a read-index call: the index, with what the primary says is chosen
/// ([`rsl::Node::chosen`]: its ballot's round and its commit point) if it can say, or "not
/// primary" with the primary known if any (no index: not primary, or no lease now). The
/// index alone (9 bytes) is what a primary of a version before the chosen part answers; the
/// follower then learns nothing from it.
pub fn encode_read_index_answer(
    index: Option<u64>,
    chosen: Option<rsl::Chosen>,
    primary: Option<u32>,
) -> Bytes {
    match index {
        Some(index) => {
            let mut answer = BytesMut::with_capacity(25);
            answer.put_u8(ANSWER_INDEX);
            answer.put_u64_le(index);
            if let Some(chosen) = chosen {
                answer.put_u64_le(chosen.ballot_round);
                answer.put_u64_le(chosen.through);
            }
            answer.freeze()
        }
        None => encode_answer(Attempt::Retry { hint: primary }),
    }
}

/// A read-index answer: the index, and what the primary said is chosen (if it said).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadIndexAnswer {
    /// The slot a read must wait for.
    pub index: u64,
    /// The primary's ballot round and commit point.
    pub chosen: Option<(u64, u64)>,
}

/// What a read-index answer carries; `None` for any other answer.
fn decode_read_index_answer(answer: &[u8]) -> Option<ReadIndexAnswer> {
    let word = |at: usize| -> Option<u64> {
        Some(u64::from_le_bytes(answer.get(at..at + 8)?.try_into().ok()?))
    };
    match (answer.first(), answer.len()) {
        (Some(&ANSWER_INDEX), 9) => Some(ReadIndexAnswer { index: word(1)?, chosen: None }),
        (Some(&ANSWER_INDEX), 25) => {
            Some(ReadIndexAnswer { index: word(1)?, chosen: Some((word(9)?, word(17)?)) })
        }
        _ => None,
    }
}

/// Waits for the answer of a read-index call sent to `target`: its index and what `target`
/// said is chosen, or `None` if it gave none, the call failed, or this replica learned of
/// another primary first (the reads then go to the primary as reads of their own, which
/// follow the new one).
pub async fn await_read_index(
    target: u32,
    call: impl Future<Output = Result<Bytes, PeerCallError>>,
    view: watch::Receiver<View>,
) -> Option<ReadIndexAnswer> {
    match hear(false, call, target, view).await {
        Heard::Answer(Ok(answer)) => decode_read_index_answer(&answer),
        Heard::Answer(Err(_)) | Heard::Deposed => None,
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
    view: watch::Receiver<View>,
) -> Attempt {
    match hear(kind == Kind::Write, call, target, view).await {
        Heard::Answer(answer) => settle(kind, answer),
        Heard::Deposed => deposed(kind, target),
    }
}

/// Waits for the answer of a batch call of members of `kinds` forwarded to `target`, as
/// [`await_answer`] does for one: each member's attempt, in order. A failed call, or a
/// deposed primary, is a failure of each member, by its kind (module comment).
pub async fn await_batch_answer(
    kinds: Vec<Kind>,
    target: u32,
    call: impl Future<Output = Result<Bytes, PeerCallError>>,
    view: watch::Receiver<View>,
) -> Vec<Attempt> {
    let writes = kinds.contains(&Kind::Write);
    match hear(writes, call, target, view).await {
        Heard::Answer(Ok(answer)) => decode_batch_answer(answer, kinds.len()),
        Heard::Answer(Err(e)) => kinds.into_iter().map(|k| call_failed(k, e.clone())).collect(),
        Heard::Deposed => kinds.into_iter().map(|k| deposed(k, target)).collect(),
    }
}

/// How a forwarded call ended.
enum Heard {
    /// The call's own outcome.
    Answer(Result<Bytes, PeerCallError>),
    /// Its primary was deposed, and no answer came within the grace period (if the call
    /// carries writes; none is waited for otherwise).
    Deposed,
}

async fn hear(
    writes: bool,
    call: impl Future<Output = Result<Bytes, PeerCallError>>,
    target: u32,
    mut view: watch::Receiver<View>,
) -> Heard {
    tokio::pin!(call);
    let deposed = async {
        if view.wait_for(|v| moved_on(v, target)).await.is_err() {
            // The replica is gone: only the call can end now (it will, as shutting down).
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        biased;
        answer = &mut call => return Heard::Answer(answer),
        () = deposed => {}
    }
    if !writes {
        return Heard::Deposed;
    }
    let grace = Duration::from_millis(limits::DEPOSED_REPLY_WAIT_MS_MAX);
    match tokio::time::timeout(grace, call).await {
        Ok(answer) => Heard::Answer(answer),
        Err(_) => Heard::Deposed,
    }
}

/// A request whose primary was deposed before it answered: a read is tried again, a write's
/// outcome is unknown.
fn deposed(kind: Kind, target: u32) -> Attempt {
    match kind {
        Kind::Read => Attempt::Retry { hint: None },
        Kind::Write => Attempt::Done(Ok(unknown_outcome(format_args!(
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
    fn read_index_calls_and_answers_round_trip() {
        assert!(is_read_index_call(&read_index_call()));
        assert!(!is_read_index_call(b"IX") && !is_read_index_call(b""));
        assert_eq!(decode_call(&read_index_call()), None, "not a forwarded request");
        assert_eq!(decode_batch_call(&read_index_call()), None);
        for index in [0, 7, u64::MAX] {
            let answer = encode_read_index_answer(Some(index), None, Some(3));
            let decoded = decode_read_index_answer(&answer);
            assert_eq!(
                decoded,
                Some(ReadIndexAnswer { index, chosen: None }),
                "an older primary's"
            );
            let chosen = rsl::Chosen { primary: 3, ballot_round: 9, through: index / 2 };
            let answer = encode_read_index_answer(Some(index), Some(chosen), Some(3));
            let decoded = decode_read_index_answer(&answer);
            assert_eq!(decoded, Some(ReadIndexAnswer { index, chosen: Some((9, index / 2)) }));
            let cut = &answer[..answer.len() - 1];
            assert_eq!(decode_read_index_answer(cut), None, "cut short");
        }
        let none = encode_read_index_answer(None, None, Some(3));
        assert_eq!(decode_read_index_answer(&none), None);
        assert!(matches!(decode_answer(none), Attempt::Retry { hint: Some(3) }));
        assert_eq!(decode_read_index_answer(&error_answer("ERR old primary")), None);
        assert_eq!(decode_read_index_answer(&[ANSWER_INDEX, 1, 2]), None, "cut short");
    }

    #[test]
    fn batch_calls_round_trip_and_malformed_ones_are_refused() {
        let members = vec![
            (Kind::Write, Bytes::from_static(b"first")),
            (Kind::Read, Bytes::new()),
            (Kind::Write, Bytes::from_static(b"third")),
        ];
        let call = encode_batch_call(&members);
        assert_eq!(call.len(), batch_call_bytes([5, 0, 5]));
        assert_eq!(decode_batch_call(&call), Some(members));
        // A single call is not a batch, and a batch is not a single call.
        assert_eq!(decode_batch_call(&encode_call(Kind::Write, b"B")), None);
        assert_eq!(decode_call(&call), None);
        let members = [(Kind::Read, Bytes::from_static(b"x"))];
        let call = encode_batch_call(&members);
        for cut in 0..call.len() {
            assert_eq!(decode_batch_call(&call.slice(..cut)), None, "cut at {cut}");
        }
        let mut longer = call.to_vec();
        longer.push(0);
        assert_eq!(decode_batch_call(&Bytes::from(longer)), None);
        let mut bad_kind = call.to_vec();
        bad_kind[BATCH_HEADER_BYTES] = b'X';
        assert_eq!(decode_batch_call(&Bytes::from(bad_kind)), None);
    }

    /// Each member of a batch keeps its own answer, in order: a reply, an engine error, a
    /// refusal naming the primary, one naming none. Only the refused (not executed) members
    /// are to be sent again. Proven by planted bugs: the decoded answers reversed, and every
    /// member retried when one was refused, each fail it.
    #[test]
    fn a_batch_answer_gives_each_member_its_own_outcome_in_order() {
        let attempts = vec![
            (Kind::Write, Attempt::Done(Ok(Bytes::from_static(b":1\r\n")))),
            (Kind::Write, Attempt::Done(Err(EngineError::Overloaded))),
            (Kind::Read, Attempt::Done(Ok(Bytes::from_static(b"$1\r\nv\r\n")))),
            (Kind::Write, Attempt::Retry { hint: Some(3) }),
            (Kind::Read, Attempt::Retry { hint: None }),
        ];
        let decoded = decode_batch_answer(encode_batch_answer(attempts), 5);
        let [one, two, three, four, five] = &decoded[..] else { panic!("{decoded:?}") };
        assert!(matches!(one, Attempt::Done(Ok(r)) if r[..] == b":1\r\n"[..]), "{one:?}");
        assert!(matches!(two, Attempt::Done(Ok(r)) if r.starts_with(b"-ERR overloaded")));
        assert!(matches!(three, Attempt::Done(Ok(r)) if r[..] == b"$1\r\nv\r\n"[..]));
        assert!(matches!(four, Attempt::Retry { hint: Some(3) }), "{four:?}");
        assert!(matches!(five, Attempt::Retry { hint: None }), "{five:?}");

        // A whole-call error (a primary of a version before batch calls, to which a batch is
        // a malformed request): nothing executed, every member is sent again alone.
        let all = decode_batch_answer(error_answer("ERR a malformed forwarded request"), 2);
        assert_eq!(all.len(), 2);
        assert!(all.iter().all(|a| matches!(a, Attempt::Resend)), "{all:?}");
        // Any other whole-call answer applies to every member.
        let all = decode_batch_answer(encode_answer(Attempt::Retry { hint: Some(2) }), 2);
        assert!(all.iter().all(|a| matches!(a, Attempt::Retry { hint: Some(2) })), "{all:?}");
        // A count that does not match, a cut answer: every member hears it was malformed.
        let two = encode_batch_answer(vec![
            (Kind::Read, Attempt::Retry { hint: None }),
            (Kind::Read, Attempt::Retry { hint: None }),
        ]);
        for answer in [two.clone(), two.slice(..two.len() - 1)] {
            let n = if answer.len() == two.len() { 3 } else { 2 };
            let got = decode_batch_answer(answer, n);
            assert_eq!(got.len(), n);
            assert!(got.iter().all(|a| matches!(a, Attempt::Done(Err(EngineError::Internal(_))))));
        }
    }

    /// An answer too large for one call keeps the replies that fit, in order; after them a
    /// read is to be retried and a write (executed) hears that its reply did not fit.
    #[test]
    fn a_batch_answer_too_large_keeps_the_first_replies_and_never_retries_a_write() {
        let big = Bytes::from(vec![b'x'; 1000]);
        let attempts = vec![
            (Kind::Read, Attempt::Done(Ok(big.clone()))),
            (Kind::Write, Attempt::Done(Ok(big.clone()))),
            (Kind::Read, Attempt::Done(Ok(big.clone()))),
            (Kind::Write, Attempt::Done(Ok(Bytes::from_static(b"+OK\r\n")))),
        ];
        let answer = encode_batch_answer_within(attempts, 1500);
        assert!(answer.len() <= 1500, "{}", answer.len());
        let decoded = decode_batch_answer(answer, 4);
        assert!(matches!(&decoded[0], Attempt::Done(Ok(r)) if *r == big), "{:?}", decoded[0]);
        let Attempt::Done(Ok(write)) = &decoded[1] else { panic!("{:?}", decoded[1]) };
        assert!(write.starts_with(b"-ERR the primary's reply is too large"), "{write:?}");
        assert!(matches!(&decoded[2], Attempt::Retry { hint: None }), "{:?}", decoded[2]);
        // A small reply after them still fits.
        assert!(matches!(&decoded[3], Attempt::Done(Ok(r)) if r[..] == b"+OK\r\n"[..]));
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_or_deposed_batch_call_repeats_its_reads_and_never_its_writes() {
        let kinds = vec![Kind::Write, Kind::Read, Kind::Write];
        let (_tx, rx) = watch::channel(view(Role::Follower, Some(1)));
        let lost = async { Err(PeerCallError::Lost { to: 1 }) };
        let got = await_batch_answer(kinds.clone(), 1, lost, rx.clone()).await;
        let unknown = |a: &Attempt| matches!(a, Attempt::Done(Ok(r)) if r.starts_with(b"-ERR outcome unknown"));
        assert!(unknown(&got[0]) && unknown(&got[2]), "{got:?}");
        assert!(matches!(got[1], Attempt::Retry { hint: None }), "{got:?}");
        let not_sent = async { Err(PeerCallError::NotConnected { to: 1 }) };
        let got = await_batch_answer(kinds.clone(), 1, not_sent, rx).await;
        assert!(got.iter().all(|a| matches!(a, Attempt::Retry { hint: None })), "{got:?}");

        let (tx, rx) = watch::channel(view(Role::Follower, Some(1)));
        let batch = tokio::spawn(await_batch_answer(kinds, 1, silent(), rx));
        tx.send_replace(view(Role::Follower, Some(2)));
        let got = batch.await.unwrap();
        assert!(unknown(&got[0]) && unknown(&got[2]), "{got:?}");
        assert!(matches!(got[1], Attempt::Retry { hint: None }), "{got:?}");
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
