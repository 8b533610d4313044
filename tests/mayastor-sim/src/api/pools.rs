//! `/v0/pools…` handlers.

use axum::{
    Json,
    extract::{
        Path, Query, State,
        rejection::{JsonRejection, QueryRejection},
    },
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use serde_json::Value;

use super::{Overwrite, body, query, with_world};
use crate::{Shared, error::ApiError, render, world::PoolCordon};

/// `GET /pools` query.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    volume_id: Option<String>,
}

/// `GET /pools[?volume_id=]`: all pools, or those holding a replica of the volume.
pub async fn list(
    State(shared): State<Shared>,
    params: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let params = query(params)?;
    with_world(&shared, |world, _| {
        let holding: Option<Vec<String>> = match &params.volume_id {
            Some(id) => {
                let volume = world
                    .volumes
                    .get(id)
                    .ok_or_else(|| ApiError::not_found("Volume", id))?;
                Some(volume.replicas.values().map(|r| r.pool.clone()).collect())
            }
            None => None,
        };
        let pools = world
            .pools
            .values()
            .filter(|p| holding.as_ref().is_none_or(|h| h.contains(&p.id)))
            .map(|p| render::pool(world, p))
            .collect();
        Ok(Json(Value::Array(pools)))
    })
}

/// `GET /pools/{pool_id}`.
pub async fn get_one(
    State(shared): State<Shared>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    with_world(&shared, |world, _| {
        let pool = world
            .pools
            .get(&id)
            .ok_or_else(|| ApiError::not_found("Pool", &id))?;
        Ok(Json(render::pool(world, pool)))
    })
}

/// `PUT /pools/{pool_id}/label/{key}={value}?overwrite=`.
pub async fn put_label(
    State(shared): State<Shared>,
    Path((id, pair)): Path<(String, String)>,
    params: Result<Query<Overwrite>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let overwrite = query(params)?.overwrite;
    with_world(&shared, |world, _| {
        let pool = world
            .pools
            .get_mut(&id)
            .ok_or_else(|| ApiError::not_found("Pool", &id))?;
        super::put_label(&mut pool.labels, &pair, overwrite, &format!("Pool '{id}'"))?;
        Ok(Json(render::pool(world, &world.pools[&id])))
    })
}

/// `DELETE /pools/{id}/label/{key}`.
pub async fn del_label(
    State(shared): State<Shared>,
    Path((id, key)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    with_world(&shared, |world, _| {
        let pool = world
            .pools
            .get_mut(&id)
            .ok_or_else(|| ApiError::not_found("Pool", &id))?;
        super::del_label(&mut pool.labels, &key, &format!("Pool '{id}'"))?;
        Ok(Json(render::pool(world, &world.pools[&id])))
    })
}

/// `PUT /pools/{pool_id}/cordon` (2.10 profile): sets the flags of the `PoolCordonReq` body.
pub async fn put_cordon(
    State(shared): State<Shared>,
    Path(id): Path<String>,
    request: Result<Json<PoolCordon>, JsonRejection>,
) -> Response {
    cordon(&shared, &id, request, true)
}

/// `DELETE /pools/{pool_id}/cordon` (2.10 profile): clears the flags of the body; the pool is
/// uncordoned once no flag is left.
pub async fn del_cordon(
    State(shared): State<Shared>,
    Path(id): Path<String>,
    request: Result<Json<PoolCordon>, JsonRejection>,
) -> Response {
    cordon(&shared, &id, request, false)
}

fn cordon(
    shared: &Shared,
    id: &str,
    request: Result<Json<PoolCordon>, JsonRejection>,
    set: bool,
) -> Response {
    if !shared.lock().world.profile.has_pool_cordon() {
        // Before 2.10 the route does not exist: the router's bare 404.
        return StatusCode::NOT_FOUND.into_response();
    }
    let result = body(request).and_then(|flags| {
        with_world(shared, |world, _| {
            let pool = world
                .pools
                .get_mut(id)
                .ok_or_else(|| ApiError::not_found("Pool", id))?;
            let c = &mut pool.cordon;
            if set {
                c.replicas |= flags.replicas;
                c.snapshots |= flags.snapshots;
                c.restores |= flags.restores;
                c.import |= flags.import;
            } else {
                c.replicas &= !flags.replicas;
                c.snapshots &= !flags.snapshots;
                c.restores &= !flags.restores;
                c.import &= !flags.import;
            }
            Ok(Json(render::pool(world, &world.pools[id])))
        })
    });
    result.into_response()
}
