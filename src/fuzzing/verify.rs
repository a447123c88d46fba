//! `verify`: the whole verifier on arbitrary headers, body, secrets and `now`, with `sign` as
//! the oracle. Two input forms, chosen by the first byte:
//!
//! - `R` (replay): `R<scheme> <now> <tolerance> <hex secret>[,<hex secret>…]\n` followed by a
//!   captured HTTP request, so the fixtures and attack cases are readable seeds. Invariants:
//!   an accepted delivery carries exactly the tag `sign` computes for its timestamp, id and
//!   body; verifying without the timestamp check gives the same verdict except that a
//!   timestamp error becomes a pass (the MAC is checked first); `--scheme auto` agrees.
//! - anything else (structured, decoded with `arbitrary`): a delivery is signed, perhaps
//!   altered, and verified. The verdict must be exactly what the alteration and the clock
//!   predict: only `sign`'s headers for that body and key, at a time inside the tolerance,
//!   ever verify.
//!
//! In both forms, no error message carries the secret or the expected tag.

use arbitrary::{Arbitrary, Unstructured};

use crate::capture::parse_captured_request;
use crate::signature::{
    detect, render_signature_list, sign, to_header_list, validate_id, Delivery, Detection,
    HeaderLookup, KeyReading, RawSecret, Scheme, SecretKey, Tag, TimestampPolicy, Tolerance,
    Verified, Verifier, VerifyError, MAX_TOLERANCE_SECS,
};

/// Runs the body on one input.
pub fn run(data: &[u8]) -> bool {
    match data.split_first() {
        Some((b'R', rest)) => replay(rest),
        Some((_, rest)) => Input::arbitrary_take_rest(Unstructured::new(rest))
            .map(|input| oracle(&input))
            .unwrap_or(false),
        None => false,
    }
}

// ---------------------------------------------------------------------------------------
// Structured form: sign, alter, verify, and predict the verdict.

#[derive(Debug, Arbitrary)]
struct Input {
    scheme: u8,
    key: [u8; 16],
    key_tail: Vec<u8>,
    /// A second, unrelated key configured before the signer's (rotation).
    rotate: bool,
    body: Vec<u8>,
    /// Any 32-bit value is at most 10 digits, the longest timestamp the grammar accepts.
    timestamp: u32,
    skew: i32,
    tolerance: u32,
    id: String,
    alteration: Alteration,
}

#[derive(Debug, Arbitrary)]
enum Alteration {
    None,
    FlipBody { at: u16, bit: u8 },
    FlipHeaderValue { at: u16, bit: u8 },
    AddHeader { name: String, value: Vec<u8> },
    DropHeader { index: u8 },
    OtherKey { key: [u8; 16] },
    ReplaceHeaders(Vec<(String, Vec<u8>)>),
}

/// What the verifier must answer.
#[derive(Debug)]
enum Expect {
    /// Accepted, by the key with this name, with this id.
    Valid {
        secret: &'static str,
        id: Option<String>,
    },
    /// Refused because the MAC does not match or a header is missing or malformed.
    Refused,
    /// Refused by the clock, the MAC having matched.
    Stale,
    /// Either accepted (with this id) or refused: an alteration to a header the MAC does not
    /// cover (GitHub's delivery id).
    Uncovered { id: Option<String> },
    /// Anything may happen, but an acceptance must carry `sign`'s exact tag.
    Forged,
}

const DECOY_KEY: &[u8] = b"decoy-key-not-the-signer";
const UNRELATED_KEY: &[u8] = b"unrelated-key-for-message-checks";

fn oracle(input: &Input) -> bool {
    let scheme = pick_scheme(input.scheme);
    let mut key_bytes = input.key.to_vec();
    key_bytes.extend_from_slice(&input.key_tail);
    let Ok(signer) = SecretKey::new("signer", &key_bytes, KeyReading::Verbatim) else {
        return false;
    };
    let id = if validate_id(input.id.as_bytes()).is_ok() {
        input.id.as_str()
    } else {
        "msg_fuzz"
    };
    let timestamp = u64::from(input.timestamp);
    let now = timestamp.saturating_add_signed(i64::from(input.skew));
    let tolerance = u64::from(input.tolerance) % MAX_TOLERANCE_SECS + 1;
    let Ok(tolerance) = Tolerance::from_secs(tolerance) else {
        panic!("tolerance {tolerance} is in range");
    };
    let signed = sign(
        scheme,
        std::slice::from_ref(&signer),
        Delivery {
            timestamp,
            id: Some(id),
            body: &input.body,
        },
    );
    let Ok(mut headers) = signed else {
        panic!("sign refused one key and a valid id: {signed:?}");
    };
    let mut body = input.body.clone();
    let mut keys = Vec::new();
    if input.rotate {
        keys.push(key("decoy", DECOY_KEY));
    }
    keys.push(signer.clone());
    let signer_name = if input.rotate && same_hmac_key(&key_bytes, DECOY_KEY) {
        "decoy"
    } else {
        "signer"
    };
    let carried_id = match scheme {
        Scheme::Standard | Scheme::Github => Some(id.to_owned()),
        _ => None,
    };
    let mut expect = Expect::Valid {
        secret: signer_name,
        id: carried_id.clone(),
    };

    match &input.alteration {
        Alteration::None => {}
        Alteration::FlipBody { at, bit } => {
            if let Some(byte) = index_mod(&mut body, *at) {
                *byte ^= 1 << (bit % 8);
                expect = Expect::Refused;
            }
        }
        Alteration::FlipHeaderValue { at, bit } => {
            expect = flip_header_value(scheme, &mut headers, *at, *bit, expect);
        }
        Alteration::AddHeader { name, value } => {
            let read = headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
            headers.push((name.clone(), String::from_utf8_lossy(value).into_owned()));
            if read {
                expect = Expect::Refused;
            }
        }
        Alteration::DropHeader { index } => {
            let at = usize::from(*index) % headers.len().max(1);
            if at < headers.len() {
                let (name, _) = headers.remove(at);
                expect = if scheme == Scheme::Github && name == "X-GitHub-Delivery" {
                    Expect::Valid {
                        secret: signer_name,
                        id: None,
                    }
                } else {
                    Expect::Refused
                };
            }
        }
        Alteration::OtherKey { key: other } => {
            keys = vec![key("other", other)];
            expect = if same_hmac_key(other, &key_bytes) {
                Expect::Valid {
                    secret: "other",
                    id: carried_id,
                }
            } else {
                Expect::Refused
            };
        }
        Alteration::ReplaceHeaders(list) => {
            headers = list
                .iter()
                .map(|(n, v)| (n.clone(), String::from_utf8_lossy(v).into_owned()))
                .collect();
            expect = Expect::Forged;
        }
    }
    let fresh = !scheme.has_timestamp() || now.abs_diff(timestamp) <= tolerance.secs();
    if !fresh {
        if let Expect::Valid { .. } = expect {
            expect = Expect::Stale;
        }
    }

    let verifier = match Verifier::new(scheme, keys, TimestampPolicy::Enforce(tolerance)) {
        Ok(verifier) => verifier,
        Err(error) => panic!("a verifier with 16-byte keys is refused: {error}"),
    };
    let list = to_header_list(&headers);
    let verdict = verifier.verify(&list, &body, now);
    if let Err(error) = &verdict {
        assert_error_hides_tag(error, &signer, scheme, &body, timestamp, id);
        assert_error_independent_of_secret(error, &verifier, &list, &body, now);
    }
    match (expect, verdict) {
        (Expect::Valid { secret, id }, Ok(v)) => {
            assert_eq!(&*v.secret, secret);
            assert_eq!(v.id, id);
            assert_eq!(v.scheme, scheme);
            let ts = scheme.has_timestamp().then_some(timestamp);
            assert_eq!(v.timestamp, ts);
        }
        (Expect::Refused, Err(e)) => assert!(
            !matches!(
                e,
                VerifyError::TimestampTooOld { .. } | VerifyError::TimestampInFuture { .. }
            ),
            "a refused delivery got a timestamp verdict, which claims the MAC matched: {e}"
        ),
        (Expect::Stale, Err(e)) => {
            let expected_old = now > timestamp;
            match e {
                VerifyError::TimestampTooOld { .. } => assert!(expected_old),
                VerifyError::TimestampInFuture { .. } => assert!(!expected_old),
                other => panic!("an authentic stale delivery got {other}"),
            }
        }
        (Expect::Uncovered { id }, Ok(v)) => assert_eq!(v.id, id),
        (Expect::Uncovered { .. } | Expect::Forged, Err(_)) => {}
        (Expect::Forged, Ok(v)) => assert_carries_signed_tag(&v, &list, &body, &signer),
        (expect, verdict) => panic!("expected {expect:?}, got {verdict:?}"),
    }
    true
}

/// Flips one bit in one header value. Every header value is covered by the MAC except
/// GitHub's delivery id, so a flip anywhere else must be refused.
fn flip_header_value(
    scheme: Scheme,
    headers: &mut [(String, String)],
    at: u16,
    bit: u8,
    unchanged: Expect,
) -> Expect {
    let total: usize = headers.iter().map(|(_, v)| v.len()).sum();
    if total == 0 {
        return unchanged;
    }
    let mut position = usize::from(at) % total;
    for (name, value) in headers.iter_mut() {
        if position >= value.len() {
            position -= value.len();
            continue;
        }
        let mut bytes = std::mem::take(value).into_bytes();
        if let Some(byte) = bytes.get_mut(position) {
            *byte ^= 1 << (bit % 8);
        }
        *value = String::from_utf8_lossy(&bytes).into_owned();
        if scheme == Scheme::Github && name == "X-GitHub-Delivery" {
            return Expect::Uncovered {
                id: Some(value.clone()),
            };
        }
        return Expect::Refused;
    }
    unchanged
}

// ---------------------------------------------------------------------------------------
// Replay form: a captured request, secrets and a clock, as the CLI would verify it.

fn replay(data: &[u8]) -> bool {
    let Some(newline) = data.iter().position(|&b| b == b'\n') else {
        return false;
    };
    let (line, request) = data.split_at(newline);
    let request = request.get(1..).unwrap_or_default();
    let Ok(line) = std::str::from_utf8(line) else {
        return false;
    };
    let mut fields = line.split(' ');
    let (Some(scheme), Some(now), Some(tolerance), Some(secrets), None) = (
        fields.next().and_then(|s| s.parse::<Scheme>().ok()),
        fields.next().and_then(|s| s.parse::<u64>().ok()),
        fields
            .next()
            .and_then(|s| s.parse::<u64>().ok())
            .and_then(|s| Tolerance::from_secs(s).ok()),
        fields.next(),
        fields.next(),
    ) else {
        return false;
    };
    let raw: Vec<RawSecret> = secrets
        .split(',')
        .enumerate()
        .filter_map(|(i, hex)| {
            Some(RawSecret {
                name: format!("s{i}"),
                bytes: zeroize::Zeroizing::new(hex::decode(hex).ok()?),
            })
        })
        .collect();
    let keys: Vec<SecretKey> = raw
        .iter()
        .filter_map(|s| SecretKey::new(&s.name, &s.bytes, scheme.default_key_reading()).ok())
        .collect();
    let Ok(enforcing) = Verifier::new(scheme, keys, TimestampPolicy::Enforce(tolerance)) else {
        return false;
    };
    let Ok(captured) = parse_captured_request(request) else {
        return false;
    };
    let (headers, body) = (&captured.headers, captured.body);
    let ignoring = Verifier::new(scheme, enforcing.keys().to_vec(), TimestampPolicy::Ignore);
    let Ok(ignoring) = ignoring else {
        panic!("the same keys build a verifier that ignores time");
    };

    let strict = enforcing.verify(headers, body, now);
    let lax = ignoring.verify(headers, body, now);
    match (&strict, &lax) {
        (Ok(v), Ok(_)) => {
            let key = enforcing
                .keys()
                .iter()
                .find(|k| k.name() == &*v.secret)
                .cloned();
            let Some(key) = key else {
                panic!("the verdict names a secret that is not configured");
            };
            assert_carries_signed_tag(v, headers, body, &key);
        }
        (
            Err(VerifyError::TimestampTooOld { .. } | VerifyError::TimestampInFuture { .. }),
            Ok(_),
        ) => {}
        (Err(a), Err(b)) => assert_eq!(a, b),
        _ => panic!(
            "checking the timestamp changed a verdict other than by time: {strict:?} / {lax:?}"
        ),
    }
    if let Err(error) = &strict {
        assert_error_independent_of_secret(error, &enforcing, headers, body, now);
    }
    // `--scheme auto` must accept whatever the configured scheme accepts.
    if strict.is_ok() {
        let found = detect(
            headers,
            body,
            &raw,
            now,
            TimestampPolicy::Enforce(tolerance),
        );
        assert!(
            matches!(found, Detection::Valid { .. }),
            "auto-detection missed a delivery its scheme accepts: {found:?}"
        );
    }
    true
}

// ---------------------------------------------------------------------------------------
// Shared checks.

/// An accepted delivery must carry, among its tags, exactly what `sign` computes with the
/// matched key for the verified timestamp, id and body.
fn assert_carries_signed_tag(
    verified: &Verified,
    headers: &dyn HeaderLookup,
    body: &[u8],
    key: &SecretKey,
) {
    let scheme = verified.scheme;
    let parsed = scheme.parse(headers, scheme.default_signature_header());
    let Ok(parsed) = parsed else {
        panic!("an accepted delivery's headers do not parse: {parsed:?}");
    };
    let resigned = sign(
        scheme,
        std::slice::from_ref(key),
        Delivery {
            timestamp: verified.timestamp.unwrap_or_default(),
            id: verified.id.as_deref(),
            body,
        },
    );
    let Ok(resigned) = resigned else {
        panic!("sign refused an accepted delivery's id: {resigned:?}");
    };
    let resigned = to_header_list(&resigned);
    let expected = scheme.parse(&resigned, scheme.default_signature_header());
    let Ok(expected) = expected else {
        panic!("sign's own headers do not parse: {expected:?}");
    };
    // The timestamp digits may be written with leading zeros; the MAC covers them as sent,
    // so recompute over the digits the delivery carried.
    let digits = parsed.timestamp.map(|t| t.digits);
    let tag: Tag = scheme.tag(key, digits, parsed.id, body);
    assert!(
        parsed.tags.contains(&tag),
        "accepted without the tag sign computes"
    );
    if parsed.timestamp.map(|t| t.digits) == expected.timestamp.map(|t| t.digits) {
        assert!(expected.tags.contains(&tag));
    }
}

/// No error message shows the tag the delivery should have carried.
fn assert_error_hides_tag(
    error: &VerifyError,
    signer: &SecretKey,
    scheme: Scheme,
    body: &[u8],
    timestamp: u64,
    id: &str,
) {
    let digits = timestamp.to_string();
    let tag = scheme.tag(
        signer,
        scheme.has_timestamp().then_some(digits.as_bytes()),
        (scheme == Scheme::Standard).then_some(id),
        body,
    );
    let text = error.to_string();
    assert!(!text.contains(&hex::encode(tag)), "an error shows the tag");
    assert!(!text.contains(&render_signature_list(&[tag])));
}

/// An error's words do not depend on the secret: the same delivery checked against an
/// unrelated key fails with the same message. (A timestamp verdict needs the right key, so
/// it is exempt; its fields are numbers.) Comparing messages rather than searching them for
/// the secret matters under a fuzzer: a substring search teaches it to spell the message.
fn assert_error_independent_of_secret(
    error: &VerifyError,
    verifier: &Verifier,
    headers: &dyn HeaderLookup,
    body: &[u8],
    now: u64,
) {
    if matches!(
        error,
        VerifyError::TimestampTooOld { .. } | VerifyError::TimestampInFuture { .. }
    ) {
        return;
    }
    // Both input forms use the scheme's default header names, as `Verifier::new` does.
    let unrelated = Verifier::new(
        verifier.scheme(),
        vec![key("unrelated", UNRELATED_KEY)],
        TimestampPolicy::Ignore,
    );
    let Ok(unrelated) = unrelated else {
        panic!("a verifier with a 16-byte key is refused");
    };
    if let Err(again) = unrelated.verify(headers, body, now) {
        assert_eq!(
            again.to_string(),
            error.to_string(),
            "an error's message depends on the secret"
        );
    }
}

/// Whether two keys are the same HMAC key. HMAC (RFC 2104) hashes a key longer than the
/// 64-byte block and pads a shorter one with zeros, so keys that differ only by trailing
/// zero bytes are the same key (the fuzzer found this within a minute).
fn same_hmac_key(a: &[u8], b: &[u8]) -> bool {
    use sha2::{Digest, Sha256};
    fn block(key: &[u8]) -> Vec<u8> {
        let mut block = if key.len() > 64 {
            Sha256::digest(key).to_vec()
        } else {
            key.to_vec()
        };
        while block.last() == Some(&0) {
            block.pop();
        }
        block
    }
    block(a) == block(b)
}

fn key(name: &str, bytes: &[u8]) -> SecretKey {
    match SecretKey::new(name, bytes, KeyReading::Verbatim) {
        Ok(key) => key,
        Err(error) => panic!("a 16-byte key is refused: {error}"),
    }
}

fn pick_scheme(selector: u8) -> Scheme {
    let index = usize::from(selector) % Scheme::ALL.len();
    Scheme::ALL.get(index).copied().unwrap_or(Scheme::Perf)
}

fn index_mod(bytes: &mut [u8], at: u16) -> Option<&mut u8> {
    let len = bytes.len();
    if len == 0 {
        return None;
    }
    bytes.get_mut(usize::from(at) % len)
}
