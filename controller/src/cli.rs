//! Command-line interface.

use clap::{Parser, Subcommand};
use couchestor_common::StoragePolicy;
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
}

impl Cli {
    /// Runs the chosen subcommand.
    pub fn run(self) -> anyhow::Result<()> {
        match self.command {
            Command::Crd => {
                print!("{}", crd_yaml()?);
                Ok(())
            }
        }
    }
}

/// All CRDs this controller owns, as one multi-document YAML stream.
pub fn crd_yaml() -> anyhow::Result<String> {
    Ok(serde_yaml_ng::to_string(&StoragePolicy::crd())?)
}

#[cfg(test)]
mod tests {
    /// deploy/crds/ is generated; it must never drift from the Rust types.
    #[test]
    fn committed_crd_matches_the_rust_types() {
        let committed = include_str!("../../deploy/crds/storagepolicy.yaml");
        assert!(
            super::crd_yaml().unwrap() == committed,
            "deploy/crds/storagepolicy.yaml is stale: run `cargo run -p couchestor-controller -- crd > deploy/crds/storagepolicy.yaml`"
        );
    }
}
