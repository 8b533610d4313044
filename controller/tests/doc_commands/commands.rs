//! The command lines of both binaries in the documentation, and the tests that check them.

use std::path::Path;

use couchestor_testsupport::RunDir;

use crate::clap_check::{Binary, Strictness};
use crate::markdown::{self, Parsed};
use crate::shell::{self, HOLE, LogicalLine, Vars, Word};
use crate::{AGENT, CONTROLLER, agent_exe, docs, synopsis, yaml};

/// One command line found in the documentation.
struct Found {
    /// Its line (1-based).
    line: usize,
    /// `docs/agent.md:52`.
    place: String,
    /// The line as written (continuations joined).
    text: String,
    /// Which binary.
    bin: &'static str,
    /// Its arguments, placeholders [`HOLE`]-numbered.
    args: Vec<String>,
    /// A code-block command (`Full`) or a mention (`Parse`).
    strictness: Strictness,
}

/// Shell code blocks; `text` blocks are read as overviews.
pub fn shell_block(lang: &str) -> Option<Strictness> {
    match lang {
        "" | "sh" | "bash" | "shell" | "console" | "sh-session" => Some(Strictness::Full),
        "text" => Some(Strictness::Parse),
        _ => None,
    }
}

/// A simple command of a file: in a code block (a shell block's variables carry over its
/// lines) or an inline code span.
pub struct Simple {
    /// Line (1-based) of its logical line or span.
    pub line: usize,
    /// That logical line or span, as written.
    pub text: String,
    /// How a command line found here is checked: `None` outside shell blocks and spans.
    pub strictness: Option<Strictness>,
    /// Whether it is an inline code span.
    pub in_span: bool,
    /// Its words.
    pub words: Vec<Word>,
}

/// The simple commands of every code block and inline code span of a file.
pub fn simple_commands(parsed: &Parsed) -> Vec<Simple> {
    let blocks = parsed.blocks.iter().map(|b| {
        let lines = shell::logical_lines(&b.lines);
        (shell_block(&b.lang), false, lines)
    });
    let spans = parsed.spans.iter().map(|s| {
        let line = LogicalLine {
            line: s.line,
            text: s.text.clone(),
        };
        (Some(Strictness::Parse), true, vec![line])
    });
    let mut out = Vec::new();
    for (strictness, in_span, lines) in blocks.chain(spans) {
        let mut vars = Vars::default();
        for LogicalLine { line, text } in lines {
            for words in shell::segments(&text, &mut vars) {
                let text = text.trim().to_owned();
                out.push(Simple {
                    line,
                    text,
                    strictness,
                    in_span,
                    words,
                });
            }
        }
    }
    out
}

/// Every command line of both binaries in one file; a YAML block that does not parse is a
/// problem.
fn commands_in(rel: &str, text: &str, problems: &mut Vec<String>) -> Vec<Found> {
    let parsed = markdown::parse(text);
    let mut found = Vec::new();
    let mut push = |line: usize, text: &str, bin, args: &[String], strictness| {
        if !args.is_empty() {
            found.push(Found {
                line,
                place: format!("{rel}:{line}"),
                text: text.to_owned(),
                bin,
                args: args.to_vec(),
                strictness,
            });
        }
    };
    for block in parsed
        .blocks
        .iter()
        .filter(|b| matches!(b.lang.as_str(), "yaml" | "yml"))
    {
        match yaml::commands(&block.lines, &[CONTROLLER, AGENT]) {
            Ok(commands) => commands.iter().for_each(|c| {
                push(c.line, &c.text, c.bin, &c.args, Strictness::Full);
            }),
            Err((line, e)) => problems.push(format!("{rel}:{line}: {e}")),
        }
    }
    for simple in simple_commands(&parsed) {
        for bin in [CONTROLLER, AGENT] {
            if let Some(strictness) = simple.strictness
                && let Some(args) = shell::invocation(&simple.words, bin)
            {
                push(simple.line, &simple.text, bin, args, strictness);
            }
        }
    }
    found.sort_by_key(|f| f.line);
    found
}

/// `args` as text, each placeholder shown as `<value>`.
fn shown(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            a.split(HOLE)
                .enumerate()
                .map(|(i, part)| if i % 2 == 0 { part } else { "<value>" })
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Checks one found command line (each variant of a synopsis); the errors.
fn check_found(binary: &Binary, found: &Found) -> Result<(), String> {
    let expanded = synopsis::expand(&found.args);
    let strictness = if expanded.elided {
        Strictness::Parse
    } else {
        found.strictness
    };
    let mut errors = Vec::new();
    for variant in &expanded.variants {
        if let Err(e) = binary.check(variant, strictness) {
            let shown = if expanded.variants.len() > 1 {
                format!("with `{}`: {e}", shown(variant))
            } else {
                e
            };
            errors.push(shown);
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

#[test]
fn documented_commands_parse_with_the_real_binaries() {
    let scratch = RunDir::new("doc-commands").expect("scratch directory");
    let controller = Binary::new(
        CONTROLLER,
        Path::new(env!("CARGO_BIN_EXE_couchestor-controller")),
        scratch.path(),
    );
    let agent = Binary::new(AGENT, agent_exe(), scratch.path());
    let mut checked = 0;
    let mut problems = Vec::new();
    for (rel, text) in docs() {
        for found in commands_in(&rel, &text, &mut problems) {
            let binary = if found.bin == CONTROLLER {
                &controller
            } else {
                &agent
            };
            let result = check_found(binary, &found);
            println!(
                "{:<24} {:<5?} {}",
                found.place, found.strictness, found.text
            );
            checked += 1;
            if let Err(e) = result {
                problems.push(format!("{}: `{}`: {e}", found.place, found.text));
            }
        }
    }
    println!("checked {checked} documented command lines");
    assert!(
        checked >= 40,
        "only {checked} command lines found: is the extraction broken?"
    );
    assert!(
        problems.is_empty(),
        "{} documented commands do not work with the binaries:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// The extraction and the checker catch what they must: command lines that are wrong in each
/// way, written in each way the documentation writes them.
#[test]
fn the_checker_rejects_broken_commands() {
    let scratch = RunDir::new("doc-commands-self").expect("scratch directory");
    let controller = Binary::new(
        CONTROLLER,
        Path::new(env!("CARGO_BIN_EXE_couchestor-controller")),
        scratch.path(),
    );
    let doc = "```sh\n\
        couchestor-controller explain pvc-<uuid>\n\
        couchestor-controller simulate --output json --seed $seed\n\
        couchestor-controller explian pvc-1\n\
        couchestor-controller explain pvc-1 --no-such-flag\n\
        couchestor-controller simulate --output yaml\n\
        couchestor-controller explain\n\
        OUT=yaml; kubectl exec pod -- couchestor-controller simulate \\\n\
        \x20 --output \"$OUT\" 2>&1 | tee out.txt\n\
        cat <<'EOF'\n\
        couchestor-controller explian\n\
        EOF\n\
        ```\n\
        Prose: `couchestor-controller simulate --scenario SCENARIO [--compare] [--output text|yaml]`.\n\
        \n\
        ```yaml\n\
        containers:\n\
        \x20 - image: registry.example/couchestor-controller:v1\n\
        \x20   args: [simulate, --output, yaml]\n\
        ```\n";
    let invalid_yaml = "error: invalid value 'yaml' for '--output";
    let expected = [
        ("doc.md:2", ""),
        ("doc.md:3", ""),
        ("doc.md:4", "unrecognized subcommand 'explian'"),
        ("doc.md:5", "unexpected argument '--no-such-flag'"),
        ("doc.md:6", invalid_yaml),
        ("doc.md:7", "missing required 1 positional"),
        ("doc.md:8", invalid_yaml),
        (
            "doc.md:14",
            "with `simulate --scenario <value> --compare --output yaml`: error: invalid value 'yaml'",
        ),
        ("doc.md:19", invalid_yaml),
    ];
    let mut problems = Vec::new();
    let results: Vec<(String, Result<(), String>)> = commands_in("doc.md", doc, &mut problems)
        .into_iter()
        .map(|f| (f.place.clone(), check_found(&controller, &f)))
        .collect();
    let summary = format!("{problems:?}\n{results:#?}");
    println!("{summary}");
    assert!(problems.is_empty(), "{summary}");
    assert_eq!(results.len(), expected.len(), "{summary}");
    for ((place, result), (want_place, want)) in results.iter().zip(expected) {
        assert_eq!(place, want_place, "{summary}");
        match result {
            Ok(()) => assert!(want.is_empty(), "{place} passed: {summary}"),
            Err(e) => assert!(!want.is_empty() && e.contains(want), "{place}: {summary}"),
        }
    }
}
