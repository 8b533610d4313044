//! Real ServiceAccount identities for least-privilege tests.

use anyhow::{Context, Result};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Api, PostParams};

/// A bearer token for the ServiceAccount `namespace/name`, from the TokenRequest API (valid
/// one hour, default audience). `admin` must be allowed to create `serviceaccounts/token`.
pub async fn token(admin: &kube::Client, namespace: &str, name: &str) -> Result<String> {
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            expiration_seconds: Some(3600),
            ..Default::default()
        }),
        ..Default::default()
    };
    let answer = Api::<ServiceAccount>::namespaced(admin.clone(), namespace)
        .create_token_request(name, &PostParams::default(), &request)
        .await
        .with_context(|| format!("TokenRequest for {namespace}/{name}"))?;
    answer
        .status
        .and_then(|s| s.token)
        .with_context(|| format!("TokenRequest for {namespace}/{name} returned no token"))
}
