//! Durable metadata: [`MetaStore`] and its implementation [`MetaFiles`].
//!
//! Role: keep one opaque blob (the caller stores its promised ballot and configuration in it)
//! so that a `store` that returned `Ok` survives any crash, and a crash during `store` leaves
//! either the old or the new blob, never a mix.
//!
//! How: two copies, `meta.0` and `meta.1`. Version `v` goes to copy `v % 2`, so the other copy
//! (version `v - 1`) is never touched while `v` is written. Each write goes to a temporary
//! file, is synced, renamed over its copy, and the directory is synced. Each copy carries a
//! version counter and a crc32c; `load` returns the newest valid copy. If copies exist but
//! none is valid, `load` fails: the caller must not behave as a replica that never promised.

use crate::error::{Result, StorageError};
use crate::limits::{META_BLOB_BYTES_MAX, META_HEADER_BYTES};
use crate::media::{Media, MediaFile};

/// Magic of a metadata file.
pub const META_MAGIC: [u8; 8] = *b"RSLMETA1";
const COPIES: [&str; 2] = ["meta.0", "meta.1"];
const TEMP_SUFFIX: &str = ".tmp";

/// Durable, atomic storage of one blob.
pub trait MetaStore: Send {
    /// The newest blob stored, None if none was ever stored. An error if copies exist but
    /// none is valid (corruption) or the medium fails.
    fn load(&mut self) -> Result<Option<Vec<u8>>>;
    /// Replace the blob; durable when this returns `Ok`.
    fn store(&mut self, blob: &[u8]) -> Result<()>;
}

/// Encode one metadata copy.
pub fn encode_meta(version: u64, blob: &[u8]) -> Vec<u8> {
    assert!(blob.len() <= META_BLOB_BYTES_MAX);
    let mut b = Vec::with_capacity(META_HEADER_BYTES + blob.len());
    b.extend_from_slice(&META_MAGIC);
    b.extend_from_slice(&version.to_le_bytes());
    b.extend_from_slice(&(blob.len() as u32).to_le_bytes());
    b.extend_from_slice(&[0u8; 8]);
    let crc = crc32c::crc32c_append(crc32c::crc32c(&b), blob);
    b.extend_from_slice(&crc.to_le_bytes());
    assert_eq!(b.len(), META_HEADER_BYTES);
    b.extend_from_slice(blob);
    debug_assert_eq!(decode_meta(&b), Some((version, blob.to_vec())));
    b
}

/// Decode one metadata copy; None if it is not whole and valid.
pub fn decode_meta(b: &[u8]) -> Option<(u64, Vec<u8>)> {
    if b.len() < META_HEADER_BYTES || b[..8] != META_MAGIC || b[20..28] != [0; 8] {
        return None;
    }
    let version = u64::from_le_bytes(b[8..16].try_into().ok()?);
    let len = u32::from_le_bytes(b[16..20].try_into().ok()?) as usize;
    if len > META_BLOB_BYTES_MAX || b.len() != META_HEADER_BYTES + len {
        return None;
    }
    let crc = u32::from_le_bytes(b[28..32].try_into().ok()?);
    let blob = &b[META_HEADER_BYTES..];
    if crc != crc32c::crc32c_append(crc32c::crc32c(&b[..28]), blob) {
        return None;
    }
    Some((version, blob.to_vec()))
}

/// The two-copy metadata store over a medium.
#[derive(Debug)]
pub struct MetaFiles<M: Media> {
    media: M,
    /// Version of the newest valid copy (0: none).
    version: u64,
    /// Whether `load` ran (a `store` before it loads first, to continue the version count).
    loaded: bool,
}

fn read_whole<M: Media>(media: &mut M, name: &str) -> Result<Vec<u8>> {
    let mut f = media.open(name)?;
    let len = f.len()?;
    if len > (META_HEADER_BYTES + META_BLOB_BYTES_MAX) as u64 {
        return Ok(Vec::new()); // Cannot be valid; decoding an empty buffer fails.
    }
    let mut b = vec![0u8; len as usize];
    f.read_at(0, &mut b)?;
    Ok(b)
}

impl<M: Media> MetaFiles<M> {
    /// Open the store on `media` (nothing is read until `load`).
    pub fn open(media: M) -> Self {
        MetaFiles { media, version: 0, loaded: false }
    }

    /// Version of the blob last loaded or stored (0 if none).
    pub fn version(&self) -> u64 {
        self.version
    }
}

impl<M: Media> MetaStore for MetaFiles<M> {
    fn load(&mut self) -> Result<Option<Vec<u8>>> {
        let names = self.media.list()?;
        self.loaded = true;
        let mut newest: Option<(u64, Vec<u8>)> = None;
        let mut present = 0;
        for (i, copy) in COPIES.iter().enumerate() {
            if !names.iter().any(|n| n == copy) {
                continue;
            }
            present += 1;
            let bytes = read_whole(&mut self.media, copy)?;
            // A copy that fails its check is read once more: a transient read error must not
            // make the older copy (an older promise) win.
            let decoded = match decode_meta(&bytes) {
                Some(d) => Some(d),
                None => decode_meta(&read_whole(&mut self.media, copy)?),
            };
            let Some((version, blob)) = decoded else { continue };
            // A copy can only hold versions of its own parity; anything else is corrupt.
            if version % 2 != i as u64 || version == 0 {
                continue;
            }
            if newest.as_ref().is_none_or(|(v, _)| version > *v) {
                newest = Some((version, blob));
            }
        }
        match newest {
            Some((version, blob)) => {
                self.version = version;
                Ok(Some(blob))
            }
            None if present == 0 => {
                self.version = 0;
                Ok(None)
            }
            None => Err(StorageError::Corrupt {
                file: "meta.*".into(),
                offset: 0,
                reason: "no valid metadata copy",
            }),
        }
    }

    fn store(&mut self, blob: &[u8]) -> Result<()> {
        if blob.len() > META_BLOB_BYTES_MAX {
            return Err(StorageError::LimitExceeded {
                what: "metadata blob bytes",
                value: blob.len() as u64,
                limit: META_BLOB_BYTES_MAX as u64,
            });
        }
        if !self.loaded {
            // Corrupt copies still let us store: version numbering restarts above nothing.
            match self.load() {
                Ok(_) => {}
                Err(e) if e.is_corruption() => self.version = 0,
                Err(e) => return Err(e),
            }
        }
        let version = self.version + 1;
        let copy = COPIES[(version % 2) as usize];
        let temp = format!("{copy}{TEMP_SUFFIX}");
        let bytes = encode_meta(version, blob);
        // 1. write the temporary file, 2. sync it, 3. rename it over the copy,
        // 4. sync the directory. Only then is `version` the newest durable copy.
        let mut f = self.media.create(&temp, bytes.len() as u64)?;
        f.write_at(0, &bytes)?;
        f.sync()?;
        drop(f);
        self.media.rename(&temp, copy)?;
        self.media.sync_dir()?;
        assert_eq!(COPIES[(version % 2) as usize], copy, "version parity names the copy");
        assert!(version > self.version, "versions only grow");
        self.version = version;
        Ok(())
    }
}
