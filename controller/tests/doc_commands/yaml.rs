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

/// The command lines of `bins` in a YAML block (all its documents), or why it does not parse.
pub fn commands(
    lines: &[(usize, String)],
    bins: &[&'static str],
) -> Result<Vec<YamlCommand>, String> {
    let text: String = lines.iter().map(|(_, l)| format!("{l}\n")).collect();
    let mut found = Vec::new();
    for document in serde_yaml_ng::Deserializer::from_str(&text) {
        let value = Value::deserialize(document).map_err(|e| format!("YAML: {e}"))?;
        walk(&value, bins, &mut found);
    }
    // `walk` goes in document order, so each key is on the next line that names it.
    let mut from = 0;
    let mut out = Vec::new();
    for (key, bin, args) in found {
        let at = (from..lines.len())
            .find(|&i| lines[i].1.contains(key))
            .unwrap_or(from.min(lines.len() - 1));
        from = at + 1;
        let text = match key {
            "command:" => format!("command: [{}, {}]", bin, args.join(", ")),
            _ => format!("args: {}", args.join(" ")),
        };
        let line = lines[at].0;
        out.push(YamlCommand {
            line,
            text,
            bin,
            args,
        });
    }
    Ok(out)
}

/// Collects (key, binary, arguments) from every mapping under `value`, in document order.
fn walk(
    value: &Value,
    bins: &[&'static str],
    found: &mut Vec<(&'static str, &'static str, Vec<String>)>,
) {
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
        for &bin in bins {
            match (key.as_str(), words.split_first()) {
                (Some("command"), Some((first, args))) if runs(first, bin) => {
                    found.push(("command:", bin, args.to_vec()));
                }
                (Some("args"), Some(_)) if image == Some(bin) => {
                    found.push(("args:", bin, words.clone()));
                }
                _ => {}
            }
        }
        walk(value, bins, found);
    }
}
