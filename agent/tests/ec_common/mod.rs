//! Helpers shared by the erasure-coding safety tests: inputs, shard directories, hashing.
#![allow(dead_code)]

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tempfile::TempDir;

/// The agent binary built for these tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_couchestor-agent");

/// A scratch area with `n` shard directories `d0..d{n-1}`.
pub struct Area {
    /// Keeps the directory alive.
    pub tmp: TempDir,
    /// The shard directories, in shard order.
    pub dirs: Vec<PathBuf>,
}

impl Area {
    /// A new area with `n` shard directories.
    pub fn new(n: usize) -> Area {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dirs: Vec<PathBuf> = (0..n).map(|i| tmp.path().join(format!("d{i}"))).collect();
        for d in &dirs {
            fs::create_dir(d).expect("create shard dir");
        }
        Area { tmp, dirs }
    }

    /// A path inside the area.
    pub fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// `--shard-dir` arguments for the binary.
    pub fn dir_args(&self) -> Vec<String> {
        self.dirs
            .iter()
            .flat_map(|d| ["--shard-dir".to_string(), d.display().to_string()])
            .collect()
    }
}

/// Writes `size` seeded random bytes to `path` and returns them.
pub fn random_file(path: &Path, size: usize, seed: u64) -> Vec<u8> {
    let mut data = vec![0u8; size];
    ChaCha8Rng::seed_from_u64(seed).fill_bytes(&mut data);
    fs::write(path, &data).expect("write input");
    data
}

/// Writes a `size`-byte file quickly: one random MiB repeated, each copy stamped with its
/// number so that no two MiB are equal.
pub fn patterned_file(path: &Path, size: u64, seed: u64) {
    let mut chunk = vec![0u8; 1 << 20];
    ChaCha8Rng::seed_from_u64(seed).fill_bytes(&mut chunk);
    let mut file = File::create(path).expect("create input");
    let mut written = 0u64;
    let mut n = 0u64;
    while written < size {
        chunk[..8].copy_from_slice(&n.to_le_bytes());
        let len = (size - written).min(chunk.len() as u64) as usize;
        file.write_all(&chunk[..len]).expect("write input");
        written += len as u64;
        n += 1;
    }
    file.sync_all().expect("sync input");
}

/// SHA-256 of a file, hex.
pub fn sha256_file(path: &Path) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut file = File::open(path).expect("open for hashing");
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).expect("read for hashing");
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
    }
    ctx.finish()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Every file under `root`, recursively.
pub fn files_under(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir(root) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// Manifests under `root` whose state is `complete`.
pub fn complete_manifests(root: &Path) -> Vec<PathBuf> {
    files_under(root)
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n == "manifest.json"))
        .filter(|p| fs::read_to_string(p).is_ok_and(|t| t.contains("\"state\": \"complete\"")))
        .collect()
}
