//! Refused deliveries end to end, on the real binary: a delivery signed with a secret the
//! receiver does not have is refused and kept; `perfhook refused` lists it and exports it;
//! `verify-signature` proves it with the right secret; once that secret is added (SIGHUP),
//! `refused reverify` accepts it once and it is notified once.

use std::time::Duration;

use crate::helpers::perfhook;
use crate::server_helpers::{alert, client, config, now, post, signature_with, wait_until, Server};

const WAIT: Duration = Duration::from_secs(20);
const NEXT_SECRET: &str = "the-sender-moved-to-this-secret-0123";

#[test]
fn a_refused_delivery_is_listed_exported_proven_and_accepted_once_after_the_fix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let data = data.to_str().expect("path");
    let made = perfhook(
        &[
            "keys",
            "create",
            "--data-dir",
            data,
            "--name",
            "ops",
            "--scope",
            "refused:read",
            "--scope",
            "refused:write",
        ],
        &[],
        b"",
    );
    assert_eq!(made.code, 0, "{}", made.stderr);
    let key = made.stdout.trim().to_owned();
    let reader = perfhook(
        &[
            "keys",
            "create",
            "--data-dir",
            data,
            "--name",
            "viewer",
            "--scope",
            "refused:read",
        ],
        &[],
        b"",
    );
    let reader_key = reader.stdout.trim().to_owned();

    let server = Server::start(dir.path(), &config(dir.path(), "\"log\"", ""));
    let body = alert("evt_moved");
    let (status, answer) = post(
        &client(),
        &server.url("/webhooks/perf"),
        &[signature_with(NEXT_SECRET, &body, now())],
        &body,
    );
    assert_eq!(
        (status, answer["error"]["type"].as_str()),
        (401, Some("invalid_signature"))
    );
    assert!(!server.stderr().contains(NEXT_SECRET));
    // The same sender, chunked: kept de-chunked, so it can be exported and re-verified too.
    let chunked_body = alert("evt_chunked");
    let (name, value) = signature_with(NEXT_SECRET, &chunked_body, now());
    let mut request = format!(
        "POST /webhooks/perf HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         {name}: {value}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n",
        chunked_body.len()
    )
    .into_bytes();
    request.extend_from_slice(&chunked_body);
    request.extend_from_slice(b"\r\n0\r\n\r\n");
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    std::io::Write::write_all(&mut stream, &request).expect("send");
    let mut answer = String::new();
    std::io::Read::read_to_string(&mut stream, &mut answer).expect("answer");
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");

    let admin = server.admin_base();
    let cli = |args: &[&str], key: &str| {
        let mut all = args.to_vec();
        all.extend_from_slice(&["--admin-url", &admin]);
        perfhook(&all, &[("PERFHOOK_ADMIN_KEY", key)], b"")
    };
    let listed = cli(&["refused", "list", "--json"], &key);
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    let listed: serde_json::Value = serde_json::from_str(&listed.stdout).expect("json");
    assert_eq!(
        listed["refused"].as_array().map(Vec::len),
        Some(2),
        "{listed}"
    );
    let refused = &listed["refused"][1];
    assert_eq!(refused["reason"], "invalid_signature");
    assert_eq!(refused["endpoint"], "perf");
    assert_eq!(refused["source"], "127.0.0.1");
    let id = refused["id"].as_str().expect("id").to_owned();
    let table = cli(&["refused", "list"], &key);
    assert!(table
        .stdout
        .lines()
        .nth(2)
        .is_some_and(|line| line.starts_with(&id)));

    let shown = cli(&["refused", "show", &id], &key);
    let shown: serde_json::Value = serde_json::from_str(&shown.stdout).expect("json");
    assert_eq!(shown["body"].as_str().map(str::as_bytes), Some(&body[..]));

    let file = dir.path().join("refused.http");
    let file = file.to_str().expect("path");
    let exported = cli(&["refused", "export", &id, "--out", file], &key);
    assert_eq!(exported.code, 0, "{}", exported.stderr);
    let proven = perfhook(
        &[
            "verify-signature",
            "--request",
            file,
            "--secret-env",
            "NEXT",
        ],
        &[("NEXT", NEXT_SECRET)],
        b"",
    );
    assert_eq!(proven.code, 0, "{}", proven.stdout);
    assert!(
        proven.stdout.starts_with("valid: scheme perf"),
        "{}",
        proven.stdout
    );

    // Re-verification needs refused:write.
    let denied = cli(&["refused", "reverify"], &reader_key);
    assert_eq!(denied.code, 2);
    assert_eq!(
        denied.stderr.trim(),
        "perfhook: error: 403 insufficient_scope: this API key lacks the refused:write scope"
    );
    let before_fix = cli(&["refused", "reverify"], &key);
    assert!(before_fix
        .stdout
        .starts_with(&format!("still refused: {id} (invalid_signature")));
    assert_eq!(
        before_fix.stdout.lines().count(),
        2,
        "{}",
        before_fix.stdout
    );

    // The sender's new secret, added as a second one; SIGHUP applies it.
    let secret_file = dir.path().join("next.secret");
    std::fs::write(&secret_file, NEXT_SECRET).expect("write secret");
    let fixed = config(dir.path(), "\"log\"", "").replace(
        "secrets = [{ name = \"primary\", env = \"PERFHOOK_TEST_SECRET\" }]\n\n[[endpoints]]\nname = \"perf-test\"",
        &format!(
            "secrets = [{{ name = \"primary\", env = \"PERFHOOK_TEST_SECRET\" }}, {{ name = \"next\", file = {:?} }}]\n\n[[endpoints]]\nname = \"perf-test\"",
            secret_file.display().to_string()
        ),
    );
    assert!(
        fixed.contains("next.secret"),
        "the config gained the secret"
    );
    std::fs::write(dir.path().join("perfhook.toml"), fixed).expect("config");
    server.signal("HUP");
    assert!(wait_until(WAIT, || server
        .stderr()
        .contains("configuration reloaded")));

    let after_fix = cli(&["refused", "reverify"], &key);
    assert_eq!(after_fix.code, 0, "{}", after_fix.stderr);
    let lines: Vec<&str> = after_fix.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", after_fix.stdout);
    assert_eq!(lines[0], format!("accepted: {id} (event evt_moved)"));
    assert!(lines[1].ends_with("(event evt_chunked)"), "{}", lines[1]);
    assert!(wait_until(WAIT, || server.alert_lines("evt_moved") == 1
        && server.alert_lines("evt_chunked") == 1));
    let again = cli(&["refused", "reverify"], &key);
    assert_eq!(again.stdout.trim(), "", "nothing left to re-verify");
    let emptied = cli(&["refused", "list", "--json"], &key);
    assert!(
        emptied.stdout.contains("\"refused\":[]"),
        "{}",
        emptied.stdout
    );
    // The sender's own retry is now a duplicate, and nothing is notified twice.
    let (status, answer) = post(
        &client(),
        &server.url("/webhooks/perf"),
        &[signature_with(NEXT_SECRET, &body, now())],
        &body,
    );
    assert_eq!(
        (status, answer["status"].as_str()),
        (200, Some("duplicate"))
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(server.alert_lines("evt_moved"), 1);
    server.assert_no_secrets(&[key.clone(), reader_key.clone(), NEXT_SECRET.to_owned()]);
}
