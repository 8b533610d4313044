//! Ending a migration: the terminal status, the PV annotation, metrics, Events and log line.

use couchestor_common::migration::{MigrationPhase, VolumeMigration, VolumeMigrationStatus};
use k8s_openapi::api::core::v1::{ObjectReference, PersistentVolume};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use tracing::info;

use super::steps::{self, AsyncSave};
use crate::context::{Context, Error};
use crate::observe::LAST_MIGRATION_ANNOTATION;
use crate::reconcile::{publish, pv_ref};

/// The `storage_operator_migrations_total` status of an abort reason: `aborted` when the
/// engine chose (or was told) to stop, `failed` when the move could not be done.
pub fn outcome_label(reason: &str) -> &'static str {
    match reason {
        "Timeout" | "UnsupportedMayastorVersion" | "Cancelled" => "aborted",
        _ => "failed",
    }
}

/// Writes the terminal phase (only once no cordon is left), annotates the PV on success, and
/// reports the outcome.
pub async fn finish(
    ctx: &Context,
    vm: &VolumeMigration,
    saver: &mut impl AsyncSave,
    mut st: VolumeMigrationStatus,
    abort: Option<(&'static str, String)>,
) -> Result<Action, Error> {
    steps::release_all(ctx, &mut st).await?;
    let now = Timestamp::now();
    st.finished_at = Some(Time(now));
    let (event_type, reason, note, status_label) = match &abort {
        None => {
            st.phase = Some(MigrationPhase::Completed);
            st.message = if vm.spec.preservation_mode {
                format!(
                    "new replica on {} synced; old replicas kept (preservation mode)",
                    vm.spec.to
                )
            } else {
                format!("moved from {} to {}", vm.spec.from, vm.spec.to)
            };
            annotate_pv(ctx, &vm.spec.volume, LAST_MIGRATION_ANNOTATION, now).await?;
            (
                EventType::Normal,
                "MigrationCompleted",
                st.message.clone(),
                "success",
            )
        }
        Some((why, message)) => {
            st.phase = Some(MigrationPhase::Aborted);
            st.abort_reason = Some((*why).to_string());
            st.message = format!("{message}; no data was removed");
            (
                EventType::Warning,
                "MigrationAborted",
                format!("{why}: {}", st.message),
                outcome_label(why),
            )
        }
    };
    st.rebuild_progress = st.rebuild_progress.filter(|_| abort.is_none());
    saver.save(&st).await?;
    info!(migration = %vm.name_any(), volume = %vm.spec.volume, outcome = status_label, message = %st.message, "migration finished");
    ctx.metrics
        .migrations_total
        .with_label_values(&[status_label])
        .inc();
    report(ctx, vm, event_type, reason, &note).await;
    Ok(Action::await_change())
}

/// Publishes an Event on the migration, its PV and the PV's claim.
pub async fn report(
    ctx: &Context,
    vm: &VolumeMigration,
    event_type: EventType,
    reason: &str,
    note: &str,
) {
    publish(ctx, &vm.object_ref(&()), event_type, reason, note).await;
    publish(ctx, &pv_ref(&vm.spec.volume), event_type, reason, note).await;
    if let Some(claim) = claim_of(ctx, &vm.spec.volume).await {
        publish(ctx, &claim, event_type, reason, note).await;
    }
}

/// Sets a timestamp annotation on a PV (a deleted PV needs none).
pub async fn annotate_pv(ctx: &Context, pv: &str, key: &str, at: Timestamp) -> Result<(), Error> {
    let patch = serde_json::json!({"metadata": {"annotations": {key: at.to_string()}}});
    match Api::<PersistentVolume>::all(ctx.client.clone())
        .patch(pv, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The claim bound to a PV, for Events.
async fn claim_of(ctx: &Context, pv: &str) -> Option<ObjectReference> {
    let pv = Api::<PersistentVolume>::all(ctx.client.clone())
        .get_opt(pv)
        .await
        .ok()??;
    let r = pv.spec?.claim_ref?;
    Some(ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("PersistentVolumeClaim".into()),
        namespace: r.namespace,
        name: r.name,
        uid: r.uid,
        ..Default::default()
    })
}
