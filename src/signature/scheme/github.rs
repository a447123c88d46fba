//! GitHub: `X-Hub-Signature-256: sha256=<64 lowercase hex>` over the raw body. There is no
//! timestamp; the optional `X-GitHub-Delivery` id (not covered by the MAC) is passed on.

use super::super::encoding::{hex_tag, Tag};
use super::super::error::{Malformed, VerifyError};
use super::super::headers::HeaderLookup;
use super::standard::validate_id;
use super::{malformed, optional, prefixed_hex_tag, required, SignatureHeaders};

pub(super) const SIGNATURE: &str = "X-Hub-Signature-256";
const DELIVERY: &str = "X-GitHub-Delivery";

pub(super) fn parse<'h>(
    headers: &'h dyn HeaderLookup,
    signature_header: &str,
) -> Result<SignatureHeaders<'h>, VerifyError> {
    let value = required(headers, signature_header)?;
    let tag = parse_value(value).map_err(|p| malformed(signature_header, p))?;
    let id = optional(headers, DELIVERY)?
        .map(|id| validate_id(id).map_err(|p| malformed(DELIVERY, p)))
        .transpose()?;
    Ok(SignatureHeaders {
        timestamp: None,
        id,
        tags: vec![tag],
    })
}

/// Parses `sha256=<64 lowercase hex>`.
///
/// # Errors
/// The [`Malformed`] reason.
pub fn parse_value(value: &[u8]) -> Result<Tag, Malformed> {
    prefixed_hex_tag(value, "sha256")
}

/// Renders `sha256=<hex>`.
#[must_use]
pub fn render_value(tag: &Tag) -> String {
    format!("sha256={}", hex_tag(tag))
}

pub(super) fn render(
    signature_header: &str,
    id: Option<&str>,
    tags: &[Tag],
) -> Vec<(String, String)> {
    let mut headers: Vec<(String, String)> = tags
        .first()
        .map(|tag| (signature_header.to_owned(), render_value(tag)))
        .into_iter()
        .collect();
    if let Some(id) = id {
        headers.push((DELIVERY.to_owned(), id.to_owned()));
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_sha256_prefix_with_full_hex_parses() {
        let hex = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        let tag = parse_value(format!("sha256={hex}").as_bytes()).expect("valid");
        assert_eq!(render_value(&tag), format!("sha256={hex}"));
        assert_eq!(
            parse_value(hex.as_bytes()),
            Err(Malformed::MissingField("sha256"))
        );
        assert!(parse_value(b"sha256=").is_err());
        assert!(parse_value(format!("sha1={hex}").as_bytes()).is_err());
        assert!(parse_value(format!("sha256={}", hex.to_uppercase()).as_bytes()).is_err());
    }
}
