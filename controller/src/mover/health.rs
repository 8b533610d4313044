//! Reading a volume's replicas and their health from Mayastor's `replica_topology`.

use couchestor_common::migration::ReplicaRef;

use crate::mayastor::model::{ChildState, Volume};

/// Every replica of the volume.
pub fn replicas(v: &Volume) -> Vec<ReplicaRef> {
    v.state
        .replica_topology
        .iter()
        .map(|(uuid, r)| ReplicaRef {
            uuid: uuid.clone(),
            pool: r.pool.clone().unwrap_or_default(),
            node: r.node.clone().unwrap_or_default(),
        })
        .collect()
}

/// A replica whose nexus child is Online with no rebuild running.
pub fn healthy(v: &Volume, uuid: &str) -> bool {
    v.state.replica_topology.get(uuid).is_some_and(|r| {
        r.child_status
            .as_ref()
            .is_some_and(|c| *c == ChildState::Online)
            && r.rebuild_progress.is_none()
    })
}

/// How many replicas are healthy.
pub fn healthy_count(v: &Volume) -> usize {
    v.state
        .replica_topology
        .keys()
        .filter(|u| healthy(v, u))
        .count()
}
