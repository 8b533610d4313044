//! Cancelling a migration: its finalizer, and what deleting it (or its policy) mid-move does.
//!
//! Every VolumeMigration carries [`FINALIZER`] while it runs. When it is deleted before it
//! finished — by hand, or because its StoragePolicy was deleted (Kubernetes' garbage collector
//! deletes the owned migrations; the engine also notices a vanished owner itself) — the engine
//! first removes an unsynced replica the move added (never an old one, see
//! [`undo::drop_unsynced_extra`]), releases its cordons, reports, marks the PV so the policy's
//! cooldown applies, and only then lets the object go.

use couchestor_common::StoragePolicy;
use couchestor_common::migration::{
    CANCELLED_ANNOTATION, FINALIZER, MigrationPhase, VolumeMigration,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use serde_json::json;
use tracing::{info, warn};

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
/// is never cancelled here.
pub async fn owner_gone(ctx: &Context, vm: &VolumeMigration) -> Result<bool, Error> {
    let Some(owner) = vm
        .owner_references()
        .iter()
        .find(|o| o.kind == "StoragePolicy")
    else {
        return Ok(false);
    };
    let policy = Api::<StoragePolicy>::all(ctx.client.clone())
        .get_opt(&owner.name)
        .await?;
    Ok(policy.is_none_or(|p| p.metadata.uid.as_deref() != Some(owner.uid.as_str())))
}

/// Deletes a migration whose policy is gone; the finalizer then cleans up.
pub async fn delete(ctx: &Context, vm: &VolumeMigration) -> Result<Action, Error> {
    info!(migration = %vm.name_any(), policy = %vm.spec.policy, "the owning StoragePolicy is gone; cancelling the migration");
    match api(ctx)
        .delete(&vm.name_any(), &DeleteParams::default())
        .await
    {
        Ok(_) => Ok(Action::await_change()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(Action::await_change()),
        Err(e) => Err(e.into()),
    }
}

/// The cleanup of a deleted migration. Each step is safe to repeat: on any error the
/// finalizer stays and the cleanup is retried.
pub async fn cleanup(
    ctx: &Context,
    vm: &VolumeMigration,
    saver: &mut impl AsyncSave,
) -> Result<Action, Error> {
    if !vm.finalizers().iter().any(|f| f == FINALIZER) {
        return Ok(Action::await_change());
    }
    let mut st = vm.status.clone().unwrap_or_default();
    let phase = st.phase.unwrap_or(MigrationPhase::Analyzing);
    if !phase.is_terminal() {
        let note = undo::drop_unsynced_extra(ctx, vm, &mut st).await?;
        steps::release_all(ctx, &mut st).await?;
        let now = Timestamp::now();
        st.phase = Some(MigrationPhase::Aborted);
        st.abort_reason = Some("Cancelled".into());
        st.finished_at = Some(Time(now));
        st.message = format!(
            "cancelled in {phase:?} (the VolumeMigration was deleted); {note}; no data was removed"
        );
        annotate_pv(ctx, &vm.spec.volume, CANCELLED_ANNOTATION, now).await?;
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
    } else if !st.cordons.is_empty() {
        steps::release_all(ctx, &mut st).await?;
        saver.save(&st).await?;
    }
    remove_finalizer(ctx, vm).await?;
    Ok(Action::await_change())
}
