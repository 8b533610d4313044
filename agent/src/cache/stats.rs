//! Counters of each cache level, their snapshots, and the counters persisted in the cache
//! directory (`stats.json`) so that `couchestor-agent cache stats` can report a cache another
//! process is using.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::CacheError;
use super::layout::{FORMAT_VERSION, write_atomic};

/// Value of the stats file's `format` field.
pub const STATS_FORMAT: &str = "couchestor-block-cache-stats";

/// Live counters of one level (atomics; gauges go up and down).
#[derive(Debug, Default)]
pub(crate) struct LevelCounters {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub inserts: AtomicU64,
    pub evictions: AtomicU64,
    pub entries: AtomicU64,
    pub stored_bytes: AtomicU64,
    pub raw_bytes: AtomicU64,
}

/// Adds one to a counter.
pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Relaxed);
}

impl LevelCounters {
    /// An entry of `stored` bytes holding `raw` decoded bytes was added.
    pub fn added(&self, stored: u64, raw: u64) {
        bump(&self.inserts);
        self.entries.fetch_add(1, Relaxed);
        self.stored_bytes.fetch_add(stored, Relaxed);
        self.raw_bytes.fetch_add(raw, Relaxed);
    }

    /// An entry was removed; `evicted` when the size bound pushed it out.
    pub fn removed(&self, stored: u64, raw: u64, evicted: bool) {
        if evicted {
            bump(&self.evictions);
        }
        self.entries.fetch_sub(1, Relaxed);
        self.stored_bytes.fetch_sub(stored, Relaxed);
        self.raw_bytes.fetch_sub(raw, Relaxed);
    }

    /// A snapshot.
    pub fn snapshot(&self) -> LevelStats {
        LevelStats::new(
            [
                self.hits.load(Relaxed),
                self.misses.load(Relaxed),
                self.inserts.load(Relaxed),
                self.evictions.load(Relaxed),
            ],
            self.entries.load(Relaxed),
            self.stored_bytes.load(Relaxed),
            self.raw_bytes.load(Relaxed),
        )
    }
}

/// Counters of one level at one instant.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LevelStats {
    /// Lookups answered by this level.
    pub hits: u64,
    /// Lookups this level could not answer.
    pub misses: u64,
    /// Blocks stored (fills from the shards, promotions, prefetches).
    pub inserts: u64,
    /// Blocks pushed out by the size bound.
    pub evictions: u64,
    /// Blocks held now.
    pub entries: u64,
    /// Bytes held, as stored (compressed where compression is on).
    pub stored_bytes: u64,
    /// The same blocks' decoded size.
    pub raw_bytes: u64,
    /// `raw_bytes / stored_bytes` (null while empty).
    pub compression_ratio: Option<f64>,
    /// `hits / (hits + misses)` (null before any lookup).
    pub hit_ratio: Option<f64>,
}

impl LevelStats {
    /// Stats from counters `[hits, misses, inserts, evictions]` and the level's contents.
    pub fn new(counts: [u64; 4], entries: u64, stored_bytes: u64, raw_bytes: u64) -> Self {
        let [hits, misses, inserts, evictions] = counts;
        LevelStats {
            hits,
            misses,
            inserts,
            evictions,
            entries,
            stored_bytes,
            raw_bytes,
            compression_ratio: ratio(raw_bytes, stored_bytes),
            hit_ratio: ratio(hits, hits + misses),
        }
    }
}

/// `a / b`, or `None` when `b` is 0.
pub fn ratio(a: u64, b: u64) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

/// Counters specific to L2.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct L2Extra {
    /// Records dropped because their checksum, key or decoded length was wrong (when the
    /// index was rebuilt or when read).
    pub corrupt_dropped: u64,
    /// Bytes of torn segment tails truncated when the index was rebuilt.
    pub torn_bytes_truncated: u64,
    /// Failed segment writes (the block was then not cached).
    pub write_errors: u64,
    /// Segment files.
    pub segments: u64,
    /// Bytes of all segment files (live records and dead ones not yet evicted).
    pub disk_bytes: u64,
}

/// L2 counters and contents.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct L2Stats {
    /// The level counters.
    #[serde(flatten)]
    pub level: LevelStats,
    /// The L2-specific counters.
    #[serde(flatten)]
    pub extra: L2Extra,
}

/// Read-ahead counters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PrefetchStats {
    /// Blocks read ahead into the cache.
    pub issued: u64,
    /// Read-ahead blocks a later read found in L1.
    pub used: u64,
}

/// Live read-ahead counters.
#[derive(Debug, Default)]
pub(crate) struct PrefetchCounters {
    pub issued: AtomicU64,
    pub used: AtomicU64,
}

impl PrefetchCounters {
    /// A snapshot.
    pub fn snapshot(&self) -> PrefetchStats {
        PrefetchStats {
            issued: self.issued.load(Relaxed),
            used: self.used.load(Relaxed),
        }
    }
}

/// Every level's counters at one instant.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CacheStats {
    /// The in-memory level (this process only).
    pub l1: LevelStats,
    /// The on-disk level, when configured. Counters are cumulative over every process that
    /// used the directory (as persisted in `stats.json`).
    pub l2: Option<L2Stats>,
    /// Read-ahead (this process only).
    pub prefetch: PrefetchStats,
}

/// Contents of `stats.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatsFile {
    /// Always [`STATS_FORMAT`].
    pub format: String,
    /// Always the cache's format version.
    pub format_version: u32,
    /// When it was written, RFC 3339 UTC.
    pub updated: String,
    /// Process that wrote it.
    pub pid: u32,
    /// Cumulative L2 counters and the contents at that time.
    pub l2: L2Stats,
    /// L1 counters of the process that wrote it.
    pub l1: LevelStats,
    /// Read-ahead counters of the process that wrote it.
    pub prefetch: PrefetchStats,
}

impl StatsFile {
    /// A stats file for `stats` (which must carry L2 counters) written now by this process.
    pub fn new(stats: &CacheStats) -> Self {
        StatsFile {
            format: STATS_FORMAT.into(),
            format_version: FORMAT_VERSION,
            updated: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
            pid: std::process::id(),
            l2: stats.l2.clone().unwrap_or_default(),
            l1: stats.l1.clone(),
            prefetch: stats.prefetch.clone(),
        }
    }

    /// Reads `path`: `Ok(None)` when it does not exist, an error naming it when it cannot
    /// be used.
    pub fn load(path: &Path) -> Result<Option<StatsFile>, CacheError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(CacheError::io("read", path, e)),
        };
        let corrupt = |reason: String| CacheError::CorruptStats {
            path: path.to_path_buf(),
            reason,
        };
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| corrupt(e.to_string()))?;
        if value.get("format").and_then(|f| f.as_str()) != Some(STATS_FORMAT) {
            return Err(corrupt(format!("\"format\" is not {STATS_FORMAT:?}")));
        }
        match value.get("format_version").and_then(|v| v.as_u64()) {
            Some(v) if v == u64::from(FORMAT_VERSION) => {}
            Some(found) => {
                return Err(CacheError::UnsupportedVersion {
                    path: path.to_path_buf(),
                    found,
                });
            }
            None => return Err(corrupt("\"format_version\" is missing".into())),
        }
        serde_json::from_value(value)
            .map(Some)
            .map_err(|e| corrupt(e.to_string()))
    }

    /// Writes it to `path` atomically.
    pub fn save(&self, path: &Path) -> Result<(), CacheError> {
        let mut text = serde_json::to_string_pretty(self)
            .map_err(|e| CacheError::io("serialize", path, std::io::Error::other(e)))?;
        text.push('\n');
        write_atomic(path, text.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_file_round_trips_and_rejects_garbage() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("stats.json");
        assert_eq!(StatsFile::load(&path).unwrap(), None);
        let stats = CacheStats {
            l1: LevelStats::new([3, 1, 1, 0], 1, 10, 20),
            l2: Some(L2Stats::default()),
            ..CacheStats::default()
        };
        let file = StatsFile::new(&stats);
        file.save(&path).unwrap();
        assert_eq!(StatsFile::load(&path).unwrap(), Some(file));
        std::fs::write(&path, "{\"format\": 1").unwrap();
        assert!(matches!(
            StatsFile::load(&path),
            Err(CacheError::CorruptStats { .. })
        ));
    }

    #[test]
    fn ratios_are_null_when_empty() {
        let s = LevelStats::new([0, 0, 0, 0], 0, 0, 0);
        assert_eq!((s.compression_ratio, s.hit_ratio), (None, None));
        let s = LevelStats::new([3, 1, 0, 0], 1, 50, 100);
        assert_eq!((s.compression_ratio, s.hit_ratio), (Some(2.0), Some(0.75)));
    }
}
