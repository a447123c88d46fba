//! Why a delivery failed verification, and why a verifier could not be built. Variants name
//! the fault; none carries input bytes, a secret or an expected MAC.

use thiserror::Error;

/// Why a delivery is not accepted as authentic and fresh.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum VerifyError {
    /// A header the scheme needs was not sent.
    #[error("missing header {0}")]
    MissingHeader(String),
    /// A header was sent but does not follow the scheme's grammar.
    #[error("malformed header {header}: {problem}")]
    MalformedHeader {
        /// The header's name as configured (never its value).
        header: String,
        /// What is wrong with it.
        problem: Malformed,
    },
    /// The signature is valid but the timestamp is older than the tolerance.
    #[error("timestamp too old ({age} s, tolerance {tolerance} s)")]
    TimestampTooOld {
        /// Seconds between the timestamp and now.
        age: u64,
        /// The tolerance in force.
        tolerance: u64,
    },
    /// The signature is valid but the timestamp is further in the future than the tolerance.
    #[error("timestamp in the future ({ahead} s ahead, tolerance {tolerance} s)")]
    TimestampInFuture {
        /// Seconds between now and the timestamp.
        ahead: u64,
        /// The tolerance in force.
        tolerance: u64,
    },
    /// No signature in the header matches any configured secret.
    #[error("no valid signature")]
    NoValidSignature,
}

impl VerifyError {
    /// A stable machine-readable code, used in JSON error bodies and metrics labels.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::MissingHeader(_) => "missing_header",
            Self::MalformedHeader { .. } => "malformed_header",
            Self::TimestampTooOld { .. } => "timestamp_too_old",
            Self::TimestampInFuture { .. } => "timestamp_in_future",
            Self::NoValidSignature => "invalid_signature",
        }
    }

    /// Whether the fault is in the request's shape (a 400) rather than its authenticity or
    /// freshness (a 401).
    #[must_use]
    pub fn is_malformed(&self) -> bool {
        matches!(self, Self::MissingHeader(_) | Self::MalformedHeader { .. })
    }
}

/// What is wrong with a header that was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum Malformed {
    /// The header was sent more than once.
    #[error("sent more than once")]
    RepeatedHeader,
    /// The value is empty.
    #[error("empty value")]
    Empty,
    /// The value holds a space, a control character or a byte outside ASCII.
    #[error("contains a space, a control character or a non-ASCII byte")]
    InvalidCharacter,
    /// An element is empty or lacks its separator (`=` or `,`).
    #[error("an element is empty or has no separator")]
    BadElement,
    /// A required field is absent.
    #[error("field `{0}` is missing")]
    MissingField(&'static str),
    /// A field that may appear once appears again.
    #[error("field `{0}` appears more than once")]
    DuplicateField(&'static str),
    /// A timestamp field is not 1 to 10 ASCII digits.
    #[error("field `{0}` must be 1 to 10 ASCII digits")]
    BadTimestamp(&'static str),
    /// A signature does not decode to exactly 32 bytes in the scheme's encoding.
    #[error("field `{field}` must be a 32-byte signature in {encoding}")]
    BadSignature {
        /// The field (`v1`, `v0`, `sha256`).
        field: &'static str,
        /// The encoding the scheme requires.
        encoding: &'static str,
    },
    /// More signatures than a verifier considers.
    #[error("more than {0} signatures")]
    TooManySignatures(usize),
    /// More elements than the grammar allows.
    #[error("more than {0} elements")]
    TooManyElements(usize),
    /// A message id is not 1 to 256 visible ASCII characters.
    #[error("the id must be 1 to 256 visible ASCII characters")]
    BadId,
}

/// Why a verifier or signer could not be built from its configuration.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum KeyError {
    /// No secret was configured.
    #[error("no secret configured")]
    NoSecrets,
    /// A secret is empty.
    #[error("secret \"{name}\" is empty")]
    Empty {
        /// The secret's name (never its value).
        name: String,
    },
    /// A secret is shorter than the minimum.
    #[error("secret \"{name}\" is {len} bytes; at least {min} are required")]
    TooShort {
        /// The secret's name.
        name: String,
        /// Its length in bytes (of the key actually used, after any decoding).
        len: usize,
        /// The minimum.
        min: usize,
    },
    /// A Standard Webhooks secret is not `whsec_` followed by base64.
    #[error("secret \"{name}\" is not base64 after its whsec_ prefix")]
    NotBase64 {
        /// The secret's name.
        name: String,
    },
    /// The tolerance is outside the accepted range.
    #[error("tolerance must be 1 to {max} seconds, not {given}")]
    BadTolerance {
        /// The value given.
        given: u64,
        /// The largest accepted value.
        max: u64,
    },
    /// A header name cannot be configured for this scheme, or is not a valid name.
    #[error("signature header name {0:?} cannot be used here")]
    BadHeaderName(String),
}
