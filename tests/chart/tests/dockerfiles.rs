//! Static checks of Dockerfile.controller, Dockerfile.agent and .dockerignore. Docker is not
//! available where the suite runs, so the images are not built here; these checks only hold
//! the files to their promises: multi-stage, pinned base images, nothing but the binary in the
//! final stage, non-root controller, entrypoints the chart relies on, and a build context that
//! keeps every workspace member.

use couchestor_testsupport::workspace_root;

#[derive(Debug, Default)]
struct Stage {
    from: String,
    name: Option<String>,
    instructions: Vec<(String, String)>,
}

/// Splits a Dockerfile into stages of (instruction, arguments), joining continued lines.
fn parse(file: &str) -> Vec<Stage> {
    let text = std::fs::read_to_string(workspace_root().join(file)).unwrap();
    let mut logical = Vec::new();
    let mut cur = String::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('#') || t.is_empty() {
            continue;
        }
        if let Some(head) = t.strip_suffix('\\') {
            cur.push_str(head);
            cur.push(' ');
        } else {
            cur.push_str(t);
            logical.push(std::mem::take(&mut cur));
        }
    }
    let mut stages: Vec<Stage> = Vec::new();
    for l in logical {
        let (ins, args) = l.split_once(char::is_whitespace).unwrap_or((&l, ""));
        let ins = ins.to_ascii_uppercase();
        let args = args.trim().to_string();
        if ins == "FROM" {
            let mut words = args.split_whitespace();
            let from = words.next().unwrap().to_string();
            let name = match (words.next(), words.next()) {
                (Some(a), Some(n)) if a.eq_ignore_ascii_case("as") => Some(n.to_string()),
                _ => None,
            };
            stages.push(Stage {
                from,
                name,
                ..Default::default()
            });
        } else {
            stages
                .last_mut()
                .unwrap_or_else(|| panic!("{file}: {ins} before FROM"))
                .instructions
                .push((ins, args));
        }
    }
    stages
}

/// `image:tag` or `image:tag@sha256:<64 hex>`, never tagless. A builder tag must name an
/// exact version; a runtime on distroless's rolling tags (`latest`, `nonroot`) must either
/// carry a digest or the file must say plainly that it is not digest-pinned.
fn assert_pinned(file: &str, image: &str, builder: bool) {
    let (name, digest) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (image, None),
    };
    if let Some(d) = digest {
        let hex = d
            .strip_prefix("sha256:")
            .unwrap_or_else(|| panic!("{file}: {image}"));
        assert!(
            hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit()),
            "{file}: malformed digest in {image}"
        );
    }
    let last = name.rsplit('/').next().unwrap();
    let tag = last
        .split_once(':')
        .map(|(_, t)| t)
        .unwrap_or_else(|| panic!("{file}: {image} has no tag"));
    if builder {
        assert!(
            tag.split(['.', '-']).take(3).all(|p| !p.is_empty())
                && tag.chars().next().unwrap().is_ascii_digit()
                && tag.matches('.').count() == 2,
            "{file}: builder {image} is not an exact version tag"
        );
    } else if digest.is_none() {
        let text = std::fs::read_to_string(workspace_root().join(file)).unwrap();
        assert!(
            text.contains("NOT pinned by digest") || text.contains("not pinned by digest"),
            "{file}: {image} is a rolling tag without a digest and the file does not say so"
        );
    }
}

fn check(file: &str, package: &str, binary_path: &str) -> Stage {
    let stages = parse(file);
    assert!(stages.len() >= 2, "{file}: {} stage(s)", stages.len());
    for (i, s) in stages.iter().enumerate() {
        assert_pinned(file, &s.from, i + 1 < stages.len());
    }
    let builder = &stages[0];
    let builder_name = builder.name.clone().expect("the builder stage is named");
    assert!(
        builder.from.contains("rust:"),
        "{file}: builder {}",
        builder.from
    );
    let build = builder
        .instructions
        .iter()
        .find(|(i, a)| i == "RUN" && a.contains("cargo build"))
        .unwrap_or_else(|| panic!("{file}: no cargo build"));
    assert!(build.1.contains("--locked") && build.1.contains("--release"));
    assert!(
        build.1.contains(&format!("-p {package}")),
        "{file}: {}",
        build.1
    );
    let manifest = std::fs::read_to_string(
        workspace_root()
            .join(package.trim_start_matches("couchestor-"))
            .join("Cargo.toml"),
    )
    .unwrap();
    assert!(manifest.contains(&format!("name = \"{package}\"")));

    let last = stages.into_iter().last().unwrap();
    assert!(
        last.from.starts_with("gcr.io/distroless/"),
        "{file}: runtime base {}",
        last.from
    );
    for (i, a) in &last.instructions {
        assert!(
            matches!(
                i.as_str(),
                "COPY" | "USER" | "EXPOSE" | "ENTRYPOINT" | "CMD" | "LABEL"
            ),
            "{file}: {i} {a} in the final stage (it must only receive the binary)"
        );
        if i == "COPY" {
            assert!(
                a.starts_with(&format!("--from={builder_name} ")),
                "{file}: final-stage COPY not from the builder: {a}"
            );
            assert!(a.ends_with(binary_path), "{file}: {a}");
        }
    }
    let entrypoint = last
        .instructions
        .iter()
        .find(|(i, _)| i == "ENTRYPOINT")
        .unwrap_or_else(|| panic!("{file}: no ENTRYPOINT"));
    let ep: Vec<String> = serde_json::from_str(&entrypoint.1).expect("exec-form ENTRYPOINT");
    assert_eq!(ep, [binary_path]);
    last
}

#[test]
fn controller_dockerfile_is_multistage_pinned_and_non_root() {
    let last = check(
        "Dockerfile.controller",
        "couchestor-controller",
        "/usr/local/bin/couchestor-controller",
    );
    assert!(last.from.contains(":nonroot"), "{}", last.from);
    let user = last
        .instructions
        .iter()
        .rfind(|(i, _)| i == "USER")
        .expect("USER in the final stage");
    assert!(
        user.1 == "nonroot:nonroot" || user.1 == "65532:65532" || user.1 == "nonroot",
        "USER {}",
        user.1
    );
    let cmd = last.instructions.iter().find(|(i, _)| i == "CMD").unwrap();
    assert_eq!(cmd.1, r#"["run"]"#);
}

#[test]
fn agent_dockerfile_is_multistage_and_pinned() {
    // The path is the one the chart's exec probe calls.
    let probe =
        std::fs::read_to_string(workspace_root().join("charts/couchestor/templates/agent.yaml"))
            .unwrap();
    assert!(probe.contains("\"/usr/local/bin/couchestor-agent\" \"health\""));
    check(
        "Dockerfile.agent",
        "couchestor-agent",
        "/usr/local/bin/couchestor-agent",
    );
}

#[test]
fn dockerignore_keeps_what_the_build_needs() {
    let root = workspace_root();
    let ignore = std::fs::read_to_string(root.join(".dockerignore")).unwrap();
    let patterns: Vec<&str> = ignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    assert!(patterns.contains(&"target/"), "target/ must not be sent");
    assert!(patterns.contains(&".git/"));
    // Every workspace member and every file compiled in with include_str! stays in the context.
    let cargo = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let members = cargo
        .split("members = [")
        .nth(1)
        .unwrap()
        .split(']')
        .next()
        .unwrap();
    let mut needed: Vec<String> = members
        .split(',')
        .map(|m| m.trim().trim_matches('"').to_string())
        .filter(|m| !m.is_empty())
        .collect();
    needed.extend(["Cargo.lock".into(), "deploy/crds/crds.yaml".into()]);
    for path in needed {
        for p in &patterns {
            let p = p.trim_end_matches('/');
            assert!(
                !(path == p || path.starts_with(&format!("{p}/"))),
                ".dockerignore pattern {p} excludes {path}"
            );
        }
    }
}
