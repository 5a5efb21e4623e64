//! Linearizable reads at a follower by read index, as the engine serves them: a run of
//! plain reads joins the coalescer (module `read_index`), which hands it over with its call's
//! answer to the executor (at the index) or to the primary; this replica's writes start in
//! order behind the runs that arrived before them.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use rsl::{ReadConsistency, ReplicateError, Role};

use super::{read_index, started, AttemptFuture, Inner, ReplicatedEngine};
use crate::config::Reads;
use crate::engine::{EngineError, EngineReply};
use crate::forward::{self, Attempt, Kind};

/// A run of plain reads served by read index: its requests, and where its first try goes
/// once its call answered.
pub(super) struct Run {
    requests: Vec<Bytes>,
    deliver: tokio::sync::oneshot::Sender<Delivered>,
}

/// A run's first try, once its call answered.
pub(super) enum Delivered {
    /// At the executor, at the index (`Node::read_batch`): one outcome per read, in order.
    Index(Pin<Box<dyn Future<Output = Vec<ReadOutcome>> + Send>>),
    /// Without an index, at the primary: each read's first try and where it went.
    Tries(Vec<(AttemptFuture, Option<u32>)>),
}

/// A read's outcome at the replica.
pub(super) type ReadOutcome = Result<Bytes, ReplicateError>;

/// One read's first try of a run served by read index.
pub(super) enum First {
    /// Its outcome at the executor.
    Outcome(ReadOutcome),
    /// Its try at the primary, and which replica that was.
    Try(AttemptFuture, Option<u32>),
}

/// The most slots a follower's executor may still have to execute for a run whose index it
/// learned chosen (`Inner::hand_over`) to wait for it here; further behind (catching up after
/// a restart, say), the run goes to the primary as before, rather than wait out a backlog and
/// perhaps its deadline.
const LEARNED_AHEAD_MAX: u64 = 1024;

impl ReplicatedEngine {
    /// A run of plain reads at a replica that follows another primary: served here at the
    /// primary's read index, asked for after the run arrived (module `read_index`). One reply
    /// per read, in order; a read refused (not served) tries again as any read does.
    pub(super) fn read_by_index(&self, requests: Vec<Bytes>) -> Vec<EngineReply> {
        let (deliver, delivered) = tokio::sync::oneshot::channel();
        let n = requests.len();
        let firsts = async move {
            match delivered.await {
                Ok(Delivered::Index(batch)) => {
                    batch.await.into_iter().map(First::Outcome).collect()
                }
                Ok(Delivered::Tries(tries)) => {
                    tries.into_iter().map(|(first, at)| First::Try(first, at)).collect()
                }
                Err(_) => Vec::new(),
            }
        };
        // One future per read, which sets up a retry only if its read was refused (most are
        // answered by the executor).
        let replies = crate::engine::split(firsts, n)
            .into_iter()
            .zip(&requests)
            .map(|(part, request)| {
                let (inner, request) = (Arc::clone(&self.inner), request.clone());
                EngineReply::new(async move {
                    let (first, target): (AttemptFuture, _) = match part.await {
                        Some(First::Outcome(outcome)) => {
                            match inner.part_attempt(Kind::Read, Some(outcome)) {
                                Attempt::Done(outcome) => return outcome,
                                refused => (Box::pin(std::future::ready(refused)), None),
                            }
                        }
                        Some(First::Try(first, target)) => (first, target),
                        None => return Err(EngineError::Dropped),
                    };
                    inner.execute(Kind::Read, request, first, target).await
                })
            })
            .collect();
        self.inner.reads.join(Run { requests, deliver });
        replies
    }

    /// Whether a linearizable read here is served by read index: this replica follows
    /// another primary it knows.
    pub(super) fn reads_by_index(&self) -> bool {
        let seen = *self.inner.view.borrow();
        self.inner.options.reads == Reads::Linearizable
            && seen.role != Some(Role::Primary)
            && seen.primary.is_some_and(|p| p != self.inner.id)
    }
}

impl Inner {
    /// At the primary: answers a follower's read-index call with this replica's read index,
    /// or with "not primary" and the primary it knows (none if it is primary without a lease).
    pub(super) fn answer_read_index(&self, responder: rsl::PeerResponder) {
        let seen = *self.view.borrow();
        let primary = if seen.role == Some(Role::Primary) { None } else { seen.primary };
        let index = self.node.read_index();
        let chosen = index.and_then(|_| self.node.chosen());
        responder.respond(forward::encode_read_index_answer(index, chosen, primary));
    }

    /// Starts a write with `start` once every run of reads that arrived before it has been
    /// handed over (at once, in the usual case of none: module `read_index`); `dropped` is
    /// its outcome should the engine go first.
    pub(super) fn write_in_order<T: Send + 'static>(
        &self,
        start: impl FnOnce() -> Pin<Box<dyn Future<Output = T> + Send>> + Send + 'static,
        dropped: impl FnOnce() -> T + Send + 'static,
    ) -> Pin<Box<dyn Future<Output = T> + Send>> {
        match self.reads.in_order(start) {
            Ok(started) => started,
            Err(later) => Box::pin(async move {
                match later.await {
                    Ok(started) => started.await,
                    Err(_) => dropped(),
                }
            }),
        }
    }

    /// Sends `members` to `primary` as one batch call (behind this replica's earlier runs of
    /// reads if it carries a write) and resolves to each member's attempt.
    pub(super) fn send_batch_call(
        self: &Arc<Self>,
        primary: u32,
        members: &[(Kind, Bytes)],
        kinds: Vec<Kind>,
    ) -> Pin<Box<dyn Future<Output = Vec<Attempt>> + Send>> {
        let (node, call) = (Arc::clone(&self.node), forward::encode_batch_call(members));
        let n = kinds.len();
        let writes = kinds.contains(&Kind::Write);
        let start = move || -> Pin<Box<dyn Future<Output = Vec<Attempt>> + Send>> {
            let call = node.call_peer(primary, call, node.call_timeout());
            Box::pin(forward::await_batch_answer(kinds, primary, call, node.watch()))
        };
        if !writes {
            return start();
        }
        let dropped = move || (0..n).map(|_| Attempt::Done(Err(EngineError::Dropped))).collect();
        self.write_in_order(start, dropped)
    }

    /// Sends a read-index call to the primary this replica follows (module `read_index`).
    /// When the answer's index is past what this replica executed, it first learns what the
    /// answer says is chosen (`Node::learn_chosen`): the slots it accepted at the primary's
    /// ballot up to the primary's commit point, which it would otherwise learn only from the
    /// primary's next message, up to a heartbeat away (`Inner::known_chosen` keeps the commit
    /// point that gave it, for `hand_over`).
    pub(super) fn ask_read_index(self: &Arc<Self>) -> read_index::IndexFuture {
        let seen = *self.view.borrow();
        let primary = seen.primary.filter(|&p| p != self.id && seen.role != Some(Role::Primary));
        let Some(primary) = primary else { return Box::pin(std::future::ready(None)) };
        let call =
            self.node.call_peer(primary, forward::read_index_call(), self.node.call_timeout());
        let answer = forward::await_read_index(primary, call, self.node.watch());
        let me = Arc::clone(self);
        Box::pin(async move {
            let answer = answer.await?;
            let behind = me.node.executed() < answer.index
                && me.known_chosen.load(Ordering::Relaxed) < answer.index;
            if let Some((ballot_round, through)) = answer.chosen.filter(|_| behind) {
                let chosen = rsl::Chosen { primary, ballot_round, through };
                if let Some(commit) = me.node.learn_chosen(chosen).await {
                    me.known_chosen.fetch_max(commit, Ordering::Relaxed);
                }
            }
            Some(answer.index)
        })
    }

    /// Hands runs of reads over with their call's answer: with an index, each run served here
    /// from the machine's keyspace if this replica has executed the index
    /// (`Inner::read_here`), else to the executor in one message (`Node::read_batch` at
    /// `AtLeast(index)`); without one, to the primary as reads (a batch call per run), as
    /// before read index.
    pub(super) fn hand_over(self: &Arc<Self>, index: Option<u64>, runs: Vec<Run>) {
        // A follower behind the index would wait for it: the primary tells the followers the
        // slots it executed are chosen with its next message, which may be a heartbeat up to
        // `heartbeat_ticks` away when no write is going on. Those runs go to the primary, as
        // without an index, rather than wait.
        let executed = self.node.executed();
        let learned = index.is_some_and(|index| {
            executed < index
                && index - executed <= LEARNED_AHEAD_MAX
                && self.known_chosen.load(Ordering::Relaxed) >= index
        });
        let behind = !learned && index.is_some_and(|index| executed < index);
        let counts = &self.reads.counts;
        if behind {
            counts.behind.fetch_add(runs.len() as u64, Ordering::Relaxed);
        }
        if learned {
            counts.learned.fetch_add(runs.len() as u64, Ordering::Relaxed);
        }
        for Run { requests, deliver } in runs {
            let first = match index.filter(|_| !behind) {
                Some(index) => match self.read_here(ReadConsistency::AtLeast(index), &requests) {
                    // Executed already: served on this task from the machine's keyspace.
                    Some(answers) => Delivered::Index(Box::pin(std::future::ready(
                        answers.into_iter().map(Ok).collect(),
                    ))),
                    None => {
                        let node = Arc::clone(&self.node);
                        let consistency = ReadConsistency::AtLeast(index);
                        Delivered::Index(started(async move {
                            node.read_batch(requests, consistency).await
                        }))
                    }
                },
                None => Delivered::Tries(self.reads_to_primary(requests)),
            };
            let _ = deliver.send(first);
        }
    }

    /// A run of reads with no read index: to the primary as it would have gone before read
    /// index (a batch call, or a single request's first try).
    pub(super) fn reads_to_primary(
        self: &Arc<Self>,
        requests: Vec<Bytes>,
    ) -> Vec<(AttemptFuture, Option<u32>)> {
        let seen = *self.view.borrow();
        let primary = seen.primary.filter(|&p| p != self.id && seen.role != Some(Role::Primary));
        let fits =
            forward::batch_call_bytes(requests.iter().map(Bytes::len)) <= forward::BATCH_BYTES_MAX;
        match primary {
            Some(p) if requests.len() >= 2 && fits => {
                let members: Vec<(Kind, Bytes)> =
                    requests.into_iter().map(|r| (Kind::Read, r)).collect();
                let kinds = vec![Kind::Read; members.len()];
                let answers = self.send_batch_call(p, &members, kinds);
                crate::engine::split(answers, members.len())
                    .into_iter()
                    .map(|part| {
                        let first: AttemptFuture = Box::pin(async move {
                            part.await.unwrap_or(Attempt::Done(Err(EngineError::Dropped)))
                        });
                        (first, Some(p))
                    })
                    .collect()
            }
            _ => requests
                .into_iter()
                .map(|request| self.start_attempt(Kind::Read, request, None))
                .collect(),
        }
    }
}
