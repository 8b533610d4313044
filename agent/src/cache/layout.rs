//! Files of an L2 cache directory: the marker that makes a directory a cache, the lock that
//! keeps it to one process, the segment files and the persisted counters.
//!
//! ```text
//! DIR/couchestor-cache.json   marker: {"format": "couchestor-block-cache", "format_version": 1}
//! DIR/lock                    flock(2)ed exclusively while a cache has the directory open
//! DIR/seg-<16 hex>.log        append-only segments of records (see record.rs)
//! DIR/stats.json              counters, rewritten atomically (tmp + fsync + rename)
//! ```

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::json;

use super::CacheError;

/// Name of the marker file.
pub const MARKER: &str = "couchestor-cache.json";
/// Value of the marker's `format` field.
pub const FORMAT_NAME: &str = "couchestor-block-cache";
/// On-disk format version (marker, records and stats file).
pub const FORMAT_VERSION: u32 = 1;
/// Name of the lock file.
pub const LOCK: &str = "lock";
/// Name of the persisted counters.
pub const STATS: &str = "stats.json";

/// Path of segment `id`.
pub fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("seg-{id:016x}.log"))
}

/// The id in a segment file name, if it is one.
pub fn segment_id(name: &str) -> Option<u64> {
    let hex = name.strip_prefix("seg-")?.strip_suffix(".log")?;
    (hex.len() == 16)
        .then(|| u64::from_str_radix(hex, 16).ok())
        .flatten()
}

/// The segments in `dir`, by id.
pub fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, CacheError> {
    let entries = fs::read_dir(dir).map_err(|e| CacheError::io("list", dir, e))?;
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| CacheError::io("list", dir, e))?;
        if let Some(id) = entry.file_name().to_str().and_then(segment_id) {
            out.push((id, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// Checks the marker of an existing cache directory.
pub fn check_marker(dir: &Path) -> Result<(), CacheError> {
    let path = dir.join(MARKER);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(CacheError::NotACacheDir(dir.to_path_buf()));
        }
        Err(e) => return Err(CacheError::io("read", path, e)),
    };
    let corrupt = |reason: String| CacheError::CorruptMarker {
        path: path.clone(),
        reason,
    };
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| corrupt(e.to_string()))?;
    if value.get("format").and_then(|f| f.as_str()) != Some(FORMAT_NAME) {
        return Err(corrupt(format!("\"format\" is not {FORMAT_NAME:?}")));
    }
    match value.get("format_version").and_then(|v| v.as_u64()) {
        Some(v) if v == u64::from(FORMAT_VERSION) => Ok(()),
        Some(found) => Err(CacheError::UnsupportedVersion { path, found }),
        None => Err(corrupt("\"format_version\" is missing".into())),
    }
}

/// Opens (creating it and its marker when missing or empty) the cache directory `dir` and
/// takes its lock; the lock lasts as long as the returned file.
pub fn open_dir(dir: &Path) -> Result<File, CacheError> {
    fs::create_dir_all(dir).map_err(|e| CacheError::io("create", dir, e))?;
    if !dir.join(MARKER).exists() {
        let mut entries = fs::read_dir(dir).map_err(|e| CacheError::io("list", dir, e))?;
        if entries.next().is_some() {
            return Err(CacheError::NotACacheDir(dir.to_path_buf()));
        }
        let text = format!(
            "{:#}\n",
            json!({"format": FORMAT_NAME, "format_version": FORMAT_VERSION})
        );
        write_atomic(&dir.join(MARKER), text.as_bytes())?;
    }
    check_marker(dir)?;
    let path = dir.join(LOCK);
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| CacheError::io("open", &path, e))?;
    match lock.try_lock() {
        Ok(()) => Ok(lock),
        Err(TryLockError::WouldBlock) => Err(CacheError::Locked(dir.to_path_buf())),
        Err(TryLockError::Error(e)) => Err(CacheError::io("lock", path, e)),
    }
}

/// Writes `path` atomically: `path.tmp`, fsync, rename over `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), CacheError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut file = File::create(&tmp).map_err(|e| CacheError::io("create", &tmp, e))?;
    file.write_all(bytes)
        .map_err(|e| CacheError::io("write", &tmp, e))?;
    file.sync_all()
        .map_err(|e| CacheError::io("fsync", &tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| CacheError::io("rename", &tmp, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_round_trip() {
        let p = segment_path(Path::new("/c"), 42);
        let name = p.file_name().unwrap().to_str().unwrap();
        assert_eq!(segment_id(name), Some(42));
        assert_eq!(segment_id("seg-1.log"), None);
        assert_eq!(segment_id("stats.json"), None);
    }

    #[test]
    fn a_foreign_directory_is_refused_and_the_lock_is_exclusive() {
        let tmp = tempfile::tempdir().unwrap();
        let foreign = tmp.path().join("foreign");
        fs::create_dir(&foreign).unwrap();
        fs::write(foreign.join("data"), b"precious").unwrap();
        assert!(matches!(
            open_dir(&foreign),
            Err(CacheError::NotACacheDir(_))
        ));
        assert_eq!(fs::read_dir(&foreign).unwrap().count(), 1);

        let dir = tmp.path().join("cache");
        let held = open_dir(&dir).unwrap();
        assert!(matches!(open_dir(&dir), Err(CacheError::Locked(_))));
        drop(held);
        assert!(open_dir(&dir).is_ok());
    }
}
