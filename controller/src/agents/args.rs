//! Command-line options for reaching the node agents (shared by `run` and `explain`).

use std::path::PathBuf;

use clap::Args;

/// Where the node agents are and how to authenticate to them.
#[derive(Args, Debug, Clone)]
pub struct AgentArgs {
    /// Directory holding `ca.crt` (the CA that signed the agents' certificates), and
    /// `tls.crt`/`tls.key` (the controller's client certificate), as a mounted
    /// kubernetes.io/tls Secret lays them out. Unset: agents are not contacted and pools are
    /// classified by their labels only.
    #[arg(long, env = "AGENT_TLS_DIR", value_name = "DIR")]
    pub agent_tls_dir: Option<PathBuf>,
    /// Namespace of the agent DaemonSet's pods (default: POD_NAMESPACE, else
    /// couchestor-system).
    #[arg(long, env = "AGENT_NAMESPACE")]
    pub agent_namespace: Option<String>,
    /// Label selector of the agent pods.
    #[arg(
        long,
        env = "AGENT_SELECTOR",
        default_value = "app.kubernetes.io/name=couchestor,app.kubernetes.io/component=agent"
    )]
    pub agent_selector: String,
    /// gRPC port of the agents, used when the pod declares no container port named `grpc`.
    #[arg(long, env = "AGENT_PORT", default_value_t = 50051)]
    pub agent_port: u16,
    /// DNS name every agent's serving certificate carries (checked instead of the pod IP).
    #[arg(long, env = "AGENT_SERVER_NAME", default_value = "couchestor-agent")]
    pub agent_server_name: String,
    /// Seconds between two polls of every agent.
    #[arg(long, env = "AGENT_POLL_SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(5..=3600))]
    pub agent_poll_seconds: u64,
    /// Connect and request timeout per agent, seconds.
    #[arg(long, env = "AGENT_TIMEOUT_SECONDS", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=120))]
    pub agent_timeout_seconds: u64,
}

impl AgentArgs {
    /// The agent namespace: the flag, else POD_NAMESPACE, else `couchestor-system`.
    pub fn namespace(&self) -> String {
        self.agent_namespace
            .clone()
            .or_else(|| std::env::var("POD_NAMESPACE").ok())
            .unwrap_or_else(|| "couchestor-system".into())
    }
}
