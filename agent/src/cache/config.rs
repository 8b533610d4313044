//! Configuration of a [`BlockCache`](super::BlockCache).

use std::path::PathBuf;

use super::CacheError;

/// Default cache block size: 64 KiB.
pub const DEFAULT_BLOCK_SIZE: usize = 64 << 10;
/// Smallest cache block size.
pub const MIN_BLOCK_SIZE: usize = 4 << 10;
/// Largest cache block size.
pub const MAX_BLOCK_SIZE: usize = 4 << 20;
/// Largest read-ahead, in blocks.
pub const MAX_PREFETCH_BLOCKS: usize = 256;

/// Sizes and switches of the cache levels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheConfig {
    /// Cache block size in bytes: blocks cover source offsets `i * block_size ..`. A multiple
    /// of 4 KiB between 4 KiB and 4 MiB.
    pub block_size: usize,
    /// Bytes of memory for L1 (block data plus a fixed overhead per block); 0 disables L1.
    pub l1_bytes: u64,
    /// Keep L1 blocks lz4-compressed (less memory, a decompression per hit).
    pub l1_lz4: bool,
    /// Directory of L2 on a local (NVMe) disk; `None` disables L2.
    pub l2_dir: Option<PathBuf>,
    /// Bytes of segment files L2 may hold.
    pub l2_bytes: u64,
    /// zstd level of L2 blocks (1..=19; 3 is zstd's default).
    pub zstd_level: i32,
    /// Blocks to read ahead once a reader is seen reading sequentially; 0 disables it.
    pub prefetch_blocks: usize,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            block_size: DEFAULT_BLOCK_SIZE,
            l1_bytes: 256 << 20,
            l1_lz4: false,
            l2_dir: None,
            l2_bytes: 16 << 30,
            zstd_level: 3,
            prefetch_blocks: 16,
        }
    }
}

impl CacheConfig {
    /// Checks the values.
    pub fn validate(&self) -> Result<(), CacheError> {
        let bad = |msg: String| Err(CacheError::Config(msg));
        if !(MIN_BLOCK_SIZE..=MAX_BLOCK_SIZE).contains(&self.block_size)
            || !self.block_size.is_multiple_of(MIN_BLOCK_SIZE)
        {
            return bad(format!(
                "block size {}: must be a multiple of {MIN_BLOCK_SIZE} between {MIN_BLOCK_SIZE} \
                 and {MAX_BLOCK_SIZE} bytes",
                self.block_size
            ));
        }
        if self.prefetch_blocks > MAX_PREFETCH_BLOCKS {
            return bad(format!(
                "prefetch of {} blocks: at most {MAX_PREFETCH_BLOCKS}",
                self.prefetch_blocks
            ));
        }
        if !(1..=19).contains(&self.zstd_level) {
            return bad(format!("zstd level {}: use 1 to 19", self.zstd_level));
        }
        let record = (self.block_size + super::record::HEADER_LEN) as u64;
        if self.l2_dir.is_some() && self.l2_bytes < 2 * record {
            return bad(format!(
                "L2 size {} bytes: at least two blocks ({} bytes) are needed",
                self.l2_bytes,
                2 * record
            ));
        }
        Ok(())
    }
}
