//! Shell command lines as a reader would type them. Words and quoting are shlex's; what is
//! left of a shell is kept small here: `\` continuations and heredoc bodies
//! ([`logical_lines`]), the separators `|`, `||`, `&&`, `;`, `&`, redirections, the block's own
//! variables (`NAME=...`, `export NAME=...`, `for NAME in first ...`), and the documentation's
//! placeholders (`<pv-name>`, an unset `$VAR`, `$(...)`). Variables are expanded whatever the
//! quoting (`'$X'` too): the documentation does not rely on the difference.

use std::collections::HashMap;

/// Stands for a value the documentation leaves to the reader (`<pv>`, an unset `$VAR`,
/// `$(...)`); numbered `\u{1}N\u{1}` inside a word.
pub const HOLE: char = '\u{1}';

/// One word of a command line: its text with [`HOLE`]-marked placeholders.
pub type Word = String;

/// A logical line of a code block (continuations joined) with the line it starts on.
pub struct LogicalLine {
    /// 1-based line number of its first physical line.
    pub line: usize,
    /// The joined text.
    pub text: String,
}

/// Joins `\`-continued lines and drops heredoc bodies.
pub fn logical_lines(lines: &[(usize, String)]) -> Vec<LogicalLine> {
    let mut out: Vec<LogicalLine> = Vec::new();
    let mut continued = false;
    let mut heredoc: Option<String> = None;
    for (number, line) in lines {
        if let Some(end) = &heredoc {
            if line.trim() == end {
                heredoc = None;
            }
            continue;
        }
        let body = line.trim_end().strip_suffix('\\');
        match out.last_mut() {
            Some(last) if continued => {
                last.text.push(' ');
                last.text.push_str(body.unwrap_or(line));
            }
            _ => out.push(LogicalLine {
                line: *number,
                text: body.unwrap_or(line).to_owned(),
            }),
        }
        continued = body.is_some();
        if !continued {
            // `<<EOF`, `<<'EOF'`, `<<-EOF` start a heredoc ending at a line `EOF`.
            let text = &out.last().expect("just pushed").text;
            heredoc = text
                .split_once("<<")
                .and_then(|(_, rest)| shlex::Shlex::new(rest.trim_start_matches('-')).next());
        }
    }
    out
}

/// Shell variables known at a point of a block.
#[derive(Default)]
pub struct Vars(HashMap<String, String>);

/// Numbers placeholders within one line.
#[derive(Default)]
struct Holes(usize);

impl Holes {
    fn next(&mut self) -> String {
        self.0 += 1;
        format!("{HOLE}{}{HOLE}", self.0 - 1)
    }
}

/// The simple commands of `line` (the words between `|`, `||`, `&&`, `;`, `&`; redirections
/// removed; known variables expanded, placeholders numbered); records the variables it sets.
pub fn segments(line: &str, vars: &mut Vars) -> Vec<Vec<Word>> {
    let mut holes = Holes::default();
    let text = placeholders(line, &mut holes);
    let mut commands = Vec::new();
    let mut words = Vec::new();
    // A quote left open ends the line (shlex drops its last word).
    for word in shlex::Shlex::new(&text) {
        let separator = matches!(word.as_str(), "|" | "||" | "&&" | "&" | "|&" | ";");
        let ends = separator || (word.len() > 1 && word.ends_with(';'));
        if !separator {
            words.push(expand(
                word.strip_suffix(';').unwrap_or(&word),
                vars,
                &mut holes,
            ));
        }
        if ends {
            commands.push(finish(std::mem::take(&mut words), vars));
        }
    }
    commands.push(finish(words, vars));
    commands.retain(|c| !c.is_empty());
    commands
}

/// `$(...)` and `<placeholder>` (either may hold spaces) replaced by holes.
fn placeholders(line: &str, holes: &mut Holes) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(i) = rest.find(['$', '<']) {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let len = if tail.starts_with("$(") {
            let mut depth = 0;
            let close = tail.char_indices().find(|&(_, c)| {
                depth += i32::from(c == '(') - i32::from(c == ')');
                c == ')' && depth == 0
            });
            Some(close.map_or(tail.len(), |(j, _)| j + 1))
        } else if tail[1..].starts_with(|c: char| c.is_alphanumeric() || c == '-') {
            tail.strip_prefix('<')
                .and_then(|t| t.find('>'))
                .map(|j| j + 2)
        } else {
            None
        };
        out.push_str(&len.map_or_else(|| tail[..1].to_owned(), |_| holes.next()));
        rest = &tail[len.unwrap_or(1)..];
    }
    out.push_str(rest);
    out
}

/// `word` with `$NAME` and `${NAME}` replaced by their values: a fresh hole for an unknown
/// variable or one whose value is a placeholder (`POD=$(kubectl ...)`).
fn expand(word: &str, vars: &Vars, holes: &mut Holes) -> Word {
    let mut out = String::new();
    let mut rest = word;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let tail = &rest[i + 1..];
        let (name, after) = match tail.strip_prefix('{') {
            Some(braced) => braced.split_once('}').unwrap_or((braced, "")),
            None => tail.split_at(
                tail.find(|c: char| !c.is_alphanumeric() && c != '_')
                    .unwrap_or(tail.len()),
            ),
        };
        match vars.0.get(name) {
            _ if name.is_empty() => out.push('$'),
            Some(value) if !value.contains(HOLE) => out.push_str(value),
            _ => out.push_str(&holes.next()),
        }
        rest = after;
    }
    out.push_str(rest);
    out
}

/// Removes redirections and leading keywords from a simple command and records its
/// assignments (then it runs nothing, unless it is `VAR=x command ...`).
fn finish(words: Vec<Word>, vars: &mut Vars) -> Vec<Word> {
    let mut kept = Vec::new();
    let mut iter = words.into_iter();
    while let Some(word) = iter.next() {
        let bare = word.trim_start_matches(|c: char| c.is_ascii_digit());
        if matches!(bare, ">" | ">>" | "<" | "<<" | "&>") {
            iter.next();
        } else if !bare.starts_with(['>', '<']) && !bare.starts_with("&>") {
            kept.push(word);
        }
    }
    let keywords = ["do", "then", "else", "time", "sudo", "!", "export"];
    let mut rest = kept.as_slice();
    while let [first, tail @ ..] = rest
        && keywords.contains(&first.as_str())
    {
        rest = tail;
    }
    if let [f, name, in_, first, ..] = rest
        && f == "for"
        && in_ == "in"
    {
        vars.0.insert(name.clone(), first.clone());
        return Vec::new();
    }
    let assignments = rest.iter().map_while(|w| assignment(w)).count();
    if assignments == rest.len() {
        for (name, value) in rest.iter().filter_map(|w| assignment(w)) {
            vars.0.insert(name.into(), value.into());
        }
        return Vec::new();
    }
    rest[assignments..].to_vec()
}

/// `NAME=value` split, when `w` is a shell assignment.
fn assignment(w: &str) -> Option<(&str, &str)> {
    let (name, value) = w.split_once('=')?;
    let valid = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    valid.then_some((name, value))
}

/// The program a word runs, when it names `bin`: `bin`, `./bin`, `/usr/local/bin/bin`,
/// `target/release/bin`.
pub fn runs(word: &str, bin: &str) -> bool {
    word == bin
        || word.strip_suffix(bin).is_some_and(|dir| {
            dir.ends_with('/')
                && (dir.starts_with('/') || dir.starts_with("./") || dir.starts_with("target/"))
        })
}

/// The arguments `bin` is called with in a simple command, if it calls it: directly, after
/// `--` (`kubectl exec ... -- bin`), or through `cargo run -p bin ... -- args`.
pub fn invocation<'a>(words: &'a [Word], bin: &str) -> Option<&'a [Word]> {
    let first = words.first()?;
    if runs(first, bin) {
        return Some(&words[1..]);
    }
    if first == "cargo" && words.get(1).is_some_and(|w| w == "run") {
        let names_bin = words
            .windows(2)
            .any(|w| matches!(w[0].as_str(), "-p" | "--package" | "--bin") && w[1] == bin);
        if !names_bin {
            return None;
        }
        let dashes = words.iter().position(|w| w == "--");
        return Some(dashes.map_or(&[][..], |i| &words[i + 1..]));
    }
    let i = words
        .windows(2)
        .position(|w| w[0] == "--" && runs(&w[1], bin))?;
    Some(&words[i + 2..])
}
