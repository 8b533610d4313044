//! Least privilege, proven against a real kube-apiserver with RBAC on: the chart's
//! ServiceAccounts, ClusterRole, Role and bindings are applied for real, a real token for the
//! controller's ServiceAccount is obtained with the TokenRequest API, and with that identity
//! every verb the controller uses is allowed while unrelated powers are denied — checked both by
//! SelfSubjectAccessReview and by real requests. The agent's ServiceAccount can do nothing.
//! (controller/tests/rbac.rs runs the real controller binary with such a token.)

use couchestor_chart_tests::{RELEASE, apply, kind};
use couchestor_testsupport::cluster;
use couchestor_testsupport::helm::helm;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec, SubjectAccessReview,
    SubjectAccessReviewSpec,
};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim, Pod, Secret};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams,
};
use kube::core::GroupVersionKind;
use kube::core::ObjectMeta;
use serde_json::json;

/// (verb, group, resource, subresource, namespace or "" for cluster-wide, resource name).
type Attr = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    Option<&'static str>,
    &'static str,
);

/// What the controller does (controller/src and kube Recorder / kube-lease-manager); `None`
/// namespace = cluster-wide, `Some("")` = the release namespace.
const ALLOWED: &[Attr] = &[
    (
        "get",
        "apiextensions.k8s.io",
        "customresourcedefinitions",
        "",
        None,
        "storagepolicies.storage.billyronks.io",
    ),
    (
        "get",
        "apiextensions.k8s.io",
        "customresourcedefinitions",
        "",
        None,
        "volumemigrations.storage.billyronks.io",
    ),
    (
        "list",
        "storage.billyronks.io",
        "storagepolicies",
        "",
        None,
        "",
    ),
    (
        "watch",
        "storage.billyronks.io",
        "storagepolicies",
        "",
        None,
        "",
    ),
    (
        "patch",
        "storage.billyronks.io",
        "storagepolicies",
        "status",
        None,
        "p",
    ),
    (
        "list",
        "storage.billyronks.io",
        "volumemigrations",
        "",
        None,
        "",
    ),
    (
        "watch",
        "storage.billyronks.io",
        "volumemigrations",
        "",
        None,
        "",
    ),
    (
        "create",
        "storage.billyronks.io",
        "volumemigrations",
        "",
        None,
        "",
    ),
    (
        "patch",
        "storage.billyronks.io",
        "volumemigrations",
        "",
        None,
        "m",
    ),
    (
        "patch",
        "storage.billyronks.io",
        "volumemigrations",
        "status",
        None,
        "m",
    ),
    ("get", "", "persistentvolumes", "", None, "pv"),
    ("list", "", "persistentvolumes", "", None, ""),
    ("watch", "", "persistentvolumes", "", None, ""),
    ("patch", "", "persistentvolumes", "", None, "pv"),
    ("list", "", "persistentvolumeclaims", "", None, ""),
    ("watch", "", "persistentvolumeclaims", "", None, ""),
    ("create", "events.k8s.io", "events", "", Some("default"), ""),
    ("patch", "events.k8s.io", "events", "", Some("default"), "e"),
    ("create", "events.k8s.io", "events", "", Some("apps"), ""),
    ("patch", "events.k8s.io", "events", "", Some("apps"), "e"),
    ("create", "coordination.k8s.io", "leases", "", Some(""), ""),
    (
        "get",
        "coordination.k8s.io",
        "leases",
        "",
        Some(""),
        "couchestor-controller",
    ),
    (
        "patch",
        "coordination.k8s.io",
        "leases",
        "",
        Some(""),
        "couchestor-controller",
    ),
    ("list", "", "pods", "", Some(""), ""),
    ("watch", "", "pods", "", Some(""), ""),
];

/// Powers the controller must not have (including reads it never makes).
const DENIED: &[Attr] = &[
    (
        "get",
        "apiextensions.k8s.io",
        "customresourcedefinitions",
        "",
        None,
        "certificates.cert-manager.io",
    ),
    (
        "list",
        "apiextensions.k8s.io",
        "customresourcedefinitions",
        "",
        None,
        "",
    ),
    (
        "patch",
        "apiextensions.k8s.io",
        "customresourcedefinitions",
        "",
        None,
        "storagepolicies.storage.billyronks.io",
    ),
    (
        "get",
        "storage.billyronks.io",
        "storagepolicies",
        "",
        None,
        "p",
    ),
    (
        "get",
        "storage.billyronks.io",
        "volumemigrations",
        "",
        None,
        "m",
    ),
    ("list", "", "secrets", "", None, ""),
    ("get", "", "secrets", "", Some(""), "couchestor-agent-tls"),
    ("list", "", "secrets", "", Some(""), ""),
    ("delete", "", "persistentvolumes", "", None, "pv"),
    ("create", "", "persistentvolumes", "", None, ""),
    ("update", "", "persistentvolumes", "", None, "pv"),
    ("patch", "", "persistentvolumeclaims", "", Some("apps"), "c"),
    (
        "delete",
        "",
        "persistentvolumeclaims",
        "",
        Some("apps"),
        "c",
    ),
    ("create", "", "pods", "", Some(""), ""),
    ("delete", "", "pods", "", Some(""), "x"),
    ("get", "", "pods", "", Some(""), "x"),
    ("list", "", "pods", "", None, ""),
    ("list", "", "pods", "", Some("default"), ""),
    ("patch", "", "nodes", "", None, "node-1"),
    ("list", "", "nodes", "", None, ""),
    (
        "delete",
        "storage.billyronks.io",
        "storagepolicies",
        "",
        None,
        "p",
    ),
    (
        "patch",
        "storage.billyronks.io",
        "storagepolicies",
        "",
        None,
        "p",
    ),
    (
        "create",
        "storage.billyronks.io",
        "storagepolicies",
        "",
        None,
        "",
    ),
    (
        "delete",
        "storage.billyronks.io",
        "volumemigrations",
        "",
        None,
        "m",
    ),
    (
        "get",
        "coordination.k8s.io",
        "leases",
        "",
        Some(""),
        "someone-else",
    ),
    (
        "patch",
        "coordination.k8s.io",
        "leases",
        "",
        Some(""),
        "someone-else",
    ),
    (
        "delete",
        "coordination.k8s.io",
        "leases",
        "",
        Some(""),
        "couchestor-controller",
    ),
    (
        "get",
        "coordination.k8s.io",
        "leases",
        "",
        Some("kube-system"),
        "couchestor-controller",
    ),
    ("create", "", "events", "", Some("default"), ""),
    (
        "create",
        "rbac.authorization.k8s.io",
        "clusterrolebindings",
        "",
        None,
        "",
    ),
    (
        "escalate",
        "rbac.authorization.k8s.io",
        "clusterroles",
        "",
        None,
        "",
    ),
    ("impersonate", "", "serviceaccounts", "", None, ""),
    (
        "create",
        "",
        "serviceaccounts",
        "token",
        Some(""),
        "couchestor-controller",
    ),
];

fn attributes(a: &Attr, release_ns: &str) -> ResourceAttributes {
    let (verb, group, resource, sub, ns, name) = *a;
    ResourceAttributes {
        verb: Some(verb.into()),
        group: Some(group.into()),
        resource: Some(resource.into()),
        subresource: (!sub.is_empty()).then(|| sub.into()),
        namespace: ns.map(|n| if n.is_empty() { release_ns } else { n }.into()),
        name: (!name.is_empty()).then(|| name.into()),
        ..Default::default()
    }
}

async fn self_review(client: &kube::Client, a: &Attr, ns: &str) -> bool {
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(attributes(a, ns)),
            ..Default::default()
        },
        ..Default::default()
    };
    Api::<SelfSubjectAccessReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await
        .unwrap()
        .status
        .unwrap()
        .allowed
}

fn forbidden<T: std::fmt::Debug>(r: Result<T, kube::Error>, what: &str) {
    match r {
        Err(kube::Error::Api(s)) if s.code == 403 => {}
        other => panic!("{what}: expected 403 Forbidden, got {other:?}"),
    }
}

#[tokio::test]
async fn controller_service_account_has_exactly_what_it_needs() {
    let Some(helm) = helm() else { return };
    let Some(c) = cluster().await else { return };
    let admin = c.client();
    let ns = c.namespace("chart-rbac").await.unwrap();
    let apps = c.namespace("chart-rbac-apps").await.unwrap();

    // The chart's identities and RBAC, for real.
    let objs = helm.render(RELEASE, &ns, &[]).unwrap();
    let rbac_kinds = [
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
    ];
    let mut n = 0;
    for o in objs.iter().filter(|o| rbac_kinds.contains(&kind(o))) {
        apply(&admin, o, false).await.unwrap();
        n += 1;
    }
    assert_eq!(
        n, 6,
        "2 ServiceAccounts, ClusterRole(+Binding), Role(+Binding)"
    );

    // A real token for the controller's ServiceAccount.
    let token = couchestor_testsupport::serviceaccount::token(&admin, &ns, "couchestor-controller")
        .await
        .unwrap();
    let sa = kube::Client::try_from(c.config_for_token(&token)).unwrap();

    // Who am I: the ServiceAccount, not an admin.
    let mut denied_unexpectedly = Vec::new();
    for a in ALLOWED {
        if !self_review(&sa, a, &ns).await {
            denied_unexpectedly.push(format!("{a:?}"));
        }
    }
    assert!(
        denied_unexpectedly.is_empty(),
        "denied: {denied_unexpectedly:#?}"
    );
    let mut allowed_unexpectedly = Vec::new();
    for a in DENIED {
        if self_review(&sa, a, &ns).await {
            allowed_unexpectedly.push(format!("{a:?}"));
        }
    }
    assert!(
        allowed_unexpectedly.is_empty(),
        "allowed: {allowed_unexpectedly:#?}"
    );

    // Real requests with the token. Allowed:
    Api::<PersistentVolume>::all(sa.clone())
        .list(&ListParams::default())
        .await
        .unwrap();
    Api::<PersistentVolumeClaim>::all(sa.clone())
        .list(&ListParams::default())
        .await
        .unwrap();
    for (k, plural) in [
        ("StoragePolicy", "storagepolicies"),
        ("VolumeMigration", "volumemigrations"),
    ] {
        let gvk = GroupVersionKind::gvk("storage.billyronks.io", "v1", k);
        let ar = ApiResource::from_gvk_with_plural(&gvk, plural);
        Api::<DynamicObject>::all_with(sa.clone(), &ar)
            .list(&ListParams::default())
            .await
            .unwrap();
    }
    Api::<Pod>::namespaced(sa.clone(), &ns)
        .list(&ListParams::default())
        .await
        .unwrap();
    let leases = Api::<Lease>::namespaced(sa.clone(), &ns);
    let lease = Lease {
        metadata: ObjectMeta {
            name: Some("couchestor-controller".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    leases.create(&PostParams::default(), &lease).await.unwrap();
    leases.get("couchestor-controller").await.unwrap();
    leases
        .patch(
            "couchestor-controller",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"holderIdentity": "rbac-test"}})),
        )
        .await
        .unwrap();
    // Denied:
    let pv: PersistentVolume = serde_json::from_value(json!({
        "metadata": {"name": couchestor_testsupport::cluster::unique_name("rbac-pv")},
        "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                 "hostPath": {"path": "/tmp/x"}}
    }))
    .unwrap();
    let pv = Api::<PersistentVolume>::all(admin.clone())
        .create(&PostParams::default(), &pv)
        .await
        .unwrap();
    let pv_name = pv.metadata.name.unwrap();
    forbidden(
        Api::<PersistentVolume>::all(sa.clone())
            .delete(&pv_name, &DeleteParams::default())
            .await,
        "delete a PV",
    );
    Api::<PersistentVolume>::all(admin.clone())
        .get(&pv_name)
        .await
        .expect("the PV survived");
    forbidden(
        Api::<Secret>::all(sa.clone())
            .list(&ListParams::default())
            .await,
        "list Secrets cluster-wide",
    );
    forbidden(
        Api::<Secret>::namespaced(sa.clone(), &ns)
            .get("couchestor-agent-tls")
            .await,
        "get a Secret in its own namespace",
    );
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "x"},
        "spec": {"containers": [{"name": "x", "image": "busybox"}]}
    }))
    .unwrap();
    forbidden(
        Api::<Pod>::namespaced(sa.clone(), &ns)
            .create(&PostParams::default(), &pod)
            .await,
        "create a Pod",
    );
    forbidden(
        Api::<Node>::all(sa.clone())
            .patch(
                "node-1",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"unschedulable": true}})),
            )
            .await,
        "patch a Node",
    );
    forbidden(
        Api::<PersistentVolumeClaim>::namespaced(sa.clone(), &apps)
            .patch(
                "c",
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}})),
            )
            .await,
        "patch a claim",
    );
    forbidden(
        Api::<Lease>::namespaced(sa.clone(), &ns)
            .get("someone-else")
            .await,
        "get another Lease",
    );

    // The agent's ServiceAccount has no grant at all.
    for a in ALLOWED {
        let (verb, group, resource, sub, _, _) = *a;
        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some(format!("system:serviceaccount:{ns}:couchestor-agent")),
                groups: Some(vec![
                    "system:serviceaccounts".into(),
                    format!("system:serviceaccounts:{ns}"),
                    "system:authenticated".into(),
                ]),
                resource_attributes: Some(attributes(
                    &(verb, group, resource, sub, Some(""), ""),
                    &ns,
                )),
                ..Default::default()
            },
            ..Default::default()
        };
        let allowed = Api::<SubjectAccessReview>::all(admin.clone())
            .create(&PostParams::default(), &review)
            .await
            .unwrap()
            .status
            .unwrap()
            .allowed;
        assert!(!allowed, "the agent may {a:?}");
    }
}
