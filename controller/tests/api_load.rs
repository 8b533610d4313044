//! What a running migration costs the API server, read from the real kube-apiserver's own
//! `/metrics`. Alone in its test binary (its own apiserver), so no other test's requests count.

mod common;

use common::{Env, assert_completed, caught_rebuilding, eventually, migrations, phase};
use couchestor_common::migration::MigrationPhase;

/// Reads of StoragePolicies the apiserver has served so far: LISTs, and GETs, under which it
/// counts a LIST narrowed to one name by a field selector.
async fn policy_reads(env: &Env) -> f64 {
    let req = http::Request::get("/metrics").body(Vec::new()).unwrap();
    let text = env.client.request_text(req).await.unwrap();
    text.lines()
        .filter(|l| {
            l.starts_with("apiserver_request_total{")
                && l.contains(r#"resource="storagepolicies""#)
                && (l.contains(r#"verb="LIST""#) || l.contains(r#"verb="GET""#))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Each step of a migration asks whether its StoragePolicy still exists; the policy
/// controller's cache answers, so a move of ~30 steps adds no read of StoragePolicies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_migration_does_not_list_policies_on_every_step() {
    // 1 GiB at 32 MiB/s: 32 s of rebuild, polled every second.
    let Some((env, _id, _prom, c, _vm)) = caught_rebuilding("api-load", 32.0).await else {
        return;
    };
    let before = policy_reads(&env).await;
    // The policy controller's own first LIST is counted: the counter is being read.
    assert!(
        before >= 1.0,
        "no StoragePolicy read in the apiserver's metrics"
    );
    let vms = eventually(
        "the move to complete",
        120,
        || migrations(&env, "api-load"),
        |v| v.len() == 1 && phase(&v[0]).is_some_and(MigrationPhase::is_terminal),
    )
    .await;
    assert_completed(&vms[0], &c.log_text());
    let reads = policy_reads(&env).await - before;
    let st = vms[0].status.clone().unwrap();
    let waited = st.finished_at.unwrap().0.as_second() - st.started_at.unwrap().0.as_second();
    assert!(
        waited >= 20,
        "the move took {waited} s: too short to show per-step calls"
    );
    assert!(
        reads <= 2.0,
        "{reads} reads of StoragePolicies while the move ran {waited} s"
    );
}
