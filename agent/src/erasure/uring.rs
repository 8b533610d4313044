//! Shard writes through io_uring: one write per shard block, submitted as one batch per
//! stripe, with O_DIRECT where the file system accepts it.
//!
//! Up to `DEPTH` stripes are in flight at once. The only `unsafe` of the archive engine is
//! here: pushing write entries that point into a stripe buffer. The writer owns each such
//! buffer and does not give it back (or drop it) before the kernel has completed every entry
//! that points into it.
#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use io_uring::{IoUring, opcode, types};

use super::EcError;
use super::fsutil::{ALIGN, AlignedBuf, open_target, reopen_buffered};

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

struct Open {
    target: ShardTarget,
    file: File,
    direct: bool,
}

/// A stripe whose writes are in flight. It owns the buffer the writes point into.
struct InFlight {
    stripe: u64,
    buf: AlignedBuf,
    /// Bytes of each target's block written so far.
    done: Vec<usize>,
    /// Targets whose write has not completed.
    pending: usize,
}

/// Stripes whose writes may be in flight at once, so the device queue never drains between
/// stripes.
const DEPTH: usize = 2;

/// Writes the blocks of successive stripes to their shard files.
pub struct ShardWriter {
    ring: Option<IoUring>,
    files: Vec<Open>,
    block: usize,
    inflight: Vec<InFlight>,
    error: Option<EcError>,
}

impl ShardWriter {
    /// Creates (truncates) the target files. O_DIRECT is used when `block` is a multiple of
    /// 4 KiB and the file system accepts it; otherwise buffered I/O (with a log line).
    pub fn create(targets: Vec<ShardTarget>, block: usize) -> Result<Self, EcError> {
        let mut files = Vec::with_capacity(targets.len());
        for target in targets {
            let (file, direct) = open_target(&target, block.is_multiple_of(ALIGN))?;
            files.push(Open {
                target,
                file,
                direct,
            });
        }
        let ring = match IoUring::new(128) {
            Ok(ring) => Some(ring),
            Err(e) => {
                tracing::warn!("io_uring unavailable ({e}); writing shards with pwrite");
                None
            }
        };
        Ok(ShardWriter {
            ring,
            files,
            block,
            inflight: Vec::new(),
            error: None,
        })
    }

    /// Whether shard writes go through io_uring (false: pwrite fallback).
    pub fn uses_io_uring(&self) -> bool {
        self.ring.is_some()
    }

    /// Queues one write per target — block `index` of `buf` (a whole stripe) at offset
    /// `stripe * block` of the target's file — as one batch, then waits until at most
    /// `DEPTH` stripes are in flight. Returns the buffers of the stripes that completed.
    pub fn submit(&mut self, stripe: u64, buf: AlignedBuf) -> Result<Vec<AlignedBuf>, EcError> {
        if self.ring.is_none() {
            for t in 0..self.files.len() {
                self.pwrite(t, &buf, stripe, 0)?;
            }
            return Ok(vec![buf]);
        }
        let n = self.files.len();
        self.inflight.push(InFlight {
            stripe,
            buf,
            done: vec![0; n],
            pending: n,
        });
        let slot = self.inflight.len() - 1;
        for t in 0..n {
            self.push_write(slot, t);
        }
        if let Some(ring) = &self.ring
            && let Err(e) = ring.submit()
            && !transient(&e)
        {
            tracing::debug!("io_uring submit: {e}; retrying while waiting");
        }
        self.reap(DEPTH)
    }

    /// Writes one stripe and waits for it: [`ShardWriter::submit`] then [`ShardWriter::drain`].
    pub fn write_stripe(&mut self, stripe: u64, buf: AlignedBuf) -> Result<AlignedBuf, EcError> {
        let mut freed = self.submit(stripe, buf)?;
        freed.extend(self.drain()?);
        freed
            .pop()
            .ok_or_else(|| EcError::Codec("stripe buffer lost".into()))
    }

    /// Waits for every write in flight; returns their buffers.
    pub fn drain(&mut self) -> Result<Vec<AlignedBuf>, EcError> {
        self.reap(0)
    }

    /// Pushes the (rest of the) write of target `t` for in-flight stripe `slot`.
    fn push_write(&mut self, slot: usize, t: usize) {
        let (block, f, open) = (self.block, &mut self.inflight[slot], &self.files[t]);
        let done = f.done[t];
        let chunk = &f.buf[open.target.index * block + done..][..block - done];
        let entry = opcode::Write::new(
            types::Fd(open.file.as_raw_fd()),
            chunk.as_ptr(),
            chunk.len() as u32,
        )
        .offset(f.stripe * block as u64 + done as u64)
        .build()
        .user_data((f.stripe << 6) | t as u64);
        let Some(ring) = self.ring.as_mut() else {
            return;
        };
        for _ in 0..2 {
            // SAFETY: the entry points into `f.buf`, owned by `self.inflight` until the
            // completion of this entry has been reaped (`pending` counts it): `reap` removes
            // a stripe only when its `pending` is 0, `reap` returns an error only once
            // nothing is in flight, and `Drop` waits for all completions or, if it cannot,
            // leaks the buffers instead of freeing them. The file descriptor belongs to
            // `self.files`, which lives as long as the ring (the kernel also holds its own
            // reference while an operation runs).
            if unsafe { ring.submission().push(&entry) }.is_ok() {
                return;
            }
            // Queue full: hand what is queued to the kernel and try once more.
            if let Err(e) = ring.submit() {
                tracing::debug!("io_uring submit: {e}");
            }
        }
        f.pending -= 1;
        let e = io::Error::other("io_uring submission queue is full");
        let err = EcError::io(
            "queue a write to",
            &open.target.path,
            &open.target.shard_dir,
            e,
        );
        self.error.get_or_insert(err);
    }

    /// Reaps completions until at most `max` stripes are in flight (none after an error);
    /// returns the buffers of completed stripes, or the first error once nothing is in flight.
    fn reap(&mut self, max: usize) -> Result<Vec<AlignedBuf>, EcError> {
        let mut freed = Vec::new();
        let mut retries = 0;
        loop {
            while let Some(i) = self.inflight.iter().position(|f| f.pending == 0) {
                freed.push(self.inflight.remove(i).buf);
            }
            let limit = if self.error.is_some() { 0 } else { max };
            if self.inflight.len() <= limit {
                break;
            }
            let Some(ring) = self.ring.as_mut() else {
                break;
            };
            if let Err(e) = ring.submit_and_wait(1) {
                retries += 1;
                if !transient(&e) || retries > 10_000 {
                    self.abandon();
                    let t = &self.files[0].target;
                    return Err(EcError::io("wait for writes to", &t.path, &t.shard_dir, e));
                }
            }
            let done: Vec<(u64, i32)> = ring
                .completion()
                .map(|c| (c.user_data(), c.result()))
                .collect();
            for (user_data, res) in done {
                self.complete(user_data, res);
            }
        }
        match self.error.take() {
            Some(e) => Err(e),
            None => Ok(freed),
        }
    }

    /// Accounts for one completion.
    fn complete(&mut self, user_data: u64, res: i32) {
        let (stripe, t) = (user_data >> 6, (user_data & 63) as usize);
        let Some(slot) = self.inflight.iter().position(|f| f.stripe == stripe) else {
            return;
        };
        if res > 0 {
            let f = &mut self.inflight[slot];
            f.done[t] += res as usize;
            if f.done[t] < self.block {
                self.push_write(slot, t); // short write: the rest
            } else {
                f.pending -= 1;
            }
            return;
        }
        self.inflight[slot].pending -= 1;
        let err = match res {
            0 => io::Error::new(io::ErrorKind::WriteZero, "wrote nothing"),
            _ => io::Error::from_raw_os_error(-res),
        };
        if res == -libc::EINVAL && self.files[t].direct {
            tracing::warn!(
                "O_DIRECT write refused in {} ({err}); using buffered I/O there",
                self.files[t].target.shard_dir.display()
            );
            match reopen_buffered(&self.files[t].target) {
                Ok(file) => {
                    self.files[t].file = file;
                    self.files[t].direct = false;
                    let f = &self.inflight[slot];
                    if let Err(e) = self.pwrite(t, &f.buf, f.stripe, f.done[t]) {
                        self.error.get_or_insert(e);
                    }
                }
                Err(e) => {
                    self.error.get_or_insert(e);
                }
            }
            return;
        }
        let open = &self.files[t];
        let err = EcError::io("write", &open.target.path, &open.target.shard_dir, err);
        self.error.get_or_insert(err);
    }

    /// Synchronous fallback: writes the rest of target `t`'s block of `stripe`.
    fn pwrite(&self, t: usize, buf: &[u8], stripe: u64, done: usize) -> Result<(), EcError> {
        let open = &self.files[t];
        let chunk = &buf[open.target.index * self.block + done..][..self.block - done];
        open.file
            .write_all_at(chunk, stripe * self.block as u64 + done as u64)
            .map_err(|e| EcError::io("write", &open.target.path, &open.target.shard_dir, e))
    }

    /// Gives up on in-flight writes whose completion cannot be awaited: their buffers are
    /// leaked, never freed, since the kernel may still read them.
    fn abandon(&mut self) {
        for f in self.inflight.drain(..) {
            std::mem::forget(f.buf);
        }
    }

    /// Waits for every write, fsyncs every file and returns the targets.
    pub fn finish(mut self) -> Result<Vec<ShardTarget>, EcError> {
        self.drain()?;
        let mut targets = Vec::with_capacity(self.files.len());
        for open in std::mem::take(&mut self.files) {
            open.file
                .sync_all()
                .map_err(|e| EcError::io("fsync", &open.target.path, &open.target.shard_dir, e))?;
            targets.push(open.target);
        }
        Ok(targets)
    }
}

impl Drop for ShardWriter {
    fn drop(&mut self) {
        // An error path left writes in flight: wait for them (or leak their buffers).
        if !self.inflight.is_empty()
            && let Err(e) = self.reap(0)
        {
            tracing::warn!("shard writes still in flight when the writer was dropped: {e}");
        }
    }
}

fn transient(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EINTR | libc::EAGAIN | libc::EBUSY)
    )
}
