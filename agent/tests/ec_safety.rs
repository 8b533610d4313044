//! Safety of the 4+2 archive engine on real files: every pair of lost shards restores byte
//! for byte, corruption is found and scrubbed, random ranges read back exactly, and
//! mismatched or insufficient shard sets fail with clear errors.
//! (Crash, disk-full and CLI tests that drive the binary are in `ec_safety_process.rs`,
//! refusals in `ec_safety_errors.rs`.)

mod ec_common;

use std::fs;
use std::path::PathBuf;

use couchestor_agent::erasure::{
    self, ArchiveReader, EcError, EncodeParams, ShardState, read_range, restore, scrub, verify,
};
use ec_common::{Area, random_file};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// ~10 MiB, deliberately not a multiple of the block or stripe size.
const SIZE: usize = 10 * (1 << 20) + 12_345;

fn encoded(seed: u64) -> (Area, Vec<u8>) {
    let area = Area::new(6);
    let data = random_file(&area.path("vol.img"), SIZE, seed);
    let m = erasure::encode(&area.path("vol.img"), &area.dirs, &EncodeParams::default())
        .expect("encode");
    assert_eq!(
        (m.k, m.m, m.block_size, m.source_size),
        (4, 2, 1 << 20, SIZE as u64)
    );
    assert_eq!(m.stripes, 3);
    (area, data)
}

fn shard_file(area: &Area, i: usize) -> PathBuf {
    area.dirs[i].join("vol.img").join(format!("shard-{i}.dat"))
}

#[test]
fn every_pair_of_lost_shards_restores_byte_exact() {
    let (area, data) = encoded(1);
    let aside = area.path("aside");
    fs::create_dir(&aside).unwrap();
    for a in 0..6 {
        for b in a + 1..6 {
            // Lose shard a's file, and shard b's whole archive directory (manifest included).
            fs::rename(shard_file(&area, a), aside.join("a")).unwrap();
            fs::rename(area.dirs[b].join("vol.img"), aside.join("b")).unwrap();
            // Directory order must not matter.
            let mut dirs = area.dirs.clone();
            dirs.rotate_left((a + b) % 6);
            let target = area.path("restored");
            let report = restore(&dirs, &target, false).expect("restore with two shards lost");
            assert_eq!(report.missing_shards, vec![a, b]);
            assert!(
                fs::read(&target).unwrap() == data,
                "pair ({a}, {b}) restored wrong bytes"
            );
            let v = verify(&dirs).unwrap();
            let missing: Vec<usize> = v
                .shards
                .iter()
                .filter(|s| s.state == ShardState::Missing)
                .map(|s| s.index)
                .collect();
            assert_eq!(missing, vec![a, b]);
            assert!(v.recoverable && !v.healthy);
            fs::remove_file(&target).unwrap();
            fs::rename(aside.join("a"), shard_file(&area, a)).unwrap();
            fs::rename(aside.join("b"), area.dirs[b].join("vol.img")).unwrap();
        }
    }
    assert!(verify(&area.dirs).unwrap().healthy);
}

#[test]
fn corruption_is_detected_located_and_scrubbed() {
    let (area, data) = encoded(2);
    // Flip bytes inside block 1 of shard 3 (a data shard) and block 2 of shard 5 (parity).
    let mut bytes = fs::read(shard_file(&area, 3)).unwrap();
    bytes[(1 << 20) + 777] ^= 0xFF;
    bytes[(1 << 20) + 778] ^= 0x01;
    fs::write(shard_file(&area, 3), &bytes).unwrap();
    let mut parity = fs::read(shard_file(&area, 5)).unwrap();
    parity[2 * (1 << 20) + 5] ^= 0x80;
    fs::write(shard_file(&area, 5), &parity).unwrap();

    let report = verify(&area.dirs).unwrap();
    assert!(!report.healthy && report.recoverable);
    for s in &report.shards {
        match s.index {
            3 => assert_eq!(
                (s.state, s.corrupt_blocks.as_slice()),
                (ShardState::Damaged, &[1][..])
            ),
            5 => assert_eq!(
                (s.state, s.corrupt_blocks.as_slice()),
                (ShardState::Damaged, &[2][..])
            ),
            _ => assert_eq!(s.state, ShardState::Ok, "shard {}", s.index),
        }
    }
    // Reads around the corruption are still exact.
    let got = read_range(&area.dirs, 3 * (1 << 20), 2 << 20).unwrap();
    assert!(got == data[3 << 20..5 << 20]);

    let scrubbed = scrub(&area.dirs).unwrap();
    assert_eq!(scrubbed.repaired, vec![3, 5]);
    assert!(scrubbed.healthy);
    assert!(verify(&area.dirs).unwrap().healthy);
    let leftovers: Vec<_> = ec_common::files_under(area.tmp.path())
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let target = area.path("restored");
    restore(&area.dirs, &target, false).unwrap();
    assert!(fs::read(&target).unwrap() == data);
}

#[test]
fn scrub_rebuilds_a_replaced_empty_disk_and_a_truncated_shard() {
    let (area, data) = encoded(3);
    fs::remove_dir_all(area.dirs[1].join("vol.img")).unwrap();
    let f = fs::OpenOptions::new()
        .write(true)
        .open(shard_file(&area, 4))
        .unwrap();
    f.set_len(1 << 20).unwrap();
    let before = verify(&area.dirs).unwrap();
    assert_eq!(before.shards[1].state, ShardState::Missing);
    assert_eq!(before.shards[4].missing_blocks, vec![1, 2]);
    let after = scrub(&area.dirs).unwrap();
    assert_eq!(after.repaired, vec![1, 4]);
    assert!(after.healthy, "{after:?}");
    assert!(read_range(&area.dirs, 0, SIZE as u64).unwrap() == data);
}

#[test]
fn random_ranges_match_the_source_with_shards_missing() {
    let (area, data) = encoded(4);
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let size = SIZE as u64;
    let aside = area.path("aside");
    fs::create_dir(&aside).unwrap();
    for (round, lost) in [vec![0usize], vec![2, 5]].into_iter().enumerate() {
        for &i in &lost {
            fs::rename(shard_file(&area, i), aside.join(i.to_string())).unwrap();
        }
        let reader = ArchiveReader::open(&area.dirs, None).unwrap();
        for n in 0..100 {
            let (offset, len) = match n % 4 {
                0 => {
                    // Anywhere, up to the whole rest of the file.
                    let offset = rng.random_range(0..size);
                    (offset, rng.random_range(1..=size - offset))
                }
                1 => {
                    // Across a block (and sometimes a stripe) boundary.
                    let edge = rng.random_range(1..=(size / (1 << 20))) * (1 << 20);
                    let before = rng.random_range(1..=4096);
                    (edge - before, before + rng.random_range(1..=4096))
                }
                2 => {
                    // Ending exactly at the end of the file.
                    let len = rng.random_range(1..=3 << 20);
                    (size - len, len)
                }
                _ => (rng.random_range(0..size), rng.random_range(0..=1 << 16)),
            };
            let len = len.min(size - offset);
            let got = reader.read_range(offset, len).unwrap();
            let want = &data[offset as usize..(offset + len) as usize];
            assert!(got == want, "round {round}: range {offset}+{len} differs");
        }
        assert!(matches!(
            reader.read_range(size - 10, 11),
            Err(EcError::Range { .. })
        ));
        for &i in &lost {
            fs::rename(aside.join(i.to_string()), shard_file(&area, i)).unwrap();
        }
    }
}

#[test]
fn other_shapes_odd_block_sizes_and_empty_sources_round_trip() {
    // 1536-byte blocks cannot use O_DIRECT (not 4 KiB aligned): the buffered path is used.
    for (k, m, block, size) in [
        (3, 3, 1536, 100_001),
        (10, 4, 4096, 1),
        (4, 2, 4096, 0),
        (2, 1, 512, 4096),
    ] {
        let area = Area::new(k + m);
        let data = random_file(&area.path("vol.img"), size, size as u64);
        let params = EncodeParams {
            k,
            m,
            block_size: block,
            ..EncodeParams::default()
        };
        let manifest = erasure::encode(&area.path("vol.img"), &area.dirs, &params).unwrap();
        assert_eq!(
            manifest.stripes,
            erasure::stripe_count(size as u64, k, block)
        );
        // Lose m shards (the first m data shards).
        for i in 0..m {
            fs::remove_file(area.dirs[i].join("vol.img").join(format!("shard-{i}.dat"))).unwrap();
        }
        let target = area.path("out");
        restore(&area.dirs, &target, false).unwrap();
        assert!(
            fs::read(&target).unwrap() == data,
            "{k}+{m} block {block} size {size}"
        );
        assert!(scrub(&area.dirs).unwrap().healthy);
    }
}
