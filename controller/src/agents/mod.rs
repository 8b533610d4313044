//! The node agents, seen from the controller: find the agent DaemonSet's pods, pull each
//! node's device list over mutual TLS, and remember the last answer per node. Pools without
//! a tier label are classified from it (see [`classify`]). An unreachable agent only
//! degrades the `AgentsReachable` condition: its node keeps its last known devices.

pub mod args;
pub mod classify;
mod fetch;

use std::collections::BTreeMap;
use std::sync::RwLock;
use std::time::Duration;

use couchestor_common::media::NodeDevice;
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::{Api, Client, ResourceExt};
use tracing::{info, warn};

pub use args::AgentArgs;
use fetch::Connector;

use crate::metrics::Metrics;

/// What the controller knows about one node's agent.
#[derive(Clone, Debug, Default)]
pub struct NodeAgent {
    /// The agent pod.
    pub pod: String,
    /// `https://ip:port` it was reached at.
    pub endpoint: String,
    /// Devices from the last successful answer (kept while the agent is unreachable).
    pub devices: Option<Vec<NodeDevice>>,
    /// Unix time of the last successful answer.
    pub fetched_at: Option<i64>,
    /// Why the last poll failed; `None` when it succeeded.
    pub error: Option<String>,
}

/// The agents as last polled.
#[derive(Clone, Debug, Default)]
pub struct AgentsView {
    /// `false` when no agent TLS material is configured: pools are classified by labels only.
    pub configured: bool,
    /// Per Kubernetes node name.
    pub nodes: BTreeMap<String, NodeAgent>,
    /// Why the agent pods could not be listed, if they could not.
    pub discovery_error: Option<String>,
    /// Whether a poll has completed.
    pub polled: bool,
}

impl AgentsView {
    /// `None` when every agent answered (or agents are not configured), else why not: the
    /// unreachable nodes with their errors.
    pub fn problem(&self) -> Option<String> {
        if !self.configured {
            return None;
        }
        if let Some(e) = &self.discovery_error {
            return Some(format!("cannot list the agent pods: {e}"));
        }
        if self.polled && self.nodes.is_empty() {
            return Some("no running agent pod found".into());
        }
        let down: Vec<String> = self
            .nodes
            .iter()
            .filter_map(|(n, a)| a.error.as_ref().map(|e| format!("{n}: {e}")))
            .collect();
        (!down.is_empty()).then(|| {
            format!(
                "{} of {} agents unreachable ({})",
                down.len(),
                self.nodes.len(),
                down.join("; ")
            )
        })
    }
}

/// The controller's handle on the agents.
pub struct Fleet {
    config: Option<(Connector, Api<Pod>, String, u16)>,
    view: RwLock<AgentsView>,
}

impl Fleet {
    /// Agents not configured: every pool is classified by its labels.
    pub fn disabled() -> Self {
        Self {
            config: None,
            view: RwLock::new(AgentsView::default()),
        }
    }

    /// A fleet polling the pods that `args` select, in `namespace`.
    pub fn new(args: &AgentArgs, client: Client, namespace: &str) -> anyhow::Result<Self> {
        let Some(tls_dir) = &args.agent_tls_dir else {
            return Ok(Self::disabled());
        };
        let connector = Connector::new(
            tls_dir,
            &args.agent_server_name,
            Duration::from_secs(args.agent_timeout_seconds),
        )?;
        Ok(Self {
            config: Some((
                connector,
                Api::namespaced(client, namespace),
                args.agent_selector.clone(),
                args.agent_port,
            )),
            view: RwLock::new(AgentsView {
                configured: true,
                ..Default::default()
            }),
        })
    }

    /// A copy of what is known now.
    pub fn view(&self) -> AgentsView {
        self.view.read().map(|v| v.clone()).unwrap_or_default()
    }

    /// Lists the agent pods and asks each for its devices, all at once; updates the view and
    /// `storage_operator_agent_up`.
    pub async fn poll(&self, metrics: &Metrics) {
        let Some((connector, pods, selector, port)) = &self.config else {
            return;
        };
        let listed = pods.list(&ListParams::default().labels(selector)).await;
        let pods = match listed {
            Ok(list) => list.items,
            Err(e) => {
                warn!(error = %e, "cannot list the agent pods");
                if let Ok(mut v) = self.view.write() {
                    v.discovery_error = Some(e.to_string());
                    v.polled = true;
                }
                return;
            }
        };
        let targets: Vec<(String, String, String)> = pods
            .iter()
            .filter_map(|p| Some((node_of(p)?, p.name_any(), endpoint_of(p, *port)?)))
            .collect();
        let answers = futures::future::join_all(
            targets
                .iter()
                .map(|(_, _, endpoint)| connector.devices(endpoint)),
        )
        .await;
        let now = k8s_openapi::jiff::Timestamp::now().as_second();
        let Ok(mut view) = self.view.write() else {
            return;
        };
        let mut nodes = BTreeMap::new();
        for ((node, pod, endpoint), answer) in targets.into_iter().zip(answers) {
            let previous = view.nodes.remove(&node).unwrap_or_default();
            let mut agent = NodeAgent {
                pod,
                endpoint,
                ..previous
            };
            match answer {
                Ok(devices) => {
                    if agent.error.is_some() || agent.devices.is_none() {
                        info!(%node, devices = devices.len(), "agent answered");
                    }
                    agent.devices = Some(devices);
                    agent.fetched_at = Some(now);
                    agent.error = None;
                }
                Err(e) => {
                    if agent.error.is_none() {
                        warn!(%node, endpoint = %agent.endpoint, error = %e, "agent unreachable");
                    }
                    agent.error = Some(e);
                }
            }
            metrics
                .agent_up
                .with_label_values(&[node.as_str()])
                .set(i64::from(agent.error.is_none()));
            nodes.insert(node, agent);
        }
        for gone in view.nodes.keys().filter(|n| !nodes.contains_key(*n)) {
            // The agent is gone (node drained or removed): its series stops.
            if let Err(e) = metrics.agent_up.remove_label_values(&[gone.as_str()]) {
                tracing::debug!(node = %gone, error = %e, "no agent_up series to remove");
            }
        }
        view.nodes = nodes;
        view.discovery_error = None;
        view.polled = true;
    }

    /// Polls every `interval` until the process ends.
    pub async fn poll_forever(&self, metrics: &Metrics, interval: Duration) {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            self.poll(metrics).await;
        }
    }

    /// Whether agents are configured.
    pub fn enabled(&self) -> bool {
        self.config.is_some()
    }
}

/// The node a running agent pod is on.
fn node_of(p: &Pod) -> Option<String> {
    let running = p.status.as_ref()?.phase.as_deref() == Some("Running");
    running.then(|| p.spec.as_ref()?.node_name.clone())?
}

/// `https://<pod IP>:<port>`, the port being the container port named `grpc` if any.
fn endpoint_of(p: &Pod, default_port: u16) -> Option<String> {
    let ip = p.status.as_ref()?.pod_ip.clone()?;
    let port = p
        .spec
        .as_ref()?
        .containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .find(|cp| cp.name.as_deref() == Some("grpc"))
        .and_then(|cp| u16::try_from(cp.container_port).ok())
        .unwrap_or(default_port);
    let host = if ip.contains(':') {
        format!("[{ip}]")
    } else {
        ip
    };
    Some(format!("https://{host}:{port}"))
}
