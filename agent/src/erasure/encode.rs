//! `encode`: source → k + m shard files and manifests, crash-safe.
//!
//! Phases: (1) shards are written to `shard-<i>.dat.tmp` and fsynced (an existing archive is
//! untouched); (2) every directory gets a manifest in state `writing`; (3) the shard files are
//! renamed into place; (4) every directory gets its manifest in state `complete`. Each manifest
//! is replaced atomically (tmp, fsync, rename, fsync dir). A crash leaves at least one
//! directory without a complete manifest, hence no complete archive. A failure in phase 1
//! removes the staged files; one in phases 2–4 is handled by [`commit`]: the previous archive
//! is put back (minus any shard already replaced, which the error names) or the archive reads
//! as incomplete.

use std::fs::{self, File};
use std::io::{Seek, SeekFrom};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use std::sync::Arc;

use super::fsutil::{
    MANIFEST, archive_dir, check_shard_dirs, fsync_dir, remove_stale_tmp, shard_path, tmp_path,
};
use super::location::{self, Location};
use super::manifest::{CHECKSUM_NAME, CODEC_NAME, FORMAT_NAME, FORMAT_VERSION, Manifest, State};
use super::place;
use super::remote::Peers;
use super::uring::IoStats;
use super::writer::{ShardTarget, ShardWriter};
use super::{
    Codec, DEFAULT_BLOCK_SIZE, DEFAULT_K, DEFAULT_M, EcError, NoProgress, Progress,
    check_archive_id, check_params, stripe_count,
};

mod commit;
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
    encode_at(source, &location::dirs(shard_dirs), params, progress, None)
}

/// [`encode_report`] into shard locations, local or on other agents (reached through
/// `peers`).
pub fn encode_at(
    source: &Path,
    locations: &[Location],
    params: &EncodeParams,
    progress: &dyn Progress,
    peers: Option<Arc<Peers>>,
) -> Result<Encoded, EcError> {
    let (k, m, block) = (params.k, params.m, params.block_size);
    check_params(k, m, block)?;
    if locations.len() != k + m {
        return Err(EcError::Params(format!(
            "k={k} m={m} needs exactly {} shard locations, {} given",
            k + m,
            locations.len()
        )));
    }
    check_locations(locations, peers.as_deref())?;
    let id = archive_id(source, params.archive_id.as_deref())?;
    let size = source_size(source)?;
    let old = refuse_existing(locations, &id, params.force, peers.as_deref())?;

    let mut cleanup = Cleanup {
        locations: locations.to_vec(),
        id: id.clone(),
        created: Vec::new(),
        peers: peers.clone(),
    };
    let mut targets = Vec::with_capacity(k + m);
    for (index, loc) in locations.iter().enumerate() {
        let path = match loc {
            Location::Dir(dir) => {
                let adir = archive_dir(dir, &id);
                if !adir.exists() {
                    fs::create_dir(&adir).map_err(|e| EcError::io("create", &adir, dir, e))?;
                    cleanup.created.push(adir.clone());
                    fsync_dir(dir, dir)?;
                }
                remove_stale_tmp(&adir, dir)?;
                Some(tmp_path(&shard_path(dir, &id, index)))
            }
            Location::Agent(_) => None,
        };
        targets.push(ShardTarget {
            index,
            location: loc.clone(),
            path,
        });
    }

    let codec = Codec::new(k, m)?;
    let depths = pipeline::Depths::for_stripe((k + m) * block);
    let shard_len = stripe_count(size, k, block) * block as u64;
    let writer = ShardWriter::create(targets, block, depths.write, &id, shard_len, peers.clone())?;
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
    let commit = commit::Commit {
        locations,
        id: &id,
        peers: peers.as_deref(),
        old,
    };
    // On failure, `cleanup` still removes the staged copies the commit left.
    commit.run(&manifest)?;
    cleanup.disarm();
    Ok(Encoded {
        manifest,
        reads: out.reads,
        writes: out.writes,
    })
}

/// Checks that local directories exist, that no location repeats, and that remote ones can
/// be reached (a client identity is configured).
pub(crate) fn check_locations(
    locations: &[Location],
    peers: Option<&Peers>,
) -> Result<(), EcError> {
    let dirs: Vec<PathBuf> = locations.iter().filter_map(|l| l.dir().cloned()).collect();
    check_shard_dirs(&dirs)?;
    for (i, loc) in locations.iter().enumerate() {
        if let Location::Agent(_) = loc {
            place::peers_for(loc, peers)?;
            if locations[..i].contains(loc) {
                return Err(EcError::DuplicateShardDir(loc.as_path()));
            }
        }
    }
    Ok(())
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

/// Fails if a complete archive `id` is present, unless `force`. A complete copy written by
/// the same encode as a `writing` copy (an interrupted commit of one encode) does not count.
/// Returns the parseable manifest copy at each location, as text.
fn refuse_existing(
    locations: &[Location],
    id: &str,
    force: bool,
    peers: Option<&Peers>,
) -> Result<Vec<Option<String>>, EcError> {
    let mut old = Vec::with_capacity(locations.len());
    let (mut complete, mut writing) = (Vec::new(), Vec::new());
    for loc in locations {
        let path = loc.as_path().join(id).join(MANIFEST);
        let text = place::read_manifest_text(loc, id, peers)?;
        let parsed = text.as_deref().map(Manifest::parse);
        match parsed {
            None => {}
            Some(Ok(m)) if m.state == State::Writing => writing.push(m),
            Some(Ok(m)) => complete.push((m, loc.as_path())),
            Some(Err(error)) if !force => return Err(EcError::Manifest { path, error }),
            Some(Err(_)) => {}
        }
        old.push(text.filter(|t| Manifest::parse(t).is_ok()));
    }
    let interrupted = |m: &Manifest| writing.iter().any(|w| w.difference(m).is_none());
    match complete.into_iter().find(|(m, _)| !interrupted(m)) {
        Some((_, dir)) if !force => Err(EcError::ArchiveExists { id: id.into(), dir }),
        _ => Ok(old),
    }
}

/// Removes what a failed encode left: tmp (staged) files; directories it created, if empty.
/// (What a failed commit changed is undone by [`commit::Commit`] first.)
struct Cleanup {
    locations: Vec<Location>,
    id: String,
    created: Vec<PathBuf>,
    peers: Option<Arc<Peers>>,
}

impl Cleanup {
    fn disarm(mut self) {
        self.locations.clear();
        self.created.clear();
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for (index, loc) in self.locations.iter().enumerate() {
            place::discard(loc, &self.id, index, false, self.peers.as_deref());
        }
        for adir in &self.created {
            if let Err(e) = fs::remove_dir(adir) {
                tracing::warn!("cannot remove {}: {e}", adir.display());
            }
        }
    }
}
