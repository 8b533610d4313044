//! `/v0/volumes…` handlers.

use axum::{
    Json,
    extract::{
        Path, Query, State,
        rejection::{JsonRejection, QueryRejection},
    },
    http::StatusCode,
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{body, query, with_world};
use crate::{
    Shared,
    error::ApiError,
    ops::{self, NewVolume},
    render,
    world::{Labels, Topology},
};

/// `GET /volumes` query.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    max_entries: Option<u64>,
    starting_token: Option<u64>,
    volume_id: Option<String>,
}

/// `GET /volumes?max_entries=&starting_token=&volume_id=`: `{entries, next_token}` in UUID
/// order; `max_entries=0` returns everything; `next_token` is absent on the last page.
pub async fn list(
    State(shared): State<Shared>,
    params: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let params = query(params)?;
    let Some(max) = params.max_entries else {
        return Err(ApiError::deserialize(
            "Failed to deserialize query string: missing field `max_entries`".to_owned(),
        ));
    };
    with_world(&shared, |world, now| {
        let all: Vec<&_> = world
            .volumes
            .values()
            .filter(|v| params.volume_id.as_ref().is_none_or(|id| &v.uuid == id))
            .collect();
        let start = usize::try_from(params.starting_token.unwrap_or(0)).unwrap_or(usize::MAX);
        let take = if max == 0 {
            usize::MAX
        } else {
            usize::try_from(max).unwrap_or(usize::MAX)
        };
        let entries: Vec<Value> = all
            .iter()
            .skip(start)
            .take(take)
            .map(|v| render::volume(world, v, now))
            .collect();
        let end = start.saturating_add(entries.len());
        let mut page = json!({"entries": entries});
        if max != 0 && end < all.len() {
            page["next_token"] = json!(end);
        }
        Ok(Json(page))
    })
}

/// `GET /volumes/{volume_id}`.
pub async fn get_one(
    State(shared): State<Shared>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    with_world(&shared, |world, now| {
        let volume = world
            .volumes
            .get(&id)
            .ok_or_else(|| ApiError::not_found("Volume", &id))?;
        Ok(Json(render::volume(world, volume, now)))
    })
}

/// `CreateVolumeBody`.
#[derive(Debug, Deserialize)]
pub struct CreateVolumeBody {
    policy: Policy,
    replicas: u8,
    size: u64,
    thin: bool,
    #[serde(default)]
    topology: Option<Topology>,
    #[serde(default)]
    labels: Option<Labels>,
    #[serde(default)]
    max_snapshots: Option<u32>,
}

/// `VolumePolicy`.
#[derive(Debug, Deserialize)]
struct Policy {
    self_heal: bool,
}

/// `PUT /volumes/{volume_id}` with a `CreateVolumeBody`: places `replicas` replicas.
pub async fn create(
    State(shared): State<Shared>,
    Path(id): Path<String>,
    request: Result<Json<CreateVolumeBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let request = body(request)?;
    with_world(&shared, |world, now| {
        let new = NewVolume {
            uuid: id.clone(),
            size: request.size,
            replicas: request.replicas,
            thin: request.thin,
            self_heal: request.policy.self_heal,
            labels: request.labels.unwrap_or_default(),
            topology: request.topology,
            max_snapshots: request.max_snapshots,
            pools: None,
            publish_on: None,
        };
        ops::create_volume(world, new, now)?;
        Ok(Json(render::volume(world, &world.volumes[&id], now)))
    })
}

/// `DELETE /volumes/{volume_id}`.
pub async fn delete(
    State(shared): State<Shared>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    with_world(&shared, |world, _| ops::delete_volume(world, &id))?;
    Ok(StatusCode::NO_CONTENT)
}

/// `PUT /volumes/{volume_id}/replica_count/{replica_count}`.
pub async fn replica_count(
    State(shared): State<Shared>,
    Path((id, count)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let count: u8 = count
        .parse()
        .map_err(|_| ApiError::deserialize(format!("replica_count {count:?} is not a uint8")))?;
    with_world(&shared, |world, now| {
        ops::set_replica_count(world, &id, count, now)?;
        Ok(Json(render::volume(world, &world.volumes[&id], now)))
    })
}

/// `GET /volumes/{volume_id}/rebuild-history`.
pub async fn rebuild_history(
    State(shared): State<Shared>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    with_world(&shared, |world, _| {
        let volume = world
            .volumes
            .get(&id)
            .ok_or_else(|| ApiError::not_found("Volume", &id))?;
        Ok(Json(render::rebuild_history(volume)))
    })
}

/// The part of `PublishVolumeBody` the simulator uses.
#[derive(Debug, Deserialize)]
pub struct PublishBody {
    #[serde(default)]
    node: Option<String>,
    #[serde(default)]
    protocol: Option<String>,
}

/// `PUT /volumes/{volume_id}/target`: publish over nvmf.
pub async fn publish(
    State(shared): State<Shared>,
    Path(id): Path<String>,
    request: Result<Json<PublishBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let request = body(request)?;
    if request.protocol.as_deref().is_some_and(|p| p != "nvmf") {
        return Err(ApiError::invalid(
            "only the nvmf protocol is supported".to_owned(),
        ));
    }
    with_world(&shared, |world, now| {
        ops::publish(world, &id, request.node, now)?;
        Ok(Json(render::volume(world, &world.volumes[&id], now)))
    })
}

/// `DELETE /volumes/{volume_id}/target`.
pub async fn unpublish(
    State(shared): State<Shared>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    with_world(&shared, |world, now| {
        ops::unpublish(world, &id, now)?;
        Ok(Json(render::volume(world, &world.volumes[&id], now)))
    })
}
