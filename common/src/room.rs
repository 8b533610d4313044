//! Per-pool room: can a tier's pools take a volume's replicas?
//!
//! A tier's free total says nothing about where the room is. Mayastor puts each replica of a
//! volume on a pool of its own node, and a move adds the new replica before it removes an old
//! one, so the first new replica needs a pool on a node that holds no replica of the volume yet.
//! A move whose replicas fit the tier total but no set of pools would be started, refused by the
//! move engine (`NoEligibleTarget`) and then locked out for the cooldown; the planner holds it
//! instead, with the reason.
//!
//! The check is deliberately simple: one pool per replica, on distinct nodes, each with room for
//! a whole replica, the first on a node free of the volume. The move engine still checks the
//! real placement when the move starts.

/// Room on one pool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolRoom {
    /// The io-engine node the pool is on.
    pub node: String,
    /// Bytes free on the pool (0 when it is not Online).
    pub free_bytes: u64,
}

/// Why no set of pools takes the volume.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NoRoom {
    /// Bytes one replica needs.
    pub replica_bytes: u64,
    /// Replicas to place.
    pub replicas: u8,
    /// The most room on any one pool the first replica could use (on a node without one).
    pub largest_free: u64,
}

/// Books one replica of `size_bytes` per replica of the volume on `pools`, or says why it cannot.
/// `on_nodes` are the nodes that hold the volume's replicas now. On success the chosen pools'
/// room is reduced, so later moves of the same plan see what is left; on failure nothing
/// changes.
pub fn book(
    pools: &mut [PoolRoom],
    size_bytes: u64,
    replicas: u8,
    on_nodes: &[String],
) -> Result<(), NoRoom> {
    let replicas = replicas.max(1);
    // Largest room first, so the booking leaves the small gaps for small volumes.
    let mut order: Vec<usize> = (0..pools.len()).collect();
    order.sort_by(|&a, &b| {
        pools[b]
            .free_bytes
            .cmp(&pools[a].free_bytes)
            .then(pools[a].node.cmp(&pools[b].node))
    });
    let free_node = |k: &usize| !on_nodes.contains(&pools[*k].node);
    let no_room = NoRoom {
        replica_bytes: size_bytes,
        replicas,
        largest_free: order
            .iter()
            .copied()
            .find(free_node)
            .map_or(0, |k| pools[k].free_bytes),
    };
    // Strictly more room than the replica, as the move engine's target choice requires.
    let fits = |k: &usize| pools[*k].free_bytes > size_bytes;
    let first = order
        .iter()
        .copied()
        .filter(fits)
        .find(free_node)
        .ok_or(no_room)?;
    let mut chosen = vec![first];
    for k in order.iter().copied().filter(fits) {
        if chosen.len() == usize::from(replicas) {
            break;
        }
        if !chosen.iter().any(|&c| pools[c].node == pools[k].node) {
            chosen.push(k);
        }
    }
    if chosen.len() < usize::from(replicas) {
        return Err(no_room);
    }
    for k in chosen {
        pools[k].free_bytes -= size_bytes;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    fn pools(rooms: &[(&str, u64)]) -> Vec<PoolRoom> {
        rooms
            .iter()
            .map(|&(node, gib)| PoolRoom {
                node: node.into(),
                free_bytes: gib * GIB,
            })
            .collect()
    }

    #[test]
    fn the_tier_total_is_not_enough_when_no_single_pool_has_room() {
        // 86 GiB free in total, but no pool takes a 96 GiB replica (seen in simulate).
        let mut p = pools(&[("a", 25), ("b", 61), ("c", 200)]);
        let err = book(&mut p, 96 * GIB, 1, &["c".to_string()]).unwrap_err();
        assert_eq!(err.largest_free, 61 * GIB);
        assert_eq!(p, pools(&[("a", 25), ("b", 61), ("c", 200)]), "unchanged");
    }

    #[test]
    fn the_first_replica_goes_to_a_node_without_one() {
        let mut p = pools(&[("a", 100), ("b", 50)]);
        book(&mut p, 40 * GIB, 1, &["a".to_string()]).unwrap();
        assert_eq!(p, pools(&[("a", 100), ("b", 10)]));
    }

    #[test]
    fn replicas_take_pools_on_distinct_nodes_and_the_room_is_booked() {
        let mut p = pools(&[("a", 100), ("a", 100), ("b", 100), ("c", 30)]);
        book(&mut p, 60 * GIB, 2, &[]).unwrap();
        assert_eq!(p, pools(&[("a", 40), ("a", 100), ("b", 40), ("c", 30)]));
        // Only node a still has room for 60 GiB: a second two-replica volume does not fit.
        let err = book(&mut p, 60 * GIB, 2, &[]).unwrap_err();
        assert_eq!((err.replicas, err.largest_free), (2, 100 * GIB));
        // A one-replica one does, on the pool that has room.
        book(&mut p, 60 * GIB, 1, &[]).unwrap();
        assert_eq!(p, pools(&[("a", 40), ("a", 40), ("b", 40), ("c", 30)]));
    }

    #[test]
    fn no_pools_means_no_room() {
        let err = book(&mut [], GIB, 1, &[]).unwrap_err();
        assert_eq!(err.largest_free, 0);
    }
}
