//! The move procedure, one phase at a time. Every step re-reads Mayastor and decides from what
//! it sees plus what the migration's status recorded, so a step interrupted at any instant
//! (process killed, leader changed) is safely repeated or completed by the next reconcile.
//!
//! Invariants:
//! - the volume never has fewer healthy replicas than it started with: a replica is removed
//!   only after its replacement is Online with no rebuild in progress, re-checked right
//!   before the scale-down;
//! - undoing a scale-up happens only while the new replica is still unsynced, when Mayastor
//!   removes unhealthy replicas first (and never a healthy one while healthy <= count).

use std::collections::BTreeSet;

use couchestor_common::migration::{
    MigrationPhase, ReplicaRef, VolumeMigration, VolumeMigrationStatus,
};

use super::steer::{self, Steering};
use crate::context::Context;
use crate::context::Error;
use crate::mayastor::model::{ChildState, Volume, VolumeStatus};

/// What a step decided.
#[derive(Debug)]
pub enum Step {
    /// Go to this phase now.
    Next(MigrationPhase),
    /// Stay; look again shortly.
    Wait,
    /// All done.
    Done,
    /// Stop, keeping the data: (reason, message).
    Abort(&'static str, String),
}

fn replicas(v: &Volume) -> Vec<ReplicaRef> {
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
fn healthy(v: &Volume, uuid: &str) -> bool {
    v.state.replica_topology.get(uuid).is_some_and(|r| {
        r.child_status
            .as_ref()
            .is_some_and(|c| *c == ChildState::Online)
            && r.rebuild_progress.is_none()
    })
}

fn healthy_count(v: &Volume) -> usize {
    v.state
        .replica_topology
        .keys()
        .filter(|u| healthy(v, u))
        .count()
}

/// Preflight: volume Online and published, steering possible, a target pool with room on a
/// node that holds no replica. Records the replicas to replace.
pub async fn analyze(
    ctx: &Context,
    vm: &VolumeMigration,
    st: &mut VolumeMigrationStatus,
) -> Result<Step, Error> {
    let Some(steering) = steer::steering(ctx).await? else {
        return Ok(Step::Abort(
            "UnsupportedMayastorVersion",
            steer::UNSTEERABLE.into(),
        ));
    };
    let v = ctx.mayastor.get_volume(&vm.spec.volume_id).await?;
    if v.state.target.is_none() {
        return Ok(Step::Abort(
            "Unpublished",
            "the volume is not published (no nexus): Mayastor copies data only inside a nexus"
                .into(),
        ));
    }
    if v.state.status != VolumeStatus::Online {
        return Ok(Step::Abort(
            "NotOnline",
            format!("volume status is {:?}, not Online", v.state.status),
        ));
    }
    let all = replicas(&v);
    let targets: BTreeSet<&str> = vm.spec.target_pools.iter().map(String::as_str).collect();
    st.start_replicas = Some(v.spec.num_replicas);
    st.remaining = all
        .iter()
        .filter(|r| !targets.contains(r.pool.as_str()))
        .cloned()
        .collect();
    st.known = all;
    if st.remaining.is_empty() {
        return Ok(Step::Done);
    }
    match pick_target(ctx, vm, &v, steering).await? {
        Ok(_) => Ok(Step::Next(MigrationPhase::ScalingUp)),
        Err(why) => Ok(Step::Abort("NoEligibleTarget", why)),
    }
}

/// A target-tier pool that is Online, has room, and sits on a node that holds no replica.
/// With node-cordon steering the node is what gets chosen, so a node that also hosts a pool
/// outside the target tier is not a safe target (Mayastor could pick that pool instead).
async fn pick_target(
    ctx: &Context,
    vm: &VolumeMigration,
    v: &Volume,
    steering: Steering,
) -> Result<Result<(String, String), String>, Error> {
    let used_nodes: BTreeSet<String> = replicas(v).into_iter().map(|r| r.node).collect();
    let pools = ctx.mayastor.list_pools().await?;
    let mixed_nodes: BTreeSet<&str> = pools
        .iter()
        .filter(|p| !vm.spec.target_pools.contains(&p.id))
        .filter_map(|p| p.spec.as_ref().map(|s| s.node.as_str()))
        .collect();
    let mut best: Option<(u64, String, String)> = None;
    let mut why = Vec::new();
    for p in pools
        .iter()
        .filter(|p| vm.spec.target_pools.contains(&p.id))
    {
        let Some(state) = &p.state else {
            why.push(format!("{}: no state (node down?)", p.id));
            continue;
        };
        if state.status.as_str() != "Online" {
            why.push(format!("{}: {}", p.id, state.status.as_str()));
        } else if used_nodes.contains(&state.node) {
            why.push(format!(
                "{}: node {} already holds a replica",
                p.id, state.node
            ));
        } else if steering == Steering::NodeCordon && mixed_nodes.contains(state.node.as_str()) {
            why.push(format!(
                "{}: node {} also hosts pools of other tiers, which node cordons (Mayastor < 2.10) cannot exclude",
                p.id, state.node
            ));
        } else if state.free() <= v.spec.size {
            why.push(format!(
                "{}: {} bytes free, volume needs {}",
                p.id,
                state.free(),
                v.spec.size
            ));
        } else if best.as_ref().is_none_or(|b| state.free() > b.0) {
            best = Some((state.free(), p.id.clone(), state.node.clone()));
        }
    }
    Ok(best
        .map(|(_, p, n)| (p, n))
        .ok_or_else(|| format!("no eligible target pool: {}", why.join("; "))))
}

/// Adds one replica on the target tier, placed there by cordoning every other pool (or node).
pub async fn scale_up(
    ctx: &Context,
    vm: &VolumeMigration,
    st: &mut VolumeMigrationStatus,
    steering: Steering,
    save: &mut impl AsyncSave,
) -> Result<Step, Error> {
    let start = st.start_replicas.unwrap_or(1);
    let _lock = ctx.cordon_lock.lock().await;
    let mut v = ctx.mayastor.get_volume(&vm.spec.volume_id).await?;
    if v.spec.num_replicas == start {
        let (pool, node) = match pick_target(ctx, vm, &v, steering).await? {
            Ok(t) => t,
            Err(why) => return Ok(Step::Abort("NoEligibleTarget", why)),
        };
        let others: Vec<_> = ctx
            .mayastor
            .list_pools()
            .await?
            .into_iter()
            .filter_map(|p| p.state.map(|s| (p.id, s.node)))
            .filter(|(p, n)| match steering {
                Steering::PoolCordon => *p != pool,
                Steering::NodeCordon => *n != node,
            })
            .collect();
        for (p, n) in &others {
            let c = steer::cordon_for(steering, vm, p, n);
            if !st.cordons.contains(&c) {
                st.cordons.push(c);
            }
        }
        save.save(st).await?; // recorded before placed: a cordon is never placed unrecorded
        for c in st.cordons.clone() {
            steer::place(ctx, &c).await?;
        }
        v = ctx
            .mayastor
            .set_replica_count(&vm.spec.volume_id, start + 1)
            .await?;
    }
    release_and_save(ctx, st, save).await?;
    if v.spec.num_replicas != start + 1 {
        return Ok(Step::Abort(
            "UnexpectedReplicaCount",
            format!(
                "volume has {} replicas, expected {}",
                v.spec.num_replicas,
                start + 1
            ),
        ));
    }
    let known: BTreeSet<&str> = st.known.iter().map(|r| r.uuid.as_str()).collect();
    let Some(new) = replicas(&v)
        .into_iter()
        .find(|r| !known.contains(r.uuid.as_str()))
    else {
        return Ok(Step::Wait);
    };
    st.known.push(new.clone());
    st.new_replica = Some(new.clone());
    if !vm.spec.target_pools.contains(&new.pool) {
        // Not where it was steered: undo now, while it is still unsynced and so removed first.
        ctx.mayastor
            .set_replica_count(&vm.spec.volume_id, start)
            .await?;
        return Ok(Step::Abort(
            "WrongPlacement",
            format!(
                "the new replica landed on pool {}, outside the target tier",
                new.pool
            ),
        ));
    }
    Ok(Step::Next(MigrationPhase::WaitingSync))
}

/// Waits until the new replica is rebuilt and every child is Online.
pub async fn wait_sync(
    ctx: &Context,
    vm: &VolumeMigration,
    st: &mut VolumeMigrationStatus,
    timed_out: bool,
) -> Result<Step, Error> {
    let v = ctx.mayastor.get_volume(&vm.spec.volume_id).await?;
    let Some(new) = st.new_replica.clone() else {
        return Ok(Step::Next(MigrationPhase::ScalingUp));
    };
    let start = st.start_replicas.unwrap_or(1);
    let Some(r) = v.state.replica_topology.get(&new.uuid) else {
        return Ok(Step::Abort(
            "ReplicaLost",
            format!(
                "the new replica {} disappeared; the old replicas are intact",
                new.uuid
            ),
        ));
    };
    st.rebuild_progress = r.rebuild_progress.or(healthy(&v, &new.uuid).then_some(100));
    if r.child_status
        .as_ref()
        .is_some_and(|c| *c == ChildState::Faulted)
    {
        ctx.mayastor
            .set_replica_count(&vm.spec.volume_id, start)
            .await?;
        return Ok(Step::Abort(
            "RebuildFailed",
            format!(
                "the rebuild of {} failed; it was removed and the old replicas kept",
                new.uuid
            ),
        ));
    }
    let synced = v.state.status == VolumeStatus::Online
        && healthy_count(&v) == v.state.replica_topology.len();
    if synced {
        return Ok(if vm.spec.preservation_mode {
            Step::Done
        } else {
            Step::Next(MigrationPhase::ScalingDown)
        });
    }
    if timed_out {
        // Unsynced, so Mayastor removes the new replica first.
        ctx.mayastor
            .set_replica_count(&vm.spec.volume_id, start)
            .await?;
        return Ok(Step::Abort(
            "Timeout",
            "the new replica did not sync in time; it was removed and the old replicas kept".into(),
        ));
    }
    Ok(Step::Wait)
}

/// Removes one old replica, steered as Mayastor's preferred victim, after re-checking that
/// the replacement is healthy.
pub async fn scale_down(
    ctx: &Context,
    vm: &VolumeMigration,
    st: &mut VolumeMigrationStatus,
    steering: Steering,
    save: &mut impl AsyncSave,
) -> Result<Step, Error> {
    let start = st.start_replicas.unwrap_or(1);
    let Some(victim) = st.remaining.first().cloned() else {
        return Ok(Step::Done);
    };
    let _lock = ctx.cordon_lock.lock().await;
    let mut v = ctx.mayastor.get_volume(&vm.spec.volume_id).await?;
    if v.spec.num_replicas == start + 1 {
        let new_ok = st
            .new_replica
            .as_ref()
            .is_some_and(|n| healthy(&v, &n.uuid));
        if !new_ok || healthy_count(&v) < usize::from(start) + 1 {
            // Safety re-check failed (e.g. the new replica degraded meanwhile): wait for sync.
            return Ok(Step::Next(MigrationPhase::WaitingSync));
        }
        let c = steer::cordon_for(steering, vm, &victim.pool, &victim.node);
        if !st.cordons.contains(&c) {
            st.cordons.push(c.clone());
        }
        save.save(st).await?; // recorded before placed: a cordon is never placed unrecorded
        steer::place(ctx, &c).await?;
        v = ctx
            .mayastor
            .set_replica_count(&vm.spec.volume_id, start)
            .await?;
    }
    release_and_save(ctx, st, save).await?;
    let present: BTreeSet<String> = v.state.replica_topology.keys().cloned().collect();
    if !present.contains(&victim.uuid) {
        st.remaining.remove(0);
        st.new_replica = None;
        st.rebuild_progress = None;
        return Ok(if st.remaining.is_empty() {
            Step::Done
        } else {
            Step::Next(MigrationPhase::ScalingUp)
        });
    }
    if st
        .new_replica
        .as_ref()
        .is_some_and(|n| !present.contains(&n.uuid))
    {
        st.retries += 1;
        st.new_replica = None;
        if st.retries > 3 {
            return Ok(Step::Abort(
                "CannotSteer",
                "Mayastor kept removing the new replica instead of the old one".into(),
            ));
        }
        return Ok(Step::Next(MigrationPhase::ScalingUp));
    }
    Ok(Step::Wait)
}

/// Removes the migration's cordons and records what is left, even when a removal failed.
async fn release_and_save(
    ctx: &Context,
    st: &mut VolumeMigrationStatus,
    save: &mut impl AsyncSave,
) -> Result<(), Error> {
    let result = release_all(ctx, st).await;
    save.save(st).await?;
    result
}

/// Removes every cordon the migration recorded; keeps the ones that could not be removed.
pub async fn release_all(ctx: &Context, st: &mut VolumeMigrationStatus) -> Result<(), Error> {
    let mut first_err = None;
    let mut kept = Vec::new();
    for c in std::mem::take(&mut st.cordons) {
        if let Err(e) = steer::release(ctx, &c).await {
            tracing::warn!(cordon = ?c, error = %e, "could not remove cordon; will retry");
            kept.push(c);
            first_err.get_or_insert(e);
        }
    }
    st.cordons = kept;
    first_err.map_or(Ok(()), |e| Err(e.into()))
}

/// Persists a status mid-step (before placing a cordon, after releasing them). A failed write
/// fails the step, so nothing is placed that the status does not record.
pub trait AsyncSave {
    /// Writes `st` to the cluster.
    fn save(
        &mut self,
        st: &VolumeMigrationStatus,
    ) -> impl std::future::Future<Output = Result<(), Error>>;
}
