//! Shard writes through io_uring: one write per shard block, submitted as one batch per
//! stripe, with O_DIRECT where the file system accepts it.
//!
//! The only `unsafe` of the archive engine is here: pushing write entries that point into a
//! stripe buffer. [`ShardWriter::write_stripe`] owns that buffer and does not give it back
//! (or drop it) before the kernel has completed every entry that points into it.
#![allow(unsafe_code)]

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::PathBuf;

use io_uring::{IoUring, opcode, types};

use super::EcError;
use super::fsutil::{ALIGN, AlignedBuf};

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

/// Writes the blocks of successive stripes to their shard files.
pub struct ShardWriter {
    ring: Option<IoUring>,
    files: Vec<Open>,
    block: usize,
}

impl ShardWriter {
    /// Creates (truncates) the target files. O_DIRECT is used when `block` is a multiple of
    /// 4 KiB and the file system accepts it; otherwise buffered I/O (with a log line).
    pub fn create(targets: Vec<ShardTarget>, block: usize) -> Result<Self, EcError> {
        let mut files = Vec::with_capacity(targets.len());
        for target in targets {
            let want_direct = block.is_multiple_of(ALIGN);
            let (file, direct) = open_target(&target, want_direct)?;
            files.push(Open {
                target,
                file,
                direct,
            });
        }
        let ring = match IoUring::new(64) {
            Ok(ring) => Some(ring),
            Err(e) => {
                tracing::warn!("io_uring unavailable ({e}); writing shards with pwrite");
                None
            }
        };
        Ok(ShardWriter { ring, files, block })
    }

    /// Whether shard writes go through io_uring (false: pwrite fallback).
    pub fn uses_io_uring(&self) -> bool {
        self.ring.is_some()
    }

    /// Writes block `t.index` of `buf` (a whole stripe, `(k + m) * block` bytes) at offset
    /// `stripe * block` of each target file, and hands the buffer back once every write has
    /// completed.
    pub fn write_stripe(&mut self, stripe: u64, buf: AlignedBuf) -> Result<AlignedBuf, EcError> {
        let offset = stripe * self.block as u64;
        if self.ring.is_none() {
            for t in 0..self.files.len() {
                self.pwrite(t, &buf, offset, 0)?;
            }
            return Ok(buf);
        }
        // (target, bytes of its block already written)
        let mut pending: Vec<(usize, usize)> = (0..self.files.len()).map(|t| (t, 0)).collect();
        let mut first_error = None;
        while !pending.is_empty() && first_error.is_none() {
            match self.submit_batch(&buf, offset, &pending) {
                Ok(results) => {
                    let mut next = Vec::new();
                    for ((t, done), res) in pending.iter().copied().zip(results) {
                        match self.settle(t, done, res, &buf, offset) {
                            Ok(Some(done)) => next.push((t, done)),
                            Ok(None) => {}
                            Err(e) => {
                                first_error.get_or_insert(e);
                            }
                        }
                    }
                    pending = next;
                }
                Err(Unfinished::Failed(e)) => first_error = Some(e),
                Err(Unfinished::InFlight(e)) => {
                    // Writes may still be reading the buffer: leak it rather than free it.
                    std::mem::forget(buf);
                    self.ring = None;
                    return Err(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(buf),
        }
    }

    /// Pushes one write per pending target, submits them and waits for all of them.
    /// Returns each entry's result, in `pending` order.
    fn submit_batch(
        &mut self,
        buf: &AlignedBuf,
        offset: u64,
        pending: &[(usize, usize)],
    ) -> Result<Vec<i32>, Unfinished> {
        let Some(ring) = self.ring.as_mut() else {
            return Err(Unfinished::Failed(EcError::Codec(
                "io_uring is gone".into(),
            )));
        };
        let mut queue_full = None;
        for (slot, &(t, done)) in pending.iter().enumerate() {
            let open = &self.files[t];
            let chunk = &buf[open.target.index * self.block + done..][..self.block - done];
            let entry = opcode::Write::new(
                types::Fd(open.file.as_raw_fd()),
                chunk.as_ptr(),
                chunk.len() as u32,
            )
            .offset(offset + done as u64)
            .build()
            .user_data(slot as u64);
            // SAFETY: the entry points into `buf`, which the caller (`write_stripe`) owns and
            // keeps alive until every submitted entry has completed: this function returns
            // normally only after reaping all of them, and when it cannot confirm that
            // (`Unfinished::InFlight`) the caller leaks the buffer instead of freeing it. The
            // file descriptor belongs to `self.files`, which outlives the ring's use of it
            // (the kernel also holds its own reference while an operation runs).
            if unsafe { ring.submission().push(&entry) }.is_err() {
                queue_full = Some(t);
                break;
            }
        }
        if let Some(t) = queue_full {
            // Nothing was submitted: dropping the ring discards the queued entries unread.
            self.ring = None;
            let target = &self.files[t].target;
            let e = io::Error::other("io_uring submission queue is full");
            return Err(Unfinished::Failed(EcError::io(
                "queue a write to",
                &target.path,
                &target.shard_dir,
                e,
            )));
        }
        let mut results = vec![0i32; pending.len()];
        let mut reaped = 0;
        let mut retries = 0;
        loop {
            for cqe in ring.completion() {
                results[cqe.user_data() as usize] = cqe.result();
                reaped += 1;
            }
            if reaped == pending.len() {
                return Ok(results);
            }
            if let Err(e) = ring.submit_and_wait(pending.len() - reaped) {
                let transient = matches!(
                    e.raw_os_error(),
                    Some(libc::EINTR | libc::EAGAIN | libc::EBUSY)
                );
                retries += 1;
                if !transient || retries > 10_000 {
                    let target = &self.files[pending[0].0].target;
                    return Err(Unfinished::InFlight(EcError::io(
                        "submit writes to",
                        &target.path,
                        &target.shard_dir,
                        e,
                    )));
                }
            }
        }
    }

    /// Interprets one completion: `Ok(None)` done, `Ok(Some(n))` short write (n bytes done).
    fn settle(
        &mut self,
        t: usize,
        done: usize,
        res: i32,
        buf: &AlignedBuf,
        offset: u64,
    ) -> Result<Option<usize>, EcError> {
        if res >= 0 {
            let done = done + res as usize;
            return Ok((done < self.block).then_some(done));
        }
        let err = io::Error::from_raw_os_error(-res);
        let open = &mut self.files[t];
        if res == -libc::EINVAL && open.direct {
            tracing::warn!(
                "O_DIRECT write refused in {} ({err}); using buffered I/O there",
                open.target.shard_dir.display()
            );
            open.file = reopen_buffered(&open.target)?;
            open.direct = false;
            self.pwrite(t, buf, offset, done)?;
            return Ok(None);
        }
        Err(EcError::io(
            "write",
            &open.target.path,
            &open.target.shard_dir,
            err,
        ))
    }

    /// Synchronous fallback: writes the rest of target `t`'s block.
    fn pwrite(&self, t: usize, buf: &[u8], offset: u64, done: usize) -> Result<(), EcError> {
        let open = &self.files[t];
        let chunk = &buf[open.target.index * self.block + done..][..self.block - done];
        open.file
            .write_all_at(chunk, offset + done as u64)
            .map_err(|e| EcError::io("write", &open.target.path, &open.target.shard_dir, e))
    }

    /// fsyncs every file and returns the targets.
    pub fn finish(self) -> Result<Vec<ShardTarget>, EcError> {
        let mut targets = Vec::with_capacity(self.files.len());
        for open in self.files {
            open.file
                .sync_all()
                .map_err(|e| EcError::io("fsync", &open.target.path, &open.target.shard_dir, e))?;
            targets.push(open.target);
        }
        Ok(targets)
    }
}

enum Unfinished {
    /// Nothing of this batch is in flight any more.
    Failed(EcError),
    /// Entries may still be in flight: the buffer must not be freed.
    InFlight(EcError),
}

fn open_target(target: &ShardTarget, direct: bool) -> Result<(File, bool), EcError> {
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true).mode(0o644);
    if direct {
        match options
            .clone()
            .custom_flags(libc::O_DIRECT)
            .open(&target.path)
        {
            Ok(file) => return Ok((file, true)),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => tracing::warn!(
                "O_DIRECT not supported in {} ({e}); using buffered I/O",
                target.shard_dir.display()
            ),
            Err(e) => return Err(EcError::io("create", &target.path, &target.shard_dir, e)),
        }
    }
    let file = options
        .open(&target.path)
        .map_err(|e| EcError::io("create", &target.path, &target.shard_dir, e))?;
    Ok((file, false))
}

fn reopen_buffered(target: &ShardTarget) -> Result<File, EcError> {
    OpenOptions::new()
        .write(true)
        .open(&target.path)
        .map_err(|e| EcError::io("reopen", &target.path, &target.shard_dir, e))
}
