//! The encode pipeline, three threads joined by bounded channels:
//!
//! 1. the reader fills the data part of a stripe buffer from the source;
//! 2. the encoder hashes the data (SHA-256), computes the parity and the CRC-32C of each block;
//! 3. this thread writes the stripe's `k + m` blocks through io_uring (one batch per stripe).
//!
//! A pool of `BUFFERS` stripe buffers circulates, so reading stripe N+2 and encoding N+1
//! overlap with the writes of stripe N, and memory stays bounded.

use std::fs::File;
use std::path::Path;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread;

use ring::digest::{Context, SHA256};

use super::read_full;
use crate::erasure::fsutil::{AlignedBuf, hex};
use crate::erasure::uring::ShardWriter;
use crate::erasure::{Codec, EcError, Progress, stripe_count};

/// Stripe buffers in circulation: being read, being encoded, queued, and up to three in the
/// writer (two in flight plus the one being submitted). Memory: `BUFFERS * (k + m) * block`.
const BUFFERS: usize = 6;

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

/// Encodes `size` bytes of `file` and writes the shards; returns the CRC-32C of every block
/// (`[shard][stripe]`) and the SHA-256 of the source (hex). The shard files are fsynced.
pub(super) fn run(
    file: &mut File,
    source: &Path,
    size: u64,
    codec: &Codec,
    block: usize,
    writer: ShardWriter,
    progress: &dyn Progress,
) -> Result<(Vec<Vec<u32>>, String), EcError> {
    let (k, m) = codec.shape();
    let stripes = stripe_count(size, k, block);
    let (empty_tx, empty_rx) = sync_channel::<AlignedBuf>(BUFFERS);
    let (read_tx, read_rx) = sync_channel::<Job>(1);
    let (enc_tx, enc_rx) = sync_channel::<Job>(1);
    for _ in 0..BUFFERS {
        empty_tx
            .send(AlignedBuf::new((k + m) * block))
            .map_err(|_| stopped())?;
    }
    thread::scope(|scope| {
        let reader =
            scope.spawn(move || read_stage(file, source, size, k * block, empty_rx, read_tx));
        let encoder = scope.spawn(move || encode_stage(codec, block, read_rx, enc_tx));
        let written = write_stage(writer, enc_rx, empty_tx, k + m, stripes, progress);
        let panicked = || EcError::Codec("an encode thread panicked".into());
        let read = reader.join().unwrap_or_else(|_| Err(panicked()));
        let encoded = encoder.join().unwrap_or_else(|_| Err(panicked()));
        // The writer's error (e.g. a full disk) is the cause when the others merely stopped.
        let crcs = written?;
        read?;
        Ok((crcs, encoded?))
    })
}

/// Reader thread: fills the data part of each buffer, zero-pads the last stripe.
fn read_stage(
    file: &mut File,
    source: &Path,
    size: u64,
    stripe_data: usize,
    empty: Receiver<AlignedBuf>,
    out: SyncSender<Job>,
) -> Result<(), EcError> {
    let stripe_data_u64 = stripe_data as u64;
    for stripe in 0..size.div_ceil(stripe_data_u64) {
        let mut buf = empty.recv().map_err(|_| stopped())?;
        let data_len = (size - stripe * stripe_data_u64).min(stripe_data_u64) as usize;
        let got = read_full(file, &mut buf[..data_len])
            .map_err(|e| EcError::io("read", source, source, e))?;
        if got < data_len {
            return Err(EcError::SourceChanged {
                path: source.to_path_buf(),
                expected: size,
                found: stripe * stripe_data_u64 + got as u64,
            });
        }
        buf[data_len..stripe_data].fill(0);
        let job = Job {
            stripe,
            buf,
            data_len,
            crcs: Vec::new(),
        };
        out.send(job).map_err(|_| stopped())?;
    }
    Ok(())
}

/// Encoder thread: SHA-256 of the data, parity, CRC-32C per block; returns the hex digest.
fn encode_stage(
    codec: &Codec,
    block: usize,
    input: Receiver<Job>,
    out: SyncSender<Job>,
) -> Result<String, EcError> {
    let mut hasher = Context::new(&SHA256);
    for mut job in input.iter() {
        hasher.update(&job.buf[..job.data_len]);
        codec.encode(&mut job.buf, block)?;
        job.crcs = job.buf.chunks(block).map(crc32c::crc32c).collect();
        out.send(job).map_err(|_| stopped())?;
    }
    Ok(hex(hasher.finish().as_ref()))
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
) -> Result<Vec<Vec<u32>>, EcError> {
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
    writer.finish()?;
    Ok(crcs)
}
