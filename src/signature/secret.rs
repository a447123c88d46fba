//! Secrets: named HMAC keys that never show their bytes, and the two ways a secret string
//! becomes key bytes.

use std::fmt;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use super::error::KeyError;

/// HMAC-SHA256, the only MAC perfhook speaks.
pub type HmacSha256 = Hmac<Sha256>;

/// The shortest key a verifier or the CLI accepts, in bytes: 128 bits.
pub const MIN_KEY_LEN: usize = 16;

/// How a configured secret string becomes HMAC key bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyReading {
    /// The bytes as given, prefix and all (Stripe-style senders sign with the whole
    /// `whsec_…` string).
    Verbatim,
    /// An optional `whsec_` prefix removed and the rest base64-decoded (Standard Webhooks, Svix).
    WhsecBase64,
}

impl KeyReading {
    /// A short description for reports.
    #[must_use]
    pub fn describe(self) -> &'static str {
        match self {
            Self::Verbatim => "used verbatim",
            Self::WhsecBase64 => "base64-decoded after whsec_",
        }
    }
}

/// A named HMAC key. The key bytes are absorbed into a keyed HMAC state at construction and
/// then wiped; `Debug` shows the name only.
#[derive(Clone)]
pub struct SecretKey {
    name: Arc<str>,
    keyed: HmacSha256,
    key_len: usize,
}

impl SecretKey {
    /// Reads `secret` as `reading` says and keys an HMAC with it. Applies no length policy:
    /// [`SecretKey::check_length`] does, where a verifier or the CLI is built, so that public
    /// known-answer vectors with short keys can still be checked.
    ///
    /// # Errors
    /// [`KeyError::Empty`] for an empty key, [`KeyError::NotBase64`] when a `WhsecBase64`
    /// reading does not decode.
    pub fn new(name: &str, secret: &[u8], reading: KeyReading) -> Result<Self, KeyError> {
        let key = match reading {
            KeyReading::Verbatim => Zeroizing::new(secret.to_vec()),
            KeyReading::WhsecBase64 => {
                let encoded = secret.strip_prefix(b"whsec_").unwrap_or(secret);
                Zeroizing::new(STANDARD.decode(encoded).map_err(|_| KeyError::NotBase64 {
                    name: name.to_owned(),
                })?)
            }
        };
        if key.is_empty() {
            return Err(KeyError::Empty {
                name: name.to_owned(),
            });
        }
        // HMAC accepts keys of any length; this cannot fail for a non-empty key, but the
        // library's signature says it may, so the error is mapped rather than unwrapped.
        let keyed = HmacSha256::new_from_slice(&key).map_err(|_| KeyError::Empty {
            name: name.to_owned(),
        })?;
        Ok(Self {
            name: Arc::from(name),
            keyed,
            key_len: key.len(),
        })
    }

    /// Refuses keys shorter than [`MIN_KEY_LEN`] bytes.
    ///
    /// # Errors
    /// [`KeyError::TooShort`] naming the secret.
    pub fn check_length(&self) -> Result<(), KeyError> {
        if self.key_len < MIN_KEY_LEN {
            return Err(KeyError::TooShort {
                name: self.name.to_string(),
                len: self.key_len,
                min: MIN_KEY_LEN,
            });
        }
        Ok(())
    }

    /// The secret's name, as configured.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A shared handle to the name, cheap to put in every verdict.
    #[must_use]
    pub fn shared_name(&self) -> Arc<str> {
        Arc::clone(&self.name)
    }

    /// A fresh HMAC already keyed with this secret. Cloning the keyed state skips the key
    /// schedule (two compression calls) on every request.
    #[must_use]
    pub fn mac(&self) -> HmacSha256 {
        self.keyed.clone()
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretKey")
            .field("name", &self.name)
            .field("key", &"[redacted]")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_key() {
        let key = SecretKey::new("primary", b"super-secret-value-123", KeyReading::Verbatim)
            .expect("key");
        let shown = format!("{key:?}");
        assert!(shown.contains("primary"));
        assert!(shown.contains("[redacted]"));
        assert!(!shown.contains("super-secret"), "{shown}");
    }

    #[test]
    fn whsec_reading_decodes_after_the_prefix() {
        let with = SecretKey::new(
            "a",
            b"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            KeyReading::WhsecBase64,
        )
        .expect("key");
        assert_eq!(with.key_len, 24);
        let without = SecretKey::new(
            "b",
            b"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            KeyReading::WhsecBase64,
        )
        .expect("key");
        assert_eq!(without.key_len, 24);
        assert_eq!(
            SecretKey::new("c", b"whsec_not base64!", KeyReading::WhsecBase64).err(),
            Some(KeyError::NotBase64 { name: "c".into() })
        );
    }

    #[test]
    fn empty_and_short_keys_are_refused_by_name() {
        assert_eq!(
            SecretKey::new("empty", b"", KeyReading::Verbatim).err(),
            Some(KeyError::Empty {
                name: "empty".into()
            })
        );
        let short = SecretKey::new("short", b"secret", KeyReading::Verbatim).expect("key");
        assert_eq!(
            short.check_length(),
            Err(KeyError::TooShort {
                name: "short".into(),
                len: 6,
                min: 16
            })
        );
        let ok = SecretKey::new("ok", &[7u8; 16], KeyReading::Verbatim).expect("key");
        assert_eq!(ok.check_length(), Ok(()));
    }
}
