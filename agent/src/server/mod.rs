//! `couchestor-agent serve`: the `NodeAgent` gRPC service over mandatory mutual TLS, the
//! background sysfs sampler behind it, and the agent's Prometheus `/metrics`.

pub mod accept;
pub mod command;
pub mod ec_health;
pub mod sampler;
pub mod service;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use clap::Args;
use couchestor_proto::agent::v1::node_agent_server::NodeAgentServer;
use futures::FutureExt;
use tokio::net::TcpListener;
use tonic::service::RoutesBuilder;
use tonic::transport::Server;

pub use command::NodeCommand;

use crate::aliases;
use crate::metrics::{self, AgentMetrics};
use crate::sysfs::{self, Sysfs};
use crate::tls::{self, CertSummary, TlsError, Validity};
use sampler::Sampler;
use service::NodeAgentService;

/// Largest request message the server decodes; larger ones fail with `OUT_OF_RANGE`.
pub const MAX_REQUEST_BYTES: usize = 4 << 20;

/// Arguments of `serve`.
#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// Address of the gRPC server (mutual TLS), e.g. 0.0.0.0:9443.
    #[arg(long, value_name = "ADDR")]
    pub listen: SocketAddr,
    /// PEM certificate (chain) the agent presents.
    #[arg(long, value_name = "FILE")]
    pub tls_cert: PathBuf,
    /// PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE")]
    pub tls_key: PathBuf,
    /// PEM CA certificate(s): clients must present a certificate issued by one of them.
    #[arg(long, value_name = "FILE")]
    pub client_ca: PathBuf,
    /// Root of the sysfs tree to sample.
    #[arg(long, value_name = "DIR", default_value = sysfs::DEFAULT_ROOT)]
    pub sysfs_root: PathBuf,
    /// Root of the device tree whose `disk/by-id` and `disk/by-path` links name each disk
    /// (reported as `/dev/disk/...` whatever the root).
    #[arg(long, value_name = "DIR", default_value = aliases::DEFAULT_DEV_ROOT)]
    pub dev_root: PathBuf,
    /// Seconds between sysfs readings (0.1 to 3600); rates cover one interval.
    #[arg(long, value_name = "SECONDS", default_value = "10", value_parser = parse_interval)]
    pub interval: Duration,
    /// Address of the plain-HTTP Prometheus endpoint (GET /metrics).
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:9100")]
    pub metrics_addr: SocketAddr,
    /// Kubernetes node name reported by the agent (default: the host name).
    #[arg(long, value_name = "NAME", env = "NODE_NAME")]
    pub node_name: Option<String>,
    /// Serve the ShardStore API too, storing shards pushed by other agents in this
    /// directory (which must exist).
    #[arg(long, value_name = "DIR")]
    pub shard_store_dir: Option<PathBuf>,
}

/// Cold-tier arguments of `serve` (beside [`ServeArgs`]).
#[derive(Args, Debug, Clone, Default)]
pub struct ColdTierArgs {
    /// A local shard directory the ColdTier API may archive into and read from; repeat
    /// once per disk. The ShardStore directories count as shard directories too.
    #[arg(long = "shard-dir", value_name = "DIR")]
    pub shard_dirs: Vec<PathBuf>,
    /// One more named ShardStore store, NAME=DIR (repeatable); `--shard-store-dir DIR` is
    /// the store named "default".
    #[arg(long = "shard-store", value_name = "NAME=DIR", value_parser = parse_named_store)]
    pub stores: Vec<(String, PathBuf)>,
    /// PEM client certificate this agent presents to other agents' ShardStores (needed for
    /// `agent://` shard locations in ColdTier calls).
    #[arg(long, value_name = "FILE", requires = "peer_key")]
    pub peer_cert: Option<PathBuf>,
    /// PEM private key of --peer-cert.
    #[arg(long, value_name = "FILE", requires = "peer_cert")]
    pub peer_key: Option<PathBuf>,
    /// PEM CA the other agents' server certificates must be issued by (default: --client-ca).
    #[arg(long, value_name = "FILE")]
    pub peer_ca: Option<PathBuf>,
    /// Seconds between light checks of the archives in the shard directories, which feed
    /// the cold-tier health metrics (0.1 to 3600).
    #[arg(long, value_name = "SECONDS", default_value = "60", value_parser = parse_interval)]
    pub ec_check_interval: Duration,
}

/// Parses `NAME=DIR`.
pub fn parse_named_store(text: &str) -> Result<(String, PathBuf), String> {
    let (name, dir) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?}: expected NAME=DIR"))?;
    crate::erasure::location::check_store_name(name)?;
    if dir.is_empty() {
        return Err(format!("{text:?}: no directory"));
    }
    Ok((name.to_string(), PathBuf::from(dir)))
}

/// Parses `--interval`: decimal seconds in 0.1..=3600.
pub fn parse_interval(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if !(0.1..=3600.0).contains(&secs) {
        return Err(format!("{secs} s is outside 0.1..=3600"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Failures of `serve`.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A certificate or key file is missing or invalid.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The sysfs tree cannot be read at startup.
    #[error("cannot read block devices: {0}")]
    Sysfs(#[from] sysfs::Error),
    /// A listening socket cannot be opened.
    #[error("cannot listen for {what} on {addr}: {source}")]
    Bind {
        /// Which server.
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The underlying error.
        source: io::Error,
    },
    /// The metrics registry cannot be built.
    #[error("cannot register metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// The gRPC server stopped with an error.
    #[error("gRPC server failed: {0}")]
    Grpc(#[from] tonic::transport::Error),
    /// The metrics server stopped with an error.
    #[error("metrics server failed: {0}")]
    MetricsServer(io::Error),
}

/// The node name: `--node-name` / `NODE_NAME`, else the host name, else "unknown".
fn node_name(args: &ServeArgs) -> String {
    if let Some(name) = args.node_name.as_deref().filter(|n| !n.is_empty()) {
        return name.to_owned();
    }
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

async fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { what, addr, source })
}

/// Runs the agent until `shutdown` completes. `extra` carries further gRPC services to
/// serve beside `NodeAgent` (behind the same mutual TLS).
pub async fn serve(
    args: &ServeArgs,
    extra: RoutesBuilder,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    serve_with(args, extra, None, shutdown).await
}

/// Light checks of the archives in some shard directories, for the cold-tier metrics.
#[derive(Debug, Clone)]
pub struct EcHealth {
    /// The directories.
    pub dirs: Vec<PathBuf>,
    /// Time between checks.
    pub interval: Duration,
}

/// [`serve`], also checking the archives of `ec` (if any) for the cold-tier metrics.
pub async fn serve_with(
    args: &ServeArgs,
    extra: RoutesBuilder,
    ec: Option<EcHealth>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let tls_config = tls::server_config(&args.tls_cert, &args.tls_key, &args.client_ca)?;
    let server_cert = tls::read_certs(&args.tls_cert)?
        .first()
        .and_then(|der| CertSummary::parse(der).ok());
    if let Some(cert) = &server_cert {
        let now = SystemTime::now();
        if !matches!(cert.validity(now), Validity::Valid { .. }) {
            tracing::warn!(file = %args.tls_cert.display(), "server certificate: {}", cert.describe(now));
        }
    }
    let tree = Sysfs::new(&args.sysfs_root);
    let devices = tree.sample()?.devices.len();
    let node = node_name(args);

    let grpc_listener = bind("gRPC", args.listen).await?;
    let metrics_listener = bind("metrics", args.metrics_addr).await?;
    let local = |l: &TcpListener, fallback| l.local_addr().unwrap_or(fallback);
    tracing::info!(
        node = %node,
        devices,
        "gRPC (mutual TLS) listening on {}",
        local(&grpc_listener, args.listen)
    );
    tracing::info!(
        "metrics listening on http://{}/metrics",
        local(&metrics_listener, args.metrics_addr)
    );

    let metrics = Arc::new(AgentMetrics::new()?);
    let sampler = Sampler::spawn(tree, args.dev_root.clone(), args.interval, metrics.clone());
    if let Some(ec) = ec.filter(|ec| !ec.dirs.is_empty()) {
        tracing::info!(
            "checking the archives in {} shard directories every {:?}",
            ec.dirs.len(),
            ec.interval
        );
        ec_health::spawn(ec.dirs, ec.interval, metrics.clone());
    }
    let service = NodeAgentService::new(sampler, &node, server_cert);
    let mut routes = extra;
    routes.add_service(NodeAgentServer::new(service).max_decoding_message_size(MAX_REQUEST_BYTES));

    let shutdown = shutdown.shared();
    let incoming = accept::incoming(grpc_listener, tls_config.into());
    let grpc = Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .add_routes(routes.routes())
        .serve_with_incoming_shutdown(incoming, shutdown.clone());
    let metrics_server = metrics::serve(metrics_listener, metrics, shutdown);
    tokio::try_join!(async { grpc.await.map_err(ServeError::from) }, async {
        metrics_server.await.map_err(ServeError::MetricsServer)
    },)?;
    tracing::info!("agent stopped");
    Ok(())
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::warn!("cannot watch SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    let interrupt = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!("cannot watch SIGINT: {e}");
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
    tracing::info!("shutting down");
}
