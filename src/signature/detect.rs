//! `--scheme auto`: try every scheme with every secret read both ways and report which one
//! verifies, or why each scheme whose headers are present does not.

use std::fmt;

use zeroize::Zeroizing;

use super::error::VerifyError;
use super::headers::{HeaderLookup, Lookup};
use super::scheme::Scheme;
use super::secret::{KeyReading, SecretKey};
use super::timestamp::TimestampPolicy;
use super::verifier::{Verified, Verifier};

/// A secret as the user gave it, before it is read as key bytes. `Debug` shows the name only.
#[derive(Clone)]
pub struct RawSecret {
    /// The name reported when it matches.
    pub name: String,
    /// The secret's bytes.
    pub bytes: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for RawSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawSecret")
            .field("name", &self.name)
            .field("bytes", &"[redacted]")
            .finish()
    }
}

/// What `detect` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Detection {
    /// A scheme and key reading verified the delivery.
    Valid {
        /// The verdict.
        verified: Verified,
        /// How the matching secret was read.
        reading: KeyReading,
    },
    /// Nothing verified. One entry per scheme whose signature header was present, with the
    /// most telling failure across both key readings.
    Invalid(Vec<(Scheme, VerifyError)>),
}

/// Tries every scheme, for each of its key readings (its own first), with all `secrets`.
#[must_use]
pub fn detect(
    headers: &dyn HeaderLookup,
    body: &[u8],
    secrets: &[RawSecret],
    now: u64,
    policy: TimestampPolicy,
) -> Detection {
    let mut failures = Vec::new();
    for scheme in Scheme::ALL {
        if !signature_header_present(headers, scheme) {
            continue;
        }
        let mut best: Option<VerifyError> = None;
        for reading in readings(scheme) {
            let Some(verifier) = verifier_for(scheme, reading, secrets, policy) else {
                continue;
            };
            match verifier.verify(headers, body, now) {
                Ok(verified) => return Detection::Valid { verified, reading },
                Err(error) => {
                    if best.as_ref().is_none_or(|b| rank(&error) > rank(b)) {
                        best = Some(error);
                    }
                }
            }
        }
        failures.push((scheme, best.unwrap_or(VerifyError::NoValidSignature)));
    }
    Detection::Invalid(failures)
}

fn signature_header_present(headers: &dyn HeaderLookup, scheme: Scheme) -> bool {
    let present = |name| headers.lookup(name) != Lookup::Missing;
    present(scheme.default_signature_header())
        || (scheme == Scheme::Standard && present("svix-signature"))
}

fn readings(scheme: Scheme) -> [KeyReading; 2] {
    match scheme.default_key_reading() {
        KeyReading::Verbatim => [KeyReading::Verbatim, KeyReading::WhsecBase64],
        KeyReading::WhsecBase64 => [KeyReading::WhsecBase64, KeyReading::Verbatim],
    }
}

/// A verifier from every secret that this reading can use; `None` when none can (for
/// example, no secret is base64).
fn verifier_for(
    scheme: Scheme,
    reading: KeyReading,
    secrets: &[RawSecret],
    policy: TimestampPolicy,
) -> Option<Verifier> {
    let keys: Vec<SecretKey> = secrets
        .iter()
        .filter_map(|s| SecretKey::new(&s.name, &s.bytes, reading).ok())
        .filter(|key| key.check_length().is_ok())
        .collect();
    Verifier::new(scheme, keys, policy).ok()
}

/// A timestamp error means the MAC matched, which says the most; a MAC mismatch says more
/// than a malformed header.
fn rank(error: &VerifyError) -> u8 {
    match error {
        VerifyError::TimestampTooOld { .. } | VerifyError::TimestampInFuture { .. } => 3,
        VerifyError::NoValidSignature => 2,
        VerifyError::MalformedHeader { .. } => 1,
        VerifyError::MissingHeader(_) => 0,
    }
}
