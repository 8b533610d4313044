//! The `serve`, `health` and `check` subcommands, flattened into the binary's command
//! line. Each decides its own exit status.

use std::io::{self, Write};
use std::process::ExitCode;

use clap::Subcommand;
use couchestor_proto::agent::v1::shard_store_server::ShardStoreServer;
use tonic::service::RoutesBuilder;

use super::{ServeArgs, serve, shutdown_signal};
use crate::health::check::{self, CheckArgs};
use crate::health::{self, HealthArgs};

/// Node-side service commands.
#[derive(Subcommand, Debug)]
pub enum NodeCommand {
    /// Serve the NodeAgent gRPC API (mutual TLS only) and Prometheus metrics.
    Serve(ServeArgs),
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

fn run_serve(args: &ServeArgs) -> ExitCode {
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
    let mut routes = RoutesBuilder::default();
    if let Some(dir) = &args.shard_store_dir {
        match crate::shardstore::ShardStoreService::new(dir) {
            Ok(store) => {
                tracing::info!("ShardStore serving shards from {}", dir.display());
                routes.add_service(
                    ShardStoreServer::new(store)
                        .max_decoding_message_size(super::MAX_REQUEST_BYTES),
                );
            }
            Err(e) => {
                eprintln!("couchestor-agent: error: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    match runtime.block_on(serve(args, routes, shutdown_signal())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("couchestor-agent: error: {e}");
            ExitCode::FAILURE
        }
    }
}
