//! The Mayastor world of `--backend mayastor`: nodes that each carry an NVMe pool
//! (`couchestor-tier=nvme`) and a SATA pool (`couchestor-tier=sata`), whose capacities add up to
//! the tier model's (fast = `--fast-tier-percent` of the footprint, slow = twice the footprint),
//! and one published volume per simulated volume, its replicas placed by the simulator's own
//! placement on the tier the tier model's initial placement chose.

use std::collections::BTreeMap;

use couchestor_common::Tier;
use couchestor_common::layout::TIER_LABEL;
use couchestor_mayastor_sim::ids::IdSource;
use couchestor_mayastor_sim::ops::{self, NewVolume};
use couchestor_mayastor_sim::world::{
    LabelledTopology, NodeStatus, PoolStatus, PoolTopology, SimNode, SimPool, Topology,
};
use couchestor_mayastor_sim::{Profile, World};

use super::cluster::Cluster;

/// The emulated release: pool cordons steer both placement and removal, so every node may
/// carry pools of both tiers (node cordons, on 2.9, cannot exclude a node's other pool).
pub const PROFILE: Profile = Profile::V2_10;

/// `couchestor-tier` value of a tier's pools.
fn tier_value(tier: Tier) -> &'static str {
    match tier {
        Tier::Hot => "nvme",
        _ => "sata",
    }
}

/// `bytes` split over `parts` pools, the remainder on the first ones, so the parts add up.
fn share(bytes: u64, parts: usize, k: usize) -> u64 {
    let parts = parts.max(1) as u64;
    bytes / parts + u64::from((k as u64) < bytes % parts)
}

/// The Mayastor UUID of simulated volume `i` (its PV is `cluster.volumes[i].name`); in index
/// order, as the PV names are.
pub fn volume_uuid(i: usize) -> String {
    format!("00000000-0000-4000-8000-{i:012}")
}

/// What [`build`] made.
pub struct Built {
    /// The world, every volume published and in sync.
    pub world: World,
    /// Volumes that the tier model put on the fast tier but that fit on no NVMe pool (each
    /// replica needs a pool on its own node with room): placed on the slow tier instead, and
    /// `cluster` updated accordingly.
    pub fallbacks: usize,
}

/// Builds the world for `cluster` (whose initial placement it follows, except for
/// [`Built::fallbacks`]): `nodes` nodes, rebuilds at `rebuild_mib_per_sec`, UUIDs from a
/// ChaCha stream seeded with `seed`, everything created at `now_ms`.
pub fn build(
    cluster: &mut Cluster,
    nodes: usize,
    rebuild_mib_per_sec: f64,
    seed: u64,
    now_ms: u64,
) -> anyhow::Result<Built> {
    let mut world = World::new(PROFILE, rebuild_mib_per_sec);
    world.ids = IdSource::seeded(seed);
    for k in 0..nodes {
        let node = format!("node-{k}");
        world.nodes.insert(
            node.clone(),
            SimNode {
                id: node.clone(),
                ip: format!("10.0.{}.{}", k / 250, k % 250 + 1),
                status: NodeStatus::Online,
                labels: BTreeMap::new(),
                cordon_labels: Vec::new(),
            },
        );
        for &(tier, capacity) in &cluster.tiers {
            let id = format!("{node}-{}", tier_value(tier));
            let pool = SimPool {
                id: id.clone(),
                node: node.clone(),
                disk: format!("/dev/disk/by-id/sim-{id}"),
                uuid: world.new_uuid(),
                capacity: share(capacity, nodes, k),
                base_used: 0,
                status: PoolStatus::Online,
                labels: BTreeMap::from([(TIER_LABEL.to_string(), tier_value(tier).to_string())]),
                cordon: Default::default(),
            };
            world.pools.insert(id, pool);
        }
    }
    // Fast-tier volumes first, largest first (so the packing fails as rarely as it can), then
    // the rest; each placed by the simulator with only its tier's pools open.
    let mut hot: Vec<usize> = (0..cluster.volumes.len())
        .filter(|&i| cluster.volumes[i].tier == Tier::Hot)
        .collect();
    hot.sort_by_key(|&i| (std::cmp::Reverse(cluster.volumes[i].size_bytes), i));
    let mut fallbacks = 0;
    for i in hot {
        if create(&mut world, cluster, i, Tier::Hot, now_ms).is_err() {
            cluster.volumes[i].tier = Tier::Cold;
            fallbacks += 1;
        }
    }
    for i in 0..cluster.volumes.len() {
        if cluster.volumes[i].tier != Tier::Hot {
            create(&mut world, cluster, i, Tier::Cold, now_ms).map_err(|e| {
                anyhow::anyhow!(
                    "cannot place {} on the slow tier: {}",
                    cluster.volumes[i].name,
                    e.details
                )
            })?;
        }
    }
    open_only(&mut world, None);
    for i in 0..cluster.volumes.len() {
        ops::publish(&mut world, &volume_uuid(i), None, now_ms).map_err(|e| {
            anyhow::anyhow!("cannot publish {}: {}", cluster.volumes[i].name, e.details)
        })?;
    }
    Ok(Built { world, fallbacks })
}

/// Creates volume `i` with its replicas on `tier` (every other pool cordoned meanwhile).
fn create(
    world: &mut World,
    cluster: &Cluster,
    i: usize,
    tier: Tier,
    now_ms: u64,
) -> Result<(), couchestor_mayastor_sim::error::ApiError> {
    open_only(world, Some(tier));
    let v = &cluster.volumes[i];
    // The StorageClass needs the tier key, any value (`poolHasTopologyKey`): a volume pinned
    // to one tier's label could never move (shared/notes/mayastor.md §6).
    let topology = Topology {
        node_topology: None,
        pool_topology: Some(PoolTopology::Labelled(LabelledTopology {
            inclusion: BTreeMap::from([(TIER_LABEL.to_string(), String::new())]),
            ..Default::default()
        })),
    };
    let new = NewVolume {
        uuid: volume_uuid(i),
        size: v.size_bytes,
        replicas: v.replicas,
        self_heal: true,
        topology: Some(topology),
        ..Default::default()
    };
    ops::create_volume(world, new, now_ms)
}

/// Cordons (for replicas) every pool not of `tier`; `None` uncordons all.
fn open_only(world: &mut World, tier: Option<Tier>) {
    for pool in world.pools.values_mut() {
        pool.cordon.replicas = tier.is_some_and(|t| {
            pool.labels.get(TIER_LABEL).map(String::as_str) != Some(tier_value(t))
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulate::cluster::{GIB, MoveStats, SimVolume};

    #[test]
    fn pools_add_up_to_the_tiers_and_volumes_sit_where_the_tier_model_put_them() {
        let mut volumes = vec![
            SimVolume::at_rest("pvc-sim-00000", 10, Tier::Hot),
            SimVolume::at_rest("pvc-sim-00001", 40, Tier::Cold),
            SimVolume::at_rest("pvc-sim-00002", 30, Tier::Hot), // fits on no NVMe pool
        ];
        for v in &mut volumes {
            v.replicas = 2;
        }
        let mut cluster = Cluster {
            volumes,
            tiers: vec![(Tier::Hot, 61 * GIB), (Tier::Cold, 300 * GIB)],
            bandwidth_bps: GIB as f64,
            stats: MoveStats::default(),
        };
        let original = cluster.clone();
        let built = build(&mut cluster, 3, 100.0, 1, 0).unwrap();
        let w = &built.world;
        let cap = |t: &str| -> u64 {
            w.pools
                .values()
                .filter(|p| p.labels[TIER_LABEL] == t)
                .map(|p| p.capacity)
                .sum()
        };
        assert_eq!((cap("nvme"), cap("sata")), (61 * GIB, 300 * GIB));
        assert_eq!(w.pools.len(), 6);
        assert!(w.pools.values().all(|p| !p.cordon.replicas));
        // The 30 GiB volume needs two NVMe pools with 30 GiB free; they hold ~20 GiB each.
        assert_eq!(built.fallbacks, 1);
        assert_eq!(cluster.volumes[2].tier, Tier::Cold);
        for (i, want) in [(0, "nvme"), (1, "sata"), (2, "sata")] {
            let v = &w.volumes[&volume_uuid(i)];
            assert!(v.target.is_some(), "published");
            assert_eq!(v.replicas.len(), 2);
            let nodes: std::collections::BTreeSet<_> =
                v.replicas.values().map(|r| &r.node).collect();
            assert_eq!(nodes.len(), 2, "one replica per node");
            for r in v.replicas.values() {
                assert_eq!(w.pools[&r.pool].labels[TIER_LABEL], want, "volume {i}");
            }
        }
        // Same inputs, same seed: the same world, UUIDs included.
        let mut again = original.clone();
        let rebuilt = build(&mut again, 3, 100.0, 1, 0).unwrap();
        assert_eq!(
            serde_json::to_value(&rebuilt.world).unwrap(),
            serde_json::to_value(w).unwrap()
        );
    }
}
