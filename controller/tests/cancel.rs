//! Cancelling a move: deleting its VolumeMigration, or the StoragePolicy that owns it, while the
//! new replica is still rebuilding. The finalizer makes the engine remove that unsynced replica
//! (never the old one) and its own cordons before the object goes; the PV's cooldown then keeps
//! the move from starting again at once.

mod common;

use std::time::Duration;

use common::{
    Controller, Env, assert_consolidated_on_sata, assert_no_cordons, assert_outcomes,
    assert_removals_safe, caught_rebuilding, cold_two_replica_volume, create_policy, event_note,
    eventually, metrics, migration, migrations, only_unsynced_removed, phase, policy,
    second_replica_rebuilding,
};
use couchestor_common::StoragePolicy;
use couchestor_common::migration::{
    CANCELLED_ANNOTATION, CANCELLED_TO_ANNOTATION, FINALIZER, MigrationPhase,
};
use couchestor_testsupport::TestPrometheus;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams};
use serde_json::json;

/// A cold 1-replica volume on nvme-0 moving to SATA with a slow rebuild (1 GiB at 8 MiB/s:
/// about two minutes), caught in WaitingSync with its finalizer and new replica in place.
/// Returns the migration's name.
async fn caught_with_finalizer(
    test: &str,
) -> Option<(Env, String, TestPrometheus, Controller, String)> {
    let (env, id, prom, ctl, vm) = caught_rebuilding(test, 8.0).await?;
    assert!(
        vm.finalizers().iter().any(|f| f == FINALIZER),
        "{:?}",
        vm.metadata
    );
    let pools = env.replica_pools(&id).await;
    assert_eq!(pools.len(), 2, "the new replica is there: {pools:?}");
    Some((env, id, prom, ctl, vm.name_any()))
}

/// After a cancellation: the old replica alone remains, only the unsynced new one was
/// removed, no cordon is left, and everyone was told.
async fn assert_cancelled(env: &Env, id: &str, ctl: &Controller, policy: &str, name: &str) {
    assert_eq!(env.replica_pools(id).await, vec!["nvme-0".to_string()]);
    let removed = only_unsynced_removed(env).await;
    assert!(removed["pool"].as_str().unwrap().starts_with("sata"));
    let state = env.sim_state().await;
    assert_removals_safe(&state, &[(id.to_string(), 1)].into());
    assert_no_cordons(&state);

    let pv = format!("pvc-{id}");
    let note = event_note(env, "PersistentVolume", &pv, "MigrationCancelled").await;
    assert!(
        note.contains("cancelled in WaitingSync")
            && note.contains("was removed and the old replicas kept"),
        "{note}"
    );
    let claim = format!("claim-{}", &id[id.len() - 6..]);
    event_note(env, "PersistentVolumeClaim", &claim, "MigrationCancelled").await;
    let annotations = env.pv_annotations(&pv).await;
    assert!(
        annotations.contains_key(CANCELLED_ANNOTATION),
        "{annotations:?}"
    );
    assert_outcomes(env, ctl, "aborted", 1).await;
    // The cooldown holds: the (still cold) volume is not moved again right away.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let again: Vec<String> = migrations(env, policy)
        .await
        .iter()
        .map(ResourceExt::name_any)
        .filter(|n| n != name)
        .collect();
    assert!(
        again.is_empty(),
        "a cancelled move restarted at once: {again:?}"
    );
    assert!(ctl.log_text().contains("migration cancelled"));
}

/// Deletes a migration and waits until it is gone (its finalizer, if any, released).
async fn delete_migration(env: &Env, name: &str) {
    Api::<couchestor_common::migration::VolumeMigration>::all(env.client.clone())
        .delete(name, &DeleteParams::default())
        .await
        .unwrap();
    eventually(
        "the migration to be deleted",
        60,
        || migration(env, name),
        Option::is_none,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_migration_mid_rebuild_undoes_the_unsynced_replica() {
    let Some((env, id, _prom, ctl, name)) = caught_with_finalizer("cancel-vm").await else {
        return;
    };
    delete_migration(&env, &name).await;
    assert_cancelled(&env, &id, &ctl, "cancel-vm", &name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_the_policy_mid_rebuild_cancels_its_migration() {
    let Some((env, id, _prom, ctl, name)) = caught_with_finalizer("cancel-policy").await else {
        return;
    };
    Api::<StoragePolicy>::all(env.client.clone())
        .delete("cancel-policy", &DeleteParams::default())
        .await
        .unwrap();
    eventually(
        "the policy to be gone",
        30,
        || policy(&env, "cancel-policy"),
        Option::is_none,
    )
    .await;
    // Its series go with it (at its next requeue), so a deleted policy neither alerts nor
    // counts in sums; the controller's own series stay.
    let series = "storage_operator_volumes{policy=\"cancel-policy\",tier=\"hot\"}";
    assert!(metrics(&env, &ctl).await.contains(series));
    let after = eventually(
        "the deleted policy's series to be removed",
        30,
        || metrics(&env, &ctl),
        |m| !m.contains("policy=\"cancel-policy\""),
    )
    .await;
    assert!(
        after.contains("storage_operator_active_migrations"),
        "{after}"
    );
    assert!(
        ctl.log_text()
            .contains("policy deleted or no longer selected; its metrics removed"),
        "{}",
        ctl.log_text()
    );
    // The test cluster runs no garbage collector, so the migration stays: cancelled, finished,
    // its finalizer gone (a real cluster's GC then deletes it with its owner).
    let vm = eventually(
        "the migration to be cancelled",
        60,
        || migration(&env, &name),
        |vm| {
            vm.as_ref().is_some_and(|vm| {
                phase(vm) == Some(MigrationPhase::Aborted) && vm.finalizers().is_empty()
            })
        },
    )
    .await
    .unwrap();
    let st = vm.status.unwrap();
    assert_eq!(st.abort_reason.as_deref(), Some("Cancelled"), "{st:?}");
    assert!(
        st.message.contains("its StoragePolicy was deleted"),
        "{}",
        st.message
    );
    // Do what a real cluster's garbage collector does with the finished, ownerless migration,
    // and put the policy back: it sees the (still cold) volume again, and only the cooldown
    // the cancellation recorded on the PV keeps it from moving it at once, which
    // `assert_cancelled` checks.
    delete_migration(&env, &name).await;
    create_policy(&env, "cancel-policy", json!({})).await;
    eventually(
        "the recreated policy to watch the volume",
        60,
        || async { policy(&env, "cancel-policy").await.and_then(|p| p.status) },
        |s| {
            s.as_ref()
                .is_some_and(|s| s.watched_volumes == 1 && s.last_reconcile_time.is_some())
        },
    )
    .await;
    assert_cancelled(&env, &id, &ctl, "cancel-policy", &name).await;
    // Recreated, it is counted again.
    assert!(metrics(&env, &ctl).await.contains(series));
    assert!(
        ctl.log_text()
            .contains("the owning StoragePolicy is gone; cancelling the migration"),
        "{}",
        ctl.log_text()
    );
}

/// A two-replica move cancelled while its second replica rebuilds: the first replacement has
/// synced and its old replica is gone, so the volume is left on both tiers. The cancellation
/// removes only the unsynced replica, and records where the move was going; after the
/// cooldown (0 s here) the planner consolidates the volume as it does after an aborted move.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_cancelled_part_way_is_consolidated_after_the_cooldown() {
    // 1 GiB at 28 MiB/s: 37 s per replica.
    let spec = json!({"migrationTimeout": "10m", "cooldownPeriod": "0s"});
    let Some((env, id, _prom, _ctl)) = cold_two_replica_volume("cancel-split", 28.0, spec).await
    else {
        return;
    };
    let vms = second_replica_rebuilding(&env, "cancel-split").await;
    let first = vms[0].name_any();
    delete_migration(&env, &first).await;
    let annotations = env.pv_annotations(&format!("pvc-{id}")).await;
    assert_eq!(
        annotations.get(CANCELLED_TO_ANNOTATION).map(String::as_str),
        Some("cold"),
        "{annotations:?}"
    );
    let vms = eventually(
        "the consolidating move to complete",
        120,
        || migrations(&env, "cancel-split"),
        |v| v.len() == 1 && phase(&v[0]) == Some(MigrationPhase::Completed),
    )
    .await;
    let removed = assert_consolidated_on_sata(&env, &id, &vms[0]).await;
    // Removed: the cancelled, unsynced replica on SATA, and each old NVMe replica once its
    // replacement had synced.
    let on = |tier: &str| removed.iter().filter(|p| p.starts_with(tier)).count();
    assert_eq!((on("nvme"), on("sata")), (2, 1), "{removed:?}");
}
