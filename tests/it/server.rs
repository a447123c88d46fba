//! The receiver end to end: the real binary, a real HTTP client, real files, a real SMTP server.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use crate::server_helpers::{
    alert, client, config, deliver, email_notifier, free_port, now, post, signature, wait_until,
    Server, Smtp, SECRET, SECRET_ENV,
};

const WAIT: Duration = Duration::from_secs(20);

#[test]
fn an_alert_is_stored_then_logged_and_emailed_once_and_a_resend_is_a_duplicate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let smtp = Smtp::start(free_port(), &dir.path().join("mail"));
    let server = Server::start(
        dir.path(),
        &config(
            dir.path(),
            "\"log\", \"mail\"",
            &email_notifier(smtp.port, 5_000),
        ),
    );
    let agent = client();
    let body = alert("evt_once");
    let first = signature(&body, now());
    let (status, answer) = post(
        &agent,
        &server.url("/webhooks/perf"),
        std::slice::from_ref(&first),
        &body,
    );
    assert_eq!(
        (status, answer["status"].as_str(), answer["id"].as_str()),
        (200, Some("accepted"), Some("evt_once"))
    );

    assert!(
        wait_until(WAIT, || smtp.messages().len() == 1
            && server.alert_lines("evt_once") == 1),
        "not notified"
    );
    let mail = smtp.messages().remove(0);
    assert!(
        mail.contains("Subject: [perf] usage.threshold_reached: 80% of monthly budget"),
        "{mail}"
    );
    assert!(mail.contains("Message-ID: <perf."), "{mail}");
    assert!(mail.contains("400.12 USD of 500.00 USD"), "{mail}");
    assert!(mail.contains("oncall@example.test") && mail.contains("finance@example.test"));

    // The sender retries later with a fresh signature: acknowledged, never notified again.
    thread::sleep(Duration::from_secs(1));
    let second = signature(&body, now());
    let (status, answer) = post(
        &agent,
        &server.url("/webhooks/perf"),
        std::slice::from_ref(&second),
        &body,
    );
    assert_eq!(
        (status, answer["status"].as_str()),
        (200, Some("duplicate"))
    );
    thread::sleep(Duration::from_millis(1500));
    assert_eq!(smtp.messages().len(), 1);
    assert_eq!(server.alert_lines("evt_once"), 1);
    server.assert_no_secrets(&[first.1, second.1]);
}

#[test]
fn every_refusal_has_its_status_and_json_error_and_stores_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &config(dir.path(), "\"log\"", ""));
    let agent = client();
    let url = server.url("/webhooks/perf");
    let body = alert("evt_refused");
    let t = now();
    let good = signature(&body, t);
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
            vec![signature(&body, t - 301)],
            body.clone(),
            401,
            "timestamp_too_old",
        ),
        (
            "future",
            vec![signature(&body, t + 301)],
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
        let (got, answer) = post(&agent, &url, &headers, &sent);
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
        let (got, answer) = post(&agent, &url, &[signature(&sent, now())], &sent);
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
    let (got, answer) = post(
        &agent,
        &url,
        &[signature(test_event.as_bytes(), now())],
        test_event.as_bytes(),
    );
    assert_eq!(
        (got, answer["error"]["type"].as_str()),
        (401, Some("mode_mismatch"))
    );
    let live = alert("evt_mode_live");
    let (got, answer) = post(
        &agent,
        &server.url("/webhooks/perf-test"),
        &[signature(&live, now())],
        &live,
    );
    assert_eq!(
        (got, answer["error"]["type"].as_str()),
        (401, Some("mode_mismatch"))
    );
    let (got, _) = post(
        &agent,
        &server.url("/webhooks/perf-test"),
        &[signature(test_event.as_bytes(), now())],
        test_event.as_bytes(),
    );
    assert_eq!(got, 200);

    // Nothing was stored for the refused requests: the same ids are new now.
    for id in ["evt_refused", "evt_mode"] {
        let (got, answer) = deliver(&agent, &server, &alert(id));
        assert_eq!(
            (got, answer["status"].as_str()),
            (200, Some("accepted")),
            "{id}"
        );
    }
    // Unknown paths and methods.
    let mut response = agent
        .get(&server.url("/webhooks/perf"))
        .call()
        .expect("GET");
    assert_eq!(response.status().as_u16(), 405);
    assert!(response
        .body_mut()
        .read_to_string()
        .expect("body")
        .contains("method_not_allowed"));
    let (got, answer) = post(&agent, &server.url("/elsewhere"), &[], b"{}");
    assert_eq!(
        (got, answer["error"]["type"].as_str()),
        (404, Some("not_found"))
    );
    server.assert_no_secrets(&[good.1]);
}

#[test]
fn a_body_at_the_limit_is_read_and_one_byte_over_is_413() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &config(dir.path(), "", ""));
    let agent = client();
    let pad = |total: usize| {
        let head = br#"{"id":"evt_big","type":"x","pad":""#;
        let mut body = head.to_vec();
        body.resize(total - 2, b'a');
        body.extend_from_slice(b"\"}");
        body
    };
    let at_limit = pad(4096);
    let (got, answer) = deliver(&agent, &server, &at_limit);
    assert_eq!(
        (got, answer["status"].as_str()),
        (200, Some("accepted")),
        "{answer}"
    );
    let over = pad(4097);
    let (got, answer) = deliver(&agent, &server, &over);
    assert_eq!(
        (got, answer["error"]["type"].as_str()),
        (413, Some("payload_too_large"))
    );

    // Without Content-Length (chunked), the limit is applied while reading.
    let mut stream = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    let header = signature(&over, now());
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
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &config(dir.path(), "", ""));
    let body = alert("evt_slow");
    let header = signature(&body, now());
    let mut stream = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
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
}

#[test]
fn identical_deliveries_at_the_same_instant_give_exactly_one_accepted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &config(dir.path(), "\"log\"", ""));
    let url = server.url("/webhooks/perf");
    let body = alert("evt_race");
    let header = signature(&body, now());
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
    assert!(wait_until(WAIT, || server.alert_lines("evt_race") == 1));
    thread::sleep(Duration::from_millis(1200));
    assert_eq!(server.alert_lines("evt_race"), 1);
}

#[test]
fn smtp_down_then_up_delivers_after_recovery_and_a_restart_keeps_dedupe() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let text = config(dir.path(), "\"mail\"", &email_notifier(port, 2_000));
    let server = Server::start(dir.path(), &text);
    let agent = client();
    let (got, _) = deliver(&agent, &server, &alert("evt_pending"));
    assert_eq!(got, 200);
    // Nothing listens on the SMTP port: the job fails and is retried.
    assert!(wait_until(WAIT, || server
        .stderr()
        .contains("notification failed; will retry")));

    // A graceful stop keeps the job; the restart resumes it once SMTP is up.
    let (code, _, stderr) = server.terminate();
    assert_eq!(code, 0, "{stderr}");
    let smtp = Smtp::start(port, &dir.path().join("mail"));
    let server = Server::start(dir.path(), &text);
    assert!(
        wait_until(WAIT, || smtp.messages().len() == 1),
        "{}",
        server.stderr()
    );
    let (got, answer) = deliver(&agent, &server, &alert("evt_pending"));
    assert_eq!((got, answer["status"].as_str()), (200, Some("duplicate")));
    thread::sleep(Duration::from_millis(1200));
    assert_eq!(smtp.messages().len(), 1);
}

#[test]
fn an_smtp_server_that_never_greets_times_out_and_is_retried_until_one_answers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let silent = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = silent.local_addr().expect("addr").port();
    // Accept connections and hold them open without a greeting.
    let holder = thread::spawn(move || {
        let mut held = Vec::new();
        silent.set_nonblocking(true).expect("nonblocking");
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(4) {
            if let Ok((stream, _)) = silent.accept() {
                held.push(stream);
            }
            thread::sleep(Duration::from_millis(20));
        }
        held.len()
    });
    let server = Server::start(
        dir.path(),
        &config(dir.path(), "\"mail\"", &email_notifier(port, 500)),
    );
    let agent = client();
    let (got, _) = deliver(&agent, &server, &alert("evt_silent"));
    assert_eq!(got, 200);
    let connections = holder.join().expect("join");
    assert!(
        connections >= 2,
        "expected retries, saw {connections} connection(s)"
    );
    assert!(
        server.stderr().contains("did not finish within 500 ms"),
        "{}",
        server.stderr()
    );
    // Now a real server answers on the same port.
    let smtp = Smtp::start(port, &dir.path().join("mail"));
    assert!(
        wait_until(WAIT, || smtp.messages().len() == 1),
        "{}",
        server.stderr()
    );
}

#[test]
fn kill_9_while_sending_loses_no_acknowledged_event_or_notification() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("alerts.jsonl");
    let extra = format!(
        "\n[notifiers.file]\nkind = \"log\"\ntarget = {:?}\n",
        log.display().to_string()
    );
    let text = config(dir.path(), "\"file\"", &extra);
    let server = Server::start(dir.path(), &text);
    let url = server.url("/webhooks/perf");
    // CI kills after 300 acknowledgements; `PERFHOOK_KILL9_AFTER=3000 PERFHOOK_BIN=target/release/perfhook`
    // runs the full-size check.
    let kill_after: usize = std::env::var("PERFHOOK_KILL9_AFTER")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let acknowledged = Arc::new(std::sync::Mutex::new(Vec::new()));
    let senders: Vec<_> = (0..4)
        .map(|thread_id| {
            let (url, acknowledged) = (url.clone(), Arc::clone(&acknowledged));
            thread::spawn(move || {
                let agent = client();
                for n in 0..kill_after {
                    let id = format!("evt_k9_{thread_id}_{n}");
                    let body = alert(&id);
                    let mut request = agent.post(&url).header("Content-Type", "application/json");
                    let (name, value) = signature(&body, now());
                    request = request.header(name.as_str(), value.as_str());
                    match request.send(&body[..]) {
                        Ok(response) if response.status().as_u16() == 200 => {
                            acknowledged.lock().expect("lock").push(id)
                        }
                        _ => return,
                    }
                }
            })
        })
        .collect();
    assert!(wait_until(WAIT, || acknowledged
        .lock()
        .expect("lock")
        .len()
        >= kill_after));
    server.kill9();
    for sender in senders {
        sender.join().expect("join");
    }
    let acknowledged = acknowledged.lock().expect("lock").clone();

    let server = Server::start(dir.path(), &text);
    let agent = client();
    let mut stored = 0;
    for id in &acknowledged {
        let (status, answer) = deliver(&agent, &server, &alert(id));
        assert_eq!(status, 200);
        if answer["status"] == "duplicate" {
            stored += 1;
        }
    }
    let notified = |id: &String| {
        let needle = format!("\"id\":\"{id}\"");
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains(&needle)
    };
    assert!(
        wait_until(WAIT, || acknowledged.iter().all(notified)),
        "some acknowledged events were never notified"
    );
    let count = acknowledged.len();
    println!(
        "kill -9: acknowledged {count}, stored {stored}, notified {}",
        acknowledged.iter().filter(|id| notified(id)).count()
    );
    assert_eq!(stored, count, "every acknowledged event survives kill -9");
}

#[test]
fn health_readiness_and_metrics_report_the_service() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &config(dir.path(), "\"log\"", ""));
    let agent = client();
    deliver(&agent, &server, &alert("evt_metrics"));
    post(
        &agent,
        &server.url("/webhooks/perf"),
        &[],
        &alert("evt_unsigned"),
    );
    assert!(wait_until(WAIT, || server.alert_lines("evt_metrics") == 1));
    let get = |path: &str| {
        let mut response = agent.get(&server.url(path)).call().expect("GET");
        (
            response.status().as_u16(),
            response.body_mut().read_to_string().expect("body"),
        )
    };
    assert_eq!(get("/healthz").0, 200);
    let (status, ready) = get("/readyz");
    assert_eq!(
        (status, ready.as_str()),
        (200, r#"{"outbox_worker":true,"store":true}"#)
    );
    let (status, metrics) = get("/metrics");
    assert_eq!(status, 200);
    for line in [
        r#"perfhook_requests_total{endpoint="perf",outcome="accepted"} 1"#,
        r#"perfhook_requests_total{endpoint="perf",outcome="missing_header"} 1"#,
        r#"perfhook_verification_failures_total{endpoint="perf",reason="missing_header"} 1"#,
        r#"perfhook_notifications_total{notifier="log",result="sent"} 1"#,
        "perfhook_outbox_depth 0",
        "perfhook_request_duration_seconds_count 2",
    ] {
        assert!(metrics.contains(line), "missing {line}:\n{metrics}");
    }
    assert!(!metrics.contains(SECRET));
}

#[test]
fn sigterm_stops_cleanly_with_exit_0() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &config(dir.path(), "\"log\"", ""));
    let (code, _, stderr) = server.terminate();
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("\"message\":\"stopped\""), "{stderr}");
}

#[test]
fn a_missing_or_short_secret_stops_start_up_with_exit_2_naming_the_variable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let data = data.to_str().expect("path");
    let run = |env: &[(&str, &str)]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_perfhook"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir", data])
            .env_remove("PERFHOOK_SECRET")
            .envs(env.iter().copied())
            .output()
            .expect("run");
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (code, stderr) = run(&[]);
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("environment variable PERFHOOK_SECRET is not set"),
        "{stderr}"
    );
    let (code, stderr) = run(&[("PERFHOOK_SECRET", "short")]);
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("PERFHOOK_SECRET") && stderr.contains("at least 16"),
        "{stderr}"
    );
    assert!(!stderr.contains("short\""), "{stderr}");
}

#[test]
fn config_check_prints_the_effective_config_without_secret_values() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("perfhook.toml");
    std::fs::write(&path, config(dir.path(), "\"log\"", "")).expect("write");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_perfhook"))
        .args(["config", "check", "--config", path.to_str().expect("path")])
        .env(SECRET_ENV, SECRET)
        .env("PERFHOOK_SERVER__BODY_LIMIT_BYTES", "2048")
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("body_limit_bytes = 2048"),
        "environment overrides the file:\n{stdout}"
    );
    assert!(stdout.contains(SECRET_ENV));
    assert!(!stdout.contains(SECRET));

    std::fs::write(
        &path,
        "[server]\nlisten = \"127.0.0.1:0\"\nbody_limit = 5\n",
    )
    .expect("write");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_perfhook"))
        .args(["config", "check", "--config", path.to_str().expect("path")])
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("body_limit"));
}

#[test]
fn send_signs_a_fixture_and_prints_the_answer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = config(dir.path(), "\"log\"", "");
    let server = Server::start(dir.path(), &text);
    let fixture = crate::helpers::fixture("events/budget.exceeded.json");
    let run = |url: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_perfhook"))
            .args([
                "send",
                fixture.to_str().expect("path"),
                "--config",
                dir.path().join("perfhook.toml").to_str().expect("path"),
                "--url",
                url,
            ])
            .env(SECRET_ENV, SECRET)
            .output()
            .expect("run")
    };
    let output = run(&server.url("/webhooks/perf"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.starts_with("200 OK\n") && stdout.contains("\"accepted\""),
        "{stdout}"
    );
    let again = run(&server.url("/webhooks/perf"));
    assert!(String::from_utf8_lossy(&again.stdout).contains("\"duplicate\""));
    let refused = run(&server.url("/webhooks/perf-test"));
    assert_eq!(refused.status.code(), Some(1), "a non-2xx answer exits 1");
    let unreachable = run(&format!("http://127.0.0.1:{}/webhooks/perf", free_port()));
    assert_eq!(unreachable.status.code(), Some(2));
}

#[test]
fn store_stats_counts_every_acknowledged_event_once_after_a_stop() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &config(dir.path(), "\"log\"", ""));
    let agent = client();
    for id in ["evt_s1", "evt_s2", "evt_s3", "evt_s1"] {
        let (status, _) = deliver(&agent, &server, &alert(id));
        assert_eq!(status, 200, "{id}");
    }
    let (code, _, _) = server.terminate();
    assert_eq!(code, 0);
    let data = dir.path().join("data");
    let run = crate::helpers::perfhook(
        &[
            "store",
            "stats",
            "--json",
            "--data-dir",
            data.to_str().expect("path"),
        ],
        &[],
        b"",
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let stats: serde_json::Value = serde_json::from_str(&run.stdout).expect("json");
    assert_eq!(stats["events"], 3, "{stats}");
    assert_eq!(stats["dead"], 0, "{stats}");
    assert!(stats["disk_bytes"].as_u64().expect("bytes") > 0, "{stats}");

    let missing = crate::helpers::perfhook(
        &["store", "stats", "--data-dir", "/nonexistent/perfhook"],
        &[],
        b"",
    );
    assert_eq!(missing.code, 2);
    assert!(
        missing.stderr.starts_with("perfhook: error:"),
        "{}",
        missing.stderr
    );
}
