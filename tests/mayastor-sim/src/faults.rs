//! HTTP-level fault injection on the `/v0` API: injected error answers and added latency.
//! (Domain faults — failing the next rebuild, nodes/pools going down — live in the world.)

use std::time::Duration;

use axum::{
    extract::{Request, State},
    http::StatusCode,
    middleware::Next,
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};

use crate::{Shared, error::ApiError};

/// Make the next `count` requests matching `method`/`path_prefix` fail with `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorRule {
    /// HTTP method to match (any if absent), e.g. `PUT`.
    #[serde(default)]
    pub method: Option<String>,
    /// Path prefix to match, e.g. `/v0/volumes/`.
    pub path_prefix: String,
    /// How many matching requests fail.
    pub count: u32,
    /// Status to answer (default 500).
    #[serde(default = "default_status")]
    pub status: u16,
}

fn default_status() -> u16 {
    500
}

/// Delay every matching request by `millis`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatencyRule {
    /// Path prefix to match (every `/v0` request if absent).
    #[serde(default)]
    pub path_prefix: Option<String>,
    /// Added delay in milliseconds.
    pub millis: u64,
}

/// Active HTTP faults.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Faults {
    /// Pending error rules (consumed as they fire).
    pub errors: Vec<ErrorRule>,
    /// Latency rules (all matching delays add up).
    pub latency: Vec<LatencyRule>,
}

impl Faults {
    /// The delay and, if an error rule fires, the status to answer for a request.
    fn check(&mut self, method: &str, path: &str) -> (Duration, Option<u16>) {
        let delay = self
            .latency
            .iter()
            .filter(|rule| {
                rule.path_prefix
                    .as_deref()
                    .is_none_or(|p| path.starts_with(p))
            })
            .map(|rule| rule.millis)
            .sum();
        let fired = self.errors.iter_mut().find(|rule| {
            rule.count > 0
                && path.starts_with(&rule.path_prefix)
                && rule
                    .method
                    .as_deref()
                    .is_none_or(|m| m.eq_ignore_ascii_case(method))
        });
        let status = fired.map(|rule| {
            rule.count -= 1;
            rule.status
        });
        self.errors.retain(|rule| rule.count > 0);
        (Duration::from_millis(delay), status)
    }
}

/// Middleware applying [`Faults`] to every request it wraps.
pub async fn inject(State(shared): State<Shared>, request: Request, next: Next) -> Response {
    let (delay, status) = {
        let mut inner = shared.lock();
        inner
            .faults
            .check(request.method().as_str(), request.uri().path())
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    match status {
        Some(code) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            ApiError::injected(status).into_response()
        }
        None => next.run(request).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_rules_fire_count_times_and_match_method_and_prefix() {
        let mut faults = Faults {
            errors: vec![ErrorRule {
                method: Some("PUT".into()),
                path_prefix: "/v0/volumes/".into(),
                count: 2,
                status: 503,
            }],
            latency: vec![LatencyRule {
                path_prefix: None,
                millis: 5,
            }],
        };
        assert_eq!(faults.check("GET", "/v0/volumes/x").1, None);
        assert_eq!(faults.check("PUT", "/v0/pools/x").1, None);
        assert_eq!(
            faults.check("put", "/v0/volumes/x/replica_count/2"),
            (Duration::from_millis(5), Some(503))
        );
        assert_eq!(faults.check("PUT", "/v0/volumes/x").1, Some(503));
        assert_eq!(faults.check("PUT", "/v0/volumes/x").1, None);
        assert!(faults.errors.is_empty());
    }
}
