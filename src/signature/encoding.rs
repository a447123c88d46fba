//! Strict decoders for the two signature encodings: exactly 32 bytes, one canonical spelling.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

/// A decoded HMAC-SHA256 tag.
pub type Tag = [u8; 32];

/// Decodes exactly 64 lowercase hex digits. Uppercase is refused so that each tag has one
/// spelling: what the grammar accepts is exactly what `sign` renders.
#[must_use]
pub fn decode_hex_tag(text: &[u8]) -> Option<Tag> {
    let text: &[u8; 64] = text.try_into().ok()?;
    let mut tag = [0u8; 32];
    // One pass, and an invalid digit is noticed once at the end rather than by a branch per
    // byte. This is on every request's path; `hex::decode_to_slice` plus a separate digit
    // check took about twice as long (cargo bench --bench core, header_parse).
    let mut invalid = 0u8;
    for (byte, pair) in tag.iter_mut().zip(text.chunks_exact(2)) {
        let (high, low) = match pair {
            [high, low] => (lower_hex_value(*high), lower_hex_value(*low)),
            _ => (0xff, 0xff),
        };
        invalid |= (high | low) & 0xf0;
        *byte = (high << 4) | (low & 0x0f);
    }
    (invalid == 0).then_some(tag)
}

/// A lowercase hex digit's value; 0xff for any other byte.
fn lower_hex_value(byte: u8) -> u8 {
    match byte {
        b'0'..=b'9' => byte - b'0',
        b'a'..=b'f' => byte - b'a' + 10,
        _ => 0xff,
    }
}

/// Decodes standard padded base64 that yields exactly 32 bytes (44 characters, one `=`).
/// The base64 crate refuses non-canonical trailing bits, so each tag has one spelling.
#[must_use]
pub fn decode_base64_tag(text: &[u8]) -> Option<Tag> {
    if text.len() != 44 {
        return None;
    }
    let bytes = STANDARD.decode(text).ok()?;
    bytes.try_into().ok()
}

/// Renders a tag as lowercase hex.
#[must_use]
pub fn hex_tag(tag: &Tag) -> String {
    hex::encode(tag)
}

/// Renders a tag as standard padded base64.
#[must_use]
pub fn base64_tag(tag: &Tag) -> String {
    STANDARD.encode(tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_tags_are_exactly_64_lowercase_digits() {
        let good = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
        let tag = decode_hex_tag(good.as_bytes()).expect("valid");
        assert_eq!(hex_tag(&tag), good);
        assert!(decode_hex_tag(good.to_uppercase().as_bytes()).is_none());
        assert!(decode_hex_tag(&good.as_bytes()[..63]).is_none());
        assert!(decode_hex_tag(&good.as_bytes()[..8]).is_none());
        assert!(decode_hex_tag(b"").is_none());
        assert!(decode_hex_tag(format!("{good}00").as_bytes()).is_none());
        assert!(decode_hex_tag(format!("{}g", &good[..63]).as_bytes()).is_none());
    }

    #[test]
    fn base64_tags_are_canonical_and_32_bytes() {
        let good = "tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";
        let tag = decode_base64_tag(good.as_bytes()).expect("valid");
        assert_eq!(base64_tag(&tag), good);
        // Same bytes but non-zero trailing bits: not the canonical spelling.
        assert!(decode_base64_tag(b"tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkx=").is_none());
        assert!(decode_base64_tag(b"tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw").is_none());
        assert!(decode_base64_tag(b"").is_none());
        // 33 bytes of input decode to more than a tag.
        assert!(decode_base64_tag(b"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").is_none());
    }
}
