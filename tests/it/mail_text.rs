//! The mail for every fixture type, pinned word for word: built by the email notifier,
//! sent on lettre's stub transport, read back part by part (plain text first, HTML second).

use lettre::transport::stub::AsyncStubTransport;
use mail_parser::MimeHeaders;
use perfhook::notify::email::{EmailNotifier, EmailSettings};
use perfhook::notify::{Notification, Notifier};
use perfhook::store::EventRecord;

use crate::helpers::fixture;

/// When the test events were received: `2025-12-01T12:00:00Z` in every mail.
const RECEIVED_AT: u64 = 1_764_590_400;

/// A body outside the fixtures: a type perfhook has no words for.
const UNKNOWN_TYPE: &str = r#"{"id":"evt_x","type":"invoice.paid","livemode":true,"data":{"project":{"name":"support-bot"},"invoice":{"total":"12.00","lines":[1,{"note":"a\u0007b"}],"paid":true}}}"#;
/// A threshold alert without the figures the fixtures carry.
const THRESHOLD_WITHOUT_FIGURES: &str = r#"{"id":"evt_y","type":"usage.threshold_reached","data":{"usage":{"amount":"7.00"},"level":"high"}}"#;

/// Mails `body` as an event received at [`RECEIVED_AT`]: its subject, plain text and HTML.
fn mail(body: &str) -> (String, String, String) {
    let event: serde_json::Value = serde_json::from_str(body).expect("json");
    let record = EventRecord {
        endpoint: "perf".into(),
        id: event["id"].as_str().expect("id").to_owned(),
        kind: event["type"].as_str().expect("type").to_owned(),
        livemode: event["livemode"].as_bool(),
        received_at: RECEIVED_AT,
        body: body.to_owned(),
    };
    let settings: EmailSettings = toml::from_str(
        "host = \"localhost\"\ntls = \"none\"\nsubject_prefix = \"[perf]\"\n\
         from = \"perfhook <perfhook@example.test>\"\nto = [\"oncall@example.test\"]",
    )
    .expect("settings");
    let transport = AsyncStubTransport::new_ok();
    let notifier = EmailNotifier::with_transport(&settings, transport.clone()).expect("notifier");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime
        .block_on(notifier.deliver(&Notification::of(&record)))
        .expect("sent");
    let sent = runtime.block_on(transport.messages());
    assert_eq!(sent.len(), 1);
    let raw = sent[0].1.as_bytes();
    let message = mail_parser::MessageParser::default()
        .parse(raw)
        .expect("a parsable mail");
    let content_type = message.content_type().expect("content type");
    assert_eq!(
        (content_type.ctype(), content_type.subtype()),
        ("multipart", Some("alternative"))
    );
    assert_eq!(message.text_body.len(), 1, "one plain part");
    assert_eq!(message.html_body.len(), 1, "one HTML part");
    assert!(
        message.text_body[0] < message.html_body[0],
        "the plain text comes first"
    );
    (
        message.subject().expect("subject").to_owned(),
        // SMTP lines end in CRLF; the pinned text is written with LF.
        message
            .body_text(0)
            .expect("plain text")
            .replace("\r\n", "\n"),
        message.body_html(0).expect("html").into_owned(),
    )
}

fn fixture_body(name: &str) -> String {
    std::fs::read_to_string(fixture(&format!("events/{name}"))).expect("fixture")
}

/// The HTML part carries the plain part's summary and every labelled figure, escaped.
fn assert_html_says_the_same(text: &str, html: &str) {
    let escape = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
            .replace('\'', "&#39;")
    };
    let mut lines = text.lines();
    let summary = lines.next().expect("a summary");
    assert!(
        html.contains(&format!("<p>{}</p>", escape(summary))),
        "{html}"
    );
    for line in lines.take_while(|line| !line.starts_with("Raw event:")) {
        if let Some((label, value)) = line.split_once(":  ") {
            let row = format!(
                "<th style=\"text-align: left; padding-right: 1em\">{}</th><td>{}</td>",
                escape(label),
                escape(value.trim_start())
            );
            assert!(html.contains(&row), "{row} missing from {html}");
        }
    }
}

/// Mails `body` and checks its subject, its plain text (`text`, then the raw event) and that
/// the HTML part says the same.
fn assert_mail(body: &str, subject: &str, text: &str) {
    let (sent_subject, sent_text, html) = mail(body);
    assert_eq!(sent_subject, subject);
    assert_eq!(sent_text, with_raw(text, body));
    assert_html_says_the_same(&sent_text, &html);
}

/// The pinned text, with the raw event (which follows it verbatim) appended.
fn with_raw(text: &str, body: &str) -> String {
    format!("{text}{body}\n")
}

#[test]
fn threshold_50() {
    let body = fixture_body("usage.threshold_reached.50.json");
    assert_mail(
        &body,
        "[perf] Acme Robotics / support-bot: 50% of monthly budget reached",
        r#"Acme Robotics / support-bot reached 50% of its monthly budget: 250.04 USD of 500.00 USD spent.

Organization:    Acme Robotics
Project:         support-bot
Threshold:       50% of monthly budget
Usage:           50% (250.04 USD of 500.00 USD)
Billing period:  2026-11-01 to 2026-12-01
Mode:            live
Event:           usage.threshold_reached evt_01JDX3K9Q4A50
Endpoint:        perf
Received:        2025-12-01T12:00:00Z

Check the project's usage in Perf; raise the budget or throttle the project before it reaches 100%.

Raw event:
"#,
    );
}

#[test]
fn threshold_80() {
    let body = fixture_body("usage.threshold_reached.80.json");
    assert_mail(
        &body,
        "[perf] Acme Robotics / support-bot: 80% of monthly budget reached",
        r#"Acme Robotics / support-bot reached 80% of its monthly budget: 400.12 USD of 500.00 USD spent.

Organization:    Acme Robotics
Project:         support-bot
Threshold:       80% of monthly budget
Usage:           80% (400.12 USD of 500.00 USD)
Billing period:  2026-11-01 to 2026-12-01
Mode:            live
Event:           usage.threshold_reached evt_01JDX3K9Q4A80
Endpoint:        perf
Received:        2025-12-01T12:00:00Z

Check the project's usage in Perf; raise the budget or throttle the project before it reaches 100%.

Raw event:
"#,
    );
}

#[test]
fn threshold_100() {
    let body = fixture_body("usage.threshold_reached.100.json");
    assert_mail(
        &body,
        "[perf] Acme Robotics / support-bot: 100% of monthly budget reached",
        r#"Acme Robotics / support-bot reached 100% of its monthly budget: 500.00 USD of 500.00 USD spent.

Organization:    Acme Robotics
Project:         support-bot
Threshold:       100% of monthly budget
Usage:           100% (500.00 USD of 500.00 USD)
Billing period:  2026-11-01 to 2026-12-01
Mode:            live
Event:           usage.threshold_reached evt_01JDX3K9Q4AA0
Endpoint:        perf
Received:        2025-12-01T12:00:00Z

The budget is used up. Raise it in Perf if this spending is expected; otherwise stop or throttle the project's traffic.

Raw event:
"#,
    );
}

#[test]
fn budget_exceeded() {
    let body = fixture_body("budget.exceeded.json");
    assert_mail(
        &body,
        "[perf] Acme Robotics / support-bot: monthly budget exceeded (104%)",
        r#"Acme Robotics / support-bot has spent more than its monthly budget: 521.37 USD of 500.00 USD.

Organization:    Acme Robotics
Project:         support-bot
Usage:           104% (521.37 USD of 500.00 USD)
Billing period:  2026-11-01 to 2026-12-01
Mode:            live
Event:           budget.exceeded evt_01JDX3K9Q4BEX
Endpoint:        perf
Received:        2025-12-01T12:00:00Z

The budget is used up. Raise it in Perf if this spending is expected; otherwise stop or throttle the project's traffic.

Raw event:
"#,
    );
}

#[test]
fn test_mode_threshold_80() {
    let body = fixture_body("test_mode.usage.threshold_reached.json");
    assert_mail(
        &body,
        "[perf] Acme Robotics / support-bot: 80% of monthly budget reached (test mode)",
        r#"Acme Robotics / support-bot reached 80% of its monthly budget: 400.12 USD of 500.00 USD spent.

Organization:    Acme Robotics
Project:         support-bot
Threshold:       80% of monthly budget
Usage:           80% (400.12 USD of 500.00 USD)
Billing period:  2026-11-01 to 2026-12-01
Mode:            test
Event:           usage.threshold_reached evt_test_01JDX3K9Q4T80
Endpoint:        perf
Received:        2025-12-01T12:00:00Z

Check the project's usage in Perf; raise the budget or throttle the project before it reaches 100%.

Raw event:
"#,
    );
}

#[test]
fn unknown_type() {
    let body = UNKNOWN_TYPE.to_owned();
    assert_mail(
        &body,
        "[perf] support-bot: invoice.paid",
        r#"Perf sent an event of type `invoice.paid` about support-bot. perfhook has no wording for this type; every figure it carries is listed below.

Project:                     support-bot
Mode:                        live
Event:                       invoice.paid evt_x
Endpoint:                    perf
Received:                    2025-12-01T12:00:00Z
data.invoice.lines[0]:       1
data.invoice.lines[1].note:  ab
data.invoice.paid:           true
data.invoice.total:          12.00
data.project.name:           support-bot

Raw event:
"#,
    );
}

#[test]
fn threshold_without_figures() {
    let body = THRESHOLD_WITHOUT_FIGURES.to_owned();
    assert_mail(
        &body,
        "[perf] budget threshold reached",
        r#"A project crossed a usage threshold of its budget (7.00 spent); the alert does not say which, so every figure it carries is listed below.

Usage:              7.00
Mode:               not stated by the event
Event:              usage.threshold_reached evt_y
Endpoint:           perf
Received:           2025-12-01T12:00:00Z
data.level:         high
data.usage.amount:  7.00

Raw event:
"#,
    );
}
