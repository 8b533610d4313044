//! The archive engine's block I/O: reads and writes of whole blocks through io_uring, with
//! O_DIRECT where the file system allows it and buffered I/O (or plain `pread`/`pwrite`
//! when io_uring cannot be set up) as the fallback.
//!
//! Work is submitted in [`Batch`]es: one buffer (a stripe) and the operations that read into
//! or write from parts of it. Several batches are in flight at once; [`Engine::reap`] hands
//! them back in submission order once all their operations have completed, so callers can
//! pipeline (read stripe N+2 while stripe N is written) and still process stripes in order.
//!
//! **O_DIRECT fallback.** A file system may accept an O_DIRECT open and still refuse the
//! transfers with EINVAL (e.g. 1536-byte blocks on a 4 KiB-sector disk). Such a refusal
//! marks the file "switching": operations for it that are not yet in the kernel are held
//! back, the engine waits until every operation already submitted on it has completed
//! (each may fail with EINVAL too), then reopens the file without O_DIRECT and performs
//! every held-back or refused operation with buffered `pread`/`pwrite`. The old descriptor
//! is closed only after that, so no queued entry ever names a closed (or reused) descriptor.
//!
//! The only `unsafe` of the archive engine is here: pushing entries that point into a batch
//! buffer. The engine owns each such buffer and does not give it back (or drop it) before
//! the kernel has completed every entry that points into it.
#![allow(unsafe_code)]

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use io_uring::{IoUring, opcode, types};
use serde::Serialize;

use super::EcError;
use super::fsutil::AlignedBuf;

/// Smallest transfer unit O_DIRECT may accept (the logical sector size of most disks); an
/// O_DIRECT open is only tried when every transfer is a multiple of it.
pub const DIRECT_UNIT: usize = 512;

/// How a file is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Read only.
    Read,
    /// Created or truncated, write only.
    Create,
    /// An existing file or block device, written in place.
    Write,
}

/// A file for the engine to open.
#[derive(Debug, Clone)]
pub struct FileSpec {
    /// The file.
    pub path: PathBuf,
    /// The directory named in errors ("no space left on DIR").
    pub dir: PathBuf,
    /// How to open it.
    pub mode: Mode,
    /// Try O_DIRECT (falls back to buffered I/O where refused).
    pub direct: bool,
}

impl FileSpec {
    /// Opens the file: with O_DIRECT if asked and accepted at open time. Returns whether
    /// O_DIRECT is on.
    pub fn open(&self) -> Result<(File, bool), EcError> {
        if self.direct {
            match self.options(true).open(&self.path) {
                Ok(file) => return Ok((file, true)),
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => tracing::warn!(
                    "O_DIRECT not supported in {} ({e}); using buffered I/O",
                    self.dir.display()
                ),
                Err(e) => return Err(self.error(self.verb(), e)),
            }
        }
        let file = self
            .options(false)
            .open(&self.path)
            .map_err(|e| self.error(self.verb(), e))?;
        Ok((file, false))
    }

    /// Reopens the file without O_DIRECT (never truncating).
    fn reopen_buffered(&self) -> Result<File, EcError> {
        let mut options = OpenOptions::new();
        match self.mode {
            Mode::Read => options.read(true),
            Mode::Create | Mode::Write => options.write(true),
        };
        options
            .open(&self.path)
            .map_err(|e| self.error("reopen", e))
    }

    fn options(&self, direct: bool) -> OpenOptions {
        let mut options = OpenOptions::new();
        match self.mode {
            Mode::Read => {
                options.read(true);
            }
            Mode::Create => {
                options.write(true).create(true).truncate(true).mode(0o644);
            }
            Mode::Write => {
                options.write(true);
            }
        }
        if direct {
            options.custom_flags(libc::O_DIRECT);
        }
        options
    }

    fn verb(&self) -> &'static str {
        match self.mode {
            Mode::Read => "open",
            Mode::Create => "create",
            Mode::Write => "open",
        }
    }

    fn error(&self, op: &'static str, e: io::Error) -> EcError {
        EcError::io(op, &self.path, &self.dir, e)
    }
}

/// Direction of an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// File → buffer.
    Read,
    /// Buffer → file.
    Write,
}

/// How an operation ended.
#[derive(Debug)]
pub enum Outcome {
    /// Not completed yet.
    Pending,
    /// Every byte was transferred.
    Done,
    /// A read met the end of the file after this many bytes.
    Short(usize),
    /// A read failed (write failures fail the whole engine instead).
    Failed(io::Error),
}

/// One transfer between part of a batch buffer and a file.
#[derive(Debug)]
pub struct Op {
    /// Index of the file (in the order given to [`Engine::new`]).
    pub file: usize,
    /// Direction.
    pub kind: Kind,
    /// Start of the transfer in the batch buffer.
    pub at: usize,
    /// Bytes to transfer.
    pub len: usize,
    /// Position in the file.
    pub offset: u64,
    /// How it ended (set by the engine).
    pub outcome: Outcome,
    done: usize,
    /// Held back or refused by O_DIRECT: redone buffered once its file has switched.
    retry: bool,
}

impl Op {
    /// A transfer of `len` bytes between `buf[at..]` and file `file` at `offset`.
    pub fn new(file: usize, kind: Kind, at: usize, len: usize, offset: u64) -> Op {
        Op {
            file,
            kind,
            at,
            len,
            offset,
            outcome: Outcome::Pending,
            done: 0,
            retry: false,
        }
    }
}

/// A buffer and the operations on it.
#[derive(Debug)]
pub struct Batch {
    /// The caller's label (e.g. the stripe number).
    pub tag: u64,
    /// The buffer every operation reads into or writes from.
    pub buf: AlignedBuf,
    /// The operations; their outcomes are set when the batch comes back.
    pub ops: Vec<Op>,
    seq: u64,
    pending: usize,
}

impl Batch {
    /// A batch of `ops` on `buf`.
    pub fn new(tag: u64, buf: AlignedBuf, ops: Vec<Op>) -> Batch {
        Batch {
            tag,
            buf,
            ops,
            seq: 0,
            pending: 0,
        }
    }
}

/// What an engine did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct IoStats {
    /// Whether an io_uring instance was set up (false: `pread`/`pwrite` only).
    pub io_uring: bool,
    /// Read and write entries completed by io_uring (resubmissions of short transfers count).
    pub uring_ops: u64,
    /// Bytes transferred by io_uring.
    pub uring_bytes: u64,
    /// Transfers done with `pread`/`pwrite` (no io_uring, or after an O_DIRECT refusal).
    pub sync_ops: u64,
    /// Bytes transferred by `pread`/`pwrite`.
    pub sync_bytes: u64,
    /// Files opened with O_DIRECT.
    pub direct_files: u64,
    /// Files switched to buffered I/O after O_DIRECT transfers were refused.
    pub direct_fallbacks: u64,
}

impl IoStats {
    /// The sum of two sets of statistics.
    pub fn plus(self, other: IoStats) -> IoStats {
        IoStats {
            io_uring: self.io_uring || other.io_uring,
            uring_ops: self.uring_ops + other.uring_ops,
            uring_bytes: self.uring_bytes + other.uring_bytes,
            sync_ops: self.sync_ops + other.sync_ops,
            sync_bytes: self.sync_bytes + other.sync_bytes,
            direct_files: self.direct_files + other.direct_files,
            direct_fallbacks: self.direct_fallbacks + other.direct_fallbacks,
        }
    }
}

/// Totals of every engine of this process (for metrics).
static TOTALS: [AtomicU64; 6] = [const { AtomicU64::new(0) }; 6];

/// Totals over every engine of this process so far (`io_uring` is true if any had it).
pub fn process_totals() -> IoStats {
    let v = |i: usize| TOTALS[i].load(Relaxed);
    IoStats {
        io_uring: v(0) > 0,
        uring_ops: v(0),
        uring_bytes: v(1),
        sync_ops: v(2),
        sync_bytes: v(3),
        direct_files: v(4),
        direct_fallbacks: v(5),
    }
}

struct Slot {
    spec: FileSpec,
    file: File,
    direct: bool,
    /// Entries of this file in the kernel (pushed, not completed).
    outstanding: usize,
    /// An O_DIRECT transfer was refused: hold new work until `outstanding` is 0, then reopen.
    switching: bool,
}

/// Reads and writes blocks of a set of files, several batches in flight.
pub struct Engine {
    ring: Option<IoUring>,
    files: Vec<Slot>,
    inflight: VecDeque<Batch>,
    next_seq: u64,
    error: Option<EcError>,
    stats: IoStats,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("files", &self.files.len())
            .field("in_flight", &self.inflight.len())
            .field("stats", &self.stats)
            .finish()
    }
}

/// Bits of `user_data` that carry the operation's index within its batch.
const OP_BITS: u32 = 16;

impl Engine {
    /// Opens `files` and sets up an io_uring instance sized for `depth` batches of up to
    /// `ops_per_batch` operations (falling back to `pread`/`pwrite`, with a log line, if
    /// io_uring is unavailable).
    pub fn new(files: Vec<FileSpec>, depth: usize, ops_per_batch: usize) -> Result<Self, EcError> {
        let mut slots = Vec::with_capacity(files.len());
        let mut stats = IoStats::default();
        for spec in files {
            let (file, direct) = spec.open()?;
            stats.direct_files += u64::from(direct);
            slots.push(Slot {
                spec,
                file,
                direct,
                outstanding: 0,
                switching: false,
            });
        }
        Ok(Self::with_files(slots, depth, ops_per_batch, stats))
    }

    /// Like [`Engine::new`], on files the caller opened (`direct`: whether with O_DIRECT).
    pub fn with_open(
        files: Vec<(FileSpec, File, bool)>,
        depth: usize,
        ops_per_batch: usize,
    ) -> Self {
        let mut stats = IoStats::default();
        let slots = files
            .into_iter()
            .map(|(spec, file, direct)| {
                stats.direct_files += u64::from(direct);
                Slot {
                    spec,
                    file,
                    direct,
                    outstanding: 0,
                    switching: false,
                }
            })
            .collect();
        Self::with_files(slots, depth, ops_per_batch, stats)
    }

    fn with_files(files: Vec<Slot>, depth: usize, ops_per_batch: usize, stats: IoStats) -> Self {
        TOTALS[4].fetch_add(stats.direct_files, Relaxed);
        // Every operation has at most one entry in the kernel, and at most depth + 1 batches
        // are in flight: the queue never overflows.
        let entries = ((depth + 1) * ops_per_batch.max(1))
            .next_power_of_two()
            .clamp(8, 4096);
        let ring = match IoUring::new(entries as u32) {
            Ok(ring) => Some(ring),
            Err(e) => {
                tracing::warn!("io_uring unavailable ({e}); using pread/pwrite");
                None
            }
        };
        let stats = IoStats {
            io_uring: ring.is_some(),
            ..stats
        };
        Engine {
            ring,
            files,
            inflight: VecDeque::new(),
            next_seq: 0,
            error: None,
            stats,
        }
    }

    /// Whether transfers go through io_uring.
    pub fn uses_io_uring(&self) -> bool {
        self.ring.is_some()
    }

    /// What this engine did so far.
    pub fn stats(&self) -> IoStats {
        self.stats
    }

    /// Batches in flight.
    pub fn in_flight(&self) -> usize {
        self.inflight.len()
    }

    /// Hands every operation of `batch` to the kernel (or performs them at once without
    /// io_uring). Call [`Engine::reap`] to get it back.
    pub fn submit(&mut self, mut batch: Batch) -> Result<(), EcError> {
        batch.seq = self.next_seq;
        self.next_seq += 1;
        batch.pending = batch.ops.len();
        if self.ring.is_none() {
            for i in 0..batch.ops.len() {
                sync_op(&self.files, &mut self.stats, &mut self.error, &mut batch, i);
            }
            self.inflight.push_back(batch);
            return self.take_error_if_idle();
        }
        self.inflight.push_back(batch);
        let slot = self.inflight.len() - 1;
        for i in 0..self.inflight[slot].ops.len() {
            self.push(slot, i);
        }
        if let Some(ring) = &self.ring
            && let Err(e) = ring.submit()
            && !transient(&e)
        {
            tracing::debug!("io_uring submit: {e}; retrying while waiting");
        }
        self.switch_ready();
        Ok(())
    }

    /// Waits until at most `max` batches are in flight (none after a write error) and
    /// returns the completed batches at the front, in submission order. After a write
    /// error, returns that error once nothing is in flight.
    pub fn reap(&mut self, max: usize) -> Result<Vec<Batch>, EcError> {
        let mut done = Vec::new();
        let mut retries = 0;
        loop {
            while self.inflight.front().is_some_and(|b| b.pending == 0) {
                done.extend(self.inflight.pop_front());
            }
            let limit = if self.error.is_some() { 0 } else { max };
            if self.inflight.len() <= limit {
                break;
            }
            let Some(ring) = self.ring.as_mut() else {
                // Without io_uring every batch completed at submission.
                break;
            };
            if let Err(e) = ring.submit_and_wait(1) {
                retries += 1;
                if !transient(&e) || retries > 10_000 {
                    self.abandon();
                    let f = &self.files[0].spec;
                    return Err(EcError::io("wait for transfers on", &f.path, &f.dir, e));
                }
            }
            let completions: Vec<(u64, i32)> = ring
                .completion()
                .map(|c| (c.user_data(), c.result()))
                .collect();
            for (user_data, res) in completions {
                self.complete(user_data, res);
            }
            self.switch_ready();
        }
        match self.error.take() {
            Some(e) => {
                // Completed batches are dropped with the error: nothing more will be done.
                Err(e)
            }
            None => Ok(done),
        }
    }

    /// Waits for every batch in flight and returns them.
    pub fn drain(&mut self) -> Result<Vec<Batch>, EcError> {
        self.reap(0)
    }

    /// Waits for everything, fsyncs every file opened for writing, and closes the files.
    pub fn finish(mut self) -> Result<IoStats, EcError> {
        self.drain()?;
        for slot in std::mem::take(&mut self.files) {
            if slot.spec.mode != Mode::Read {
                slot.file
                    .sync_all()
                    .map_err(|e| slot.spec.error("fsync", e))?;
            }
        }
        Ok(self.stats)
    }

    /// Pushes the (rest of the) operation `i` of in-flight batch `slot`, or holds it back
    /// while its file is switching to buffered I/O.
    fn push(&mut self, slot: usize, i: usize) {
        let batch = &mut self.inflight[slot];
        let op = &mut batch.ops[i];
        let file = &mut self.files[op.file];
        if file.switching {
            op.retry = true;
            return;
        }
        let (at, len) = (op.at + op.done, op.len - op.done);
        let fd = types::Fd(file.file.as_raw_fd());
        let offset = op.offset + op.done as u64;
        let user_data = (batch.seq << OP_BITS) | i as u64;
        let entry = match op.kind {
            Kind::Read => {
                let ptr = batch.buf[at..][..len].as_mut_ptr();
                opcode::Read::new(fd, ptr, len as u32)
                    .offset(offset)
                    .build()
                    .user_data(user_data)
            }
            Kind::Write => {
                let ptr = batch.buf[at..][..len].as_ptr();
                opcode::Write::new(fd, ptr, len as u32)
                    .offset(offset)
                    .build()
                    .user_data(user_data)
            }
        };
        let Some(ring) = self.ring.as_mut() else {
            return;
        };
        for _ in 0..2 {
            // SAFETY: the entry points into `batch.buf`, owned by `self.inflight` until the
            // completion of this entry has been reaped (`pending` counts it): `reap` hands a
            // batch back only when its `pending` is 0, returns an error only once nothing is
            // in flight, and `Drop` waits for all completions or, if it cannot, leaks the
            // buffers instead of freeing them. The descriptor belongs to `self.files`, and a
            // file is replaced (closing the old descriptor) only when none of its entries is
            // in the kernel (`outstanding` is 0).
            if unsafe { ring.submission().push(&entry) }.is_ok() {
                file.outstanding += 1;
                return;
            }
            // Queue full: hand what is queued to the kernel and try once more.
            if let Err(e) = ring.submit() {
                tracing::debug!("io_uring submit: {e}");
            }
        }
        let e = io::Error::other("io_uring submission queue is full");
        self.fail(slot, i, e);
    }

    /// Accounts for one completion.
    fn complete(&mut self, user_data: u64, res: i32) {
        let (seq, i) = (user_data >> OP_BITS, (user_data & 0xffff) as usize);
        let Some(slot) = self.inflight.iter().position(|b| b.seq == seq) else {
            return;
        };
        let f = self.inflight[slot].ops[i].file;
        self.files[f].outstanding -= 1;
        if res > 0 {
            self.stats.uring_ops += 1;
            self.stats.uring_bytes += res as u64;
            TOTALS[0].fetch_add(1, Relaxed);
            TOTALS[1].fetch_add(res as u64, Relaxed);
            let op = &mut self.inflight[slot].ops[i];
            op.done += res as usize;
            if op.done < op.len {
                self.push(slot, i); // short transfer: the rest
            } else {
                op.outcome = Outcome::Done;
                self.inflight[slot].pending -= 1;
            }
            return;
        }
        if res == -libc::EINVAL && self.files[f].direct {
            if !self.files[f].switching {
                tracing::warn!(
                    "O_DIRECT transfer refused in {} ({}); switching {} to buffered I/O",
                    self.files[f].spec.dir.display(),
                    io::Error::from_raw_os_error(libc::EINVAL),
                    self.files[f].spec.path.display()
                );
            }
            self.files[f].switching = true;
            self.inflight[slot].ops[i].retry = true;
            return;
        }
        let op = &mut self.inflight[slot].ops[i];
        if res == 0 && op.kind == Kind::Read {
            op.outcome = Outcome::Short(op.done);
            self.inflight[slot].pending -= 1;
            return;
        }
        let e = match res {
            0 => io::Error::new(io::ErrorKind::WriteZero, "wrote nothing"),
            _ => io::Error::from_raw_os_error(-res),
        };
        self.fail(slot, i, e);
    }

    /// Records a failed operation: reads keep the error in their outcome, a write fails the
    /// engine.
    fn fail(&mut self, slot: usize, i: usize, e: io::Error) {
        self.inflight[slot].pending -= 1;
        let op = &mut self.inflight[slot].ops[i];
        match op.kind {
            Kind::Read => op.outcome = Outcome::Failed(e),
            Kind::Write => {
                let spec = &self.files[op.file].spec;
                op.outcome = Outcome::Failed(io::Error::from(e.kind()));
                self.error.get_or_insert(spec.error("write", e));
            }
        }
    }

    /// Switches every file whose O_DIRECT transfers were refused and that has nothing left
    /// in the kernel, then redoes its held-back operations buffered.
    fn switch_ready(&mut self) {
        let Engine {
            files,
            inflight,
            stats,
            error,
            ..
        } = self;
        for f in 0..files.len() {
            if !files[f].switching || files[f].outstanding > 0 {
                continue;
            }
            files[f].switching = false;
            let reopened = match files[f].spec.reopen_buffered() {
                Ok(reopened) => {
                    // The O_DIRECT descriptor is closed here: no entry of it is in flight.
                    files[f].file = reopened;
                    files[f].direct = false;
                    stats.direct_fallbacks += 1;
                    TOTALS[5].fetch_add(1, Relaxed);
                    true
                }
                Err(e) => {
                    error.get_or_insert(e);
                    false
                }
            };
            for batch in inflight.iter_mut() {
                for i in 0..batch.ops.len() {
                    if batch.ops[i].file != f || !batch.ops[i].retry {
                        continue;
                    }
                    batch.ops[i].retry = false;
                    if reopened {
                        sync_op(files, stats, error, batch, i);
                    } else {
                        batch.ops[i].outcome = Outcome::Failed(io::Error::other(
                            "the file could not be reopened for buffered I/O",
                        ));
                        batch.pending -= 1;
                    }
                }
            }
        }
    }

    fn take_error_if_idle(&mut self) -> Result<(), EcError> {
        match self.error.take() {
            Some(e) => {
                self.inflight.clear();
                Err(e)
            }
            None => Ok(()),
        }
    }

    /// Gives up on batches whose completion cannot be awaited: their buffers are leaked,
    /// never freed, since the kernel may still use them.
    fn abandon(&mut self) {
        for batch in self.inflight.drain(..) {
            std::mem::forget(batch.buf);
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if !self.inflight.is_empty()
            && let Err(e) = self.reap(0)
        {
            tracing::warn!("transfers still in flight when the I/O engine was dropped: {e}");
        }
    }
}

/// Performs the rest of operation `i` of `batch` with `pread`/`pwrite`.
fn sync_op(
    files: &[Slot],
    stats: &mut IoStats,
    error: &mut Option<EcError>,
    batch: &mut Batch,
    i: usize,
) {
    let op = &mut batch.ops[i];
    let slot = &files[op.file];
    let range = op.at + op.done..op.at + op.len;
    let offset = op.offset + op.done as u64;
    let result = match op.kind {
        Kind::Write => slot
            .file
            .write_all_at(&batch.buf[range.clone()], offset)
            .map(|()| range.len()),
        Kind::Read => read_at_most(&slot.file, &mut batch.buf[range.clone()], offset),
    };
    batch.pending -= 1;
    match result {
        Ok(n) => {
            stats.sync_ops += 1;
            stats.sync_bytes += n as u64;
            TOTALS[2].fetch_add(1, Relaxed);
            TOTALS[3].fetch_add(n as u64, Relaxed);
            op.done += n;
            op.outcome = if op.done == op.len {
                Outcome::Done
            } else {
                Outcome::Short(op.done)
            };
        }
        Err(e) => match op.kind {
            Kind::Read => op.outcome = Outcome::Failed(e),
            Kind::Write => {
                op.outcome = Outcome::Failed(io::Error::from(e.kind()));
                error.get_or_insert(slot.spec.error("write", e));
            }
        },
    }
}

/// `pread` until `buf` is full or the file ends; returns the bytes read.
fn read_at_most(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read_at(&mut buf[filled..], offset + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

fn transient(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EINTR | libc::EAGAIN | libc::EBUSY)
    )
}
