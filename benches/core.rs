//! Benchmarks of the verification core, each beside its floor measured in the same run:
//! `verify` for the `perf` and `standard` schemes against a bare keyed HMAC-SHA256 over the
//! same signed bytes (the work no verifier can skip), header parsing alone, and event parsing
//! of the sample alerts. `cargo bench --bench core`; README quotes the medians and ratios.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use hmac::Mac;
use perfhook::event::parse_event;
use perfhook::signature::{
    parse_signature_list, parse_t_v1_value, sign, to_header_list, Delivery, KeyReading, Scheme,
    SecretKey, TimestampPolicy, Verifier,
};
use subtle::ConstantTimeEq;

const NOW: u64 = 1_700_000_000;
const SECRET: &[u8] = b"perf-bench-secret-0123456789abcdef";
const SIZES: [(usize, &str); 3] = [(1024, "1KiB"), (16 * 1024, "16KiB"), (256 * 1024, "256KiB")];

/// A JSON alert padded to exactly `len` bytes, like the load harness sends.
fn body(len: usize) -> Vec<u8> {
    let head = br#"{"id":"evt_bench_0000000001","type":"usage.threshold_reached","data":{"pad":""#;
    let tail = br#""}}"#;
    let mut body = head.to_vec();
    body.resize(len - tail.len(), b'x');
    body.extend_from_slice(tail);
    body
}

fn verify(c: &mut Criterion) {
    let mut group = c.benchmark_group("verify");
    for scheme in [Scheme::Perf, Scheme::Standard] {
        let key = SecretKey::new("bench", SECRET, KeyReading::Verbatim).expect("key");
        let verifier =
            Verifier::new(scheme, vec![key.clone()], TimestampPolicy::default()).expect("verifier");
        for (len, label) in SIZES {
            let body = body(len);
            let id = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W";
            let headers = to_header_list(
                &sign(
                    scheme,
                    std::slice::from_ref(&key),
                    Delivery {
                        timestamp: NOW,
                        id: Some(id),
                        body: &body,
                    },
                )
                .expect("sign"),
            );
            let expected = scheme.tag(&key, Some(b"1700000000"), Some(id), &body);
            group.throughput(Throughput::Bytes(len as u64));
            group.bench_with_input(
                BenchmarkId::new(format!("{scheme}"), label),
                &body,
                |b, body| {
                    b.iter(|| {
                        verifier
                            .verify(black_box(&headers), black_box(body), NOW)
                            .expect("valid")
                    });
                },
            );
            // The floor: the keyed HMAC state (ipad/opad already absorbed, as the verifier
            // keeps it) over the same signed bytes, and a constant-time compare.
            group.bench_with_input(
                BenchmarkId::new(format!("{scheme}_bare_hmac"), label),
                &body,
                |b, body| {
                    b.iter(|| {
                        let mut mac = key.mac();
                        if scheme == Scheme::Standard {
                            mac.update(id.as_bytes());
                            mac.update(b".");
                        }
                        mac.update(b"1700000000.");
                        mac.update(black_box(body));
                        let tag: [u8; 32] = mac.finalize().into_bytes().into();
                        assert!(bool::from(tag.ct_eq(&expected)));
                    });
                },
            );
        }
    }
    group.finish();
}

fn headers(c: &mut Criterion) {
    let mut group = c.benchmark_group("header_parse");
    let t_v1 = "t=1700000000,v1=ffad589aeeb63e5510ab64a48f57c83acd0b7f0376a949d355a35048ef281264";
    group.bench_function("perf_one_v1", |b| {
        b.iter(|| parse_t_v1_value(black_box(t_v1.as_bytes())).expect("valid"));
    });
    let rotated = format!("{t_v1},v1={}", &t_v1[16..]);
    group.bench_function("perf_two_v1", |b| {
        b.iter(|| parse_t_v1_value(black_box(rotated.as_bytes())).expect("valid"));
    });
    let list = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";
    group.bench_function("standard_one_v1", |b| {
        b.iter(|| parse_signature_list(black_box(list.as_bytes())).expect("valid"));
    });
    group.finish();
}

fn events(c: &mut Criterion) {
    let mut group = c.benchmark_group("event_parse");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/events");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("fixtures")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    for path in files {
        let bytes = std::fs::read(&path).expect("fixture");
        let name = path
            .file_stem()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(name), &bytes, |b, bytes| {
            b.iter(|| parse_event(black_box(bytes), None).expect("event"));
        });
    }
    let padded = body(1024);
    group.bench_function("padded_1KiB", |b| {
        b.iter(|| parse_event(black_box(&padded), None).expect("event"));
    });
    group.finish();
}

criterion_group!(benches, verify, headers, events);
criterion_main!(benches);
