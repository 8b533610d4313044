//! The parts of a Markdown file the checks read: fenced code blocks, inline code spans and
//! link targets, each with its line number.

/// A fenced code block.
pub struct Block {
    /// The info string's first word (`sh`, `yaml`, ...); empty when there is none.
    pub lang: String,
    /// Line number (1-based) of each content line, with its text.
    pub lines: Vec<(usize, String)>,
}

/// An inline code span (`` `like this` ``) of prose, spaces normalised.
pub struct Span {
    /// Line (1-based) where the span starts.
    pub line: usize,
    /// Its text.
    pub text: String,
}

/// A Markdown link target (`[text](target)`) of prose.
pub struct Link {
    /// Line (1-based) of the link.
    pub line: usize,
    /// The target as written.
    pub target: String,
}

/// Everything read from one file.
#[derive(Default)]
pub struct Parsed {
    /// Fenced code blocks.
    pub blocks: Vec<Block>,
    /// Inline code spans.
    pub spans: Vec<Span>,
    /// Link targets.
    pub links: Vec<Link>,
    /// GitHub anchors of the headings (`## Health checks` -> `health-checks`).
    pub anchors: Vec<String>,
}

/// Splits `text` into code blocks and prose paragraphs and reads each.
pub fn parse(text: &str) -> Parsed {
    let mut parsed = Parsed::default();
    let mut fence: Option<(String, Block)> = None;
    let mut paragraph: Vec<(usize, &str)> = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let trimmed = line.trim_start();
        if let Some((marker, block)) = &mut fence {
            if trimmed.starts_with(marker.as_str()) && trimmed.trim_matches(['`', '~']).is_empty() {
                let (_, block) = fence.take().expect("inside a fence");
                parsed.blocks.push(block);
            } else {
                block.lines.push((number, line.to_owned()));
            }
            continue;
        }
        let marker: String = trimmed
            .chars()
            .take_while(|&c| c == '`' || c == '~')
            .collect();
        if marker.len() >= 3 && marker.chars().all(|c| c == marker.chars().next().unwrap()) {
            read_paragraph(&paragraph, &mut parsed);
            paragraph.clear();
            let lang = trimmed[marker.len()..]
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_owned();
            let block = Block {
                lang,
                lines: Vec::new(),
            };
            fence = Some((marker, block));
            continue;
        }
        if trimmed.is_empty() {
            read_paragraph(&paragraph, &mut parsed);
            paragraph.clear();
            continue;
        }
        let level = trimmed.chars().take_while(|&c| c == '#').count();
        if (1..=6).contains(&level) && trimmed[level..].starts_with(' ') {
            parsed.anchors.push(anchor(trimmed[level..].trim()));
        }
        paragraph.push((number, line));
    }
    read_paragraph(&paragraph, &mut parsed);
    parsed
}

/// GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens.
pub fn anchor(title: &str) -> String {
    title
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// Code spans and links of one paragraph (spans may continue on the next line).
fn read_paragraph(lines: &[(usize, &str)], parsed: &mut Parsed) {
    let Some(&(first, _)) = lines.first() else {
        return;
    };
    let text: String = lines.iter().map(|(_, l)| *l).collect::<Vec<_>>().join("\n");
    let line_at = |byte: usize| first + text[..byte].matches('\n').count();
    let mut prose = String::new();
    let mut rest = 0;
    while let Some(open) = text[rest..].find('`').map(|i| rest + i) {
        let ticks = text[open..].chars().take_while(|&c| c == '`').count();
        let after = open + ticks;
        let closing = "`".repeat(ticks);
        let close = text[after..]
            .match_indices(&closing)
            .map(|(i, _)| after + i)
            .find(|&i| !text[i + ticks..].starts_with('`'));
        let Some(close) = close else {
            break;
        };
        prose.push_str(&text[rest..open]);
        let span = text[after..close].split_whitespace().collect::<Vec<_>>();
        parsed.spans.push(Span {
            line: line_at(open),
            text: span.join(" "),
        });
        rest = close + ticks;
    }
    prose.push_str(&text[rest..]);
    // Links in the prose without its code spans; line numbers from the full text.
    let mut from = 0;
    while let Some(i) = prose[from..].find("](").map(|i| from + i) {
        let start = i + 2;
        let Some(len) = prose[start..].find(')') else {
            break;
        };
        let target = prose[start..start + len].trim().to_owned();
        let line = text
            .find(&format!("]({target})"))
            .map(line_at)
            .unwrap_or(first);
        parsed.links.push(Link { line, target });
        from = start + len;
    }
}
