//! Command lines in YAML code blocks, read with serde_yaml_ng: a `command:` sequence that
//! runs a binary (`command: [couchestor-agent, health, ...]`), and the `args:` of a container
//! whose `image:` is a binary's (`image: couchestor-agent`, `args: [serve, ...]`).

use serde::Deserialize;
use serde_yaml_ng::{Mapping, Value};

use crate::shell::runs;

/// One command line of a YAML block.
pub struct YamlCommand {
    /// Line (1-based) of its `command:` or `args:` key.
    pub line: usize,
    /// The key with the arguments, for messages.
    pub text: String,
    /// Which binary.
    pub bin: &'static str,
    /// Its arguments.
    pub args: Vec<String>,
}

/// The command lines of `bins` in a YAML block (all its documents), or the line where it
/// does not parse and why.
pub fn commands(
    lines: &[(usize, String)],
    bins: &[&'static str],
) -> Result<Vec<YamlCommand>, (usize, String)> {
    let text: String = lines.iter().map(|(_, l)| format!("{l}\n")).collect();
    let mut found = Vec::new();
    for document in serde_yaml_ng::Deserializer::from_str(&text) {
        let value = Value::deserialize(document).map_err(|e| {
            let at = e.location().map_or(0, |l| l.line().saturating_sub(1));
            let line = lines.get(at).map_or(0, |(line, _)| *line);
            (
                line,
                format!("this YAML does not parse: {e} (of the block)"),
            )
        })?;
        walk(&value, bins, &mut found);
    }
    // `walk` goes in document order, so each key is on the next line that names it.
    let mut from = 0;
    for command in &mut found {
        let key = command.text.split_inclusive(':').next().unwrap_or_default();
        let at = (from..lines.len()).find(|&i| lines[i].1.contains(key));
        command.line = lines[at.unwrap_or(from.min(lines.len() - 1))].0;
        from = at.map_or(from, |at| at + 1);
    }
    Ok(found)
}

/// Collects the command lines of every mapping under `value`, in document order (`line` is
/// left to the caller).
fn walk(value: &Value, bins: &[&'static str], found: &mut Vec<YamlCommand>) {
    let map: &Mapping = match value {
        Value::Mapping(map) => map,
        Value::Sequence(items) => return items.iter().for_each(|v| walk(v, bins, found)),
        _ => return,
    };
    let image = map.get("image").and_then(Value::as_str).map(|image| {
        let name = image.rsplit('/').next().unwrap_or(image);
        name.split([':', '@']).next().unwrap_or(name)
    });
    for (key, value) in map {
        let words: Vec<String> = value
            .as_sequence()
            .into_iter()
            .flatten()
            .filter_map(|v| match v {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                Value::Bool(b) => Some(b.to_string()),
                _ => None,
            })
            .collect();
        let bin = match (key.as_str(), words.first()) {
            (Some("command"), Some(first)) => bins.iter().find(|b| runs(first, b)),
            (Some("args"), Some(_)) => bins.iter().find(|b| image == Some(**b)),
            _ => None,
        };
        if let Some(&bin) = bin {
            let (text, args) = match key.as_str() {
                Some("command") => (format!("command: [{}]", words.join(", ")), &words[1..]),
                _ => (format!("args: {}", words.join(" ")), &words[..]),
            };
            let args = args.to_vec();
            found.push(YamlCommand {
                line: 0,
                text,
                bin,
                args,
            });
        }
        walk(value, bins, found);
    }
}
