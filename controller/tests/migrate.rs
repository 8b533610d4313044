//! Real moves: the controller binary drives the Mayastor simulator through the move procedure
//! on every profile, for 1- and 3-replica volumes in both directions, and the simulator's
//! removal audit proves no healthy copy was ever removed too early.

mod common;

use std::collections::BTreeMap;

use common::{
    Env, GIB, assert_cordons, assert_no_cordons, assert_removals_safe, create_policy, event_note,
    events_about, eventually, metrics, migrations, now, phase, profiles, removed_pools, series,
};
use couchestor_common::StoragePolicy;
use couchestor_common::migration::{MigrationPhase, STEERABLE_CONDITION, VERSION_MATCH_CONDITION};
use couchestor_mayastor_sim::Profile;
use couchestor_testsupport::prometheus;
use k8s_openapi::api::core::v1::PersistentVolume;
use kube::ResourceExt;
use kube::api::Api;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moves_both_ways_for_one_and_three_replicas_on_every_profile() {
    for (profile, extra) in profiles() {
        let Some(env) = Env::new(&format!("move-{}", profile.as_str()), profile, 2048.0).await
        else {
            return;
        };
        env.add_tier_nodes("nvme", 4).await;
        env.add_tier_nodes("sata", 4).await;
        let vols = [
            (env.uuid(1), vec!["nvme-0"], 2.0, "sata"),
            (env.uuid(2), vec!["sata-0"], 5000.0, "nvme"),
            (env.uuid(3), vec!["nvme-1", "nvme-2", "nvme-3"], 3.0, "sata"),
            (
                env.uuid(4),
                vec!["sata-1", "sata-2", "sata-3"],
                4000.0,
                "nvme",
            ),
        ];
        let mut heat = Vec::new();
        let mut start = BTreeMap::new();
        for (id, pools, iops, _) in &vols {
            let pv = env.add_volume(id, GIB, pools, true).await;
            heat.push((pv, *iops));
            start.insert(id.clone(), pools.len());
        }
        let Some(prom) = prometheus(&series(&heat, now() - 60)).await else {
            return;
        };
        let ctl = env.controller("controller", prom.url(), extra);
        let policy = format!("move-{}", profile.as_str().replace('.', "-"));
        create_policy(&env, &policy, json!({})).await;

        let done = eventually(
            &format!("4 completed migrations on {}", profile.as_str()),
            180,
            || migrations(&env, &policy),
            |vms| {
                vms.len() == 4
                    && vms
                        .iter()
                        .all(|vm| phase(vm).is_some_and(MigrationPhase::is_terminal))
            },
        )
        .await;
        for vm in &done {
            assert_eq!(
                phase(vm),
                Some(MigrationPhase::Completed),
                "{}: {:?}\n{}",
                vm.spec.volume,
                vm.status,
                ctl.log_text()
            );
        }
        for (id, pools, _, tier) in &vols {
            let now_on = env.replica_pools(id).await;
            assert_eq!(now_on.len(), pools.len(), "{id}: replica count changed");
            assert!(
                now_on.iter().all(|p| p.starts_with(tier)),
                "{id} not on {tier}: {now_on:?}"
            );
            let pv = Api::<PersistentVolume>::all(env.client.clone())
                .get(&format!("pvc-{id}"))
                .await
                .unwrap();
            assert!(
                pv.metadata
                    .annotations
                    .unwrap_or_default()
                    .contains_key("storage.billyronks.io/last-migration")
            );
        }
        let state = env.sim_state().await;
        assert_removals_safe(&state, &start);
        // 1 + 1 + 3 + 3 replicas were replaced, each removal after its replacement synced.
        assert_eq!(
            state["removals"].as_array().unwrap().len(),
            8,
            "{}",
            state["removals"]
        );
        assert_no_cordons(&state);

        let status = eventually(
            "policy status counts the migrations",
            30,
            || async {
                Api::<StoragePolicy>::all(env.client.clone())
                    .get(&policy)
                    .await
                    .unwrap()
                    .status
                    .unwrap_or_default()
            },
            |s| s.total_migrations == 4,
        )
        .await;
        assert_eq!(
            (
                status.failed_migrations,
                status.active_migrations,
                status.migration_history.len()
            ),
            (0, 0, 4)
        );
        let metrics = metrics(&env, &ctl).await;
        assert!(
            metrics.contains("storage_operator_migrations_total{status=\"success\"} 4"),
            "{metrics}"
        );
        // Started and finished: on the PV and on its claim.
        let pv = format!("pvc-{}", vols[0].0);
        let claim = format!("claim-{}", &vols[0].0[vols[0].0.len() - 6..]);
        for kind in ["PersistentVolume", "PersistentVolumeClaim"] {
            let name = if kind == "PersistentVolume" {
                &pv
            } else {
                &claim
            };
            let started = event_note(&env, kind, name, "MigrationStarted").await;
            assert!(started.contains("from hot to cold"), "{started}");
            let done = event_note(&env, kind, name, "MigrationCompleted").await;
            assert!(done.contains("moved from hot to cold"), "{done}");
        }

        // Cooldown: nothing moves again, however hot the volumes stay.
        tokio::time::sleep(std::time::Duration::from_secs(7)).await;
        assert_eq!(migrations(&env, &policy).await.len(), 4);
        env.sim.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mayastor_whose_scale_down_cannot_be_steered_is_refused() {
    let Some(env) = Env::new("refuse-2-7", Profile::V2_7, 2048.0).await else {
        return;
    };
    env.add_tier_nodes("nvme", 2).await;
    env.add_tier_nodes("sata", 2).await;
    let pv = env.add_volume(&env.uuid(7), GIB, &["nvme-0"], true).await;
    let Some(prom) = prometheus(&series(&[(pv.clone(), 1.0)], now() - 60)).await else {
        return;
    };
    let _ctl = env.controller("controller", prom.url(), &[]);
    create_policy(&env, "refuse-2-7", json!({})).await;
    let vms = eventually(
        "an aborted migration",
        60,
        || migrations(&env, "refuse-2-7"),
        |v| v.len() == 1 && phase(&v[0]) == Some(MigrationPhase::Aborted),
    )
    .await;
    let st = vms[0].status.clone().unwrap();
    assert_eq!(
        st.abort_reason.as_deref(),
        Some("UnsupportedMayastorVersion")
    );
    assert!(
        st.message.contains("cannot be steered") && st.message.contains("no data was removed"),
        "{}",
        st.message
    );
    // Detected from the nodes (no --mayastor-version), visible as a condition and an Event.
    let steerable = st
        .conditions
        .iter()
        .find(|c| c.type_ == STEERABLE_CONDITION)
        .expect("a Steerable condition");
    assert_eq!(
        (steerable.status.as_str(), steerable.reason.as_str()),
        ("False", "UnsupportedMayastorVersion")
    );
    assert!(
        steerable
            .message
            .contains("2.7.1 (lowest reported by the nodes)"),
        "{}",
        steerable.message
    );
    let note = event_note(
        &env,
        "VolumeMigration",
        &vms[0].name_any(),
        "UnsupportedMayastorVersion",
    )
    .await;
    assert!(note.contains("moves are refused"), "{note}");
    // The policy says so too: a MovesSupported=False condition and a Warning Event on it.
    let policies = Api::<StoragePolicy>::all(env.client.clone());
    let moves = eventually(
        "MovesSupported=False on the policy",
        30,
        || async {
            policies
                .get("refuse-2-7")
                .await
                .ok()
                .and_then(|p| p.status)
                .and_then(|s| {
                    s.conditions
                        .into_iter()
                        .find(|c| c.type_ == "MovesSupported")
                })
        },
        |c| c.as_ref().is_some_and(|c| c.status == "False"),
    )
    .await
    .unwrap();
    assert_eq!(moves.reason, "UnsupportedMayastorVersion");
    assert!(
        moves
            .message
            .contains("moves are refused, planning and dry-run reporting continue"),
        "{}",
        moves.message
    );
    let note = event_note(
        &env,
        "StoragePolicy",
        "refuse-2-7",
        "UnsupportedMayastorVersion",
    )
    .await;
    assert!(note.contains("moves are refused"), "{note}");
    // Mayastor not answering the version check makes support Unknown for a cycle; that is no
    // recovery, so no "MovesSupported" Event says it is.
    env.admin(
        "faults/errors",
        json!({"path_prefix": "/v0/nodes", "count": 2}),
    )
    .await;
    let moves_condition = || async {
        policies
            .get("refuse-2-7")
            .await
            .ok()
            .and_then(|p| p.status)
            .and_then(|s| {
                s.conditions
                    .into_iter()
                    .find(|c| c.type_ == "MovesSupported")
            })
    };
    eventually("MovesSupported=Unknown", 30, moves_condition, |c| {
        c.as_ref().is_some_and(|c| c.status == "Unknown")
    })
    .await;
    eventually("MovesSupported=False again", 30, moves_condition, |c| {
        c.as_ref().is_some_and(|c| c.status == "False")
    })
    .await;
    let evs = events_about(&env, "StoragePolicy", "refuse-2-7").await;
    assert!(
        !evs.iter()
            .any(|e| e.reason.as_deref() == Some("MovesSupported")),
        "{evs:?}"
    );
    assert_eq!(
        env.replica_pools(&env.uuid(7)).await,
        vec!["nvme-0".to_string()]
    );
    assert!(
        env.sim_state().await["removals"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preservation_mode_keeps_the_old_replica_and_reports_on_the_claim() {
    let Some(env) = Env::new("preserve", Profile::V2_10, 2048.0).await else {
        return;
    };
    env.add_tier_nodes("nvme", 2).await;
    env.add_tier_nodes("sata", 2).await;
    let id = env.uuid(1);
    let pv = env.add_volume(&id, GIB, &["nvme-0"], true).await;
    let Some(prom) = prometheus(&series(&[(pv.clone(), 1.0)], now() - 60)).await else {
        return;
    };
    let _ctl = env.controller("controller", prom.url(), &[]);
    create_policy(&env, "preserve", json!({"preservationMode": true})).await;
    let vms = eventually(
        "a finished migration",
        90,
        || migrations(&env, "preserve"),
        |v| v.len() == 1 && phase(&v[0]).is_some_and(MigrationPhase::is_terminal),
    )
    .await;
    let st = vms[0].status.clone().unwrap();
    assert_eq!(st.phase, Some(MigrationPhase::Completed), "{st:?}");
    assert!(st.message.contains("preservation mode"), "{}", st.message);
    let pools = env.replica_pools(&id).await;
    assert_eq!(pools.len(), 2, "old and new copies both kept: {pools:?}");
    assert!(pools.contains(&"nvme-0".to_string()) && pools.iter().any(|p| p.starts_with("sata")));
    assert!(
        env.sim_state().await["removals"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let events = eventually(
        "a MigrationCompleted Event on the claim",
        30,
        || async {
            Api::<k8s_openapi::api::events::v1::Event>::namespaced(env.client.clone(), &env.ns)
                .list(&Default::default())
                .await
                .unwrap()
                .items
        },
        |evs: &Vec<k8s_openapi::api::events::v1::Event>| {
            evs.iter()
                .any(|e| e.reason.as_deref() == Some("MigrationCompleted"))
        },
    )
    .await;
    let on_claim = events
        .iter()
        .find(|e| e.reason.as_deref() == Some("MigrationCompleted"))
        .unwrap();
    assert_eq!(
        on_claim.regarding.as_ref().unwrap().kind.as_deref(),
        Some("PersistentVolumeClaim")
    );
}

/// An admin's pool and node cordons (placed before the move) survive it; the engine's own are
/// all gone, and the cordoned pool and node were never used as targets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cordons_placed_by_others_are_left_alone() {
    for profile in [Profile::V2_9, Profile::V2_10] {
        let label = format!("precordon-{}", profile.as_str().replace('.', "-"));
        let Some(env) = Env::new(&label, profile, 2048.0).await else {
            return;
        };
        env.add_tier_nodes("nvme", 2).await;
        env.add_tier_nodes("sata", 3).await;
        let id = env.uuid(1);
        let pv = env.add_volume(&id, GIB, &["nvme-0"], true).await;
        let ms = |path: &str| format!("{}/{path}", env.sim.base_url());
        // Equal pools: without these cordons sata-0 (first, node sata-node-0) would be chosen.
        let (pools, nodes): (&[&str], &[(&str, &str)]) = if profile == Profile::V2_10 {
            let r = env
                .http
                .put(ms("pools/sata-0/cordon"))
                .json(&json!({"replicas": true, "snapshots": false, "restores": false, "import": false}))
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success(), "{}", r.text().await.unwrap());
            (&["sata-0"], &[("sata-node-1", "admin-maintenance")])
        } else {
            (&[], &[("sata-node-0", "admin-maintenance")])
        };
        for (node, l) in nodes {
            let r = env
                .http
                .put(ms(&format!("nodes/{node}/cordon/{l}")))
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success());
        }
        let Some(prom) = prometheus(&series(&[(pv, 1.0)], now() - 60)).await else {
            return;
        };
        let ctl = env.controller("controller", prom.url(), &[]);
        create_policy(&env, &label, json!({})).await;
        let vms = eventually(
            "the move to finish",
            90,
            || migrations(&env, &label),
            |v| v.len() == 1 && phase(&v[0]).is_some_and(MigrationPhase::is_terminal),
        )
        .await;
        common::assert_completed(&vms[0], &ctl.log_text());
        let want = if profile == Profile::V2_10 {
            "sata-2"
        } else {
            "sata-1"
        };
        assert_eq!(env.replica_pools(&id).await, vec![want.to_string()]);
        // The admin's cordons are exactly as they were; none of the engine's is left.
        assert_cordons(&env.sim_state().await, pools, nodes);
        env.sim.shutdown().await.unwrap();
    }
}

/// Mayastor may remove another old replica than the steered one (here: one whose pool an
/// admin relabelled mid-move, which 2.10 prefers over a cordoned pool). That is progress, not
/// a reason to wait forever: the move completes and no healthy copy went early.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scale_down_that_takes_another_old_replica_counts_as_progress() {
    // 1 GiB at 128 MiB/s: each WaitingSync lasts ~8 s.
    let Some(env) = Env::new("other-victim", Profile::V2_10, 128.0).await else {
        return;
    };
    env.add_tier_nodes("nvme", 3).await;
    env.add_tier_nodes("sata", 3).await;
    let id = env.uuid(1);
    let pv = env
        .add_volume_with(
            &id,
            GIB,
            &["nvme-0", "nvme-1", "nvme-2"],
            true,
            json!({"inclusion": {"couchestor-tier": ""}}),
        )
        .await;
    let Some(prom) = prometheus(&series(&[(pv, 1.0)], now() - 60)).await else {
        return;
    };
    let ctl = env.controller("controller", prom.url(), &[]);
    create_policy(&env, "other-victim", json!({})).await;
    let vms = eventually(
        "the first WaitingSync",
        60,
        || migrations(&env, "other-victim"),
        |v| {
            v.len() == 1
                && phase(&v[0]) == Some(MigrationPhase::WaitingSync)
                && v[0].status.as_ref().unwrap().remaining.len() == 3
        },
    )
    .await;
    let st = vms[0].status.clone().unwrap();
    let (steered, other) = (&st.remaining[0], &st.remaining[1]);
    let r = env
        .http
        .delete(format!(
            "{}/pools/{}/label/couchestor-tier",
            env.sim.base_url(),
            other.pool
        ))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let vms = eventually(
        "completion",
        120,
        || migrations(&env, "other-victim"),
        |v| phase(&v[0]).is_some_and(MigrationPhase::is_terminal),
    )
    .await;
    assert_eq!(
        phase(&vms[0]),
        Some(MigrationPhase::Completed),
        "{:?}\n{}",
        vms[0].status,
        ctl.log_text()
    );
    let state = env.sim_state().await;
    let removed: Vec<&str> = state["removals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["replica"].as_str().unwrap())
        .collect();
    assert_eq!(
        removed[0], other.uuid,
        "Mayastor took the relabelled replica first, not the steered {}",
        steered.uuid
    );
    assert_eq!(removed.len(), 3, "{removed:?}");
    assert!(
        ctl.log_text()
            .contains("Mayastor removed another old replica than the steered one"),
        "{}",
        ctl.log_text()
    );
    assert_removals_safe(&state, &[(id.clone(), 3)].into());
    let pools = env.replica_pools(&id).await;
    assert!(pools.iter().all(|p| p.starts_with("sata")), "{pools:?}");
    assert_no_cordons(&state);
}

/// Told `--mayastor-version 2.9.0` while the nodes run 2.7: the disagreement is reported
/// (condition and Event), the declared version is trusted, and since 2.7 keeps removing the
/// new replica the move gives up (`CannotSteer`) with the old replica intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_declared_version_is_reported_and_an_unsteerable_scale_down_gives_up() {
    let Some(env) = Env::new("cannot-steer", Profile::V2_7, 2048.0).await else {
        return;
    };
    env.add_tier_nodes("nvme", 2).await;
    env.add_tier_nodes("sata", 2).await;
    let id = env.uuid(1);
    let pv = env.add_volume(&id, GIB, &["nvme-0"], true).await;
    let Some(prom) = prometheus(&series(&[(pv, 1.0)], now() - 60)).await else {
        return;
    };
    let ctl = env.controller("controller", prom.url(), &["--mayastor-version", "2.9.0"]);
    create_policy(&env, "cannot-steer", json!({})).await;
    let vms = eventually(
        "the move to give up",
        120,
        || migrations(&env, "cannot-steer"),
        |v| v.len() == 1 && phase(&v[0]).is_some_and(MigrationPhase::is_terminal),
    )
    .await;
    let st = vms[0].status.clone().unwrap();
    assert_eq!(
        (st.phase, st.abort_reason.as_deref(), st.retries),
        (Some(MigrationPhase::Aborted), Some("CannotSteer"), 4),
        "{st:?}\n{}",
        ctl.log_text()
    );
    let cond = |t: &str| {
        st.conditions
            .iter()
            .find(|c| c.type_ == t)
            .cloned()
            .unwrap()
    };
    let matched = cond(VERSION_MATCH_CONDITION);
    assert_eq!(
        (matched.status.as_str(), matched.reason.as_str()),
        ("False", "MayastorVersionMismatch")
    );
    assert!(
        matched.message.contains("2.9.0 disagrees") && matched.message.contains("v2.7.1"),
        "{}",
        matched.message
    );
    assert_eq!(cond(STEERABLE_CONDITION).reason, "NodeCordon");
    let note = event_note(
        &env,
        "VolumeMigration",
        &vms[0].name_any(),
        "MayastorVersionMismatch",
    )
    .await;
    assert!(note.contains("v2.7.1"), "{note}");
    assert!(
        ctl.log_text()
            .contains("declared Mayastor version disagrees with the nodes"),
        "the disagreement is logged"
    );
    // Each attempt's new (synced) replica went, never the old one.
    assert_eq!(env.replica_pools(&id).await, vec!["nvme-0".to_string()]);
    let state = env.sim_state().await;
    let removals = state["removals"].as_array().unwrap();
    assert_eq!(removals.len(), 4, "{removals:?}");
    assert!(
        removals
            .iter()
            .all(|r| r["pool"].as_str().unwrap().starts_with("sata")),
        "{removals:?}"
    );
    assert_removals_safe(&state, &[(id.clone(), 1)].into());
    assert_no_cordons(&state);
    common::assert_outcomes(&env, &ctl, "failed", 1).await;
}

/// With one node more than replicas, the node a scale-down frees is the only place for the
/// next new replica. A 3-replica move to NVMe of a volume on nodes 0-2 (their SATA pools),
/// where node 0's NVMe pool is too small for a replica: the engine removes the old replicas on
/// nodes 1 and 2 first, whose NVMe pools take the next new replicas, and node 0's last, so the
/// move completes instead of stopping part-way with `NoEligibleTarget`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_replica_move_frees_first_the_nodes_whose_target_pools_have_room() {
    let Some(env) = Env::new("move-order", Profile::V2_10, 2048.0).await else {
        return;
    };
    for i in 0..4 {
        let node = format!("node-{i}");
        env.admin("nodes", json!({ "id": node })).await;
        let nvme = if i == 0 { GIB / 2 } else { 1000 * GIB };
        for (tier, capacity) in [("nvme", nvme), ("sata", 1000 * GIB)] {
            env.admin(
                "pools",
                json!({"id": format!("{tier}-{i}"), "node": node, "capacity": capacity,
                       "labels": {"couchestor-tier": tier}}),
            )
            .await;
        }
    }
    let id = env.uuid(1);
    let pv = env
        .add_volume(&id, GIB, &["sata-0", "sata-1", "sata-2"], true)
        .await;
    let Some(prom) = prometheus(&series(&[(pv, 5000.0)], now() - 60)).await else {
        return;
    };
    let ctl = env.controller("c", prom.url(), &[]);
    create_policy(&env, "move-order", json!({})).await;
    let vms = eventually(
        "the move to finish",
        120,
        || migrations(&env, "move-order"),
        |v| v.len() == 1 && phase(&v[0]).is_some_and(MigrationPhase::is_terminal),
    )
    .await;
    assert_eq!(
        phase(&vms[0]),
        Some(MigrationPhase::Completed),
        "{:?}\n{}",
        vms[0].status,
        ctl.log_text()
    );
    let mut now_on = env.replica_pools(&id).await;
    now_on.sort();
    assert_eq!(now_on, ["nvme-1", "nvme-2", "nvme-3"]);
    let state = env.sim_state().await;
    assert_removals_safe(&state, &[(id.clone(), 3)].into());
    let removed = removed_pools(&state);
    assert_eq!(removed.len(), 3, "{removed:?}");
    assert_eq!(
        removed.last().map(String::as_str),
        Some("sata-0"),
        "{removed:?}"
    );
    assert_no_cordons(&state);
}
