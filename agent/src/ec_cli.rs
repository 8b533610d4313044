//! `couchestor-agent ec ...`: encode, restore, verify and scrub erasure-coded archives.
//!
//! Exit status: 0 on success; 1 on an error (message on stderr naming the problem), and for
//! `verify`/`scrub` when the archive is not healthy afterwards (the report is still printed);
//! 2 on bad usage.

use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Args, Subcommand, ValueEnum};
use couchestor_agent::erasure::{self, EcError, EncodeParams, Progress, Report};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

/// `ec` subcommands.
#[derive(Subcommand, Debug)]
pub enum EcCommand {
    /// Archive a file or block device into k data + m parity shard directories.
    Encode(EncodeArgs),
    /// Restore an archive byte for byte from any k of its shards.
    Restore(RestoreArgs),
    /// Check every block of every shard against the manifest's checksums.
    Verify(CheckArgs),
    /// Verify, rewrite missing or corrupt shards from the others, verify again.
    Scrub(CheckArgs),
}

/// Report formats.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Lines for people.
    Text,
    /// One JSON object.
    Json,
}

/// Arguments of `ec encode`.
#[derive(Args, Debug)]
pub struct EncodeArgs {
    /// The file or block device to archive (it is only read).
    #[arg(long, value_name = "PATH")]
    pub input: PathBuf,
    /// A shard directory; give k + m of them, in shard order.
    #[arg(long = "shard-dir", value_name = "DIR", required = true)]
    pub shard_dirs: Vec<PathBuf>,
    /// Data shards per stripe.
    #[arg(long, default_value_t = erasure::DEFAULT_K)]
    pub k: usize,
    /// Parity shards per stripe.
    #[arg(long, default_value_t = erasure::DEFAULT_M)]
    pub m: usize,
    /// Bytes per shard block (suffixes K, KiB, M, MiB accepted).
    #[arg(long, value_name = "BYTES", default_value = "1048576", value_parser = parse_size)]
    pub block_size: usize,
    /// Archive id (default: the input's file name).
    #[arg(long, value_name = "ID")]
    pub archive_id: Option<String>,
    /// Overwrite an existing complete archive of the same id.
    #[arg(long)]
    pub force: bool,
    /// Report format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub output: Format,
}

/// Arguments of `ec restore`. The target is `--output-file` (alias `--output`, as in the
/// issue); the report format is therefore `--format`.
#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// A shard directory of the archive, in any order; any k suffice.
    #[arg(long = "shard-dir", value_name = "DIR", required = true)]
    pub shard_dirs: Vec<PathBuf>,
    /// Where to write the restored data (file or block device).
    #[arg(long = "output-file", visible_alias = "output", value_name = "PATH")]
    pub target: PathBuf,
    /// Overwrite the target if it exists.
    #[arg(long)]
    pub force: bool,
    /// Archive id, when the directories hold several archives.
    #[arg(long, value_name = "ID")]
    pub archive_id: Option<String>,
    /// Report format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// Arguments of `ec verify` and `ec scrub`.
#[derive(Args, Debug)]
pub struct CheckArgs {
    /// A shard directory of the archive, in any order.
    #[arg(long = "shard-dir", value_name = "DIR", required = true)]
    pub shard_dirs: Vec<PathBuf>,
    /// Archive id, when the directories hold several archives.
    #[arg(long, value_name = "ID")]
    pub archive_id: Option<String>,
    /// Report format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub output: Format,
}

/// Parses a byte count: digits with an optional K/KiB/M/MiB suffix (powers of 1024).
fn parse_size(text: &str) -> Result<usize, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let scale = match unit {
        "" => 1,
        "K" | "k" | "KiB" => 1 << 10,
        "M" | "MiB" => 1 << 20,
        _ => {
            return Err(format!(
                "{text:?}: unknown unit {unit:?} (use K, KiB, M or MiB)"
            ));
        }
    };
    let n: usize = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a byte count"))?;
    n.checked_mul(scale)
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// A progress bar on stderr, hidden when stderr is not a terminal.
struct Bar(ProgressBar);

impl Bar {
    fn new() -> Self {
        if !io::stderr().is_terminal() {
            return Bar(ProgressBar::hidden());
        }
        let bar = ProgressBar::new(0);
        let style = ProgressStyle::with_template(
            "{msg:8} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .map(|s| s.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        Bar(bar)
    }
}

impl Progress for Bar {
    fn begin(&self, label: &str, total: u64) {
        self.0.reset();
        self.0.set_length(total);
        self.0.set_message(label.to_string());
    }
    fn advance(&self, bytes: u64) {
        self.0.inc(bytes);
    }
    fn end(&self) {
        self.0.finish_and_clear();
    }
}

/// Runs an `ec` subcommand; returns the exit status.
pub fn run(command: EcCommand) -> ExitCode {
    let mut out = io::stdout().lock();
    match execute(command, &mut out) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(Failure::Write(e)) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("couchestor-agent: error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error(transparent)]
    Ec(#[from] EcError),
    #[error("cannot write the report to standard output: {0}")]
    Write(#[from] io::Error),
}

/// Returns whether the outcome is healthy.
fn execute(command: EcCommand, out: &mut impl Write) -> Result<bool, Failure> {
    let bar = Bar::new();
    let started = Instant::now();
    let (backend, why) = erasure::detect_backend();
    match command {
        EcCommand::Encode(a) => {
            let params = EncodeParams {
                k: a.k,
                m: a.m,
                block_size: a.block_size,
                archive_id: a.archive_id,
                force: a.force,
            };
            let m = erasure::encode_with_progress(&a.input, &a.shard_dirs, &params, &bar)?;
            let secs = started.elapsed().as_secs_f64();
            let v = json!({
                "archive_id": m.archive_id, "source": a.input, "source_size": m.source_size,
                "k": m.k, "m": m.m, "block_size": m.block_size, "stripes": m.stripes,
                "source_sha256": m.source_sha256, "created": m.created,
                "shard_dirs": a.shard_dirs, "backend": backend, "backend_reason": why,
                "seconds": secs,
            });
            if a.output == Format::Json {
                writeln!(out, "{v:#}")?;
            } else {
                let kernels = format!("{backend} ({why})");
                m.write_summary(out, &a.input, &kernels, started.elapsed())?;
            }
            Ok(true)
        }
        EcCommand::Restore(a) => {
            let r = erasure::restore_with(
                &a.shard_dirs,
                a.archive_id.as_deref(),
                &a.target,
                a.force,
                &bar,
            )?;
            if a.format == Format::Json {
                writeln!(out, "{:#}", serde_json::to_value(&r).unwrap_or_default())?;
            } else {
                r.write_text(out, started.elapsed())?;
            }
            Ok(true)
        }
        EcCommand::Verify(a) => {
            let report = erasure::verify_with(&a.shard_dirs, a.archive_id.as_deref(), &bar)?;
            print_report(out, &report, a.output)
        }
        EcCommand::Scrub(a) => {
            let report = erasure::scrub_with(&a.shard_dirs, a.archive_id.as_deref(), &bar)?;
            print_report(out, &report, a.output)
        }
    }
}

/// Prints a verify/scrub report; returns whether the archive is healthy.
fn print_report(out: &mut impl Write, r: &Report, format: Format) -> Result<bool, Failure> {
    if format == Format::Json {
        writeln!(out, "{:#}", serde_json::to_value(r).unwrap_or_default())?;
    } else {
        r.write_text(out)?;
    }
    if !r.healthy {
        eprintln!(
            "couchestor-agent: archive {:?} is not healthy",
            r.archive_id
        );
    }
    Ok(r.healthy)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64K"), Ok(65536));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert!(parse_size("1G").is_err());
        assert!(parse_size("lots").is_err());
    }
}
