//! Deserialisation of realistic Mayastor JSON and client plumbing that needs no server.

use reqwest::StatusCode;

use super::{
    Error, MayastorClient,
    model::{
        ChildState, ErrorKind, NexusState, Node, NodeStatus, Pool, PoolCordonReq, PoolStatus,
        RebuildHistory, RebuildJobState, ReplicaState, RestJsonError, SpecStatus, Volume,
        VolumeStatus, Volumes,
    },
};

/// A published 2-replica volume in the middle of a rebuild, as `GET /volumes/{id}` returns it.
const PUBLISHED_REBUILDING: &str = r#"{
  "spec": {
    "labels": {"local": "true"},
    "num_replicas": 2,
    "operation": {"operation": "SetReplica", "result": null},
    "size": 1073741824,
    "status": "Created",
    "target": {"node": "io-engine-1", "protocol": "nvmf", "frontend_nodes": [{"name": "worker-1", "nqn": "nqn.2014-08.org.nvmexpress:uuid:1"}]},
    "uuid": "ec4e66fd-3b33-4439-b504-d49aba53da26",
    "topology": {"pool_topology": {"labelled": {"exclusion": {}, "inclusion": {"openebs.io/created-by": "operator-diskpool", "couchestor-tier": ""}}}},
    "policy": {"self_heal": true},
    "thin": false,
    "num_snapshots": 0,
    "some_future_field": {"nested": [1, 2, 3]}
  },
  "state": {
    "target": {
      "children": [
        {"uri": "bdev:///0a1b?uuid=0a1b", "state": "Online", "rebuildProgress": null},
        {"uri": "nvmf://10.1.0.6:8420/nqn.2019-05.io.openebs:7c2d?uuid=7c2d", "state": "Degraded", "rebuildProgress": 42}
      ],
      "deviceUri": "nvmf://10.1.0.5:8420/nqn.2019-05.io.openebs:nexus-ec4e",
      "node": "io-engine-1",
      "rebuilds": 1,
      "protocol": "nvmf",
      "size": 1073741824,
      "state": "Degraded",
      "uuid": "61d6afc8-15c6-4127-b0aa-15a570198880"
    },
    "size": 1073741824,
    "status": "Degraded",
    "uuid": "ec4e66fd-3b33-4439-b504-d49aba53da26",
    "replica_topology": {
      "0a1b": {"node": "io-engine-1", "pool": "nvme-1", "state": "Online", "child-status": "Online",
               "usage": {"capacity": 1073741824, "allocated": 1073741824, "allocated_snapshots": 0, "allocated_all_snapshots": 0}},
      "7c2d": {"node": "io-engine-2", "pool": "sata-2", "state": "Online", "child-status": "Degraded", "rebuild-progress": 42}
    },
    "usage": {"capacity": 1073741824, "allocated": 1073741824, "allocated_replica": 1073741824,
              "allocated_snapshots": 0, "allocated_all_snapshots": 0, "total_allocated": 2147483648,
              "total_allocated_replicas": 2147483648, "total_allocated_snapshots": 0}
  }
}"#;

#[test]
fn published_volume_with_hyphenated_replica_topology_keys() {
    let volume: Volume = serde_json::from_str(PUBLISHED_REBUILDING).unwrap();
    assert_eq!(volume.spec.num_replicas, 2);
    assert_eq!(volume.spec.status, SpecStatus::Created);
    let inclusion = &volume
        .spec
        .topology
        .as_ref()
        .and_then(|t| t.pool_topology.as_ref())
        .and_then(|p| p.labelled.as_ref())
        .unwrap()
        .inclusion;
    assert_eq!(
        inclusion.get("couchestor-tier").map(String::as_str),
        Some("")
    );
    assert_eq!(volume.state.status, VolumeStatus::Degraded);

    let rebuilding = &volume.state.replica_topology["7c2d"];
    assert_eq!(rebuilding.pool.as_deref(), Some("sata-2"));
    assert_eq!(rebuilding.child_status, Some(ChildState::Degraded));
    assert_eq!(rebuilding.rebuild_progress, Some(42));
    let healthy = &volume.state.replica_topology["0a1b"];
    assert_eq!(healthy.child_status, Some(ChildState::Online));
    assert_eq!(healthy.rebuild_progress, None);
    assert_eq!(healthy.usage.as_ref().unwrap().capacity, 1 << 30);

    let nexus = volume.state.target.as_ref().unwrap();
    assert_eq!(nexus.state, NexusState::Degraded);
    assert_eq!(nexus.rebuilds, 1);
    assert_eq!(nexus.children[1].rebuild_progress, Some(42));
    assert_eq!(nexus.children[0].rebuild_progress, None);

    // Serialising keeps the hyphenated keys.
    let back = serde_json::to_value(&volume).unwrap();
    let replica = &back["state"]["replica_topology"]["7c2d"];
    assert_eq!(replica["child-status"], "Degraded");
    assert_eq!(replica["rebuild-progress"], 42);
}

#[test]
fn unpublished_volume_without_target_and_optional_fields() {
    let json = r#"{
      "spec": {"num_replicas": 1, "size": 5242880, "status": "Created",
               "uuid": "4be37dbd-4b60-44f3-b807-08f6693522ac", "policy": {"self_heal": true},
               "thin": true, "num_snapshots": 0},
      "state": {"size": 5242880, "status": "Online", "uuid": "4be37dbd-4b60-44f3-b807-08f6693522ac",
                "replica_topology": {"03f0": {"node": "io-engine-1", "pool": "pool-1", "state": "Online"}}}
    }"#;
    let volume: Volume = serde_json::from_str(json).unwrap();
    assert!(volume.state.target.is_none());
    assert!(volume.spec.target.is_none());
    assert!(volume.spec.topology.is_none());
    assert!(volume.spec.labels.is_empty());
    assert!(volume.state.usage.is_none());
    let replica = &volume.state.replica_topology["03f0"];
    assert_eq!(replica.state, ReplicaState::Online);
    assert_eq!(replica.child_status, None);
    assert_eq!(replica.rebuild_progress, None);
}

#[test]
fn unknown_enum_values_are_kept_not_rejected() {
    let json = r#"{"id": "pool-9",
      "spec": {"id": "pool-9", "node": "n9", "disks": ["/dev/sdz"], "status": "Purging", "labels": {}},
      "state": {"id": "pool-9", "node": "n9", "disks": ["aio:///dev/sdz"], "status": "Suspected",
                "capacity": 100, "used": 30}}"#;
    let pool: Pool = serde_json::from_str(json).unwrap();
    let state = pool.state.unwrap();
    assert_eq!(state.status, PoolStatus::Other("Suspected".to_owned()));
    assert_eq!(state.status.to_string(), "Suspected");
    assert_eq!(state.free(), 70);
    assert_eq!(state.committed, None);
    assert_eq!(
        pool.spec.unwrap().status,
        Some(SpecStatus::Other("Purging".to_owned()))
    );
    let replica: super::model::ReplicaTopology =
        serde_json::from_str(r#"{"state": "Rebuilding", "child-status": "Retired"}"#).unwrap();
    assert_eq!(replica.state, ReplicaState::Other("Rebuilding".to_owned()));
    assert_eq!(
        replica.child_status,
        Some(ChildState::Other("Retired".to_owned()))
    );
}

#[test]
fn paged_volumes_and_last_page() {
    let page: Volumes = serde_json::from_str(&format!(
        r#"{{"entries": [{PUBLISHED_REBUILDING}], "next_token": 1}}"#
    ))
    .unwrap();
    assert_eq!(page.entries.len(), 1);
    assert_eq!(page.next_token, Some(1));
    let last: Volumes = serde_json::from_str(r#"{"entries": []}"#).unwrap();
    assert_eq!(last.next_token, None);
}

#[test]
fn pool_with_labels_and_node_with_cordon() {
    let pool: Pool = serde_json::from_str(
        r#"{"id": "sata-2", "spec": {"disks": ["/dev/sdb"], "id": "sata-2", "node": "io-engine-2",
            "status": "Created", "labels": {"openebs.io/created-by": "operator-diskpool", "couchestor-tier": "sata"}}}"#,
    )
    .unwrap();
    assert!(
        pool.state.is_none(),
        "a pool whose node is down has no state"
    );
    assert_eq!(pool.spec.unwrap().labels["couchestor-tier"], "sata");

    let node: Node = serde_json::from_str(
        r#"{"id": "io-engine-2",
            "spec": {"grpcEndpoint": "10.1.0.6:10124", "id": "io-engine-2", "labels": {"zone": "a"},
                     "cordondrainstate": {"cordonedstate": {"cordonlabels": ["couchestor-move"]}}},
            "state": {"grpcEndpoint": "10.1.0.6:10124", "id": "io-engine-2", "status": "Online", "version": "v2.9.0"}}"#,
    )
    .unwrap();
    assert_eq!(node.cordon_labels(), vec!["couchestor-move".to_owned()]);
    assert_eq!(node.state.unwrap().status, NodeStatus::Online);
    let bare: Node = serde_json::from_str(r#"{"id": "io-engine-3"}"#).unwrap();
    assert!(bare.cordon_labels().is_empty());
}

#[test]
fn rebuild_history_records() {
    let history: RebuildHistory = serde_json::from_str(
        r#"{"targetUuid": "61d6afc8-15c6-4127-b0aa-15a570198880", "records": [
            {"childUri": "nvmf://10.1.0.6:8420/nqn.2019-05.io.openebs:7c2d?uuid=7c2d",
             "srcUri": "bdev:///0a1b?uuid=0a1b", "rebuildJobState": "Completed",
             "blocksTotal": 2097152, "blocksRecovered": 2097152, "blocksTransferred": 2097152,
             "blocksRemaining": 0, "blockSize": 512, "isPartial": false,
             "startTime": "2024-10-23T07:25:25.974218428Z", "endTime": "2024-10-23T07:25:27.975338717Z"},
            {"childUri": "bdev:///x?uuid=x", "srcUri": "bdev:///y?uuid=y", "state": "Failed",
             "blocksTotal": 10, "blocksRecovered": 5, "blocksTransferred": 5, "blocksRemaining": 5,
             "blockSize": 512, "isPartial": true, "startTime": "2024-10-23T07:25:25Z", "endTime": "2024-10-23T07:25:26Z"}]}"#,
    )
    .unwrap();
    assert_eq!(history.records.len(), 2);
    assert_eq!(
        history.records[0].rebuild_job_state,
        RebuildJobState::Completed
    );
    assert_eq!(history.records[0].blocks_remaining, 0);
    // The spec's own example spells the field `state`; accept it.
    assert_eq!(
        history.records[1].rebuild_job_state,
        RebuildJobState::Failed
    );
    assert!(history.records[1].is_partial);
}

#[test]
fn rest_json_error_with_newer_kind() {
    let error: RestJsonError = serde_json::from_str(
        r#"{"details": "Pool 'p' is not cordoned", "message": "SvcError :: PoolNotCordoned", "kind": "PoolNotCordoned"}"#,
    )
    .unwrap();
    assert_eq!(error.kind, ErrorKind::Other("PoolNotCordoned".to_owned()));
    let known: RestJsonError = serde_json::from_str(
        r#"{"details": "Cannot remove the last replica '' of volume 'v'", "message": "SvcError :: LastReplica", "kind": "FailedPrecondition"}"#,
    )
    .unwrap();
    assert_eq!(known.kind, ErrorKind::FailedPrecondition);
}

#[test]
fn pool_cordon_request_sends_both_import_spellings() {
    let body = serde_json::to_value(PoolCordonReq::REPLICAS).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"replicas": true, "snapshots": false, "restores": false, "import": false, "imports": false})
    );
    // Both spellings at once (what this client sends) must read back.
    assert_eq!(
        serde_json::from_value::<PoolCordonReq>(body).unwrap(),
        PoolCordonReq::REPLICAS
    );
    let parsed: PoolCordonReq =
        serde_json::from_str(r#"{"replicas": false, "imports": true}"#).unwrap();
    assert!(parsed.import && !parsed.replicas);
}

#[test]
fn api_error_names_endpoint_status_and_body() {
    let error = Error::Api {
        operation: "put_volume_replica_count",
        endpoint: "PUT /v0/volumes/v1/replica_count/0".to_owned(),
        status: StatusCode::PRECONDITION_FAILED,
        rest: Some(Box::new(RestJsonError {
            details: "Cannot remove the last replica '' of volume 'v1'".to_owned(),
            message: "SvcError :: LastReplica".to_owned(),
            kind: ErrorKind::FailedPrecondition,
        })),
        body: String::new(),
    };
    let text = error.to_string();
    for needle in [
        "put_volume_replica_count",
        "PUT /v0/volumes/v1/replica_count/0",
        "412",
        "FailedPrecondition",
        "last replica",
        "LastReplica",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from {text:?}");
    }
    assert_eq!(error.kind(), Some(&ErrorKind::FailedPrecondition));
    assert!(!error.is_not_found());
}

#[test]
fn base_url_validation_and_segment_encoding() {
    // reqwest is built without a TLS crypto provider; the binary installs ring at start-up.
    rustls::crypto::ring::default_provider()
        .install_default()
        .ok();
    assert!(MayastorClient::new("not a url").is_err());
    assert!(MayastorClient::new("ftp://host/v0").is_err());
    let client = MayastorClient::new("http://127.0.0.1:8081/v0/").unwrap();
    let url = client
        .url(&["pools", "p 1", "label", "openebs.io/tier=fast"])
        .unwrap();
    assert_eq!(
        url.as_str(),
        "http://127.0.0.1:8081/v0/pools/p%201/label/openebs.io%2Ftier=fast"
    );
    assert_eq!(MayastorClient::DEFAULT_TIMEOUT.as_secs(), 30);
}
