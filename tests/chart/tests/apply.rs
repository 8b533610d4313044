//! Every object the chart renders, for every value combination, and every object of
//! deploy/operator.yaml, is accepted by a real kube-apiserver (server-side apply,
//! `dryRun=All`): the server's own schemas, including the prometheus-operator CRDs for the
//! ServiceMonitors and the PrometheusRule.

use couchestor_chart_tests::{COMBOS, RELEASE, apply, install_monitoring_crds, kind, name};
use couchestor_testsupport::cluster;
use couchestor_testsupport::helm::{helm, parse_documents};
use couchestor_testsupport::workspace_root;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, PostParams};

#[tokio::test]
async fn every_rendered_object_is_accepted_by_the_apiserver() {
    let Some(helm) = helm() else { return };
    let Some(c) = cluster().await else { return };
    install_monitoring_crds(c).await.unwrap();
    let client = c.client();
    let ns = c.namespace("chart-apply").await.unwrap();
    let mut applied = 0;
    for combo in COMBOS {
        let objs = helm.render(RELEASE, &ns, combo.args).unwrap();
        for o in &objs {
            let back = apply(&client, o, true)
                .await
                .unwrap_or_else(|e| panic!("{}: {e:#}\n{o:#}", combo.name));
            assert_eq!(back.metadata.name.as_deref(), Some(name(o)));
            applied += 1;
        }
    }
    assert!(applied > 40, "only {applied} objects applied");
}

#[tokio::test]
async fn operator_yaml_is_accepted_by_the_apiserver() {
    let Some(c) = cluster().await else { return };
    let client = c.client();
    let text = std::fs::read_to_string(workspace_root().join("deploy/operator.yaml")).unwrap();
    let objs = parse_documents(&text).unwrap();
    // The manifest targets couchestor-system, which the user creates first.
    let ns: Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": "couchestor-system"}}))
            .unwrap();
    match Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => panic!("create couchestor-system: {e}"),
    }
    for o in &objs {
        apply(&client, o, true)
            .await
            .unwrap_or_else(|e| panic!("{} {}: {e:#}", kind(o), name(o)));
    }
}
