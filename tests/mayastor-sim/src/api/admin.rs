//! `/sim/…`: the simulator's own admin API (not part of Mayastor, not fault-injected).
//!
//! | Method & path | Body | Effect |
//! |---|---|---|
//! | `GET /sim/profile` | | `{"profile": "2.10"}` |
//! | `PUT /sim/profile` | `{"profile": "2.9"}` | switch the emulated release |
//! | `GET /sim/state` | | dump the whole world (loadable with `--state`) |
//! | `PUT /sim/state` | a dump | replace the whole world |
//! | `PUT /sim/rebuild-rate` | `{"mib_per_sec": 64}` | rebuild speed |
//! | `GET /sim/clock` | | `{"mode": "wall"}` or `{"mode": "virtual", "now_ms": N}` |
//! | `PUT /sim/clock` | `{"now_ms": N}` | virtual clock at N ms since the epoch (never backwards: 400) |
//! | `DELETE /sim/clock` | | back to the wall clock |
//! | `PUT /sim/ids` | `{"seed": 7}` | new UUIDs from a ChaCha stream seeded with 7 |
//! | `POST /sim/nodes` | `{"id", "labels"?, "ip"?}` | add a node (answers the v0 `Node`) |
//! | `PUT /sim/nodes/{id}/status` | `{"status": "Online"\|"Offline"}` | take a node down/up |
//! | `POST /sim/pools` | `{"id", "node", "capacity", "used"?, "labels"?, "disk"?}` | add a pool |
//! | `PUT /sim/pools/{id}/status` | `{"status": "Online"\|"Degraded"\|"Faulted"\|"Unknown"}` | pool health |
//! | `POST /sim/volumes` | `{"uuid"?, "size", "replicas"?, "pools"?, "publish_on"?, "inclusion"?, "topology"?, "labels"?, "thin"?}` | add a volume (in sync) |
//! | `POST /sim/faults/fail-next-rebuild` | `{"at_percent": 50}` | the next rebuild fails at that progress |
//! | `PUT /sim/faults/ignore-cordons` | `{"enabled": true}` | placement ignores node and pool cordons |
//! | `POST /sim/faults/errors` | `{"path_prefix", "count", "method"?, "status"?}` | next `count` matching `/v0` calls fail (default 500) |
//! | `POST /sim/faults/latency` | `{"millis", "path_prefix"?}` | add latency to matching `/v0` calls |
//! | `DELETE /sim/faults` | | clear every injected fault (including the two above) |

use axum::{
    Json, Router,
    extract::{Path, State, rejection::JsonRejection},
    http::StatusCode,
    routing::{delete, get, post, put},
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{body, with_world};
use crate::{
    Shared,
    clock::Clock,
    error::ApiError,
    faults::{ErrorRule, LatencyRule},
    ids::IdSource,
    ops::{self, NewVolume},
    profile::Profile,
    render,
    world::{
        LabelledTopology, Labels, NodeStatus, PoolStatus, PoolTopology, SimNode, SimPool, Topology,
        World,
    },
};

type Body<T> = Result<Json<T>, JsonRejection>;

/// The admin routes.
pub fn router() -> Router<Shared> {
    Router::new()
        .route("/sim/profile", get(get_profile).put(put_profile))
        .route("/sim/state", get(get_state).put(put_state))
        .route("/sim/rebuild-rate", put(put_rate))
        .route(
            "/sim/clock",
            get(get_clock).put(put_clock).delete(wall_clock),
        )
        .route("/sim/ids", put(put_ids))
        .route("/sim/nodes", post(add_node))
        .route("/sim/nodes/{id}/status", put(node_status))
        .route("/sim/pools", post(add_pool))
        .route("/sim/pools/{id}/status", put(pool_status))
        .route("/sim/volumes", post(add_volume))
        .route("/sim/faults/fail-next-rebuild", post(fail_next_rebuild))
        .route("/sim/faults/ignore-cordons", put(ignore_cordons))
        .route("/sim/faults/errors", post(add_error))
        .route("/sim/faults/latency", post(add_latency))
        .route("/sim/faults", delete(clear_faults))
}

#[derive(Debug, Deserialize)]
struct ProfileBody {
    profile: Profile,
}

async fn get_profile(State(shared): State<Shared>) -> Json<Value> {
    Json(json!({"profile": shared.lock().world.profile}))
}

async fn put_profile(
    State(shared): State<Shared>,
    request: Body<ProfileBody>,
) -> Result<Json<Value>, ApiError> {
    let profile = body(request)?.profile;
    shared.lock().world.profile = profile;
    Ok(Json(json!({"profile": profile})))
}

async fn get_state(State(shared): State<Shared>) -> Result<Json<World>, ApiError> {
    with_world(&shared, |world, _| Ok(Json(world.clone())))
}

async fn put_state(
    State(shared): State<Shared>,
    request: Body<World>,
) -> Result<StatusCode, ApiError> {
    let world = body(request)?;
    shared.lock().world = world;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
struct RateBody {
    mib_per_sec: f64,
}

async fn put_rate(
    State(shared): State<Shared>,
    request: Body<RateBody>,
) -> Result<StatusCode, ApiError> {
    let rate = body(request)?.mib_per_sec;
    if !(rate.is_finite() && rate > 0.0) {
        return Err(ApiError::invalid(format!(
            "rebuild rate {rate} must be > 0"
        )));
    }
    // Running rebuilds keep their start time, so their progress is re-scaled to the new rate.
    with_world(&shared, |world, _| {
        world.rebuild_mib_per_sec = rate;
        Ok(StatusCode::NO_CONTENT)
    })
}

async fn get_clock(State(shared): State<Shared>) -> Json<Clock> {
    Json(shared.lock().clock)
}

#[derive(Debug, Deserialize)]
struct ClockBody {
    now_ms: u64,
}

async fn put_clock(
    State(shared): State<Shared>,
    request: Body<ClockBody>,
) -> Result<Json<Clock>, ApiError> {
    let now = body(request)?.now_ms;
    let mut inner = shared.lock();
    inner
        .clock
        .set_virtual(now)
        .map_err(|e| ApiError::invalid(e.to_string()))?;
    // Rebuilds finish (and are recorded) at the new time, not at the next request.
    crate::view::advance(&mut inner.world, now);
    Ok(Json(inner.clock))
}

async fn wall_clock(State(shared): State<Shared>) -> Json<Clock> {
    let mut inner = shared.lock();
    inner.clock = Clock::Wall;
    Json(inner.clock)
}

#[derive(Debug, Deserialize)]
struct IdsBody {
    seed: u64,
}

async fn put_ids(
    State(shared): State<Shared>,
    request: Body<IdsBody>,
) -> Result<StatusCode, ApiError> {
    let seed = body(request)?.seed;
    shared.lock().world.ids = IdSource::seeded(seed);
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
struct NewNode {
    id: String,
    #[serde(default)]
    labels: Labels,
    #[serde(default)]
    ip: Option<String>,
}

async fn add_node(
    State(shared): State<Shared>,
    request: Body<NewNode>,
) -> Result<Json<Value>, ApiError> {
    let new = body(request)?;
    with_world(&shared, |world, _| {
        if world.nodes.contains_key(&new.id) {
            return Err(ApiError::already_exists("Node", &new.id));
        }
        let ip = new
            .ip
            .unwrap_or_else(|| format!("127.0.1.{}", world.nodes.len() % 250 + 1));
        let node = SimNode {
            id: new.id.clone(),
            ip,
            status: NodeStatus::Online,
            labels: new.labels,
            cordon_labels: Vec::new(),
        };
        world.nodes.insert(new.id.clone(), node);
        Ok(Json(render::node(world, &world.nodes[&new.id])))
    })
}

#[derive(Debug, Deserialize)]
struct NodeStatusBody {
    status: NodeStatus,
}

async fn node_status(
    State(shared): State<Shared>,
    Path(id): Path<String>,
    request: Body<NodeStatusBody>,
) -> Result<Json<Value>, ApiError> {
    let status = body(request)?.status;
    with_world(&shared, |world, now| {
        world
            .nodes
            .get_mut(&id)
            .ok_or_else(|| ApiError::not_found("Node", &id))?
            .status = status;
        // Rebuilds touching the node fail now, not at the next request.
        crate::view::advance(world, now);
        Ok(Json(render::node(world, &world.nodes[&id])))
    })
}

#[derive(Debug, Deserialize)]
struct NewPool {
    id: String,
    node: String,
    capacity: u64,
    #[serde(default)]
    used: u64,
    #[serde(default)]
    labels: Labels,
    #[serde(default)]
    disk: Option<String>,
}

async fn add_pool(
    State(shared): State<Shared>,
    request: Body<NewPool>,
) -> Result<Json<Value>, ApiError> {
    let new = body(request)?;
    with_world(&shared, |world, _| {
        if world.pools.contains_key(&new.id) {
            return Err(ApiError::already_exists("Pool", &new.id));
        }
        if !world.nodes.contains_key(&new.node) {
            return Err(ApiError::not_found("Node", &new.node));
        }
        let pool = SimPool {
            id: new.id.clone(),
            node: new.node,
            disk: new
                .disk
                .unwrap_or_else(|| format!("/dev/disk/by-id/sim-{}", new.id)),
            uuid: world.new_uuid(),
            capacity: new.capacity,
            base_used: new.used,
            status: PoolStatus::Online,
            labels: new.labels,
            cordon: Default::default(),
        };
        world.pools.insert(new.id.clone(), pool);
        Ok(Json(render::pool(world, &world.pools[&new.id])))
    })
}

#[derive(Debug, Deserialize)]
struct PoolStatusBody {
    status: PoolStatus,
}

async fn pool_status(
    State(shared): State<Shared>,
    Path(id): Path<String>,
    request: Body<PoolStatusBody>,
) -> Result<Json<Value>, ApiError> {
    let status = body(request)?.status;
    with_world(&shared, |world, now| {
        world
            .pools
            .get_mut(&id)
            .ok_or_else(|| ApiError::not_found("Pool", &id))?
            .status = status;
        crate::view::advance(world, now);
        Ok(Json(render::pool(world, &world.pools[&id])))
    })
}

#[derive(Debug, Deserialize)]
struct AdminVolume {
    #[serde(default)]
    uuid: Option<String>,
    size: u64,
    #[serde(default)]
    replicas: Option<u8>,
    #[serde(default)]
    pools: Option<Vec<String>>,
    #[serde(default)]
    publish_on: Option<String>,
    /// Shortcut for `topology.pool_topology.labelled.inclusion`.
    #[serde(default)]
    inclusion: Option<Labels>,
    #[serde(default)]
    topology: Option<Topology>,
    #[serde(default)]
    labels: Labels,
    #[serde(default)]
    thin: bool,
}

async fn add_volume(
    State(shared): State<Shared>,
    request: Body<AdminVolume>,
) -> Result<Json<Value>, ApiError> {
    let spec = body(request)?;
    let given_uuid = spec.uuid;
    let pool_count = spec
        .pools
        .as_ref()
        .map(|p| u8::try_from(p.len()).unwrap_or(u8::MAX));
    let topology = match (spec.topology, spec.inclusion) {
        (Some(topology), _) => Some(topology),
        (None, Some(inclusion)) => Some(Topology {
            node_topology: None,
            pool_topology: Some(PoolTopology::Labelled(LabelledTopology {
                inclusion,
                ..Default::default()
            })),
        }),
        (None, None) => None,
    };
    let mut new = NewVolume {
        uuid: String::new(), // set under the lock, from the world's id source if not given
        size: spec.size,
        replicas: spec.replicas.or(pool_count).unwrap_or(1),
        thin: spec.thin,
        self_heal: true,
        labels: spec.labels,
        topology,
        max_snapshots: None,
        pools: spec.pools,
        publish_on: spec.publish_on,
    };
    with_world(&shared, |world, now| {
        new.uuid = given_uuid.unwrap_or_else(|| world.new_uuid());
        let uuid = new.uuid.clone();
        ops::create_volume(world, new, now)?;
        Ok(Json(render::volume(world, &world.volumes[&uuid], now)))
    })
}

#[derive(Debug, Deserialize)]
struct FailRebuild {
    #[serde(default = "half")]
    at_percent: u8,
}

fn half() -> u8 {
    50
}

async fn fail_next_rebuild(
    State(shared): State<Shared>,
    request: Body<FailRebuild>,
) -> Result<StatusCode, ApiError> {
    let at = body(request)?.at_percent.min(99);
    shared.lock().world.fail_next_rebuild_at = Some(at);
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
struct Toggle {
    enabled: bool,
}

async fn ignore_cordons(
    State(shared): State<Shared>,
    request: Body<Toggle>,
) -> Result<StatusCode, ApiError> {
    shared.lock().world.ignore_cordons = body(request)?.enabled;
    Ok(StatusCode::NO_CONTENT)
}

async fn add_error(
    State(shared): State<Shared>,
    request: Body<ErrorRule>,
) -> Result<StatusCode, ApiError> {
    let rule = body(request)?;
    if StatusCode::from_u16(rule.status).is_err() {
        return Err(ApiError::invalid(format!(
            "invalid HTTP status {}",
            rule.status
        )));
    }
    shared.lock().faults.errors.push(rule);
    Ok(StatusCode::NO_CONTENT)
}

async fn add_latency(
    State(shared): State<Shared>,
    request: Body<LatencyRule>,
) -> Result<StatusCode, ApiError> {
    let rule = body(request)?;
    shared.lock().faults.latency.push(rule);
    Ok(StatusCode::NO_CONTENT)
}

async fn clear_faults(State(shared): State<Shared>) -> StatusCode {
    let mut inner = shared.lock();
    inner.faults = Default::default();
    inner.world.fail_next_rebuild_at = None;
    inner.world.ignore_cordons = false;
    StatusCode::NO_CONTENT
}
