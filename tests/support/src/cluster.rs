//! A real etcd + kube-apiserver on loopback, one per test binary.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Client, Config};
use tokio::sync::OnceCell;

use crate::pki::TestCa;
use crate::process::{ChildProcess, free_port, wait_until};
use crate::{RunDir, unavailable, workspace_root};

/// Bearer token of the `system:masters` test user.
pub const ADMIN_TOKEN: &str = "couchestor-admin-token";
/// Bearer token of an authenticated user with no RBAC grants (`couchestor-tester`).
pub const UNPRIVILEGED_TOKEN: &str = "couchestor-unprivileged-token";
/// Label put on every namespace a test creates.
pub const TEST_LABEL: &str = "couchestor.io/test";

/// A running control plane. Obtain the shared one with [`cluster()`].
pub struct TestCluster {
    url: String,
    ca_der: Vec<u8>,
    ca_pem: String,
    _etcd: ChildProcess,
    _apiserver: ChildProcess,
    _dir: RunDir,
}

/// The control plane of this test binary, started on first use.
///
/// Returns `None` (after printing why) when the binaries are missing and `CI` is not `true`;
/// under `CI=true` a control plane that cannot start fails the test with the reason.
pub async fn cluster() -> Option<&'static TestCluster> {
    static CLUSTER: OnceCell<std::result::Result<TestCluster, String>> = OnceCell::const_new();
    crate::init_crypto();
    let started = CLUSTER
        .get_or_init(|| async { TestCluster::start().await.map_err(|e| format!("{e:#}")) })
        .await;
    match started {
        Ok(c) => Some(c),
        Err(e) => unavailable("a real kube-apiserver + etcd", e),
    }
}

/// Directory holding `etcd` and `kube-apiserver` (envtest's `KUBEBUILDER_ASSETS` layout).
pub fn assets_dir() -> PathBuf {
    std::env::var_os("KUBEBUILDER_ASSETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/testenv/bin"))
}

impl TestCluster {
    async fn start() -> Result<Self> {
        let bin = assets_dir();
        for b in ["etcd", "kube-apiserver"] {
            anyhow::ensure!(
                bin.join(b).is_file(),
                "{} is missing: build it with `make testenv` (tests/testenv/build.sh) or set KUBEBUILDER_ASSETS",
                bin.join(b).display()
            );
        }
        let dir = RunDir::new("cluster")?;
        let ca = TestCa::new("couchestor-test-ca")?;
        let serving = ca.server_cert(&["127.0.0.1", "localhost"])?;
        let sa_key = rcgen::KeyPair::generate()?;
        let p = dir.path();
        write(p, "ca.crt", &ca.cert_pem())?;
        write(p, "apiserver.crt", &serving.cert_pem)?;
        write(p, "apiserver.key", &serving.key_pem)?;
        write(p, "sa.key", &sa_key.serialize_pem())?;
        write(p, "sa.pub", &sa_key.public_key_pem())?;
        write(
            p,
            "tokens.csv",
            &format!(
                "{ADMIN_TOKEN},couchestor-admin,1,system:masters\n{UNPRIVILEGED_TOKEN},couchestor-tester,2\n"
            ),
        )?;

        let (client_port, peer_port) = (free_port()?, free_port()?);
        let etcd_url = format!("http://127.0.0.1:{client_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let mut etcd = ChildProcess::spawn(
            "etcd",
            &bin.join("etcd"),
            &strings(&[
                "--data-dir",
                &p.join("etcd").to_string_lossy(),
                "--listen-client-urls",
                &etcd_url,
                "--advertise-client-urls",
                &etcd_url,
                "--listen-peer-urls",
                &peer_url,
                "--initial-advertise-peer-urls",
                &peer_url,
                "--initial-cluster",
                &format!("default={peer_url}"),
                "--unsafe-no-fsync",
                "--log-level",
                "warn",
            ]),
            &p.join("etcd.log"),
        )?;
        let http = reqwest::Client::new();
        let health = format!("{etcd_url}/health");
        wait_until("etcd", &mut etcd, Duration::from_secs(30), || async {
            http.get(&health)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        })
        .await?;

        let port = free_port()?;
        let url = format!("https://127.0.0.1:{port}");
        let path = |f: &str| p.join(f).to_string_lossy().into_owned();
        let mut apiserver = ChildProcess::spawn(
            "kube-apiserver",
            &bin.join("kube-apiserver"),
            &strings(&[
                &format!("--etcd-servers={etcd_url}"),
                &format!("--cert-dir={}", path("certs")),
                &format!("--secure-port={port}"),
                "--bind-address=127.0.0.1",
                "--service-cluster-ip-range=10.0.0.0/24",
                "--allow-privileged=true",
                "--authorization-mode=RBAC",
                "--disable-admission-plugins=ServiceAccount",
                &format!("--service-account-issuer={url}/"),
                &format!("--service-account-key-file={}", path("sa.pub")),
                &format!("--service-account-signing-key-file={}", path("sa.key")),
                &format!("--token-auth-file={}", path("tokens.csv")),
                &format!("--tls-cert-file={}", path("apiserver.crt")),
                &format!("--tls-private-key-file={}", path("apiserver.key")),
                "--v=1",
            ]),
            &p.join("kube-apiserver.log"),
        )?;
        let tls_http = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_der(&ca.cert_der())?)
            .build()?;
        let readyz = format!("{url}/readyz");
        wait_until(
            "kube-apiserver",
            &mut apiserver,
            Duration::from_secs(90),
            || async {
                tls_http
                    .get(&readyz)
                    .bearer_auth(ADMIN_TOKEN)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success())
            },
        )
        .await?;

        let cluster = Self {
            url,
            ca_der: ca.cert_der(),
            ca_pem: ca.cert_pem(),
            _etcd: etcd,
            _apiserver: apiserver,
            _dir: dir,
        };
        cluster.install_crds().await?;
        Ok(cluster)
    }

    /// The API server's URL (`https://127.0.0.1:<port>`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A kube `Config` for the given bearer token.
    pub fn config_for_token(&self, token: &str) -> Config {
        let mut config = Config::new(self.url.parse().expect("valid url"));
        config.root_cert = Some(vec![self.ca_der.clone()]);
        config.auth_info.token = Some(token.to_string().into());
        config.default_namespace = "default".into();
        config
    }

    /// Writes a kubeconfig for `token` to `path`, for processes under test (`KUBECONFIG`).
    pub fn write_kubeconfig(&self, path: &Path, token: &str) -> Result<()> {
        use base64::Engine as _;
        let ca = base64::engine::general_purpose::STANDARD.encode(&self.ca_pem);
        let config = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "test", "cluster": {"server": self.url, "certificate-authority-data": ca}}],
            "users": [{"name": "test", "user": {"token": token}}],
            "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test", "namespace": "default"}}],
            "current-context": "test",
        });
        std::fs::write(path, serde_yaml_ng::to_string(&config)?)
            .with_context(|| format!("write {}", path.display()))
    }

    /// A new admin client. Create one per test: clients are bound to the test's runtime.
    pub fn client(&self) -> Client {
        Client::try_from(self.config_for_token(ADMIN_TOKEN)).expect("client from config")
    }

    /// Creates a fresh, labelled namespace for one test and returns its name.
    pub async fn namespace(&self, test: &str) -> Result<String> {
        let name = unique_name(test);
        let ns: Namespace = serde_json::from_value(serde_json::json!({
            "metadata": { "name": name, "labels": { TEST_LABEL: test } }
        }))?;
        Api::<Namespace>::all(self.client())
            .create(&PostParams::default(), &ns)
            .await
            .with_context(|| format!("create namespace {name}"))?;
        Ok(name)
    }

    /// Server-side applies every CRD YAML under `deploy/crds/` and `tests/support/crds/` and
    /// waits until each is Established.
    async fn install_crds(&self) -> Result<()> {
        let dirs = [
            workspace_root().join("deploy/crds"),
            workspace_root().join("tests/support/crds"),
        ];
        self.install_crd_dirs(&dirs, "couchestor-testsupport").await
    }

    /// Server-side applies (as field manager `manager`) every CRD YAML in `dirs` and waits
    /// until each is Established.
    pub async fn install_crd_dirs(&self, dirs: &[std::path::PathBuf], manager: &str) -> Result<()> {
        let api = Api::<CustomResourceDefinition>::all(self.client());
        let mut names = Vec::new();
        for dir in dirs {
            for crd in read_crds(dir)? {
                let name = crd.metadata.name.clone().context("CRD without a name")?;
                api.patch(
                    &name,
                    &PatchParams::apply(manager).force(),
                    &Patch::Apply(&crd),
                )
                .await
                .with_context(|| format!("apply CRD {name}"))?;
                names.push(name);
            }
        }
        for name in names {
            tokio::time::timeout(
                Duration::from_secs(30),
                await_condition(api.clone(), &name, conditions::is_crd_established()),
            )
            .await
            .with_context(|| format!("CRD {name} not established in 30s"))??;
        }
        Ok(())
    }
}

/// Parses every `*.yaml` file of `dir` (multi-document allowed) as CRDs.
pub fn read_crds(dir: &Path) -> Result<Vec<CustomResourceDefinition>> {
    let mut out = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("read {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    for f in files {
        let text = std::fs::read_to_string(&f)?;
        for doc in serde_yaml_ng::Deserializer::from_str(&text) {
            let crd = serde::Deserialize::deserialize(doc)
                .with_context(|| format!("{} is not a CRD", f.display()))?;
            out.push(crd);
        }
    }
    Ok(out)
}

/// Who holds the controller's leader-election Lease (`couchestor-controller`) in `ns`.
pub async fn lease_holder(client: &Client, ns: &str) -> Option<String> {
    let lease = Api::<k8s_openapi::api::coordination::v1::Lease>::namespaced(client.clone(), ns)
        .get("couchestor-controller")
        .await
        .expect("get the leader Lease");
    lease.spec?.holder_identity
}

/// `prefix-<random>` short enough for any Kubernetes name.
pub fn unique_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let mut p: String = prefix
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(40)
        .collect();
    p = p.trim_matches('-').to_string();
    format!("{p}-{}-{n}", std::process::id())
}

fn write(dir: &Path, name: &str, contents: &str) -> Result<()> {
    std::fs::write(dir.join(name), contents).with_context(|| format!("write {name}"))
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}
