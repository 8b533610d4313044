//! The real `couchestor-mayastor-sim` binary: `--listen` binds the given address and
//! `--profile` selects the emulated release (version reported by the nodes, pool-cordon routes).

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use common::{install_crypto_provider, raw};
use reqwest::Method;
use serde_json::json;

/// Kills the child when the test ends, however it ends.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        // The process may already have exited; either way it is reaped below.
        self.0.kill().ok();
        self.0.wait().ok();
    }
}

/// Starts the binary on a free loopback port with `profile`; returns it and its base URL.
fn start(profile: &str) -> (Killed, String) {
    start_with(profile, &[])
}

/// As [`start`], with extra arguments.
fn start_with(profile: &str, extra: &[&str]) -> (Killed, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let listen = format!("127.0.0.1:{port}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_couchestor-mayastor-sim"))
        .args(["--listen", &listen, "--profile", profile])
        .args(extra)
        .stdout(Stdio::piped())
        .spawn()
        .expect("start couchestor-mayastor-sim");
    let stdout = child.stdout.take().expect("piped stdout");
    let child = Killed(child);
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("the banner line");
    let url = format!("http://{listen}");
    assert!(
        line.contains(&format!("(profile {profile}) listening on {url}/v0")),
        "{line:?}"
    );
    (child, url)
}

#[tokio::test]
async fn the_binary_listens_where_told_and_emulates_the_chosen_profile() {
    install_crypto_provider();
    let http = reqwest::Client::new();
    for (profile, version, cordon_route) in [("2.9", "v2.9.0", false), ("2.10", "v2.10.0", true)] {
        let (_child, url) = start(profile);
        let (status, body) = raw(&http, Method::GET, &format!("{url}/sim/profile"), None).await;
        assert_eq!((status, body), (200, json!({"profile": profile})));
        let (status, node) = raw(
            &http,
            Method::POST,
            &format!("{url}/sim/nodes"),
            Some(&json!({"id": "n1"})),
        )
        .await;
        assert_eq!(status, 200, "{node}");
        let (_, pool) = raw(
            &http,
            Method::POST,
            &format!("{url}/sim/pools"),
            Some(&json!({"id": "p1", "node": "n1", "capacity": 1u64 << 30})),
        )
        .await;
        assert_eq!(pool["id"], "p1");
        let (status, nodes) = raw(&http, Method::GET, &format!("{url}/v0/nodes"), None).await;
        assert_eq!(status, 200);
        assert_eq!(nodes[0]["spec"]["version"], version, "{nodes}");
        assert_eq!(nodes[0]["state"]["version"], version, "{nodes}");
        let (status, body) = raw(
            &http,
            Method::PUT,
            &format!("{url}/v0/pools/p1/cordon"),
            Some(
                &json!({"replicas": true, "snapshots": false, "restores": false, "import": false}),
            ),
        )
        .await;
        if cordon_route {
            assert_eq!(status, 200, "{body}");
            assert_eq!(
                body["spec"]["cordondrainstate"]["cordonedstate"]["replicas"], true,
                "{body}"
            );
        } else {
            assert_eq!(
                (status, body),
                (404, serde_json::Value::Null),
                "no such route before 2.10"
            );
        }
    }
}

/// The UUIDs the binary gives a pool and an admin-created volume.
async fn drawn_ids(http: &reqwest::Client, extra: &[&str]) -> (String, String) {
    let (_child, url) = start_with("2.10", extra);
    let post = |path: &str, body: serde_json::Value| {
        let url = format!("{url}/sim/{path}");
        async move { raw(http, Method::POST, &url, Some(&body)).await }
    };
    post("nodes", json!({"id": "n1"})).await;
    let (status, _) = post(
        "pools",
        json!({"id": "p1", "node": "n1", "capacity": 1u64 << 32}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, volume) = post("volumes", json!({"size": 1u64 << 30, "pools": ["p1"]})).await;
    assert_eq!(status, 200, "{volume}");
    let (_, state) = raw(http, Method::GET, &format!("{url}/sim/state"), None).await;
    let pool = state["pools"]["p1"]["uuid"]
        .as_str()
        .expect("pool uuid")
        .to_owned();
    (
        pool,
        volume["spec"]["uuid"]
            .as_str()
            .expect("volume uuid")
            .to_owned(),
    )
}

#[tokio::test]
async fn id_seed_makes_the_binary_draw_the_same_uuids() {
    install_crypto_provider();
    let http = reqwest::Client::new();
    let seeded = drawn_ids(&http, &["--id-seed", "7"]).await;
    assert_eq!(seeded, drawn_ids(&http, &["--id-seed", "7"]).await);
    assert_ne!(seeded, drawn_ids(&http, &["--id-seed", "8"]).await);
    let random = drawn_ids(&http, &[]).await;
    assert_ne!(
        random,
        drawn_ids(&http, &[]).await,
        "without a seed ids are random"
    );
}
