//! Real moves: the controller binary drives the Mayastor simulator through the move procedure
//! on every profile, for 1- and 3-replica volumes in both directions, and the simulator's
//! removal audit proves no healthy copy was ever removed too early.

mod common;

use std::collections::BTreeMap;

use common::{
    Env, GIB, assert_no_cordons, assert_removals_safe, create_policy, eventually, migrations, now,
    phase, profiles, series,
};
use couchestor_common::StoragePolicy;
use couchestor_common::migration::MigrationPhase;
use couchestor_mayastor_sim::Profile;
use couchestor_testsupport::prometheus;
use k8s_openapi::api::core::v1::PersistentVolume;
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
        let metrics = env
            .http
            .get(format!("http://127.0.0.1:{}/metrics", ctl.metrics_port))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            metrics.contains("storage_operator_migrations_total{status=\"success\"} 4"),
            "{metrics}"
        );

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
