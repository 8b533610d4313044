//! Runs the built `couchestor-agent devices` on the fixture trees (exact figures) and on
//! this machine's real /sys.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_couchestor-agent");

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn agent(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .output()
        .expect("run couchestor-agent")
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "status {:?}, stderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

/// `devices --output json` replaying `<host>/t0` then `<host>/t1`, 2 s apart.
fn replay_json(host: &str) -> Vec<Value> {
    let t0 = fixtures().join(host).join("t0");
    let t1 = fixtures().join(host).join("t1");
    let out = agent(&[
        "devices",
        "--sysfs-root",
        t0.to_str().unwrap(),
        "--second-root",
        t1.to_str().unwrap(),
        "--interval",
        "2",
        "--output",
        "json",
    ]);
    serde_json::from_str::<Value>(&stdout(&out))
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn find<'a>(devices: &'a [Value], name: &str) -> &'a Value {
    devices
        .iter()
        .find(|d| d["name"] == name)
        .unwrap_or_else(|| panic!("no {name}"))
}

/// Asserts the rate fields of a device object: r/s, w/s, rB/s, wB/s, r_await, w_await,
/// utilization, queue depth.
fn assert_rates(device: &Value, expected: [f64; 8]) {
    let keys = [
        "read_iops",
        "write_iops",
        "read_bytes_per_sec",
        "write_bytes_per_sec",
        "read_latency_ms",
        "write_latency_ms",
        "utilization",
        "queue_depth",
    ];
    for (key, want) in keys.iter().zip(expected) {
        let got = device[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{key} missing in {device}"));
        assert_eq!(got, want, "{} {key}", device["name"]);
    }
}

#[test]
fn nvme_host_fixture_gives_exact_rates() {
    let devices = replay_json("nvme-host");
    let names: Vec<_> = devices
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["loop0", "nvme0n1", "nvme1n1"],
        "partitions must not be listed"
    );

    let nvme0 = find(&devices, "nvme0n1");
    assert_eq!(nvme0["kind"], "nvme");
    assert_eq!(nvme0["rotational"], false);
    assert_eq!(nvme0["size_bytes"], 1_000_204_886_016u64);
    assert_eq!(nvme0["model"], "Samsung SSD 980 PRO 1TB");
    assert_eq!(nvme0["serial"], "S5GXNF0R912345A");
    assert_eq!(nvme0["transport"], "nvme");
    assert_eq!(nvme0["rate_status"], "ok");
    // Deltas over 2 s: 4000 reads, 64000 sectors read, 800 ms read ticks; 1000 writes,
    // 16000 sectors written, 500 ms write ticks; 1000 ms io_ticks; 1300 ms in queue.
    assert_rates(
        nvme0,
        [
            2000.0,
            500.0,
            16_384_000.0,
            4_096_000.0,
            0.2,
            0.5,
            0.5,
            0.65,
        ],
    );

    let nvme1 = find(&devices, "nvme1n1");
    assert_eq!(nvme1["model"], "INTEL SSDPE2KX040T8");
    assert_eq!(nvme1["size_bytes"], 4_000_787_030_016u64);
    // 100 reads, 800 sectors, 30 ms ticks; no writes; 50 ms io_ticks; 30 ms in queue.
    assert_rates(nvme1, [50.0, 0.0, 204_800.0, 0.0, 0.3, 0.0, 0.025, 0.015]);

    let loop0 = find(&devices, "loop0");
    assert_eq!(
        (&loop0["kind"], &loop0["transport"]),
        (&"virtual".into(), &"loop".into())
    );
    assert_rates(loop0, [0.0; 8]);
}

#[test]
fn sata_host_fixture_gives_exact_rates() {
    let devices = replay_json("sata-host");
    let names: Vec<_> = devices
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["loop0", "sda", "sdb", "sdc"]);

    let sda = find(&devices, "sda");
    assert_eq!(
        (&sda["kind"], &sda["transport"]),
        (&"sata_ssd".into(), &"sata".into())
    );
    assert_eq!(sda["model"], "Samsung SSD 860");
    assert_rates(
        sda,
        [
            1500.0,
            1000.0,
            12_288_000.0,
            8_192_000.0,
            0.5,
            1.5,
            0.8,
            2.25,
        ],
    );

    let sdb = find(&devices, "sdb");
    assert_eq!(
        (&sdb["kind"], &sdb["rotational"]),
        (&"hdd".into(), &true.into())
    );
    assert_rates(
        sdb,
        [100.0, 50.0, 819_200.0, 409_600.0, 8.0, 12.0, 0.7, 1.4],
    );

    // sdc was swapped between the snapshots: counters went down, rates are zero.
    let sdc = find(&devices, "sdc");
    assert_eq!(
        (&sdc["transport"], &sdc["rate_status"]),
        (&"sas".into(), &"counter_reset".into())
    );
    assert_rates(sdc, [0.0; 8]);

    let loop0 = find(&devices, "loop0");
    assert_eq!(loop0["size_bytes"], 1u64 << 30);
    assert_rates(loop0, [5.0, 0.0, 20_480.0, 0.0, 0.2, 0.0, 0.002, 0.001]);
}

#[test]
fn table_output_on_the_sata_fixture() {
    let t0 = fixtures().join("sata-host/t0");
    let t1 = fixtures().join("sata-host/t1");
    let out = agent(&[
        "devices",
        "--sysfs-root",
        t0.to_str().unwrap(),
        "--second-root",
        t1.to_str().unwrap(),
        "--interval",
        "2",
        "--device",
        "sda",
        "--device",
        "sdb",
    ]);
    let text = stdout(&out);
    let lines: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        lines,
        [
            vec![
                "NAME", "KIND", "ROT", "SIZE", "r/s", "w/s", "rMB/s", "wMB/s", "r_await",
                "w_await", "%util", "aqu-sz"
            ],
            vec![
                "sda", "sata_ssd", "0", "465.8G", "1500.00", "1000.00", "11.72", "7.81", "0.50",
                "1.50", "80.00", "2.25"
            ],
            vec![
                "sdb", "hdd", "1", "3.6T", "100.00", "50.00", "0.78", "0.39", "8.00", "12.00",
                "70.00", "1.40"
            ],
        ]
    );
}

/// Fields every device object must carry, with sane values.
fn assert_sane(device: &Value) {
    let name = device["name"].as_str().expect("name");
    assert!(!name.is_empty());
    let kind = device["kind"].as_str().expect("kind");
    assert!(
        ["nvme", "sata_ssd", "hdd", "virtual"].contains(&kind),
        "{name}: kind {kind}"
    );
    assert!(device["rotational"].is_boolean(), "{name}");
    for key in ["model", "serial", "transport"] {
        assert!(device[key].is_string(), "{name}: {key}");
    }
    let size = device["size_bytes"].as_u64().expect("size_bytes");
    let sectors: u64 = std::fs::read_to_string(format!("/sys/block/{name}/size"))
        .map(|s| s.trim().parse().unwrap())
        .unwrap_or(size / 512); // the device may have gone since
    assert_eq!(size, sectors * 512, "{name}: size_bytes");
    for key in [
        "read_iops",
        "write_iops",
        "read_bytes_per_sec",
        "write_bytes_per_sec",
        "read_latency_ms",
        "write_latency_ms",
        "queue_depth",
    ] {
        let v = device[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{name}: {key}"));
        assert!(v.is_finite() && v >= 0.0, "{name}: {key} = {v}");
    }
    let util = device["utilization"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&util), "{name}: utilization {util}");
}

/// Names in /sys/block that are not hidden.
fn visible_disks() -> BTreeSet<String> {
    std::fs::read_dir("/sys/block")
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| {
            std::fs::read_to_string(format!("/sys/block/{n}/hidden"))
                .map_or(true, |h| h.trim() != "1")
        })
        .collect()
}

#[test]
fn real_sys_lists_this_machines_disks() {
    let before = visible_disks();
    let out = agent(&["devices", "--output", "json", "--interval", "0.2"]);
    let devices: Vec<Value> = serde_json::from_str(&stdout(&out)).unwrap();
    assert!(!devices.is_empty(), "no block device found in /sys/block");
    let listed: Vec<&str> = devices
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    let after = visible_disks();
    // Every disk present both before and after the run is listed, and nothing else
    // (a loop device may come or go meanwhile).
    for name in before.intersection(&after) {
        assert!(
            listed.contains(&name.as_str()),
            "{name} missing from {listed:?}"
        );
    }
    for name in &listed {
        assert!(
            before.contains(*name) || after.contains(*name),
            "{name} is not in /sys/block"
        );
    }
    for device in &devices {
        assert_sane(device);
        let name = device["name"].as_str().unwrap();
        if name.starts_with("loop") || name.starts_with("zram") || name.starts_with("vd") {
            assert_eq!(device["kind"], "virtual", "{name}");
        }
        if name.starts_with("nvme") {
            assert_eq!(device["kind"], "nvme", "{name}");
        }
    }
    // At least one real disk (on this machine the virtio root disk vda).
    assert!(
        devices
            .iter()
            .any(|d| d["size_bytes"].as_u64().unwrap() > 0),
        "no device with a non-zero size: {listed:?}"
    );
    if let Some(vda) = devices.iter().find(|d| d["name"] == "vda") {
        assert_eq!(vda["transport"], "virtio");
    }
}

#[test]
fn watch_prints_one_json_array_per_interval() {
    let out = agent(&[
        "devices",
        "--output",
        "json",
        "--interval",
        "0.1",
        "--watch",
        "--count",
        "3",
    ]);
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    for line in lines {
        let devices: Vec<Value> = serde_json::from_str(line).unwrap();
        assert!(!devices.is_empty());
        devices.iter().for_each(assert_sane);
    }
}
