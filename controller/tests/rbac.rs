//! The chart's RBAC is enough, proven by the real controller: the chart's ServiceAccount, roles
//! and bindings are applied to a real kube-apiserver (RBAC on), a token for the ServiceAccount
//! comes from the TokenRequest API, and the controller binary runs with only that token against
//! the Mayastor simulator. It must take the Lease, watch PVs and claims, move a volume through a
//! VolumeMigration (create, status writes, PV annotation), write the policy's status, record
//! Events on the migration, the PV and the claim — and never be told `forbidden`. `explain`
//! then runs with the same token.

mod common;

use common::{
    Env, GIB, create_policy, eventually, explain, explain_with, migrations, now, phase, series,
};
use couchestor_common::StoragePolicy;
use couchestor_common::migration::MigrationPhase;
use couchestor_mayastor_sim::Profile;
use couchestor_testsupport::cluster::lease_holder;
use couchestor_testsupport::helm::{apply, helm};
use couchestor_testsupport::prometheus;
use k8s_openapi::api::core::v1::PersistentVolume;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_runs_on_the_charts_rbac_alone() {
    let Some(helm) = helm() else { return };
    let Some(env) = Env::new("rbac", Profile::V2_10, 2048.0).await else {
        return;
    };
    // The chart, released into the test namespace (the Lease's namespace): its RBAC only.
    let objs = helm.render("couchestor", &env.ns, &[]).unwrap();
    let rbac = [
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
    ];
    for o in objs
        .iter()
        .filter(|o| rbac.contains(&o["kind"].as_str().unwrap()))
    {
        apply(&env.client, o, false).await.unwrap();
    }
    let token = couchestor_testsupport::serviceaccount::token(
        &env.client,
        &env.ns,
        "couchestor-controller",
    )
    .await
    .unwrap();
    // Every child process of this Env now runs as the ServiceAccount.
    env.cluster
        .write_kubeconfig(&env.kubeconfig, &token)
        .unwrap();

    env.add_tier_nodes("nvme", 2).await;
    env.add_tier_nodes("sata", 2).await;
    let hot = env.uuid(1);
    let pv = env.add_volume(&hot, GIB, &["sata-0"], true).await;
    let Some(prom) = prometheus(&series(&[(pv.clone(), 5000.0)], now() - 60)).await else {
        return;
    };
    // Agent discovery on too (listing the agent pods is part of the chart's Role); no agent
    // runs, so discovery finds none, which it can only say if the list was allowed.
    let ca = couchestor_testsupport::pki::TestCa::new("rbac-agents").unwrap();
    let client = ca.client_cert("couchestor-controller").unwrap();
    let tls = env.dir.path().join("agent-tls");
    std::fs::create_dir_all(&tls).unwrap();
    for (file, text) in [
        ("ca.crt", ca.cert_pem()),
        ("tls.crt", client.cert_pem),
        ("tls.key", client.key_pem),
    ] {
        std::fs::write(tls.join(file), text).unwrap();
    }
    let agent_flags = [
        "--agent-tls-dir",
        tls.to_str().unwrap(),
        "--agent-namespace",
        &env.ns,
    ];
    let policy = "rbac-move";
    create_policy(&env, policy, json!({})).await;
    // Before the controller runs, `explain` (with the same token) shows the move it will make,
    // and what a dry-run controller would do instead.
    let text = explain(&env, &pv, prom.url());
    assert!(text.contains("decision: MOVE cold -> hot: "), "{text}");
    let text = explain_with(
        &env.kubeconfig,
        &env.sim.base_url(),
        &pv,
        prom.url(),
        &["--dry-run"],
    );
    assert!(
        text.contains("--dry-run true\n")
            && text.contains("decision: WOULD MOVE (dry-run) cold -> hot: "),
        "{text}"
    );
    let ctl = env.controller("controller", prom.url(), &agent_flags);

    let done = eventually(
        "the migration finishes",
        120,
        || migrations(&env, policy),
        |vms| vms.len() == 1 && phase(&vms[0]).is_some_and(MigrationPhase::is_terminal),
    )
    .await;
    assert_eq!(
        phase(&done[0]),
        Some(MigrationPhase::Completed),
        "{:?}\n{}",
        done[0].status,
        ctl.log_text()
    );
    assert_eq!(
        env.replica_pools(&hot).await,
        ["nvme-0"].map(String::from).to_vec()
    );
    // PV patched (annotation), policy status written.
    let pv_obj = Api::<PersistentVolume>::all(env.client.clone())
        .get(&pv)
        .await
        .unwrap();
    assert!(
        pv_obj
            .metadata
            .annotations
            .unwrap_or_default()
            .contains_key("storage.billyronks.io/last-migration")
    );
    eventually(
        "the policy status counts the migration",
        30,
        || async {
            Api::<StoragePolicy>::all(env.client.clone())
                .get(policy)
                .await
                .unwrap()
                .status
                .unwrap_or_default()
        },
        |s| s.total_migrations == 1,
    )
    .await;
    // Events: on the claim (its namespace) and on the PV and migration ("default").
    let completed = |ns: &str| {
        let api = Api::<Event>::namespaced(env.client.clone(), ns);
        let pv = pv.clone();
        async move {
            api.list(&ListParams::default())
                .await
                .unwrap()
                .items
                .into_iter()
                .filter(|e| e.reason.as_deref() == Some("MigrationCompleted"))
                .filter_map(|e| e.regarding.and_then(|r| r.kind.zip(r.name)))
                .filter(|(kind, name)| kind != "PersistentVolume" || *name == pv)
                .map(|(kind, _)| kind)
                .collect::<Vec<_>>()
        }
    };
    let in_ns = eventually(
        "a MigrationCompleted Event on the claim",
        30,
        || completed(&env.ns),
        |k| k.iter().any(|k| k == "PersistentVolumeClaim"),
    )
    .await;
    assert!(in_ns.contains(&"PersistentVolumeClaim".to_string()));
    let in_default = completed("default").await;
    assert!(
        in_default.contains(&"PersistentVolume".to_string()),
        "{in_default:?}"
    );
    // The Lease, held by this controller.
    assert_eq!(
        lease_holder(&env.client, &env.ns).await.as_deref(),
        Some("controller-under-test")
    );
    let status = Api::<couchestor_common::StoragePolicy>::all(env.client.clone())
        .get(policy)
        .await
        .unwrap()
        .status
        .unwrap();
    let agents = status
        .conditions
        .iter()
        .find(|c| c.type_ == "AgentsReachable")
        .expect("AgentsReachable condition");
    assert!(
        agents.message.starts_with("no running agent pod found"),
        "{agents:?}"
    );
    let log = ctl.log_text();
    assert!(
        !log.to_lowercase().contains("forbidden"),
        "the controller was refused something:\n{log}"
    );
    assert!(log.contains("acquired the leader Lease"), "{log}");
    // `explain`, as run in the controller pod: the same token reads all it needs.
    let text = explain(&env, &pv, prom.url());
    assert!(text.contains("current tier: hot (pools: nvme-0)"), "{text}");
    assert!(
        text.contains("decision: STAYS: heat") && text.contains("within the watermarks"),
        "{text}"
    );
}
