//! Per-device rates from two counter readings, computed the way `iostat -x` (sysstat)
//! computes them.
//!
//! With `Δx` the change of counter `x` and `t` the elapsed time:
//!
//! | iostat    | here                     | formula                         |
//! |-----------|--------------------------|---------------------------------|
//! | `r/s`     | `read_iops`              | Δread_ios / t                   |
//! | `w/s`     | `write_iops`             | Δwrite_ios / t                  |
//! | `rkB/s`   | `read_bytes_per_sec`     | Δread_sectors × 512 / t         |
//! | `wkB/s`   | `write_bytes_per_sec`    | Δwrite_sectors × 512 / t        |
//! | `r_await` | `read_await_ms`          | Δread_ticks / Δread_ios (0 when no reads)   |
//! | `w_await` | `write_await_ms`         | Δwrite_ticks / Δwrite_ios (0 when no writes) |
//! | `%util`   | `utilization` (0..1)     | Δio_ticks / t(ms), capped at 1  |
//! | `aqu-sz`  | `queue_depth`            | Δtime_in_queue / t(ms)          |
//!
//! `iostat` takes `t` from `/proc/uptime`; callers here pass the monotonic time between
//! the two readings. Sectors are always 512 bytes in these files.

use std::time::Duration;

use serde::Serialize;

use crate::sysfs::IoCounters;

/// Bytes per sector in the kernel's block statistics.
const SECTOR_BYTES: f64 = 512.0;

/// Whether a set of rates describes real activity over the interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RateStatus {
    /// Rates computed from two readings.
    Ok,
    /// A counter went backwards (the device was re-created or its counters reset): rates
    /// are 0 for this interval.
    CounterReset,
    /// The readings are from the same instant: rates are 0.
    ZeroElapsed,
    /// The device appeared during the interval: no earlier reading, rates are 0.
    NewDevice,
}

/// Rates of one device over one interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Rates {
    /// Read requests completed per second (`r/s`).
    pub read_iops: f64,
    /// Write requests completed per second (`w/s`).
    pub write_iops: f64,
    /// Bytes read per second (`rkB/s` × 1024).
    pub read_bytes_per_sec: f64,
    /// Bytes written per second (`wkB/s` × 1024).
    pub write_bytes_per_sec: f64,
    /// Average read completion time in milliseconds (`r_await`).
    pub read_await_ms: f64,
    /// Average write completion time in milliseconds (`w_await`).
    pub write_await_ms: f64,
    /// Share of the interval with at least one request in flight, 0 to 1 (`%util` / 100).
    pub utilization: f64,
    /// Average number of requests in flight (`aqu-sz`).
    pub queue_depth: f64,
    /// Whether the figures are real or zeros standing in for an unusable interval.
    pub status: RateStatus,
}

impl Rates {
    /// All-zero rates with the given status.
    pub fn zero(status: RateStatus) -> Self {
        Self {
            read_iops: 0.0,
            write_iops: 0.0,
            read_bytes_per_sec: 0.0,
            write_bytes_per_sec: 0.0,
            read_await_ms: 0.0,
            write_await_ms: 0.0,
            utilization: 0.0,
            queue_depth: 0.0,
            status,
        }
    }
}

/// True when any cumulative counter is lower in `current` than in `previous`, or the
/// optional discard/flush groups appeared or disappeared.
pub fn counters_reset(previous: &IoCounters, current: &IoCounters) -> bool {
    let (prev, cur) = (previous.cumulative(), current.cumulative());
    prev.len() != cur.len() || prev.iter().zip(&cur).any(|(p, c)| c < p)
}

/// `Δ / per` as f64, or 0 when `per` is 0 (iostat's await rule).
fn ratio(delta: u64, per: u64) -> f64 {
    if per == 0 {
        0.0
    } else {
        delta as f64 / per as f64
    }
}

/// Rates between two readings of the same device taken `elapsed` apart.
///
/// Never negative: a counter that went backwards makes the whole interval a reset
/// (all zeros, [`RateStatus::CounterReset`]); a zero `elapsed` gives
/// [`RateStatus::ZeroElapsed`].
pub fn compute(previous: &IoCounters, current: &IoCounters, elapsed: Duration) -> Rates {
    if counters_reset(previous, current) {
        return Rates::zero(RateStatus::CounterReset);
    }
    if elapsed.is_zero() {
        return Rates::zero(RateStatus::ZeroElapsed);
    }
    // No counter went backwards, so these subtractions cannot underflow.
    let d = |cur: u64, prev: u64| cur - prev;
    let (p, c) = (previous, current);
    let secs = elapsed.as_secs_f64();
    let millis = secs * 1000.0;
    let read_ios = d(c.read_ios, p.read_ios);
    let write_ios = d(c.write_ios, p.write_ios);
    Rates {
        read_iops: read_ios as f64 / secs,
        write_iops: write_ios as f64 / secs,
        read_bytes_per_sec: d(c.read_sectors, p.read_sectors) as f64 * SECTOR_BYTES / secs,
        write_bytes_per_sec: d(c.write_sectors, p.write_sectors) as f64 * SECTOR_BYTES / secs,
        read_await_ms: ratio(d(c.read_ticks_ms, p.read_ticks_ms), read_ios),
        write_await_ms: ratio(d(c.write_ticks_ms, p.write_ticks_ms), write_ios),
        utilization: (d(c.io_ticks_ms, p.io_ticks_ms) as f64 / millis).min(1.0),
        queue_depth: d(c.time_in_queue_ms, p.time_in_queue_ms) as f64 / millis,
        status: RateStatus::Ok,
    }
}

#[cfg(test)]
mod tests;
