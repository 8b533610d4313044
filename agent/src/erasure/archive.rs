//! Finding an archive in a set of shard directories, and reading (and rebuilding) its stripes.

use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::fsutil::{MANIFEST, archive_dir, check_shard_dirs, shard_path};
use super::manifest::{Manifest, State};
use super::{Codec, EcError};

/// A shard directory that holds a usable copy of the archive.
#[derive(Debug)]
pub(crate) struct Slot {
    pub dir: PathBuf,
    /// `None` when `shard-<i>.dat` cannot be opened.
    pub file: Option<File>,
}

/// A given shard directory without a usable copy, and why.
#[derive(Debug)]
pub(crate) struct Blank {
    pub dir: PathBuf,
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
    /// Calls of [`ArchiveReader::read_range`] that had to rebuild at least one block.
    pub(crate) degraded_reads: AtomicU64,
}

/// Outcome of reading one block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BlockState {
    Good,
    Missing,
    Corrupt,
}

impl ArchiveReader {
    /// Opens the archive `id` (or the only archive present) in `dirs`, in any order. The
    /// directories must exist; manifests must agree. Fewer than `k` shards is not an error
    /// here (see [`ArchiveReader::require_k`]).
    pub fn open(dirs: &[PathBuf], id: Option<&str>) -> Result<Self, EcError> {
        check_shard_dirs(dirs)?;
        let id = match id {
            Some(id) => id.to_string(),
            None => find_archive_id(dirs)?,
        };
        let mut first: Option<(Manifest, PathBuf)> = None;
        let mut unusable = None;
        let mut found = Vec::new();
        let mut blanks = Vec::new();
        for dir in dirs {
            let path = archive_dir(dir, &id).join(MANIFEST);
            let blank = |reason: String| Blank {
                dir: dir.clone(),
                reason,
                hint: shard_hint(&archive_dir(dir, &id)),
            };
            let text = match fs::read_to_string(&path) {
                Ok(text) => text,
                Err(e) => {
                    blanks.push(blank(format!("no manifest ({e})")));
                    continue;
                }
            };
            let manifest = match Manifest::parse(&text) {
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
            found.push((manifest.shard_index, dir.clone()));
        }
        let Some((manifest, _)) = first else {
            // No usable copy: say why the copies found are unusable, if any were found.
            return Err(unusable.unwrap_or_else(|| EcError::NoArchive {
                id: Some(id),
                dirs: dirs.to_vec(),
            }));
        };
        let mut slots: Vec<Option<Slot>> = (0..manifest.k + manifest.m).map(|_| None).collect();
        for (index, dir) in found {
            if let Some(other) = &slots[index] {
                return Err(EcError::Mismatch {
                    a_dir: other.dir.clone(),
                    a: format!("shard {index}"),
                    b_dir: dir,
                    b: format!("shard {index} as well"),
                });
            }
            let file = File::open(shard_path(&dir, &id, index)).ok();
            slots[index] = Some(Slot { dir, file });
        }
        let codec = Codec::new(manifest.k, manifest.m)?;
        Ok(ArchiveReader {
            manifest,
            slots,
            blanks,
            codec,
            degraded_reads: AtomicU64::new(0),
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
            .filter(|&i| self.slots[i].as_ref().is_none_or(|s| s.file.is_none()))
            .collect()
    }

    /// How many [`ArchiveReader::read_range`] calls so far had to rebuild at least one
    /// missing or corrupt block.
    pub fn degraded_reads(&self) -> u64 {
        self.degraded_reads.load(Ordering::Relaxed)
    }

    /// Fails unless at least `k` shard files are present.
    pub fn require_k(&self) -> Result<(), EcError> {
        let present = self
            .slots
            .iter()
            .filter(|s| s.as_ref().is_some_and(|s| s.file.is_some()))
            .count();
        if present < self.manifest.k {
            return Err(EcError::TooFewShards {
                present,
                needed: self.manifest.k,
                stripe: None,
            });
        }
        Ok(())
    }

    /// Reads block `stripe` of shard `index` into `out` and checks its CRC-32C.
    pub(crate) fn read_block(&self, index: usize, stripe: u64, out: &mut [u8]) -> BlockState {
        let Some(file) = self.slots[index].as_ref().and_then(|s| s.file.as_ref()) else {
            return BlockState::Missing;
        };
        let offset = stripe * self.manifest.block_size as u64;
        if file.read_exact_at(out, offset).is_err() {
            return BlockState::Missing;
        }
        if crc32c::crc32c(out) == self.manifest.block_crc32c[index][stripe as usize] {
            BlockState::Good
        } else {
            BlockState::Corrupt
        }
    }

    /// Fills the blocks `need` of stripe `stripe` in `buf` (a whole stripe), reading them and,
    /// when some are missing or corrupt, rebuilding them from other shards. Returns the
    /// indices of `need` that had to be rebuilt.
    pub(crate) fn read_stripe(
        &self,
        stripe: u64,
        need: &[usize],
        buf: &mut [u8],
    ) -> Result<Vec<usize>, EcError> {
        let (k, n, block) = (
            self.manifest.k,
            self.manifest.k + self.manifest.m,
            self.manifest.block_size,
        );
        let mut present = vec![false; n];
        let mut bad = Vec::new();
        for &i in need {
            if self.read_block(i, stripe, &mut buf[i * block..][..block]) == BlockState::Good {
                present[i] = true;
            } else {
                bad.push(i);
            }
        }
        if bad.is_empty() {
            return Ok(bad);
        }
        let mut good = present.iter().filter(|&&p| p).count();
        for i in (0..n).filter(|i| !need.contains(i)) {
            if good >= k {
                break;
            }
            if self.read_block(i, stripe, &mut buf[i * block..][..block]) == BlockState::Good {
                present[i] = true;
                good += 1;
            }
        }
        if good < k {
            return Err(EcError::TooFewShards {
                present: good,
                needed: k,
                stripe: Some(stripe),
            });
        }
        let data_only = bad.iter().all(|&i| i < k);
        self.codec.reconstruct(buf, block, &present, data_only)?;
        Ok(bad)
    }

    /// Reads `len` bytes of the source at `offset`, reading only the blocks that hold them
    /// (and, for a missing or corrupt block, enough others of its stripe to rebuild it).
    pub fn read_range(&self, offset: u64, len: u64) -> Result<Vec<u8>, EcError> {
        let size = self.manifest.source_size;
        let end = offset.checked_add(len).filter(|&e| e <= size);
        let Some(end) = end else {
            return Err(EcError::Range { offset, len, size });
        };
        let (k, block) = (self.manifest.k as u64, self.manifest.block_size as u64);
        let stripe_bytes = k * block;
        let mut out = Vec::with_capacity(len as usize);
        let mut buf = vec![0u8; (self.manifest.k + self.manifest.m) * block as usize];
        let mut pos = offset;
        let mut degraded = false;
        while pos < end {
            let stripe = pos / stripe_bytes;
            let base = stripe * stripe_bytes;
            let stop = end.min(base + stripe_bytes);
            let first = ((pos - base) / block) as usize;
            let last = ((stop - 1 - base) / block) as usize;
            let need: Vec<usize> = (first..=last).collect();
            degraded |= !self.read_stripe(stripe, &need, &mut buf)?.is_empty();
            out.extend_from_slice(&buf[(pos - base) as usize..(stop - base) as usize]);
            pos = stop;
        }
        if degraded {
            self.degraded_reads.fetch_add(1, Ordering::Relaxed);
        }
        Ok(out)
    }
}

/// The id of the only archive in `dirs`.
fn find_archive_id(dirs: &[PathBuf]) -> Result<String, EcError> {
    let mut seen: Option<(String, PathBuf)> = None;
    for dir in dirs {
        let entries = fs::read_dir(dir).map_err(|e| EcError::io("list", dir, dir, e))?;
        for entry in entries.flatten() {
            let has_archive =
                entry.path().join(MANIFEST).is_file() || shard_hint(&entry.path()).is_some();
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if !has_archive {
                continue;
            }
            match &seen {
                None => seen = Some((name, dir.clone())),
                Some((id, first)) if *id != name => {
                    return Err(EcError::DifferentArchives {
                        a_dir: first.clone(),
                        a_id: id.clone(),
                        b_dir: dir.clone(),
                        b_id: name,
                    });
                }
                Some(_) => {}
            }
        }
    }
    seen.map(|(id, _)| id).ok_or_else(|| EcError::NoArchive {
        id: None,
        dirs: dirs.to_vec(),
    })
}

/// The index in the name of the only `shard-<i>.dat` in an archive directory.
fn shard_hint(dir: &Path) -> Option<usize> {
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
