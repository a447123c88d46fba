//! Sender silence: an endpoint with `expect_delivery_within` notifies once when nothing
//! arrives for that long and once when deliveries resume, through the outbox like any alert,
//! and never twice for the same silence.

use std::time::Duration;

use crate::app::{spawn_app, TestApp};
use crate::server_helpers::alert;

const QUIET: &str = r#"
[[endpoints]]
name = "quiet"
path = "/webhooks/quiet"
notifiers = ["log"]
expect_delivery_within = "2h"
secrets = [{ name = "primary", file = {secret_file} }]
"#;

/// The log notifier's lines of type `kind`.
fn lines_of(app: &TestApp, kind: &str) -> Vec<serde_json::Value> {
    app.log_lines()
        .into_iter()
        .filter(|line| line["alert"] == kind)
        .collect()
}

/// Waits for the count of `kind` lines to reach `count`, then two more checks of the
/// watcher (one a second) to show it stays there.
fn settles_at(app: &TestApp, kind: &str, count: usize) {
    assert!(
        app.eventually(|| lines_of(app, kind).len() >= count),
        "{kind}: {count} expected, got {:?}",
        lines_of(app, kind)
    );
    std::thread::sleep(Duration::from_millis(2_500));
    assert_eq!(
        lines_of(app, kind).len(),
        count,
        "{kind}: {:?}",
        app.log_lines()
    );
}

#[test]
fn a_silent_sender_is_notified_once_and_its_return_once() {
    let app = spawn_app("", QUIET);
    // Within the expected interval nothing is said.
    app.clock.advance(Duration::from_secs(2 * 3600 - 5));
    std::thread::sleep(Duration::from_millis(1_500));
    assert!(lines_of(&app, "perfhook.sender_silent").is_empty());

    app.clock.advance(Duration::from_secs(10));
    settles_at(&app, "perfhook.sender_silent", 1);
    let silent = &lines_of(&app, "perfhook.sender_silent")[0];
    assert_eq!(silent["endpoint"], "quiet");
    // Still silent an hour later: nothing more.
    app.clock.advance(Duration::from_secs(3600));
    settles_at(&app, "perfhook.sender_silent", 1);

    assert_eq!(app.deliver_to("/webhooks/quiet", &alert("evt_back")).0, 200);
    settles_at(&app, "perfhook.sender_resumed", 1);
    assert_eq!(lines_of(&app, "perfhook.sender_silent").len(), 1);

    // A new silence, counted from the last delivery, is a new notice.
    app.clock.advance(Duration::from_secs(2 * 3600 + 1));
    settles_at(&app, "perfhook.sender_silent", 2);
    assert_eq!(lines_of(&app, "perfhook.sender_resumed").len(), 1);
    // Endpoints without the setting say nothing.
    assert!(app
        .log_lines()
        .iter()
        .filter(|line| line["alert"]
            .as_str()
            .is_some_and(|kind| kind.starts_with("perfhook.")))
        .all(|line| line["endpoint"] == "quiet"));
}
