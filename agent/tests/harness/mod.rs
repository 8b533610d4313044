//! Runs real `couchestor-agent serve` processes on loopback with certificates from a test
//! CA, and connects real mutual-TLS clients to them.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};

use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use couchestor_proto::agent::v1::node_agent_client::NodeAgentClient;
use couchestor_testsupport::pki::{CertPair, TestCa};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tempfile::TempDir;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// The built binary.
pub const BIN: &str = env!("CARGO_BIN_EXE_couchestor-agent");

/// A sysfs fixture tree, e.g. `fixture("nvme-host/t0")`.
pub fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

/// A test CA, a controller client certificate, and a directory for PEM files.
pub struct Pki {
    /// The CA every agent trusts for clients and every client trusts for agents.
    pub ca: TestCa,
    /// A client certificate issued by `ca`.
    pub client: CertPair,
    /// Where PEM files are written.
    pub dir: TempDir,
}

impl Pki {
    pub fn new() -> Self {
        let ca = TestCa::new("couchestor test CA").unwrap();
        let client = ca.client_cert("couchestor-controller").unwrap();
        let pki = Self {
            ca,
            client,
            dir: tempfile::tempdir().unwrap(),
        };
        pki.write("ca.crt", &pki.ca.cert_pem());
        pki.write("controller.crt", &pki.client.cert_pem);
        pki.write("controller.key", &pki.client.key_pem);
        pki
    }

    /// Writes `contents` to `name` in the PEM directory; returns the path.
    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    /// Path of a file in the PEM directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// A running `couchestor-agent serve`; killed on drop.
pub struct Agent {
    child: Child,
    /// gRPC address.
    pub grpc: SocketAddr,
    /// Metrics address.
    pub metrics: SocketAddr,
    /// The DNS name in its server certificate.
    pub server_name: String,
    /// Node name it reports.
    pub node_name: String,
    log: Arc<Mutex<String>>,
}

/// Starts agent number `index` on `sysfs_root`, sampling every second, with its own
/// server certificate for `agent-<index>.test`.
pub fn start_agent(pki: &Pki, index: usize, sysfs_root: &Path) -> Agent {
    start_agent_with(pki, index, sysfs_root, &[])
}

/// Like [`start_agent`], with extra `serve` arguments.
pub fn start_agent_with(
    pki: &Pki,
    index: usize,
    sysfs_root: &Path,
    extra: &[&std::ffi::OsStr],
) -> Agent {
    let server_name = format!("agent-{index}.test");
    let cert = pki.ca.server_cert(&[&server_name, "127.0.0.1"]).unwrap();
    let cert_path = pki.write(&format!("agent-{index}.crt"), &cert.cert_pem);
    let key_path = pki.write(&format!("agent-{index}.key"), &cert.key_pem);
    let node_name = format!("node-{index}");
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--metrics-addr",
            "127.0.0.1:0",
        ])
        .arg("--tls-cert")
        .arg(&cert_path)
        .arg("--tls-key")
        .arg(&key_path)
        .arg("--client-ca")
        .arg(pki.path("ca.crt"))
        .arg("--sysfs-root")
        .arg(sysfs_root)
        .args(["--interval", "1", "--node-name", &node_name])
        .args(extra)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start couchestor-agent serve");
    let log = Arc::new(Mutex::new(String::new()));
    let (tx, rx) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            for (is_grpc, marker) in [
                (true, "gRPC (mutual TLS) listening on "),
                (false, "metrics listening on http://"),
            ] {
                let addr = line.split(marker).nth(1).and_then(|rest| {
                    rest.split(['/', ' '])
                        .next()
                        .and_then(|a| a.parse::<SocketAddr>().ok())
                });
                if let Some(addr) = addr {
                    // The receiver is gone only when startup already timed out.
                    tx.send((is_grpc, addr)).ok();
                }
            }
            let mut log = sink.lock().unwrap();
            log.push_str(&line);
            log.push('\n');
        }
    });
    let (mut grpc, mut metrics) = (None, None);
    while grpc.is_none() || metrics.is_none() {
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok((true, addr)) => grpc = Some(addr),
            Ok((false, addr)) => metrics = Some(addr),
            Err(_) => {
                let status = child.try_wait().unwrap();
                panic!(
                    "agent {index} did not start ({status:?}): {}",
                    log.lock().unwrap()
                );
            }
        }
    }
    Agent {
        child,
        grpc: grpc.unwrap(),
        metrics: metrics.unwrap(),
        server_name,
        node_name,
        log,
    }
}

impl Agent {
    /// Everything the agent logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits until the log contains `needle`; panics with the log after `timeout`.
    pub async fn wait_for_log(&self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let log = self.log();
            if log.contains(needle) {
                return log;
            }
            assert!(
                Instant::now() < deadline,
                "no {needle:?} in the agent log:\n{log}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `https://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("https://{}", self.grpc)
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        // Already exited is fine; the test reports its own failures.
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

/// TLS settings of a client trusting `ca_pem`, presenting `identity` (if any) and expecting
/// the server certificate to name `server_name`.
pub fn client_tls(ca_pem: &str, identity: Option<&CertPair>, server_name: &str) -> ClientTlsConfig {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca_pem))
        .domain_name(server_name);
    if let Some(pair) = identity {
        tls = tls.identity(Identity::from_pem(&pair.cert_pem, &pair.key_pem));
    }
    tls
}

/// A gRPC channel to `addr` (lazily connected: errors show on the first call).
pub fn channel(addr: SocketAddr, tls: ClientTlsConfig) -> Channel {
    Endpoint::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .timeout(Duration::from_secs(10))
        .connect_lazy()
}

/// Connects a `NodeAgent` client to `addr` (lazily: errors show on the first call).
pub fn client(addr: SocketAddr, tls: ClientTlsConfig) -> NodeAgentClient<Channel> {
    NodeAgentClient::new(channel(addr, tls))
}

/// A client with the controller certificate, for `agent`.
pub fn controller(pki: &Pki, agent: &Agent) -> NodeAgentClient<Channel> {
    let tls = client_tls(&pki.ca.cert_pem(), Some(&pki.client), &agent.server_name);
    client(agent.grpc, tls)
}

/// An error and all its causes, joined with ": ".
pub fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// `GET path` over plain HTTP/1.0; returns the status line and the body.
pub async fn http_get(addr: SocketAddr, path: &str) -> (String, String) {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    tcp.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head.lines().next().unwrap_or_default().to_owned();
    (status, body.to_owned())
}

/// Copies a fixture tree (keeping its relative symlinks) into `dest`.
pub fn copy_fixture(rel: &str, dest: &Path) -> PathBuf {
    let target = dest.join("sysfs");
    let status = Command::new("cp")
        .arg("-a")
        .arg(fixture(rel))
        .arg(&target)
        .status()
        .unwrap();
    assert!(status.success(), "cp -a {rel}");
    target
}

fn identity(pair: &CertPair) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    let certs = CertificateDer::pem_slice_iter(pair.cert_pem.as_bytes());
    let key = PrivateKeyDer::from_pem_slice(pair.key_pem.as_bytes()).unwrap();
    (certs.collect::<Result<_, _>>().unwrap(), key)
}

/// A bare rustls client: completes its side of the handshake, then reads until the server
/// refuses. Returns the client's address and the error it got.
pub async fn raw_tls(
    agent: &Agent,
    ca: &TestCa,
    client: Option<&CertPair>,
) -> (SocketAddr, String) {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(ca.cert_der())).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match client {
        Some(pair) => {
            let (certs, key) = identity(pair);
            builder.with_client_auth_cert(certs, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = TcpStream::connect(agent.grpc).await.unwrap();
    let local = tcp.local_addr().unwrap();
    let name = ServerName::try_from(agent.server_name.clone()).unwrap();
    let exchange = async {
        let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await?;
        tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await?;
        let mut buf = [0u8; 1024];
        while tls.read(&mut buf).await? > 0 {}
        Ok::<_, std::io::Error>(())
    };
    match tokio::time::timeout(Duration::from_secs(10), exchange).await {
        Ok(Err(e)) => (local, e.to_string()),
        other => panic!("the agent did not refuse the handshake: {other:?}"),
    }
}
