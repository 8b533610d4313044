//! `couchestor-controller run`: the leader-elected operator.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use couchestor_common::StoragePolicy;
use couchestor_common::migration::VolumeMigration;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::{Controller, WatchStreamExt, controller, reflector, watcher};
use kube::{Api, Client, ResourceExt};
use kube_lease_manager::LeaseManagerBuilder;
use tracing::{error, info, warn};

use crate::agents::{AgentArgs, Fleet};
use crate::context::{Context, Settings};
use crate::eyes::{DEFAULT_HEAT_QUERY, Eyes, EyesConfig};
use crate::mayastor::MayastorClient;
use crate::metrics::Metrics;
use crate::reconcile::{error_policy, reconcile};

/// Connection settings shared by `run` and `explain`.
#[derive(Args, Debug, Clone)]
pub struct SourceArgs {
    /// Prometheus base URL (Eyes).
    #[arg(
        long,
        env = "PROMETHEUS_URL",
        default_value = "http://prometheus-operated.monitoring.svc:9090"
    )]
    pub prometheus_url: String,
    /// PromQL returning one IOPS series per `pv_name` (see docs/operations.md for fallbacks).
    #[arg(long, env = "HEAT_QUERY", default_value = DEFAULT_HEAT_QUERY)]
    pub heat_query: String,
    /// Range-query resolution, seconds.
    #[arg(long, env = "HEAT_QUERY_STEP_SECONDS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub heat_query_step_seconds: u64,
    /// Prometheus query timeout, seconds.
    #[arg(long, env = "PROMETHEUS_TIMEOUT_SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub prometheus_timeout_seconds: u64,
    /// Mayastor REST API base URL.
    #[arg(
        long,
        env = "MAYASTOR_URL",
        default_value = "http://openebs-api-rest.openebs.svc:8081/v0"
    )]
    pub mayastor_url: String,
    /// How to reach the node agents.
    #[command(flatten)]
    pub agents: AgentArgs,
}

/// Controller-wide settings that change what is decided, shared by `run` and `explain`:
/// `explain` decides as a controller with these values would, so it must be given the
/// controller's (in the controller pod they come from the same environment variables).
#[derive(Args, Debug, Clone)]
pub struct DecisionArgs {
    /// Cap on concurrent migrations across all policies.
    #[arg(long, env = "MAX_CONCURRENT_MIGRATIONS", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub max_concurrent_migrations: u32,
    /// Cap on every policy's migrationTimeout, minutes.
    #[arg(long, env = "MIGRATION_TIMEOUT_MINUTES", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=2880))]
    pub migration_timeout_minutes: u64,
    /// Plan and report only; never move data, whatever the policies say.
    #[arg(long, env = "DRY_RUN")]
    pub dry_run: bool,
    /// Manage only StoragePolicies matching this label selector (and the VolumeMigrations they
    /// start, which inherit the policy's labels). Empty: all. Useful for canaries and tests.
    #[arg(long, env = "POLICY_SELECTOR", default_value = "")]
    pub policy_selector: String,
}

impl DecisionArgs {
    /// The controller's settings: these, plus what only `run` sets.
    pub fn settings(
        &self,
        preservation_mode: bool,
        reconcile_interval: Duration,
        mayastor_version: Option<String>,
    ) -> Settings {
        Settings {
            dry_run: self.dry_run,
            preservation_mode,
            max_concurrent_migrations: self.max_concurrent_migrations,
            migration_timeout: Duration::from_secs(self.migration_timeout_minutes * 60),
            reconcile_interval,
            mayastor_version,
            policy_selector: self.policy_selector.clone(),
        }
    }
}

/// Options of `run`. Every flag can also be set through the named environment variable.
#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    sources: SourceArgs,
    #[command(flatten)]
    decisions: DecisionArgs,
    /// Keep the old replica after every move.
    #[arg(long, env = "PRESERVATION_MODE")]
    preservation_mode: bool,
    /// Mayastor release, e.g. 2.9.0. Unset: the lowest version the io-engine nodes report. Without
    /// pool cordons (< 2.10), 2.9 or later is steered with node cordons; older releases are
    /// refused. A value that disagrees with the nodes is used, and reported.
    #[arg(long, env = "MAYASTOR_VERSION")]
    mayastor_version: Option<String>,
    /// Seconds between two evaluations of a policy.
    #[arg(long, env = "RECONCILE_INTERVAL_SECONDS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(5..=86400))]
    reconcile_interval_seconds: u64,
    /// Log filter (error, warn, info, debug, trace, or a tracing directive).
    #[arg(long, env = "LOG_LEVEL", default_value = "info")]
    log_level: String,
    /// Log as JSON lines.
    #[arg(long, env = "LOG_JSON")]
    log_json: bool,
    /// Address of the Prometheus `/metrics` endpoint.
    #[arg(long, env = "METRICS_ADDR", default_value = "0.0.0.0:8080")]
    metrics_addr: SocketAddr,
    /// Address of `/healthz` and `/readyz`.
    #[arg(long, env = "HEALTH_ADDR", default_value = "0.0.0.0:8081")]
    health_addr: SocketAddr,
    /// Namespace of the leader-election Lease.
    #[arg(long, env = "POD_NAMESPACE", default_value = "couchestor-system")]
    lease_namespace: String,
    /// Identity in the Lease (the pod name).
    #[arg(long, env = "POD_NAME", default_value_t = default_identity())]
    identity: String,
}

fn default_identity() -> String {
    format!("couchestor-controller-{}", std::process::id())
}

/// Initialises logging.
pub fn init_logging(level: &str, json: bool) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .with_context(|| format!("invalid --log-level {level:?}"))?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    }
    .map_err(|e| anyhow::anyhow!("logging: {e}"))
}

/// Builds the Eyes and Mayastor client from the source flags.
pub fn sources(s: &SourceArgs) -> anyhow::Result<(Eyes, MayastorClient)> {
    let eyes = Eyes::new(EyesConfig {
        url: s.prometheus_url.clone(),
        query: s.heat_query.clone(),
        step: Duration::from_secs(s.heat_query_step_seconds),
        timeout: Duration::from_secs(s.prometheus_timeout_seconds),
        cache_ttl: Duration::from_secs(30),
    })
    .with_context(|| format!("--prometheus-url {}", s.prometheus_url))?;
    let mayastor = MayastorClient::new(&s.mayastor_url)
        .with_context(|| format!("--mayastor-url {}", s.mayastor_url))?;
    Ok((eyes, mayastor))
}

/// Runs the operator until leadership is lost or a server fails.
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    init_logging(&args.log_level, args.log_json)?;
    let client = Client::try_default()
        .await
        .context("connecting to Kubernetes")?;
    // Before leader election, so that neither a leader nor a standby runs on CRDs that lack
    // the fields it writes.
    match crate::crds::check(&client).await {
        Ok(()) => info!("the installed CRDs declare every field this controller uses"),
        Err(e) if e.is_forbidden() => warn!(
            error = %e,
            "cannot check the installed CRDs (RBAC: get on customresourcedefinitions); continuing"
        ),
        Err(e) => {
            error!(error = %e, "refusing to start");
            return Err(e.into());
        }
    }
    let metrics = Arc::new(Metrics::new()?);
    let ready = Arc::new(AtomicBool::new(false));
    tokio::spawn(serve_or_log(
        "metrics",
        crate::health::serve_metrics(args.metrics_addr, metrics.clone()),
    ));
    tokio::spawn(serve_or_log(
        "health",
        crate::health::serve_health(args.health_addr, ready.clone()),
    ));

    // Caches start before leadership so a standby is warm and honestly ready.
    let (pvs, pv_writer) = reflector::store::<PersistentVolume>();
    let (pvcs, pvc_writer) = reflector::store::<PersistentVolumeClaim>();
    // A failed watch is retried with backoff (not re-listed at once in a tight loop) and
    // logged; managedFields are dropped from the caches, which hold every PV and PVC.
    let pv_stream = reflector(
        pv_writer,
        watcher(Api::all(client.clone()), watcher::Config::default())
            .default_backoff()
            .modify(|pv: &mut PersistentVolume| pv.managed_fields_mut().clear()),
    )
    .applied_objects();
    let pvc_stream = reflector(
        pvc_writer,
        watcher(Api::all(client.clone()), watcher::Config::default())
            .default_backoff()
            .modify(|pvc: &mut PersistentVolumeClaim| pvc.managed_fields_mut().clear()),
    )
    .applied_objects();
    tokio::spawn(pv_stream.for_each(|r| log_watch_error("PersistentVolume", r)));
    tokio::spawn(pvc_stream.for_each(|r| log_watch_error("PersistentVolumeClaim", r)));
    {
        let (pvs, pvcs, ready) = (pvs.clone(), pvcs.clone(), ready.clone());
        tokio::spawn(async move {
            if pvs.wait_until_ready().await.is_ok() && pvcs.wait_until_ready().await.is_ok() {
                ready.store(true, Ordering::Relaxed);
                info!("PV and PVC caches synced");
            }
        });
    }

    let leases = LeaseManagerBuilder::new(client.clone(), "couchestor-controller")
        .with_namespace(args.lease_namespace.clone())
        .with_identity(args.identity.clone())
        .with_duration(15)
        .with_grace(5)
        .build()
        .await
        .context("leader election")?;
    let (mut leader, lease_task) = leases.watch().await;
    info!(identity = %args.identity, "standby: waiting for the leader Lease");
    while !*leader.borrow_and_update() {
        leader.changed().await.context("lease watcher stopped")?;
    }
    info!(identity = %args.identity, "acquired the leader Lease; reconciling");

    let (eyes, mayastor) = sources(&args.sources)?;
    let agent_ns = (args.sources.agents.agent_namespace.clone())
        .unwrap_or_else(|| args.lease_namespace.clone());
    let agents = Arc::new(Fleet::new(&args.sources.agents, client.clone(), &agent_ns)?);
    if agents.enabled() {
        // One poll before the first reconcile, so unlabelled pools are classified from the
        // start; then one every --agent-poll-seconds.
        agents.poll(&metrics).await;
        let (fleet, m) = (agents.clone(), metrics.clone());
        let every = Duration::from_secs(args.sources.agents.agent_poll_seconds);
        tokio::spawn(async move { fleet.poll_forever(&m, every).await });
        info!(namespace = %agent_ns, selector = %args.sources.agents.agent_selector, "polling the node agents");
    }
    let scoped = || {
        let c = watcher::Config::default();
        if args.decisions.policy_selector.is_empty() {
            c
        } else {
            c.labels(&args.decisions.policy_selector)
        }
    };
    let policy_controller =
        Controller::new(Api::<StoragePolicy>::all(client.clone()), scoped()).shutdown_on_signal();
    let ctx = Arc::new(Context {
        client: client.clone(),
        recorder: Recorder::new(
            client.clone(),
            Reporter {
                controller: "couchestor-controller".into(),
                instance: Some(args.identity.clone()),
            },
        ),
        eyes,
        mayastor,
        agents,
        metrics,
        pvs,
        pvcs,
        policies: policy_controller.store(),
        settings: args.decisions.settings(
            args.preservation_mode,
            Duration::from_secs(args.reconcile_interval_seconds),
            args.mayastor_version.clone(),
        ),
        cordon_lock: tokio::sync::Mutex::new(()),
        launch_lock: tokio::sync::Mutex::new(()),
    });
    info!(settings = ?ctx.settings, "operator settings");
    let mover = Controller::new(Api::<VolumeMigration>::all(client.clone()), scoped())
        .shutdown_on_signal()
        .run(
            crate::mover::reconcile,
            crate::mover::error_policy,
            ctx.clone(),
        )
        .for_each(|r| async move {
            match r {
                // A requeue of a migration deleted since: nothing left to do.
                Err(controller::Error::ObjectNotFound(gone)) => {
                    tracing::debug!(migration = %gone.name, "migration gone")
                }
                Err(e) => warn!(error = %e, "migration loop"),
                Ok(_) => {}
            }
        });
    let metrics = ctx.metrics.clone();
    let policies = policy_controller
        .run(reconcile, error_policy, ctx)
        .for_each(move |r| {
            match r {
                // A requeue of a policy that has left the store: deleted, or its labels no
                // longer match --policy-selector. Its series go with it.
                Err(controller::Error::ObjectNotFound(gone)) => {
                    let series = metrics.forget_policy(&gone.name);
                    info!(policy = %gone.name, series, "policy deleted or no longer selected; its metrics removed");
                }
                Err(e) => warn!(error = %e, "reconcile loop"),
                Ok(_) => {}
            }
            futures::future::ready(())
        });
    let controller = futures::future::join(mover, policies);
    tokio::select! {
        _ = controller => info!("controller stopped"),
        _ = async { while leader.changed().await.is_ok() && *leader.borrow() {} } => {
            anyhow::bail!("lost the leader Lease; exiting so a fresh process can stand by");
        }
    }
    drop(leader);
    match lease_task.await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(anyhow::anyhow!("lease manager: {e}")),
        Err(e) => Err(anyhow::anyhow!("lease manager task: {e}")),
    }
}

/// Logs a failed watch of the PV or PVC cache (the watcher retries it with backoff).
async fn log_watch_error<K>(resource: &'static str, r: Result<K, watcher::Error>) {
    if let Err(e) = r {
        warn!(resource, error = %e, "watch failed; retrying with backoff, the cache keeps its last state");
    }
}

async fn serve_or_log(
    what: &'static str,
    f: impl std::future::Future<Output = std::io::Result<()>>,
) {
    if let Err(e) = f.await {
        tracing::error!(server = what, error = %e, "HTTP server failed");
        std::process::exit(2);
    }
}
