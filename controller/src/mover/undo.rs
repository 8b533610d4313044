//! Stopping a move early without losing data: what happens to the replica it added.

use couchestor_common::migration::{VolumeMigration, VolumeMigrationStatus};

use super::hands::Hands;
use super::health::healthy;
use crate::context::Error;

/// Removes the replica the move added, but only while that replica is still unsynced and every
/// other replica is healthy: Mayastor then removes the unsynced one first and never a healthy
/// one, so an old copy cannot go. In any other situation the replica is kept (a synced extra
/// copy costs space, never data). Returns what was done, for the migration's message.
pub async fn drop_unsynced_extra(
    ctx: &Hands<'_>,
    vm: &VolumeMigration,
    st: &mut VolumeMigrationStatus,
) -> Result<String, Error> {
    let Some(start) = st.start_replicas else {
        return Ok("nothing had been changed".into());
    };
    let v = ctx.mayastor.get_volume(&vm.spec.volume_id).await?;
    let count = v.spec.num_replicas;
    if count <= start {
        st.new_replica = None;
        return Ok(format!(
            "no replica added by the move remains; the volume has its {count} replica(s)"
        ));
    }
    let recorded = st
        .new_replica
        .as_ref()
        .map(|n| n.uuid.clone())
        .filter(|u| v.state.replica_topology.contains_key(u));
    let unknown: Vec<&String> = v
        .state
        .replica_topology
        .keys()
        .filter(|u| !st.known.iter().any(|k| &k.uuid == *u))
        .collect();
    let new = match (recorded, unknown.as_slice()) {
        (Some(n), _) => n,
        (None, [only]) => (*only).clone(),
        _ => {
            return Ok(format!(
                "the volume has {count} replicas (started with {start}); the added one could not be told apart and all were kept"
            ));
        }
    };
    let pool = v.state.replica_topology[&new]
        .pool
        .clone()
        .unwrap_or_default();
    if healthy(&v, &new) {
        return Ok(format!(
            "the new replica {new} on {pool} is synced and was kept: the volume has {count} replicas (started with {start})"
        ));
    }
    let old_all_healthy = v
        .state
        .replica_topology
        .keys()
        .filter(|u| **u != new)
        .all(|u| healthy(&v, u));
    if !old_all_healthy {
        return Ok(format!(
            "the unsynced new replica {new} on {pool} was kept: not every old replica is healthy, so a scale-down could take an old copy"
        ));
    }
    let after = ctx
        .mayastor
        .set_replica_count(&vm.spec.volume_id, start)
        .await?;
    st.new_replica = None;
    st.rebuild_progress = None;
    if after.state.replica_topology.contains_key(&new) {
        let lost: Vec<&String> = v
            .state
            .replica_topology
            .keys()
            .filter(|u| !after.state.replica_topology.contains_key(*u))
            .collect();
        tracing::error!(migration = %vm.spec.volume, new = %new, removed = ?lost, "Mayastor kept the unsynced new replica and removed another one");
        return Ok(format!(
            "asked Mayastor to remove the unsynced new replica {new}, but it removed {lost:?} instead"
        ));
    }
    Ok(format!(
        "the unsynced new replica {new} on {pool} was removed and the old replicas kept"
    ))
}
