//! The scorecard of a run, as JSON or as a text table.

use serde::Serialize;

use super::cluster::GIB;
use super::engine::EngineStats;
use super::policy::Watermarks;
use super::rate::Prometheus;
use super::score::Bounds;
use super::sim::{Outcome, SimConfig};
use super::workload::Observe;

/// The per-policy metrics (see `docs/simulate.md` §Metrics).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Metrics {
    /// `couchestor` or `baseline`.
    pub policy: &'static str,
    /// What carried out the moves: `tier` (the tier model) or `mayastor` (the move engine
    /// against the Mayastor simulator).
    pub backend: &'static str,
    /// Σ true IOPS served by fast-tier volumes ÷ Σ true IOPS, over all samples.
    pub hot_share: f64,
    /// The same for the clairvoyant per-sample fractional knapsack at the full fast capacity.
    pub oracle_hot_share: f64,
    /// `hot_share / oracle_hot_share`.
    pub oracle_ratio: f64,
    /// The oracle at the usable capacity (fast capacity minus the policy's headroom).
    pub oracle_usable_hot_share: f64,
    /// `hot_share / oracle_usable_hot_share`.
    pub oracle_usable_ratio: f64,
    /// The best fixed placement per day in hindsight (a reference, not a bound).
    pub oracle_daily_hot_share: f64,
    /// `hot_share / oracle_daily_hot_share`.
    pub oracle_daily_ratio: f64,
    /// Upper bound on the hot share of any policy that never returns a volume to a tier
    /// within 24 h of leaving it (clairvoyant, instant moves, full capacity; `bound.rs`).
    pub zero_ping_pong_bound_hot_share: Option<f64>,
    /// `hot_share / zero_ping_pong_bound_hot_share`.
    pub zero_ping_pong_bound_ratio: Option<f64>,
    /// The same bound at the usable capacity (fast capacity minus the policy's headroom):
    /// the most any zero-ping-pong policy that keeps its headroom free can serve, so
    /// `zero_ping_pong_usable_bound_hot_share / oracle_hot_share` is the ceiling of such a
    /// policy's `oracle_ratio`.
    pub zero_ping_pong_usable_bound_hot_share: Option<f64>,
    /// `hot_share / zero_ping_pong_usable_bound_hot_share`.
    pub zero_ping_pong_usable_bound_ratio: Option<f64>,
    /// Completed moves.
    pub moves: u64,
    /// GiB copied by completed moves (size × replicas).
    pub gib_moved: f64,
    /// `gib_moved` per simulated day.
    pub gib_moved_per_day: f64,
    /// `moves / volumes / days`.
    pub moves_per_volume_per_day: f64,
    /// Completed moves that returned a volume to the tier it left less than 24 h earlier.
    pub ping_pongs: u64,
    /// Moves that could not start because the target tier was full.
    pub failed_moves: u64,
    /// Moves still running when the run ended (not counted in `moves`).
    pub moves_in_flight: u32,
    /// Volume-minutes an oracle-top volume spent on the slow tier.
    pub slo_minutes: f64,
    /// Median minutes from a hot-set shift until 90 % of the new oracle top set is on the fast
    /// tier; `null` when the median shift never got there before the next shift.
    pub reaction_time_minutes: Option<f64>,
    /// The same with 90 % of the new top set's IOPS instead of 90 % of its members.
    pub reaction_time_iops_minutes: Option<f64>,
    /// Hot-set shifts during the run.
    pub hot_set_shifts: u64,
    /// Shifts that reached 90 % before the next shift.
    pub shifts_reacted: u64,
    /// Mean fast-tier occupancy, % of capacity.
    pub mean_fast_occupancy_percent: f64,
    /// Peak fast-tier occupancy, % of capacity.
    pub peak_fast_occupancy_percent: f64,
    /// With `backend: mayastor`: the migrations the engine ran and the removal audit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mayastor: Option<EngineStats>,
}

impl Metrics {
    /// Metrics of one outcome.
    pub fn new(o: &Outcome, cfg: &SimConfig, bounds: Option<Bounds>) -> Self {
        let s = &o.score;
        let div = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
        let gib_moved = o.stats.bytes_moved as f64 / GIB as f64;
        Metrics {
            policy: o.kind.as_str(),
            backend: o.backend.as_str(),
            hot_share: s.hot_share,
            oracle_hot_share: s.oracle_hot_share,
            oracle_ratio: div(s.hot_share, s.oracle_hot_share),
            oracle_usable_hot_share: s.oracle_usable_hot_share,
            oracle_usable_ratio: div(s.hot_share, s.oracle_usable_hot_share),
            oracle_daily_hot_share: s.oracle_daily_hot_share,
            oracle_daily_ratio: div(s.hot_share, s.oracle_daily_hot_share),
            zero_ping_pong_bound_hot_share: bounds.map(|b| b.full),
            zero_ping_pong_bound_ratio: bounds.map(|b| div(s.hot_share, b.full)),
            zero_ping_pong_usable_bound_hot_share: bounds.map(|b| b.usable),
            zero_ping_pong_usable_bound_ratio: bounds.map(|b| div(s.hot_share, b.usable)),
            moves: o.stats.completed,
            gib_moved,
            gib_moved_per_day: div(gib_moved, cfg.days),
            moves_per_volume_per_day: div(
                o.stats.completed as f64,
                cfg.workload.volumes as f64 * cfg.days,
            ),
            ping_pongs: o.stats.ping_pongs,
            failed_moves: o.stats.failed,
            moves_in_flight: o.in_flight,
            slo_minutes: s.slo_minutes,
            reaction_time_minutes: s.reaction_time_minutes,
            reaction_time_iops_minutes: s.reaction_time_iops_minutes,
            hot_set_shifts: s.shifts,
            shifts_reacted: s.shifts_reacted,
            mean_fast_occupancy_percent: s.occupancy_mean_peak.0,
            peak_fast_occupancy_percent: s.occupancy_mean_peak.1,
            mayastor: o.mayastor.clone(),
        }
    }
}

/// Minutes as a table cell; `never` for none.
fn minutes(m: Option<f64>) -> String {
    m.map_or("never".into(), |r| format!("{r:.0}"))
}

/// The whole report: the run's setup, the policy's metrics at the top level, and the
/// baseline's metrics under `baseline` (`null` when the baseline is the policy under test).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    /// Scenario preset name.
    pub scenario: String,
    /// Seed.
    pub seed: u64,
    /// Number of volumes.
    pub volumes: usize,
    /// Simulated days.
    pub days: f64,
    /// Replicas per volume.
    pub replicas: u8,
    /// Zipf alpha.
    pub alpha: f64,
    /// Fraction of volumes re-ranked per hot-set shift.
    pub shift_fraction: f64,
    /// Hours between hot-set shifts.
    pub shift_every_hours: f64,
    /// Diurnal amplitude.
    pub diurnal_amplitude: f64,
    /// Fast-tier capacity, % of the total footprint.
    pub fast_tier_percent: f64,
    /// Fast-tier capacity, GiB.
    pub fast_capacity_gib: f64,
    /// Total footprint of all volumes, GiB.
    pub total_footprint_gib: f64,
    /// CoucheStor's fast-tier headroom, %.
    pub headroom_percent: u8,
    /// What the heat scores were computed from (`observed` unless an analysis view was asked).
    pub observe: Observe,
    /// Whose `rate()` range semantics the policies saw the samples through (`"2"` or `"3"`).
    pub prometheus: Prometheus,
    /// Calibrated watermarks.
    pub watermarks: Option<Watermarks>,
    /// The metrics of the policy under test.
    #[serde(flatten)]
    pub metrics: Metrics,
    /// The baseline on the same workload, when the policy under test is CoucheStor.
    pub baseline: Option<Metrics>,
    /// Where the SVG was written.
    pub svg: Option<String>,
}

impl Report {
    /// Report of a run and its optional baseline comparison.
    pub fn new(
        scenario: &str,
        cfg: &SimConfig,
        primary: &Outcome,
        baseline: Option<&Outcome>,
        svg: Option<String>,
    ) -> Self {
        let w = &cfg.workload;
        Report {
            scenario: scenario.to_owned(),
            seed: cfg.seed,
            volumes: w.volumes,
            days: cfg.days,
            replicas: w.replicas,
            alpha: w.alpha,
            shift_fraction: w.shift_fraction,
            shift_every_hours: w.shift_every_secs as f64 / 3600.0,
            diurnal_amplitude: w.diurnal_amplitude,
            fast_tier_percent: cfg.fast_tier_percent,
            fast_capacity_gib: primary.fast_capacity as f64 / GIB as f64,
            total_footprint_gib: primary.total_footprint as f64 / GIB as f64,
            headroom_percent: cfg.policy.headroom_percent,
            observe: cfg.observe,
            prometheus: cfg.prometheus,
            watermarks: primary.watermarks,
            metrics: Metrics::new(primary, cfg, primary.bounds),
            baseline: baseline.map(|b| Metrics::new(b, cfg, primary.bounds)),
            svg,
        }
    }

    /// A readable table: one column per policy.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let mut line = |s: String| {
            out.push_str(&s);
            out.push('\n');
        };
        line(format!(
            "scenario {}  seed {}  volumes {} (replicas {})  {} days  alpha {}  shift {:.0}% every {}h  diurnal A {}",
            self.scenario,
            self.seed,
            self.volumes,
            self.replicas,
            self.days,
            self.alpha,
            self.shift_fraction * 100.0,
            self.shift_every_hours,
            self.diurnal_amplitude
        ));
        line(format!(
            "fast tier {}% of the footprint: {:.0} GiB of {:.0} GiB, {}% kept free",
            self.fast_tier_percent,
            self.fast_capacity_gib,
            self.total_footprint_gib,
            self.headroom_percent
        ));
        line(format!(
            "heat seen through rate(...[5m]) as Prometheus {} computes it",
            self.prometheus.version()
        ));
        if let Some(view) = self.observe.analysis_note() {
            line(format!(
                "analysis view: heat computed from {view}, not from observed samples"
            ));
        }
        match self.watermarks {
            Some(Watermarks {
                density: Some(d),
                promote_above,
                demote_below,
            }) => line(format!(
                "watermarks (calibrated after the first window): promote above {:.0} IOPS per TiB (and {promote_above:.1} IOPS), demote below {:.0} IOPS per TiB (or {demote_below:.1} IOPS)",
                d.promote_above, d.demote_below
            )),
            Some(w) => line(format!(
                "watermarks (calibrated after the first window): promote above {:.1} IOPS, demote below {:.1} IOPS",
                w.promote_above, w.demote_below
            )),
            None => {}
        }
        line(String::new());
        let cols: Vec<&Metrics> = std::iter::once(&self.metrics)
            .chain(self.baseline.as_ref())
            .collect();
        let mut header = format!("{:<30}", "metric");
        for m in &cols {
            header.push_str(&format!("{:>14}", m.policy));
        }
        line(header);
        type Cell = fn(&Metrics) -> String;
        let rows: [(&str, Cell); 21] = [
            ("hot_share", |m| format!("{:.4}", m.hot_share)),
            ("oracle_hot_share", |m| format!("{:.4}", m.oracle_hot_share)),
            ("oracle_ratio", |m| format!("{:.4}", m.oracle_ratio)),
            ("oracle_usable_hot_share", |m| {
                format!("{:.4}", m.oracle_usable_hot_share)
            }),
            ("oracle_usable_ratio", |m| {
                format!("{:.4}", m.oracle_usable_ratio)
            }),
            ("oracle_daily_hot_share", |m| {
                format!("{:.4}", m.oracle_daily_hot_share)
            }),
            ("oracle_daily_ratio", |m| {
                format!("{:.4}", m.oracle_daily_ratio)
            }),
            ("moves", |m| m.moves.to_string()),
            ("gib_moved", |m| format!("{:.0}", m.gib_moved)),
            ("gib_moved_per_day", |m| {
                format!("{:.0}", m.gib_moved_per_day)
            }),
            ("moves_per_volume_per_day", |m| {
                format!("{:.3}", m.moves_per_volume_per_day)
            }),
            ("ping_pongs", |m| m.ping_pongs.to_string()),
            ("failed_moves", |m| m.failed_moves.to_string()),
            ("moves_in_flight", |m| m.moves_in_flight.to_string()),
            ("slo_minutes", |m| format!("{:.0}", m.slo_minutes)),
            ("reaction_time_minutes", |m| {
                minutes(m.reaction_time_minutes)
            }),
            ("reaction_time_iops_minutes", |m| {
                minutes(m.reaction_time_iops_minutes)
            }),
            ("hot_set_shifts", |m| m.hot_set_shifts.to_string()),
            ("shifts_reacted", |m| m.shifts_reacted.to_string()),
            ("mean_fast_occupancy_percent", |m| {
                format!("{:.1}", m.mean_fast_occupancy_percent)
            }),
            ("peak_fast_occupancy_percent", |m| {
                format!("{:.1}", m.peak_fast_occupancy_percent)
            }),
        ];
        for (name, cell) in rows {
            let mut row = format!("{name:<30}");
            for m in &cols {
                row.push_str(&format!("{:>14}", cell(m)));
            }
            line(row);
        }
        let backends: Vec<String> = cols
            .iter()
            .map(|m| format!("{} on {}", m.policy, m.backend))
            .collect();
        line(format!("\nbackend: {}", backends.join(", ")));
        if let Some(e) = &self.metrics.mayastor {
            line(format!(
                "mayastor {} simulator, {} nodes x (NVMe + SATA pool), rebuild {} MiB/s, migration timeout {} min; {} fast-tier volume(s) did not fit on NVMe at start",
                e.profile,
                e.nodes,
                e.rebuild_mib_per_sec,
                e.migration_timeout_minutes,
                e.initial_fallbacks
            ));
            line(format!(
                "migrations: {} started, {} completed ({} through every phase), {} aborted {:?}, {} in flight; {} engine steps, {} retried",
                e.migrations_started,
                e.migrations_completed,
                e.completed_through_every_phase,
                e.migrations_aborted,
                e.abort_reasons,
                e.migrations_in_flight,
                e.engine_steps,
                e.transient_retries
            ));
            line(format!(
                "removal audit: passed {} volume checks after engine steps and {} replica removals ({} of healthy old replicas); {} volume(s) split across tiers at the end",
                e.audited_volume_steps,
                e.replica_removals,
                e.healthy_removals,
                e.split_volumes_at_end
            ));
        }
        if let Some(svg) = &self.svg {
            line(format!("\nSVG: {svg}"));
        }
        out
    }
}
