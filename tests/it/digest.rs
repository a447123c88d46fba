//! Quiet hours and digests over real HTTP with a fixed clock: alerts that arrive inside a
//! route's quiet hours wait and go out as one digest when they end, while a severe alert on
//! another route goes at once; a notifier in digest mode sends one message per interval.

use std::time::Duration;

use perfhook::api_key::Scope;
use perfhook::event::Mode;

use crate::app::{key, spawn_app, TestApp, T0};

use crate::helpers::event_fixture as fixture;

/// A fixture under another id and project, so threshold collapse keeps each one.
fn alert(name: &str, id: &str, project: &str) -> Vec<u8> {
    let original = serde_json::from_str::<serde_json::Value>(&fixture(name)).expect("json")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    fixture(name)
        .replace(&original, id)
        .replace("support-bot", project)
        .into_bytes()
}

/// The first whole hour at or after `at`, plus `hours`.
fn at_hour(at: u64, hour_of_day: u64) -> u64 {
    let midnight = at - at % 86_400;
    let candidate = midnight + hour_of_day * 3600;
    if candidate >= at {
        candidate
    } else {
        candidate + 86_400
    }
}

const QUIET: &str = r#"
[[endpoints]]
name = "quiet"
path = "/webhooks/quiet"
notifiers = ["log"]
secrets = [{ name = "primary", file = {secret_file} }]

[[endpoints.routes]]
min_percent = 100
notifiers = ["mail"]

[[endpoints.routes]]
below_percent = 100
notifiers = ["log"]
quiet_hours = "22:00-07:00"
zone = "UTC"
"#;

fn digest_lines(app: &TestApp) -> Vec<serde_json::Value> {
    app.log_lines()
        .into_iter()
        .filter(|line| line["alert"] == "perfhook.digest")
        .collect()
}

#[test]
fn a_burst_inside_quiet_hours_becomes_one_digest_when_they_end() {
    let app = spawn_app("", QUIET);
    let deliver = |body: Vec<u8>| {
        let (status, answer) = app.deliver_to("/webhooks/quiet", &body);
        assert_eq!(status, 200, "{answer}");
    };
    // 23:00 UTC: inside the quiet hours.
    let late = at_hour(T0, 23);
    app.clock.advance(Duration::from_secs(late - T0));
    deliver(alert("usage.threshold_reached.50.json", "evt_q1", "bot-a"));
    app.clock.advance(Duration::from_secs(600));
    deliver(alert("usage.threshold_reached.80.json", "evt_q2", "bot-b"));
    app.clock.advance(Duration::from_secs(600));
    deliver(alert("usage.threshold_reached.50.json", "evt_q3", "bot-c"));
    // The severe one has a route without quiet hours: mailed now.
    deliver(alert(
        "usage.threshold_reached.100.json",
        "evt_q100",
        "bot-d",
    ));
    assert!(app.eventually(|| app.mails().iter().any(|mail| mail.contains("evt_q100"))));
    std::thread::sleep(Duration::from_millis(1_500));
    assert!(app.log_lines().is_empty(), "{:?}", app.log_lines());

    // Each waiting job says so, due when the quiet hours end.
    let reader = format!(
        "Bearer {}",
        key(&app, &[Scope::EventsRead], Mode::Live, 600)
    );
    let (_, _, event) = app.admin_get("/admin/v1/events/quiet/evt_q2", Some(&reader));
    let job = &event["notifications"][0];
    let seven = at_hour(late, 7);
    assert_eq!(job["status"], "pending", "{event}");
    assert_eq!(job["digest"], true, "{event}");
    assert_eq!(
        job["due_at"],
        perfhook::notify::rfc3339(seven).as_str(),
        "{event}"
    );

    // 06:59: still waiting. 07:00: one digest with the three, oldest first.
    app.clock
        .advance(Duration::from_secs(seven - 60 - app.now()));
    std::thread::sleep(Duration::from_millis(1_500));
    assert!(digest_lines(&app).is_empty());
    app.clock.advance(Duration::from_secs(60));
    assert!(app.eventually(|| digest_lines(&app).len() == 1));
    std::thread::sleep(Duration::from_millis(1_500));
    let lines = app.log_lines();
    assert_eq!(lines.len(), 1, "one message, not one per alert: {lines:?}");
    let digest = &lines[0];
    let ids: Vec<&str> = digest["alerts"]
        .as_array()
        .expect("alerts")
        .iter()
        .filter_map(|alert| alert["id"].as_str())
        .collect();
    assert_eq!(ids, ["evt_q1", "evt_q2", "evt_q3"], "{digest}");
    assert!(
        digest["summary"]
            .as_str()
            .is_some_and(|s| s.contains("3 alerts")),
        "{digest}"
    );
    assert!(
        digest["alerts"][1]["subject"]
            .as_str()
            .is_some_and(|s| s.contains("bot-b") && s.contains("80%")),
        "{digest}"
    );
    // (A key made now: the first one expired in the night.)
    let reader = format!(
        "Bearer {}",
        key(&app, &[Scope::EventsRead], Mode::Live, 600)
    );
    let (_, _, event) = app.admin_get("/admin/v1/events/quiet/evt_q2", Some(&reader));
    assert_eq!(event["notifications"][0]["status"], "delivered", "{event}");

    // After the quiet hours, the same route notifies at once again.
    deliver(alert("usage.threshold_reached.50.json", "evt_day", "bot-e"));
    assert!(app.eventually(|| app.log_lines().iter().any(|line| line["id"] == "evt_day")));
}

const HOURLY: &str = r#"
[[endpoints]]
name = "hourly"
path = "/webhooks/hourly"
notifiers = ["mail"]
secrets = [{ name = "primary", file = {secret_file} }]

[digests.mail]
every = "hourly"
"#;

#[test]
fn a_notifier_in_digest_mode_sends_one_mail_per_hour() {
    let app = spawn_app("", HOURLY);
    let deliver = |body: Vec<u8>| {
        let (status, answer) = app.deliver_to("/webhooks/hourly", &body);
        assert_eq!(status, 200, "{answer}");
    };
    let next_hour = (T0 / 3600 + 1) * 3600;
    deliver(alert("usage.threshold_reached.50.json", "evt_h1", "bot-a"));
    deliver(alert("usage.threshold_reached.80.json", "evt_h2", "bot-b"));
    deliver(alert("budget.exceeded.json", "evt_h3", "bot-c"));
    std::thread::sleep(Duration::from_millis(1_500));
    assert!(app.mails().is_empty(), "nothing before the hour");

    app.clock.advance(Duration::from_secs(next_hour - T0));
    assert!(app.eventually(|| !app.mails().is_empty()));
    std::thread::sleep(Duration::from_millis(1_500));
    let mails = app.mails();
    assert_eq!(mails.len(), 1, "one digest: {mails:?}");
    let mail = &mails[0];
    assert!(mail.contains("Digest: 3 alerts"), "{mail}");
    for id in ["evt_h1", "evt_h2", "evt_h3"] {
        assert!(mail.contains(id), "{id} in {mail}");
    }
    assert!(
        !mail.contains("Raw event"),
        "the list, not every raw event: {mail}"
    );

    // The next alert waits for the next hour, alone: a digest of one is the alert itself.
    deliver(alert("usage.threshold_reached.80.json", "evt_h4", "bot-d"));
    std::thread::sleep(Duration::from_millis(1_500));
    assert_eq!(app.mails().len(), 1);
    app.clock.advance(Duration::from_secs(3600));
    assert!(app.eventually(|| app.mails().len() == 2));
    let last = &app.mails()[1];
    assert!(
        last.contains("evt_h4") && !last.contains("Digest:"),
        "{last}"
    );
}
