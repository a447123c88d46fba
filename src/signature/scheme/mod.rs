//! The five header schemes: their names, default headers, what each one signs, and dispatch
//! to each grammar.

mod github;
mod slack;
mod standard;
mod t_v1;

use std::fmt;
use std::str::FromStr;

use hmac::Mac;

use super::encoding::Tag;
use super::error::{Malformed, VerifyError};
use super::headers::{HeaderLookup, Lookup};
use super::secret::{KeyReading, SecretKey};

pub use github::{parse_value as parse_github_value, render_value as render_github_value};
pub use slack::{parse_value as parse_slack_value, render_value as render_slack_value};
pub use standard::{parse_signature_list, render_signature_list, validate_id};
pub use t_v1::{parse_value as parse_t_v1_value, render_value as render_t_v1_value, TV1Header};

/// At most this many signatures are considered per delivery; a header with more is malformed.
/// Rotation needs two or three; the cap bounds the work one request can cause.
pub const MAX_SIGNATURES: usize = 16;

/// A signature scheme: a header grammar plus the exact bytes the MAC covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// `X-Perf-Signature: t=<unix>,v1=<hex>[,v1=<hex>…]` over `<t>.<body>`; key verbatim.
    Perf,
    /// The same grammar in `Stripe-Signature`.
    Stripe,
    /// Standard Webhooks 1.0 / Svix: `webhook-id`, `webhook-timestamp`, `webhook-signature:
    /// v1,<base64> …` over `<id>.<t>.<body>`; key `whsec_<base64>` decoded.
    Standard,
    /// GitHub: `X-Hub-Signature-256: sha256=<hex>` over the body; no timestamp.
    Github,
    /// Slack: `X-Slack-Signature: v0=<hex>` over `v0:<t>:<body>`, timestamp in
    /// `X-Slack-Request-Timestamp`.
    Slack,
}

/// A parsed timestamp: its value and the digits exactly as received, which the MAC covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timestamp<'h> {
    /// The digits as sent (leading zeros included).
    pub digits: &'h [u8],
    /// Their value in Unix seconds.
    pub secs: u64,
}

/// What a delivery's signature headers say, borrowed from the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureHeaders<'h> {
    /// The signed timestamp, for schemes that have one.
    pub timestamp: Option<Timestamp<'h>>,
    /// The sender's message id, for schemes that send one.
    pub id: Option<&'h str>,
    /// The decoded candidate tags, at most [`MAX_SIGNATURES`].
    pub tags: Vec<Tag>,
}

impl Scheme {
    /// Every scheme, in the order `--scheme auto` tries them.
    pub const ALL: [Self; 5] = [
        Self::Perf,
        Self::Stripe,
        Self::Standard,
        Self::Github,
        Self::Slack,
    ];

    /// The scheme's name in config files, on the command line and in output.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Perf => "perf",
            Self::Stripe => "stripe",
            Self::Standard => "standard",
            Self::Github => "github",
            Self::Slack => "slack",
        }
    }

    /// The header that carries the signature unless configured otherwise.
    #[must_use]
    pub fn default_signature_header(self) -> &'static str {
        match self {
            Self::Perf => "X-Perf-Signature",
            Self::Stripe => "Stripe-Signature",
            Self::Standard => standard::SIGNATURE,
            Self::Github => github::SIGNATURE,
            Self::Slack => slack::SIGNATURE,
        }
    }

    /// Whether the signature header's name may be configured. Standard Webhooks fixes its
    /// three names (and accepts the `svix-` spellings).
    #[must_use]
    pub fn signature_header_configurable(self) -> bool {
        !matches!(self, Self::Standard)
    }

    /// How this scheme's senders turn the secret string into key bytes.
    #[must_use]
    pub fn default_key_reading(self) -> KeyReading {
        match self {
            Self::Standard => KeyReading::WhsecBase64,
            _ => KeyReading::Verbatim,
        }
    }

    /// Whether deliveries carry a signed timestamp (all but GitHub's).
    #[must_use]
    pub fn has_timestamp(self) -> bool {
        !matches!(self, Self::Github)
    }

    /// Parses the scheme's headers from a request.
    ///
    /// # Errors
    /// [`VerifyError::MissingHeader`] or [`VerifyError::MalformedHeader`] naming the header.
    pub fn parse<'h>(
        self,
        headers: &'h dyn HeaderLookup,
        signature_header: &str,
    ) -> Result<SignatureHeaders<'h>, VerifyError> {
        match self {
            Self::Perf | Self::Stripe => {
                let value = required(headers, signature_header)?;
                let parsed =
                    t_v1::parse_value(value).map_err(|p| malformed(signature_header, p))?;
                Ok(SignatureHeaders {
                    timestamp: Some(parsed.timestamp),
                    id: None,
                    tags: parsed.tags,
                })
            }
            Self::Standard => standard::parse(headers),
            Self::Github => github::parse(headers, signature_header),
            Self::Slack => slack::parse(headers, signature_header),
        }
    }

    /// The tag `key` gives this delivery. The signed bytes are fed to the MAC in pieces, so
    /// the body is never copied.
    #[must_use]
    pub fn tag(
        self,
        key: &SecretKey,
        timestamp: Option<&[u8]>,
        id: Option<&str>,
        body: &[u8],
    ) -> Tag {
        let mut mac = key.mac();
        let t = timestamp.unwrap_or_default();
        match self {
            Self::Perf | Self::Stripe => {
                mac.update(t);
                mac.update(b".");
            }
            Self::Standard => {
                mac.update(id.unwrap_or_default().as_bytes());
                mac.update(b".");
                mac.update(t);
                mac.update(b".");
            }
            Self::Github => {}
            Self::Slack => {
                mac.update(b"v0:");
                mac.update(t);
                mac.update(b":");
            }
        }
        mac.update(body);
        mac.finalize().into_bytes().into()
    }

    /// Renders the headers that carry `tags` for a delivery, as a sender would send them.
    #[must_use]
    pub fn render_headers(
        self,
        signature_header: &str,
        timestamp: u64,
        id: Option<&str>,
        tags: &[Tag],
    ) -> Vec<(String, String)> {
        match self {
            Self::Perf | Self::Stripe => vec![(
                signature_header.to_owned(),
                t_v1::render_value(timestamp, tags),
            )],
            Self::Standard => standard::render(timestamp, id.unwrap_or_default(), tags),
            Self::Github => github::render(signature_header, id, tags),
            Self::Slack => slack::render(signature_header, timestamp, tags),
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The error for an unknown scheme name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
// The name is not quoted: in a config file it could be a secret pasted into the wrong key.
#[error("unknown scheme (expected perf, stripe, standard, github or slack)")]
pub struct UnknownScheme(pub String);

impl FromStr for Scheme {
    type Err = UnknownScheme;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|scheme| scheme.name() == s)
            .ok_or_else(|| UnknownScheme(s.to_owned()))
    }
}

/// The single value of a required header.
fn required<'h>(headers: &'h dyn HeaderLookup, name: &str) -> Result<&'h [u8], VerifyError> {
    match headers.lookup(name) {
        Lookup::One(value) => Ok(value),
        Lookup::Missing => Err(VerifyError::MissingHeader(name.to_owned())),
        Lookup::Repeated => Err(malformed(name, Malformed::RepeatedHeader)),
    }
}

/// The single value of an optional header.
fn optional<'h>(
    headers: &'h dyn HeaderLookup,
    name: &str,
) -> Result<Option<&'h [u8]>, VerifyError> {
    match headers.lookup(name) {
        Lookup::One(value) => Ok(Some(value)),
        Lookup::Missing => Ok(None),
        Lookup::Repeated => Err(malformed(name, Malformed::RepeatedHeader)),
    }
}

fn malformed(header: &str, problem: Malformed) -> VerifyError {
    VerifyError::MalformedHeader {
        header: header.to_owned(),
        problem,
    }
}

/// Parses a standalone timestamp header (Standard Webhooks, Slack).
fn timestamp_header<'h>(
    headers: &'h dyn HeaderLookup,
    name: &'static str,
) -> Result<Timestamp<'h>, VerifyError> {
    let digits = required(headers, name)?;
    let secs = super::timestamp::parse_unix_seconds(digits)
        .ok_or_else(|| malformed(name, Malformed::BadTimestamp(name)))?;
    Ok(Timestamp { digits, secs })
}

/// Parses `<prefix>=<64 lowercase hex>`, the one-signature grammar of GitHub (`sha256=`)
/// and Slack (`v0=`).
fn prefixed_hex_tag(value: &[u8], field: &'static str) -> Result<Tag, Malformed> {
    visible_ascii(value)?;
    let hex = value
        .strip_prefix(field.as_bytes())
        .and_then(|rest| rest.strip_prefix(b"="))
        .ok_or(Malformed::MissingField(field))?;
    super::encoding::decode_hex_tag(hex).ok_or(Malformed::BadSignature {
        field,
        encoding: "64 lowercase hex digits",
    })
}

/// Checks that a header value is non-empty visible ASCII: no spaces, controls or high bytes.
fn visible_ascii(value: &[u8]) -> Result<(), Malformed> {
    if value.is_empty() {
        return Err(Malformed::Empty);
    }
    if !value.iter().all(|b| (0x21..=0x7e).contains(b)) {
        return Err(Malformed::InvalidCharacter);
    }
    Ok(())
}

impl serde::Serialize for Scheme {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> serde::Deserialize<'de> for Scheme {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheme_names_round_trip() {
        for scheme in Scheme::ALL {
            assert_eq!(scheme.name().parse::<Scheme>(), Ok(scheme));
        }
        assert!("Perf".parse::<Scheme>().is_err());
        assert!("svix".parse::<Scheme>().is_err());
    }
}
