//! Shard locations on other agents: a blocking facade over [`ShardStoreClient`] for the
//! (synchronous) archive engine. Calls run on a Tokio runtime — the caller's (the agent's
//! server, whose engine work runs on blocking threads) or one of its own (the CLI) — and
//! must not be made from an async task.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::runtime::{Handle, Runtime};
use tokio::task::JoinHandle;
use tonic::transport::ClientTlsConfig;

use super::EcError;
use super::location::AgentStore;
use crate::shardstore::{ClientError, ShardStoreClient};

/// Connections to other agents' shard stores, with the TLS identity to use.
pub struct Peers {
    handle: Handle,
    tls: ClientTlsConfig,
    clients: Mutex<HashMap<String, ShardStoreClient>>,
    runtime: Option<Runtime>,
}

impl std::fmt::Debug for Peers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peers").finish_non_exhaustive()
    }
}

impl Peers {
    /// Peers reached with `tls` (CA and client identity; the server name is set per agent),
    /// running calls on `handle`.
    pub fn with_handle(handle: Handle, tls: ClientTlsConfig) -> Arc<Peers> {
        Arc::new(Peers {
            handle,
            tls,
            clients: Mutex::new(HashMap::new()),
            runtime: None,
        })
    }

    /// Peers with a runtime of their own (for callers without one).
    pub fn with_runtime(tls: ClientTlsConfig) -> Result<Arc<Peers>, EcError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| EcError::Codec(format!("cannot start the async runtime: {e}")))?;
        Ok(Arc::new(Peers {
            handle: runtime.handle().clone(),
            tls,
            clients: Mutex::new(HashMap::new()),
            runtime: Some(runtime),
        }))
    }

    /// Runs `future` to completion (blocking the calling thread).
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.handle.block_on(future)
    }

    /// Starts `future` on the runtime.
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle.spawn(future)
    }

    /// A client of `store` (one connection per agent, reused).
    pub fn client(&self, store: &AgentStore) -> Result<ShardStoreClient, EcError> {
        let cached = self
            .clients
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&store.authority)
            .cloned();
        let client = match cached {
            Some(client) => client,
            None => {
                let tls = self.tls.clone().domain_name(store.host());
                let endpoint = store.endpoint();
                let client = self
                    .block_on(ShardStoreClient::connect(&endpoint, tls))
                    .map_err(|e| client_error(store, e))?;
                self.clients
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(store.authority.clone(), client.clone());
                client
            }
        };
        Ok(client.with_store(&store.store))
    }
}

impl Drop for Peers {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            // Safe from any context, unlike dropping a runtime.
            runtime.shutdown_background();
        }
    }
}

/// An [`EcError`] naming the location for a failed call.
pub fn client_error(store: &AgentStore, e: ClientError) -> EcError {
    let location = format!(
        "{}{}/{}",
        super::location::AGENT_SCHEME,
        store.authority,
        store.store
    );
    match e {
        ClientError::Endpoint { .. } | ClientError::Connect { .. } => EcError::Unreachable {
            location,
            message: couchestor_proto::errors::error_chain(&e),
        },
        ClientError::Remote { status, .. }
            if matches!(
                status.code(),
                tonic::Code::Unavailable | tonic::Code::DeadlineExceeded
            ) =>
        {
            EcError::Unreachable {
                location,
                message: couchestor_proto::errors::describe_status(&status),
            }
        }
        ClientError::Remote { call, status } => EcError::Remote {
            location,
            call,
            code: status.code(),
            message: status.message().to_string(),
        },
        other => EcError::Remote {
            location,
            call: "transfer",
            code: tonic::Code::Internal,
            message: other.to_string(),
        },
    }
}
