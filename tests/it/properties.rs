//! Property tests: sign then verify round-trips for every scheme, any single-bit change breaks
//! verification, and no parser panics on arbitrary bytes.

use perfhook::capture::parse_captured_request;
use perfhook::signature::{
    parse_github_value, parse_signature_list, parse_slack_value, parse_t_v1_value,
    render_signature_list, render_t_v1_value, sign, to_header_list, Delivery, HeaderList,
    KeyReading, Scheme, SecretKey, TimestampPolicy, Verifier,
};
use proptest::prelude::*;

const NOW: u64 = 1_700_000_000;

fn scheme() -> impl Strategy<Value = Scheme> {
    prop::sample::select(Scheme::ALL.to_vec())
}

fn setup(scheme: Scheme, key: &[u8]) -> (SecretKey, Verifier) {
    let key = SecretKey::new("k", key, KeyReading::Verbatim).expect("key");
    let verifier =
        Verifier::new(scheme, vec![key.clone()], TimestampPolicy::default()).expect("verifier");
    (key, verifier)
}

fn signed(
    scheme: Scheme,
    key: &SecretKey,
    ts: u64,
    id: &str,
    body: &[u8],
) -> Vec<(String, String)> {
    sign(
        scheme,
        std::slice::from_ref(key),
        Delivery {
            timestamp: ts,
            id: Some(id),
            body,
        },
    )
    .expect("sign")
}

fn flip_bit_in_header(headers: &[(String, String)], which: usize, bit: u8) -> HeaderList {
    // Flip one bit of one header value, counting positions across all values.
    let total: usize = headers.iter().map(|(_, v)| v.len()).sum();
    let mut position = which % total;
    let mut list = HeaderList::new();
    for (name, value) in headers {
        let mut bytes = value.clone().into_bytes();
        if position < bytes.len() {
            bytes[position] ^= 1 << (bit % 8);
            position = usize::MAX;
        } else if position != usize::MAX {
            position -= bytes.len();
        }
        list.push(name.clone(), bytes);
    }
    list
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn signed_deliveries_verify_within_the_tolerance(
        scheme in scheme(),
        key in prop::collection::vec(any::<u8>(), 16..80),
        body in prop::collection::vec(any::<u8>(), 0..512),
        skew in -300i64..=300,
        id in "[a-zA-Z0-9_]{1,40}",
    ) {
        let (key, verifier) = setup(scheme, &key);
        let ts = NOW.checked_add_signed(skew).expect("in range");
        let headers = to_header_list(&signed(scheme, &key, ts, &id, &body));
        let verified = verifier.verify(&headers, &body, NOW).expect("valid");
        prop_assert_eq!(&*verified.secret, "k");
        prop_assert_eq!(verified.timestamp, scheme.has_timestamp().then_some(ts));
    }

    #[test]
    fn any_single_bit_change_to_the_body_fails(
        scheme in scheme(),
        key in prop::collection::vec(any::<u8>(), 16..64),
        body in prop::collection::vec(any::<u8>(), 1..512),
        index in any::<usize>(),
        bit in 0u8..8,
    ) {
        let (key, verifier) = setup(scheme, &key);
        let headers = to_header_list(&signed(scheme, &key, NOW, "msg_1", &body));
        let mut tampered = body.clone();
        let i = index % tampered.len();
        tampered[i] ^= 1 << bit;
        prop_assert!(verifier.verify(&headers, &tampered, NOW).is_err());
    }

    #[test]
    fn any_single_bit_change_to_a_header_value_fails(
        scheme in scheme(),
        key in prop::collection::vec(any::<u8>(), 16..64),
        body in prop::collection::vec(any::<u8>(), 0..256),
        which in any::<usize>(),
        bit in 0u8..8,
    ) {
        // Covers the timestamp, the id and the signature: every header a scheme signs or carries.
        let (key, verifier) = setup(scheme, &key);
        let mut headers = signed(scheme, &key, NOW, "msg_1", &body);
        // GitHub's delivery id is not signed, so a change to it must not matter; leave it out.
        headers.retain(|(name, _)| name != "X-GitHub-Delivery");
        let tampered = flip_bit_in_header(&headers, which, bit);
        prop_assert!(verifier.verify(&tampered, &body, NOW).is_err());
    }

    #[test]
    fn a_different_key_never_verifies(
        scheme in scheme(),
        key in prop::collection::vec(any::<u8>(), 16..64),
        other in prop::collection::vec(any::<u8>(), 16..64),
        body in prop::collection::vec(any::<u8>(), 0..256),
    ) {
        prop_assume!(key != other);
        let (key, _) = setup(scheme, &key);
        let (_, other_verifier) = setup(scheme, &other);
        let headers = to_header_list(&signed(scheme, &key, NOW, "msg_1", &body));
        prop_assert!(other_verifier.verify(&headers, &body, NOW).is_err());
    }

    #[test]
    fn rendered_headers_parse_back_to_the_same_values(
        ts in 0u64..=9_999_999_999,
        tags in prop::collection::vec(any::<[u8; 32]>(), 1..=16),
    ) {
        let rendered = render_t_v1_value(ts, &tags);
        let parsed = parse_t_v1_value(rendered.as_bytes()).expect("parse");
        prop_assert_eq!(parsed.timestamp.secs, ts);
        prop_assert_eq!(&parsed.tags, &tags);
        let list = render_signature_list(&tags);
        prop_assert_eq!(parse_signature_list(list.as_bytes()).expect("parse"), tags);
    }

    #[test]
    fn parsers_never_panic_on_arbitrary_bytes(input in prop::collection::vec(any::<u8>(), 0..400)) {
        let _ = parse_t_v1_value(&input);
        let _ = parse_signature_list(&input);
        let _ = parse_github_value(&input);
        let _ = parse_slack_value(&input);
        let _ = parse_captured_request(&input);
    }

    #[test]
    fn verify_never_panics_on_arbitrary_headers(
        scheme in scheme(),
        values in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..120), 4),
        body in prop::collection::vec(any::<u8>(), 0..64),
        now in any::<u64>(),
    ) {
        let (_, verifier) = setup(scheme, b"0123456789abcdef");
        let names = [scheme.default_signature_header(), "webhook-id", "webhook-timestamp", "X-Slack-Request-Timestamp"];
        let mut headers = HeaderList::new();
        for (name, value) in names.iter().zip(values) {
            headers.push(*name, value);
        }
        // Arbitrary bytes essentially never carry a valid MAC; the point is a declared outcome.
        let _ = verifier.verify(&headers, &body, now);
    }

    #[test]
    fn t_v1_parses_only_well_formed_grammar(input in "[tv1=,0-9a-f ]{0,120}") {
        if let Ok(parsed) = parse_t_v1_value(input.as_bytes()) {
            // What parses has no space, one `t` and 1..=16 tags.
            prop_assert!(!input.contains(' '));
            prop_assert_eq!(input.split(',').filter(|e| e.starts_with("t=")).count(), 1);
            prop_assert!((1..=16).contains(&parsed.tags.len()));
        }
    }
}
