//! `verify` (which shards and blocks are missing or corrupt) and `scrub` (rewrite them).

use std::fs;
use std::path::PathBuf;

use serde::Serialize;

use super::archive::ArchiveReader;
use std::sync::Arc;

use super::fsutil::{archive_dir, fsync_dir, shard_path, tmp_path};
use super::location::{self, Location};
use super::manifest::State;
use super::place;
use super::remote::Peers;
use super::stripes::{BlockState, Mode};
use super::writer::{ShardTarget, ShardWriter};
use super::{Backend, EcError, NoProgress, Progress};

/// Health of one shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ShardState {
    /// Every block is present and matches its checksum.
    Ok,
    /// Some blocks are missing or corrupt.
    Damaged,
    /// The shard (file, manifest copy or whole directory) is absent or unusable.
    Missing,
}

/// One shard in a [`Report`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShardReport {
    /// Shard index.
    pub index: usize,
    /// The directory holding it, if any of the given ones does.
    pub dir: Option<PathBuf>,
    /// Health.
    pub state: ShardState,
    /// Why it is missing, when it is.
    pub reason: Option<String>,
    /// Blocks (stripe numbers) whose checksum does not match.
    pub corrupt_blocks: Vec<u64>,
    /// Blocks (stripe numbers) that cannot be read (e.g. truncated file, read error).
    pub missing_blocks: Vec<u64>,
    /// Read errors, as "block S: error" (the first few).
    pub errors: Vec<String>,
}

/// Read errors listed per shard in a report, at most.
const MAX_ERRORS: usize = 8;

/// Result of [`verify`] or [`scrub`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Archive id.
    pub archive_id: String,
    /// Data shards.
    pub k: usize,
    /// Parity shards.
    pub m: usize,
    /// Bytes per shard block.
    pub block_size: usize,
    /// Source size.
    pub source_size: u64,
    /// Stripes.
    pub stripes: u64,
    /// Every shard is intact.
    pub healthy: bool,
    /// Every stripe has at least `k` intact blocks.
    pub recoverable: bool,
    /// Stripes with fewer than `k` intact blocks.
    pub unrecoverable_stripes: Vec<u64>,
    /// Per shard, by index.
    pub shards: Vec<ShardReport>,
    /// Shards rewritten by scrub.
    pub repaired: Vec<usize>,
    /// Given directories that hold no usable copy of the archive, and why.
    pub notes: Vec<String>,
    /// GF(2^8) kernels in use.
    pub backend: Backend,
}

/// Checks every block of every shard of the archive in `shard_dirs`.
pub fn verify(shard_dirs: &[PathBuf]) -> Result<Report, EcError> {
    verify_with(shard_dirs, None, &NoProgress)
}

/// [`verify`] of archive `id` (or the only one present), reporting progress.
pub fn verify_with(
    shard_dirs: &[PathBuf],
    id: Option<&str>,
    progress: &dyn Progress,
) -> Result<Report, EcError> {
    verify_at(&location::dirs(shard_dirs), id, progress, None)
}

/// [`verify_with`] on shard locations, local or on other agents.
pub fn verify_at(
    locations: &[Location],
    id: Option<&str>,
    progress: &dyn Progress,
    peers: Option<Arc<Peers>>,
) -> Result<Report, EcError> {
    let archive = ArchiveReader::open_at(locations, id, peers)?;
    check(&archive, progress)
}

fn check(archive: &ArchiveReader, progress: &dyn Progress) -> Result<Report, EcError> {
    let m = &archive.manifest;
    let n = m.k + m.m;
    let mut good = vec![0usize; m.stripes as usize];
    let mut shards: Vec<ShardReport> = (0..n)
        .map(|index| {
            let reason = archive.unusable_reason(index);
            ShardReport {
                index,
                dir: archive.slots[index].as_ref().map(|s| s.dir.clone()),
                state: if reason.is_some() {
                    ShardState::Missing
                } else {
                    ShardState::Ok
                },
                reason,
                corrupt_blocks: Vec::new(),
                missing_blocks: Vec::new(),
                errors: Vec::new(),
            }
        })
        .collect();
    let readable: Vec<usize> = (0..n).filter(|&i| archive.readable(i)).collect();
    let stripe_bytes = (n * m.block_size) as u64;
    progress.begin("verify", m.stripes * stripe_bytes);
    archive.for_each_stripe(0..m.stripes, &|_| readable.clone(), Mode::Check, &mut |s| {
        for &i in &readable {
            let report = &mut shards[i];
            match &s.states[i] {
                BlockState::Good => good[s.stripe as usize] += 1,
                BlockState::Corrupt => report.corrupt_blocks.push(s.stripe),
                BlockState::Missing | BlockState::Unread => report.missing_blocks.push(s.stripe),
                BlockState::Failed(e) => {
                    report.missing_blocks.push(s.stripe);
                    if report.errors.len() < MAX_ERRORS {
                        report.errors.push(format!("block {}: {e}", s.stripe));
                    }
                }
            }
        }
        progress.advance(stripe_bytes);
        Ok(vec![s.buf])
    })?;
    for report in shards.iter_mut().filter(|r| r.state == ShardState::Ok) {
        if !report.corrupt_blocks.is_empty() || !report.missing_blocks.is_empty() {
            report.state = ShardState::Damaged;
        }
    }
    progress.end();
    let unrecoverable_stripes: Vec<u64> =
        (0..m.stripes).filter(|&s| good[s as usize] < m.k).collect();
    Ok(Report {
        archive_id: m.archive_id.clone(),
        k: m.k,
        m: m.m,
        block_size: m.block_size,
        source_size: m.source_size,
        stripes: m.stripes,
        healthy: shards.iter().all(|s| s.state == ShardState::Ok),
        recoverable: unrecoverable_stripes.is_empty(),
        unrecoverable_stripes,
        shards,
        repaired: Vec::new(),
        notes: archive
            .blanks
            .iter()
            .map(|b| format!("{}: {}", b.dir.display(), b.reason))
            .collect(),
        backend: archive.codec.backend(),
    })
}

/// Verifies the archive, rewrites every missing or damaged shard (and its manifest copy)
/// from the others — each through `shard-<i>.dat.tmp`, fsync and rename — and verifies again.
pub fn scrub(shard_dirs: &[PathBuf]) -> Result<Report, EcError> {
    scrub_with(shard_dirs, None, &NoProgress)
}

/// [`scrub`] of archive `id` (or the only one present), reporting progress.
pub fn scrub_with(
    shard_dirs: &[PathBuf],
    id: Option<&str>,
    progress: &dyn Progress,
) -> Result<Report, EcError> {
    scrub_at(&location::dirs(shard_dirs), id, progress, None)
}

/// [`scrub_with`] on shard locations, local or on other agents.
pub fn scrub_at(
    locations: &[Location],
    id: Option<&str>,
    progress: &dyn Progress,
    peers: Option<Arc<Peers>>,
) -> Result<Report, EcError> {
    let archive = ArchiveReader::open_at(locations, id, peers.clone())?;
    let before = check(&archive, progress)?;
    if before.healthy {
        return Ok(before);
    }
    if let Some(&stripe) = before.unrecoverable_stripes.first() {
        let intact = |s: &&ShardReport| match s.state {
            ShardState::Ok => true,
            ShardState::Missing => false,
            ShardState::Damaged => {
                !s.corrupt_blocks.contains(&stripe) && !s.missing_blocks.contains(&stripe)
            }
        };
        return Err(EcError::TooFewShards {
            present: before.shards.iter().filter(intact).count(),
            needed: archive.manifest.k,
            stripe: Some(stripe),
        });
    }
    let plan = plan_repairs(&archive, &before);
    let repaired: Vec<usize> = plan.iter().map(|t| t.index).collect();
    rewrite(&archive, plan, progress, peers.clone())?;
    let id = archive.manifest.archive_id.clone();
    drop(archive);
    let mut after = verify_at(locations, Some(&id), progress, peers)?;
    after.repaired = repaired;
    Ok(after)
}

/// The location each unhealthy shard is rewritten at: its own, or else a given location
/// holding no copy (preferring one whose leftover file names that index).
fn plan_repairs(archive: &ArchiveReader, report: &Report) -> Vec<ShardTarget> {
    let id = &archive.manifest.archive_id;
    let mut spare: Vec<_> = archive.blanks.iter().collect();
    let mut plan = Vec::new();
    for shard in report.shards.iter().filter(|s| s.state != ShardState::Ok) {
        let location = match archive.slots[shard.index].as_ref() {
            Some(slot) => Some(slot.location.clone()),
            None => {
                let pick = spare
                    .iter()
                    .position(|b| b.hint == Some(shard.index))
                    .or_else(|| spare.iter().position(|b| b.hint.is_none()))
                    .or(if spare.is_empty() { None } else { Some(0) });
                pick.map(|p| spare.remove(p).location.clone())
            }
        };
        match location {
            Some(location) => plan.push(ShardTarget {
                index: shard.index,
                path: location
                    .dir()
                    .map(|dir| tmp_path(&shard_path(dir, id, shard.index))),
                location,
            }),
            None => tracing::warn!(
                "shard {} cannot be rewritten: no --shard-dir for it",
                shard.index
            ),
        }
    }
    plan
}

/// Rebuilds the planned shards stripe by stripe into tmp (staged) copies, then puts them in
/// place with their manifest copies.
fn rewrite(
    archive: &ArchiveReader,
    plan: Vec<ShardTarget>,
    progress: &dyn Progress,
    peers: Option<Arc<Peers>>,
) -> Result<(), EcError> {
    let m = &archive.manifest;
    let need: Vec<usize> = plan.iter().map(|t| t.index).collect();
    for t in &plan {
        if let Location::Dir(dir) = &t.location {
            let adir = archive_dir(dir, &m.archive_id);
            if !adir.is_dir() {
                fs::create_dir(&adir).map_err(|e| EcError::io("create", &adir, dir, e))?;
                fsync_dir(dir, dir)?;
            }
        }
    }
    let undo: Vec<(Location, usize)> = plan.iter().map(|t| (t.location.clone(), t.index)).collect();
    let shard_len = m.stripes * m.block_size as u64;
    let result = (|| {
        let mut writer = ShardWriter::create(
            plan,
            m.block_size,
            4,
            &m.archive_id,
            shard_len,
            peers.clone(),
        )?;
        let bytes = (need.len() * m.block_size) as u64;
        progress.begin("scrub", m.stripes * bytes);
        archive.for_each_stripe(0..m.stripes, &|_| need.clone(), Mode::Rebuild, &mut |s| {
            progress.advance(bytes);
            writer.submit(s.stripe, s.buf)
        })?;
        progress.end();
        writer.finish().map(|(targets, _)| targets)
    })();
    let targets = match result {
        Ok(targets) => targets,
        Err(e) => {
            for (loc, index) in &undo {
                place::discard(loc, &m.archive_id, *index, false, peers.as_deref());
            }
            return Err(e);
        }
    };
    for t in targets {
        place::commit_shard(&t.location, &m.archive_id, t.index, peers.as_deref())?;
        let copy = m.for_shard(t.index, State::Complete);
        place::write_manifest(&t.location, &copy, peers.as_deref())?;
    }
    Ok(())
}
