//! `couchestor-agent`: the CoucheStor node agent (privileged DaemonSet).
//!
//! This build carries the device telemetry (`devices`) and the gRPC contract; the gRPC
//! service, the cold tier and the block cache arrive with their own issues.
//!
//! Exit status: 0 on success, 2 on bad usage, 1 on a runtime error (the message names the
//! file or directory involved).

mod cache_cli;
mod cli;
mod ec_cli;
mod nbd_cli;
mod output;

use std::io::{self, Write};
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use cli::{Cli, Command, RunError};

/// Logs go to standard error (standard output carries the reports); `RUST_LOG` overrides
/// the default level, `warn`.
fn init_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    let installed = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .with_target(false)
        .try_init();
    if let Err(e) = installed {
        eprintln!("couchestor-agent: warning: logging unavailable: {e}");
    }
}

fn run(command: Command) -> Result<(), RunError> {
    let mut out = io::stdout().lock();
    match command {
        Command::Version => {
            writeln!(
                out,
                "couchestor-agent {} (agent protocol v{})",
                env!("CARGO_PKG_VERSION"),
                couchestor_proto::PROTOCOL_VERSION
            )?;
            Ok(())
        }
        Command::Devices(args) => cli::run_devices(&args, &mut out),
        // Dispatched by `main` before `run`: these commands choose their own exit status.
        Command::Node(_) | Command::Ec(_) | Command::Nbd(_) | Command::Cache(_) => Ok(()),
    }
}

fn main() -> ExitCode {
    // Bad usage: clap prints the error and exits with status 2.
    let cli = Cli::parse();
    init_logging();
    let command = match cli.command {
        Command::Node(node) => return node.run(),
        Command::Ec(ec) => return ec_cli::run(ec),
        Command::Nbd(nbd) => return nbd_cli::run(nbd),
        Command::Cache(c) => return cache_cli::run(c),
        command => command,
    };
    match run(command) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader went away (e.g. `| head`): nothing left to report to.
        Err(RunError::Write(e)) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("couchestor-agent: error: {e}");
            ExitCode::FAILURE
        }
    }
}
