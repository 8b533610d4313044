//! End-to-end checks of the simulator: presets, a whole (short) run, the JSON report.

use clap::Parser;

use super::rate::Prometheus;
use super::report::Report;
use super::sim::{Backend, PolicyKind, SimConfig, simulate};
use super::workload::WorkloadParams;
use super::{Scenario, SimulateArgs};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: SimulateArgs,
}

fn args(argv: &[&str]) -> SimulateArgs {
    Cli::parse_from(std::iter::once("simulate").chain(argv.iter().copied())).args
}

#[test]
fn flags_override_scenario_presets() {
    let cfg = args(&["--scenario", "shifting"]).config().unwrap();
    assert_eq!(cfg.workload.shift_fraction, 0.5);
    assert_eq!(cfg.workload.shift_every_secs, 4 * 3600);
    assert_eq!(cfg.workload.alpha, 0.9);
    let cfg = args(&[
        "--scenario",
        "skewed",
        "--alpha",
        "0.7",
        "--volumes",
        "10",
        "--days",
        "1",
    ])
    .config()
    .unwrap();
    assert_eq!(cfg.workload.alpha, 0.7);
    assert_eq!(cfg.workload.volumes, 10);
    assert_eq!(cfg.days, 1.0);
    assert_eq!(args(&[]).scenario, Scenario::Default);
    assert!(args(&["--volumes", "0"]).config().is_err());
    // The default heat expression's rate() over [5m] needs two scrapes in its window.
    for bad in ["0", "301"] {
        let err = args(&["--sample-secs", bad])
            .config()
            .unwrap_err()
            .to_string();
        assert!(err.contains("--sample-secs must be 1 to 300"), "{err}");
    }
    let err = args(&["--sample-secs", "300", "--prometheus", "3"])
        .config()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("--sample-secs must be 1 to 299 with --prometheus 3"),
        "{err}"
    );
    assert_eq!(
        args(&["--prometheus", "3"]).config().unwrap().prometheus,
        Prometheus::V3
    );
    for (name, alpha, amplitude) in [("flat", 0.6, 0.5), ("diurnal", 0.9, 0.8)] {
        let cfg = args(&["--scenario", name]).config().unwrap();
        assert_eq!(
            (cfg.workload.alpha, cfg.workload.diurnal_amplitude),
            (alpha, amplitude)
        );
    }
}

#[test]
fn a_run_is_deterministic() {
    let cfg = args(&["--volumes", "30", "--days", "0.5"])
        .config()
        .unwrap();
    let hidden = indicatif::ProgressBar::hidden();
    let a = simulate(&cfg, PolicyKind::Couchestor, false, &hidden).unwrap();
    let b = simulate(&cfg, PolicyKind::Couchestor, false, &hidden).unwrap();
    assert_eq!(a.score, b.score);
    assert_eq!(a.stats, b.stats);
    assert!(a.stats.completed > 0, "nothing moved in 12 h");
    assert_eq!(a.stats.ping_pongs, 0);
    assert_eq!(a.stats.failed, 0);
}

#[test]
fn json_has_every_scorecard_key() {
    let cfg = SimConfig {
        workload: WorkloadParams {
            volumes: 20,
            ..WorkloadParams::default()
        },
        policy: Default::default(),
        seed: 3,
        days: 0.25,
        fast_tier_percent: 20.0,
        bandwidth_bps: 200.0 * 1024.0 * 1024.0,
        backend: Backend::Tier,
        mayastor: args(&[]).config().unwrap().mayastor,
        observe: Default::default(),
        prometheus: Default::default(),
    };
    let hidden = indicatif::ProgressBar::hidden();
    let ours = simulate(&cfg, PolicyKind::Couchestor, false, &hidden).unwrap();
    let base = simulate(&cfg, PolicyKind::Baseline, false, &hidden).unwrap();
    let report = Report::new("default", &cfg, &ours, Some(&base), None);
    let json = serde_json::to_value(&report).unwrap();
    for key in [
        "scenario",
        "seed",
        "policy",
        "hot_share",
        "oracle_hot_share",
        "oracle_ratio",
        "moves",
        "gib_moved",
        "ping_pongs",
        "failed_moves",
        "moves_per_volume_per_day",
        "slo_minutes",
        "reaction_time_minutes",
        "headroom_percent",
        "observe",
        "prometheus",
        "watermarks",
        "baseline",
    ] {
        assert!(json.get(key).is_some(), "missing {key} in {json}");
    }
    assert_eq!(json["policy"], "couchestor");
    assert_eq!(json["baseline"]["policy"], "baseline");
    // Same workload for both: the oracle does not depend on the policy.
    assert_eq!(
        json["oracle_hot_share"],
        json["baseline"]["oracle_hot_share"]
    );
    let text = report.text();
    assert!(
        text.contains("oracle_ratio") && text.contains("baseline"),
        "{text}"
    );
}

#[test]
fn the_zero_ping_pong_bound_sits_between_a_policy_without_ping_pongs_and_the_oracle() {
    let cfg = args(&["--volumes", "40", "--days", "2", "--scenario", "shifting"])
        .config()
        .unwrap();
    let hidden = indicatif::ProgressBar::hidden();
    let ours = simulate(&cfg, PolicyKind::Couchestor, true, &hidden).unwrap();
    assert_eq!(
        ours.stats.ping_pongs, 0,
        "the bound only covers such policies"
    );
    let bounds = ours.bounds.expect("asked for the bound");
    let bound = bounds.full;
    // Any zero-ping-pong placement (CoucheStor's among them) serves at most the bound. (That
    // the bound is at most the per-sample oracle holds by construction: `bounds` takes
    // the smaller of the two upper bounds.)
    assert!(
        ours.score.hot_share <= bound + 1e-9,
        "hot share {} above the bound {bound}",
        ours.score.hot_share
    );
    // Half the volumes re-ranked every 4 h: the dwell rule must cost something.
    assert!(
        bound < ours.score.oracle_hot_share * 0.99,
        "bound {bound} vs oracle {}",
        ours.score.oracle_hot_share
    );
    // The usable bound covers policies that keep the headroom free, as CoucheStor does, and
    // less capacity serves less.
    let peak = ours.score.occupancy_mean_peak.1;
    let limit = f64::from(100 - cfg.policy.headroom_percent);
    assert!(peak <= limit, "peak occupancy {peak} % above {limit} %");
    assert!(
        ours.score.hot_share <= bounds.usable + 1e-9,
        "hot share {} above the usable bound {}",
        ours.score.hot_share,
        bounds.usable
    );
    assert!(
        bounds.usable < bound && bounds.usable <= ours.score.oracle_usable_hot_share,
        "usable bound {} vs full bound {bound} and usable oracle {}",
        bounds.usable,
        ours.score.oracle_usable_hot_share
    );
}
