//! Shared end-to-end plumbing: a real apiserver namespace, the Mayastor simulator, PVs and
//! claims, Mayastor-shaped Prometheus series, and the real controller binary.
#![allow(dead_code)] // Each test binary uses a different subset.

use std::path::PathBuf;
use std::time::Duration;

use std::collections::BTreeMap;

use couchestor_common::StoragePolicy;
use couchestor_common::migration::{MigrationPhase, POLICY_LABEL, VolumeMigration};
use couchestor_mayastor_sim::{Profile, RunningSim, World};
use couchestor_testsupport::cluster::{ADMIN_TOKEN, TestCluster, unique_name};
use couchestor_testsupport::process::{ChildProcess, free_port};
use couchestor_testsupport::{OpenMetrics, RunDir, cluster};
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use kube::Client;
use kube::api::{Api, ListParams, PostParams};
use serde_json::{Value, json};

/// One GiB.
pub const GIB: u64 = 1 << 30;

/// A test's world.
pub struct Env {
    /// The control plane.
    pub cluster: &'static TestCluster,
    /// Admin client.
    pub client: Client,
    /// The test's namespace (claims, Lease).
    pub ns: String,
    /// The test's StorageClass name.
    pub sc: String,
    /// Mayastor simulator.
    pub sim: RunningSim,
    /// Plain HTTP client.
    pub http: reqwest::Client,
    /// Scratch directory (logs, kubeconfig).
    pub dir: RunDir,
    /// Admin kubeconfig for child processes.
    pub kubeconfig: PathBuf,
    /// Distinguishes this Env's volume UUIDs (PVs are cluster-scoped).
    base: u32,
}

/// A running controller process.
pub struct Controller {
    /// The process.
    pub process: ChildProcess,
    /// Its log file.
    pub log: PathBuf,
    /// `/metrics` port.
    pub metrics_port: u16,
    /// `/healthz` and `/readyz` port.
    pub health_port: u16,
}

impl Controller {
    /// The log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Env {
    /// A fresh namespace and StorageClass name, and a simulator on `profile`.
    pub async fn new(test: &str, profile: Profile, rebuild_mib_per_sec: f64) -> Option<Self> {
        let cluster = cluster().await?;
        let ns = cluster.namespace(test).await.unwrap();
        let sim = couchestor_mayastor_sim::spawn(
            World::new(profile, rebuild_mib_per_sec),
            "127.0.0.1:0".parse().unwrap(),
        )
        .await
        .unwrap();
        let dir = RunDir::new(test).unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        cluster.write_kubeconfig(&kubeconfig, ADMIN_TOKEN).unwrap();
        Some(Self {
            cluster,
            client: cluster.client(),
            ns,
            sc: unique_name(test),
            sim,
            http: reqwest::Client::new(),
            dir,
            kubeconfig,
            base: {
                static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
                NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            },
        })
    }

    /// POSTs to the simulator's admin API and asserts success.
    pub async fn admin(&self, path: &str, body: Value) {
        self.admin_call(reqwest::Method::POST, path, body).await;
    }

    /// PUTs to the simulator's admin API and asserts success.
    pub async fn admin_put(&self, path: &str, body: Value) {
        self.admin_call(reqwest::Method::PUT, path, body).await;
    }

    async fn admin_call(&self, method: reqwest::Method, path: &str, body: Value) {
        let url = format!("{}/{path}", self.sim.admin_url());
        let r = self
            .http
            .request(method, &url)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(
            r.status().is_success(),
            "{url}: {} {}",
            r.status(),
            r.text().await.unwrap()
        );
    }

    /// Adds `count` nodes `<tier>-node-<i>`, each with one pool `<tier>-<i>` (1000 GiB,
    /// labelled `couchestor-tier=<tier>`).
    pub async fn add_tier_nodes(&self, tier: &str, count: usize) {
        for i in 0..count {
            let node = format!("{tier}-node-{i}");
            self.admin("nodes", json!({"id": node})).await;
            self.admin(
                "pools",
                json!({"id": format!("{tier}-{i}"), "node": node, "capacity": 1000 * GIB, "labels": {"couchestor-tier": tier}}),
            )
            .await;
        }
    }

    /// The `n`-th volume UUID of this Env, unique in the cluster.
    pub fn uuid(&self, n: u32) -> String {
        format!("00000000-0000-4000-8000-{:06}{n:06}", self.base)
    }

    /// The label selecting this test's policies (and migrations).
    pub fn selector(&self) -> String {
        format!("couchestor.io/test={}", self.ns)
    }

    /// Adds nodes `node-0..` each with one pool per entry of `tiers` (`<tier>-<i>`, 1000 GiB,
    /// labelled `couchestor-tier=<tier>`).
    pub async fn add_nodes(&self, count: usize, tiers: &[&str]) {
        for i in 0..count {
            self.admin("nodes", json!({"id": format!("node-{i}")}))
                .await;
            for t in tiers {
                self.admin(
                    "pools",
                    json!({"id": format!("{t}-{i}"), "node": format!("node-{i}"), "capacity": 1000 * GIB, "labels": {"couchestor-tier": t}}),
                )
                .await;
            }
        }
    }

    /// A published volume with replicas on `pools`, plus its PV and a bound, labelled claim.
    pub async fn add_volume(
        &self,
        uuid: &str,
        size: u64,
        pools: &[&str],
        published: bool,
    ) -> String {
        self.add_volume_with(uuid, size, pools, published, json!({}))
            .await
    }

    /// [`Env::add_volume`] with extra fields for the simulator's `POST /sim/volumes` (e.g.
    /// `{"inclusion": {"couchestor-tier": ""}}`).
    pub async fn add_volume_with(
        &self,
        uuid: &str,
        size: u64,
        pools: &[&str],
        published: bool,
        extra: Value,
    ) -> String {
        let node = self.sim_pool_node(pools[0]).await;
        let mut body = json!({"uuid": uuid, "size": size, "replicas": pools.len(), "pools": pools});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        if published {
            body["publish_on"] = json!(node);
        }
        self.admin("volumes", body).await;
        let pv = format!("pvc-{uuid}");
        let claim = format!("claim-{}", &uuid[uuid.len() - 6..]);
        let pv_obj: PersistentVolume = serde_json::from_value(json!({
            "metadata": {"name": pv},
            "spec": {
                "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "storageClassName": self.sc,
                "csi": {"driver": "io.openebs.csi-mayastor", "volumeHandle": uuid},
                "claimRef": {"namespace": self.ns, "name": claim}
            }
        }))
        .unwrap();
        Api::<PersistentVolume>::all(self.client.clone())
            .create(&PostParams::default(), &pv_obj)
            .await
            .unwrap();
        let pvc: PersistentVolumeClaim = serde_json::from_value(json!({
            "metadata": {"name": claim, "labels": {"tiering": "enabled"}},
            "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": self.sc, "volumeName": pv,
                     "resources": {"requests": {"storage": "1Gi"}}}
        }))
        .unwrap();
        Api::<PersistentVolumeClaim>::namespaced(self.client.clone(), &self.ns)
            .create(&PostParams::default(), &pvc)
            .await
            .unwrap();
        pv
    }

    async fn sim_pool_node(&self, pool: &str) -> String {
        let p: Value = self
            .http
            .get(format!("{}/pools/{pool}", self.sim.base_url()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        p["spec"]["node"].as_str().unwrap().to_string()
    }

    /// `GET /v0/volumes/{uuid}` from the simulator.
    pub async fn sim_volume(&self, uuid: &str) -> Value {
        self.http
            .get(format!("{}/volumes/{uuid}", self.sim.base_url()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// The pools holding a volume's replicas, sorted.
    pub async fn replica_pools(&self, uuid: &str) -> Vec<String> {
        let v = self.sim_volume(uuid).await;
        let mut pools: Vec<String> = v["state"]["replica_topology"]
            .as_object()
            .unwrap()
            .values()
            .map(|r| r["pool"].as_str().unwrap().to_string())
            .collect();
        pools.sort();
        pools
    }

    /// The simulator's whole state (including the removal audit log).
    pub async fn sim_state(&self) -> Value {
        self.http
            .get(format!("{}/state", self.sim.admin_url()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Starts the real controller binary against this world.
    pub fn controller(&self, name: &str, prometheus_url: &str, extra: &[&str]) -> Controller {
        let (metrics_port, health_port) = (free_port().unwrap(), free_port().unwrap());
        let mut args: Vec<String> = vec![
            "run".into(),
            "--prometheus-url".into(),
            prometheus_url.into(),
            "--mayastor-url".into(),
            self.sim.base_url(),
            "--metrics-addr".into(),
            format!("127.0.0.1:{metrics_port}"),
            "--health-addr".into(),
            format!("127.0.0.1:{health_port}"),
            "--lease-namespace".into(),
            self.ns.clone(),
            "--identity".into(),
            "controller-under-test".into(),
            "--reconcile-interval-seconds".into(),
            "5".into(),
            "--policy-selector".into(),
            self.selector(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let log = self.dir.path().join(format!("{name}.log"));
        let exe = std::path::Path::new(env!("CARGO_BIN_EXE_couchestor-controller"));
        let process = ChildProcess::spawn_with_env(
            name,
            exe,
            &args,
            &log,
            &[("KUBECONFIG", self.kubeconfig.as_os_str())],
        )
        .unwrap();
        Controller {
            process,
            log,
            metrics_port,
            health_port,
        }
    }
}

/// Mayastor-shaped counters: 2 h of 30 s samples up to `end` at a constant read rate per PV.
pub fn series(volumes: &[(String, f64)], end: i64) -> OpenMetrics {
    let mut om = OpenMetrics::new();
    for (pv, iops) in volumes {
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
    om
}

/// Polls `get` until `done` holds, for at most `secs` seconds, then fails with the last value.
pub async fn eventually<T, F, Fut>(
    what: &str,
    secs: u64,
    mut get: F,
    done: impl Fn(&T) -> bool,
) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = T>,
    T: std::fmt::Debug,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let v = get().await;
        if done(&v) {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}; last: {v:#?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Unix seconds now.
pub fn now() -> i64 {
    k8s_openapi::jiff::Timestamp::now().as_second()
}

/// The profile list every migration test runs on, with the controller's extra flags (none:
/// the release is detected from the versions the simulated io-engine nodes report).
pub fn profiles() -> [(Profile, &'static [&'static str]); 2] {
    [(Profile::V2_9, &[]), (Profile::V2_10, &[])]
}

/// A policy moving above 1000 / below 100 IOPS, not dry-run.
pub async fn create_policy(env: &Env, name: &str, extra: Value) {
    let mut spec = json!({
        "storageClassName": env.sc, "highWatermarkIOPS": 1000, "lowWatermarkIOPS": 100,
        "maxConcurrentMigrations": 4
    });
    spec.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let p: StoragePolicy = serde_json::from_value(json!({
        "apiVersion": "storage.billyronks.io/v1", "kind": "StoragePolicy",
        "metadata": {"name": name, "labels": {"couchestor.io/test": env.ns}}, "spec": spec
    }))
    .unwrap();
    Api::<StoragePolicy>::all(env.client.clone())
        .create(&PostParams::default(), &p)
        .await
        .unwrap();
}

/// What `couchestor-controller explain <pv>` prints against this world.
pub fn explain(env: &Env, pv: &str, prometheus_url: &str) -> String {
    explain_with(
        &env.kubeconfig,
        &env.sim.base_url(),
        pv,
        prometheus_url,
        &[],
    )
}

/// What `couchestor-controller explain <pv> [extra...]` prints with this kubeconfig and
/// Mayastor.
pub fn explain_with(
    kubeconfig: &std::path::Path,
    mayastor_url: &str,
    pv: &str,
    prometheus_url: &str,
    extra: &[&str],
) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_couchestor-controller"))
        .args([
            "explain",
            pv,
            "--prometheus-url",
            prometheus_url,
            "--mayastor-url",
            mayastor_url,
        ])
        .args(extra)
        .env("KUBECONFIG", kubeconfig)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "explain {pv}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The policy's migrations.
pub async fn migrations(env: &Env, policy: &str) -> Vec<VolumeMigration> {
    Api::<VolumeMigration>::all(env.client.clone())
        .list(&ListParams::default().labels(&format!("{POLICY_LABEL}={policy}")))
        .await
        .unwrap()
        .items
}

/// A migration's phase.
pub fn phase(vm: &VolumeMigration) -> Option<MigrationPhase> {
    vm.status.as_ref().and_then(|s| s.phase)
}

/// No replica left the simulator while the volume had no other healthy copies to spare:
/// every removal of a healthy replica left at least `start` healthy ones.
pub fn assert_removals_safe(state: &Value, start: &BTreeMap<String, usize>) {
    for r in state["removals"].as_array().unwrap() {
        let vol = r["volume"].as_str().unwrap();
        let Some(&n) = start.get(vol) else { continue };
        if r["was_healthy"].as_bool().unwrap() {
            assert!(
                r["healthy_after"].as_u64().unwrap() as usize >= n,
                "a healthy replica of {vol} was removed leaving {} healthy (started with {n}): {r}",
                r["healthy_after"]
            );
        }
    }
}

/// No pool or node is left cordoned.
pub fn assert_no_cordons(state: &Value) {
    assert_cordons(state, &[], &[]);
}

/// Exactly the given pools are cordoned and exactly the given `(node, label)` cordons remain
/// (those someone else placed), and nothing the engine places is left: no `couchestor-cordon`
/// pool mark, no `couchestor-…` node cordon label.
pub fn assert_cordons(state: &Value, pools: &[&str], node_labels: &[(&str, &str)]) {
    for (id, p) in state["pools"].as_object().unwrap() {
        let c = &p["cordon"];
        // The field must be there: a missing one would make this check vacuous.
        let flags = c
            .as_object()
            .unwrap_or_else(|| panic!("pool {id} has no cordon state: {p}"));
        let cordoned = flags.values().any(|v| v == true);
        assert_eq!(
            cordoned,
            pools.contains(&id.as_str()),
            "pool {id}: cordon {c}, expected cordoned: {pools:?}"
        );
        assert!(
            p["labels"].get("couchestor-cordon").is_none(),
            "pool {id} keeps the engine's cordon mark: {}",
            p["labels"]
        );
    }
    for (id, n) in state["nodes"].as_object().unwrap() {
        let labels: Vec<&str> = n["cordon_labels"]
            .as_array()
            .unwrap_or_else(|| panic!("node {id} has no cordon labels: {n}"))
            .iter()
            .map(|l| l.as_str().unwrap())
            .collect();
        let want: Vec<&str> = node_labels
            .iter()
            .filter(|(node, _)| node == id)
            .map(|(_, l)| *l)
            .collect();
        assert_eq!(labels, want, "node {id} cordon labels");
    }
}

/// The controller's `/metrics` text.
pub async fn metrics(env: &Env, ctl: &Controller) -> String {
    env.http
        .get(format!("http://127.0.0.1:{}/metrics", ctl.metrics_port))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// `storage_operator_migrations_total{status="<status>"}` of the controller is `n`.
pub async fn assert_outcomes(env: &Env, ctl: &Controller, status: &str, n: u32) {
    let m = metrics(env, ctl).await;
    let series = format!("storage_operator_migrations_total{{status=\"{status}\"}}");
    assert_eq!(sample(&m, &series), Some(f64::from(n)), "{series}:\n{m}");
}

/// Exactly one replica left the simulator, an unsynced one (the move's own new replica);
/// returns its removal record.
pub async fn only_unsynced_removed(env: &Env) -> Value {
    let state = env.sim_state().await;
    let removed = state["removals"].as_array().unwrap();
    assert_eq!(removed.len(), 1, "{removed:?}");
    assert_eq!(
        removed[0]["was_healthy"], false,
        "only an unsynced new replica may go: {removed:?}"
    );
    removed[0].clone()
}

/// The migration completed and holds no cordon; `log` is shown otherwise.
pub fn assert_completed(vm: &VolumeMigration, log: &str) {
    let st = vm.status.clone().unwrap_or_default();
    assert_eq!(st.phase, Some(MigrationPhase::Completed), "{st:?}\n{log}");
    assert!(st.cordons.is_empty(), "{st:?}");
}

/// The value of one sample line (`name{labels}`) in a `/metrics` text.
pub fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

/// Events (events.k8s.io/v1) regarding the object `kind`/`name`. Events about cluster-scoped
/// objects (PVs, VolumeMigrations) are recorded in `default`.
pub async fn events_about(
    env: &Env,
    kind: &str,
    name: &str,
) -> Vec<k8s_openapi::api::events::v1::Event> {
    let ns = if kind == "PersistentVolumeClaim" {
        env.ns.as_str()
    } else {
        "default"
    };
    Api::<k8s_openapi::api::events::v1::Event>::namespaced(env.client.clone(), ns)
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| {
            e.regarding
                .as_ref()
                .is_some_and(|r| r.kind.as_deref() == Some(kind) && r.name.as_deref() == Some(name))
        })
        .collect()
}

/// Waits until an Event with `reason` regards `kind`/`name`, and returns its note.
pub async fn event_note(env: &Env, kind: &str, name: &str, reason: &str) -> String {
    let evs = eventually(
        &format!("a {reason} Event on {kind} {name}"),
        30,
        || events_about(env, kind, name),
        |evs| evs.iter().any(|e| e.reason.as_deref() == Some(reason)),
    )
    .await;
    evs.into_iter()
        .find(|e| e.reason.as_deref() == Some(reason))
        .and_then(|e| e.note)
        .unwrap_or_default()
}

/// The `kubectl get volumemigrations` table for one migration, as the apiserver computes it
/// from the CRD's printer columns: column name -> cell.
pub async fn printed_row(env: &Env, name: &str) -> BTreeMap<String, Value> {
    let req = axum::http::Request::get(format!(
        "/apis/storage.billyronks.io/v1/volumemigrations/{name}"
    ))
    .header(
        "Accept",
        "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
    )
    .body(Vec::new())
    .unwrap();
    let table: Value = env.client.request(req).await.unwrap();
    let columns: Vec<String> = table["columnDefinitions"]
        .as_array()
        .unwrap_or_else(|| panic!("not a Table: {table}"))
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect();
    let cells = table["rows"][0]["cells"].as_array().unwrap().clone();
    columns.into_iter().zip(cells).collect()
}

/// A StoragePolicy, if it exists.
pub async fn policy(env: &Env, name: &str) -> Option<StoragePolicy> {
    Api::<StoragePolicy>::all(env.client.clone())
        .get_opt(name)
        .await
        .unwrap()
}

/// A VolumeMigration, if it exists.
pub async fn migration(env: &Env, name: &str) -> Option<VolumeMigration> {
    Api::<VolumeMigration>::all(env.client.clone())
        .get_opt(name)
        .await
        .unwrap()
}

/// The setting of the split-volume tests: a cold 2-replica volume of 1 GiB on `nvme-0` and
/// `nvme-1`, with 2 NVMe and 3 SATA nodes rebuilding at `rebuild_mib_per_sec`, its heat in a
/// real Prometheus, a controller, and the policy `test` with `spec`. Returns the environment,
/// the volume's UUID, the Prometheus (keep it alive) and the controller.
pub async fn cold_two_replica_volume(
    test: &str,
    rebuild_mib_per_sec: f64,
    spec: Value,
) -> Option<(
    Env,
    String,
    couchestor_testsupport::TestPrometheus,
    Controller,
)> {
    let env = Env::new(test, Profile::V2_10, rebuild_mib_per_sec).await?;
    env.add_tier_nodes("nvme", 2).await;
    env.add_tier_nodes("sata", 3).await;
    let id = env.uuid(1);
    let pv = env.add_volume(&id, GIB, &["nvme-0", "nvme-1"], true).await;
    let prom = couchestor_testsupport::prometheus(&series(&[(pv, 1.0)], now() - 60)).await?;
    let ctl = env.controller("c", prom.url(), &[]);
    create_policy(&env, test, spec).await;
    Some((env, id, prom, ctl))
}

/// One cold 1-replica volume on nvme-0 (two NVMe and two SATA nodes) that a policy wants on
/// SATA, and the Prometheus serving its low heat. Returns the volume's UUID.
pub async fn one_cold_volume(
    test: &str,
    profile: Profile,
    rebuild_mib_per_sec: f64,
    published: bool,
) -> Option<(Env, String, couchestor_testsupport::TestPrometheus)> {
    let env = Env::new(test, profile, rebuild_mib_per_sec).await?;
    env.add_tier_nodes("nvme", 2).await;
    env.add_tier_nodes("sata", 2).await;
    let id = env.uuid(1);
    let pv = env.add_volume(&id, GIB, &["nvme-0"], published).await;
    let prom = couchestor_testsupport::prometheus(&series(&[(pv, 1.0)], now() - 60)).await?;
    Some((env, id, prom))
}

/// A [`one_cold_volume`] moving to SATA under the policy `test` (default spec), caught in
/// WaitingSync. Returns the volume's UUID, the controller and the migration.
pub async fn caught_rebuilding(
    test: &str,
    rebuild_mib_per_sec: f64,
) -> Option<(
    Env,
    String,
    couchestor_testsupport::TestPrometheus,
    Controller,
    VolumeMigration,
)> {
    let (env, id, prom) = one_cold_volume(test, Profile::V2_10, rebuild_mib_per_sec, true).await?;
    let ctl = env.controller("c", prom.url(), &[]);
    create_policy(&env, test, json!({})).await;
    let vms = eventually(
        "WaitingSync",
        60,
        || migrations(&env, test),
        |v| v.len() == 1 && phase(&v[0]) == Some(MigrationPhase::WaitingSync),
    )
    .await;
    let vm = vms.into_iter().next().unwrap();
    Some((env, id, prom, ctl, vm))
}

/// The one migration of `policy` (of a [`cold_two_replica_volume`]) once its second replica
/// rebuilds: the first replacement has synced, four replicas are known.
pub async fn second_replica_rebuilding(env: &Env, policy: &str) -> Vec<VolumeMigration> {
    eventually(
        "the second replica rebuilding",
        120,
        || migrations(env, policy),
        |v| {
            v.len() == 1
                && phase(&v[0]) == Some(MigrationPhase::WaitingSync)
                && v[0].status.as_ref().is_some_and(|s| s.known.len() == 4)
        },
    )
    .await
}

/// After a consolidating move to `cold` (`vm`): the volume `id` is on SATA only with its two
/// replicas, every removal left it with two healthy replicas, no cordon is left. Returns the
/// pools of the simulator's removals.
pub async fn assert_consolidated_on_sata(env: &Env, id: &str, vm: &VolumeMigration) -> Vec<String> {
    assert_eq!(vm.spec.to, couchestor_common::Tier::Cold);
    assert!(
        vm.spec.reason.contains("interrupted move to cold"),
        "{}",
        vm.spec.reason
    );
    let now_on = env.replica_pools(id).await;
    assert_eq!(now_on.len(), 2, "replica count changed: {now_on:?}");
    assert!(now_on.iter().all(|p| p.starts_with("sata")), "{now_on:?}");
    let state = env.sim_state().await;
    assert_removals_safe(&state, &[(id.to_string(), 2)].into());
    assert_no_cordons(&state);
    removed_pools(&state)
}

/// The pools of the simulator's replica removals, in order.
pub fn removed_pools(state: &Value) -> Vec<String> {
    state["removals"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["pool"].as_str().map(str::to_string))
        .collect()
}

impl Env {
    /// The annotations of PV `pv`.
    pub async fn pv_annotations(&self, pv: &str) -> BTreeMap<String, String> {
        Api::<PersistentVolume>::all(self.client.clone())
            .get(pv)
            .await
            .unwrap()
            .metadata
            .annotations
            .unwrap_or_default()
    }
}
