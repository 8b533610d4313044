//! The startup check of the installed CRDs, against a real kube-apiserver: a controller started
//! on a VolumeMigration CRD older than its own schema (one status field missing, as after a
//! `helm upgrade`, which never upgrades CRDs) exits before leader election and names the field
//! and the fix; on the restored CRD it starts. This binary has its own apiserver, so the
//! changed CRD is seen by no other test.

mod common;

use std::time::{Duration, Instant};

use common::Env;
use couchestor_mayastor_sim::Profile;
use couchestor_testsupport::process::wait_until;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, PostParams};

const CRD: &str = "volumemigrations.storage.billyronks.io";

/// Replaces the installed VolumeMigration CRD by one whose v1 status lacks `copies`.
async fn install_crd_without_status_copies(env: &Env) {
    let api = Api::<CustomResourceDefinition>::all(env.client.clone());
    let mut crd = serde_json::to_value(api.get(CRD).await.unwrap()).unwrap();
    let versions = crd["spec"]["versions"].as_array_mut().unwrap();
    let v1 = versions.iter_mut().find(|v| v["name"] == "v1").unwrap();
    let status = &mut v1["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"];
    let removed = status.as_object_mut().unwrap().remove("copies");
    assert!(removed.is_some(), "the shipped CRD declares status.copies");
    let crd: CustomResourceDefinition = serde_json::from_value(crd).unwrap();
    api.replace(CRD, &PostParams::default(), &crd)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_on_older_crds_refuses_to_start_and_names_the_missing_field() {
    let Some(env) = Env::new("crds", Profile::V2_10, 2048.0).await else {
        return;
    };
    install_crd_without_status_copies(&env).await;
    // No Prometheus is needed: the check runs before anything is queried.
    let mut ctl = env.controller("controller-old-crds", "http://127.0.0.1:1", &[]);
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Err(e) = ctl.process.check_alive() {
            break e.to_string();
        }
        let log = ctl.log_text();
        assert!(
            Instant::now() < deadline,
            "still running on an older CRD:\n{log}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let log = ctl.log_text();
    assert!(!status.contains("exit status: 0"), "{status}");
    for said in [
        "refusing to start",
        CRD,
        "version v1 lacks status.copies",
        "kubectl apply --server-side -f",
    ] {
        assert!(log.contains(said), "log lacks {said:?}:\n{log}");
    }
    // It stopped before leader election: no Lease was taken.
    let leases = Api::<Lease>::namespaced(env.client.clone(), &env.ns);
    let lease = leases.get_opt("couchestor-controller").await.unwrap();
    assert!(lease.is_none(), "a refused controller took the Lease");

    // The fix the message names (the shipped CRDs) lets it start and take the Lease.
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/crds");
    env.cluster
        .install_crd_dirs(&[shipped], "couchestor-testsupport")
        .await
        .unwrap();
    let mut ctl = env.controller("controller-fixed-crds", "http://127.0.0.1:1", &[]);
    wait_until(
        "the Lease",
        &mut ctl.process,
        Duration::from_secs(60),
        || {
            let leases = leases.clone();
            async move {
                let lease = leases.get_opt("couchestor-controller").await.ok().flatten();
                lease.and_then(|l| l.spec?.holder_identity).is_some()
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}"));
    let log = ctl.log_text();
    assert!(log.contains("declare every field"), "{log}");
}
