//! Command-line interface.

use clap::{Parser, Subcommand};
use couchestor_common::StoragePolicy;
use couchestor_common::migration::VolumeMigration;
use kube::CustomResourceExt;

/// CoucheStor moves Mayastor volumes between NVMe and SATA tiers by how hot they are.
#[derive(Parser, Debug)]
#[command(name = "couchestor-controller", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print the CustomResourceDefinitions as YAML (the source of deploy/crds/).
    Crd,
    /// Run the operator: watch StoragePolicies, score heat, plan and report (leader-elected).
    Run(crate::run::RunArgs),
    /// Explain why a PersistentVolume is or is not migrating.
    Explain(crate::explain::ExplainArgs),
    /// Score the placement engine on a synthetic workload against an oracle and a baseline.
    Simulate(crate::simulate::SimulateArgs),
}

impl Cli {
    /// Runs the chosen subcommand.
    pub fn run(self) -> anyhow::Result<()> {
        match self.command {
            Command::Crd => {
                print!("{}", crd_yaml()?);
                Ok(())
            }
            Command::Run(args) => runtime()?.block_on(crate::run::run(args)),
            Command::Explain(args) => runtime()?.block_on(crate::explain::explain(args)),
            Command::Simulate(args) => crate::simulate::run(args),
        }
    }
}

/// A multi-threaded Tokio runtime, with ring installed as the TLS crypto provider.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    install_crypto_provider();
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// Installs ring as rustls' process-wide crypto provider (reqwest is built without one).
pub fn install_crypto_provider() {
    // Err only means a provider is already installed.
    rustls::crypto::ring::default_provider()
        .install_default()
        .ok();
}

/// All CRDs this controller owns, as one multi-document YAML stream.
pub fn crd_yaml() -> anyhow::Result<String> {
    Ok(format!(
        "{}---\n{}",
        serde_yaml_ng::to_string(&StoragePolicy::crd())?,
        serde_yaml_ng::to_string(&VolumeMigration::crd())?
    ))
}

#[cfg(test)]
mod tests {
    /// deploy/crds/ is generated; it must never drift from the Rust types.
    #[test]
    fn committed_crd_matches_the_rust_types() {
        let committed = include_str!("../../deploy/crds/crds.yaml");
        assert!(
            super::crd_yaml().unwrap() == committed,
            "deploy/crds/crds.yaml is stale: run `make crds`"
        );
    }
}
