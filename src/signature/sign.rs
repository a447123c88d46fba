//! Signing: the headers a sender would attach to a body. Used by `perfhook sign` and `send`,
//! by tests, and as the oracle in fuzzing.

use super::error::Malformed;
use super::headers::HeaderList;
use super::scheme::{validate_id, Scheme};
use super::secret::SecretKey;

/// What a delivery carries besides its signature.
#[derive(Debug, Clone, Copy)]
pub struct Delivery<'a> {
    /// Unix seconds to sign (ignored by GitHub).
    pub timestamp: u64,
    /// The message id: required by `standard`, sent as `X-GitHub-Delivery` by `github`,
    /// unused by the others.
    pub id: Option<&'a str>,
    /// The exact body bytes.
    pub body: &'a [u8],
}

/// Why a delivery could not be signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    /// No key was given.
    #[error("no secret to sign with")]
    NoKeys,
    /// The scheme needs an id and none was given.
    #[error("the {0} scheme needs a message id")]
    MissingId(Scheme),
    /// The id breaks the id grammar.
    #[error("{0}")]
    BadId(Malformed),
    /// GitHub and Slack carry exactly one signature.
    #[error("the {0} scheme carries one signature; give one secret")]
    OneSignatureOnly(Scheme),
}

/// The headers for `delivery` signed with every key in `keys` (several keys give several
/// signatures, as a sender rotating its secret does), in `scheme`'s default header names.
///
/// # Errors
/// [`SignError`] when the keys or the id do not suit the scheme.
pub fn sign(
    scheme: Scheme,
    keys: &[SecretKey],
    delivery: Delivery<'_>,
) -> Result<Vec<(String, String)>, SignError> {
    sign_with_header(scheme, scheme.default_signature_header(), keys, delivery)
}

/// As [`sign`], with the signature in `signature_header`.
///
/// # Errors
/// [`SignError`] when the keys or the id do not suit the scheme.
pub fn sign_with_header(
    scheme: Scheme,
    signature_header: &str,
    keys: &[SecretKey],
    delivery: Delivery<'_>,
) -> Result<Vec<(String, String)>, SignError> {
    if keys.is_empty() {
        return Err(SignError::NoKeys);
    }
    if keys.len() > 1 && matches!(scheme, Scheme::Github | Scheme::Slack) {
        return Err(SignError::OneSignatureOnly(scheme));
    }
    if let Some(id) = delivery.id {
        validate_id(id.as_bytes()).map_err(SignError::BadId)?;
    } else if scheme == Scheme::Standard {
        return Err(SignError::MissingId(scheme));
    }
    let digits = delivery.timestamp.to_string();
    let timestamp = scheme.has_timestamp().then_some(digits.as_bytes());
    let id = if scheme == Scheme::Standard {
        delivery.id
    } else {
        None
    };
    let tags: Vec<_> = keys
        .iter()
        .map(|key| scheme.tag(key, timestamp, id, delivery.body))
        .collect();
    Ok(scheme.render_headers(signature_header, delivery.timestamp, delivery.id, &tags))
}

/// Collects rendered headers into a [`HeaderList`], as a receiver would see them.
#[must_use]
pub fn to_header_list(headers: &[(String, String)]) -> HeaderList {
    let mut list = HeaderList::new();
    for (name, value) in headers {
        list.push(name.clone(), value.as_bytes());
    }
    list
}
