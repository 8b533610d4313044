//! Typed async client for the Mayastor control-plane REST API, version `v0`.
//!
//! JSON shapes follow the upstream OpenAPI contract (`shared/specs/v0_api_spec.yaml`); see
//! [`model`]. The client covers what a tier move needs (`shared/notes/mayastor.md` §6):
//!
//! * read: volumes (paged), one volume, pools (all / one / those holding a volume's replicas),
//!   nodes, rebuild history;
//! * write: `replica_count` (the only supported way to add or remove a data replica), pool and
//!   node labels, node cordons and pool cordons (≥ 2.10).
//!
//! The base URL includes the API version, e.g. `http://openebs-api-rest.openebs.svc:8081/v0`.
//! Every request has a timeout ([`MayastorClient::DEFAULT_TIMEOUT`] unless configured), and every
//! failure is an [`Error`] naming the operation, method, path and, for HTTP errors, the status
//! and the server's `RestJsonError` body.
//!
//! Capability detection (pool cordon) is described on [`MayastorClient::capabilities`]; the
//! release the nodes run on [`MayastorClient::engine_versions`].

mod capabilities;
mod enums;
mod error;
pub mod model;
mod read;
mod version;
mod write;

#[cfg(test)]
mod tests;

use std::{sync::Arc, time::Duration};

use reqwest::{Method, RequestBuilder, Url};
use serde::de::DeserializeOwned;
use tokio::sync::OnceCell;

pub use capabilities::*;
pub use error::Error;
pub use version::{MayastorVersion, NodeVersions};

/// Client for one Mayastor REST endpoint. Cheap to clone (the connection pool is shared).
#[derive(Debug, Clone)]
pub struct MayastorClient {
    http: reqwest::Client,
    base: Url,
    pool_cordon_override: Option<bool>,
    capabilities: Arc<OnceCell<Capabilities>>,
}

impl MayastorClient {
    /// Timeout of one request unless [`MayastorClient::with_timeout`] sets another.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

    /// A client for `base_url` (e.g. `http://host:8081/v0`) with the default timeout.
    pub fn new(base_url: &str) -> Result<Self, Error> {
        Self::with_timeout(base_url, Self::DEFAULT_TIMEOUT)
    }

    /// A client for `base_url` whose requests time out after `timeout`.
    pub fn with_timeout(base_url: &str, timeout: Duration) -> Result<Self, Error> {
        let invalid = |reason: &str| Error::InvalidBaseUrl {
            url: base_url.to_owned(),
            reason: reason.to_owned(),
        };
        let base = Url::parse(base_url).map_err(|e| invalid(&e.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(invalid("scheme must be http or https"));
        }
        if base.cannot_be_a_base() || base.query().is_some() || base.fragment().is_some() {
            return Err(invalid(
                "must be a plain http(s) URL without query or fragment",
            ));
        }
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(Error::Client)?;
        Ok(Self {
            http,
            base,
            pool_cordon_override: None,
            capabilities: Arc::new(OnceCell::new()),
        })
    }

    /// Forces pool-cordon support on or off instead of detecting it (`None`: detect).
    pub fn with_pool_cordon_override(mut self, supported: Option<bool>) -> Self {
        self.pool_cordon_override = supported;
        self.capabilities = Arc::new(OnceCell::new());
        self
    }

    /// The base URL, including the `/v0` prefix.
    pub fn base_url(&self) -> &Url {
        &self.base
    }

    /// `base` + `segments`, each percent-encoded as one path segment (so a label key holding a
    /// `/` stays one segment).
    fn url(&self, segments: &[&str]) -> Result<Url, Error> {
        let mut url = self.base.clone();
        {
            let mut path = url
                .path_segments_mut()
                .map_err(|()| Error::InvalidBaseUrl {
                    url: self.base.to_string(),
                    reason: "cannot be a base".to_owned(),
                })?;
            path.pop_if_empty();
            path.extend(segments);
        }
        Ok(url)
    }

    /// A request for `segments` and a description `METHOD /path` for errors.
    fn request(
        &self,
        method: Method,
        segments: &[&str],
    ) -> Result<(RequestBuilder, String), Error> {
        let url = self.url(segments)?;
        let endpoint = format!("{method} {}", url.path());
        Ok((self.http.request(method, url), endpoint))
    }

    /// Sends `request`; a 2xx body is decoded as `T`, anything else becomes an [`Error`].
    async fn call<T: DeserializeOwned>(
        &self,
        operation: &'static str,
        (request, endpoint): (RequestBuilder, String),
    ) -> Result<T, Error> {
        let (status, body) = self.exchange(operation, request, &endpoint).await?;
        if !status.is_success() {
            return Err(Error::Api {
                operation,
                endpoint,
                status,
                rest: serde_json::from_slice(&body).ok().map(Box::new),
                body: error::excerpt(&body),
            });
        }
        serde_json::from_slice(&body).map_err(|source| Error::Decode {
            operation,
            endpoint,
            body: error::excerpt(&body),
            source,
        })
    }

    /// Sends `request` and reads the whole body, whatever the status.
    async fn exchange(
        &self,
        operation: &'static str,
        request: RequestBuilder,
        endpoint: &str,
    ) -> Result<(reqwest::StatusCode, Vec<u8>), Error> {
        let transport = |source| Error::Transport {
            operation,
            endpoint: endpoint.to_owned(),
            source,
        };
        let response = request.send().await.map_err(transport)?;
        let status = response.status();
        let body = response.bytes().await.map_err(transport)?;
        tracing::debug!(operation, endpoint, %status, "mayastor REST call");
        Ok((status, body.to_vec()))
    }
}
