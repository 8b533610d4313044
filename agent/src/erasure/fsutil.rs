//! File-system helpers: archive paths, aligned buffers, fsync of directories, atomic replace.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};

use super::EcError;

/// Alignment of [`AlignedBuf`]: enough for O_DIRECT on 4 KiB-sector devices.
pub const ALIGN: usize = 4096;

/// Name of the manifest inside an archive directory.
pub const MANIFEST: &str = "manifest.json";
/// Suffix of files that are not yet in place.
pub const TMP_SUFFIX: &str = ".tmp";

/// `<shard dir>/<archive id>`.
pub fn archive_dir(shard_dir: &Path, id: &str) -> PathBuf {
    shard_dir.join(id)
}

/// `<shard dir>/<archive id>/shard-<index>.dat`.
pub fn shard_path(shard_dir: &Path, id: &str, index: usize) -> PathBuf {
    archive_dir(shard_dir, id).join(format!("shard-{index}.dat"))
}

/// `path` with [`TMP_SUFFIX`] appended.
pub fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(TMP_SUFFIX);
    PathBuf::from(name)
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A zero-filled byte buffer whose start is aligned to [`ALIGN`] bytes, as O_DIRECT needs.
///
/// Built without `unsafe`: it over-allocates a `Vec` and starts at the first aligned byte.
/// The `Vec` never grows, so the data never moves while the buffer lives.
pub struct AlignedBuf {
    raw: Vec<u8>,
    start: usize,
    len: usize,
}

impl AlignedBuf {
    /// A zeroed buffer of `len` bytes.
    pub fn new(len: usize) -> Self {
        let raw = vec![0u8; len + ALIGN];
        let addr = raw.as_ptr().addr();
        let start = (ALIGN - addr % ALIGN) % ALIGN;
        AlignedBuf { raw, start, len }
    }
}

impl std::fmt::Debug for AlignedBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AlignedBuf({} bytes)", self.len)
    }
}

impl Deref for AlignedBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.raw[self.start..self.start + self.len]
    }
}

impl DerefMut for AlignedBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.raw[self.start..self.start + self.len]
    }
}

/// fsyncs a directory so that entries created, renamed or removed in it are durable.
pub fn fsync_dir(dir: &Path, shard_dir: &Path) -> Result<(), EcError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| EcError::io("fsync directory", dir, shard_dir, e))
}

/// Replaces `path` atomically: writes `path.tmp`, fsyncs it, renames it over `path` and
/// fsyncs the directory. On failure the tmp file is removed.
pub fn write_atomic(path: &Path, bytes: &[u8], shard_dir: &Path) -> Result<(), EcError> {
    let tmp = tmp_path(path);
    let written = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .and_then(|mut f| {
            f.write_all(bytes)?;
            f.sync_all()
        })
        .map_err(|e| EcError::io("write", &tmp, shard_dir, e))
        .and_then(|()| {
            fs::rename(&tmp, path).map_err(|e| EcError::io("rename", &tmp, shard_dir, e))
        });
    if let Err(e) = written {
        remove_quiet(&tmp);
        return Err(e);
    }
    fsync_dir(path.parent().unwrap_or(Path::new(".")), shard_dir)
}

/// Removes a file, logging (not failing) unless it is already gone.
pub fn remove_quiet(path: &Path) {
    if let Err(e) = fs::remove_file(path)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!("cannot remove {}: {e}", path.display());
    }
}

/// Removes every `*.tmp` file left in an archive directory by an interrupted run.
pub fn remove_stale_tmp(dir: &Path, shard_dir: &Path) -> Result<usize, EcError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(EcError::io("list", dir, shard_dir, e)),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry.map_err(|e| EcError::io("list", dir, shard_dir, e))?;
        if entry.file_name().to_string_lossy().ends_with(TMP_SUFFIX) {
            fs::remove_file(entry.path())
                .map_err(|e| EcError::io("remove", &entry.path(), shard_dir, e))?;
            removed += 1;
        }
    }
    if removed > 0 {
        tracing::info!("removed {removed} stale tmp file(s) in {}", dir.display());
        fsync_dir(dir, shard_dir)?;
    }
    Ok(removed)
}

/// Checks that each shard directory exists and that none repeats.
pub fn check_shard_dirs(dirs: &[PathBuf]) -> Result<(), EcError> {
    let mut seen = Vec::with_capacity(dirs.len());
    for dir in dirs {
        if !dir.is_dir() {
            return Err(EcError::MissingShardDir(dir.clone()));
        }
        let canonical = dir
            .canonicalize()
            .map_err(|e| EcError::io("resolve", dir, dir, e))?;
        if seen.contains(&canonical) {
            return Err(EcError::DuplicateShardDir(dir.clone()));
        }
        seen.push(canonical);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_buffers_are_aligned_and_zeroed() {
        for len in [0, 1, 4096, 6 << 20] {
            let mut b = AlignedBuf::new(len);
            assert_eq!(b.len(), len);
            assert_eq!(b.as_ptr().addr() % ALIGN, 0);
            assert!(b.iter().all(|&x| x == 0));
            b.fill(1);
        }
    }

    #[test]
    fn atomic_write_replaces_and_leaves_no_tmp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(MANIFEST);
        write_atomic(&path, b"one", dir.path()).unwrap();
        write_atomic(&path, b"two", dir.path()).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert!(!tmp_path(&path).exists());
    }
}
