//! Which replica a scale-down removes, per profile (`shared/notes/mayastor.md` §5).
//!
//! Upstream sorts candidates with `ChildSorters::sort` and takes unhealthy ones before healthy
//! ones (`ReplicaRemovalCandidates`). The simulator's key, first difference wins:
//!
//! 1. unhealthy before healthy (not in sync, or node/pool down);
//! 2. child state Faulted < Unknown < Degraded < Online, then lower rebuild progress;
//! 3. (2.9, 2.10) replica whose pool no longer satisfies the volume's pool inclusion labels;
//! 4. (2.10) replica on a pool cordoned for replicas — [inference] position: upstream only has
//!    a maintainer statement, no code; placed right after the pool-topology mismatch;
//! 5. (2.9, 2.10) replica on a cordoned node;
//! 6. remote before the nexus-local replica (only while published);
//! 7. replica UUID, for determinism.
//!
//! Not modelled: "unused" (not in the nexus) and affinity-group counts, node-topology mismatch.

use std::cmp::Reverse;

use crate::{
    view::replica_view,
    world::{SimVolume, World, qualifies},
};

/// Sort key of one replica; smaller is removed first.
type RemovalKey = (
    bool,
    u8,
    u8,
    Reverse<bool>,
    Reverse<bool>,
    Reverse<bool>,
    bool,
    String,
);

/// Replica UUIDs of `volume` in removal order (first is removed first), with their health.
pub fn removal_order(world: &World, volume: &SimVolume, now: u64) -> Vec<(String, bool)> {
    let profile = world.profile;
    let inclusion = volume.topology.as_ref().and_then(|t| t.pool_inclusion());
    let nexus_node = volume.target.as_ref().map(|t| t.node.as_str());
    let mut keyed: Vec<(RemovalKey, bool)> = volume
        .replicas
        .values()
        .map(|replica| {
            let view = replica_view(world, volume, replica, now);
            let mismatch = profile.topology_aware_removal()
                && inclusion.is_some_and(|inc| {
                    world
                        .pools
                        .get(&replica.pool)
                        .is_none_or(|pool| !qualifies(&pool.labels, inc))
                });
            let pool_cordoned = world.pool_cordoned(&replica.pool);
            let node_cordoned =
                profile.topology_aware_removal() && world.node_cordoned(&replica.node);
            let local = nexus_node == Some(replica.node.as_str());
            let key = (
                view.healthy,
                view.child_rank(),
                view.progress.unwrap_or(100),
                Reverse(mismatch),
                Reverse(pool_cordoned),
                Reverse(node_cordoned),
                local,
                replica.uuid.clone(),
            );
            (key, view.healthy)
        })
        .collect();
    keyed.sort();
    keyed
        .into_iter()
        .map(|(key, healthy)| (key.7, healthy))
        .collect()
}
