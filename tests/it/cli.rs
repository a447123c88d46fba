//! The real `perfhook` binary run as a subprocess: exit codes, output formats, `--request`,
//! `--scheme auto`, and that no secret ever reaches its output.

use crate::helpers::{fixture, perfhook, Run};

const SECRET: &str = "cli-test-secret-0123456789abcdef";
const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const NOW: &str = "1700000000";
const ENV: [(&str, &str); 2] = [("PERF_SECRET", SECRET), ("STD_SECRET", WHSEC)];

fn body_file() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("body.json");
    std::fs::copy(fixture("events/usage.threshold_reached.80.json"), &path).expect("copy");
    (dir, path.to_string_lossy().into_owned())
}

fn sign_headers(scheme: &str, secret_env: &str, body: &str, timestamp: &str) -> Vec<String> {
    let run = perfhook(
        &[
            "sign",
            "--scheme",
            scheme,
            "--secret-env",
            secret_env,
            "--body",
            body,
            "--timestamp",
            timestamp,
        ],
        &ENV,
        b"",
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    run.stdout.lines().map(str::to_owned).collect()
}

fn verify(extra: &[&str], headers: &[String]) -> Run {
    let mut args = vec!["verify-signature"];
    args.extend_from_slice(extra);
    for header in headers {
        args.push("-H");
        args.push(header);
    }
    perfhook(&args, &ENV, b"")
}

fn assert_no_secret(run: &Run) {
    for secret in [SECRET, WHSEC, "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"] {
        assert!(
            !run.stdout.contains(secret),
            "secret on stdout: {}",
            run.stdout
        );
        assert!(
            !run.stderr.contains(secret),
            "secret on stderr: {}",
            run.stderr
        );
    }
}

#[test]
fn a_fresh_signature_is_valid_with_exit_0_and_one_line() {
    let (_dir, body) = body_file();
    let headers = sign_headers("perf", "PERF_SECRET", &body, "1699999988");
    let run = verify(
        &[
            "--secret-env",
            "primary=PERF_SECRET",
            "--body",
            &body,
            "--now",
            NOW,
        ],
        &headers,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.stdout,
        "valid: scheme perf, secret \"primary\", signed 12 s ago\n"
    );
    assert_no_secret(&run);
}

#[test]
fn a_stale_signature_is_invalid_with_exit_1() {
    let (_dir, body) = body_file();
    let headers = sign_headers("perf", "PERF_SECRET", &body, "1699999588");
    let run = verify(
        &["--secret-env", "PERF_SECRET", "--body", &body, "--now", NOW],
        &headers,
    );
    assert_eq!(run.code, 1);
    assert_eq!(
        run.stdout,
        "invalid: timestamp too old (412 s, tolerance 300 s)\n"
    );
    assert_no_secret(&run);
}

#[test]
fn ignore_timestamp_passes_an_old_capture_and_says_so() {
    let (_dir, body) = body_file();
    let headers = sign_headers("perf", "PERF_SECRET", &body, "1699999588");
    let run = verify(
        &[
            "--secret-env",
            "PERF_SECRET",
            "--body",
            &body,
            "--now",
            NOW,
            "--ignore-timestamp",
        ],
        &headers,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout
            .contains("signed 412 s ago (timestamp not checked: --ignore-timestamp)"),
        "{}",
        run.stdout
    );
}

#[test]
fn a_wrong_secret_is_invalid_and_json_says_why() {
    let (_dir, body) = body_file();
    let headers = sign_headers("perf", "PERF_SECRET", &body, NOW);
    let run = perfhook(
        &[
            "verify-signature",
            "--secret-env",
            "OTHER",
            "--body",
            &body,
            "--now",
            NOW,
            "--json",
            "-H",
            &headers[0],
        ],
        &[("OTHER", "a-completely-different-secret")],
        b"",
    );
    assert_eq!(run.code, 1);
    let json: serde_json::Value = serde_json::from_str(&run.stdout).expect("json");
    assert_eq!(json["valid"], false);
    assert_eq!(json["error"]["type"], "invalid_signature");

    // The plain line says what a mismatch means and what to run next.
    let run = perfhook(
        &[
            "verify-signature",
            "--secret-env",
            "OTHER",
            "--body",
            &body,
            "--now",
            NOW,
            "-H",
            &headers[0],
        ],
        &[("OTHER", "a-completely-different-secret")],
        b"",
    );
    assert_eq!(run.code, 1);
    assert_eq!(run.stdout.lines().count(), 1, "{}", run.stdout);
    assert!(
        run.stdout
            .starts_with("invalid: no valid signature: matched no configured secret")
            && run
                .stdout
                .contains("`perfhook verify-signature --scheme auto`"),
        "{}",
        run.stdout
    );
}

#[test]
fn json_output_of_a_valid_delivery_names_the_secret_and_age() {
    let (_dir, body) = body_file();
    let headers = sign_headers("standard", "STD_SECRET", &body, "1699999990");
    let run = verify(
        &[
            "--scheme",
            "standard",
            "--secret-env",
            "STD_SECRET",
            "--body",
            &body,
            "--now",
            NOW,
            "--json",
        ],
        &headers,
    );
    assert_eq!(run.code, 0, "{} {}", run.stdout, run.stderr);
    let json: serde_json::Value = serde_json::from_str(&run.stdout).expect("json");
    assert_eq!(json["valid"], true);
    assert_eq!(json["scheme"], "standard");
    assert_eq!(json["secret"], "STD_SECRET");
    assert_eq!(json["age_seconds"], 10);
    assert_eq!(json["key_reading"], "whsec_base64");
    assert!(json["id"].as_str().expect("id").starts_with("msg_"));
    assert_no_secret(&run);
}

#[test]
fn every_scheme_signs_and_verifies_through_the_binary() {
    let (_dir, body) = body_file();
    for (scheme, env) in [
        ("perf", "PERF_SECRET"),
        ("stripe", "PERF_SECRET"),
        ("standard", "STD_SECRET"),
        ("github", "PERF_SECRET"),
        ("slack", "PERF_SECRET"),
    ] {
        let headers = sign_headers(scheme, env, &body, NOW);
        let run = verify(
            &[
                "--scheme",
                scheme,
                "--secret-env",
                env,
                "--body",
                &body,
                "--now",
                NOW,
            ],
            &headers,
        );
        assert_eq!(run.code, 0, "{scheme}: {} {}", run.stdout, run.stderr);
        assert!(
            run.stdout.starts_with(&format!("valid: scheme {scheme}, ")),
            "{}",
            run.stdout
        );
    }
}

#[test]
fn a_captured_request_file_verifies() {
    let (dir, body) = body_file();
    let headers = sign_headers("perf", "PERF_SECRET", &body, NOW);
    let body_bytes = std::fs::read(&body).expect("body");
    let mut capture = format!(
        "POST /webhooks/perf HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nContent-Type: application/json\r\n{}\r\nContent-Length: {}\r\n\r\n",
        headers[0],
        body_bytes.len()
    )
    .into_bytes();
    capture.extend_from_slice(&body_bytes);
    capture.extend_from_slice(b"\n"); // an editor's trailing newline, past Content-Length
    let path = dir.path().join("request.http");
    std::fs::write(&path, capture).expect("write");
    let run = perfhook(
        &[
            "verify-signature",
            "--secret-env",
            "PERF_SECRET",
            "--request",
            path.to_str().expect("path"),
            "--now",
            NOW,
        ],
        &ENV,
        b"",
    );
    assert_eq!(run.code, 0, "{} {}", run.stdout, run.stderr);
}

#[test]
fn auto_finds_standard_with_the_decoded_secret() {
    let (_dir, body) = body_file();
    let headers = sign_headers("standard", "STD_SECRET", &body, NOW);
    let run = verify(
        &[
            "--scheme",
            "auto",
            "--secret-env",
            "STD_SECRET",
            "--body",
            &body,
            "--now",
            NOW,
        ],
        &headers,
    );
    assert_eq!(run.code, 0, "{} {}", run.stdout, run.stderr);
    assert!(
        run.stdout.starts_with(
            "valid: scheme standard, secret \"STD_SECRET\" (base64-decoded after whsec_)"
        ),
        "{}",
        run.stdout
    );
}

#[test]
fn auto_finds_stripe_with_a_whsec_secret_used_verbatim() {
    // Stripe signs with the whole whsec_ string; sign with the perf-style verbatim reading.
    let (_dir, body) = body_file();
    let run = perfhook(
        &[
            "sign",
            "--scheme",
            "stripe",
            "--secret-env",
            "STD_SECRET",
            "--body",
            &body,
            "--timestamp",
            NOW,
        ],
        &ENV,
        b"",
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let headers: Vec<String> = run.stdout.lines().map(str::to_owned).collect();
    let run = verify(
        &[
            "--scheme",
            "auto",
            "--secret-env",
            "STD_SECRET",
            "--body",
            &body,
            "--now",
            NOW,
        ],
        &headers,
    );
    assert_eq!(run.code, 0, "{} {}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .starts_with("valid: scheme stripe, secret \"STD_SECRET\" (used verbatim)"),
        "{}",
        run.stdout
    );
}

#[test]
fn auto_explains_each_present_scheme_when_nothing_verifies() {
    let (_dir, body) = body_file();
    let headers = vec![
        format!("X-Perf-Signature: t={NOW},v1={}", "0".repeat(64)),
        "webhook-signature: v1,".to_owned(),
    ];
    let run = verify(
        &[
            "--scheme",
            "auto",
            "--secret-env",
            "PERF_SECRET",
            "--body",
            &body,
            "--now",
            NOW,
            "--json",
        ],
        &headers,
    );
    assert_eq!(run.code, 1);
    let json: serde_json::Value = serde_json::from_str(&run.stdout).expect("json");
    assert_eq!(json["error"]["type"], "no_scheme_matched");
    let attempts = json["attempts"].as_array().expect("attempts");
    assert_eq!(attempts[0]["scheme"], "perf");
    assert_eq!(attempts[0]["error"]["type"], "invalid_signature");
    assert_eq!(attempts[1]["scheme"], "standard");
    assert_eq!(attempts[1]["error"]["type"], "missing_header");

    let none = verify(
        &[
            "--scheme",
            "auto",
            "--secret-env",
            "PERF_SECRET",
            "--body",
            &body,
        ],
        &[],
    );
    assert_eq!(none.code, 1);
    assert!(
        none.stdout
            .starts_with("invalid: no signature header of any known scheme"),
        "{}",
        none.stdout
    );
}

#[test]
fn secrets_from_stdin_and_files_rotate() {
    let (dir, body) = body_file();
    let headers = sign_headers("perf", "PERF_SECRET", &body, NOW);
    let path = dir.path().join("old.secret");
    std::fs::write(&path, "an-old-rotated-out-secret-value\n").expect("write");
    let file_arg = format!("old={}", path.display());
    let mut args = vec![
        "verify-signature",
        "--secret-file",
        &file_arg,
        "--secret-stdin",
        "--body",
        &body,
        "--now",
        NOW,
        "-H",
    ];
    args.push(&headers[0]);
    let run = perfhook(&args, &[], format!("{SECRET}\n").as_bytes());
    assert_eq!(run.code, 0, "{} {}", run.stdout, run.stderr);
    assert!(run.stdout.contains("secret \"stdin\""), "{}", run.stdout);
}

#[test]
fn usage_and_io_errors_exit_2_with_one_plain_line() {
    let (_dir, body) = body_file();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec![
                "verify-signature",
                "--secret-env",
                "UNSET_VARIABLE_X",
                "--body",
                &body,
            ],
            "environment variable UNSET_VARIABLE_X is not set",
        ),
        (
            vec!["verify-signature", "--secret-env", "SHORT", "--body", &body],
            "secret \"SHORT\" is 6 bytes; at least 16 are required",
        ),
        (
            vec![
                "verify-signature",
                "--secret-env",
                "PERF_SECRET",
                "--body",
                "/nonexistent/body",
            ],
            "cannot read body file /nonexistent/body",
        ),
        (
            vec![
                "verify-signature",
                "--secret-env",
                "PERF_SECRET",
                "--body",
                &body,
                "-H",
                "no colon here",
            ],
            "-H takes 'Name: value'",
        ),
        (vec!["verify-signature", "--body", &body], "no secret given"),
        (
            vec![
                "verify-signature",
                "--secret-env",
                "PERF_SECRET",
                "--body",
                &body,
                "--tolerance",
                "0",
            ],
            "tolerance must be 1 to 86400 seconds",
        ),
        (
            vec![
                "verify-signature",
                "--scheme",
                "standard",
                "--secret-env",
                "PERF_SECRET",
                "--body",
                &body,
            ],
            "is not base64 after its whsec_ prefix",
        ),
    ];
    for (args, expected) in cases {
        let run = perfhook(&args, &[("PERF_SECRET", SECRET), ("SHORT", "secret")], b"");
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
        assert!(
            run.stderr.starts_with("perfhook: error: "),
            "{}",
            run.stderr
        );
        assert!(run.stderr.contains(expected), "{args:?}: {}", run.stderr);
        assert!(run.stdout.is_empty());
        assert_no_secret(&run);
    }
}

#[test]
fn bad_flags_exit_2_and_help_documents_exit_codes() {
    let run = perfhook(&["verify-signature", "--scheme", "nope"], &[], b"");
    assert_eq!(run.code, 2);
    let help = perfhook(&["verify-signature", "--help"], &[], b"");
    assert_eq!(help.code, 0);
    assert!(help.stdout.contains("1  invalid"), "{}", help.stdout);
    assert!(
        !help.stdout.contains("--secret "),
        "no flag takes a secret value on argv"
    );
}
