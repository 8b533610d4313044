//! The synthetic workload of `docs/simulate.md` §Model: log-normal sizes, Zipf popularity,
//! hot-set shifts, per-tenant diurnal cycles, on/off bursts and log-normal sampling noise.
//!
//! Everything is drawn from one `ChaCha8Rng` seeded with the run's seed, in a fixed order, so
//! two workloads built from the same parameters and seed produce bit-identical samples. Both
//! policies of a comparison therefore see exactly the same I/O.

use std::borrow::Cow;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, LogNormal};

const DAY: f64 = 86_400.0;

/// Parameters of the synthetic workload.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkloadParams {
    /// Number of volumes.
    pub volumes: usize,
    /// Median volume size, GiB.
    pub median_gib: f64,
    /// Sigma of the log-normal size distribution.
    pub size_sigma: f64,
    /// Smallest and largest volume, GiB.
    pub size_clamp_gib: (u64, u64),
    /// Data replicas per volume.
    pub replicas: u8,
    /// Zipf exponent of the popularity ranking.
    pub alpha: f64,
    /// Sum of the base intensities, IOPS.
    pub total_iops: f64,
    /// Fraction of volumes whose ranks are re-drawn at every hot-set shift.
    pub shift_fraction: f64,
    /// Seconds between hot-set shifts (0: never).
    pub shift_every_secs: u64,
    /// Diurnal amplitude `A` in `1 + A·sin(2πt/24h + φ)`.
    pub diurnal_amplitude: f64,
    /// Number of tenants; each has its own diurnal phase φ.
    pub tenants: usize,
    /// Intensity multiplier while a burst is on.
    pub burst_factor: f64,
    /// Mean burst length, seconds.
    pub burst_mean_secs: f64,
    /// Bursts per volume per day.
    pub bursts_per_day: f64,
    /// Sigma of the multiplicative log-normal noise on observed samples (mean 1).
    pub noise_sigma: f64,
    /// Seconds between two samples.
    pub sample_secs: u64,
}

impl Default for WorkloadParams {
    fn default() -> Self {
        WorkloadParams {
            volumes: 200,
            median_gib: 50.0,
            size_sigma: 1.0,
            size_clamp_gib: (1, 2048),
            replicas: 1,
            alpha: 0.9,
            total_iops: 20_000.0,
            shift_fraction: 0.2,
            shift_every_secs: 12 * 3600,
            diurnal_amplitude: 0.5,
            tenants: 8,
            burst_factor: 5.0,
            burst_mean_secs: 600.0,
            bursts_per_day: 1.0,
            noise_sigma: 0.2,
            sample_secs: 60,
        }
    }
}

/// What the policies' heat scores are computed from (`simulate --observe`). Only `observed`
/// is what Prometheus would show; the other two are analysis views that measure how much of
/// the gap to the oracle is estimation and how much is the decision rules.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Observe {
    /// The sampled IOPS: true intensity times log-normal noise (the default).
    #[default]
    Observed,
    /// The true intensity, without sampling noise.
    True,
    /// The volume's present level: the Zipf intensity of its current rank, without diurnal
    /// cycle, bursts or noise. A perfect estimate of the present, still no foresight: a
    /// hot-set shift is seen only once it happened.
    Level,
}

impl Observe {
    /// What the text report says of an analysis view; `None` for the observed samples.
    pub fn analysis_note(self) -> Option<&'static str> {
        match self {
            Observe::Observed => None,
            Observe::True => Some("the true (noise-free) IOPS"),
            Observe::Level => Some("the present-level (no diurnal cycle, bursts or noise) IOPS"),
        }
    }
}

/// What one call to [`Workload::advance`] produced.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tick {
    /// Seconds since the start of the run.
    pub elapsed: u64,
    /// A hot-set shift took effect at this sample.
    pub shifted: bool,
}

/// The workload generator: sizes are fixed at construction, intensities advance per sample.
pub struct Workload {
    params: WorkloadParams,
    rng: ChaCha8Rng,
    noise: LogNormal<f64>,
    /// Volume sizes, GiB.
    pub sizes_gib: Vec<u64>,
    /// Zipf rank of each volume (0 = most popular).
    ranks: Vec<usize>,
    /// Base intensity of each rank, IOPS.
    by_rank: Vec<f64>,
    /// Diurnal phase of each volume (its tenant's).
    phase: Vec<f64>,
    /// Burst on/off state per volume.
    bursting: Vec<bool>,
    next_step: u64,
    /// True intensity at the last sample (no noise), IOPS.
    pub true_iops: Vec<f64>,
    /// Observed IOPS at the last sample: true intensity times noise.
    pub observed: Vec<f64>,
}

impl Workload {
    /// Draws sizes, ranks and tenant phases. Fails only on nonsensical parameters.
    pub fn new(params: &WorkloadParams, seed: u64) -> anyhow::Result<Self> {
        let p = params.clone();
        anyhow::ensure!(p.volumes > 0, "at least one volume is needed");
        anyhow::ensure!(p.sample_secs > 0, "the sample interval must be positive");
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let sizes = LogNormal::new(p.median_gib.ln(), p.size_sigma)?;
        let (lo, hi) = p.size_clamp_gib;
        let sizes_gib: Vec<u64> = (0..p.volumes)
            .map(|_| (sizes.sample(&mut rng).round() as u64).clamp(lo, hi))
            .collect();
        let mut ranks: Vec<usize> = (0..p.volumes).collect();
        ranks.shuffle(&mut rng);
        let raw: Vec<f64> = (1..=p.volumes).map(|r| (r as f64).powf(-p.alpha)).collect();
        let norm: f64 = raw.iter().sum();
        let by_rank = raw.iter().map(|w| w / norm * p.total_iops).collect();
        let tenant_phase: Vec<f64> = (0..p.tenants.max(1))
            .map(|_| rng.random_range(0.0..std::f64::consts::TAU))
            .collect();
        let phase = (0..p.volumes)
            .map(|_| tenant_phase[rng.random_range(0..tenant_phase.len())])
            .collect();
        let sigma = p.noise_sigma;
        let noise = LogNormal::new(-sigma * sigma / 2.0, sigma)?;
        Ok(Workload {
            rng,
            noise,
            sizes_gib,
            ranks,
            by_rank,
            phase,
            bursting: vec![false; p.volumes],
            next_step: 0,
            true_iops: vec![0.0; p.volumes],
            observed: vec![0.0; p.volumes],
            params: p,
        })
    }

    /// The parameters this workload was built from.
    pub fn params(&self) -> &WorkloadParams {
        &self.params
    }

    /// Produces the next sample into `true_iops` and `observed`.
    pub fn advance(&mut self) -> Tick {
        let p = &self.params;
        let elapsed = self.next_step * p.sample_secs;
        self.next_step += 1;
        let shifted =
            p.shift_every_secs > 0 && elapsed > 0 && elapsed.is_multiple_of(p.shift_every_secs);
        if shifted {
            self.shift();
        }
        let p = &self.params;
        let dt = p.sample_secs as f64;
        let p_on = 1.0 - (-p.bursts_per_day * dt / DAY).exp();
        let p_off = 1.0 - (-dt / p.burst_mean_secs.max(1.0)).exp();
        let day_angle = std::f64::consts::TAU * elapsed as f64 / DAY;
        for i in 0..p.volumes {
            let flip = self.rng.random::<f64>();
            self.bursting[i] = if self.bursting[i] {
                flip >= p_off
            } else {
                flip < p_on
            };
            let diurnal = 1.0 + p.diurnal_amplitude * (day_angle + self.phase[i]).sin();
            let burst = if self.bursting[i] {
                p.burst_factor
            } else {
                1.0
            };
            let lambda = self.by_rank[self.ranks[i]] * diurnal.max(0.0) * burst;
            self.true_iops[i] = lambda;
            self.observed[i] = lambda * self.noise.sample(&mut self.rng);
        }
        Tick { elapsed, shifted }
    }

    /// The last sample as the policies see it; the present level is derived from the ranks
    /// only when asked for.
    pub fn seen(&self, observe: Observe) -> Cow<'_, [f64]> {
        match observe {
            Observe::Observed => Cow::Borrowed(&self.observed),
            Observe::True => Cow::Borrowed(&self.true_iops),
            Observe::Level => self.ranks.iter().map(|&r| self.by_rank[r]).collect(),
        }
    }

    /// Re-draws the ranks of a random fraction of the volumes among themselves.
    fn shift(&mut self) {
        let n = self.params.volumes;
        let k = ((self.params.shift_fraction * n as f64).round() as usize).min(n);
        let chosen = rand::seq::index::sample(&mut self.rng, n, k).into_vec();
        let mut ranks: Vec<usize> = chosen.iter().map(|&i| self.ranks[i]).collect();
        ranks.shuffle(&mut self.rng);
        for (&i, r) in chosen.iter().zip(ranks) {
            self.ranks[i] = r;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trace(seed: u64, steps: usize) -> (Vec<u64>, Vec<f64>) {
        let params = WorkloadParams {
            volumes: 50,
            shift_every_secs: 3600,
            ..WorkloadParams::default()
        };
        let mut w = Workload::new(&params, seed).unwrap();
        let mut out = Vec::new();
        for _ in 0..steps {
            w.advance();
            out.extend_from_slice(&w.observed);
            out.extend_from_slice(&w.true_iops);
        }
        (w.sizes_gib, out)
    }

    #[test]
    fn same_seed_gives_identical_samples() {
        let (a_sizes, a) = trace(7, 300);
        let (b_sizes, b) = trace(7, 300);
        assert_eq!(a_sizes, b_sizes);
        // Bit-for-bit, not approximately.
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&a), bits(&b));
    }

    #[test]
    fn different_seeds_differ() {
        let (a_sizes, a) = trace(7, 50);
        let (b_sizes, b) = trace(8, 50);
        assert_ne!(a_sizes, b_sizes);
        assert_ne!(a, b);
    }

    #[test]
    fn intensities_follow_the_model() {
        let params = WorkloadParams {
            diurnal_amplitude: 0.0,
            bursts_per_day: 0.0,
            ..WorkloadParams::default()
        };
        let mut w = Workload::new(&params, 1).unwrap();
        let tick = w.advance();
        assert_eq!(
            tick,
            Tick {
                elapsed: 0,
                shifted: false
            }
        );
        // Without diurnal swing and bursts the true intensities sum to the target exactly.
        let total: f64 = w.true_iops.iter().sum();
        assert!((total - params.total_iops).abs() < 1e-6, "{total}");
        // Zipf: the top rank carries rank-2's intensity times 2^alpha.
        let mut sorted = w.true_iops.clone();
        sorted.sort_by(|a, b| b.total_cmp(a));
        assert!((sorted[0] / sorted[1] - 2f64.powf(params.alpha)).abs() < 1e-9);
        assert!(w.sizes_gib.iter().all(|&s| (1..=2048).contains(&s)));
        // The first shift happens after 12 h of 60 s samples.
        let shifts = (0..720).filter(|_| w.advance().shifted).count();
        assert_eq!(shifts, 1);
    }

    #[test]
    fn the_level_view_keeps_the_rank_and_drops_cycle_bursts_and_noise() {
        let params = WorkloadParams {
            volumes: 40,
            diurnal_amplitude: 0.8,
            bursts_per_day: 24.0,
            shift_every_secs: 3600,
            ..WorkloadParams::default()
        };
        let mut w = Workload::new(&params, 5).unwrap();
        w.advance();
        let mut last = w.seen(Observe::Level).to_vec();
        let (mut changed_within, mut changed_at_shift) = (0, 0);
        for _ in 0..180 {
            let shifted = w.advance().shifted;
            let level = w.seen(Observe::Level).to_vec();
            // The level is the rank's intensity: the true intensity divided by the diurnal
            // and burst factors, which lie in [0, 1.8] x {1, 5}.
            for (l, t) in level.iter().zip(w.seen(Observe::True).iter()) {
                assert!(*t <= l * 1.8 * 5.0 + 1e-9, "true {t} level {l}");
            }
            let moved = level.iter().zip(&last).filter(|(a, b)| a != b).count();
            if shifted {
                changed_at_shift += moved;
            } else {
                changed_within += moved;
            }
            last = level;
        }
        // Constant between shifts, re-ranked at them; the views are what they say.
        assert_eq!(changed_within, 0);
        assert!(changed_at_shift > 0);
        assert_eq!(&*w.seen(Observe::Observed), &w.observed[..]);
        assert_eq!(&*w.seen(Observe::True), &w.true_iops[..]);
        assert_ne!(&*w.seen(Observe::Level), &w.true_iops[..]);
    }
}
