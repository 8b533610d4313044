//! Error answers in the upstream `RestJsonError` shape and status mapping.
//!
//! Upstream (`rest_error_from` in the control plane) sends `{details, message, kind}` where
//! `details` is the full error text, `message` the internal error name as snafu prints it
//! (`SvcError :: LastReplica`), and `kind` the REST kind, with these statuses: NotFound 404,
//! InvalidArgument/Deserialize 400, AlreadyExists 422, FailedPrecondition (including
//! ReplicaChangeCount, ReplicaIncrease, ReplicaCountAchieved, LastReplica) 412,
//! ResourceExhausted 507, Internal 500, InUse/Conflict 409.

use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::json;

/// An error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// `RestJsonError.kind`.
    pub kind: &'static str,
    /// `RestJsonError.message` (upstream internal error name).
    pub message: String,
    /// `RestJsonError.details`.
    pub details: String,
}

impl ApiError {
    /// An error of REST `kind` with upstream internal error name `svc` (`SvcError :: {svc}`).
    pub fn new(status: StatusCode, kind: &'static str, svc: &str, details: String) -> Self {
        Self {
            status,
            kind,
            message: format!("SvcError :: {svc}"),
            details,
        }
    }

    /// 404 NotFound for a resource kind (`Volume`, `Pool`, `Node`).
    pub fn not_found(resource: &str, id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("{resource}NotFound"),
            format!("{resource} '{id}' not found"),
        )
    }

    /// 412 FailedPrecondition with the upstream internal error name `svc`.
    pub fn precondition(svc: &str, details: String) -> Self {
        Self::new(
            StatusCode::PRECONDITION_FAILED,
            "FailedPrecondition",
            svc,
            details,
        )
    }

    /// 400 InvalidArgument.
    pub fn invalid(details: String) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "InvalidArgument",
            "InvalidArguments",
            details,
        )
    }

    /// 400 Deserialize (malformed request body or path).
    pub fn deserialize(details: String) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            kind: "Deserialize",
            message: "Failed to deserialize the request".to_owned(),
            details,
        }
    }

    /// 422 AlreadyExists.
    pub fn already_exists(resource: &str, id: &str) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "AlreadyExists",
            "AlreadyExists",
            format!("{resource} Resource id {id} already exists"),
        )
    }

    /// 507 ResourceExhausted: not enough pools qualify for `wanted` new replicas.
    pub fn not_enough_pools(have: usize, wanted: usize) -> Self {
        Self::new(
            StatusCode::INSUFFICIENT_STORAGE,
            "ResourceExhausted",
            "NotEnoughResources",
            format!(
                "Operation failed due to insufficient resources: Not enough suitable pools available, {have}/{wanted}"
            ),
        )
    }

    /// An injected server error.
    pub fn injected(status: StatusCode) -> Self {
        Self::new(
            status,
            "Internal",
            "Internal",
            "Internal error: injected by the simulator's fault injection".to_owned(),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"details": self.details, "message": self.message, "kind": self.kind});
        (self.status, Json(body)).into_response()
    }
}
