//! `make` targets, repository paths and Markdown links of the documentation.

use std::collections::HashMap;
use std::path::Path;

use couchestor_testsupport::workspace_root;

use crate::commands::shell_block;
use crate::shell::{self, HOLE, Vars};
use crate::{docs, markdown, paths};

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
        let parsed = markdown::parse(&text);
        let mut lines: Vec<(usize, String)> = parsed
            .spans
            .iter()
            .map(|s| (s.line, s.text.clone()))
            .collect();
        for block in parsed
            .blocks
            .iter()
            .filter(|b| shell_block(&b.lang).is_some())
        {
            lines.extend(
                shell::logical_lines(&block.lines)
                    .into_iter()
                    .map(|l| (l.line, l.text)),
            );
        }
        for (line, text) in lines {
            for words in shell::segments(&text, &mut Vars::default()) {
                if words.first().is_none_or(|w| w != "make") {
                    continue;
                }
                for target in words[1..]
                    .iter()
                    .filter(|w| !w.starts_with('-') && !w.contains(['=', HOLE]))
                {
                    checked += 1;
                    if !targets.contains(target) {
                        problems.push(format!("{rel}:{line}: `make {target}`: the Makefile has no target `{target}` (it has: {targets:?})"));
                    }
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
    let docs = docs();
    let mut anchors = HashMap::new();
    for (rel, text) in &docs {
        anchors.insert(rel.clone(), markdown::parse(text).anchors);
    }
    let mut problems = Vec::new();
    let mut checked = 0;
    for (rel, text) in &docs {
        let parsed = markdown::parse(text);
        let mut words: Vec<(usize, String, bool)> = Vec::new();
        for span in &parsed.spans {
            let whole = !span.text.contains(' ');
            words.extend(
                path_words(&span.text)
                    .into_iter()
                    .map(|w| (span.line, w, whole)),
            );
        }
        for block in &parsed.blocks {
            for logical in shell::logical_lines(&block.lines) {
                let found = path_words(&logical.text);
                words.extend(found.into_iter().map(|w| (logical.line, w, false)));
            }
        }
        for (line, word, whole) in words {
            if let Some(path) = paths::repo_path(&word, &root, whole) {
                checked += 1;
                if !paths::exists(&root, &path) {
                    problems.push(format!(
                        "{rel}:{line}: `{path}` does not exist in the repository"
                    ));
                }
            }
        }
        let dir = Path::new(rel).parent().unwrap_or(Path::new(""));
        for link in &parsed.links {
            let target = link.text.split_whitespace().next().unwrap_or_default();
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            checked += 1;
            let (file, anchor) = target.split_once('#').unwrap_or((target, ""));
            let file_rel = if file.is_empty() {
                rel.clone()
            } else {
                normalize(&dir.join(file))
            };
            if !root.join(&file_rel).exists() {
                problems.push(format!(
                    "{rel}:{}: link `{target}`: {file_rel} does not exist",
                    link.line
                ));
                continue;
            }
            if !anchor.is_empty() {
                let known = anchors.get(&file_rel).cloned().unwrap_or_else(|| {
                    std::fs::read_to_string(root.join(&file_rel))
                        .map(|t| markdown::parse(&t).anchors)
                        .unwrap_or_default()
                });
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

/// The words of `text` that may name files: all of them (an option's `=value` for
/// `--opt=value`), except in `kubectl` commands, whose `deploy/x` and `daemonset/x` are
/// objects: there only the values of `-f`, `--filename` and `--from-file`.
fn path_words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for words in shell::segments(text, &mut Vars::default()) {
        let value = |w: &String| w.rsplit('=').next().unwrap_or(w).to_owned();
        if words.first().is_some_and(|w| w == "kubectl") {
            for (i, w) in words.iter().enumerate() {
                let after_flag =
                    i > 0 && matches!(words[i - 1].as_str(), "-f" | "--filename" | "-k");
                if after_flag || w.starts_with("--filename=") || w.starts_with("--from-file=") {
                    out.push(value(w));
                }
            }
        } else {
            out.extend(words.iter().map(value));
        }
    }
    out
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
