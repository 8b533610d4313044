//! The fault matrix: rebuild failure, a node or pool going offline mid-rebuild, API errors, an
//! unpublished volume, no eligible node, a full target tier, an unparsable volumeSelector,
//! and two policies contending for one volume. Every case must end without losing a replica
//! and say why.

mod common;

use std::time::Duration;

use common::{
    Env, GIB, assert_completed, assert_consolidated_on_sata, assert_no_cordons, assert_outcomes,
    assert_removals_safe, cold_two_replica_volume, create_policy, event_note, eventually, explain,
    explain_with, metrics, migrations, now, one_cold_volume, only_unsynced_removed, phase,
    printed_row, sample, second_replica_rebuilding, series,
};
use couchestor_common::StoragePolicy;
use couchestor_common::migration::{MigrationPhase, VOLUME_LABEL, VolumeMigration};
use couchestor_common::storagepolicy::PolicyPhase;
use couchestor_mayastor_sim::Profile;
use couchestor_testsupport::prometheus;
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;

async fn single_outcome(env: &Env, policy: &str) -> VolumeMigration {
    single_outcome_within(env, policy, 90).await
}

/// The one migration of `policy` once terminal, waiting up to `seconds`.
async fn single_outcome_within(env: &Env, policy: &str, seconds: u64) -> VolumeMigration {
    let vms = eventually(
        &format!("{policy} to finish"),
        seconds,
        || migrations(env, policy),
        |v| v.len() == 1 && phase(&v[0]).is_some_and(MigrationPhase::is_terminal),
    )
    .await;
    vms.into_iter().next().unwrap()
}

async fn assert_aborted_untouched(
    env: &Env,
    id: &str,
    vm: &VolumeMigration,
    reason: &str,
    says: &str,
) {
    let st = vm.status.clone().unwrap();
    assert_eq!(st.phase, Some(MigrationPhase::Aborted), "{st:?}");
    assert_eq!(st.abort_reason.as_deref(), Some(reason), "{st:?}");
    assert!(st.message.contains(says), "{:?} lacks {says:?}", st.message);
    assert_eq!(
        env.replica_pools(id).await,
        vec!["nvme-0".to_string()],
        "the original replica must stay"
    );
    let state = env.sim_state().await;
    assert_removals_safe(&state, &[(id.to_string(), 1)].into());
    assert_no_cordons(&state);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_rebuild_aborts_and_keeps_the_old_replica() {
    let Some((env, id, prom)) = one_cold_volume("fault-rebuild", Profile::V2_10, 256.0, true).await
    else {
        return;
    };
    env.admin("faults/fail-next-rebuild", json!({"at_percent": 40}))
        .await;
    let c = env.controller("c", prom.url(), &[]);
    create_policy(&env, "fault-rebuild", json!({})).await;
    let vm = single_outcome(&env, "fault-rebuild").await;
    assert_aborted_untouched(&env, &id, &vm, "RebuildFailed", "old replicas kept").await;
    only_unsynced_removed(&env).await;
    assert_outcomes(&env, &c, "failed", 1).await;
}

/// A control plane that ignores the engine's cordons puts the new replica outside the target
/// tier: the engine notices at once and removes it while it is still unsynced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_placed_outside_the_target_tier_is_undone() {
    let Some((env, id, prom)) = one_cold_volume("fault-place", Profile::V2_10, 256.0, true).await
    else {
        return;
    };
    env.admin_put("faults/ignore-cordons", json!({"enabled": true}))
        .await;
    let c = env.controller("c", prom.url(), &[]);
    create_policy(&env, "fault-place", json!({})).await;
    let vm = single_outcome(&env, "fault-place").await;
    assert_aborted_untouched(&env, &id, &vm, "WrongPlacement", "outside the target tier").await;
    let st = vm.status.clone().unwrap();
    assert!(
        st.message.contains("was removed and the old replicas kept"),
        "{}",
        st.message
    );
    // With cordons ignored, Mayastor's own choice (most free, fewest replicas, then id) wins.
    let removed = only_unsynced_removed(&env).await;
    assert_eq!(removed["pool"], "nvme-1", "{removed}");
    assert_outcomes(&env, &c, "failed", 1).await;
}

/// migrationTimeout with a rebuild too slow to finish: the move aborts in WaitingSync, the
/// unsynced new replica is removed, the old one kept, cordons released. Meanwhile the
/// `kubectl get` PROGRESS column shows the rebuild and the active-migrations gauge counts it.
/// Afterwards the move is not retried (no cooldown holds it) until migrationTimeout is raised.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_not_done_within_the_timeout_aborts_and_keeps_the_data() {
    // 1 GiB at 4 MiB/s: 256 s of rebuild against a 60 s timeout.
    let Some((env, id, prom)) = one_cold_volume("fault-timeout", Profile::V2_10, 4.0, true).await
    else {
        return;
    };
    let c = env.controller("c", prom.url(), &[]);
    let spec = json!({"migrationTimeout": "1m", "cooldownPeriod": "0s"});
    create_policy(&env, "fault-timeout", spec).await;
    let vms = eventually(
        "the rebuild to show progress",
        60,
        || migrations(&env, "fault-timeout"),
        |v| {
            v.len() == 1
                && v[0]
                    .status
                    .as_ref()
                    .and_then(|s| s.rebuild_progress)
                    .is_some_and(|p| p >= 2)
        },
    )
    .await;
    assert_eq!(vms[0].spec.timeout_seconds, 60);
    let row = printed_row(&env, &vms[0].name_any()).await;
    assert_eq!(row["PHASE"], "WaitingSync", "{row:?}");
    let progress = row["PROGRESS"]
        .as_u64()
        .unwrap_or_else(|| panic!("{row:?}"));
    assert!((2..100).contains(&progress), "{row:?}");
    let active = eventually(
        "the active-migrations gauge",
        30,
        || metrics(&env, &c),
        |m| sample(m, "storage_operator_active_migrations") == Some(1.0),
    )
    .await;
    assert!(active.contains("storage_operator_active_migrations 1"));

    let vm = single_outcome(&env, "fault-timeout").await;
    let vm_name = vm.name_any();
    assert_aborted_untouched(&env, &id, &vm, "Timeout", "timed out in WaitingSync").await;
    let st = vm.status.clone().unwrap();
    assert!(
        st.message.contains("was removed and the old replicas kept"),
        "{}",
        st.message
    );
    // The message extrapolates the pace: 256 s of rebuild is about 5 min per copy.
    let minutes: u64 = st
        .message
        .split_once("of 1 copy done: at this pace a copy needs about ")
        .and_then(|(_, rest)| rest.split_once(" min"))
        .and_then(|(m, _)| m.parse().ok())
        .unwrap_or_else(|| panic!("no pace in {}", st.message));
    assert!((4..=8).contains(&minutes), "{}", st.message);
    assert!(st.rebuild_progress.is_none(), "{st:?}");
    only_unsynced_removed(&env).await;
    eventually(
        "the gauge back to 0",
        30,
        || metrics(&env, &c),
        |m| sample(m, "storage_operator_active_migrations") == Some(0.0),
    )
    .await;
    assert_outcomes(&env, &c, "aborted", 1).await;

    // Not retried: the same 60 s per copy would time out again.
    tokio::time::sleep(Duration::from_secs(12)).await; // two reconcile cycles
    assert_eq!(migrations(&env, "fault-timeout").await.len(), 1);
    let pv = format!("pvc-{id}");
    let text = explain(&env, &pv, prom.url());
    assert!(
        text.contains(
            "decision: STAYS: its last move timed out after 60s per replica copy and a move \
             now would get 60s"
        ),
        "{text}"
    );
    let held = "storage_operator_held_volumes{policy=\"fault-timeout\",reason=\"timed_out\"}";
    let m = metrics(&env, &c).await;
    assert_eq!(sample(&m, held), Some(1.0), "{m}");
    // With the policy out of the controller's selection for a moment (its label no longer
    // matches --policy-selector) and raised to 10 min, `explain` decides as the controller it
    // is told about: one with the default 30 min cap retries the move, one capped at 1 min
    // does not.
    patch_policy(
        &env,
        "fault-timeout",
        json!({"metadata": {"labels": {"couchestor.io/test": "paused"}},
               "spec": {"migrationTimeout": "10m"}}),
    )
    .await;
    // The controller has let go of it once its series are gone (they go at the policy's
    // next requeue); from then on a controller still acting on it would have retried.
    eventually(
        "the paused policy's series to be removed",
        30,
        || metrics(&env, &c),
        |m| sample(m, held).is_none(),
    )
    .await;
    let text = explain(&env, &pv, prom.url());
    assert!(text.contains("decision: MOVE "), "{text}");
    let capped = ["--migration-timeout-minutes", "1"];
    let text = explain_with(
        &env.kubeconfig,
        &env.sim.base_url(),
        &pv,
        prom.url(),
        &capped,
    );
    assert!(
        text.contains(
            "decision: STAYS: its last move timed out after 60s per replica copy and a move \
             now would get 60s"
        ),
        "{text}"
    );
    tokio::time::sleep(Duration::from_secs(6)).await; // more than one reconcile interval
    assert_eq!(migrations(&env, "fault-timeout").await.len(), 1);
    // Back in the controller's hands, with more time per copy: the move is tried again, with
    // it.
    patch_policy(
        &env,
        "fault-timeout",
        json!({"metadata": {"labels": {"couchestor.io/test": env.ns}}}),
    )
    .await;
    let vms = eventually(
        "the retry with the longer timeout",
        60,
        || migrations(&env, "fault-timeout"),
        |v| v.len() == 2,
    )
    .await;
    let retry = vms.iter().find(|vm| vm.name_any() != vm_name).unwrap();
    assert_eq!(retry.spec.timeout_seconds, 600, "{retry:?}");
}

/// Sets the policy's `migrationTimeout`, as an operator raising it after a Timeout.
async fn set_migration_timeout(env: &Env, policy: &str, timeout: &str) {
    patch_policy(env, policy, json!({"spec": {"migrationTimeout": timeout}})).await;
}

/// Merge-patches the policy.
async fn patch_policy(env: &Env, policy: &str, patch: serde_json::Value) {
    Api::<StoragePolicy>::all(env.client.clone())
        .patch(policy, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .unwrap();
}

/// Takes the new replica's node (`"nodes"`) or pool (`"pools"`) down while it rebuilds.
async fn target_fails_mid_rebuild(test: &str, what: &str, status: &str) {
    let Some((env, id, prom)) = one_cold_volume(test, Profile::V2_10, 128.0, true).await else {
        return;
    };
    let _c = env.controller("c", prom.url(), &[]);
    create_policy(&env, test, json!({})).await;
    let vm = eventually(
        "WaitingSync",
        60,
        || migrations(&env, test),
        |v| v.len() == 1 && phase(&v[0]) == Some(MigrationPhase::WaitingSync),
    )
    .await;
    let new = vm[0].status.clone().unwrap().new_replica.unwrap();
    let target = if what == "nodes" { new.node } else { new.pool };
    let url = format!("{}/{what}/{target}/status", env.sim.admin_url());
    let r = env
        .http
        .put(url)
        .json(&json!({ "status": status }))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let vm = single_outcome(&env, test).await;
    assert_aborted_untouched(&env, &id, &vm, "RebuildFailed", "old replicas kept").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_target_node_going_offline_mid_rebuild_aborts_safely() {
    target_fails_mid_rebuild("fault-node", "nodes", "Offline").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_target_pool_faulting_mid_rebuild_aborts_safely() {
    target_fails_mid_rebuild("fault-pool", "pools", "Faulted").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_api_errors_and_slow_answers_are_retried_to_completion() {
    let Some((env, id, prom)) = one_cold_volume("fault-api", Profile::V2_10, 2048.0, true).await
    else {
        return;
    };
    env.admin(
        "faults/errors",
        json!({"path_prefix": format!("/v0/volumes/{id}/replica_count"), "count": 3}),
    )
    .await;
    env.admin(
        "faults/latency",
        json!({"millis": 200, "path_prefix": "/v0/volumes"}),
    )
    .await;
    let c = env.controller("c", prom.url(), &[]);
    create_policy(&env, "fault-api", json!({})).await;
    let vm = single_outcome(&env, "fault-api").await;
    assert_eq!(
        phase(&vm),
        Some(MigrationPhase::Completed),
        "{:?}",
        vm.status
    );
    assert!(env.replica_pools(&id).await[0].starts_with("sata"));
    assert!(
        c.log_text().contains("migration step failed; retrying"),
        "the 500s were not seen"
    );
    assert_no_cordons(&env.sim_state().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unpublished_volume_is_refused() {
    let Some((env, id, prom)) = one_cold_volume("fault-unpub", Profile::V2_10, 2048.0, false).await
    else {
        return;
    };
    let _c = env.controller("c", prom.url(), &[]);
    create_policy(&env, "fault-unpub", json!({})).await;
    let vm = single_outcome(&env, "fault-unpub").await;
    assert_aborted_untouched(&env, &id, &vm, "Unpublished", "not published").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_eligible_node_is_refused_with_the_reason() {
    // Mayastor 2.9 steers by node cordon, so a node hosting both tiers cannot be a target.
    let Some(env) = Env::new("fault-nonode", Profile::V2_9, 2048.0).await else {
        return;
    };
    env.add_nodes(2, &["nvme", "sata"]).await;
    let id = env.uuid(1);
    let pv = env.add_volume(&id, GIB, &["nvme-0"], true).await;
    let Some(prom) = prometheus(&series(&[(pv, 1.0)], now() - 60)).await else {
        return;
    };
    let _c = env.controller("c", prom.url(), &["--mayastor-version", "2.9.0"]);
    create_policy(&env, "fault-nonode", json!({})).await;
    let vm = single_outcome(&env, "fault-nonode").await;
    assert_aborted_untouched(&env, &id, &vm, "NoEligibleTarget", "node cordons").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_target_tier_is_never_planned_into() {
    let Some(env) = Env::new("fault-full", Profile::V2_10, 2048.0).await else {
        return;
    };
    env.add_tier_nodes("nvme", 2).await;
    env.admin("nodes", json!({"id": "sata-node-0"})).await;
    env.admin("pools", json!({"id": "sata-0", "node": "sata-node-0", "capacity": GIB, "labels": {"couchestor-tier": "sata"}})).await;
    let id = env.uuid(1);
    let pv = env.add_volume(&id, 2 * GIB, &["nvme-0"], true).await;
    let Some(prom) = prometheus(&series(&[(pv.clone(), 1.0)], now() - 60)).await else {
        return;
    };
    let c = env.controller("c", prom.url(), &[]);
    create_policy(&env, "fault-full", json!({})).await;
    tokio::time::sleep(Duration::from_secs(12)).await; // two reconcile cycles
    assert!(
        migrations(&env, "fault-full").await.is_empty(),
        "a move into a full tier was started"
    );
    let text = explain(&env, &pv, prom.url());
    assert!(
        text.contains("decision: STAYS: tier cold has no room"),
        "{text}\n{}",
        c.log_text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_policies_contending_for_one_volume_start_one_migration() {
    let Some((env, id, prom)) = one_cold_volume("fault-contend", Profile::V2_10, 512.0, true).await
    else {
        return;
    };
    let _c = env.controller("c", prom.url(), &[]);
    create_policy(&env, "contend-a", json!({})).await;
    create_policy(
        &env,
        "contend-b",
        json!({"highWatermarkIOPS": 2000, "lowWatermarkIOPS": 50}),
    )
    .await;
    let pv = format!("pvc-{id}");
    let all = eventually(
        "the volume's migration to finish",
        90,
        || async {
            Api::<VolumeMigration>::all(env.client.clone())
                .list(&ListParams::default().labels(&format!("{VOLUME_LABEL}={pv}")))
                .await
                .unwrap()
                .items
        },
        |v| {
            !v.is_empty()
                && v.iter()
                    .all(|vm| phase(vm).is_some_and(MigrationPhase::is_terminal))
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(7)).await;
    let after = Api::<VolumeMigration>::all(env.client.clone())
        .list(&ListParams::default().labels(&format!("{VOLUME_LABEL}={pv}")))
        .await
        .unwrap()
        .items;
    assert_eq!(
        after.len(),
        1,
        "one volume, one migration: {:?}",
        after.iter().map(|v| &v.spec.policy).collect::<Vec<_>>()
    );
    assert_eq!(phase(&all[0]), Some(MigrationPhase::Completed));
    assert_eq!(
        env.sim_state().await["removals"].as_array().unwrap().len(),
        1
    );
}

/// A two-replica move that times out after replacing one replica leaves the volume on both
/// tiers (nothing is removed to undo a synced replica). The next cycle consolidates it: a new
/// migration places only the replica still missing, and the volume ends on one tier with its
/// replica count, every removal after its replacement synced. Like any move after a timeout, it
/// waits until migrationTimeout allows more time per copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_interrupted_part_way_is_consolidated_by_the_next_one() {
    // 1 GiB at 28 MiB/s: 37 s per replica against 60 s per copy (120 s for the two). Once the
    // first replacement has synced, the rebuild slows to 1 MiB/s so the second cannot.
    let spec = json!({"migrationTimeout": "1m", "cooldownPeriod": "0s"});
    let Some((env, id, _prom, c)) = cold_two_replica_volume("fault-split", 28.0, spec).await else {
        return;
    };
    second_replica_rebuilding(&env, "fault-split").await;
    env.admin_put("rebuild-rate", json!({"mib_per_sec": 1.0}))
        .await;
    let vms = eventually(
        "the first move to time out",
        120,
        || migrations(&env, "fault-split"),
        |v| {
            v.iter()
                .any(|vm| phase(vm) == Some(MigrationPhase::Aborted))
        },
    )
    .await;
    let first = vms
        .into_iter()
        .find(|vm| phase(vm) == Some(MigrationPhase::Aborted))
        .unwrap();
    let st = first.status.clone().unwrap();
    assert_eq!(st.abort_reason.as_deref(), Some("Timeout"), "{st:?}");
    assert_eq!(st.copies, Some(2), "{st:?}");
    assert!(
        st.message
            .contains("not done within 120s (60s for each of 2 replica copies): timed out in WaitingSync, with 1."),
        "{}",
        st.message
    );
    env.admin_put("rebuild-rate", json!({"mib_per_sec": 28.0}))
        .await;
    // Under the same 60 s per copy the consolidation is held: its copy would be as long as the
    // one that ran out. With more time per copy it starts.
    tokio::time::sleep(Duration::from_secs(12)).await; // two reconcile cycles
    assert_eq!(migrations(&env, "fault-split").await.len(), 1);
    set_migration_timeout(&env, "fault-split", "2m").await;
    let vms = eventually(
        "the consolidation to finish",
        180,
        || migrations(&env, "fault-split"),
        |v| {
            v.iter()
                .any(|vm| phase(vm) == Some(MigrationPhase::Completed))
                && v.iter()
                    .all(|vm| phase(vm).is_some_and(MigrationPhase::is_terminal))
        },
    )
    .await;
    let [second] = vms
        .iter()
        .filter(|vm| vm.name_any() != first.name_any())
        .collect::<Vec<_>>()[..]
    else {
        panic!("expected two migrations, got {vms:#?}\n{}", c.log_text());
    };
    assert_eq!(second.status.as_ref().and_then(|s| s.copies), Some(1));
    assert_eq!(second.spec.timeout_seconds, 120);
    let removed = assert_consolidated_on_sata(&env, &id, second).await;
    // The timed-out replica (unsynced) and the two old ones: one per replacement, no more.
    let healthy_removed = removed.iter().filter(|p| p.starts_with("nvme")).count();
    assert_eq!(healthy_removed, 2, "{removed:?}");
}

/// `migrationTimeout` is per replica copy: a two-replica move whose copies each fit in the
/// timeout completes, although the whole move takes longer than one timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_replica_move_gets_the_timeout_for_each_replica_copy() {
    // 1 GiB at 24 MiB/s: 43 s per replica, 85 s or more for both, against 60 s per copy.
    let spec = json!({"migrationTimeout": "1m"});
    let Some((env, id, _prom, c)) = cold_two_replica_volume("fault-per-copy", 24.0, spec).await
    else {
        return;
    };
    let vm = single_outcome_within(&env, "fault-per-copy", 180).await;
    assert_completed(&vm, &c.log_text());
    let st = vm.status.clone().unwrap();
    assert_eq!(st.copies, Some(2), "{st:?}");
    let took = st.finished_at.unwrap().0.as_second() - st.started_at.unwrap().0.as_second();
    assert!(
        took > 60,
        "the move took {took} s, so it does not show the rule"
    );
    let now_on = env.replica_pools(&id).await;
    assert_eq!(now_on.len(), 2, "{now_on:?}");
    assert!(now_on.iter().all(|p| p.starts_with("sata")), "{now_on:?}");
    assert_removals_safe(&env.sim_state().await, &[(id.clone(), 2)].into());
}

/// A volumeSelector the API server accepts but that does not parse (an operator in lower
/// case) puts the policy in phase Error with a message naming the field, and moves nothing:
/// read as "no selector" it would widen the policy to every volume of the StorageClass.
/// Fixed, the selector applies: the claim lacks the label, so the cold volume stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unparsable_volume_selector_is_an_error_not_every_volume() {
    let Some((env, _id, prom)) =
        one_cold_volume("fault-selector", Profile::V2_10, 200.0, true).await
    else {
        return;
    };
    let c = env.controller("c", prom.url(), &[]);
    let expr =
        |op: &str| json!({"matchExpressions": [{"key": "app", "operator": op, "values": ["db"]}]});
    create_policy(
        &env,
        "fault-selector",
        json!({"volumeSelector": expr("in"), "cooldownPeriod": "0s"}),
    )
    .await;
    let status = |env: &Env| {
        let api = Api::<StoragePolicy>::all(env.client.clone());
        async move { api.get("fault-selector").await.unwrap().status }
    };
    let st = eventually(
        "phase Error",
        60,
        || status(&env),
        |s| {
            s.as_ref()
                .is_some_and(|s| s.phase == Some(PolicyPhase::Error))
        },
    )
    .await
    .unwrap();
    let ready = st.conditions.iter().find(|c| c.type_ == "Ready").unwrap();
    assert_eq!(ready.status, "False", "{ready:?}");
    assert!(
        ready.message.contains("invalid volumeSelector"),
        "{ready:?}"
    );
    assert!(migrations(&env, "fault-selector").await.is_empty());

    Api::<StoragePolicy>::all(env.client.clone())
        .patch(
            "fault-selector",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"volumeSelector": expr("In")}})),
        )
        .await
        .unwrap();
    let st = eventually(
        "phase Active",
        60,
        || status(&env),
        |s| {
            s.as_ref()
                .is_some_and(|s| s.phase == Some(PolicyPhase::Active))
        },
    )
    .await
    .unwrap();
    assert_eq!(st.watched_volumes, 0, "{st:?}");
    tokio::time::sleep(Duration::from_secs(6)).await; // more than one reconcile interval
    assert!(migrations(&env, "fault-selector").await.is_empty());

    // Applied, it exports its decision; invalid again, those series go (their last values
    // would go on alerting) while the phase gauge says Error.
    let decision = "storage_operator_volumes{policy=\"fault-selector\",tier=\"hot\"}";
    assert!(metrics(&env, &c).await.contains(decision));
    Api::<StoragePolicy>::all(env.client.clone())
        .patch(
            "fault-selector",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"volumeSelector": expr("in")}})),
        )
        .await
        .unwrap();
    let m = eventually(
        "the invalid policy's decision series removed",
        60,
        || metrics(&env, &c),
        |m| !m.contains(decision),
    )
    .await;
    let in_error = m.lines().any(|l| {
        l.starts_with("storage_operator_policy_phase{")
            && l.contains("policy=\"fault-selector\"")
            && l.contains("phase=\"Error\"")
            && l.ends_with(" 1")
    });
    assert!(in_error, "{m}");
    assert!(
        !m.contains("storage_operator_planned_moves{policy=\"fault-selector\"}"),
        "{m}"
    );
}

/// The API server refusing to create VolumeMigrations (here a ValidatingAdmissionPolicy, as a
/// quota or an admission webhook would): the policy's status is still written, with Ready
/// False `LaunchFailed` and the server's message, a Warning Event says so once, the reconcile
/// counts as `error`, and nothing moves. Once the API server admits them again, the move starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_the_api_server_refuses_are_reported_and_retried() {
    use k8s_openapi::api::admissionregistration::v1::{
        ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
    };
    let Some((env, id, prom)) = one_cold_volume("fault-launch", Profile::V2_10, 2048.0, true).await
    else {
        return;
    };
    // Scoped to this test's policy: the API server is shared with the other tests.
    let name = format!("deny-{}", env.ns);
    let vap: ValidatingAdmissionPolicy = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {"resourceRules": [{
                "apiGroups": ["storage.billyronks.io"], "apiVersions": ["*"],
                "operations": ["CREATE"], "resources": ["volumemigrations"]}]},
            "validations": [{"expression": "object.spec.policy != 'fault-launch'",
                             "message": "migrations are frozen by the fault test"}]
        }
    }))
    .unwrap();
    let binding: ValidatingAdmissionPolicyBinding = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"policyName": name, "validationActions": ["Deny"]}
    }))
    .unwrap();
    let pp = kube::api::PostParams::default();
    Api::<ValidatingAdmissionPolicy>::all(env.client.clone())
        .create(&pp, &vap)
        .await
        .unwrap();
    let bindings = Api::<ValidatingAdmissionPolicyBinding>::all(env.client.clone());
    bindings.create(&pp, &binding).await.unwrap();
    // The API server enforces a new policy once its informer has it: wait for a denial of a
    // dry-run create before starting.
    let probe = VolumeMigration::new(
        &format!("probe-{}", env.ns),
        couchestor_common::migration::VolumeMigrationSpec {
            volume: "pvc-probe".into(),
            volume_id: "probe".into(),
            policy: "fault-launch".into(),
            from: couchestor_common::Tier::Hot,
            to: couchestor_common::Tier::Cold,
            target_pools: vec!["sata-0".into()],
            preservation_mode: false,
            timeout_seconds: 600,
            reason: String::new(),
        },
    );
    let dry = kube::api::PostParams {
        dry_run: true,
        ..Default::default()
    };
    let migrations_api = Api::<VolumeMigration>::all(env.client.clone());
    let denied = eventually(
        "the admission policy to be enforced",
        30,
        || async {
            migrations_api
                .create(&dry, &probe)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        },
        |r| {
            r.as_ref()
                .is_err_and(|e| e.contains("frozen by the fault test"))
        },
    )
    .await;
    assert!(denied.is_err());

    let c = env.controller("c", prom.url(), &[]);
    create_policy(&env, "fault-launch", json!({})).await;
    let status = || async {
        Api::<StoragePolicy>::all(env.client.clone())
            .get("fault-launch")
            .await
            .unwrap()
            .status
    };
    let ready = |s: &Option<couchestor_common::StoragePolicyStatus>| {
        s.as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready").cloned())
    };
    let st = eventually("Ready=False LaunchFailed", 60, status, |s| {
        ready(s).is_some_and(|c| c.reason == "LaunchFailed")
    })
    .await;
    let cond = ready(&st).unwrap();
    assert_eq!(cond.status, "False", "{cond:?}");
    assert!(
        cond.message.contains("frozen by the fault test"),
        "{cond:?}"
    );
    // The rest of the status is as observed.
    assert_eq!(st.as_ref().unwrap().watched_volumes, 1, "{st:?}");
    let note = event_note(&env, "StoragePolicy", "fault-launch", "LaunchFailed").await;
    assert!(note.contains("frozen by the fault test"), "{note}");
    let errors = "storage_operator_reconcile_total{policy=\"fault-launch\",result=\"error\"}";
    eventually(
        "the failed reconcile counted",
        30,
        || metrics(&env, &c),
        |m| sample(m, errors).is_some_and(|n| n >= 1.0),
    )
    .await;
    assert!(migrations(&env, "fault-launch").await.is_empty());

    bindings
        .delete(&name, &kube::api::DeleteParams::default())
        .await
        .unwrap();
    let vm = single_outcome(&env, "fault-launch").await;
    assert_completed(&vm, &c.log_text());
    assert_eq!(env.replica_pools(&id).await.len(), 1);
    eventually("Ready=True again", 60, status, |s| {
        ready(s).is_some_and(|c| c.status == "True")
    })
    .await;
    Api::<ValidatingAdmissionPolicy>::all(env.client.clone())
        .delete(&name, &kube::api::DeleteParams::default())
        .await
        .unwrap();
}
