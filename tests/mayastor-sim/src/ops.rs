//! State-changing volume operations: create, replica count ±1, publish, unpublish, delete.

use std::collections::BTreeSet;

use axum::http::StatusCode;

use crate::{
    error::ApiError,
    ids::is_uuid,
    placement::{candidates, place_new_volume},
    removal::removal_order,
    view::{advance, progress_after, start_rebuild, volume_status},
    world::{
        Labels, RebuildEvent, ReplicaCondition, SimReplica, SimTarget, SimVolume, Topology, World,
    },
};

/// A volume to create (from `CreateVolumeBody` or the admin API).
#[derive(Debug, Clone, Default)]
pub struct NewVolume {
    /// Volume UUID.
    pub uuid: String,
    /// Size in bytes.
    pub size: u64,
    /// Replica count.
    pub replicas: u8,
    /// Thin flag.
    pub thin: bool,
    /// Self-heal flag.
    pub self_heal: bool,
    /// Labels.
    pub labels: Labels,
    /// Topology.
    pub topology: Option<Topology>,
    /// Max snapshots.
    pub max_snapshots: Option<u32>,
    /// Admin only: explicit pools (one per replica, distinct nodes) instead of placement.
    pub pools: Option<Vec<String>>,
    /// Admin only: publish on this node right away.
    pub publish_on: Option<String>,
}

/// Creates a volume whose replicas start in sync.
pub fn create_volume(world: &mut World, new: NewVolume, now: u64) -> Result<(), ApiError> {
    if !is_uuid(&new.uuid) {
        return Err(ApiError::invalid(format!(
            "The uuid '{}' for kind 'Volume' is not valid.",
            new.uuid
        )));
    }
    if world.volumes.contains_key(&new.uuid) {
        return Err(ApiError::already_exists("Volume", &new.uuid));
    }
    if new.replicas == 0 {
        return Err(ApiError::invalid(
            "a volume needs at least one replica".to_owned(),
        ));
    }
    let mut volume = SimVolume {
        uuid: new.uuid.clone(),
        size: new.size,
        num_replicas: new.replicas,
        thin: new.thin,
        self_heal: new.self_heal,
        labels: new.labels,
        topology: new.topology,
        max_snapshots: new.max_snapshots,
        target: None,
        last_nexus_uuid: None,
        replicas: Default::default(),
        rebuild_history: Vec::new(),
    };
    let pools = match new.pools {
        Some(pools) => explicit_pools(world, &volume, pools)?,
        None => place_new_volume(world, &volume, usize::from(new.replicas))
            .map_err(|have| ApiError::not_enough_pools(have, usize::from(new.replicas)))?,
    };
    for pool in pools {
        let node = world.pools[&pool].node.clone();
        let uuid = world.new_uuid();
        let condition = ReplicaCondition::Synced;
        volume.replicas.insert(
            uuid.clone(),
            SimReplica {
                uuid,
                node,
                pool,
                condition,
            },
        );
    }
    world.volumes.insert(new.uuid.clone(), volume);
    if let Some(node) = new.publish_on {
        publish(world, &new.uuid, Some(node), now)?;
    }
    Ok(())
}

fn explicit_pools(
    world: &World,
    volume: &SimVolume,
    pools: Vec<String>,
) -> Result<Vec<String>, ApiError> {
    if pools.len() != usize::from(volume.num_replicas) {
        return Err(ApiError::invalid(format!(
            "{} pools given for {} replicas",
            pools.len(),
            volume.num_replicas
        )));
    }
    let mut nodes = BTreeSet::new();
    for id in &pools {
        let pool = world
            .pools
            .get(id)
            .ok_or_else(|| ApiError::not_found("Pool", id))?;
        if !nodes.insert(pool.node.clone()) {
            return Err(ApiError::invalid(format!(
                "two replicas on node '{}'",
                pool.node
            )));
        }
        if world.pool_free(id) <= volume.size {
            return Err(ApiError::not_enough_pools(0, 1));
        }
    }
    Ok(pools)
}

/// `PUT /volumes/{id}/replica_count/{count}` with the upstream validation order
/// (`volume/specs.rs`, `SetReplica`): ReplicaCountAchieved, LastReplica, ReplicaChangeCount,
/// ReplicaIncrease.
pub fn set_replica_count(world: &mut World, id: &str, count: u8, now: u64) -> Result<(), ApiError> {
    advance(world, now);
    let volume = world
        .volumes
        .get(id)
        .ok_or_else(|| ApiError::not_found("Volume", id))?;
    let current = volume.num_replicas;
    if count == current {
        return Err(ApiError::precondition(
            "ReplicaCountAchieved",
            format!("Replica count of Volume '{id}' is already '{count}'"),
        ));
    }
    if count < 1 {
        return Err(ApiError::precondition(
            "LastReplica",
            format!("Cannot remove the last replica '' of volume '{id}'"),
        ));
    }
    if count.abs_diff(current) > 1 {
        return Err(ApiError::precondition(
            "ReplicaChangeCount",
            "Replica count only allowed to change by a maximum of one at a time".to_owned(),
        ));
    }
    let (status, _) = volume_status(world, volume, now);
    if count > current && status != "Online" {
        return Err(ApiError::precondition(
            "ReplicaIncrease",
            format!("Unable to increase replica count due to volume '{id}' in state '{status}'"),
        ));
    }
    if count > current {
        add_replica(world, id, now)
    } else {
        remove_replica(world, id, count, now)
    }
}

fn add_replica(world: &mut World, id: &str, now: u64) -> Result<(), ApiError> {
    let volume = &world.volumes[id];
    let pool = candidates(world, volume, &BTreeSet::new())
        .first()
        .map(|p| (p.id.clone(), p.node.clone()))
        .ok_or_else(|| ApiError::not_enough_pools(0, 1))?;
    let uuid = world.new_uuid();
    let replica = SimReplica {
        uuid: uuid.clone(),
        node: pool.1,
        pool: pool.0,
        condition: ReplicaCondition::Stale,
    };
    let Some(volume) = world.volumes.get_mut(id) else {
        return Err(ApiError::not_found("Volume", id));
    };
    volume.replicas.insert(uuid.clone(), replica);
    volume.num_replicas += 1;
    let published = volume.target.is_some();
    if published {
        start_rebuild(world, id, &uuid, now);
    }
    Ok(())
}

fn remove_replica(world: &mut World, id: &str, count: u8, now: u64) -> Result<(), ApiError> {
    let volume = &world.volumes[id];
    let order = removal_order(world, volume, now);
    let healthy = order.iter().filter(|(_, healthy)| *healthy).count();
    let victim = match order.first() {
        Some((victim, victim_healthy)) if order.len() > usize::from(count) => {
            if *victim_healthy && healthy <= usize::from(count) {
                return Err(ApiError::precondition(
                    "ReplicaRemovalNoCandidates",
                    format!("No suitable replica removal candidates found for Volume '{id}'"),
                ));
            }
            Some(victim.clone())
        }
        _ => None,
    };
    let was_healthy = order.iter().any(|(v, h)| Some(v) == victim.as_ref() && *h);
    let Some(volume) = world.volumes.get_mut(id) else {
        return Err(ApiError::not_found("Volume", id));
    };
    let removed = victim.and_then(|v| volume.replicas.remove(&v).map(|r| (v, r)));
    volume.num_replicas = count;
    if let Some((replica, r)) = removed {
        world.removals.push(crate::world::RemovalRecord {
            volume: id.to_string(),
            replica,
            pool: r.pool.clone(),
            was_healthy,
            healthy_before: healthy,
            healthy_after: healthy - usize::from(was_healthy),
            at_ms: now,
        });
    }
    Ok(())
}

/// `PUT /volumes/{id}/target`: creates the nexus on `node` (or a node holding a healthy
/// replica) and starts rebuilding every replica that is not in sync.
pub fn publish(
    world: &mut World,
    id: &str,
    node: Option<String>,
    now: u64,
) -> Result<(), ApiError> {
    advance(world, now);
    let volume = world
        .volumes
        .get(id)
        .ok_or_else(|| ApiError::not_found("Volume", id))?;
    if let Some(target) = &volume.target {
        return Err(ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            "AlreadyPublished",
            "VolumeAlreadyPublished",
            format!(
                "Volume '{id}' is already published on node '{}' with protocol 'nvmf'",
                target.node
            ),
        ));
    }
    let usable = |n: &str| world.node_online(n) && !world.node_cordoned(n);
    let node = match node {
        Some(node) if !world.nodes.contains_key(&node) => {
            return Err(ApiError::not_found("Node", &node));
        }
        Some(node) if !usable(&node) => {
            return Err(ApiError::precondition(
                "NodeNotOnline",
                format!("Node '{node}' is not online or is cordoned"),
            ));
        }
        Some(node) => node,
        None => volume
            .replicas
            .values()
            .filter(|r| r.condition == ReplicaCondition::Synced)
            .map(|r| r.node.clone())
            .chain(world.nodes.keys().cloned())
            .find(|n| usable(n))
            .ok_or_else(|| {
                ApiError::precondition("NoNodes", "No available online nodes".to_owned())
            })?,
    };
    let nexus_uuid = world.new_uuid();
    let Some(volume) = world.volumes.get_mut(id) else {
        return Err(ApiError::not_found("Volume", id));
    };
    volume.target = Some(SimTarget {
        node,
        nexus_uuid: nexus_uuid.clone(),
    });
    volume.last_nexus_uuid = Some(nexus_uuid);
    let out_of_sync: Vec<String> = volume
        .replicas
        .values()
        .filter(|r| {
            matches!(
                r.condition,
                ReplicaCondition::Stale | ReplicaCondition::Failed
            )
        })
        .map(|r| r.uuid.clone())
        .collect();
    for replica in out_of_sync {
        start_rebuild(world, id, &replica, now);
    }
    Ok(())
}

/// `DELETE /volumes/{id}/target`: removes the nexus; running rebuilds stop (the replica goes
/// back to stale and the job is recorded as `Stopped`).
pub fn unpublish(world: &mut World, id: &str, now: u64) -> Result<(), ApiError> {
    advance(world, now);
    let rate = world.rebuild_mib_per_sec;
    let volume = world
        .volumes
        .get_mut(id)
        .ok_or_else(|| ApiError::not_found("Volume", id))?;
    if volume.target.take().is_none() {
        return Err(ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            "NotPublished",
            "VolumeNotPublished",
            format!("Volume '{id}' not published"),
        ));
    }
    let size = volume.size;
    let mut stopped = Vec::new();
    for replica in volume.replicas.values_mut() {
        if let ReplicaCondition::Rebuilding {
            started_ms,
            child_uri,
            src_uri,
            ..
        } = &replica.condition
        {
            let pct = progress_after(rate, size, now.saturating_sub(*started_ms));
            stopped.push(RebuildEvent {
                child_uri: child_uri.clone(),
                src_uri: src_uri.clone(),
                state: "Stopped".to_owned(),
                total_bytes: size,
                recovered_bytes: size.saturating_mul(u64::from(pct)) / 100,
                start_ms: *started_ms,
                end_ms: now,
            });
            replica.condition = ReplicaCondition::Stale;
        }
    }
    volume.rebuild_history.extend(stopped);
    Ok(())
}

/// `DELETE /volumes/{id}`.
pub fn delete_volume(world: &mut World, id: &str) -> Result<(), ApiError> {
    world
        .volumes
        .remove(id)
        .map(|_| ())
        .ok_or_else(|| ApiError::not_found("Volume", id))
}
