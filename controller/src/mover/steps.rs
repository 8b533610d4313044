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
use tracing::info;

use super::hands::Hands;
use super::health::{healthy, healthy_count, replicas};
use super::steer::{self, Steering};
use super::target::{self, Inventory};
use super::undo;
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

/// Scale-downs that remove the wrong replica tolerated before giving up.
const MAX_RETRIES: u32 = 3;

/// Preflight: volume Online and published, a target pool with room on a node that holds no
/// replica. Records the replicas to replace. (Steering was established by the caller.)
pub async fn analyze(
    ctx: &Hands<'_>,
    vm: &VolumeMigration,
    st: &mut VolumeMigrationStatus,
    steering: Steering,
) -> Result<Step, Error> {
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
    let copies = if vm.spec.preservation_mode {
        1
    } else {
        st.remaining.len()
    };
    st.copies = Some(u8::try_from(copies).unwrap_or(u8::MAX));
    if st.remaining.is_empty() {
        return Ok(Step::Done);
    }
    let inv = Inventory::read(ctx).await?;
    match target::pick(vm, &v, steering, &inv) {
        Ok(_) => Ok(Step::Next(MigrationPhase::ScalingUp)),
        Err(why) => Ok(Step::Abort("NoEligibleTarget", why)),
    }
}

/// Adds one replica on the target tier, placed there by cordoning every other pool (or node).
pub async fn scale_up(
    ctx: &Hands<'_>,
    vm: &VolumeMigration,
    st: &mut VolumeMigrationStatus,
    steering: Steering,
    save: &mut impl AsyncSave,
) -> Result<Step, Error> {
    let start = st.start_replicas.unwrap_or(1);
    let _lock = ctx.cordon_lock.lock().await;
    let mut v = ctx.mayastor.get_volume(&vm.spec.volume_id).await?;
    if v.spec.num_replicas == start {
        let inv = Inventory::read(ctx).await?;
        let (pool, node) = match target::pick(vm, &v, steering, &inv) {
            Ok(t) => t,
            Err(why) => return Ok(Step::Abort("NoEligibleTarget", why)),
        };
        for (p, n) in target::to_cordon(vm, steering, (&pool, &node), &inv) {
            let c = steer::cordon_for(steering, vm, &p, &n);
            if !st.cordons.contains(&c) {
                st.cordons.push(c);
            }
        }
        save.save(st).await?; // recorded before placed: a cordon is never placed unrecorded
        place_all(ctx, st).await?;
        v = match ctx
            .mayastor
            .set_replica_count(&vm.spec.volume_id, start + 1)
            .await
        {
            Ok(v) => v,
            Err(e) if e.status().is_some_and(|s| s.as_u16() == 507) => {
                return Ok(Step::Abort(
                    "NoEligibleTarget",
                    format!("Mayastor found no pool for the new replica on {pool}: {e}"),
                ));
            }
            Err(e) => return Err(e.into()),
        };
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
        let note = undo::drop_unsynced_extra(ctx, vm, st).await?;
        return Ok(Step::Abort(
            "WrongPlacement",
            format!(
                "the new replica landed on pool {}, outside the target tier; {note}",
                new.pool
            ),
        ));
    }
    Ok(Step::Next(MigrationPhase::WaitingSync))
}

/// Places every recorded cordon; the ones someone else already holds are left untouched and
/// dropped from the record.
async fn place_all(ctx: &Hands<'_>, st: &mut VolumeMigrationStatus) -> Result<(), Error> {
    for c in st.cordons.clone() {
        if !steer::place(ctx, &c).await? {
            info!(cordon = ?c, "already cordoned by someone else; left untouched");
            st.cordons.retain(|x| x != &c);
        }
    }
    Ok(())
}

/// Waits until the new replica is rebuilt and every child is Online.
pub async fn wait_sync(
    ctx: &Hands<'_>,
    vm: &VolumeMigration,
    st: &mut VolumeMigrationStatus,
) -> Result<Step, Error> {
    let v = ctx.mayastor.get_volume(&vm.spec.volume_id).await?;
    let Some(new) = st.new_replica.clone() else {
        return Ok(Step::Next(MigrationPhase::ScalingUp));
    };
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
        let note = undo::drop_unsynced_extra(ctx, vm, st).await?;
        return Ok(Step::Abort(
            "RebuildFailed",
            format!("the rebuild of {} failed; {note}", new.uuid),
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
    Ok(Step::Wait)
}

/// Removes one old replica, steered as Mayastor's preferred victim, after re-checking that
/// the replacement is healthy; then judges what Mayastor actually removed.
pub async fn scale_down(
    ctx: &Hands<'_>,
    vm: &VolumeMigration,
    st: &mut VolumeMigrationStatus,
    steering: Steering,
    save: &mut impl AsyncSave,
) -> Result<Step, Error> {
    let start = st.start_replicas.unwrap_or(1);
    if st.remaining.is_empty() {
        return Ok(Step::Done);
    }
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
        let candidates: Vec<ReplicaRef> = st
            .remaining
            .iter()
            .filter(|r| v.state.replica_topology.contains_key(&r.uuid))
            .cloned()
            .collect();
        if let Some(victim) = victim(ctx, vm, &v, steering, &candidates).await? {
            // Steered first: `judge_scale_down` reports when Mayastor removed another one.
            st.remaining.sort_by_key(|r| r.uuid != victim.uuid);
            let c = steer::cordon_for(steering, vm, &victim.pool, &victim.node);
            if !st.cordons.contains(&c) {
                st.cordons.push(c);
            }
            save.save(st).await?; // recorded before placed: a cordon is never placed unrecorded
            place_all(ctx, st).await?;
        }
        v = ctx
            .mayastor
            .set_replica_count(&vm.spec.volume_id, start)
            .await?;
    }
    release_and_save(ctx, st, save).await?;
    Ok(judge_scale_down(vm, st, &v, start))
}

/// The old replica to remove this round, of `candidates` (still present, in order). When more
/// rounds follow, the first whose removal leaves a target pool for the next new replica: with
/// as many nodes as replicas plus one, the node a removal frees is the only one without a
/// replica, and removing the replica of a node whose target pool is too small would stop the
/// move part-way (`NoEligibleTarget`). Otherwise, or if no removal leaves one, the first.
async fn victim(
    ctx: &Hands<'_>,
    vm: &VolumeMigration,
    v: &Volume,
    steering: Steering,
    candidates: &[ReplicaRef],
) -> Result<Option<ReplicaRef>, Error> {
    if candidates.len() <= 1 {
        return Ok(candidates.first().cloned());
    }
    let inv = Inventory::read(ctx).await?;
    let leaves_a_target = |r: &&ReplicaRef| {
        let mut after = v.clone();
        after.state.replica_topology.remove(&r.uuid);
        target::pick(vm, &after, steering, &inv).is_ok()
    };
    Ok(candidates
        .iter()
        .find(leaves_a_target)
        .or(candidates.first())
        .cloned())
}

/// What a finished scale-down achieved. `st.remaining` still lists the old replicas as they
/// were when the round began (only its order changed, to put the steered one first; its
/// members change only here), so this is right even when the process died between the
/// scale-down and this judgement.
/// - Any old replica gone is progress, whichever one Mayastor picked (the scale-down ran only
///   with `start + 1` healthy copies, so at least `start` remain).
/// - The new replica gone (or another, e.g. one already on the target tier): retry, a few
///   times, then give up (`CannotSteer`).
fn judge_scale_down(
    vm: &VolumeMigration,
    st: &mut VolumeMigrationStatus,
    v: &Volume,
    start: u8,
) -> Step {
    if v.spec.num_replicas > start {
        return Step::Wait;
    }
    let present = |u: &str| v.state.replica_topology.contains_key(u);
    let steered = st.remaining.first().map(|r| r.uuid.clone());
    let gone: Vec<String> = st
        .remaining
        .iter()
        .filter(|r| !present(&r.uuid))
        .map(|r| r.uuid.clone())
        .collect();
    if !gone.is_empty() {
        if steered.as_ref().is_some_and(|s| !gone.contains(s)) {
            info!(migration = %vm.spec.volume, steered = ?steered, removed = ?gone,
                "Mayastor removed another old replica than the steered one; counted as progress");
        }
        st.remaining.retain(|r| present(&r.uuid));
        st.new_replica = None;
        st.rebuild_progress = None;
        return if st.remaining.is_empty() {
            Step::Done
        } else {
            Step::Next(MigrationPhase::ScalingUp)
        };
    }
    if v.state.replica_topology.len() > usize::from(start) {
        return Step::Wait; // the removal has not shown yet
    }
    st.retries += 1;
    st.new_replica = None;
    st.rebuild_progress = None;
    if st.retries > MAX_RETRIES {
        return Step::Abort(
            "CannotSteer",
            format!(
                "Mayastor removed the new replica instead of an old one {} times",
                st.retries
            ),
        );
    }
    info!(migration = %vm.spec.volume, retries = st.retries, "the scale-down removed the new replica; retrying");
    Step::Next(MigrationPhase::ScalingUp)
}

/// Removes the migration's cordons and records what is left, even when a removal failed.
async fn release_and_save(
    ctx: &Hands<'_>,
    st: &mut VolumeMigrationStatus,
    save: &mut impl AsyncSave,
) -> Result<(), Error> {
    let result = release_all(ctx, st).await;
    save.save(st).await?;
    result
}

/// Removes every cordon the migration recorded; keeps the ones that could not be removed.
pub async fn release_all(ctx: &Hands<'_>, st: &mut VolumeMigrationStatus) -> Result<(), Error> {
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
