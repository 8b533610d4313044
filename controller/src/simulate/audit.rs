//! The data-safety audit of `--backend mayastor`: at no instant may a volume have fewer healthy
//! replicas than it started with. Two checks cover every instant between them: after every
//! engine step the volume's healthy replicas are counted, and every replica removal the
//! simulator made (its removal log, the only operation that lowers the count here: no faults
//! are injected) must have left at least the starting count healthy.

use couchestor_mayastor_sim::World;
use couchestor_mayastor_sim::view::replica_view;
use couchestor_mayastor_sim::world::RemovalRecord;

/// Healthy (in sync, reachable) replicas of volume `uuid` at `now_ms`.
pub fn healthy_replicas(world: &World, uuid: &str, now_ms: u64) -> usize {
    world.volumes.get(uuid).map_or(0, |v| {
        v.replicas
            .values()
            .filter(|r| replica_view(world, v, r, now_ms).healthy)
            .count()
    })
}

/// Fails when volume `uuid` (PV `name`) has fewer than `start` healthy replicas at `now_ms`.
pub fn check_volume(
    world: &World,
    uuid: &str,
    name: &str,
    start: u8,
    now_ms: u64,
) -> anyhow::Result<()> {
    let healthy = healthy_replicas(world, uuid, now_ms);
    anyhow::ensure!(
        healthy >= usize::from(start),
        "DATA SAFETY VIOLATION: {name} ({uuid}) has {healthy} healthy replica(s) at {now_ms} ms, \
         it started with {start}"
    );
    Ok(())
}

/// Checks removals; `start` gives a volume's starting replica count by UUID. Returns how many
/// removals there were and how many of them took a healthy replica.
pub fn check_removals(
    removals: &[RemovalRecord],
    start: impl Fn(&str) -> Option<u8>,
) -> anyhow::Result<(u64, u64)> {
    let mut healthy_removed = 0;
    for r in removals {
        let Some(start) = start(&r.volume) else {
            anyhow::bail!(
                "removal audit: replica {} removed from unknown volume {}",
                r.replica,
                r.volume
            );
        };
        anyhow::ensure!(
            r.healthy_after >= usize::from(start),
            "DATA SAFETY VIOLATION: removing replica {} (pool {}) from volume {} at {} ms left \
             {} healthy replica(s); it started with {start} (healthy before: {})",
            r.replica,
            r.pool,
            r.volume,
            r.at_ms,
            r.healthy_after,
            r.healthy_before
        );
        healthy_removed += u64::from(r.was_healthy);
    }
    Ok((removals.len() as u64, healthy_removed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn removal(healthy_after: usize) -> RemovalRecord {
        RemovalRecord {
            volume: "v".into(),
            replica: "r".into(),
            pool: "p".into(),
            was_healthy: true,
            healthy_before: healthy_after + 1,
            healthy_after,
            at_ms: 5,
        }
    }

    #[test]
    fn a_volume_below_its_starting_healthy_count_fails_the_audit() {
        use couchestor_mayastor_sim::ops::{NewVolume, create_volume};
        use couchestor_mayastor_sim::world::{
            NodeStatus, PoolStatus, ReplicaCondition, SimNode, SimPool,
        };
        let mut world = World::new(couchestor_mayastor_sim::Profile::V2_10, 100.0);
        for n in ["a", "b"] {
            world.nodes.insert(
                n.into(),
                SimNode {
                    id: n.into(),
                    ip: "10.0.0.1".into(),
                    status: NodeStatus::Online,
                    labels: Default::default(),
                    cordon_labels: Vec::new(),
                },
            );
            let pool_uuid = world.new_uuid();
            world.pools.insert(
                format!("p-{n}"),
                SimPool {
                    id: format!("p-{n}"),
                    node: n.into(),
                    disk: "/dev/x".into(),
                    uuid: pool_uuid,
                    capacity: 1 << 40,
                    base_used: 0,
                    status: PoolStatus::Online,
                    labels: Default::default(),
                    cordon: Default::default(),
                },
            );
        }
        let uuid = "00000000-0000-4000-8000-000000000001";
        let new = NewVolume {
            uuid: uuid.into(),
            size: 1 << 30,
            replicas: 2,
            ..Default::default()
        };
        create_volume(&mut world, new, 0).unwrap();
        assert_eq!(healthy_replicas(&world, uuid, 0), 2);
        check_volume(&world, uuid, "pvc-x", 2, 0).unwrap();
        let r = world
            .volumes
            .get_mut(uuid)
            .unwrap()
            .replicas
            .values_mut()
            .next()
            .unwrap();
        r.condition = ReplicaCondition::Stale;
        let err = check_volume(&world, uuid, "pvc-x", 2, 7)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("DATA SAFETY VIOLATION: pvc-x") && err.contains("1 healthy"),
            "{err}"
        );
        check_volume(&world, uuid, "pvc-x", 1, 7).unwrap();
    }

    #[test]
    fn a_removal_below_the_starting_count_fails_the_audit() {
        assert_eq!(
            check_removals(&[removal(3), removal(3)], |_| Some(3)).unwrap(),
            (2, 2)
        );
        let err = check_removals(&[removal(3), removal(2)], |_| Some(3)).unwrap_err();
        assert!(err.to_string().contains("DATA SAFETY VIOLATION"), "{err}");
        assert!(check_removals(&[removal(1)], |_| None).is_err());
    }
}
