//! "Every command in the docs must be one that works with this project" (issue 7), checked:
//! every `couchestor-controller ...` and `couchestor-agent ...` command line in README.md and
//! docs/*.md parses with the real binaries' clap definitions (see `clap_check` for how,
//! without running it), every `make <target>` exists in the Makefile, every repository path
//! and Markdown link points at something that exists, and the openssl certificate recipe of
//! docs/agent.md gives certificates the chart's agent probe and the controller accept.
//!
//! What counts as a command: in shell code blocks (`sh`, `bash`, `console`, untagged), each
//! simple command that runs a binary (directly, by path, after `kubectl exec ... --`, or
//! through `cargo run -p <bin> -- ...`), with quotes, continuations, heredocs, comments and
//! the block's own variables (`NS=...`, `for sc in ...`) handled like a shell would; in YAML,
//! `command: [couchestor-agent, health, ...]` and the `args:` of a container whose image is
//! a binary's; and inline code spans of prose. Placeholders (`<pv-name>`, unset `$VARS`, `$(...)`) are filled with sample values.
//! Code-block commands must carry every required argument; prose spans and `text` overview
//! blocks only have to parse (they name subcommands: "`couchestor-agent nbd serve` exports").
//! Synopses (`[--flag VALUE]`, `VALUE` metavariables, `a|b`, `...`) are checked for their
//! subcommand, their option names and each alternative value.

mod clap_check;
mod commands;
mod markdown;
mod paths;
mod recipe;
mod references;
mod shell;
mod synopsis;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use couchestor_testsupport::workspace_root;

const CONTROLLER: &str = "couchestor-controller";
const AGENT: &str = "couchestor-agent";

/// README.md and docs/*.md, as (path relative to the root, text).
fn docs() -> Vec<(String, String)> {
    let root = workspace_root();
    let mut files = vec!["README.md".to_owned()];
    let mut pages: Vec<String> = std::fs::read_dir(root.join("docs"))
        .expect("read docs/")
        .map(|e| {
            e.expect("docs/ entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|name| name.ends_with(".md"))
        .map(|name| format!("docs/{name}"))
        .collect();
    pages.sort();
    files.extend(pages);
    files
        .into_iter()
        .map(|rel| {
            let text = std::fs::read_to_string(root.join(&rel))
                .unwrap_or_else(|e| panic!("read {rel}: {e}"));
            (rel, text)
        })
        .collect()
}

/// The agent binary, built by cargo for this test (the controller's tests only get the
/// controller's binary from cargo).
fn agent_exe() -> &'static Path {
    static EXE: OnceLock<PathBuf> = OnceLock::new();
    EXE.get_or_init(|| {
        let out = Command::new(env!("CARGO"))
            .args([
                "build",
                "-p",
                AGENT,
                "--bin",
                AGENT,
                "--message-format=json",
            ])
            .current_dir(workspace_root())
            .output()
            .expect("run cargo build");
        assert!(
            out.status.success(),
            "cargo build -p {AGENT} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == AGENT)
            .find_map(|m| m["executable"].as_str().map(PathBuf::from))
            .expect("cargo reported the agent executable")
    })
}
