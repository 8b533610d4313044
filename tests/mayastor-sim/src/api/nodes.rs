//! `/v0/nodes…` handlers.

use axum::{
    Json,
    extract::{Path, Query, State, rejection::QueryRejection},
};
use serde::Deserialize;
use serde_json::Value;

use super::{Overwrite, query, with_world};
use crate::{Shared, error::ApiError, render};

/// `GET /nodes` query.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    node_id: Option<String>,
}

/// `GET /nodes[?node_id=]`.
pub async fn list(
    State(shared): State<Shared>,
    params: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let params = query(params)?;
    with_world(&shared, |world, _| {
        let nodes = world
            .nodes
            .values()
            .filter(|n| params.node_id.as_ref().is_none_or(|id| &n.id == id))
            .map(|n| render::node(world, n))
            .collect();
        Ok(Json(Value::Array(nodes)))
    })
}

/// `GET /nodes/{id}`.
pub async fn get_one(
    State(shared): State<Shared>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    with_world(&shared, |world, _| {
        let node = world
            .nodes
            .get(&id)
            .ok_or_else(|| ApiError::not_found("Node", &id))?;
        Ok(Json(render::node(world, node)))
    })
}

/// `PUT /nodes/{id}/cordon/{label}`: adds a cordon label (idempotent).
pub async fn put_cordon(
    State(shared): State<Shared>,
    Path((id, label)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    with_world(&shared, |world, _| {
        let node = world
            .nodes
            .get_mut(&id)
            .ok_or_else(|| ApiError::not_found("Node", &id))?;
        if !node.cordon_labels.contains(&label) {
            node.cordon_labels.push(label);
        }
        Ok(Json(render::node(world, &world.nodes[&id])))
    })
}

/// `DELETE /nodes/{id}/cordon/{label}`: removes a cordon label; an unknown label is a 412.
pub async fn del_cordon(
    State(shared): State<Shared>,
    Path((id, label)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    with_world(&shared, |world, _| {
        let node = world
            .nodes
            .get_mut(&id)
            .ok_or_else(|| ApiError::not_found("Node", &id))?;
        let before = node.cordon_labels.len();
        node.cordon_labels.retain(|l| l != &label);
        if node.cordon_labels.len() == before {
            return Err(ApiError::precondition(
                "UncordonLabel",
                format!("Node '{id}' is not cordoned with label '{label}'"),
            ));
        }
        Ok(Json(render::node(world, &world.nodes[&id])))
    })
}

/// `PUT /nodes/{id}/label/{key}={value}?overwrite=`.
pub async fn put_label(
    State(shared): State<Shared>,
    Path((id, pair)): Path<(String, String)>,
    params: Result<Query<Overwrite>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let overwrite = query(params)?.overwrite;
    with_world(&shared, |world, _| {
        let node = world
            .nodes
            .get_mut(&id)
            .ok_or_else(|| ApiError::not_found("Node", &id))?;
        super::put_label(&mut node.labels, &pair, overwrite, &format!("Node '{id}'"))?;
        Ok(Json(render::node(world, &world.nodes[&id])))
    })
}

/// `DELETE /nodes/{id}/label/{key}`.
pub async fn del_label(
    State(shared): State<Shared>,
    Path((id, key)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    with_world(&shared, |world, _| {
        let node = world
            .nodes
            .get_mut(&id)
            .ok_or_else(|| ApiError::not_found("Node", &id))?;
        super::del_label(&mut node.labels, &key, &format!("Node '{id}'"))?;
        Ok(Json(render::node(world, &world.nodes[&id])))
    })
}
