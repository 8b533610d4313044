//! Leader election with two real controller processes: one acts, the other stands by (and is
//! honestly ready), and the standby takes over when the leader dies.

use std::time::Duration;

use couchestor_testsupport::cluster::ADMIN_TOKEN;
use couchestor_testsupport::cluster::lease_holder;
use couchestor_testsupport::process::{ChildProcess, free_port};
use couchestor_testsupport::{RunDir, cluster};

fn start(
    dir: &RunDir,
    kubeconfig: &std::path::Path,
    ns: &str,
    id: &str,
) -> (ChildProcess, std::path::PathBuf, u16) {
    let health = free_port().unwrap();
    let args: Vec<String> = [
        "run",
        "--prometheus-url",
        "http://127.0.0.1:9",
        "--mayastor-url",
        "http://127.0.0.1:9/v0",
        "--metrics-addr",
        &format!("127.0.0.1:{}", free_port().unwrap()),
        "--health-addr",
        &format!("127.0.0.1:{health}"),
        "--lease-namespace",
        ns,
        "--identity",
        id,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let log = dir.path().join(format!("{id}.log"));
    let exe = std::path::Path::new(env!("CARGO_BIN_EXE_couchestor-controller"));
    let child = ChildProcess::spawn_with_env(
        id,
        exe,
        &args,
        &log,
        &[("KUBECONFIG", kubeconfig.as_os_str())],
    )
    .unwrap();
    (child, log, health)
}

async fn wait_for_line(log: &std::path::Path, needle: &str, secs: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains(needle) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} never logged {needle:?}:\n{text}",
            log.display()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_leader_acts_and_the_standby_takes_over() {
    let Some(c) = cluster().await else { return };
    let ns = c.namespace("leader").await.unwrap();
    let dir = RunDir::new("leader").unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    c.write_kubeconfig(&kubeconfig, ADMIN_TOKEN).unwrap();

    let (mut a, a_log, a_health) = start(&dir, &kubeconfig, &ns, "replica-a");
    wait_for_line(&a_log, "acquired the leader Lease", 30).await;
    let (mut b, b_log, b_health) = start(&dir, &kubeconfig, &ns, "replica-b");
    wait_for_line(&b_log, "standby: waiting for the leader Lease", 30).await;

    // Both are ready (caches synced); only A acts.
    let http = reqwest::Client::new();
    for port in [a_health, b_health] {
        let mut ok = false;
        for _ in 0..50 {
            let r = http
                .get(format!("http://127.0.0.1:{port}/readyz"))
                .send()
                .await;
            if r.is_ok_and(|r| r.status() == 200) {
                ok = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert!(ok, "/readyz on {port} never became ready");
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    b.check_alive().unwrap();
    let b_text = std::fs::read_to_string(&b_log).unwrap();
    assert!(
        !b_text.contains("acquired the leader Lease"),
        "the standby acted while A led:\n{b_text}"
    );
    assert_eq!(
        lease_holder(&c.client(), &ns).await.as_deref(),
        Some("replica-a")
    );

    // A dies without releasing: B takes over once the lease expires (15 s).
    a.kill();
    wait_for_line(&b_log, "acquired the leader Lease", 60).await;
    assert_eq!(
        lease_holder(&c.client(), &ns).await.as_deref(),
        Some("replica-b")
    );
    b.check_alive().unwrap();
}
