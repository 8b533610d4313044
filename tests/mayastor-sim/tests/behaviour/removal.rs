//! Scale-down: which replica each profile removes, and the replica-count rules.

use super::*;

/// Three in-sync replicas of a 1 GiB volume published on n1: `p1` (nexus-local, on n1), `p2`
/// (n2) and `p3` (n3). Every pool carries `tier=fast`; the volume includes `tier` (any value).
async fn three_replicas(profile: Profile) -> (Sim, MayastorClient, String) {
    let sim = start(profile, 1024.0).await;
    for (node, pool) in [("n1", "p1"), ("n2", "p2"), ("n3", "p3")] {
        sim.node(node).await;
        sim.pool(pool, node, 10, json!({"tier": "fast"})).await;
    }
    let id = sim
        .volume(
            json!({"size": GIB, "pools": ["p1", "p2", "p3"], "publish_on": "n1",
                       "inclusion": {"tier": ""}}),
        )
        .await;
    let ms = client(&sim);
    (sim, ms, id)
}

/// Scales `id` from 3 to 2 and returns the pool of the removed replica.
async fn scale_down(ms: &MayastorClient, id: &str) -> String {
    let before = ms.get_volume(id).await.unwrap();
    assert!(fully_online(&before), "{before:#?}");
    let after = ms.set_replica_count(id, 2).await.unwrap();
    assert_eq!(after.spec.num_replicas, 2);
    assert_eq!(after.state.replica_topology.len(), 2);
    removed(&before, &after).1
}

#[tokio::test]
async fn without_hints_the_nexus_local_replica_is_kept() {
    for profile in ALL_PROFILES {
        let (_sim, ms, id) = three_replicas(profile).await;
        let victim = scale_down(&ms, &id).await;
        assert_ne!(
            victim, "p1",
            "{profile}: remote replicas go before the local one"
        );
    }
}

#[tokio::test]
async fn node_cordon_steers_removal_from_2_9_on() {
    for profile in ALL_PROFILES {
        let (_sim, ms, id) = three_replicas(profile).await;
        ms.cordon_node("n1", "couchestor-move").await.unwrap();
        let victim = scale_down(&ms, &id).await;
        if profile >= Profile::V2_9 {
            assert_eq!(
                victim, "p1",
                "{profile}: the replica on the cordoned node goes"
            );
        } else {
            assert_ne!(
                victim, "p1",
                "{profile}: cordons do not matter, local is kept"
            );
        }
    }
}

#[tokio::test]
async fn pool_label_mismatch_steers_removal_from_2_9_on() {
    for profile in ALL_PROFILES {
        let (_sim, ms, id) = three_replicas(profile).await;
        let pool = ms.delete_pool_label("p1", "tier").await.unwrap();
        assert!(!pool.spec.unwrap().labels.contains_key("tier"));
        let victim = scale_down(&ms, &id).await;
        if profile >= Profile::V2_9 {
            assert_eq!(victim, "p1", "{profile}: the replica off the topology goes");
        } else {
            assert_ne!(
                victim, "p1",
                "{profile}: labels do not matter, local is kept"
            );
        }
    }
}

#[tokio::test]
async fn nodes_report_the_profiles_engine_version_and_pool_cordon_state() {
    for profile in ALL_PROFILES {
        let (_sim, ms, _id) = three_replicas(profile).await;
        let versions: NodeVersions = ms.engine_versions().await.unwrap();
        let want: MayastorVersion = profile.engine_version().parse().unwrap();
        assert_eq!(versions.lowest, Some(want), "{profile}");
        assert_eq!(versions.reported, [profile.engine_version()]);
        assert!(versions.unknown.is_empty());
        if profile.has_pool_cordon() {
            let pool = ms
                .cordon_pool("p2", &PoolCordonReq::REPLICAS)
                .await
                .unwrap();
            assert!(pool.cordoned_for_replicas(), "{pool:?}");
            let pool = ms
                .uncordon_pool("p2", &PoolCordonReq::REPLICAS)
                .await
                .unwrap();
            assert!(!pool.cordoned_for_replicas(), "{pool:?}");
        }
    }
}

#[tokio::test]
async fn pool_cordon_exists_and_steers_removal_only_on_2_10() {
    for profile in ALL_PROFILES {
        let (_sim, ms, id) = three_replicas(profile).await;
        let caps = ms.capabilities().await.unwrap();
        assert_eq!(caps.source, DetectionSource::Probe);
        assert_eq!(caps.pool_cordon, profile.has_pool_cordon(), "{profile}");
        let forced = ms.clone().with_pool_cordon_override(Some(true));
        let forced_caps = forced.capabilities().await.unwrap();
        assert_eq!(
            (forced_caps.pool_cordon, forced_caps.source),
            (true, DetectionSource::Override)
        );

        let cordon = ms.cordon_pool("p1", &PoolCordonReq::REPLICAS).await;
        let victim = scale_down(&ms, &id).await;
        if profile.has_pool_cordon() {
            let pool = cordon.unwrap();
            assert!(pool.spec.unwrap().cordondrainstate.is_some());
            assert_eq!(
                victim, "p1",
                "{profile}: the replica on the cordoned pool goes"
            );
            let lifted = ms
                .uncordon_pool("p1", &PoolCordonReq::REPLICAS)
                .await
                .unwrap();
            assert!(lifted.spec.unwrap().cordondrainstate.is_none());
        } else {
            let error = cordon.unwrap_err();
            assert_eq!(
                error.status(),
                Some(StatusCode::NOT_FOUND),
                "{profile}: {error}"
            );
            assert!(
                error.to_string().contains("PUT /v0/pools/p1/cordon"),
                "{error}"
            );
            assert_ne!(victim, "p1", "{profile}");
        }
    }
}

#[tokio::test]
async fn a_rebuilding_replica_is_removed_before_any_healthy_one() {
    for profile in ALL_PROFILES {
        // 1 GiB at 8 MiB/s: the rebuild is still running when the scale-down comes.
        let sim = start(profile, 8.0).await;
        for (node, pool) in [("n1", "p1"), ("n2", "p2"), ("n3", "p3")] {
            sim.node(node).await;
            sim.pool(pool, node, 10, json!({})).await;
        }
        let id = sim
            .volume(json!({"size": GIB, "pools": ["p1", "p2"], "publish_on": "n1"}))
            .await;
        let ms = client(&sim);
        // Even a cordon on the nexus node (≥ 2.9 preference) does not outrank health.
        ms.cordon_node("n1", "x").await.unwrap();
        let before = ms.get_volume(&id).await.unwrap();
        let grown = ms.set_replica_count(&id, 3).await.unwrap();
        let new = added(&before, &grown).remove(0);
        let shrunk = ms.set_replica_count(&id, 2).await.unwrap();
        assert_eq!(
            removed(&grown, &shrunk).0,
            new,
            "{profile}: the move is undone"
        );
        assert_eq!(shrunk.state.status, VolumeStatus::Online);
    }
}

#[tokio::test]
async fn replica_count_rules_answer_412_with_the_upstream_error() {
    let sim = start(Profile::V2_10, 1024.0).await;
    sim.node("n1").await;
    sim.pool("p1", "n1", 10, json!({})).await;
    let id = sim
        .volume(json!({"size": GIB, "pools": ["p1"], "publish_on": "n1"}))
        .await;
    let ms = client(&sim);
    for (count, internal, details) in [
        (0, "LastReplica", "Cannot remove the last replica"),
        (3, "ReplicaChangeCount", "maximum of one at a time"),
        (1, "ReplicaCountAchieved", "is already '1'"),
    ] {
        let error = ms.set_replica_count(&id, count).await.unwrap_err();
        assert_eq!(
            error.status(),
            Some(StatusCode::PRECONDITION_FAILED),
            "{error}"
        );
        let rest = error.rest_error().expect("RestJsonError body");
        assert_eq!(rest.kind, ErrorKind::FailedPrecondition);
        assert_eq!(rest.message, format!("SvcError :: {internal}"));
        assert!(rest.details.contains(details), "{rest:?}");
        assert!(
            error
                .to_string()
                .contains(&format!("/replica_count/{count}")),
            "{error}"
        );
    }
    let missing = ms
        .get_volume("5b0c6a43-1111-4222-8333-944455556666")
        .await
        .unwrap_err();
    assert!(missing.is_not_found());
    assert_eq!(missing.kind(), Some(&ErrorKind::NotFound));
    let volume = ms.get_volume(&id).await.unwrap();
    assert_eq!(
        volume.spec.num_replicas, 1,
        "refused changes leave the spec alone"
    );
}
