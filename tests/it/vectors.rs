//! Data-driven tests over fixtures/vectors: the public known answers and our attack cases.

use perfhook::signature::{
    sign, Delivery, HeaderList, KeyError, KeyReading, Scheme, SecretKey, TimestampPolicy, Verifier,
};
use serde::Deserialize;

use crate::helpers::fixture;

#[derive(Debug, Deserialize)]
struct KnownAnswer {
    name: String,
    source: String,
    scheme: String,
    secret: String,
    key_reading: String,
    timestamp: Option<u64>,
    id: Option<String>,
    body: String,
    expected: String,
}

fn known_answers() -> Vec<KnownAnswer> {
    let text = std::fs::read_to_string(fixture("vectors/known_answers.json")).expect("read");
    serde_json::from_str(&text).expect("parse known answers")
}

fn reading(name: &str) -> KeyReading {
    match name {
        "verbatim" => KeyReading::Verbatim,
        "whsec_base64" => KeyReading::WhsecBase64,
        other => panic!("unknown key reading {other}"),
    }
}

fn signature_header_value(scheme: Scheme, headers: &[(String, String)]) -> String {
    headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(scheme.default_signature_header()))
        .map(|(_, value)| value.clone())
        .expect("signature header")
}

#[test]
fn every_known_answer_signs_to_its_published_value() {
    let vectors = known_answers();
    assert_eq!(vectors.len(), 10, "every vector in VECTORS.md is present");
    for v in vectors {
        let scheme: Scheme = v.scheme.parse().expect("scheme");
        let key =
            SecretKey::new("vector", v.secret.as_bytes(), reading(&v.key_reading)).expect("key");
        let headers = sign(
            scheme,
            &[key],
            Delivery {
                timestamp: v.timestamp.unwrap_or(0),
                id: v.id.as_deref(),
                body: v.body.as_bytes(),
            },
        )
        .expect("sign");
        assert_eq!(
            signature_header_value(scheme, &headers),
            v.expected,
            "{} ({})",
            v.name,
            v.source
        );
    }
}

#[test]
fn every_known_answer_verifies_or_its_short_key_is_refused() {
    for v in known_answers() {
        let scheme: Scheme = v.scheme.parse().expect("scheme");
        let key =
            SecretKey::new("vector", v.secret.as_bytes(), reading(&v.key_reading)).expect("key");
        let mut headers = HeaderList::new();
        headers.push(scheme.default_signature_header(), v.expected.as_bytes());
        if let Some(t) = v.timestamp {
            headers.push(
                match scheme {
                    Scheme::Standard => "webhook-timestamp",
                    _ => "X-Slack-Request-Timestamp",
                },
                t.to_string(),
            );
        }
        if let Some(id) = &v.id {
            headers.push("webhook-id", id.as_bytes());
        }
        match Verifier::new(scheme, vec![key], TimestampPolicy::default()) {
            Ok(verifier) => {
                let now = v.timestamp.unwrap_or(1_700_000_000);
                let verdict = verifier.verify(&headers, v.body.as_bytes(), now);
                assert!(verdict.is_ok(), "{} ({}): {verdict:?}", v.name, v.source);
                let mut tampered = v.body.clone().into_bytes();
                tampered.push(b' ');
                assert!(
                    verifier.verify(&headers, &tampered, now).is_err(),
                    "{}",
                    v.name
                );
            }
            Err(KeyError::TooShort { len, .. }) => {
                assert!(len < 16, "{}: refused a {len}-byte key", v.name);
            }
            Err(other) => panic!("{}: {other}", v.name),
        }
    }
}

#[derive(Debug, Deserialize)]
struct VerifyCase {
    name: String,
    source: String,
    scheme: String,
    secrets: Vec<NamedSecret>,
    headers: Vec<(String, Option<String>)>,
    header_hex: Option<Vec<(String, String)>>,
    body: Option<String>,
    body_hex: Option<String>,
    now: u64,
    expect: String,
    expect_secret: Option<String>,
}

#[derive(Debug, Deserialize)]
struct NamedSecret {
    name: String,
    value: String,
}

#[test]
fn every_verify_case_gets_its_expected_verdict() {
    let text = std::fs::read_to_string(fixture("vectors/verify_cases.json")).expect("read");
    let cases: Vec<VerifyCase> = serde_json::from_str(&text).expect("parse verify cases");
    assert!(cases.len() >= 50, "only {} cases", cases.len());
    for case in cases {
        let scheme: Scheme = case.scheme.parse().expect("scheme");
        let keys = case
            .secrets
            .iter()
            .map(|s| {
                SecretKey::new(&s.name, s.value.as_bytes(), scheme.default_key_reading())
                    .expect("key")
            })
            .collect();
        let verifier = Verifier::new(scheme, keys, TimestampPolicy::default()).expect("verifier");
        let mut headers = HeaderList::new();
        if let Some(raw) = &case.header_hex {
            for (name, value) in raw {
                headers.push(name.clone(), hex::decode(value).expect("hex"));
            }
        } else {
            for (name, value) in &case.headers {
                headers.push(
                    name.clone(),
                    value.clone().expect("header value").into_bytes(),
                );
            }
        }
        let body = match (&case.body, &case.body_hex) {
            (Some(text), None) => text.clone().into_bytes(),
            (None, Some(hex)) => hex::decode(hex).expect("hex body"),
            _ => panic!("{}: exactly one of body and body_hex", case.name),
        };
        let verdict = verifier.verify(&headers, &body, case.now);
        match (case.expect.as_str(), &verdict) {
            ("valid", Ok(verified)) => {
                if let Some(secret) = &case.expect_secret {
                    assert_eq!(&*verified.secret, secret, "{}", case.name);
                }
            }
            (code, Err(error)) if code == error.code() => {
                let message = error.to_string();
                assert!(
                    !message.contains(&case.secrets[0].value),
                    "{}: secret in error",
                    case.name
                );
            }
            (expected, got) => panic!(
                "{} ({}): expected {expected}, got {got:?}",
                case.name, case.source
            ),
        }
    }
}
