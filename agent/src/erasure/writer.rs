//! Shard writes of encode and scrub: block `index` of every stripe buffer goes to shard file
//! `index`, one [`Batch`] per stripe through the I/O [`Engine`], several stripes in flight.

use std::path::PathBuf;

use super::EcError;
use super::fsutil::AlignedBuf;
use super::uring::{Batch, DIRECT_UNIT, Engine, FileSpec, IoStats, Kind, Mode, Op};

/// One shard file to write.
#[derive(Debug, Clone)]
pub struct ShardTarget {
    /// Shard index: which block of each stripe buffer goes to this file.
    pub index: usize,
    /// The shard directory (named in "no space left" errors).
    pub shard_dir: PathBuf,
    /// The file (a `*.tmp` path; created or truncated).
    pub path: PathBuf,
}

/// Writes the blocks of successive stripes to their shard files.
pub struct ShardWriter {
    engine: Engine,
    targets: Vec<ShardTarget>,
    block: usize,
    depth: usize,
}

impl ShardWriter {
    /// Creates (truncates) the target files. O_DIRECT is tried when `block` is a multiple of
    /// 512 bytes; a file system that refuses it (at open or at the first writes) gets
    /// buffered I/O for that file, with a log line. Up to `depth` stripes are in flight.
    pub fn create(targets: Vec<ShardTarget>, block: usize, depth: usize) -> Result<Self, EcError> {
        let specs = targets
            .iter()
            .map(|t| FileSpec {
                path: t.path.clone(),
                dir: t.shard_dir.clone(),
                mode: Mode::Create,
                direct: block.is_multiple_of(DIRECT_UNIT),
            })
            .collect();
        let engine = Engine::new(specs, depth, targets.len())?;
        Ok(ShardWriter {
            engine,
            targets,
            block,
            depth: depth.max(1),
        })
    }

    /// Whether shard writes go through io_uring (false: pwrite fallback).
    pub fn uses_io_uring(&self) -> bool {
        self.engine.uses_io_uring()
    }

    /// Queues one write per target — block `index` of `buf` (a whole stripe) at offset
    /// `stripe * block` of the target's file — as one batch, then waits until at most
    /// `depth` stripes are in flight. Returns the buffers of the stripes that completed.
    pub fn submit(&mut self, stripe: u64, buf: AlignedBuf) -> Result<Vec<AlignedBuf>, EcError> {
        let block = self.block;
        let ops = self
            .targets
            .iter()
            .enumerate()
            .map(|(f, t)| {
                Op::new(
                    f,
                    Kind::Write,
                    t.index * block,
                    block,
                    stripe * block as u64,
                )
            })
            .collect();
        self.engine.submit(Batch::new(stripe, buf, ops))?;
        Ok(self
            .engine
            .reap(self.depth)?
            .into_iter()
            .map(|b| b.buf)
            .collect())
    }

    /// Waits for every write, fsyncs every file and returns the targets and what the I/O
    /// engine did.
    pub fn finish(self) -> Result<(Vec<ShardTarget>, IoStats), EcError> {
        let stats = self.engine.finish()?;
        Ok((self.targets, stats))
    }
}
