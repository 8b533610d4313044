//! A real Prometheus (Debian's `prometheus` package) on loopback, loaded with series.
//!
//! History is backfilled with `promtool tsdb create-blocks-from openmetrics` before the server
//! starts, so range queries over the past see exactly the samples a test wrote.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, ensure};

use crate::process::{ChildProcess, free_port, wait_until};
use crate::{RunDir, unavailable};

/// A running Prometheus server.
pub struct TestPrometheus {
    url: String,
    child: Option<ChildProcess>,
    _dir: RunDir,
}

/// Starts a Prometheus backfilled with `series`, or returns `None` (after printing why) when
/// Prometheus is not installed and `CI` is not `true`. Under `CI=true` it fails the test.
pub async fn prometheus(series: &OpenMetrics) -> Option<TestPrometheus> {
    crate::init_crypto();
    match TestPrometheus::start(series).await {
        Ok(p) => Some(p),
        Err(e) => unavailable("a real Prometheus", format!("{e:#}")),
    }
}

fn binary(env: &str, name: &str) -> PathBuf {
    std::env::var_os(env)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin").join(name))
}

impl TestPrometheus {
    /// Backfills `series` and starts the server.
    pub async fn start(series: &OpenMetrics) -> Result<Self> {
        let prom = binary("PROMETHEUS_BIN", "prometheus");
        let promtool = binary("PROMTOOL_BIN", "promtool");
        for b in [&prom, &promtool] {
            ensure!(
                b.is_file(),
                "{} is missing: install Debian's `prometheus` package (make deps)",
                b.display()
            );
        }
        let dir = RunDir::new("prometheus")?;
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data)?;
        if !series.is_empty() {
            let om = dir.path().join("series.om");
            std::fs::write(&om, series.render())?;
            let out = Command::new(&promtool)
                .args(["tsdb", "create-blocks-from", "openmetrics"])
                .arg(&om)
                .arg(&data)
                .output()
                .context("run promtool")?;
            ensure!(
                out.status.success(),
                "promtool backfill failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            "global:\n  scrape_interval: 15s\nscrape_configs: []\n",
        )?;
        let port = free_port()?;
        let url = format!("http://127.0.0.1:{port}");
        let mut child = ChildProcess::spawn(
            "prometheus",
            &prom,
            &[
                format!("--config.file={}", config.display()),
                format!("--storage.tsdb.path={}", data.display()),
                format!("--web.listen-address=127.0.0.1:{port}"),
                "--storage.tsdb.retention.time=30d".into(),
                "--log.level=warn".into(),
            ],
            &dir.path().join("prometheus.log"),
        )?;
        let http = reqwest::Client::new();
        let ready = format!("{url}/-/ready");
        wait_until(
            "prometheus",
            &mut child,
            Duration::from_secs(60),
            || async {
                http.get(&ready)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success())
            },
        )
        .await?;
        Ok(Self {
            url,
            child: Some(child),
            _dir: dir,
        })
    }

    /// Base URL, e.g. `http://127.0.0.1:9091`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Kills the server (to test behaviour while Prometheus is down).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill();
        }
    }
}

/// OpenMetrics text for backfilling, built sample by sample.
#[derive(Default, Debug, Clone)]
pub struct OpenMetrics {
    families: Vec<(String, Vec<(String, String)>)>,
}

impl OpenMetrics {
    /// An empty exposition.
    pub fn new() -> Self {
        Self::default()
    }

    /// True when no sample was added.
    pub fn is_empty(&self) -> bool {
        self.families.iter().all(|(_, s)| s.is_empty())
    }

    /// Adds one gauge sample `name{labels} value timestamp`. Mayastor exports its cumulative
    /// counters as gauges without a suffix, so that is what tests write too.
    pub fn gauge(&mut self, name: &str, labels: &[(&str, &str)], value: f64, unix_secs: i64) {
        let idx = match self.families.iter().position(|(n, _)| n == name) {
            Some(i) => i,
            None => {
                self.families.push((name.to_string(), Vec::new()));
                self.families.len() - 1
            }
        };
        let mut line = String::from(name);
        if !labels.is_empty() {
            line.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    line.push(',');
                }
                let v = v.replace('\\', "\\\\").replace('"', "\\\"");
                write!(line, "{k}=\"{v}\"").expect("write to String");
            }
            line.push('}');
        }
        let series = line.clone();
        write!(line, " {value} {unix_secs}").expect("write to String");
        self.families[idx].1.push((series, line));
    }

    /// The exposition text, ending in `# EOF`. Samples of one series stay contiguous and in
    /// the order they were added, as OpenMetrics requires.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (name, samples) in &self.families {
            writeln!(out, "# TYPE {name} gauge").expect("write to String");
            let mut samples: Vec<&(String, String)> = samples.iter().collect();
            samples.sort_by(|a, b| a.0.cmp(&b.0));
            for (_, s) in samples {
                out.push_str(s);
                out.push('\n');
            }
        }
        out.push_str("# EOF\n");
        out
    }
}
