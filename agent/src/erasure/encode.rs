//! `encode`: source → k + m shard files and manifests, crash-safe.
//!
//! Phases: (1) shards are written to `shard-<i>.dat.tmp` and fsynced (an existing archive is
//! untouched); (2) every directory gets a manifest in state `writing`; (3) the shard files are
//! renamed into place; (4) every directory gets its manifest in state `complete`. Each manifest
//! is replaced atomically (tmp, fsync, rename, fsync dir). A crash leaves at least one
//! directory without a complete manifest, hence no complete archive; a failure cleans up.

use std::fs::{self, File};
use std::io::{Seek, SeekFrom};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use super::fsutil::{
    MANIFEST, archive_dir, check_shard_dirs, fsync_dir, remove_quiet, remove_stale_tmp, shard_path,
    tmp_path, write_atomic,
};
use super::manifest::{CHECKSUM_NAME, CODEC_NAME, FORMAT_NAME, FORMAT_VERSION, Manifest, State};
use super::uring::IoStats;
use super::writer::{ShardTarget, ShardWriter};
use super::{
    Codec, DEFAULT_BLOCK_SIZE, DEFAULT_K, DEFAULT_M, EcError, NoProgress, Progress,
    check_archive_id, check_params, stripe_count,
};

mod pipeline;

/// Parameters of [`encode`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodeParams {
    /// Data shards per stripe.
    pub k: usize,
    /// Parity shards per stripe.
    pub m: usize,
    /// Bytes per shard block.
    pub block_size: usize,
    /// Archive id; by default the source's file name.
    pub archive_id: Option<String>,
    /// Overwrite an existing complete archive of the same id.
    pub force: bool,
}

impl Default for EncodeParams {
    fn default() -> Self {
        EncodeParams {
            k: DEFAULT_K,
            m: DEFAULT_M,
            block_size: DEFAULT_BLOCK_SIZE,
            archive_id: None,
            force: false,
        }
    }
}

/// Archives `source` (a regular file or block device) into `shard_dirs` (exactly `k + m`,
/// in shard order) and returns the manifest.
pub fn encode(
    source: &Path,
    shard_dirs: &[PathBuf],
    params: &EncodeParams,
) -> Result<Manifest, EcError> {
    encode_with_progress(source, shard_dirs, params, &NoProgress)
}

/// [`encode`], reporting progress.
pub fn encode_with_progress(
    source: &Path,
    shard_dirs: &[PathBuf],
    params: &EncodeParams,
    progress: &dyn Progress,
) -> Result<Manifest, EcError> {
    encode_report(source, shard_dirs, params, progress).map(|e| e.manifest)
}

/// What [`encode_report`] did.
#[derive(Debug, Clone)]
pub struct Encoded {
    /// The archive's manifest.
    pub manifest: Manifest,
    /// I/O of the source reads.
    pub reads: IoStats,
    /// I/O of the shard writes.
    pub writes: IoStats,
}

/// [`encode`], reporting progress and returning the I/O statistics as well.
pub fn encode_report(
    source: &Path,
    shard_dirs: &[PathBuf],
    params: &EncodeParams,
    progress: &dyn Progress,
) -> Result<Encoded, EcError> {
    let (k, m, block) = (params.k, params.m, params.block_size);
    check_params(k, m, block)?;
    if shard_dirs.len() != k + m {
        return Err(EcError::Params(format!(
            "k={k} m={m} needs exactly {} shard directories, {} given",
            k + m,
            shard_dirs.len()
        )));
    }
    check_shard_dirs(shard_dirs)?;
    let id = archive_id(source, params.archive_id.as_deref())?;
    let size = source_size(source)?;
    refuse_existing(shard_dirs, &id, params.force)?;

    let mut cleanup = Cleanup {
        dirs: shard_dirs.to_vec(),
        id: id.clone(),
        created: Vec::new(),
        committing: false,
    };
    let mut targets = Vec::with_capacity(k + m);
    for (index, dir) in shard_dirs.iter().enumerate() {
        let adir = archive_dir(dir, &id);
        if !adir.exists() {
            fs::create_dir(&adir).map_err(|e| EcError::io("create", &adir, dir, e))?;
            cleanup.created.push(adir.clone());
            fsync_dir(dir, dir)?;
        }
        remove_stale_tmp(&adir, dir)?;
        targets.push(ShardTarget {
            index,
            shard_dir: dir.clone(),
            path: tmp_path(&shard_path(dir, &id, index)),
        });
    }

    let codec = Codec::new(k, m)?;
    let depths = pipeline::Depths::for_stripe((k + m) * block);
    let writer = ShardWriter::create(targets, block, depths.write)?;
    tracing::info!(
        "encoding {} ({size} bytes) as {id:?}: {k}+{m}, {block}-byte blocks, {} kernels, {}",
        source.display(),
        codec.backend(),
        if writer.uses_io_uring() {
            "io_uring"
        } else {
            "pwrite"
        }
    );
    progress.begin("encode", size);
    let out = pipeline::run(source, size, &codec, block, writer, depths, progress)?;
    let (crcs, sha) = (out.crcs, out.sha256);
    progress.end();

    let manifest = Manifest {
        format: FORMAT_NAME.into(),
        format_version: FORMAT_VERSION,
        archive_id: id.clone(),
        shard_index: 0,
        state: State::Complete,
        created: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        source_size: size,
        k,
        m,
        block_size: block,
        stripes: stripe_count(size, k, block),
        codec: CODEC_NAME.into(),
        checksum: CHECKSUM_NAME.into(),
        source_sha256: sha,
        block_crc32c: crcs,
    };
    cleanup.committing = true;
    // Phase 2: mark every directory as committing (this also retires an older archive).
    for (index, dir) in shard_dirs.iter().enumerate() {
        let copy = manifest.for_shard(index, State::Writing);
        write_atomic(
            &archive_dir(dir, &id).join(MANIFEST),
            copy.to_json().as_bytes(),
            dir,
        )?;
    }
    // Phase 3: shard files into place.
    for (index, dir) in shard_dirs.iter().enumerate() {
        let dat = shard_path(dir, &id, index);
        fs::rename(tmp_path(&dat), &dat).map_err(|e| EcError::io("rename", &dat, dir, e))?;
        fsync_dir(&archive_dir(dir, &id), dir)?;
    }
    // Phase 4: complete manifests.
    for (index, dir) in shard_dirs.iter().enumerate() {
        let copy = manifest.for_shard(index, State::Complete);
        write_atomic(
            &archive_dir(dir, &id).join(MANIFEST),
            copy.to_json().as_bytes(),
            dir,
        )?;
    }
    cleanup.disarm();
    Ok(Encoded {
        manifest,
        reads: out.reads,
        writes: out.writes,
    })
}

/// The archive id: the given one, or the source's file name.
fn archive_id(source: &Path, given: Option<&str>) -> Result<String, EcError> {
    let id = match given {
        Some(id) => id.to_string(),
        None => source
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    };
    check_archive_id(&id)?;
    Ok(id)
}

/// The size of the source (block devices: seek to the end).
fn source_size(source: &Path) -> Result<u64, EcError> {
    let mut file = File::open(source).map_err(|e| EcError::io("open", source, source, e))?;
    let meta = file
        .metadata()
        .map_err(|e| EcError::io("stat", source, source, e))?;
    let size = if meta.file_type().is_block_device() {
        let size = file
            .seek(SeekFrom::End(0))
            .map_err(|e| EcError::io("seek", source, source, e))?;
        file.seek(SeekFrom::Start(0))
            .map_err(|e| EcError::io("seek", source, source, e))?;
        size
    } else if meta.is_file() {
        meta.len()
    } else {
        return Err(EcError::UnsupportedSource(source.to_path_buf()));
    };
    Ok(size)
}

/// Fails if a complete archive `id` is present (and no directory shows an interrupted
/// commit), unless `force`.
fn refuse_existing(dirs: &[PathBuf], id: &str, force: bool) -> Result<(), EcError> {
    let mut complete = None;
    for dir in dirs {
        let path = archive_dir(dir, id).join(MANIFEST);
        let Ok(text) = fs::read_to_string(&path) else {
            continue;
        };
        match Manifest::parse(&text) {
            Ok(m) if m.state == State::Writing => return Ok(()),
            Ok(_) => {
                complete.get_or_insert_with(|| dir.clone());
            }
            Err(error) if !force => return Err(EcError::Manifest { path, error }),
            Err(_) => {}
        }
    }
    match complete {
        Some(dir) if !force => Err(EcError::ArchiveExists { id: id.into(), dir }),
        _ => Ok(()),
    }
}

/// Removes what a failed encode left: tmp files, and once committing, the new manifests and
/// shard files; directories it created, if empty.
struct Cleanup {
    dirs: Vec<PathBuf>,
    id: String,
    created: Vec<PathBuf>,
    committing: bool,
}

impl Cleanup {
    fn disarm(mut self) {
        self.dirs.clear();
        self.created.clear();
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for (index, dir) in self.dirs.iter().enumerate() {
            let adir = archive_dir(dir, &self.id);
            let dat = shard_path(dir, &self.id, index);
            remove_quiet(&tmp_path(&dat));
            remove_quiet(&tmp_path(&adir.join(MANIFEST)));
            if self.committing {
                remove_quiet(&adir.join(MANIFEST));
                remove_quiet(&dat);
            }
            if adir.is_dir()
                && let Err(e) = fsync_dir(&adir, dir)
            {
                tracing::warn!("after a failed encode: {e}");
            }
        }
        for adir in &self.created {
            if let Err(e) = fs::remove_dir(adir) {
                tracing::warn!("cannot remove {}: {e}", adir.display());
            }
        }
    }
}
