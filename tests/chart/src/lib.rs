//! Shared plumbing of the chart tests: the value combinations the chart is rendered with,
//! object lookup in a render, server-side apply of rendered objects to the test
//! kube-apiserver, and the metric names the project really exports.

use std::collections::BTreeSet;
use std::path::PathBuf;

use anyhow::Result;
use couchestor_testsupport::TestCluster;
use couchestor_testsupport::workspace_root;
use serde_json::Value;

/// The release name every test renders with (as in deploy/operator.yaml).
pub const RELEASE: &str = "couchestor";
/// The namespace deploy/operator.yaml is rendered for.
pub const OPERATOR_NAMESPACE: &str = "couchestor-system";

/// The `helm template` arguments deploy/operator.yaml is rendered with (`make operator-yaml`):
/// default values, CRDs included, and no generated certificates (a committed manifest must not
/// carry a private key; the user creates the two TLS Secrets, see docs/installation.md).
pub const OPERATOR_ARGS: &[&str] = &["--include-crds", "--set", "tls.generate=false"];

/// A named set of `helm template` value arguments.
#[derive(Debug, Clone, Copy)]
pub struct Combo {
    /// What it exercises.
    pub name: &'static str,
    /// `--set ...` arguments.
    pub args: &'static [&'static str],
}

/// The value combinations every render, lint and apply test runs.
pub const COMBOS: &[Combo] = &[
    Combo {
        name: "defaults (generated TLS, monitoring off)",
        args: &[],
    },
    Combo {
        name: "supplied TLS Secrets",
        args: &[
            "--set",
            "tls.generate=false",
            "--set",
            "tls.agentSecret=my-agent-tls",
            "--set",
            "tls.controllerSecret=my-controller-tls",
        ],
    },
    Combo {
        name: "monitoring on (ServiceMonitor, PrometheusRule, dashboard)",
        args: &[
            "--set",
            "metrics.serviceMonitor.enabled=true",
            "--set",
            "metrics.prometheusRule.enabled=true",
            "--set",
            "metrics.dashboard.enabled=true",
            "--set",
            "metrics.serviceMonitor.labels.release=prometheus",
        ],
    },
    Combo {
        name: "supplied TLS + monitoring + tcpSocket probes + scheduling knobs",
        args: &[
            "--set",
            "tls.generate=false",
            "--set",
            "metrics.serviceMonitor.enabled=true",
            "--set",
            "metrics.prometheusRule.enabled=true",
            "--set",
            "metrics.dashboard.enabled=true",
            "--set",
            "agent.probe=tcpSocket",
            "--set",
            "agent.nodeSelector.openebs\\.io/engine=mayastor",
            "--set",
            "agent.tolerations[0].key=storage",
            "--set",
            "agent.tolerations[0].operator=Exists",
            "--set",
            "controller.image.digest=sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "--set",
            "controller.mayastorVersion=2.9.0",
            "--set",
            "controller.dryRun=true",
        ],
    },
    Combo {
        name: "controller only (no agent), one replica",
        args: &[
            "--set",
            "agent.enabled=false",
            "--set",
            "controller.replicas=1",
        ],
    },
];

/// `kind` of a rendered object.
pub fn kind(o: &Value) -> &str {
    o["kind"].as_str().unwrap_or_default()
}

/// `metadata.name` of a rendered object.
pub fn name(o: &Value) -> &str {
    o["metadata"]["name"].as_str().unwrap_or_default()
}

/// Every object of `kind`.
pub fn of_kind<'a>(objs: &'a [Value], k: &str) -> Vec<&'a Value> {
    objs.iter().filter(|o| kind(o) == k).collect()
}

/// The one object of `kind` whose name ends with `suffix`; panics with the rendered names
/// otherwise.
pub fn one<'a>(objs: &'a [Value], k: &str, suffix: &str) -> &'a Value {
    let found: Vec<_> = objs
        .iter()
        .filter(|o| kind(o) == k && name(o).ends_with(suffix))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "expected one {k} named *{suffix}, rendered: {:?}",
        objs.iter()
            .map(|o| format!("{}/{}", kind(o), name(o)))
            .collect::<Vec<_>>()
    );
    found[0]
}

/// Installs the prometheus-operator ServiceMonitor and PrometheusRule CRDs (tests/chart/crds/,
/// from the upstream Go module) into the test cluster and waits until they are Established.
pub async fn install_monitoring_crds(cluster: &TestCluster) -> Result<()> {
    let dir = workspace_root().join("tests/chart/crds");
    cluster
        .install_crd_dirs(&[dir], "couchestor-chart-tests")
        .await
}

pub use couchestor_testsupport::helm::apply;

/// A Prometheus scrape job of the chart, and the process (and registry source) behind it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Job {
    /// `<release>-controller-metrics`: the controller (`controller/src/metrics.rs`).
    Controller,
    /// `<release>-agent-metrics`: the DaemonSet's `couchestor-agent serve`
    /// (`agent/src/metrics.rs`; not `nbd serve`, which the chart does not scrape).
    Agent,
}

impl Job {
    /// The source of the registry the job's process serves, and its metrics' prefix.
    fn registry(self) -> (&'static str, &'static str) {
        match self {
            Job::Controller => ("controller/src/metrics.rs", "storage_operator_"),
            Job::Agent => ("agent/src/metrics.rs", "couchestor_agent_"),
        }
    }

    /// The job a selector's `job` matcher value names (`couchestor-agent-metrics`,
    /// `$agent_job`, ...).
    pub fn of_matcher(value: &str) -> Option<Job> {
        if value.contains("controller") {
            Some(Job::Controller)
        } else if value.contains("agent") {
            Some(Job::Agent)
        } else {
            None
        }
    }
}

/// Every metric name the registry source `file` registers (string literals with `prefix`,
/// histograms with their `_bucket`/`_sum`/`_count` series, the agent's device gauges from
/// the `DEVICE_GAUGES` table). The file's `#[cfg(test)]` module is not read: a name a test
/// merely looks for is not registered.
fn registered_in(file: &str, prefix: &str) -> BTreeSet<String> {
    let full = std::fs::read_to_string(workspace_root().join(file)).expect("metrics source");
    let src = full.split("#[cfg(test)]").next().unwrap_or_default();
    let mut out = BTreeSet::new();
    for lit in string_literals(src) {
        if lit.starts_with(prefix) && lit.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
            out.insert(lit.to_string());
        }
    }
    // Histograms: the first literal after each HistogramOpts::new(.
    for part in src.split("HistogramOpts::new(").skip(1) {
        if let Some(h) = string_literals(part).next() {
            for s in ["_bucket", "_sum", "_count"] {
                out.insert(format!("{h}{s}"));
            }
        }
    }
    // The agent's per-device gauges are named from the DEVICE_GAUGES table.
    if let Some(table) = src
        .split("const DEVICE_GAUGES")
        .nth(1)
        .and_then(|t| t.split("];").next())
    {
        // Each entry opens with `(` and the name literal, possibly on the next line.
        for entry in table.split('(').skip(1) {
            if let Some(rest) = entry.trim_start().strip_prefix('"') {
                let n = rest.split('"').next().unwrap_or_default();
                out.insert(format!("couchestor_agent_device_{n}"));
            }
        }
    }
    out
}

/// Every metric name the process behind `job` registers, read from its registry source.
pub fn registered_metrics(job: Job) -> BTreeSet<String> {
    let (file, prefix) = job.registry();
    registered_in(file, prefix)
}

/// Every metric name the controller and agent register, read from their sources
/// (`controller/src/metrics.rs`, `agent/src/metrics.rs`, `agent/src/nbd/metrics.rs`).
pub fn exported_metrics() -> BTreeSet<String> {
    let mut out = registered_metrics(Job::Controller);
    out.extend(registered_metrics(Job::Agent));
    out.extend(registered_in(
        "agent/src/nbd/metrics.rs",
        "couchestor_agent_",
    ));
    out
}

fn string_literals(src: &str) -> impl Iterator<Item = &str> {
    src.split('"').skip(1).step_by(2)
}

/// The project metric names (`storage_operator_*`, `couchestor_agent_*`) a PromQL expression
/// uses.
pub fn project_metrics_in(expr: &str) -> BTreeSet<String> {
    selectors_in(expr).into_iter().map(|(m, _)| m).collect()
}

/// Each project metric a PromQL expression selects, with the job its selector's `job`
/// matcher names (`None`: no `{...}` or no `job` matcher in it).
pub fn selectors_in(expr: &str) -> Vec<(String, Option<Job>)> {
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(start) = rest.find(|c: char| is_name(c)) {
        let tail = &rest[start..];
        let len = tail.find(|c: char| !is_name(c)).unwrap_or(tail.len());
        let (token, after) = tail.split_at(len);
        rest = after;
        if !(token.starts_with("storage_operator_") || token.starts_with("couchestor_agent_")) {
            continue;
        }
        let labels = after
            .trim_start()
            .strip_prefix('{')
            .and_then(|l| l.split('}').next())
            .unwrap_or_default();
        let job = labels.split(',').find_map(|m| {
            let (name, value) = m.split_once('=')?;
            if name.trim() != "job" {
                return None;
            }
            Job::of_matcher(
                value
                    .trim_start_matches(['~', '!'])
                    .trim()
                    .trim_matches('"'),
            )
        });
        out.push((token.to_string(), job));
    }
    out
}

/// Names in `used` that no source exports.
pub fn unknown_metrics(used: &BTreeSet<String>) -> Vec<String> {
    let known = exported_metrics();
    used.iter()
        .filter(|m| !known.contains(*m))
        .cloned()
        .collect()
}

/// The metrics of `exprs` not registered by the process of the job their selector names,
/// as "metric (job ...)" lines; a project metric selected without a `job` matcher is
/// reported too (it could come from any process).
pub fn metrics_not_in_their_job(exprs: &[&str]) -> Vec<String> {
    let controller = registered_metrics(Job::Controller);
    let agent = registered_metrics(Job::Agent);
    let mut out = BTreeSet::new();
    for expr in exprs {
        for (metric, job) in selectors_in(expr) {
            let ok = match job {
                Some(Job::Controller) => controller.contains(&metric),
                Some(Job::Agent) => agent.contains(&metric),
                None => false,
            };
            if !ok {
                out.insert(format!("{metric} (job {job:?}) in {expr}"));
            }
        }
    }
    out.into_iter().collect()
}

/// A scratch file path under `target/testenv/run/`.
pub fn scratch(dir: &couchestor_testsupport::RunDir, file: &str) -> PathBuf {
    dir.path().join(file)
}
