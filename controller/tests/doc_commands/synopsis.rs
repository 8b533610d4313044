//! Synopses (`serve --listen ADDR [--interval SECONDS] [--output table|json]`, `ec ...`)
//! turned into command lines that can be checked like any other: brackets dropped (the
//! optional parts are checked too), metavariables made placeholders, one line per
//! alternative of an `a|b` value, and a trailing `...` read as "more arguments follow".

use crate::shell::HOLE;

/// The command lines a synopsis stands for, and whether it elides arguments (so required
/// ones may be missing).
pub struct Expanded {
    /// One argument list per alternative.
    pub variants: Vec<Vec<String>>,
    /// A `...` / `…` stood for further arguments.
    pub elided: bool,
}

/// Expands `args`; a plain command line comes back as its only variant.
pub fn expand(args: &[String]) -> Expanded {
    let mut next_hole = args
        .iter()
        .flat_map(|a| a.split(HOLE).skip(1).step_by(2))
        .filter_map(|n| n.parse::<usize>().ok())
        .max()
        .map_or(0, |n| n + 1);
    let mut elided = false;
    let mut words: Vec<String> = Vec::new();
    for arg in args {
        let mut word = arg.replace(['[', ']'], "");
        for elision in ["...", "…"] {
            if let Some(stripped) = word.strip_suffix(elision) {
                // `DIR...` repeats DIR; a lone `...` elides the rest.
                elided |= stripped.is_empty();
                word = stripped.to_owned();
            }
        }
        if word.is_empty() {
            continue;
        }
        if let Some(option) = metavariable(&word) {
            word = format!("{option}{HOLE}{next_hole}{HOLE}");
            next_hole += 1;
        }
        words.push(word);
    }
    let choices: Vec<(usize, Vec<String>)> = words
        .iter()
        .enumerate()
        .filter(|(_, w)| w.contains('|') && !w.contains(HOLE))
        .map(|(i, w)| (i, w.split('|').map(String::from).collect()))
        .collect();
    let first: Vec<String> = words
        .iter()
        .map(|w| match w.split_once('|') {
            Some((a, _)) if !w.contains(HOLE) => a.to_owned(),
            _ => w.clone(),
        })
        .collect();
    let mut variants = vec![first.clone()];
    for (i, alternatives) in choices {
        for alternative in alternatives.into_iter().skip(1) {
            let mut variant = first.clone();
            variant[i] = alternative;
            variants.push(variant);
        }
    }
    Expanded { variants, elided }
}

/// `FILE`, `DIR`, `https://ADDR:PORT`, `--tls-cert=FILE`: a word (or an option's `=value`)
/// holding a word in capitals. Returns what precedes the value (`--tls-cert=` or nothing).
fn metavariable(word: &str) -> Option<&str> {
    let (option, value) = match (word.starts_with('-'), word.split_once('=')) {
        (false, _) => ("", word),
        (true, Some((option, value))) => (&word[..option.len() + 1], value),
        (true, None) => return None,
    };
    let capitals = value
        .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .any(|piece| {
            piece.len() >= 2
                && piece.chars().any(|c| c.is_ascii_uppercase())
                && piece
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        });
    capitals.then_some(option)
}
