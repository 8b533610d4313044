//! End to end, dry-run: the real controller binary against a real kube-apiserver, a real
//! Prometheus loaded with Mayastor-shaped series, and the Mayastor REST simulator.
//!
//! A dry-run policy must report exactly the right planned moves (status, Events, DRY-RUN log
//! lines), move nothing, and when Prometheus dies mid-run it must demote nothing and say so.

mod common;

use std::time::Duration;

use common::{eventually, explain_with};

use couchestor_common::StoragePolicy;
use couchestor_mayastor_sim::{Profile, World};
use couchestor_testsupport::cluster::{ADMIN_TOKEN, unique_name};
use couchestor_testsupport::process::{ChildProcess, free_port};
use couchestor_testsupport::{OpenMetrics, RunDir, cluster, prometheus};
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;

const GIB: u64 = 1 << 30;

struct Vol {
    key: &'static str,
    uuid: String,
    pool: &'static str,
    /// Read IOPS written to Prometheus; `None`: no series at all.
    iops: Option<f64>,
}

impl Vol {
    fn pv(&self) -> String {
        format!("pvc-{}", self.uuid)
    }
}

async fn post(http: &reqwest::Client, url: String, body: serde_json::Value) {
    let r = http.post(&url).json(&body).send().await.unwrap();
    assert!(
        r.status().is_success(),
        "{url}: {} {}",
        r.status(),
        r.text().await.unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_reports_the_right_moves_and_prometheus_loss_demotes_nothing() {
    let Some(c) = cluster().await else { return };
    let client = c.client();
    let ns = c.namespace("dry-run").await.unwrap();
    let sc = unique_name("tiered");
    let http = reqwest::Client::new();

    // Mayastor: two NVMe pools and two SATA pools on four nodes.
    let sim = couchestor_mayastor_sim::spawn(
        World::new(Profile::V2_10, 1024.0),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    for (i, (pool, tier)) in [
        ("nvme-a", "nvme"),
        ("nvme-b", "nvme"),
        ("sata-a", "sata"),
        ("sata-b", "sata"),
    ]
    .into_iter()
    .enumerate()
    {
        post(
            &http,
            format!("{}/nodes", sim.admin_url()),
            json!({"id": format!("node-{i}")}),
        )
        .await;
        post(
            &http,
            format!("{}/pools", sim.admin_url()),
            json!({"id": pool, "node": format!("node-{i}"), "capacity": 1000 * GIB, "labels": {"couchestor-tier": tier}}),
        )
        .await;
    }
    let uuid = |n: u8| format!("00000000-0000-4000-8000-0000000000{n:02}");
    let vols = [
        Vol {
            key: "hot-on-sata",
            uuid: uuid(1),
            pool: "sata-a",
            iops: Some(5000.0),
        },
        Vol {
            key: "cold-on-nvme",
            uuid: uuid(2),
            pool: "nvme-a",
            iops: Some(3.0),
        },
        Vol {
            key: "band-on-nvme",
            uuid: uuid(3),
            pool: "nvme-b",
            iops: Some(400.0),
        },
        Vol {
            key: "dark-on-nvme",
            uuid: uuid(4),
            pool: "nvme-b",
            iops: None,
        },
    ];
    for v in &vols {
        post(
            &http,
            format!("{}/volumes", sim.admin_url()),
            json!({"uuid": v.uuid, "size": 10 * GIB, "replicas": 1, "pools": [v.pool], "publish_on": "node-0"}),
        )
        .await;
    }

    // Prometheus: 2 h of Mayastor-shaped counters up to a minute ago.
    let end = k8s_openapi::jiff::Timestamp::now().as_second() - 60;
    let mut om = OpenMetrics::new();
    for v in &vols {
        let Some(iops) = v.iops else { continue };
        let pv = v.pv();
        for i in 0..240 {
            let labels = [("node", "node-0"), ("pv_name", pv.as_str())];
            om.gauge(
                "volume_num_read_ops",
                &labels,
                iops * (i * 30) as f64,
                end - 7200 + i * 30,
            );
            om.gauge("volume_num_write_ops", &labels, 0.0, end - 7200 + i * 30);
        }
    }
    let Some(mut prom) = prometheus(&om).await else {
        return;
    };

    // Kubernetes: a PV per volume, bound to a labelled claim.
    for v in &vols {
        let claim = format!("claim-{}", v.key);
        let pv: PersistentVolume = serde_json::from_value(json!({
            "metadata": {"name": v.pv()},
            "spec": {
                "capacity": {"storage": "10Gi"},
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": sc,
                "csi": {"driver": "io.openebs.csi-mayastor", "volumeHandle": v.uuid},
                "claimRef": {"namespace": ns, "name": claim}
            }
        }))
        .unwrap();
        Api::<PersistentVolume>::all(client.clone())
            .create(&PostParams::default(), &pv)
            .await
            .unwrap();
        let pvc: PersistentVolumeClaim = serde_json::from_value(json!({
            "metadata": {"name": claim, "labels": {"tiering": "enabled"}},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": sc,
                "volumeName": v.pv(),
                "resources": {"requests": {"storage": "10Gi"}}
            }
        }))
        .unwrap();
        Api::<PersistentVolumeClaim>::namespaced(client.clone(), &ns)
            .create(&PostParams::default(), &pvc)
            .await
            .unwrap();
    }

    // The controller binary, leader-elected in the test namespace.
    let dir = RunDir::new("dry-run").unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    c.write_kubeconfig(&kubeconfig, ADMIN_TOKEN).unwrap();
    let (metrics_port, health_port) = (free_port().unwrap(), free_port().unwrap());
    let log = dir.path().join("controller.log");
    let args: Vec<String> = [
        "run",
        "--prometheus-url",
        prom.url(),
        "--mayastor-url",
        &sim.base_url(),
        "--metrics-addr",
        &format!("127.0.0.1:{metrics_port}"),
        "--health-addr",
        &format!("127.0.0.1:{health_port}"),
        "--lease-namespace",
        &ns,
        "--reconcile-interval-seconds",
        "5",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let exe = std::path::Path::new(env!("CARGO_BIN_EXE_couchestor-controller"));
    let mut controller = ChildProcess::spawn_with_env(
        "controller",
        exe,
        &args,
        &log,
        &[("KUBECONFIG", kubeconfig.as_os_str())],
    )
    .unwrap();

    let name = unique_name("dry-run");
    let policy: StoragePolicy = serde_json::from_value(json!({
        "apiVersion": "storage.billyronks.io/v1", "kind": "StoragePolicy",
        "metadata": {"name": name},
        "spec": {
            "storageClassName": sc, "highWatermarkIOPS": 1000, "lowWatermarkIOPS": 100,
            "dryRun": true, "volumeSelector": {"matchLabels": {"tiering": "enabled"}}
        }
    }))
    .unwrap();
    let policies = Api::<StoragePolicy>::all(client.clone());
    policies
        .create(&PostParams::default(), &policy)
        .await
        .unwrap();

    let status = eventually(
        "planned moves",
        90,
        || async {
            policies
                .get(&name)
                .await
                .unwrap()
                .status
                .unwrap_or_default()
        },
        |s| s.planned_moves.len() == 2,
    )
    .await;
    controller.check_alive().unwrap();
    let mut moves: Vec<_> = status
        .planned_moves
        .iter()
        .map(|m| (m.volume.clone(), m.from, m.to))
        .collect();
    moves.sort();
    use couchestor_common::Tier::{Cold, Hot};
    assert_eq!(
        moves,
        vec![(vols[0].pv(), Cold, Hot), (vols[1].pv(), Hot, Cold)]
    );
    // The series ends a minute before the controller's "now": rate() over the last window
    // extrapolates less at the tail, which the decay weighs most. Within 5% of what was written.
    let heat = status
        .planned_moves
        .iter()
        .find(|m| m.to == Hot)
        .unwrap()
        .heat_iops;
    assert!((4750..=5000).contains(&heat), "heat {heat}");
    assert_eq!(
        status.planned_moves[0]
            .claim
            .as_deref()
            .map(|c| c.starts_with(&ns)),
        Some(true)
    );
    assert_eq!(
        (
            status.watched_volumes,
            status.hot_volumes,
            status.cold_volumes
        ),
        (4, 3, 1)
    );
    assert_eq!(
        status.unknown_volumes, 1,
        "the volume without metrics is unknown"
    );
    let cond = |t: &str| {
        status
            .conditions
            .iter()
            .find(|c| c.type_ == t)
            .unwrap()
            .status
            .clone()
    };
    assert_eq!(
        (
            cond("Ready"),
            cond("MetricsAvailable"),
            cond("BackendReachable")
        ),
        ("True".into(), "True".into(), "True".into())
    );

    // Events on the PVs and on the claims.
    let events = eventually(
        "dry-run events",
        30,
        || async {
            Api::<Event>::all(client.clone())
                .list(&ListParams::default())
                .await
                .unwrap()
                .items
        },
        |evs: &Vec<Event>| {
            evs.iter()
                .filter(|e| e.reason.as_deref() == Some("DryRunMigration"))
                .count()
                >= 4
        },
    )
    .await;
    for v in &vols[..2] {
        let on = |kind: &str, name: &str| {
            events.iter().any(|e| {
                e.reason.as_deref() == Some("DryRunMigration")
                    && e.regarding.as_ref().is_some_and(|r| {
                        r.kind.as_deref() == Some(kind) && r.name.as_deref() == Some(name)
                    })
            })
        };
        assert!(on("PersistentVolume", &v.pv()), "no Event on PV {}", v.pv());
        assert!(
            on("PersistentVolumeClaim", &format!("claim-{}", v.key)),
            "no Event on claim of {}",
            v.key
        );
    }
    for v in &vols[2..] {
        assert!(
            !events
                .iter()
                .any(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(&v.pv())),
            "{} should not be planned",
            v.key
        );
    }
    // Logged every cycle, but an Event only the first time the move is planned: a plan that
    // stands must not re-record (PATCH) its Events every interval.
    let dry_lines = |text: &str| {
        text.lines()
            .filter(|l| l.contains("DRY-RUN") && l.contains(&vols[0].pv()))
            .count()
    };
    eventually(
        "three cycles of DRY-RUN lines",
        60,
        || async { std::fs::read_to_string(&log).unwrap() },
        |text| dry_lines(text) >= 3,
    )
    .await;
    let on_pv: Vec<Event> = Api::<Event>::all(client.clone())
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| {
            e.reason.as_deref() == Some("DryRunMigration")
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(&vols[0].pv())
        })
        .collect();
    assert_eq!(on_pv.len(), 1, "{on_pv:?}");
    assert!(
        on_pv[0].series.is_none(),
        "re-recorded: {:?}",
        on_pv[0].series
    );

    // Health and metrics endpoints tell the truth.
    let readyz = http
        .get(format!("http://127.0.0.1:{health_port}/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(readyz.status(), 200);
    let metrics = http
        .get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(&format!(
            "storage_operator_reconcile_total{{policy=\"{name}\",result=\"ok\"}}"
        )),
        "{metrics}"
    );
    assert!(
        metrics.contains("storage_operator_migrations_total{status=\"success\"} 0"),
        "{metrics}"
    );

    // Dry-run moved nothing.
    let state: serde_json::Value = http
        .get(format!("{}/volumes/{}", sim.base_url(), vols[0].uuid))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(state["spec"]["num_replicas"], 1);
    assert_eq!(
        state["state"]["replica_topology"]
            .as_object()
            .unwrap()
            .len(),
        1
    );

    // `explain` answers "why is / isn't this volume moving" for a user at a terminal.
    let explain_as = |pv: String, flags: &[&str]| {
        explain_with(&kubeconfig, &sim.base_url(), &pv, prom.url(), flags)
    };
    let explain = |pv: String| explain_as(pv, &[]);
    let hot = explain(vols[0].pv());
    assert!(hot.contains(&format!("policy {name}")), "{hot}");
    assert!(
        hot.contains("deciding as a controller with --max-concurrent-migrations 2 --migration-timeout-minutes 30 --dry-run false\n"),
        "{hot}"
    );
    assert!(hot.contains("current tier: cold (pools: sata-a)"), "{hot}");
    // The sustained figure comes from the Prometheus history loaded for the sustained window.
    assert!(
        hot.contains("sustained heat (promotion needs it above the watermark too): ")
            && hot.contains("the mean over 1day"),
        "{hot}"
    );
    assert!(hot.contains("decision: WOULD MOVE (dry-run) cold -> hot: heat above the promotion watermark 1000 IOPS"), "{hot}");
    // It decides as the controller it is told about: given one migration slot for the whole
    // controller (the chart's MAX_CONCURRENT_MIGRATIONS in the controller pod), one of the two
    // planned moves waits for it, as the controller's plan would.
    let one_slot = ["--max-concurrent-migrations", "1"];
    let answers = [vols[0].pv(), vols[1].pv()].map(|pv| explain_as(pv, &one_slot));
    assert!(
        answers[0].contains("deciding as a controller with --max-concurrent-migrations 1 "),
        "{}",
        answers[0]
    );
    let waiting = answers
        .iter()
        .filter(|t| {
            t.contains("decision: WAITING: would move to ")
                && t.contains("all migration slots are busy")
        })
        .count();
    let moving = answers
        .iter()
        .filter(|t| t.contains("decision: WOULD MOVE (dry-run) "))
        .count();
    assert_eq!((waiting, moving), (1, 1), "{}\n{}", answers[0], answers[1]);
    // A controller scoped by --policy-selector does not manage this policy: nor does explain.
    let scoped = explain_as(vols[0].pv(), &["--policy-selector", "team=elsewhere"]);
    assert!(
        scoped.contains(
            "not migrating: no StoragePolicy matching --policy-selector \"team=elsewhere\" \
             manages this StorageClass"
        ),
        "{scoped}"
    );
    let band = explain(vols[2].pv());
    assert!(
        band.contains("decision: STAYS: heat") && band.contains("within the watermarks"),
        "{band}"
    );
    let dark = explain(vols[3].pv());
    assert!(
        dark.contains("heat: unknown (no metrics)") && dark.contains("never as cold"),
        "{dark}"
    );

    // Prometheus dies: heat becomes unknown, nothing is planned, the controller keeps running.
    prom.stop();
    let status = eventually(
        "MetricsAvailable=False",
        60,
        || async {
            policies
                .get(&name)
                .await
                .unwrap()
                .status
                .unwrap_or_default()
        },
        |s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == "MetricsAvailable" && c.status == "False")
        },
    )
    .await;
    assert!(
        status.planned_moves.is_empty(),
        "planned without metrics: {:?}",
        status.planned_moves
    );
    assert_eq!(status.unknown_volumes, 4);
    controller.check_alive().unwrap();
    let events = Api::<Event>::all(client.clone())
        .list(&ListParams::default())
        .await
        .unwrap()
        .items;
    assert!(
        events
            .iter()
            .any(|e| e.reason.as_deref() == Some("PrometheusUnavailable")
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name.as_str())),
        "no PrometheusUnavailable Event on the policy"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    let dry_after = text
        .lines()
        .filter(|l| l.contains("DRY-RUN") && l.contains(&vols[1].pv()))
        .count();
    tokio::time::sleep(Duration::from_secs(6)).await;
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        text.lines()
            .filter(|l| l.contains("DRY-RUN") && l.contains(&vols[1].pv()))
            .count(),
        dry_after,
        "a demotion was planned while Prometheus was down"
    );
    sim.shutdown().await.unwrap();
}
