//! Eyes at scale: `cargo bench -p couchestor-controller --bench scale`.
//!
//! The real controller binary (dry-run, reconciling every 5 s) against a real kube-apiserver
//! holding 10,000 PVs and bound claims, the Mayastor REST simulator holding the 10,000
//! volumes, and a real Prometheus backfilled with one `volume_num_read_ops` series per volume
//! (40 min at 1-minute samples), first with exactly those 10,000 series, then with 100,000
//! series (90,000 of them for volumes the cluster does not have; the heat query still returns
//! them all). For each: time until the policy status first counts every volume, then over
//! 65 s the reconciles, the Prometheus requests, the mean query time (request to parsed
//! answer), the series per answer, and the controller's RSS (current and peak); then the wall
//! time of `explain` for one PV.
//!
//! Without `--bench` (as `cargo test --all-targets` runs it) it does a 100-volume smoke run.
//! `COUCHESTOR_SCALE_SERIES=10000` (a comma-separated list) picks the series counts.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::{Env, create_policy, eventually, now};
use couchestor_common::StoragePolicy;
use couchestor_mayastor_sim::Profile;
use couchestor_testsupport::{OpenMetrics, prometheus};
use futures::StreamExt;
use kube::api::Api;
use serde_json::json;

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(run(full));
}

async fn run(full: bool) {
    let (volumes, mut series_counts, measure): (u32, Vec<u32>, u64) = if full {
        (10_000, vec![10_000, 100_000], 65)
    } else {
        (100, vec![100, 200], 12)
    };
    // COUCHESTOR_SCALE_SERIES=10000 runs only that size (comma-separated list).
    if let Ok(list) = std::env::var("COUCHESTOR_SCALE_SERIES") {
        series_counts = list
            .split(',')
            .map(|n| n.trim().parse().expect("COUCHESTOR_SCALE_SERIES: numbers"))
            .collect();
    }
    let Some(env) = Env::new("scale", Profile::V2_10, 1024.0).await else {
        return;
    };
    env.add_tier_nodes("nvme", 3).await;
    env.add_tier_nodes("sata", 3).await;
    let started = Instant::now();
    let pvs: Vec<String> = futures::stream::iter(0..volumes)
        .map(|i| {
            let env = &env;
            async move {
                let pool = format!("{}-{}", if i % 2 == 0 { "nvme" } else { "sata" }, i % 3);
                env.add_volume(&env.uuid(i + 1), 64 << 20, &[&pool], true)
                    .await
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    println!(
        "Eyes at scale: {volumes} PVs + claims + Mayastor volumes created in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    for n in series_counts {
        let end = now() - 30;
        let mut om = OpenMetrics::new();
        for i in 0..n {
            let pv = pvs
                .get(i as usize)
                .cloned()
                .unwrap_or_else(|| format!("pvc-elsewhere-{i}"));
            let iops = f64::from(i % 5000);
            let labels = [("pv_name", pv.as_str())];
            for s in 0..40 {
                let t = end - 2400 + s * 60;
                om.gauge("volume_num_read_ops", &labels, iops * (s * 60) as f64, t);
            }
        }
        let loading = Instant::now();
        let Some(prom) = prometheus(&om).await else {
            return;
        };
        drop(om);
        let loaded = loading.elapsed();
        let policy = format!("scale-{n}");
        create_policy(
            &env,
            &policy,
            json!({"dryRun": true, "samplingWindow": "30m"}),
        )
        .await;
        let ctl = env.controller(&format!("controller-{n}"), prom.url(), &[]);
        let t0 = Instant::now();
        let api = Api::<StoragePolicy>::all(env.client.clone());
        eventually(
            &format!("{volumes} watched volumes with heat"),
            600,
            || async { api.get(&policy).await.ok().and_then(|p| p.status) },
            |s| {
                s.as_ref()
                    .is_some_and(|s| s.watched_volumes == volumes && s.unknown_volumes == 0)
            },
        )
        .await;
        let first = t0.elapsed();
        let metrics_url = format!("http://127.0.0.1:{}/metrics", ctl.metrics_port);
        let before = scrape(&metrics_url).await;
        tokio::time::sleep(Duration::from_secs(measure)).await;
        let after = scrape(&metrics_url).await;
        let d = |name: &str| value(&after, name) - value(&before, name);
        let (reconciles, requests) = (
            d("storage_operator_reconcile_total"),
            d("storage_operator_prometheus_requests_total"),
        );
        let query_s = d("storage_operator_prometheus_query_seconds_total");
        let status = procfs::process::Process::new(ctl.process.pid() as i32)
            .and_then(|p| p.status())
            .expect("controller /proc status");
        println!(
            "{n} series (Prometheus backfill {:.0} s): first full status after {:.1} s; over {measure} s: {reconciles} reconciles, {requests} Prometheus requests ({:.2} per reconcile), mean query {:.0} ms, {} series per answer; controller RSS {:.0} MiB (peak {:.0} MiB)",
            loaded.as_secs_f64(),
            first.as_secs_f64(),
            if reconciles > 0.0 {
                requests / reconciles
            } else {
                f64::NAN
            },
            if requests > 0.0 {
                1000.0 * query_s / requests
            } else {
                f64::NAN
            },
            value(&after, "storage_operator_heat_series"),
            status.vmrss.unwrap_or(0) as f64 / 1024.0,
            status.vmhwm.unwrap_or(0) as f64 / 1024.0,
        );
        // `explain` of one PV, as an operator runs it: it reads what the controller's caches
        // hold (every PV and claim, paged), asks Prometheus for the heat and the
        // sustained-window history, and Mayastor for the volumes and pools.
        let t = Instant::now();
        let text = tokio::task::block_in_place(|| common::explain(&env, &pvs[0], prom.url()));
        println!(
            "explain of one PV among {volumes} with {n} series: {:.1} s",
            t.elapsed().as_secs_f64()
        );
        assert!(text.contains(&format!("policy {policy}")), "{text}");
        assert!(text.contains("decision: "), "{text}");
        assert!(
            requests <= reconciles,
            "more than one Prometheus request per reconcile"
        );
        assert_eq!(value(&after, "storage_operator_heat_series") as u32, n);
        drop(ctl);
        api.delete(&policy, &Default::default())
            .await
            .expect("delete policy");
    }
}

async fn scrape(url: &str) -> String {
    reqwest::get(url)
        .await
        .expect("scrape")
        .text()
        .await
        .expect("metrics text")
}

/// Sum of every sample of a metric in a text exposition.
fn value(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with([' ', '{']))
        })
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}
