//! The demo: CoucheStor moving volumes live, on this machine, with nothing faked but Mayastor.
//!
//! `make demo` (= `cargo test -p couchestor-controller --test demo -- --demo`) starts a real
//! kube-apiserver + etcd, a real Prometheus loaded with six volumes' I/O history, the Mayastor
//! REST **simulator** (`couchestor-mayastor-sim`, profile 2.10: three NVMe and three SATA
//! nodes, rebuilds at 64 MiB/s so progress is visible) and the real `couchestor-controller`,
//! creates one StoragePolicy, and prints a live table until every move has finished: hot
//! volumes climb to NVMe, cold ones sink to SATA, the lukewarm one and the one without metrics
//! stay. It ends with the simulator's audit: every replica removal and the healthy copies left.
//!
//! Run by the test suite without `--demo`, it does the same quickly and silently, and fails
//! if any move ends elsewhere than expected or any removal was unsafe.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{
    Env, GIB, assert_no_cordons, assert_removals_safe, create_policy, migrations, now, series,
};
use couchestor_common::migration::MigrationPhase;
use couchestor_mayastor_sim::Profile;
use couchestor_testsupport::prometheus;
use serde_json::json;

struct DemoVolume {
    what: &'static str,
    pools: &'static [&'static str],
    /// Read IOPS in Prometheus; `None`: no series.
    iops: Option<f64>,
    /// Tier prefix of the pools it must end on.
    ends_on: &'static str,
}

const VOLUMES: [DemoVolume; 6] = [
    DemoVolume {
        what: "hot database",
        pools: &["sata-0"],
        iops: Some(5200.0),
        ends_on: "nvme",
    },
    DemoVolume {
        what: "hot queue, 2 replicas",
        pools: &["sata-1", "sata-2"],
        iops: Some(3100.0),
        ends_on: "nvme",
    },
    DemoVolume {
        what: "cold archive",
        pools: &["nvme-0"],
        iops: Some(0.5),
        ends_on: "sata",
    },
    DemoVolume {
        what: "cold backups",
        pools: &["nvme-1"],
        iops: Some(4.0),
        ends_on: "sata",
    },
    DemoVolume {
        what: "lukewarm (between watermarks)",
        pools: &["nvme-2"],
        iops: Some(450.0),
        ends_on: "nvme",
    },
    DemoVolume {
        what: "no metrics (unknown, never demoted)",
        pools: &["nvme-2"],
        iops: None,
        ends_on: "nvme",
    },
];

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let show = std::env::args().any(|a| a == "--demo");
    // 2 GiB volumes: at 64 MiB/s a rebuild takes ~32 s, long enough to watch.
    let (size, rate) = if show {
        (2 * GIB, 64.0)
    } else {
        (GIB / 4, 1024.0)
    };
    let Some(env) = Env::new("demo", Profile::V2_10, rate).await else {
        return;
    };
    env.add_tier_nodes("nvme", 3).await;
    env.add_tier_nodes("sata", 3).await;
    let mut pvs = Vec::new();
    let mut heat = Vec::new();
    let mut start = BTreeMap::new();
    for (i, v) in VOLUMES.iter().enumerate() {
        let id = env.uuid(i as u32 + 1);
        let pv = env.add_volume(&id, size, v.pools, true).await;
        if let Some(iops) = v.iops {
            heat.push((pv.clone(), iops));
        }
        start.insert(id.clone(), v.pools.len());
        pvs.push((id, pv));
    }
    let Some(prom) = prometheus(&series(&heat, now() - 60)).await else {
        return;
    };
    let ctl = env.controller("controller", prom.url(), &[]);
    create_policy(
        &env,
        "demo",
        json!({"maxConcurrentMigrations": 2, "cooldownPeriod": "1h"}),
    )
    .await;
    if show {
        println!(
            "\nStoragePolicy demo: promote above 1000 IOPS, demote below 100, 2 moves at a time"
        );
        println!("controller log: {}\n", ctl.log.display());
    }

    let began = Instant::now();
    let deadline = Duration::from_secs(if show { 600 } else { 240 });
    loop {
        let vms = migrations(&env, "demo").await;
        let mut rows = Vec::new();
        for ((id, pv), v) in pvs.iter().zip(&VOLUMES) {
            let pools = env.replica_pools(id).await;
            let vm = vms.iter().find(|m| &m.spec.volume == pv);
            let (phase, progress) =
                vm.and_then(|m| m.status.as_ref())
                    .map_or(("-".to_string(), String::new()), |s| {
                        (
                            s.phase.map_or("Pending".into(), |p| format!("{p:?}")),
                            s.rebuild_progress
                                .map_or(String::new(), |p| format!("{p:>3}%")),
                        )
                    });
            let heat = v.iops.map_or("unknown".into(), |i| format!("{i} IOPS"));
            rows.push(format!(
                "{:<38} {:>10}  {:<24} {:<12} {}",
                v.what,
                heat,
                pools.join(","),
                phase,
                progress
            ));
        }
        let done = vms.len() == 4
            && vms.iter().all(|m| {
                m.status
                    .as_ref()
                    .and_then(|s| s.phase)
                    .is_some_and(MigrationPhase::is_terminal)
            });
        if show {
            println!(
                "t={:>4}s  {:<38} {:>10}  {:<24} {:<12} REBUILD",
                began.elapsed().as_secs(),
                "VOLUME",
                "HEAT",
                "REPLICAS ON",
                "MIGRATION"
            );
            for r in &rows {
                println!("         {r}");
            }
            println!();
        }
        if done {
            break;
        }
        assert!(
            began.elapsed() < deadline,
            "the demo did not finish:\n{}\n{}",
            rows.join("\n"),
            ctl.log_text()
        );
        tokio::time::sleep(Duration::from_secs(if show { 3 } else { 1 })).await;
    }

    let state = env.sim_state().await;
    for ((id, _), v) in pvs.iter().zip(&VOLUMES) {
        let pools = env.replica_pools(id).await;
        assert_eq!(pools.len(), v.pools.len(), "{}: replica count kept", v.what);
        assert!(
            pools.iter().all(|p| p.starts_with(v.ends_on)),
            "{} ended on {pools:?}",
            v.what
        );
    }
    for vm in migrations(&env, "demo").await {
        let phase = vm.status.as_ref().and_then(|s| s.phase);
        assert_eq!(phase, Some(MigrationPhase::Completed), "{vm:?}");
    }
    assert_removals_safe(&state, &start);
    assert_no_cordons(&state);
    let removals = state["removals"].as_array().unwrap();
    assert_eq!(
        removals.len(),
        5,
        "one old replica per moved replica: {removals:?}"
    );
    if show {
        println!(
            "Done in {} s. Mayastor simulator audit of every replica removal:",
            began.elapsed().as_secs()
        );
        for r in removals {
            println!(
                "  {:<24} removed its replica on {} (was healthy: {}), healthy copies left: {}",
                pvs.iter()
                    .zip(&VOLUMES)
                    .find(|((id, _), _)| r["volume"].as_str() == Some(id.as_str()))
                    .map_or("?", |(_, v)| v.what),
                r["pool"].as_str().unwrap_or("?"),
                r["was_healthy"],
                r["healthy_after"]
            );
        }
        println!("No cordon left behind; every volume kept its replica count.");
    }
}
