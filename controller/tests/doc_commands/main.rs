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
//! a binary's; and inline code spans of prose. Placeholders (`<pv-name>`, unset `$VARS`,
//! `$(...)`) are filled with sample values. Markdown is read by pulldown-cmark, shell words
//! by shlex and YAML by serde_yaml_ng; `shell` adds only what a shell does beyond words.
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
mod yaml;

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

/// The agent binary, built here: cargo gives an integration test only its own package's
/// binaries (`CARGO_BIN_EXE_*`), and artifact dependencies, which would give the agent's, are
/// unstable (`-Z bindeps`). The build goes to the target directory, profile and target
/// triple this test was built with (read off the paths cargo gave it), so that it reuses what
/// cargo already compiled (the agent library is a dev-dependency) instead of compiling a
/// second copy elsewhere, and the binary lands next to the controller's.
fn agent_exe() -> &'static Path {
    static EXE: OnceLock<PathBuf> = OnceLock::new();
    EXE.get_or_init(|| {
        // <target-dir>[/<triple>]/<profile-dir>/couchestor-controller, <target-dir>/tmp.
        let bin_dir = Path::new(env!("CARGO_BIN_EXE_couchestor-controller"))
            .parent()
            .expect("binary directory");
        let target_dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .parent()
            .expect("target directory");
        let profile = match bin_dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") => "dev",
            Some(name) => name,
            None => panic!("no profile directory in {}", bin_dir.display()),
        };
        let mut cargo = Command::new(env!("CARGO"));
        cargo.args(["build", "-p", AGENT, "--bin", AGENT, "--profile", profile]);
        cargo.arg("--target-dir").arg(target_dir);
        let triple_dir = bin_dir.parent().expect("profile directory's parent");
        if triple_dir != target_dir {
            cargo
                .arg("--target")
                .arg(triple_dir.file_name().expect("target triple"));
        }
        let out = cargo
            .current_dir(workspace_root())
            .output()
            .expect("run cargo build");
        assert!(
            out.status.success(),
            "{cargo:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let exe = bin_dir.join(AGENT);
        assert!(exe.is_file(), "{cargo:?} left no {}", exe.display());
        exe
    })
}
