//! The Helm chart's generated mutual-TLS material works with the real agent: `serve` starts on
//! the agent Secret's files, the chart's own exec probe command (paths and port mapped to this
//! test) reports healthy, the controller Secret's client certificate is accepted with the
//! server name the controller verifies, and a client from another installation's CA is refused.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use couchestor_testsupport::RunDir;
use couchestor_testsupport::helm::{helm, write_secret};
use couchestor_testsupport::process::{ChildProcess, free_port};

const BIN: &str = env!("CARGO_BIN_EXE_couchestor-agent");

fn health(args: &[String]) -> (i32, String) {
    let o = Command::new(BIN).args(args).output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

#[test]
fn the_charts_certificates_and_probe_work_with_the_real_agent() {
    let Some(helm) = helm() else { return };
    let objs = helm.render("couchestor", "storage", &[]).unwrap();
    let other = helm.render("couchestor", "storage", &[]).unwrap();
    let run = RunDir::new("chart-certs-agent").unwrap();
    let agent_dir = write_secret(&objs, "couchestor-agent-tls", &run.path().join("agent")).unwrap();
    let ctl_dir =
        write_secret(&objs, "couchestor-controller-tls", &run.path().join("ctl")).unwrap();
    let stranger = write_secret(
        &other,
        "couchestor-controller-tls",
        &run.path().join("other"),
    )
    .unwrap();

    // `serve` with exactly the DaemonSet's TLS arguments, paths mapped to the Secret's files.
    let ds = objs.iter().find(|o| o["kind"] == "DaemonSet").unwrap();
    let container = &ds["spec"]["template"]["spec"]["containers"][0];
    let mount = "/etc/couchestor/tls";
    let port = free_port().unwrap();
    let map = |a: &str| {
        a.replace(mount, agent_dir.to_str().unwrap())
            .replace(":50051", &format!(":{port}"))
    };
    let mut args: Vec<String> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .filter(|a| !a.starts_with("--sysfs-root") && !a.starts_with("--metrics-addr"))
        .filter(|a| !a.starts_with("--interval"))
        .map(map)
        .collect();
    args.iter_mut()
        .filter(|a| a.starts_with("--listen="))
        .for_each(|a| *a = format!("--listen=127.0.0.1:{port}"));
    // The shard directory is a hostPath on a node; here, a scratch directory.
    let shards = run.path().join("shards");
    std::fs::create_dir_all(&shards).unwrap();
    for a in args
        .iter_mut()
        .filter(|a| a.starts_with("--shard-store-dir="))
    {
        *a = format!("--shard-store-dir={}", shards.display());
    }
    assert!(
        args.iter().any(|a| a.starts_with("--shard-store-dir=")),
        "the chart's agents serve ShardStore: {args:?}"
    );
    let sysfs = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/nvme-host/t0");
    args.push(format!("--sysfs-root={}", sysfs.display()));
    args.push(format!("--metrics-addr=127.0.0.1:{}", free_port().unwrap()));
    args.push("--interval=1".into());
    let mut agent = ChildProcess::spawn(
        "agent",
        Path::new(BIN),
        &args,
        &run.path().join("agent.log"),
    )
    .unwrap();

    // The chart's readiness/liveness probe command, as the kubelet would run it.
    let probe: Vec<String> = container["readinessProbe"]["exec"]["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| map(a.as_str().unwrap()))
        .collect();
    assert_eq!(probe[0], "/usr/local/bin/couchestor-agent");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (code, out) = health(&probe[1..]);
        if code == 0 {
            break;
        }
        agent.check_alive().unwrap();
        assert!(
            Instant::now() < deadline,
            "the chart's probe never passed (exit {code}): {out}\n{}",
            agent.log_tail(20)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // The chart gives the agent a peer identity for other agents' shard stores, and `serve`
    // (which builds that client configuration at start and exits if it cannot) runs with it.
    assert!(
        args.iter().any(|a| a.starts_with("--peer-cert="))
            && args.iter().any(|a| a.starts_with("--peer-key=")),
        "the chart's agents cannot reach other agents' shard stores: {args:?}"
    );
    agent.check_alive().unwrap();

    // The controller's identity, verifying the server name the controller is configured with.
    let as_client = |dir: &Path| {
        health(&[
            "health".into(),
            format!("--endpoint=https://127.0.0.1:{port}"),
            format!("--ca={}", dir.join("ca.crt").display()),
            format!("--cert={}", dir.join("tls.crt").display()),
            format!("--key={}", dir.join("tls.key").display()),
            "--server-name=couchestor-agent".into(),
        ])
    };
    let (code, out) = as_client(&ctl_dir);
    assert_eq!(code, 0, "the controller certificate was refused: {out}");
    // Another installation's CA: neither side trusts the other.
    let (code, out) = as_client(&stranger);
    assert_eq!(code, 2, "a foreign client was not refused: {out}");
    agent.check_alive().unwrap();
}
