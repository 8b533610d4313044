//! Finding an archive in a set of shard directories, and the shard files it reads from.
//! Reading (and rebuilding) stripes is in `stripes.rs`.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use std::sync::Arc;

use super::encode::check_locations;
use super::fsutil::{MANIFEST, archive_dir, shard_path};
use super::location::{self, AgentStore, Location};
use super::manifest::{Manifest, State};
use super::place;
use super::remote::Peers;
use super::uring::{DIRECT_UNIT, Engine, FileSpec, Mode};
use super::{Codec, EcError};
use crate::shardstore::ShardStoreClient;

/// A shard directory that holds a usable copy of the archive.
#[derive(Debug)]
pub(crate) struct Slot {
    /// The location, as a path for reports.
    pub dir: PathBuf,
    /// The location.
    pub location: Location,
    /// Where the shard's blocks come from.
    pub source: Source,
}

/// Where a shard's blocks are read from.
#[derive(Debug)]
pub(crate) enum Source {
    /// A local shard file (opened with O_DIRECT where accepted).
    Local {
        /// The file.
        file: File,
        /// Its path.
        path: PathBuf,
        /// Whether it was opened with O_DIRECT.
        direct: bool,
    },
    /// A store of another agent.
    Remote {
        /// Its client.
        client: Box<ShardStoreClient>,
        /// The store.
        store: AgentStore,
    },
    /// The shard file cannot be used: why (e.g. "shard file is missing", or the error that
    /// opening it gave).
    Unusable(String),
}

impl Slot {
    /// Whether blocks can be read from it.
    pub fn readable(&self) -> bool {
        !matches!(self.source, Source::Unusable(_))
    }
}

/// A given shard directory without a usable copy, and why.
#[derive(Debug)]
pub(crate) struct Blank {
    pub dir: PathBuf,
    pub location: Location,
    pub reason: String,
    /// The shard index its file name suggests (`shard-<i>.dat`), if any.
    pub hint: Option<usize>,
}

/// An archive opened for reading.
#[derive(Debug)]
pub struct ArchiveReader {
    pub(crate) manifest: Manifest,
    pub(crate) slots: Vec<Option<Slot>>,
    pub(crate) blanks: Vec<Blank>,
    pub(crate) codec: Codec,
    /// Stripes read (any caller) that had to rebuild at least one block.
    pub(crate) degraded_reads: AtomicU64,
    /// I/O engines over the local shard files, reused across calls (one per concurrent
    /// reader thread).
    pub(crate) engines: Mutex<Vec<Engine>>,
    /// For each shard index, its file's index in the engines (local shards only).
    pub(crate) engine_file: Vec<Option<usize>>,
    /// How remote shards are reached.
    pub(crate) peers: Option<Arc<Peers>>,
}

impl ArchiveReader {
    /// Opens the archive `id` (or the only archive present) in `dirs`, in any order. The
    /// directories must exist; manifests must agree. Fewer than `k` shards is not an error
    /// here (see [`ArchiveReader::require_k`]).
    pub fn open(dirs: &[PathBuf], id: Option<&str>) -> Result<Self, EcError> {
        Self::open_at(&location::dirs(dirs), id, None)
    }

    /// [`ArchiveReader::open`] on shard locations, local or on other agents (reached through
    /// `peers`). A location that cannot be reached counts as one without a copy.
    pub fn open_at(
        locations: &[Location],
        id: Option<&str>,
        peers: Option<Arc<Peers>>,
    ) -> Result<Self, EcError> {
        check_locations(locations, peers.as_deref())?;
        let id = match id {
            Some(id) => id.to_string(),
            None => find_archive_id(locations, peers.as_deref())?,
        };
        let mut first: Option<(Manifest, PathBuf)> = None;
        let mut unusable = None;
        let mut found = Vec::new();
        let mut blanks = Vec::new();
        for loc in locations {
            let dir = loc.as_path();
            let path = dir.join(&id).join(MANIFEST);
            let blank = |reason: String| Blank {
                dir: dir.clone(),
                location: loc.clone(),
                reason,
                hint: loc.dir().and_then(|d| shard_hint(&archive_dir(d, &id))),
            };
            let parsed = match place::read_manifest(loc, &id, peers.as_deref()) {
                Ok(Some(parsed)) => parsed,
                Ok(None) => {
                    blanks.push(blank("no manifest of this archive".into()));
                    continue;
                }
                Err(e) => {
                    tracing::warn!("{e}");
                    blanks.push(blank(e.to_string()));
                    continue;
                }
            };
            let manifest = match parsed {
                Ok(m) if m.archive_id != id => {
                    return Err(EcError::Mismatch {
                        a_dir: dir.clone(),
                        a: format!("archive_id {:?} in directory {id:?}", m.archive_id),
                        b_dir: dir.clone(),
                        b: format!("expected {id:?}"),
                    });
                }
                // An interrupted commit: the archive is not complete, whatever the other
                // directories say.
                Ok(m) if m.state == State::Writing => {
                    return Err(EcError::Incomplete {
                        id,
                        dir: dir.clone(),
                    });
                }
                Ok(m) => m,
                Err(error) => {
                    tracing::warn!("{}: {error}", path.display());
                    blanks.push(blank(format!("unusable manifest: {error}")));
                    unusable.get_or_insert(EcError::Manifest { path, error });
                    continue;
                }
            };
            if let Some((canon, canon_dir)) = &first
                && let Some((a, b)) = canon.difference(&manifest)
            {
                return Err(EcError::Mismatch {
                    a_dir: canon_dir.clone(),
                    a,
                    b_dir: dir.clone(),
                    b,
                });
            }
            first.get_or_insert_with(|| (manifest.clone(), dir.clone()));
            found.push((manifest.shard_index, loc.clone()));
        }
        let Some((manifest, _)) = first else {
            // No usable copy: say why the copies found are unusable, if any were found.
            return Err(unusable.unwrap_or_else(|| EcError::NoArchive {
                id: Some(id),
                dirs: locations.iter().map(Location::as_path).collect(),
            }));
        };
        let mut slots: Vec<Option<Slot>> = (0..manifest.k + manifest.m).map(|_| None).collect();
        for (index, loc) in found {
            if let Some(other) = &slots[index] {
                return Err(EcError::Mismatch {
                    a_dir: other.dir.clone(),
                    a: format!("shard {index}"),
                    b_dir: loc.as_path(),
                    b: format!("shard {index} as well"),
                });
            }
            let source = match &loc {
                Location::Dir(dir) => open_shard(&shard_path(dir, &id, index), manifest.block_size),
                Location::Agent(store) => {
                    let peers = place::peers_for(&loc, peers.as_deref())?;
                    match peers.client(store) {
                        Ok(client) => Source::Remote {
                            client: Box::new(client),
                            store: store.clone(),
                        },
                        Err(e) => Source::Unusable(e.to_string()),
                    }
                }
            };
            slots[index] = Some(Slot {
                dir: loc.as_path(),
                location: loc,
                source,
            });
        }
        let codec = Codec::new(manifest.k, manifest.m)?;
        let mut engine_file = vec![None; slots.len()];
        let mut next = 0;
        for (index, slot) in slots.iter().enumerate() {
            if let Some(Slot {
                source: Source::Local { .. },
                ..
            }) = slot
            {
                engine_file[index] = Some(next);
                next += 1;
            }
        }
        Ok(ArchiveReader {
            manifest,
            slots,
            blanks,
            codec,
            degraded_reads: AtomicU64::new(0),
            engines: Mutex::new(Vec::new()),
            engine_file,
            peers,
        })
    }

    /// The archive's manifest (with the `shard_index` of the first copy read).
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Indices of the shards whose file could not be opened when the archive was opened
    /// (reads of their blocks are rebuilt from the others).
    pub fn missing_shards(&self) -> Vec<usize> {
        (0..self.slots.len())
            .filter(|&i| !self.readable(i))
            .collect()
    }

    /// What the I/O engines of this reader did so far (shard reads).
    pub fn read_io(&self) -> super::IoStats {
        self.engines
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .fold(super::IoStats::default(), |sum, e| sum.plus(e.stats()))
    }

    /// Where shard `index` is (`None`: no given location holds it).
    pub fn shard_location(&self, index: usize) -> Option<String> {
        self.slots[index].as_ref().map(|s| s.location.to_string())
    }

    /// Why shard `index` cannot be read (`None` if it can).
    pub fn shard_problem(&self, index: usize) -> Option<String> {
        self.unusable_reason(index)
    }

    /// Whether shard `index` can be read.
    pub(crate) fn readable(&self, index: usize) -> bool {
        self.slots[index].as_ref().is_some_and(Slot::readable)
    }

    /// Why shard `index` cannot be read (`None` if it can).
    pub(crate) fn unusable_reason(&self, index: usize) -> Option<String> {
        match &self.slots[index] {
            None => Some("no given directory holds this shard".into()),
            Some(Slot {
                source: Source::Unusable(reason),
                ..
            }) => Some(reason.clone()),
            Some(_) => None,
        }
    }

    /// Runs `f` with an I/O engine over the local shard files (taken from the pool, or new).
    pub(crate) fn with_engine<T>(
        &self,
        f: impl FnOnce(&mut Engine) -> Result<T, EcError>,
    ) -> Result<T, EcError> {
        let pooled = self
            .engines
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop();
        let mut engine = match pooled {
            Some(engine) => engine,
            None => self.new_engine()?,
        };
        let result = f(&mut engine);
        if engine.in_flight() == 0 {
            self.engines
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(engine);
        }
        result
    }

    fn new_engine(&self) -> Result<Engine, EcError> {
        let mut files = Vec::new();
        for slot in self.slots.iter().flatten() {
            if let Source::Local { file, path, direct } = &slot.source {
                let dup = file
                    .try_clone()
                    .map_err(|e| EcError::io("duplicate the descriptor of", path, &slot.dir, e))?;
                let spec = FileSpec {
                    path: path.clone(),
                    dir: slot.dir.clone(),
                    mode: Mode::Read,
                    direct: *direct,
                };
                files.push((spec, dup, *direct));
            }
        }
        let n = files.len();
        Ok(Engine::with_open(files, super::stripes::READ_DEPTH, n))
    }

    /// How many stripes this reader has read so far (by [`ArchiveReader::read_range`],
    /// a restore or a scrub) that had to rebuild at least one missing or corrupt block; the
    /// process-wide total is [`super::process_degraded_reads`].
    pub fn degraded_reads(&self) -> u64 {
        self.degraded_reads.load(Ordering::Relaxed)
    }

    /// Fails unless at least `k` shard files are present.
    pub fn require_k(&self) -> Result<(), EcError> {
        let present = (0..self.slots.len()).filter(|&i| self.readable(i)).count();
        if present < self.manifest.k {
            return Err(EcError::TooFewShards {
                present,
                needed: self.manifest.k,
                stripe: None,
            });
        }
        Ok(())
    }
}

/// Opens a shard file for reading: O_DIRECT when blocks are a multiple of
/// [`DIRECT_UNIT`] and the file system accepts it.
fn open_shard(path: &Path, block: usize) -> Source {
    let open = |direct: bool| {
        let mut options = OpenOptions::new();
        options.read(true);
        if direct {
            options.custom_flags(libc::O_DIRECT);
        }
        options.open(path)
    };
    let mut direct = block.is_multiple_of(DIRECT_UNIT);
    let mut opened = open(direct);
    if direct && matches!(&opened, Err(e) if e.raw_os_error() == Some(libc::EINVAL)) {
        direct = false;
        opened = open(false);
    }
    match opened {
        Ok(file) => Source::Local {
            file,
            path: path.to_path_buf(),
            direct,
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            Source::Unusable("shard file is missing".into())
        }
        Err(e) => {
            tracing::warn!("cannot open shard {}: {e}", path.display());
            Source::Unusable(format!("cannot open {}: {e}", path.display()))
        }
    }
}

/// The id of the only archive in `locations` (unreachable remote ones are skipped).
fn find_archive_id(locations: &[Location], peers: Option<&Peers>) -> Result<String, EcError> {
    let mut seen: Option<(String, PathBuf)> = None;
    for loc in locations {
        let ids = match place::list_ids(loc, peers) {
            Ok(ids) => ids,
            Err(e) if matches!(loc, Location::Agent(_)) => {
                tracing::warn!("{e}");
                continue;
            }
            Err(e) => return Err(e),
        };
        for name in ids {
            match &seen {
                None => seen = Some((name, loc.as_path())),
                Some((id, first)) if *id != name => {
                    return Err(EcError::DifferentArchives {
                        a_dir: first.clone(),
                        a_id: id.clone(),
                        b_dir: loc.as_path(),
                        b_id: name,
                    });
                }
                Some(_) => {}
            }
        }
    }
    seen.map(|(id, _)| id).ok_or_else(|| EcError::NoArchive {
        id: None,
        dirs: locations.iter().map(Location::as_path).collect(),
    })
}

/// The index in the name of the only `shard-<i>.dat` in an archive directory.
pub(crate) fn shard_hint(dir: &Path) -> Option<usize> {
    let mut hints = fs::read_dir(dir).ok()?.flatten().filter_map(|e| {
        let name = e.file_name();
        let name = name.to_str()?;
        name.strip_prefix("shard-")?
            .strip_suffix(".dat")?
            .parse()
            .ok()
    });
    let hint = hints.next()?;
    hints.next().is_none().then_some(hint)
}
