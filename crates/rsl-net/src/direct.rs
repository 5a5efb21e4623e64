//! A peer connection's write side, shared by its writer task and the senders: a burst of
//! small frames sent with `Transport::send_all` while nothing is queued for the peer is
//! written by the sender itself, at once, with one write.
//!
//! Without this, every frame is a hand-over: the sender pushes it onto the peer's queue and
//! wakes the writer task on the transport's thread, which writes it. On a machine of few cores
//! that wake costs more than the write (a switch of threads on the core, tens of
//! microseconds), and it sits on the path of every replicated write twice: the primary's
//! accept and the follower's vote. A sender that finds the peer idle (nothing queued, nothing
//! being written, no frame half written) writes its frames with one non-blocking `write` from
//! its own thread instead; a sender that finds it busy queues, as before. `send` always
//! queues: many tasks sending one frame each (forwarded client requests) are better served
//! by the writer batching them than by a write each.
//!
//! Invariants:
//!
//! - **Every write to the socket is made under the side's lock, and never blocks**: the
//!   sender's and the writer task's, so that no two frames' bytes interleave. The writer
//!   waits for the socket to take more with the lock released.
//! - **Frames leave in the order they were sent from any one thread.** The peer counts its
//!   unwritten frames: a frame is counted in before it is queued and out only once the batch
//!   that carries it is written whole (a ping too, while it is written). A sender writes
//!   directly only when that count, read under the lock, is zero: a frame queued earlier is
//!   never overtaken, and no frame is cut by another.
//! - **A frame begun is finished before anything else.** When the socket takes only part of
//!   a sender's frame, the rest is kept here (and counted as unwritten, so that later frames
//!   queue behind it) and the writer task is woken to write it before its next batch.
//! - **The same under TLS.** The write side holds the connection's writing half whatever it
//!   is (a TCP socket's, or a TLS stream's, whose session the reader reaches through its own
//!   lock): a sender polls it once with a waker that does nothing, so it never waits, and a
//!   frame the session took but could not yet pass to the socket is left for the writer task
//!   to flush, counted as unwritten like the rest of a frame.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};

use bytes::{Buf, Bytes};
use tokio::io::AsyncWrite;
use tokio::sync::Notify;

use crate::limits::{DIRECT_FRAME_BYTES_MAX, FRAME_HEADER_BYTES};
use crate::parts::{Batch, Payload};

/// The bytes a write took; returns from the enclosing poll while it waits or on an error (a
/// write that takes nothing is one).
macro_rules! ready_written {
    ($poll:expr) => {
        match $poll {
            Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
            Poll::Ready(Ok(written)) => written,
            Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
            Poll::Pending => return Poll::Pending,
        }
    };
}

/// A connection's writing half: a TCP socket's, or a TLS stream's.
pub(crate) type Sink = Box<dyn AsyncWrite + Send + Unpin>;

/// The outcome of [`WriteSide::try_send`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Direct {
    /// The whole of the frames was written.
    Written,
    /// Part of the frames (or none of them) was written, or they wait in the TLS session;
    /// the writer task finishes them.
    Begun,
    /// The connection failed; the frames are dropped (the connection's tasks see the failure).
    Failed,
    /// The peer is busy or not connected, or the frames are large: queue them.
    Queue,
}

#[derive(Default)]
struct State {
    /// The connection's writing half while a connection is up.
    sink: Option<Sink>,
    /// What is left of the frames a sender began: written before anything else.
    rest: Option<VecDeque<Bytes>>,
    /// A sender's frame was taken whole by a TLS session that could not pass it all to the
    /// socket: flushed before anything else.
    unflushed: bool,
}

impl State {
    /// Whether a frame a sender began is not yet all on the socket.
    fn begun(&self) -> bool {
        self.rest.is_some() || self.unflushed
    }
}

/// One peer's write side.
#[derive(Default)]
pub(crate) struct WriteSide {
    state: Mutex<State>,
    /// Wakes the writer task when a sender leaves a frame for it to finish.
    resume: Notify,
}

impl WriteSide {
    /// A connection is up: its writes go through `sink`, the writer task's and senders'.
    pub(crate) fn attach(&self, sink: Sink) {
        let mut state = self.state.lock().expect("write side lock");
        assert!(!state.begun(), "the rest of a frame outlived its connection");
        state.sink = Some(sink);
    }

    /// The connection is over: senders queue again. What is left of a frame begun on it
    /// cannot go on another connection (its start went on this one) and is dropped, like a
    /// batch the writer task had begun.
    pub(crate) fn detach(&self, unwritten: &AtomicUsize) {
        let mut state = self.state.lock().expect("write side lock");
        state.sink = None;
        if state.begun() {
            state.rest = None;
            state.unflushed = false;
            unwritten.fetch_sub(1, Ordering::Release);
        }
    }

    /// Resolves when a sender has left a frame for the writer task to finish.
    pub(crate) async fn resumed(&self) {
        self.resume.notified().await
    }

    /// Writes `payloads`' frames, in order, from the caller's thread with one write if the
    /// peer is idle and they fit in [`DIRECT_FRAME_BYTES_MAX`] together (see the module's
    /// invariants). `unwritten` is the peer's count of frames queued or being written.
    pub(crate) fn try_send(&self, payloads: &[Payload], unwritten: &AtomicUsize) -> Direct {
        let bytes: usize = payloads.iter().map(|p| FRAME_HEADER_BYTES + p.len()).sum();
        if bytes > DIRECT_FRAME_BYTES_MAX || unwritten.load(Ordering::Acquire) != 0 {
            return Direct::Queue;
        }
        let mut guard = self.state.lock().expect("write side lock");
        let state = &mut *guard;
        let Some(sink) = state.sink.as_mut() else { return Direct::Queue };
        if state.rest.is_some() || state.unflushed || unwritten.load(Ordering::Acquire) != 0 {
            return Direct::Queue;
        }
        // Encoded as the writer's batches are: a large shared part is written from where it
        // is, not copied.
        let mut batch = Batch::with_capacity(bytes);
        for payload in payloads {
            batch.push(payload);
        }
        let stretches = batch.stretches();
        // Polled once, never waiting: what the socket does not take now, the writer task
        // writes when it can (the waker registered here does nothing; the writer's own
        // replaces it when it polls).
        let mut cx = Context::from_waker(Waker::noop());
        let written = match write_some(Pin::new(&mut **sink), &mut cx, stretches) {
            Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return Direct::Failed,
            Poll::Ready(Ok(written)) => written,
            Poll::Pending => 0,
        };
        advance(stretches, written);
        if stretches.is_empty() {
            match Pin::new(&mut *sink).poll_flush(&mut cx) {
                Poll::Ready(Ok(())) => return Direct::Written,
                Poll::Ready(Err(_)) => return Direct::Failed,
                Poll::Pending => state.unflushed = true,
            }
        } else {
            state.rest = Some(std::mem::take(stretches));
        }
        unwritten.fetch_add(1, Ordering::AcqRel);
        drop(guard);
        self.resume.notify_one();
        Direct::Begun
    }

    /// The writer task's write: what is left of a sender's frame first, if anything, then
    /// `stretches` (a batch's bytes, consumed), then a flush; each poll under the lock,
    /// waiting for the socket with the lock released. The caller counts the batch's frames as
    /// unwritten until this returns.
    pub(crate) async fn write(
        &self,
        stretches: &mut VecDeque<Bytes>,
        unwritten: &AtomicUsize,
    ) -> io::Result<()> {
        poll_fn(|cx| self.poll_write(cx, stretches, unwritten)).await
    }

    fn poll_write(
        &self,
        cx: &mut Context<'_>,
        stretches: &mut VecDeque<Bytes>,
        unwritten: &AtomicUsize,
    ) -> Poll<io::Result<()>> {
        let mut guard = self.state.lock().expect("write side lock");
        let state = &mut *guard;
        let Some(sink) = state.sink.as_mut() else {
            return Poll::Ready(Err(io::ErrorKind::NotConnected.into()));
        };
        let mut sink = Pin::new(&mut **sink);
        while let Some(rest) = state.rest.as_mut() {
            let written = ready_written!(write_some(sink.as_mut(), cx, rest));
            advance(rest, written);
            if rest.is_empty() {
                state.rest = None;
                state.unflushed = true;
            }
        }
        if state.unflushed {
            std::task::ready!(sink.as_mut().poll_flush(cx))?;
            state.unflushed = false;
            unwritten.fetch_sub(1, Ordering::Release);
        }
        while !stretches.is_empty() {
            let written = ready_written!(write_some(sink.as_mut(), cx, stretches));
            advance(stretches, written);
        }
        sink.poll_flush(cx)
    }
}

/// The most stretches one vectored write takes.
const SLICES_MAX: usize = 64;

/// One vectored write of the first stretches (up to [`SLICES_MAX`]).
fn write_some(
    sink: Pin<&mut (dyn AsyncWrite + Send + Unpin)>,
    cx: &mut Context<'_>,
    stretches: &VecDeque<Bytes>,
) -> Poll<io::Result<usize>> {
    let mut slices = [IoSlice::new(&[]); SLICES_MAX];
    let mut n = 0;
    for (slot, stretch) in slices.iter_mut().zip(stretches.iter().filter(|s| !s.is_empty())) {
        *slot = IoSlice::new(stretch);
        n += 1;
    }
    sink.poll_write_vectored(cx, &slices[..n])
}

/// Drops the first `count` bytes of `stretches`.
fn advance(stretches: &mut VecDeque<Bytes>, mut count: usize) {
    while count > 0 {
        let front = stretches.front_mut().expect("advanced past the end");
        let n = count.min(front.len());
        front.advance(n);
        count -= n;
        if front.is_empty() {
            stretches.pop_front();
        }
    }
    while stretches.front().is_some_and(Bytes::is_empty) {
        stretches.pop_front();
    }
}

#[cfg(test)]
#[path = "direct_tests.rs"]
mod tests;
