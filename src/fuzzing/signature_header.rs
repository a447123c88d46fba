//! `signature_header`: each scheme's header grammar. Input: one selector byte (mod 4 picks
//! `t=,v1=`, the Standard Webhooks list, GitHub's `sha256=` or Slack's `v0=`), then the header
//! value. Invariants: no panic; the parser accepts exactly what a plain reading of the
//! grammar written in README accepts (a second, independent implementation below); what
//! parses holds 1 to 16 tags, renders back to a header that re-parses to the same value, and
//! rendering is a fixed point.

use crate::signature::{
    parse_github_value, parse_signature_list, parse_slack_value, parse_t_v1_value,
    render_github_value, render_signature_list, render_slack_value, render_t_v1_value,
    MAX_SIGNATURES,
};

/// Runs the body on one input.
pub fn run(data: &[u8]) -> bool {
    let Some((selector, value)) = data.split_first() else {
        return false;
    };
    let (accepted, grammar) = match selector % 4 {
        0 => (t_v1(value), grammar::t_v1(value)),
        1 => (standard(value), grammar::standard(value)),
        2 => (
            one_tag(value, parse_github_value, render_github_value),
            grammar::prefixed_hex(value, "sha256"),
        ),
        _ => (
            one_tag(value, parse_slack_value, render_slack_value),
            grammar::prefixed_hex(value, "v0"),
        ),
    };
    assert_eq!(
        accepted, grammar,
        "the parser and the written grammar disagree on this value"
    );
    accepted
}

fn t_v1(value: &[u8]) -> bool {
    let Ok(parsed) = parse_t_v1_value(value) else {
        return false;
    };
    assert!((1..=MAX_SIGNATURES).contains(&parsed.tags.len()));
    assert!(value.iter().all(|b| (0x21..=0x7e).contains(b)));
    // The MAC covers the digits as sent, so they must be a slice of the value.
    assert!(super::is_within(value, parsed.timestamp.digits));
    let rendered = render_t_v1_value(parsed.timestamp.secs, &parsed.tags);
    let reparsed = parse_t_v1_value(rendered.as_bytes());
    let Ok(reparsed) = reparsed else {
        panic!("a rendered t=,v1= header does not re-parse: {reparsed:?}");
    };
    assert_eq!(reparsed.timestamp.secs, parsed.timestamp.secs);
    assert_eq!(reparsed.tags, parsed.tags);
    assert_eq!(
        render_t_v1_value(reparsed.timestamp.secs, &reparsed.tags),
        rendered
    );
    true
}

fn standard(value: &[u8]) -> bool {
    let Ok(tags) = parse_signature_list(value) else {
        return false;
    };
    assert!((1..=MAX_SIGNATURES).contains(&tags.len()));
    let rendered = render_signature_list(&tags);
    assert_eq!(parse_signature_list(rendered.as_bytes()).ok(), Some(tags));
    true
}

fn one_tag<T: PartialEq + std::fmt::Debug, E>(
    value: &[u8],
    parse: fn(&[u8]) -> Result<T, E>,
    render: fn(&T) -> String,
) -> bool {
    let Ok(tag) = parse(value) else {
        return false;
    };
    let rendered = render(&tag);
    // One tag has exactly one spelling: lowercase hex, one prefix, nothing else.
    assert_eq!(rendered.as_bytes(), value);
    assert_eq!(parse(rendered.as_bytes()).ok(), Some(tag));
    true
}

/// The grammars as README writes them, read as plainly as possible: slower and simpler than
/// the parsers, and sharing no code with them.
mod grammar {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;

    const MAX_ELEMENTS: usize = 64;
    const MAX_SIGNATURES: usize = 16;

    fn visible(text: &str) -> bool {
        text.bytes().all(|b| (0x21..=0x7e).contains(&b))
    }

    fn lower_hex_64(text: &str) -> bool {
        text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    }

    pub fn t_v1(value: &[u8]) -> bool {
        let Ok(text) = std::str::from_utf8(value) else {
            return false;
        };
        let elements: Vec<&str> = text.split(',').collect();
        if text.is_empty() || !visible(text) || elements.len() > MAX_ELEMENTS {
            return false;
        }
        let (mut t, mut v1) = (0, 0);
        for element in elements {
            let Some((key, val)) = element.split_once('=') else {
                return false;
            };
            match key {
                "" => return false,
                "t" if (1..=10).contains(&val.len()) && val.bytes().all(|b| b.is_ascii_digit()) => {
                    t += 1;
                }
                "v1" if lower_hex_64(val) => v1 += 1,
                "t" | "v1" => return false,
                _ => {}
            }
        }
        t == 1 && (1..=MAX_SIGNATURES).contains(&v1)
    }

    pub fn standard(value: &[u8]) -> bool {
        let Ok(text) = std::str::from_utf8(value) else {
            return false;
        };
        let entries: Vec<&str> = text.split(' ').collect();
        if text.is_empty() || !visible(&text.replace(' ', "!")) || entries.len() > MAX_ELEMENTS {
            return false;
        }
        let mut v1 = 0;
        for entry in entries {
            let Some((version, val)) = entry.split_once(',') else {
                return false;
            };
            match version {
                "" => return false,
                "v1" => {
                    // Canonical: decodes to 32 bytes and encodes back to the same text.
                    let canonical = STANDARD
                        .decode(val)
                        .ok()
                        .filter(|bytes| bytes.len() == 32)
                        .is_some_and(|bytes| STANDARD.encode(bytes) == val);
                    if !canonical {
                        return false;
                    }
                    v1 += 1;
                }
                _ => {}
            }
        }
        (1..=MAX_SIGNATURES).contains(&v1)
    }

    pub fn prefixed_hex(value: &[u8], prefix: &str) -> bool {
        std::str::from_utf8(value)
            .ok()
            .and_then(|text| text.strip_prefix(prefix))
            .and_then(|text| text.strip_prefix('='))
            .is_some_and(lower_hex_64)
    }
}
