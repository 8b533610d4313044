//! The controller's Prometheus metrics.

use couchestor_common::plan::HoldReason;
use couchestor_common::storagepolicy::PolicyPhase;
use prometheus::{
    Encoder, Gauge, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// The `tier` label values of `storage_operator_volumes`, indexed by [`couchestor_common::Tier`]
/// (`unknown` last: a volume whose replicas sit in no tier's pools).
pub const TIER_LABELS: [&str; 4] = ["hot", "warm", "cold", "unknown"];

/// The `phase` label values of `storage_operator_policy_phase`.
pub const PHASES: [PolicyPhase; 4] = [
    PolicyPhase::Pending,
    PolicyPhase::Active,
    PolicyPhase::Disabled,
    PolicyPhase::Error,
];

/// The `result` label values of `storage_operator_reconcile_total`.
pub const RESULTS: [&str; 3] = ["ok", "invalid", "error"];

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

    /// Removes every series labelled with `policy`, once the policy is deleted or no longer
    /// matches `--policy-selector`, so a gone policy neither alerts nor counts in sums.
    /// Returns how many series were removed. (A removal fails only for a series the policy
    /// never had, e.g. `result="error"` of a policy that never failed.)
    pub fn forget_policy(&self, policy: &str) -> usize {
        let mut removed = self.forget_decision(policy);
        let mut remove = |r: prometheus::Result<()>| removed += usize::from(r.is_ok());
        for result in RESULTS {
            remove(self.reconcile_total.remove_label_values(&[policy, result]));
        }
        remove(self.reconcile_duration.remove_label_values(&[policy]));
        for phase in PHASES {
            remove(
                self.policy_phase
                    .remove_label_values(&[policy, phase_label(phase)]),
            );
        }
        removed
    }

    /// Removes the series that describe the policy's last decision (volumes, holds, planned
    /// moves, heat, metrics availability): a policy in phase Error decides nothing, and its
    /// last values would go on alerting. Returns how many series were removed.
    pub fn forget_decision(&self, policy: &str) -> usize {
        let mut removed = 0;
        let mut remove = |r: prometheus::Result<()>| removed += usize::from(r.is_ok());
        remove(self.volume_heat.remove_label_values(&[policy]));
        for tier in TIER_LABELS {
            remove(self.volumes.remove_label_values(&[policy, tier]));
        }
        for reason in HoldReason::LABELS {
            remove(self.held_volumes.remove_label_values(&[policy, reason]));
        }
        remove(self.planned_moves.remove_label_values(&[policy]));
        remove(self.metrics_available.remove_label_values(&[policy]));
        removed
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

/// The `phase` label of a policy phase (`Pending`, `Active`, `Disabled`, `Error`).
pub fn phase_label(phase: PolicyPhase) -> &'static str {
    match phase {
        PolicyPhase::Pending => "Pending",
        PolicyPhase::Active => "Active",
        PolicyPhase::Disabled => "Disabled",
        PolicyPhase::Error => "Error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forgetting_a_policy_removes_all_its_series_and_only_its() {
        let m = Metrics::new().unwrap();
        for p in ["gone", "kept"] {
            m.reconcile_total.with_label_values(&[p, "ok"]).inc();
            m.reconcile_duration.with_label_values(&[p]).observe(0.1);
            m.volume_heat.with_label_values(&[p]).observe(5.0);
            for tier in TIER_LABELS {
                m.volumes.with_label_values(&[p, tier]).set(1);
            }
            for reason in HoldReason::LABELS {
                m.held_volumes.with_label_values(&[p, reason]).set(0);
            }
            m.planned_moves.with_label_values(&[p]).set(2);
            m.metrics_available.with_label_values(&[p]).set(1);
            for phase in PHASES {
                m.policy_phase
                    .with_label_values(&[p, phase_label(phase)])
                    .set(0);
            }
        }
        let expected = 1 + 2 + TIER_LABELS.len() + HoldReason::LABELS.len() + 2 + PHASES.len();
        assert_eq!(m.forget_policy("gone"), expected);
        let text = m.render();
        assert!(!text.contains("policy=\"gone\""), "{text}");
        assert!(
            text.contains("storage_operator_volumes{policy=\"kept\",tier=\"hot\"} 1"),
            "{text}"
        );
        // Already gone: nothing more to remove.
        assert_eq!(m.forget_policy("gone"), 0);
        // A policy in phase Error keeps its phase and counters, not its last decision.
        let decision = 1 + TIER_LABELS.len() + HoldReason::LABELS.len() + 2;
        assert_eq!(m.forget_decision("kept"), decision);
        let text = m.render();
        assert!(
            text.contains("storage_operator_reconcile_total{policy=\"kept\",result=\"ok\"} 1"),
            "{text}"
        );
        assert!(
            !text.contains("storage_operator_volumes{policy=\"kept\""),
            "{text}"
        );
    }
}
