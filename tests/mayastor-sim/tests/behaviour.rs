//! Behaviour of the simulator, driven through the controller's own Mayastor client
//! (`controller/src/mayastor`, compiled into this test): placement, rebuilds, removal order per
//! profile, replica-count rules, capability detection and fault injection.

mod common;

#[path = "behaviour/faults.rs"]
mod faults;
#[path = "behaviour/removal.rs"]
mod removal;

// The controller is a binary crate, so its client module is compiled in here by path.
#[allow(dead_code)]
#[path = "../../../controller/src/mayastor/mod.rs"]
mod mayastor;

use std::time::{Duration, Instant};

use common::{GIB, Sim, start};
use couchestor_mayastor_sim::Profile;
use mayastor::{
    DetectionSource, MayastorClient, MayastorVersion, NodeVersions,
    model::{
        ChildState, ErrorKind, PoolCordonReq, RebuildJobState, ReplicaState, Volume, VolumeStatus,
    },
};
use reqwest::{Method, StatusCode};
use serde_json::json;

const ALL_PROFILES: [Profile; 3] = [Profile::V2_7, Profile::V2_9, Profile::V2_10];

fn client(sim: &Sim) -> MayastorClient {
    MayastorClient::new(&sim.running.base_url()).expect("valid simulator URL")
}

/// Polls the volume until `done` holds (15 s at most).
async fn wait_for(
    client: &MayastorClient,
    id: &str,
    mut done: impl FnMut(&Volume) -> bool,
) -> Volume {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let volume = client.get_volume(id).await.expect("get volume");
        if done(&volume) {
            return volume;
        }
        assert!(
            Instant::now() < deadline,
            "timed out; last state: {volume:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn fully_online(volume: &Volume) -> bool {
    volume.state.status == VolumeStatus::Online
        && volume
            .state
            .replica_topology
            .values()
            .all(|r| r.child_status == Some(ChildState::Online) && r.rebuild_progress.is_none())
}

/// Replica UUIDs of `after` that `before` did not have.
fn added(before: &Volume, after: &Volume) -> Vec<String> {
    let old = &before.state.replica_topology;
    after
        .state
        .replica_topology
        .keys()
        .filter(|k| !old.contains_key(*k))
        .cloned()
        .collect()
}

/// The (uuid, pool) that `after` no longer has.
fn removed(before: &Volume, after: &Volume) -> (String, String) {
    let gone: Vec<_> = before
        .state
        .replica_topology
        .iter()
        .filter(|(k, _)| !after.state.replica_topology.contains_key(*k))
        .collect();
    assert_eq!(gone.len(), 1, "exactly one replica is removed");
    (gone[0].0.clone(), gone[0].1.pool.clone().expect("pool"))
}

async fn used(client: &MayastorClient, pool: &str) -> u64 {
    client
        .get_pool(pool)
        .await
        .unwrap()
        .state
        .expect("pool state")
        .used
}

#[tokio::test]
async fn scale_up_respects_labels_cordons_and_one_replica_per_node() {
    // 1 GiB at 256 MiB/s: the rebuild lasts ~4 s, long enough to hit it with a second scale-up.
    let sim = start(Profile::V2_10, 256.0).await;
    for node in ["n1", "n2", "n3", "n4", "n5"] {
        sim.node(node).await;
    }
    sim.pool("nvme-1", "n1", 10, json!({"tier": "nvme"})).await;
    sim.pool("big-1", "n1", 100, json!({"tier": "sata"})).await; // same node as the replica
    sim.pool("sata-2", "n2", 10, json!({"tier": "sata"})).await;
    sim.pool("sata-3", "n3", 50, json!({"tier": "sata"})).await; // node gets cordoned
    sim.pool("nvme-4", "n4", 80, json!({"tier": "nvme"})).await; // pool gets cordoned
    sim.pool("bare-5", "n5", 90, json!({})).await; // lacks the inclusion key
    let id = sim
        .volume(json!({"size": GIB, "pools": ["nvme-1"], "publish_on": "n1", "inclusion": {"tier": ""}}))
        .await;
    let ms = client(&sim);
    ms.cordon_node("n3", "maintenance").await.unwrap();
    ms.cordon_pool("nvme-4", &PoolCordonReq::REPLICAS)
        .await
        .unwrap();

    let before = ms.get_volume(&id).await.unwrap();
    let used_before = used(&ms, "sata-2").await;
    let grown = ms.set_replica_count(&id, 2).await.unwrap();
    let new = added(&before, &grown);
    assert_eq!(new.len(), 1);
    let replica = &grown.state.replica_topology[&new[0]];
    assert_eq!(
        replica.pool.as_deref(),
        Some("sata-2"),
        "only sata-2 qualifies: {grown:#?}"
    );
    assert_eq!(replica.child_status, Some(ChildState::Degraded));
    assert!(replica.rebuild_progress.is_some());
    assert_eq!(grown.spec.num_replicas, 2);
    assert_eq!(
        used(&ms, "sata-2").await,
        used_before + GIB,
        "pool used grows by the replica"
    );

    // Scaling up again before the rebuild ends is refused (volume not Online) ...
    let busy = ms.set_replica_count(&id, 3).await.unwrap_err();
    assert_eq!(busy.status(), Some(StatusCode::PRECONDITION_FAILED));
    assert!(
        busy.rest_error()
            .unwrap()
            .message
            .contains("ReplicaIncrease"),
        "{busy}"
    );
    wait_for(&ms, &id, fully_online).await;

    // ... and once Online nothing qualifies until the node cordon is lifted.
    let full = ms.set_replica_count(&id, 3).await.unwrap_err();
    assert_eq!(full.status(), Some(StatusCode::INSUFFICIENT_STORAGE));
    assert_eq!(full.kind(), Some(&ErrorKind::ResourceExhausted));
    ms.uncordon_node("n3", "maintenance").await.unwrap();
    let before = ms.get_volume(&id).await.unwrap();
    let grown = ms.set_replica_count(&id, 3).await.unwrap();
    let new = added(&before, &grown);
    assert_eq!(
        grown.state.replica_topology[&new[0]].pool.as_deref(),
        Some("sata-3")
    );
    let nodes: std::collections::BTreeSet<_> = grown
        .state
        .replica_topology
        .values()
        .map(|r| r.node.clone())
        .collect();
    assert_eq!(nodes.len(), 3, "one replica per node");
}

#[tokio::test]
async fn inclusion_values_are_matched_against_current_pool_labels() {
    let sim = start(Profile::V2_7, 1024.0).await;
    for node in ["n1", "n2", "n3"] {
        sim.node(node).await;
    }
    sim.pool("sata-1", "n1", 10, json!({"tier": "sata"})).await;
    sim.pool("nvme-2", "n2", 90, json!({"tier": "nvme"})).await;
    sim.pool("sata-3", "n3", 20, json!({"tier": "sata"})).await;
    // Created through the real `PUT /v0/volumes/{id}` with a `CreateVolumeBody`.
    let id = "0f8e0c4a-6b1d-4c39-9b7e-3d5a2f1e9c01";
    let body = json!({"policy": {"self_heal": true}, "replicas": 1, "size": GIB, "thin": false,
        "topology": {"pool_topology": {"labelled": {"inclusion": {"tier": "sata"}, "exclusion": {}}}}});
    let (status, created) = common::raw(
        &sim.http,
        Method::PUT,
        &sim.v0(&format!("/volumes/{id}")),
        Some(&body),
    )
    .await;
    assert_eq!(status, 200, "{created}");
    let ms = client(&sim);
    let volume = ms.get_volume(id).await.unwrap();
    let first = volume.state.replica_topology.values().next().unwrap();
    assert_eq!(
        first.pool.as_deref(),
        Some("sata-3"),
        "most free space among tier=sata"
    );
    wait_for(&ms, id, |v| v.state.status == VolumeStatus::Online).await;

    // Relabelling the big nvme pool makes it the best candidate: placement reads current labels.
    ms.put_pool_label("nvme-2", "tier", "sata", true)
        .await
        .unwrap();
    let refused = ms
        .put_pool_label("nvme-2", "tier", "x", false)
        .await
        .unwrap_err();
    assert_eq!(refused.status(), Some(StatusCode::PRECONDITION_FAILED));
    let grown = ms.set_replica_count(id, 2).await.unwrap();
    let new = added(&volume, &grown);
    assert_eq!(
        grown.state.replica_topology[&new[0]].pool.as_deref(),
        Some("nvme-2")
    );
    let pools = ms.list_pools_for_volume(id).await.unwrap();
    let mut ids: Vec<_> = pools.iter().map(|p| p.id.as_str()).collect();
    ids.sort_unstable();
    assert_eq!(ids, ["nvme-2", "sata-3"]);
}

#[tokio::test]
async fn rebuild_progresses_to_online_and_lands_in_history() {
    // 512 MiB at 256 MiB/s: about two seconds of observable progress.
    let sim = start(Profile::V2_9, 256.0).await;
    for node in ["n1", "n2"] {
        sim.node(node).await;
    }
    sim.pool("p1", "n1", 10, json!({})).await;
    sim.pool("p2", "n2", 10, json!({})).await;
    let id = sim
        .volume(json!({"size": GIB / 2, "pools": ["p1"], "publish_on": "n1"}))
        .await;
    let ms = client(&sim);
    let before = ms.get_volume(&id).await.unwrap();
    let grown = ms.set_replica_count(&id, 2).await.unwrap();
    let new = added(&before, &grown).remove(0);
    assert_eq!(grown.state.status, VolumeStatus::Degraded);

    let mut seen = Vec::new();
    let done = wait_for(&ms, &id, |v| {
        let replica = &v.state.replica_topology[&new];
        if let Some(progress) = replica.rebuild_progress {
            seen.push(progress);
        }
        fully_online(v)
    })
    .await;
    assert!(
        seen.iter().any(|p| (1..100).contains(p)),
        "intermediate progress seen: {seen:?}"
    );
    assert!(
        seen.windows(2).all(|w| w[0] <= w[1]),
        "progress never goes back: {seen:?}"
    );
    assert_eq!(
        done.state.replica_topology[&new].state,
        ReplicaState::Online
    );
    let nexus = done.state.target.as_ref().expect("published");
    assert_eq!(nexus.children.len(), 2);
    assert_eq!(nexus.rebuilds, 0);

    let history = ms.rebuild_history(&id).await.unwrap();
    assert_eq!(history.target_uuid, nexus.uuid);
    assert_eq!(history.records.len(), 1);
    let record = &history.records[0];
    assert_eq!(record.rebuild_job_state, RebuildJobState::Completed);
    assert!(record.child_uri.contains(&new) && record.child_uri.starts_with("nvmf://"));
    assert!(
        record.src_uri.starts_with("bdev:///"),
        "the nexus-local replica is the source"
    );
    assert_eq!(record.blocks_remaining, 0);
    assert_eq!(record.blocks_total, GIB / 2 / 512);
}
