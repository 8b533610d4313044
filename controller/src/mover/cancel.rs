//! Cancelling a migration: its finalizer, and what deleting it (or its policy) mid-move does.
//!
//! Every VolumeMigration carries [`FINALIZER`] while it runs. When it is deleted before it
//! finished, the engine first cancels it — removes an unsynced replica the move added (never
//! an old one, see [`undo::drop_unsynced_extra`]), releases its cordons, reports, marks the PV
//! so the policy's cooldown applies — and only then lets the object go. When its StoragePolicy
//! is deleted, the engine notices the vanished owner and cancels the migration the same way
//! (Kubernetes' garbage collector then deletes the finished object).

use couchestor_common::StoragePolicy;
use couchestor_common::migration::{
    CANCELLED_ANNOTATION, CANCELLED_TO_ANNOTATION, FINALIZER, MigrationPhase, VolumeMigration,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;
use serde_json::json;
use tracing::warn;

use super::finish::{annotate_pv, outcome_label, report};
use super::steps::{self, AsyncSave};
use super::undo;
use crate::context::{Context, Error};

fn api(ctx: &Context) -> Api<VolumeMigration> {
    Api::all(ctx.client.clone())
}

/// Adds the finalizer to a running migration that lacks it (e.g. one created by an older
/// controller). Guarded by a JSON-patch test, so a concurrent change fails instead of being
/// overwritten.
pub async fn ensure_finalizer(ctx: &Context, vm: &VolumeMigration) -> Result<(), Error> {
    if vm.finalizers().iter().any(|f| f == FINALIZER) {
        return Ok(());
    }
    let patch = if vm.finalizers().is_empty() {
        json!([{"op": "test", "path": "/metadata/finalizers", "value": null},
               {"op": "add", "path": "/metadata/finalizers", "value": [FINALIZER]}])
    } else {
        json!([{"op": "test", "path": "/metadata/finalizers", "value": vm.finalizers()},
               {"op": "add", "path": "/metadata/finalizers/-", "value": FINALIZER}])
    };
    api(ctx)
        .patch(
            &vm.name_any(),
            &PatchParams::default(),
            &Patch::Json::<()>(serde_json::from_value(patch)?),
        )
        .await?;
    Ok(())
}

/// Removes the finalizer (only ours: the patch tests the entry first).
pub async fn remove_finalizer(ctx: &Context, vm: &VolumeMigration) -> Result<(), Error> {
    let Some(i) = vm.finalizers().iter().position(|f| f == FINALIZER) else {
        return Ok(());
    };
    let path = format!("/metadata/finalizers/{i}");
    let patch = json!([{"op": "test", "path": path, "value": FINALIZER},
                       {"op": "remove", "path": path}]);
    match api(ctx)
        .patch(
            &vm.name_any(),
            &PatchParams::default(),
            &Patch::Json::<()>(serde_json::from_value(patch)?),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// True when the StoragePolicy that owns this migration no longer exists (deleted, or deleted
/// and re-created: another uid). A migration without an owner reference (orphaned on purpose)
/// is never cancelled here. Runs on every migration step, so the policy controller's cache
/// answers when it holds the owner; only when it does not (not synced yet, lagging, or the
/// owner really gone) does a list by name decide. (A list: the controller may list policies,
/// not get them.)
pub async fn owner_gone(ctx: &Context, vm: &VolumeMigration) -> Result<bool, Error> {
    let Some(owner) = vm
        .owner_references()
        .iter()
        .find(|o| o.kind == "StoragePolicy")
    else {
        return Ok(false);
    };
    let is_owner = |p: &StoragePolicy| p.metadata.uid.as_deref() == Some(owner.uid.as_str());
    if ctx
        .policies
        .get(&ObjectRef::new(&owner.name))
        .is_some_and(|p| is_owner(&p))
    {
        return Ok(false);
    }
    let found = Api::<StoragePolicy>::all(ctx.client.clone())
        .list(&ListParams::default().fields(&format!("metadata.name={}", owner.name)))
        .await?;
    Ok(!found.items.iter().any(is_owner))
}

/// Stops a running migration for good (`why` says what cancelled it): removes an unsynced
/// replica it added, releases its cordons, marks the PV for the cooldown, writes the Aborted
/// (`Cancelled`) status and reports. Safe to repeat after an error.
///
/// Works from a fresh read of the migration, not the watch cache: a cancellation can be
/// triggered (by the policy's deletion) before the cache has seen the engine's own last status
/// write, and undoing from a stale status could miss the replica or cordons it recorded.
pub async fn cancel(
    ctx: &Context,
    cached: &VolumeMigration,
    saver: &mut impl AsyncSave,
    why: &str,
) -> Result<(), Error> {
    let fresh = api(ctx)
        .list(&ListParams::default().fields(&format!("metadata.name={}", cached.name_any())))
        .await?
        .items
        .into_iter()
        .next();
    let vm = fresh.as_ref().unwrap_or(cached);
    let mut st = vm.status.clone().unwrap_or_default();
    let phase = st.phase.unwrap_or(MigrationPhase::Analyzing);
    let note = undo::drop_unsynced_extra(&ctx.hands(), vm, &mut st).await?;
    steps::release_all(&ctx.hands(), &mut st).await?;
    let now = Timestamp::now();
    st.phase = Some(MigrationPhase::Aborted);
    st.abort_reason = Some("Cancelled".into());
    st.finished_at = Some(Time(now));
    st.rebuild_progress = None;
    st.message = format!("cancelled in {phase:?} ({why}); {note}; no data was removed");
    annotate_pv(
        ctx,
        &vm.spec.volume,
        &[
            (CANCELLED_ANNOTATION, &now.to_string()),
            (CANCELLED_TO_ANNOTATION, vm.spec.to.as_str()),
        ],
    )
    .await?;
    saver.save(&st).await?;
    warn!(migration = %vm.name_any(), volume = %vm.spec.volume, message = %st.message, "migration cancelled");
    ctx.metrics
        .migrations_total
        .with_label_values(&[outcome_label("Cancelled")])
        .inc();
    report(
        ctx,
        vm,
        EventType::Warning,
        "MigrationCancelled",
        &st.message,
    )
    .await;
    Ok(())
}

/// The cleanup of a deleted migration; on any error the finalizer stays and it is retried.
pub async fn cleanup(
    ctx: &Context,
    vm: &VolumeMigration,
    saver: &mut impl AsyncSave,
) -> Result<Action, Error> {
    if !vm.finalizers().iter().any(|f| f == FINALIZER) {
        return Ok(Action::await_change());
    }
    let mut st = vm.status.clone().unwrap_or_default();
    if !st.phase.is_some_and(MigrationPhase::is_terminal) {
        cancel(ctx, vm, saver, "the VolumeMigration was deleted").await?;
    } else if !st.cordons.is_empty() {
        steps::release_all(&ctx.hands(), &mut st).await?;
        saver.save(&st).await?;
    }
    remove_finalizer(ctx, vm).await?;
    Ok(Action::await_change())
}
