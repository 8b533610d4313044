//! `couchestor-agent ec ...`: encode, restore, verify and scrub erasure-coded archives.
//!
//! Exit status: 0 on success; 1 on an error (message on stderr naming the problem), and for
//! `verify`/`scrub` when the archive is not healthy afterwards (the report is still printed);
//! 2 on bad usage.

use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use std::sync::Arc;

use clap::{Args, Subcommand, ValueEnum};
use couchestor_agent::erasure::location::Location;
use couchestor_agent::erasure::remote::Peers;
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

/// Mutual TLS towards other agents, for `agent://HOST:PORT/STORE` shard locations.
#[derive(Args, Debug, Clone)]
pub struct PeerArgs {
    /// PEM CA the agents' server certificates are issued by.
    #[arg(long, value_name = "FILE", env = "COUCHESTOR_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
    /// PEM client certificate to present to the agents.
    #[arg(long, value_name = "FILE", env = "COUCHESTOR_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", env = "COUCHESTOR_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
}

impl PeerArgs {
    /// Connections to other agents, when any location needs them.
    fn peers(&self, locations: &[Location]) -> Result<Option<Arc<Peers>>, Failure> {
        let Some(remote) = locations.iter().find(|l| matches!(l, Location::Agent(_))) else {
            return Ok(None);
        };
        let (Some(ca), Some(cert), Some(key)) = (&self.tls_ca, &self.tls_cert, &self.tls_key)
        else {
            return Err(EcError::NoPeerIdentity(remote.to_string()).into());
        };
        let tls = couchestor_agent::tls::client_config(ca, cert, key, "")
            .map_err(|e| Failure::Tls(e.to_string()))?;
        Ok(Some(Peers::with_runtime(tls)?))
    }
}

/// The `--shard-dir` values as locations (`agent://HOST:PORT/STORE` or a directory).
fn locations(values: &[PathBuf]) -> Result<Vec<Location>, EcError> {
    values
        .iter()
        .map(|v| Location::parse(&v.to_string_lossy()))
        .collect()
}

/// Arguments of `ec encode`.
#[derive(Args, Debug)]
pub struct EncodeArgs {
    /// The file or block device to archive (it is only read).
    #[arg(long, value_name = "PATH")]
    pub input: PathBuf,
    /// A shard location — a directory, or agent://HOST:PORT/STORE on another agent; give
    /// k + m of them, in shard order.
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
    /// Accept two shard directories on the same device (they would fail together).
    #[arg(long)]
    pub allow_same_device: bool,
    /// Report format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub output: Format,
    /// TLS towards agents holding shards.
    #[command(flatten)]
    pub peer: PeerArgs,
}

/// Arguments of `ec restore`. The target is `--output-file` (alias `--output`, as in the
/// issue); the report format is therefore `--format`.
#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// A shard location of the archive (directory or agent://HOST:PORT/STORE), in any
    /// order; any k suffice.
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
    /// TLS towards agents holding shards.
    #[command(flatten)]
    pub peer: PeerArgs,
}

/// Arguments of `ec verify` and `ec scrub`.
#[derive(Args, Debug)]
pub struct CheckArgs {
    /// A shard location of the archive (directory or agent://HOST:PORT/STORE), in any order.
    #[arg(long = "shard-dir", value_name = "DIR", required = true)]
    pub shard_dirs: Vec<PathBuf>,
    /// Archive id, when the directories hold several archives.
    #[arg(long, value_name = "ID")]
    pub archive_id: Option<String>,
    /// Report format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub output: Format,
    /// TLS towards agents holding shards.
    #[command(flatten)]
    pub peer: PeerArgs,
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
    #[error("TLS: {0}")]
    Tls(String),
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
            let locs = locations(&a.shard_dirs)?;
            let peers = a.peer.peers(&locs)?;
            check_devices(&locs, a.allow_same_device)?;
            let done = erasure::encode_at(&a.input, &locs, &params, &bar, peers)?;
            let m = done.manifest;
            let secs = started.elapsed().as_secs_f64();
            let v = json!({
                "archive_id": m.archive_id, "source": a.input, "source_size": m.source_size,
                "k": m.k, "m": m.m, "block_size": m.block_size, "stripes": m.stripes,
                "source_sha256": m.source_sha256, "created": m.created,
                "shard_dirs": a.shard_dirs, "backend": backend, "backend_reason": why,
                "seconds": secs,
                "io": {"source_reads": done.reads, "shard_writes": done.writes},
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
            let locs = locations(&a.shard_dirs)?;
            let peers = a.peer.peers(&locs)?;
            let r = erasure::restore_at(
                &locs,
                a.archive_id.as_deref(),
                &a.target,
                a.force,
                &bar,
                peers,
            )?;
            if a.format == Format::Json {
                writeln!(out, "{:#}", serde_json::to_value(&r).unwrap_or_default())?;
            } else {
                r.write_text(out, started.elapsed())?;
            }
            Ok(true)
        }
        EcCommand::Verify(a) => {
            let locs = locations(&a.shard_dirs)?;
            let peers = a.peer.peers(&locs)?;
            let report = erasure::verify_at(&locs, a.archive_id.as_deref(), &bar, peers)?;
            print_report(out, &report, a.output)
        }
        EcCommand::Scrub(a) => {
            let locs = locations(&a.shard_dirs)?;
            let peers = a.peer.peers(&locs)?;
            let report = erasure::scrub_at(&locs, a.archive_id.as_deref(), &bar, peers)?;
            print_report(out, &report, a.output)
        }
    }
}

/// Refuses (or, with `allow`, warns about) two shard directories on one device: they would
/// fail together, and the archive would tolerate fewer failures than `m` promises.
fn check_devices(locations: &[Location], allow: bool) -> Result<(), EcError> {
    use std::os::unix::fs::MetadataExt;
    let mut seen: Vec<(u64, &PathBuf)> = Vec::new();
    for dir in locations.iter().filter_map(Location::dir) {
        let Ok(meta) = std::fs::metadata(dir) else {
            continue; // The engine reports a missing directory by name.
        };
        if let Some((_, other)) = seen.iter().find(|(dev, _)| *dev == meta.dev()) {
            let what = format!(
                "shard directories {} and {} are on the same device (st_dev {:#x})",
                other.display(),
                dir.display(),
                meta.dev()
            );
            if !allow {
                return Err(EcError::Params(format!(
                    "{what}: a failure of that device would take both shards (pass \
                     --allow-same-device to accept it)"
                )));
            }
            eprintln!("couchestor-agent: warning: {what}");
        }
        seen.push((meta.dev(), dir));
    }
    Ok(())
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
