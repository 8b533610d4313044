//! Fault injection (`/sim/faults…`, node/pool status) and paging.

use super::*;

async fn two_nodes(profile: Profile, rate: f64) -> (Sim, MayastorClient, String) {
    nodes(profile, rate, 2).await
}

/// Nodes `n1..=count`, each with a 10 GiB pool `p<i>`, and a 1 GiB volume on p1 published on n1.
async fn nodes(profile: Profile, rate: f64, count: usize) -> (Sim, MayastorClient, String) {
    let sim = start(profile, rate).await;
    for i in 1..=count {
        let node = format!("n{i}");
        sim.node(&node).await;
        sim.pool(&format!("p{i}"), &node, 10, json!({})).await;
    }
    let id = sim
        .volume(json!({"size": GIB, "pools": ["p1"], "publish_on": "n1"}))
        .await;
    let ms = client(&sim);
    (sim, ms, id)
}

#[tokio::test]
async fn an_injected_rebuild_failure_faults_the_child_and_is_recorded() {
    let (sim, ms, id) = two_nodes(Profile::V2_10, 2048.0).await;
    sim.admin(
        Method::POST,
        "/faults/fail-next-rebuild",
        json!({"at_percent": 30}),
    )
    .await;
    let before = ms.get_volume(&id).await.unwrap();
    let grown = ms.set_replica_count(&id, 2).await.unwrap();
    let new = added(&before, &grown).remove(0);
    let failed = wait_for(&ms, &id, |v| {
        v.state.replica_topology[&new].child_status == Some(ChildState::Faulted)
    })
    .await;
    assert_eq!(failed.state.status, VolumeStatus::Degraded);
    assert_eq!(failed.state.replica_topology[&new].rebuild_progress, None);

    let history = ms.rebuild_history(&id).await.unwrap();
    let record = history.records.last().expect("a record");
    assert_eq!(record.rebuild_job_state, RebuildJobState::Failed);
    assert_eq!(record.blocks_recovered, record.blocks_total * 30 / 100);
    assert!(record.blocks_remaining > 0);

    // The injected failure is consumed: the faulted replica goes first on scale-down, and the
    // next scale-up rebuilds normally.
    let shrunk = ms.set_replica_count(&id, 1).await.unwrap();
    assert_eq!(removed(&failed, &shrunk).0, new);
    assert_eq!(shrunk.state.status, VolumeStatus::Online);
    ms.set_replica_count(&id, 2).await.unwrap();
    wait_for(&ms, &id, fully_online).await;
    let history = ms.rebuild_history(&id).await.unwrap();
    assert_eq!(
        history.records.last().unwrap().rebuild_job_state,
        RebuildJobState::Completed
    );
}

#[tokio::test]
async fn injected_http_errors_name_the_endpoint_and_run_out() {
    let (sim, ms, id) = two_nodes(Profile::V2_7, 1024.0).await;
    sim.admin(
        Method::POST,
        "/faults/errors",
        json!({"method": "GET", "path_prefix": "/v0/volumes/", "count": 2}),
    )
    .await;
    for _ in 0..2 {
        let error = ms.get_volume(&id).await.unwrap_err();
        assert_eq!(error.status(), Some(StatusCode::INTERNAL_SERVER_ERROR));
        assert_eq!(error.kind(), Some(&ErrorKind::Internal));
        let text = error.to_string();
        assert!(
            text.contains("get_volume") && text.contains(&format!("GET /v0/volumes/{id}")),
            "{text}"
        );
    }
    ms.get_volume(&id)
        .await
        .expect("the third call goes through");
    ms.list_pools()
        .await
        .expect("other routes were never affected");

    sim.admin(Method::POST, "/faults/latency", json!({"millis": 300}))
        .await;
    let slow =
        MayastorClient::with_timeout(&sim.running.base_url(), Duration::from_millis(100)).unwrap();
    let timeout = slow.list_nodes().await.unwrap_err();
    assert!(
        matches!(timeout, mayastor::Error::Transport { .. }),
        "{timeout:?}"
    );
    sim.admin(Method::DELETE, "/faults", json!(null)).await;
    slow.list_nodes().await.expect("latency cleared");
}

#[tokio::test]
async fn offline_node_and_faulted_pool_degrade_the_volume() {
    let (sim, ms, id) = two_nodes(Profile::V2_9, 1024.0).await;
    ms.set_replica_count(&id, 2).await.unwrap();
    wait_for(&ms, &id, fully_online).await;

    sim.admin(
        Method::PUT,
        "/nodes/n2/status",
        json!({"status": "Offline"}),
    )
    .await;
    let pool = ms.get_pool("p2").await.unwrap();
    assert!(
        pool.state.is_none(),
        "a pool on an offline node has no state"
    );
    let volume = ms.get_volume(&id).await.unwrap();
    assert_eq!(volume.state.status, VolumeStatus::Degraded);
    let on_n2 = volume
        .state
        .replica_topology
        .values()
        .find(|r| r.node.as_deref() == Some("n2"))
        .unwrap();
    assert_eq!(on_n2.state, ReplicaState::Unknown);
    // The node itself reports Offline.
    let n2 = ms
        .list_nodes()
        .await
        .unwrap()
        .into_iter()
        .find(|n| n.id == "n2")
        .unwrap();
    assert_eq!(
        n2.state.unwrap().status,
        mayastor::model::NodeStatus::Offline
    );

    sim.admin(Method::PUT, "/nodes/n2/status", json!({"status": "Online"}))
        .await;
    wait_for(&ms, &id, fully_online).await;
    sim.admin(
        Method::PUT,
        "/pools/p1/status",
        json!({"status": "Faulted"}),
    )
    .await;
    let volume = ms.get_volume(&id).await.unwrap();
    assert_eq!(volume.state.status, VolumeStatus::Degraded);
    let on_p1 = volume
        .state
        .replica_topology
        .values()
        .find(|r| r.pool.as_deref() == Some("p1"))
        .unwrap();
    assert_eq!(on_p1.state, ReplicaState::Faulted);
    assert_eq!(on_p1.child_status, Some(ChildState::Faulted));
}

#[tokio::test]
async fn volumes_are_paged_and_fully_listed() {
    let sim = start(Profile::V2_10, 1024.0).await;
    sim.node("n1").await;
    sim.pool("p1", "n1", 100, json!({})).await;
    for _ in 0..5 {
        sim.volume(json!({"size": GIB, "pools": ["p1"]})).await;
    }
    let ms = client(&sim);
    let first = ms.list_volumes_page(2, None).await.unwrap();
    assert_eq!((first.entries.len(), first.next_token), (2, Some(2)));
    let last = ms.list_volumes_page(2, Some(4)).await.unwrap();
    assert_eq!((last.entries.len(), last.next_token), (1, None));
    let all = ms.list_volumes().await.unwrap();
    assert_eq!(all.len(), 5);
    assert!(
        all.iter().all(|v| v.state.target.is_none()),
        "unpublished: no target"
    );
    let pool = ms.get_pool("p1").await.unwrap().state.unwrap();
    assert_eq!((pool.used, pool.committed), (5 * GIB, Some(5 * GIB)));
}

#[tokio::test]
async fn the_ignore_cordons_fault_lets_placement_use_cordoned_pools_and_nodes() {
    let (sim, ms, id) = nodes(Profile::V2_10, 1024.0, 3).await;
    ms.cordon_pool("p2", &PoolCordonReq::REPLICAS)
        .await
        .unwrap();
    ms.cordon_node("n3", "maintenance").await.unwrap();
    let refused = ms.set_replica_count(&id, 2).await.unwrap_err();
    assert_eq!(refused.status(), Some(StatusCode::INSUFFICIENT_STORAGE));

    sim.admin(
        Method::PUT,
        "/faults/ignore-cordons",
        json!({"enabled": true}),
    )
    .await;
    let before = ms.get_volume(&id).await.unwrap();
    let grown = ms.set_replica_count(&id, 2).await.unwrap();
    let new = added(&before, &grown).remove(0);
    let pool = grown.state.replica_topology[&new].pool.clone().unwrap();
    assert!(["p2", "p3"].contains(&pool.as_str()), "{pool}");
    // Cleared with the other faults: cordons are honoured again.
    sim.admin(Method::DELETE, "/faults", json!(null)).await;
    wait_for(&ms, &id, fully_online).await;
    let refused = ms.set_replica_count(&id, 3).await.unwrap_err();
    assert_eq!(refused.status(), Some(StatusCode::INSUFFICIENT_STORAGE));
}
