//! Helm v3 built from Go modules (`tests/helm/build.sh` into `target/testenv/bin/helm`), and
//! rendering the chart in `charts/couchestor/` with it.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::Scope;
use serde_json::Value;

use crate::{unavailable, workspace_root};

/// The chart's directory.
pub fn chart_dir() -> PathBuf {
    workspace_root().join("charts/couchestor")
}

/// Where the helm binary is expected: `$HELM`, else `target/testenv/bin/helm`.
pub fn helm_path() -> PathBuf {
    std::env::var_os("HELM")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::cluster::assets_dir().join("helm"))
}

/// A runnable helm, or `None` (after printing why) when it is missing and `CI` is not `true`;
/// under `CI=true` a missing helm fails the test with the reason.
pub fn helm() -> Option<Helm> {
    let path = helm_path();
    let why = if !path.is_file() {
        format!(
            "{} is missing: build it with tests/helm/build.sh (`make deps`) or set HELM",
            path.display()
        )
    } else {
        match Command::new(&path).args(["version", "--short"]).output() {
            Ok(o) if o.status.success() => return Some(Helm { path }),
            Ok(o) => format!(
                "{} version failed: {}",
                path.display(),
                String::from_utf8_lossy(&o.stderr)
            ),
            Err(e) => format!("{} cannot run: {e}", path.display()),
        }
    };
    unavailable("helm", why)
}

/// A helm binary.
#[derive(Debug, Clone)]
pub struct Helm {
    path: PathBuf,
}

/// What a helm command printed.
#[derive(Debug)]
pub struct Output {
    /// Exit status was 0.
    pub success: bool,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Helm {
    /// The binary.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `helm <args>` with helm's caches and config under a scratch directory.
    pub fn run(&self, args: &[&str]) -> Result<Output> {
        let home = workspace_root().join("target/testenv/helm-home");
        std::fs::create_dir_all(&home)?;
        let o = Command::new(&self.path)
            .args(args)
            .env("HELM_CACHE_HOME", home.join("cache"))
            .env("HELM_CONFIG_HOME", home.join("config"))
            .env("HELM_DATA_HOME", home.join("data"))
            .output()
            .with_context(|| format!("run {} {args:?}", self.path.display()))?;
        Ok(Output {
            success: o.status.success(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        })
    }

    /// `helm template <release> charts/couchestor --namespace <namespace> <args>`; fails with
    /// helm's error output when rendering fails.
    pub fn template(&self, release: &str, namespace: &str, args: &[&str]) -> Result<String> {
        let chart = chart_dir();
        let mut all = vec![
            "template",
            release,
            chart.to_str().context("chart path is UTF-8")?,
            "--namespace",
            namespace,
        ];
        all.extend_from_slice(args);
        let o = self.run(&all)?;
        anyhow::ensure!(o.success, "helm {all:?} failed:\n{}{}", o.stderr, o.stdout);
        Ok(o.stdout)
    }

    /// Renders the chart and parses every non-empty document.
    pub fn render(&self, release: &str, namespace: &str, args: &[&str]) -> Result<Vec<Value>> {
        parse_documents(&self.template(release, namespace, args)?)
    }
}

/// Every non-empty document of a multi-document YAML stream, as JSON values.
pub fn parse_documents(text: &str) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_str(text) {
        let v: Value = serde::Deserialize::deserialize(doc).context("invalid YAML document")?;
        if !v.is_null() {
            out.push(v);
        }
    }
    Ok(out)
}

/// Server-side applies one rendered object (any kind the server knows), as a dry run
/// (`dryRun=All`) or for real, and returns what the server answered.
pub async fn apply(client: &kube::Client, obj: &Value, dry_run: bool) -> Result<DynamicObject> {
    let api_version = obj["apiVersion"].as_str().context("no apiVersion")?;
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let gvk = GroupVersionKind::gvk(group, version, obj_kind(obj));
    let (ar, caps) = kube::discovery::pinned_kind(client, &gvk)
        .await
        .with_context(|| format!("the server does not serve {api_version} {}", obj_kind(obj)))?;
    let api: Api<DynamicObject> = if caps.scope == Scope::Namespaced {
        let ns = obj["metadata"]["namespace"]
            .as_str()
            .with_context(|| format!("{} {} has no namespace", obj_kind(obj), obj_name(obj)))?;
        Api::namespaced_with(client.clone(), ns, &ar)
    } else {
        Api::all_with(client.clone(), &ar)
    };
    let mut pp = PatchParams::apply("couchestor-tests").force();
    if dry_run {
        pp = pp.dry_run();
    }
    api.patch(obj_name(obj), &pp, &Patch::Apply(obj))
        .await
        .with_context(|| format!("apply {} {}", obj_kind(obj), obj_name(obj)))
}

fn obj_kind(o: &Value) -> &str {
    o["kind"].as_str().unwrap_or_default()
}

fn obj_name(o: &Value) -> &str {
    o["metadata"]["name"].as_str().unwrap_or_default()
}

/// Writes every `data` key of the rendered Secret `name` (base64-decoded) as a file in `dir`,
/// which is created, and returns `dir`.
pub fn write_secret(objs: &[Value], name: &str, dir: &Path) -> Result<PathBuf> {
    use base64::Engine as _;
    let secret = objs
        .iter()
        .find(|o| obj_kind(o) == "Secret" && obj_name(o) == name)
        .with_context(|| format!("no Secret {name} rendered"))?;
    std::fs::create_dir_all(dir)?;
    let data = secret["data"]
        .as_object()
        .with_context(|| format!("Secret {name} has no data"))?;
    for (key, value) in data {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(value.as_str().context("data value is a string")?)
            .with_context(|| format!("{name}/{key} is not base64"))?;
        std::fs::write(dir.join(key), bytes)?;
    }
    Ok(dir.to_path_buf())
}
