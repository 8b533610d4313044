//! Heat: IOPS weighted with exponential decay.
//!
//! A volume's heat is the decay-weighted mean of its IOPS samples inside the sampling window:
//! a sample `age` seconds old weighs `2^(-age / half_life)`. Recent I/O dominates, a burst
//! fades, and a volume with no samples has no heat at all: [`Heat::Unknown`], never zero.

/// Default heat expression: read + write IOPS per PV from Mayastor's io-engine exporter
/// (`volume_num_read_ops` / `volume_num_write_ops`, gauges holding cumulative counters,
/// labelled `pv_name`). `rate()` handles counter resets on io-engine restarts. It drops the
/// metric name, so each rate gets an `op` label (`label_replace`) to keep read and write
/// series apart (a plain `rate({__name__=~...})` fails: "vector cannot contain metrics with
/// the same labelset"); one `or` unions them and `sum by (pv_name)` adds them, merging series
/// whose `node` label changed when the nexus moved and keeping a volume that exports only one
/// of the two counters. Prometheus answers it in about 0.75× the time of the
/// `(read + write) or read or write` form it replaced, with the same values (docs/benchmarks.md,
/// `cargo bench -p couchestor-controller --bench heat_query`).
pub const DEFAULT_HEAT_QUERY: &str = "sum by (pv_name) (\
     label_replace(rate(volume_num_read_ops[5m]), \"op\", \"read\", \"\", \"\") \
     or label_replace(rate(volume_num_write_ops[5m]), \"op\", \"write\", \"\", \"\"))";

/// How hot a volume is.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Heat {
    /// Decay-weighted IOPS.
    Known(f64),
    /// No usable samples (missing series, Prometheus down, empty answer). Never treated as cold.
    Unknown,
}

impl Heat {
    /// The IOPS value, if known.
    pub fn iops(self) -> Option<f64> {
        match self {
            Heat::Known(v) => Some(v),
            Heat::Unknown => None,
        }
    }
}

/// One IOPS observation at a Unix time in seconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    /// Unix time, seconds.
    pub at: i64,
    /// Operations per second observed at `at`.
    pub iops: f64,
}

/// Decay-weighted mean IOPS of the samples within `window_secs` before `now`.
///
/// Samples in the future, outside the window, or not finite are ignored. Returns
/// [`Heat::Unknown`] when nothing usable is left.
pub fn decayed_iops(samples: &[Sample], now: i64, window_secs: u64, half_life_secs: u64) -> Heat {
    let half_life = half_life_secs.max(1) as f64;
    let oldest = now.saturating_sub(window_secs as i64);
    let (mut weighted, mut weights) = (0.0_f64, 0.0_f64);
    for s in samples {
        if s.at > now || s.at < oldest || !s.iops.is_finite() || s.iops < 0.0 {
            continue;
        }
        let w = (-((now - s.at) as f64) / half_life).exp2();
        weighted += w * s.iops;
        weights += w;
    }
    if weights > 0.0 {
        Heat::Known(weighted / weights)
    } else {
        Heat::Unknown
    }
}

/// The sustained heat the engine promotes on: the smaller of the window's median
/// ([`sustained_iops`]) and the mean over the policy's sustained window, when known, so that
/// neither a burst nor one busy hour of a daily cycle promotes.
pub fn sustained(median: f64, sustained_mean: Option<f64>) -> f64 {
    sustained_mean.map_or(median, |mean| mean.min(median))
}

/// Burst-resistant heat: the median IOPS of the samples within `window_secs` before `now`.
///
/// Promotions are decided on the smaller of this and the decayed heat, so a short burst (a
/// ten-minute x5 spike lifts decayed heat by ~2.6x) does not buy a volume a place on the fast
/// tier it would then hold for a whole cooldown. `None` when no usable sample is left.
pub fn sustained_iops(samples: &[Sample], now: i64, window_secs: u64) -> Option<f64> {
    let oldest = now.saturating_sub(window_secs as i64);
    let mut v: Vec<f64> = samples
        .iter()
        .filter(|s| s.at <= now && s.at >= oldest && s.iops.is_finite() && s.iops >= 0.0)
        .map(|s| s.iops)
        .collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    })
}

/// Default half-life for a sampling window when the policy does not set one: a quarter of it.
pub fn default_half_life(window_secs: u64) -> u64 {
    (window_secs / 4).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(at: i64, iops: f64) -> Sample {
        Sample { at, iops }
    }

    #[test]
    fn constant_load_has_that_heat() {
        let samples: Vec<_> = (0..60).map(|i| s(1000 + i * 60, 250.0)).collect();
        let Heat::Known(h) = decayed_iops(&samples, 1000 + 59 * 60, 3600, 900) else {
            panic!("known")
        };
        assert!((h - 250.0).abs() < 1e-9);
    }

    #[test]
    fn recent_samples_weigh_more() {
        // 30 minutes at 0 IOPS, then 30 minutes at 1000: heat is well above the plain mean 500.
        let mut samples: Vec<_> = (0..30).map(|i| s(i * 60, 0.0)).collect();
        samples.extend((30..60).map(|i| s(i * 60, 1000.0)));
        let h = decayed_iops(&samples, 59 * 60, 3600, 900).iops().unwrap();
        assert!(h > 750.0 && h < 1000.0, "{h}");
        // The mirror image: the volume cooled down, heat is well below 500.
        let mut cooled: Vec<_> = (0..30).map(|i| s(i * 60, 1000.0)).collect();
        cooled.extend((30..60).map(|i| s(i * 60, 0.0)));
        let c = decayed_iops(&cooled, 59 * 60, 3600, 900).iops().unwrap();
        assert!((h + c - 1000.0).abs() < 1e-6, "symmetry: {h} + {c}");
    }

    #[test]
    fn no_samples_is_unknown_not_zero() {
        assert_eq!(decayed_iops(&[], 100, 3600, 900), Heat::Unknown);
        // Only samples outside the window or in the future: still unknown.
        let stale = [s(0, 5.0), s(10_000, 5.0)];
        assert_eq!(decayed_iops(&stale, 5000, 3600, 900), Heat::Unknown);
        // NaN from a broken exporter is ignored, not averaged in.
        assert_eq!(
            decayed_iops(&[s(100, f64::NAN)], 100, 3600, 900),
            Heat::Unknown
        );
    }

    #[test]
    fn sustained_heat_ignores_a_short_burst() {
        // 50 minutes at 100 IOPS, then a 10-minute burst at 500.
        let mut samples: Vec<_> = (0..50).map(|i| s(i * 60, 100.0)).collect();
        samples.extend((50..60).map(|i| s(i * 60, 500.0)));
        let decayed = decayed_iops(&samples, 59 * 60, 3600, 900).iops().unwrap();
        assert!(
            decayed > 200.0,
            "the burst dominates decayed heat: {decayed}"
        );
        assert_eq!(sustained_iops(&samples, 59 * 60, 3600), Some(100.0));
        assert_eq!(sustained_iops(&[], 0, 3600), None);
        assert_eq!(
            sustained_iops(&[s(0, 1.0), s(60, 3.0)], 60, 3600),
            Some(2.0)
        );
    }

    #[test]
    fn a_zero_iops_series_is_known_cold() {
        let samples: Vec<_> = (0..10).map(|i| s(i * 60, 0.0)).collect();
        assert_eq!(decayed_iops(&samples, 540, 3600, 900), Heat::Known(0.0));
    }
}
