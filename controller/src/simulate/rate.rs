//! What Prometheus shows of the workload. The controller's default heat expression takes
//! `rate()` over a 5 minute window of Mayastor's cumulative counters, so at every scrape the
//! controller sees the mean IOPS of the scrape intervals inside that window, not the last
//! interval alone: a burst shows up over a few minutes, and sampling noise is averaged over
//! the window (which lifts the median the promotion gate reads). The policies under test
//! see the same; `fidelity.rs` checks it against a real Prometheus.

use std::collections::VecDeque;

use couchestor_common::heat::Sample;
use couchestor_common::history::HeatHistory;

/// The `rate()` window of the default heat expression (`DEFAULT_HEAT_QUERY`), seconds.
pub const RATE_WINDOW_SECS: u64 = 300;

/// Whose range-selector semantics `rate()` follows: which scrapes at the window's edge
/// belong to `[5m]`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
pub enum Prometheus {
    /// Prometheus 2: the scrapes in `[t − 5m, t]`, both ends included (the suite's
    /// Prometheus, which `fidelity.rs` matches exactly).
    #[default]
    #[value(name = "2")]
    #[serde(rename = "2")]
    V2,
    /// Prometheus 3: the scrapes in `(t − 5m, t]`, the start left out.
    #[value(name = "3")]
    #[serde(rename = "3")]
    V3,
}

/// Scrape intervals a `rate()` over [`RATE_WINDOW_SECS`] spans at one scrape every
/// `sample_secs`. Prometheus 2 selects the scrapes in `[t − 5m, t]`: six at 60 s, five
/// intervals between them. Prometheus 3 leaves the start out, so it averages one interval
/// fewer when the scrape interval divides 5 minutes (four at 60 s), and the same number
/// otherwise. An error when the window cannot hold two scrapes, so that `rate()` would have
/// no value at all.
pub fn intervals(sample_secs: u64, prometheus: Prometheus) -> anyhow::Result<usize> {
    let (max, spans) = match prometheus {
        Prometheus::V2 => (RATE_WINDOW_SECS, RATE_WINDOW_SECS),
        Prometheus::V3 => (RATE_WINDOW_SECS - 1, RATE_WINDOW_SECS - 1),
    };
    anyhow::ensure!(
        (1..=max).contains(&sample_secs),
        "--sample-secs must be 1 to {max} with --prometheus {}: the default heat \
         expression's rate() over [5m] needs two scrapes inside its window",
        prometheus.version()
    );
    Ok((spans / sample_secs) as usize)
}

impl Prometheus {
    /// The major version, as the `--prometheus` flag takes it.
    pub fn version(self) -> u8 {
        match self {
            Prometheus::V2 => 2,
            Prometheus::V3 => 3,
        }
    }
}

/// Per volume, the IOPS of the last few scrape intervals, turned into the value `rate()`
/// returns at the newest scrape.
struct RateView {
    intervals: usize,
    recent: Vec<VecDeque<f64>>,
    rates: Vec<f64>,
}

impl RateView {
    /// A view of `volumes` volumes whose `rate()` spans `intervals` scrape intervals.
    fn new(volumes: usize, intervals: usize) -> Self {
        let intervals = intervals.max(1);
        RateView {
            intervals,
            recent: vec![VecDeque::with_capacity(intervals + 1); volumes],
            rates: vec![0.0; volumes],
        }
    }

    /// Takes each volume's mean IOPS over the scrape interval that just ended and returns
    /// what `rate()` shows now: the mean over the last `intervals` of them (fewer at the
    /// start, as Prometheus has fewer scrapes then).
    fn push(&mut self, interval_iops: &[f64]) -> &[f64] {
        for ((recent, rate), &iops) in self
            .recent
            .iter_mut()
            .zip(&mut self.rates)
            .zip(interval_iops)
        {
            if recent.len() == self.intervals {
                recent.pop_front();
            }
            recent.push_back(iops);
            *rate = recent.iter().sum::<f64>() / recent.len() as f64;
        }
        &self.rates
    }
}

/// What the policies keep of the workload, as the controller keeps it of Prometheus's
/// answers: each volume's recent samples as `rate()` shows them (enough for the heat window),
/// and, when asked, the same samples in the hourly history the sustained window reads.
pub struct SampleHistory {
    rates: RateView,
    samples: Vec<Vec<Sample>>,
    keep: usize,
}

impl SampleHistory {
    /// A history of `volumes` volumes scraped every `sample_secs`, keeping at least
    /// `window_secs` of samples, as `prometheus` shows them. Fails on a scrape interval
    /// `rate()` has no value for.
    pub fn new(
        volumes: usize,
        sample_secs: u64,
        window_secs: u64,
        prometheus: Prometheus,
    ) -> anyhow::Result<Self> {
        let keep = (window_secs / sample_secs.max(1)) as usize + 2;
        Ok(SampleHistory {
            rates: RateView::new(volumes, intervals(sample_secs, prometheus)?),
            samples: vec![Vec::with_capacity(2 * keep); volumes],
            keep,
        })
    }

    /// Records, at `at`, what `rate()` shows once each volume's interval that just ended
    /// (`interval_iops`, in volume order) is scraped; also into `hourly` under each volume's
    /// name, when given.
    pub fn record(
        &mut self,
        at: i64,
        interval_iops: &[f64],
        mut hourly: Option<(&mut HeatHistory, &[&str])>,
    ) {
        let shown = self.rates.push(interval_iops);
        for (i, (h, &iops)) in self.samples.iter_mut().zip(shown).enumerate() {
            let sample = Sample { at, iops };
            h.push(sample);
            if let Some((history, names)) = &mut hourly {
                history.ingest(names[i], &[sample]);
            }
            if h.len() >= 2 * self.keep {
                h.drain(..h.len() - self.keep);
            }
        }
    }

    /// Each volume's samples, oldest first.
    pub fn samples(&self) -> &[Vec<Sample>] {
        &self.samples
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use couchestor_common::heat::DEFAULT_HEAT_QUERY;

    #[test]
    fn the_window_is_the_default_expressions() {
        assert!(DEFAULT_HEAT_QUERY.contains("[5m]"), "{DEFAULT_HEAT_QUERY}");
        assert_eq!(RATE_WINDOW_SECS, 5 * 60);
    }

    #[test]
    fn a_rate_spans_the_intervals_between_the_scrapes_in_its_window() {
        let v2 = |s| intervals(s, Prometheus::V2);
        let v3 = |s| intervals(s, Prometheus::V3);
        // [t − 300 s, t] holds the scrapes at t − 300, …, t: five intervals at 60 s;
        // (t − 300 s, t] leaves out the one at t − 300.
        assert_eq!(v2(60).unwrap(), 5);
        assert_eq!(v3(60).unwrap(), 4);
        assert_eq!(v2(30).unwrap(), 10);
        assert_eq!(v3(30).unwrap(), 9);
        // At 90 s the scrapes at t − 270, …, t span three intervals in both (Prometheus
        // extrapolates the increase to the window's start, which leaves the mean as is).
        assert_eq!(v2(90).unwrap(), 3);
        assert_eq!(v3(90).unwrap(), 3);
        assert_eq!(v2(300).unwrap(), 1);
        assert_eq!(v3(299).unwrap(), 1);
        for bad in [0, 301] {
            let err = v2(bad).unwrap_err().to_string();
            assert!(
                err.contains("--sample-secs must be 1 to 300 with --prometheus 2"),
                "{err}"
            );
        }
        // Prometheus 3 sees a single scrape in (t − 300 s, t] at 300 s: no rate at all.
        let err = v3(300).unwrap_err().to_string();
        assert!(
            err.contains("--sample-secs must be 1 to 299 with --prometheus 3"),
            "{err}"
        );
    }

    #[test]
    fn the_view_is_the_trailing_mean_of_the_intervals() {
        let mut v = RateView::new(2, 2);
        assert_eq!(v.push(&[10.0, 0.0]), &[10.0, 0.0]);
        assert_eq!(v.push(&[20.0, 4.0]), &[15.0, 2.0]);
        assert_eq!(v.push(&[40.0, 8.0]), &[30.0, 6.0]);
    }
}
