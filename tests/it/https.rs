//! HTTPS: the receiver behind `[server.tls]`, checked by clients that verify its certificate
//! against a CA made at test time, with HSTS on every answer.

use std::io::{Read, Write};

use crate::app::spawn_app_with_server;
use crate::server_helpers::alert;
use crate::test_ca::TestCa;

#[test]
fn https_accepts_a_delivery_and_every_answer_carries_hsts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = TestCa::new("perfhook test CA");
    let leaf = ca.leaf(&["localhost", "127.0.0.1"], dir.path(), "server");
    let app = spawn_app_with_server(&leaf.server_tls(), "\"log\"", "");
    let client = ca.client();
    let base = format!("https://127.0.0.1:{}", app.address.port());

    let body = alert("evt_https_1");
    let mut response = client
        .post(&format!("{base}/webhooks/perf"))
        .header("Content-Type", "application/json")
        .header(app.sign(&body, 0).0.as_str(), app.sign(&body, 0).1.as_str())
        .send(&body[..])
        .expect("POST over HTTPS");
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(
        response
            .headers()
            .get("strict-transport-security")
            .and_then(|v| v.to_str().ok()),
        Some("max-age=31536000")
    );
    let answer = response.body_mut().read_to_string().expect("body");
    assert!(answer.contains("\"accepted\""), "{answer}");

    // Refusals, the health routes and unknown paths carry it too.
    for (path, status) in [("/healthz", 200), ("/nowhere", 404)] {
        let response = client.get(&format!("{base}{path}")).call().expect("GET");
        assert_eq!(response.status().as_u16(), status, "{path}");
        assert!(
            response.headers().contains_key("strict-transport-security"),
            "{path}"
        );
    }
    let refused = client
        .post(&format!("{base}/webhooks/perf"))
        .header("Content-Type", "application/json")
        .send(&body[..])
        .expect("POST unsigned");
    assert_eq!(refused.status().as_u16(), 400);
    assert!(refused.headers().contains_key("strict-transport-security"));
    // Refused in place of `100 Continue`, outside the App's middleware: it carries HSTS too.
    let refused_before_continue = client
        .post(&format!("{base}/webhooks/perf"))
        .header("Content-Type", "application/json")
        .header("Expect", "100-continue")
        .send(&body[..])
        .expect("POST unsigned with Expect");
    assert_eq!(refused_before_continue.status().as_u16(), 400);
    assert!(refused_before_continue
        .headers()
        .contains_key("strict-transport-security"));

    // actix-http's own answer to bytes that are not HTTP carries the JSON error and HSTS.
    let mut raw = ca.raw_tls(app.address.port());
    raw.write_all(b"GARBAGE\r\n\r\n").expect("write");
    let mut answer = String::new();
    let _ = raw.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(
        answer.contains("strict-transport-security: max-age=31536000\r\n"),
        "{answer}"
    );
    assert!(
        answer.contains("\"type\":\"malformed_request\""),
        "{answer}"
    );

    // A client that trusts only the public roots refuses the certificate, and plain HTTP
    // gets no HTTP answer from the TLS port.
    let public_roots = crate::server_helpers::client();
    assert!(public_roots.get(&format!("{base}/healthz")).call().is_err());
    assert!(public_roots
        .get(&format!("http://127.0.0.1:{}/healthz", app.address.port()))
        .call()
        .is_err());
}

#[test]
fn hsts_max_age_is_configurable_and_absent_over_plain_http() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = TestCa::new("perfhook test CA");
    let leaf = ca.leaf(&["127.0.0.1"], dir.path(), "server");
    let line = leaf
        .server_tls()
        .replace(" }", ", hsts_max_age_secs = 600 }");
    let app = spawn_app_with_server(&line, "\"log\"", "");
    let response = ca
        .client()
        .get(&format!("https://127.0.0.1:{}/healthz", app.address.port()))
        .call()
        .expect("GET");
    assert_eq!(
        response
            .headers()
            .get("strict-transport-security")
            .and_then(|v| v.to_str().ok()),
        Some("max-age=600")
    );

    let plain = crate::app::spawn_app("\"log\"", "");
    let response = plain.agent.get(&plain.url("/healthz")).call().expect("GET");
    assert!(!response.headers().contains_key("strict-transport-security"));
}
