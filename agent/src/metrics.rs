//! The agent's own Prometheus metrics, served in the text format on `GET /metrics`.
//!
//! | metric | type | labels |
//! |--------|------|--------|
//! | `couchestor_agent_up` | gauge (1) | |
//! | `couchestor_agent_device_read_iops` / `_write_iops` | gauge | device, kind |
//! | `couchestor_agent_device_read_bytes_per_second` / `_write_bytes_per_second` | gauge | device, kind |
//! | `couchestor_agent_device_read_latency_seconds` / `_write_latency_seconds` | gauge | device, kind |
//! | `couchestor_agent_device_utilization` (0..1) | gauge | device, kind |
//! | `couchestor_agent_device_queue_depth` | gauge | device, kind |
//! | `couchestor_agent_device_size_bytes` | gauge | device, kind |
//! | `couchestor_agent_sample_errors_total` | counter | |
//! | `couchestor_agent_last_sample_timestamp_seconds` | gauge | |
//! | `couchestor_agent_sample_interval_seconds` | gauge | |
//! | `couchestor_agent_ec_shards_missing` | gauge: this agent's shards of the archive missing or unusable (light check) | archive |
//! | `couchestor_agent_ec_shards_present` | gauge: this agent's shards of the archive in good order | archive |
//! | `couchestor_agent_ec_last_check_timestamp_seconds` | gauge: Unix time of the latest light check | |
//! | `couchestor_agent_ec_check_errors_total` | counter: light checks that failed, plus shard directories a light check could not list (one per directory per check) | |
//! | `couchestor_agent_ec_dir_errors` | gauge: 1 while the latest light check could not list the shard directory (dead or unmounted disk), else 0 | dir |
//! | `couchestor_agent_io_uring_bytes_total` / `couchestor_agent_io_sync_bytes_total` | counter: archive-engine bytes through io_uring / pread-pwrite | |
//! | `couchestor_agent_io_direct_fallbacks_total` | counter: files switched from O_DIRECT to buffered I/O | |
//! | `couchestor_agent_ec_degraded_reads_total` | counter: stripes read by this process's archive readers (ColdTier Restore, repairing Verify) that rebuilt a missing or corrupt block | |
//!
//! Device series are replaced at every snapshot, so a removed disk's series disappear.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::io;
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{Encoder, Gauge, GaugeVec, IntCounter, IntGaugeVec, Opts, Registry, TextEncoder};

use crate::report::DeviceReport;
use crate::server::sampler::Snapshot;

/// Reads one gauge's value from a device report.
type DeviceValue = fn(&DeviceReport) -> f64;

/// Per-device gauges: name, help, and how to read the value from a report.
const DEVICE_GAUGES: [(&str, &str, DeviceValue); 9] = [
    ("read_iops", "Read requests completed per second.", |r| {
        r.read_iops
    }),
    ("write_iops", "Write requests completed per second.", |r| {
        r.write_iops
    }),
    ("read_bytes_per_second", "Bytes read per second.", |r| {
        r.read_bytes_per_sec
    }),
    ("write_bytes_per_second", "Bytes written per second.", |r| {
        r.write_bytes_per_sec
    }),
    (
        "read_latency_seconds",
        "Average read completion time.",
        |r| r.read_latency_ms / 1e3,
    ),
    (
        "write_latency_seconds",
        "Average write completion time.",
        |r| r.write_latency_ms / 1e3,
    ),
    (
        "utilization",
        "Share of the interval the device was busy, 0 to 1.",
        |r| r.utilization,
    ),
    (
        "queue_depth",
        "Average number of requests in flight.",
        |r| r.queue_depth,
    ),
    ("size_bytes", "Capacity in bytes.", |r| r.size_bytes as f64),
];

/// The agent's metrics registry.
#[derive(Debug)]
pub struct AgentMetrics {
    registry: Registry,
    devices: Vec<GaugeVec>,
    sample_errors: IntCounter,
    last_sample: Gauge,
    sample_interval: Gauge,
    ec_missing: IntGaugeVec,
    ec_present: IntGaugeVec,
    ec_last_check: Gauge,
    ec_check_errors: IntCounter,
    ec_dir_errors: IntGaugeVec,
    /// Held while device series are replaced and while they are gathered, so a scrape never
    /// sees a half-updated set. It keeps the gauge children of each `(device, kind)` between
    /// snapshots, so an update is one store per value rather than a registry lookup.
    update: Mutex<HashMap<(String, &'static str), Vec<Gauge>>>,
}

impl AgentMetrics {
    /// Registers every metric; `couchestor_agent_up` is 1 from the start.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let up = Gauge::new("couchestor_agent_up", "1 while the agent is running.")?;
        up.set(1.0);
        registry.register(Box::new(up))?;
        let mut devices = Vec::with_capacity(DEVICE_GAUGES.len());
        for (name, help, _) in DEVICE_GAUGES {
            let opts = Opts::new(format!("couchestor_agent_device_{name}"), help);
            let gauge = GaugeVec::new(opts, &["device", "kind"])?;
            registry.register(Box::new(gauge.clone()))?;
            devices.push(gauge);
        }
        let sample_errors = IntCounter::new(
            "couchestor_agent_sample_errors_total",
            "Sysfs readings that failed.",
        )?;
        registry.register(Box::new(sample_errors.clone()))?;
        let last_sample = Gauge::new(
            "couchestor_agent_last_sample_timestamp_seconds",
            "Unix time of the latest sysfs reading the device rates come from.",
        )?;
        registry.register(Box::new(last_sample.clone()))?;
        let sample_interval = Gauge::new(
            "couchestor_agent_sample_interval_seconds",
            "Time between the two readings of the latest device rates.",
        )?;
        registry.register(Box::new(sample_interval.clone()))?;
        let ec_missing = IntGaugeVec::new(
            Opts::new(
                "couchestor_agent_ec_shards_missing",
                "Shards of the erasure-coded archive on this agent that are missing or unusable \
                 (light check of manifests and shard files).",
            ),
            &["archive"],
        )?;
        registry.register(Box::new(ec_missing.clone()))?;
        let ec_present = IntGaugeVec::new(
            Opts::new(
                "couchestor_agent_ec_shards_present",
                "Shards of the erasure-coded archive on this agent in good order.",
            ),
            &["archive"],
        )?;
        registry.register(Box::new(ec_present.clone()))?;
        let ec_last_check = Gauge::new(
            "couchestor_agent_ec_last_check_timestamp_seconds",
            "Unix time of the latest light check of the archives in the shard directories.",
        )?;
        registry.register(Box::new(ec_last_check.clone()))?;
        let ec_check_errors = IntCounter::new(
            "couchestor_agent_ec_check_errors_total",
            "Light checks of the shard directories that failed.",
        )?;
        registry.register(Box::new(ec_check_errors.clone()))?;
        let ec_dir_errors = IntGaugeVec::new(
            Opts::new(
                "couchestor_agent_ec_dir_errors",
                "1 while the latest light check could not list the shard directory (its \
                 archives' shards there count as missing), else 0.",
            ),
            &["dir"],
        )?;
        registry.register(Box::new(ec_dir_errors.clone()))?;
        registry.register(Box::new(IoTotals::new()?))?;
        Ok(Self {
            registry,
            devices,
            sample_errors,
            last_sample,
            sample_interval,
            ec_missing,
            ec_present,
            ec_last_check,
            ec_check_errors,
            ec_dir_errors,
            update: Mutex::new(HashMap::new()),
        })
    }

    /// Replaces the cold-tier series with the result of a light check (archives no longer
    /// reported lose their series); each directory that could not be listed counts as a
    /// check error.
    pub fn observe_ec(&self, archives: &[ArchiveHealth], dirs: &[DirHealth]) {
        let _guard = self.update.lock().unwrap_or_else(PoisonError::into_inner);
        self.ec_missing.reset();
        self.ec_present.reset();
        self.ec_dir_errors.reset();
        for d in dirs {
            let failed = d.error.is_some();
            self.ec_dir_errors
                .with_label_values(&[d.dir.as_str()])
                .set(i64::from(failed));
            if failed {
                self.ec_check_errors.inc();
            }
        }
        for a in archives {
            self.ec_missing
                .with_label_values(&[a.archive.as_str()])
                .set(a.missing as i64);
            self.ec_present
                .with_label_values(&[a.archive.as_str()])
                .set(a.present as i64);
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or_default();
        self.ec_last_check.set(now);
    }

    /// Counts a failed light check.
    pub fn ec_check_failed(&self) {
        self.ec_check_errors.inc();
    }

    /// Replaces the device series with those of `snapshot`: devices no longer present (or
    /// whose kind changed) lose their series.
    pub fn observe(&self, snapshot: &Snapshot) {
        let mut series = self.update.lock().unwrap_or_else(PoisonError::into_inner);
        let mut seen = HashSet::with_capacity(snapshot.devices.len());
        for report in &snapshot.devices {
            let key = (report.name.clone(), report.kind.as_str());
            let children = series.entry(key.clone()).or_insert_with(|| {
                self.devices
                    .iter()
                    .map(|g| g.with_label_values(&[report.name.as_str(), report.kind.as_str()]))
                    .collect()
            });
            for (child, (_, _, value)) in children.iter().zip(DEVICE_GAUGES) {
                child.set(value(report));
            }
            seen.insert(key);
        }
        series.retain(|(name, kind), _| {
            let keep = seen.contains(&(name.clone(), *kind));
            if !keep {
                for g in &self.devices {
                    if let Err(e) = g.remove_label_values(&[name.as_str(), kind]) {
                        tracing::debug!(device = %name, error = %e, "no series to remove");
                    }
                }
            }
            keep
        });
        self.last_sample.set(snapshot.timestamp_ms as f64 / 1e3);
        self.sample_interval.set(snapshot.interval_ms as f64 / 1e3);
    }

    /// Counts a failed sysfs reading.
    pub fn sample_failed(&self) {
        self.sample_errors.inc();
    }

    /// Every metric in the Prometheus text format.
    pub fn render(&self) -> Result<String, prometheus::Error> {
        let families = {
            let _guard = self.update.lock().unwrap_or_else(PoisonError::into_inner);
            self.registry.gather()
        };
        let mut text = Vec::new();
        TextEncoder::new().encode(&families, &mut text)?;
        String::from_utf8(text).map_err(|e| prometheus::Error::Msg(e.to_string()))
    }
}

/// The light-check health of one archive on this agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveHealth {
    /// Archive id.
    pub archive: String,
    /// This agent's shards of it missing or unusable.
    pub missing: usize,
    /// This agent's shards of it in good order.
    pub present: usize,
    /// What is wrong, per copy.
    pub reasons: Vec<String>,
}

/// The light-check health of one shard directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirHealth {
    /// The directory.
    pub dir: String,
    /// Why it could not be listed, if it could not.
    pub error: Option<String>,
}

/// The archive engine's process-wide I/O and degraded-read totals, read at every scrape.
struct IoTotals {
    descs: Vec<Desc>,
}

/// The archive engine's process-wide counters, read at every scrape.
const IO_TOTALS: [(&str, &str); 4] = [
    (
        "couchestor_agent_io_uring_bytes_total",
        "Archive-engine bytes read and written through io_uring.",
    ),
    (
        "couchestor_agent_io_sync_bytes_total",
        "Archive-engine bytes read and written with pread/pwrite (no io_uring, or after an \
         O_DIRECT refusal).",
    ),
    (
        "couchestor_agent_io_direct_fallbacks_total",
        "Files the archive engine switched from O_DIRECT to buffered I/O.",
    ),
    (
        "couchestor_agent_ec_degraded_reads_total",
        DEGRADED_READS_HELP,
    ),
];

/// Help of `couchestor_agent_ec_degraded_reads_total`, the same in `serve` and `nbd serve`.
pub const DEGRADED_READS_HELP: &str = "Stripes of erasure-coded archives read by this process \
     that had to rebuild a missing or corrupt block from the others (NBD reads, ColdTier \
     Restore, repairing Verify).";

impl IoTotals {
    fn new() -> Result<Self, prometheus::Error> {
        let descs = IO_TOTALS
            .iter()
            .map(|(name, help)| {
                Desc::new(name.to_string(), help.to_string(), vec![], HashMap::new())
            })
            .collect::<Result<_, _>>()?;
        Ok(IoTotals { descs })
    }
}

impl Collector for IoTotals {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let t = crate::erasure::process_totals();
        let values = [
            t.uring_bytes,
            t.sync_bytes,
            t.direct_fallbacks,
            crate::erasure::process_degraded_reads(),
        ];
        IO_TOTALS
            .iter()
            .zip(values)
            .filter_map(|((name, help), v)| {
                let c = IntCounter::new(*name, *help).ok()?;
                c.inc_by(v);
                c.collect().pop()
            })
            .collect()
    }
}

/// A set of metrics that renders itself in the Prometheus text format.
pub trait Exposition: Send + Sync + 'static {
    /// Every metric, in the text format.
    fn render(&self) -> Result<String, prometheus::Error>;
}

impl Exposition for AgentMetrics {
    fn render(&self) -> Result<String, prometheus::Error> {
        AgentMetrics::render(self)
    }
}

async fn metrics_handler<M: Exposition>(State(metrics): State<Arc<M>>) -> Response {
    match metrics.render() {
        Ok(text) => ([(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)], text).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// Serves `GET /metrics` on `listener` (plain HTTP/1.1) until `shutdown` completes.
pub async fn serve<M: Exposition>(
    listener: tokio::net::TcpListener,
    metrics: Arc<M>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(metrics_handler::<M>))
        .with_state(metrics);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;
    use std::time::{Duration, Instant};

    use super::*;
    use crate::report;
    use crate::sysfs::Sysfs;

    fn snapshot(devices: Vec<DeviceReport>) -> Snapshot {
        Snapshot {
            timestamp_ms: 2000,
            interval_ms: 2000,
            devices,
            taken_at: Instant::now(),
            aliases: BTreeMap::new(),
        }
    }

    #[test]
    fn device_series_follow_the_snapshots_and_vanish_with_their_disk() {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/nvme-host");
        let t0 = Sysfs::new(fixtures.join("t0")).sample().unwrap();
        let t1 = Sysfs::new(fixtures.join("t1")).sample().unwrap();
        let reports = report::build(&t0, &t1, Duration::from_secs(2));
        let m = AgentMetrics::new().unwrap();

        m.observe(&snapshot(reports.clone()));
        let text = m.render().unwrap();
        let line = r#"couchestor_agent_device_read_iops{device="nvme0n1",kind="nvme"} 2000"#;
        assert!(text.contains(line), "{text}");
        assert!(text.contains(r#"device="nvme1n1""#), "{text}");

        // nvme1n1 is gone and nvme0n1 went quiet.
        let mut quiet: Vec<DeviceReport> = reports
            .into_iter()
            .filter(|r| r.name != "nvme1n1")
            .collect();
        for r in &mut quiet {
            r.read_iops = 0.0;
        }
        m.observe(&snapshot(quiet));
        let text = m.render().unwrap();
        assert!(!text.contains(r#"device="nvme1n1""#), "{text}");
        let line = r#"couchestor_agent_device_read_iops{device="nvme0n1",kind="nvme"} 0"#;
        assert!(text.contains(line), "{text}");
    }

    #[test]
    fn an_unreadable_shard_directory_is_a_series_and_a_check_error() {
        let m = AgentMetrics::new().unwrap();
        let dir = |d: &str, error: Option<&str>| DirHealth {
            dir: d.into(),
            error: error.map(str::to_string),
        };
        let lost = ArchiveHealth {
            archive: "a1".into(),
            missing: 1,
            present: 0,
            reasons: vec![],
        };
        let dirs = [dir("/d0", Some("cannot list /d0")), dir("/d1", None)];
        m.observe_ec(std::slice::from_ref(&lost), &dirs);
        m.observe_ec(&[lost], &dirs);
        let text = m.render().unwrap();
        for line in [
            r#"couchestor_agent_ec_dir_errors{dir="/d0"} 1"#,
            r#"couchestor_agent_ec_dir_errors{dir="/d1"} 0"#,
            r#"couchestor_agent_ec_shards_missing{archive="a1"} 1"#,
            "couchestor_agent_ec_check_errors_total 2",
        ] {
            assert!(text.contains(line), "no {line}:\n{text}");
        }
        m.observe_ec(&[], &[dir("/d0", None), dir("/d1", None)]);
        let text = m.render().unwrap();
        assert!(
            text.contains(r#"couchestor_agent_ec_dir_errors{dir="/d0"} 0"#),
            "{text}"
        );
        assert!(
            text.contains("couchestor_agent_ec_check_errors_total 2"),
            "{text}"
        );
    }
}
