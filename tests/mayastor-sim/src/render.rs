//! World → v0 JSON (`Volume`, `Pool`, `Node`, `RebuildHistory`), shaped after the upstream
//! OpenAPI component schemas (the conformance test validates them).

use serde_json::{Map, Value, json};

use crate::{
    ids::rfc3339,
    view::{child_uri, device_uri, replica_view, volume_status},
    world::{SimNode, SimPool, SimVolume, World},
};

const BLOCK_SIZE: u64 = 512;

/// `Volume{spec, state}` at `now`.
pub fn volume(world: &World, volume: &SimVolume, now: u64) -> Value {
    json!({"spec": volume_spec(volume), "state": volume_state(world, volume, now)})
}

fn volume_spec(volume: &SimVolume) -> Value {
    let mut spec = json!({
        "uuid": volume.uuid,
        "size": volume.size,
        "num_replicas": volume.num_replicas,
        "status": "Created",
        "policy": {"self_heal": volume.self_heal},
        "thin": volume.thin,
        "num_snapshots": 0,
    });
    let map = object(&mut spec);
    if !volume.labels.is_empty() {
        map.insert("labels".into(), json!(volume.labels));
    }
    if let Some(target) = &volume.target {
        map.insert(
            "target".into(),
            json!({"node": target.node, "protocol": "nvmf"}),
        );
    }
    if let Some(topology) = &volume.topology {
        map.insert("topology".into(), json!(topology));
    }
    if let Some(max) = volume.max_snapshots {
        map.insert("max_snapshots".into(), json!(max));
    }
    spec
}

fn volume_state(world: &World, volume: &SimVolume, now: u64) -> Value {
    let (status, nexus_state) = volume_status(world, volume, now);
    let published = volume.target.is_some();
    let mut topology = Map::new();
    for replica in volume.replicas.values() {
        let view = replica_view(world, volume, replica, now);
        let mut entry = json!({
            "node": replica.node,
            "pool": replica.pool,
            "state": view.state,
            "usage": {"capacity": volume.size, "allocated": volume.size,
                      "allocated_snapshots": 0, "allocated_all_snapshots": 0},
        });
        if published {
            object(&mut entry).insert("child-status".into(), json!(view.child));
            if let Some(progress) = view.progress {
                object(&mut entry).insert("rebuild-progress".into(), json!(progress));
            }
        }
        topology.insert(replica.uuid.clone(), entry);
    }
    let replicas = volume.replicas.len() as u64;
    let mut state = json!({
        "uuid": volume.uuid,
        "size": volume.size,
        "status": status,
        "replica_topology": topology,
        "usage": {
            "capacity": volume.size, "allocated": volume.size, "allocated_replica": volume.size,
            "allocated_snapshots": 0, "allocated_all_snapshots": 0,
            "total_allocated": volume.size * replicas, "total_allocated_replicas": volume.size * replicas,
            "total_allocated_snapshots": 0,
        },
    });
    if let (Some(target), Some(nexus_state)) = (&volume.target, nexus_state) {
        let children: Vec<Value> = volume
            .replicas
            .values()
            .map(|replica| {
                let view = replica_view(world, volume, replica, now);
                let mut child =
                    json!({"uri": child_uri(world, &target.node, replica), "state": view.child});
                if let Some(progress) = view.progress {
                    object(&mut child).insert("rebuildProgress".into(), json!(progress));
                }
                child
            })
            .collect();
        let rebuilds = children
            .iter()
            .filter(|c| c.get("rebuildProgress").is_some())
            .count();
        object(&mut state).insert(
            "target".into(),
            json!({
                "uuid": target.nexus_uuid,
                "node": target.node,
                "state": nexus_state,
                "children": children,
                "deviceUri": device_uri(world, &target.node, &volume.uuid),
                "rebuilds": rebuilds,
                "protocol": "nvmf",
                "size": volume.size,
            }),
        );
    }
    state
}

/// `Pool{id, spec, state}`; the state is absent while the pool's node is offline.
pub fn pool(world: &World, pool: &SimPool) -> Value {
    let mut spec = json!({
        "id": pool.id,
        "node": pool.node,
        "disks": [pool.disk],
        "status": "Created",
        "labels": pool.labels,
    });
    if world.profile.has_pool_cordon() && pool.cordon.any() {
        object(&mut spec).insert(
            "cordondrainstate".into(),
            json!({"cordonedstate": pool.cordon}),
        );
    }
    let mut value = json!({"id": pool.id, "spec": spec});
    if world.node_online(&pool.node) {
        let used = world.pool_used(&pool.id);
        object(&mut value).insert(
            "state".into(),
            json!({
                "id": pool.id,
                "node": pool.node,
                "disks": [format!("aio://{}?uuid={}", pool.disk, pool.uuid)],
                "status": pool.status.as_str(),
                "capacity": pool.capacity,
                "used": used,
                "committed": used,
            }),
        );
    }
    value
}

/// `Node{id, spec, state}`.
pub fn node(world: &World, node: &SimNode) -> Value {
    let endpoint = format!("{}:10124", node.ip);
    let version = world.profile.engine_version();
    let nqn = format!("nqn.2019-05.io.openebs:node-name:{}", node.id);
    let mut spec =
        json!({"id": node.id, "grpcEndpoint": endpoint, "node_nqn": nqn, "version": version});
    if !node.labels.is_empty() {
        object(&mut spec).insert("labels".into(), json!(node.labels));
    }
    if !node.cordon_labels.is_empty() {
        object(&mut spec).insert(
            "cordondrainstate".into(),
            json!({"cordonedstate": {"cordonlabels": node.cordon_labels}}),
        );
    }
    let status = match node.status {
        crate::world::NodeStatus::Online => "Online",
        crate::world::NodeStatus::Offline => "Offline",
    };
    json!({
        "id": node.id,
        "spec": spec,
        "state": {"id": node.id, "grpcEndpoint": endpoint, "status": status, "node_nqn": nqn, "version": version},
    })
}

/// `RebuildHistory` of a volume: finished jobs, oldest first. The target UUID is the current
/// (or last) nexus; a never-published volume reports its own UUID with no records.
pub fn rebuild_history(volume: &SimVolume) -> Value {
    let target = volume
        .target
        .as_ref()
        .map(|t| t.nexus_uuid.clone())
        .or_else(|| volume.last_nexus_uuid.clone())
        .unwrap_or_else(|| volume.uuid.clone());
    let records: Vec<Value> = volume
        .rebuild_history
        .iter()
        .map(|event| {
            let total = event.total_bytes / BLOCK_SIZE;
            let recovered = event.recovered_bytes / BLOCK_SIZE;
            json!({
                "childUri": event.child_uri,
                "srcUri": event.src_uri,
                "rebuildJobState": event.state,
                "blocksTotal": total,
                "blocksRecovered": recovered,
                "blocksTransferred": recovered,
                "blocksRemaining": total - recovered,
                "blockSize": BLOCK_SIZE,
                "isPartial": false,
                "startTime": rfc3339(event.start_ms),
                "endTime": rfc3339(event.end_ms),
            })
        })
        .collect();
    json!({"targetUuid": target, "records": records})
}

/// The object inside a `json!({...})` value.
fn object(value: &mut Value) -> &mut Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => {
            *other = Value::Object(Map::new());
            object(other)
        }
    }
}
