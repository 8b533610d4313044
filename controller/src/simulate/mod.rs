//! `couchestor-controller simulate`: scores the placement engine on a synthetic workload.
//!
//! An in-process cluster (a fast tier sized as a share of the total footprint, a slow tier,
//! volumes) is driven in fast-forwarded time by the controller's own decide pipeline
//! (`heat::decayed_iops` then `plan::plan`), or by a naive threshold baseline, and scored
//! against a clairvoyant oracle. See `docs/simulate.md`.
//!
//! Two backends carry out CoucheStor's moves: `--backend tier` (default), a tier-level model
//! where a move takes `footprint / bandwidth` and then the volume switches tier ([`cluster`]);
//! and `--backend mayastor`, the controller's real move engine (`mover`) against the Mayastor
//! simulator served in-process on loopback with a virtual clock ([`engine`]).
//!
//! Output: `--output text` prints a table (the baseline column only with `--compare`);
//! `--output json` prints one object whose top level is the policy under test and which always
//! carries the baseline on the same workload under `baseline` (`null` when `--policy
//! baseline`). An SVG of occupancy and hourly hot share is written to `--svg`.

mod audit;
mod baseline;
mod bound;
mod cluster;
mod engine;
#[cfg(test)]
mod fidelity;
mod migration;
mod oracle;
mod policy;
mod rate;
mod report;
mod score;
mod sim;
mod svg;
#[cfg(test)]
mod tests;
mod workload;
mod world;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};

use crate::mover::launch;
use engine::MayastorConfig;
use policy::{PolicyConfig, WatermarkGauge};
use rate::Prometheus;
use report::Report;
use sim::{Backend, PolicyKind, SimConfig};
use workload::{Observe, WorkloadParams};

/// Named workload presets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// Zipf 0.9, 20 % of volumes re-ranked every 12 h, diurnal amplitude 0.5.
    Default,
    /// As default with a steeper Zipf (alpha 1.2).
    Skewed,
    /// As default with a flatter Zipf (alpha 0.6).
    Flat,
    /// As default with half the volumes re-ranked every 4 h.
    Shifting,
    /// As default with a strong daily cycle (amplitude 0.8).
    Diurnal,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::Default => "default",
            Scenario::Skewed => "skewed",
            Scenario::Flat => "flat",
            Scenario::Shifting => "shifting",
            Scenario::Diurnal => "diurnal",
        }
    }

    /// (alpha, shift fraction, shift period in hours, diurnal amplitude).
    fn preset(self) -> (f64, f64, f64, f64) {
        match self {
            Scenario::Default => (0.9, 0.2, 12.0, 0.5),
            Scenario::Skewed => (1.2, 0.2, 12.0, 0.5),
            Scenario::Flat => (0.6, 0.2, 12.0, 0.5),
            Scenario::Shifting => (0.9, 0.5, 4.0, 0.5),
            Scenario::Diurnal => (0.9, 0.2, 12.0, 0.8),
        }
    }
}

/// Output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// A readable table.
    Text,
    /// One JSON object.
    Json,
}

/// Arguments of `simulate`. Scenario values are defaults; every flag given overrides them.
#[derive(clap::Args, Debug, Clone)]
pub struct SimulateArgs {
    /// Workload preset.
    #[arg(long, value_enum, default_value = "default")]
    scenario: Scenario,
    /// Policy under test.
    #[arg(long, value_enum, default_value = "couchestor")]
    policy: PolicyKind,
    /// What carries out CoucheStor's moves: `tier`, the tier-level model (fast), or
    /// `mayastor`, the controller's real move engine against the Mayastor simulator (served
    /// in-process on 127.0.0.1, virtual clock). The baseline always runs on the tier model.
    #[arg(long, value_enum, default_value = "tier")]
    backend: Backend,
    /// Mayastor backend: io-engine nodes, each with one NVMe and one SATA pool [default: 3, or
    /// replicas + 1 if more: a move needs a node that holds no replica of the volume].
    #[arg(long)]
    nodes: Option<usize>,
    /// Mayastor backend: the policy's migrationTimeout, minutes (the StoragePolicy default).
    #[arg(long)]
    migration_timeout_minutes: Option<u64>,
    /// Also run the baseline and show it side by side (JSON always includes it).
    #[arg(long)]
    compare: bool,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    output: Output,
    /// Seed of every random draw; the same seed gives the same run, bit for bit.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Number of volumes.
    #[arg(long, default_value_t = 200)]
    volumes: usize,
    /// Simulated days.
    #[arg(long, default_value_t = 7.0)]
    days: f64,
    /// Fast-tier capacity as a percentage of the total footprint.
    #[arg(long, default_value_t = 20.0)]
    fast_tier_percent: f64,
    /// Data replicas per volume.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=3))]
    replicas: u8,
    /// Zipf alpha (overrides the scenario).
    #[arg(long)]
    alpha: Option<f64>,
    /// Fraction of volumes re-ranked at each hot-set shift (overrides the scenario).
    #[arg(long)]
    shift_fraction: Option<f64>,
    /// Hours between hot-set shifts, 0 for none (overrides the scenario).
    #[arg(long)]
    shift_hours: Option<f64>,
    /// Diurnal amplitude A (overrides the scenario).
    #[arg(long)]
    diurnal_amplitude: Option<f64>,
    /// On/off bursts (x5 for ~10 min) per volume per day.
    #[arg(long, default_value_t = 1.0)]
    bursts_per_day: f64,
    /// Mean IOPS per volume; the Zipf intensities sum to this times the volume count.
    #[arg(long, default_value_t = 100.0)]
    iops_per_volume: f64,
    /// Seconds between two samples (as Prometheus would scrape), 1 to 300 (299 with
    /// --prometheus 3): the default heat expression's rate() over [5m] needs two scrapes
    /// inside its window.
    #[arg(long, default_value_t = 60)]
    sample_secs: u64,
    /// Whose rate() the policies see: Prometheus 2 takes the scrapes in [t-5m, t] (five
    /// intervals at 60 s; the suite's Prometheus, matched by a test), Prometheus 3 those in
    /// (t-5m, t] (four).
    #[arg(long, value_enum, default_value = "2")]
    prometheus: Prometheus,
    /// Seconds between two planning cycles.
    #[arg(long, default_value_t = 300)]
    cycle_secs: u64,
    /// Copy speed of one move, MiB/s.
    #[arg(long, default_value_t = 200.0)]
    bandwidth_mib: f64,
    /// Maximum migrations at once.
    #[arg(long, default_value_t = 2)]
    max_concurrent: u32,
    /// CoucheStor cooldown between two moves of a volume, hours.
    #[arg(long, default_value_t = 24.0)]
    cooldown_hours: f64,
    /// CoucheStor sustained window (the policy's sustainedWindow), hours: promotion also needs
    /// the mean heat over it above the watermark. Defaults to the cooldown, at most 72.
    #[arg(long)]
    sustained_hours: Option<f64>,
    /// What CoucheStor's calibrated watermarks measure: density (IOPS per TiB, the default)
    /// or heat (IOPS, as the baseline).
    #[arg(long, value_enum, default_value = "density")]
    watermarks: WatermarkGauge,
    /// CoucheStor's fastTierHeadroomPercent: share of the fast tier kept free (the
    /// StoragePolicy default). The initial placement fills the fast tier up to the same limit.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u8).range(0..=90))]
    headroom_percent: u8,
    /// What both policies' heat is computed from: `observed` samples (what Prometheus shows,
    /// the default), the `true` intensity without noise, or the present `level` without
    /// diurnal cycle, bursts or noise. The last two are analysis views, not a deployment.
    /// Each reaches the policies as the default heat expression's rate() over [5m] shows it.
    #[arg(long, value_enum, default_value = "observed")]
    observe: Observe,
    /// Where to write the SVG [default: target/simulate/<scenario>-<seed>.svg].
    #[arg(long)]
    svg: Option<PathBuf>,
    /// Do not show the progress bar.
    #[arg(long)]
    no_progress: bool,
}

impl SimulateArgs {
    fn config(&self) -> anyhow::Result<SimConfig> {
        anyhow::ensure!(self.volumes > 0, "--volumes must be positive");
        anyhow::ensure!(self.days > 0.0, "--days must be positive");
        rate::intervals(self.sample_secs, self.prometheus)?;
        anyhow::ensure!(
            self.fast_tier_percent > 0.0 && self.fast_tier_percent <= 100.0,
            "--fast-tier-percent must be in (0, 100]"
        );
        anyhow::ensure!(self.bandwidth_mib > 0.0, "--bandwidth-mib must be positive");
        let mayastor = self.mayastor_config()?;
        let (alpha, fraction, hours, amplitude) = self.scenario.preset();
        let shift_hours = self.shift_hours.unwrap_or(hours);
        let workload = WorkloadParams {
            volumes: self.volumes,
            replicas: self.replicas,
            alpha: self.alpha.unwrap_or(alpha),
            total_iops: self.iops_per_volume * self.volumes as f64,
            shift_fraction: self.shift_fraction.unwrap_or(fraction).clamp(0.0, 1.0),
            shift_every_secs: (shift_hours.max(0.0) * 3600.0).round() as u64,
            diurnal_amplitude: self.diurnal_amplitude.unwrap_or(amplitude).clamp(0.0, 1.0),
            sample_secs: self.sample_secs,
            bursts_per_day: self.bursts_per_day.max(0.0),
            ..WorkloadParams::default()
        };
        Ok(SimConfig {
            workload,
            policy: PolicyConfig {
                cycle_secs: self.cycle_secs.max(1),
                max_concurrent: self.max_concurrent,
                cooldown_secs: (self.cooldown_hours.max(0.0) * 3600.0).round() as u64,
                sustained_secs: (self
                    .sustained_hours
                    .unwrap_or(self.cooldown_hours)
                    .clamp(1.0, 72.0)
                    * 3600.0)
                    .round() as u64,
                gauge: self.watermarks,
                headroom_percent: self.headroom_percent,
                migration_timeout_secs: launch::timeout_secs(mayastor.migration_timeout),
                ..PolicyConfig::default()
            },
            seed: self.seed,
            days: self.days,
            fast_tier_percent: self.fast_tier_percent,
            bandwidth_bps: self.bandwidth_mib * 1024.0 * 1024.0,
            backend: self.backend,
            mayastor,
            observe: self.observe,
            prometheus: self.prometheus,
        })
    }

    /// The Mayastor backend's settings, checked against the backend and policy chosen.
    fn mayastor_config(&self) -> anyhow::Result<MayastorConfig> {
        let replicas = usize::from(self.replicas);
        let nodes = self.nodes.unwrap_or((replicas + 1).max(3));
        let minutes = self.migration_timeout_minutes.unwrap_or(30);
        if self.backend == Backend::Tier {
            anyhow::ensure!(
                self.nodes.is_none() && self.migration_timeout_minutes.is_none(),
                "--nodes and --migration-timeout-minutes apply to --backend mayastor only"
            );
        } else {
            anyhow::ensure!(
                self.policy == PolicyKind::Couchestor,
                "--backend mayastor drives CoucheStor's move engine; the baseline has none \
                 (it runs on the tier model, and is reported with --policy couchestor)"
            );
            anyhow::ensure!(
                nodes > replicas,
                "--nodes {nodes} is too few for {replicas} replica(s): a move needs a node that \
                 holds no replica of the volume (at least {})",
                replicas + 1
            );
            anyhow::ensure!(
                (1..=2880).contains(&minutes),
                "--migration-timeout-minutes must be within 1..=2880 (48 h), got {minutes}"
            );
        }
        Ok(MayastorConfig {
            nodes,
            migration_timeout: std::time::Duration::from_secs(minutes * 60),
        })
    }
}

/// Runs the simulation and prints the report.
pub fn run(args: SimulateArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let cfg = args.config()?;
    let with_baseline =
        args.policy == PolicyKind::Couchestor && (args.compare || args.output == Output::Json);
    let runs = if with_baseline { 2 } else { 1 };
    let progress = if args.no_progress || !std::io::stderr().is_terminal() {
        ProgressBar::hidden()
    } else {
        let bar = ProgressBar::new(sim::steps(&cfg) * runs);
        bar.set_style(ProgressStyle::with_template(
            "{spinner} simulating {msg} [{bar:40}] {percent}% ({elapsed})",
        )?);
        bar
    };
    progress.set_message(args.policy.as_str());
    let primary = sim::simulate(&cfg, args.policy, true, &progress)?;
    let baseline = if with_baseline {
        progress.set_message("baseline");
        Some(sim::simulate(&cfg, PolicyKind::Baseline, false, &progress)?)
    } else {
        None
    };
    progress.finish_and_clear();

    let scenario = args.scenario.name();
    let path = args
        .svg
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("target/simulate/{scenario}-{}.svg", cfg.seed)));
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let drawn: Vec<&sim::Outcome> = std::iter::once(&primary).chain(baseline.as_ref()).collect();
    let mut title = format!(
        "CoucheStor simulation: scenario {scenario}, seed {}, {} volumes, {} days, fast tier {}%",
        cfg.seed, cfg.workload.volumes, cfg.days, cfg.fast_tier_percent
    );
    if primary.backend == Backend::Mayastor {
        title.push_str(", moves by the engine on the Mayastor simulator");
    }
    let picture = svg::render(&title, &drawn, cfg.policy.headroom_percent, cfg.days * 24.0);
    std::fs::write(&path, picture).with_context(|| format!("writing {}", path.display()))?;

    let report = Report::new(
        scenario,
        &cfg,
        &primary,
        baseline.as_ref(),
        Some(path.display().to_string()),
    );
    let text = match args.output {
        Output::Json => serde_json::to_string_pretty(&report)? + "\n",
        Output::Text => format!(
            "{}wall time: {:.2} s\n",
            report.text(),
            started.elapsed().as_secs_f64()
        ),
    };
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()?;
    Ok(())
}
