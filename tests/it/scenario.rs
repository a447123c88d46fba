//! README's "From alert to action" walk-through, fed through the real endpoint with a fixed
//! clock, checking the exact notifications: 50% → the same 50% re-emitted at 65% usage →
//! 80% inside quiet hours (mailed when they end, with a projection from the three figures) →
//! 80% again under a new id → 100% → the next period's 50%.

use std::time::Duration;

use serde_json::Value;

use crate::app::{spawn_app, TestApp};

const ROUTED: &str = r#"
[[endpoints]]
name = "acme"
path = "/webhooks/acme"
notifiers = ["log"]
secrets = [{ name = "primary", file = {secret_file} }]

[[endpoints.routes]]
min_percent = 100
notifiers = ["log", "mail"]

[[endpoints.routes]]
min_percent = 80
below_percent = 100
notifiers = ["log", "mail"]
quiet_hours = "22:00-07:00"
zone = "UTC"

[[endpoints.routes]]
below_percent = 80
notifiers = ["log"]
"#;

/// 2026-11-03 00:00 UTC and the times after it, Unix seconds.
const NOV_3: u64 = 1_793_664_000;
const NOV_6: u64 = 1_793_923_200;
const NOV_9: u64 = 1_794_182_400;
const NOV_9_0700: u64 = 1_794_207_600;
const NOV_12_NOON: u64 = 1_794_484_800;
const DEC_1_0900: u64 = 1_796_115_600;

/// A fixture with a new id, changed by `edit`.
fn alert(fixture: &str, id: &str, edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    let text = crate::helpers::event_fixture(fixture);
    let mut body: Value = serde_json::from_str(&text).expect("json");
    body["id"] = Value::from(id);
    edit(&mut body);
    body.to_string().into_bytes()
}

fn logged(app: &TestApp) -> Vec<String> {
    app.log_lines()
        .iter()
        .filter_map(|line| line["id"].as_str().map(str::to_owned))
        .collect()
}

fn mailed(app: &TestApp, id: &str) -> bool {
    app.mails().iter().any(|mail| mail.contains(id))
}

/// Moves the app's clock to `at` (never back).
fn at(app: &TestApp, at: u64) {
    app.clock
        .advance(Duration::from_secs(at.saturating_sub(app.now())));
}

fn deliver(app: &TestApp, body: &[u8]) {
    let (status, answer) = app.deliver_to("/webhooks/acme", body);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["status"], "accepted",
        "every one is stored: {answer}"
    );
}

/// Lets the outbox run (it looks at least once a second).
fn settle() {
    std::thread::sleep(Duration::from_millis(1_500));
}

#[test]
fn from_alert_to_action() {
    let app = spawn_app("", ROUTED);

    // Nov 3: 50% crossed. Below 80: the log only.
    at(&app, NOV_3);
    deliver(
        &app,
        &alert("usage.threshold_reached.50.json", "evt_50", |_| {}),
    );
    assert!(app.eventually(|| logged(&app) == ["evt_50"]));

    // Nov 6: the same 50% crossing re-emitted with usage at 65%: stored, not notified, but
    // its usage joins the budget's figures.
    at(&app, NOV_6);
    deliver(
        &app,
        &alert("usage.threshold_reached.50.json", "evt_50_again", |body| {
            body["data"]["usage"]["percent"] = Value::from(65);
        }),
    );

    // Nov 9 00:00: 80%, inside the route's quiet hours: it waits for 07:00. The same crossing
    // again at 00:30 under a new id is collapsed.
    at(&app, NOV_9);
    deliver(
        &app,
        &alert("usage.threshold_reached.80.json", "evt_80", |_| {}),
    );
    at(&app, NOV_9 + 1_800);
    deliver(
        &app,
        &alert("usage.threshold_reached.80.json", "evt_80_again", |_| {}),
    );
    at(&app, NOV_9_0700 - 60);
    settle();
    assert_eq!(logged(&app), ["evt_50"]);
    assert!(app.mails().is_empty());

    // 07:00: logged and mailed, with the projection from 50%, 65% and 80% (5 points a day).
    at(&app, NOV_9_0700);
    assert!(app.eventually(|| logged(&app) == ["evt_50", "evt_80"] && mailed(&app, "evt_80")));
    let line = app
        .log_lines()
        .into_iter()
        .find(|line| line["id"] == "evt_80")
        .expect("line");
    assert_eq!(
        line["figures"]["runs_out_at"], "2026-11-13T00:00:00Z",
        "{line}"
    );

    // Nov 12: 100%, on a route without quiet hours: log and mail at once.
    at(&app, NOV_12_NOON);
    deliver(
        &app,
        &alert("usage.threshold_reached.100.json", "evt_100", |_| {}),
    );
    assert!(app.eventually(|| mailed(&app, "evt_100")));

    // Dec 1: a new billing period, a new budget: its 50% is notified again.
    at(&app, DEC_1_0900);
    deliver(
        &app,
        &alert("usage.threshold_reached.50.json", "evt_dec_50", |body| {
            body["data"]["period"]["start"] = Value::from("2026-12-01T00:00:00Z");
            body["data"]["period"]["end"] = Value::from("2027-01-01T00:00:00Z");
        }),
    );
    assert!(app.eventually(|| logged(&app).len() == 4));
    settle();

    // Exactly these notifications, nothing for the two collapsed events.
    assert_eq!(logged(&app), ["evt_50", "evt_80", "evt_100", "evt_dec_50"]);
    let mails = app.mails();
    assert_eq!(mails.len(), 2, "{mails:?}");
    assert!(mailed(&app, "evt_80") && mailed(&app, "evt_100"));
    assert!(!mailed(&app, "evt_80_again") && !mailed(&app, "evt_50_again"));
}
