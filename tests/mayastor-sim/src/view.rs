//! Runtime views derived from the stored world: replica/child states, rebuild progress, URIs,
//! and the clock-driven advance of rebuilds.

use crate::world::{
    NodeStatus, PoolStatus, RebuildEvent, ReplicaCondition, SimReplica, SimVolume, World,
};

const MIB: f64 = 1024.0 * 1024.0;

/// How a replica looks at runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaView {
    /// `ReplicaState`: `Online`, `Unknown` or `Faulted`.
    pub state: &'static str,
    /// `ChildState` it has (or would have) in the nexus.
    pub child: &'static str,
    /// Rebuild progress while rebuilding.
    pub progress: Option<u8>,
    /// In sync and reachable.
    pub healthy: bool,
}

impl ReplicaView {
    /// Removal rank of the child state: Faulted < Unknown < Degraded < Online.
    pub fn child_rank(&self) -> u8 {
        match self.child {
            "Faulted" => 0,
            "Unknown" => 1,
            "Degraded" => 2,
            _ => 3,
        }
    }
}

/// Percentage of `size` bytes copied `elapsed_ms` after a start, at the world's rebuild rate.
pub fn progress_after(world_rate_mib: f64, size: u64, elapsed_ms: u64) -> u8 {
    if size == 0 {
        return 100;
    }
    let copied = elapsed_ms as f64 / 1000.0 * world_rate_mib * MIB;
    (copied / size as f64 * 100.0).floor().clamp(0.0, 100.0) as u8
}

/// Milliseconds a rebuild of `size` bytes needs to reach `pct` percent.
pub fn millis_to_reach(world_rate_mib: f64, size: u64, pct: u8) -> u64 {
    let bytes = size as f64 * f64::from(pct) / 100.0;
    (bytes / (world_rate_mib * MIB) * 1000.0).ceil() as u64
}

/// Runtime view of `replica` of `volume` at `now_ms`.
pub fn replica_view(
    world: &World,
    volume: &SimVolume,
    replica: &SimReplica,
    now: u64,
) -> ReplicaView {
    let down = |state, child| ReplicaView {
        state,
        child,
        progress: None,
        healthy: false,
    };
    if !world.node_online(&replica.node) {
        return down("Unknown", "Faulted");
    }
    match world.pools.get(&replica.pool).map(|p| p.status) {
        Some(PoolStatus::Faulted) | None => return down("Faulted", "Faulted"),
        Some(PoolStatus::Unknown) => return down("Unknown", "Faulted"),
        Some(PoolStatus::Online | PoolStatus::Degraded) => {}
    }
    match &replica.condition {
        ReplicaCondition::Synced => ReplicaView {
            state: "Online",
            child: "Online",
            progress: None,
            healthy: true,
        },
        ReplicaCondition::Stale => down("Online", "Degraded"),
        ReplicaCondition::Failed => down("Online", "Faulted"),
        ReplicaCondition::Rebuilding { started_ms, .. } => ReplicaView {
            state: "Online",
            child: "Degraded",
            progress: Some(
                progress_after(
                    world.rebuild_mib_per_sec,
                    volume.size,
                    now.saturating_sub(*started_ms),
                )
                .min(99),
            ),
            healthy: false,
        },
    }
}

/// Node IP for URIs (falls back to loopback for an unknown node).
fn node_ip<'a>(world: &'a World, node: &str) -> &'a str {
    world.nodes.get(node).map_or("127.0.0.1", |n| n.ip.as_str())
}

/// Nexus child URI of `replica` for a nexus on `nexus_node`.
pub fn child_uri(world: &World, nexus_node: &str, replica: &SimReplica) -> String {
    if replica.node == nexus_node {
        format!("bdev:///{0}?uuid={0}", replica.uuid)
    } else {
        format!(
            "nvmf://{}:8420/nqn.2019-05.io.openebs:{1}?uuid={1}",
            node_ip(world, &replica.node),
            replica.uuid
        )
    }
}

/// NVMe-oF device URI of a volume published on `node`.
pub fn device_uri(world: &World, node: &str, volume: &str) -> String {
    format!(
        "nvmf://{}:8420/nqn.2019-05.io.openebs:{volume}",
        node_ip(world, node)
    )
}

/// Advances every running rebuild to `now`: finishes, fails (injected failure, or node/pool
/// lost) and records history.
pub fn advance(world: &mut World, now: u64) {
    let rate = world.rebuild_mib_per_sec;
    let mut finished: Vec<(String, String, ReplicaCondition, RebuildEvent)> = Vec::new();
    for volume in world.volumes.values() {
        let target_up = volume
            .target
            .as_ref()
            .is_some_and(|t| world.node_online(&t.node));
        for replica in volume.replicas.values() {
            let ReplicaCondition::Rebuilding {
                started_ms,
                child_uri,
                src_uri,
                fail_at,
            } = &replica.condition
            else {
                continue;
            };
            let reached = progress_after(rate, volume.size, now.saturating_sub(*started_ms));
            let storage_up = world.node_online(&replica.node)
                && world
                    .pools
                    .get(&replica.pool)
                    .is_some_and(|p| p.status.usable());
            let (condition, state, pct, end_ms) = if !storage_up || !target_up {
                (ReplicaCondition::Failed, "Failed", reached.min(99), now)
            } else if let Some(at) = fail_at.filter(|at| reached >= *at) {
                let end = started_ms + millis_to_reach(rate, volume.size, at);
                (ReplicaCondition::Failed, "Failed", at, end.min(now))
            } else if reached >= 100 {
                let end = started_ms + millis_to_reach(rate, volume.size, 100);
                (ReplicaCondition::Synced, "Completed", 100, end.min(now))
            } else {
                continue;
            };
            let event = RebuildEvent {
                child_uri: child_uri.clone(),
                src_uri: src_uri.clone(),
                state: state.to_owned(),
                total_bytes: volume.size,
                recovered_bytes: volume.size.saturating_mul(u64::from(pct)) / 100,
                start_ms: *started_ms,
                end_ms,
            };
            finished.push((volume.uuid.clone(), replica.uuid.clone(), condition, event));
        }
    }
    for (volume_id, replica_id, condition, event) in finished {
        if let Some(volume) = world.volumes.get_mut(&volume_id) {
            if let Some(replica) = volume.replicas.get_mut(&replica_id) {
                replica.condition = condition;
            }
            volume.rebuild_history.push(event);
        }
    }
}

/// Starts rebuilding `replica_id` of `volume_id` into its nexus (which must exist) from a
/// healthy replica, preferring the nexus-local one. Returns false if there is no source.
pub fn start_rebuild(world: &mut World, volume_id: &str, replica_id: &str, now: u64) -> bool {
    let Some(volume) = world.volumes.get(volume_id) else {
        return false;
    };
    let Some(target) = &volume.target else {
        return false;
    };
    let Some(replica) = volume.replicas.get(replica_id) else {
        return false;
    };
    let mut sources: Vec<&SimReplica> = volume
        .replicas
        .values()
        .filter(|r| r.uuid != replica_id && replica_view(world, volume, r, now).healthy)
        .collect();
    sources.sort_by_key(|r| (r.node != target.node, r.uuid.clone()));
    let Some(source) = sources.first() else {
        return false;
    };
    let condition = ReplicaCondition::Rebuilding {
        started_ms: now,
        child_uri: child_uri(world, &target.node, replica),
        src_uri: child_uri(world, &target.node, source),
        fail_at: world.fail_next_rebuild_at,
    };
    // An injected failure applies to exactly one rebuild.
    world.fail_next_rebuild_at = None;
    if let Some(replica) = world
        .volumes
        .get_mut(volume_id)
        .and_then(|v| v.replicas.get_mut(replica_id))
    {
        replica.condition = condition;
    }
    true
}

/// Volume status and nexus state at `now`.
pub fn volume_status(
    world: &World,
    volume: &SimVolume,
    now: u64,
) -> (&'static str, Option<&'static str>) {
    let views: Vec<ReplicaView> = volume
        .replicas
        .values()
        .map(|r| replica_view(world, volume, r, now))
        .collect();
    let healthy = views.iter().filter(|v| v.healthy).count();
    let all_ok = healthy == views.len() && healthy >= usize::from(volume.num_replicas);
    let status = if healthy == 0 {
        "Faulted"
    } else if all_ok {
        "Online"
    } else {
        "Degraded"
    };
    let nexus = volume.target.as_ref().map(|target| {
        if world.nodes.get(&target.node).map(|n| n.status) != Some(NodeStatus::Online) {
            "Unknown"
        } else {
            status
        }
    });
    (nexus.map_or(status, |n| n), nexus)
}
