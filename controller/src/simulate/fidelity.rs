//! Fidelity of the simulator's heat to the controller's: `simulate` computes heat in process
//! from the workload's samples, while the controller reads it from Prometheus through the
//! default heat expression (`rate()` over Mayastor's cumulative counters). Here the same
//! samples, written as Mayastor's `volume_num_read_ops` / `volume_num_write_ops` counters and
//! backfilled into a real Prometheus, are read back through the controller's own `Eyes`.

use std::time::Duration;

use couchestor_common::heat::{self, Heat};
use couchestor_common::history::HeatHistory;
use couchestor_testsupport::{OpenMetrics, TestPrometheus, prometheus};

use super::policy::{self, PolicyConfig};
use super::rate::{Prometheus, SampleHistory};
use super::workload::{Workload, WorkloadParams};
use crate::eyes::{Eyes, heat_of, sustained_of};

/// Share of a volume's I/O that is reads: every third volume exports reads only (Mayastor
/// then has no write counter for it), the others mix reads and writes.
fn read_share(i: usize) -> f64 {
    [1.0, 0.7, 0.5][i % 3]
}

fn name(i: usize) -> String {
    format!("pvc-sim-{i:05}")
}

/// `hours` of the workload's observed samples as `simulate` keeps them (its window samples
/// and hourly history, one sample per volume per `sample_secs`, the last at `end`) and the same
/// I/O as whole-op cumulative counters, as Mayastor's exporter shows them to a scrape at each
/// sample time.
fn record(w: &mut Workload, hours: i64, end: i64) -> (SampleHistory, HeatHistory, OpenMetrics) {
    let n = w.params().volumes;
    let step = w.params().sample_secs as i64;
    let samples = hours * 3600 / step;
    let names: Vec<String> = (0..n).map(name).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let window = PolicyConfig::default().window_secs;
    let mut history = SampleHistory::new(n, step as u64, window, Prometheus::V2).unwrap();
    let mut hourly = HeatHistory::new();
    let mut ops = vec![(0.0_f64, 0.0_f64); n];
    let mut om = OpenMetrics::new();
    for k in 0..samples {
        w.advance();
        let at = end - (samples - 1 - k) * step;
        history.record(at, &w.observed, Some((&mut hourly, &names)));
        for (i, &pv) in names.iter().enumerate() {
            let iops = w.observed[i];
            let r = read_share(i);
            ops[i].0 += iops * r * step as f64;
            ops[i].1 += iops * (1.0 - r) * step as f64;
            let labels = [("node", "node-1"), ("pv_name", pv)];
            om.gauge("volume_num_read_ops", &labels, ops[i].0.floor(), at);
            if r < 1.0 {
                om.gauge("volume_num_write_ops", &labels, ops[i].1.floor(), at);
            }
        }
    }
    (history, hourly, om)
}

/// Relative difference `|a − b| / b`.
fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(f64::MIN_POSITIVE)
}

/// `hours` of the `default` workload (60 volumes, seed 42) up to a minute boundary two minutes
/// ago: what `simulate` keeps of it, a real Prometheus backfilled with it, and the end time.
async fn backfilled(hours: i64) -> Option<(SampleHistory, HeatHistory, TestPrometheus, i64)> {
    let params = WorkloadParams {
        volumes: 60,
        ..WorkloadParams::default()
    };
    let mut w = Workload::new(&params, 42).unwrap();
    let now = k8s_openapi::jiff::Timestamp::now().as_second();
    let end = now - now.rem_euclid(60) - 120;
    let (history, hourly, om) = record(&mut w, hours, end);
    let p = prometheus(&om).await?;
    Some((history, hourly, p, end))
}

#[tokio::test]
async fn simulated_heat_is_what_the_controller_reads_from_prometheus() {
    let Some((history, _, p, end)) = backfilled(3).await else {
        return;
    };
    let eyes = Eyes::for_tests(p.url());
    let cfg = PolicyConfig::default();
    let window = Duration::from_secs(cfg.window_secs);
    let half_life = Duration::from_secs(cfg.half_life_secs);
    let series = eyes.series(window, end).await.unwrap();
    assert_eq!(eyes.requests(), 1);
    let simulated = policy::heats(history.samples(), end, &cfg);
    let mut worst = (0.0_f64, 0.0_f64);
    for (i, (h, sim)) in history.samples().iter().zip(&simulated).enumerate() {
        let pv = name(i);
        let Heat::Known(sim) = *sim else {
            panic!("{pv}: simulate has no heat");
        };
        let Heat::Known(read) = heat_of(
            &series,
            &pv,
            end,
            window,
            half_life,
            eyes.stale_after(window),
        ) else {
            panic!("{pv}: the controller read no heat from Prometheus");
        };
        let sim_median = heat::sustained_iops(h, end, cfg.window_secs).unwrap();
        let read_median =
            sustained_of(&series, &pv, end, window, eyes.stale_after(window)).unwrap();
        // Only the counters' whole-op rounding may differ: under 1 op per scrape interval.
        for (what, read, sim) in [("heat", read, sim), ("median", read_median, sim_median)] {
            assert!(
                (read - sim).abs() <= 1e-3 * sim,
                "{pv}: {what} simulated {sim:.3} IOPS, read from Prometheus {read:.3}"
            );
        }
        worst.0 = worst.0.max(rel(read, sim));
        worst.1 = worst.1.max(rel(read_median, sim_median));
    }
    eprintln!(
        "{} volumes: heat within {:.1e}, median within {:.1e} (relative)",
        history.samples().len(),
        worst.0,
        worst.1
    );
}

#[tokio::test]
async fn a_fresh_controllers_day_mean_is_near_simulates() {
    // A controller that starts reads the sustained window's history in one coarse query
    // (96 points a day); `simulate` has taken in every sample since its start.
    let Some((history, simulated, p, end)) = backfilled(25).await else {
        return;
    };
    let eyes = Eyes::for_tests(p.url());
    let day = Duration::from_secs(86_400);
    assert!(eyes.backfill_once(day, end).await.unwrap());
    let mut errors = Vec::new();
    for i in 0..history.samples().len() {
        let pv = name(i);
        let sim = simulated.mean(&pv, end, day.as_secs()).unwrap();
        let read = eyes.sustained_mean(&pv, end, day).unwrap();
        // The coarse points sample a quarter of each hour's 5 minute rates: a burst can be
        // caught or missed, the daily cycle is kept.
        assert!(
            rel(read, sim) <= 0.05,
            "{pv}: day mean simulated {sim:.2} IOPS, a fresh controller read {read:.2}"
        );
        errors.push((read - sim) / sim);
    }
    let bias = errors.iter().sum::<f64>() / errors.len() as f64;
    let worst = errors.iter().fold(0.0_f64, |m, e| m.max(e.abs()));
    eprintln!("day means: within {worst:.4}, mean difference {bias:+.4} (relative)");
    assert!(
        bias.abs() <= 0.01,
        "the fresh controller's day means are biased: {bias:+.4}"
    );
}
