//! One mutual-TLS gRPC client per agent endpoint, reused across polls.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use couchestor_common::media::{Media, NodeDevice};
use couchestor_proto::agent::v1::node_agent_client::NodeAgentClient;
use couchestor_proto::agent::v1::{DeviceKind, DeviceStats, GetNodeStatsRequest};
use couchestor_proto::errors::{describe_status, error_chain};
use tokio::sync::Mutex;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// Connects to agents with the controller's client certificate.
pub struct Connector {
    tls: ClientTlsConfig,
    timeout: Duration,
    channels: Mutex<HashMap<String, Channel>>,
}

impl Connector {
    /// Reads `ca.crt`, `tls.crt` and `tls.key` from `dir`; agents must present a certificate
    /// for `server_name` issued by that CA.
    pub fn new(dir: &Path, server_name: &str, timeout: Duration) -> anyhow::Result<Self> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read(&path)
                .with_context(|| format!("--agent-tls-dir: cannot read {}", path.display()))
        };
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(read("ca.crt")?))
            .identity(Identity::from_pem(read("tls.crt")?, read("tls.key")?))
            .domain_name(server_name);
        Ok(Self {
            tls,
            timeout,
            channels: Mutex::new(HashMap::new()),
        })
    }

    /// The devices the agent at `endpoint` reports; `Err` says why it could not be asked.
    pub async fn devices(&self, endpoint: &str) -> Result<Vec<NodeDevice>, String> {
        let channel = self.channel(endpoint).await?;
        let answer = NodeAgentClient::new(channel)
            .get_node_stats(GetNodeStatsRequest::default())
            .await;
        match answer {
            Ok(stats) => Ok(stats.into_inner().devices.iter().map(device).collect()),
            Err(status) => {
                // Reconnect next time: the channel may be bound to a replaced pod.
                self.channels.lock().await.remove(endpoint);
                Err(format!("GetNodeStats: {}", describe_status(&status)))
            }
        }
    }

    async fn channel(&self, endpoint: &str) -> Result<Channel, String> {
        if let Some(c) = self.channels.lock().await.get(endpoint) {
            return Ok(c.clone());
        }
        let channel = Endpoint::from_shared(endpoint.to_string())
            .map_err(|e| format!("invalid endpoint {endpoint}: {e}"))?
            .tls_config(self.tls.clone())
            .map_err(|e| error_chain(&e))?
            .connect_timeout(self.timeout)
            .timeout(self.timeout)
            .connect()
            .await
            .map_err(|e| format!("cannot connect to {endpoint}: {}", error_chain(&e)))?;
        self.channels
            .lock()
            .await
            .insert(endpoint.to_string(), channel.clone());
        Ok(channel)
    }
}

fn device(d: &DeviceStats) -> NodeDevice {
    NodeDevice {
        name: d.name.clone(),
        media: match d.kind() {
            DeviceKind::Nvme => Media::Nvme,
            DeviceKind::SataSsd => Media::SataSsd,
            DeviceKind::Hdd => Media::Hdd,
            DeviceKind::Virtual | DeviceKind::Unspecified => Media::Virtual,
        },
        aliases: d.aliases.clone(),
    }
}
