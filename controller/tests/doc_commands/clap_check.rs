//! Checks a documented command line against the real binary's clap definitions without
//! running the command: the binary is started with the documented arguments followed by
//! `--help`. clap reads the arguments left to right and parses each option's value before it
//! acts on `--help`, so an unknown subcommand or option, an extra positional argument, or a
//! missing or invalid value (`--interval x`, `--output yaml`) fails with clap's own message,
//! and a valid line only prints the help. What clap checks after the last argument (required
//! arguments) `--help` never lets it reach, so required arguments are checked here against
//! the subcommand's usage line. Not checked: `conflicts_with` / `requires` rules between
//! options.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::shell::HOLE;

/// What a value the documentation leaves open (`<pv>`, `$SC`) is tried as, in order, until
/// clap accepts it: text, a number, an address, a URL.
const SAMPLES: [&str; 4] = ["sample", "1", "127.0.0.1:9443", "https://127.0.0.1:9443"];

/// clap's complaint about a command line.
struct ClapError {
    /// Its first line (`error: invalid value 'yaml' for '--output <OUTPUT>'`).
    first: String,
    /// The possible values it lists, if any.
    possible: Vec<String>,
}

/// One option of a (sub)command, from its `--help`.
struct Opt {
    long: Option<String>,
    short: Option<char>,
    takes_value: bool,
}

/// A (sub)command as its `--help` describes it.
struct Help {
    subcommands: Vec<String>,
    options: Vec<Opt>,
    /// Each line of the usage block, after the command path.
    usages: Vec<Vec<String>>,
}

impl Help {
    fn option(&self, arg: &str) -> Option<&Opt> {
        let name = arg.split('=').next().unwrap_or(arg);
        self.options.iter().find(|o| {
            if let Some(long) = name.strip_prefix("--") {
                o.long.as_deref() == Some(long)
            } else {
                let short = name.strip_prefix('-').and_then(|s| s.chars().next());
                short.is_some() && o.short == short
            }
        })
    }
}

/// A built binary whose command lines are checked.
pub struct Binary {
    /// Its name in documentation.
    pub name: String,
    exe: PathBuf,
    workdir: PathBuf,
    helps: RefCell<HashMap<Vec<String>, Rc<Help>>>,
}

/// How a command line is checked.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Strictness {
    /// A command line to run: it must parse and carry every required argument.
    Full,
    /// A mention in prose or an overview (`couchestor-agent nbd serve` exports ...): it must
    /// parse; required arguments may be left out.
    Parse,
}

impl Binary {
    /// The binary at `exe`, run in `workdir` (so that a mistake there cannot touch the
    /// repository).
    pub fn new(name: &str, exe: &Path, workdir: &Path) -> Self {
        Self {
            name: name.into(),
            exe: exe.into(),
            workdir: workdir.into(),
            helps: RefCell::default(),
        }
    }

    /// Runs the binary with `args` (at most 20 s); its exit success, stdout and stderr.
    fn run(&self, args: &[String]) -> (bool, String, String) {
        let mut child = Command::new(&self.exe)
            .args(args)
            .current_dir(&self.workdir)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.exe.display()));
        let deadline = Instant::now() + Duration::from_secs(20);
        while child.try_wait().expect("wait for the binary").is_none() {
            if Instant::now() > deadline {
                child.kill().expect("kill the binary");
                panic!(
                    "`{} {}` ran for 20 s instead of printing its help",
                    self.name,
                    args.join(" ")
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let out = child.wait_with_output().expect("collect the output");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// The `--help` of the subcommand `path`.
    fn help(&self, path: &[String]) -> Rc<Help> {
        if let Some(help) = self.helps.borrow().get(path) {
            return help.clone();
        }
        let mut args = path.to_vec();
        args.push("--help".into());
        let (ok, text, err) = self.run(&args);
        assert!(ok, "`{} {}` failed: {err}", self.name, args.join(" "));
        let help = Rc::new(parse_help(&text, &self.name, path));
        self.helps.borrow_mut().insert(path.to_vec(), help.clone());
        help
    }

    /// The subcommand path at the start of `args` (`ec encode`) and its help.
    fn path(&self, args: &[String]) -> (Vec<String>, Rc<Help>) {
        let mut path = Vec::new();
        let mut help = self.help(&path);
        for arg in args {
            if !help.subcommands.contains(arg) || arg == "help" {
                break;
            }
            path.push(arg.clone());
            help = self.help(&path);
        }
        (path, help)
    }

    /// Runs `args` + `--help`: `Ok` when clap parsed every argument and printed the help,
    /// else clap's error.
    fn parse_with_help(&self, args: &[String]) -> Result<(), ClapError> {
        let mut with_help = args.to_vec();
        with_help.push("--help".into());
        let (ok, out, err) = self.run(&with_help);
        if ok && out.contains("Usage:") {
            return Ok(());
        }
        let first = match err.lines().next() {
            Some(first) if !first.is_empty() => first.to_owned(),
            _ => format!("`--help` did not print the help: {out}"),
        };
        // `  [possible values: table, json]` follows an invalid enum value.
        let possible = err
            .lines()
            .find_map(|l| l.trim().strip_prefix("[possible values: "))
            .map(|list| {
                list.trim_end_matches(']')
                    .split(", ")
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default();
        Err(ClapError { first, possible })
    }

    /// Checks one command line (`args` after the binary). Placeholders ([`HOLE`]-numbered)
    /// are filled with [`SAMPLES`] (or, for a list of possible values, the first of them)
    /// until clap accepts them; a documented value clap rejects is an error.
    pub fn check(&self, args: &[String], strictness: Strictness) -> Result<(), String> {
        let mut candidates: HashMap<usize, Vec<String>> = holes_in(args)
            .into_iter()
            .map(|h| (h, SAMPLES.iter().rev().map(|s| s.to_string()).collect()))
            .collect();
        loop {
            let choice: HashMap<usize, String> = candidates
                .iter()
                .map(|(h, c)| (*h, c.last().expect("a candidate left").clone()))
                .collect();
            let filled: Vec<String> = args.iter().map(|a| fill(a, &choice)).collect();
            let error = match self.parse_with_help(&filled) {
                Ok(()) if strictness == Strictness::Full => return self.check_required(&filled),
                Ok(()) => return Ok(()),
                Err(error) => error,
            };
            // Which placeholders make up the rejected value? Try their next candidate.
            let rejected = error
                .first
                .strip_prefix("error: invalid value '")
                .and_then(|rest| rest.split('\'').next());
            let culprits: Vec<usize> = args
                .iter()
                .zip(&filled)
                .filter(|(_, f)| {
                    rejected.is_some_and(|r| f.as_str() == r || f.ends_with(&format!("={r}")))
                })
                .flat_map(|(a, _)| holes_in(std::slice::from_ref(a)))
                .collect();
            let mut advanced = false;
            for hole in culprits {
                let queue = candidates.get_mut(&hole).expect("known placeholder");
                let tried = queue.pop().expect("a candidate left");
                if let Some(first) = error.possible.first().filter(|p| **p != tried) {
                    *queue = vec![first.clone()];
                }
                advanced |= !queue.is_empty();
                if queue.is_empty() {
                    queue.push(tried);
                }
            }
            if !advanced {
                return Err(error.first);
            }
        }
    }

    /// Every argument the usage line of the subcommand requires is given.
    fn check_required(&self, args: &[String]) -> Result<(), String> {
        let (path, help) = self.path(args);
        let rest = &args[path.len()..];
        if rest.iter().any(|a| matches!(a.as_str(), "--help" | "-h")) {
            return Ok(());
        }
        let mut positionals = 0;
        let mut iter = rest.iter();
        while let Some(arg) = iter.next() {
            if arg.starts_with('-') && arg != "-" {
                if !arg.contains('=') && help.option(arg).is_some_and(|o| o.takes_value) {
                    iter.next();
                }
            } else {
                positionals += 1;
            }
        }
        let given = |flag: &str| {
            rest.iter()
                .any(|a| a == flag || a.starts_with(&format!("{flag}=")))
        };
        let mut problems = Vec::new();
        for usage in &help.usages {
            let mut missing = Vec::new();
            let mut needed_positionals = 0;
            let mut tokens = usage.iter().peekable();
            while let Some(token) = tokens.next() {
                if let Some(group) = token.strip_prefix('<').filter(|g| g.starts_with('-')) {
                    let any = group
                        .trim_end_matches('>')
                        .split('|')
                        .any(|f| given(f.split_whitespace().next().unwrap_or(f)));
                    if !any {
                        missing.push(token.clone());
                    }
                } else if token.starts_with('-') {
                    if tokens.peek().is_some_and(|v| v.starts_with('<')) {
                        tokens.next();
                    }
                    let short = help
                        .option(token)
                        .and_then(|o| o.short)
                        .map(|s| format!("-{s}"));
                    if !given(token) && !short.is_some_and(|s| given(&s)) {
                        missing.push(token.clone());
                    }
                } else if token == "<COMMAND>" {
                    // `path` would have gone down into a subcommand that was given.
                    missing.push("a subcommand".into());
                } else if token.starts_with('<') {
                    needed_positionals += 1;
                }
            }
            if needed_positionals > positionals {
                missing.push(format!(
                    "{} positional argument(s)",
                    needed_positionals - positionals
                ));
            }
            if missing.is_empty() {
                return Ok(());
            }
            problems.push(missing.join(", "));
        }
        Err(format!(
            "missing required {} (usage: {} {} {})",
            problems.join(" or "),
            self.name,
            path.join(" "),
            help.usages.first().map(|u| u.join(" ")).unwrap_or_default()
        ))
    }
}

/// The placeholder numbers in `args`.
fn holes_in(args: &[String]) -> Vec<usize> {
    let mut out = Vec::new();
    for arg in args {
        let mut parts = arg.split(HOLE);
        parts.next();
        while let Some(number) = parts.next() {
            out.push(number.parse().expect("numbered placeholder"));
            parts.next();
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// `arg` with each placeholder replaced by its chosen value.
fn fill(arg: &str, choice: &HashMap<usize, String>) -> String {
    let mut out = String::new();
    for (i, part) in arg.split(HOLE).enumerate() {
        if i % 2 == 0 {
            out.push_str(part);
        } else {
            let number: usize = part.parse().expect("numbered placeholder");
            out.push_str(&choice[&number]);
        }
    }
    out
}

/// Reads a clap help text: subcommands, options, and the usage lines after `bin path`.
fn parse_help(text: &str, bin: &str, path: &[String]) -> Help {
    let mut help = Help {
        subcommands: Vec::new(),
        options: Vec::new(),
        usages: Vec::new(),
    };
    let prefix: Vec<&str> = std::iter::once(bin)
        .chain(path.iter().map(String::as_str))
        .collect();
    let mut section = "";
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("Usage:") {
            section = "Usage";
            push_usage(&mut help, rest, &prefix);
            continue;
        }
        if !line.starts_with(' ') && line.ends_with(':') {
            section = line.trim_end_matches(':');
            continue;
        }
        if line.trim().is_empty() {
            if section == "Usage" {
                section = "";
            }
            continue;
        }
        match section {
            "Usage" => push_usage(&mut help, line, &prefix),
            "Commands" => {
                let indent = line.len() - line.trim_start().len();
                if indent == 2
                    && let Some(name) = line.split_whitespace().next()
                {
                    help.subcommands.push(name.trim_end_matches(',').into());
                }
            }
            "Options" | "Arguments" => {
                let trimmed = line.trim_start();
                if trimmed.starts_with('-') {
                    help.options.push(parse_option(trimmed));
                }
            }
            _ => {}
        }
    }
    help
}

/// One usage line: the tokens after `bin path`, brackets dropped with what they hold.
fn push_usage(help: &mut Help, line: &str, prefix: &[&str]) {
    let words: Vec<&str> = line.split_whitespace().collect();
    if words.len() < prefix.len() || words[..prefix.len()] != *prefix {
        return;
    }
    let mut tokens = Vec::new();
    let mut depth = 0i32;
    let mut group = String::new();
    for word in &words[prefix.len()..] {
        let opens = word.matches(['[']).count() as i32;
        let closes = word.matches([']']).count() as i32;
        if depth == 0 && opens == 0 {
            // `<--a|--b>` (one of a required group) is kept as one token.
            if word.starts_with("<-") && !word.ends_with('>') {
                group = (*word).to_owned();
                continue;
            }
            if !group.is_empty() {
                group.push(' ');
                group.push_str(word);
                if word.ends_with('>') {
                    tokens.push(std::mem::take(&mut group));
                }
                continue;
            }
            tokens.push((*word).to_owned());
        }
        depth += opens - closes;
    }
    help.usages.push(tokens);
}

/// `-o, --output <OUTPUT>  description` or `--watch  description`.
fn parse_option(line: &str) -> Opt {
    let mut opt = Opt {
        long: None,
        short: None,
        takes_value: false,
    };
    for word in line.split_whitespace() {
        let word = word.trim_end_matches(',');
        if let Some(long) = word.strip_prefix("--") {
            let (name, value) = long.split_once('=').unwrap_or((long, ""));
            opt.long = Some(name.into());
            opt.takes_value |= !value.is_empty();
        } else if let Some(short) = word.strip_prefix('-') {
            opt.short = short.chars().next();
        } else if word.starts_with('<') || word.starts_with("[<") {
            opt.takes_value = true;
        } else {
            break;
        }
    }
    opt
}
