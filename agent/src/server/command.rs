//! The `serve`, `health` and `check` subcommands, flattened into the binary's command
//! line. Each decides its own exit status.

use std::io::{self, Write};
use std::process::ExitCode;

use std::path::PathBuf;

use clap::{Args, Subcommand};
use couchestor_proto::agent::v1::shard_store_server::ShardStoreServer;
use couchestor_proto::coldtier::v1::cold_tier_server::ColdTierServer;
use tonic::service::RoutesBuilder;

use super::{ColdTierArgs, EcHealth, ServeArgs, serve_with, shutdown_signal};
use crate::coldtier::ColdTierService;
use crate::erasure::remote::Peers;
use crate::health::check::{self, CheckArgs};
use crate::health::{self, HealthArgs};
use crate::shardstore::{DEFAULT_STORE, ShardStoreService};

/// Arguments of `serve`.
#[derive(Args, Debug, Clone)]
pub struct ServeCommand {
    /// The node agent.
    #[command(flatten)]
    pub base: ServeArgs,
    /// The cold tier.
    #[command(flatten)]
    pub cold: ColdTierArgs,
}

/// Node-side service commands.
#[derive(Subcommand, Debug)]
pub enum NodeCommand {
    /// Serve the NodeAgent gRPC API (mutual TLS only) and Prometheus metrics; with shard
    /// directories or stores, the ShardStore and ColdTier APIs and the cold-tier metrics too.
    Serve(Box<ServeCommand>),
    /// Ask a running agent for its health over mutual TLS. Exit status: 0 healthy,
    /// 1 unhealthy, 2 unreachable.
    Health(HealthArgs),
    /// Diagnose this node: io_uring, block devices, cache/shard directories, certificates.
    /// Exit status: 0 all OK, 1 any FAIL, 3 only warnings.
    Check(CheckArgs),
}

impl NodeCommand {
    /// Runs the command and returns the process exit status.
    pub fn run(self) -> ExitCode {
        let mut out = io::stdout().lock();
        let reported = match self {
            Self::Serve(args) => {
                // Serving writes nothing to standard output.
                drop(out);
                return run_serve(&args);
            }
            Self::Health(args) => health::run(&args, &mut out),
            Self::Check(args) => check::run(&args, &mut out),
        };
        match reported.and_then(|code| out.flush().map(|()| code)) {
            Ok(code) => ExitCode::from(code),
            Err(e) => {
                eprintln!("couchestor-agent: error: cannot write the report: {e}");
                ExitCode::FAILURE
            }
        }
    }
}

fn run_serve(args: &ServeCommand) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("couchestor-agent: error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (routes, ec) = match cold_tier_routes(args, runtime.handle()) {
        Ok(built) => built,
        Err(e) => {
            eprintln!("couchestor-agent: error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve_with(&args.base, routes, ec, shutdown_signal())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("couchestor-agent: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The ShardStore and ColdTier services and the directories to check, from the arguments.
fn cold_tier_routes(
    args: &ServeCommand,
    runtime: &tokio::runtime::Handle,
) -> Result<(RoutesBuilder, Option<EcHealth>), String> {
    let mut routes = RoutesBuilder::default();
    let mut stores: Vec<(String, PathBuf)> = Vec::new();
    if let Some(dir) = &args.base.shard_store_dir {
        stores.push((DEFAULT_STORE.to_string(), dir.clone()));
    }
    stores.extend(args.cold.stores.iter().cloned());
    if !stores.is_empty() {
        let store = ShardStoreService::with_stores(stores.clone()).map_err(|e| e.to_string())?;
        for (name, dir) in &stores {
            tracing::info!(
                "ShardStore store {name:?} serving shards from {}",
                dir.display()
            );
        }
        routes.add_service(
            ShardStoreServer::new(store)
                .max_decoding_message_size(crate::shardstore::MAX_MESSAGE_BYTES)
                .max_encoding_message_size(crate::shardstore::MAX_MESSAGE_BYTES),
        );
    }
    let mut dirs = args.cold.shard_dirs.clone();
    dirs.extend(stores.iter().map(|(_, d)| d.clone()));
    if dirs.is_empty() {
        return Ok((routes, None));
    }
    let peers = match (&args.cold.peer_cert, &args.cold.peer_key) {
        (Some(cert), Some(key)) => {
            let ca = args.cold.peer_ca.as_ref().unwrap_or(&args.base.client_ca);
            let tls = crate::tls::client_config(ca, cert, key, "").map_err(|e| e.to_string())?;
            Some(Peers::with_handle(runtime.clone(), tls))
        }
        _ => None,
    };
    let service = ColdTierService::new(&dirs, peers.clone()).map_err(|e| e.to_string())?;
    tracing::info!(
        "ColdTier serving {} shard directories{}",
        dirs.len(),
        if peers.is_some() {
            ", remote stores reachable with the peer certificate"
        } else {
            " (no --peer-cert: agent:// locations refused)"
        }
    );
    routes.add_service(
        ColdTierServer::new(service).max_decoding_message_size(super::MAX_REQUEST_BYTES),
    );
    Ok((
        routes,
        Some(EcHealth {
            dirs,
            interval: args.cold.ec_check_interval,
        }),
    ))
}
