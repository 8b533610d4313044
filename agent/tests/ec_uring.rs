//! The archive engine's I/O really goes through io_uring, and O_DIRECT refusals at write time
//! (an ext4 on a 4 KiB-sector loop device with 1536-byte blocks: the open succeeds, every
//! transfer fails with EINVAL) fall back to buffered I/O with several stripes in flight and
//! without losing a single block.

mod ec_common;
mod loopfs;

use couchestor_agent::erasure::{self, EncodeParams, NoProgress};
use ec_common::{Area, patterned_file, random_file, sha256_file};
use loopfs::LoopFs;

#[test]
fn encode_and_restore_go_through_io_uring() {
    let area = Area::new(6);
    let input = area.path("vol.img");
    patterned_file(&input, 8 << 20, 21);
    let params = EncodeParams {
        block_size: 64 << 10,
        ..EncodeParams::default()
    };
    let done = erasure::encode_report(&input, &area.dirs, &params, &NoProgress).unwrap();
    let stripes = done.manifest.stripes;
    assert_eq!(stripes, 32);
    let w = done.writes;
    assert!(w.io_uring, "shard writes did not use io_uring: {w:?}");
    assert_eq!(w.uring_bytes, stripes * 6 * (64 << 10), "{w:?}");
    assert!(w.uring_ops >= stripes * 6, "{w:?}");
    assert_eq!(
        (w.sync_ops, w.sync_bytes, w.direct_fallbacks),
        (0, 0, 0),
        "{w:?}"
    );
    assert_eq!(
        w.direct_files, 6,
        "O_DIRECT is accepted on this disk: {w:?}"
    );
    let r = done.reads;
    assert!(r.io_uring && r.sync_ops == 0, "source reads: {r:?}");
    assert_eq!(r.uring_bytes, 8 << 20, "{r:?}");

    // Restore reads 4 data blocks per stripe through io_uring with O_DIRECT, and writes the
    // target through io_uring, several stripes in flight.
    let restored = area.path("restored.img");
    let report = erasure::restore(&area.dirs, &restored, false).unwrap();
    let (r, t) = (report.shard_io, report.target_io);
    assert!(r.io_uring && r.sync_ops == 0, "shard reads: {r:?}");
    assert_eq!(r.uring_bytes, stripes * 4 * (64 << 10), "{r:?}");
    assert_eq!(r.direct_files, 6, "{r:?}");
    assert!(t.io_uring && t.sync_ops == 0, "target writes: {t:?}");
    assert_eq!(t.uring_bytes, 8 << 20, "{t:?}");
    assert_eq!(sha256_file(&restored), sha256_file(&input));

    // With two shards gone, the parity blocks are read as well, still through io_uring.
    for i in [0, 3] {
        std::fs::remove_file(area.dirs[i].join("vol.img").join(format!("shard-{i}.dat"))).unwrap();
    }
    let degraded = area.path("degraded.img");
    let report = erasure::restore(&area.dirs, &degraded, false).unwrap();
    assert_eq!(report.stripes_rebuilt, stripes);
    assert_eq!(report.shard_io.uring_bytes, stripes * 4 * (64 << 10));
    assert_eq!(sha256_file(&degraded), sha256_file(&input));
}

#[test]
fn o_direct_refused_at_write_time_falls_back_with_stripes_in_flight() {
    let test = "o_direct_refused_at_write_time_falls_back_with_stripes_in_flight";
    let area = Area::new(6);
    let Some(_fs) = LoopFs::or_skip(&area.dirs[3], 64 << 20, 4096, test) else {
        return;
    };
    // 1536-byte blocks: a multiple of 512, so O_DIRECT is tried, but not of 4096, so the
    // 4 KiB-sector file system refuses every transfer (after accepting the open).
    let input = area.path("vol.img");
    let data = random_file(&input, 1_000_003, 22);
    let params = EncodeParams {
        k: 4,
        m: 2,
        block_size: 1536,
        ..EncodeParams::default()
    };
    let done = erasure::encode_report(&input, &area.dirs, &params, &NoProgress).unwrap();
    let w = done.writes;
    assert!(done.manifest.stripes > 100, "{}", done.manifest.stripes);
    assert_eq!(w.direct_files, 6, "every open accepted O_DIRECT: {w:?}");
    assert_eq!(
        w.direct_fallbacks, 1,
        "only the 4 KiB-sector shard switched: {w:?}"
    );
    assert!(
        w.sync_ops >= 1,
        "the refused writes were redone buffered: {w:?}"
    );
    assert!(w.io_uring && w.uring_ops > 0, "{w:?}");
    let stripes = done.manifest.stripes;
    assert_eq!(
        w.uring_bytes + w.sync_bytes,
        stripes * 6 * 1536,
        "every block was written exactly once: {w:?}"
    );
    // Every block of every shard is intact, including those of the switched file.
    let report = erasure::verify(&area.dirs).unwrap();
    assert!(report.healthy, "{report:?}");
    let restored = area.path("restored.img");
    let report = erasure::restore(&area.dirs, &restored, false).unwrap();
    assert!(std::fs::read(&restored).unwrap() == data);
    // Reads of shard 3 are refused with O_DIRECT as well, and switch to buffered I/O.
    let r = report.shard_io;
    assert_eq!(r.direct_fallbacks, 1, "{r:?}");
    assert_eq!(r.uring_bytes + r.sync_bytes, stripes * 4 * 1536, "{r:?}");
    // Only the switched shard is needed too: drop two others.
    let fewer = [&area.dirs[0..2], &area.dirs[3..5]].concat();
    let again = area.path("again.img");
    erasure::restore(&fewer, &again, false).unwrap();
    assert_eq!(sha256_file(&again), sha256_file(&input));
}
