//! One established connection: its reader and its writer side by side, the writer's batches
//! and pings through the peer's write side (`crate::direct`), until either ends or the peer
//! connects again. A child of `tcp.rs`, apart so that each file stays short.

use super::*;

/// Runs one established connection: the reader and the writer side by side, until either
/// ends or the peer connects again.
pub(super) async fn run_connection(
    shared: &Shared,
    peer: &Peer,
    established: Established,
    queue: &mut mpsc::Receiver<Payload>,
    accepted: &mut mpsc::Receiver<Established>,
) -> ConnectionEnd {
    // A plaintext socket splits into halves of its own; a TLS stream's halves share its
    // session through tokio's lock.
    let (reader, sink): (Box<dyn AsyncRead + Send + Unpin>, Sink) =
        match established.conn.into_plain() {
            Ok(stream) => {
                let (reader, writer) = stream.into_split();
                (Box::new(reader), Box::new(writer))
            }
            Err(conn) => {
                let (reader, writer) = tokio::io::split(conn);
                (Box::new(reader), Box::new(writer))
            }
        };
    peer.side.attach(sink);
    let _detach = Detach(peer);
    // Connected once senders can write to it: a frame sent as soon as the peer is seen
    // connected goes out directly.
    connected(shared, peer);
    tokio::select! {
        result = read_loop(shared, peer, reader, established.buffered) => {
            ConnectionEnd::closed(shared, result)
        }
        result = write_loop(shared, peer, queue) => ConnectionEnd::Closed(result),
        Some(newer) = accepted.recv() => ConnectionEnd::Replaced(newer),
    }
}

/// Ends senders' direct writes to a connection when its tasks stop, however they stop.
struct Detach<'a>(&'a Peer);

impl Drop for Detach<'_> {
    fn drop(&mut self) {
        self.0.side.detach(&self.0.unwritten);
    }
}

impl ConnectionEnd {
    /// The reader's end, counted if the peer's bytes caused it.
    fn closed(shared: &Shared, result: Result<(), ConnError>) -> ConnectionEnd {
        if let Err(error) = &result {
            if error.is_frame_rejection() {
                shared.counters.reject_frame();
            }
        }
        ConnectionEnd::Closed(result)
    }
}

/// Decodes frames and delivers data frames to the application. Returns `Ok` when the peer
/// closed the stream cleanly between frames.
async fn read_loop(
    shared: &Shared,
    peer: &Peer,
    mut reader: impl AsyncRead + Unpin,
    mut buf: BytesMut,
) -> Result<(), ConnError> {
    let idle_timeout = shared.config.idle_timeout;
    loop {
        while let Some(frame) = decode_frame(&mut buf)? {
            match frame.kind {
                FrameKind::Data => {}
                FrameKind::Ping if frame.payload.is_empty() => continue,
                FrameKind::Ping => return Err(ConnError::PingPayload(frame.payload.len())),
                FrameKind::Hello => return Err(ConnError::SecondHello),
            }
            let wire_bytes = (FRAME_HEADER_BYTES + frame.payload.len()) as u64;
            shared.counters.frames_received.fetch_add(1, Relaxed);
            shared.counters.bytes_received.fetch_add(wire_bytes, Relaxed);
            peer.counters.frames_received.fetch_add(1, Relaxed);
            let incoming = Incoming { from: peer.id, payload: frame.payload };
            // A dropped receiver means the application no longer listens: drop the frame.
            let _ = shared.incoming.send(incoming).await;
        }
        buf.reserve(READ_CHUNK_BYTES_MIN);
        let read = tokio::time::timeout(idle_timeout, reader.read_buf(&mut buf)).await;
        if read.map_err(|_| ConnError::Idle)?? == 0 {
            decode_eof(&buf)?;
            return Ok(());
        }
        peer.counters.touch();
    }
}

/// Takes frames from the queue and writes them, as many as are queued (up to
/// `WRITE_BATCH_BYTES_MAX`) per write, large shared parts with vectored writes
/// (`crate::parts`); writes a ping whenever the queue stays empty for the ping interval; and
/// finishes a frame a sender began writing itself (`crate::direct`). Every write goes through
/// the peer's write side, shared with the senders that write directly.
async fn write_loop(
    shared: &Shared,
    peer: &Peer,
    queue: &mut mpsc::Receiver<Payload>,
) -> Result<(), ConnError> {
    let mut batch = Batch::new();
    let ping = frame_bytes(FrameKind::Ping, b"");
    loop {
        let next = tokio::select! {
            biased;
            () = peer.side.resumed() => None,
            next = tokio::time::timeout(shared.config.ping_interval, queue.recv()) => Some(next),
        };
        let first = match next {
            // What is left of a sender's frame: written before any batch.
            None => {
                peer.side.write(&mut Default::default(), &peer.unwritten).await?;
                continue;
            }
            Some(Ok(Some(first))) => first,
            Some(Ok(None)) => return Ok(()),
            Some(Err(_)) => {
                // Counted as unwritten while it is written, so that no sender cuts it.
                peer.unwritten.fetch_add(1, AcqRel);
                let being_written = Unwritten::new(&peer.unwritten, 1);
                peer.side.write(&mut [ping.clone()].into(), &peer.unwritten).await?;
                drop(being_written);
                shared.counters.pings_sent.fetch_add(1, Relaxed);
                continue;
            }
        };
        let frames = fill_batch(first, queue, &mut batch, &peer.queued_bytes);
        let being_written = Unwritten::new(&peer.unwritten, frames);
        let len = batch.len();
        peer.side.write(batch.stretches(), &peer.unwritten).await?;
        drop(being_written);
        shared.counters.write_batches.fetch_add(1, Relaxed);
        shared.counters.frames_sent.fetch_add(frames, Relaxed);
        shared.counters.bytes_sent.fetch_add(len as u64, Relaxed);
        peer.counters.frames_sent.fetch_add(frames, Relaxed);
    }
}

/// A batch's frames, counted out of the peer's unwritten frames when dropped: once the batch
/// is written whole, or when its connection fails or is replaced (the batch is then lost).
struct Unwritten<'a> {
    count: &'a AtomicUsize,
    frames: usize,
}

impl<'a> Unwritten<'a> {
    fn new(count: &'a AtomicUsize, frames: u64) -> Unwritten<'a> {
        Unwritten { count, frames: frames as usize }
    }
}

impl Drop for Unwritten<'_> {
    fn drop(&mut self) {
        let before = self.count.fetch_sub(self.frames, Release);
        assert!(before >= self.frames, "unwritten frames underflow");
    }
}
