//! `helm install` and `helm upgrade` against a real kube-apiserver: the generated mTLS
//! certificates survive an upgrade unchanged (the chart looks the Secrets up and reuses them),
//! and are regenerated only when both Secrets are deleted.

use couchestor_chart_tests::RELEASE;
use couchestor_testsupport::cluster::ADMIN_TOKEN;
use couchestor_testsupport::helm::{chart_dir, helm};
use couchestor_testsupport::{RunDir, cluster};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams};
use std::collections::BTreeMap;

async fn tls_data(api: &Api<Secret>) -> Vec<BTreeMap<String, ByteString>> {
    let mut out = Vec::new();
    for name in ["couchestor-agent-tls", "couchestor-controller-tls"] {
        out.push(api.get(name).await.unwrap().data.unwrap());
    }
    out
}

#[tokio::test]
async fn upgrades_keep_the_generated_certificates() {
    let Some(helm) = helm() else { return };
    let Some(c) = cluster().await else { return };
    let ns = c.namespace("chart-upgrade").await.unwrap();
    let dir = RunDir::new("chart-upgrade").unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    c.write_kubeconfig(&kubeconfig, ADMIN_TOKEN).unwrap();
    let chart = chart_dir();
    let run = |verb: &'static str, extra: &'static [&'static str]| {
        let mut args = vec![
            verb,
            RELEASE,
            chart.to_str().unwrap(),
            "--namespace",
            &ns,
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let o = helm.run(&args).unwrap();
        assert!(o.success, "helm {verb}: {}{}", o.stderr, o.stdout);
    };
    let secrets = Api::<Secret>::namespaced(c.client(), &ns);

    run("install", &[]);
    let installed = tls_data(&secrets).await;
    assert_eq!(installed[0]["ca.crt"], installed[1]["ca.crt"]);

    run("upgrade", &["--set", "controller.logLevel=debug"]);
    assert_eq!(
        tls_data(&secrets).await,
        installed,
        "helm upgrade rotated the certificates"
    );

    // Rotation on purpose: delete both Secrets, upgrade.
    for name in ["couchestor-agent-tls", "couchestor-controller-tls"] {
        secrets
            .delete(name, &DeleteParams::default())
            .await
            .unwrap();
    }
    run("upgrade", &[]);
    let rotated = tls_data(&secrets).await;
    assert_ne!(rotated[0]["ca.crt"], installed[0]["ca.crt"]);
    assert_eq!(rotated[0]["ca.crt"], rotated[1]["ca.crt"]);
}
