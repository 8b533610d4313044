//! Reading shell command lines the way a reader would type them: quotes, comments, line
//! continuations, heredocs, pipes and `&&`, variables set earlier in the same block (`X=...`,
//! `for x in a b`), and the documentation's placeholders (`<pv-name>`, `$(...)`).

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
    let mut out = Vec::new();
    let mut current: Option<LogicalLine> = None;
    let mut heredoc: Option<String> = None;
    for (number, line) in lines {
        if let Some(end) = &heredoc {
            if line.trim() == end {
                heredoc = None;
            }
            continue;
        }
        let (body, continued) = match line.trim_end().strip_suffix('\\') {
            Some(body) => (body, true),
            None => (line.as_str(), false),
        };
        let logical = current.get_or_insert_with(|| LogicalLine {
            line: *number,
            text: String::new(),
        });
        logical.text.push(' ');
        logical.text.push_str(body);
        if !continued {
            heredoc = heredoc_end(&logical.text);
            out.push(current.take().expect("just filled"));
        }
    }
    out.extend(current);
    out
}

/// The terminator of a heredoc started on this line (`<<EOF`, `<<'EOF'`, `<<-EOF`).
fn heredoc_end(line: &str) -> Option<String> {
    let start = line.find("<<")? + 2;
    let rest = line[start..].trim_start_matches('-').trim_start();
    let word: String = rest
        .trim_start_matches(['\'', '"'])
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    (!word.is_empty()).then_some(word)
}

/// Shell variables known at a point of a block.
#[derive(Default)]
pub struct Vars(HashMap<String, String>);

/// Tokenises `line` into its simple commands (the words between `|`, `&&`, `||`, `;`, `&`,
/// redirections removed), expanding known variables and numbering placeholders; records
/// the variables it assigns (`NAME=value`, `export NAME=value`, `for NAME in first ...`).
pub fn segments(line: &str, vars: &mut Vars) -> Vec<Vec<Word>> {
    let mut holes = 0;
    let mut commands = Vec::new();
    let mut words: Vec<Word> = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars().peekable();
    let mut hole = |word: &mut String| {
        word.push(HOLE);
        word.push_str(&holes.to_string());
        word.push(HOLE);
        holes += 1;
    };
    macro_rules! end_word {
        () => {
            if in_word {
                words.push(std::mem::take(&mut word));
                in_word = false;
            }
        };
    }
    macro_rules! end_command {
        () => {
            end_word!();
            if !words.is_empty() {
                commands.push(finish(std::mem::take(&mut words), vars));
            }
        };
    }
    while let Some(c) = chars.next() {
        match c {
            '#' if !in_word => break,
            ' ' | '\t' => end_word!(),
            // `table|json` (a synopsis' alternatives) is one word; a pipe has spaces around.
            '|' if in_word
                && chars
                    .peek()
                    .is_some_and(|n| !n.is_whitespace() && *n != '|') =>
            {
                word.push(c);
            }
            '|' | ';' | '&' => {
                // `2>&1` and `&>` are redirections, removed with the words around them.
                if c == '&' && (word.ends_with('>') || chars.peek() == Some(&'>')) {
                    word.push(c);
                    in_word = true;
                    continue;
                }
                if matches!(chars.peek(), Some('|' | '&')) {
                    chars.next();
                }
                end_command!();
            }
            '\'' => {
                in_word = true;
                for q in chars.by_ref() {
                    if q == '\'' {
                        break;
                    }
                    word.push(q);
                }
            }
            '"' => {
                in_word = true;
                while let Some(q) = chars.next() {
                    match q {
                        '"' => break,
                        '\\' => word.extend(chars.next()),
                        '$' => expand(&mut chars, &mut word, vars, &mut hole),
                        _ => word.push(q),
                    }
                }
            }
            '\\' => {
                in_word = true;
                word.extend(chars.next());
            }
            '$' => {
                in_word = true;
                expand(&mut chars, &mut word, vars, &mut hole);
            }
            '<' if chars
                .peek()
                .is_some_and(|c| c.is_alphanumeric() || *c == '-') =>
            {
                // `<pv-name>`: a placeholder, not a redirection.
                in_word = true;
                let mut name = String::new();
                let mut closed = false;
                for p in chars.by_ref() {
                    if p == '>' {
                        closed = true;
                        break;
                    }
                    name.push(p);
                }
                if closed {
                    hole(&mut word);
                } else {
                    word.push('<');
                    word.push_str(&name);
                }
            }
            _ => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    if !words.is_empty() {
        commands.push(finish(words, vars));
    }
    commands
}

/// Reads what follows a `$`: `${NAME}`, `$NAME` (replaced by its value, or a placeholder when
/// unknown) or `$(...)` (a placeholder).
fn expand(
    chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
    word: &mut String,
    vars: &Vars,
    hole: &mut impl FnMut(&mut String),
) {
    let name: String = match chars.peek() {
        Some('(') => {
            let mut depth = 0;
            for c in chars.by_ref() {
                depth += match c {
                    '(' => 1,
                    ')' => -1,
                    _ => 0,
                };
                if depth == 0 {
                    break;
                }
            }
            return hole(word);
        }
        Some('{') => {
            chars.next();
            chars.by_ref().take_while(|&c| c != '}').collect()
        }
        _ => {
            let mut name = String::new();
            while let Some(&c) = chars.peek() {
                if !(c.is_alphanumeric() || c == '_') {
                    break;
                }
                name.push(c);
                chars.next();
            }
            name
        }
    };
    match vars.0.get(&name) {
        _ if name.is_empty() => word.push('$'),
        // A value that is itself a placeholder (`POD=$(kubectl ...)`) gets a number here.
        Some(value) if value.contains(HOLE) => hole(word),
        Some(value) => word.push_str(value),
        None => hole(word),
    }
}

/// Removes redirections from a simple command and records its assignments.
fn finish(words: Vec<Word>, vars: &mut Vars) -> Vec<Word> {
    let mut out = Vec::new();
    let mut skip_next = false;
    for w in words {
        if skip_next {
            skip_next = false;
            continue;
        }
        let bare = w.trim_start_matches(|c: char| c.is_ascii_digit());
        if matches!(bare, ">" | ">>" | "<" | "&>") {
            skip_next = true;
            continue;
        }
        if bare.starts_with('>') || bare.starts_with("&>") {
            continue;
        }
        out.push(w);
    }
    let mut rest = out.as_slice();
    while let [keyword, tail @ ..] = rest {
        if matches!(
            keyword.as_str(),
            "do" | "then" | "else" | "time" | "sudo" | "!"
        ) {
            rest = tail;
        } else {
            break;
        }
    }
    if let [f, name, in_, first, ..] = rest
        && f == "for"
        && in_ == "in"
    {
        vars.0.insert(name.clone(), first.clone());
        return Vec::new();
    }
    let words: Vec<Word> = rest.to_vec();
    let assignments = words
        .iter()
        .skip_while(|w| *w == "export")
        .take_while(|w| assignment(w).is_some())
        .count();
    let start = usize::from(words.first().is_some_and(|w| w == "export"));
    if start + assignments == words.len() {
        for w in &words[start..] {
            if let Some((name, value)) = assignment(w) {
                vars.0.insert(name.into(), value.into());
            }
        }
        return Vec::new();
    }
    // `VAR=x command ...`: the assignments only apply to that command.
    words[assignments..].to_vec()
}

/// `NAME=value` split, when `w` is a shell assignment.
fn assignment(w: &str) -> Option<(&str, &str)> {
    let (name, value) = w.split_once('=')?;
    let mut chars = name.chars();
    let valid = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
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

/// The arguments of a YAML `command:` flow sequence that runs `bin`
/// (`command: [bin, health, --x=y]`), from `text` (the sequence may span lines).
pub fn yaml_invocation(text: &str, bin: &str) -> Option<Vec<String>> {
    let key = text.find("command:")?;
    let open = text[key..].find('[')? + key;
    let close = text[open..].find(']')? + open;
    let items: Vec<String> = text[open + 1..close]
        .split(',')
        .map(|item| item.trim().trim_matches(['"', '\'']).to_owned())
        .collect();
    let first = items.first()?;
    runs(first, bin).then(|| items[1..].to_vec())
}

/// The arguments of a YAML container that runs `bin` with an `args:` block sequence
/// (`image: ...bin...` then `args:` and `- serve`, `- --listen=...` lines), from the lines of
/// a YAML block; with the line number of `args:`.
pub fn yaml_container_args(lines: &[(usize, String)], bin: &str) -> Vec<(usize, Vec<String>)> {
    let mut found = Vec::new();
    let mut image_runs_bin = false;
    let mut i = 0;
    while i < lines.len() {
        let trimmed = lines[i].1.trim_start().trim_start_matches("- ");
        if let Some(image) = trimmed.strip_prefix("image:") {
            let image = image.trim().trim_matches(['"', '\'']);
            let name = image.rsplit('/').next().unwrap_or(image);
            image_runs_bin = name.split([':', '@']).next() == Some(bin);
        } else if trimmed == "args:" && image_runs_bin {
            let indent = lines[i].1.len() - lines[i].1.trim_start().len();
            let mut args = Vec::new();
            let mut j = i + 1;
            while let Some((_, item)) = lines.get(j) {
                let item_indent = item.len() - item.trim_start().len();
                let Some(value) = item.trim_start().strip_prefix("- ") else {
                    break;
                };
                if item_indent < indent {
                    break;
                }
                args.push(value.trim().trim_matches(['"', '\'']).to_owned());
                j += 1;
            }
            found.push((lines[i].0, args));
            i = j;
            continue;
        }
        i += 1;
    }
    found
}
