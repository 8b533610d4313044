//! The controller's Prometheus metrics.

use prometheus::{
    Encoder, Gauge, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// Every metric the controller exports, registered in one registry.
pub struct Metrics {
    /// The registry `/metrics` serves.
    pub registry: Registry,
    /// `storage_operator_reconcile_total{policy,result}`.
    pub reconcile_total: IntCounterVec,
    /// `storage_operator_reconcile_duration_seconds{policy}`.
    pub reconcile_duration: HistogramVec,
    /// `storage_operator_migrations_total{status="success|failed|aborted"}`.
    pub migrations_total: IntCounterVec,
    /// `storage_operator_active_migrations`.
    pub active_migrations: IntGauge,
    /// `storage_operator_volume_heat_iops{policy}`: heat distribution of known volumes.
    pub volume_heat: HistogramVec,
    /// `storage_operator_volumes{policy,tier}`: volumes per tier (tier="unknown" included).
    pub volumes: IntGaugeVec,
    /// `storage_operator_held_volumes{policy,reason}`: volumes the last plan held, per
    /// [`couchestor_common::plan::HoldReason::label`] (every reason present, 0 included).
    pub held_volumes: IntGaugeVec,
    /// `storage_operator_planned_moves{policy}`: moves the last plan wanted to start.
    pub planned_moves: IntGaugeVec,
    /// `storage_operator_metrics_available{policy}`: 1 when the last heat query succeeded.
    pub metrics_available: IntGaugeVec,
    /// `storage_operator_prometheus_requests_total`: HTTP requests sent to Prometheus.
    pub prometheus_requests: IntGauge,
    /// `storage_operator_prometheus_query_seconds_total`: time spent in answered heat queries.
    pub prometheus_query_seconds: Gauge,
    /// `storage_operator_heat_series`: series (volumes) in the last heat query's answer.
    pub heat_series: IntGauge,
    /// `storage_operator_agent_up{node}`: 1 when the node's agent answered the last poll.
    pub agent_up: IntGaugeVec,
    /// `storage_operator_policy_phase{policy,phase}`: 1 for the policy's current phase, 0 for
    /// the others.
    pub policy_phase: IntGaugeVec,
}

impl Metrics {
    /// Creates and registers the metrics.
    pub fn new() -> prometheus::Result<Self> {
        let registry = Registry::new();
        let reg = |c: Box<dyn prometheus::core::Collector>| registry.register(c);
        let reconcile_total = IntCounterVec::new(
            Opts::new(
                "storage_operator_reconcile_total",
                "Policy reconciles by result.",
            ),
            &["policy", "result"],
        )?;
        let reconcile_duration = HistogramVec::new(
            HistogramOpts::new(
                "storage_operator_reconcile_duration_seconds",
                "Time to observe, decide and update one policy.",
            )
            .buckets(vec![
                0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ]),
            &["policy"],
        )?;
        let migrations_total = IntCounterVec::new(
            Opts::new(
                "storage_operator_migrations_total",
                "Finished migrations by outcome.",
            ),
            &["status"],
        )?;
        for s in ["success", "failed", "aborted"] {
            migrations_total.with_label_values(&[s]);
        }
        let active_migrations = IntGauge::new(
            "storage_operator_active_migrations",
            "Migrations in progress.",
        )?;
        let volume_heat = HistogramVec::new(
            HistogramOpts::new(
                "storage_operator_volume_heat_iops",
                "Decayed IOPS of volumes with known heat.",
            )
            .buckets(vec![
                0.0, 1.0, 10.0, 50.0, 100.0, 500.0, 1000.0, 5000.0, 10000.0, 50000.0,
            ]),
            &["policy"],
        )?;
        let volumes = IntGaugeVec::new(
            Opts::new("storage_operator_volumes", "Watched volumes per tier."),
            &["policy", "tier"],
        )?;
        let held_volumes = IntGaugeVec::new(
            Opts::new(
                "storage_operator_held_volumes",
                "Volumes the last plan left where they are, by reason.",
            ),
            &["policy", "reason"],
        )?;
        let planned_moves = IntGaugeVec::new(
            Opts::new(
                "storage_operator_planned_moves",
                "Moves the last plan wanted to start.",
            ),
            &["policy"],
        )?;
        let metrics_available = IntGaugeVec::new(
            Opts::new(
                "storage_operator_metrics_available",
                "1 when the last heat query of the policy succeeded.",
            ),
            &["policy"],
        )?;
        let prometheus_requests = IntGauge::new(
            "storage_operator_prometheus_requests_total",
            "HTTP requests sent to Prometheus.",
        )?;
        let agent_up = IntGaugeVec::new(
            Opts::new(
                "storage_operator_agent_up",
                "1 when the node agent answered the controller's last poll, 0 when it did not.",
            ),
            &["node"],
        )?;
        let policy_phase = IntGaugeVec::new(
            Opts::new(
                "storage_operator_policy_phase",
                "1 for the phase the policy is in (Pending, Active, Disabled, Error), 0 for the others.",
            ),
            &["policy", "phase"],
        )?;
        let prometheus_query_seconds = Gauge::new(
            "storage_operator_prometheus_query_seconds_total",
            "Seconds spent in answered heat queries (request sent to answer parsed).",
        )?;
        let heat_series = IntGauge::new(
            "storage_operator_heat_series",
            "Series (volumes) in the last heat query's answer.",
        )?;
        reg(Box::new(prometheus_query_seconds.clone()))?;
        reg(Box::new(heat_series.clone()))?;
        reg(Box::new(agent_up.clone()))?;
        reg(Box::new(policy_phase.clone()))?;
        reg(Box::new(reconcile_total.clone()))?;
        reg(Box::new(reconcile_duration.clone()))?;
        reg(Box::new(migrations_total.clone()))?;
        reg(Box::new(active_migrations.clone()))?;
        reg(Box::new(volume_heat.clone()))?;
        reg(Box::new(volumes.clone()))?;
        reg(Box::new(held_volumes.clone()))?;
        reg(Box::new(planned_moves.clone()))?;
        reg(Box::new(metrics_available.clone()))?;
        reg(Box::new(prometheus_requests.clone()))?;
        Ok(Self {
            registry,
            reconcile_total,
            reconcile_duration,
            migrations_total,
            active_migrations,
            volume_heat,
            volumes,
            held_volumes,
            planned_moves,
            metrics_available,
            prometheus_requests,
            prometheus_query_seconds,
            heat_series,
            agent_up,
            policy_phase,
        })
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        // Encoding into a Vec cannot fail for the text format.
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("encode metrics");
        String::from_utf8(buf).expect("metrics are UTF-8")
    }
}
