//! Threshold collapse over real HTTP: the same crossing sent again under a new id is stored
//! and answered `accepted`, but notified once; the event says why; usage below the
//! threshold and a new billing period arm it again.

use perfhook::api_key::Scope;
use perfhook::event::Mode;

use crate::app::{key, spawn_app, TestApp};

use crate::helpers::event_fixture as fixture;

/// The 80% fixture under another id, in the period starting at `period_start`.
fn eighty(id: &str, period_start: &str) -> Vec<u8> {
    fixture("usage.threshold_reached.80.json")
        .replace("evt_01JDX3K9Q4A80", id)
        .replace("2026-11-01T00:00:00Z", period_start)
        .into_bytes()
}

fn notified(app: &TestApp, id: &str) -> usize {
    app.log_lines()
        .iter()
        .filter(|line| line["id"] == id)
        .count()
}

#[test]
fn the_same_crossing_under_a_new_id_is_stored_but_notified_once() {
    let app = spawn_app("\"log\"", "");
    assert_eq!(
        app.deliver(&eighty("evt_first", "2026-11-01T00:00:00Z")).1["status"],
        "accepted"
    );
    assert!(app.eventually(|| notified(&app, "evt_first") == 1));

    let (status, answer) = app.deliver(&eighty("evt_again", "2026-11-01T00:00:00Z"));
    assert_eq!(
        (status, answer["status"].as_str()),
        (200, Some("accepted")),
        "stored"
    );
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(notified(&app, "evt_again"), 0, "{:?}", app.log_lines());
    let reader = format!(
        "Bearer {}",
        key(&app, &[Scope::EventsRead], Mode::Live, 600)
    );
    let (_, _, event) = app.admin_get("/admin/v1/events/perf/evt_again", Some(&reader));
    let job = &event["notifications"][0];
    assert_eq!(job["status"], "suppressed", "{event}");
    assert!(
        job["last_error"]
            .as_str()
            .is_some_and(|why| why.contains("80% threshold") && why.contains("evt_first")),
        "{event}"
    );

    // A new billing period: a new budget, notified.
    assert_eq!(
        app.deliver(&eighty("evt_december", "2026-12-01T00:00:00Z"))
            .0,
        200
    );
    assert!(app.eventually(|| notified(&app, "evt_december") == 1));
    // Usage reported below 80% in November (the 50% alert) arms it again there.
    assert_eq!(
        app.deliver(fixture("usage.threshold_reached.50.json").as_bytes())
            .0,
        200
    );
    assert_eq!(
        app.deliver(&eighty("evt_rearmed", "2026-11-01T00:00:00Z"))
            .0,
        200
    );
    assert!(app.eventually(|| notified(&app, "evt_rearmed") == 1));
}

#[test]
fn a_notification_says_when_the_budget_runs_out_at_this_rate() {
    let app = spawn_app("\"log\"", "");
    let start = app.now();
    assert_eq!(
        app.deliver(fixture("usage.threshold_reached.50.json").as_bytes())
            .0,
        200
    );
    // One figure: no projection.
    assert!(app.eventually(|| notified(&app, "evt_01JDX3K9Q4A50") == 1));
    let first = app
        .log_lines()
        .into_iter()
        .find(|line| line["id"] == "evt_01JDX3K9Q4A50")
        .expect("line");
    assert!(first["figures"].get("runs_out_at").is_none(), "{first}");

    // 50% on day 0, 80% on day 6: 5 points a day, so 100% on day 10.
    app.clock
        .advance(std::time::Duration::from_secs(6 * 86_400));
    assert_eq!(
        app.deliver(fixture("usage.threshold_reached.80.json").as_bytes())
            .0,
        200
    );
    assert!(app.eventually(|| notified(&app, "evt_01JDX3K9Q4A80") == 1));
    let second = app
        .log_lines()
        .into_iter()
        .find(|line| line["id"] == "evt_01JDX3K9Q4A80")
        .expect("line");
    let expected = perfhook::notify::rfc3339(start + 10 * 86_400);
    assert_eq!(
        second["figures"]["runs_out_at"],
        expected.as_str(),
        "{second}"
    );
    let reader = format!(
        "Bearer {}",
        key(&app, &[Scope::EventsRead], Mode::Live, 600)
    );
    let (_, _, budgets) = app.admin_get("/admin/v1/budgets", Some(&reader));
    assert_eq!(
        budgets["budgets"][0]["runs_out_at"],
        expected.as_str(),
        "{budgets}"
    );
}

const ROUTED: &str = r#"
[[endpoints]]
name = "routed"
path = "/webhooks/routed"
notifiers = ["log"]
secrets = [{ name = "primary", file = {secret_file} }]

[[endpoints.routes]]
min_percent = 100
notifiers = ["log", "mail"]

[[endpoints.routes]]
min_percent = 80
below_percent = 100
notifiers = ["mail"]
cooldown = "6h"

[[endpoints.routes]]
types = ["usage.threshold_reached"]
below_percent = 80
notifiers = ["log"]
"#;

/// Who notified `id`: (log lines, mails).
fn notified_by(app: &TestApp, id: &str) -> (usize, usize) {
    let mails = app.mails().iter().filter(|mail| mail.contains(id)).count();
    (notified(app, id), mails)
}

#[test]
fn routes_choose_notifiers_by_threshold_and_a_cooldown_holds_a_project_back() {
    let app = spawn_app("", ROUTED);
    let deliver = |body: Vec<u8>| {
        let (status, answer) = app.deliver_to("/webhooks/routed", &body);
        assert_eq!(status, 200, "{answer}");
    };
    let settled = |id: &str, expected: (usize, usize)| {
        assert!(
            app.eventually(|| notified_by(&app, id) == expected),
            "{id}: {:?} not {expected:?}",
            notified_by(&app, id)
        );
    };
    deliver(fixture("usage.threshold_reached.50.json").into_bytes());
    settled("evt_01JDX3K9Q4A50", (1, 0));
    deliver(fixture("usage.threshold_reached.80.json").into_bytes());
    settled("evt_01JDX3K9Q4A80", (0, 1));
    deliver(fixture("usage.threshold_reached.100.json").into_bytes());
    settled("evt_01JDX3K9Q4AA0", (1, 1));
    // No threshold: its usage (104%) decides.
    deliver(fixture("budget.exceeded.json").into_bytes());
    settled("evt_01JDX3K9Q4BEX", (1, 1));

    // The 80% route's cooldown is per project: the next period's 80% an hour later is a new
    // crossing, but the project was mailed through this route under 6 h ago.
    app.clock.advance(std::time::Duration::from_secs(3600));
    deliver(eighty("evt_dec_80", "2026-12-01T00:00:00Z"));
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(notified_by(&app, "evt_dec_80"), (0, 0));
    let reader = format!(
        "Bearer {}",
        key(&app, &[Scope::EventsRead], Mode::Live, 600)
    );
    let (_, _, event) = app.admin_get("/admin/v1/events/routed/evt_dec_80", Some(&reader));
    let job = &event["notifications"][0];
    assert_eq!(job["notifier"], "mail", "{event}");
    assert_eq!(job["status"], "suppressed", "{event}");
    assert!(
        job["last_error"]
            .as_str()
            .is_some_and(|why| why.contains("cooldown")),
        "{event}"
    );
    // Six hours after the last mail through the route, it goes out again.
    app.clock.advance(std::time::Duration::from_secs(5 * 3600));
    deliver(eighty("evt_jan_80", "2027-01-01T00:00:00Z"));
    settled("evt_jan_80", (0, 1));
}
