//! Feature detection: which optional endpoints the Mayastor behind the client offers.
//!
//! The v0 API has no version endpoint, so support is established in this order:
//!
//! 1. **Override** — [`MayastorClient::with_pool_cordon_override`] (e.g. from configuration)
//!    wins, and nothing is asked.
//! 2. **Served spec** — a running control plane serves its own OpenAPI document at
//!    `GET /v0/api/spec`; pool cordon is supported iff it declares `/pools/{pool_id}/cordon`.
//! 3. **Probe** — otherwise `DELETE /pools/<probe id>/cordon` (with an all-false
//!    `PoolCordonReq`) is sent for a pool id that does not exist, so nothing can change:
//!    * an answer carrying a `RestJsonError` body (typically 404 `NotFound` for the pool), or
//!      any 2xx, means the route exists → supported;
//!    * 404/405/501 without such a body (the router's "no route") → not supported (< 2.10);
//!    * anything else leaves support undetermined and is returned as an [`Error`].
//!
//! The simulator (`tests/mayastor-sim`) serves no `/api/spec`, so the probe is what runs against
//! it; it answers the cordon route like a real 2.10 and as "no route" for 2.7/2.9 profiles.
//! The result is cached per client (and its clones).

use reqwest::{Method, StatusCode};

use super::{
    Error, MayastorClient,
    model::{PoolCordonReq, RestJsonError},
};

/// Pool id used by the probe; it must never exist.
const PROBE_POOL_ID: &str = "couchestor-capability-probe-nonexistent-pool";

/// Optional features of the Mayastor control plane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capabilities {
    /// `PUT`/`DELETE /pools/{pool_id}/cordon` exist (Mayastor ≥ 2.10).
    pub pool_cordon: bool,
    /// How `pool_cordon` was established.
    pub source: DetectionSource,
}

/// How a capability was established.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DetectionSource {
    /// Set explicitly by configuration.
    Override,
    /// Read from the OpenAPI document served at `GET /v0/api/spec`.
    ServedSpec,
    /// Probed with a side-effect-free request on the cordon route.
    Probe,
}

impl MayastorClient {
    /// The control plane's optional features, detected once per client (see the module docs of
    /// `capabilities.rs`: override, then served spec, then a side-effect-free probe).
    pub async fn capabilities(&self) -> Result<Capabilities, Error> {
        self.capabilities
            .get_or_try_init(|| self.detect_capabilities())
            .await
            .cloned()
    }

    async fn detect_capabilities(&self) -> Result<Capabilities, Error> {
        if let Some(pool_cordon) = self.pool_cordon_override {
            return Ok(Capabilities {
                pool_cordon,
                source: DetectionSource::Override,
            });
        }
        if let Some(pool_cordon) = self.pool_cordon_from_served_spec().await? {
            return Ok(Capabilities {
                pool_cordon,
                source: DetectionSource::ServedSpec,
            });
        }
        Ok(Capabilities {
            pool_cordon: self.probe_pool_cordon().await?,
            source: DetectionSource::Probe,
        })
    }

    /// `Some(declared)` when `GET /api/spec` answers 200, `None` when it is not served.
    async fn pool_cordon_from_served_spec(&self) -> Result<Option<bool>, Error> {
        let (request, endpoint) = self.request(Method::GET, &["api", "spec"])?;
        let (status, body) = self.exchange("get_api_spec", request, &endpoint).await?;
        if !status.is_success() {
            tracing::debug!(%status, "no served OpenAPI spec; probing instead");
            return Ok(None);
        }
        let text = String::from_utf8_lossy(&body);
        Ok(Some(text.contains("/pools/{pool_id}/cordon")))
    }

    async fn probe_pool_cordon(&self) -> Result<bool, Error> {
        let operation = "del_pool_cordon";
        let (request, endpoint) =
            self.request(Method::DELETE, &["pools", PROBE_POOL_ID, "cordon"])?;
        let request = request.json(&PoolCordonReq::default());
        let (status, body) = self.exchange(operation, request, &endpoint).await?;
        let rest = serde_json::from_slice::<RestJsonError>(&body).ok();
        let supported = match (status, &rest) {
            (status, _) if status.is_success() => true,
            (_, Some(_)) => true,
            (
                StatusCode::NOT_FOUND
                | StatusCode::METHOD_NOT_ALLOWED
                | StatusCode::NOT_IMPLEMENTED,
                None,
            ) => false,
            _ => {
                return Err(Error::Api {
                    operation,
                    endpoint,
                    status,
                    rest: rest.map(Box::new),
                    body: super::error::excerpt(&body),
                });
            }
        };
        tracing::info!(supported, %status, "probed Mayastor pool-cordon support");
        Ok(supported)
    }
}
