//! Hands: the migration engine. Each `VolumeMigration` is driven through
//! Analyzing -> ScalingUp -> WaitingSync -> ScalingDown (repeated per old replica) ->
//! Completed, or to Aborted with the data kept. Migrations run as their own controller, outside
//! the policy reconcile, so a slow rebuild never blocks planning.

pub mod cancel;
pub mod conditions;
pub mod drive;
pub mod finish;
pub mod hands;
pub mod health;
pub mod launch;
pub mod steer;
pub mod steps;
pub mod target;
pub mod undo;

use std::sync::Arc;

use couchestor_common::migration::{MigrationPhase, VolumeMigration, VolumeMigrationStatus};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use tracing::warn;

use crate::context::{Context, Error};
use crate::reconcile::MANAGER;
use drive::Settled;
use steps::AsyncSave;

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
    let hands = ctx.hands();
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
            steps::release_all(&hands, &mut st).await?;
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
    let timed_out = drive::begin(&vm, &mut st, phase, Timestamp::now());

    let stepped = drive::assess_and_step(
        &hands,
        &vm,
        &mut st,
        phase,
        timed_out,
        &mut saver,
        async |st, a| conditions::record(&ctx, &vm, st, a).await,
    )
    .await;
    let step = match stepped {
        Ok(step) => step,
        Err(e) => return retry(&vm, &mut saver, &mut st, e).await,
    };
    match drive::settle(&vm, &mut st, phase, step, &mut saver).await? {
        Settled::Again(delay) => Ok(Action::requeue(delay)),
        Settled::Finished(abort) => finish::finish(&ctx, &vm, &mut saver, st, abort).await,
    }
}

/// A Mayastor or API error mid-step: keep the phase, report, retry.
async fn retry(
    vm: &VolumeMigration,
    saver: &mut Saver<'_>,
    st: &mut VolumeMigrationStatus,
    e: Error,
) -> Result<Action, Error> {
    drive::transient(vm, saver, st, e)
        .await
        .map(Action::requeue)
}

/// Error policy of the migration controller.
pub fn error_policy(vm: Arc<VolumeMigration>, error: &Error, _ctx: Arc<Context>) -> Action {
    warn!(migration = %vm.name_any(), %error, "migration reconcile failed");
    Action::requeue(drive::ERROR_BACKOFF)
}
