//! Checkpoints: [`CheckpointStore`] and its implementation [`CheckpointFiles`].
//!
//! Role: keep the application's state as of a slot, so the log below it can be deleted and a
//! lagging replica can be sent the state instead of the slots.
//!
//! A checkpoint is streamed: [`CheckpointStore::begin`] gives a [`CheckpointWriter`] (an
//! `io::Write`) over a temporary file; the data is cut into blocks of at most 64 KiB, each
//! with its own crc32c, so a reader can verify while streaming with bounded memory.
//! [`CheckpointStore::commit`] writes a trailer, syncs the file, re-reads and verifies it,
//! renames it to its final name, syncs the directory, and deletes the oldest checkpoints
//! beyond the `kept_max` knob. [`CheckpointStore::open_newest`] verifies candidates newest
//! first and falls back to older ones when one is corrupt, reporting the ones it skipped.

use std::io::{self, Read, Write};

use crate::error::{Result, StorageError};
use crate::limits::{
    CHECKPOINTS_KEPT_DEFAULT, CHECKPOINTS_KEPT_MAX, CHECKPOINT_BLOCK_BYTES_MAX,
    CHECKPOINT_BLOCK_HEADER_BYTES, CHECKPOINT_CALLER_HEADER_BYTES_MAX, CHECKPOINT_HEADER_BYTES,
    CHECKPOINT_SYNC_INTERVAL_BYTES, CHECKPOINT_TRAILER_BYTES,
};
use crate::media::{Media, MediaFile, MemDisk};

/// Magic at the start of a checkpoint file.
pub const CHECKPOINT_MAGIC: [u8; 8] = *b"RSLCKPT1";
/// Magic of the checkpoint trailer.
pub const CHECKPOINT_END_MAGIC: [u8; 8] = *b"RSLCKEND";
const VERSION: u32 = 1;

/// Knobs of the checkpoint store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointOptions {
    /// Number of newest checkpoints kept; older ones are deleted after each commit.
    pub kept_max: usize,
}

impl Default for CheckpointOptions {
    fn default() -> Self {
        CheckpointOptions { kept_max: CHECKPOINTS_KEPT_DEFAULT }
    }
}

/// A committed checkpoint, as found on the medium.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointInfo {
    /// The slot the checkpoint was taken at.
    pub slot: u64,
    /// The caller's opaque header.
    pub header: Vec<u8>,
    /// Bytes of application data.
    pub data_bytes: u64,
}

/// Result of [`CheckpointStore::open_newest`].
#[derive(Debug)]
pub struct NewestCheckpoint<R> {
    /// The newest valid checkpoint and a reader positioned at its first data byte.
    pub found: Option<(CheckpointInfo, R)>,
    /// Newer checkpoints that failed verification (slot, error), newest first.
    pub skipped: Vec<(u64, StorageError)>,
}

/// Streamed, verified checkpoints.
pub trait CheckpointStore: Send {
    /// The writer `begin` returns.
    type Writer: Write + Send;
    /// The reader `open` returns.
    type Reader: Read + Send;

    /// Start a checkpoint of the state at `slot` with the caller's opaque `header`.
    fn begin(&mut self, slot: u64, header: &[u8]) -> Result<Self::Writer>;
    /// Finish, sync, verify and publish a checkpoint; then delete the oldest beyond the knob.
    fn commit(&mut self, writer: Self::Writer) -> Result<CheckpointInfo>;
    /// Slots of published checkpoints, newest first (not verified).
    fn list(&mut self) -> Result<Vec<u64>>;
    /// Read the checkpoint at `slot` through once, checking every checksum.
    fn verify(&mut self, slot: u64) -> Result<CheckpointInfo>;
    /// Open the checkpoint at `slot` for streaming; blocks are verified as they are read.
    fn open(&mut self, slot: u64) -> Result<(CheckpointInfo, Self::Reader)>;
    /// The newest checkpoint that verifies, falling back past corrupt ones.
    fn open_newest(&mut self) -> Result<NewestCheckpoint<Self::Reader>>;
}

fn final_name(slot: u64) -> String {
    format!("ckpt-{slot:020}.ckpt")
}

fn temp_name(slot: u64) -> String {
    format!("ckpt-{slot:020}.tmp")
}

fn parse_final_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("ckpt-")?.strip_suffix(".ckpt")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn encode_file_header(slot: u64, header: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; CHECKPOINT_HEADER_BYTES];
    b[0..8].copy_from_slice(&CHECKPOINT_MAGIC);
    b[8..12].copy_from_slice(&VERSION.to_le_bytes());
    b[12..16].copy_from_slice(&(header.len() as u32).to_le_bytes());
    b[16..24].copy_from_slice(&slot.to_le_bytes());
    b[24..28].copy_from_slice(&(CHECKPOINT_BLOCK_BYTES_MAX as u32).to_le_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&b[..60]), header);
    b[60..64].copy_from_slice(&crc.to_le_bytes());
    b.extend_from_slice(header);
    b
}

fn block_crc(len: u32, data: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&len.to_le_bytes()), data)
}

/// Streams a checkpoint into its temporary file. Dropping it without `commit` leaves a
/// temporary file that is never opened (and is overwritten by the next checkpoint at that slot).
#[derive(Debug)]
pub struct CheckpointWriter<F> {
    file: F,
    slot: u64,
    header: Vec<u8>,
    offset: u64,
    block: Vec<u8>,
    data_bytes: u64,
    blocks: u64,
    /// File offset of the last intermediate sync.
    synced: u64,
}

impl<F: MediaFile> CheckpointWriter<F> {
    fn write_block(&mut self) -> Result<()> {
        if self.block.is_empty() {
            return Ok(());
        }
        assert!(self.block.len() <= CHECKPOINT_BLOCK_BYTES_MAX);
        let len = self.block.len() as u32;
        let mut framed = Vec::with_capacity(CHECKPOINT_BLOCK_HEADER_BYTES + self.block.len());
        framed.extend_from_slice(&len.to_le_bytes());
        framed.extend_from_slice(&block_crc(len, &self.block).to_le_bytes());
        framed.extend_from_slice(&self.block);
        self.file.write_at(self.offset, &framed)?;
        self.offset += framed.len() as u64;
        self.data_bytes += self.block.len() as u64;
        self.blocks += 1;
        self.block.clear();
        if self.offset - self.synced >= CHECKPOINT_SYNC_INTERVAL_BYTES {
            self.file.sync()?;
            self.synced = self.offset;
        }
        Ok(())
    }

    fn write_trailer(&mut self) -> Result<()> {
        self.write_block()?;
        let mut body = Vec::with_capacity(CHECKPOINT_TRAILER_BYTES);
        body.extend_from_slice(&CHECKPOINT_END_MAGIC);
        body.extend_from_slice(&self.data_bytes.to_le_bytes());
        body.extend_from_slice(&self.blocks.to_le_bytes());
        let mut framed = Vec::with_capacity(CHECKPOINT_BLOCK_HEADER_BYTES + body.len());
        framed.extend_from_slice(&0u32.to_le_bytes());
        framed.extend_from_slice(&block_crc(0, &body).to_le_bytes());
        framed.extend_from_slice(&body);
        assert_eq!(framed.len(), CHECKPOINT_TRAILER_BYTES);
        self.file.write_at(self.offset, &framed)?;
        self.offset += framed.len() as u64;
        Ok(())
    }
}

impl<F: MediaFile> Write for CheckpointWriter<F> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = CHECKPOINT_BLOCK_BYTES_MAX - self.block.len();
        let n = data.len().min(room);
        self.block.extend_from_slice(&data[..n]);
        if self.block.len() == CHECKPOINT_BLOCK_BYTES_MAX {
            self.write_block().map_err(io::Error::from)?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        // Blocks are written whole; durability comes from `commit`.
        Ok(())
    }
}

/// Streams a checkpoint's data, verifying each block; fails with `InvalidData` on corruption.
#[derive(Debug)]
pub struct CheckpointReader<F> {
    file: F,
    file_len: u64,
    offset: u64,
    block: Vec<u8>,
    block_pos: usize,
    data_bytes: u64,
    blocks: u64,
    done: bool,
    name: String,
}

fn corrupt(name: &str, offset: u64, reason: &'static str) -> StorageError {
    StorageError::Corrupt { file: name.to_string(), offset, reason }
}

impl<F: MediaFile> CheckpointReader<F> {
    /// Open `file` (named `name`), checking the file header; returns the info (with
    /// `data_bytes` unknown until the end: 0) and the reader.
    fn new(mut file: F, name: &str) -> Result<(u64, Vec<u8>, Self)> {
        let file_len = file.len()?;
        let min = (CHECKPOINT_HEADER_BYTES + CHECKPOINT_TRAILER_BYTES) as u64;
        if file_len < min {
            return Err(corrupt(name, 0, "checkpoint shorter than header and trailer"));
        }
        let mut h = vec![0u8; CHECKPOINT_HEADER_BYTES];
        file.read_at(0, &mut h)?;
        let header_len = u32::from_le_bytes(h[12..16].try_into().expect("4")) as usize;
        if h[0..8] != CHECKPOINT_MAGIC
            || u32::from_le_bytes(h[8..12].try_into().expect("4")) != VERSION
            || header_len > CHECKPOINT_CALLER_HEADER_BYTES_MAX
            || (CHECKPOINT_HEADER_BYTES + header_len) as u64 + CHECKPOINT_TRAILER_BYTES as u64
                > file_len
        {
            return Err(corrupt(name, 0, "bad checkpoint header"));
        }
        let mut caller = vec![0u8; header_len];
        file.read_at(CHECKPOINT_HEADER_BYTES as u64, &mut caller)?;
        let crc = u32::from_le_bytes(h[60..64].try_into().expect("4"));
        if crc != crc32c::crc32c_append(crc32c::crc32c(&h[..60]), &caller)
            || h[28..60].iter().any(|&x| x != 0)
        {
            return Err(corrupt(name, 0, "checkpoint header checksum"));
        }
        let slot = u64::from_le_bytes(h[16..24].try_into().expect("8"));
        let reader = CheckpointReader {
            file,
            file_len,
            offset: (CHECKPOINT_HEADER_BYTES + header_len) as u64,
            block: Vec::new(),
            block_pos: 0,
            data_bytes: 0,
            blocks: 0,
            done: false,
            name: name.to_string(),
        };
        Ok((slot, caller, reader))
    }

    /// Load the next block into `self.block`; at the trailer, check it and set `done`.
    fn next_block(&mut self) -> Result<()> {
        let at = self.offset;
        if at + CHECKPOINT_BLOCK_HEADER_BYTES as u64 > self.file_len {
            return Err(corrupt(&self.name, at, "checkpoint ends without trailer"));
        }
        let mut bh = [0u8; CHECKPOINT_BLOCK_HEADER_BYTES];
        self.file.read_at(at, &mut bh)?;
        let len = u32::from_le_bytes(bh[0..4].try_into().expect("4"));
        let crc = u32::from_le_bytes(bh[4..8].try_into().expect("4"));
        let body_len = if len == 0 {
            CHECKPOINT_TRAILER_BYTES - CHECKPOINT_BLOCK_HEADER_BYTES
        } else {
            len as usize
        };
        if len as usize > CHECKPOINT_BLOCK_BYTES_MAX
            || at + (CHECKPOINT_BLOCK_HEADER_BYTES + body_len) as u64 > self.file_len
        {
            return Err(corrupt(&self.name, at, "checkpoint block length"));
        }
        let mut body = vec![0u8; body_len];
        self.file.read_at(at + CHECKPOINT_BLOCK_HEADER_BYTES as u64, &mut body)?;
        if crc != block_crc(len, &body) {
            return Err(corrupt(&self.name, at, "checkpoint block checksum"));
        }
        self.offset = at + (CHECKPOINT_BLOCK_HEADER_BYTES + body_len) as u64;
        if len == 0 {
            let data_bytes = u64::from_le_bytes(body[8..16].try_into().expect("8"));
            let blocks = u64::from_le_bytes(body[16..24].try_into().expect("8"));
            if body[0..8] != CHECKPOINT_END_MAGIC
                || data_bytes != self.data_bytes
                || blocks != self.blocks
                || self.offset != self.file_len
            {
                return Err(corrupt(&self.name, at, "checkpoint trailer"));
            }
            self.done = true;
            self.block.clear();
        } else {
            self.data_bytes += len as u64;
            self.blocks += 1;
            self.block = body;
        }
        self.block_pos = 0;
        Ok(())
    }

    /// Read to the end, verifying everything; returns the data byte count.
    fn verify_rest(&mut self) -> Result<u64> {
        while !self.done {
            self.next_block()?;
        }
        Ok(self.data_bytes)
    }

    /// Bytes of data read so far (the total once the reader returned end of file).
    pub fn data_bytes(&self) -> u64 {
        self.data_bytes
    }
}

impl<F: MediaFile> Read for CheckpointReader<F> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.block_pos == self.block.len() {
            if self.done || out.is_empty() {
                return Ok(0);
            }
            self.next_block().map_err(io::Error::from)?;
        }
        let n = out.len().min(self.block.len() - self.block_pos);
        out[..n].copy_from_slice(&self.block[self.block_pos..self.block_pos + n]);
        self.block_pos += n;
        Ok(n)
    }
}

/// Decode a whole checkpoint file image (for fuzzing and tests): the slot, the caller
/// header and the data, or the corruption found. Never panics on any input.
pub fn decode_checkpoint(image: &[u8]) -> Result<(u64, Vec<u8>, Vec<u8>)> {
    let disk = MemDisk::new(0);
    let mut media = disk.media();
    let mut f = media.create("image", 0)?;
    f.write_at(0, image)?;
    let (slot, header, mut reader) = CheckpointReader::new(f, "image")?;
    let mut data = Vec::new();
    reader.read_to_end(&mut data).map_err(|e| corrupt_from_io("image", e))?;
    assert_eq!(data.len() as u64, reader.data_bytes());
    Ok((slot, header, data))
}

fn corrupt_from_io(name: &str, e: io::Error) -> StorageError {
    if e.kind() == io::ErrorKind::InvalidData {
        corrupt(name, 0, "checkpoint data")
    } else {
        StorageError::io("checkpoint read", e)
    }
}

/// The checkpoint store over a medium.
#[derive(Debug)]
pub struct CheckpointFiles<M: Media> {
    media: M,
    options: CheckpointOptions,
}

impl<M: Media> CheckpointFiles<M> {
    /// Open the store on `media`.
    pub fn open(media: M, options: CheckpointOptions) -> Result<Self> {
        if options.kept_max == 0 || options.kept_max > CHECKPOINTS_KEPT_MAX {
            return Err(StorageError::LimitExceeded {
                what: "checkpoints kept",
                value: options.kept_max as u64,
                limit: CHECKPOINTS_KEPT_MAX as u64,
            });
        }
        Ok(CheckpointFiles { media, options })
    }

    fn prune(&mut self) -> Result<()> {
        let slots = self.list()?;
        let old = slots.iter().skip(self.options.kept_max).copied().collect::<Vec<_>>();
        for slot in &old {
            self.media.remove(&final_name(*slot))?;
        }
        if !old.is_empty() {
            self.media.sync_dir()?;
        }
        Ok(())
    }
}

impl<M: Media> CheckpointStore for CheckpointFiles<M> {
    type Writer = CheckpointWriter<M::File>;
    type Reader = CheckpointReader<M::File>;

    fn begin(&mut self, slot: u64, header: &[u8]) -> Result<Self::Writer> {
        if header.len() > CHECKPOINT_CALLER_HEADER_BYTES_MAX {
            return Err(StorageError::LimitExceeded {
                what: "checkpoint header bytes",
                value: header.len() as u64,
                limit: CHECKPOINT_CALLER_HEADER_BYTES_MAX as u64,
            });
        }
        let mut file = self.media.create(&temp_name(slot), 0)?;
        let head = encode_file_header(slot, header);
        file.write_at(0, &head)?;
        Ok(CheckpointWriter {
            file,
            slot,
            header: header.to_vec(),
            offset: head.len() as u64,
            block: Vec::with_capacity(CHECKPOINT_BLOCK_BYTES_MAX),
            data_bytes: 0,
            blocks: 0,
            synced: 0,
        })
    }

    fn commit(&mut self, mut writer: Self::Writer) -> Result<CheckpointInfo> {
        // 1. trailer, 2. sync the temporary file, 3. re-read and verify it,
        // 4. rename to the final name, 5. sync the directory, 6. prune old ones.
        writer.write_trailer()?;
        writer.file.sync()?;
        let (slot, data_bytes, header) = (writer.slot, writer.data_bytes, writer.header);
        let temp = temp_name(slot);
        let (read_slot, read_header, mut reader) = CheckpointReader::new(writer.file, &temp)?;
        let verified = reader.verify_rest()?;
        assert_eq!((read_slot, &read_header), (slot, &header), "checkpoint header reads back");
        assert_eq!(verified, data_bytes, "checkpoint data length reads back");
        drop(reader);
        self.media.rename(&temp, &final_name(slot))?;
        self.media.sync_dir()?;
        self.prune()?;
        Ok(CheckpointInfo { slot, header, data_bytes })
    }

    fn list(&mut self) -> Result<Vec<u64>> {
        let mut slots: Vec<u64> =
            self.media.list()?.iter().filter_map(|n| parse_final_name(n)).collect();
        slots.sort_unstable_by(|a, b| b.cmp(a));
        Ok(slots)
    }

    fn verify(&mut self, slot: u64) -> Result<CheckpointInfo> {
        let (info, mut reader) = self.open(slot)?;
        let data_bytes = reader.verify_rest()?;
        Ok(CheckpointInfo { data_bytes, ..info })
    }

    fn open(&mut self, slot: u64) -> Result<(CheckpointInfo, Self::Reader)> {
        let name = final_name(slot);
        let file = self.media.open(&name)?;
        let (read_slot, header, reader) = CheckpointReader::new(file, &name)?;
        if read_slot != slot {
            return Err(corrupt(&name, 16, "checkpoint slot differs from its name"));
        }
        Ok((CheckpointInfo { slot, header, data_bytes: 0 }, reader))
    }

    fn open_newest(&mut self) -> Result<NewestCheckpoint<Self::Reader>> {
        let mut skipped = Vec::new();
        for slot in self.list()? {
            match self.verify(slot) {
                Ok(info) => {
                    let (_, reader) = self.open(slot)?;
                    return Ok(NewestCheckpoint { found: Some((info, reader)), skipped });
                }
                Err(e) if e.is_corruption() => skipped.push((slot, e)),
                Err(e) => return Err(e),
            }
        }
        Ok(NewestCheckpoint { found: None, skipped })
    }
}
