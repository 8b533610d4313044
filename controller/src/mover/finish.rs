//! Ending a migration: the terminal status, the PV annotation, metrics, Events and log line.

use couchestor_common::migration::{
    MigrationPhase, TIMEOUT_REASON, VolumeMigration, VolumeMigrationStatus,
};
use k8s_openapi::api::core::v1::{ObjectReference, PersistentVolume};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use tracing::info;

use super::hands::Hands;
use super::steps::{self, AsyncSave};
use crate::context::{Context, Error};
use crate::observe::LAST_MIGRATION_ANNOTATION;
use crate::reconcile::{publish, pv_ref};

/// The `storage_operator_migrations_total` status of an abort reason: `aborted` when the
/// engine chose (or was told) to stop, `failed` when the move could not be done.
pub fn outcome_label(reason: &str) -> &'static str {
    match reason {
        TIMEOUT_REASON | "UnsupportedMayastorVersion" | "Cancelled" => "aborted",
        _ => "failed",
    }
}

/// What a finished migration reports: Event type and reason, the note, and the
/// `storage_operator_migrations_total` status label.
#[derive(Debug)]
pub struct Conclusion {
    /// Normal on success, Warning on abort.
    pub event_type: EventType,
    /// `MigrationCompleted` or `MigrationAborted`.
    pub reason: &'static str,
    /// The Event's note.
    pub note: String,
    /// `success`, `failed` or `aborted`.
    pub status_label: &'static str,
}

/// Removes every cordon, then writes the terminal phase (only once no cordon is left), the end
/// time `now` and the message into `st`. Nothing is saved or reported here.
pub async fn conclude(
    ctx: &Hands<'_>,
    vm: &VolumeMigration,
    st: &mut VolumeMigrationStatus,
    abort: Option<(&'static str, String)>,
    now: Timestamp,
) -> Result<Conclusion, Error> {
    steps::release_all(ctx, st).await?;
    st.finished_at = Some(Time(now));
    let conclusion = match &abort {
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
            Conclusion {
                event_type: EventType::Normal,
                reason: "MigrationCompleted",
                note: st.message.clone(),
                status_label: "success",
            }
        }
        Some((why, message)) => {
            st.phase = Some(MigrationPhase::Aborted);
            st.abort_reason = Some((*why).to_string());
            st.message = format!("{message}; no data was removed");
            Conclusion {
                event_type: EventType::Warning,
                reason: "MigrationAborted",
                note: format!("{why}: {}", st.message),
                status_label: outcome_label(why),
            }
        }
    };
    st.rebuild_progress = st.rebuild_progress.filter(|_| abort.is_none());
    Ok(conclusion)
}

/// Writes the terminal phase ([`conclude`]), annotates the PV on success, saves, and reports
/// the outcome.
pub async fn finish(
    ctx: &Context,
    vm: &VolumeMigration,
    saver: &mut impl AsyncSave,
    mut st: VolumeMigrationStatus,
    abort: Option<(&'static str, String)>,
) -> Result<Action, Error> {
    let now = Timestamp::now();
    let completed = abort.is_none();
    let c = conclude(&ctx.hands(), vm, &mut st, abort, now).await?;
    if completed {
        annotate_pv(
            ctx,
            &vm.spec.volume,
            &[(LAST_MIGRATION_ANNOTATION, &now.to_string())],
        )
        .await?;
    }
    saver.save(&st).await?;
    info!(migration = %vm.name_any(), volume = %vm.spec.volume, outcome = c.status_label, message = %st.message, "migration finished");
    ctx.metrics
        .migrations_total
        .with_label_values(&[c.status_label])
        .inc();
    report(ctx, vm, c.event_type, c.reason, &c.note).await;
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

/// Sets annotations on a PV (a deleted PV needs none).
pub async fn annotate_pv(ctx: &Context, pv: &str, pairs: &[(&str, &str)]) -> Result<(), Error> {
    let annotations: serde_json::Map<String, serde_json::Value> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).into()))
        .collect();
    let patch = serde_json::json!({"metadata": {"annotations": annotations}});
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
