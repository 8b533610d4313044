use std::path::Path;
use std::time::Duration;

use super::*;
use crate::sysfs::stat::parse_stat;

/// Counters of `<host>/<snapshot>/block/<dev>/stat` in the fixtures.
fn fixture_counters(host: &str, snapshot: &str, dev: &str) -> IoCounters {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(host)
        .join(snapshot)
        .join("block")
        .join(dev)
        .join("stat");
    parse_stat(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn fixture_rates(host: &str, dev: &str) -> Rates {
    let t0 = fixture_counters(host, "t0", dev);
    let t1 = fixture_counters(host, "t1", dev);
    compute(&t0, &t1, Duration::from_secs(2))
}

const TWO_SECONDS: Duration = Duration::from_secs(2);

#[test]
fn nvme0n1_over_two_seconds() {
    // t0 -> t1: +4000 reads, +64000 sectors read, +800 ms read ticks, +1000 writes,
    // +16000 sectors written, +500 ms write ticks, +1000 ms io_ticks, +1300 ms in queue.
    let r = fixture_rates("nvme-host", "nvme0n1");
    assert_eq!(r.status, RateStatus::Ok);
    assert_eq!(r.read_iops, 2000.0);
    assert_eq!(r.write_iops, 500.0);
    assert_eq!(r.read_bytes_per_sec, 16_384_000.0); // 64000 * 512 / 2: iostat rkB/s 16000
    assert_eq!(r.write_bytes_per_sec, 4_096_000.0); // iostat wkB/s 4000
    assert_eq!(r.read_await_ms, 0.2);
    assert_eq!(r.write_await_ms, 0.5);
    assert_eq!(r.utilization, 0.5);
    assert_eq!(r.queue_depth, 0.65);
}

#[test]
fn sata_ssd_hdd_and_loop_over_two_seconds() {
    let sda = fixture_rates("sata-host", "sda");
    assert_eq!((sda.read_iops, sda.write_iops), (1500.0, 1000.0));
    assert_eq!(
        (sda.read_bytes_per_sec, sda.write_bytes_per_sec),
        (12_288_000.0, 8_192_000.0)
    );
    assert_eq!((sda.read_await_ms, sda.write_await_ms), (0.5, 1.5));
    assert_eq!((sda.utilization, sda.queue_depth), (0.8, 2.25));

    let sdb = fixture_rates("sata-host", "sdb");
    assert_eq!((sdb.read_iops, sdb.write_iops), (100.0, 50.0));
    assert_eq!(
        (sdb.read_bytes_per_sec, sdb.write_bytes_per_sec),
        (819_200.0, 409_600.0)
    );
    assert_eq!((sdb.read_await_ms, sdb.write_await_ms), (8.0, 12.0));
    assert_eq!((sdb.utilization, sdb.queue_depth), (0.7, 1.4));

    let loop0 = fixture_rates("sata-host", "loop0");
    assert_eq!((loop0.read_iops, loop0.write_iops), (5.0, 0.0));
    assert_eq!(loop0.read_bytes_per_sec, 20_480.0);
    // No writes: await is 0, not NaN.
    assert_eq!((loop0.read_await_ms, loop0.write_await_ms), (0.2, 0.0));
    assert_eq!((loop0.utilization, loop0.queue_depth), (0.002, 0.001));
}

#[test]
fn replaced_disk_is_a_reset_with_zero_rates() {
    // sdc's counters drop between t0 and t1 (the disk was swapped).
    let r = fixture_rates("sata-host", "sdc");
    assert_eq!(r, Rates::zero(RateStatus::CounterReset));
}

#[test]
fn one_counter_going_backwards_is_a_reset() {
    let t0 = fixture_counters("nvme-host", "t0", "nvme0n1");
    let mut t1 = fixture_counters("nvme-host", "t1", "nvme0n1");
    assert!(!counters_reset(&t0, &t1));
    t1.time_in_queue_ms = t0.time_in_queue_ms - 1;
    assert!(counters_reset(&t0, &t1));
    assert_eq!(
        compute(&t0, &t1, TWO_SECONDS).status,
        RateStatus::CounterReset
    );
    // A gauge going down is normal.
    let mut t1 = fixture_counters("nvme-host", "t1", "nvme0n1");
    t1.in_flight = 0;
    assert!(!counters_reset(&t0, &t1));
    t1.flush = None;
    assert!(counters_reset(&t0, &t1));
}

#[test]
fn zero_elapsed_gives_zero_rates() {
    let t0 = fixture_counters("nvme-host", "t0", "nvme0n1");
    let t1 = fixture_counters("nvme-host", "t1", "nvme0n1");
    assert_eq!(
        compute(&t0, &t1, Duration::ZERO),
        Rates::zero(RateStatus::ZeroElapsed)
    );
}

#[test]
fn idle_device_has_zero_rates_and_no_nan() {
    let t0 = fixture_counters("nvme-host", "t0", "loop0");
    let r = compute(&t0, &t0, TWO_SECONDS);
    assert_eq!(r, Rates::zero(RateStatus::Ok));
}

#[test]
fn utilization_is_capped_at_one_and_subsecond_intervals_scale() {
    let t0 = IoCounters::default();
    // io_ticks can run slightly ahead of the sampler's clock.
    let t1 = IoCounters {
        io_ticks_ms: 105,
        time_in_queue_ms: 400,
        read_ios: 25,
        ..t0
    };
    let r = compute(&t0, &t1, Duration::from_millis(100));
    assert_eq!(r.utilization, 1.0);
    assert_eq!(r.queue_depth, 4.0);
    assert_eq!(r.read_iops, 250.0);
}
