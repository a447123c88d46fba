//! The receiver's behaviour over real HTTP, with the application in this process
//! (`spawn_app`): a fixed clock, the memory store, a log file and lettre's stub transport.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use perfhook::store::{JobStatus, Store};

use crate::app::{spawn_app, T0};
use crate::server_helpers::{alert, client, post, SECRET};

#[test]
fn an_alert_is_stored_then_logged_and_mailed_once_and_a_resend_is_a_duplicate() {
    let app = spawn_app("\"log\", \"mail\"", "");
    let body = alert("evt_once");
    let first = app.sign(&body, 0);
    let (status, answer) = post(
        &app.agent,
        &app.url("/webhooks/perf"),
        std::slice::from_ref(&first),
        &body,
    );
    assert_eq!(
        (status, answer["status"].as_str(), answer["id"].as_str()),
        (200, Some("accepted"), Some("evt_once"))
    );
    assert!(
        app.eventually(|| app.mails().len() == 1 && app.log_lines().len() == 1),
        "not notified"
    );
    let mail = app.mails().remove(0);
    assert!(
        mail.contains("Subject: [perf] 80% of monthly budget reached"),
        "{mail}"
    );
    assert!(mail.contains("Message-ID: <perf."), "{mail}");
    assert!(mail.contains("400.12 USD of 500.00 USD"), "{mail}");
    assert!(mail.contains("oncall@example.test") && mail.contains("finance@example.test"));
    let line = &app.log_lines()[0];
    assert_eq!(line["id"], "evt_once");
    assert_eq!(line["summary"], "80% of monthly budget");
    assert_eq!(line["figures"]["amount"], "400.12");

    // The sender retries later with a fresh signature: acknowledged, never notified again.
    app.clock.advance(Duration::from_secs(60));
    let (status, answer) = app.deliver(&body);
    assert_eq!(
        (status, answer["status"].as_str()),
        (200, Some("duplicate"))
    );
    let detail = app
        .runtime_block(app.store.event("perf", "evt_once"))
        .expect("read")
        .expect("stored");
    assert_eq!(detail.record.body.as_bytes(), &body[..], "kept verbatim");
    assert!(
        app.eventually(|| {
            app.runtime_block(app.store.event("perf", "evt_once"))
                .ok()
                .flatten()
                .is_some_and(|d| {
                    d.notifications
                        .iter()
                        .all(|j| j.status == JobStatus::Delivered)
                })
        }),
        "both notifications recorded as delivered"
    );
    thread::sleep(Duration::from_millis(300));
    assert_eq!(app.mails().len(), 1);
    assert_eq!(app.log_lines().len(), 1);
}

#[test]
fn every_refusal_has_its_status_and_json_error_and_stores_nothing() {
    let app = spawn_app("\"log\"", "");
    let url = app.url("/webhooks/perf");
    let body = alert("evt_refused");
    let t = T0;
    let good = app.sign(&body, 0);
    let h = |value: String| vec![("X-Perf-Signature".to_owned(), value)];
    type Case<'a> = (&'a str, Vec<(String, String)>, Vec<u8>, u16, &'a str);
    let cases: Vec<Case> = vec![
        ("no header", vec![], body.clone(), 400, "missing_header"),
        (
            "empty v1",
            h(format!("t={t},v1=")),
            body.clone(),
            400,
            "malformed_header",
        ),
        (
            "duplicate t",
            h(format!(
                "t={t},t={},{}",
                t - 1000,
                good.1.split(',').nth(1).unwrap_or("")
            )),
            body.clone(),
            400,
            "malformed_header",
        ),
        (
            "wrong signature",
            h(format!("t={t},v1={}", "0".repeat(64))),
            body.clone(),
            401,
            "invalid_signature",
        ),
        (
            "stale",
            vec![app.sign(&body, -301)],
            body.clone(),
            401,
            "timestamp_too_old",
        ),
        (
            "future",
            vec![app.sign(&body, 301)],
            body.clone(),
            401,
            "timestamp_in_future",
        ),
        (
            "body changed",
            vec![good.clone()],
            alert("evt_other"),
            401,
            "invalid_signature",
        ),
    ];
    for (name, headers, sent, status, kind) in cases {
        let (got, answer) = post(&app.agent, &url, &headers, &sent);
        assert_eq!(
            (got, answer["error"]["type"].as_str()),
            (status, Some(kind)),
            "{name}: {answer}"
        );
        assert!(
            answer["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{name}"
        );
    }
    // At the edges of the tolerance, both sides are accepted.
    for (id, skew) in [("evt_edge_old", -300), ("evt_edge_new", 300)] {
        let sent = alert(id);
        let (got, answer) = post(&app.agent, &url, &[app.sign(&sent, skew)], &sent);
        assert_eq!(
            (got, answer["status"].as_str()),
            (200, Some("accepted")),
            "{id}"
        );
    }
    // Bodies that verify but are not events: 400 invalid_event.
    for (name, sent) in [
        ("not json", b"hello".to_vec()),
        (
            "duplicate keys",
            br#"{"id":"a","id":"b","type":"x"}"#.to_vec(),
        ),
        (
            "200 deep",
            format!(
                "{{\"id\":\"d\",\"type\":\"x\",\"data\":{}{}}}",
                "[".repeat(200),
                "]".repeat(200)
            )
            .into_bytes(),
        ),
        ("not utf-8", b"{\"id\":\"\xff\",\"type\":\"x\"}".to_vec()),
        ("no id", br#"{"type":"x"}"#.to_vec()),
    ] {
        let (got, answer) = app.deliver(&sent);
        assert_eq!(
            (got, answer["error"]["type"].as_str()),
            (400, Some("invalid_event")),
            "{name}: {answer}"
        );
    }
    // A test-mode event at a live endpoint, and a live event at a test endpoint.
    let test_event = String::from_utf8(alert("evt_mode"))
        .expect("utf8")
        .replace("\"livemode\":true", "\"livemode\":false");
    let (got, answer) = app.deliver(test_event.as_bytes());
    assert_eq!(
        (got, answer["error"]["type"].as_str()),
        (401, Some("mode_mismatch"))
    );
    assert!(
        answer["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("a test event was sent to a live endpoint")),
        "{answer}"
    );
    let (got, answer) = app.deliver_to("/webhooks/perf-test", &alert("evt_mode_live"));
    assert_eq!(
        (got, answer["error"]["type"].as_str()),
        (401, Some("mode_mismatch"))
    );
    let (got, _) = app.deliver_to("/webhooks/perf-test", test_event.as_bytes());
    assert_eq!(got, 200);

    // Nothing was stored for the refused requests: the same ids are new now.
    for id in ["evt_refused", "evt_mode"] {
        let (got, answer) = app.deliver(&alert(id));
        assert_eq!(
            (got, answer["status"].as_str()),
            (200, Some("accepted")),
            "{id}"
        );
    }
    // Unknown paths and methods.
    let (status, text) = app.get("/webhooks/perf");
    assert_eq!(status, 405);
    assert!(text.contains("method_not_allowed"));
    let (got, answer) = post(&app.agent, &app.url("/elsewhere"), &[], b"{}");
    assert_eq!(
        (got, answer["error"]["type"].as_str()),
        (404, Some("not_found"))
    );
    assert!(!good.1.is_empty() && !SECRET.is_empty());
}

#[test]
fn a_body_at_the_limit_is_read_and_one_byte_over_is_413() {
    let app = spawn_app("", "");
    let pad = |total: usize| {
        let head = br#"{"id":"evt_big","type":"x","pad":""#;
        let mut body = head.to_vec();
        body.resize(total - 2, b'a');
        body.extend_from_slice(b"\"}");
        body
    };
    let (got, answer) = app.deliver(&pad(4096));
    assert_eq!(
        (got, answer["status"].as_str()),
        (200, Some("accepted")),
        "{answer}"
    );
    let over = pad(4097);
    let (got, answer) = app.deliver(&over);
    assert_eq!(
        (got, answer["error"]["type"].as_str()),
        (413, Some("payload_too_large"))
    );

    // Without Content-Length (chunked), the limit is applied while reading.
    let mut stream = TcpStream::connect(app.address).expect("connect");
    let header = app.sign(&over, 0);
    write!(
        stream,
        "POST /webhooks/perf HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n{}: {}\r\n\r\n{:x}\r\n",
        header.0,
        header.1,
        over.len()
    )
    .expect("write");
    stream.write_all(&over).expect("write");
    stream.write_all(b"\r\n0\r\n\r\n").expect("write");
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
}

#[test]
fn a_body_dripped_slowly_is_cut_off_with_408() {
    let app = spawn_app("", "");
    let body = alert("evt_slow");
    let header = app.sign(&body, 0);
    let mut stream = TcpStream::connect(app.address).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        stream,
        "POST /webhooks/perf HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n{}: {}\r\n\r\n",
        body.len(),
        header.0,
        header.1
    )
    .expect("write");
    let started = Instant::now();
    // One byte every 300 ms: each arrives well inside any per-read timeout, but the whole
    // body would take over a minute. The deadline is 1 s for the whole read.
    let mut answer = String::new();
    for byte in &body {
        if stream.write_all(&[*byte]).is_err() {
            break;
        }
        thread::sleep(Duration::from_millis(300));
        if started.elapsed() > Duration::from_secs(3) {
            break;
        }
    }
    let _ = stream.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("body_timeout"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(5));
    // Finding 8: the 1 s timeout is its own latency class, not one of the served requests.
    let (_, metrics) = app.get("/metrics");
    assert!(
        metrics.contains(
            r#"perfhook_request_duration_seconds_count{endpoint="perf",class="timeout"} 1"#
        ),
        "{metrics}"
    );
    assert!(!metrics.contains(r#"class="served""#), "{metrics}");
}

#[test]
fn identical_deliveries_at_the_same_instant_give_exactly_one_accepted() {
    let app = spawn_app("\"log\"", "");
    let url = app.url("/webhooks/perf");
    let body = alert("evt_race");
    let header = app.sign(&body, 0);
    let barrier = Arc::new(Barrier::new(16));
    let answers: Vec<String> = (0..16)
        .map(|_| {
            let (url, body, header, barrier) = (
                url.clone(),
                body.clone(),
                header.clone(),
                Arc::clone(&barrier),
            );
            thread::spawn(move || {
                let agent = client();
                barrier.wait();
                let (status, answer) = post(&agent, &url, &[header], &body);
                assert_eq!(status, 200);
                answer["status"].as_str().expect("status").to_owned()
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().expect("join"))
        .collect();
    assert_eq!(
        answers.iter().filter(|a| *a == "accepted").count(),
        1,
        "{answers:?}"
    );
    assert_eq!(answers.iter().filter(|a| *a == "duplicate").count(), 15);
    assert!(app.eventually(|| app.log_lines().len() == 1));
    thread::sleep(Duration::from_millis(300));
    assert_eq!(app.log_lines().len(), 1);
    assert_eq!(app.store.counts().events, 1);
}

#[test]
fn health_readiness_and_metrics_report_the_service() {
    let app = spawn_app("\"log\"", "");
    app.deliver(&alert("evt_metrics"));
    post(
        &app.agent,
        &app.url("/webhooks/perf"),
        &[],
        &alert("evt_unsigned"),
    );
    assert!(app.eventually(|| app.log_lines().len() == 1));
    assert!(app.eventually(|| app.store.counts().outbox == 0));
    assert_eq!(app.get("/healthz").0, 200);
    assert_eq!(
        app.get("/readyz"),
        (200, r#"{"outbox_worker":true,"store":true}"#.to_owned())
    );
    let (status, metrics) = app.get("/metrics");
    assert_eq!(status, 200);
    for line in [
        r#"perfhook_requests_total{endpoint="perf",outcome="accepted"} 1"#,
        r#"perfhook_requests_total{endpoint="perf",outcome="missing_header"} 1"#,
        r#"perfhook_verification_failures_total{endpoint="perf",reason="missing_header"} 1"#,
        r#"perfhook_notifications_total{notifier="log",result="sent"} 1"#,
        "perfhook_outbox_depth 0",
        "perfhook_stored_events 1",
        r#"perfhook_request_duration_seconds_count{endpoint="perf",class="served"} 1"#,
        r#"perfhook_request_duration_seconds_count{endpoint="perf",class="refused"} 1"#,
    ] {
        assert!(metrics.contains(line), "missing {line}:\n{metrics}");
    }
    assert!(!metrics.contains(SECRET));
}

#[test]
fn a_failing_notifier_is_retried_on_its_backoff_and_never_delays_another() {
    // The mail notifier's SMTP refuses (stub error); the log notifier is on its own worker.
    let app = crate::app::spawn_app_with_failing_mail("\"log\", \"mail\"");
    let (status, _) = app.deliver(&alert("evt_retry"));
    assert_eq!(status, 200);
    assert!(app.eventually(|| app.log_lines().len() == 1), "log delayed");
    let detail = || {
        app.runtime_block(app.store.event("perf", "evt_retry"))
            .expect("read")
            .expect("stored")
    };
    assert!(app.eventually(|| detail()
        .notifications
        .iter()
        .any(|j| j.notifier == "mail" && j.attempts == 1)));
    // No second attempt before the backoff (at least half of 200 ms) has passed on the clock.
    thread::sleep(Duration::from_millis(500));
    let mail = detail()
        .notifications
        .into_iter()
        .find(|j| j.notifier == "mail")
        .expect("mail job");
    assert_eq!((mail.status, mail.attempts), (JobStatus::Pending, 1));
    assert!(mail.due_ms >= T0 * 1000 + 100, "{mail:?}");
    // Time passes: the retry is due and made.
    app.clock.advance(Duration::from_secs(1));
    assert!(app.eventually(|| detail()
        .notifications
        .iter()
        .any(|j| j.notifier == "mail" && j.attempts == 2)));
}

/// Findings 3 and 7 of the hostile-input review, over HTTP: a mistyped field is refused
/// without its value in the answer; a number beyond f64 is valid JSON, stored verbatim.
#[test]
fn a_mistyped_field_is_refused_without_its_value_and_a_huge_number_is_accepted_verbatim() {
    let app = spawn_app("\"log\"", "");
    let mistyped = br#"{"id":"evt_card","type":"x","livemode":"card 4111-1111"}"#;
    let (status, answer) = app.deliver(mistyped);
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"]["type"], "invalid_event");
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("`livemode` must be true, false or null at /livemode"),
        "{message}"
    );
    assert!(!message.contains("4111"), "{message}");

    let huge = format!(
        r#"{{"id":"evt_huge","type":"usage.threshold_reached","data":{{"tokens":1e400,"n":{}}}}}"#,
        "9".repeat(500)
    );
    let (status, answer) = app.deliver(huge.as_bytes());
    assert_eq!(
        (status, answer["status"].as_str()),
        (200, Some("accepted")),
        "{answer}"
    );
    let detail = app
        .runtime_block(app.store.event("perf", "evt_huge"))
        .expect("read")
        .expect("stored");
    assert_eq!(detail.record.body, huge);
    assert!(app.eventually(|| app.log_lines().len() == 1), "notified");
}

/// A request that cannot verify is refused before its body is read: no signature header, or
/// a malformed one, gets its 400 at once, with the body never sent.
#[test]
fn a_missing_or_malformed_signature_header_is_refused_before_the_body_is_read() {
    let app = spawn_app("", "");
    for header in ["", "X-Perf-Signature: t=notanumber,v1=zz\r\n"] {
        let mut stream = TcpStream::connect(app.address).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        write!(
            stream,
            "POST /webhooks/perf HTTP/1.1\r\nHost: x\r\nContent-Length: 200000\r\n{header}\r\n"
        )
        .expect("write");
        let started = Instant::now();
        let mut answer = [0u8; 1024];
        let n = stream
            .read(&mut answer)
            .expect("an answer without the body");
        let answer = String::from_utf8_lossy(answer.get(..n).unwrap_or_default()).into_owned();
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
        assert!(
            answer.contains("missing_header") || answer.contains("malformed_header"),
            "{answer}"
        );
        assert!(
            started.elapsed() < Duration::from_millis(900),
            "waited for the body"
        );
    }
}

/// Sends a request head with `Expect: 100-continue` and no body, and returns the first
/// answer the server writes: `100 Continue`, or the refusal in its place.
fn expect_continue(app: &crate::app::TestApp, path: &str, headers: &str) -> (TcpStream, String) {
    let mut stream = TcpStream::connect(app.address).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nExpect: 100-continue\r\n{headers}\r\n"
    )
    .expect("write");
    let mut answer = [0u8; 2048];
    let n = stream.read(&mut answer).expect("an answer before the body");
    let answer = String::from_utf8_lossy(answer.get(..n).unwrap_or_default()).into_owned();
    (stream, answer)
}

/// `Expect: 100-continue`: a delivery that would be refused before its body is refused in
/// place of `100 Continue`, with the JSON error, so its sender never sends the body; a good
/// one gets `100 Continue` and is accepted once the body follows.
#[test]
fn expect_continue_is_answered_only_for_a_delivery_that_can_verify() {
    let app = spawn_app("", "");
    let (_, missing) = expect_continue(&app, "/webhooks/perf", "Content-Length: 200000\r\n");
    assert!(missing.starts_with("HTTP/1.1 400"), "{missing}");
    assert!(!missing.contains("100 Continue"), "{missing}");
    assert!(missing.contains("\"type\":\"missing_header\""), "{missing}");
    let (_, malformed) = expect_continue(
        &app,
        "/webhooks/perf",
        "Content-Length: 10\r\nX-Perf-Signature: t=notanumber,v1=zz\r\n",
    );
    assert!(malformed.starts_with("HTTP/1.1 400"), "{malformed}");
    assert!(malformed.contains("malformed_header"), "{malformed}");
    // Any other path is the App's: its router decides, after `100 Continue`.
    let (_, other) = expect_continue(&app, "/webhooks/nope", "Content-Length: 10\r\n");
    assert!(
        other.starts_with("HTTP/1.1 100 Continue\r\n\r\n"),
        "{other}"
    );
    let (_, too_large) = expect_continue(
        &app,
        "/webhooks/perf",
        &format!(
            "Content-Length: 999999999\r\n{}: {}\r\n",
            app.sign(b"{}", 0).0,
            app.sign(b"{}", 0).1
        ),
    );
    assert!(too_large.starts_with("HTTP/1.1 413"), "{too_large}");

    let body = alert("evt_expect");
    let (name, value) = app.sign(&body, 0);
    let (mut stream, go_on) = expect_continue(
        &app,
        "/webhooks/perf",
        &format!("Content-Length: {}\r\n{name}: {value}\r\n", body.len()),
    );
    assert_eq!(go_on, "HTTP/1.1 100 Continue\r\n\r\n");
    stream.write_all(&body).expect("body");
    let mut answer = Vec::new();
    let mut chunk = [0u8; 1024];
    while !String::from_utf8_lossy(&answer).contains("\"id\"") {
        let n = stream.read(&mut chunk).expect("the answer");
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&answer));
        answer.extend_from_slice(chunk.get(..n).unwrap_or_default());
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"status\":\"accepted\""), "{answer}");

    // The gate's refusals are counted like any other.
    let (_, metrics) = app.get("/metrics");
    let refused = metrics
        .lines()
        .find(|line| line.starts_with("perfhook_requests_total") && line.contains("missing_header"))
        .unwrap_or_default();
    assert!(refused.ends_with(" 1"), "{refused}");
}

/// Writes `bytes` on a new connection and reads until the server closes it.
fn raw_exchange(address: std::net::SocketAddr, bytes: &[u8]) -> String {
    let mut stream = TcpStream::connect(address).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .expect("timeout");
    stream.write_all(bytes).expect("write");
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    // A reset after the answer (the server closes with request bytes unread) ends it too.
    while let Ok(n) = stream.read(&mut chunk) {
        if n == 0 {
            break;
        }
        answer.extend_from_slice(chunk.get(..n).unwrap_or_default());
    }
    String::from_utf8_lossy(&answer).into_owned()
}

/// The answers actix-http writes itself, before any handler: bytes that are not HTTP, a head
/// too large, a head that never ends. Each carries the JSON error body like every other.
#[test]
fn requests_actix_cannot_parse_get_the_json_error_too() {
    let app = spawn_app("", "");
    let error_type = |answer: &str| -> String {
        let body = answer.split_once("\r\n\r\n").map_or("", |(_, body)| body);
        let body: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
        let length = format!("content-length: {}\r\n", body.to_string().len());
        assert!(answer.contains(&length), "{answer}");
        assert!(
            answer.contains("content-type: application/json\r\n"),
            "{answer}"
        );
        body["error"]["type"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    let garbage = raw_exchange(app.address, b"GARBAGE\r\n\r\n");
    assert!(garbage.starts_with("HTTP/1.1 400 "), "{garbage}");
    assert_eq!(error_type(&garbage), "malformed_request");
    // The operator API's listener as a connection's first answer; after another answer on
    // the same connection it stays actix-http's own (a stored request sent back there may
    // end like a head).
    let admin = raw_exchange(app.admin, b"GARBAGE\r\n\r\n");
    assert!(admin.starts_with("HTTP/1.1 400 "), "{admin}");
    assert_eq!(error_type(&admin), "malformed_request");
    let admin_later = raw_exchange(
        app.admin,
        b"GET /admin/v1/nowhere HTTP/1.1\r\nHost: x\r\n\r\nGARBAGE\r\n\r\n",
    );
    assert!(
        admin_later.contains("HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n"),
        "{admin_later}"
    );

    let mut huge = b"POST /webhooks/perf HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 140_000));
    huge.extend_from_slice(b"\r\n\r\n");
    let too_large = raw_exchange(app.address, &huge);
    assert!(too_large.starts_with("HTTP/1.1 431 "), "{too_large}");
    assert_eq!(error_type(&too_large), "headers_too_large");

    let mut many = b"GET /healthz HTTP/1.1\r\n".to_vec();
    for n in 0..100 {
        many.extend_from_slice(format!("X-H{n}: 1\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    let too_many = raw_exchange(app.address, &many);
    assert!(too_many.starts_with("HTTP/1.1 431 "), "{too_many}");

    // After a good answer on the same connection, the next request is garbage.
    let pipelined = raw_exchange(
        app.address,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGARBAGE\r\n\r\n",
    );
    let (first, second) = pipelined.split_at(
        pipelined
            .find("{\"status\":\"ok\"}")
            .map_or(0, |at| at + 15),
    );
    assert!(first.starts_with("HTTP/1.1 200 "), "{pipelined}");
    assert!(second.starts_with("HTTP/1.1 400 "), "{pipelined}");
    assert_eq!(error_type(second), "malformed_request");

    let started = Instant::now();
    let slow = raw_exchange(app.address, b"POST /webhooks/perf HTTP/1.1\r\nHost");
    assert!(slow.starts_with("HTTP/1.1 408 "), "{slow}");
    assert_eq!(error_type(&slow), "request_timeout");
    assert!(
        started.elapsed() >= Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
}

/// The IP allowlist behind a trusted proxy, with each client on a loopback address of its
/// own: 127.0.0.1 is the real sender, 127.0.0.2 a stranger, 127.0.0.3 the trusted proxy.
#[test]
fn the_allowlist_admits_listed_sources_and_reads_forwarding_headers_only_from_trusted_proxies() {
    use crate::server_helpers::post_from;
    use std::net::Ipv4Addr;
    let (sender, stranger, proxy) = (
        Ipv4Addr::new(127, 0, 0, 1),
        Ipv4Addr::new(127, 0, 0, 2),
        Ipv4Addr::new(127, 0, 0, 3),
    );
    let app = crate::app::spawn_app_with_server(
        "allow = [\"127.0.0.1\", \"203.0.113.0/24\"]\ntrusted_proxies = [\"127.0.0.3/32\"]\nclient_ip_header = \"x-forwarded-for\"",
        "\"log\"",
        // An endpoint with its own list, which replaces the server's.
        "[[endpoints]]\nname = \"own\"\npath = \"/webhooks/own\"\nnotifiers = []\nallow = [\"2001:db8::/32\", \"127.0.0.2\"]\nsecrets = [{ name = \"primary\", env = \"PATH\" }]\n",
    );
    let port = app.address.port();
    let send = |source: Ipv4Addr, path: &str, id: &str, forwarded: &[(&str, &str)]| {
        let body = alert(id);
        let mut headers = vec![app.sign(&body, 0)];
        headers.extend(
            forwarded
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned())),
        );
        post_from(source, port, path, &headers, &body)
    };
    let perf = "/webhooks/perf";
    assert_eq!(send(sender, perf, "evt_ip_1", &[]).0, 200);
    let (status, answer) = send(stranger, perf, "evt_ip_2", &[]);
    assert_eq!(status, 403, "{answer}");
    assert!(
        answer.contains("ip_not_allowed") && answer.contains("127.0.0.2"),
        "{answer}"
    );
    // A stranger cannot talk its way in with a forwarding header.
    let forged = [("X-Forwarded-For", "203.0.113.9")];
    assert_eq!(send(stranger, perf, "evt_ip_3", &forged).0, 403);
    // Through the trusted proxy, the right-most untrusted hop is the client.
    assert_eq!(
        send(
            proxy,
            perf,
            "evt_ip_4",
            &[("X-Forwarded-For", "203.0.113.9")]
        )
        .0,
        200
    );
    assert_eq!(
        send(
            proxy,
            perf,
            "evt_ip_5",
            &[("X-Forwarded-For", "203.0.113.9, 198.51.100.1")]
        )
        .0,
        403,
        "the left-most entry is whatever the client wrote"
    );
    // Only the configured header is read: a `Forwarded` that the client wrote and the proxy
    // passed through names nobody (a review finding: it used to win).
    assert_eq!(
        send(
            proxy,
            perf,
            "evt_ip_6",
            &[("Forwarded", "for=\"203.0.113.7:5555\";proto=https")]
        )
        .0,
        403
    );
    assert_eq!(
        send(proxy, perf, "evt_ip_7", &[("X-Forwarded-For", "unknown")]).0,
        403
    );
    assert_eq!(
        send(proxy, perf, "evt_ip_8", &[]).0,
        403,
        "the proxy itself is not listed"
    );
    // The endpoint's own list replaces the server's.
    assert_eq!(send(sender, "/webhooks/own", "evt_ip_9", &[]).0, 403);
    let (status, _) = send(stranger, "/webhooks/own", "evt_ip_10", &[]);
    assert_ne!(
        status, 403,
        "admitted by the endpoint's list (then refused by its secret)"
    );

    assert_eq!(
        app.store.counts().events,
        2,
        "nothing of a refused source is stored"
    );
    let (_, metrics) = app.get("/metrics");
    assert!(
        metrics.contains(r#"perfhook_requests_total{endpoint="perf",outcome="ip_not_allowed"} 6"#),
        "{metrics}"
    );
}

/// The sender's clock and silence, seen from /metrics: when each endpoint last got a
/// delivery that verified, and how far the signed time was from the receiver's.
#[test]
fn metrics_show_the_last_delivery_and_the_senders_clock_skew() {
    let app = spawn_app("", "");
    let body = alert("evt_skewed");
    let late = app.sign(&body, -250);
    let (status, _) = post(
        &app.agent,
        &app.url("/webhooks/perf"),
        std::slice::from_ref(&late),
        &body,
    );
    assert_eq!(status, 200);
    let (_, text) = app.get("/metrics");
    for line in [
        "perfhook_clock_skew_seconds{endpoint=\"perf\"} 250".to_owned(),
        format!("perfhook_last_delivery_timestamp_seconds{{endpoint=\"perf\"}} {T0}"),
    ] {
        assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
    }
    // A duplicate is a delivery too; a sender ahead of the receiver shows a negative skew.
    app.clock.advance(Duration::from_secs(30));
    let early = app.sign(&body, 40);
    post(&app.agent, &app.url("/webhooks/perf"), &[early], &body);
    let (_, text) = app.get("/metrics");
    assert!(
        text.contains("perfhook_clock_skew_seconds{endpoint=\"perf\"} -40"),
        "{text}"
    );
    assert!(text.contains(&format!(
        "perfhook_last_delivery_timestamp_seconds{{endpoint=\"perf\"}} {}",
        T0 + 30
    )));
}
