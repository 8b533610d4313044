//! Reading stripes of an archive through the I/O engine, pipelined: the blocks of the next
//! [`READ_DEPTH`] stripes are in flight while the current one is checked (CRC-32C), rebuilt
//! if a needed block is missing or corrupt, and handed to the caller — always in stripe
//! order. Restore, verify, scrub and `read_range` all read this way.

use std::collections::{BTreeMap, VecDeque};
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};

use super::EcError;
use tokio::task::JoinHandle;

use super::archive::{ArchiveReader, Source};
use super::fsutil::AlignedBuf;
use super::uring::{Batch, Engine, Kind, Op, Outcome};
use crate::shardstore::ClientError;

/// Stripes whose reads are in flight at once.
pub const READ_DEPTH: usize = 4;

/// Degraded stripe reads of every [`ArchiveReader`] of this process (for metrics).
static DEGRADED_READS: AtomicU64 = AtomicU64::new(0);

/// Stripes read so far by any [`ArchiveReader`] of this process that had to rebuild at least
/// one missing or corrupt block (`couchestor_agent_ec_degraded_reads_total` of `serve`):
/// NBD reads ([`ArchiveReader::read_range`]), restores and scrub's rewrites. A check-only
/// verify rebuilds nothing and does not count.
pub fn process_degraded_reads() -> u64 {
    DEGRADED_READS.load(Ordering::Relaxed)
}

/// What came of reading one block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BlockState {
    /// Not read (not needed).
    Unread,
    /// Read, checksum matches.
    Good,
    /// Read, checksum does not match.
    Corrupt,
    /// Not there: the shard is unusable or its file ends before this block.
    Missing,
    /// The read failed with this error.
    Failed(String),
}

/// What to do with the blocks of each stripe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Read the needed blocks; rebuild those that are bad from other blocks of the stripe.
    Rebuild,
    /// Read the needed blocks and report their state only.
    Check,
}

/// A stripe handed to the caller.
pub(crate) struct Stripe {
    /// Stripe number.
    pub stripe: u64,
    /// The whole stripe (`(k + m) * block` bytes); the needed blocks are filled.
    pub buf: AlignedBuf,
    /// State of each block as read (before any rebuild).
    pub states: Vec<BlockState>,
    /// Needed blocks that were rebuilt.
    pub rebuilt: Vec<usize>,
}

/// A stripe between its first read and its delivery.
struct Pending {
    need: Vec<usize>,
    states: Vec<BlockState>,
    buf: Option<AlignedBuf>,
    /// Reads of other blocks (to rebuild) were asked for.
    extra: bool,
    /// Blocks being fetched from other agents.
    remote: Vec<(usize, Fetch)>,
}

/// A block fetch from another agent's store.
type Fetch = JoinHandle<Result<Vec<u8>, ClientError>>;

impl ArchiveReader {
    /// Reads stripes `stripes` — of each, the blocks `need(stripe)` — and calls `sink` with
    /// each stripe in order. In [`Mode::Rebuild`], fails with [`EcError::TooFewShards`] when
    /// a stripe has fewer than `k` intact blocks. `sink` returns buffers it is done with, to
    /// be reused.
    pub(crate) fn for_each_stripe(
        &self,
        stripes: Range<u64>,
        need: &dyn Fn(u64) -> Vec<usize>,
        mode: Mode,
        sink: &mut dyn FnMut(Stripe) -> Result<Vec<AlignedBuf>, EcError>,
    ) -> Result<(), EcError> {
        self.with_engine(|engine| {
            let mut run = Run {
                reader: self,
                engine,
                need,
                mode,
                pending: BTreeMap::new(),
                order: VecDeque::new(),
                pool: Vec::new(),
                stripe_len: (self.manifest.k + self.manifest.m) * self.manifest.block_size,
                file_shard: file_shards(self),
            };
            // Every stripe delivered with a rebuilt block is one degraded read, whoever reads.
            let mut counted = |s: Stripe| {
                if !s.rebuilt.is_empty() {
                    self.degraded_reads.fetch_add(1, Ordering::Relaxed);
                    DEGRADED_READS.fetch_add(1, Ordering::Relaxed);
                }
                sink(s)
            };
            let result = run.go(stripes, &mut counted);
            if result.is_err() {
                // Leave the engine idle (and reusable).
                run.engine.drain()?;
            }
            result
        })
    }

    /// Reads `len` bytes of the source at `offset`, reading only the blocks that hold them
    /// (and, for a missing or corrupt block, enough others of its stripe to rebuild it).
    pub fn read_range(&self, offset: u64, len: u64) -> Result<Vec<u8>, EcError> {
        let size = self.manifest.source_size;
        let end = offset.checked_add(len).filter(|&e| e <= size);
        let Some(end) = end else {
            return Err(EcError::Range { offset, len, size });
        };
        let mut out = Vec::with_capacity(len as usize);
        if len == 0 {
            return Ok(out);
        }
        let (k, block) = (self.manifest.k as u64, self.manifest.block_size as u64);
        let stripe_bytes = k * block;
        let blocks_of = |stripe: u64| {
            let base = stripe * stripe_bytes;
            let (from, to) = (offset.max(base), end.min(base + stripe_bytes));
            let first = ((from - base) / block) as usize;
            let last = ((to - 1 - base) / block) as usize;
            (first..=last).collect::<Vec<usize>>()
        };
        let stripes = offset / stripe_bytes..(end - 1) / stripe_bytes + 1;
        self.for_each_stripe(stripes, &blocks_of, Mode::Rebuild, &mut |s| {
            let base = s.stripe * stripe_bytes;
            let (from, to) = (offset.max(base), end.min(base + stripe_bytes));
            out.extend_from_slice(&s.buf[(from - base) as usize..(to - base) as usize]);
            Ok(vec![s.buf])
        })?;
        Ok(out)
    }
}

struct Run<'a> {
    reader: &'a ArchiveReader,
    engine: &'a mut Engine,
    need: &'a dyn Fn(u64) -> Vec<usize>,
    mode: Mode,
    pending: BTreeMap<u64, Pending>,
    /// Stripes submitted and not yet delivered, in order.
    order: VecDeque<u64>,
    pool: Vec<AlignedBuf>,
    stripe_len: usize,
    /// Shard index of each engine file.
    file_shard: Vec<usize>,
}

impl Run<'_> {
    fn go(
        &mut self,
        stripes: Range<u64>,
        sink: &mut dyn FnMut(Stripe) -> Result<Vec<AlignedBuf>, EcError>,
    ) -> Result<(), EcError> {
        let mut next = stripes.start;
        loop {
            while self.order.len() < READ_DEPTH && next < stripes.end {
                self.start(next)?;
                next += 1;
            }
            // Deliver every stripe at the front that is complete.
            while let Some(&front) = self.order.front() {
                let ready = self.pending.get(&front).is_some_and(|p| p.buf.is_some());
                if !ready {
                    break;
                }
                self.order.pop_front();
                let p = self.pending.remove(&front).expect("pending stripe");
                let stripe = self.finish(front, p)?;
                self.pool.extend(sink(stripe)?);
            }
            if self.order.is_empty() && next >= stripes.end {
                return Ok(());
            }
            if self.engine.in_flight() == 0 {
                if self.order.len() < READ_DEPTH && next < stripes.end {
                    continue;
                }
                return Err(EcError::Codec("stripe reads stalled".into()));
            }
            let wait = self.engine.in_flight() - 1;
            for batch in self.engine.reap(wait)? {
                self.absorb(batch)?;
            }
        }
    }

    /// Submits the reads of the needed blocks of `stripe`.
    fn start(&mut self, stripe: u64) -> Result<(), EcError> {
        let n = self.reader.slots.len();
        let need = (self.need)(stripe);
        let mut states = vec![BlockState::Unread; n];
        let buf = self
            .pool
            .pop()
            .unwrap_or_else(|| AlignedBuf::new(self.stripe_len));
        // Blocks of shards known to be unreadable are replaced at once by as many other
        // readable blocks (parity first), so a lost shard costs no second round of reads.
        let mut first = need.clone();
        if self.mode == Mode::Rebuild {
            let lost = need.iter().filter(|&&i| !self.reader.readable(i)).count();
            let spare = (0..n)
                .rev()
                .filter(|i| !need.contains(i) && self.reader.readable(*i))
                .take(lost);
            first.extend(spare);
        }
        let (ops, remote) = read_ops(self.reader, stripe, &first, &mut states);
        self.pending.insert(
            stripe,
            Pending {
                need,
                states,
                buf: None,
                extra: false,
                remote,
            },
        );
        self.order.push_back(stripe);
        self.engine.submit(Batch::new(stripe, buf, ops))
    }

    /// Records a completed batch: block states from the outcomes and checksums; asks for
    /// more blocks when a needed one is bad and the stripe is to be rebuilt.
    fn absorb(&mut self, batch: Batch) -> Result<(), EcError> {
        let stripe = batch.tag;
        let reader = self.reader;
        let block = reader.manifest.block_size;
        let Some(p) = self.pending.get_mut(&stripe) else {
            return Err(EcError::Codec(format!("stripe {stripe} read twice")));
        };
        let mut buf = batch.buf;
        for (i, fetch) in std::mem::take(&mut p.remote) {
            p.states[i] = match join_fetch(reader, i, fetch) {
                Ok(data) if data.len() == block => {
                    buf[i * block..][..block].copy_from_slice(&data);
                    if crc32c::crc32c(&data) == reader.manifest.block_crc32c[i][stripe as usize] {
                        BlockState::Good
                    } else {
                        BlockState::Corrupt
                    }
                }
                Ok(_) => BlockState::Missing,
                Err(e) => BlockState::Failed(e),
            };
        }
        for op in &batch.ops {
            let i = self.file_shard[op.file];
            p.states[i] = match &op.outcome {
                Outcome::Done => {
                    let crc = crc32c::crc32c(&buf[i * block..][..block]);
                    if crc == reader.manifest.block_crc32c[i][stripe as usize] {
                        BlockState::Good
                    } else {
                        BlockState::Corrupt
                    }
                }
                Outcome::Short(_) => BlockState::Missing,
                Outcome::Failed(e) => BlockState::Failed(e.to_string()),
                Outcome::Pending => BlockState::Failed("read not completed".into()),
            };
        }
        let bad = p.need.iter().any(|&i| p.states[i] != BlockState::Good);
        let good = p.states.iter().filter(|s| **s == BlockState::Good).count();
        if self.mode == Mode::Rebuild && !p.extra && bad && good < reader.manifest.k {
            // Read every other block not read yet: enough to rebuild if any k are intact.
            p.extra = true;
            let others: Vec<usize> = (0..p.states.len())
                .filter(|&i| p.states[i] == BlockState::Unread)
                .collect();
            let (ops, remote) = read_ops(reader, stripe, &others, &mut p.states);
            if !ops.is_empty() || !remote.is_empty() {
                p.remote = remote;
                return self.engine.submit(Batch::new(stripe, buf, ops));
            }
        }
        p.buf = Some(buf);
        Ok(())
    }

    /// Rebuilds the bad needed blocks of a stripe (in [`Mode::Rebuild`]) and checks each
    /// against its CRC-32C in the manifest ([`EcError::RebuiltBlockMismatch`] if one differs).
    fn finish(&mut self, stripe: u64, p: Pending) -> Result<Stripe, EcError> {
        let mut buf = p.buf.expect("stripe buffer");
        let bad: Vec<usize> = p
            .need
            .iter()
            .copied()
            .filter(|&i| p.states[i] != BlockState::Good)
            .collect();
        if self.mode == Mode::Rebuild && !bad.is_empty() {
            let m = &self.reader.manifest;
            let present: Vec<bool> = p.states.iter().map(|s| *s == BlockState::Good).collect();
            let good = present.iter().filter(|&&g| g).count();
            if good < m.k {
                return Err(EcError::TooFewShards {
                    present: good,
                    needed: m.k,
                    stripe: Some(stripe),
                });
            }
            let data_only = bad.iter().all(|&i| i < m.k);
            self.reader
                .codec
                .reconstruct(&mut buf, m.block_size, &present, data_only)?;
            // A rebuilt block must match its recorded checksum before anyone sees it.
            for &i in &bad {
                let crc = crc32c::crc32c(&buf[i * m.block_size..][..m.block_size]);
                if crc != m.block_crc32c[i][stripe as usize] {
                    return Err(EcError::RebuiltBlockMismatch {
                        id: m.archive_id.clone(),
                        shard: i,
                        block: stripe,
                    });
                }
            }
        }
        let rebuilt = if self.mode == Mode::Rebuild {
            bad
        } else {
            Vec::new()
        };
        Ok(Stripe {
            stripe,
            buf,
            states: p.states,
            rebuilt,
        })
    }
}

/// Shard index of each engine file.
fn file_shards(reader: &ArchiveReader) -> Vec<usize> {
    let mut map = vec![0; reader.slots.len()];
    for (i, f) in reader.engine_file.iter().enumerate() {
        if let Some(f) = f {
            map[*f] = i;
        }
    }
    map
}

/// Read operations for the local `blocks` of `stripe`, and fetches (started at once) of the
/// remote ones; blocks of unreadable shards are marked missing.
fn read_ops(
    reader: &ArchiveReader,
    stripe: u64,
    blocks: &[usize],
    states: &mut [BlockState],
) -> (Vec<Op>, Vec<(usize, Fetch)>) {
    let block = reader.manifest.block_size;
    let mut ops = Vec::with_capacity(blocks.len());
    let mut remote = Vec::new();
    for &i in blocks {
        let offset = stripe * block as u64;
        match (
            reader.engine_file[i],
            reader.slots[i].as_ref().map(|s| &s.source),
        ) {
            (Some(f), _) => ops.push(Op::new(f, Kind::Read, i * block, block, offset)),
            (None, Some(Source::Remote { client, .. })) if reader.peers.is_some() => {
                let mut client = (**client).clone();
                let id = reader.manifest.archive_id.clone();
                let peers = reader.peers.as_ref().expect("peers");
                let fetch = peers.spawn(async move {
                    client.get_range(&id, i as u32, offset, block as u64).await
                });
                remote.push((i, fetch));
            }
            _ => states[i] = BlockState::Missing,
        }
    }
    (ops, remote)
}

/// The result of the remote fetch of a block of shard `i`, or the error text (naming the
/// location).
fn join_fetch(reader: &ArchiveReader, i: usize, fetch: Fetch) -> Result<Vec<u8>, String> {
    let peers = reader.peers.as_ref().ok_or("no peers")?;
    match peers.block_on(fetch) {
        Ok(Ok(data)) => Ok(data),
        Ok(Err(e)) => match reader.slots[i].as_ref().map(|s| &s.source) {
            Some(Source::Remote { store, .. }) => {
                Err(super::remote::client_error(store, e).to_string())
            }
            _ => Err(e.to_string()),
        },
        Err(e) => Err(format!("the fetch failed: {e}")),
    }
}
