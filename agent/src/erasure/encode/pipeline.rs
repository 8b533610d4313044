//! The encode pipeline, four threads joined by bounded channels:
//!
//! 1. the reader reads the data blocks of the next stripes from the source through the I/O
//!    engine (io_uring, O_DIRECT where possible), several stripes ahead;
//! 2. the hasher hashes the data (SHA-256, the most expensive step per byte);
//! 3. the encoder computes the parity and the CRC-32C of each block;
//! 4. this thread writes the stripe's `k + m` blocks through io_uring (one batch per stripe,
//!    several stripes in flight).
//!
//! A pool of stripe buffers circulates, so reading, encoding and writing overlap, and memory
//! stays bounded: [`Depths::for_stripe`] sizes the pool to about [`MEMORY_BUDGET`] bytes.

use std::path::Path;
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, sync_channel};
use std::thread;

use ring::digest::{Context, SHA256};

use crate::erasure::fsutil::{AlignedBuf, hex};
use crate::erasure::uring::{
    Batch, DIRECT_UNIT, Engine, FileSpec, IoStats, Kind, Mode, Op, Outcome,
};
use crate::erasure::writer::ShardWriter;
use crate::erasure::{Codec, EcError, Progress, stripe_count};

/// Memory the stripe buffers of one encode may take (they never drop below 4 buffers).
pub const MEMORY_BUDGET: usize = 96 << 20;

/// Buffers in circulation and how many stripes the reader and the writer keep in flight.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Depths {
    pub buffers: usize,
    pub read: usize,
    pub write: usize,
}

impl Depths {
    /// Depths for stripes of `stripe_bytes` (all `k + m` blocks): 3 buffers sit in the
    /// channels and 2 in the hasher and the encoder; the rest are split between reads and
    /// writes.
    pub fn for_stripe(stripe_bytes: usize) -> Depths {
        let buffers = (MEMORY_BUDGET / stripe_bytes.max(1)).clamp(7, 16);
        let spare = buffers - 5;
        let write = spare.div_ceil(2).max(1);
        let read = (spare - write).max(1);
        Depths {
            buffers,
            read,
            write,
        }
    }
}

/// A stripe on its way through the pipeline.
struct Job {
    stripe: u64,
    buf: AlignedBuf,
    data_len: usize,
    crcs: Vec<u32>,
}

fn stopped() -> EcError {
    EcError::Codec("the encode pipeline stopped".into())
}

/// What the pipeline produced: the CRC-32C of every block (`[shard][stripe]`), the SHA-256
/// of the source (hex), and the I/O statistics of the source reads and the shard writes.
pub(super) struct Output {
    pub crcs: Vec<Vec<u32>>,
    pub sha256: String,
    pub reads: IoStats,
    pub writes: IoStats,
}

/// Encodes `size` bytes of `source` and writes the shards. The shard files are fsynced.
pub(super) fn run(
    source: &Path,
    size: u64,
    codec: &Codec,
    block: usize,
    writer: ShardWriter,
    depths: Depths,
    progress: &dyn Progress,
) -> Result<Output, EcError> {
    let (k, m) = codec.shape();
    let stripes = stripe_count(size, k, block);
    let (empty_tx, empty_rx) = sync_channel::<AlignedBuf>(depths.buffers);
    let (read_tx, read_rx) = sync_channel::<Job>(1);
    let (hash_tx, hash_rx) = sync_channel::<Job>(1);
    let (enc_tx, enc_rx) = sync_channel::<Job>(1);
    for _ in 0..depths.buffers {
        empty_tx
            .send(AlignedBuf::new((k + m) * block))
            .map_err(|_| stopped())?;
    }
    let reader_engine = Engine::new(
        vec![FileSpec {
            path: source.to_path_buf(),
            dir: source.to_path_buf(),
            mode: Mode::Read,
            direct: block.is_multiple_of(DIRECT_UNIT),
        }],
        depths.read,
        k,
    )?;
    thread::scope(|scope| {
        let reader = scope.spawn(move || {
            read_stage(
                reader_engine,
                source,
                size,
                k,
                block,
                depths.read,
                empty_rx,
                read_tx,
            )
        });
        let hasher = scope.spawn(move || hash_stage(read_rx, hash_tx));
        let encoder = scope.spawn(move || encode_stage(codec, block, hash_rx, enc_tx));
        let written = write_stage(writer, enc_rx, empty_tx, k + m, stripes, progress);
        let panicked = || EcError::Codec("an encode thread panicked".into());
        let read = reader.join().unwrap_or_else(|_| Err(panicked()));
        let hashed = hasher.join().unwrap_or_else(|_| Err(panicked()));
        let encoded = encoder.join().unwrap_or_else(|_| Err(panicked()));
        // The writer's error (e.g. a full disk) is the cause when the others merely stopped.
        let (crcs, writes) = written?;
        let reads = read?;
        encoded?;
        Ok(Output {
            crcs,
            sha256: hashed?,
            reads,
            writes,
        })
    })
}

/// Reader thread: keeps up to `depth` stripes of source reads in flight (one read per data
/// block), hands them on in order, zero-pads the last stripe.
#[allow(clippy::too_many_arguments)]
fn read_stage(
    mut engine: Engine,
    source: &Path,
    size: u64,
    k: usize,
    block: usize,
    depth: usize,
    empty: Receiver<AlignedBuf>,
    out: SyncSender<Job>,
) -> Result<IoStats, EcError> {
    let stripe_data = (k * block) as u64;
    let stripes = size.div_ceil(stripe_data);
    let mut next = 0u64;
    loop {
        while engine.in_flight() < depth && next < stripes {
            // Block for a buffer only when nothing is being read.
            let buf = if engine.in_flight() == 0 {
                empty.recv().map_err(|_| stopped())?
            } else {
                match empty.try_recv() {
                    Ok(buf) => buf,
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => return Err(stopped()),
                }
            };
            let data_len = (size - next * stripe_data).min(stripe_data) as usize;
            // Whole blocks (O_DIRECT needs aligned lengths); the end of the source shows as a
            // short read.
            let ops = (0..data_len.div_ceil(block))
                .map(|j| {
                    let at = j * block;
                    Op::new(0, Kind::Read, at, block, next * stripe_data + at as u64)
                })
                .collect();
            engine.submit(Batch::new(next, buf, ops))?;
            next += 1;
        }
        if engine.in_flight() == 0 {
            break;
        }
        let wait = engine.in_flight() - 1;
        for mut batch in engine.reap(wait)? {
            let stripe = batch.tag;
            let data_len = (size - stripe * stripe_data).min(stripe_data) as usize;
            let mut got = 0usize;
            for op in &batch.ops {
                match &op.outcome {
                    Outcome::Done => got += op.len,
                    Outcome::Short(n) => got += n,
                    Outcome::Failed(e) => {
                        let e = std::io::Error::new(e.kind(), e.to_string());
                        return Err(EcError::io("read", source, source, e));
                    }
                    Outcome::Pending => return Err(stopped()),
                }
            }
            if got < data_len {
                return Err(EcError::SourceChanged {
                    path: source.to_path_buf(),
                    expected: size,
                    found: stripe * stripe_data + got as u64,
                });
            }
            batch.buf[data_len..stripe_data as usize].fill(0);
            let job = Job {
                stripe,
                buf: batch.buf,
                data_len,
                crcs: Vec::new(),
            };
            out.send(job).map_err(|_| stopped())?;
        }
    }
    Ok(engine.stats())
}

/// Hasher thread: SHA-256 of the data, in stripe order; returns the hex digest.
fn hash_stage(input: Receiver<Job>, out: SyncSender<Job>) -> Result<String, EcError> {
    let mut hasher = Context::new(&SHA256);
    for job in input.iter() {
        hasher.update(&job.buf[..job.data_len]);
        out.send(job).map_err(|_| stopped())?;
    }
    Ok(hex(hasher.finish().as_ref()))
}

/// Encoder thread: parity and CRC-32C per block.
fn encode_stage(
    codec: &Codec,
    block: usize,
    input: Receiver<Job>,
    out: SyncSender<Job>,
) -> Result<(), EcError> {
    for mut job in input.iter() {
        codec.encode(&mut job.buf, block)?;
        job.crcs = job.buf.chunks(block).map(crc32c::crc32c).collect();
        out.send(job).map_err(|_| stopped())?;
    }
    Ok(())
}

/// Writer (calling thread): writes each stripe, collects the CRCs, recycles the buffers and
/// finally fsyncs the shard files.
fn write_stage(
    mut writer: ShardWriter,
    input: Receiver<Job>,
    empty: SyncSender<AlignedBuf>,
    n: usize,
    stripes: u64,
    progress: &dyn Progress,
) -> Result<(Vec<Vec<u32>>, IoStats), EcError> {
    let mut crcs = vec![Vec::with_capacity(stripes as usize); n];
    for job in input.iter() {
        let freed = writer.submit(job.stripe, job.buf)?;
        for (row, crc) in crcs.iter_mut().zip(job.crcs) {
            row.push(crc);
        }
        progress.advance(job.data_len as u64);
        for buf in freed {
            // Fails only once the reader is done and has dropped its end: nothing to recycle.
            if empty.send(buf).is_err() {
                break;
            }
        }
    }
    let (_, stats) = writer.finish()?;
    Ok((crcs, stats))
}
