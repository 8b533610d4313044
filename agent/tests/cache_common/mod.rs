//! Helpers shared by the block-cache tests: an EC archive of known bytes and cache configs.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};

use couchestor_agent::cache::CacheConfig;
use couchestor_agent::erasure::{self, ArchiveReader, EncodeParams};
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tempfile::TempDir;

/// Cache block size used by the tests (16 KiB).
pub const BS: usize = 16 << 10;
/// Source size: ~1.2 MiB, not a multiple of the block, stripe or cache block size.
pub const SIZE: usize = (1 << 20) + 200_001;
/// Cache blocks of the source.
pub const BLOCKS: u64 = SIZE.div_ceil(BS) as u64;

/// A scratch area: 6 shard directories and room for cache directories.
pub struct Area {
    /// Keeps the directory alive.
    pub tmp: TempDir,
    /// The shard directories.
    pub dirs: Vec<PathBuf>,
}

impl Area {
    /// A new area.
    pub fn new() -> Area {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dirs: Vec<PathBuf> = (0..6).map(|i| tmp.path().join(format!("d{i}"))).collect();
        for d in &dirs {
            fs::create_dir(d).expect("shard dir");
        }
        Area { tmp, dirs }
    }

    /// A path inside the area.
    pub fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// Encodes `data` as archive `vol` (4+2, 16 KiB shard blocks), replacing an earlier one.
    pub fn encode(&self, data: &[u8]) {
        let input = self.path("vol.img");
        fs::write(&input, data).expect("write source");
        let params = EncodeParams {
            k: 4,
            m: 2,
            block_size: 16 << 10,
            archive_id: Some("vol".into()),
            force: true,
        };
        erasure::encode(&input, &self.dirs, &params).expect("encode");
    }

    /// Opens archive `vol`.
    pub fn reader(&self) -> ArchiveReader {
        ArchiveReader::open(&self.dirs, Some("vol")).expect("open archive")
    }
}

/// `size` bytes, half random and half repetitive text (so zstd and lz4 have work to do).
pub fn mixed_data(size: usize, seed: u64) -> Vec<u8> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut data = vec![0u8; size];
    for (n, chunk) in data.chunks_mut(4096).enumerate() {
        if n % 2 == 0 {
            rng.fill_bytes(chunk);
        } else {
            let line = format!(
                "seed {seed} chunk {n} the quick brown fox {} ",
                rng.random::<u16>()
            );
            for (b, c) in chunk.iter_mut().zip(line.bytes().cycle()) {
                *b = c;
            }
        }
    }
    data
}

/// L1 of `l1` bytes (no lz4), no L2, no read-ahead.
pub fn config(l1: u64) -> CacheConfig {
    CacheConfig {
        block_size: BS,
        l1_bytes: l1,
        l1_lz4: false,
        l2_dir: None,
        l2_bytes: 0,
        zstd_level: 3,
        prefetch_blocks: 0,
    }
}

/// `config(l1)` with an L2 of 64 MiB in `dir`.
pub fn with_l2(l1: u64, dir: &Path) -> CacheConfig {
    CacheConfig {
        l2_dir: Some(dir.to_path_buf()),
        l2_bytes: 64 << 20,
        ..config(l1)
    }
}

/// The segment files of a cache directory, oldest first.
pub fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut segs: Vec<PathBuf> = fs::read_dir(dir)
        .expect("list cache dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("seg-"))
        })
        .collect();
    segs.sort();
    segs
}
