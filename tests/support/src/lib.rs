//! Test harness for CoucheStor's integration tests: real components on loopback.
//!
//! - [`cluster()`]: etcd + kube-apiserver built from Go modules (`tests/testenv/`), with TLS,
//!   token auth, RBAC, and the project's CRDs installed. One per test binary.
//! - [`prometheus()`]: Debian's Prometheus, backfilled with series a test writes.
//! - [`helm::helm()`]: Helm built from Go modules (`tests/helm/`), to render the chart.
//!
//! When a component cannot start, tests are skipped with a printed reason, except under
//! `CI=true`, where they fail with that reason.

pub mod cluster;
pub mod helm;
pub mod pki;
pub mod process;
pub mod prometheus;
pub mod serviceaccount;

pub use cluster::{TestCluster, cluster};
pub use prometheus::{OpenMetrics, TestPrometheus, prometheus};

use std::path::{Path, PathBuf};

use anyhow::Result;

/// Installs ring as rustls' process-wide crypto provider (reqwest is built without one).
pub fn init_crypto() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Err only means another provider is already installed, which is fine.
        rustls::crypto::ring::default_provider()
            .install_default()
            .ok();
    });
}

/// The repository root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root exists")
}

/// True when running under CI (`CI=true`), where a missing component is a failure.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Reports a real component that could not start: panics under CI, otherwise prints a
/// SKIPPED line and returns `None`.
pub fn unavailable<T>(what: &str, why: impl std::fmt::Display) -> Option<T> {
    if in_ci() {
        panic!("{what} could not start (CI=true, so this fails instead of skipping): {why}");
    }
    eprintln!("SKIPPED: {what} could not start: {why}\n(set CI=true to make this a failure)");
    None
}

/// A scratch directory under `target/testenv/run/`, removed on drop. Directories left by
/// killed test processes are swept when the next one is created.
#[derive(Debug)]
pub struct RunDir(PathBuf);

impl RunDir {
    /// Creates `target/testenv/run/<pid>-<what>-<n>`.
    pub fn new(what: &str) -> Result<Self> {
        let base = workspace_root().join("target/testenv/run");
        std::fs::create_dir_all(&base)?;
        sweep_stale(&base);
        let dir = base.join(cluster::unique_name(&format!(
            "{}-{what}",
            std::process::id()
        )));
        std::fs::create_dir_all(&dir)?;
        Ok(Self(dir))
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0) {
            eprintln!("testsupport: could not remove {}: {e}", self.0.display());
        }
    }
}

/// Removes run directories whose owning process no longer exists.
fn sweep_stale(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            // Best effort: another sweeper may have removed it already.
            std::fs::remove_dir_all(e.path()).ok();
        }
    }
}
