//! The policy under test: the controller's own decide pipeline, `heat::decayed_iops` then
//! `plan::plan`, fed from the simulated cluster exactly as the controller feeds it from
//! Prometheus and the Kubernetes API.

use std::collections::HashMap;

use couchestor_common::Tier;
use couchestor_common::heat::{self, Heat, Sample};
use couchestor_common::history::HeatHistory;
use couchestor_common::plan::{self, Boundary, Input, Limits, TierCapacity};

use super::cluster::Cluster;

/// Policy settings shared by both policies.
#[derive(Clone, Debug, PartialEq)]
pub struct PolicyConfig {
    /// Seconds between two planning cycles.
    pub cycle_secs: u64,
    /// Heat sampling window, seconds.
    pub window_secs: u64,
    /// Heat half-life, seconds.
    pub half_life_secs: u64,
    /// Minimum seconds between two moves of a volume (CoucheStor only).
    pub cooldown_secs: u64,
    /// Migrations running at once.
    pub max_concurrent: u32,
    /// Percent of every tier kept free (CoucheStor only).
    pub headroom_percent: u8,
    /// The StoragePolicy's sustained window, seconds (CoucheStor only): promotion also needs
    /// the mean heat over it above the watermark.
    pub sustained_secs: u64,
    /// What CoucheStor's calibrated watermarks measure (the baseline always uses heat).
    pub gauge: WatermarkGauge,
    /// Timeout per replica copy of a move, seconds: the Mayastor backend's migrationTimeout
    /// (moves of the tier model never time out).
    pub migration_timeout_secs: u64,
}

/// What the calibrated watermarks measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WatermarkGauge {
    /// Density watermarks (IOPS per TiB), heat watermarks at their minimum (1 / 0 IOPS).
    Density,
    /// Heat watermarks only (IOPS), as the baseline uses.
    Heat,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        let window_secs = 3600;
        PolicyConfig {
            cycle_secs: 300,
            window_secs,
            half_life_secs: heat::default_half_life(window_secs),
            cooldown_secs: 86_400,
            max_concurrent: 2,
            headroom_percent: 10,
            sustained_secs: 86_400,
            gauge: WatermarkGauge::Density,
            migration_timeout_secs: 1800,
        }
    }
}

/// Calibrated watermarks, in the units of the StoragePolicy spec.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Watermarks {
    /// Heat above which a slow-tier volume is promoted (`highWatermarkIOPS`).
    pub promote_above: f64,
    /// Heat below which a fast-tier volume is demoted (`lowWatermarkIOPS`).
    pub demote_below: f64,
    /// Density watermarks (`highWatermarkIOPSPerTiB` / `lowWatermarkIOPSPerTiB`), when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub density: Option<DensityWatermarks>,
}

/// Density watermarks, IOPS per TiB of logical size.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct DensityWatermarks {
    /// Density above which a slow-tier volume may be promoted.
    pub promote_above: f64,
    /// Density below which a fast-tier volume is demoted.
    pub demote_below: f64,
}

impl Watermarks {
    /// The engine's boundary between the two tiers.
    pub fn boundary(&self) -> Boundary {
        Boundary {
            density: self.density.map(|d| plan::DensityBand {
                promote_above: d.promote_above,
                demote_below: d.demote_below,
            }),
            ..Boundary::iops(self.promote_above, self.demote_below)
        }
    }
}

/// Width of the density band: a volume is demoted once its density fell to an eighth of the
/// promotion watermark. Wider than [`BAND_RATIO`] because density watermarks sit where the
/// fast tier fills, so every volume near the cut has a daily cycle that crosses it: 8×
/// nearly covers the 9× peak-to-trough swing of A = 0.8.
pub const DENSITY_BAND_RATIO: f64 = 8.0;

/// Density watermarks sized like [`calibrate`], but by I/O density: `promote_above` is the
/// density of the densest volume that does *not* fit when the fast tier is filled densest
/// first up to its usable capacity (the greedy knapsack the oracle solves, on observed heat),
/// `demote_below = promote_above / 8` ([`DENSITY_BAND_RATIO`]), both in whole IOPS per TiB.
/// The heat watermarks are the spec's minimum, 1 and 0 IOPS, so density decides. With no
/// known heat, nothing is promoted.
pub fn calibrate_density(
    heats: &[Heat],
    sizes: &[u64],
    footprints: &[u64],
    usable_bytes: u64,
) -> Watermarks {
    let mut known: Vec<(f64, u64)> = heats
        .iter()
        .zip(sizes)
        .zip(footprints)
        .filter_map(|((h, &s), &f)| h.iops().map(|h| (plan::iops_per_tib(h, s), f)))
        .collect();
    known.sort_by(|a, b| b.0.total_cmp(&a.0));
    let cut = first_that_does_not_fit(&known, usable_bytes).round();
    Watermarks {
        promote_above: 1.0,
        demote_below: 0.0,
        density: Some(DensityWatermarks {
            promote_above: cut,
            demote_below: (cut / DENSITY_BAND_RATIO).round(),
        }),
    }
}

/// The value of the first `(value, footprint)` (sorted by decreasing value) that overflows
/// `usable_bytes`; 0 when everything fits, infinity when there is nothing.
fn first_that_does_not_fit(sorted: &[(f64, u64)], usable_bytes: u64) -> f64 {
    if sorted.is_empty() {
        return f64::INFINITY;
    }
    let mut used = 0u64;
    for &(v, f) in sorted {
        used += f;
        if used > usable_bytes {
            return v;
        }
    }
    0.0
}

/// Width of the hysteresis band: a volume is demoted once it has lost three quarters of the
/// heat that would earn a promotion.
pub const BAND_RATIO: f64 = 4.0;

/// Derives the watermarks the way an operator sizes a StoragePolicy after one sampling window
/// in "measure only" mode, from observed heat alone (never from the oracle or the true
/// intensities, and the same rule for every scenario and seed):
///
/// * `promote_above` is the heat of the hottest volume that does *not* fit when the fast tier
///   is filled hottest-first up to its usable capacity (capacity minus headroom). In words: a
///   volume is hot when it is hotter than the volumes the fast tier can hold by themselves.
///   At calibration the volumes above the watermark fit exactly; later arrivals compete for the
///   room by density, which is the engine's job (densest first, evicting much less dense
///   residents).
/// * `demote_below = promote_above / 4` ([`BAND_RATIO`]). Sample noise (σ = 0.2) averages out
///   over the window, but a diurnal swing `1 ± A` changes heat by `(1 + A) / (1 − A)` between
///   peak and trough: 3× at A = 0.5, 4× at A = 0.6. A 4× band keeps daily cycles of ordinary
///   amplitude inside the band, while a volume whose popularity really collapsed (a hot-set
///   shift moves it many Zipf ranks) still falls through it.
///
/// Both are rounded to whole IOPS, the unit of the StoragePolicy spec. Unknown heats are
/// skipped. With no known heat at all the watermarks are infinite/zero
/// (nothing moves).
pub fn calibrate(heats: &[Heat], footprints: &[u64], usable_bytes: u64) -> Watermarks {
    let mut known: Vec<(f64, u64)> = heats
        .iter()
        .zip(footprints)
        .filter_map(|(h, &f)| h.iops().map(|h| (h, f)))
        .collect();
    known.sort_by(|a, b| b.0.total_cmp(&a.0));
    // Whole IOPS, as `highWatermarkIOPS`/`lowWatermarkIOPS` hold them in the spec. Everything
    // fitting gives 0: only volumes that go entirely idle would be demoted.
    let promote_above = first_that_does_not_fit(&known, usable_bytes).round();
    Watermarks {
        promote_above,
        demote_below: (promote_above / BAND_RATIO).round(),
        density: None,
    }
}

/// Each volume's heat at `now` from its sample history.
pub fn heats(history: &[Vec<Sample>], now: i64, cfg: &PolicyConfig) -> Vec<Heat> {
    history
        .iter()
        .map(|h| heat::decayed_iops(h, now, cfg.window_secs, cfg.half_life_secs))
        .collect()
}

/// Each volume's sustained heat at `now`, as the controller computes it: the smaller of the
/// window's median and the mean over the sustained window from the hourly history.
pub fn sustained(
    history: &[Vec<Sample>],
    hourly: &HeatHistory,
    names: &[&str],
    now: i64,
    cfg: &PolicyConfig,
) -> Vec<Option<f64>> {
    history
        .iter()
        .zip(names)
        .map(|(h, name)| {
            let median = heat::sustained_iops(h, now, cfg.window_secs)?;
            Some(heat::sustained(
                median,
                hourly.mean(name, now, cfg.sustained_secs),
            ))
        })
        .collect()
}

/// One CoucheStor planning cycle on the tier model: builds the engine's input from the
/// cluster and returns the moves to start now, as (volume index, target tier).
pub fn couchestor(
    cluster: &Cluster,
    heats: &[Heat],
    sustained: &[Option<f64>],
    wm: Watermarks,
    cfg: &PolicyConfig,
    now: i64,
) -> Vec<(usize, Tier)> {
    let volumes: Vec<plan::Volume> = cluster
        .volumes
        .iter()
        .zip(heats.iter().zip(sustained))
        .map(|(v, (&heat, &sustained))| plan::Volume {
            name: v.name.clone(),
            size_bytes: v.size_bytes,
            replicas: v.replicas,
            heat,
            sustained,
            tier: Some(v.tier),
            last_move: v.last_move,
            pinned: None,
            migrating: v.in_flight.is_some(),
            nodes: Vec::new(),
            split: None,
            timed_out_after: None,
        })
        .collect();
    let tiers: Vec<TierCapacity> = cluster
        .tiers
        .iter()
        .map(|&(tier, capacity_bytes)| TierCapacity {
            tier,
            capacity_bytes,
            used_bytes: cluster.used_bytes(tier),
            pools: None,
        })
        .collect();
    decide(&volumes, &tiers, wm, cfg, cluster.active_migrations(), now)
        .into_iter()
        .map(|(i, m)| (i, m.to))
        .collect()
}

/// `plan::plan` with the simulated policy's watermarks and limits (cooldown, concurrency with
/// `active` migrations running, headroom, window always open), called exactly as the
/// controller calls it. Returns the moves to start now with the index of their volume in
/// `volumes`, in the engine's priority order.
pub fn decide(
    volumes: &[plan::Volume],
    tiers: &[TierCapacity],
    wm: Watermarks,
    cfg: &PolicyConfig,
    active: u32,
    now: i64,
) -> Vec<(usize, plan::Move)> {
    let boundaries = vec![wm.boundary(); tiers.len().saturating_sub(1)];
    let decided = plan::plan(&Input {
        volumes,
        tiers,
        boundaries: &boundaries,
        limits: Limits {
            enabled: true,
            cooldown_secs: cfg.cooldown_secs,
            max_concurrent: cfg.max_concurrent,
            active_migrations: active,
            headroom_percent: cfg.headroom_percent,
            migration_timeout_secs: cfg.migration_timeout_secs,
            window_open: true,
        },
        now,
    });
    let index: HashMap<&str, usize> = volumes
        .iter()
        .enumerate()
        .map(|(i, v)| (v.name.as_str(), i))
        .collect();
    decided
        .moves
        .into_iter()
        .filter_map(|m| index.get(m.volume.as_str()).map(|&i| (i, m)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watermarks_fill_the_usable_fast_tier_hottest_first() {
        let heats = [
            Heat::Known(100.0),
            Heat::Known(400.0),
            Heat::Unknown,
            Heat::Known(200.0),
            Heat::Known(50.0),
        ];
        let fp = [10, 10, 10, 10, 10];
        // Room for two: 400 and 200 fit, 100 is the first that does not.
        let wm = calibrate(&heats, &fp, 25);
        assert_eq!(wm.promote_above, 100.0);
        assert_eq!(wm.demote_below, 25.0);
        // Room for all known ones: only idle volumes would be demoted.
        assert_eq!(calibrate(&heats, &fp, 1000).promote_above, 0.0);
        assert_eq!(
            calibrate(&[Heat::Unknown], &[1], 10).promote_above,
            f64::INFINITY
        );
    }
}
