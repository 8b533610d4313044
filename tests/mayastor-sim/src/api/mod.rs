//! HTTP routing: the `/v0` REST subset (with fault injection) and the `/sim` admin API.

mod admin;
mod nodes;
mod pools;
mod volumes;

use axum::{
    Json, Router,
    extract::rejection::{JsonRejection, QueryRejection},
    http::StatusCode,
    middleware,
    routing::{get, put},
};

use crate::{
    Shared,
    error::ApiError,
    faults,
    view::advance,
    world::{Labels, World},
};

/// The full router: `/v0/...` (fault-injected), `/sim/...`, and a 404 with an empty body for
/// anything else (what actix answers for an unknown route).
pub fn router(shared: Shared) -> Router {
    let v0 = Router::new()
        .route("/v0/volumes", get(volumes::list))
        .route(
            "/v0/volumes/{volume_id}",
            get(volumes::get_one)
                .put(volumes::create)
                .delete(volumes::delete),
        )
        .route(
            "/v0/volumes/{volume_id}/replica_count/{replica_count}",
            put(volumes::replica_count),
        )
        .route(
            "/v0/volumes/{volume_id}/rebuild-history",
            get(volumes::rebuild_history),
        )
        .route(
            "/v0/volumes/{volume_id}/target",
            put(volumes::publish).delete(volumes::unpublish),
        )
        .route("/v0/pools", get(pools::list))
        .route("/v0/pools/{pool_id}", get(pools::get_one))
        .route(
            "/v0/pools/{pool_id}/label/{label}",
            put(pools::put_label).delete(pools::del_label),
        )
        .route(
            "/v0/pools/{pool_id}/cordon",
            put(pools::put_cordon).delete(pools::del_cordon),
        )
        .route("/v0/nodes", get(nodes::list))
        .route("/v0/nodes/{id}", get(nodes::get_one))
        .route(
            "/v0/nodes/{id}/cordon/{label}",
            put(nodes::put_cordon).delete(nodes::del_cordon),
        )
        .route(
            "/v0/nodes/{id}/label/{label}",
            put(nodes::put_label).delete(nodes::del_label),
        )
        .layer(middleware::from_fn_with_state(
            shared.clone(),
            faults::inject,
        ));
    v0.merge(admin::router())
        .fallback(|| async { StatusCode::NOT_FOUND })
        .with_state(shared)
}

/// Locks the world, advances rebuilds to the clock's now, and runs `f` on it.
fn with_world<T>(
    shared: &Shared,
    f: impl FnOnce(&mut World, u64) -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    let mut inner = shared.lock();
    let now = inner.clock.now_ms();
    advance(&mut inner.world, now);
    f(&mut inner.world, now)
}

/// A JSON request body, or a `Deserialize` error answer.
fn body<T>(extracted: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    extracted
        .map(|Json(value)| value)
        .map_err(|rejection| ApiError::deserialize(rejection.body_text()))
}

/// Query parameters, or a `Deserialize` error answer.
fn query<T>(extracted: Result<axum::extract::Query<T>, QueryRejection>) -> Result<T, ApiError> {
    extracted
        .map(|axum::extract::Query(value)| value)
        .map_err(|rejection| ApiError::deserialize(rejection.body_text()))
}

/// `PUT …/label/{key}={value}?overwrite=`: adds a label; an existing key with another value
/// needs `overwrite=true` (otherwise 412).
fn put_label(
    labels: &mut Labels,
    pair: &str,
    overwrite: bool,
    owner: &str,
) -> Result<(), ApiError> {
    let Some((key, value)) = pair.split_once('=') else {
        return Err(ApiError::invalid(format!(
            "label {pair:?} is not of the form key=value"
        )));
    };
    if key.is_empty() {
        return Err(ApiError::invalid("label key is empty".to_owned()));
    }
    match labels.get(key) {
        Some(existing) if existing != value && !overwrite => Err(ApiError::precondition(
            "LabelExists",
            format!(
                "{owner} already has label '{key}={existing}'; set overwrite=true to replace it"
            ),
        )),
        _ => {
            labels.insert(key.to_owned(), value.to_owned());
            Ok(())
        }
    }
}

/// `DELETE …/label/{key}`: removing a key that is not there is a 412.
fn del_label(labels: &mut Labels, key: &str, owner: &str) -> Result<(), ApiError> {
    labels.remove(key).map(|_| ()).ok_or_else(|| {
        ApiError::precondition("LabelNotFound", format!("{owner} has no label '{key}'"))
    })
}

/// `?overwrite=` of the label routes.
#[derive(Debug, serde::Deserialize)]
struct Overwrite {
    #[serde(default)]
    overwrite: bool,
}
