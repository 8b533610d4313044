//! The parts of a Markdown file the checks read, as pulldown-cmark parses them (CommonMark
//! with GitHub's tables): fenced code blocks, inline code spans, link targets and heading
//! anchors, each with its line number.

use pulldown_cmark::{CodeBlockKind, Event, LinkType, Options, Parser, Tag, TagEnd};

/// A fenced code block.
pub struct Block {
    /// The info string's first word (`sh`, `yaml`, ...); empty when there is none.
    pub lang: String,
    /// The anchor of the heading the block is under (`with-openssl`).
    pub section: String,
    /// Line number (1-based) of each content line, with its text.
    pub lines: Vec<(usize, String)>,
}

/// An inline code span (`` `like this` ``), spaces normalised, or a link target, with the
/// line (1-based) where it starts.
pub struct Located {
    /// Line of the span or link.
    pub line: usize,
    /// The span's text or the link's target as written.
    pub text: String,
}

/// Everything read from one file.
#[derive(Default)]
pub struct Parsed {
    /// Fenced code blocks.
    pub blocks: Vec<Block>,
    /// Inline code spans.
    pub spans: Vec<Located>,
    /// Link and image targets (e-mail autolinks left out).
    pub links: Vec<Located>,
    /// Anchors of the headings, by [`anchor`].
    pub anchors: Vec<String>,
}

/// Reads `text`.
pub fn parse(text: &str) -> Parsed {
    let line_at = |byte: usize| 1 + text[..byte].matches('\n').count();
    let mut parsed = Parsed::default();
    // The open fenced block (language, fence line, content) or heading (its text).
    let mut block: Option<(String, usize, String)> = None;
    let mut heading: Option<String> = None;
    let options = Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH;
    for (event, range) in Parser::new_ext(text, options).into_offset_iter() {
        match event {
            Event::Start(Tag::CodeBlock(CodeBlockKind::Fenced(info))) => {
                let lang = info.split_whitespace().next().unwrap_or_default();
                block = Some((lang.into(), line_at(range.start), String::new()));
            }
            Event::End(TagEnd::CodeBlock) => {
                if let Some((lang, fence, content)) = block.take() {
                    parsed.blocks.push(Block {
                        lang,
                        section: parsed.anchors.last().cloned().unwrap_or_default(),
                        lines: (fence + 1..)
                            .zip(content.lines().map(String::from))
                            .collect(),
                    });
                }
            }
            Event::Start(Tag::Heading { .. }) => heading = Some(String::new()),
            Event::End(TagEnd::Heading(_)) => {
                let title = heading.take().unwrap_or_default();
                parsed.anchors.push(anchor(&title, &parsed.anchors));
            }
            Event::Text(t) => match (&mut block, &mut heading) {
                (Some((_, _, content)), _) => content.push_str(&t),
                (None, Some(title)) => title.push_str(&t),
                _ => {}
            },
            Event::Code(code) => {
                if let Some(title) = &mut heading {
                    title.push_str(&code);
                }
                let text = code.split_whitespace().collect::<Vec<_>>().join(" ");
                let line = line_at(range.start);
                parsed.spans.push(Located { line, text });
            }
            Event::Start(
                Tag::Link {
                    link_type,
                    dest_url,
                    ..
                }
                | Tag::Image {
                    link_type,
                    dest_url,
                    ..
                },
            ) if link_type != LinkType::Email => parsed.links.push(Located {
                line: line_at(range.start),
                text: dest_url.into_string(),
            }),
            _ => {}
        }
    }
    parsed
}

/// GitHub's anchor of a heading: lower case, punctuation other than `-` and `_` dropped,
/// spaces to hyphens, and `-1`, `-2`, ... after a title already in `earlier`.
pub fn anchor(title: &str, earlier: &[String]) -> String {
    let slug: String = title
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect();
    (0..)
        .map(|n| match n {
            0 => slug.clone(),
            n => format!("{slug}-{n}"),
        })
        .find(|candidate| !earlier.contains(candidate))
        .expect("an unused anchor")
}
