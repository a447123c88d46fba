//! Standard Webhooks 1.0 (and Svix): `webhook-id`, `webhook-timestamp` and
//! `webhook-signature: v1,<base64>[ v1,<base64>…]`, or the same three under `svix-` names.
//!
//! Grammar: the signature list is entries separated by single spaces; each entry is
//! `version "," value`. `v1` values are padded base64 of exactly 32 bytes; other versions
//! (`v1a` asymmetric signatures, future ones) are ignored. The id is 1–256 visible ASCII
//! characters. The timestamp is 1–10 digits.

use super::super::encoding::{base64_tag, decode_base64_tag, Tag};
use super::super::error::{Malformed, VerifyError};
use super::super::headers::{HeaderLookup, Lookup};
use super::{
    malformed, required, timestamp_header, visible_ascii, SignatureHeaders, MAX_SIGNATURES,
};

pub(super) const SIGNATURE: &str = "webhook-signature";
const ID: &str = "webhook-id";
const TIMESTAMP: &str = "webhook-timestamp";
const SVIX_SIGNATURE: &str = "svix-signature";
const SVIX_ID: &str = "svix-id";
const SVIX_TIMESTAMP: &str = "svix-timestamp";
const MAX_ID_LEN: usize = 256;
const MAX_ENTRIES: usize = 64;

/// Parses the three headers. The `webhook-` names win when a request carries both spellings,
/// so a request cannot mix an id from one set with a signature from the other.
pub(super) fn parse(headers: &dyn HeaderLookup) -> Result<SignatureHeaders<'_>, VerifyError> {
    let (id_name, ts_name, sig_name) = match headers.lookup(SIGNATURE) {
        Lookup::Missing if headers.lookup(SVIX_SIGNATURE) != Lookup::Missing => {
            (SVIX_ID, SVIX_TIMESTAMP, SVIX_SIGNATURE)
        }
        _ => (ID, TIMESTAMP, SIGNATURE),
    };
    let id = required(headers, id_name)?;
    let id = validate_id(id).map_err(|p| malformed(id_name, p))?;
    let timestamp = timestamp_header(headers, ts_name)?;
    let list = required(headers, sig_name)?;
    let tags = parse_signature_list(list).map_err(|p| malformed(sig_name, p))?;
    Ok(SignatureHeaders {
        timestamp: Some(timestamp),
        id: Some(id),
        tags,
    })
}

/// Checks a message id: 1 to 256 visible ASCII characters.
///
/// # Errors
/// [`Malformed::BadId`].
pub fn validate_id(id: &[u8]) -> Result<&str, Malformed> {
    if id.len() > MAX_ID_LEN || visible_ascii(id).is_err() {
        return Err(Malformed::BadId);
    }
    std::str::from_utf8(id).map_err(|_| Malformed::BadId)
}

/// Parses a space-separated `v1,<base64>` list.
///
/// # Errors
/// The [`Malformed`] reason for the first rule the list breaks.
pub fn parse_signature_list(list: &[u8]) -> Result<Vec<Tag>, Malformed> {
    if list.is_empty() {
        return Err(Malformed::Empty);
    }
    // Spaces separate entries; anything else outside visible ASCII is refused.
    if !list
        .iter()
        .all(|&b| b == b' ' || (0x21..=0x7e).contains(&b))
    {
        return Err(Malformed::InvalidCharacter);
    }
    let mut tags = Vec::new();
    for (index, entry) in list.split(|&b| b == b' ').enumerate() {
        if index >= MAX_ENTRIES {
            return Err(Malformed::TooManyElements(MAX_ENTRIES));
        }
        let comma = entry
            .iter()
            .position(|&b| b == b',')
            .ok_or(Malformed::BadElement)?;
        let (version, rest) = entry.split_at(comma);
        let value = rest.get(1..).unwrap_or_default();
        match version {
            b"" => return Err(Malformed::BadElement),
            b"v1" => {
                if tags.len() == MAX_SIGNATURES {
                    return Err(Malformed::TooManySignatures(MAX_SIGNATURES));
                }
                tags.push(decode_base64_tag(value).ok_or(Malformed::BadSignature {
                    field: "v1",
                    encoding: "padded base64",
                })?);
            }
            _ => {}
        }
    }
    if tags.is_empty() {
        return Err(Malformed::MissingField("v1"));
    }
    Ok(tags)
}

/// Renders `v1,<base64>` entries separated by spaces.
#[must_use]
pub fn render_signature_list(tags: &[Tag]) -> String {
    tags.iter()
        .map(|tag| format!("v1,{}", base64_tag(tag)))
        .collect::<Vec<_>>()
        .join(" ")
}

pub(super) fn render(timestamp: u64, id: &str, tags: &[Tag]) -> Vec<(String, String)> {
    vec![
        (ID.to_owned(), id.to_owned()),
        (TIMESTAMP.to_owned(), timestamp.to_string()),
        (SIGNATURE.to_owned(), render_signature_list(tags)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signature::HeaderList;

    const SIG: &str = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";

    #[test]
    fn lists_parse_in_order_and_ignore_other_versions() {
        let list = format!("v1a,abc {SIG} v2,xyz {SIG}");
        assert_eq!(
            parse_signature_list(list.as_bytes()).map(|t| t.len()),
            Ok(2)
        );
        let tags = parse_signature_list(SIG.as_bytes()).expect("valid");
        assert_eq!(render_signature_list(&tags), SIG);
    }

    #[test]
    fn bare_and_truncated_entries_are_malformed() {
        let bad = Malformed::BadSignature {
            field: "v1",
            encoding: "padded base64",
        };
        assert_eq!(parse_signature_list(b"v1,"), Err(bad));
        assert_eq!(parse_signature_list(b"v1,tZ1I4/hD"), Err(bad));
        assert_eq!(parse_signature_list(b"v1"), Err(Malformed::BadElement));
        assert_eq!(
            parse_signature_list(format!("{SIG}  {SIG}").as_bytes()),
            Err(Malformed::BadElement)
        );
        assert_eq!(
            parse_signature_list(b"v1a,abc"),
            Err(Malformed::MissingField("v1"))
        );
        assert_eq!(
            parse_signature_list(b"v1,\tabc"),
            Err(Malformed::InvalidCharacter)
        );
    }

    #[test]
    fn svix_names_are_accepted_and_webhook_names_win() {
        let mut svix = HeaderList::new();
        svix.push("svix-id", "msg_1");
        svix.push("svix-timestamp", "1614265330");
        svix.push("svix-signature", SIG);
        let parsed = parse(&svix).expect("svix");
        assert_eq!(parsed.id, Some("msg_1"));

        let mut both = svix.clone();
        both.push("webhook-signature", SIG);
        assert_eq!(
            parse(&both).err(),
            Some(VerifyError::MissingHeader("webhook-id".into()))
        );
    }

    #[test]
    fn ids_are_bounded_visible_ascii() {
        assert!(validate_id(b"msg_27UH4WbU6Z5A5EzD8u03UvzRbpk").is_ok());
        assert_eq!(validate_id(b""), Err(Malformed::BadId));
        assert_eq!(validate_id(b"msg 1"), Err(Malformed::BadId));
        assert_eq!(validate_id("msg_é".as_bytes()), Err(Malformed::BadId));
        assert_eq!(validate_id(&[b'a'; 257]), Err(Malformed::BadId));
    }
}
