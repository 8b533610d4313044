//! Per-sample scoring against the oracle: hot share, SLO-minutes, reaction time, and the
//! time series drawn in the SVG.

use couchestor_common::Tier;

use super::cluster::Cluster;
use super::{bound, oracle};

/// Fraction of the new oracle top set that must be on the fast tier to count as "reacted".
pub const REACTED_FRACTION: f64 = 0.9;

/// One hour of the run.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Hour {
    /// IOPS-samples served from the fast tier under the policy.
    pub served: f64,
    /// IOPS-samples the oracle serves from the fast tier (full capacity).
    pub oracle: f64,
    /// All IOPS-samples.
    pub total: f64,
}

/// Accumulates the scorecard sample by sample.
pub struct Scorer {
    sample_minutes: f64,
    capacity: f64,
    usable: f64,
    weights: Vec<f64>,
    order: Vec<usize>,
    total: f64,
    served: f64,
    oracle: f64,
    oracle_usable: f64,
    slo_minutes: f64,
    day: u64,
    day_sums: Vec<f64>,
    oracle_daily: f64,
    tracking: Option<Tracker>,
    reactions: Vec<Option<f64>>,
    reactions_iops: Vec<Option<f64>>,
    /// Per-hour sums.
    pub hours: Vec<Hour>,
    /// (elapsed hours, resident fast-tier bytes as % of its capacity), one per sample.
    pub occupancy: Vec<(f64, f64)>,
    /// Elapsed hours of each hot-set shift.
    pub shift_hours: Vec<f64>,
    /// True IOPS per sample, sample-major (`trace[t * volumes + i]`), for the bound.
    trace: Vec<f64>,
    /// The per-sample oracle's capacity price (density of its fractional item) per sample.
    prices: Vec<f64>,
    /// The same at the usable capacity.
    usable_prices: Vec<f64>,
}

/// The zero-ping-pong bound ([`bound::zero_ping_pong`]) of a run, as shares of all IOPS.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bounds {
    /// At the full fast-tier capacity, the capacity `oracle_hot_share` is measured at.
    pub full: f64,
    /// At the usable capacity (minus the headroom): the most a zero-ping-pong policy that
    /// keeps its headroom free can serve.
    pub usable: f64,
}

/// The oracle top set chosen right after a hot-set shift, and which criteria it has met.
struct Tracker {
    since: u64,
    set: Vec<usize>,
    by_count: bool,
    by_iops: bool,
}

/// The scorecard's workload-side figures for one run.
#[derive(Clone, Debug, PartialEq)]
pub struct Score {
    /// Share of IOPS served by fast-tier volumes.
    pub hot_share: f64,
    /// The oracle's share at the full fast-tier capacity.
    pub oracle_hot_share: f64,
    /// The oracle's share at the usable capacity (minus headroom).
    pub oracle_usable_hot_share: f64,
    /// The share of the best placement per calendar day in hindsight (one knapsack per day
    /// over the day's summed true IOPS, full capacity): what a policy that moves at most once
    /// a day, at midnight, with perfect knowledge of the coming day could serve.
    pub oracle_daily_hot_share: f64,
    /// Volume-minutes an oracle-top volume spent on a slow tier.
    pub slo_minutes: f64,
    /// Median reaction time over hot-set shifts, minutes; `None` if the median shift never
    /// reached [`REACTED_FRACTION`].
    pub reaction_time_minutes: Option<f64>,
    /// As `reaction_time_minutes`, but the criterion is 90 % of the top set's true IOPS
    /// (not of its members) being served from the fast tier.
    pub reaction_time_iops_minutes: Option<f64>,
    /// Hot-set shifts observed.
    pub shifts: u64,
    /// Shifts after which the new top set reached [`REACTED_FRACTION`] before the next one.
    pub shifts_reacted: u64,
    /// Mean and peak fast-tier occupancy, % of capacity.
    pub occupancy_mean_peak: (f64, f64),
}

impl Scorer {
    /// A scorer for volumes of the given footprints and a fast tier of `capacity` bytes, of
    /// which `usable` may be filled by the policy.
    pub fn new(footprints: &[u64], capacity: u64, usable: u64, sample_secs: u64) -> Self {
        Scorer {
            sample_minutes: sample_secs as f64 / 60.0,
            capacity: capacity as f64,
            usable: usable as f64,
            weights: footprints.iter().map(|&f| f as f64).collect(),
            order: (0..footprints.len()).collect(),
            total: 0.0,
            served: 0.0,
            oracle: 0.0,
            oracle_usable: 0.0,
            slo_minutes: 0.0,
            day: 0,
            day_sums: vec![0.0; footprints.len()],
            oracle_daily: 0.0,
            tracking: None,
            reactions: Vec::new(),
            reactions_iops: Vec::new(),
            hours: Vec::new(),
            occupancy: Vec::new(),
            shift_hours: Vec::new(),
            trace: Vec::new(),
            prices: Vec::new(),
            usable_prices: Vec::new(),
        }
    }

    /// The zero-ping-pong bounds on this run's workload at the full and at the usable
    /// capacity, computed side by side: `lock` samples of dwell after a move, volumes starting
    /// on the fast tier where `initial_fast` says, `target` the served share of a known policy
    /// (for the step size). Each is also capped by the per-sample oracle at its capacity.
    pub fn bounds(&self, initial_fast: &[bool], lock: usize, target: f64) -> Bounds {
        let n = self.weights.len();
        let samples = self.prices.len();
        let mut values = vec![0.0; n * samples];
        for (t, row) in self.trace.chunks_exact(n).enumerate() {
            for (i, &v) in row.iter().enumerate() {
                values[i * samples + t] = v;
            }
        }
        let at = |capacity: f64, prices: &[f64], oracle: f64| -> f64 {
            let inst = bound::Instance {
                values: &values,
                samples,
                weights: &self.weights,
                capacity,
                lock,
                initial_fast,
            };
            let b = bound::zero_ping_pong(&inst, prices, target * self.total);
            if self.total > 0.0 {
                (b.served / self.total).min(oracle / self.total)
            } else {
                0.0
            }
        };
        std::thread::scope(|s| {
            let usable = s.spawn(|| at(self.usable, &self.usable_prices, self.oracle_usable));
            let full = at(self.capacity, &self.prices, self.oracle);
            Bounds {
                full,
                usable: usable
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            }
        })
    }

    /// Scores one sample: `true_iops` is the noise-free intensity, the cluster its state.
    pub fn sample(&mut self, elapsed: u64, shifted: bool, true_iops: &[f64], cluster: &Cluster) {
        let on_fast = |i: usize| cluster.volumes[i].tier == Tier::Hot;
        let total: f64 = true_iops.iter().sum();
        let served: f64 = (0..true_iops.len())
            .filter(|&i| on_fast(i))
            .map(|i| true_iops[i])
            .sum();
        oracle::sort_by_density(&mut self.order, true_iops, &self.weights);
        let full = oracle::fill(&self.order, true_iops, &self.weights, self.capacity);
        let usable = oracle::fill(&self.order, true_iops, &self.weights, self.usable);
        self.trace.extend_from_slice(true_iops);
        self.prices.push(full.price);
        self.usable_prices.push(usable.price);
        self.total += total;
        self.served += served;
        self.oracle += full.served;
        self.oracle_usable += usable.served;
        let missing = usable.whole.iter().filter(|&&i| !on_fast(i)).count();
        self.slo_minutes += missing as f64 * self.sample_minutes;

        if elapsed / 86_400 != self.day {
            self.close_day();
            self.day = elapsed / 86_400;
        }
        for (sum, &v) in self.day_sums.iter_mut().zip(true_iops) {
            *sum += v;
        }

        if shifted {
            self.shift_hours.push(elapsed as f64 / 3600.0);
            self.close_tracker();
            self.tracking = Some(Tracker {
                since: elapsed,
                set: usable.whole,
                by_count: false,
                by_iops: false,
            });
        }
        if let Some(t) = &mut self.tracking {
            let minutes = Some((elapsed - t.since) as f64 / 60.0);
            let there = t.set.iter().filter(|&&i| on_fast(i)).count();
            if !t.by_count && there as f64 >= REACTED_FRACTION * t.set.len() as f64 {
                t.by_count = true;
                self.reactions.push(minutes);
            }
            let iops = |pick: &dyn Fn(usize) -> bool| -> f64 {
                t.set
                    .iter()
                    .filter(|&&i| pick(i))
                    .map(|&i| true_iops[i])
                    .sum()
            };
            if !t.by_iops && iops(&on_fast) >= REACTED_FRACTION * iops(&|_| true) {
                t.by_iops = true;
                self.reactions_iops.push(minutes);
            }
            if t.by_count && t.by_iops {
                self.tracking = None;
            }
        }

        let hour = (elapsed / 3600) as usize;
        if self.hours.len() <= hour {
            self.hours.resize(hour + 1, Hour::default());
        }
        let h = &mut self.hours[hour];
        h.served += served;
        h.oracle += full.served;
        h.total += total;
        let resident = cluster.resident_bytes(Tier::Hot) as f64;
        self.occupancy.push((
            elapsed as f64 / 3600.0,
            100.0 * resident / self.capacity.max(1.0),
        ));
    }

    /// Adds the day's hindsight knapsack and starts a new day.
    fn close_day(&mut self) {
        let mut order: Vec<usize> = (0..self.day_sums.len()).collect();
        oracle::sort_by_density(&mut order, &self.day_sums, &self.weights);
        self.oracle_daily +=
            oracle::fill(&order, &self.day_sums, &self.weights, self.capacity).served;
        self.day_sums.iter_mut().for_each(|s| *s = 0.0);
    }

    /// Ends the current shift's tracking: criteria not met count as never reached.
    fn close_tracker(&mut self) {
        if let Some(t) = self.tracking.take() {
            if !t.by_count {
                self.reactions.push(None);
            }
            if !t.by_iops {
                self.reactions_iops.push(None);
            }
        }
    }

    /// The scorecard.
    pub fn finish(&mut self) -> Score {
        self.close_tracker();
        self.close_day();
        let ratio = |x: f64| {
            if self.total > 0.0 {
                x / self.total
            } else {
                0.0
            }
        };
        let n = self.occupancy.len().max(1) as f64;
        let mean = self.occupancy.iter().map(|o| o.1).sum::<f64>() / n;
        let peak = self.occupancy.iter().map(|o| o.1).fold(0.0, f64::max);
        Score {
            hot_share: ratio(self.served),
            oracle_hot_share: ratio(self.oracle),
            oracle_usable_hot_share: ratio(self.oracle_usable),
            oracle_daily_hot_share: ratio(self.oracle_daily),
            slo_minutes: self.slo_minutes,
            reaction_time_minutes: median(&self.reactions),
            reaction_time_iops_minutes: median(&self.reactions_iops),
            shifts: self.reactions.len() as u64,
            shifts_reacted: self.reactions.iter().flatten().count() as u64,
            occupancy_mean_peak: (mean, peak),
        }
    }
}

/// Median with `None` counted as +infinity; `None` when the median itself is infinite or there
/// is nothing to take the median of.
pub fn median(values: &[Option<f64>]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().map(|x| x.unwrap_or(f64::INFINITY)).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let m = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    m.is_finite().then_some(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulate::cluster::{GIB, MoveStats, SimVolume};

    #[test]
    fn median_counts_unreached_as_infinite() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[Some(3.0), None, Some(1.0)]), Some(3.0));
        assert_eq!(median(&[Some(3.0), Some(1.0)]), Some(2.0));
        assert_eq!(median(&[Some(3.0), None]), None);
    }

    #[test]
    fn hot_share_slo_and_reaction_on_a_tiny_cluster() {
        let vol = |name: &str, tier| SimVolume::at_rest(name, 10, tier);
        let mut c = Cluster {
            volumes: vec![vol("a", Tier::Hot), vol("b", Tier::Cold)],
            tiers: vec![(Tier::Hot, 10 * GIB), (Tier::Cold, 100 * GIB)],
            bandwidth_bps: GIB as f64,
            stats: MoveStats::default(),
        };
        let mut s = Scorer::new(&[10 * GIB, 10 * GIB], 10 * GIB, 10 * GIB, 60);
        // b is the hot one and sits on the slow tier for two samples, then moves.
        s.sample(0, true, &[10.0, 30.0], &c);
        s.sample(60, false, &[10.0, 30.0], &c);
        c.volumes[0].tier = Tier::Cold;
        c.volumes[1].tier = Tier::Hot;
        s.sample(120, false, &[10.0, 30.0], &c);
        let score = s.finish();
        assert!((score.hot_share - (10.0 + 10.0 + 30.0) / 120.0).abs() < 1e-12);
        assert!((score.oracle_hot_share - 0.75).abs() < 1e-12);
        assert_eq!(score.slo_minutes, 2.0);
        assert_eq!(score.reaction_time_minutes, Some(2.0));
        assert_eq!(score.reaction_time_iops_minutes, Some(2.0));
        // One day, a fixed placement in hindsight: b on the fast tier serves 90 of 120.
        assert!((score.oracle_daily_hot_share - 0.75).abs() < 1e-12);
        assert_eq!((score.shifts, score.shifts_reacted), (1, 1));
        assert_eq!(score.occupancy_mean_peak, (100.0, 100.0));
    }
}
