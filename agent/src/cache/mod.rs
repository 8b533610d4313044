//! The block cache of the agent: archive reads go L1 (memory) → L2 (local NVMe directory) →
//! shards.
//!
//! - Blocks are fixed-size pieces of an archive's source (64 KiB by default) aligned to
//!   source offsets. Their [`BlockKey`] holds the archive's content identity
//!   ([`ArchiveDigest`], a SHA-256 of its committed manifest), so a re-encoded archive id
//!   never meets its old blocks.
//! - L1 (`l1.rs`) is a size-bounded `quick_cache` in memory, optionally lz4-compressed.
//! - L2 (`l2.rs`) appends zstd-compressed, checksummed records to segment files; its index is
//!   rebuilt by scanning them when it opens (torn tails truncated, bad records skipped), every
//!   read is verified again, and the oldest segment goes when the size bound is reached.
//! - Sequential readers get blocks read ahead (`prefetch.rs`).
//! - [`CacheStats`] counts hits, misses, inserts, evictions and bytes per level; L2's are
//!   persisted in the cache directory for `couchestor-agent cache stats` ([`inspect`]).
//!
//! The design, the on-disk format and the crash-safety argument are in `docs/cache.md`.

mod archive;
mod config;
mod error;
pub mod inspect;
pub mod key;
mod l1;
mod l2;
pub mod layout;
mod prefetch;
pub mod record;
pub mod stats;
mod store;

pub use archive::CachedArchive;
pub use config::{
    CacheConfig, DEFAULT_BLOCK_SIZE, MAX_BLOCK_SIZE, MAX_PREFETCH_BLOCKS, MIN_BLOCK_SIZE,
};
pub use error::CacheError;
pub use key::{ArchiveDigest, BlockKey};
pub use stats::{CacheStats, L2Extra, L2Stats, LevelStats, PrefetchStats};
pub use store::{BlockCache, PERSIST_EVERY};
