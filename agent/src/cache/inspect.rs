//! Read-only inspection of a cache directory (for `couchestor-agent cache stats`): checks the
//! marker, reads the persisted counters and scans the segments without changing anything,
//! so it is safe while another process uses the cache.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::CacheError;
use super::layout::{FORMAT_VERSION, STATS, check_marker, list_segments};
use super::record;
use super::stats::{StatsFile, ratio};

/// What the segments hold, from a scan.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct IndexSummary {
    /// Distinct blocks held by intact records.
    pub entries: u64,
    /// Segment files.
    pub segments: u64,
    /// Bytes of all segment files.
    pub disk_bytes: u64,
    /// Payload bytes of the blocks held (compressed).
    pub stored_bytes: u64,
    /// Decoded bytes of the blocks held.
    pub raw_bytes: u64,
    /// `raw_bytes / stored_bytes` (null when empty).
    pub compression_ratio: Option<f64>,
    /// Records whose checksum fails (dropped when the cache next opens).
    pub corrupt_records: u64,
    /// Bytes of torn tails (a record being written, or cut by a crash).
    pub torn_tail_bytes: u64,
}

/// A cache directory's state.
#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    /// The directory.
    pub cache_dir: PathBuf,
    /// Its format version.
    pub format_version: u32,
    /// From scanning the segments.
    pub index: IndexSummary,
    /// The counters last persisted by a process using the cache (null if none ever was).
    pub counters: Option<StatsFile>,
}

/// Inspects `dir` without modifying it.
pub fn inspect(dir: &Path) -> Result<Inspection, CacheError> {
    if !dir.is_dir() {
        return Err(CacheError::MissingDir(dir.to_path_buf()));
    }
    check_marker(dir)?;
    let counters = StatsFile::load(&dir.join(STATS))?;
    let mut index = IndexSummary::default();
    let mut live: HashMap<super::BlockKey, (u64, u64)> = HashMap::new();
    for (_, path) in list_segments(dir)? {
        let file = File::open(&path).map_err(|e| CacheError::io("open", &path, e))?;
        let len = file
            .metadata()
            .map_err(|e| CacheError::io("stat", &path, e))?
            .len();
        let scan = record::scan(&file, len).map_err(|e| CacheError::io("read", &path, e))?;
        index.segments += 1;
        index.disk_bytes += len;
        index.corrupt_records += scan.corrupt;
        index.torn_tail_bytes += scan.torn_bytes;
        for found in scan.records {
            let h = found.header;
            live.insert(h.key, (u64::from(h.stored_len), u64::from(h.raw_len)));
        }
    }
    index.entries = live.len() as u64;
    index.stored_bytes = live.values().map(|v| v.0).sum();
    index.raw_bytes = live.values().map(|v| v.1).sum();
    index.compression_ratio = ratio(index.raw_bytes, index.stored_bytes);
    Ok(Inspection {
        cache_dir: dir.to_path_buf(),
        format_version: FORMAT_VERSION,
        index,
        counters,
    })
}
