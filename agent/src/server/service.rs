//! The `couchestor.agent.v1.NodeAgent` service, answered from the background sampler.

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use couchestor_proto::agent::v1 as proto;
use futures::Stream;
use proto::node_agent_server::NodeAgent;
use tonic::{Request, Response, Status};

use super::sampler::{Sampler, Snapshot};
use crate::tls::{CertSummary, Validity};

/// Accepted range of `WatchNodeStatsRequest.interval_seconds`.
pub const WATCH_INTERVAL_SECONDS: std::ops::RangeInclusive<u32> = 1..=3600;

/// The agent's `NodeAgent` implementation.
#[derive(Debug, Clone)]
pub struct NodeAgentService {
    sampler: Sampler,
    node_name: Arc<str>,
    server_cert: Option<CertSummary>,
}

impl NodeAgentService {
    /// A service answering from `sampler`, naming itself `node_name`; `server_cert` (the
    /// certificate the agent presents) is reported by `GetHealth`.
    pub fn new(sampler: Sampler, node_name: &str, server_cert: Option<CertSummary>) -> Self {
        Self {
            sampler,
            node_name: node_name.into(),
            server_cert,
        }
    }

    /// The checks `GetHealth` reports.
    pub fn health(&self) -> proto::HealthReport {
        let mut checks = vec![self.sampler_check()];
        if let Some(cert) = &self.server_cert {
            let now = SystemTime::now();
            let ok = matches!(
                cert.validity(now),
                Validity::Valid { .. } | Validity::ExpiringSoon { .. }
            );
            checks.push(proto::HealthCheck {
                name: "server_certificate".into(),
                ok,
                detail: cert.describe(now),
            });
        }
        proto::HealthReport {
            healthy: checks.iter().all(|c| c.ok),
            checks,
        }
    }

    fn sampler_check(&self) -> proto::HealthCheck {
        let interval = self.sampler.interval();
        // A snapshot older than this means the sampler is stuck.
        let stale_after = interval * 3 + Duration::from_secs(5);
        let state = self.sampler.state();
        let (ok, detail) = match (&state.last_error, &state.latest) {
            (Some(error), _) => (false, format!("latest sysfs reading failed: {error}")),
            (None, None) => (
                false,
                format!(
                    "no rates yet: the first interval ({:.1} s) has not completed",
                    interval.as_secs_f64()
                ),
            ),
            (None, Some(snapshot)) => {
                let age = snapshot.taken_at.elapsed();
                let detail = format!(
                    "{} block devices, latest reading {:.1} s ago (interval {:.1} s)",
                    snapshot.devices.len(),
                    age.as_secs_f64(),
                    interval.as_secs_f64()
                );
                (age <= stale_after, detail)
            }
        };
        proto::HealthCheck {
            name: "sysfs_sampler".into(),
            ok,
            detail,
        }
    }
}

/// A snapshot as `NodeStats`, keeping the devices named in `only` (all when empty).
pub fn node_stats(node_name: &str, snapshot: &Snapshot, only: &[String]) -> proto::NodeStats {
    proto::NodeStats {
        node_name: node_name.to_owned(),
        timestamp_ms: snapshot.timestamp_ms,
        interval_ms: snapshot.interval_ms,
        devices: snapshot
            .devices
            .iter()
            .filter(|d| only.is_empty() || only.contains(&d.name))
            .map(|d| proto::DeviceStats {
                aliases: snapshot.aliases.get(&d.name).cloned().unwrap_or_default(),
                ..proto::DeviceStats::from(d)
            })
            .collect(),
    }
}

type StatsStream = Pin<Box<dyn Stream<Item = Result<proto::NodeStats, Status>> + Send>>;

#[tonic::async_trait]
impl NodeAgent for NodeAgentService {
    async fn get_version(
        &self,
        _request: Request<proto::GetVersionRequest>,
    ) -> Result<Response<proto::VersionInfo>, Status> {
        Ok(Response::new(proto::VersionInfo {
            agent_version: env!("CARGO_PKG_VERSION").into(),
            protocol_version: couchestor_proto::PROTOCOL_VERSION,
            node_name: self.node_name.to_string(),
        }))
    }

    async fn get_health(
        &self,
        _request: Request<proto::GetHealthRequest>,
    ) -> Result<Response<proto::HealthReport>, Status> {
        Ok(Response::new(self.health()))
    }

    async fn get_node_stats(
        &self,
        request: Request<proto::GetNodeStatsRequest>,
    ) -> Result<Response<proto::NodeStats>, Status> {
        let Some(snapshot) = self.sampler.state().latest else {
            return Err(Status::unavailable(format!(
                "no device rates yet: the first sampling interval ({:.1} s) has not completed",
                self.sampler.interval().as_secs_f64()
            )));
        };
        let only = &request.get_ref().device_names;
        Ok(Response::new(node_stats(&self.node_name, &snapshot, only)))
    }

    type WatchNodeStatsStream = StatsStream;

    async fn watch_node_stats(
        &self,
        request: Request<proto::WatchNodeStatsRequest>,
    ) -> Result<Response<StatsStream>, Status> {
        let request = request.into_inner();
        let seconds = request.interval_seconds;
        if !WATCH_INTERVAL_SECONDS.contains(&seconds) {
            return Err(Status::invalid_argument(format!(
                "interval_seconds must be between {} and {}, got {seconds}",
                WATCH_INTERVAL_SECONDS.start(),
                WATCH_INTERVAL_SECONDS.end()
            )));
        }
        let period = Duration::from_secs(seconds.into());
        let state = (
            self.sampler.subscribe(),
            None,
            self.node_name.clone(),
            request.device_names,
        );
        // The first snapshot goes out as soon as there is one, each next one a period after
        // the previous. Ends when the client cancels (the stream is dropped) or the sampler
        // stops.
        let stream = futures::stream::unfold(state, move |(mut rx, next, node, only)| async move {
            if let Some(at) = next {
                tokio::time::sleep_until(at).await;
            }
            let snapshot = Sampler::latest(&mut rx).await?;
            let stats = node_stats(&node, &snapshot, &only);
            let next = Some(tokio::time::Instant::now() + period);
            Some((Ok(stats), (rx, next, node, only)))
        });
        Ok(Response::new(Box::pin(stream)))
    }
}
