//! L1: the in-memory level, a size-bounded `quick_cache` (S3-FIFO-like eviction, sharded
//! locks) weighted by the bytes each block occupies; blocks optionally lz4-compressed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use quick_cache::sync::{Cache, EntryAction, EntryResult};
use quick_cache::{DefaultHashBuilder, Lifecycle, OptionsBuilder, Weighter};

use super::key::BlockKey;
use super::stats::{LevelCounters, bump};

/// Bytes charged per entry on top of its data (key, map slot, allocation headers).
pub const ENTRY_OVERHEAD: u64 = 128;

/// One block held in memory.
#[derive(Debug)]
pub struct Entry {
    /// The block, or its lz4 block encoding.
    data: Vec<u8>,
    /// Decoded length.
    raw_len: usize,
    /// Whether `data` is lz4.
    lz4: bool,
    /// Read ahead and not yet read.
    prefetched: AtomicBool,
}

impl Entry {
    /// The block, when it is stored uncompressed.
    pub fn raw(&self) -> Option<&[u8]> {
        (!self.lz4).then_some(&self.data[..])
    }

    /// The block decoded from lz4 (length-checked), when it is stored compressed.
    pub fn decode_lz4(&self) -> Option<Vec<u8>> {
        if !self.lz4 {
            return None;
        }
        let raw = lz4_flex::block::decompress(&self.data, self.raw_len).ok()?;
        (raw.len() == self.raw_len).then_some(raw)
    }
}

#[derive(Clone)]
struct ByBytes;

impl Weighter<BlockKey, Arc<Entry>> for ByBytes {
    fn weight(&self, _key: &BlockKey, val: &Arc<Entry>) -> u64 {
        val.data.len() as u64 + ENTRY_OVERHEAD
    }
}

/// Keeps the level's counters right when quick_cache evicts.
#[derive(Clone)]
struct Counting(Arc<LevelCounters>);

impl Lifecycle<BlockKey, Arc<Entry>> for Counting {
    type RequestState = ();

    fn on_evict(&self, _state: &mut (), _key: BlockKey, val: Arc<Entry>) {
        self.0
            .removed(val.data.len() as u64, val.raw_len as u64, true);
    }
}

type Map = Cache<BlockKey, Arc<Entry>, ByBytes, DefaultHashBuilder, Counting>;

/// The in-memory level.
pub struct L1 {
    map: Map,
    lz4: bool,
    counters: Arc<LevelCounters>,
}

impl std::fmt::Debug for L1 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("L1")
            .field("capacity", &self.map.capacity())
            .field("weight", &self.map.weight())
            .field("lz4", &self.lz4)
            .finish()
    }
}

impl L1 {
    /// A level holding at most `bytes` (data plus [`ENTRY_OVERHEAD`] per block) of blocks of
    /// up to `block_size` bytes.
    pub fn new(bytes: u64, block_size: usize, lz4: bool, counters: Arc<LevelCounters>) -> Self {
        let per_block = block_size as u64 + ENTRY_OVERHEAD;
        let items = (bytes / per_block).max(1);
        // quick_cache splits the capacity between shards and refuses an entry heavier than
        // a shard's share: keep at least 16 blocks per shard.
        let shards = (items / 16).clamp(1, 64).next_power_of_two() as usize;
        let options = OptionsBuilder::new()
            .estimated_items_capacity(items as usize)
            .weight_capacity(bytes)
            .shards(shards)
            .build()
            .expect("the options set every required field");
        let map = Map::with_options(
            options,
            ByBytes,
            DefaultHashBuilder::default(),
            Counting(counters.clone()),
        );
        L1 { map, lz4, counters }
    }

    /// Looks `key` up, counting a hit or a miss. On a hit, also says whether the block had
    /// been read ahead and is read for the first time.
    pub fn get(&self, key: &BlockKey) -> Option<(Arc<Entry>, bool)> {
        match self.map.get(key) {
            Some(entry) => {
                bump(&self.counters.hits);
                let first_use = entry.prefetched.swap(false, Ordering::Relaxed);
                Some((entry, first_use))
            }
            None => {
                bump(&self.counters.misses);
                None
            }
        }
    }

    /// Whether `key` is held (no counting, no effect on eviction).
    pub fn contains(&self, key: &BlockKey) -> bool {
        self.map.peek(key).is_some()
    }

    /// Stores a block unless it is already held (or being stored by another thread); its
    /// contents are fully determined by the key, so there is nothing to replace.
    pub fn insert(&self, key: BlockKey, raw: &[u8], prefetched: bool) {
        let result = self
            .map
            .entry(&key, Some(std::time::Duration::ZERO), |_, _| {
                EntryAction::Retain(())
            });
        let EntryResult::Vacant(guard) = result else {
            return;
        };
        let data = if self.lz4 {
            lz4_flex::block::compress(raw)
        } else {
            raw.to_vec()
        };
        let entry = Arc::new(Entry {
            raw_len: raw.len(),
            lz4: self.lz4,
            prefetched: AtomicBool::new(prefetched),
            data,
        });
        let (stored, raw_len) = (entry.data.len() as u64, raw.len() as u64);
        // Count before inserting: an entry too heavy to be admitted is reported evicted at once.
        self.counters.added(stored, raw_len);
        if guard.insert(entry).is_err() {
            self.counters.removed(stored, raw_len, false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::key::ArchiveDigest;

    fn key(index: u64) -> BlockKey {
        BlockKey {
            archive: ArchiveDigest([1; 32]),
            block_size: 4096,
            index,
        }
    }

    #[test]
    fn bounded_by_bytes_and_counts_evictions() {
        for lz4 in [false, true] {
            let counters = Arc::new(LevelCounters::default());
            let l1 = L1::new(64 * (4096 + ENTRY_OVERHEAD), 4096, lz4, counters.clone());
            let block: Vec<u8> = (0..4096u32).map(|i| (i * 7 % 251) as u8).collect();
            for i in 0..1000 {
                l1.insert(key(i), &block, false);
            }
            let s = counters.snapshot();
            assert_eq!(s.inserts, 1000);
            assert_eq!(s.inserts - s.evictions, s.entries);
            assert!(l1.map.weight() <= l1.map.capacity());
            assert_eq!(s.entries, l1.map.len() as u64);
            assert_eq!(s.stored_bytes + s.entries * ENTRY_OVERHEAD, l1.map.weight());
            assert_eq!(s.raw_bytes, s.entries * 4096);
            let (held, _) = (0..1000)
                .find_map(|i| l1.get(&key(i)))
                .expect("something is held");
            let got = held.raw().map(<[u8]>::to_vec).or_else(|| held.decode_lz4());
            assert_eq!(got.unwrap(), block);
            if lz4 {
                assert!(s.stored_bytes < s.raw_bytes);
            }
        }
    }

    #[test]
    fn a_second_insert_of_a_key_is_ignored() {
        let counters = Arc::new(LevelCounters::default());
        let l1 = L1::new(1 << 20, 4096, false, counters.clone());
        l1.insert(key(1), &[1; 100], true);
        l1.insert(key(1), &[1; 100], false);
        assert_eq!(counters.snapshot().inserts, 1);
        assert!(
            l1.get(&key(1)).unwrap().1,
            "first read of a prefetched block"
        );
        assert!(!l1.get(&key(1)).unwrap().1);
    }
}
