//! Per-device reports: a device's description joined with its rates over an interval,
//! as printed by `couchestor-agent devices` and served as `DeviceStats` over gRPC.

use std::collections::HashMap;
use std::time::Duration;

use couchestor_proto::agent::v1 as proto;
use serde::Serialize;

use crate::rates::{self, RateStatus, Rates};
use crate::sysfs::{DeviceKind, Sample};

/// One device over one interval. Serialises to the JSON object of `devices --output json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeviceReport {
    /// Kernel name.
    pub name: String,
    /// Media class.
    pub kind: DeviceKind,
    /// `queue/rotational` is 1.
    pub rotational: bool,
    /// Capacity in bytes.
    pub size_bytes: u64,
    /// Model string; empty when unknown.
    pub model: String,
    /// Serial number (or WWID); empty when unknown.
    pub serial: String,
    /// Transport; empty when unknown.
    pub transport: String,
    /// Read requests per second.
    pub read_iops: f64,
    /// Write requests per second.
    pub write_iops: f64,
    /// Bytes read per second.
    pub read_bytes_per_sec: f64,
    /// Bytes written per second.
    pub write_bytes_per_sec: f64,
    /// Average read completion time, milliseconds.
    pub read_latency_ms: f64,
    /// Average write completion time, milliseconds.
    pub write_latency_ms: f64,
    /// Busy share of the interval, 0 to 1.
    pub utilization: f64,
    /// Average number of requests in flight.
    pub queue_depth: f64,
    /// Requests in flight at the second reading.
    pub in_flight: u64,
    /// Whether the rates are real or zeros standing in for an unusable interval.
    pub rate_status: RateStatus,
}

/// Reports for every device of `current`, with rates against `previous` over `elapsed`.
///
/// Devices are matched by name; a device missing from `previous`, or whose `diskseq`
/// changed (re-created under the same name), gets zero rates with the matching status.
/// Devices gone from `current` are left out.
pub fn build(previous: &Sample, current: &Sample, elapsed: Duration) -> Vec<DeviceReport> {
    let before: HashMap<&str, _> = previous
        .devices
        .iter()
        .map(|d| (d.info.name.as_str(), d))
        .collect();
    current
        .devices
        .iter()
        .map(|device| {
            let rates = match before.get(device.info.name.as_str()) {
                None => Rates::zero(RateStatus::NewDevice),
                Some(old) if old.info.diskseq != device.info.diskseq => {
                    Rates::zero(RateStatus::CounterReset)
                }
                Some(old) => rates::compute(&old.counters, &device.counters, elapsed),
            };
            let info = &device.info;
            DeviceReport {
                name: info.name.clone(),
                kind: info.kind,
                rotational: info.rotational,
                size_bytes: info.size_bytes,
                model: info.model.clone(),
                serial: info.serial.clone(),
                transport: info.transport.clone(),
                read_iops: rates.read_iops,
                write_iops: rates.write_iops,
                read_bytes_per_sec: rates.read_bytes_per_sec,
                write_bytes_per_sec: rates.write_bytes_per_sec,
                read_latency_ms: rates.read_await_ms,
                write_latency_ms: rates.write_await_ms,
                utilization: rates.utilization,
                queue_depth: rates.queue_depth,
                in_flight: device.counters.in_flight,
                rate_status: rates.status,
            }
        })
        .collect()
}

impl From<DeviceKind> for proto::DeviceKind {
    fn from(kind: DeviceKind) -> Self {
        match kind {
            DeviceKind::Nvme => Self::Nvme,
            DeviceKind::SataSsd => Self::SataSsd,
            DeviceKind::Hdd => Self::Hdd,
            DeviceKind::Virtual => Self::Virtual,
        }
    }
}

impl From<&DeviceReport> for proto::DeviceStats {
    fn from(r: &DeviceReport) -> Self {
        Self {
            name: r.name.clone(),
            kind: proto::DeviceKind::from(r.kind).into(),
            rotational: r.rotational,
            size_bytes: r.size_bytes,
            model: r.model.clone(),
            serial: r.serial.clone(),
            transport: r.transport.clone(),
            read_iops: r.read_iops,
            write_iops: r.write_iops,
            read_bytes_per_sec: r.read_bytes_per_sec,
            write_bytes_per_sec: r.write_bytes_per_sec,
            read_latency_ms: r.read_latency_ms,
            write_latency_ms: r.write_latency_ms,
            utilization: r.utilization,
            queue_depth: r.queue_depth,
            aliases: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests;
