//! Slack v0: `X-Slack-Signature: v0=<64 lowercase hex>` over `v0:<t>:<body>`, with the
//! timestamp in `X-Slack-Request-Timestamp` (1–10 digits).

use super::super::encoding::{hex_tag, Tag};
use super::super::error::{Malformed, VerifyError};
use super::super::headers::HeaderLookup;
use super::{malformed, prefixed_hex_tag, required, timestamp_header, SignatureHeaders};

pub(super) const SIGNATURE: &str = "X-Slack-Signature";
const TIMESTAMP: &str = "X-Slack-Request-Timestamp";

pub(super) fn parse<'h>(
    headers: &'h dyn HeaderLookup,
    signature_header: &str,
) -> Result<SignatureHeaders<'h>, VerifyError> {
    let value = required(headers, signature_header)?;
    let tag = parse_value(value).map_err(|p| malformed(signature_header, p))?;
    let timestamp = timestamp_header(headers, TIMESTAMP)?;
    Ok(SignatureHeaders {
        timestamp: Some(timestamp),
        id: None,
        tags: vec![tag],
    })
}

/// Parses `v0=<64 lowercase hex>`.
///
/// # Errors
/// The [`Malformed`] reason.
pub fn parse_value(value: &[u8]) -> Result<Tag, Malformed> {
    prefixed_hex_tag(value, "v0")
}

/// Renders `v0=<hex>`.
#[must_use]
pub fn render_value(tag: &Tag) -> String {
    format!("v0={}", hex_tag(tag))
}

pub(super) fn render(
    signature_header: &str,
    timestamp: u64,
    tags: &[Tag],
) -> Vec<(String, String)> {
    let mut headers = vec![(TIMESTAMP.to_owned(), timestamp.to_string())];
    if let Some(tag) = tags.first() {
        headers.push((signature_header.to_owned(), render_value(tag)));
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signature::HeaderList;

    #[test]
    fn the_timestamp_header_is_required_and_strict() {
        let hex = "a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";
        let mut headers = HeaderList::new();
        headers.push(SIGNATURE, format!("v0={hex}"));
        assert_eq!(
            parse(&headers, SIGNATURE).err(),
            Some(VerifyError::MissingHeader(TIMESTAMP.into()))
        );
        headers.push(TIMESTAMP, "-1");
        assert_eq!(
            parse(&headers, SIGNATURE).err(),
            Some(malformed(TIMESTAMP, Malformed::BadTimestamp(TIMESTAMP)))
        );
        assert!(parse_value(b"v0=").is_err());
        assert_eq!(
            parse_value(hex.as_bytes()),
            Err(Malformed::MissingField("v0"))
        );
    }
}
