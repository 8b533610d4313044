//! Block cache benchmark: `cargo bench -p couchestor-agent --bench cache`.
//!
//! Prints, in one run, over a 4+2 archive (1 MiB shard blocks) of a generated source (256 MiB;
//! half random, half text, so about 2:1 compressible) read through 64 KiB cache blocks:
//! - latency of 4 KiB reads that hit L1 (lz4 off and on), hit L2 (L1 disabled; the segment
//!   file is in the page cache, having just been written), and miss (read from the shards);
//! - hit ratios of L1 and L2 for 4 KiB reads whose block follows a Zipf law over the whole
//!   source (ranks shuffled over the blocks), with L1 and L2 far smaller than the source.
//!
//! Files go to `COUCHESTOR_BENCH_DIR` or else Cargo's target tmp directory. Without `--bench`
//! (as `cargo test --all-targets` runs it) it does a small smoke run that checks the bytes.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use couchestor_agent::cache::{BlockCache, CacheConfig, CachedArchive};
use couchestor_agent::erasure::{self, ArchiveReader, EncodeParams};
use rand::seq::SliceRandom;
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Zipf};

const BLOCK: u64 = 64 << 10;
const READ: u64 = 4096;

struct Scale {
    source: usize,
    latency_reads: usize,
    zipf_warmup: usize,
    zipf_reads: usize,
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let scale = if full {
        Scale {
            source: 256 << 20,
            latency_reads: 200_000,
            zipf_warmup: 50_000,
            zipf_reads: 200_000,
        }
    } else {
        Scale {
            source: 8 << 20,
            latency_reads: 2_000,
            zipf_warmup: 500,
            zipf_reads: 2_000,
        }
    };
    let root = std::env::var_os("COUCHESTOR_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")));
    std::fs::create_dir_all(&root).expect("bench directory");
    let tmp = tempfile::tempdir_in(&root).expect("tempdir");
    let data = source(scale.source);
    let dirs = archive(tmp.path(), &data);
    let reader = || ArchiveReader::open(&dirs, Some("bench")).expect("open archive");
    let mib = scale.source >> 20;
    println!("Block cache benchmark: {mib} MiB source, 4+2 archive (1 MiB shard blocks),");
    println!(
        "64 KiB cache blocks, 4 KiB reads at 4 KiB-aligned offsets, files in {}",
        root.display()
    );

    let warm_blocks = (data.len() as u64 / BLOCK).min(1024);
    println!("latency of one 4 KiB read (working set {warm_blocks} blocks, read once before):");
    for (label, lz4) in [("L1 hit, lz4 off", false), ("L1 hit, lz4 on ", true)] {
        let cfg = CacheConfig {
            block_size: BLOCK as usize,
            l1_bytes: 1 << 30,
            l1_lz4: lz4,
            prefetch_blocks: 0,
            ..CacheConfig::default()
        };
        let archive = CachedArchive::open(reader(), cfg).expect("cache");
        let t = latency(&archive, &data, warm_blocks, scale.latency_reads);
        let s = archive.cache().stats().l1;
        let ratio = s.compression_ratio.unwrap_or(0.0);
        println!("  {label}: {t}   (L1 compression ratio {ratio:.2})");
    }
    let l2_dir = tmp.path().join("l2");
    {
        let cfg = CacheConfig {
            block_size: BLOCK as usize,
            l1_bytes: 0,
            l2_dir: Some(l2_dir.clone()),
            l2_bytes: 4 << 30,
            prefetch_blocks: 0,
            ..CacheConfig::default()
        };
        let archive = CachedArchive::open(reader(), cfg).expect("cache");
        let t = latency(&archive, &data, warm_blocks, scale.latency_reads);
        let s = archive.cache().stats().l2.expect("l2").level;
        assert_eq!(
            s.hits as usize, scale.latency_reads,
            "every timed read hits L2"
        );
        let ratio = s.compression_ratio.unwrap_or(0.0);
        println!("  L2 hit (page cache warm): {t}   (zstd-3 compression ratio {ratio:.2})");
    }
    {
        let cfg = CacheConfig {
            block_size: BLOCK as usize,
            l1_bytes: 0,
            prefetch_blocks: 0,
            ..CacheConfig::default()
        };
        let archive = CachedArchive::open(reader(), cfg).expect("cache");
        let t = latency(&archive, &data, warm_blocks, scale.latency_reads / 20);
        println!("  miss, read from the shards (page cache warm): {t}");
    }
    for exponent in [0.8, 1.0, 1.2] {
        zipf(
            &reader,
            &data,
            &tmp.path().join(format!("z{exponent}")),
            exponent,
            &scale,
        );
    }
    if !full {
        println!(
            "smoke run passed (run `cargo bench -p couchestor-agent --bench cache` to measure)"
        );
    }
}

/// Half random, half repetitive text, in 4 KiB pieces.
fn source(size: usize) -> Vec<u8> {
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let mut data = vec![0u8; size];
    for (n, chunk) in data.chunks_mut(4096).enumerate() {
        if n % 2 == 0 {
            rng.fill_bytes(chunk);
        } else {
            let line = format!("chunk {n} of the benchmark source, fairly compressible text; ");
            for (b, c) in chunk.iter_mut().zip(line.bytes().cycle()) {
                *b = c;
            }
        }
    }
    data
}

fn archive(root: &Path, data: &[u8]) -> Vec<PathBuf> {
    let input = root.join("source.img");
    std::fs::write(&input, data).expect("write source");
    let dirs: Vec<PathBuf> = (0..6).map(|i| root.join(format!("shard{i}"))).collect();
    for d in &dirs {
        std::fs::create_dir(d).expect("shard dir");
    }
    let params = EncodeParams {
        archive_id: Some("bench".into()),
        ..EncodeParams::default()
    };
    erasure::encode(&input, &dirs, &params).expect("encode");
    dirs
}

/// Reads blocks `0..blocks` once, then times `n` random 4 KiB reads inside them; returns
/// "median …, p99 …, mean …".
fn latency(archive: &CachedArchive, data: &[u8], blocks: u64, n: usize) -> String {
    for b in 0..blocks {
        archive.read_range(b * BLOCK, BLOCK).expect("warm-up read");
    }
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let off = rng.random_range(0..blocks * BLOCK / READ) * READ;
        let start = Instant::now();
        let got = archive.read_range(off, READ).expect("read");
        times.push(start.elapsed());
        assert!(got[..] == data[off as usize..(off + READ) as usize]);
    }
    times.sort();
    let mean = times.iter().sum::<Duration>() / n as u32;
    format!(
        "median {:>7.2} µs, p99 {:>7.2} µs, mean {:>7.2} µs",
        us(times[n / 2]),
        us(times[n * 99 / 100]),
        us(mean)
    )
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Hit ratios under a Zipf(`exponent`) choice of block (4 KiB read at a random offset in it).
fn zipf(
    reader: &dyn Fn() -> ArchiveReader,
    data: &[u8],
    l2_dir: &Path,
    exponent: f64,
    scale: &Scale,
) {
    let blocks = data.len() as u64 / BLOCK;
    let (l1_bytes, l2_bytes) = (blocks * BLOCK / 32, blocks * BLOCK / 8);
    let cfg = CacheConfig {
        block_size: BLOCK as usize,
        l1_bytes,
        l2_dir: Some(l2_dir.to_path_buf()),
        l2_bytes,
        prefetch_blocks: 0,
        ..CacheConfig::default()
    };
    let cache = Arc::new(BlockCache::open(cfg).expect("cache"));
    let archive = CachedArchive::new(reader(), cache.clone());
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut rank_to_block: Vec<u64> = (0..blocks).collect();
    rank_to_block.shuffle(&mut rng);
    let dist = Zipf::new(blocks as f64, exponent).expect("zipf");
    let pick = |rng: &mut ChaCha8Rng| {
        let rank = dist.sample(rng) as u64 - 1;
        rank_to_block[rank as usize] * BLOCK + rng.random_range(0..BLOCK / READ) * READ
    };
    for _ in 0..scale.zipf_warmup {
        let off = pick(&mut rng);
        archive.read_range(off, READ).expect("read");
    }
    let before = cache.session_stats();
    for _ in 0..scale.zipf_reads {
        let off = pick(&mut rng);
        let got = archive.read_range(off, READ).expect("read");
        assert!(got[..] == data[off as usize..(off + READ) as usize]);
    }
    let after = cache.session_stats();
    let (l1, l2) = (&after.l1, &after.l2.as_ref().expect("l2").level);
    let (l1b, l2b) = (&before.l1, &before.l2.as_ref().expect("l2").level);
    let reads = scale.zipf_reads as f64;
    let l1_hits = (l1.hits - l1b.hits) as f64;
    let l2_hits = (l2.hits - l2b.hits) as f64;
    // The best any cache of L1's (or L1 + L2's) size in blocks could do: hold the hottest.
    let h = |k: u64| (1..=k).map(|r| (r as f64).powf(-exponent)).sum::<f64>();
    let total = h(blocks);
    let l1_blocks = l1_bytes / BLOCK;
    println!(
        "Zipf s={exponent}: {blocks} blocks, L1 {:.1} MiB ({l1_blocks} blocks), L2 {:.1} MiB \
         on disk ({} blocks held): L1 hits {:.1} %, L2 hits {:.1} % of reads, total {:.1} % \
         (ideal static cache of L1's blocks {:.1} %, of L2's {:.1} %)",
        l1_bytes as f64 / 1048576.0,
        l2_bytes as f64 / 1048576.0,
        l2.entries,
        100.0 * l1_hits / reads,
        100.0 * l2_hits / reads,
        100.0 * (l1_hits + l2_hits) / reads,
        100.0 * h(l1_blocks) / total,
        100.0 * h(l2.entries.min(blocks)) / total,
    );
}
