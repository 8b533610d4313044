//! Helpers of the ColdTier tests: a mutual-TLS client of an agent, and draining event
//! streams.
#![allow(dead_code)]

use std::time::Duration;

use couchestor_proto::coldtier::v1::cold_tier_client::ColdTierClient;
use tonic::transport::{Channel, Endpoint};

use crate::harness::{Agent, Pki, client_tls};

/// A ColdTier client of `agent` with the controller certificate.
pub fn cold_tier(pki: &Pki, agent: &Agent) -> ColdTierClient<Channel> {
    let tls = client_tls(&pki.ca.cert_pem(), Some(&pki.client), &agent.server_name);
    let channel = Endpoint::from_shared(agent.url())
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .timeout(Duration::from_secs(60))
        .connect_lazy();
    ColdTierClient::new(channel)
}

/// Drains a stream of events: every event, or the status that ended the stream.
pub async fn drain<E>(
    stream: Result<tonic::Response<tonic::Streaming<E>>, tonic::Status>,
) -> Result<Vec<E>, tonic::Status> {
    let mut stream = stream?.into_inner();
    let mut events = Vec::new();
    while let Some(event) = stream.message().await? {
        events.push(event);
    }
    Ok(events)
}
