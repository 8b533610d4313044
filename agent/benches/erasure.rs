//! Erasure-coding benchmark: `cargo bench -p couchestor-agent --bench erasure`.
//!
//! Prints, in one run: 4+2 encode throughput of one core (GiB/s of source data) at 64 KiB and
//! 1 MiB shard blocks and the rebuild of 2 lost data shards, for the SIMD and the pure-Rust
//! kernels, with the kernels the agent uses; then the end-to-end archive throughput of a
//! generated file (2 GiB; `COUCHESTOR_BENCH_SIZE=512M` etc. to change) against the raw
//! sequential write speed (O_DIRECT, fsync) of the same disk, and their ratios (in source
//! bytes and in shard bytes), with the source on the same disk and in /dev/shm; then a
//! restore from 4 of the 6 shards. The files go
//! to `COUCHESTOR_BENCH_DIR` or else Cargo's target tmp directory.
//!
//! Without `--bench` (as `cargo test --all-targets` runs it) it does a small smoke run.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use couchestor_agent::erasure::{self, AlignedBuf, Backend, Codec, EncodeParams};

const GIB: f64 = (1u64 << 30) as f64;

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (backend, why) = erasure::detect_backend();
    println!("Erasure coding (4+2) benchmark");
    println!("kernels in use: {backend} ({why})");
    let min_time = if full {
        Duration::from_secs(2)
    } else {
        Duration::from_millis(20)
    };
    println!("codec, one core, GiB/s of source data:");
    for (label, block) in [("64 KiB", 64 << 10), ("1 MiB", 1 << 20)] {
        for backend in [Backend::Simd, Backend::PureRust] {
            let Ok(codec) = Codec::with_backend(4, 2, backend) else {
                println!("  {backend:<9} unavailable on this CPU/build");
                continue;
            };
            let enc = codec_rate(&codec, block, min_time, false);
            let rebuild = codec_rate(&codec, block, min_time, true);
            println!(
                "  {backend:<9} {label:>6} blocks: encode {enc:6.2}   rebuild 2 lost {rebuild:6.2}"
            );
        }
    }
    let data = vec![0x5au8; 4 << 20];
    let rate = |f: &dyn Fn()| {
        let start = Instant::now();
        let mut rounds = 0u64;
        while start.elapsed() < min_time || rounds < 3 {
            f();
            rounds += 1;
        }
        (rounds * data.len() as u64) as f64 / start.elapsed().as_secs_f64() / GIB
    };
    let sha = rate(&|| {
        std::hint::black_box(ring::digest::digest(&ring::digest::SHA256, &data));
    });
    let crc = rate(&|| {
        std::hint::black_box(crc32c::crc32c(&data));
    });
    println!("  SHA-256 of the source (ring): {sha:6.2} GiB/s; CRC-32C per block: {crc:6.2} GiB/s");
    let size = if full { bench_size() } else { 8 << 20 };
    end_to_end(size, full);
}

/// GiB/s of source data through `encode` (or a 2-lost-data-shard rebuild) of one stripe
/// buffer, repeated for at least `min_time`.
fn codec_rate(codec: &Codec, block: usize, min_time: Duration, rebuild: bool) -> f64 {
    let mut stripe = vec![0u8; 6 * block];
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    for b in stripe[..4 * block].iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    codec.encode(&mut stripe, block).expect("encode");
    let reference = stripe.clone();
    let present = [false, true, false, true, true, true];
    let start = Instant::now();
    let mut rounds = 0u64;
    while start.elapsed() < min_time || rounds < 3 {
        if rebuild {
            codec
                .reconstruct(&mut stripe, block, &present, true)
                .expect("rebuild");
        } else {
            codec.encode(&mut stripe, block).expect("encode");
        }
        rounds += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    assert!(stripe == reference, "codec output changed");
    (rounds * 4 * block as u64) as f64 / secs / GIB
}

fn bench_size() -> u64 {
    let text = std::env::var("COUCHESTOR_BENCH_SIZE").unwrap_or_else(|_| "2G".into());
    let (digits, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = digits
        .parse()
        .expect("COUCHESTOR_BENCH_SIZE: a number with K, M or G");
    let size = n * match unit {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        other => panic!("COUCHESTOR_BENCH_SIZE: unknown unit {other:?}"),
    };
    assert!(
        size.is_multiple_of(4096),
        "COUCHESTOR_BENCH_SIZE must be a multiple of 4 KiB (O_DIRECT)"
    );
    size
}

/// Writes `size` bytes of non-repeating data to `path` with O_DIRECT in 4 MiB writes and
/// fsyncs; returns the time taken (the data is not left in the page cache).
fn write_direct(path: &Path, size: u64) -> Duration {
    let chunk = 4 << 20;
    let mut buf = AlignedBuf::new(chunk);
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    for word in buf.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        word.copy_from_slice(&x.to_le_bytes());
    }
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
        .expect("open with O_DIRECT");
    let start = Instant::now();
    let mut written = 0u64;
    let mut n = 0u64;
    while written < size {
        buf[..8].copy_from_slice(&n.to_le_bytes());
        let len = (size - written).min(chunk as u64) as usize;
        (&file).write_all(&buf[..len]).expect("write");
        written += len as u64;
        n += 1;
    }
    file.sync_all().expect("fsync");
    start.elapsed()
}

fn end_to_end(size: u64, full: bool) {
    let root = std::env::var_os("COUCHESTOR_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")));
    fs::create_dir_all(&root).expect("bench directory");
    let tmp = tempfile::tempdir_in(&root).expect("tempdir");
    let gib = size as f64 / GIB;
    println!(
        "end to end, {gib:.2} GiB source, files in {}:",
        root.display()
    );

    let raw = tmp.path().join("raw.bin");
    let raw_write = || {
        let secs = write_direct(&raw, size).as_secs_f64();
        fs::remove_file(&raw).expect("remove raw file");
        gib / secs
    };
    let raw_before = raw_write();
    println!("  raw sequential write (O_DIRECT, 4 MiB writes, fsync): {raw_before:6.3} GiB/s");

    let dirs: Vec<PathBuf> = (0..6)
        .map(|i| tmp.path().join(format!("shard{i}")))
        .collect();
    dirs.iter()
        .for_each(|d| fs::create_dir(d).expect("shard dir"));
    // The source on the same disk, and (when /dev/shm holds it) in memory: the second run
    // leaves the disk only the shard writes.
    let on_disk = tmp.path().join("source.img");
    write_direct(&on_disk, size);
    let shm = Path::new("/dev/shm");
    let in_memory = shm.is_dir().then(|| {
        let dir = tempfile::tempdir_in(shm).expect("tempdir in /dev/shm");
        let path = dir.path().join("source.img");
        fs::copy(&on_disk, &path).expect("copy the source to /dev/shm");
        (dir, path)
    });
    let mut runs = vec![("source read from the same disk", on_disk.clone())];
    if let Some((_, path)) = &in_memory {
        runs.push(("source in memory (/dev/shm)", path.clone()));
    }
    let mut manifest = None;
    let mut rates = Vec::new();
    for (n, (what, source)) in runs.iter().enumerate() {
        let params = EncodeParams {
            force: n > 0,
            archive_id: Some("bench".into()),
            ..EncodeParams::default()
        };
        let start = Instant::now();
        let done =
            erasure::encode_report(source, &dirs, &params, &erasure::NoProgress).expect("encode");
        let rate = gib / start.elapsed().as_secs_f64();
        let w = done.writes;
        println!(
            "  archive 4+2, 1 MiB blocks, {what}: {rate:6.3} GiB/s of source, {:6.3} GiB/s of \
             shards written",
            rate * 1.5
        );
        rates.push((*what, rate));
        println!(
            "    shard writes: io_uring {}, {} files O_DIRECT, {} fallbacks, {:.2} GiB via io_uring, \
             {:.2} GiB via pwrite; source reads: {:.2} GiB via io_uring",
            w.io_uring,
            w.direct_files,
            w.direct_fallbacks,
            w.uring_bytes as f64 / GIB,
            w.sync_bytes as f64 / GIB,
            done.reads.uring_bytes as f64 / GIB
        );
        manifest = Some(done.manifest);
    }
    // The disk's speed drifts (a VM disk with a host cache): the raw write is measured
    // before and after the archives, and the ratios use the mean.
    let raw_after = raw_write();
    let raw_rate = (raw_before + raw_after) / 2.0;
    println!("  raw sequential write again: {raw_after:6.3} GiB/s; mean {raw_rate:6.3} GiB/s");
    for (what, rate) in &rates {
        println!(
            "  ratio to the raw write, {what}: {:.2} in source bytes, {:.2} in shard bytes",
            rate / raw_rate,
            rate * 1.5 / raw_rate
        );
    }
    println!(
        "  ceiling on one disk: 4+2 writes 1.5 bytes per source byte, so at most 0.67 in \
         source bytes (1.00 in shard bytes) with the source elsewhere, less when the same disk \
         also serves the source reads"
    );
    let restored = tmp.path().join("restored.img");
    for (what, from) in [
        ("all 6 shards", &dirs[..]),
        (
            "4 of 6 shards (2 data shards lost, every stripe rebuilt)",
            &dirs[2..],
        ),
    ] {
        let start = Instant::now();
        let report = erasure::restore(from, &restored, true).expect("restore");
        let rate = gib / start.elapsed().as_secs_f64();
        println!(
            "  restore from {what}: {rate:6.3} GiB/s (shard reads via io_uring: {}, {} files \
             O_DIRECT)",
            report.shard_io.io_uring, report.shard_io.direct_files
        );
    }
    let manifest = manifest.expect("encoded");
    if !full {
        assert!(fs::read(&restored).unwrap() == fs::read(&on_disk).unwrap());
        assert_eq!(manifest.source_size, size);
        println!(
            "smoke run passed (run `cargo bench -p couchestor-agent --bench erasure` to measure)"
        );
    }
}
