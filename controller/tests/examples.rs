//! Every shipped example policy is accepted by a real API server and means what it says.

use couchestor_common::StoragePolicy;
use couchestor_common::layout::TierLayout;
use couchestor_testsupport::{cluster, workspace_root};
use kube::api::{Api, Patch, PatchParams};

#[tokio::test]
async fn example_policies_apply_to_a_real_apiserver() {
    let text = std::fs::read_to_string(
        workspace_root().join("deploy/examples/storagepolicy-examples.yaml"),
    )
    .unwrap();
    let examples: Vec<StoragePolicy> = serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).expect("example is a StoragePolicy"))
        .collect();
    let names: Vec<_> = examples
        .iter()
        .map(|p| p.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "two-tier",
            "three-tier",
            "dry-run",
            "preservation-nightly",
            "by-density"
        ]
    );
    for p in &examples {
        // Every example has a usable tier layout.
        TierLayout::from_spec(&p.spec).unwrap_or_else(|e| panic!("{:?}: {e}", p.metadata.name));
    }

    let Some(c) = cluster().await else { return };
    let api = Api::<StoragePolicy>::all(c.client());
    for p in &examples {
        let name = p.metadata.name.clone().unwrap();
        let applied = api
            .patch(
                &name,
                &PatchParams::apply("examples-test"),
                &Patch::Apply(p),
            )
            .await
            .unwrap_or_else(|e| panic!("{name} rejected: {e}"));
        assert_eq!(applied.spec, p.spec, "{name}: the server changed the spec");
    }
}
