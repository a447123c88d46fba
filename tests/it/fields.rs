//! `[endpoints.fields]`: where an endpoint's alerts keep their figures. `config check
//! --sample` shows what a mapping reads from a body; a delivery to a mapped endpoint is
//! notified, listed and charted with the mapped figures.

use perfhook::api_key::Scope;
use perfhook::event::Mode;

use crate::app::{key, spawn_app};
use crate::helpers::{fixture, perfhook};
use crate::server_helpers::{SECRET, SECRET_ENV};

/// A config with one endpoint, its secret from the environment, and `fields`.
fn config_with(dir: &std::path::Path, fields: &str) -> String {
    let path = dir.join("perfhook.toml");
    std::fs::write(
        &path,
        format!(
            "[[endpoints]]\nname = \"perf\"\npath = \"/webhooks/perf\"\nsecrets = [{{ name = \"p\", env = \"{SECRET_ENV}\" }}]\n{fields}"
        ),
    )
    .expect("write config");
    path.display().to_string()
}

/// A body shaped unlike Perf's fixtures: what a changed payload could look like.
const RESHAPED: &str = r#"{"id":"evt_reshaped","type":"usage.threshold_reached","livemode":true,
  "data":{"account":{"label":"Acme Robotics"},"app":"support-bot",
  "spend":{"pct":"91.5","so_far":412.5,"cap":"450"},"alert_at":90}}"#;

#[test]
fn config_check_sample_shows_what_the_default_map_reads_from_a_fixture() {
    let sample = fixture("events/usage.threshold_reached.80.json");
    let run = perfhook(
        &[
            "config",
            "check",
            "--sample",
            sample.to_str().expect("path"),
        ],
        &[("PERFHOOK_SECRET", SECRET)],
        b"",
    );
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    for line in [
        "usage_percent      /data/usage/percent          80",
        "organization       /data/organization/name      Acme Robotics",
        "budget_id          /data/budget/id              (nothing there)",
        "# a notification would say: Acme Robotics / support-bot: 80% of monthly budget reached",
        "# ok: 10 of 11 figures found",
    ] {
        assert!(run.stdout.contains(line), "{line:?} in\n{}", run.stdout);
    }
}

#[test]
fn a_mapping_reads_a_reshaped_body_and_one_that_finds_nothing_exits_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sample = dir.path().join("sample.json");
    std::fs::write(&sample, RESHAPED).expect("write sample");
    let sample = sample.to_str().expect("path");

    let default_map = config_with(dir.path(), "");
    let run = perfhook(
        &[
            "config",
            "check",
            "--config",
            &default_map,
            "--sample",
            sample,
        ],
        &[(SECRET_ENV, SECRET)],
        b"",
    );
    assert_eq!(run.code, 1, "nothing found: {}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("# no figure found"), "{}", run.stdout);
    // The notification still carries every scalar under data.
    assert!(
        run.stdout.contains("data.spend.pct: 91.5"),
        "{}",
        run.stdout
    );

    let mapped = config_with(
        dir.path(),
        "[endpoints.fields]\norganization = \"/data/account/label\"\nproject = \"/data/app\"\nusage_percent = \"/data/spend/pct\"\nthreshold_percent = \"/data/alert_at\"\namount = \"/data/spend/so_far\"\nlimit = \"/data/spend/cap\"\n",
    );
    let run = perfhook(
        &["config", "check", "--config", &mapped, "--sample", sample],
        &[(SECRET_ENV, SECRET)],
        b"",
    );
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    for line in [
        "project            /data/app                    support-bot",
        "amount             /data/spend/so_far           412.5",
        "# a notification would say: Acme Robotics / support-bot: 90% of budget reached",
        "#   Usage: 91%",
        "# ok: 6 of 11 figures found",
    ] {
        assert!(run.stdout.contains(line), "{line:?} in\n{}", run.stdout);
    }

    // A pointer that is not one: one line, exit 2, naming the key.
    let broken = config_with(
        dir.path(),
        "[endpoints.fields]\nusage_percent = \"spend.pct\"\n",
    );
    let run = perfhook(
        &["config", "check", "--config", &broken],
        &[(SECRET_ENV, SECRET)],
        b"",
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("endpoints[0].fields: usage_percent: must be a JSON pointer"),
        "{}",
        run.stderr
    );
    assert_eq!(run.stderr.lines().count(), 1);
    // A sample that is not an event: one line, exit 2.
    let not_json = dir.path().join("not.json");
    std::fs::write(&not_json, "card 4111-1111").expect("write");
    let run = perfhook(
        &[
            "config",
            "check",
            "--config",
            &mapped,
            "--sample",
            not_json.to_str().expect("path"),
        ],
        &[(SECRET_ENV, SECRET)],
        b"",
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        !run.stderr.contains("4111"),
        "no body bytes in the message: {}",
        run.stderr
    );
}

#[test]
fn a_mapped_endpoint_notifies_lists_and_charts_its_own_figures() {
    let app = spawn_app(
        "",
        r#"
[[endpoints]]
name = "mapped"
path = "/webhooks/mapped"
notifiers = ["log"]
secrets = [{ name = "primary", file = {secret_file} }]

[endpoints.fields]
organization = "/data/account/label"
project = "/data/app"
usage_percent = "/data/spend/pct"
threshold_percent = "/data/alert_at"
"#,
    );
    let (status, answer) = app.deliver_to("/webhooks/mapped", RESHAPED.as_bytes());
    assert_eq!(status, 200, "{answer}");
    assert!(app.eventually(|| !app.log_lines().is_empty()), "notified");
    let line = &app.log_lines()[0];
    assert_eq!(line["figures"]["organization"], "Acme Robotics", "{line}");
    assert_eq!(line["figures"]["usage_percent"], 91, "{line}");
    assert_eq!(line["summary"], "90% of budget", "{line}");

    let reader = format!(
        "Bearer {}",
        key(&app, &[Scope::EventsRead], Mode::Live, 600)
    );
    let (_, _, event) = app.admin_get("/admin/v1/events/mapped/evt_reshaped", Some(&reader));
    assert_eq!(event["alert"]["project"], "support-bot", "{event}");
    let (_, _, page) = app.admin_get("/admin/v1/events?project=support-bot", Some(&reader));
    assert_eq!(page["events"][0]["id"], "evt_reshaped", "{page}");
    let (_, _, budgets) = app.admin_get("/admin/v1/budgets?endpoint=mapped", Some(&reader));
    assert_eq!(
        budgets["budgets"][0]["organization"], "Acme Robotics",
        "{budgets}"
    );
    assert_eq!(
        budgets["budgets"][0]["thresholds_fired"],
        serde_json::json!([90])
    );
}
