//! `couchestor-agent cache stats` through the built binary: JSON and table reports of a
//! cache written by another process, and clear errors (exit 1) that modify nothing.

mod cache_common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use cache_common::{Area, BLOCKS, SIZE, mixed_data, with_l2};
use couchestor_agent::cache::CachedArchive;

const BIN: &str = env!("CARGO_BIN_EXE_couchestor-agent");

fn stats(dir: &Path, output: &str) -> Output {
    Command::new(BIN)
        .args(["cache", "stats", "--cache-dir"])
        .arg(dir)
        .args(["--output", output])
        .output()
        .expect("run the agent")
}

/// Every file under `dir` with its contents.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files: Vec<(PathBuf, Vec<u8>)> = fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| (e.path(), fs::read(e.path()).unwrap_or_default()))
        .collect();
    files.sort();
    files
}

fn used_cache() -> (Area, PathBuf) {
    let area = Area::new();
    let data = mixed_data(SIZE, 11);
    area.encode(&data);
    let dir = area.path("l2");
    let archive = CachedArchive::open(area.reader(), with_l2(64 << 20, &dir)).unwrap();
    assert!(archive.read_range(0, SIZE as u64).unwrap() == data);
    archive.read_range(0, 10).unwrap();
    drop(archive); // persists the counters
    (area, dir)
}

#[test]
fn stats_reports_the_index_and_the_persisted_counters() {
    let (_area, dir) = used_cache();
    let before = snapshot(&dir);
    let out = stats(&dir, "json");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    let index = &v["index"];
    assert_eq!(index["entries"], BLOCKS);
    assert_eq!(index["segments"], 1);
    assert_eq!(index["raw_bytes"], SIZE as u64);
    assert_eq!(index["corrupt_records"], 0);
    assert_eq!(index["torn_tail_bytes"], 0);
    assert!(index["compression_ratio"].as_f64().unwrap() > 1.5);
    assert!(index["disk_bytes"].as_u64().unwrap() < SIZE as u64);
    let c = &v["counters"];
    assert_eq!(c["l2"]["inserts"], BLOCKS);
    assert_eq!(c["l2"]["misses"], BLOCKS);
    assert_eq!(c["l2"]["entries"], BLOCKS);
    assert_eq!(c["l1"]["hits"], 1);
    assert_eq!(c["l1"]["misses"], BLOCKS);
    assert_eq!(c["pid"], std::process::id());
    assert_eq!(v["format_version"], 1);

    let out = stats(&dir, "table");
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains(&format!("entries            {BLOCKS}")),
        "{text}"
    );
    assert!(text.contains("compression ratio"), "{text}");
    assert!(text.lines().any(|l| l.starts_with("L2 ")), "{text}");
    assert_eq!(snapshot(&dir), before, "cache stats modified the cache");
}

#[test]
fn a_cache_never_used_reports_no_counters() {
    let area = Area::new();
    let dir = area.path("l2");
    drop(couchestor_agent::cache::BlockCache::open(with_l2(0, &dir)).unwrap());
    fs::remove_file(dir.join("stats.json")).unwrap();
    let out = stats(&dir, "json");
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["index"]["entries"], 0);
    assert!(v["counters"].is_null());
    let out = stats(&dir, "table");
    assert!(String::from_utf8_lossy(&out.stdout).contains("none persisted yet"));
}

#[test]
fn errors_name_the_problem_exit_1_and_modify_nothing() {
    let (area, dir) = used_cache();

    let missing = area.path("nope");
    let out = stats(&missing, "json");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("nope") && err.contains("does not exist"),
        "{err}"
    );
    assert!(!missing.exists());

    let foreign = area.path("d0");
    let before = snapshot(&foreign);
    let out = stats(&foreign, "table");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not a CoucheStor block cache directory"),
        "{err}"
    );
    assert_eq!(snapshot(&foreign), before);

    fs::write(
        dir.join("stats.json"),
        "{\"format\": \"couchestor-block-cache-stats\", ",
    )
    .unwrap();
    let before = snapshot(&dir);
    let out = stats(&dir, "json");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("stats.json") && err.contains("corrupt"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
    assert_eq!(snapshot(&dir), before);

    fs::write(
        dir.join("couchestor-cache.json"),
        "{\"format\": \"couchestor-block-cache\", \"format_version\": 9}",
    )
    .unwrap();
    let out = stats(&dir, "json");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unsupported cache format version 9"), "{err}");

    let out = Command::new(BIN).args(["cache", "stats"]).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "missing --cache-dir is bad usage"
    );
}
