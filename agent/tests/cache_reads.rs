//! Reads through the block cache over a real 4+2 archive: byte-exact against the source for
//! random ranges in every configuration, re-encoded archives never serve old bytes, size
//! bounds hold, read-ahead turns a sequential scan into hits, and counters are exact.

mod cache_common;

use std::fs;
use std::sync::Arc;

use cache_common::{Area, BLOCKS, BS, SIZE, config, mixed_data, segments, with_l2};
use couchestor_agent::cache::{BlockCache, CacheConfig, CacheError, CachedArchive};
use couchestor_agent::erasure::EcError;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Reads `n` random ranges (up to 3 blocks long, some empty, some at the end) and compares.
fn check_random_ranges(archive: &CachedArchive, data: &[u8], n: usize, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for _ in 0..n {
        let offset = rng.random_range(0..=data.len() as u64);
        let max = (data.len() as u64 - offset).min(3 * BS as u64);
        let len = rng.random_range(0..=max);
        let got = archive
            .read_range(offset, len)
            .expect("read through the cache");
        assert!(
            got == data[offset as usize..(offset + len) as usize],
            "wrong bytes at {offset}+{len}"
        );
    }
    let tail = archive.read_range(data.len() as u64 - 1, 1).unwrap();
    assert_eq!(tail, [data[data.len() - 1]]);
}

#[test]
fn random_ranges_match_the_source_in_every_configuration() {
    let area = Area::new();
    let data = mixed_data(SIZE, 1);
    area.encode(&data);
    let l2 = area.path("l2");
    let configs = [
        ("L1 only", config(64 << 20)),
        (
            "L1 lz4 + L2",
            CacheConfig {
                l1_lz4: true,
                ..with_l2(64 << 20, &l2)
            },
        ),
        ("L2 only", with_l2(0, &l2)),
        ("tiny L1 + read-ahead", {
            let mut c = config(5 * BS as u64);
            c.prefetch_blocks = 8;
            c
        }),
        ("nothing cached", config(0)),
    ];
    for (name, cfg) in configs {
        let archive = CachedArchive::open(area.reader(), cfg).expect(name);
        assert_eq!(archive.size(), SIZE as u64);
        check_random_ranges(&archive, &data, 300, 7);
        // A second pass is served (at least partly) from the cache.
        check_random_ranges(&archive, &data, 300, 7);
        let all = archive.read_range(0, SIZE as u64).unwrap();
        assert!(all == data, "{name}: whole read differs");
    }
}

#[test]
fn ranges_outside_the_archive_are_refused() {
    let area = Area::new();
    area.encode(&mixed_data(SIZE, 2));
    let archive = CachedArchive::open(area.reader(), config(1 << 20)).unwrap();
    for (offset, len) in [(SIZE as u64, 1), (0, SIZE as u64 + 1), (u64::MAX, 2)] {
        let err = archive.read_range(offset, len).unwrap_err();
        assert!(
            matches!(err, CacheError::Archive(EcError::Range { .. })),
            "{offset}+{len}: {err}"
        );
    }
    assert_eq!(
        archive.read_range(SIZE as u64, 0).unwrap(),
        Vec::<u8>::new()
    );
}

#[test]
fn a_reencoded_archive_never_serves_old_bytes() {
    let area = Area::new();
    let l2 = area.path("l2");
    let old = mixed_data(SIZE, 3);
    area.encode(&old);
    let cache = Arc::new(BlockCache::open(with_l2(64 << 20, &l2)).unwrap());
    let before = CachedArchive::new(area.reader(), cache.clone());
    assert!(before.read_range(0, SIZE as u64).unwrap() == old);

    // Same id, same size, new contents; L1 and L2 both hold every old block.
    let mut new = old.clone();
    for b in new.iter_mut().step_by(4093) {
        *b ^= 0x5a;
    }
    area.encode(&new);
    let after = CachedArchive::new(area.reader(), cache.clone());
    assert_ne!(before.digest(), after.digest());
    assert!(after.read_range(0, SIZE as u64).unwrap() == new);
    check_random_ranges(&after, &new, 200, 4);
    // The reader opened before the re-encode still reads its own (old) files.
    assert!(before.read_range(0, SIZE as u64).unwrap() == old);
    drop((before, after, cache));

    // After a restart, L2 holds blocks of both encodings; only the new ones are served.
    let cache = Arc::new(BlockCache::open(with_l2(0, &l2)).unwrap());
    let again = CachedArchive::new(area.reader(), cache.clone());
    assert!(again.read_range(0, SIZE as u64).unwrap() == new);
    let l2s = cache.session_stats().l2.unwrap();
    assert_eq!((l2s.level.hits, l2s.level.misses), (BLOCKS, 0));
    assert_eq!(l2s.level.entries, 2 * BLOCKS);
}

#[test]
fn size_bounds_are_respected() {
    let area = Area::new();
    let data = mixed_data(SIZE, 5);
    area.encode(&data);
    let l2 = area.path("l2");
    let l1_bytes = 8 * BS as u64;
    let l2_bytes = 256 << 10;
    let cfg = CacheConfig {
        l2_bytes,
        ..with_l2(l1_bytes, &l2)
    };
    let cache = Arc::new(BlockCache::open(cfg).unwrap());
    let archive = CachedArchive::new(area.reader(), cache.clone());
    for pass in 0..2 {
        for b in 0..BLOCKS {
            let off = b * BS as u64;
            let len = (SIZE as u64 - off).min(BS as u64);
            assert!(archive.read_range(off, len).unwrap() == data[off as usize..][..len as usize]);
            let on_disk: u64 = segments(&l2)
                .iter()
                .map(|p| fs::metadata(p).unwrap().len())
                .sum();
            assert!(
                on_disk <= l2_bytes,
                "pass {pass} block {b}: {on_disk} bytes on disk"
            );
            let s = cache.stats();
            assert!(s.l1.stored_bytes <= l1_bytes);
            assert!(s.l2.as_ref().unwrap().extra.disk_bytes == on_disk);
        }
    }
    let s = cache.stats();
    let l2s = s.l2.unwrap();
    assert!(s.l1.evictions > 0 && l2s.level.evictions > 0);
    assert_eq!(s.l1.entries, s.l1.inserts - s.l1.evictions);
    assert_eq!(l2s.level.entries, l2s.level.inserts - l2s.level.evictions);
    assert!(l2s.level.entries < BLOCKS);
    check_random_ranges(&archive, &data, 200, 5);
}

#[test]
fn read_ahead_turns_a_sequential_scan_into_hits() {
    let area = Area::new();
    let data = mixed_data(SIZE, 6);
    area.encode(&data);
    let scan = |prefetch: usize| {
        let mut cfg = config(64 << 20);
        cfg.prefetch_blocks = prefetch;
        let archive = CachedArchive::open(area.reader(), cfg).unwrap();
        let mut out = Vec::new();
        let mut off = 0u64;
        while off < SIZE as u64 {
            let len = (SIZE as u64 - off).min(4096);
            out.extend(archive.read_range(off, len).unwrap());
            off += len;
        }
        assert!(out == data);
        archive.cache().stats()
    };
    let without = scan(0);
    assert_eq!(without.l1.misses, BLOCKS);
    assert_eq!(without.prefetch.issued, 0);
    // Blocks 0 and 1 are read on demand (two blocks make a stream), the rest ahead of time.
    let with = scan(8);
    assert_eq!(with.l1.misses, 2);
    assert_eq!(with.prefetch.issued, BLOCKS - 2);
    assert_eq!(with.prefetch.used, BLOCKS - 2);
    // 4 KiB reads of 16 KiB blocks: 4 lookups per block (the last block is shorter).
    let reads = (SIZE as u64).div_ceil(4096);
    assert_eq!(with.l1.hits + with.l1.misses, reads);
}

#[test]
fn counters_are_exact_for_a_scripted_sequence() {
    let area = Area::new();
    area.encode(&mixed_data(SIZE, 7));
    let l2 = area.path("l2");
    let bs = BS as u64;
    {
        let archive = CachedArchive::open(area.reader(), with_l2(64 << 20, &l2)).unwrap();
        archive.read_range(0, 100).unwrap(); // block 0: L1 miss, L2 miss, filled
        archive.read_range(0, 100).unwrap(); // block 0: L1 hit
        archive.read_range(bs - 10, 20).unwrap(); // 0: L1 hit; 1: L1 miss, L2 miss
        archive.read_range(5 * bs, bs).unwrap(); // 5: L1 miss, L2 miss
        let s = archive.cache().stats();
        let (l1, l2s) = (&s.l1, &s.l2.as_ref().unwrap().level);
        assert_eq!(
            (l1.hits, l1.misses, l1.inserts, l1.evictions, l1.entries),
            (2, 3, 3, 0, 3)
        );
        assert_eq!((l1.raw_bytes, l1.stored_bytes), (3 * bs, 3 * bs));
        assert_eq!(
            (
                l2s.hits,
                l2s.misses,
                l2s.inserts,
                l2s.evictions,
                l2s.entries
            ),
            (0, 3, 3, 0, 3)
        );
        assert_eq!(l2s.raw_bytes, 3 * bs);
        assert!(l2s.compression_ratio.unwrap() > 1.5, "{l2s:?}");
        assert_eq!(s.prefetch.issued, 0);
    }
    // A new process: blocks 0 and 1 come from L2 and are promoted to L1.
    let archive = CachedArchive::open(area.reader(), with_l2(64 << 20, &l2)).unwrap();
    archive.read_range(0, 2 * bs).unwrap();
    archive.read_range(bs, 1).unwrap(); // L1 hit
    let session = archive.cache().session_stats();
    let (l1, l2s) = (&session.l1, &session.l2.as_ref().unwrap().level);
    assert_eq!((l1.hits, l1.misses, l1.inserts), (1, 2, 2));
    assert_eq!(
        (l2s.hits, l2s.misses, l2s.inserts, l2s.entries),
        (2, 0, 0, 3)
    );
    let total = archive.cache().stats().l2.unwrap().level;
    assert_eq!((total.hits, total.misses, total.inserts), (2, 3, 3));
    assert_eq!(total.hit_ratio, Some(0.4));
}

#[test]
fn concurrent_readers_get_exact_bytes() {
    fn shareable<T: Send + Sync>() {}
    shareable::<CachedArchive>();
    shareable::<BlockCache>();
    let area = Area::new();
    let data = Arc::new(mixed_data(SIZE, 8));
    area.encode(&data);
    let mut cfg = CacheConfig {
        l1_lz4: true,
        ..with_l2(12 * BS as u64, &area.path("l2"))
    };
    cfg.prefetch_blocks = 4;
    let archive = Arc::new(CachedArchive::open(area.reader(), cfg).unwrap());
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let (archive, data) = (archive.clone(), data.clone());
            std::thread::spawn(move || check_random_ranges(&archive, &data, 150, 100 + t))
        })
        .collect();
    for t in threads {
        t.join().expect("reader thread");
    }
}
