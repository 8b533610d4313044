//! `couchestor-controller`: the CoucheStor control plane.

mod agents;
mod cli;
mod context;
mod crds;
mod explain;
mod eyes;
mod health;
#[allow(dead_code)] // The write side is used by the migration engine (next issue) and tests.
mod mayastor;
mod metrics;
mod mover;
mod observe;
mod reconcile;
mod run;
mod simulate;
mod status;

use clap::Parser;

fn main() -> anyhow::Result<()> {
    let cli = cli::Cli::parse();
    cli.run()
}
