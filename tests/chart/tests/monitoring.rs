//! The alerts and the dashboard: the PrometheusRule's groups pass `promtool check rules`, the
//! alerts fire on the series they are about (`promtool test rules`), every alert is documented
//! in docs/metrics.md, and every metric the alerts and the dashboard query really exists.

use std::collections::BTreeSet;
use std::process::Command;

use couchestor_chart_tests::{
    COMBOS, Job, RELEASE, exported_metrics, metrics_not_in_their_job, one, project_metrics_in,
    registered_metrics, selectors_in, unknown_metrics,
};
use couchestor_testsupport::helm::{chart_dir, helm};
use couchestor_testsupport::{RunDir, unavailable, workspace_root};
use serde_json::{Value, json};

const NS: &str = "storage";

/// The PrometheusRule's `spec` (its rule groups) rendered with monitoring on.
fn rule_spec() -> Option<Value> {
    let helm = helm()?;
    let objs = helm.render(RELEASE, NS, COMBOS[2].args).unwrap();
    Some(one(&objs, "PrometheusRule", "couchestor")["spec"].clone())
}

fn alerts(spec: &Value) -> Vec<&Value> {
    spec["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
        .collect()
}

fn promtool() -> Option<&'static str> {
    match Command::new("promtool").arg("--version").output() {
        Ok(o) if o.status.success() => Some("promtool"),
        Ok(o) => unavailable("promtool", String::from_utf8_lossy(&o.stderr)),
        Err(e) => unavailable(
            "promtool",
            format!("{e} (Debian's prometheus package; tests/setup.sh installs it)"),
        ),
    }
}

#[test]
fn rules_pass_promtool_check() {
    let Some(spec) = rule_spec() else { return };
    let Some(promtool) = promtool() else { return };
    let dir = RunDir::new("rules").unwrap();
    let file = dir.path().join("rules.yaml");
    std::fs::write(&file, serde_yaml_ng::to_string(&spec).unwrap()).unwrap();
    let o = Command::new(promtool)
        .args(["check", "rules"])
        .arg(&file)
        .output()
        .unwrap();
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "promtool check rules:\n{out}");
    let n = alerts(&spec).len();
    assert!(out.contains(&format!("SUCCESS: {n} rules found")), "{out}");
}

#[test]
fn the_expected_alerts_exist_and_are_documented() {
    let Some(spec) = rule_spec() else { return };
    let names: BTreeSet<&str> = alerts(&spec)
        .iter()
        .map(|r| r["alert"].as_str().unwrap())
        .collect();
    for want in [
        "CoucheStorOperatorDown",
        "CoucheStorMigrationFailureRateHigh",
        "CoucheStorPolicyInvalid",
        "CoucheStorMigrationsStuck",
        "CoucheStorAgentUnreachable",
        "CoucheStorColdTierShardsMissing",
        "CoucheStorColdTierRedundancyExhausted",
        "CoucheStorColdTierShardDirUnreadable",
        "CoucheStorColdTierDegradedReads",
    ] {
        assert!(names.contains(want), "no alert {want}: {names:?}");
    }
    let doc = std::fs::read_to_string(workspace_root().join("docs/metrics.md")).unwrap();
    for rule in alerts(&spec) {
        let name = rule["alert"].as_str().unwrap();
        assert!(
            doc.contains(&format!("### {name}")),
            "docs/metrics.md has no section for {name}"
        );
        let url = rule["annotations"]["runbook_url"].as_str().unwrap();
        assert!(
            url.ends_with(&format!("docs/metrics.md#{}", name.to_lowercase())),
            "{name}: {url}"
        );
        for k in ["summary", "description"] {
            assert!(rule["annotations"][k].is_string(), "{name} has no {k}");
        }
        assert!(
            rule["labels"]["severity"].is_string(),
            "{name} has no severity"
        );
    }
}

/// The dashboard's panel queries.
fn dashboard_exprs() -> Vec<String> {
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(chart_dir().join("dashboards/couchestor.json")).unwrap(),
    )
    .expect("the dashboard is valid JSON");
    assert_eq!(dashboard["uid"], "couchestor");
    let mut out = Vec::new();
    for p in dashboard["panels"].as_array().unwrap() {
        if p["type"] == "row" {
            continue;
        }
        let t = p["targets"].as_array().expect("panel has targets");
        assert!(!t.is_empty(), "panel {} has no query", p["title"]);
        for q in t {
            out.push(q["expr"].as_str().unwrap().to_string());
        }
    }
    out
}

#[test]
fn alerts_and_dashboard_query_only_real_metrics() {
    let known = exported_metrics();
    // The source scan itself works: a few names that must be there.
    for m in [
        "storage_operator_migrations_total",
        "storage_operator_reconcile_duration_seconds_bucket",
        "couchestor_agent_up",
        "couchestor_agent_device_read_iops",
    ] {
        assert!(known.contains(m), "{m} not found in the sources: {known:?}");
    }
    let exprs = dashboard_exprs();
    let mut used = BTreeSet::new();
    for expr in &exprs {
        assert!(
            expr.contains("namespace=\"$namespace\""),
            "unscoped query: {expr}"
        );
        used.extend(project_metrics_in(expr));
    }
    assert!(exprs.len() >= 15, "{} queries", exprs.len());
    let unknown = unknown_metrics(&used);
    assert!(
        unknown.is_empty(),
        "dashboard queries unknown metrics: {unknown:?}"
    );

    if let Some(spec) = rule_spec() {
        let mut used = BTreeSet::new();
        for r in alerts(&spec) {
            used.extend(project_metrics_in(r["expr"].as_str().unwrap()));
        }
        let unknown = unknown_metrics(&used);
        assert!(
            unknown.is_empty(),
            "alerts query unknown metrics: {unknown:?}"
        );
    }
}

/// A metric queried from a scrape job must be registered by the process that job scrapes:
/// the agent job is the DaemonSet's `serve` (agent/src/metrics.rs), not `nbd serve`
/// (agent/src/nbd/metrics.rs, not scraped by the chart); the controller job is the
/// controller (controller/src/metrics.rs). A name found in some other source does not do.
#[test]
fn each_queried_metric_is_registered_by_the_job_it_is_queried_from() {
    // The selector parsing and the per-process scan themselves.
    assert_eq!(
        selectors_in(
            r#"sum(increase(couchestor_agent_up{namespace="$namespace",job=~"$agent_job"}[1h]))"#
        ),
        [("couchestor_agent_up".to_string(), Some(Job::Agent))]
    );
    assert_eq!(
        selectors_in(
            r#"max(storage_operator_volumes{job="couchestor-controller-metrics",namespace="s"}) > 0 and storage_operator_planned_moves"#
        ),
        [
            (
                "storage_operator_volumes".to_string(),
                Some(Job::Controller)
            ),
            ("storage_operator_planned_moves".to_string(), None)
        ]
    );
    let agent = registered_metrics(Job::Agent);
    assert!(
        agent.contains("couchestor_agent_ec_shards_missing"),
        "{agent:?}"
    );
    assert!(
        !agent.contains("couchestor_agent_nbd_connections"),
        "{agent:?}"
    );
    assert!(registered_metrics(Job::Controller).contains("storage_operator_agent_up"));

    let dashboard = dashboard_exprs();
    let exprs: Vec<&str> = dashboard.iter().map(String::as_str).collect();
    let wrong = metrics_not_in_their_job(&exprs);
    assert!(
        wrong.is_empty(),
        "dashboard queries metrics its job's process does not register:\n{}",
        wrong.join("\n")
    );
    if let Some(spec) = rule_spec() {
        let rules = alerts(&spec);
        let exprs: Vec<&str> = rules.iter().map(|r| r["expr"].as_str().unwrap()).collect();
        let wrong = metrics_not_in_their_job(&exprs);
        assert!(
            wrong.is_empty(),
            "alerts query metrics their job's process does not register:\n{}",
            wrong.join("\n")
        );
    }
}

/// `promtool test rules`: each alert fires on the series it is about, with the labels the
/// ServiceMonitors give them (job = the metrics Service, namespace = the release's).
#[test]
fn alerts_fire_on_their_series() {
    let Some(mut spec) = rule_spec() else { return };
    let Some(promtool) = promtool() else { return };
    // promtool compares annotations too; their templates are checked by `check rules`, so
    // only the expressions, durations and labels are under test here.
    for g in spec["groups"].as_array_mut().unwrap() {
        for r in g["rules"].as_array_mut().unwrap() {
            r.as_object_mut().unwrap().remove("annotations");
        }
    }
    let dir = RunDir::new("rule-tests").unwrap();
    std::fs::write(
        dir.path().join("rules.yaml"),
        serde_yaml_ng::to_string(&spec).unwrap(),
    )
    .unwrap();
    let ctl = format!("job=\"couchestor-controller-metrics\",namespace=\"{NS}\"");
    let agt = format!("job=\"couchestor-agent-metrics\",namespace=\"{NS}\"");
    let s = |series: String, values: &str| json!({"series": series, "values": values});
    let tests = json!({
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "name": "operator down: no controller target up",
                "interval": "1m",
                "input_series": [s(format!("up{{{ctl},pod=\"c-0\"}}"), "0x20")],
                "alert_rule_test": [
                    {"eval_time": "10m", "alertname": "CoucheStorOperatorDown",
                     "exp_alerts": [{"exp_labels": {"severity": "critical"}}]}
                ]
            },
            {
                "name": "operator up: nothing fires",
                "interval": "1m",
                "input_series": [s(format!("up{{{ctl},pod=\"c-0\"}}"), "1x20")],
                "alert_rule_test": [
                    {"eval_time": "10m", "alertname": "CoucheStorOperatorDown", "exp_alerts": []}
                ]
            },
            {
                // Reconciled once an hour (--reconcile-interval-seconds 3600): the phase gauge
                // holds, while its reconcile counter would rise once in 40 minutes.
                "name": "policy in phase Error",
                "interval": "1m",
                "input_series": [
                    s(format!("storage_operator_policy_phase{{{ctl},policy=\"bad\",phase=\"Error\"}}"), "1x40"),
                    s(format!("storage_operator_policy_phase{{{ctl},policy=\"bad\",phase=\"Active\"}}"), "0x40"),
                    s(format!("storage_operator_policy_phase{{{ctl},policy=\"good\",phase=\"Error\"}}"), "0x40"),
                    s(format!("storage_operator_policy_phase{{{ctl},policy=\"good\",phase=\"Active\"}}"), "1x40")
                ],
                "alert_rule_test": [
                    {"eval_time": "30m", "alertname": "CoucheStorPolicyInvalid",
                     "exp_alerts": [{"exp_labels": {"severity": "warning", "policy": "bad"}}]}
                ]
            },
            {
                "name": "half the migrations fail",
                "interval": "1m",
                "input_series": [
                    s(format!("storage_operator_migrations_total{{{ctl},status=\"success\"}}"), "0+1x90"),
                    s(format!("storage_operator_migrations_total{{{ctl},status=\"failed\"}}"), "0+1x90"),
                    s(format!("storage_operator_migrations_total{{{ctl},status=\"aborted\"}}"), "0x90")
                ],
                "alert_rule_test": [
                    {"eval_time": "80m", "alertname": "CoucheStorMigrationFailureRateHigh",
                     "exp_alerts": [{"exp_labels": {"severity": "warning"}}]}
                ]
            },
            {
                "name": "volumes held after a timed-out move",
                "interval": "1m",
                "input_series": [
                    s(format!("storage_operator_held_volumes{{{ctl},policy=\"big\",reason=\"timed_out\"}}"), "2x90"),
                    s(format!("storage_operator_held_volumes{{{ctl},policy=\"small\",reason=\"timed_out\"}}"), "0x90"),
                    s(format!("storage_operator_held_volumes{{{ctl},policy=\"small\",reason=\"cooldown\"}}"), "5x90")
                ],
                "alert_rule_test": [
                    {"eval_time": "30m", "alertname": "CoucheStorVolumesHeldAfterTimeout", "exp_alerts": []},
                    {"eval_time": "80m", "alertname": "CoucheStorVolumesHeldAfterTimeout",
                     "exp_alerts": [{"exp_labels": {"severity": "info", "policy": "big"}}]}
                ]
            },
            {
                "name": "migrations in flight, none finishing",
                "interval": "1m",
                "input_series": [
                    s(format!("storage_operator_active_migrations{{{ctl},pod=\"c-0\"}}"), "2x200"),
                    s(format!("storage_operator_migrations_total{{{ctl},status=\"success\"}}"), "5x200")
                ],
                "alert_rule_test": [
                    {"eval_time": "120m", "alertname": "CoucheStorMigrationsStuck",
                     "exp_alerts": [{"exp_labels": {"severity": "warning"}}]}
                ]
            },
            {
                "name": "agent unreachable from the controller",
                "interval": "1m",
                "input_series": [
                    s(format!("storage_operator_agent_up{{{ctl},pod=\"c-0\",node=\"n1\"}}"), "0x20"),
                    s(format!("storage_operator_agent_up{{{ctl},pod=\"c-0\",node=\"n2\"}}"), "1x20")
                ],
                "alert_rule_test": [
                    {"eval_time": "10m", "alertname": "CoucheStorAgentUnreachable",
                     "exp_alerts": [{"exp_labels": {"severity": "warning", "node": "n1"}}]}
                ]
            },
            {
                "name": "cold-tier shard loss",
                "interval": "1m",
                "input_series": [
                    s(format!("couchestor_agent_ec_shards_missing{{{agt},node=\"n1\",archive=\"a1\"}}"), "1x30"),
                    s(format!("couchestor_agent_ec_shards_missing{{{agt},node=\"n2\",archive=\"a2\"}}"), "2x30"),
                    s(format!("couchestor_agent_ec_shards_missing{{{agt},node=\"n3\",archive=\"a3\"}}"), "0x30"),
                    // One shard of a4 lost on each of two nodes: no node sees 2, the archive has.
                    s(format!("couchestor_agent_ec_shards_missing{{{agt},node=\"n4\",archive=\"a4\"}}"), "1x30"),
                    s(format!("couchestor_agent_ec_shards_missing{{{agt},node=\"n5\",archive=\"a4\"}}"), "1x30")
                ],
                "alert_rule_test": [
                    {"eval_time": "20m", "alertname": "CoucheStorColdTierShardsMissing",
                     "exp_alerts": [
                        {"exp_labels": {"severity": "warning", "node": "n1", "archive": "a1"}},
                        {"exp_labels": {"severity": "warning", "node": "n2", "archive": "a2"}},
                        {"exp_labels": {"severity": "warning", "node": "n4", "archive": "a4"}},
                        {"exp_labels": {"severity": "warning", "node": "n5", "archive": "a4"}}
                     ]},
                    {"eval_time": "20m", "alertname": "CoucheStorColdTierRedundancyExhausted",
                     "exp_alerts": [
                        {"exp_labels": {"severity": "critical", "archive": "a2"}},
                        {"exp_labels": {"severity": "critical", "archive": "a4"}}
                     ]}
                ]
            },
            {
                // A dead disk: its directory stays unreadable on n1; n2's flapped once.
                "name": "shard directory unreadable",
                "interval": "1m",
                "input_series": [
                    s(format!("couchestor_agent_ec_dir_errors{{{agt},node=\"n1\",pod=\"a-1\",dir=\"/shards/d0\"}}"), "0x3 1x30"),
                    s(format!("couchestor_agent_ec_dir_errors{{{agt},node=\"n1\",pod=\"a-1\",dir=\"/shards/d1\"}}"), "0x33"),
                    s(format!("couchestor_agent_ec_dir_errors{{{agt},node=\"n2\",pod=\"a-2\",dir=\"/shards/d0\"}}"), "0x5 1 0x27")
                ],
                "alert_rule_test": [
                    {"eval_time": "8m", "alertname": "CoucheStorColdTierShardDirUnreadable", "exp_alerts": []},
                    {"eval_time": "20m", "alertname": "CoucheStorColdTierShardDirUnreadable",
                     "exp_alerts": [
                        {"exp_labels": {"severity": "warning", "node": "n1", "dir": "/shards/d0"}}
                     ]}
                ]
            },
            {
                "name": "degraded reads in serve",
                "interval": "1m",
                "input_series": [
                    s(format!("couchestor_agent_ec_degraded_reads_total{{{agt},node=\"n1\",pod=\"a-1\"}}"), "0+5x40"),
                    s(format!("couchestor_agent_ec_degraded_reads_total{{{agt},node=\"n2\",pod=\"a-2\"}}"), "7x40")
                ],
                "alert_rule_test": [
                    {"eval_time": "30m", "alertname": "CoucheStorColdTierDegradedReads",
                     "exp_alerts": [{"exp_labels": {"severity": "info", "node": "n1"}}]}
                ]
            }
        ]
    });
    let file = dir.path().join("tests.yaml");
    std::fs::write(&file, serde_yaml_ng::to_string(&tests).unwrap()).unwrap();
    let o = Command::new(promtool)
        .args(["test", "rules"])
        .arg(&file)
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "promtool test rules:\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}
