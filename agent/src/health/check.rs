//! `couchestor-agent check`: local node diagnostics, before (or beside) `serve`.
//!
//! Checks io_uring, the block devices under the sysfs root, that every cache and shard
//! directory exists and is writable (a probe file is created, fsynced and removed), and,
//! when given, that the TLS certificates parse, are valid now and for 30 more days, and
//! that the key fits the certificate. Exit status: 0 all OK, 1 any FAIL, 3 only WARNs.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use clap::{Args, ValueEnum};
use serde::Serialize;

use super::{CheckRow, Status, write_table};
use crate::sysfs::{self, Sysfs};
use crate::tls::{self, CertSummary, EXPIRY_WARNING_DAYS, Validity};

/// Exit status when some check warns and none fails.
pub const EXIT_WARN: u8 = 3;

/// Device names quoted in the sysfs check's detail.
const NAMES_SHOWN: usize = 8;

/// Output formats of `check`.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckFormat {
    /// An aligned table.
    Text,
    /// `{"status": "...", "checks": [{"name", "status", "detail"}, ...]}`.
    Json,
}

/// Arguments of `check`.
#[derive(Args, Debug, Clone)]
pub struct CheckArgs {
    /// Root of the sysfs tree whose block devices must be readable.
    #[arg(long, value_name = "DIR", default_value = sysfs::DEFAULT_ROOT)]
    pub sysfs_root: PathBuf,
    /// Block-cache directory that must exist and be writable; repeat for several.
    #[arg(long = "cache-dir", value_name = "DIR")]
    pub cache_dirs: Vec<PathBuf>,
    /// Shard directory of the cold tier that must exist and be writable; repeat for several.
    #[arg(long = "shard-dir", value_name = "DIR")]
    pub shard_dirs: Vec<PathBuf>,
    /// Server certificate (PEM) to check.
    #[arg(long, value_name = "FILE", requires_all = ["tls_key", "client_ca"])]
    pub tls_cert: Option<PathBuf>,
    /// Private key (PEM) that must fit --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Client CA certificate (PEM) to check.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub client_ca: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = CheckFormat::Text)]
    pub output: CheckFormat,
}

fn row(name: &str, status: Status, detail: impl Into<String>) -> CheckRow {
    CheckRow {
        name: name.to_owned(),
        status,
        detail: detail.into(),
    }
}

/// Creates a small io_uring instance.
pub fn check_io_uring() -> CheckRow {
    match io_uring::IoUring::new(8) {
        Ok(_ring) => row(
            "io_uring",
            Status::Ok,
            "io_uring instance created (8 entries)",
        ),
        Err(e) => {
            let sysctl = fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
                .map(|v| format!("; kernel.io_uring_disabled = {}", v.trim()))
                .unwrap_or_default();
            let detail = format!("cannot create an io_uring instance: {e}{sysctl}");
            row("io_uring", Status::Fail, detail)
        }
    }
}

/// Reads every block device under `root`.
pub fn check_sysfs(root: &Path) -> CheckRow {
    let tree = Sysfs::new(root);
    let sample = match tree.sample() {
        Ok(sample) => sample,
        Err(e) => return row("block_devices", Status::Fail, e.to_string()),
    };
    let block = tree.block_dir();
    if sample.devices.is_empty() {
        let detail = format!("no block devices in {}", block.display());
        return row("block_devices", Status::Warn, detail);
    }
    let mut names: Vec<&str> = sample
        .devices
        .iter()
        .map(|d| d.info.name.as_str())
        .collect();
    if names.len() > NAMES_SHOWN {
        names.truncate(NAMES_SHOWN);
        names.push("...");
    }
    let mut detail = format!(
        "{} block devices readable in {}: {}",
        sample.devices.len(),
        block.display(),
        names.join(", ")
    );
    let mut status = Status::Ok;
    for skipped in &sample.skipped {
        status = Status::Warn;
        detail.push_str(&format!("; skipped {}: {}", skipped.name, skipped.reason));
    }
    row("block_devices", status, detail)
}

/// Checks that `dir` is a directory where a file can be created, fsynced and removed.
pub fn check_dir(name: &str, dir: &Path) -> CheckRow {
    match probe_dir(dir) {
        Ok(()) => row(name, Status::Ok, format!("{} is writable", dir.display())),
        Err(why) => row(name, Status::Fail, why),
    }
}

fn probe_dir(dir: &Path) -> Result<(), String> {
    let shown = dir.display();
    match fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => return Err(format!("{shown} is not a directory")),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(format!("{shown} does not exist"));
        }
        Err(e) => return Err(format!("cannot stat {shown}: {e}")),
    }
    let probe = dir.join(format!(".couchestor-check-{}", std::process::id()));
    let written = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .and_then(|mut file| {
            file.write_all(b"couchestor-agent check\n")?;
            file.sync_all()
        });
    let removed = fs::remove_file(&probe);
    written.map_err(|e| {
        format!(
            "{shown} is not writable: cannot write {}: {e}",
            probe.display()
        )
    })?;
    removed.map_err(|e| format!("cannot remove probe file {}: {e}", probe.display()))
}

/// Checks the first certificate of a PEM file: parses, valid now, and for 30 more days.
pub fn check_cert(name: &str, path: &Path, now: SystemTime) -> CheckRow {
    let certs = match tls::read_certs(path) {
        Ok(certs) => certs,
        Err(e) => return row(name, Status::Fail, e.to_string()),
    };
    let summary = match CertSummary::parse(&certs[0]) {
        Ok(summary) => summary,
        Err(e) => return row(name, Status::Fail, format!("{}: {e}", path.display())),
    };
    let status = match summary.validity(now) {
        Validity::Valid { .. } => Status::Ok,
        Validity::ExpiringSoon { .. } => Status::Warn,
        Validity::Expired | Validity::NotYetValid => Status::Fail,
    };
    let mut detail = format!("{}: {}", path.display(), summary.describe(now));
    if status == Status::Warn {
        detail.push_str(&format!(" (less than {EXPIRY_WARNING_DAYS} days left)"));
    }
    row(name, status, detail)
}

/// Runs every check requested by `args`.
pub fn checks(args: &CheckArgs) -> Vec<CheckRow> {
    let mut rows = vec![check_io_uring(), check_sysfs(&args.sysfs_root)];
    rows.extend(args.cache_dirs.iter().map(|d| check_dir("cache_dir", d)));
    rows.extend(args.shard_dirs.iter().map(|d| check_dir("shard_dir", d)));
    let now = SystemTime::now();
    if let Some(cert) = &args.tls_cert {
        rows.push(check_cert("tls_cert", cert, now));
        if let Some(key) = &args.tls_key {
            rows.push(match tls::check_key_matches(cert, key) {
                Ok(()) => row(
                    "tls_key",
                    Status::Ok,
                    format!("{} fits {}", key.display(), cert.display()),
                ),
                Err(e) => row("tls_key", Status::Fail, e.to_string()),
            });
        }
    }
    if let Some(ca) = &args.client_ca {
        rows.push(check_cert("client_ca", ca, now));
    }
    rows
}

/// Exit status for a set of results: 0 all OK, 1 any FAIL, 3 only WARNs.
pub fn exit_status(rows: &[CheckRow]) -> u8 {
    match rows.iter().map(|r| r.status).max() {
        Some(Status::Fail) => 1,
        Some(Status::Warn) => EXIT_WARN,
        _ => 0,
    }
}

/// The JSON form of a report.
#[derive(Serialize)]
struct JsonReport<'a> {
    /// The worst status of all checks.
    status: Status,
    checks: &'a [CheckRow],
}

/// Runs `check`, writes the report to `out` and returns the exit status.
pub fn run(args: &CheckArgs, out: &mut impl Write) -> io::Result<u8> {
    let rows = checks(args);
    let status = rows.iter().map(|r| r.status).max().unwrap_or(Status::Ok);
    match args.output {
        CheckFormat::Text => write_table(out, &rows)?,
        CheckFormat::Json => {
            let report = JsonReport {
                status,
                checks: &rows,
            };
            serde_json::to_writer_pretty(&mut *out, &report)?;
            writeln!(out)?;
        }
    }
    Ok(exit_status(&rows))
}
