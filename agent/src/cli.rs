//! Command line of `couchestor-agent` and the `devices` command.

use std::io::{self, Write};
use std::num::NonZeroU64;
use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand, ValueEnum};
use couchestor_agent::report::{self, DeviceReport};
use couchestor_agent::server::parse_interval;
use couchestor_agent::sysfs::{self, Sample, Sysfs};

use crate::output;

/// CoucheStor node agent: device telemetry, block cache and erasure-coded cold tier.
#[derive(Parser, Debug)]
#[command(name = "couchestor-agent", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Print the agent and protocol versions.
    Version,
    /// Sample every block device twice, an interval apart, and print its rates like
    /// `iostat -x` does.
    Devices(DevicesArgs),
    /// Serve, query or diagnose the node agent (`serve`, `health`, `check`).
    #[command(flatten)]
    Node(couchestor_agent::server::NodeCommand),
    /// Erasure-coded archives of the cold tier: encode, restore, verify, scrub.
    #[command(subcommand)]
    Ec(crate::ec_cli::EcCommand),
    /// Export an erasure-coded archive read-only over NBD.
    #[command(subcommand)]
    Nbd(crate::nbd_cli::NbdCommand),
    /// The block cache of archive reads: `cache stats`.
    #[command(subcommand)]
    Cache(crate::cache_cli::CacheCommand),
}

/// Output formats of `devices`.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// Aligned columns for people.
    Table,
    /// A JSON array of device objects (with --watch, one array per line and interval).
    Json,
}

/// Arguments of `devices`.
#[derive(Args, Debug)]
pub struct DevicesArgs {
    /// Root of the sysfs tree to read (its block/ directory lists the disks).
    #[arg(long, value_name = "DIR", default_value = sysfs::DEFAULT_ROOT)]
    pub sysfs_root: PathBuf,
    /// Seconds between the two samples the rates are computed from (0.1 to 3600).
    #[arg(long, value_name = "SECONDS", default_value = "1", value_parser = parse_interval)]
    pub interval: Duration,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
    /// Keep printing a report every interval until interrupted.
    #[arg(long)]
    pub watch: bool,
    /// With --watch, stop after this many reports.
    #[arg(long, value_name = "N", requires = "watch")]
    pub count: Option<NonZeroU64>,
    /// Only report this device (kernel name, e.g. nvme0n1); repeat for several.
    #[arg(long = "device", value_name = "NAME")]
    pub devices: Vec<String>,
    /// Take the second sample from this sysfs tree instead of re-reading --sysfs-root,
    /// without waiting, and use --interval as the time between the two (replays two
    /// captured snapshots).
    #[arg(long, value_name = "DIR", conflicts_with = "watch")]
    pub second_root: Option<PathBuf>,
}

/// Failures of `devices` (exit status 1).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Reading sysfs failed.
    #[error(transparent)]
    Sysfs(#[from] sysfs::Error),
    /// A `--device` name is not a whole disk of the tree.
    #[error("no block device named {name:?} in {dir}")]
    UnknownDevice {
        /// The requested name.
        name: String,
        /// The `block/` directory searched.
        dir: PathBuf,
    },
    /// Writing the report failed.
    #[error("cannot write the report to standard output: {0}")]
    Write(#[from] io::Error),
}

/// Runs `devices`, writing reports to `out`.
pub fn run_devices(args: &DevicesArgs, out: &mut impl Write) -> Result<(), RunError> {
    let tree = Sysfs::new(&args.sysfs_root);
    let mut previous = tree.sample()?;
    if let Some(name) = args
        .devices
        .iter()
        .find(|n| !previous.devices.iter().any(|d| &d.info.name == *n))
    {
        return Err(RunError::UnknownDevice {
            name: name.clone(),
            dir: tree.block_dir(),
        });
    }
    if let Some(second) = &args.second_root {
        let current = Sysfs::new(second).sample()?;
        let reports = select(report::build(&previous, &current, args.interval), args);
        return emit(out, &reports, args, true);
    }
    let mut deadline = previous.taken_at;
    let mut emitted = 0u64;
    loop {
        let now = Instant::now();
        // Keep a steady cadence; after a stall, restart the schedule instead of bursting.
        deadline = (deadline + args.interval).max(now);
        thread::sleep(deadline - now);
        let current: Sample = tree.sample()?;
        let elapsed = current.taken_at.duration_since(previous.taken_at);
        let reports = select(report::build(&previous, &current, elapsed), args);
        emitted += 1;
        emit(out, &reports, args, emitted == 1)?;
        if !args.watch || args.count.is_some_and(|n| emitted >= n.get()) {
            return Ok(());
        }
        previous = current;
    }
}

/// Keeps the `--device` selection (all devices when none was given).
fn select(reports: Vec<DeviceReport>, args: &DevicesArgs) -> Vec<DeviceReport> {
    if args.devices.is_empty() {
        return reports;
    }
    reports
        .into_iter()
        .filter(|r| args.devices.contains(&r.name))
        .collect()
}

fn emit(
    out: &mut impl Write,
    reports: &[DeviceReport],
    args: &DevicesArgs,
    first: bool,
) -> Result<(), RunError> {
    match args.output {
        OutputFormat::Json if args.watch => output::write_json_line(out, reports)?,
        OutputFormat::Json => output::write_json(out, reports)?,
        OutputFormat::Table => {
            if !first {
                writeln!(out)?;
            }
            output::write_table(out, reports)?;
        }
    }
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_accepts_the_documented_range() {
        assert_eq!(parse_interval("0.1"), Ok(Duration::from_millis(100)));
        assert_eq!(parse_interval("1"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_interval("3600"), Ok(Duration::from_secs(3600)));
        assert_eq!(
            parse_interval("0.05"),
            Err("0.05 s is outside 0.1..=3600".into())
        );
        assert_eq!(
            parse_interval("3601"),
            Err("3601 s is outside 0.1..=3600".into())
        );
        assert!(parse_interval("NaN").is_err());
        assert!(parse_interval("inf").is_err());
        assert_eq!(
            parse_interval("soon"),
            Err("\"soon\" is not a number of seconds".into())
        );
    }

    #[test]
    fn clap_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
