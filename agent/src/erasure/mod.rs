//! The archive engine of the cold tier: a source (regular file or block device) is cut into
//! stripes of `k` data blocks, `m` parity blocks are computed per stripe with Reed–Solomon over
//! GF(2^8) (`reed-solomon-erasure`), and shard `i` of every stripe goes to shard directory `i`.
//! Any `k` of the `k + m` shards restore the source byte for byte.
//!
//! On-disk format (version [`FORMAT_VERSION`], described in `docs/erasure.md`): every shard
//! directory holds `<archive-id>/shard-<i>.dat` (the shard's blocks, back to back) and a copy of
//! `<archive-id>/manifest.json` (parameters, per-block per-shard CRC-32C, SHA-256 of the
//! source, `state`). An archive is complete only when every shard directory holds a manifest in
//! state `complete`; shard files are written as `*.tmp`, fsynced, and renamed into place before
//! the manifests are.
//!
//! Operations: [`encode`], [`restore`], [`read_range`] (also [`ArchiveReader`]), [`verify`] and
//! [`scrub`]. Shard writes go through io_uring (one submission per stripe, O_DIRECT where the
//! file system allows it) on their own thread while the next stripe is read and encoded.

mod archive;
mod codec;
mod encode;
mod error;
mod fsutil;
pub mod location;
mod manifest;
mod place;
pub mod remote;
mod render;
mod restore;
mod stripes;
mod uring;
mod verify;
mod writer;

pub use archive::ArchiveReader;
pub use codec::{Backend, Codec, detect_backend};
pub use encode::{EncodeParams, Encoded, encode, encode_at, encode_report, encode_with_progress};
pub use error::EcError;
pub use fsutil::AlignedBuf;
pub use manifest::{FORMAT_VERSION, Manifest, ManifestError, State};
pub use restore::{RestoreReport, read_range, restore, restore_at, restore_with};
pub use stripes::process_degraded_reads;
pub use uring::{IoStats, process_totals};
pub use verify::{
    Report, ShardReport, ShardState, scrub, scrub_at, scrub_with, verify, verify_at, verify_with,
};

/// Default number of data shards.
pub const DEFAULT_K: usize = 4;
/// Default number of parity shards.
pub const DEFAULT_M: usize = 2;
/// Default size of one shard block (bytes per shard per stripe): 1 MiB.
pub const DEFAULT_BLOCK_SIZE: usize = 1 << 20;
/// Largest `k + m` accepted.
pub const MAX_SHARDS: usize = 32;
/// Smallest block size accepted (bytes).
pub const MIN_BLOCK_SIZE: usize = 512;
/// Largest block size accepted (bytes): 64 MiB.
pub const MAX_BLOCK_SIZE: usize = 64 << 20;

/// Receives progress of a long operation (the CLI shows it as a progress bar).
pub trait Progress: Sync {
    /// A phase starts; `total` is in bytes.
    fn begin(&self, _label: &str, _total: u64) {}
    /// `bytes` more bytes of the current phase are done.
    fn advance(&self, _bytes: u64) {}
    /// The current phase is over.
    fn end(&self) {}
}

/// A [`Progress`] that ignores everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {}

/// Checks stripe parameters: `1 <= k`, `1 <= m`, `k + m <= 32`, block size a multiple of 512
/// within 512 B..=64 MiB.
pub fn check_params(k: usize, m: usize, block_size: usize) -> Result<(), EcError> {
    if k == 0 || m == 0 || k + m > MAX_SHARDS {
        return Err(EcError::Params(format!(
            "k={k} m={m}: need k >= 1, m >= 1 and k + m <= {MAX_SHARDS}"
        )));
    }
    if !(MIN_BLOCK_SIZE..=MAX_BLOCK_SIZE).contains(&block_size)
        || !block_size.is_multiple_of(MIN_BLOCK_SIZE)
    {
        return Err(EcError::Params(format!(
            "block size {block_size}: must be a multiple of {MIN_BLOCK_SIZE} between \
             {MIN_BLOCK_SIZE} and {MAX_BLOCK_SIZE} bytes"
        )));
    }
    Ok(())
}

/// Number of stripes for a source of `size` bytes.
pub fn stripe_count(size: u64, k: usize, block_size: usize) -> u64 {
    size.div_ceil(k as u64 * block_size as u64)
}

/// Checks an archive id: 1..=128 characters of `[A-Za-z0-9._-]`, not starting with a dot.
pub fn check_archive_id(id: &str) -> Result<(), EcError> {
    check_name("archive id", id, 128).map_err(EcError::Params)
}

/// Checks a name used as a file name: 1..=`max` characters of `[A-Za-z0-9._-]`, not
/// starting with a dot (so no path traversal).
pub(crate) fn check_name(what: &str, name: &str, max: usize) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= max
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{what} {name:?}: use 1 to {max} characters of A-Z a-z 0-9 . _ - (not starting with .)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_are_checked() {
        assert!(check_params(4, 2, DEFAULT_BLOCK_SIZE).is_ok());
        assert!(check_params(30, 2, 4096).is_ok());
        assert!(check_params(0, 2, 4096).is_err());
        assert!(check_params(4, 0, 4096).is_err());
        assert!(check_params(31, 2, 4096).is_err());
        assert!(check_params(4, 2, 1000).is_err());
        assert!(check_params(4, 2, 128 << 20).is_err());
    }

    #[test]
    fn stripes_round_up() {
        assert_eq!(stripe_count(0, 4, 4096), 0);
        assert_eq!(stripe_count(1, 4, 4096), 1);
        assert_eq!(stripe_count(4 * 4096, 4, 4096), 1);
        assert_eq!(stripe_count(4 * 4096 + 1, 4, 4096), 2);
    }

    #[test]
    fn archive_ids_are_checked() {
        assert!(check_archive_id("vol-1.img").is_ok());
        assert!(check_archive_id("").is_err());
        assert!(check_archive_id(".hidden").is_err());
        assert!(check_archive_id("a/b").is_err());
        assert!(check_archive_id("..").is_err());
    }
}
