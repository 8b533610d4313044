//! Shared harness of the simulator's integration tests: start a simulator on 127.0.0.1:0 and
//! drive its `/sim` admin API. (Each test crate uses a subset, hence the `dead_code` allowance.)
#![allow(dead_code)]

use std::net::SocketAddr;

use couchestor_mayastor_sim::{Profile, RunningSim, World, spawn};
use reqwest::Method;
use serde_json::{Value, json};

/// One GiB.
pub const GIB: u64 = 1 << 30;

/// A running simulator plus a plain HTTP client.
pub struct Sim {
    /// The server.
    pub running: RunningSim,
    /// Plain client for admin calls and raw `/v0` calls.
    pub http: reqwest::Client,
}

/// Installs ring as rustls' crypto provider: reqwest is built without one and panics on
/// `Client::new` otherwise (even for plain-http URLs).
pub fn install_crypto_provider() {
    // Err only means a provider is already installed.
    rustls::crypto::ring::default_provider()
        .install_default()
        .ok();
}

/// Starts a simulator for `profile` rebuilding at `rate` MiB/s.
pub async fn start(profile: Profile, rate: f64) -> Sim {
    install_crypto_provider();
    let addr: SocketAddr = "127.0.0.1:0".parse().expect("literal address");
    let running = spawn(World::new(profile, rate), addr)
        .await
        .expect("bind the simulator on loopback");
    Sim {
        running,
        http: reqwest::Client::new(),
    }
}

/// Status and JSON body (`Null` when empty) of a raw call.
pub async fn raw(
    http: &reqwest::Client,
    method: Method,
    url: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut request = http.request(method, url);
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await.expect("simulator answers");
    let status = response.status().as_u16();
    let text = response.text().await.expect("read body");
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{url}: body {text:?} is not JSON: {e}"))
    };
    (status, value)
}

impl Sim {
    /// `/v0` URL of `path`.
    pub fn v0(&self, path: &str) -> String {
        format!("{}{path}", self.running.base_url())
    }

    /// Calls the admin API and asserts success.
    pub async fn admin(&self, method: Method, path: &str, body: Value) -> Value {
        let url = format!("{}{path}", self.running.admin_url());
        let body = (!body.is_null()).then_some(body);
        let (status, value) = raw(&self.http, method, &url, body.as_ref()).await;
        assert!(
            (200..300).contains(&status),
            "{path}: HTTP {status}: {value}"
        );
        value
    }

    /// Adds a node with labels.
    pub async fn node(&self, id: &str) {
        self.admin(Method::POST, "/nodes", json!({"id": id})).await;
    }

    /// Adds a pool of `gib` GiB with `labels` on `node`.
    pub async fn pool(&self, id: &str, node: &str, gib: u64, labels: Value) {
        let body = json!({"id": id, "node": node, "capacity": gib * GIB, "labels": labels});
        self.admin(Method::POST, "/pools", body).await;
    }

    /// Adds an in-sync volume; returns its UUID.
    pub async fn volume(&self, spec: Value) -> String {
        let volume = self.admin(Method::POST, "/volumes", spec).await;
        volume["spec"]["uuid"]
            .as_str()
            .expect("volume uuid")
            .to_owned()
    }
}
