//! `couchestor-agent`: the CoucheStor node agent (privileged DaemonSet).
//!
//! This build carries the command-line skeleton and the gRPC contract; device telemetry,
//! the cold tier and the block cache arrive with their own issues.

use clap::{Parser, Subcommand};

/// CoucheStor node agent: device telemetry, block cache and erasure-coded cold tier.
#[derive(Parser, Debug)]
#[command(name = "couchestor-agent", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print the agent and protocol versions.
    Version,
}

fn main() {
    let cli = Cli::parse();
    match cli.command {
        Command::Version => println!(
            "couchestor-agent {} (agent protocol v{})",
            env!("CARGO_PKG_VERSION"),
            couchestor_proto::PROTOCOL_VERSION
        ),
    }
}
