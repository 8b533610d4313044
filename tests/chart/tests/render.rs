//! The chart renders with real helm (built from Go modules) for every value combination, passes
//! `helm lint --strict`, and what it renders is what the programs expect: flags and env vars the
//! binaries really read, hardened pods, mutual-TLS certificates that fit, gated monitoring.

use std::collections::BTreeSet;
use std::process::Command;

use couchestor_chart_tests::{
    COMBOS, OPERATOR_ARGS, OPERATOR_NAMESPACE, RELEASE, kind, name, of_kind, one,
};
use couchestor_testsupport::RunDir;
use couchestor_testsupport::helm::{chart_dir, helm};
use couchestor_testsupport::workspace_root;
use serde_json::Value;

const NS: &str = "storage";

fn render(args: &[&str]) -> Option<Vec<Value>> {
    let helm = helm()?;
    Some(helm.render(RELEASE, NS, args).unwrap())
}

fn env<'a>(container: &'a Value, var: &str) -> Option<&'a Value> {
    container["env"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == var)
}

fn env_value(container: &Value, var: &str) -> Option<String> {
    env(container, var).and_then(|e| e["value"].as_str().map(str::to_string))
}

#[test]
fn lint_strict_passes_for_every_combination() {
    let Some(helm) = helm() else { return };
    let chart = chart_dir();
    for combo in COMBOS {
        let mut args = vec!["lint", "--strict", chart.to_str().unwrap()];
        args.extend_from_slice(combo.args);
        let o = helm.run(&args).unwrap();
        assert!(
            o.success && o.stdout.contains("1 chart(s) linted, 0 chart(s) failed"),
            "helm lint --strict with {}:\n{}{}",
            combo.name,
            o.stdout,
            o.stderr
        );
    }
}

#[test]
fn every_combination_renders_consistent_objects() {
    let Some(helm) = helm() else { return };
    for combo in COMBOS {
        let objs = helm.render(RELEASE, NS, combo.args).unwrap();
        let mut seen = BTreeSet::new();
        for o in &objs {
            let id = format!("{}/{}", kind(o), name(o));
            assert!(
                seen.insert(id.clone()),
                "{}: {id} rendered twice",
                combo.name
            );
            assert!(!name(o).is_empty(), "{}: {o} has no name", combo.name);
            let labels = &o["metadata"]["labels"];
            assert_eq!(
                labels["app.kubernetes.io/name"], "couchestor",
                "{}: {id}",
                combo.name
            );
            assert_eq!(
                labels["app.kubernetes.io/instance"], RELEASE,
                "{}: {id}",
                combo.name
            );
            let cluster_scoped = matches!(kind(o), "ClusterRole" | "ClusterRoleBinding");
            if !cluster_scoped {
                assert_eq!(o["metadata"]["namespace"], NS, "{}: {id}", combo.name);
            }
        }
        let kinds: BTreeSet<&str> = objs.iter().map(kind).collect();
        for k in [
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "Role",
            "RoleBinding",
            "Deployment",
            "Service",
        ] {
            assert!(kinds.contains(k), "{}: no {k} in {kinds:?}", combo.name);
        }
        let agent = !combo.args.contains(&"agent.enabled=false");
        assert_eq!(kinds.contains("DaemonSet"), agent, "{}", combo.name);
        // Without agents the controller is not told to poll any (it would report every
        // policy AgentsReachable=False for ever), nor given their client certificate.
        let deployment = of_kind(&objs, "Deployment")[0];
        let pod = &deployment["spec"]["template"]["spec"];
        let env = pod["containers"][0]["env"].as_array().unwrap();
        let polls = env.iter().any(|e| e["name"] == "AGENT_TLS_DIR");
        assert_eq!(polls, agent, "{}: {env:?}", combo.name);
        assert_eq!(pod["volumes"].is_array(), agent, "{}: {pod}", combo.name);
        let generated = !combo.args.contains(&"tls.generate=false");
        assert_eq!(
            of_kind(&objs, "Secret").len(),
            if generated { 2 } else { 0 },
            "{}",
            combo.name
        );
        let monitoring = combo.args.contains(&"metrics.prometheusRule.enabled=true");
        assert_eq!(
            kinds.contains("PrometheusRule"),
            monitoring,
            "{}",
            combo.name
        );
        assert_eq!(
            of_kind(&objs, "ServiceMonitor").len(),
            if monitoring {
                if agent { 2 } else { 1 }
            } else {
                0
            },
            "{}",
            combo.name
        );
        assert_eq!(kinds.contains("ConfigMap"), monitoring, "{}", combo.name);
        // Every Service selects pods this chart renders.
        for svc in of_kind(&objs, "Service") {
            let sel = svc["spec"]["selector"].as_object().unwrap();
            let matched = objs
                .iter()
                .filter(|o| matches!(kind(o), "Deployment" | "DaemonSet"))
                .any(|w| {
                    let labels = &w["spec"]["template"]["metadata"]["labels"];
                    sel.iter().all(|(k, v)| &labels[k] == v)
                });
            assert!(
                matched,
                "{}: Service {} selects no pod",
                combo.name,
                name(svc)
            );
        }
    }
}

/// `env = "NAME"` attributes of a clap source file.
fn clap_env_vars(files: &[&str]) -> BTreeSet<String> {
    files
        .iter()
        .flat_map(|file| {
            let src = std::fs::read_to_string(workspace_root().join(file)).unwrap();
            src.split("env = \"")
                .skip(1)
                .map(|s| s.split('"').next().unwrap().to_string())
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn controller_deployment_is_hardened_and_configured() {
    let Some(objs) = render(&[]) else { return };
    let d = one(&objs, "Deployment", "controller");
    assert_eq!(d["spec"]["replicas"], 2);
    let pod = &d["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "couchestor-controller");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let c = &pod["containers"][0];
    let sc = &c["securityContext"];
    assert_eq!(sc["runAsNonRoot"], true);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]));
    assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault");
    assert!(c["resources"]["requests"]["cpu"].is_string());
    assert!(c["resources"]["limits"]["memory"].is_string());
    assert_eq!(c["args"], serde_json::json!(["run"]));

    // Leader election identity and namespace from the downward API.
    assert_eq!(
        env(c, "POD_NAME").unwrap()["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.name"
    );
    assert_eq!(
        env(c, "POD_NAMESPACE").unwrap()["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.namespace"
    );
    // Probes on the health port the binary listens on.
    assert_eq!(env_value(c, "HEALTH_ADDR").unwrap(), "0.0.0.0:8081");
    assert_eq!(env_value(c, "METRICS_ADDR").unwrap(), "0.0.0.0:8080");
    let port = |n: &str| {
        c["ports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == n)
            .unwrap()["containerPort"]
            .clone()
    };
    assert_eq!(port("health"), 8081);
    assert_eq!(port("metrics"), 8080);
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["livenessProbe"]["httpGet"]["port"], "health");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["readinessProbe"]["httpGet"]["port"], "health");

    // Every env var set is one `couchestor-controller run` reads.
    let known = clap_env_vars(&["controller/src/run.rs", "controller/src/agents/args.rs"]);
    for e in c["env"].as_array().unwrap() {
        let n = e["name"].as_str().unwrap();
        assert!(known.contains(n), "the controller does not read {n}");
    }
    // The agent-facing settings agree with the agent side of the chart.
    assert_eq!(env_value(c, "AGENT_NAMESPACE").unwrap(), NS);
    assert_eq!(env_value(c, "AGENT_PORT").unwrap(), "50051");
    assert_eq!(
        env_value(c, "AGENT_SERVER_NAME").unwrap(),
        "couchestor-agent"
    );
    let selector = env_value(c, "AGENT_SELECTOR").unwrap();
    let ds = one(&objs, "DaemonSet", "agent");
    let agent_labels = &ds["spec"]["template"]["metadata"]["labels"];
    for term in selector.split(',') {
        let (k, v) = term.split_once('=').unwrap();
        assert_eq!(agent_labels[k], v, "agent pods lack {term}");
    }
    let tls_dir = env_value(c, "AGENT_TLS_DIR").unwrap();
    let mount = c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["mountPath"] == tls_dir.as_str())
        .expect("AGENT_TLS_DIR is mounted");
    let vol = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == mount["name"])
        .unwrap();
    assert_eq!(vol["secret"]["secretName"], "couchestor-controller-tls");

    // Two replicas: a PodDisruptionBudget keeps one.
    let pdb = one(&objs, "PodDisruptionBudget", "controller");
    assert_eq!(pdb["spec"]["minAvailable"], 1);
}

/// `--flag` names of a clap Args struct source (fields `pub flag_name:`).
fn clap_flags(file: &str) -> BTreeSet<String> {
    let src = std::fs::read_to_string(workspace_root().join(file)).unwrap();
    src.lines()
        .filter_map(|l| l.trim().strip_prefix("pub "))
        .filter_map(|l| l.split_once(':').map(|(f, _)| f.trim()))
        .filter(|f| f.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        .map(|f| format!("--{}", f.replace('_', "-")))
        .collect()
}

#[test]
fn agent_daemonset_is_privileged_with_the_host_mounts() {
    let Some(objs) = render(&[
        "--set",
        "agent.nodeSelector.openebs\\.io/engine=mayastor",
        "--set",
        "agent.tolerations[0].key=storage",
        "--set",
        "agent.tolerations[0].operator=Exists",
    ]) else {
        return;
    };
    let ds = one(&objs, "DaemonSet", "agent");
    let pod = &ds["spec"]["template"]["spec"];
    assert_eq!(pod["automountServiceAccountToken"], false);
    assert_eq!(pod["serviceAccountName"], "couchestor-agent");
    assert_eq!(pod["nodeSelector"]["openebs.io/engine"], "mayastor");
    assert_eq!(pod["tolerations"][0]["key"], "storage");
    let c = &pod["containers"][0];
    assert_eq!(c["securityContext"]["privileged"], true);
    assert_eq!(
        env(c, "NODE_NAME").unwrap()["valueFrom"]["fieldRef"]["fieldPath"],
        "spec.nodeName"
    );

    // Host paths: /sys read-only, /dev, the cache and shard directories.
    let mounts = c["volumeMounts"].as_array().unwrap();
    let host = |path: &str| {
        let v = pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["hostPath"]["path"] == path)
            .unwrap_or_else(|| panic!("no hostPath {path}"));
        mounts
            .iter()
            .find(|m| m["name"] == v["name"])
            .unwrap_or_else(|| panic!("hostPath {path} not mounted"))
            .clone()
    };
    let sys = host("/sys");
    assert_eq!(sys["readOnly"], true);
    assert_eq!(host("/dev")["mountPath"], "/dev");
    assert_eq!(
        host("/var/lib/couchestor/cache")["mountPath"],
        "/var/lib/couchestor/cache"
    );
    assert_eq!(
        host("/var/lib/couchestor/shards")["mountPath"],
        "/var/lib/couchestor/shards"
    );

    // `serve` flags exist in the agent's ServeArgs, and --sysfs-root is where /sys is mounted.
    let args: Vec<&str> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(args[0], "serve");
    let serve_flags = clap_flags("agent/src/server/mod.rs");
    for a in &args[1..] {
        let flag = a.split('=').next().unwrap();
        assert!(
            serve_flags.contains(flag),
            "agent serve has no {flag} ({serve_flags:?})"
        );
    }
    assert!(
        args.contains(&format!("--sysfs-root={}", sys["mountPath"].as_str().unwrap()).as_str())
    );
    assert!(args.contains(&"--listen=0.0.0.0:50051"));
    assert!(args.contains(&"--metrics-addr=0.0.0.0:9100"));

    // The exec probe: `health` flags exist, it verifies the SAN the certificate carries.
    let probe: Vec<&str> = c["livenessProbe"]["exec"]["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(probe[..2], ["/usr/local/bin/couchestor-agent", "health"]);
    let health_flags = clap_flags("agent/src/health.rs");
    for a in &probe[2..] {
        let flag = a.split('=').next().unwrap();
        assert!(health_flags.contains(flag), "agent health has no {flag}");
    }
    assert!(probe.contains(&"--server-name=couchestor-agent"));
    assert!(probe.contains(&"--endpoint=https://127.0.0.1:50051"));
    assert_eq!(
        c["readinessProbe"]["exec"]["command"],
        c["livenessProbe"]["exec"]["command"]
    );
    let tls = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "tls")
        .unwrap();
    assert_eq!(tls["secret"]["secretName"], "couchestor-agent-tls");

    // tcpSocket alternative.
    let Some(objs) = render(&["--set", "agent.probe=tcpSocket"]) else {
        return;
    };
    let c = &one(&objs, "DaemonSet", "agent")["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["livenessProbe"]["tcpSocket"]["port"], "grpc");
    assert!(c["livenessProbe"]["exec"].is_null());
}

fn secret_file(secret: &Value, key: &str, dir: &RunDir, file: &str) -> std::path::PathBuf {
    use base64::Engine as _;
    let b64 = secret["data"][key]
        .as_str()
        .unwrap_or_else(|| panic!("{} has no {key}", name(secret)));
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    let path = dir.path().join(file);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn openssl_verify(ca: &std::path::Path, cert: &std::path::Path, purpose: &str) -> (bool, String) {
    let o = Command::new("openssl")
        .args(["verify", "-purpose", purpose, "-CAfile"])
        .arg(ca)
        .arg(cert)
        .output()
        .expect("openssl is installed by tests/setup.sh");
    (
        o.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

#[test]
fn generated_certificates_fit_mutual_tls() {
    use x509_parser::extensions::GeneralName;
    let Some(objs) = render(&[]) else { return };
    let agent = one(&objs, "Secret", "agent-tls");
    let controller = one(&objs, "Secret", "controller-tls");
    for s in [agent, controller] {
        assert_eq!(s["type"], "kubernetes.io/tls");
    }
    assert_eq!(
        agent["data"]["ca.crt"], controller["data"]["ca.crt"],
        "one CA for both sides"
    );
    let dir = RunDir::new("chart-certs").unwrap();
    let ca = secret_file(agent, "ca.crt", &dir, "ca.crt");
    let agent_crt = secret_file(agent, "tls.crt", &dir, "agent.crt");
    let controller_crt = secret_file(controller, "tls.crt", &dir, "controller.crt");
    secret_file(agent, "tls.key", &dir, "agent.key");

    // Real chain and purpose checks: the agent serves and also calls itself (exec probe);
    // the controller is a client.
    for (cert, purpose) in [
        (&agent_crt, "sslserver"),
        (&agent_crt, "sslclient"),
        (&controller_crt, "sslclient"),
    ] {
        let (ok, out) = openssl_verify(&ca, cert, purpose);
        assert!(ok, "{} for {purpose}: {out}", cert.display());
    }

    let pem = std::fs::read(&agent_crt).unwrap();
    let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
    let cert = pem.parse_x509().unwrap();
    let san = cert
        .subject_alternative_name()
        .unwrap()
        .expect("a SAN extension");
    let dns: Vec<_> = san
        .value
        .general_names
        .iter()
        .filter_map(|g| match g {
            GeneralName::DNSName(d) => Some(*d),
            _ => None,
        })
        .collect();
    assert_eq!(dns, ["couchestor-agent"]);
    let eku = cert
        .extended_key_usage()
        .unwrap()
        .expect("an EKU extension")
        .value;
    assert!(eku.server_auth && eku.client_auth, "agent EKU: {eku:?}");
    let pem = std::fs::read(&controller_crt).unwrap();
    let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
    let cert = pem.parse_x509().unwrap();
    let eku = cert
        .extended_key_usage()
        .unwrap()
        .expect("an EKU extension")
        .value;
    assert!(eku.client_auth, "controller EKU: {eku:?}");
}

#[test]
fn supplied_tls_secrets_are_mounted_and_not_rendered() {
    let Some(objs) = render(&[
        "--set",
        "tls.generate=false",
        "--set",
        "tls.agentSecret=my-agent-tls",
        "--set",
        "tls.controllerSecret=my-controller-tls",
    ]) else {
        return;
    };
    assert!(of_kind(&objs, "Secret").is_empty());
    let secret_of = |k: &str, suffix: &str, vol: &str| {
        one(&objs, k, suffix)["spec"]["template"]["spec"]["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == vol)
            .unwrap()["secret"]["secretName"]
            .clone()
    };
    assert_eq!(
        secret_of("Deployment", "controller", "agent-tls"),
        "my-controller-tls"
    );
    assert_eq!(secret_of("DaemonSet", "agent", "tls"), "my-agent-tls");
}

#[test]
fn monitoring_objects_are_gated_and_wired() {
    let Some(off) = render(&[]) else { return };
    for k in ["ServiceMonitor", "PrometheusRule", "ConfigMap"] {
        assert!(
            of_kind(&off, k).is_empty(),
            "{k} rendered with monitoring off"
        );
    }
    let Some(objs) = render(COMBOS[2].args) else {
        return;
    };
    for component in ["controller", "agent"] {
        let sm = one(&objs, "ServiceMonitor", component);
        assert_eq!(sm["metadata"]["labels"]["release"], "prometheus");
        let svc = one(&objs, "Service", &format!("{component}-metrics"));
        let sel = sm["spec"]["selector"]["matchLabels"].as_object().unwrap();
        for (k, v) in sel {
            assert_eq!(
                &svc["metadata"]["labels"][k], v,
                "{component}: Service lacks {k}"
            );
        }
        assert_eq!(
            sm["spec"]["endpoints"][0]["port"],
            svc["spec"]["ports"][0]["name"]
        );
    }
    assert_eq!(
        one(&objs, "Service", "controller-metrics")["spec"]["ports"][0]["port"],
        8080
    );
    assert_eq!(
        one(&objs, "Service", "agent-metrics")["spec"]["ports"][0]["port"],
        9100
    );
    let cm = one(&objs, "ConfigMap", "dashboard");
    assert_eq!(cm["metadata"]["labels"]["grafana_dashboard"], "1");
    let shipped: Value =
        serde_json::from_str(cm["data"]["couchestor.json"].as_str().unwrap()).unwrap();
    let file: Value = serde_json::from_str(
        &std::fs::read_to_string(chart_dir().join("dashboards/couchestor.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(shipped, file);
}

#[test]
fn chart_crds_are_identical_to_deploy_crds() {
    let root = workspace_root();
    let chart = std::fs::read_to_string(root.join("charts/couchestor/crds/crds.yaml")).unwrap();
    let deploy = std::fs::read_to_string(root.join("deploy/crds/crds.yaml")).unwrap();
    assert!(
        chart == deploy,
        "charts/couchestor/crds/crds.yaml differs from deploy/crds/crds.yaml: run `make crds`"
    );
}

#[test]
fn operator_yaml_matches_a_fresh_render() {
    let Some(helm) = helm() else { return };
    let fresh = helm
        .template(RELEASE, OPERATOR_NAMESPACE, OPERATOR_ARGS)
        .unwrap();
    let committed = std::fs::read_to_string(workspace_root().join("deploy/operator.yaml")).unwrap();
    assert!(
        committed == fresh,
        "deploy/operator.yaml is stale: run `make operator-yaml`"
    );
    // It carries the CRDs and no private key.
    let objs = couchestor_testsupport::helm::parse_documents(&committed).unwrap();
    assert_eq!(of_kind(&objs, "CustomResourceDefinition").len(), 2);
    assert!(of_kind(&objs, "Secret").is_empty());
    assert!(!committed.contains("PRIVATE KEY"));
}

#[test]
fn every_values_knob_is_documented() {
    let text = std::fs::read_to_string(chart_dir().join("values.yaml")).unwrap();
    // A key line is documented when a comment line sits right above it, or when an ancestor
    // key is documented (e.g. resources: ... requests: cpu:).
    let mut stack: Vec<(usize, bool)> = Vec::new();
    let mut prev_comment = false;
    let mut undocumented = Vec::new();
    for line in text.lines() {
        let t = line.trim_start();
        if t.starts_with('#') {
            prev_comment = true;
            continue;
        }
        if t.is_empty() {
            prev_comment = false;
            continue;
        }
        let indent = line.len() - t.len();
        while stack.last().is_some_and(|(i, _)| *i >= indent) {
            stack.pop();
        }
        if t.starts_with('-') {
            prev_comment = false;
            continue;
        }
        let Some((key, value)) = t.split_once(':') else {
            continue;
        };
        let inherited = stack.iter().any(|(_, d)| *d);
        let is_parent = value.trim().is_empty();
        if !is_parent && !prev_comment && !inherited {
            undocumented.push(key.to_string());
        }
        stack.push((indent, prev_comment || inherited));
        prev_comment = false;
    }
    assert!(
        undocumented.is_empty(),
        "values without a comment: {undocumented:?}"
    );
}

#[test]
fn gen_certs_script_makes_certificates_that_fit_mutual_tls() {
    let dir = RunDir::new("gen-certs").unwrap();
    let out = dir.path().join("certs");
    let o = Command::new(workspace_root().join("deploy/gen-certs.sh"))
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let ca = out.join("ca.crt");
    for (cert, purpose, want) in [
        ("agent.crt", "sslserver", true),
        ("agent.crt", "sslclient", true),
        ("controller.crt", "sslclient", true),
        ("controller.crt", "sslserver", false),
    ] {
        let (ok, text) = openssl_verify(&ca, &out.join(cert), purpose);
        assert_eq!(ok, want, "{cert} for {purpose}: {text}");
    }
    let pem = std::fs::read(out.join("agent.crt")).unwrap();
    let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
    let cert = pem.parse_x509().unwrap();
    let san = cert.subject_alternative_name().unwrap().unwrap();
    assert_eq!(
        format!("{:?}", san.value.general_names),
        r#"[DNSName("couchestor-agent")]"#
    );
}
