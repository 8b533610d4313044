use std::fs;
use std::path::{Path, PathBuf};

use super::*;

fn fixture(host_and_snapshot: &str) -> Sysfs {
    Sysfs::new(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(host_and_snapshot),
    )
}

fn names(sample: &Sample) -> Vec<&str> {
    sample
        .devices
        .iter()
        .map(|d| d.info.name.as_str())
        .collect()
}

fn device<'a>(sample: &'a Sample, name: &str) -> &'a DeviceSample {
    sample.devices.iter().find(|d| d.info.name == name).unwrap()
}

/// A minimal disk directory `block/<name>` (not a symlink) under `root`.
fn fake_disk(root: &Path, name: &str, stat: &str, rotational: &str) -> PathBuf {
    let dir = root.join("block").join(name);
    fs::create_dir_all(dir.join("queue")).unwrap();
    fs::write(dir.join("stat"), stat).unwrap();
    fs::write(dir.join("size"), "2048\n").unwrap();
    fs::write(dir.join("queue/rotational"), rotational).unwrap();
    dir
}

const STAT_11: &str = "1 2 3 4 5 6 7 8 0 10 11\n";

#[test]
fn reads_the_nvme_host_without_partitions() {
    let sample = fixture("nvme-host/t0").sample().unwrap();
    assert_eq!(names(&sample), ["loop0", "nvme0n1", "nvme1n1"]);
    assert!(sample.skipped.is_empty());
    let nvme0 = device(&sample, "nvme0n1");
    assert_eq!(
        nvme0.info,
        DeviceInfo {
            name: "nvme0n1".into(),
            kind: DeviceKind::Nvme,
            rotational: false,
            size_bytes: 1_953_525_168 * 512,
            model: "Samsung SSD 980 PRO 1TB".into(),
            serial: "S5GXNF0R912345A".into(),
            transport: "nvme".into(),
            diskseq: Some(1),
        }
    );
    assert_eq!(nvme0.counters.read_ios, 100_000);
    assert_eq!(nvme0.counters.time_in_queue_ms, 60_000);
    assert_eq!(nvme0.counters.flush.unwrap().ticks_ms, 150);
    let nvme1 = device(&sample, "nvme1n1");
    assert_eq!(nvme1.info.model, "INTEL SSDPE2KX040T8");
    assert_eq!(nvme1.info.size_bytes, 4_000_787_030_016);
    let loop0 = device(&sample, "loop0");
    assert_eq!(
        (loop0.info.kind, loop0.info.transport.as_str()),
        (DeviceKind::Virtual, "loop")
    );
    assert_eq!((loop0.info.size_bytes, loop0.info.serial.as_str()), (0, ""));
}

#[test]
fn reads_the_sata_host() {
    let sample = fixture("sata-host/t0").sample().unwrap();
    assert_eq!(names(&sample), ["loop0", "sda", "sdb", "sdc"]);
    let sda = &device(&sample, "sda").info;
    assert_eq!(
        (sda.kind, sda.rotational, sda.transport.as_str()),
        (DeviceKind::SataSsd, false, "sata")
    );
    assert_eq!(sda.model, "Samsung SSD 860");
    // SCSI disks have no serial attribute: the WWID stands in, inner spaces kept.
    assert_eq!(
        sda.serial,
        "t10.ATA     Samsung SSD 860 EVO 500GB                   S3Z1NB0K123456A"
    );
    let sdb = &device(&sample, "sdb").info;
    assert_eq!(
        (sdb.kind, sdb.rotational, sdb.transport.as_str()),
        (DeviceKind::Hdd, true, "sata")
    );
    let sdc = &device(&sample, "sdc").info;
    assert_eq!(
        (sdc.kind, sdc.transport.as_str()),
        (DeviceKind::SataSsd, "sas")
    );
    assert_eq!(sdc.serial, "naa.50000397c8123456");
    let loop0 = device(&sample, "loop0");
    assert_eq!(loop0.info.size_bytes, 1 << 30);
    // 15-field kernel: discard counters, no flush counters.
    assert_eq!(loop0.counters.discard.unwrap().ios, 0);
    assert_eq!(loop0.counters.flush, None);
}

#[test]
fn malformed_stat_names_the_file_and_the_content() {
    let tmp = tempfile::tempdir().unwrap();
    fake_disk(tmp.path(), "sdz", "1 2 3 4 5 6 7 8 9 10 eleven\n", "0\n");
    let err = Sysfs::new(tmp.path()).sample().unwrap_err();
    let Error::Parse {
        path,
        content,
        reason,
    } = &err
    else {
        panic!("expected a parse error, got {err:?}");
    };
    assert_eq!(path, &tmp.path().join("block/sdz/stat"));
    assert_eq!(content, "1 2 3 4 5 6 7 8 9 10 eleven");
    assert_eq!(
        reason,
        "field 11 (time_in_queue) is not an unsigned integer: \"eleven\""
    );
    let message = err.to_string();
    assert!(
        message.starts_with(&format!("{}: unexpected content", path.display())),
        "{message}"
    );
}

#[test]
fn truncated_stat_and_bad_rotational_are_errors() {
    let tmp = tempfile::tempdir().unwrap();
    fake_disk(tmp.path(), "sdz", "1 2 3\n", "0\n");
    let err = Sysfs::new(tmp.path()).sample().unwrap_err().to_string();
    assert!(err.ends_with("block/sdz/stat: unexpected content \"1 2 3\": expected 11, 15 or at least 17 fields, found 3"), "{err}");

    let tmp = tempfile::tempdir().unwrap();
    fake_disk(tmp.path(), "sdz", STAT_11, "yes\n");
    let err = Sysfs::new(tmp.path()).sample().unwrap_err().to_string();
    assert!(
        err.ends_with("block/sdz/queue/rotational: unexpected content \"yes\": expected 0 or 1"),
        "{err}"
    );
}

#[test]
fn missing_block_directory_names_the_path() {
    let tmp = tempfile::tempdir().unwrap();
    let err = Sysfs::new(tmp.path().join("nope")).sample().unwrap_err();
    assert!(matches!(&err, Error::ListDevices { path, .. } if path.ends_with("nope/block")));
    assert!(
        err.to_string().starts_with("cannot list block devices in "),
        "{err}"
    );
}

#[test]
fn vanished_device_is_skipped_not_fatal() {
    let tmp = tempfile::tempdir().unwrap();
    fake_disk(tmp.path(), "sda", STAT_11, "1\n");
    let gone = fake_disk(tmp.path(), "sdb", STAT_11, "0\n");
    // Hot-unplug between listing and reading: the directory is still listed, its files
    // are gone.
    fs::remove_file(gone.join("stat")).unwrap();
    let sample = Sysfs::new(tmp.path()).sample().unwrap();
    assert_eq!(names(&sample), ["sda"]);
    assert_eq!(sample.skipped.len(), 1);
    assert_eq!(sample.skipped[0].name, "sdb");
    assert!(
        sample.skipped[0].reason.contains("block/sdb/stat vanished"),
        "{:?}",
        sample.skipped
    );
}

#[test]
fn hidden_and_partition_entries_are_not_listed() {
    let tmp = tempfile::tempdir().unwrap();
    fake_disk(tmp.path(), "nvme0n1", STAT_11, "0\n");
    let hidden = fake_disk(tmp.path(), "nvme0c0n1", STAT_11, "0\n");
    fs::write(hidden.join("hidden"), "1\n").unwrap();
    let part = fake_disk(tmp.path(), "sda1", STAT_11, "0\n");
    fs::write(part.join("partition"), "1\n").unwrap();
    let sample = Sysfs::new(tmp.path()).sample().unwrap();
    assert_eq!(names(&sample), ["nvme0n1"]);
    // Not a symlink into devices/: the transport comes from the name alone.
    assert_eq!(sample.devices[0].info.transport, "nvme");
    assert_eq!(sample.devices[0].info.size_bytes, 2048 * 512);
}

#[test]
fn long_content_is_cut_in_messages() {
    let long = "9".repeat(500);
    let err = Error::parse(Path::new("/sys/block/x/size"), &long, "too long");
    let Error::Parse { content, .. } = err else {
        panic!()
    };
    assert_eq!(content.len(), EXCERPT_CHARS + 3);
    assert!(content.ends_with("..."));
}

#[test]
fn static_description_is_kept_until_diskseq_changes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = fake_disk(tmp.path(), "sda", STAT_11, "0\n");
    fs::write(dir.join("serial"), "OLD\n").unwrap();
    fs::write(dir.join("diskseq"), "7\n").unwrap();
    let tree = Sysfs::new(tmp.path());
    assert_eq!(tree.sample().unwrap().devices[0].info.serial, "OLD");

    // Same disk (same diskseq): the counters are re-read, the description is kept...
    fs::write(dir.join("serial"), "NEW\n").unwrap();
    fs::write(dir.join("size"), "4096\n").unwrap();
    fs::write(dir.join("stat"), "9 2 3 4 5 6 7 8 0 10 11\n").unwrap();
    let again = tree.sample().unwrap();
    let info = &again.devices[0].info;
    assert_eq!((info.serial.as_str(), info.size_bytes), ("OLD", 2048 * 512));
    assert_eq!(again.devices[0].counters.read_ios, 9);
    // ... until REFRESH_EVERY samples have used it (a resize keeps the diskseq).
    for _ in 2..REFRESH_EVERY {
        assert_eq!(
            tree.sample().unwrap().devices[0].info.size_bytes,
            2048 * 512
        );
    }
    let refreshed = tree.sample().unwrap();
    assert_eq!(refreshed.devices[0].info.size_bytes, 4096 * 512);
    fs::write(dir.join("serial"), "OLD\n").unwrap();
    tree.sample().unwrap();
    fs::write(dir.join("serial"), "NEW\n").unwrap();

    // A swapped disk gets a new diskseq: everything is read afresh.
    fs::write(dir.join("diskseq"), "8\n").unwrap();
    assert_eq!(tree.sample().unwrap().devices[0].info.serial, "NEW");

    // Without diskseq (kernels before 5.15) nothing is kept.
    fs::remove_file(dir.join("diskseq")).unwrap();
    fs::write(dir.join("serial"), "NEWER\n").unwrap();
    assert_eq!(tree.sample().unwrap().devices[0].info.serial, "NEWER");
}
