//! Checkpoint shipping: how a replica that lags behind a peer's truncated log gets the
//! peer's newest checkpoint, streamed in chunks, off the consensus path. (Shipping, not
//! "transfer": in this project a transfer is always a transfer of primacy.)
//!
//! The core asks for it (`Action::SendCheckpoint { to }`); this module's thread does the rest
//! and tells the core `Input::CheckpointInstalled` through the executor once the state machine
//! has loaded it. The receiver pulls: it asks for one chunk at a time at an offset, so the
//! shipment is resumable (a lost chunk is asked for again when the core re-requests catch-up),
//! holds one chunk in memory at a time, and writes what it receives straight into its own
//! checkpoint store, where it is verified (block checksums) before it is installed.
//!
//! The offer carries the checkpoint's header (the membership in effect after its slot,
//! `rsl_store::encode_checkpoint_header`): the receiver keeps it in its own copy and hands it
//! to the core with the install, so a replica that skips the configurations a checkpoint
//! covers still knows the membership they made.
//!
//! Frames share the replica-to-replica connection with the core's messages, in envelopes of
//! their own channel (`crate::envelope`).

use std::collections::HashMap;
use std::io::Read;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use crossbeam_channel::{Receiver, Sender};
use rsl_net::Transport;
use rsl_storage::{CheckpointFiles, CheckpointStore, CheckpointWriter, Media};

use crate::channels::{Install, ToConsensus, ToShipping};
use crate::checkpoint::Checkpoints;
use crate::envelope::{seal, Channel};
use crate::shared::Shared;

/// Application bytes in one chunk (well under the transport's frame maximum).
pub(crate) const CHUNK_BYTES_MAX: usize = 256 * 1024;
/// A shipment with no progress for this long gives way to a newer offer.
pub(crate) const STALL_TIMEOUT: Duration = Duration::from_secs(5);

const _: () = assert!(CHUNK_BYTES_MAX + 64 < rsl_net::limits::FRAME_PAYLOAD_BYTES_MAX);

/// One shipping frame.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Frame {
    /// "I have a checkpoint at `slot`, with this header; fetch it." (A 9-byte offer, from
    /// a replica that predates headers in offers, carries an empty one.)
    Offer { slot: u64, header: Bytes },
    /// "Send me the checkpoint at `slot` from byte `offset` of its data."
    Fetch { slot: u64, offset: u64 },
    /// Data of the checkpoint at `slot` from `offset`; `last` ends it.
    Chunk { slot: u64, offset: u64, last: bool, data: Bytes },
    /// "I no longer have the checkpoint at `slot`."
    Gone { slot: u64 },
}

impl Frame {
    fn encode(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(32);
        match self {
            Frame::Offer { slot, header } => {
                b.put_u8(1);
                b.put_u64_le(*slot);
                if !header.is_empty() {
                    b.put_u32_le(header.len() as u32);
                    b.extend_from_slice(header);
                }
            }
            Frame::Fetch { slot, offset } => {
                b.put_u8(2);
                b.put_u64_le(*slot);
                b.put_u64_le(*offset);
            }
            Frame::Chunk { slot, offset, last, data } => {
                b.put_u8(3);
                b.put_u64_le(*slot);
                b.put_u64_le(*offset);
                b.put_u8(u8::from(*last));
                b.extend_from_slice(data);
            }
            Frame::Gone { slot } => {
                b.put_u8(4);
                b.put_u64_le(*slot);
            }
        }
        b.freeze()
    }

    /// Decodes a frame; `None` for anything malformed (the caller counts and drops it).
    fn decode(b: &Bytes) -> Option<Frame> {
        let u64_at =
            |at: usize| b.get(at..at + 8).map(|s| u64::from_le_bytes(s.try_into().unwrap()));
        let frame = match *b.first()? {
            1 if b.len() == 9 => Frame::Offer { slot: u64_at(1)?, header: Bytes::new() },
            1 if b.len() > 13 => {
                let n = u32::from_le_bytes(b[9..13].try_into().unwrap()) as usize;
                if n != b.len() - 13 || n > rsl_store::CHECKPOINT_HEADER_BYTES_MAX {
                    return None;
                }
                Frame::Offer { slot: u64_at(1)?, header: b.slice(13..) }
            }
            2 if b.len() == 17 => Frame::Fetch { slot: u64_at(1)?, offset: u64_at(9)? },
            3 if b.len() >= 18 && b[17] <= 1 => Frame::Chunk {
                slot: u64_at(1)?,
                offset: u64_at(9)?,
                last: b[17] == 1,
                data: b.slice(18..),
            },
            4 if b.len() == 9 => Frame::Gone { slot: u64_at(1)? },
            _ => return None,
        };
        Some(frame)
    }
}

type Writer<C> = CheckpointWriter<<C as Media>::File>;
type Reader<C> = <CheckpointFiles<C> as CheckpointStore>::Reader;

/// A checkpoint being received.
struct Incoming<C: Media> {
    from: u32,
    slot: u64,
    offset: u64,
    writer: Writer<C>,
    progress: Instant,
}

/// A checkpoint being sent to one peer, kept open between its chunks.
struct Outgoing<C: Media> {
    slot: u64,
    position: u64,
    reader: Reader<C>,
}

/// The shipping thread's state.
pub(crate) struct Shipping<C: Media> {
    store: Checkpoints<C>,
    transport: Arc<dyn Transport>,
    shared: Arc<Shared>,
    install: Sender<ToConsensus>,
    incoming: Option<Incoming<C>>,
    outgoing: HashMap<u32, Outgoing<C>>,
}

impl<C: Media + 'static> Shipping<C> {
    pub(crate) fn new(
        store: Checkpoints<C>,
        transport: Arc<dyn Transport>,
        shared: Arc<Shared>,
        install: Sender<ToConsensus>,
    ) -> Shipping<C> {
        Shipping { store, transport, shared, install, incoming: None, outgoing: HashMap::new() }
    }

    /// The thread's loop: until the runtime drops the sender of `jobs`.
    pub(crate) fn run(mut self, jobs: Receiver<ToShipping>) {
        while let Ok(job) = jobs.recv() {
            match job {
                ToShipping::Offer { to } => self.offer(to),
                ToShipping::Frame { from, payload } => match Frame::decode(&payload) {
                    Some(frame) => self.on_frame(from, frame),
                    None => {
                        self.shared.metrics.counters.rejected_messages.inc();
                        tracing::warn!(from, "rejected a malformed checkpoint-shipping frame");
                    }
                },
            }
        }
    }

    fn send(&self, to: u32, frame: Frame) {
        // Refused sends (queue full, peer down) are dropped: the receiver asks again.
        let _ = self.transport.send(to, seal(Channel::Shipping, &frame.encode()));
    }

    fn offer(&mut self, to: u32) {
        let mut store = self.store.lock().expect("checkpoint lock");
        let newest = store.list().ok().and_then(|l| l.first().copied());
        let Some(slot) = newest else {
            return tracing::warn!(to, "a peer needs a checkpoint but none is kept here");
        };
        // Opening reads and checks the file's header (the data is verified as it streams).
        match store.open(slot) {
            Ok((info, _)) => {
                drop(store);
                self.send(to, Frame::Offer { slot, header: Bytes::from(info.header) });
            }
            Err(e) => tracing::warn!(to, slot, error = %e, "cannot offer the newest checkpoint"),
        }
    }

    fn on_frame(&mut self, from: u32, frame: Frame) {
        match frame {
            Frame::Offer { slot, header } => self.on_offer(from, slot, &header),
            Frame::Fetch { slot, offset } => self.on_fetch(from, slot, offset),
            Frame::Chunk { slot, offset, last, data } => {
                if let Err(e) = self.on_chunk(from, slot, offset, last, &data) {
                    tracing::error!(from, slot, error = %e, "checkpoint shipping failed; will retry");
                    self.incoming = None;
                }
            }
            Frame::Gone { slot } => {
                if self.incoming.as_ref().is_some_and(|i| i.from == from && i.slot == slot) {
                    self.incoming = None;
                }
            }
        }
    }

    fn on_offer(&mut self, from: u32, slot: u64, header: &[u8]) {
        if slot <= self.shared.executed.load(Ordering::Acquire) {
            return; // Nothing to gain: this replica is already past it.
        }
        if let Some(i) = &self.incoming {
            let live = i.progress.elapsed() < STALL_TIMEOUT;
            if i.from == from && i.slot == slot {
                // A repeated offer: the last fetch or chunk may have been lost; resume.
                self.send(from, Frame::Fetch { slot, offset: i.offset });
                return;
            }
            if live && i.slot >= slot {
                return;
            }
        }
        if let Err(e) = rsl_store::decode_checkpoint_header(header) {
            self.shared.metrics.counters.rejected_messages.inc();
            return tracing::warn!(from, slot, error = %e, "refused a checkpoint offer");
        }
        let writer = match self.store.lock().expect("checkpoint lock").begin(slot, header) {
            Ok(w) => w,
            Err(e) => {
                return tracing::error!(slot, error = %e, "cannot start receiving a checkpoint")
            }
        };
        tracing::info!(from, slot, "receiving a checkpoint from a peer");
        self.incoming = Some(Incoming { from, slot, offset: 0, writer, progress: Instant::now() });
        self.send(from, Frame::Fetch { slot, offset: 0 });
    }

    fn on_chunk(
        &mut self,
        from: u32,
        slot: u64,
        offset: u64,
        last: bool,
        data: &[u8],
    ) -> Result<(), String> {
        let Some(i) = self.incoming.as_mut() else { return Ok(()) };
        if (i.from, i.slot, i.offset) != (from, slot, offset) {
            return Ok(()); // A duplicate or stale chunk.
        }
        std::io::Write::write_all(&mut i.writer, data).map_err(|e| e.to_string())?;
        i.offset += data.len() as u64;
        i.progress = Instant::now();
        if !last {
            let next = Frame::Fetch { slot, offset: i.offset };
            self.send(from, next);
            return Ok(());
        }
        let incoming = self.incoming.take().expect("incoming");
        let mut store = self.store.lock().expect("checkpoint lock");
        let info = store.commit(incoming.writer).map_err(|e| e.to_string())?;
        let (opened, reader) = store.open(slot).map_err(|e| e.to_string())?;
        let membership =
            rsl_store::decode_checkpoint_header(&opened.header).map_err(|e| e.to_string())?;
        tracing::info!(from, slot, bytes = info.data_bytes, "checkpoint received and verified");
        let install = Install { slot, membership, reader: Box::new(reader) };
        let _ = self.install.send(ToConsensus::Install(install));
        Ok(())
    }

    fn on_fetch(&mut self, to: u32, slot: u64, offset: u64) {
        let reusable =
            self.outgoing.get(&to).is_some_and(|o| o.slot == slot && o.position == offset);
        if !reusable {
            match self.open_at(slot, offset) {
                Ok(reader) => {
                    self.outgoing.insert(to, Outgoing { slot, position: offset, reader });
                }
                Err(e) => {
                    tracing::warn!(to, slot, error = %e, "cannot serve a checkpoint chunk");
                    self.outgoing.remove(&to);
                    return self.send(to, Frame::Gone { slot });
                }
            }
        }
        let out = self.outgoing.get_mut(&to).expect("outgoing");
        let mut data = vec![0u8; CHUNK_BYTES_MAX];
        let mut filled = 0;
        while filled < data.len() {
            match out.reader.read(&mut data[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) => {
                    tracing::warn!(to, slot, error = %e, "checkpoint read failed");
                    self.outgoing.remove(&to);
                    return self.send(to, Frame::Gone { slot });
                }
            }
        }
        data.truncate(filled);
        let last = filled < CHUNK_BYTES_MAX;
        out.position += filled as u64;
        if last {
            self.outgoing.remove(&to);
        }
        self.send(to, Frame::Chunk { slot, offset, last, data: Bytes::from(data) });
    }

    /// Opens the checkpoint at `slot` and skips to `offset` of its data.
    fn open_at(&mut self, slot: u64, offset: u64) -> Result<Reader<C>, String> {
        let (_, mut reader) =
            self.store.lock().expect("checkpoint lock").open(slot).map_err(|e| e.to_string())?;
        let skipped = std::io::copy(&mut (&mut reader).take(offset), &mut std::io::sink())
            .map_err(|e| e.to_string())?;
        if skipped != offset {
            return Err(format!("checkpoint has only {skipped} bytes, asked for {offset}"));
        }
        Ok(reader)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_garbage_is_refused() {
        let frames = [
            Frame::Offer { slot: 7, header: Bytes::new() },
            Frame::Offer { slot: 7, header: Bytes::from_static(b"\x01head") },
            Frame::Fetch { slot: 7, offset: 1 << 40 },
            Frame::Chunk { slot: 7, offset: 3, last: true, data: Bytes::from_static(b"abc") },
            Frame::Chunk { slot: 7, offset: 3, last: false, data: Bytes::new() },
            Frame::Gone { slot: u64::MAX },
        ];
        for f in frames {
            let b = f.encode();
            assert_eq!(Frame::decode(&b), Some(f.clone()));
            for cut in 0..b.len().min(18) {
                // An offer cut right after its slot reads as one without a header.
                let headerless = cut == 9 && matches!(f, Frame::Offer { .. });
                if cut != b.len() && !headerless {
                    assert_eq!(Frame::decode(&b.slice(..cut)), None, "{f:?} cut at {cut}");
                }
            }
        }
        assert_eq!(Frame::decode(&Bytes::from_static(&[9, 0])), None);
        let mut bad_last =
            Frame::Chunk { slot: 1, offset: 0, last: true, data: Bytes::new() }.encode().to_vec();
        bad_last[17] = 2;
        assert_eq!(Frame::decode(&Bytes::from(bad_last)), None);
    }
}
