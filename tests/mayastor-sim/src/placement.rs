//! Placement of a new replica (volume creation and scale-up), after upstream
//! `controller/scheduling/volume_policy/{node,pool,simple}.rs` as summarised in
//! `shared/notes/mayastor.md` §4.
//!
//! Node filters: online; not cordoned; holds no replica of the volume (one replica per node);
//! in `allowed_nodes` of an explicit node topology; carries a labelled node topology's inclusion
//! labels. Pool filters: usable (Online/Degraded); not cordoned for replicas (2.10 profile);
//! `capacity > size`; free (`capacity − used`) `> size`; every pool inclusion key present in the
//! pool's current labels with an equal value unless the inclusion value is empty.
//!
//! The `ignore_cordons` fault (`/sim/faults/ignore-cordons`) drops both cordon filters.
//!
//! Ranking: upstream weighs replica count (25), free space (40) and over-commitment (35); the
//! simulator accounts every replica thick (committed = used), so it ranks by free space, most
//! first, then by fewer replicas, then by pool id for determinism.

use std::collections::BTreeSet;

use crate::world::{NodeTopology, SimPool, SimVolume, World, qualifies};

/// Pools that may receive a new replica of `volume`, best first. `exclude_nodes` adds nodes
/// that already got a replica in the same operation (volume creation places several).
pub fn candidates<'w>(
    world: &'w World,
    volume: &SimVolume,
    exclude_nodes: &BTreeSet<String>,
) -> Vec<&'w SimPool> {
    let used_nodes: BTreeSet<&str> = volume
        .replicas
        .values()
        .map(|r| r.node.as_str())
        .chain(exclude_nodes.iter().map(String::as_str))
        .collect();
    let topology = volume.topology.as_ref();
    let node_ok = |node: &str| -> bool {
        let Some(sim_node) = world.nodes.get(node) else {
            return false;
        };
        let topology_ok = match topology.and_then(|t| t.node_topology.as_ref()) {
            Some(NodeTopology::Explicit(explicit)) => {
                explicit.allowed_nodes.is_empty()
                    || explicit.allowed_nodes.iter().any(|n| n == node)
            }
            Some(NodeTopology::Labelled(labelled)) => {
                qualifies(&sim_node.labels, &labelled.inclusion)
            }
            None => true,
        };
        world.node_online(node)
            && (world.ignore_cordons || !world.node_cordoned(node))
            && !used_nodes.contains(node)
            && topology_ok
    };
    let inclusion = topology.and_then(|t| t.pool_inclusion());
    let mut pools: Vec<&SimPool> = world
        .pools
        .values()
        .filter(|pool| {
            node_ok(&pool.node)
                && pool.status.usable()
                && (world.ignore_cordons || !world.pool_cordoned(&pool.id))
                && pool.capacity > volume.size
                && world.pool_free(&pool.id) > volume.size
                && inclusion.is_none_or(|inc| qualifies(&pool.labels, inc))
        })
        .collect();
    let replica_count = |pool: &str| -> usize {
        world
            .volumes
            .values()
            .flat_map(|v| v.replicas.values())
            .filter(|r| r.pool == pool)
            .count()
    };
    pools.sort_by(|a, b| {
        world
            .pool_free(&b.id)
            .cmp(&world.pool_free(&a.id))
            .then_with(|| replica_count(&a.id).cmp(&replica_count(&b.id)))
            .then_with(|| a.id.cmp(&b.id))
    });
    pools
}

/// Picks `count` pools on distinct nodes for a new volume, or reports how many qualified.
pub fn place_new_volume(
    world: &World,
    volume: &SimVolume,
    count: usize,
) -> Result<Vec<String>, usize> {
    let mut chosen = Vec::new();
    let mut nodes = BTreeSet::new();
    while chosen.len() < count {
        let Some(pool) = candidates(world, volume, &nodes).first().copied() else {
            return Err(chosen.len());
        };
        nodes.insert(pool.node.clone());
        chosen.push(pool.id.clone());
    }
    Ok(chosen)
}
