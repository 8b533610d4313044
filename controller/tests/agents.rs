//! Controller side of the node agents, end to end: three real agents (the agent library's
//! `serve`, on three loopback addresses with their own certificates, reading fixture sysfs
//! trees), agent pods in the real apiserver pointing at them, and the real controller binary
//! classifying unlabelled Mayastor pools by the media the agents report.
//!
//! Proves: pools without a tier label are classified from their disks (plain path, partition-
//! free `aio://` URI, `/dev/disk/by-id` alias), labels win over media, virtual devices stay
//! unknown; the engine plans moves onto auto-classified pools; `explain` shows the
//! classification; an agent going away sets AgentsReachable=False with an Event and the
//! node's pools keep their last known media, so tiering goes on.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Env, GIB, create_policy, eventually, now, series};
use couchestor_agent::server::{ServeArgs, serve};
use couchestor_common::StoragePolicy;
use couchestor_mayastor_sim::Profile;
use couchestor_testsupport::pki::TestCa;
use couchestor_testsupport::process::free_port;
use couchestor_testsupport::{RunDir, prometheus, workspace_root};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use tokio::sync::oneshot;

const SERVER_NAME: &str = "couchestor-agent";

/// A running agent: its own runtime on its own thread, so stopping it drops every
/// connection too.
struct Agent {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Agent {
    fn stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            tx.send(()).expect("agent still running");
        }
        if let Some(t) = self.thread.take() {
            t.join().expect("agent thread");
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            // Err: the agent already stopped by itself, which is what we want.
            tx.send(()).ok();
        }
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn start_agent(
    ca: &TestCa,
    dir: &Path,
    ip: &str,
    port: u16,
    node: &str,
    sysfs: &Path,
    dev: &Path,
) -> Agent {
    let pair = ca.server_cert(&[SERVER_NAME]).unwrap();
    let args = ServeArgs {
        listen: format!("{ip}:{port}").parse().unwrap(),
        tls_cert: write(dir, &format!("{node}.crt"), &pair.cert_pem),
        tls_key: write(dir, &format!("{node}.key"), &pair.key_pem),
        client_ca: write(dir, "agents-ca.crt", &ca.cert_pem()),
        sysfs_root: sysfs.to_path_buf(),
        dev_root: dev.to_path_buf(),
        interval: Duration::from_secs(1),
        metrics_addr: format!("{ip}:0").parse().unwrap(),
        node_name: Some(node.to_string()),
        shard_store_dir: None,
    };
    let (tx, rx) = oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(serve(
            &args,
            tonic::service::RoutesBuilder::default(),
            async {
                drop(rx.await);
            },
        ))
        .expect("agent serves");
    });
    Agent {
        stop: Some(tx),
        thread: Some(thread),
    }
}

async fn agent_pod(env: &Env, node: &str, ip: &str, port: u16) {
    let pods = Api::<Pod>::namespaced(env.client.clone(), &env.ns);
    let name = format!("couchestor-agent-{node}");
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {
            "app.kubernetes.io/name": "couchestor", "app.kubernetes.io/component": "agent"}},
        "spec": {"nodeName": node, "containers": [{
            "name": "agent", "image": "couchestor-agent:test",
            "ports": [{"name": "grpc", "containerPort": port}]}]}
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    // No kubelet here: report the pod running at the agent's address ourselves.
    let status = json!({"status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]}});
    pods.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
}

async fn condition(env: &Env, policy: &str, type_: &str) -> Option<(String, String)> {
    let p = Api::<StoragePolicy>::all(env.client.clone())
        .get(policy)
        .await
        .unwrap();
    let c = p
        .status?
        .conditions
        .into_iter()
        .find(|c| c.type_ == type_)?;
    Some((c.status, c.message))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlabelled_pools_are_classified_by_the_agents_and_a_lost_agent_only_degrades() {
    let Some(env) = Env::new("agents", Profile::V2_10, 1024.0).await else {
        return;
    };
    let fixtures = workspace_root().join("agent/tests/fixtures");
    let dir = RunDir::new("agents-tls").unwrap();

    // n2's NVMe disk is named by a by-id link, as DiskPools usually are.
    let dev2 = dir.path().join("dev-n2");
    std::fs::create_dir_all(dev2.join("disk/by-id")).unwrap();
    std::os::unix::fs::symlink("../../nvme1n1", dev2.join("disk/by-id/nvme-CoucheTest_S2"))
        .unwrap();
    let no_links = dir.path().join("dev-empty");
    std::fs::create_dir_all(&no_links).unwrap();

    let ca = TestCa::new("couchestor-agents").unwrap();
    let hosts = [
        (
            "n0",
            "127.0.0.2",
            fixtures.join("nvme-host/t0"),
            no_links.clone(),
        ),
        (
            "n1",
            "127.0.0.3",
            fixtures.join("sata-host/t0"),
            no_links.clone(),
        ),
        ("n2", "127.0.0.4", fixtures.join("nvme-host/t0"), dev2),
    ];
    let mut agents = Vec::new();
    for (node, ip, sysfs, dev) in &hosts {
        let port = free_port().unwrap();
        agents.push(start_agent(&ca, dir.path(), ip, port, node, sysfs, dev));
        agent_pod(&env, node, ip, port).await;
        env.admin("nodes", json!({"id": node})).await;
    }
    // The controller's own client certificate, laid out like a kubernetes.io/tls Secret.
    let tls_dir = dir.path().join("controller-tls");
    std::fs::create_dir_all(&tls_dir).unwrap();
    let client = ca.client_cert("couchestor-controller").unwrap();
    write(&tls_dir, "ca.crt", &ca.cert_pem());
    write(&tls_dir, "tls.crt", &client.cert_pem);
    write(&tls_dir, "tls.key", &client.key_pem);

    let pools = [
        ("nvme-0", "n0", "/dev/nvme0n1", None),
        ("sata-1", "n1", "aio:///dev/sda?uuid=7e1c", None),
        ("nvme-2", "n2", "/dev/disk/by-id/nvme-CoucheTest_S2", None),
        ("loop-1", "n1", "/dev/loop0", None),
        ("hdd-1", "n1", "/dev/sdb", Some("sata")),
    ];
    for (id, node, disk, label) in pools {
        let mut body = json!({"id": id, "node": node, "capacity": 1000 * GIB, "disk": disk});
        if let Some(l) = label {
            body["labels"] = json!({"couchestor-tier": l});
        }
        env.admin("pools", body).await;
    }
    let hot = env
        .add_volume(&env.uuid(1), 10 * GIB, &["sata-1"], true)
        .await;
    let cold = env
        .add_volume(&env.uuid(2), 10 * GIB, &["nvme-0"], true)
        .await;
    let steady = env
        .add_volume(&env.uuid(3), 10 * GIB, &["nvme-2"], true)
        .await;
    let on_loop = env
        .add_volume(&env.uuid(4), 10 * GIB, &["loop-1"], true)
        .await;
    let heat = [
        (hot.clone(), 5000.0),
        (cold.clone(), 1.0),
        (steady.clone(), 500.0),
        (on_loop.clone(), 5000.0),
    ];
    let Some(prom) = prometheus(&series(&heat, now() - 60)).await else {
        return;
    };

    let policy = "agents-policy";
    create_policy(&env, policy, json!({"dryRun": true})).await;
    let tls = tls_dir.to_str().unwrap();
    let agent_flags = [
        "--agent-tls-dir",
        tls,
        "--agent-namespace",
        &env.ns,
        "--agent-poll-seconds",
        "5",
        "--agent-timeout-seconds",
        "2",
    ];
    let mut ctl = env.controller("controller", prom.url(), &agent_flags);

    // Exactly the two moves that auto-classification makes possible.
    let api = Api::<StoragePolicy>::all(env.client.clone());
    let status = eventually(
        "planned moves",
        60,
        || async { api.get(policy).await.unwrap().status },
        |s| s.as_ref().is_some_and(|s| s.planned_moves.len() == 2),
    )
    .await
    .unwrap();
    let mut moves: Vec<(String, String, String)> = status
        .planned_moves
        .iter()
        .map(|m| (m.volume.clone(), m.from.to_string(), m.to.to_string()))
        .collect();
    moves.sort();
    let mut want = vec![
        (hot.clone(), "cold".to_string(), "hot".to_string()),
        (cold.clone(), "hot".to_string(), "cold".to_string()),
    ];
    want.sort();
    assert_eq!(moves, want, "{}", ctl.log_text());
    // The volume on the loop device has no tier: unknown, never guessed.
    assert_eq!(status.hot_volumes + status.cold_volumes, 3, "{status:#?}");
    assert_eq!(
        condition(&env, policy, "AgentsReachable")
            .await
            .map(|c| c.0)
            .as_deref(),
        Some("True")
    );
    let metrics = reqwest::get(format!("http://127.0.0.1:{}/metrics", ctl.metrics_port))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for node in ["n0", "n1", "n2"] {
        assert!(
            metrics.contains(&format!("storage_operator_agent_up{{node=\"{node}\"}} 1")),
            "{metrics}"
        );
    }

    // explain, run like an operator would, with the same agent flags.
    let kubeconfig = env.kubeconfig.to_str().unwrap().to_string();
    let explain = |pv: String| {
        let (prom_url, ms_url) = (prom.url().to_string(), env.sim.base_url());
        let flags: Vec<String> = agent_flags.iter().map(|s| s.to_string()).collect();
        let kubeconfig = kubeconfig.clone();
        async move {
            let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_couchestor-controller"))
                .args([
                    "explain",
                    &pv,
                    "--prometheus-url",
                    &prom_url,
                    "--mayastor-url",
                    &ms_url,
                ])
                .args(&flags)
                .env("KUBECONFIG", kubeconfig)
                .output()
                .await
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout).unwrap()
        }
    };
    let text = explain(hot.clone()).await;
    assert!(
        text.contains("pool sata-1 on node n1: sata-ssd (devices sda reported by the agent; treated as couchestor-tier=sata)"),
        "{text}"
    );
    assert!(
        text.contains("agent couchestor-agent-n1 at https://127.0.0.3:"),
        "{text}"
    );
    assert!(
        text.contains("pools in no tier (no label, media unknown): loop-1"),
        "{text}"
    );
    assert!(text.contains("WOULD MOVE (dry-run) cold -> hot"), "{text}");
    let text = explain(steady.clone()).await;
    assert!(
        text.contains("pool nvme-2 on node n2: nvme (devices nvme1n1 reported by the agent"),
        "{text}"
    );
    let text = explain(on_loop.clone()).await;
    assert!(
        text.contains(
            "pool loop-1 on node n1: media unknown: disk \"/dev/loop0\" is a virtual device (loop0)"
        ),
        "{text}"
    );

    // n1's agent goes away: the condition and an Event say so, tiering goes on with n1's
    // last known media.
    agents[1].stop();
    let (_, message) = eventually(
        "AgentsReachable=False",
        60,
        || condition(&env, policy, "AgentsReachable"),
        |c| c.as_ref().is_some_and(|c| c.0 == "False"),
    )
    .await
    .unwrap();
    assert!(
        message.contains("1 of 3 agents unreachable (n1: "),
        "{message}"
    );
    let all = Api::<Event>::all(env.client.clone());
    let found = eventually(
        "AgentUnreachable Event",
        30,
        || async { all.list(&ListParams::default()).await.unwrap().items },
        |items| {
            items.iter().any(|e| {
                e.reason.as_deref() == Some("AgentUnreachable")
                    && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(policy)
            })
        },
    )
    .await;
    assert!(!found.is_empty());
    let status = api.get(policy).await.unwrap().status.unwrap();
    assert_eq!(
        status.planned_moves.len(),
        2,
        "tiering stopped: {status:#?}"
    );
    ctl.process.kill();
    for a in &mut agents {
        a.stop();
    }
}
