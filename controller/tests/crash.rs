//! Crash safety: the controller is killed with SIGKILL while a migration is in each phase,
//! restarted, and the migration must finish with every invariant intact: no healthy replica
//! removed early (the simulator's removal audit), no cordon left behind, data on the target.

mod common;

use std::time::Duration;

use common::{
    Env, GIB, assert_no_cordons, assert_removals_safe, create_policy, eventually, migrations, now,
    series,
};
use couchestor_common::migration::MigrationPhase;
use couchestor_mayastor_sim::Profile;
use couchestor_testsupport::prometheus;
use serde_json::json;

async fn kill_during(phase: MigrationPhase, profile: Profile, extra: &[&str]) {
    kill_during_with(phase, profile, extra, 1).await;
}

/// Kills the controller in `phase` while moving a volume with `replicas` replicas.
async fn kill_during_with(
    phase: MigrationPhase,
    profile: Profile,
    extra: &[&str],
    replicas: usize,
) {
    let label = format!("crash-{phase:?}-{}-r{replicas}", profile.as_str())
        .to_lowercase()
        .replace('.', "-");
    // 2 GiB at 256 MiB/s: WaitingSync lasts ~8 s. Slow pool calls stretch the cordon steps.
    let Some(env) = Env::new(&label, profile, 256.0).await else {
        return;
    };
    env.add_tier_nodes("nvme", replicas.max(2)).await;
    env.add_tier_nodes("sata", replicas.max(2)).await;
    let id = env.uuid(1);
    let old: Vec<String> = (0..replicas).map(|i| format!("nvme-{i}")).collect();
    let old: Vec<&str> = old.iter().map(String::as_str).collect();
    let pv = env.add_volume(&id, 2 * GIB, &old, true).await;
    env.admin(
        "faults/latency",
        json!({"millis": 300, "path_prefix": "/v0/pools"}),
    )
    .await;
    let Some(prom) = prometheus(&series(&[(pv, 1.0)], now() - 60)).await else {
        return;
    };
    let mut first = env.controller("first", prom.url(), extra);
    create_policy(&env, &label, json!({})).await;

    // Watch closely and kill the moment the phase shows.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        let vms = migrations(&env, &label).await;
        // A migration with no phase written yet is being analysed.
        if vms.iter().any(|vm| {
            vm.status
                .as_ref()
                .and_then(|s| s.phase)
                .unwrap_or(MigrationPhase::Analyzing)
                == phase
        }) {
            first.process.kill();
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never saw {phase:?}:\n{}",
            first.log_text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let killed_state = env.sim_state().await;
    if phase == MigrationPhase::Analyzing {
        // Nothing had been touched yet: no cordon, no extra replica.
        assert_no_cordons(&killed_state);
        assert_eq!(
            killed_state["volumes"][&id]["replicas"]
                .as_object()
                .unwrap()
                .len(),
            replicas
        );
    }

    // A new process (same identity, so it takes the Lease at once) resumes.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = env.controller("second", prom.url(), extra);
    let vms = eventually(
        &format!("completion after a kill in {phase:?}"),
        120,
        || migrations(&env, &label),
        |v| {
            v.len() == 1
                && v[0]
                    .status
                    .as_ref()
                    .and_then(|s| s.phase)
                    .is_some_and(MigrationPhase::is_terminal)
        },
    )
    .await;
    common::assert_completed(&vms[0], &second.log_text());
    let pools = env.replica_pools(&id).await;
    assert_eq!(pools.len(), replicas, "{pools:?}");
    assert!(pools.iter().all(|p| p.starts_with("sata")), "{pools:?}");
    let state = env.sim_state().await;
    assert_removals_safe(&state, &[(id.clone(), replicas)].into());
    let removals = state["removals"].as_array().unwrap();
    assert_eq!(
        removals.len(),
        replicas,
        "exactly the old replicas went: {removals:?}"
    );
    assert!(
        removals
            .iter()
            .all(|r| r["pool"].as_str().unwrap().starts_with("nvme")),
        "{removals:?}"
    );
    assert_no_cordons(&state);
    // The kill really happened mid-move: the volume was not yet done then.
    let before = killed_state["volumes"][&id]["replicas"]
        .as_object()
        .unwrap();
    assert!(
        before
            .values()
            .any(|r| r["pool"].as_str().is_some_and(|p| p.starts_with("nvme"))),
        "{killed_state}"
    );
    env.sim.shutdown().await.unwrap();
}

/// Analyzing has no side effects: the restarted controller analyses again and completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_while_analyzing_then_resumed() {
    kill_during(MigrationPhase::Analyzing, Profile::V2_10, &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_while_scaling_up_then_resumed() {
    kill_during(MigrationPhase::ScalingUp, Profile::V2_10, &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_while_waiting_for_sync_then_resumed() {
    kill_during(MigrationPhase::WaitingSync, Profile::V2_10, &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_while_scaling_down_then_resumed() {
    kill_during(MigrationPhase::ScalingDown, Profile::V2_10, &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_while_scaling_up_with_node_cordons_then_resumed() {
    kill_during(
        MigrationPhase::ScalingUp,
        Profile::V2_9,
        &["--mayastor-version", "2.9.0"],
    )
    .await;
}

/// A 3-replica volume: killed in its first scale-down, resumed, all three old replicas
/// replaced one at a time, never fewer than three healthy copies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_while_scaling_down_a_three_replica_volume_then_resumed() {
    kill_during_with(MigrationPhase::ScalingDown, Profile::V2_10, &[], 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_while_waiting_for_sync_with_node_cordons_and_three_replicas_then_resumed() {
    kill_during_with(MigrationPhase::WaitingSync, Profile::V2_9, &[], 3).await;
}
