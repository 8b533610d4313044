//! The simulation loop: fast-forwarded time, one workload sample per step, a planning cycle
//! every `cycle_secs`, moves completing after `footprint / bandwidth`.

use couchestor_common::Tier;
use indicatif::ProgressBar;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::baseline::baseline;
use super::cluster::{Cluster, GIB, MoveStats, PING_PONG_WINDOW_SECS, SimVolume};
use super::engine::{Engine, EngineStats, MayastorConfig};
use super::policy::{self, PolicyConfig, WatermarkGauge, Watermarks};
use super::rate::{Prometheus, SampleHistory};
use super::score::{Bounds, Hour, Score, Scorer};
use super::workload::{Observe, Workload, WorkloadParams};
use couchestor_common::history::HeatHistory;

/// Unix time of the simulated start: 2026-01-01T00:00:00Z.
pub const T0: i64 = 1_767_225_600;

/// Which decision logic drives the moves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum PolicyKind {
    /// The controller's pipeline: decayed heat, then `plan::plan`.
    Couchestor,
    /// Plain thresholds, no capacity awareness, no cooldown, no density ordering.
    Baseline,
}

impl PolicyKind {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyKind::Couchestor => "couchestor",
            PolicyKind::Baseline => "baseline",
        }
    }
}

/// What carries out the moves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// The tier model: a move takes footprint / bandwidth, then the volume switches tier.
    Tier,
    /// The controller's move engine against the Mayastor simulator, in virtual time.
    Mayastor,
}

impl Backend {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Tier => "tier",
            Backend::Mayastor => "mayastor",
        }
    }
}

/// Everything one run needs.
#[derive(Clone, Debug, PartialEq)]
pub struct SimConfig {
    /// The workload model.
    pub workload: WorkloadParams,
    /// Policy settings.
    pub policy: PolicyConfig,
    /// Seed of every random draw.
    pub seed: u64,
    /// Simulated days.
    pub days: f64,
    /// Fast-tier capacity as a percentage of the total footprint.
    pub fast_tier_percent: f64,
    /// Copy speed of one move, bytes per second.
    pub bandwidth_bps: f64,
    /// What carries out CoucheStor's moves (the baseline always runs on the tier model).
    pub backend: Backend,
    /// Settings of the Mayastor backend.
    pub mayastor: MayastorConfig,
    /// What both policies' heat is computed from.
    pub observe: Observe,
    /// Whose `rate()` range semantics the policies see.
    pub prometheus: Prometheus,
}

/// What one run produced.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The policy that ran.
    pub kind: PolicyKind,
    /// What carried out its moves.
    pub backend: Backend,
    /// The Mayastor backend's engine figures and audit.
    pub mayastor: Option<EngineStats>,
    /// Watermarks calibrated after the first sampling window (`None`: run shorter than that).
    pub watermarks: Option<Watermarks>,
    /// The workload-side scorecard.
    pub score: Score,
    /// Move counters.
    pub stats: MoveStats,
    /// Moves still running at the end.
    pub in_flight: u32,
    /// Per-hour sums for the SVG.
    pub hours: Vec<Hour>,
    /// Fast-tier occupancy per sample for the SVG.
    pub occupancy: Vec<(f64, f64)>,
    /// Hours at which the hot set shifted.
    pub shift_hours: Vec<f64>,
    /// Fast-tier capacity, bytes.
    pub fast_capacity: u64,
    /// Sum of all volume footprints, bytes.
    pub total_footprint: u64,
    /// Upper bounds on the hot share of any policy without ping-pongs on this workload
    /// ([`super::bound`]); computed for the policy under test only.
    pub bounds: Option<Bounds>,
}

/// Total number of workload samples of a run.
pub fn steps(cfg: &SimConfig) -> u64 {
    (cfg.days * 86_400.0 / cfg.workload.sample_secs as f64).round() as u64
}

/// Builds the cluster: a fast tier of `fast_tier_percent` of the total footprint and a slow
/// tier that holds everything twice over. Initial placement is what the cluster looked like
/// before CoucheStor: volumes in random order fill the fast tier up to its usable capacity, the
/// rest is on the slow tier. The shuffle uses its own ChaCha stream, so the workload is
/// identical for every policy and placement.
pub fn initial_cluster(w: &Workload, cfg: &SimConfig) -> Cluster {
    let replicas = w.params().replicas.max(1);
    let mut volumes: Vec<SimVolume> = w
        .sizes_gib
        .iter()
        .enumerate()
        .map(|(i, &gib)| SimVolume {
            name: format!("pvc-sim-{i:05}"),
            size_bytes: gib * GIB,
            replicas,
            tier: Tier::Cold,
            last_move: None,
            left: None,
            in_flight: None,
        })
        .collect();
    let total: u64 = volumes.iter().map(SimVolume::footprint).sum();
    let fast = (total as f64 * cfg.fast_tier_percent / 100.0) as u64;
    let usable = usable_bytes(fast, cfg.policy.headroom_percent);
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    rng.set_stream(1);
    let mut order: Vec<usize> = (0..volumes.len()).collect();
    order.shuffle(&mut rng);
    let mut used = 0;
    for i in order {
        let f = volumes[i].footprint();
        if used + f <= usable {
            used += f;
            volumes[i].tier = Tier::Hot;
        }
    }
    Cluster {
        volumes,
        tiers: vec![(Tier::Hot, fast), (Tier::Cold, total.saturating_mul(2))],
        bandwidth_bps: cfg.bandwidth_bps,
        stats: MoveStats::default(),
    }
}

/// Capacity below the headroom.
pub fn usable_bytes(capacity: u64, headroom_percent: u8) -> u64 {
    (u128::from(capacity) * u128::from(100 - headroom_percent.min(100)) / 100) as u64
}

/// Runs one policy over the whole simulated period.
pub fn simulate(
    cfg: &SimConfig,
    kind: PolicyKind,
    with_bound: bool,
    progress: &ProgressBar,
) -> anyhow::Result<Outcome> {
    let mut w = Workload::new(&cfg.workload, cfg.seed)?;
    let mut cluster = initial_cluster(&w, cfg);
    let mut engine = match (cfg.backend, kind) {
        (Backend::Mayastor, PolicyKind::Couchestor) => {
            Some(Engine::start(&mut cluster, cfg, &cfg.mayastor)?)
        }
        _ => None,
    };
    let initial_fast: Vec<bool> = cluster
        .volumes
        .iter()
        .map(|v| v.tier == Tier::Hot)
        .collect();
    let footprints: Vec<u64> = cluster.volumes.iter().map(SimVolume::footprint).collect();
    let fast = cluster.capacity(Tier::Hot);
    let usable = usable_bytes(fast, cfg.policy.headroom_percent);
    let sample_secs = cfg.workload.sample_secs;
    let mut scorer = Scorer::new(&footprints, fast, usable, sample_secs);
    let mut hourly = HeatHistory::new();
    let names: Vec<String> = cluster.volumes.iter().map(|v| v.name.clone()).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut history = SampleHistory::new(
        footprints.len(),
        sample_secs,
        cfg.policy.window_secs,
        cfg.prometheus,
    )?;
    let cycle = cfg.policy.cycle_secs.max(sample_secs);
    let mut watermarks: Option<Watermarks> = None;

    for _ in 0..steps(cfg) {
        let tick = w.advance();
        let now = T0 + tick.elapsed as i64;
        match &mut engine {
            Some(e) => e.advance_to(&mut cluster, now)?,
            None => cluster.complete_due(now),
        }
        scorer.sample(tick.elapsed, tick.shifted, &w.true_iops, &cluster);
        // Only CoucheStor reads the hourly history (its sustained window).
        let sustained = kind == PolicyKind::Couchestor;
        let into_hourly = sustained.then_some((&mut hourly, names.as_slice()));
        history.record(now, &w.seen(cfg.observe), into_hourly);
        progress.inc(1);
        if sustained && tick.elapsed.is_multiple_of(86_400) {
            hourly.prune(now, cfg.policy.sustained_secs + 3600);
        }
        if !tick.elapsed.is_multiple_of(cycle) || tick.elapsed < cfg.policy.window_secs {
            continue;
        }
        let heats = policy::heats(history.samples(), now, &cfg.policy);
        let wm = *watermarks.get_or_insert_with(|| match (kind, cfg.policy.gauge) {
            (PolicyKind::Couchestor, WatermarkGauge::Density) => {
                let sizes: Vec<u64> = cluster.volumes.iter().map(|v| v.size_bytes).collect();
                policy::calibrate_density(&heats, &sizes, &footprints, usable)
            }
            _ => policy::calibrate(&heats, &footprints, usable),
        });
        match kind {
            PolicyKind::Couchestor => {
                let sustained =
                    policy::sustained(history.samples(), &hourly, &names, now, &cfg.policy);
                if let Some(e) = &mut engine {
                    e.plan_cycle(&mut cluster, &heats, &sustained, wm, &cfg.policy, now)?;
                } else {
                    for (i, to) in
                        policy::couchestor(&cluster, &heats, &sustained, wm, &cfg.policy, now)
                    {
                        // A refusal is counted in stats.failed; the engine should never cause one.
                        cluster.start_move(i, to, now).ok();
                    }
                }
            }
            PolicyKind::Baseline => {
                baseline(&mut cluster, &heats, wm, &cfg.policy, now);
            }
        }
    }

    let score = scorer.finish();
    let bounds = with_bound.then(|| {
        let lock = (PING_PONG_WINDOW_SECS as u64 / sample_secs).max(1) as usize;
        scorer.bounds(&initial_fast, lock, score.hot_share)
    });
    let in_flight = engine
        .as_ref()
        .map_or(cluster.active_migrations(), Engine::active_migrations);
    let backend = if engine.is_some() {
        Backend::Mayastor
    } else {
        Backend::Tier
    };
    let mayastor = engine.map(Engine::finish).transpose()?;
    Ok(Outcome {
        kind,
        backend,
        mayastor,
        watermarks,
        bounds,
        score,
        in_flight,
        stats: cluster.stats.clone(),
        hours: std::mem::take(&mut scorer.hours),
        occupancy: std::mem::take(&mut scorer.occupancy),
        shift_hours: std::mem::take(&mut scorer.shift_hours),
        fast_capacity: fast,
        total_footprint: footprints.iter().sum(),
    })
}
