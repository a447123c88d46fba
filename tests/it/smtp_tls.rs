//! The email notifier over STARTTLS and implicit TLS against a real SMTP server (aiosmtpd)
//! whose certificate comes from a CA made at test time and trusted through `ca_file`; a
//! certificate the client cannot accept is a configuration error, not a retry.

use std::path::Path;
use std::time::Duration;

use crate::server_helpers::{alert, client, config, deliver, free_port, wait_until, Server, Smtp};
use crate::test_ca::{Leaf, TestCa};

/// aiosmtpd on `port` serving `leaf`: `mode` is `tls` (STARTTLS required) or `smtps`
/// (implicit TLS), the prefix of its `--…cert` and `--…key` options.
fn relay(port: u16, maildir: &Path, mode: &str, leaf: &Leaf) -> Smtp {
    let (cert, key) = (format!("--{mode}cert"), format!("--{mode}key"));
    Smtp::start_with(
        port,
        maildir,
        &[
            &cert,
            leaf.cert.to_str().expect("path"),
            &key,
            leaf.key.to_str().expect("path"),
        ],
    )
}

/// A `[notifiers.NAME]` email section for a TLS relay on 127.0.0.1:`port`.
fn tls_notifier(name: &str, port: u16, tls: &str, ca_file: &Path) -> String {
    format!(
        r#"
[notifiers.{name}]
kind = "email"
host = "127.0.0.1"
port = {port}
tls = "{tls}"
ca_file = {ca:?}
from = "perfhook <perfhook@example.test>"
to = ["oncall@example.test"]
timeout_ms = 5000
"#,
        ca = ca_file.display().to_string()
    )
}

#[test]
fn mail_goes_out_over_starttls_and_implicit_tls_with_a_private_ca() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = TestCa::new("company relay CA");
    let ca_file = ca.write(dir.path(), "relay-ca");
    let leaf = ca.leaf(&["127.0.0.1"], dir.path(), "relay");
    let (starttls_port, tls_port) = (free_port(), free_port());
    let starttls = relay(starttls_port, &dir.path().join("starttls"), "tls", &leaf);
    let implicit = relay(tls_port, &dir.path().join("implicit"), "smtps", &leaf);
    let extra = format!(
        "{}{}",
        tls_notifier("starttls", starttls_port, "starttls", &ca_file),
        tls_notifier("implicit", tls_port, "tls", &ca_file)
    );
    let server = Server::start(
        dir.path(),
        &config(dir.path(), "\"starttls\", \"implicit\"", &extra),
    );
    let (status, _) = deliver(&client(), &server, &alert("evt_smtp_tls"));
    assert_eq!(status, 200);
    let both = wait_until(Duration::from_secs(20), || {
        starttls.messages().len() == 1 && implicit.messages().len() == 1
    });
    assert!(
        both,
        "mail did not arrive over both TLS modes: {}",
        server.stderr()
    );
    for mail in starttls.messages().iter().chain(&implicit.messages()) {
        assert!(mail.contains("evt_smtp_tls"), "{mail}");
    }
    let (code, _, _) = server.terminate();
    assert_eq!(code, 0);
}

#[test]
fn an_untrusted_or_misnamed_relay_certificate_is_a_configuration_error_not_retried() {
    let dir = tempfile::tempdir().expect("tempdir");
    let relay_ca = TestCa::new("relay CA");
    let other_ca = TestCa::new("some other CA");
    let right_name = relay_ca.leaf(&["127.0.0.1"], dir.path(), "right-name");
    let wrong_name = relay_ca.leaf(&["mail.example.test"], dir.path(), "wrong-name");
    let (untrusted_port, misnamed_port) = (free_port(), free_port());
    let untrusted = relay(
        untrusted_port,
        &dir.path().join("untrusted"),
        "tls",
        &right_name,
    );
    let misnamed = relay(
        misnamed_port,
        &dir.path().join("misnamed"),
        "tls",
        &wrong_name,
    );
    let extra = format!(
        "{}{}",
        tls_notifier(
            "untrusted",
            untrusted_port,
            "starttls",
            &other_ca.write(dir.path(), "other-ca")
        ),
        tls_notifier(
            "misnamed",
            misnamed_port,
            "starttls",
            &relay_ca.write(dir.path(), "relay-ca")
        )
    );
    let server = Server::start(
        dir.path(),
        &config(dir.path(), "\"untrusted\", \"misnamed\"", &extra),
    );
    let (status, _) = deliver(&client(), &server, &alert("evt_bad_cert"));
    assert_eq!(status, 200);
    let dead = |notifier: &str, problem: &str| {
        let logs = server.stderr();
        logs.lines().any(|line| {
            line.contains("notification dead")
                && line.contains(&format!("\"notifier\":\"{notifier}\""))
                && line.contains("configuration error")
                && line.contains(problem)
                && line.contains("\"attempts\":1")
        })
    };
    let both = wait_until(Duration::from_secs(20), || {
        dead("untrusted", "UnknownIssuer") && dead("misnamed", "NotValidForName")
    });
    assert!(both, "{}", server.stderr());
    // Dead at the first attempt: never retried, and nothing was sent in clear.
    assert!(
        !server.stderr().contains("will retry"),
        "{}",
        server.stderr()
    );
    assert!(untrusted.messages().is_empty() && misnamed.messages().is_empty());
    let (code, _, _) = server.terminate();
    assert_eq!(code, 0);
}
