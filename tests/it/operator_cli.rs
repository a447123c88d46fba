//! `perfhook events` and `perfhook outbox` against a running receiver's operator API.

use std::time::Duration;

use crate::helpers::perfhook;
use crate::server_helpers::{alert, client, config, deliver, wait_until, Server};

const WAIT: Duration = Duration::from_secs(20);

#[test]
fn events_are_listed_shown_notified_again_and_deleted_from_the_command_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let made = perfhook(
        &[
            "keys",
            "create",
            "--name",
            "ops",
            "--scope",
            "events:read",
            "--scope",
            "events:write",
            "--data-dir",
            data.to_str().expect("path"),
        ],
        &[],
        b"",
    );
    assert_eq!(made.code, 0, "{}", made.stderr);
    let key = made.stdout.trim().to_owned();
    let server = Server::start(dir.path(), &config(dir.path(), "\"log\"", ""));
    let (status, _) = deliver(&client(), &server, &alert("evt_cli"));
    assert_eq!(status, 200);
    assert!(wait_until(WAIT, || server.alert_lines("evt_cli") == 1));
    let admin = server.admin_base();
    let cli = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend_from_slice(&["--admin-url", &admin]);
        perfhook(&all, &[("PERFHOOK_ADMIN_KEY", &key)], b"")
    };

    let listed = cli(&["events", "list"]);
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    assert!(
        listed
            .stdout
            .lines()
            .nth(1)
            .is_some_and(|line| line.starts_with("perf\tevt_cli\tusage.threshold_reached\ttrue\t")),
        "{}",
        listed.stdout
    );
    let shown = cli(&["events", "show", "perf", "evt_cli"]);
    let shown: serde_json::Value = serde_json::from_str(&shown.stdout).expect("json");
    assert_eq!(
        shown["body"].as_str().map(str::as_bytes),
        Some(&alert("evt_cli")[..])
    );
    assert_eq!(shown["notifications"][0]["status"], "delivered");

    let again = cli(&["events", "renotify", "perf", "evt_cli"]);
    assert_eq!(
        again.stdout.trim(),
        "queued 1 notification(s) for perf/evt_cli"
    );
    assert!(wait_until(WAIT, || server.alert_lines("evt_cli") == 2));
    let outbox = cli(&["outbox", "list", "--dead"]);
    assert_eq!(
        outbox.stdout.lines().count(),
        1,
        "nothing dead: {}",
        outbox.stdout
    );
    let retried = cli(&["outbox", "retry", "perf", "evt_cli", "log"]);
    assert_eq!(retried.stdout.trim(), "queued log for perf/evt_cli");

    let none = cli(&["events", "purge", "--project", "no-such-project"]);
    assert_eq!(none.stdout.trim(), "deleted 0 event(s)", "{}", none.stderr);
    let deleted = cli(&["events", "delete", "perf", "evt_cli"]);
    assert_eq!(deleted.stdout.trim(), "deleted perf/evt_cli");
    let gone = cli(&["events", "show", "perf", "evt_cli"]);
    assert_eq!(gone.code, 2);
    assert!(
        gone.stderr
            .starts_with("perfhook: error: 404 not_found: no event \"evt_cli\""),
        "{}",
        gone.stderr
    );
}
