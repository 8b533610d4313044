//! Hands: the migration engine. Each `VolumeMigration` is driven through
//! Analyzing -> ScalingUp -> WaitingSync -> ScalingDown (repeated per old replica) ->
//! Completed, or to Aborted with the data kept. Migrations run as their own controller, outside
//! the policy reconcile, so a slow rebuild never blocks planning.

pub mod launch;
pub mod steer;
pub mod steps;

use std::sync::Arc;
use std::time::Duration;

use couchestor_common::migration::{MigrationPhase, VolumeMigration, VolumeMigrationStatus};
use k8s_openapi::api::core::v1::{ObjectReference, PersistentVolume};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use tracing::{info, warn};

use crate::context::{Context, Error};
use crate::observe::LAST_MIGRATION_ANNOTATION;
use crate::reconcile::{MANAGER, publish, pv_ref};
use steps::{AsyncSave, Step};

/// Writes a migration's status with server-side apply.
struct Saver<'a> {
    api: Api<VolumeMigration>,
    name: &'a str,
}

impl AsyncSave for Saver<'_> {
    async fn save(&mut self, st: &VolumeMigrationStatus) -> Result<(), Error> {
        let patch = serde_json::json!({
            "apiVersion": "storage.billyronks.io/v1",
            "kind": "VolumeMigration",
            "status": st,
        });
        self.api
            .patch_status(
                self.name,
                &PatchParams::apply(MANAGER).force(),
                &Patch::Apply(&patch),
            )
            .await?;
        Ok(())
    }
}

/// Advances one migration by one step.
pub async fn reconcile(vm: Arc<VolumeMigration>, ctx: Arc<Context>) -> Result<Action, Error> {
    let name = vm.name_any();
    let mut saver = Saver {
        api: Api::all(ctx.client.clone()),
        name: &name,
    };
    let mut st = vm.status.clone().unwrap_or_default();
    let phase = st.phase.unwrap_or(MigrationPhase::Analyzing);
    if phase.is_terminal() {
        if !st.cordons.is_empty() {
            // A crash between the terminal write and the cleanup: finish the cleanup.
            steps::release_all(&ctx, &mut st).await?;
            saver.save(&st).await?;
        }
        return Ok(Action::await_change());
    }
    let now = Timestamp::now();
    let started = st.started_at.get_or_insert(Time(now)).0;
    let timed_out = now.as_second() - started.as_second() > vm.spec.timeout_seconds as i64;
    st.phase = Some(phase);

    let steering = match steer::steering(&ctx).await {
        Ok(Some(s)) => Some(s),
        Ok(None) => None,
        Err(e) => return transient(&vm, &mut saver, &mut st, e.into()).await,
    };
    let outcome = match (phase, steering) {
        (MigrationPhase::Analyzing, _) => steps::analyze(&ctx, &vm, &mut st).await,
        (_, None) => Ok(Step::Abort(
            "UnsupportedMayastorVersion",
            steer::UNSTEERABLE.into(),
        )),
        (MigrationPhase::ScalingUp, _) if timed_out && st.new_replica.is_none() => Ok(Step::Abort(
            "Timeout",
            "timed out before a new replica was added".into(),
        )),
        (MigrationPhase::ScalingUp, Some(s)) => {
            steps::scale_up(&ctx, &vm, &mut st, s, &mut saver).await
        }
        (MigrationPhase::WaitingSync, _) => steps::wait_sync(&ctx, &vm, &mut st, timed_out).await,
        (MigrationPhase::ScalingDown, Some(s)) => {
            steps::scale_down(&ctx, &vm, &mut st, s, &mut saver).await
        }
        (MigrationPhase::Completed | MigrationPhase::Aborted, _) => Ok(Step::Wait),
    };
    let step = match outcome {
        Ok(step) => step,
        Err(e) => return transient(&vm, &mut saver, &mut st, e).await,
    };
    match step {
        Step::Wait => {
            st.message = format!("{phase:?}");
            saver.save(&st).await?;
            Ok(Action::requeue(Duration::from_secs(1)))
        }
        Step::Next(next) => {
            info!(migration = %name, volume = %vm.spec.volume, from = ?phase, to = ?next, "migration phase");
            st.phase = Some(next);
            st.message = format!("{next:?}");
            saver.save(&st).await?;
            Ok(Action::requeue(Duration::from_millis(200)))
        }
        Step::Done => finish(&ctx, &vm, &mut saver, st, None).await,
        Step::Abort(reason, message) => {
            finish(&ctx, &vm, &mut saver, st, Some((reason, message))).await
        }
    }
}

/// A Mayastor or API error mid-step: keep the phase, report, retry. Cordons stay recorded.
async fn transient(
    vm: &VolumeMigration,
    saver: &mut Saver<'_>,
    st: &mut VolumeMigrationStatus,
    e: Error,
) -> Result<Action, Error> {
    warn!(migration = %vm.name_any(), volume = %vm.spec.volume, error = %e, "migration step failed; retrying");
    st.message = format!("retrying after error: {e}");
    saver.save(st).await?;
    Ok(Action::requeue(Duration::from_secs(3)))
}

async fn finish(
    ctx: &Context,
    vm: &VolumeMigration,
    saver: &mut Saver<'_>,
    mut st: VolumeMigrationStatus,
    abort: Option<(&'static str, String)>,
) -> Result<Action, Error> {
    // Cordons first: a terminal phase is written only once none is left.
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
            annotate_pv(ctx, &vm.spec.volume, now).await?;
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
            let label = if *why == "Timeout" || *why == "UnsupportedMayastorVersion" {
                "aborted"
            } else {
                "failed"
            };
            (
                EventType::Warning,
                "MigrationAborted",
                format!("{why}: {}", st.message),
                label,
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
    publish(ctx, &vm.object_ref(&()), event_type, reason, &note).await;
    publish(ctx, &pv_ref(&vm.spec.volume), event_type, reason, &note).await;
    if let Some(claim) = claim_of(ctx, &vm.spec.volume).await {
        publish(ctx, &claim, event_type, reason, &note).await;
    }
    Ok(Action::await_change())
}

async fn annotate_pv(ctx: &Context, pv: &str, at: Timestamp) -> Result<(), Error> {
    let patch = serde_json::json!({"metadata": {"annotations": {LAST_MIGRATION_ANNOTATION: at.to_string()}}});
    match Api::<PersistentVolume>::all(ctx.client.clone())
        .patch(pv, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(()),
        // The PV was deleted meanwhile: nothing to annotate.
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

/// Error policy of the migration controller.
pub fn error_policy(vm: Arc<VolumeMigration>, error: &Error, _ctx: Arc<Context>) -> Action {
    warn!(migration = %vm.name_any(), %error, "migration reconcile failed");
    Action::requeue(Duration::from_secs(5))
}
