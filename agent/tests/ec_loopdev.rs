//! Block devices as source and restore target: a loop device is archived (its size comes
//! from seeking to its end), restored onto a second loop device in place, byte for byte; a
//! target device too small is refused with its capacity in the message.

mod ec_common;
mod loopfs;

use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::process::Command;

use ec_common::{Area, BIN};
use loopfs::LoopDev;
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[test]
fn a_loop_device_is_archived_and_restored_onto_another() {
    let test = "a_loop_device_is_archived_and_restored_onto_another";
    let area = Area::new(6);
    let Some(source) = LoopDev::or_skip(&area.path("src.img"), 24 << 20, 512, test) else {
        return;
    };
    let Some(target) = LoopDev::or_skip(&area.path("dst.img"), 32 << 20, 4096, test) else {
        return;
    };
    let Some(small) = LoopDev::or_skip(&area.path("small.img"), 8 << 20, 512, test) else {
        return;
    };
    let mut data = vec![0u8; 24 << 20];
    ChaCha8Rng::seed_from_u64(51).fill_bytes(&mut data);
    let mut dev = OpenOptions::new().write(true).open(&source.device).unwrap();
    dev.write_all(&data).unwrap();
    dev.sync_all().unwrap();
    drop(dev);

    let mut args: Vec<String> = ["ec", "encode", "--allow-same-device", "--archive-id", "vol"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend(["--input".into(), source.device.display().to_string()]);
    args.extend(["--output".into(), "json".into()]);
    args.extend(area.dir_args());
    let out = Command::new(BIN).args(&args).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["source_size"].as_u64(), Some(24 << 20));
    assert_eq!(v["io"]["source_reads"]["io_uring"], true, "{v:#}");

    // Restore in place onto a larger device (4 KiB sectors); --force since it exists.
    let mut restore: Vec<String> = vec!["ec".into(), "restore".into(), "--force".into()];
    restore.extend(["--output-file".into(), target.device.display().to_string()]);
    restore.extend(area.dir_args()[4..].iter().cloned()); // without shards 0 and 1
    restore.extend(area.dir_args()[..4].iter().cloned());
    for i in [0, 1] {
        fs::remove_file(area.dirs[i].join("vol").join(format!("shard-{i}.dat"))).unwrap();
    }
    let out = Command::new(BIN).args(&restore).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut back = vec![0u8; 24 << 20];
    fs::File::open(&target.device)
        .unwrap()
        .read_exact(&mut back)
        .unwrap();
    assert!(back == data, "the target device differs from the source");

    // Without --force an existing device is not overwritten; too small a device is refused.
    let mut no_force = restore.clone();
    no_force.retain(|a| a != "--force");
    let out = Command::new(BIN).args(&no_force).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("exists (pass --force"));
    let mut too_small = restore.clone();
    let i = too_small.iter().position(|a| a == "--output-file").unwrap();
    too_small[i + 1] = small.device.display().to_string();
    let out = Command::new(BIN).args(&too_small).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "holds {} bytes, the archive {}",
            8 << 20,
            24 << 20
        )),
        "{err}"
    );
}
