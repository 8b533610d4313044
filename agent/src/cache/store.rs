//! [`BlockCache`]: L1 in front of L2, their counters, and the persisted stats file.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::key::BlockKey;
use super::l1::{self, L1};
use super::l2::L2;
use super::layout::STATS;
use super::record::HEADER_LEN;
use super::stats::{
    CacheStats, L2Extra, L2Stats, LevelCounters, LevelStats, PrefetchCounters, StatsFile, bump,
};
use super::{CacheConfig, CacheError};

/// How often, at most, the counters are rewritten to `stats.json` while the cache is used
/// (also on [`BlockCache::flush`] and when the cache is dropped).
pub const PERSIST_EVERY: Duration = Duration::from_secs(5);

/// A block found in the cache.
#[derive(Debug)]
pub(crate) enum Block {
    /// Shared with L1 (stored uncompressed there).
    Shared(Arc<l1::Entry>),
    /// Decoded for this read.
    Owned(Vec<u8>),
}

impl Block {
    /// The block's bytes.
    pub fn as_slice(&self) -> &[u8] {
        match self {
            Block::Shared(entry) => entry.raw().unwrap_or_default(),
            Block::Owned(v) => v,
        }
    }
}

/// The cache levels shared by every [`CachedArchive`](super::CachedArchive) of a process:
/// L1 in memory, L2 in a local directory. Send + Sync.
#[derive(Debug)]
pub struct BlockCache {
    config: CacheConfig,
    l1: Option<L1>,
    l2: Option<L2>,
    l1_counters: Arc<LevelCounters>,
    l2_counters: Arc<LevelCounters>,
    pub(crate) prefetch: PrefetchCounters,
    /// L2 counters of earlier processes (from `stats.json`).
    base: L2Stats,
    last_persist: Mutex<Instant>,
}

impl BlockCache {
    /// Opens the levels `config` asks for; with an L2 directory, takes its lock and rebuilds
    /// its index (a cache directory serves one process at a time).
    pub fn open(config: CacheConfig) -> Result<Self, CacheError> {
        config.validate()?;
        let l1_counters = Arc::new(LevelCounters::default());
        let l2_counters = Arc::new(LevelCounters::default());
        let l1 = (config.l1_bytes > 0).then(|| {
            L1::new(
                config.l1_bytes,
                config.block_size,
                config.l1_lz4,
                l1_counters.clone(),
            )
        });
        let mut base = L2Stats::default();
        let l2 = match &config.l2_dir {
            None => None,
            Some(dir) => {
                let max_record = (config.block_size + HEADER_LEN) as u64 * 2;
                let l2 = L2::open(
                    dir,
                    config.l2_bytes,
                    max_record,
                    config.zstd_level,
                    l2_counters.clone(),
                )?;
                match StatsFile::load(&dir.join(STATS)) {
                    Ok(Some(file)) => base = file.l2,
                    Ok(None) => {}
                    // The engine rewrites it; only `cache stats` refuses a corrupt file.
                    Err(e) => tracing::warn!("{e}; counting from zero"),
                }
                Some(l2)
            }
        };
        Ok(BlockCache {
            config,
            l1,
            l2,
            l1_counters,
            l2_counters,
            prefetch: PrefetchCounters::default(),
            base,
            last_persist: Mutex::new(Instant::now()),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &CacheConfig {
        &self.config
    }

    /// Cache block size.
    pub fn block_size(&self) -> u32 {
        self.config.block_size as u32
    }

    /// Looks the block up in L1, then L2 (promoting an L2 hit to L1), counting hits and
    /// misses per level; `len` is the block's expected length.
    pub(crate) fn get(&self, key: &BlockKey, len: usize) -> Option<Block> {
        if let Some(l1) = &self.l1
            && let Some((entry, first_use)) = l1.get(key)
        {
            if first_use {
                bump(&self.prefetch.used);
            }
            match entry.raw() {
                Some(raw) if raw.len() == len => return Some(Block::Shared(entry)),
                Some(_) => {}
                None => match entry.decode_lz4() {
                    Some(raw) if raw.len() == len => return Some(Block::Owned(raw)),
                    _ => {}
                },
            }
            tracing::warn!("L1 block {} has the wrong length; ignored", key.index);
        }
        let l2 = self.l2.as_ref()?;
        let raw = l2.get(key)?;
        if raw.len() != len {
            tracing::warn!("L2 block {} has the wrong length; ignored", key.index);
            return None;
        }
        if let Some(l1) = &self.l1 {
            l1.insert(*key, &raw, false);
        }
        self.maybe_persist();
        Some(Block::Owned(raw))
    }

    /// Whether either level holds the block (no counting).
    pub(crate) fn contains(&self, key: &BlockKey) -> bool {
        self.l1.as_ref().is_some_and(|l| l.contains(key))
            || self.l2.as_ref().is_some_and(|l| l.contains(key))
    }

    /// Stores a block read from the shards in both levels.
    pub(crate) fn fill(&self, key: BlockKey, raw: &[u8], prefetched: bool) {
        if let Some(l1) = &self.l1 {
            l1.insert(key, raw, prefetched);
        }
        if let Some(l2) = &self.l2 {
            l2.insert(key, raw);
        }
        self.maybe_persist();
    }

    /// Counters of every level now (L2 counters include earlier processes').
    pub fn stats(&self) -> CacheStats {
        let l2 = self.l2.as_ref().map(|l2| {
            let now = self.l2_counters.snapshot();
            let extra = l2.extra();
            let b = &self.base;
            L2Stats {
                level: LevelStats::new(
                    [
                        b.level.hits + now.hits,
                        b.level.misses + now.misses,
                        b.level.inserts + now.inserts,
                        b.level.evictions + now.evictions,
                    ],
                    now.entries,
                    now.stored_bytes,
                    now.raw_bytes,
                ),
                extra: L2Extra {
                    corrupt_dropped: b.extra.corrupt_dropped + extra.corrupt_dropped,
                    torn_bytes_truncated: b.extra.torn_bytes_truncated + extra.torn_bytes_truncated,
                    write_errors: b.extra.write_errors + extra.write_errors,
                    ..extra
                },
            }
        });
        CacheStats {
            l1: self.l1_counters.snapshot(),
            l2,
            prefetch: self.prefetch.snapshot(),
        }
    }

    /// Counters of this process only (L2 counters without earlier processes').
    pub fn session_stats(&self) -> CacheStats {
        let mut stats = self.stats();
        if let Some(l2) = &mut stats.l2 {
            let now = self.l2_counters.snapshot();
            l2.level = now;
            let extra = self.l2.as_ref().map(|l| l.extra()).unwrap_or_default();
            l2.extra = extra;
        }
        stats
    }

    /// The L2 directory, if any.
    pub fn l2_dir(&self) -> Option<PathBuf> {
        self.l2.as_ref().map(|l| l.dir().to_path_buf())
    }

    /// Writes the counters to `DIR/stats.json` (atomically) and flushes the segments; does
    /// nothing without L2.
    pub fn flush(&self) -> Result<(), CacheError> {
        let Some(l2) = &self.l2 else {
            return Ok(());
        };
        l2.sync()?;
        self.persist(l2)
    }

    fn persist(&self, l2: &L2) -> Result<(), CacheError> {
        StatsFile::new(&self.stats()).save(&l2.dir().join(STATS))
    }

    fn maybe_persist(&self) {
        let Some(l2) = &self.l2 else {
            return;
        };
        let Ok(mut last) = self.last_persist.try_lock() else {
            return;
        };
        if last.elapsed() < PERSIST_EVERY {
            return;
        }
        *last = Instant::now();
        if let Err(e) = self.persist(l2) {
            tracing::warn!("{e}");
        }
    }
}

impl Drop for BlockCache {
    fn drop(&mut self) {
        if let Err(e) = self.flush() {
            tracing::warn!("cannot save the cache counters: {e}");
        }
    }
}
