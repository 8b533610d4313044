//! The openssl certificate recipe of docs/agent.md, run for real.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use couchestor_testsupport::process::{ChildProcess, free_port};
use couchestor_testsupport::{RunDir, unavailable, workspace_root};

use crate::shell::{self, Vars};
use crate::{AGENT, agent_exe, markdown};

/// The `sh` block under `### With openssl` in docs/agent.md, up to the first `kubectl` line
/// (the Secrets need a cluster), and the arguments of its `couchestor-agent check` line.
fn openssl_recipe() -> (String, Vec<String>) {
    let text = std::fs::read_to_string(workspace_root().join("docs/agent.md"))
        .expect("read docs/agent.md");
    let parsed = markdown::parse(&text);
    let block = parsed
        .blocks
        .iter()
        .find(|b| b.section == "with-openssl" && b.lang == "sh")
        .expect("docs/agent.md has an sh block under `### With openssl`");
    let script = block
        .lines
        .iter()
        .map(|(_, line)| format!("{line}\n"))
        .take_while(|line| !line.starts_with("kubectl"))
        .collect();
    let check = shell::logical_lines(&block.lines)
        .iter()
        .flat_map(|l| shell::segments(&l.text, &mut Vars::default()))
        .find_map(|words| {
            let args = shell::invocation(&words, AGENT)?;
            (args.first()? == "check").then(|| args.to_vec())
        })
        .expect("docs/agent.md runs `couchestor-agent check` on the certificates");
    (script, check)
}

/// Runs `agent` with `args`; exit code, stdout and stderr.
fn run_agent(args: &[String], dir: &Path) -> (Option<i32>, String, String) {
    let out = Command::new(agent_exe())
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run couchestor-agent");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn agent_md_openssl_recipe_gives_certificates_the_chart_probe_and_the_controller_accept() {
    if let Err(e) = Command::new("openssl").arg("version").output() {
        return unavailable("openssl", e).unwrap_or(());
    }
    let dir = RunDir::new("doc-openssl").expect("scratch directory");
    let (script, mut args) = openssl_recipe();
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .current_dir(dir.path())
        .output()
        .expect("run bash");
    assert!(
        out.status.success(),
        "the openssl recipe of docs/agent.md failed:\n{script}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The documented `check` line, as written (it reads the files the recipe made).
    args.extend(["--output".into(), "json".into()]);
    let (_, stdout, stderr) = run_agent(&args, dir.path());
    let report: serde_json::Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}{stderr}"));
    for name in ["tls_cert", "tls_key", "client_ca"] {
        let entry = report["checks"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["name"] == name))
            .unwrap_or_else(|| panic!("no {name} in {report}"));
        assert_eq!(entry["status"], "OK", "{entry}");
    }

    // A real agent serving the recipe's certificate answers the chart's exec probe (its own
    // certificate, --server-name=couchestor-agent) and the controller's identity, which
    // checks the name couchestor-agent too (AGENT_SERVER_NAME).
    let port = free_port().expect("free port");
    let log = dir.path().join("agent.log");
    let file = |name: &str| dir.path().join(name).display().to_string();
    let serve = vec![
        "serve".into(),
        "--listen".into(),
        format!("127.0.0.1:{port}"),
        "--metrics-addr".into(),
        "127.0.0.1:0".into(),
        "--tls-cert".into(),
        file("agent.crt"),
        "--tls-key".into(),
        file("agent.key"),
        "--client-ca".into(),
        file("ca.crt"),
        "--interval".into(),
        "1".into(),
    ];
    let mut server = ChildProcess::spawn("couchestor-agent serve", agent_exe(), &serve, &log)
        .expect("start the agent");
    for (cert, key) in [
        ("agent.crt", "agent.key"),
        ("controller.crt", "controller.key"),
    ] {
        let probe: Vec<String> = vec![
            "health".into(),
            format!("--endpoint=https://127.0.0.1:{port}"),
            "--ca=ca.crt".into(),
            format!("--cert={cert}"),
            format!("--key={key}"),
            "--server-name=couchestor-agent".into(),
            "--timeout=5".into(),
        ];
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            server.check_alive().expect("the agent keeps running");
            let (code, stdout, stderr) = run_agent(&probe, dir.path());
            if code == Some(0) {
                assert!(stdout.contains("healthy"), "{stdout}");
                break;
            }
            // Not listening or not sampled yet is worth waiting for; a refused certificate
            // is not.
            assert!(
                Instant::now() < deadline && !stderr.contains("certificate"),
                "`couchestor-agent {}` never succeeded: {code:?} {stdout}{stderr}\n{}",
                probe.join(" "),
                server.log_tail(20)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}
