//! The virtual clock and seeded ids: an embedder (or `/sim/clock`, `/sim/ids`) fast-forwards
//! rebuilds without waiting, and the same seed with the same requests gives the same world.

mod common;

use common::{GIB, Sim, raw, start};
use couchestor_mayastor_sim::{Clock, Profile};
use reqwest::Method;
use serde_json::{Value, json};

/// Two nodes with one pool each and a published 1-replica volume of 1 GiB on the first.
async fn one_volume(sim: &Sim) -> String {
    sim.node("n1").await;
    sim.node("n2").await;
    sim.pool("p1", "n1", 10, json!({})).await;
    sim.pool("p2", "n2", 10, json!({})).await;
    sim.volume(json!({"size": GIB, "pools": ["p1"], "publish_on": "n1"}))
        .await
}

async fn volume(sim: &Sim, id: &str) -> Value {
    let (status, v) = raw(
        &sim.http,
        Method::GET,
        &sim.v0(&format!("/volumes/{id}")),
        None,
    )
    .await;
    assert_eq!(status, 200, "{v}");
    v
}

/// The replica being rebuilt: its `rebuild-progress`, or `None` once every child is Online.
fn progress(v: &Value) -> Option<u64> {
    v["state"]["replica_topology"]
        .as_object()
        .expect("replica_topology")
        .values()
        .find_map(|r| r["rebuild-progress"].as_u64())
}

#[tokio::test]
async fn rebuilds_follow_the_virtual_clock_not_the_wall_clock() {
    // 1 GiB at 64 MiB/s takes 16 s of clock time.
    let sim = start(Profile::V2_10, 64.0).await;
    let id = one_volume(&sim).await;
    let t0: u64 = 1_767_225_600_000;
    let answer = sim
        .admin(Method::PUT, "/clock", json!({"now_ms": t0}))
        .await;
    assert_eq!(answer, json!({"mode": "virtual", "now_ms": t0}));
    assert_eq!(sim.admin(Method::GET, "/clock", Value::Null).await, answer);

    let (status, grown) = raw(
        &sim.http,
        Method::PUT,
        &sim.v0(&format!("/volumes/{id}/replica_count/2")),
        None,
    )
    .await;
    assert_eq!(status, 200, "{grown}");
    assert_eq!(progress(&grown), Some(0));
    // Wall time passes, virtual time does not: no progress.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(progress(&volume(&sim, &id).await), Some(0));

    // Half-way (8 s of virtual time), then done (16 s), in no wall time at all.
    sim.running.shared().set_clock(t0 + 8_000).unwrap();
    assert_eq!(progress(&volume(&sim, &id).await), Some(50));
    sim.admin(Method::PUT, "/clock", json!({"now_ms": t0 + 16_000}))
        .await;
    let done = volume(&sim, &id).await;
    assert_eq!(progress(&done), None, "{done}");
    assert_eq!(done["state"]["status"], "Online");
    let (_, history) = raw(
        &sim.http,
        Method::GET,
        &sim.v0(&format!("/volumes/{id}/rebuild-history")),
        None,
    )
    .await;
    let record = &history["records"][0];
    assert_eq!(record["rebuildJobState"], "Completed", "{history}");
    assert_eq!(record["endTime"], "2026-01-01T00:00:16.000Z", "{history}");

    // Scale down at virtual time: the removal audit carries that time.
    raw(
        &sim.http,
        Method::PUT,
        &sim.v0(&format!("/volumes/{id}/replica_count/1")),
        None,
    )
    .await;
    let removals = sim.running.shared().lock().world.removals.clone();
    assert_eq!(removals.len(), 1);
    assert_eq!(removals[0].at_ms, t0 + 16_000);

    // Backwards is refused, naming the problem; the clock stays where it was.
    let (status, err) = raw(
        &sim.http,
        Method::PUT,
        &format!("{}/clock", sim.running.admin_url()),
        Some(&json!({"now_ms": t0})),
    )
    .await;
    assert_eq!(status, 400, "{err}");
    assert!(
        err["details"]
            .as_str()
            .unwrap_or_default()
            .contains("cannot go backwards"),
        "{err}"
    );
    assert_eq!(
        sim.running.shared().lock().clock,
        Clock::Virtual(t0 + 16_000)
    );
    // Back to the wall clock.
    assert_eq!(
        sim.admin(Method::DELETE, "/clock", Value::Null).await,
        json!({"mode": "wall"})
    );
    assert_eq!(sim.running.shared().lock().clock, Clock::Wall);
}

/// The world after the same requests on a fresh simulator seeded with `seed`
/// (`None`: random ids), as dumped by `GET /sim/state`.
async fn scripted_world(seed: Option<u64>) -> Value {
    let sim = start(Profile::V2_10, 1024.0).await;
    if let Some(seed) = seed {
        sim.admin(Method::PUT, "/ids", json!({"seed": seed})).await;
    }
    sim.admin(Method::PUT, "/clock", json!({"now_ms": 1_000_000}))
        .await;
    for n in ["n1", "n2", "n3"] {
        sim.node(n).await;
        sim.pool(&format!("p-{n}"), n, 10, json!({})).await;
    }
    let id = sim
        .volume(json!({"size": GIB, "replicas": 2, "publish_on": "n1"}))
        .await;
    for count in [3, 2] {
        sim.running.shared().set_clock(1_000_000 + 60_000).ok();
        let (status, v) = raw(
            &sim.http,
            Method::PUT,
            &sim.v0(&format!("/volumes/{id}/replica_count/{count}")),
            None,
        )
        .await;
        assert_eq!(status, 200, "{v}");
    }
    sim.admin(Method::GET, "/state", Value::Null).await
}

#[tokio::test]
async fn a_seed_reproduces_every_uuid() {
    let a = scripted_world(Some(7)).await;
    let b = scripted_world(Some(7)).await;
    assert_eq!(a, b, "same seed, same requests: same world");
    let c = scripted_world(Some(8)).await;
    assert_ne!(a["volumes"], c["volumes"], "another seed gives other ids");
    let random = scripted_world(None).await;
    assert_ne!(a["volumes"], random["volumes"], "unseeded ids are random");
    let volume = a["volumes"].as_object().unwrap().values().next().unwrap();
    assert_eq!(volume["replicas"].as_object().unwrap().len(), 2);
}
