//! A call's deadline on a timer that outlives the call: [`within`] takes a tokio `Sleep` from
//! a small pool of its thread's, moves its deadline, and gives it back when the call ends.
//!
//! Why: every `Node::replicate` waits with a deadline (`consensus.call_timeout_ms`), and a
//! fresh `tokio::time::timeout` a call put a timer into tokio's wheel and took it out again,
//! each under the wheel's lock: 8.7 % of the engine's time with 4,096 callers of one request
//! each (docs/benchmarks.md). A pooled timer's deadline only ever moves later (every call's
//! is its start plus the same timeout), which tokio does with one atomic store and no lock;
//! the wheel sees the timer again only when its old deadline comes round, once a timeout.
//!
//! A pooled timer belongs to the runtime that made it: the pool is keyed by the runtime's id,
//! and a thread that runs a task of another runtime starts a new pool.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use tokio::runtime::{Handle, Id};
use tokio::time::{Instant, Sleep};

/// Timers kept idle by one thread, at most.
const POOLED_PER_THREAD_MAX: usize = 1024;

/// One thread's idle timers, all of the runtime `runtime`.
struct Pool {
    runtime: Option<Id>,
    idle: Vec<Pin<Box<Sleep>>>,
}

thread_local! {
    static POOL: RefCell<Pool> = const { RefCell::new(Pool { runtime: None, idle: Vec::new() }) };
}

/// `fut`'s output, or `Err(())` once `timeout` has passed since the call. The timer is taken
/// only if `fut` is not ready at its first poll.
pub(crate) async fn within<F: Future>(timeout: Duration, fut: F) -> Result<F::Output, ()> {
    until(Instant::now() + timeout, fut).await
}

/// `fut`'s output, or `Err(())` once `deadline` has passed; the timer as [`within`]'s.
pub(crate) async fn until<F: Future>(deadline: Instant, fut: F) -> Result<F::Output, ()> {
    let mut fut = std::pin::pin!(fut);
    let mut timer: Option<Pooled> = None;
    std::future::poll_fn(|cx| {
        if let Poll::Ready(output) = fut.as_mut().poll(cx) {
            return Poll::Ready(Ok(output));
        }
        let sleep = timer.get_or_insert_with(|| Pooled::take(deadline)).sleep();
        match sleep.poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(())),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

/// A timer out of the pool, given back when dropped (on whichever thread drops it).
struct Pooled {
    sleep: Option<Pin<Box<Sleep>>>,
    runtime: Id,
}

impl Pooled {
    fn take(deadline: Instant) -> Pooled {
        let runtime = Handle::current().id();
        let reused = POOL
            .try_with(|pool| {
                let mut pool = pool.borrow_mut();
                if pool.runtime != Some(runtime) {
                    return None;
                }
                pool.idle.pop()
            })
            .ok()
            .flatten();
        let sleep = match reused {
            Some(mut sleep) => {
                sleep.as_mut().reset(deadline);
                sleep
            }
            None => Box::pin(tokio::time::sleep_until(deadline)),
        };
        Pooled { sleep: Some(sleep), runtime }
    }

    fn sleep(&mut self) -> Pin<&mut Sleep> {
        self.sleep.as_mut().expect("present until dropped").as_mut()
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        let Some(sleep) = self.sleep.take() else { return };
        // Dropped, not pooled, when the thread is ending or holds its maximum; a thread that
        // now runs another runtime's tasks drops its old pool for this one's.
        let _ = POOL.try_with(|pool| {
            let Ok(mut pool) = pool.try_borrow_mut() else { return };
            if pool.runtime != Some(self.runtime) {
                pool.idle.clear();
                pool.runtime = Some(self.runtime);
            }
            if pool.idle.len() < POOLED_PER_THREAD_MAX {
                pool.idle.push(sleep);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pooled timer keeps no deadline of an earlier call: a later call with a shorter
    /// timeout ends at its own, and one with a longer timeout is not ended at the earlier one.
    #[tokio::test(start_paused = true)]
    async fn a_reused_timer_ends_each_call_at_its_own_deadline() {
        let never = std::future::pending::<()>;
        let start = Instant::now();
        assert_eq!(within(Duration::from_secs(10), never()).await, Err(()));
        assert_eq!(start.elapsed(), Duration::from_secs(10));
        // The same thread's pool: the timer of the call above, its deadline moved.
        let again = Instant::now();
        assert_eq!(within(Duration::from_secs(3), never()).await, Err(()));
        assert_eq!(again.elapsed(), Duration::from_secs(3));
        let later = Instant::now();
        assert_eq!(within(Duration::from_secs(30), never()).await, Err(()));
        assert_eq!(later.elapsed(), Duration::from_secs(30));
    }

    /// A call answered before its deadline gives its timer back still running; the next
    /// call on it is answered or ended by its own deadline, never by the old one.
    #[tokio::test(start_paused = true)]
    async fn a_timer_given_back_early_does_not_end_the_next_call_at_its_old_deadline() {
        let (tx, rx) = tokio::sync::oneshot::channel::<u32>();
        let answer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            tx.send(7).unwrap();
        });
        assert_eq!(within(Duration::from_secs(5), rx).await, Ok(Ok(7)));
        answer.await.unwrap();
        assert_eq!(POOL.with(|p| p.borrow().idle.len()), 1, "the timer went back to the pool");
        // Its old deadline (5 s from the start) passes while this call waits for 20 s.
        let start = Instant::now();
        let (tx, rx) = tokio::sync::oneshot::channel::<u32>();
        let answer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(15)).await;
            tx.send(8).unwrap();
        });
        assert_eq!(within(Duration::from_secs(20), rx).await, Ok(Ok(8)));
        assert_eq!(start.elapsed(), Duration::from_secs(15));
        answer.await.unwrap();
    }

    /// Two runtimes one after the other on one thread: the second never polls a timer of
    /// the first (whose driver is gone).
    #[test]
    fn a_runtime_never_gets_another_runtimes_timer() {
        for _ in 0..2 {
            let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
            rt.block_on(async {
                let never = std::future::pending::<()>;
                assert_eq!(within(Duration::from_millis(1), never()).await, Err(()));
            });
            drop(rt);
        }
    }

    /// A thread keeps at most `POOLED_PER_THREAD_MAX` idle timers: given back one more, it
    /// drops that one.
    #[tokio::test(start_paused = true)]
    async fn a_thread_keeps_at_most_its_maximum_of_idle_timers() {
        let deadline = Instant::now() + Duration::from_secs(1);
        let idle = || POOL.with(|p| p.borrow().idle.len());
        let taken: Vec<Pooled> =
            (0..POOLED_PER_THREAD_MAX).map(|_| Pooled::take(deadline)).collect();
        drop(taken);
        assert_eq!(idle(), POOLED_PER_THREAD_MAX);
        // The pool is full: taking one leaves room for one, so take them all and one more.
        let taken: Vec<Pooled> =
            (0..POOLED_PER_THREAD_MAX + 1).map(|_| Pooled::take(deadline)).collect();
        assert_eq!(idle(), 0);
        drop(taken);
        assert_eq!(idle(), POOLED_PER_THREAD_MAX, "one more than the maximum kept");
    }
}
