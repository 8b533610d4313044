//! [`CachedArchive`]: an erasure-coded archive read through the block cache.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use super::key::{ArchiveDigest, BlockKey, block_len};
use super::prefetch::Streams;
use super::store::Block;
use super::{BlockCache, CacheConfig, CacheError};
use crate::erasure::{ArchiveReader, EcError};

/// An archive whose reads go L1 → L2 → shards. A block read from the shards is stored in
/// both levels; an L2 hit is promoted to L1. Sequential readers get the next blocks read
/// ahead. Send + Sync: share it between threads (e.g. in an `Arc`).
#[derive(Debug)]
pub struct CachedArchive {
    reader: ArchiveReader,
    cache: Arc<BlockCache>,
    digest: ArchiveDigest,
    size: u64,
    block_size: u32,
    blocks: u64,
    streams: Streams,
}

impl CachedArchive {
    /// Reads `reader`'s archive through `cache` (which several archives may share).
    pub fn new(reader: ArchiveReader, cache: Arc<BlockCache>) -> Self {
        let digest = ArchiveDigest::of(reader.manifest());
        let size = reader.manifest().source_size;
        let block_size = cache.block_size();
        CachedArchive {
            reader,
            cache,
            digest,
            size,
            block_size,
            blocks: size.div_ceil(u64::from(block_size)),
            streams: Streams::default(),
        }
    }

    /// Reads `reader`'s archive through a cache of its own, opened with `config`.
    pub fn open(reader: ArchiveReader, config: CacheConfig) -> Result<Self, CacheError> {
        Ok(Self::new(reader, Arc::new(BlockCache::open(config)?)))
    }

    /// Size of the archived source in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The archive's content identity (part of every cache key).
    pub fn digest(&self) -> ArchiveDigest {
        self.digest
    }

    /// The cache it reads through.
    pub fn cache(&self) -> &Arc<BlockCache> {
        &self.cache
    }

    /// The underlying archive.
    pub fn reader(&self) -> &ArchiveReader {
        &self.reader
    }

    fn key(&self, index: u64) -> BlockKey {
        BlockKey {
            archive: self.digest,
            block_size: self.block_size,
            index,
        }
    }

    /// Reads `len` bytes of the source at `offset`. Fails with [`EcError::Range`] (wrapped)
    /// when the range is outside the archive, or when the shards cannot provide a block.
    pub fn read_range(&self, offset: u64, len: u64) -> Result<Vec<u8>, CacheError> {
        let end = offset.checked_add(len).filter(|&e| e <= self.size);
        let Some(end) = end else {
            return Err(EcError::Range {
                offset,
                len,
                size: self.size,
            }
            .into());
        };
        if len == 0 {
            return Ok(Vec::new());
        }
        let bs = u64::from(self.block_size);
        let (first, last) = (offset / bs, (end - 1) / bs);
        let mut blocks: Vec<Option<Block>> = (first..=last)
            .map(|i| {
                self.cache
                    .get(&self.key(i), block_len(self.size, self.block_size, i))
            })
            .collect();
        // Fetch each run of missing blocks with one archive read.
        let mut i = 0;
        while i < blocks.len() {
            if blocks[i].is_some() {
                i += 1;
                continue;
            }
            let mut j = i;
            while j + 1 < blocks.len() && blocks[j + 1].is_none() {
                j += 1;
            }
            let fetched = self.fetch(first + i as u64, first + j as u64 + 1, false)?;
            for (slot, block) in blocks[i..=j].iter_mut().zip(fetched) {
                *slot = Some(Block::Owned(block));
            }
            i = j + 1;
        }
        let mut out = Vec::with_capacity(len as usize);
        for (n, block) in blocks.iter().enumerate() {
            let start = (first + n as u64) * bs;
            let data = block.as_ref().map(Block::as_slice).unwrap_or_default();
            let from = offset.max(start) - start;
            let to = end.min(start + data.len() as u64) - start;
            out.extend_from_slice(&data[from as usize..to as usize]);
        }
        debug_assert_eq!(out.len() as u64, len);
        let ahead = self.streams.observe(
            first,
            last,
            self.blocks,
            self.cache.config().prefetch_blocks,
        );
        if !ahead.is_empty() {
            self.read_ahead(ahead.start, ahead.end);
        }
        Ok(out)
    }

    /// Reads blocks `from..to` from the shards and stores them in the cache.
    fn fetch(&self, from: u64, to: u64, prefetched: bool) -> Result<Vec<Vec<u8>>, CacheError> {
        let bs = u64::from(self.block_size);
        let start = from * bs;
        let stop = (to * bs).min(self.size);
        let data = self.reader.read_range(start, stop - start)?;
        let blocks: Vec<Vec<u8>> = data.chunks(bs as usize).map(<[u8]>::to_vec).collect();
        for (n, block) in blocks.iter().enumerate() {
            self.cache
                .fill(self.key(from + n as u64), block, prefetched);
        }
        Ok(blocks)
    }

    /// Reads ahead the blocks of `from..to` that no level holds, synchronously, in runs;
    /// a failure is only logged (the reader will meet it again if it gets there).
    fn read_ahead(&self, from: u64, to: u64) {
        let mut b = from;
        while b < to {
            if self.cache.contains(&self.key(b)) {
                b += 1;
                continue;
            }
            let mut e = b + 1;
            while e < to && !self.cache.contains(&self.key(e)) {
                e += 1;
            }
            match self.fetch(b, e, true) {
                Ok(_) => {
                    self.cache.prefetch.issued.fetch_add(e - b, Relaxed);
                }
                Err(err) => tracing::warn!("read-ahead of blocks {b}..{e}: {err}"),
            }
            b = e;
        }
    }
}
