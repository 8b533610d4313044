//! `couchestor-controller simulate`, run as the built binary: the JSON scorecard, its sanity
//! bounds, reproducibility, and the SVG; and `--backend mayastor`, where the controller's move
//! engine carries out the moves against the Mayastor simulator (served in-process on loopback).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn simulate(svg: &Path, extra: &[&str]) -> Value {
    let mut args = vec!["--days", "2", "--volumes", "80"];
    args.extend_from_slice(extra);
    run(svg, &args)
}

/// `simulate --output json --no-progress --svg SVG ARGS`, which must succeed with one object.
fn run(svg: &Path, args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_couchestor-controller"))
        .args(["simulate", "--output", "json", "--no-progress", "--svg"])
        .arg(svg)
        .args(args)
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
    assert_eq!(first["backend"], "tier");
    assert!(
        first.get("mayastor").is_none(),
        "tier runs have no engine block"
    );
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

/// `simulate ARGS` that must fail; its stderr.
fn refused(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_couchestor-controller"))
        .args(["simulate", "--no-progress", "--svg"])
        .arg(svg_path("refused"))
        .args(args)
        .output()
        .expect("run couchestor-controller");
    assert!(!out.status.success(), "{args:?} was accepted");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// 20 volumes, one simulated day, `replicas` replicas, on `backend`.
fn small(backend: &str, replicas: &str) -> Value {
    let svg = svg_path(&format!("small-{backend}-{replicas}"));
    let args = [
        "--volumes",
        "20",
        "--days",
        "1",
        "--replicas",
        replicas,
        "--backend",
        backend,
    ];
    run(&svg, &args)
}

/// Checks one `--backend mayastor` run; returns (hot_share, completed migrations).
fn check_mayastor_run(v: &Value, replicas: u64) -> (f64, u64) {
    assert_eq!(v["backend"], "mayastor");
    assert_eq!(v["replicas"], replicas);
    let e = &v["mayastor"];
    assert_eq!(e["profile"], "2.10", "{e}");
    assert_eq!(e["nodes"], (replicas + 1).max(3), "{e}");
    let field = |k: &str| {
        e[k].as_u64()
            .unwrap_or_else(|| panic!("mayastor.{k} is not a count in {e}"))
    };
    // The run ended, so every audit passed; and every engine step was audited.
    assert!(field("engine_steps") > 0, "{e}");
    assert_eq!(field("audited_volume_steps"), field("engine_steps"), "{e}");
    let completed = field("migrations_completed");
    assert!(completed > 0, "no move went through the engine: {e}");
    // Every completed move went through the engine's phases, one round per replica.
    assert_eq!(field("completed_through_every_phase"), completed, "{e}");
    for phase in [
        "Analyzing",
        "ScalingUp",
        "WaitingSync",
        "ScalingDown",
        "Completed",
    ] {
        let visits = e["phases_visited"][phase].as_u64().unwrap_or(0);
        let rounds = if phase == "Analyzing" || phase == "Completed" {
            1
        } else {
            replicas
        };
        assert!(
            visits >= completed * rounds,
            "{phase}: {visits} visits, {completed} moves: {e}"
        );
    }
    assert_eq!(e["outcomes"]["success"], completed, "{e}");
    assert_eq!(
        field("migrations_started"),
        completed + field("migrations_aborted") + field("migrations_in_flight"),
        "{e}"
    );
    // Each replica of a completed move was replaced after its replacement synced.
    assert!(field("healthy_removals") >= completed * replicas, "{e}");
    assert_eq!(field("tier_changes_outside_migrations"), 0, "{e}");
    // The scorecard counts what the engine completed.
    assert_eq!(v["moves"], completed, "{v}");
    assert_eq!(v["ping_pongs"], 0, "{v}");
    assert_eq!(v["failed_moves"], 0, "{v}");
    let hot = number(v, "hot_share");
    assert!(
        hot > 0.0 && hot <= number(v, "oracle_hot_share") * 1.0001,
        "{v}"
    );
    // The baseline has no engine: it runs on the tier model, and says so.
    assert_eq!(v["baseline"]["backend"], "tier");
    (hot, completed)
}

#[test]
fn the_mayastor_backend_moves_through_the_real_engine_safely_and_reproducibly() {
    for replicas in ["1", "3"] {
        let mayastor = small("mayastor", replicas);
        let (hot, completed) = check_mayastor_run(&mayastor, replicas.parse().unwrap());
        let tier = small("tier", replicas);
        let tier_hot = number(&tier, "hot_share");
        eprintln!(
            "replicas {replicas}: hot_share mayastor {hot:.4} ({completed} moves) vs tier {tier_hot:.4} ({} moves)",
            tier["moves"]
        );
        // Same workload and watermarks, hence the same oracle.
        assert_eq!(mayastor["oracle_hot_share"], tier["oracle_hot_share"]);
        assert_eq!(mayastor["watermarks"], tier["watermarks"]);
        // Per-pool room and one replica per node cost some hot share; not most of it.
        assert!(
            (hot - tier_hot).abs() <= 0.15,
            "replicas {replicas}: mayastor {hot} vs tier {tier_hot}"
        );
        if replicas == "1" {
            let again = small("mayastor", replicas);
            assert_eq!(mayastor, again, "two mayastor runs with one seed differ");
        }
    }
}

#[test]
fn without_aborts_the_mayastor_backend_scores_like_the_tier_model() {
    // Seed 4 on this instance, with two nodes, plans no move that Mayastor refuses (no pool with
    // room on a node free of the volume, or a timeout): then only the engine's timing differs
    // from the tier model (steps 200 ms apart, polls every second), and the scorecards agree.
    let args = ["--volumes", "20", "--days", "1", "--seed", "4"];
    let tier = run(&svg_path("same-tier"), &args);
    let mut with_backend = args.to_vec();
    with_backend.extend(["--backend", "mayastor", "--nodes", "2"]);
    let mayastor = run(&svg_path("same-mayastor"), &with_backend);
    assert_eq!(
        mayastor["mayastor"]["migrations_aborted"], 0,
        "this seed was chosen for having no aborts; pick another: {mayastor}"
    );
    let (hot, tier_hot) = (number(&mayastor, "hot_share"), number(&tier, "hot_share"));
    eprintln!("seed 4: hot_share mayastor {hot:.6} vs tier {tier_hot:.6}");
    assert!(
        (hot - tier_hot).abs() < 0.01,
        "mayastor {hot} vs tier {tier_hot}"
    );
    assert_eq!(mayastor["moves"], tier["moves"]);
    assert_eq!(mayastor["ping_pongs"], 0);
}

#[test]
fn bad_backend_flags_are_refused_with_the_reason() {
    let e = refused(&["--backend", "mayastor", "--policy", "baseline"]);
    assert!(e.contains("baseline has none"), "{e}");
    let e = refused(&["--backend", "mayastor", "--replicas", "2", "--nodes", "2"]);
    assert!(e.contains("--nodes 2 is too few for 2 replica(s)"), "{e}");
    let e = refused(&["--nodes", "4"]);
    assert!(e.contains("apply to --backend mayastor only"), "{e}");
    let e = refused(&["--backend", "mayastor", "--migration-timeout-minutes", "0"]);
    assert!(e.contains("--migration-timeout-minutes"), "{e}");
    let e = refused(&["--headroom-percent", "95"]);
    assert!(
        e.contains("--headroom-percent") && e.contains("0..=90"),
        "{e}"
    );
    let e = refused(&["--observe", "future"]);
    assert!(e.contains("--observe") && e.contains("level"), "{e}");
}

#[test]
fn the_headroom_flag_sets_how_full_the_engine_fills_the_fast_tier() {
    let peak = |headroom: &str| {
        let v = simulate(
            &svg_path(&format!("headroom-{headroom}")),
            &["--headroom-percent", headroom],
        );
        assert_eq!(v["headroom_percent"].as_u64(), headroom.parse().ok());
        assert_eq!(v["ping_pongs"], 0);
        number(&v, "peak_fast_occupancy_percent")
    };
    let (ten, two) = (peak("10"), peak("2"));
    // Never past the limit, and the smaller headroom is used.
    assert!(ten <= 90.0 + 1e-9 && two <= 98.0 + 1e-9, "{ten} {two}");
    assert!(two > ten && two > 90.0, "{ten} {two}");
}

#[test]
fn analysis_views_are_reported_and_change_only_what_the_policy_sees() {
    let observed = simulate(&svg_path("observe-observed"), &[]);
    let level = simulate(&svg_path("observe-level"), &["--observe", "level"]);
    assert_eq!(observed["observe"], "observed");
    assert_eq!(level["observe"], "level");
    // Same workload, so the same oracle; a different view, so different decisions.
    assert_eq!(observed["oracle_hot_share"], level["oracle_hot_share"]);
    assert_ne!(observed["watermarks"], level["watermarks"]);
    assert!(number(&level, "hot_share") <= number(&level, "oracle_hot_share"));
}
