//! Repository paths and `make` targets named in the documentation.

use std::collections::BTreeSet;
use std::path::Path;

/// The targets the Makefile defines, and the `.PHONY` names no rule defines.
pub fn make_targets(makefile: &str) -> (BTreeSet<String>, Vec<String>) {
    let mut rules = BTreeSet::new();
    let mut phony = Vec::new();
    for line in makefile.lines() {
        if line.starts_with([' ', '\t', '#']) {
            continue;
        }
        let Some((targets, rest)) = line.split_once(':') else {
            continue;
        };
        if rest.starts_with('=') || targets.ends_with(['?', '+', ':']) {
            continue; // a variable assignment
        }
        if targets.trim() == ".PHONY" {
            phony.extend(rest.split_whitespace().map(String::from));
        } else {
            rules.extend(targets.split_whitespace().map(String::from));
        }
    }
    let undefined = phony.into_iter().filter(|p| !rules.contains(p)).collect();
    (rules, undefined)
}

/// The repository path a word of the documentation names, if it names one: a relative path
/// under one of the repository's top-level directories (`agent/tests/x.rs`,
/// `./charts/couchestor`, `deploy/crds/*.yaml`), or a top-level file named on its own in a
/// code span (`Makefile`). Build output (`target/`), URLs and placeholders are not paths.
pub fn repo_path(word: &str, root: &Path, whole_span: bool) -> Option<String> {
    let word = word
        .trim_matches(|c: char| matches!(c, '"' | '\'' | '(' | ')' | ',' | ';' | '`'))
        .trim_end_matches(['.', ':'])
        .trim_start_matches("./");
    let word = word.split('#').next().unwrap_or(word);
    // `file.rs:12` names a line of the file.
    let word = match word.rsplit_once(':') {
        Some((file, line)) if line.chars().all(|c| c.is_ascii_digit()) => file,
        _ => word,
    };
    if word.is_empty()
        || word.contains("://")
        || word.contains(['<', '>', '$', '{', '}', '…', '=', '\u{1}'])
        || word.contains("...")
    {
        return None;
    }
    let first = word.split('/').next()?;
    if first.is_empty() || first == "target" || first == ".." {
        return None;
    }
    let top = root.join(first);
    let names_top_dir = word.contains('/') && top.is_dir();
    let names_top_file = whole_span && !word.contains('/') && top.is_file();
    (names_top_dir || names_top_file).then(|| word.to_owned())
}

/// True when `path` (relative to `root`, a glob pattern: `deploy/crds/*.yaml`) names
/// something that exists.
pub fn exists(root: &Path, path: &str) -> bool {
    let root = glob::Pattern::escape(&root.to_string_lossy());
    let pattern = format!("{root}/{}", path.trim_end_matches('/'));
    glob::glob(&pattern).is_ok_and(|mut matches| matches.next().is_some())
}
