//! Errors of the block cache; every message names the file or directory involved.

use std::io;
use std::path::PathBuf;

use crate::erasure::EcError;

/// Why a cache operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// An invalid [`CacheConfig`](super::CacheConfig).
    #[error("invalid cache configuration: {0}")]
    Config(String),
    /// The cache directory does not exist (only `cache stats` reports this; opening a cache
    /// creates its directory).
    #[error("cache directory {0} does not exist or is not a directory")]
    MissingDir(PathBuf),
    /// The directory is not empty and holds no cache marker: it is not ours to fill.
    #[error(
        "{0} is not a CoucheStor block cache directory (no {marker}); refusing to use it",
        marker = super::layout::MARKER
    )]
    NotACacheDir(PathBuf),
    /// The marker or stats file says a format version this build cannot read.
    #[error(
        "{path}: unsupported cache format version {found} (this agent reads version {})",
        super::layout::FORMAT_VERSION
    )]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// The version found.
        found: u64,
    },
    /// The marker file cannot be parsed.
    #[error("cache marker {path} is corrupt: {reason}")]
    CorruptMarker {
        /// The marker file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The persisted counters cannot be parsed.
    #[error("cache stats file {path} is corrupt: {reason}")]
    CorruptStats {
        /// The stats file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Another process (or another cache object of this one) holds the directory.
    #[error("cache directory {0} is in use by another cache (its lock file is held)")]
    Locked(PathBuf),
    /// An I/O failure on a cache file.
    #[error("cannot {op} {path}: {source}")]
    Io {
        /// What was being done ("open", "read", "write", "rename", ...).
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// Reading the archive itself failed (or the range is outside it).
    #[error(transparent)]
    Archive(#[from] EcError),
}

impl CacheError {
    /// An I/O error on `path`.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        CacheError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}
