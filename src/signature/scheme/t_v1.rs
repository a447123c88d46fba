//! The `t=<unix>,v1=<hex>[,v1=<hex>…]` grammar shared by the `perf` and `stripe` schemes.
//!
//! Grammar (every byte visible ASCII; no spaces anywhere):
//! `value = element *("," element)`, `element = key "=" val`, `key = 1*(visible except "=" ",")`.
//! `t` appears exactly once and is 1–10 digits. `v1` appears 1 to 16 times, each exactly 64
//! lowercase hex digits. Other keys (Stripe's test-mode `v0`, future versions) are ignored.

use super::super::encoding::{decode_hex_tag, hex_tag, Tag};
use super::super::error::Malformed;
use super::super::timestamp::parse_unix_seconds;
use super::{visible_ascii, Timestamp, MAX_SIGNATURES};

/// More elements than this is not a header any sender writes; bounding them bounds the work.
const MAX_ELEMENTS: usize = 64;

/// A parsed `t=,v1=` header value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TV1Header<'h> {
    /// The `t` field.
    pub timestamp: Timestamp<'h>,
    /// The decoded `v1` tags, in order.
    pub tags: Vec<Tag>,
}

/// Parses a `t=,v1=` header value.
///
/// # Errors
/// The [`Malformed`] reason for the first rule the value breaks.
pub fn parse_value(value: &[u8]) -> Result<TV1Header<'_>, Malformed> {
    visible_ascii(value)?;
    let mut timestamp = None;
    let mut tags = Vec::new();
    for (index, element) in value.split(|&b| b == b',').enumerate() {
        if index >= MAX_ELEMENTS {
            return Err(Malformed::TooManyElements(MAX_ELEMENTS));
        }
        let eq = element
            .iter()
            .position(|&b| b == b'=')
            .ok_or(Malformed::BadElement)?;
        let (key, rest) = element.split_at(eq);
        let val = rest.get(1..).unwrap_or_default();
        match key {
            b"" => return Err(Malformed::BadElement),
            b"t" => {
                if timestamp.is_some() {
                    return Err(Malformed::DuplicateField("t"));
                }
                let secs = parse_unix_seconds(val).ok_or(Malformed::BadTimestamp("t"))?;
                timestamp = Some(Timestamp { digits: val, secs });
            }
            b"v1" => {
                if tags.len() == MAX_SIGNATURES {
                    return Err(Malformed::TooManySignatures(MAX_SIGNATURES));
                }
                let tag = decode_hex_tag(val).ok_or(Malformed::BadSignature {
                    field: "v1",
                    encoding: "64 lowercase hex digits",
                })?;
                tags.push(tag);
            }
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(Malformed::MissingField("t"))?;
    if tags.is_empty() {
        return Err(Malformed::MissingField("v1"));
    }
    Ok(TV1Header { timestamp, tags })
}

/// Renders `t=<timestamp>,v1=<hex>…`.
#[must_use]
pub fn render_value(timestamp: u64, tags: &[Tag]) -> String {
    let mut out = format!("t={timestamp}");
    for tag in tags {
        out.push_str(",v1=");
        out.push_str(&hex_tag(tag));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIG: &str = "7054f74dae9f73e82b56ca73e8f81450097c698eeda0b00bb8728e89796baf2d";

    fn parse(text: &str) -> Result<TV1Header<'_>, Malformed> {
        parse_value(text.as_bytes())
    }

    #[test]
    fn a_plain_header_parses_and_renders_back() {
        let text = format!("t=1234567890,v1={SIG}");
        let parsed = parse(&text).expect("valid");
        assert_eq!(parsed.timestamp.secs, 1_234_567_890);
        assert_eq!(parsed.tags.len(), 1);
        assert_eq!(render_value(parsed.timestamp.secs, &parsed.tags), text);
    }

    #[test]
    fn unknown_keys_are_ignored_in_any_position() {
        let text = format!("v0={SIG},t=1,x=,v1={SIG},v2=zz");
        let parsed = parse(&text).expect("valid");
        assert_eq!(parsed.tags.len(), 1);
    }

    #[test]
    fn duplicate_t_is_rejected_whichever_comes_first() {
        assert_eq!(
            parse(&format!("t=1700000000,t=1600000000,v1={SIG}")),
            Err(Malformed::DuplicateField("t"))
        );
    }

    #[test]
    fn missing_fields_are_named() {
        assert_eq!(
            parse(&format!("v1={SIG}")),
            Err(Malformed::MissingField("t"))
        );
        assert_eq!(parse("t=1"), Err(Malformed::MissingField("v1")));
        assert_eq!(
            parse(&format!("t=1,v0={SIG}")),
            Err(Malformed::MissingField("v1"))
        );
    }

    #[test]
    fn truncated_empty_and_uppercase_signatures_are_malformed() {
        let bad = Malformed::BadSignature {
            field: "v1",
            encoding: "64 lowercase hex digits",
        };
        assert_eq!(parse("t=1,v1="), Err(bad));
        assert_eq!(parse("t=1,v1=7054f74d"), Err(bad));
        assert_eq!(parse(&format!("t=1,v1={}", &SIG[..63])), Err(bad));
        assert_eq!(parse(&format!("t=1,v1={}", SIG.to_uppercase())), Err(bad));
    }

    #[test]
    fn bad_timestamps_are_malformed() {
        for t in [
            "",
            "-1",
            "+123",
            "12345678901",
            "-9223372036854775808",
            "Infinity",
        ] {
            assert_eq!(
                parse(&format!("t={t},v1={SIG}")),
                Err(Malformed::BadTimestamp("t")),
                "t={t}"
            );
        }
        let long = "9".repeat(200);
        assert_eq!(
            parse(&format!("t={long},v1={SIG}")),
            Err(Malformed::BadTimestamp("t"))
        );
    }

    #[test]
    fn whitespace_non_ascii_and_bare_elements_are_malformed() {
        assert_eq!(
            parse(&format!("t=1, v1={SIG}")),
            Err(Malformed::InvalidCharacter)
        );
        assert_eq!(
            parse(&format!("t= 1,v1={SIG}")),
            Err(Malformed::InvalidCharacter)
        );
        assert_eq!(
            parse_value(b"t=1,v1=\xff"),
            Err(Malformed::InvalidCharacter)
        );
        assert_eq!(parse(&format!("t=1,v1{SIG}")), Err(Malformed::BadElement));
        assert_eq!(parse(&format!("t=1,,v1={SIG}")), Err(Malformed::BadElement));
        assert_eq!(parse(&format!("=1,v1={SIG}")), Err(Malformed::BadElement));
        assert_eq!(parse(""), Err(Malformed::Empty));
    }

    #[test]
    fn signature_count_is_capped() {
        let sixteen = vec![format!("v1={SIG}"); 16].join(",");
        assert_eq!(
            parse(&format!("t=1,{sixteen}")).map(|h| h.tags.len()),
            Ok(16)
        );
        let seventeen = vec![format!("v1={SIG}"); 17].join(",");
        assert_eq!(
            parse(&format!("t=1,{seventeen}")),
            Err(Malformed::TooManySignatures(16))
        );
        let thousand = vec![format!("v1={SIG}"); 1000].join(",");
        assert!(parse(&format!("t=1,{thousand}")).is_err());
        let many_unknown = vec!["x=1"; 100].join(",");
        assert_eq!(
            parse(&format!("t=1,v1={SIG},{many_unknown}")),
            Err(Malformed::TooManyElements(64))
        );
    }
}
