//! Pure webhook signature verification: header grammars, timestamp tolerance and HMAC-SHA256.
//! No I/O, no clock (`now` is a parameter) and no HTTP framework, so the server, the CLI and
//! the fuzz targets all run exactly this code.

mod detect;
mod encoding;
mod error;
mod headers;
mod scheme;
mod secret;
mod sign;
mod timestamp;
mod verifier;

pub use detect::{detect, Detection, RawSecret};
pub use encoding::{decode_base64_tag, decode_hex_tag, Tag};
pub use error::{KeyError, Malformed, VerifyError};
pub use headers::{is_header_name, HeaderList, HeaderLookup, Lookup};
pub use scheme::{
    parse_github_value, parse_signature_list, parse_slack_value, parse_t_v1_value,
    render_github_value, render_signature_list, render_slack_value, render_t_v1_value, validate_id,
    Scheme, SignatureHeaders, TV1Header, Timestamp, UnknownScheme, MAX_SIGNATURES,
};
pub use secret::{HmacSha256, KeyReading, SecretKey, MIN_KEY_LEN};
pub use sign::{sign, sign_with_header, to_header_list, Delivery, SignError};
pub use timestamp::{
    age_secs, check_freshness, parse_unix_seconds, TimestampPolicy, Tolerance,
    DEFAULT_TOLERANCE_SECS, MAX_TOLERANCE_SECS,
};
pub use verifier::{Freshness, Verified, Verifier};
