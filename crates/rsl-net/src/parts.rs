//! Payloads sent in parts, and the writer's batch of frames.
//!
//! A sender that sends the same large payload to several peers (a primary's accept of a
//! 16 MiB value to every follower) builds it once as a [`crate::SharedPayload`]: a list of `Bytes`
//! parts (a large value is one part, sharing the caller's memory), its crc32c computed once,
//! by the first writer that sends it, whatever the number of peers. Each peer's payload is a
//! small head of its own followed by the shared parts ([`crate::Transport::send_shared`]); the
//! writer puts the frame header and the head in its batch buffer and writes the large parts
//! from where they are, with vectored writes. The frame on the wire is the same as for a
//! payload sent whole (`crate::frame`): the receiver cannot tell the difference.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;

use crate::frame::{encode_frame, encode_frame_head, FrameKind, SharedPayload};
use crate::limits::{FRAME_HEADER_BYTES, PART_COPY_BYTES_MAX, WRITE_BATCH_BYTES_MAX};

/// One payload to send: in one buffer, or a head of the receiver's own followed by a tail
/// shared with other receivers ([`crate::Transport::send_shared`]). The receiver gets the
/// concatenation either way.
#[derive(Clone, Debug)]
pub enum Payload {
    /// A payload in one buffer.
    Whole(Bytes),
    /// A head of the peer's own followed by a payload shared with other peers.
    Shared {
        /// The receiver's own first bytes.
        head: Bytes,
        /// The bytes after them, built once for every receiver.
        tail: Arc<SharedPayload>,
    },
}

impl Payload {
    /// The payload's length in bytes.
    pub fn len(&self) -> usize {
        match self {
            Payload::Whole(payload) => payload.len(),
            Payload::Shared { head, tail } => head.len() + tail.len(),
        }
    }

    /// Whether the payload has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The bytes of one write: frames encoded into `open`, and, where a frame carries a large
/// shared part, the part itself between two stretches of `open` (not copied).
pub(crate) struct Batch {
    done: VecDeque<Bytes>,
    open: BytesMut,
    len: usize,
}

impl Batch {
    /// The writer's batch: room for [`WRITE_BATCH_BYTES_MAX`], reused from write to write.
    pub(crate) fn new() -> Batch {
        Batch::with_capacity(WRITE_BATCH_BYTES_MAX)
    }

    /// A batch with room for `bytes` of frames (a sender's direct write: `crate::direct`).
    pub(crate) fn with_capacity(bytes: usize) -> Batch {
        Batch { done: VecDeque::new(), open: BytesMut::with_capacity(bytes), len: 0 }
    }

    /// The bytes of the batch.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    fn clear(&mut self) {
        self.done.clear();
        self.open.clear();
        self.len = 0;
    }

    /// Appends one data frame carrying `payload`.
    pub(crate) fn push(&mut self, payload: &Payload) {
        match payload {
            Payload::Whole(payload) => encode_frame(FrameKind::Data, payload, &mut self.open),
            Payload::Shared { head, tail } => {
                encode_frame_head(FrameKind::Data, head, tail, &mut self.open);
                for part in tail.parts().iter().filter(|p| !p.is_empty()) {
                    if part.len() <= PART_COPY_BYTES_MAX {
                        self.open.extend_from_slice(part);
                    } else {
                        if !self.open.is_empty() {
                            self.done.push_back(self.open.split().freeze());
                        }
                        self.done.push_back(part.clone());
                    }
                }
            }
        }
        self.len += FRAME_HEADER_BYTES + payload.len();
        debug_assert_eq!(
            self.len,
            self.open.len() + self.done.iter().map(Bytes::len).sum::<usize>()
        );
    }

    /// True when `part`'s memory itself (not a copy) is in the batch.
    #[cfg(test)]
    pub(crate) fn shares(&self, part: &Bytes) -> bool {
        self.done.iter().any(|d| d.as_ptr() == part.as_ptr() && d.len() == part.len())
    }

    /// The batch's bytes as stretches to write in order, for a writer that writes them
    /// itself (`crate::direct`); the batch is empty once they are consumed.
    pub(crate) fn stretches(&mut self) -> &mut VecDeque<Bytes> {
        if !self.open.is_empty() {
            self.done.push_back(self.open.split().freeze());
        }
        &mut self.done
    }
}

/// Fills `batch` (cleared first) with `first` and then every frame already queued, until
/// the queue is empty or the batch reaches [`WRITE_BATCH_BYTES_MAX`]. Returns the frame count.
pub(crate) fn fill_batch(
    first: Payload,
    queue: &mut mpsc::Receiver<Payload>,
    batch: &mut Batch,
    queued_bytes: &AtomicUsize,
) -> u64 {
    batch.clear();
    let mut frames = 0u64;
    let mut next = Some(first);
    while let Some(payload) = next.take() {
        batch.push(&payload);
        let before = queued_bytes.fetch_sub(payload.len(), Relaxed);
        assert!(before >= payload.len(), "queued bytes underflow");
        frames += 1;
        if batch.len() < WRITE_BATCH_BYTES_MAX {
            next = queue.try_recv().ok();
        }
    }
    assert!(frames >= 1);
    frames
}
