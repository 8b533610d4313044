//! `couchestor-agent serve` end to end: rates that follow the sysfs counters, the metrics
//! endpoint, `health` exit statuses, and startup errors naming the file.

mod harness;

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use couchestor_proto::agent::v1::node_agent_client::NodeAgentClient;
use couchestor_proto::agent::v1::{GetNodeStatsRequest, NodeStats};
use harness::{BIN, Pki, controller, copy_fixture, fixture, http_get, start_agent};
use tonic::transport::Channel;

/// Replaces `path` atomically, so the sampler never reads a half-written file.
fn replace(path: &Path, contents: &[u8]) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, contents).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

async fn nvme0(c: &mut NodeAgentClient<Channel>) -> Result<NodeStats, tonic::Status> {
    let request = GetNodeStatsRequest {
        device_names: vec!["nvme0n1".into()],
    };
    c.get_node_stats(request).await.map(|r| r.into_inner())
}

async fn cli(args: &[&str]) -> Output {
    tokio::process::Command::new(BIN)
        .args(args)
        .output()
        .await
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn served_rates_follow_the_sysfs_counters() {
    let pki = Pki::new();
    let tmp = tempfile::tempdir().unwrap();
    let root = copy_fixture("nvme-host/t0", tmp.path());
    let agent = start_agent(&pki, 0, &root);
    let mut c = controller(&pki, &agent);
    let deadline = Instant::now() + Duration::from_secs(15);
    while nvme0(&mut c).await.is_err() {
        assert!(Instant::now() < deadline, "no snapshot");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The disk does I/O: its counters move from the t0 to the t1 values.
    let rel = "devices/pci0000:00/0000:00:1d.0/0000:3d:00.0/nvme/nvme0/nvme0n1/stat";
    let t1 = std::fs::read(fixture("nvme-host/t1").join(rel)).unwrap();
    replace(&root.join(rel), &t1);

    let busy: NodeStats = loop {
        let s = nvme0(&mut c).await.unwrap();
        if s.devices[0].read_iops > 0.0 {
            break s;
        }
        assert!(Instant::now() < deadline, "rates never moved: {s:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let d = &busy.devices[0];
    let secs = busy.interval_ms as f64 / 1000.0;
    let close = |got: f64, delta: f64, what: &str| {
        let want = delta / secs;
        assert!((got - want).abs() <= want * 0.01, "{what}: {got} vs {want}");
    };
    // Deltas between the fixture's t0 and t1 (see tests/fixtures/README.md).
    close(d.read_iops, 4000.0, "read_iops");
    close(d.write_iops, 1000.0, "write_iops");
    close(d.read_bytes_per_sec, 64_000.0 * 512.0, "read B/s");
    close(d.write_bytes_per_sec, 16_000.0 * 512.0, "write B/s");
    close(d.queue_depth, 1.3, "queue depth");
    assert_eq!((d.read_latency_ms, d.write_latency_ms), (0.2, 0.5));

    // Counters stand still again: the next interval's rates are zero.
    loop {
        let s = nvme0(&mut c).await.unwrap();
        if s.timestamp_ms > busy.timestamp_ms {
            assert_eq!(s.devices[0].read_iops, 0.0, "{s:?}");
            break;
        }
        assert!(Instant::now() < deadline + Duration::from_secs(5), "stuck");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn metrics_endpoint_serves_device_gauges() {
    let pki = Pki::new();
    let agent = start_agent(&pki, 0, &fixture("sata-host/t0"));
    let deadline = Instant::now() + Duration::from_secs(15);
    let body = loop {
        let (status, body) = http_get(agent.metrics, "/metrics").await;
        assert_eq!(status, "HTTP/1.0 200 OK");
        if body.contains("couchestor_agent_device_size_bytes{") {
            break body;
        }
        assert!(Instant::now() < deadline, "no device series:\n{body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for line in [
        "couchestor_agent_up 1",
        "couchestor_agent_sample_errors_total 0",
        "couchestor_agent_device_read_iops{device=\"sda\",kind=\"sata_ssd\"} 0",
        "couchestor_agent_device_write_bytes_per_second{device=\"sdb\",kind=\"hdd\"} 0",
        "couchestor_agent_device_utilization{device=\"loop0\",kind=\"virtual\"} 0",
        "couchestor_agent_device_queue_depth{device=\"sdc\",kind=\"sata_ssd\"} 0",
    ] {
        assert!(body.lines().any(|l| l == line), "no {line:?} in:\n{body}");
    }
    assert!(body.contains("# TYPE couchestor_agent_device_write_iops gauge"));
    let size = body
        .lines()
        .find(|l| l.starts_with("couchestor_agent_device_size_bytes{device=\"sda\""))
        .unwrap();
    assert!(size.ends_with(" 500107862016"), "{size}");
    assert_eq!(
        http_get(agent.metrics, "/nope").await.0,
        "HTTP/1.0 404 Not Found"
    );
}

#[tokio::test]
async fn health_cli_exit_statuses() {
    let pki = Pki::new();
    let tmp = tempfile::tempdir().unwrap();
    let root = copy_fixture("nvme-host/t0", tmp.path());
    let agent = start_agent(&pki, 0, &root);
    let (ca, cert, key) = (
        pki.path("ca.crt"),
        pki.path("controller.crt"),
        pki.path("controller.key"),
    );
    let [ca, cert, key] = [&ca, &cert, &key].map(|p| p.to_str().unwrap().to_owned());
    let url = agent.url();
    let health = |endpoint: String, extra: Vec<&'static str>| {
        let mut args = vec!["health".to_owned(), "--endpoint".into(), endpoint];
        for (flag, value) in [("--ca", &ca), ("--cert", &cert), ("--key", &key)] {
            args.extend([flag.to_owned(), value.clone()]);
        }
        args.extend(extra.into_iter().map(String::from));
        async move { cli(&args.iter().map(String::as_str).collect::<Vec<_>>()).await }
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    let out = loop {
        let out = health(url.clone(), vec!["--server-name", "agent-0.test"]).await;
        if out.status.code() == Some(0) || Instant::now() > deadline {
            break out;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.starts_with(&format!("agent {url}: healthy\n")),
        "{stdout}"
    );
    assert!(
        stdout.contains("sysfs_sampler       OK      3 block devices"),
        "{stdout}"
    );

    // The devices vanish: the sampler fails and the agent reports itself unhealthy.
    std::fs::rename(root.join("block"), root.join("block.gone")).unwrap();
    let out = loop {
        let out = health(url.clone(), vec![]).await;
        if out.status.code() != Some(0) || Instant::now() > deadline + Duration::from_secs(5) {
            break out;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains(": UNHEALTHY"), "{stdout}");
    let block = root.join("block");
    let want = format!(
        "FAIL    latest sysfs reading failed: cannot list block devices in {}",
        block.display()
    );
    assert!(stdout.contains(&want), "{stdout}");

    // Nobody listening.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let out = health(format!("https://{closed}"), vec![]).await;
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("unreachable: cannot connect") && stderr.contains("Connection refused"),
        "{stderr}"
    );

    // The server certificate does not name what the client expects.
    let out = health(url.clone(), vec!["--server-name", "other.test"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("certificate not valid for name \"other.test\""),
        "{}",
        text(&out.stderr)
    );

    // Plain http:// is refused before connecting.
    let out = health(url.replace("https", "http"), vec![]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("must start with https://"));
}

#[tokio::test]
async fn serve_startup_errors_name_the_file() {
    let pki = Pki::new();
    let good = pki.ca.server_cert(&["agent.test"]).unwrap();
    let other = pki.ca.server_cert(&["other.test"]).unwrap();
    let cert = pki.write("good.crt", &good.cert_pem);
    let key = pki.write("good.key", &good.key_pem);
    let wrong_key = pki.write("other.key", &other.key_pem);
    let garbage = pki.write("garbage.crt", "not a certificate\n");
    let ca = pki.path("ca.crt");
    let missing = pki.path("missing.crt");
    let sysfs = fixture("nvme-host/t0");
    let cases = [
        (
            &missing,
            &key,
            &ca,
            &sysfs,
            format!("cannot read {}", missing.display()),
        ),
        (
            &garbage,
            &key,
            &ca,
            &sysfs,
            format!("{}: no PEM certificate", garbage.display()),
        ),
        (
            &cert,
            &wrong_key,
            &ca,
            &sysfs,
            format!("{}: does not fit {}", wrong_key.display(), cert.display()),
        ),
        (
            &cert,
            &key,
            &garbage,
            &sysfs,
            format!("{}: no PEM certificate", garbage.display()),
        ),
        (
            &cert,
            &key,
            &ca,
            &missing,
            format!("cannot list block devices in {}/block", missing.display()),
        ),
    ];
    for (cert, key, ca, sysfs, want) in cases {
        let args = [
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--metrics-addr",
            "127.0.0.1:0",
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
            "--client-ca",
            ca.to_str().unwrap(),
            "--sysfs-root",
            sysfs.to_str().unwrap(),
        ];
        let out = cli(&args).await;
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(&want), "want {want:?} in {stderr}");
    }
}
