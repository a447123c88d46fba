//! `perfhook notify test`: each notifier tried now, against a real SMTP server, with the
//! outcome in one line per notifier and the exit code to script on.

use crate::helpers::perfhook;
use crate::server_helpers::{config, email_notifier, free_port, Smtp, SECRET, SECRET_ENV};

#[test]
fn notify_test_reports_an_unreachable_relay_then_delivers_a_marked_sample() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let file = dir.path().join("perfhook.toml");
    std::fs::write(
        &file,
        config(
            dir.path(),
            "\"log\", \"mail\"",
            &email_notifier(port, 5_000),
        ),
    )
    .expect("config");
    let file = file.to_str().expect("path");
    let env = [(SECRET_ENV, SECRET)];

    let down = perfhook(
        &["notify", "test", "--config", file, "--notifier", "mail"],
        &env,
        b"",
    );
    assert_eq!(down.code, 1, "{} {}", down.stdout, down.stderr);
    assert_eq!(down.stdout.lines().count(), 1, "{}", down.stdout);
    assert!(
        down.stdout
            .starts_with("mail: failed: cannot connect to the SMTP server (check host and port"),
        "{}",
        down.stdout
    );

    let smtp = Smtp::start(port, &dir.path().join("mail"));
    let up = perfhook(&["notify", "test", "--config", file], &env, b"");
    assert_eq!(up.code, 0, "{} {}", up.stdout, up.stderr);
    let results: Vec<&str> = up
        .stdout
        .lines()
        .filter(|line| line.contains(": sent sample alert evt_"))
        .collect();
    assert_eq!(results.len(), 2, "log and mail: {}", up.stdout);
    let mails = smtp.messages();
    assert_eq!(mails.len(), 1);
    let mail = mail_parser::MessageParser::default()
        .parse(mails[0].as_bytes())
        .expect("a parsable mail");
    assert_eq!(
        mail.subject(),
        Some(
            "[perf] perfhook notify test / support-bot: 80% of monthly budget reached (test mode)"
        )
    );

    let unknown = perfhook(
        &["notify", "test", "--config", file, "--notifier", "pager"],
        &env,
        b"",
    );
    assert_eq!(unknown.code, 2);
    assert_eq!(unknown.stderr.lines().count(), 1, "{}", unknown.stderr);
    assert!(
        unknown
            .stderr
            .contains("--notifier pager: no such notifier; the config has [\"log\", \"mail\"]"),
        "{}",
        unknown.stderr
    );
}
