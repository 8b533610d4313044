//! Crash safety of L2: the index survives a restart, torn tails and flipped bytes are
//! dropped when it is rebuilt (or when read), a cut at any offset never yields wrong bytes,
//! and a cache directory serves one cache at a time.

mod cache_common;

use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;

use cache_common::{Area, BLOCKS, SIZE, mixed_data, segments, with_l2};
use couchestor_agent::cache::record::{HEADER_LEN, Header};
use couchestor_agent::cache::{BlockCache, CacheError, CacheStats, CachedArchive};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Reads the whole archive through an L2-only cache in `dir`; checks the bytes and returns
/// this session's counters.
fn read_all(area: &Area, dir: &Path, data: &[u8]) -> CacheStats {
    let archive = CachedArchive::open(area.reader(), with_l2(0, dir)).expect("open cache");
    let got = archive.read_range(0, SIZE as u64).expect("read");
    assert!(got == data, "wrong bytes through the cache");
    archive.cache().session_stats()
}

/// Offsets and headers of the records of a segment file.
fn records(path: &Path) -> Vec<(u64, Header)> {
    let bytes = fs::read(path).unwrap();
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos + HEADER_LEN <= bytes.len() {
        let head: &[u8; HEADER_LEN] = bytes[pos..pos + HEADER_LEN].try_into().unwrap();
        let Some(h) = Header::parse(head) else { break };
        out.push((pos as u64, h));
        pos += h.record_len() as usize;
    }
    out
}

fn filled(seed: u64) -> (Area, Vec<u8>, std::path::PathBuf) {
    let area = Area::new();
    let data = mixed_data(SIZE, seed);
    area.encode(&data);
    let dir = area.path("l2");
    let s = read_all(&area, &dir, &data);
    assert_eq!(s.l2.unwrap().level.inserts, BLOCKS);
    (area, data, dir)
}

#[test]
fn l2_survives_a_restart() {
    let (area, data, dir) = filled(1);
    let s = read_all(&area, &dir, &data).l2.unwrap();
    assert_eq!(
        (s.level.hits, s.level.misses, s.level.inserts),
        (BLOCKS, 0, 0)
    );
    assert_eq!(s.level.entries, BLOCKS);
    assert!(s.level.compression_ratio.unwrap() > 1.5);
}

#[test]
fn a_torn_tail_is_truncated_and_reads_stay_exact() {
    let (area, data, dir) = filled(2);
    let seg = segments(&dir).pop().unwrap();
    let recs = records(&seg);
    assert_eq!(recs.len() as u64, BLOCKS);
    let (last_off, last) = recs[recs.len() - 1];
    // Cut the last record in the middle of its payload.
    let cut = last_off + HEADER_LEN as u64 + u64::from(last.stored_len) / 2;
    OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(cut)
        .unwrap();
    let s = read_all(&area, &dir, &data).l2.unwrap();
    assert_eq!(s.extra.torn_bytes_truncated, cut - last_off);
    assert_eq!((s.level.hits, s.level.misses), (BLOCKS - 1, 1));
    assert_eq!(
        fs::metadata(&seg).unwrap().len(),
        last_off,
        "tail cut at the record boundary"
    );
    // The refetched block went to a new segment; everything is cached again.
    let s = read_all(&area, &dir, &data).l2.unwrap();
    assert_eq!(
        (s.level.hits, s.level.misses, s.extra.torn_bytes_truncated),
        (BLOCKS, 0, 0)
    );
}

#[test]
fn flipped_bytes_are_dropped_when_the_index_is_rebuilt() {
    let (area, data, dir) = filled(3);
    let seg = segments(&dir).pop().unwrap();
    let recs = records(&seg);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&seg)
        .unwrap();
    // A payload byte of record 3 and a key byte (archive digest) of record 7.
    for (n, at) in [(3usize, HEADER_LEN as u64 + 5), (7, 36)] {
        let off = recs[n].0 + at;
        let mut b = [0u8];
        file.read_exact_at(&mut b, off).unwrap();
        file.write_all_at(&[b[0] ^ 0x01], off).unwrap();
    }
    let s = read_all(&area, &dir, &data).l2.unwrap();
    assert_eq!(s.extra.corrupt_dropped, 2);
    assert_eq!((s.level.hits, s.level.misses), (BLOCKS - 2, 2));
    assert_eq!(s.extra.torn_bytes_truncated, 0, "later records are kept");
}

#[test]
fn corruption_after_opening_is_caught_by_the_read() {
    let (area, data, dir) = filled(4);
    let archive = CachedArchive::open(area.reader(), with_l2(0, &dir)).unwrap();
    let seg = segments(&dir).pop().unwrap();
    let (off, h) = records(&seg)[5];
    let file = OpenOptions::new().write(true).open(&seg).unwrap();
    let junk = vec![0xEE; h.stored_len as usize];
    file.write_all_at(&junk, off + HEADER_LEN as u64).unwrap();
    let got = archive.read_range(0, SIZE as u64).unwrap();
    assert!(got == data);
    let s = archive.cache().session_stats().l2.unwrap();
    assert_eq!(
        (s.level.hits, s.level.misses, s.extra.corrupt_dropped),
        (BLOCKS - 1, 1, 1)
    );
}

#[test]
fn a_garbled_header_ends_the_segment_there() {
    let (area, data, dir) = filled(5);
    let seg = segments(&dir).pop().unwrap();
    let (off, _) = records(&seg)[10];
    OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .write_all_at(b"JUNK", off)
        .unwrap();
    let s = read_all(&area, &dir, &data).l2.unwrap();
    assert_eq!((s.level.hits, s.level.misses), (10, BLOCKS - 10));
    assert_eq!(fs::metadata(&seg).unwrap().len(), off);
}

#[test]
fn a_cut_or_garbage_at_any_offset_never_yields_wrong_bytes() {
    let (area, data, dir) = filled(6);
    let seg = segments(&dir).pop().unwrap();
    let pristine = fs::read(&seg).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    for round in 0..24 {
        // Whatever a crash leaves: the file cut anywhere, perhaps followed by garbage (a
        // file system may expose unwritten blocks), perhaps with bytes changed inside.
        for s in segments(&dir) {
            fs::remove_file(s).unwrap();
        }
        let cut = rng.random_range(0..=pristine.len());
        let mut bytes = pristine[..cut].to_vec();
        if round % 2 == 1 {
            let mut junk = vec![0u8; rng.random_range(1..20_000)];
            rng.fill(&mut junk[..]);
            bytes.extend(junk);
        }
        if round % 3 == 2 && !bytes.is_empty() {
            let at = rng.random_range(0..bytes.len());
            bytes[at] ^= 1 << rng.random_range(0..8);
        }
        fs::write(&seg, &bytes).unwrap();
        let s = read_all(&area, &dir, &data).l2.unwrap();
        assert_eq!(s.level.hits + s.level.misses, BLOCKS, "round {round}");
    }
}

#[test]
fn a_cache_directory_serves_one_cache_at_a_time() {
    let area = Area::new();
    let dir = area.path("l2");
    let first = BlockCache::open(with_l2(0, &dir)).unwrap();
    let err = BlockCache::open(with_l2(0, &dir)).unwrap_err();
    assert!(matches!(err, CacheError::Locked(_)), "{err}");
    assert!(err.to_string().contains(&dir.display().to_string()));
    drop(first);
    BlockCache::open(with_l2(0, &dir)).expect("free again");

    let foreign = area.path("foreign");
    fs::create_dir(&foreign).unwrap();
    fs::write(foreign.join("keep.txt"), "mine").unwrap();
    let err = BlockCache::open(with_l2(0, &foreign)).unwrap_err();
    assert!(matches!(err, CacheError::NotACacheDir(_)), "{err}");
    assert_eq!(fs::read_dir(&foreign).unwrap().count(), 1);
}
