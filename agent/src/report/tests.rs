use std::path::Path;
use std::time::Duration;

use super::*;
use crate::sysfs::Sysfs;

fn sample(host_and_snapshot: &str) -> Sample {
    Sysfs::new(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(host_and_snapshot),
    )
    .sample()
    .unwrap()
}

fn reports(host: &str) -> Vec<DeviceReport> {
    let t0 = sample(&format!("{host}/t0"));
    let t1 = sample(&format!("{host}/t1"));
    build(&t0, &t1, Duration::from_secs(2))
}

#[test]
fn joins_devices_and_rates() {
    let all = reports("nvme-host");
    let names: Vec<_> = all.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["loop0", "nvme0n1", "nvme1n1"]);
    let nvme1 = &all[2];
    assert_eq!(nvme1.kind, DeviceKind::Nvme);
    assert_eq!(nvme1.serial, "PHLJ9123456W4P0DGN");
    assert_eq!(
        (nvme1.read_iops, nvme1.read_bytes_per_sec),
        (50.0, 204_800.0)
    );
    assert_eq!((nvme1.read_latency_ms, nvme1.write_latency_ms), (0.3, 0.0));
    assert_eq!((nvme1.utilization, nvme1.queue_depth), (0.025, 0.015));
    assert_eq!(all[1].in_flight, 1);
    assert!(all.iter().all(|r| r.rate_status == RateStatus::Ok));
}

#[test]
fn replaced_and_new_devices_get_zero_rates() {
    let all = reports("sata-host");
    let sdc = all.iter().find(|r| r.name == "sdc").unwrap();
    assert_eq!(sdc.rate_status, RateStatus::CounterReset);
    assert_eq!((sdc.read_iops, sdc.utilization), (0.0, 0.0));

    // nvme-host t1 against sata-host t0: every device is new (none share a name)...
    let t0 = sample("sata-host/t0");
    let mut t1 = sample("nvme-host/t1");
    let rs = build(&t0, &t1, Duration::from_secs(2));
    let by_name =
        |rs: &[DeviceReport], n: &str| rs.iter().find(|r| r.name == n).unwrap().rate_status;
    assert_eq!(by_name(&rs, "nvme0n1"), RateStatus::NewDevice);
    // ...except loop0, whose diskseq matches (3) but whose counters went down.
    assert_eq!(by_name(&rs, "loop0"), RateStatus::CounterReset);
    // A changed diskseq is a reset even when the counters only grew.
    let t0 = sample("nvme-host/t0");
    t1.devices[1].info.diskseq = Some(42);
    let rs = build(&t0, &t1, Duration::from_secs(2));
    assert_eq!(by_name(&rs, "nvme0n1"), RateStatus::CounterReset);
    assert_eq!(by_name(&rs, "nvme1n1"), RateStatus::Ok);
}

#[test]
fn converts_to_the_grpc_message() {
    let all = reports("nvme-host");
    let stats = proto::DeviceStats::from(&all[1]);
    assert_eq!(
        stats,
        proto::DeviceStats {
            name: "nvme0n1".into(),
            kind: proto::DeviceKind::Nvme as i32,
            rotational: false,
            size_bytes: 1_000_204_886_016,
            model: "Samsung SSD 980 PRO 1TB".into(),
            serial: "S5GXNF0R912345A".into(),
            transport: "nvme".into(),
            read_iops: 2000.0,
            write_iops: 500.0,
            read_bytes_per_sec: 16_384_000.0,
            write_bytes_per_sec: 4_096_000.0,
            read_latency_ms: 0.2,
            write_latency_ms: 0.5,
            utilization: 0.5,
            queue_depth: 0.65,
            aliases: vec![],
        }
    );
    let kinds: Vec<i32> = [
        DeviceKind::Nvme,
        DeviceKind::SataSsd,
        DeviceKind::Hdd,
        DeviceKind::Virtual,
    ]
    .into_iter()
    .map(|k| proto::DeviceKind::from(k) as i32)
    .collect();
    assert_eq!(kinds, [1, 2, 3, 4]);
    assert_eq!(
        proto::DeviceStats::from(&all[0]).kind(),
        proto::DeviceKind::Virtual
    );
}
