//! Proof that the test cluster is a real Kubernetes API server: schema + CEL validation,
//! the status subresource with server-side apply, watches, and Lease contention.

use std::time::Duration;

use couchestor_common::storagepolicy::PolicyPhase;
use couchestor_common::{StoragePolicy, StoragePolicySpec, StoragePolicyStatus};
use couchestor_testsupport::cluster;
use couchestor_testsupport::cluster::lease_holder;
use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube_lease_manager::LeaseManagerBuilder;
use serde_json::json;

fn policy(name: &str, high: u32, low: u32) -> StoragePolicy {
    let spec: StoragePolicySpec = serde_json::from_value(json!({
        "storageClassName": "mayastor-tiered",
        "highWatermarkIOPS": high,
        "lowWatermarkIOPS": low,
    }))
    .unwrap();
    StoragePolicy::new(name, spec)
}

/// Posts an arbitrary (possibly invalid) body, bypassing the typed client's own checks.
async fn create_raw(client: kube::Client, body: serde_json::Value) -> kube::Result<DynamicObject> {
    let api = Api::<DynamicObject>::all_with(client, &ApiResource::erase::<StoragePolicy>(&()));
    let obj: DynamicObject = serde_json::from_value(body).expect("test body is an object");
    api.create(&PostParams::default(), &obj).await
}

fn rejection(err: kube::Error) -> String {
    match err {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 422, "expected 422 Invalid, got {s:?}");
            s.message
        }
        other => panic!("expected an API rejection, got {other}"),
    }
}

#[tokio::test]
async fn apiserver_rejects_invalid_policies_naming_the_field() {
    let Some(c) = cluster().await else { return };
    let api = Api::<StoragePolicy>::all(c.client());
    let prefix = couchestor_testsupport::cluster::unique_name("invalid");

    // CEL rule across fields.
    let msg = rejection(
        api.create(
            &PostParams::default(),
            &policy(&format!("{prefix}-a"), 100, 100),
        )
        .await
        .unwrap_err(),
    );
    assert!(
        msg.contains("spec.lowWatermarkIOPS") && msg.contains("lower than highWatermarkIOPS"),
        "{msg}"
    );

    // Unparsable duration: the API server's CEL duration() rejects it.
    let base = serde_json::to_value(policy(&format!("{prefix}-b"), 500, 50)).unwrap();
    let mut bad = base.clone();
    bad["spec"]["samplingWindow"] = json!("one hour");
    let msg = rejection(create_raw(c.client(), bad).await.unwrap_err());
    assert!(msg.contains("spec.samplingWindow"), "{msg}");

    // OpenAPI range.
    let mut bad = base.clone();
    bad["spec"]["maxConcurrentMigrations"] = json!(0);
    let msg = rejection(create_raw(c.client(), bad).await.unwrap_err());
    assert!(msg.contains("spec.maxConcurrentMigrations"), "{msg}");

    // Tier list rules.
    let mut bad = base.clone();
    bad["spec"]["tiers"] = json!([
        {"name": "hot", "poolSelector": {"matchLabels": {"couchestor-tier": "nvme"}}},
        {"name": "hot", "poolSelector": {"matchLabels": {"couchestor-tier": "sata"}}}
    ]);
    let msg = rejection(create_raw(c.client(), bad).await.unwrap_err());
    assert!(
        msg.contains("spec.tiers") && msg.contains("unique"),
        "{msg}"
    );

    // Cron window with the wrong number of fields.
    let mut bad = base.clone();
    bad["spec"]["migrationWindow"] = json!({"schedule": "0 22 * *", "duration": "4h"});
    let msg = rejection(create_raw(c.client(), bad).await.unwrap_err());
    assert!(msg.contains("spec.migrationWindow.schedule"), "{msg}");

    // Density watermarks: both or neither, low below high.
    let mut bad = base.clone();
    bad["spec"]["highWatermarkIOPSPerTiB"] = json!(2048);
    let msg = rejection(create_raw(c.client(), bad).await.unwrap_err());
    assert!(
        msg.contains("spec.lowWatermarkIOPSPerTiB") && msg.contains("or neither"),
        "{msg}"
    );
    let mut bad = base.clone();
    bad["spec"]["highWatermarkIOPSPerTiB"] = json!(256);
    bad["spec"]["lowWatermarkIOPSPerTiB"] = json!(2048);
    let msg = rejection(create_raw(c.client(), bad).await.unwrap_err());
    assert!(
        msg.contains("spec.lowWatermarkIOPSPerTiB")
            && msg.contains("lower than highWatermarkIOPSPerTiB"),
        "{msg}"
    );

    // The sustained window: within bounds and not shorter than the sampling window.
    let mut bad = base.clone();
    bad["spec"]["sustainedWindow"] = json!("30m");
    let msg = rejection(create_raw(c.client(), bad).await.unwrap_err());
    assert!(
        msg.contains("spec.sustainedWindow") && msg.contains("not be shorter than samplingWindow"),
        "{msg}"
    );
    let mut bad = base.clone();
    bad["spec"]["sustainedWindow"] = json!("96h");
    let msg = rejection(create_raw(c.client(), bad).await.unwrap_err());
    assert!(
        msg.contains("spec.sustainedWindow") && msg.contains("between 5m and 72h"),
        "{msg}"
    );

    // The valid one is accepted and the server fills in the schema defaults.
    let created = api
        .create(
            &PostParams::default(),
            &policy(&format!("{prefix}-ok"), 500, 50),
        )
        .await
        .unwrap();
    let got = api
        .get(&created.metadata.name.clone().unwrap())
        .await
        .unwrap();
    assert_eq!(
        got.spec.sampling_window.to_string(),
        "1h0m0s"
            .parse::<kube::core::Duration>()
            .unwrap()
            .to_string()
    );
    assert_eq!(got.spec.max_concurrent_migrations, 2);
}

#[tokio::test]
async fn status_is_written_through_the_subresource_with_server_side_apply() {
    let Some(c) = cluster().await else { return };
    let api = Api::<StoragePolicy>::all(c.client());
    let name = couchestor_testsupport::cluster::unique_name("ssa");
    api.create(&PostParams::default(), &policy(&name, 800, 80))
        .await
        .unwrap();

    let status = StoragePolicyStatus {
        phase: Some(PolicyPhase::Active),
        watched_volumes: 7,
        conditions: vec![Condition {
            type_: "Ready".into(),
            status: "True".into(),
            reason: "Reconciled".into(),
            message: "7 volumes watched".into(),
            last_transition_time: Time(k8s_openapi::jiff::Timestamp::now()),
            observed_generation: Some(1),
        }],
        ..Default::default()
    };
    let patch = json!({
        "apiVersion": "storage.billyronks.io/v1",
        "kind": "StoragePolicy",
        "status": status,
    });
    let pp = PatchParams::apply("couchestor-controller").force();
    api.patch_status(&name, &pp, &Patch::Apply(&patch))
        .await
        .unwrap();

    let got = api.get(&name).await.unwrap();
    let st = got.status.expect("status was written");
    assert_eq!(st.phase, Some(PolicyPhase::Active));
    assert_eq!(st.watched_volumes, 7);
    assert_eq!(st.conditions[0].type_, "Ready");
    let managers: Vec<_> = got
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter(|m| m.manager.as_deref() == Some("couchestor-controller"))
        .collect();
    assert_eq!(managers.len(), 1);
    assert_eq!(managers[0].subresource.as_deref(), Some("status"));
    assert_eq!(managers[0].operation.as_deref(), Some("Apply"));

    // A second applier owning another condition type merges (listType=map keyed by type).
    let other = json!({
        "apiVersion": "storage.billyronks.io/v1",
        "kind": "StoragePolicy",
        "status": {"conditions": [{
            "type": "MetricsAvailable", "status": "False", "reason": "PrometheusDown",
            "message": "connection refused", "lastTransitionTime": "2026-11-23T00:00:00Z"
        }]}
    });
    api.patch_status(
        &name,
        &PatchParams::apply("another-manager"),
        &Patch::Apply(&other),
    )
    .await
    .unwrap();
    let types: Vec<String> = api
        .get(&name)
        .await
        .unwrap()
        .status
        .unwrap()
        .conditions
        .into_iter()
        .map(|c| c.type_)
        .collect();
    assert_eq!(
        types,
        vec!["Ready".to_string(), "MetricsAvailable".to_string()]
    );

    // Writing status through the main resource is ignored by a real status subresource.
    let sneaky = json!({
        "apiVersion": "storage.billyronks.io/v1",
        "kind": "StoragePolicy",
        "spec": {"storageClassName": "mayastor-tiered", "highWatermarkIOPS": 800, "lowWatermarkIOPS": 80},
        "status": {"watchedVolumes": 999}
    });
    api.patch(
        &name,
        &PatchParams::apply("sneaky").force(),
        &Patch::Apply(&sneaky),
    )
    .await
    .unwrap();
    assert_eq!(
        api.get(&name)
            .await
            .unwrap()
            .status
            .unwrap()
            .watched_volumes,
        7
    );
}

#[tokio::test]
async fn a_watch_observes_a_change() {
    let Some(c) = cluster().await else { return };
    let api = Api::<StoragePolicy>::all(c.client());
    let name = couchestor_testsupport::cluster::unique_name("watch");
    api.create(&PostParams::default(), &policy(&name, 900, 90))
        .await
        .unwrap();

    let cfg = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut stream = watcher(api.clone(), cfg).boxed();
    // Initial list delivers the object as it is.
    let mut seen_initial = false;
    let mut seen_change = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while let Ok(Some(ev)) = tokio::time::timeout_at(deadline, stream.next()).await {
        match ev.unwrap() {
            watcher::Event::InitApply(p) => {
                assert_eq!(p.spec.high_watermark_iops, 900);
                seen_initial = true;
            }
            watcher::Event::InitDone => {
                assert!(seen_initial);
                let patch = json!({"spec": {"highWatermarkIOPS": 1200}});
                api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .unwrap();
            }
            watcher::Event::Apply(p) if p.spec.high_watermark_iops == 1200 => {
                seen_change = true;
                break;
            }
            _ => {}
        }
    }
    assert!(
        seen_initial && seen_change,
        "watch did not deliver the change"
    );
}

#[tokio::test]
async fn a_lease_is_acquired_and_contended() {
    let Some(c) = cluster().await else { return };
    let ns = c.namespace("lease").await.unwrap();
    let build = |id: &str| {
        LeaseManagerBuilder::new(c.client(), "couchestor-controller")
            .with_namespace(ns.clone())
            .with_identity(id)
            .with_duration(6)
            .with_grace(2)
            .build()
    };
    let first = build("replica-a").await.unwrap();
    let second = build("replica-b").await.unwrap();

    assert!(
        first.changed().await.unwrap(),
        "first holder acquires the free lease"
    );
    assert_eq!(
        lease_holder(&c.client(), &ns).await.as_deref(),
        Some("replica-a")
    );

    // While the first keeps renewing, the second must not get it.
    let contended = tokio::select! {
        r = second.changed() => Some(r.unwrap()),
        _ = async { loop { first.changed().await.unwrap(); } } => None,
        _ = tokio::time::sleep(Duration::from_secs(10)) => None,
    };
    assert_eq!(
        contended, None,
        "second holder acquired a lease the first still renews"
    );

    first.release().await.unwrap();
    let acquired = tokio::time::timeout(Duration::from_secs(30), second.changed()).await;
    assert!(
        matches!(acquired, Ok(Ok(true))),
        "second holder takes over after release: {acquired:?}"
    );
    assert_eq!(
        lease_holder(&c.client(), &ns).await.as_deref(),
        Some("replica-b")
    );
}
