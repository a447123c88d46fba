//! Operator API keys: `phk_live_` or `phk_test_` and 43 random base62 characters (256 bits).
//! The store keeps the key's SHA-256 and its first characters as a visible id; a presented
//! key is found by that id and accepted only when its hash matches in constant time.

use std::fmt;
use std::time::Duration;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::event::Mode;
use crate::store::ApiKeyRecord;

/// The start of a live key.
pub const LIVE_PREFIX: &str = "phk_live_";
/// The start of a test key.
pub const TEST_PREFIX: &str = "phk_test_";
/// Random characters after the prefix: 43 base62 characters carry 256 bits.
const RANDOM_CHARS: usize = 43;
/// Random characters that are also part of the visible id.
const ID_RANDOM_CHARS: usize = 8;
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// Requests a minute a key may make unless created with another limit.
pub const DEFAULT_RATE_LIMIT_PER_MINUTE: u32 = 60;
/// Keys older than this are flagged for rotation.
pub const ROTATE_AFTER: Duration = Duration::from_secs(90 * 24 * 3600);

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Scope {
    /// List and read events and their notifications.
    #[value(name = "events:read")]
    EventsRead,
    /// Re-notify, retry and delete events.
    #[value(name = "events:write")]
    EventsWrite,
    /// List, show and export refused deliveries.
    #[value(name = "refused:read")]
    RefusedRead,
    /// Re-verify refused deliveries.
    #[value(name = "refused:write")]
    RefusedWrite,
    /// Create, rotate and revoke keys.
    #[value(name = "keys:admin")]
    KeysAdmin,
    /// Read the audit log.
    #[value(name = "audit:read")]
    AuditRead,
}

impl Scope {
    /// The scope's name, as stored and as written on the command line.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::EventsRead => "events:read",
            Self::EventsWrite => "events:write",
            Self::RefusedRead => "refused:read",
            Self::RefusedWrite => "refused:write",
            Self::KeysAdmin => "keys:admin",
            Self::AuditRead => "audit:read",
        }
    }
}

/// A key just made: shown once, then only its record remains.
pub struct NewKey {
    /// The key itself.
    pub key: Zeroizing<String>,
    /// What the store keeps.
    pub record: ApiKeyRecord,
}

impl fmt::Debug for NewKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewKey")
            .field("key", &"[redacted]")
            .field("record", &self.record)
            .finish()
    }
}

/// What a new key is for.
#[derive(Debug, Clone)]
pub struct KeySpec {
    /// The operator's name for it.
    pub name: String,
    /// What it may do.
    pub scopes: Vec<Scope>,
    /// Live or test.
    pub mode: Mode,
    /// How long it works, if not forever.
    pub expires_in: Option<Duration>,
    /// Requests a minute.
    pub rate_limit_per_minute: u32,
}

/// Why a key cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The system's random source failed.
    #[error("the system's random source failed")]
    Random,
    /// The name is empty or too long.
    #[error("--name must be 1 to 100 printable characters")]
    Name,
    /// No scope was given.
    #[error("give at least one --scope")]
    NoScope,
    /// A limit of zero.
    #[error("--rate-limit must be at least 1 request a minute")]
    RateLimit,
}

/// Makes a key at Unix time `now`.
///
/// # Errors
/// [`KeyError`] for a bad name, no scope, a zero limit or a failed random source.
pub fn generate(spec: &KeySpec, now: u64) -> Result<NewKey, KeyError> {
    let name_ok = !spec.name.trim().is_empty()
        && spec.name.chars().count() <= 100
        && !spec.name.chars().any(char::is_control);
    if !name_ok {
        return Err(KeyError::Name);
    }
    if spec.scopes.is_empty() {
        return Err(KeyError::NoScope);
    }
    if spec.rate_limit_per_minute == 0 {
        return Err(KeyError::RateLimit);
    }
    let mut key = Zeroizing::new(String::with_capacity(LIVE_PREFIX.len() + RANDOM_CHARS));
    key.push_str(match spec.mode {
        Mode::Live => LIVE_PREFIX,
        Mode::Test => TEST_PREFIX,
    });
    // Rejection sampling: a byte below 248 (4 × 62) maps to a character without bias.
    let mut bytes = Zeroizing::new([0u8; 64]);
    while key.len() < LIVE_PREFIX.len() + RANDOM_CHARS {
        getrandom::fill(bytes.as_mut_slice()).map_err(|_| KeyError::Random)?;
        for byte in bytes.iter().filter(|byte| **byte < 248) {
            if key.len() == LIVE_PREFIX.len() + RANDOM_CHARS {
                break;
            }
            if let Some(c) = BASE62.get(usize::from(*byte % 62)) {
                key.push(char::from(*c));
            }
        }
    }
    let mut scopes: Vec<&str> = spec.scopes.iter().map(|scope| scope.name()).collect();
    scopes.sort_unstable();
    scopes.dedup();
    let record = ApiKeyRecord {
        id: key_id(&key).unwrap_or_default().to_owned(),
        name: spec.name.trim().to_owned(),
        mode: spec.mode,
        scopes: scopes.into_iter().map(str::to_owned).collect(),
        sha256: digest(&key),
        created_at: now,
        expires_at: spec
            .expires_in
            .map(|expires_in| now.saturating_add(expires_in.as_secs())),
        revoked_at: None,
        last_used_at: None,
        last_used_from: None,
        rate_limit_per_minute: spec.rate_limit_per_minute,
        replaced_by: None,
    };
    Ok(NewKey { key, record })
}

/// The visible id of a well-formed key (its prefix and first 8 random characters), or
/// `None` for anything that is not one.
#[must_use]
pub fn key_id(presented: &str) -> Option<&str> {
    let random = presented
        .strip_prefix(LIVE_PREFIX)
        .or_else(|| presented.strip_prefix(TEST_PREFIX))?;
    let well_formed =
        random.len() == RANDOM_CHARS && random.bytes().all(|byte| BASE62.contains(&byte));
    if !well_formed {
        return None;
    }
    presented.get(..LIVE_PREFIX.len() + ID_RANDOM_CHARS)
}

/// Whether `presented` is the key `record` was made for (hashes compared in constant time).
#[must_use]
pub fn matches(record: &ApiKeyRecord, presented: &str) -> bool {
    digest(presented)
        .as_bytes()
        .ct_eq(record.sha256.as_bytes())
        .into()
}

/// Where a key stands at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// Accepted.
    Active,
    /// Revoked by an operator.
    Revoked,
    /// Past its expiry.
    Expired,
}

impl KeyState {
    /// The state's word in listings.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Revoked => "revoked",
            Self::Expired => "expired",
        }
    }
}

/// Where `record` stands at Unix time `now`.
#[must_use]
pub fn state(record: &ApiKeyRecord, now: u64) -> KeyState {
    if record.revoked_at.is_some_and(|at| at <= now) {
        KeyState::Revoked
    } else if record.expires_at.is_some_and(|at| at <= now) {
        KeyState::Expired
    } else {
        KeyState::Active
    }
}

/// Whether an active key is older than [`ROTATE_AFTER`] at `now`.
#[must_use]
pub fn due_for_rotation(record: &ApiKeyRecord, now: u64) -> bool {
    state(record, now) == KeyState::Active
        && now.saturating_sub(record.created_at) > ROTATE_AFTER.as_secs()
}

/// A key as listings show it: its record without the hash, with its state.
#[must_use]
pub fn summary(key: &ApiKeyRecord, now: u64) -> serde_json::Value {
    serde_json::json!({
        "id": key.id,
        "name": key.name,
        "mode": key.mode,
        "scopes": key.scopes,
        "created_at": key.created_at,
        "expires_at": key.expires_at,
        "revoked_at": key.revoked_at,
        "last_used_at": key.last_used_at,
        "last_used_from": key.last_used_from,
        "rate_limit_per_minute": key.rate_limit_per_minute,
        "replaced_by": key.replaced_by,
        "state": state(key, now).name(),
        "due_for_rotation": due_for_rotation(key, now),
    })
}

fn digest(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(mode: Mode) -> KeySpec {
        KeySpec {
            name: "ci".into(),
            scopes: vec![Scope::KeysAdmin, Scope::EventsRead, Scope::EventsRead],
            mode,
            expires_in: Some(Duration::from_secs(3600)),
            rate_limit_per_minute: DEFAULT_RATE_LIMIT_PER_MINUTE,
        }
    }

    #[test]
    fn a_new_key_has_its_prefix_43_base62_characters_and_only_its_hash_is_kept() {
        let made = generate(&spec(Mode::Live), 1_000).expect("key");
        assert!(made.key.starts_with(LIVE_PREFIX));
        assert_eq!(made.key.len(), LIVE_PREFIX.len() + RANDOM_CHARS);
        assert_eq!(key_id(&made.key), Some(made.record.id.as_str()));
        assert_eq!(made.record.id.len(), LIVE_PREFIX.len() + ID_RANDOM_CHARS);
        assert!(!made.record.sha256.contains(made.key.as_str()));
        assert_eq!(made.record.scopes, ["events:read", "keys:admin"]);
        assert_eq!(made.record.expires_at, Some(4_600));
        assert!(matches(&made.record, &made.key));
        assert!(!format!("{made:?}").contains(made.key.as_str()));

        let test = generate(&spec(Mode::Test), 1_000).expect("key");
        assert!(test.key.starts_with(TEST_PREFIX));
        assert!(!matches(&made.record, &test.key));
        assert_ne!(made.key, test.key);
    }

    #[test]
    fn only_well_formed_keys_have_an_id() {
        let made = generate(&spec(Mode::Live), 0).expect("key");
        let mut altered = made.key.to_string();
        altered.pop();
        assert_eq!(key_id(&altered), None);
        altered.push('-');
        assert_eq!(key_id(&altered), None);
        assert_eq!(key_id("phk_prod_abc"), None);
        assert_eq!(key_id(""), None);
    }

    #[test]
    fn revoked_expired_and_old_keys_are_told_apart() {
        let mut record = generate(&spec(Mode::Live), 0).expect("key").record;
        assert_eq!(state(&record, 10), KeyState::Active);
        assert_eq!(state(&record, 3_600), KeyState::Expired);
        record.expires_at = None;
        assert!(due_for_rotation(&record, ROTATE_AFTER.as_secs() + 1));
        assert!(!due_for_rotation(&record, ROTATE_AFTER.as_secs()));
        record.revoked_at = Some(5);
        assert_eq!(state(&record, 5), KeyState::Revoked);
        assert!(!due_for_rotation(&record, ROTATE_AFTER.as_secs() + 1));
    }

    #[test]
    fn bad_specs_are_refused() {
        let mut bad = spec(Mode::Live);
        bad.name = " ".into();
        assert_eq!(generate(&bad, 0).err(), Some(KeyError::Name));
        let mut bad = spec(Mode::Live);
        bad.scopes.clear();
        assert_eq!(generate(&bad, 0).err(), Some(KeyError::NoScope));
        let mut bad = spec(Mode::Live);
        bad.rate_limit_per_minute = 0;
        assert_eq!(generate(&bad, 0).err(), Some(KeyError::RateLimit));
    }
}
