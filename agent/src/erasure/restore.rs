//! `restore` (whole source back to a file or block device) and `read_range`.

use std::fs::{self, File};
use std::io::{Seek, SeekFrom};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, sync_channel};
use std::thread;

use ring::digest::{Context, SHA256};
use serde::Serialize;

use std::sync::Arc;

use super::fsutil::{AlignedBuf, fsync_dir, hex, remove_quiet};
use super::location::{self, Location};
use super::remote::Peers;
use super::stripes::Mode as Reads;
use super::uring::{Batch, Engine, FileSpec, IoStats, Kind, Mode, Op};
use super::{ArchiveReader, Backend, EcError, NoProgress, Progress};

/// Stripes whose target writes may be in flight at once.
const WRITE_DEPTH: usize = 4;
/// Stripes queued for the hasher thread.
const HASH_QUEUE: usize = 4;

/// What [`restore`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RestoreReport {
    /// Archive id.
    pub archive_id: String,
    /// The target written.
    pub target: PathBuf,
    /// Bytes written (the source size).
    pub bytes: u64,
    /// SHA-256 of the restored data (equal to the manifest's).
    pub sha256: String,
    /// Stripes in which at least one data block had to be rebuilt.
    pub stripes_rebuilt: u64,
    /// Shard indices whose file is absent from the given directories.
    pub missing_shards: Vec<usize>,
    /// GF(2^8) kernels used.
    pub backend: Backend,
    /// I/O of the shard reads.
    pub shard_io: IoStats,
    /// I/O of the target writes.
    pub target_io: IoStats,
}

/// Restores the archive in `shard_dirs` to `target`, byte for byte. A regular-file target is
/// written to a tmp file beside it and renamed into place; a block device is written in
/// place. An existing target needs `force`.
pub fn restore(
    shard_dirs: &[PathBuf],
    target: &Path,
    force: bool,
) -> Result<RestoreReport, EcError> {
    restore_with(shard_dirs, None, target, force, &NoProgress)
}

/// [`restore`] of archive `id` (or the only one present), reporting progress.
pub fn restore_with(
    shard_dirs: &[PathBuf],
    id: Option<&str>,
    target: &Path,
    force: bool,
    progress: &dyn Progress,
) -> Result<RestoreReport, EcError> {
    restore_at(
        &location::dirs(shard_dirs),
        id,
        target,
        force,
        progress,
        None,
    )
}

/// [`restore_with`] from shard locations, local or on other agents.
pub fn restore_at(
    locations: &[Location],
    id: Option<&str>,
    target: &Path,
    force: bool,
    progress: &dyn Progress,
    peers: Option<Arc<Peers>>,
) -> Result<RestoreReport, EcError> {
    let meta = match fs::metadata(target) {
        Ok(meta) => Some(meta),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            let dir = target.parent().unwrap_or(Path::new("."));
            return Err(EcError::io("stat", target, dir, e));
        }
    };
    if meta.is_some() && !force {
        return Err(EcError::TargetExists(target.to_path_buf()));
    }
    let device = meta.is_some_and(|m| m.file_type().is_block_device());
    let archive = ArchiveReader::open_at(locations, id, peers)?;
    archive.require_k()?;
    let manifest = archive.manifest();
    let (k, block) = (manifest.k, manifest.block_size);
    let parent = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let write_path = if device {
        target.to_path_buf()
    } else {
        parent.join(format!(".{name}.couchestor-restore.tmp"))
    };
    let io_err = |op, e| EcError::io(op, &write_path, &parent, e);
    if device {
        let mut out = File::options()
            .write(true)
            .open(&write_path)
            .map_err(|e| io_err("open", e))?;
        let capacity = out.seek(SeekFrom::End(0)).map_err(|e| io_err("seek", e))?;
        if capacity < manifest.source_size {
            return Err(EcError::Params(format!(
                "{} holds {capacity} bytes, the archive {}",
                target.display(),
                manifest.source_size
            )));
        }
    }
    let spec = FileSpec {
        path: write_path.clone(),
        dir: parent.clone(),
        mode: if device { Mode::Write } else { Mode::Create },
        // The last stripe is usually not sector-aligned: buffered writes, through io_uring.
        direct: false,
    };
    let mut out = Engine::new(vec![spec], WRITE_DEPTH, 1)?;

    let result = (|| {
        let need: Vec<usize> = (0..k).collect();
        let mut rebuilt = 0;
        let stripe_data = (k * block) as u64;
        let size = manifest.source_size;
        let len_of = |stripe: u64| (size - stripe * stripe_data).min(stripe_data) as usize;
        progress.begin("restore", size);
        // SHA-256 is the slowest step: a thread of its own hashes each stripe (in order)
        // before it is written.
        let (to_hash, hash_in) = sync_channel::<(u64, AlignedBuf)>(HASH_QUEUE);
        let (hashed_out, hashed) = channel::<(u64, AlignedBuf)>();
        let sha = thread::scope(|scope| {
            let hasher = scope.spawn(move || {
                let mut ctx = Context::new(&SHA256);
                for (stripe, buf) in hash_in {
                    ctx.update(&buf[..len_of(stripe)]);
                    if hashed_out.send((stripe, buf)).is_err() {
                        break;
                    }
                }
                hex(ctx.finish().as_ref())
            });
            let mut write = |stripe: u64, buf: AlignedBuf| -> Result<Vec<AlignedBuf>, EcError> {
                let len = len_of(stripe);
                let op = Op::new(0, Kind::Write, 0, len, stripe * stripe_data);
                out.submit(Batch::new(stripe, buf, vec![op]))?;
                progress.advance(len as u64);
                Ok(out.reap(WRITE_DEPTH)?.into_iter().map(|b| b.buf).collect())
            };
            let read = archive.for_each_stripe(
                0..manifest.stripes,
                &|_| need.clone(),
                Reads::Rebuild,
                &mut |s| {
                    if !s.rebuilt.is_empty() {
                        rebuilt += 1;
                    }
                    to_hash
                        .send((s.stripe, s.buf))
                        .map_err(|_| EcError::Codec("the restore hasher stopped".into()))?;
                    let mut freed = Vec::new();
                    while let Ok((stripe, buf)) = hashed.try_recv() {
                        freed.extend(write(stripe, buf)?);
                    }
                    Ok(freed)
                },
            );
            drop(to_hash);
            let mut written = read;
            for (stripe, buf) in hashed.iter() {
                if written.is_ok() {
                    written = write(stripe, buf).map(|_| ());
                }
            }
            let sha = hasher
                .join()
                .map_err(|_| EcError::Codec("the restore hasher panicked".into()))?;
            written.map(|()| sha)
        })?;
        progress.end();
        Ok((sha, rebuilt))
    })();
    let result = match (result, out.finish()) {
        (Ok((sha, _)), Ok(_)) if sha != manifest.source_sha256 => {
            Err(EcError::Integrity(target.to_path_buf()))
        }
        (Ok(done), Ok(stats)) => Ok((done, stats)),
        (Err(e), _) | (Ok(_), Err(e)) => Err(e),
    };
    let ((sha256, stripes_rebuilt), target_io) = match result {
        Ok(done) => done,
        Err(e) => {
            if !device {
                remove_quiet(&write_path);
            }
            return Err(e);
        }
    };
    if !device {
        fs::rename(&write_path, target).map_err(|e| {
            remove_quiet(&write_path);
            EcError::io("rename", &write_path, &parent, e)
        })?;
        fsync_dir(&parent, &parent)?;
    }
    let missing_shards = archive.missing_shards();
    Ok(RestoreReport {
        archive_id: manifest.archive_id.clone(),
        target: target.to_path_buf(),
        bytes: manifest.source_size,
        sha256,
        stripes_rebuilt,
        missing_shards,
        backend: archive.codec.backend(),
        shard_io: archive.read_io(),
        target_io,
    })
}

/// Reads `len` bytes at `offset` of the archive in `shard_dirs` (see
/// [`ArchiveReader::read_range`]).
pub fn read_range(shard_dirs: &[PathBuf], offset: u64, len: u64) -> Result<Vec<u8>, EcError> {
    let archive = ArchiveReader::open(shard_dirs, None)?;
    archive.require_k()?;
    archive.read_range(offset, len)
}
