//! Shared state of the controller, passed to every reconcile as `Arc<Context>`.

use std::sync::Arc;
use std::time::Duration;

use couchestor_common::StoragePolicy;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use kube::Client;
use kube::runtime::events::Recorder;
use kube::runtime::reflector::Store;

use crate::agents::Fleet;
use crate::eyes::Eyes;
use crate::mayastor::MayastorClient;
use crate::metrics::Metrics;

/// Controller-wide settings from the command line.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Force dry-run on every policy.
    pub dry_run: bool,
    /// Keep the old replica after a move (forced for every policy).
    pub preservation_mode: bool,
    /// Cap on concurrent migrations across all policies.
    pub max_concurrent_migrations: u32,
    /// Default migration timeout.
    pub migration_timeout: Duration,
    /// How often each policy is re-evaluated.
    pub reconcile_interval: Duration,
    /// Label selector limiting which StoragePolicies (and the migrations they start) this
    /// controller manages; empty means all.
    pub policy_selector: String,
    /// Declared Mayastor version (enables node-cordon steering on 2.9 where pool cordons are
    /// missing).
    pub mayastor_version: Option<String>,
}

/// Everything a reconcile needs.
pub struct Context {
    /// Kubernetes client.
    pub client: Client,
    /// Event recorder.
    pub recorder: Recorder,
    /// Heat source.
    pub eyes: Eyes,
    /// Mayastor REST client.
    pub mayastor: MayastorClient,
    /// The node agents (device media of unlabelled pools).
    pub agents: Arc<Fleet>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// PV cache.
    pub pvs: Store<PersistentVolume>,
    /// PVC cache.
    pub pvcs: Store<PersistentVolumeClaim>,
    /// The policy controller's cache of StoragePolicies (the ones `--policy-selector`
    /// matches). A migration whose owner is in it needs no API call to know the owner exists.
    pub policies: Store<StoragePolicy>,
    /// Settings.
    pub settings: Settings,
    /// Held for every cordon lifetime, so two migrations' cordons never overlap.
    pub cordon_lock: tokio::sync::Mutex<()>,
    /// Held while starting migrations, so two policies never start one for the same volume
    /// and the global concurrency cap holds.
    pub launch_lock: tokio::sync::Mutex<()>,
}

/// Reconcile errors. Each one is logged with the policy name and retried with backoff.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kubernetes API call failed.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// A Mayastor REST call failed.
    #[error("Mayastor: {0}")]
    Mayastor(#[from] crate::mayastor::Error),
    /// Serialising status failed.
    #[error("serialising status: {0}")]
    Json(#[from] serde_json::Error),
}
