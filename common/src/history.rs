//! Heat history: each volume's IOPS samples folded into hourly buckets, so the mean over a
//! long window (a day) is known without asking Prometheus for a day of samples every cycle.
//!
//! The controller feeds it every fresh heat answer; the simulator feeds it every sample. Only
//! samples newer than the newest already seen count, so overlapping answers are not counted
//! twice. A volume with no samples in the window has no mean: unknown, never zero. After a
//! restart the history refills as answers arrive; until it spans the whole window, the mean
//! covers what has been seen.

use std::collections::{HashMap, VecDeque};

use crate::heat::Sample;

/// Width of one bucket, seconds.
pub const BUCKET_SECS: i64 = 3600;

/// Hourly IOPS sums per volume.
#[derive(Clone, Debug, Default)]
pub struct HeatHistory {
    volumes: HashMap<String, Track>,
}

#[derive(Clone, Debug)]
struct Track {
    /// Time of the newest sample taken in.
    newest: i64,
    /// Oldest first.
    buckets: VecDeque<Bucket>,
}

impl Default for Track {
    fn default() -> Self {
        Self {
            newest: i64::MIN,
            buckets: VecDeque::new(),
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    /// Bucket index: Unix seconds / [`BUCKET_SECS`].
    index: i64,
    sum: f64,
    samples: u32,
}

impl HeatHistory {
    /// An empty history.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes in `samples` of volume `name` (any order) that are newer than the newest sample
    /// already recorded for it. Samples that are not finite or negative are ignored.
    pub fn ingest(&mut self, name: &str, samples: &[Sample]) {
        let track = match self.volumes.get_mut(name) {
            Some(t) => t,
            None => self.volumes.entry(name.to_owned()).or_default(),
        };
        let floor = track.newest;
        let mut fresh: Vec<Sample> = samples
            .iter()
            .copied()
            .filter(|s| s.at > floor && s.iops.is_finite() && s.iops >= 0.0)
            .collect();
        fresh.sort_by_key(|s| s.at);
        for s in fresh {
            let index = s.at.div_euclid(BUCKET_SECS);
            match track.buckets.back_mut() {
                Some(b) if b.index == index => {
                    b.sum += s.iops;
                    b.samples += 1;
                }
                _ => track.buckets.push_back(Bucket {
                    index,
                    sum: s.iops,
                    samples: 1,
                }),
            }
            track.newest = s.at;
        }
    }

    /// Mean IOPS of volume `name` over the hours that overlap `(now - window_secs, now]`, each
    /// hour weighing the same however many samples it holds (answers at different steps feed
    /// it), or `None` when it has no samples there.
    pub fn mean(&self, name: &str, now: i64, window_secs: u64) -> Option<f64> {
        let track = self.volumes.get(name)?;
        let first = (now - window_secs as i64).div_euclid(BUCKET_SECS);
        let last = now.div_euclid(BUCKET_SECS);
        let (sum, hours) = track
            .buckets
            .iter()
            .rev()
            .take_while(|b| b.index >= first)
            .filter(|b| b.index <= last)
            .fold((0.0, 0u32), |(s, n), b| {
                (s + b.sum / f64::from(b.samples), n + 1)
            });
        (hours > 0).then(|| sum / f64::from(hours))
    }

    /// Drops buckets that end before `now - keep_secs`, and volumes left with none.
    pub fn prune(&mut self, now: i64, keep_secs: u64) {
        let first = (now - keep_secs as i64).div_euclid(BUCKET_SECS);
        self.volumes.retain(|_, t| {
            while t.buckets.front().is_some_and(|b| b.index < first) {
                t.buckets.pop_front();
            }
            !t.buckets.is_empty()
        });
    }

    /// Number of volumes with a history.
    pub fn len(&self) -> usize {
        self.volumes.len()
    }

    /// Whether no volume has a history.
    pub fn is_empty(&self) -> bool {
        self.volumes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(at: i64, iops: f64) -> Sample {
        Sample { at, iops }
    }

    #[test]
    fn mean_over_a_day_of_hourly_buckets() {
        let mut h = HeatHistory::new();
        // 24 h of one sample a minute: 100 IOPS for 12 h, then 300 IOPS for 12 h.
        let day: Vec<Sample> = (0..1440)
            .map(|m| s(m * 60, if m < 720 { 100.0 } else { 300.0 }))
            .collect();
        h.ingest("a", &day);
        let now = 1439 * 60;
        assert_eq!(h.mean("a", now, 86_400), Some(200.0));
        // The last 6 hours only (hour buckets 18..=23): all at 300.
        assert_eq!(h.mean("a", now, 6 * 3600 - 1), Some(300.0));
        // Unknown volume: unknown, not zero.
        assert_eq!(h.mean("b", now, 86_400), None);
    }

    #[test]
    fn overlapping_answers_are_not_counted_twice() {
        let mut h = HeatHistory::new();
        let first: Vec<Sample> = (0..60).map(|m| s(m * 60, 10.0)).collect();
        // A later answer covering the last 30 minutes again, then 30 new ones at 40 IOPS.
        let second: Vec<Sample> = (30..90)
            .map(|m| s(m * 60, if m < 60 { 10.0 } else { 40.0 }))
            .collect();
        h.ingest("a", &first);
        h.ingest("a", &second);
        // Hour 0: 60 samples at 10, not 90; hour 1: 30 samples at 40. Each hour weighs the same.
        assert_eq!(h.mean("a", 89 * 60, 86_400), Some(25.0));
    }

    #[test]
    fn bad_samples_are_ignored_and_pruning_forgets() {
        let mut h = HeatHistory::new();
        h.ingest("a", &[s(0, f64::NAN), s(60, -1.0), s(120, 5.0)]);
        assert_eq!(h.mean("a", 120, 3600), Some(5.0));
        h.ingest("b", &[s(100_000, 7.0)]);
        h.prune(100_000, 3600);
        assert_eq!(h.len(), 1, "a's only bucket is older than an hour");
        assert_eq!(h.mean("a", 100_000, 200_000), None);
        assert_eq!(h.mean("b", 100_000, 3600), Some(7.0));
    }
}
