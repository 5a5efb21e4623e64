//! Linearizable reads at a follower by read index: the follower asks the primary only for
//! the slot a linearizable read must wait for ([`rsl::Node::read_index`], a few bytes each
//! way), then serves the reads from its own state once it has executed that slot
//! (`Node::read_batch` at `AtLeast(index)`), as etcd and Raft do. The primary does none of
//! the reads' work and the values never cross the network. A follower that has not executed
//! the index yet when the answer comes sends the run to the primary instead, as without an
//! index: it would otherwise wait for the primary's next message to say the slots are
//! chosen, which, when no write is going on, is a heartbeat up to `heartbeat_ticks` away
//! (50 ms by default; the core does not announce a new commit point at once).
//!
//! [`Coalescer`] decides which call's answer each run of reads takes, and holds back this
//! replica's writes until the runs that arrived before them are served:
//!
//! - **A run takes the answer of a call sent after it arrived**, never of one already in
//!   flight: a write acknowledged between that call's answer and the run's arrival would be
//!   missed. A run that arrives while no call is in flight sends one at once; runs that arrive
//!   while one is in flight wait together for the next, sent as soon as the one in flight
//!   answers: one call per round trip however many runs arrive.
//! - **A write waits for the runs that arrived before it**: it is sent (forwarded, or proposed
//!   here) only once every such run was handed to the executor (or, without an index, sent to
//!   the primary). Otherwise a connection's pipelined `GET k` then `SET k v` could have the
//!   `SET` executed here before the `GET` reached the executor, and the `GET` would answer
//!   the value its own connection wrote after it. Held writes leave in the order they came.
//!   A run goes to the executor only once this replica has executed its index, so the
//!   executor serves it as it takes it, before any slot of a write sent after it (such a
//!   write reaches the log only after the run's message is in the executor's queue).

use std::collections::{BTreeSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use tokio::sync::oneshot;

/// A read-index call, sent when made: resolves to the primary's index, or to `None` (no
/// primary known, not primary, no lease, the call failed): the runs then go to the primary as
/// reads of their own.
pub(crate) type IndexFuture = Pin<Box<dyn Future<Output = Option<u64>> + Send>>;

/// Sends one read-index call now.
pub(crate) type Ask = Box<dyn Fn() -> IndexFuture + Send + Sync>;

/// Hands the runs of one call over with its answer (to the executor, or to the primary).
pub(crate) type HandOver<R> = Box<dyn Fn(Option<u64>, Vec<R>) + Send + Sync>;

/// Counts of what the coalescer did (`RSL.STATUS`, INFO).
#[derive(Debug, Default)]
pub(crate) struct Counts {
    /// Read-index calls sent.
    pub(crate) calls: AtomicU64,
    /// Runs of reads that joined a call.
    pub(crate) runs: AtomicU64,
    /// Runs handed over without an index (sent to the primary as reads).
    pub(crate) fallbacks: AtomicU64,
    /// Runs with an index this replica had not executed yet, nor learned chosen from the
    /// answer (sent to the primary as reads, counted by the engine).
    pub(crate) behind: AtomicU64,
    /// Runs with an index this replica had not executed yet but learned chosen from the
    /// answer (`Node::learn_chosen`): served here once the executor reaches it (counted by
    /// the engine).
    pub(crate) learned: AtomicU64,
    /// Writes held behind earlier runs.
    pub(crate) held: AtomicU64,
}

/// The read-index calls of one replica and the order of its writes behind its reads (module
/// comment). `R` is a run of reads.
pub(crate) struct Coalescer<R> {
    state: Mutex<State<R>>,
    ask: Ask,
    hand_over: HandOver<R>,
    runtime: tokio::runtime::Handle,
    pub(crate) counts: Counts,
}

/// A write held back, sent when called.
type Held = Box<dyn FnOnce() + Send>;

struct State<R> {
    /// A call is in flight (its driver has not taken its answer yet).
    in_flight: bool,
    /// Runs that arrived while a call was in flight: they take the next call's answer.
    next: Vec<R>,
    /// Calls sent so far; call `g` carries generation `g`'s runs.
    asked: u64,
    /// Every generation up to this one has been handed over.
    handed: u64,
    /// Generations above `handed` handed over already (out of order).
    handed_early: BTreeSet<u64>,
    /// Writes held back, each with the generation it waits for, in arrival order.
    held: VecDeque<(u64, Held)>,
}

impl<R: Send + 'static> Coalescer<R> {
    /// A coalescer that sends calls with `ask`, hands runs over with `hand_over` and drives
    /// calls on `runtime`.
    pub(crate) fn new(
        ask: Ask,
        hand_over: HandOver<R>,
        runtime: tokio::runtime::Handle,
    ) -> Coalescer<R> {
        let state = State {
            in_flight: false,
            next: Vec::new(),
            asked: 0,
            handed: 0,
            handed_early: BTreeSet::new(),
            held: VecDeque::new(),
        };
        Coalescer { state: Mutex::new(state), ask, hand_over, runtime, counts: Counts::default() }
    }

    /// A run of reads that arrived now: it takes the answer of the next call sent (at once
    /// if none is in flight).
    pub(crate) fn join(self: &std::sync::Arc<Self>, run: R) {
        self.counts.runs.fetch_add(1, Ordering::Relaxed);
        let mut state = self.state.lock().expect("read index lock");
        if state.in_flight {
            state.next.push(run);
            return;
        }
        state.in_flight = true;
        let (call, generation) = self.send(&mut state);
        drop(state);
        let me = std::sync::Arc::clone(self);
        self.runtime.spawn(async move { me.drive(call, generation, vec![run]).await });
    }

    /// Sends the next call (the lock held, so that generations and calls keep one order).
    fn send(&self, state: &mut State<R>) -> (IndexFuture, u64) {
        state.asked += 1;
        self.counts.calls.fetch_add(1, Ordering::Relaxed);
        ((self.ask)(), state.asked)
    }

    /// Waits for each call's answer, sends the next call if runs wait for one, and hands the
    /// answered runs over; until no run waits.
    async fn drive(&self, mut call: IndexFuture, mut generation: u64, mut runs: Vec<R>) {
        loop {
            let index = call.await;
            let next = {
                let mut state = self.state.lock().expect("read index lock");
                if state.next.is_empty() {
                    state.in_flight = false;
                    None
                } else {
                    let waiting = std::mem::take(&mut state.next);
                    let (call, generation) = self.send(&mut state);
                    Some((call, generation, waiting))
                }
            };
            if index.is_none() {
                self.counts.fallbacks.fetch_add(runs.len() as u64, Ordering::Relaxed);
            }
            (self.hand_over)(index, std::mem::take(&mut runs));
            self.handed(generation);
            match next {
                Some(n) => (call, generation, runs) = n,
                None => return,
            }
        }
    }

    /// Generation `generation` was handed over: the writes that waited for it (and for those
    /// before it) are sent, in order.
    fn handed(&self, generation: u64) {
        let mut guard = self.state.lock().expect("read index lock");
        let state = &mut *guard;
        state.handed_early.insert(generation);
        while state.handed_early.remove(&(state.handed + 1)) {
            state.handed += 1;
        }
        while state.held.front().is_some_and(|(wait, _)| *wait <= state.handed) {
            let (_, send) = state.held.pop_front().expect("a held write");
            send();
        }
    }

    /// Starts a write with `start` now if no run that arrived before it is still waiting to
    /// be handed over (and no earlier write is held), else once they have been: `Ok` with
    /// `start`'s result, or `Err` with where it will come. `start` runs under the
    /// coalescer's lock, so writes leave in the order they came.
    pub(crate) fn in_order<T: Send + 'static>(
        &self,
        start: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, oneshot::Receiver<T>> {
        let mut state = self.state.lock().expect("read index lock");
        let wait = if state.next.is_empty() { state.asked } else { state.asked + 1 };
        if wait <= state.handed && state.held.is_empty() {
            return Ok(start());
        }
        self.counts.held.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        state.held.push_back((wait, Box::new(move || drop(tx.send(start())))));
        Err(rx)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tokio::sync::mpsc;

    use super::*;

    /// A coalescer whose calls the test answers by hand (in the order sent), recording each
    /// hand-over as (answer, runs).
    struct Rig {
        coalescer: Arc<Coalescer<u32>>,
        calls: Arc<Mutex<VecDeque<oneshot::Sender<Option<u64>>>>>,
        handed: mpsc::UnboundedReceiver<(Option<u64>, Vec<u32>)>,
    }

    impl Rig {
        fn new() -> Rig {
            let calls: Arc<Mutex<VecDeque<oneshot::Sender<Option<u64>>>>> = Arc::default();
            let sent = Arc::clone(&calls);
            let ask: Ask = Box::new(move || {
                let (tx, rx) = oneshot::channel();
                sent.lock().unwrap().push_back(tx);
                Box::pin(async move { rx.await.ok().flatten() })
            });
            let (tx, handed) = mpsc::unbounded_channel();
            let hand_over: HandOver<u32> = Box::new(move |index, runs| {
                tx.send((index, runs)).unwrap();
            });
            let runtime = tokio::runtime::Handle::current();
            Rig { coalescer: Arc::new(Coalescer::new(ask, hand_over, runtime)), calls, handed }
        }

        fn calls_sent(&self) -> u64 {
            self.coalescer.counts.calls.load(Ordering::Relaxed)
        }

        /// Answers the oldest call not answered yet, and waits for its hand-over.
        async fn answer(&mut self, index: Option<u64>) -> (Option<u64>, Vec<u32>) {
            let call = self.calls.lock().unwrap().pop_front().expect("a call in flight");
            call.send(index).unwrap();
            self.handed.recv().await.unwrap()
        }
    }

    /// A run that arrives while a call is in flight takes the next call's answer, never that
    /// one's; the runs that arrive during one call share the next (one call per round trip).
    ///
    /// Proven by a planted bug: with `join` adding a run to the call in flight (the runs of a
    /// generation kept in one list the driver takes when the answer comes, rather than
    /// `next`), runs 2 and 3 are handed over with call 1's answer and the test fails.
    #[tokio::test]
    async fn a_run_never_takes_the_answer_of_a_call_sent_before_it_arrived() {
        let mut rig = Rig::new();
        rig.coalescer.join(1);
        assert_eq!(rig.calls_sent(), 1, "the first run sends a call at once");
        rig.coalescer.join(2);
        rig.coalescer.join(3);
        assert_eq!(rig.calls_sent(), 1, "runs during a call wait for the next");
        assert_eq!(rig.answer(Some(10)).await, (Some(10), vec![1]));
        assert_eq!(rig.calls_sent(), 2, "the next call leaves when the first answers");
        rig.coalescer.join(4);
        assert_eq!(rig.answer(Some(20)).await, (Some(20), vec![2, 3]));
        assert_eq!(rig.answer(None).await, (None, vec![4]));
        assert_eq!(rig.calls_sent(), 3);
        // Idle again: the next run sends a call of its own.
        rig.coalescer.join(5);
        assert_eq!(rig.calls_sent(), 4);
        assert_eq!(rig.answer(Some(30)).await, (Some(30), vec![5]));
        let counts = &rig.coalescer.counts;
        assert_eq!(counts.runs.load(Ordering::Relaxed), 5);
        assert_eq!(counts.fallbacks.load(Ordering::Relaxed), 1);
    }

    /// Many runs arriving during one call take one more call, not one each.
    #[tokio::test]
    async fn runs_arriving_during_a_call_share_the_next_one() {
        let mut rig = Rig::new();
        for run in 0..100 {
            rig.coalescer.join(run);
        }
        assert_eq!(rig.answer(Some(1)).await, (Some(1), vec![0]));
        assert_eq!(rig.answer(Some(2)).await, (Some(2), (1..100).collect::<Vec<_>>()));
        assert_eq!(rig.calls_sent(), 2);
    }

    /// A write waits for the runs that arrived before it to be handed over, not for later
    /// ones, and held writes leave in the order they came.
    ///
    /// Proven by a planted bug: with `in_order` waiting for the call in flight only (not the
    /// runs waiting for the next), write "b" leaves before run 2 is handed over.
    #[tokio::test]
    async fn a_write_leaves_after_the_runs_before_it_in_order() {
        let mut rig = Rig::new();
        let sent: Arc<Mutex<Vec<&str>>> = Arc::default();
        let write = |name: &'static str| {
            let sent = Arc::clone(&sent);
            move || sent.lock().unwrap().push(name)
        };
        assert!(rig.coalescer.in_order(write("idle")).is_ok(), "no run waits: at once");
        rig.coalescer.join(1);
        let a = rig.coalescer.in_order(write("a")).unwrap_err();
        rig.coalescer.join(2);
        let b = rig.coalescer.in_order(write("b")).unwrap_err();
        assert_eq!(*sent.lock().unwrap(), ["idle"]);
        assert_eq!(rig.answer(Some(1)).await, (Some(1), vec![1]));
        a.await.unwrap();
        assert_eq!(*sent.lock().unwrap(), ["idle", "a"], "b waits for run 2");
        // Run 3 arrives after b: b does not wait for it, but c (after it) does.
        rig.coalescer.join(3);
        let c = rig.coalescer.in_order(write("c")).unwrap_err();
        assert_eq!(rig.answer(Some(2)).await, (Some(2), vec![2]));
        b.await.unwrap();
        assert_eq!(*sent.lock().unwrap(), ["idle", "a", "b"]);
        assert_eq!(rig.answer(Some(3)).await, (Some(3), vec![3]));
        c.await.unwrap();
        assert_eq!(*sent.lock().unwrap(), ["idle", "a", "b", "c"]);
        assert!(rig.coalescer.in_order(write("d")).is_ok());
    }
}
