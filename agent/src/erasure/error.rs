//! Errors of the archive engine; every message names the file or directory involved.

use std::io;
use std::path::{Path, PathBuf};

use super::manifest::ManifestError;

/// Why an erasure-coding operation failed.
#[derive(Debug, thiserror::Error)]
pub enum EcError {
    /// Invalid parameters (k, m, block size, archive id, number of shard directories).
    #[error("invalid parameters: {0}")]
    Params(String),
    /// A `--shard-dir` does not exist or is not a directory.
    #[error("shard directory {0} does not exist or is not a directory")]
    MissingShardDir(PathBuf),
    /// The same directory was given twice.
    #[error("shard directory {0} is given more than once")]
    DuplicateShardDir(PathBuf),
    /// The source cannot be archived (not a regular file or block device).
    #[error("{0} is neither a regular file nor a block device")]
    UnsupportedSource(PathBuf),
    /// A file system is full.
    #[error("no space left on {dir}")]
    NoSpace {
        /// The shard directory (or the restore target's directory) that ran out of space.
        dir: PathBuf,
    },
    /// Any other I/O failure.
    #[error("cannot {op} {path}: {source}")]
    Io {
        /// What was being done ("read", "write", "rename", ...).
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// Fewer intact shards than `k`.
    #[error("too few shards to reconstruct{}: {present} present, {needed} needed", stripe_text(*.stripe))]
    TooFewShards {
        /// Intact shards found.
        present: usize,
        /// Shards needed (k).
        needed: usize,
        /// The stripe that cannot be rebuilt, when the shortage is per stripe.
        stripe: Option<u64>,
    },
    /// No archive was found in the shard directories.
    #[error("no archive{} found in {}", id_text(.id), join(.dirs))]
    NoArchive {
        /// The archive id looked for, if one was given.
        id: Option<String>,
        /// The directories searched.
        dirs: Vec<PathBuf>,
    },
    /// The shard directories hold different archives.
    #[error(
        "shard directories hold different archives: {a_dir} has {a_id:?}, {b_dir} has {b_id:?} \
         (pass --archive-id to choose one)"
    )]
    DifferentArchives {
        /// First directory.
        a_dir: PathBuf,
        /// Its archive.
        a_id: String,
        /// Second directory.
        b_dir: PathBuf,
        /// Its archive.
        b_id: String,
    },
    /// Two manifests of the same archive disagree.
    #[error("mismatched parameters: {a_dir} has {a}, {b_dir} has {b}")]
    Mismatch {
        /// First directory.
        a_dir: PathBuf,
        /// What it says.
        a: String,
        /// Second directory.
        b_dir: PathBuf,
        /// What it says.
        b: String,
    },
    /// The archive exists and is complete.
    #[error("archive {id:?} already exists in {dir} (pass --force to overwrite it)")]
    ArchiveExists {
        /// Archive id.
        id: String,
        /// A directory holding a complete manifest of it.
        dir: PathBuf,
    },
    /// Only manifests of an interrupted encode were found.
    #[error(
        "archive {id:?} in {dir} is incomplete (an encode was interrupted): run the encode again"
    )]
    Incomplete {
        /// Archive id.
        id: String,
        /// A directory holding an incomplete manifest.
        dir: PathBuf,
    },
    /// An encode failed while committing; `outcome` says what state the archive was left in
    /// (the previous archive put back, shards of it lost, or incomplete until a re-run).
    #[error("encode of archive {id:?} failed while committing: {cause}; {outcome}")]
    CommitFailed {
        /// Archive id.
        id: String,
        /// The failure.
        cause: Box<EcError>,
        /// What became of the archive.
        outcome: String,
    },
    /// A block rebuilt from the other blocks of its stripe does not match the checksum the
    /// manifest records for it: some block used is silently corrupt. It is not used.
    #[error(
        "archive {id:?}: block {block} of shard {shard}, rebuilt from the other shards, does \
         not match its CRC-32C in the manifest (another shard is silently corrupt); it was \
         not used"
    )]
    RebuiltBlockMismatch {
        /// Archive id.
        id: String,
        /// Shard index.
        shard: usize,
        /// Block (stripe) number.
        block: u64,
    },
    /// A restore target exists.
    #[error("{0} exists (pass --force to overwrite it)")]
    TargetExists(PathBuf),
    /// A manifest cannot be used.
    #[error("manifest {path}: {error}")]
    Manifest {
        /// The manifest file.
        path: PathBuf,
        /// What is wrong with it.
        error: ManifestError,
    },
    /// The source changed size while it was read.
    #[error("{path} changed while it was read: expected {expected} bytes, found {found}")]
    SourceChanged {
        /// The source.
        path: PathBuf,
        /// Size at the start.
        expected: u64,
        /// Bytes actually read.
        found: u64,
    },
    /// Restored data does not match the archive's SHA-256.
    #[error("restored data does not match the SHA-256 recorded in the manifest ({0})")]
    Integrity(PathBuf),
    /// A requested range lies outside the archived source.
    #[error("range {offset}+{len} is beyond the end of the archive ({size} bytes)")]
    Range {
        /// Start of the range.
        offset: u64,
        /// Its length.
        len: u64,
        /// Source size.
        size: u64,
    },
    /// The Reed–Solomon codec refused the input.
    #[error("erasure codec: {0}")]
    Codec(String),
    /// Another agent holding a shard location cannot be reached.
    #[error("cannot reach {location}: {message}")]
    Unreachable {
        /// The location (`agent://HOST:PORT/STORE`).
        location: String,
        /// Why (connection refused, TLS handshake failed, ...).
        message: String,
    },
    /// Another agent refused a call on a shard location.
    #[error("{location}: {call} failed: {code:?}: {message}")]
    Remote {
        /// The location.
        location: String,
        /// The call.
        call: &'static str,
        /// The gRPC status code it returned.
        code: tonic::Code,
        /// Its message.
        message: String,
    },
    /// Remote shard locations were given without a client identity to reach them.
    #[error(
        "{0}: remote shard locations need a client certificate (ec: --tls-ca, --tls-cert, \
         --tls-key; serve: --peer-cert, --peer-key)"
    )]
    NoPeerIdentity(String),
}

impl EcError {
    /// An I/O error on `path`; ENOSPC becomes [`EcError::NoSpace`] naming `dir`.
    pub fn io(op: &'static str, path: &Path, dir: &Path, source: io::Error) -> Self {
        if is_enospc(&source) {
            EcError::NoSpace {
                dir: dir.to_path_buf(),
            }
        } else {
            EcError::Io {
                op,
                path: path.to_path_buf(),
                source,
            }
        }
    }
}

/// True for "no space left on device" (and "disk quota exceeded").
pub fn is_enospc(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
        || e.kind() == io::ErrorKind::StorageFull
        || e.kind() == io::ErrorKind::QuotaExceeded
}

fn stripe_text(stripe: Option<u64>) -> String {
    stripe.map(|s| format!(" stripe {s}")).unwrap_or_default()
}

fn id_text(id: &Option<String>) -> String {
    id.as_ref().map(|i| format!(" {i:?}")).unwrap_or_default()
}

fn join(dirs: &[PathBuf]) -> String {
    let names: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    names.join(", ")
}
