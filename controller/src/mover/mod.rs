//! Hands: the migration engine. Each `VolumeMigration` is driven through
//! Analyzing -> ScalingUp -> WaitingSync -> ScalingDown (repeated per old replica) ->
//! Completed, or to Aborted with the data kept. Migrations run as their own controller, outside
//! the policy reconcile, so a slow rebuild never blocks planning.

pub mod cancel;
pub mod conditions;
pub mod finish;
pub mod health;
pub mod launch;
pub mod steer;
pub mod steps;
pub mod target;
pub mod undo;

use std::sync::Arc;
use std::time::Duration;

use couchestor_common::migration::{MigrationPhase, VolumeMigration, VolumeMigrationStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use tracing::{info, warn};

use crate::context::{Context, Error};
use crate::reconcile::MANAGER;
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
    if vm.metadata.deletion_timestamp.is_some() {
        return cancel::cleanup(&ctx, &vm, &mut saver).await;
    }
    let mut st = vm.status.clone().unwrap_or_default();
    let phase = st.phase.unwrap_or(MigrationPhase::Analyzing);
    if phase.is_terminal() {
        if !st.cordons.is_empty() {
            // A crash between the terminal write and the cleanup: finish the cleanup.
            steps::release_all(&ctx, &mut st).await?;
            saver.save(&st).await?;
        }
        // Nothing left to clean up: the migration may now be deleted without the engine.
        cancel::remove_finalizer(&ctx, &vm).await?;
        return Ok(Action::await_change());
    }
    cancel::ensure_finalizer(&ctx, &vm).await?;
    if cancel::owner_gone(&ctx, &vm).await? {
        tracing::info!(migration = %name, policy = %vm.spec.policy, "the owning StoragePolicy is gone; cancelling the migration");
        cancel::cancel(&ctx, &vm, &mut saver, "its StoragePolicy was deleted").await?;
        return Ok(Action::await_change());
    }
    let now = Timestamp::now();
    let started = st.started_at.get_or_insert(Time(now)).0;
    let timed_out = now.as_second() - started.as_second() > vm.spec.timeout_seconds as i64;
    st.phase = Some(phase);

    let assessment = match steer::assess(&ctx).await {
        Ok(a) => a,
        Err(e) => return transient(&vm, &mut saver, &mut st, e.into()).await,
    };
    conditions::record(&ctx, &vm, &mut st, &assessment).await;
    let outcome = match (phase, assessment.steering) {
        (MigrationPhase::Analyzing, _) if timed_out => Ok(Step::Abort(
            "Timeout",
            format!(
                "not started within {}s; nothing had been changed",
                vm.spec.timeout_seconds
            ),
        )),
        (_, _) if timed_out => undo::drop_unsynced_extra(&ctx, &vm, &mut st)
            .await
            .map(|note| {
                Step::Abort(
                    "Timeout",
                    format!(
                        "not done within {}s (timed out in {phase:?}); {note}",
                        vm.spec.timeout_seconds
                    ),
                )
            }),
        (MigrationPhase::Analyzing, None) => Ok(Step::Abort(
            "UnsupportedMayastorVersion",
            assessment.message.clone(),
        )),
        (_, None) if !assessment.version_known => Ok(Step::Wait),
        (_, None) => undo::drop_unsynced_extra(&ctx, &vm, &mut st)
            .await
            .map(|note| {
                Step::Abort(
                    "UnsupportedMayastorVersion",
                    format!("{}; {note}", assessment.message),
                )
            }),
        (MigrationPhase::Analyzing, Some(s)) => steps::analyze(&ctx, &vm, &mut st, s).await,
        (MigrationPhase::ScalingUp, Some(s)) => {
            steps::scale_up(&ctx, &vm, &mut st, s, &mut saver).await
        }
        (MigrationPhase::WaitingSync, Some(_)) => steps::wait_sync(&ctx, &vm, &mut st).await,
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
        Step::Done => finish::finish(&ctx, &vm, &mut saver, st, None).await,
        Step::Abort(reason, message) => {
            finish::finish(&ctx, &vm, &mut saver, st, Some((reason, message))).await
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

/// Error policy of the migration controller.
pub fn error_policy(vm: Arc<VolumeMigration>, error: &Error, _ctx: Arc<Context>) -> Action {
    warn!(migration = %vm.name_any(), %error, "migration reconcile failed");
    Action::requeue(Duration::from_secs(5))
}
