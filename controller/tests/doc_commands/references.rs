//! `make` targets, repository paths and Markdown links of the documentation.

use std::collections::HashMap;
use std::path::Path;

use couchestor_testsupport::workspace_root;

use crate::commands::simple_commands;
use crate::markdown::{self, Parsed};
use crate::shell::HOLE;
use crate::{docs, paths};

#[test]
fn documented_make_targets_exist() {
    let root = workspace_root();
    let makefile = std::fs::read_to_string(root.join("Makefile")).expect("read Makefile");
    let (targets, undefined_phony) = paths::make_targets(&makefile);
    let mut problems: Vec<String> = undefined_phony
        .iter()
        .map(|t| format!("Makefile: .PHONY lists `{t}` but no rule defines it"))
        .collect();
    let mut checked = 0;
    for (rel, text) in docs() {
        for simple in simple_commands(&markdown::parse(&text)) {
            let Some(("make", args)) = simple.words.split_first().map(|(m, a)| (m.as_str(), a))
            else {
                continue;
            };
            let targets_named = args
                .iter()
                .filter(|w| !w.starts_with('-') && !w.contains(['=', HOLE]));
            for target in targets_named.filter(|_| simple.strictness.is_some()) {
                checked += 1;
                if !targets.contains(target) {
                    let line = simple.line;
                    problems.push(format!("{rel}:{line}: `make {target}`: the Makefile has no target `{target}` (it has: {targets:?})"));
                }
            }
        }
    }
    println!("checked {checked} make targets");
    assert!(checked >= 5, "only {checked} make targets found");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn documented_repository_paths_and_links_exist() {
    let root = workspace_root();
    let docs: Vec<(String, Parsed)> = docs()
        .into_iter()
        .map(|(rel, text)| (rel, markdown::parse(&text)))
        .collect();
    let anchors: HashMap<&str, &[String]> = docs
        .iter()
        .map(|(rel, parsed)| (rel.as_str(), parsed.anchors.as_slice()))
        .collect();
    let mut problems = Vec::new();
    let mut checked = 0;
    for (rel, parsed) in &docs {
        for simple in simple_commands(parsed) {
            let whole = simple.in_span && !simple.text.contains(' ');
            for word in path_words(&simple.words) {
                let Some(path) = paths::repo_path(&word, &root, whole) else {
                    continue;
                };
                checked += 1;
                if !paths::exists(&root, &path) {
                    let line = simple.line;
                    problems.push(format!(
                        "{rel}:{line}: `{path}` does not exist in the repository"
                    ));
                }
            }
        }
        let dir = Path::new(rel).parent().unwrap_or(Path::new(""));
        for link in &parsed.links {
            let target = link.text.as_str();
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            checked += 1;
            let (file, anchor) = target.split_once('#').unwrap_or((target, ""));
            let file_rel = match file {
                "" => rel.clone(),
                file => normalize(&dir.join(file)),
            };
            if !root.join(&file_rel).exists() {
                problems.push(format!(
                    "{rel}:{}: link `{target}`: {file_rel} does not exist",
                    link.line
                ));
                continue;
            }
            if !anchor.is_empty() {
                // A Markdown file outside README.md and docs/.
                let other = || {
                    let text = std::fs::read_to_string(root.join(&file_rel)).unwrap_or_default();
                    markdown::parse(&text).anchors
                };
                let known = anchors
                    .get(file_rel.as_str())
                    .map_or_else(other, |a| a.to_vec());
                if !known.iter().any(|a| a == anchor) {
                    problems.push(format!(
                        "{rel}:{}: link `{target}`: {file_rel} has no heading #{anchor}",
                        link.line
                    ));
                }
            }
        }
    }
    println!("checked {checked} paths and links");
    assert!(checked >= 50, "only {checked} paths and links found");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The words of a simple command that may name files: all of them (an option's `=value` for
/// `--opt=value`), except in `kubectl` commands, whose `deploy/x` and `daemonset/x` are
/// objects: there only the values of `-f`, `--filename` and `--from-file`.
fn path_words(words: &[String]) -> Vec<String> {
    let value = |w: &String| w.rsplit('=').next().unwrap_or(w).to_owned();
    if words.first().is_none_or(|w| w != "kubectl") {
        return words.iter().map(value).collect();
    }
    let after_flag =
        |i: usize| i > 0 && matches!(words[i - 1].as_str(), "-f" | "--filename" | "-k");
    words
        .iter()
        .enumerate()
        .filter(|&(i, w)| {
            after_flag(i) || w.starts_with("--filename=") || w.starts_with("--from-file=")
        })
        .map(|(_, w)| value(w))
        .collect()
}

/// `a/b/../c` as `a/c`, with `/` separators.
fn normalize(path: &Path) -> String {
    let mut parts: Vec<String> = Vec::new();
    for part in path.components() {
        match part {
            std::path::Component::ParentDir => {
                parts.pop();
            }
            std::path::Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
            _ => {}
        }
    }
    parts.join("/")
}
