//! Agent-to-agent shard streaming: the `ShardStore` gRPC service (served by `serve` beside
//! `NodeAgent`, behind the same mutual TLS, when `--shard-store-dir` is given) and a client
//! to push and pull shards.
//!
//! Layout of a store directory — a valid erasure-coding shard directory once an archive's
//! manifest copy is there (`PutManifest`):
//!
//! ```text
//! DIR/<archive-id>/shard-<i>.dat          the shard's bytes
//! DIR/<archive-id>/shard-<i>.dat.sha256   "<64 hex digits> <length>\n", written after it
//! DIR/<archive-id>/manifest.json          the archive's manifest copy naming shard i
//! DIR/<archive-id>/shard-<i>.dat.tmp      a staged shard (until CommitShard)
//! ```
//!
//! A put is received into a temporary file in `DIR/<archive-id>/`, checked (length,
//! SHA-256), fsynced, renamed into place without replacing anything, and the directory is
//! fsynced; a failed put leaves no file behind.

pub mod client;
mod manifests;
pub mod service;

pub use client::{ClientError, ShardStoreClient};
pub use service::{DEFAULT_STORE, MAX_CHUNK_BYTES, ShardStoreService, StoreError, parse_store_arg};

use std::path::{Path, PathBuf};

/// Largest ShardStore message (either way): room for the manifest of an archive of about
/// 5 TiB at 4+2 and 1 MiB blocks (8 bytes per block per shard); data chunks stay at most
/// [`MAX_CHUNK_BYTES`].
pub const MAX_MESSAGE_BYTES: usize = 64 << 20;

/// Largest shard index accepted (`k + m` is at most 32).
pub const MAX_SHARD_INDEX: u32 = crate::erasure::MAX_SHARDS as u32 - 1;

/// `DIR/<id>/shard-<index>.dat`.
pub fn shard_file(root: &Path, archive_id: &str, index: u32) -> PathBuf {
    root.join(archive_id).join(format!("shard-{index}.dat"))
}

/// `DIR/<id>/shard-<index>.dat.tmp`: a staged shard, not yet committed.
pub fn staged_file(root: &Path, archive_id: &str, index: u32) -> PathBuf {
    root.join(archive_id).join(format!("shard-{index}.dat.tmp"))
}

/// The checksum file beside a shard file.
pub fn checksum_file(shard: &Path) -> PathBuf {
    let mut name = shard.as_os_str().to_owned();
    name.push(".sha256");
    PathBuf::from(name)
}

/// SHA-256 as 64 lowercase hex digits.
pub fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// True for 64 lowercase hex digits.
pub fn is_sha256_hex(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}
