//! The verifier: one endpoint's scheme, secrets and timestamp policy, turning a request's
//! headers and raw body into a typed verdict.

use std::sync::Arc;

use subtle::{Choice, ConstantTimeEq};

use super::error::{KeyError, VerifyError};
use super::headers::{is_header_name, HeaderLookup};
use super::scheme::{Scheme, SignatureHeaders};
use super::secret::SecretKey;
use super::timestamp::{check_freshness, TimestampPolicy};

/// A delivery proven authentic (and fresh, unless the policy said not to check).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The scheme that verified it.
    pub scheme: Scheme,
    /// The name (never the value) of the secret that matched.
    pub secret: Arc<str>,
    /// The signed timestamp, for schemes that have one.
    pub timestamp: Option<u64>,
    /// The sender's message id, for schemes that send one.
    pub id: Option<String>,
    /// Whether the timestamp was checked against the tolerance.
    pub freshness: Freshness,
}

/// What was established about a verified delivery's age.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// The timestamp is within the tolerance.
    Checked,
    /// The timestamp was not checked (CLI `--ignore-timestamp`).
    NotChecked,
    /// The scheme carries no timestamp (GitHub).
    NoTimestamp,
}

/// Verifies deliveries for one endpoint.
#[derive(Debug, Clone)]
pub struct Verifier {
    scheme: Scheme,
    signature_header: String,
    keys: Vec<SecretKey>,
    policy: TimestampPolicy,
}

impl Verifier {
    /// A verifier for `scheme` that accepts a signature by any of `keys` (rotation).
    ///
    /// # Errors
    /// [`KeyError::NoSecrets`] for an empty list, [`KeyError::TooShort`] for any key under
    /// [`super::MIN_KEY_LEN`] bytes: a weak key must stop the program, not weaken an endpoint.
    pub fn new(
        scheme: Scheme,
        keys: Vec<SecretKey>,
        policy: TimestampPolicy,
    ) -> Result<Self, KeyError> {
        if keys.is_empty() {
            return Err(KeyError::NoSecrets);
        }
        for key in &keys {
            key.check_length()?;
        }
        Ok(Self {
            scheme,
            signature_header: scheme.default_signature_header().to_owned(),
            keys,
            policy,
        })
    }

    /// Reads the signature from `name` instead of the scheme's default header.
    ///
    /// # Errors
    /// [`KeyError::BadHeaderName`] for the `standard` scheme (its names are fixed) or a name
    /// that is not an HTTP token.
    pub fn with_signature_header(mut self, name: &str) -> Result<Self, KeyError> {
        if !self.scheme.signature_header_configurable() || !is_header_name(name.as_bytes()) {
            return Err(KeyError::BadHeaderName(name.to_owned()));
        }
        name.clone_into(&mut self.signature_header);
        Ok(self)
    }

    /// The scheme this verifier speaks.
    #[must_use]
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// How timestamps are checked.
    #[must_use]
    pub fn policy(&self) -> TimestampPolicy {
        self.policy
    }

    /// The header the signature is read from.
    #[must_use]
    pub fn signature_header(&self) -> &str {
        &self.signature_header
    }

    /// The configured keys, in order.
    #[must_use]
    pub fn keys(&self) -> &[SecretKey] {
        &self.keys
    }

    /// Parses the signature headers without the body: the receiver refuses a request that
    /// cannot verify before reading (and holding) its body, then verifies with
    /// [`Verifier::verify_parsed`].
    ///
    /// # Errors
    /// [`VerifyError::MissingHeader`] or [`VerifyError::MalformedHeader`] naming the header.
    pub fn parse_headers<'h>(
        &self,
        headers: &'h dyn HeaderLookup,
    ) -> Result<SignatureHeaders<'h>, VerifyError> {
        self.scheme.parse(headers, &self.signature_header)
    }

    /// Verifies one delivery: parse the headers, check the MAC over the raw body, then check
    /// the timestamp. The MAC comes first so that a timestamp error always means "authentic
    /// but stale", which is what a person debugging a delivery needs to know.
    ///
    /// # Errors
    /// The [`VerifyError`] naming the first check that failed.
    pub fn verify(
        &self,
        headers: &dyn HeaderLookup,
        body: &[u8],
        now: u64,
    ) -> Result<Verified, VerifyError> {
        self.verify_parsed(&self.parse_headers(headers)?, body, now)
    }

    /// [`Verifier::verify`] on headers already parsed by [`Verifier::parse_headers`].
    ///
    /// # Errors
    /// The [`VerifyError`] naming the first check that failed.
    pub fn verify_parsed(
        &self,
        parsed: &SignatureHeaders<'_>,
        body: &[u8],
        now: u64,
    ) -> Result<Verified, VerifyError> {
        let digits = parsed.timestamp.map(|t| t.digits);
        let secret = self
            .keys
            .iter()
            .find(|key| {
                // One HMAC per key, then a constant-time compare of fixed 32-byte arrays
                // against every candidate, with no early exit among them. This is what
                // `Mac::verify_slice` does, without recomputing the MAC per candidate.
                let expected = self.scheme.tag(key, digits, parsed.id, body);
                let any = parsed
                    .tags
                    .iter()
                    .fold(Choice::from(0), |acc, tag| acc | expected.ct_eq(tag));
                bool::from(any)
            })
            .ok_or(VerifyError::NoValidSignature)?;
        let freshness = match (parsed.timestamp, self.policy) {
            (None, _) => Freshness::NoTimestamp,
            (Some(_), TimestampPolicy::Ignore) => Freshness::NotChecked,
            (Some(t), TimestampPolicy::Enforce(tolerance)) => {
                check_freshness(t.secs, now, tolerance)?;
                Freshness::Checked
            }
        };
        Ok(Verified {
            scheme: self.scheme,
            secret: secret.shared_name(),
            timestamp: parsed.timestamp.map(|t| t.secs),
            id: parsed.id.map(str::to_owned),
            freshness,
        })
    }
}
