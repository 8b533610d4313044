//! Sequential read-ahead: spotting readers that read block after block.
//!
//! Each [`CachedArchive`](super::CachedArchive) tracks a few streams (the most recently
//! active ones; several clients can read the same export). A read that starts in the block a
//! stream last touched, or the next one, continues that stream; once a stream has covered two
//! blocks in a row it is sequential, and the blocks from its end up to `depth` ahead are
//! read into the cache, in one batch, whenever less than half of that window remains
//! ahead of the reader.

use std::ops::Range;
use std::sync::Mutex;

/// Streams tracked per archive.
pub const STREAMS: usize = 8;

#[derive(Debug, Clone, Copy)]
struct Stream {
    /// First block of the stream.
    start: u64,
    /// One past the last block read.
    next: u64,
    /// One past the last block read ahead.
    ahead: u64,
    /// Last use, for replacement.
    tick: u64,
}

/// The streams of one archive.
#[derive(Debug, Default)]
pub struct Streams {
    state: Mutex<(Vec<Stream>, u64)>,
}

impl Streams {
    /// Records a read of blocks `first..=last` of an archive of `blocks` blocks; returns the
    /// blocks to read ahead now (empty when none).
    pub fn observe(&self, first: u64, last: u64, blocks: u64, depth: usize) -> Range<u64> {
        if depth == 0 {
            return 0..0;
        }
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (streams, tick) = &mut *guard;
        *tick += 1;
        let now = *tick;
        let found = streams
            .iter_mut()
            .find(|s| first == s.next || first + 1 == s.next);
        let stream = match found {
            Some(s) => {
                s.next = s.next.max(last + 1);
                s.tick = now;
                s
            }
            None => {
                let fresh = Stream {
                    start: first,
                    next: last + 1,
                    ahead: last + 1,
                    tick: now,
                };
                if streams.len() < STREAMS {
                    streams.push(fresh);
                } else if let Some(oldest) = streams.iter_mut().min_by_key(|s| s.tick) {
                    *oldest = fresh;
                }
                return 0..0;
            }
        };
        let depth = depth as u64;
        if stream.next - stream.start < 2 || stream.ahead >= stream.next + depth.div_ceil(2) {
            return 0..0;
        }
        let from = stream.ahead.max(stream.next);
        let to = (stream.next + depth).min(blocks);
        if from >= to {
            return 0..0;
        }
        stream.ahead = to;
        from..to
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sequential_reader_gets_read_ahead_in_batches() {
        let s = Streams::default();
        assert_eq!(s.observe(0, 0, 100, 8), 0..0, "one block is not a pattern");
        assert_eq!(s.observe(0, 0, 100, 8), 0..0, "same block again");
        assert_eq!(s.observe(1, 1, 100, 8), 2..10);
        assert_eq!(s.observe(2, 2, 100, 8), 0..0, "window still ahead");
        assert_eq!(s.observe(3, 5, 100, 8), 0..0);
        assert_eq!(s.observe(6, 6, 100, 8), 10..15, "refilled at half");
        assert_eq!(
            s.observe(97, 97, 100, 8),
            0..0,
            "a jump starts a new stream"
        );
        assert_eq!(s.observe(98, 98, 100, 8), 99..100, "clipped at the end");
        assert_eq!(s.observe(99, 99, 100, 8), 0..0);
    }

    #[test]
    fn random_reads_get_no_read_ahead() {
        let s = Streams::default();
        for b in [50, 7, 93, 21, 64, 3, 88, 40, 12, 77] {
            assert_eq!(s.observe(b, b, 100, 8), 0..0);
        }
        assert_eq!(s.observe(1, 1, 100, 0), 0..0);
    }
}
