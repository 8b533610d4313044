//! `couchestor-agent cache ...`: inspect the block cache.
//!
//! Exit status: 0 on success; 1 on an error (missing directory, not a cache directory,
//! corrupt stats file, I/O; the message names the path); 2 on bad usage. Nothing in the
//! cache directory is modified.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use couchestor_agent::cache::inspect::{Inspection, inspect};
use couchestor_agent::cache::{CacheError, LevelStats};

use crate::output::human_size;

/// `cache` subcommands.
#[derive(Subcommand, Debug)]
pub enum CacheCommand {
    /// Report the contents and counters of an L2 cache directory (read only; safe while
    /// another process uses the cache).
    Stats(StatsArgs),
}

/// Report formats.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Lines for people.
    Table,
    /// One JSON object.
    Json,
}

/// Arguments of `cache stats`.
#[derive(Args, Debug)]
pub struct StatsArgs {
    /// The L2 cache directory.
    #[arg(long, value_name = "DIR")]
    pub cache_dir: PathBuf,
    /// Report format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub output: Format,
}

#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error("cannot write the report to standard output: {0}")]
    Write(#[from] io::Error),
}

/// Runs a `cache` subcommand; returns the exit status.
pub fn run(command: CacheCommand) -> ExitCode {
    let mut out = io::stdout().lock();
    let result = match command {
        CacheCommand::Stats(args) => stats(&args, &mut out),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Write(e)) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("couchestor-agent: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn stats(args: &StatsArgs, out: &mut impl Write) -> Result<(), Failure> {
    let report = inspect(&args.cache_dir)?;
    match args.output {
        Format::Json => {
            serde_json::to_writer_pretty(&mut *out, &report).map_err(io::Error::other)?;
            writeln!(out)?;
        }
        Format::Table => write_table(out, &report)?,
    }
    out.flush()?;
    Ok(())
}

fn ratio(r: Option<f64>) -> String {
    r.map_or_else(|| "-".into(), |r| format!("{r:.2}"))
}

fn write_table(out: &mut impl Write, r: &Inspection) -> io::Result<()> {
    let i = &r.index;
    let size = |b: u64| format!("{} ({b} bytes)", human_size(b));
    writeln!(out, "cache directory    {}", r.cache_dir.display())?;
    writeln!(out, "format version     {}", r.format_version)?;
    writeln!(out, "entries            {}", i.entries)?;
    writeln!(out, "segments           {}", i.segments)?;
    writeln!(out, "bytes on disk      {}", size(i.disk_bytes))?;
    writeln!(out, "stored (zstd)      {}", size(i.stored_bytes))?;
    writeln!(out, "raw                {}", size(i.raw_bytes))?;
    writeln!(out, "compression ratio  {}", ratio(i.compression_ratio))?;
    writeln!(out, "corrupt records    {}", i.corrupt_records)?;
    writeln!(out, "torn tail bytes    {}", i.torn_tail_bytes)?;
    writeln!(out)?;
    let Some(c) = &r.counters else {
        return writeln!(out, "counters           none persisted yet");
    };
    writeln!(
        out,
        "counters of {} (pid {}, updated {}); L2 cumulative, L1 and prefetch of that process:",
        r.cache_dir.display(),
        c.pid,
        c.updated
    )?;
    writeln!(
        out,
        "{:<6} {:>12} {:>12} {:>9} {:>12} {:>12} {:>9} {:>9} {:>6}",
        "LEVEL", "HITS", "MISSES", "HIT%", "INSERTS", "EVICTIONS", "ENTRIES", "STORED", "RATIO"
    )?;
    for (name, l) in [("L1", &c.l1), ("L2", &c.l2.level)] {
        write_level(out, name, l)?;
    }
    let x = &c.l2.extra;
    writeln!(
        out,
        "L2: {} corrupt records dropped, {} torn bytes truncated, {} write errors",
        x.corrupt_dropped, x.torn_bytes_truncated, x.write_errors
    )?;
    writeln!(
        out,
        "prefetch: {} blocks issued, {} used",
        c.prefetch.issued, c.prefetch.used
    )
}

fn write_level(out: &mut impl Write, name: &str, l: &LevelStats) -> io::Result<()> {
    let hit = l
        .hit_ratio
        .map_or_else(|| "-".into(), |h| format!("{:.1}", h * 100.0));
    writeln!(
        out,
        "{name:<6} {:>12} {:>12} {hit:>9} {:>12} {:>12} {:>9} {:>9} {:>6}",
        l.hits,
        l.misses,
        l.inserts,
        l.evictions,
        l.entries,
        human_size(l.stored_bytes),
        ratio(l.compression_ratio)
    )
}
