//! L2: blocks zstd-compressed in append-only segment files of a local (NVMe) directory, with
//! an in-memory index rebuilt by scanning the segments when the cache opens.
//!
//! Crash safety: records are only ever appended, segments only ever deleted whole, and
//! nothing is trusted without its checksum. Opening truncates a torn tail and skips records
//! whose checksum fails; every read checks key, checksum and decoded length again, and on
//! any mismatch drops the entry and reports a miss. Size bound: when the segments would
//! exceed the configured bytes, the oldest segment is deleted.

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, MutexGuard};

use super::CacheError;
use super::key::BlockKey;
use super::layout::{list_segments, open_dir, segment_path};
use super::record::{self, HEADER_LEN};
use super::stats::{L2Extra, LevelCounters, bump};

/// Where a record lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Loc {
    segment: u64,
    offset: u64,
    stored_len: u32,
    raw_len: u32,
}

impl Loc {
    fn record_len(&self) -> u64 {
        HEADER_LEN as u64 + u64::from(self.stored_len)
    }
}

#[derive(Debug)]
struct Segment {
    file: Arc<File>,
    path: PathBuf,
    len: u64,
    keys: Vec<BlockKey>,
}

#[derive(Debug, Default)]
struct Inner {
    index: HashMap<BlockKey, Loc>,
    segments: BTreeMap<u64, Segment>,
    disk_bytes: u64,
    /// The active segment cannot be appended to (a write failed): start a new one.
    roll: bool,
}

/// Counters specific to L2 (cumulative within this process).
#[derive(Debug, Default)]
pub(crate) struct Extra {
    pub corrupt_dropped: std::sync::atomic::AtomicU64,
    pub torn_bytes_truncated: std::sync::atomic::AtomicU64,
    pub write_errors: std::sync::atomic::AtomicU64,
}

/// The on-disk level.
#[derive(Debug)]
pub struct L2 {
    dir: PathBuf,
    limit: u64,
    segment_bytes: u64,
    zstd_level: i32,
    inner: Mutex<Inner>,
    counters: Arc<LevelCounters>,
    pub(crate) extra: Extra,
    /// Held for the lifetime of the level.
    _lock: File,
}

impl L2 {
    /// Opens (or creates) the cache directory `dir` holding at most `limit` bytes of
    /// segments, and rebuilds the index from the segments found there.
    pub fn open(
        dir: &Path,
        limit: u64,
        max_record: u64,
        zstd_level: i32,
        counters: Arc<LevelCounters>,
    ) -> Result<L2, CacheError> {
        let lock = open_dir(dir)?;
        let segment_bytes = (limit / 8).clamp(max_record, 256 << 20);
        let l2 = L2 {
            dir: dir.to_path_buf(),
            limit,
            segment_bytes,
            zstd_level,
            inner: Mutex::new(Inner::default()),
            counters,
            extra: Extra::default(),
            _lock: lock,
        };
        l2.rebuild()?;
        Ok(l2)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the index pointing at unchecked bytes
        // (every read is verified), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Scans every segment: keeps records whose checksum holds, truncates torn tails.
    fn rebuild(&self) -> Result<(), CacheError> {
        let mut inner = self.lock();
        for (id, path) in list_segments(&self.dir)? {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .map_err(|e| CacheError::io("open", &path, e))?;
            let len = file
                .metadata()
                .map_err(|e| CacheError::io("stat", &path, e))?
                .len();
            let scan = record::scan(&file, len).map_err(|e| CacheError::io("read", &path, e))?;
            if scan.torn_bytes > 0 {
                tracing::warn!(
                    "{}: truncating a torn tail of {} bytes at offset {}",
                    path.display(),
                    scan.torn_bytes,
                    scan.valid_end
                );
                file.set_len(scan.valid_end)
                    .map_err(|e| CacheError::io("truncate", &path, e))?;
                self.extra
                    .torn_bytes_truncated
                    .fetch_add(scan.torn_bytes, Relaxed);
            }
            if scan.corrupt > 0 {
                tracing::warn!(
                    "{}: dropped {} records whose checksum does not match",
                    path.display(),
                    scan.corrupt
                );
                self.extra.corrupt_dropped.fetch_add(scan.corrupt, Relaxed);
            }
            let mut keys = Vec::with_capacity(scan.records.len());
            for found in scan.records {
                let h = found.header;
                let loc = Loc {
                    segment: id,
                    offset: found.offset,
                    stored_len: h.stored_len,
                    raw_len: h.raw_len,
                };
                // Later records win; an earlier copy of the same block stays as dead bytes.
                if let Some(old) = inner.index.insert(h.key, loc) {
                    self.counters
                        .removed(u64::from(old.stored_len), u64::from(old.raw_len), false);
                }
                self.counters
                    .added(u64::from(h.stored_len), u64::from(h.raw_len));
                keys.push(h.key);
            }
            inner.disk_bytes += scan.valid_end;
            inner.segments.insert(
                id,
                Segment {
                    file: Arc::new(file),
                    path,
                    len: scan.valid_end,
                    keys,
                },
            );
        }
        // Entries found on disk are not inserts of this process.
        self.counters.inserts.store(0, Relaxed);
        // Never append to a segment written by an earlier process: its tail was just checked,
        // but starting afresh keeps every write of this process in segments it created.
        inner.roll = true;
        Ok(())
    }

    /// Whether `key` is indexed (no counting).
    pub fn contains(&self, key: &BlockKey) -> bool {
        self.lock().index.contains_key(key)
    }

    /// Reads and checks the block `key`, counting a hit or a miss. A record that fails any
    /// check is dropped from the index and counted as a miss.
    pub fn get(&self, key: &BlockKey) -> Option<Vec<u8>> {
        let found = {
            let inner = self.lock();
            inner.index.get(key).and_then(|loc| {
                let seg = inner.segments.get(&loc.segment)?;
                Some((*loc, seg.file.clone(), seg.path.clone()))
            })
        };
        let Some((loc, file, path)) = found else {
            bump(&self.counters.misses);
            return None;
        };
        let mut buf = vec![0u8; loc.record_len() as usize];
        let decoded = match file.read_exact_at(&mut buf, loc.offset) {
            Ok(()) => record::decode(&buf, key),
            Err(e) => {
                tracing::warn!("cannot read {}: {e}", path.display());
                None
            }
        };
        match decoded {
            Some(raw) if raw.len() == loc.raw_len as usize => {
                bump(&self.counters.hits);
                Some(raw)
            }
            _ => {
                tracing::warn!(
                    "{}: record at offset {} (block {}) fails its checks; dropped",
                    path.display(),
                    loc.offset,
                    key.index
                );
                bump(&self.extra.corrupt_dropped);
                self.forget(key, loc);
                bump(&self.counters.misses);
                None
            }
        }
    }

    /// Removes `key` from the index if it still points at `loc`.
    fn forget(&self, key: &BlockKey, loc: Loc) {
        let mut inner = self.lock();
        if inner.index.get(key) == Some(&loc) {
            inner.index.remove(key);
            self.counters
                .removed(u64::from(loc.stored_len), u64::from(loc.raw_len), false);
        }
    }

    /// Stores a block unless already held. Failures are logged and counted, never returned:
    /// the block is then simply not cached.
    pub fn insert(&self, key: BlockKey, raw: &[u8]) {
        if self.contains(&key) {
            return;
        }
        let rec = match record::encode(&key, raw, self.zstd_level) {
            Ok(rec) => rec,
            Err(e) => {
                tracing::warn!("zstd cannot compress block {}: {e}", key.index);
                bump(&self.extra.write_errors);
                return;
            }
        };
        let len = rec.len() as u64;
        let mut inner = self.lock();
        if inner.index.contains_key(&key) || len > self.limit {
            return;
        }
        if let Err(e) = self.make_room(&mut inner, len) {
            tracing::warn!("{e}");
            bump(&self.extra.write_errors);
            return;
        }
        if inner.disk_bytes + len > self.limit {
            return;
        }
        let Some((&id, seg)) = inner.segments.iter_mut().next_back() else {
            return;
        };
        let offset = seg.len;
        if let Err(e) = seg.file.write_all_at(&rec, offset) {
            tracing::warn!("cannot write {}: {e}", seg.path.display());
            bump(&self.extra.write_errors);
            // Cut off whatever part was written; if even that fails, the next open truncates
            // it as a torn tail. Either way no more appends go to this segment.
            if let Err(e) = seg.file.set_len(offset) {
                tracing::warn!("cannot truncate {}: {e}", seg.path.display());
            }
            inner.roll = true;
            return;
        }
        seg.len += len;
        seg.keys.push(key);
        inner.disk_bytes += len;
        let loc = Loc {
            segment: id,
            offset,
            stored_len: (rec.len() - HEADER_LEN) as u32,
            raw_len: raw.len() as u32,
        };
        inner.index.insert(key, loc);
        self.counters
            .added(u64::from(loc.stored_len), u64::from(loc.raw_len));
    }

    /// Makes the active segment able to take `len` more bytes within the size bound: starts
    /// a new segment when the active one is full, deletes the oldest ones while over.
    fn make_room(&self, inner: &mut Inner, len: u64) -> Result<(), CacheError> {
        let active_len = inner.segments.values().next_back().map(|s| s.len);
        let full = active_len.is_none_or(|l| l > 0 && l + len > self.segment_bytes);
        if full || inner.roll {
            let id = inner.segments.keys().next_back().map_or(1, |id| id + 1);
            let path = segment_path(&self.dir, id);
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&path)
                .map_err(|e| CacheError::io("create", &path, e))?;
            inner.segments.insert(
                id,
                Segment {
                    file: Arc::new(file),
                    path,
                    len: 0,
                    keys: Vec::new(),
                },
            );
            inner.roll = false;
        }
        while inner.disk_bytes + len > self.limit && inner.segments.len() > 1 {
            let Some((id, seg)) = inner.segments.pop_first() else {
                break;
            };
            if let Err(e) = std::fs::remove_file(&seg.path) {
                let path = seg.path.clone();
                inner.segments.insert(id, seg);
                return Err(CacheError::io("delete", path, e));
            }
            inner.disk_bytes -= seg.len;
            for key in seg.keys {
                if inner.index.get(&key).is_some_and(|l| l.segment == id)
                    && let Some(loc) = inner.index.remove(&key)
                {
                    self.counters
                        .removed(u64::from(loc.stored_len), u64::from(loc.raw_len), true);
                }
            }
        }
        Ok(())
    }

    /// The L2-specific counters and the segments' size now.
    pub fn extra(&self) -> L2Extra {
        let inner = self.lock();
        L2Extra {
            corrupt_dropped: self.extra.corrupt_dropped.load(Relaxed),
            torn_bytes_truncated: self.extra.torn_bytes_truncated.load(Relaxed),
            write_errors: self.extra.write_errors.load(Relaxed),
            segments: inner.segments.len() as u64,
            disk_bytes: inner.disk_bytes,
        }
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Flushes the segments to stable storage (not needed for correctness: unflushed
    /// records lost in a crash are simply misses).
    pub fn sync(&self) -> Result<(), CacheError> {
        let files: Vec<(Arc<File>, PathBuf)> = self
            .lock()
            .segments
            .values()
            .map(|s| (s.file.clone(), s.path.clone()))
            .collect();
        for (file, path) in files {
            file.sync_data()
                .map_err(|e| CacheError::io("fsync", path, e))?;
        }
        Ok(())
    }
}
