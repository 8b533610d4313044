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
//!
//! Device series are replaced at every snapshot, so a removed disk's series disappear.

use std::future::Future;
use std::io;
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus::{Encoder, Gauge, GaugeVec, IntCounter, Opts, Registry, TextEncoder};

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
    /// Held while device series are replaced and while they are gathered, so a scrape never
    /// sees a half-updated set.
    update: Mutex<()>,
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
        Ok(Self {
            registry,
            devices,
            sample_errors,
            last_sample,
            sample_interval,
            update: Mutex::new(()),
        })
    }

    /// Replaces the device series with those of `snapshot`.
    pub fn observe(&self, snapshot: &Snapshot) {
        let _guard = self.update.lock().unwrap_or_else(PoisonError::into_inner);
        for (gauge, (_, _, value)) in self.devices.iter().zip(DEVICE_GAUGES) {
            gauge.reset();
            for report in &snapshot.devices {
                gauge
                    .with_label_values(&[report.name.as_str(), report.kind.as_str()])
                    .set(value(report));
            }
        }
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

async fn metrics_handler(State(metrics): State<Arc<AgentMetrics>>) -> Response {
    match metrics.render() {
        Ok(text) => ([(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)], text).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// Serves `GET /metrics` on `listener` (plain HTTP/1.1) until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<AgentMetrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(metrics_handler))
        .with_state(metrics);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
