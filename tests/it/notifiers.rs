//! The webhook-forward and command notifiers, run through `perfhook notify test` against a
//! real HTTP listener and real programs.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::mpsc;

use perfhook::signature::{HeaderList, KeyReading, Scheme, SecretKey, TimestampPolicy, Verifier};

use crate::helpers::perfhook;
use crate::server_helpers::{config, SECRET, SECRET_ENV};

const FORWARD_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// One HTTP request as received: headers (lowercased names) and body.
struct Received {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// Answers the next request on a fresh port with `status`; the request arrives on the
/// channel.
fn one_shot_server(status: u16) -> (u16, mpsc::Receiver<Received>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (sent, received) = mpsc::channel();
    std::thread::spawn(move || {
        let (stream, _) = listener.accept().expect("accept");
        let mut reader = BufReader::new(stream.try_clone().expect("clone"));
        let mut headers = Vec::new();
        let mut line = String::new();
        reader.read_line(&mut line).expect("request line");
        loop {
            line.clear();
            reader.read_line(&mut line).expect("header");
            let trimmed = line.trim_end();
            if trimmed.is_empty() {
                break;
            }
            if let Some((name, value)) = trimmed.split_once(':') {
                headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
            }
        }
        let length = headers
            .iter()
            .find(|(name, _)| name == "content-length")
            .and_then(|(_, value)| value.parse::<usize>().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        reader.read_exact(&mut body).expect("body");
        let mut stream = stream;
        write!(
            stream,
            "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        )
        .expect("answer");
        let _ = sent.send(Received { headers, body });
    });
    (port, received)
}

fn notify_test(dir: &Path, notifiers: &str, notifier: &str) -> (i32, String) {
    let file = dir.join("perfhook.toml");
    std::fs::write(&file, config(dir, "", notifiers)).expect("config");
    let run = perfhook(
        &[
            "notify",
            "test",
            "--config",
            file.to_str().expect("path"),
            "--notifier",
            notifier,
        ],
        &[(SECRET_ENV, SECRET)],
        b"",
    );
    assert!(run.stderr.is_empty() || run.code != 2, "{}", run.stderr);
    (run.code, run.stdout)
}

#[test]
fn the_webhook_notifier_forwards_the_event_signed_with_standard_webhooks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let secret_file = dir.path().join("forward.secret");
    std::fs::write(&secret_file, FORWARD_SECRET).expect("secret");
    let (port, received) = one_shot_server(200);
    let section = format!(
        "[notifiers.forward]\nkind = \"webhook\"\nurl = \"http://127.0.0.1:{port}/hook\"\nsecret_file = {:?}\n",
        secret_file.display().to_string()
    );
    let (code, out) = notify_test(dir.path(), &section, "forward");
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("forward: sent sample alert evt_"), "{out}");
    let request = received.recv().expect("a forwarded request");
    let mut headers = HeaderList::new();
    for (name, value) in &request.headers {
        headers.push(name.clone(), value.clone().into_bytes());
    }
    let key = SecretKey::new(
        "forward",
        FORWARD_SECRET.as_bytes(),
        KeyReading::WhsecBase64,
    )
    .expect("key");
    let verifier =
        Verifier::new(Scheme::Standard, vec![key], TimestampPolicy::default()).expect("verifier");
    let now = perfhook::clock::unix_now();
    let verified = verifier
        .verify(&headers, &request.body, now)
        .expect("the forward verifies with the Standard Webhooks scheme");
    let body: serde_json::Value = serde_json::from_slice(&request.body).expect("json");
    assert_eq!(
        verified.id.as_deref(),
        body["id"].as_str(),
        "the event id is the message id"
    );

    // A receiver that will never take it is not retried; one that fails for now is.
    for (status, word) in [(404, "answered 404"), (503, "answered 503")] {
        let (port, _received) = one_shot_server(status);
        let section = format!(
            "[notifiers.forward]\nkind = \"webhook\"\nurl = \"http://127.0.0.1:{port}/hook\"\nsecret_file = {:?}\n",
            secret_file.display().to_string()
        );
        let (code, out) = notify_test(dir.path(), &section, "forward");
        assert_eq!(code, 1);
        assert!(
            out.starts_with("forward: failed: ") && out.contains(word),
            "{out}"
        );
    }
}

fn script(dir: &Path, name: &str, body: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("script");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    path.to_str().expect("path").to_owned()
}

#[test]
fn the_command_notifier_runs_a_program_with_the_event_and_a_clean_environment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("seen");
    let ok = script(dir.path(), "ok.sh", "cat > \"$1.body\"\nenv > \"$1.env\"");
    let section = format!(
        "[notifiers.run]\nkind = \"command\"\nprogram = {ok:?}\nargs = [{:?}]\n",
        out.display().to_string()
    );
    let (code, said) = notify_test(dir.path(), &section, "run");
    assert_eq!(code, 0, "{said}");
    let body = std::fs::read_to_string(format!("{}.body", out.display())).expect("stdin");
    let event: serde_json::Value = serde_json::from_str(&body).expect("the event on stdin");
    let env = std::fs::read_to_string(format!("{}.env", out.display())).expect("env");
    assert!(env.contains(&format!(
        "PERFHOOK_EVENT_ID={}",
        event["id"].as_str().expect("id")
    )));
    assert!(
        env.contains("PERFHOOK_EVENT_TYPE=usage.threshold_reached"),
        "{env}"
    );
    assert!(env.contains("PERFHOOK_USAGE_PERCENT=80"), "{env}");
    assert!(env.contains("PERFHOOK_SUBJECT=perfhook notify test / support-bot: 80% of monthly budget reached (test mode)"), "{env}");
    assert!(
        !env.contains(SECRET_ENV) && !env.contains(SECRET),
        "the receiver's secrets stay"
    );

    let failing = script(dir.path(), "fail.sh", "echo 'relay down' >&2\nexit 3");
    let section = format!("[notifiers.run]\nkind = \"command\"\nprogram = {failing:?}\n");
    let (code, said) = notify_test(dir.path(), &section, "run");
    assert_eq!(code, 1);
    assert!(
        said.contains("exited with exit status: 3: relay down"),
        "{said}"
    );

    let slow = script(dir.path(), "slow.sh", "sleep 5");
    let section =
        format!("[notifiers.run]\nkind = \"command\"\nprogram = {slow:?}\ntimeout_ms = 300\n");
    let (code, said) = notify_test(dir.path(), &section, "run");
    assert_eq!(code, 1);
    assert!(
        said.contains("did not finish within 300 ms and was killed"),
        "{said}"
    );

    // A program that does not exist is refused by the configuration, before any event.
    let file = dir.path().join("perfhook.toml");
    std::fs::write(
        &file,
        config(
            dir.path(),
            "",
            "[notifiers.run]\nkind = \"command\"\nprogram = \"/nonexistent/notify\"\n",
        ),
    )
    .expect("config");
    let checked = perfhook(
        &["config", "check", "--config", file.to_str().expect("path")],
        &[(SECRET_ENV, SECRET)],
        b"",
    );
    assert_eq!(checked.code, 2);
    assert!(
        checked
            .stderr
            .contains("program /nonexistent/notify is not an executable file"),
        "{}",
        checked.stderr
    );
}

#[test]
fn a_command_is_judged_by_its_own_exit_and_a_timeout_stops_all_it_started() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Exit 0 while a background job still holds the outputs: delivered, at once.
    let leaves = script(
        dir.path(),
        "leaves.sh",
        "cat >/dev/null\nsleep 30 &\nexit 0",
    );
    let section =
        format!("[notifiers.run]\nkind = \"command\"\nprogram = {leaves:?}\ntimeout_ms = 5000\n");
    let started = std::time::Instant::now();
    let (code, said) = notify_test(dir.path(), &section, "run");
    assert_eq!(code, 0, "{said}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(4),
        "not held by the background job"
    );
    // Writes far more than is kept: read to its end with bounded memory, and delivered.
    let chatty = script(
        dir.path(),
        "chatty.sh",
        "head -c 300000 /dev/zero | tr '\\0' x\nexit 0",
    );
    let section =
        format!("[notifiers.run]\nkind = \"command\"\nprogram = {chatty:?}\ntimeout_ms = 5000\n");
    let (code, said) = notify_test(dir.path(), &section, "run");
    assert_eq!(code, 0, "{said}");
    // A timeout kills its whole process group: no orphan survives.
    let marker = dir.path().join("alive");
    let stuck = script(
        dir.path(),
        "stuck.sh",
        &format!(
            "(while true; do touch {:?}; sleep 0.1; done) &\nsleep 300",
            marker.display().to_string()
        ),
    );
    let section =
        format!("[notifiers.run]\nkind = \"command\"\nprogram = {stuck:?}\ntimeout_ms = 500\n");
    let (code, said) = notify_test(dir.path(), &section, "run");
    assert_eq!(code, 1);
    assert!(
        said.contains("did not finish within 500 ms and was killed"),
        "{said}"
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    let _ = std::fs::remove_file(&marker);
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(
        !marker.exists(),
        "the background loop was killed with its group"
    );
}

#[test]
fn a_forward_that_is_redirected_is_not_counted_as_delivered() {
    let dir = tempfile::tempdir().expect("tempdir");
    let secret_file = dir.path().join("forward.secret");
    std::fs::write(&secret_file, FORWARD_SECRET).expect("secret");
    let (port, _received) = one_shot_server(302);
    let section = format!(
        "[notifiers.forward]\nkind = \"webhook\"\nurl = \"http://127.0.0.1:{port}/hook\"\nsecret_file = {:?}\n",
        secret_file.display().to_string()
    );
    let (code, out) = notify_test(dir.path(), &section, "forward");
    assert_eq!(code, 1);
    assert!(
        out.contains("answered 302 (a redirect, not followed)"),
        "{out}"
    );
    // A secret too short to sign with stops the configuration.
    std::fs::write(&secret_file, "whsec_YQ==").expect("secret");
    let file = dir.path().join("perfhook.toml");
    std::fs::write(&file, config(dir.path(), "", &section)).expect("config");
    let checked = perfhook(
        &["config", "check", "--config", file.to_str().expect("path")],
        &[(SECRET_ENV, SECRET)],
        b"",
    );
    assert_eq!(checked.code, 2);
    assert!(
        checked.stderr.contains("at least 16 are required"),
        "{}",
        checked.stderr
    );
}

#[test]
fn the_slack_notifier_posts_a_block_kit_message_and_never_shows_its_url() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (port, received) = one_shot_server(200);
    let url_file = dir.path().join("slack.url");
    let url = format!("http://127.0.0.1:{port}/services/T000/B000/secret-token-xyz");
    std::fs::write(&url_file, &url).expect("url");
    let section = format!(
        "[notifiers.chat]\nkind = \"slack\"\nurl_file = {:?}\n",
        url_file.display().to_string()
    );
    let (code, out) = notify_test(dir.path(), &section, "chat");
    assert_eq!(code, 0, "{out}");
    let request = received.recv().expect("a message");
    let message: serde_json::Value = serde_json::from_slice(&request.body).expect("json");
    let subject = "perfhook notify test / support-bot: 80% of monthly budget reached (test mode)";
    assert_eq!(message["text"], subject);
    assert_eq!(message["blocks"][0]["type"], "header");
    assert_eq!(message["blocks"][0]["text"]["text"], subject);
    let fields = message["blocks"][2]["fields"].as_array().expect("fields");
    assert!(
        fields
            .iter()
            .any(|f| f["text"] == "*Usage*\n80% (400.12 USD of 500.00 USD)"),
        "{message}"
    );

    // A refusal names the status, never the URL (it holds Slack's token).
    let (port, _received) = one_shot_server(404);
    std::fs::write(
        &url_file,
        format!("http://127.0.0.1:{port}/services/T000/B000/secret-token-xyz"),
    )
    .expect("url");
    let (code, out) = notify_test(dir.path(), &section, "chat");
    assert_eq!(code, 1);
    assert_eq!(
        out.trim(),
        "chat: failed: Slack answered 404; check the webhook URL"
    );
    std::fs::write(&url_file, "http://127.0.0.1:9/services/secret-token-xyz").expect("url");
    let (_, out) = notify_test(dir.path(), &section, "chat");
    assert!(out.starts_with("chat: failed: cannot reach Slack"), "{out}");
    assert!(!out.contains("secret-token"), "{out}");
}
