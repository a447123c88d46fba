//! `notification`: what a person reads about an event, rendered from arbitrary (verified and
//! parsed) event text. Invariants: no panic; the log line is one line of JSON carrying the
//! event's id and type; the email subject holds no control character (so a body field can
//! never add a mail header), the plain part ends with the raw event, and the HTML part
//! carries the raw event escaped, so a body can never add markup.

use std::sync::OnceLock;

use serde_json::Value;

use crate::event::parse_event;
use crate::notify::email::{body, html_body, message_id, EmailNotifier, EmailSettings};
use crate::notify::log::LogNotifier;
use crate::notify::Notification;
use crate::store::EventRecord;

/// Runs the body on one input.
pub fn run(data: &[u8]) -> bool {
    let Ok(event) = parse_event(data, None) else {
        return false;
    };
    let Ok(text) = std::str::from_utf8(data) else {
        panic!("an accepted event is not UTF-8");
    };
    let record = EventRecord {
        endpoint: "perf".into(),
        id: event.id.as_str().to_owned(),
        kind: event.kind.clone(),
        livemode: event.livemode,
        received_at: data.len() as u64,
        body: text.to_owned(),
    };

    let notification = Notification::of(&record);
    let line = LogNotifier::line(&notification);
    assert!(!line.contains('\n'), "a log notification spans lines");
    let parsed: Result<Value, _> = serde_json::from_str(&line);
    let Ok(parsed) = parsed else {
        panic!("a log notification is not JSON");
    };
    assert_eq!(parsed["id"].as_str(), Some(record.id.as_str()));
    assert_eq!(parsed["alert"].as_str(), Some(event.kind.as_str()));

    let Some(mailer) = mailer() else {
        panic!("the fixed email settings do not build a notifier");
    };
    let subject = mailer.subject(&notification);
    assert!(
        !subject.chars().any(char::is_control),
        "a mail subject holds a control character"
    );
    let mail = body(&notification);
    assert!(
        mail.ends_with(&format!("{}\n", record.body)),
        "the mail lacks the raw event"
    );
    let html = html_body(&notification);
    let escaped = record
        .body
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;");
    assert!(
        html.ends_with(&format!("<pre>{escaped}</pre>\n</body></html>\n")),
        "the HTML part lacks the escaped raw event"
    );
    assert!(message_id(&record).starts_with("<perf."));
    true
}

/// One email notifier (building it connects to nothing).
fn mailer() -> Option<&'static EmailNotifier> {
    static MAILER: OnceLock<Option<EmailNotifier>> = OnceLock::new();
    MAILER
        .get_or_init(|| {
            let settings: EmailSettings = toml::from_str(
                "host = \"localhost\"\ntls = \"none\"\nfrom = \"perfhook <p@example.com>\"\nto = [\"o@example.com\"]\nsubject_prefix = \"[perf]\"",
            )
            .ok()?;
            EmailNotifier::build(&settings).ok()
        })
        .as_ref()
}
