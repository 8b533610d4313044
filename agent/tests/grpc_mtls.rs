//! Three real agents (the built binary, each on its own loopback port, server certificate
//! and sysfs fixture) queried by a real mutual-TLS gRPC client; clients without a valid
//! certificate are refused at the TLS handshake; oversized and malformed requests from a
//! valid client get a clear gRPC error and the agent keeps serving.

mod harness;

use std::collections::BTreeSet;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use couchestor_proto::agent::v1::{
    DeviceKind, GetHealthRequest, GetNodeStatsRequest, GetVersionRequest, HealthReport,
    WatchNodeStatsRequest,
};
use couchestor_testsupport::pki::TestCa;
use harness::{
    Agent, Pki, chain, channel, client, client_tls, controller, fixture, raw_tls, start_agent,
};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tonic::codegen::{Service, http};
use tonic::{Code, Status};

async fn wait_healthy(agent: &Agent, pki: &Pki) -> HealthReport {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let report = controller(pki, agent)
            .get_health(GetHealthRequest {})
            .await
            .unwrap()
            .into_inner();
        if report.healthy {
            return report;
        }
        assert!(Instant::now() < deadline, "never healthy: {report:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn names(stats: &couchestor_proto::agent::v1::NodeStats) -> Vec<&str> {
    stats.devices.iter().map(|d| d.name.as_str()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_agents_serve_version_health_and_stats_over_mutual_tls() {
    let pki = Pki::new();
    let trees = ["nvme-host/t0", "nvme-host/t1", "sata-host/t0"];
    let agents: Vec<Agent> = (0..3)
        .map(|i| start_agent(&pki, i, &fixture(trees[i])))
        .collect();
    let ports: BTreeSet<u16> = agents.iter().map(|a| a.grpc.port()).collect();
    assert_eq!(ports.len(), 3, "distinct ports");
    let expected = [
        &["loop0", "nvme0n1", "nvme1n1"][..],
        &["loop0", "nvme0n1", "nvme1n1"],
        &["loop0", "sda", "sdb", "sdc"],
    ];
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let mut gathered = Vec::new();
    for (agent, expected) in agents.iter().zip(expected) {
        let mut c = controller(&pki, agent);
        let version = c
            .get_version(GetVersionRequest {})
            .await
            .unwrap()
            .into_inner();
        assert_eq!(version.node_name, agent.node_name);
        assert_eq!(version.protocol_version, couchestor_proto::PROTOCOL_VERSION);
        assert_eq!(version.agent_version, env!("CARGO_PKG_VERSION"));

        let health = wait_healthy(agent, &pki).await;
        let checks: Vec<_> = health.checks.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(checks, ["sysfs_sampler", "server_certificate"]);
        assert!(
            health.checks[0]
                .detail
                .starts_with(&format!("{} block devices", expected.len()))
        );
        assert!(
            health.checks[1]
                .detail
                .starts_with(&format!("CN={}", agent.server_name))
        );

        let stats = c
            .get_node_stats(GetNodeStatsRequest::default())
            .await
            .unwrap()
            .into_inner();
        assert_eq!(stats.node_name, agent.node_name);
        assert_eq!(names(&stats), expected);
        assert!(
            (500..=5000).contains(&stats.interval_ms),
            "{}",
            stats.interval_ms
        );
        assert!(
            (stats.timestamp_ms - now_ms).abs() < 120_000,
            "{}",
            stats.timestamp_ms
        );
        // The fixture does not change while served: every rate is zero.
        assert!(
            stats
                .devices
                .iter()
                .all(|d| d.read_iops == 0.0 && d.utilization == 0.0)
        );

        let only = GetNodeStatsRequest {
            device_names: vec!["loop0".into(), "nosuch".into()],
        };
        let filtered = c.get_node_stats(only).await.unwrap().into_inner();
        assert_eq!(names(&filtered), ["loop0"]);
        gathered.push(stats);
    }
    let nvme0 = &gathered[0].devices[1];
    assert_eq!(nvme0.kind, DeviceKind::Nvme as i32);
    assert_eq!(nvme0.size_bytes, 1_000_204_886_016);
    assert_eq!(nvme0.model, "Samsung SSD 980 PRO 1TB");
    assert_eq!(nvme0.serial, "S5GXNF0R912345A");
    let sata = &gathered[2].devices;
    assert_eq!(
        (sata[1].kind, sata[1].transport.as_str()),
        (DeviceKind::SataSsd as i32, "sata")
    );
    assert_eq!(
        (sata[2].kind, sata[2].rotational),
        (DeviceKind::Hdd as i32, true)
    );

    // Each agent presents its own certificate: agent 1 is not agent 0.
    let tls = client_tls(
        &pki.ca.cert_pem(),
        Some(&pki.client),
        &agents[0].server_name,
    );
    let err = client(agents[1].grpc, tls)
        .get_version(GetVersionRequest {})
        .await
        .unwrap_err();
    assert!(chain(&err).contains("NotValidForName"), "{}", chain(&err));
}

#[tokio::test]
async fn watch_streams_snapshots_and_rejects_bad_intervals() {
    let pki = Pki::new();
    let agent = start_agent(&pki, 0, &fixture("nvme-host/t0"));
    let mut c = controller(&pki, &agent);
    let request = WatchNodeStatsRequest {
        interval_seconds: 1,
        device_names: vec!["nvme1n1".into()],
    };
    let mut stream = c.watch_node_stats(request).await.unwrap().into_inner();
    let mut received = Vec::new();
    for _ in 0..3 {
        let next = tokio::time::timeout(Duration::from_secs(15), stream.message()).await;
        let stats = next
            .expect("a snapshot within 15 s")
            .unwrap()
            .expect("stream open");
        received.push((Instant::now(), stats));
    }
    for (_, stats) in &received {
        assert_eq!(stats.node_name, "node-0");
        assert_eq!(names(stats), ["nvme1n1"]);
    }
    for pair in received.windows(2) {
        let gap = pair[1].0 - pair[0].0;
        assert!(gap >= Duration::from_millis(900), "snapshots {gap:?} apart");
        assert!(pair[1].1.timestamp_ms >= pair[0].1.timestamp_ms);
    }
    drop(stream);

    for bad in [0, 3601] {
        let request = WatchNodeStatsRequest {
            interval_seconds: bad,
            device_names: vec![],
        };
        let err = c.watch_node_stats(request).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
        assert_eq!(
            err.message(),
            format!("interval_seconds must be between 1 and 3600, got {bad}")
        );
    }
}

#[tokio::test]
async fn clients_without_a_valid_certificate_are_refused_and_logged() {
    let pki = Pki::new();
    let agent = start_agent(&pki, 0, &fixture("nvme-host/t0"));
    let ca_pem = pki.ca.cert_pem();
    let rogue = TestCa::new("rogue CA")
        .unwrap()
        .client_cert("couchestor-controller")
        .unwrap();

    // tonic clients get no answer.
    for identity in [None, Some(&rogue)] {
        let tls = client_tls(&ca_pem, identity, &agent.server_name);
        let err = client(agent.grpc, tls)
            .get_version(GetVersionRequest {})
            .await
            .unwrap_err();
        assert!(
            matches!(
                err.code(),
                Code::Unavailable | Code::Cancelled | Code::Unknown
            ),
            "{err:?}"
        );
    }

    // At the TLS layer: the server's alert, and a log line naming the client's address.
    let (local, error) = raw_tls(&agent, &pki.ca, None).await;
    assert!(error.contains("CertificateRequired"), "{error}");
    let needle = format!("TLS handshake with {local} refused: peer sent no certificates");
    agent.wait_for_log(&needle, Duration::from_secs(10)).await;

    let (local, error) = raw_tls(&agent, &pki.ca, Some(&rogue)).await;
    assert!(error.contains("UnknownCA"), "{error}");
    let needle =
        format!("TLS handshake with {local} refused: invalid peer certificate: UnknownIssuer");
    agent.wait_for_log(&needle, Duration::from_secs(10)).await;

    // Plain-text HTTP/2 is refused too.
    let mut tcp = TcpStream::connect(agent.grpc).await.unwrap();
    let local = tcp.local_addr().unwrap();
    tcp.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .unwrap();
    let needle = format!("TLS handshake with {local} refused");
    agent.wait_for_log(&needle, Duration::from_secs(10)).await;

    // A client with a valid certificate is still served.
    let version = controller(&pki, &agent)
        .get_version(GetVersionRequest {})
        .await
        .unwrap();
    assert_eq!(version.into_inner().node_name, "node-0");
}

#[tokio::test]
async fn oversized_requests_get_a_clear_error_and_the_agent_keeps_serving() {
    let pki = Pki::new();
    let agent = start_agent(&pki, 0, &fixture("nvme-host/t0"));
    wait_healthy(&agent, &pki).await;
    let mut c = controller(&pki, &agent);
    // About 5 MiB of device names, over the 4 MiB limit.
    let request = GetNodeStatsRequest {
        device_names: vec!["x".repeat(1024); 5 * 1024],
    };
    let err = c.get_node_stats(request).await.unwrap_err();
    assert_eq!(err.code(), Code::OutOfRange, "{err:?}");
    assert!(
        err.message().contains("message length too large"),
        "{err:?}"
    );
    assert!(
        err.message().contains("the limit is: 4194304 bytes"),
        "{err:?}"
    );

    let stats = c
        .get_node_stats(GetNodeStatsRequest::default())
        .await
        .unwrap();
    assert_eq!(stats.into_inner().devices.len(), 3);
}

/// Sends `payload` as the single gRPC message of a unary call to `method` of `NodeAgent`
/// (`frame_length` is what the 5-byte gRPC frame header claims; normally the payload's
/// length) over `channel`, bypassing protobuf encoding, and returns the gRPC status the
/// agent answered with.
async fn raw_unary(
    channel: &mut tonic::transport::Channel,
    method: &str,
    payload: &[u8],
    frame_length: u32,
) -> Status {
    let mut frame = vec![0u8]; // not compressed
    frame.extend_from_slice(&frame_length.to_be_bytes());
    frame.extend_from_slice(payload);
    let request = http::Request::post(format!("/couchestor.agent.v1.NodeAgent/{method}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(tonic::body::Body::new(axum::body::Body::from(frame)))
        .unwrap();
    std::future::poll_fn(|cx| channel.poll_ready(cx))
        .await
        .expect("channel ready");
    let response = channel.call(request).await.expect("an HTTP/2 answer");
    assert_eq!(response.status(), http::StatusCode::OK, "{response:?}");
    // A request that cannot be decoded is answered "trailers-only": the gRPC status is in
    // the response headers.
    Status::from_header_map(response.headers())
        .unwrap_or_else(|| panic!("no grpc-status in the answer: {response:?}"))
}

#[tokio::test]
async fn malformed_requests_get_a_clear_error_and_the_agent_keeps_serving() {
    let pki = Pki::new();
    let agent = start_agent(&pki, 0, &fixture("nvme-host/t0"));
    wait_healthy(&agent, &pki).await;
    let tls = client_tls(&pki.ca.cert_pem(), Some(&pki.client), &agent.server_name);
    let mut raw = channel(agent.grpc, tls);

    // (method, bytes that are not a valid message of its request type, expected detail)
    let garbage: [(&str, &[u8], &str); 4] = [
        // Field 1 with wire type 7, which protobuf does not have.
        ("GetNodeStats", b"\x0fgarbage", "invalid wire type value: 7"),
        // A varint of eleven 0xff bytes: longer than any 64-bit varint.
        ("GetNodeStats", &[0xff; 11], "invalid varint"),
        // `device_names` (field 1, a string) claims 100 bytes, 3 follow.
        ("GetNodeStats", b"\x0a\x64abc", "buffer underflow"),
        // `interval_seconds` (field 1, a uint32) sent as a string.
        (
            "WatchNodeStats",
            b"\x0a\x01x",
            "invalid wire type: LengthDelimited (expected Varint)",
        ),
    ];
    for (method, payload, detail) in garbage {
        let status = raw_unary(&mut raw, method, payload, payload.len() as u32).await;
        assert_eq!(
            status.code(),
            Code::Internal,
            "{method} {payload:?}: {status:?}"
        );
        assert!(
            status
                .message()
                .starts_with("failed to decode Protobuf message: ")
                && status.message().contains(detail),
            "{method} {payload:?}: {status:?}"
        );
    }

    // The gRPC frame itself is cut short: its header claims 100 bytes, 3 arrive.
    let status = raw_unary(&mut raw, "GetNodeStats", b"abc", 100).await;
    assert_eq!(status.code(), Code::Internal, "{status:?}");
    assert_eq!(
        status.message(),
        "Unexpected EOF decoding stream.",
        "{status:?}"
    );

    // On the same connection and on a new one, valid requests are served.
    let mut same = couchestor_proto::agent::v1::node_agent_client::NodeAgentClient::new(raw);
    let stats = same
        .get_node_stats(GetNodeStatsRequest::default())
        .await
        .unwrap();
    assert_eq!(stats.into_inner().devices.len(), 3);
    let version = controller(&pki, &agent)
        .get_version(GetVersionRequest {})
        .await
        .unwrap();
    assert_eq!(version.into_inner().node_name, "node-0");
}
