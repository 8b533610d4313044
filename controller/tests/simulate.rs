//! `couchestor-controller simulate`, run as the built binary: the JSON scorecard, its sanity
//! bounds, reproducibility, and the SVG.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn simulate(svg: &Path, extra: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_couchestor-controller"))
        .args([
            "simulate",
            "--output",
            "json",
            "--no-progress",
            "--days",
            "2",
            "--volumes",
            "80",
            "--svg",
        ])
        .arg(svg)
        .args(extra)
        .output()
        .expect("run couchestor-controller");
    assert!(
        out.status.success(),
        "simulate failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON object ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn svg_path(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("simulate");
    let path = dir.join(format!("{name}-{}.svg", std::process::id()));
    if path.exists() {
        std::fs::remove_file(&path).expect("remove a stale SVG");
    }
    path
}

fn number(v: &Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} is not a number in {v}"))
}

#[test]
fn json_scorecard_is_sane_reproducible_and_draws_an_svg() {
    let svg = svg_path("default");
    let first = simulate(&svg, &[]);

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
        "baseline",
    ] {
        assert!(first.get(key).is_some(), "missing {key} in {first}");
    }
    assert_eq!(first["scenario"], "default");
    assert_eq!(first["seed"], 42);
    assert_eq!(first["policy"], "couchestor");
    assert_eq!(first["volumes"], 80);

    let hot = number(&first, "hot_share");
    let oracle = number(&first, "oracle_hot_share");
    assert!(hot >= 0.0, "hot_share {hot}");
    assert!(oracle <= 1.0 && oracle > 0.0, "oracle_hot_share {oracle}");
    assert!(
        hot <= oracle * 1.0001,
        "hot_share {hot} beats the oracle {oracle}"
    );
    assert!((number(&first, "oracle_ratio") - hot / oracle).abs() < 1e-9);
    assert_eq!(first["ping_pongs"], 0, "couchestor ping-pongs: {first}");
    assert_eq!(
        first["failed_moves"], 0,
        "the engine planned into a full tier: {first}"
    );
    assert!(
        first["moves"].as_u64().unwrap() > 0,
        "nothing moved: {first}"
    );

    // The baseline runs on the same workload, hence against the same oracle.
    let base = &first["baseline"];
    assert_eq!(base["policy"], "baseline");
    assert_eq!(base["oracle_hot_share"], first["oracle_hot_share"]);
    assert!(number(base, "hot_share") <= oracle * 1.0001);

    // Same seed, same run: every number identical.
    let second = simulate(&svg, &[]);
    assert_eq!(first, second, "two runs with seed 42 differ");
    // Another seed: another workload.
    let other = simulate(&svg_path("seed7"), &["--seed", "7"]);
    assert_ne!(first["oracle_hot_share"], other["oracle_hot_share"]);

    let text = std::fs::read_to_string(&svg).expect("the SVG was written");
    assert!(text.starts_with("<?xml"), "{}", &text[..text.len().min(80)]);
    assert!(text.contains("<svg") && text.trim_end().ends_with("</svg>"));
    assert!(text.contains("Fast-tier occupancy") && text.contains("oracle"));
    assert_eq!(text.matches("<svg").count(), text.matches("</svg>").count());
    assert_eq!(first["svg"].as_str(), svg.to_str());
}

#[test]
fn baseline_policy_reports_itself_without_a_nested_baseline() {
    let v = simulate(
        &svg_path("baseline"),
        &["--policy", "baseline", "--scenario", "skewed"],
    );
    assert_eq!(v["policy"], "baseline");
    assert_eq!(v["scenario"], "skewed");
    assert_eq!(v["alpha"], 1.2);
    assert!(v["baseline"].is_null(), "{v}");
    assert!(number(&v, "hot_share") <= number(&v, "oracle_hot_share") * 1.0001);
}
