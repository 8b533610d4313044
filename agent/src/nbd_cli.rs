//! `couchestor-agent nbd serve`: export an erasure-coded archive read-only over NBD.
//!
//! Exit status: 0 after SIGINT/SIGTERM, 1 on an error (the message names the problem), 2 on
//! bad usage.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Subcommand};
use couchestor_agent::cache::{CacheConfig, CachedArchive};
use couchestor_agent::erasure::{ArchiveReader, EcError};
use couchestor_agent::nbd::metrics::{self, NbdMetrics};
use couchestor_agent::nbd::{self, Export, ExportSource};
use couchestor_agent::server::shutdown_signal;
use futures::FutureExt;
use tokio::net::TcpListener;

/// `nbd` subcommands.
#[derive(Subcommand, Debug)]
pub enum NbdCommand {
    /// Export an erasure-coded archive read-only over NBD (degraded reads rebuild missing
    /// shards on the fly).
    Serve(ServeArgs),
}

/// Arguments of `nbd serve`.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// A shard directory of the archive, in any order; any k suffice.
    #[arg(long = "shard-dir", value_name = "DIR", required = true)]
    pub shard_dirs: Vec<PathBuf>,
    /// Archive id, when the directories hold several archives.
    #[arg(long, visible_alias = "archive-id", value_name = "ID")]
    pub archive: Option<String>,
    /// Address to listen on for NBD clients, e.g. 127.0.0.1:10809 (port 0: any free port,
    /// printed once ready).
    #[arg(long, value_name = "ADDR")]
    pub listen: SocketAddr,
    /// Export name (default: the archive id). Clients asking for the empty name get it too.
    #[arg(long, value_name = "NAME", value_parser = parse_export_name)]
    pub export_name: Option<String>,
    /// Address of a plain-HTTP Prometheus endpoint (GET /metrics); none by default.
    #[arg(long, value_name = "ADDR")]
    pub metrics_addr: Option<SocketAddr>,
    /// Directory of the on-disk (L2) block cache, on fast local media; no L2 without it.
    /// One process per directory (it is locked).
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Size of the in-memory (L1) block cache, MiB.
    #[arg(long, value_name = "MIB", default_value_t = 256)]
    pub cache_memory_mib: u64,
    /// Size bound of the on-disk (L2) block cache, MiB.
    #[arg(long, value_name = "MIB", default_value_t = 16384)]
    pub cache_disk_mib: u64,
    /// Blocks read ahead when reads are sequential (0: no read-ahead).
    #[arg(long, value_name = "N", default_value_t = 16)]
    pub prefetch_blocks: usize,
    /// Read straight from the shards, without the block cache.
    #[arg(long, conflicts_with_all = ["cache_dir"])]
    pub no_cache: bool,
}

/// Export names: 1 to 4096 bytes of UTF-8 without control characters.
fn parse_export_name(text: &str) -> Result<String, String> {
    if text.is_empty() || text.len() > 4096 {
        return Err(format!(
            "export name must be 1 to 4096 bytes long, got {}",
            text.len()
        ));
    }
    if text.chars().any(char::is_control) {
        return Err(format!("export name {text:?} contains control characters"));
    }
    Ok(text.to_string())
}

#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error(transparent)]
    Ec(#[from] EcError),
    #[error("cannot start the async runtime: {0}")]
    Runtime(io::Error),
    #[error("cannot listen for {what} on {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        source: io::Error,
    },
    #[error("block cache: {0}")]
    Cache(#[from] couchestor_agent::cache::CacheError),
    #[error("cannot register metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("metrics server failed: {0}")]
    MetricsServer(io::Error),
}

/// Runs an `nbd` subcommand; returns the exit status.
pub fn run(command: NbdCommand) -> ExitCode {
    let NbdCommand::Serve(args) = command;
    match serve(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("couchestor-agent: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(args: &ServeArgs) -> Result<(), Failure> {
    let reader = ArchiveReader::open(&args.shard_dirs, args.archive.as_deref())?;
    reader.require_k()?;
    let manifest = reader.manifest().clone();
    let missing = reader.missing_shards();
    if !missing.is_empty() {
        tracing::warn!(
            archive = %manifest.archive_id,
            "shards {missing:?} of {} are missing: their blocks are rebuilt on every read",
            manifest.k + manifest.m
        );
    }
    let metrics = Arc::new(NbdMetrics::new()?);
    metrics.set_shards_missing(&manifest.archive_id, missing.len());
    let name = args
        .export_name
        .clone()
        .unwrap_or_else(|| manifest.archive_id.clone());
    let source: Arc<dyn ExportSource> = if args.no_cache {
        Arc::new(reader)
    } else {
        let config = CacheConfig {
            l1_bytes: args.cache_memory_mib << 20,
            l2_dir: args.cache_dir.clone(),
            l2_bytes: args.cache_disk_mib << 20,
            prefetch_blocks: args.prefetch_blocks,
            ..CacheConfig::default()
        };
        Arc::new(CachedArchive::open(reader, config)?)
    };
    let export = Export {
        name: name.clone(),
        description: format!(
            "CoucheStor archive {} ({}+{}, {} of {} shards present)",
            manifest.archive_id,
            manifest.k,
            manifest.m,
            manifest.k + manifest.m - missing.len(),
            manifest.k + manifest.m
        ),
        source,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(Failure::Runtime)?;
    runtime.block_on(async move {
        let bind = |what, addr| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|source| Failure::Bind { what, addr, source })
        };
        let listener = bind("NBD", args.listen).await?;
        let local = listener.local_addr().unwrap_or(args.listen);
        let metrics_listener = match args.metrics_addr {
            Some(addr) => {
                let l = bind("metrics", addr).await?;
                let local = l.local_addr().unwrap_or(addr);
                Some((l, local))
            }
            None => None,
        };
        let shutdown = shutdown_signal().shared();
        let metrics_server = async {
            let Some((l, addr)) = metrics_listener else {
                return Ok(());
            };
            eprintln!("couchestor-agent: metrics listening on http://{addr}/metrics");
            metrics::serve(l, metrics.clone(), shutdown.clone())
                .await
                .map_err(Failure::MetricsServer)
        };
        eprintln!(
            "couchestor-agent: NBD export {name:?} ({} bytes, read-only) listening on {local} \
             (nbd://{local}/{name})",
            manifest.source_size
        );
        let nbd_server = nbd::serve(listener, export, metrics.clone(), shutdown.clone());
        let ((), served) = tokio::join!(nbd_server, metrics_server);
        served
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_names_are_checked() {
        assert_eq!(parse_export_name("vol-1"), Ok("vol-1".into()));
        assert!(parse_export_name("").is_err());
        assert!(parse_export_name("a\nb").is_err());
        assert!(parse_export_name(&"x".repeat(4097)).is_err());
    }
}
