//! The operator API over real HTTP, in process (fixed clock, memory store): every route
//! against every kind of credential, the rate-limit headers and 429, the per-source limit
//! on failed authentications, and what a test key may see.

use std::time::Duration;

use perfhook::api_key::{self, KeySpec, Scope};
use perfhook::event::Mode;
use perfhook::store::Store;

use crate::app::{key, spawn_app, T0};
use crate::server_helpers::alert;

fn bearer(key: &str) -> String {
    format!("Bearer {key}")
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(candidate, _)| candidate.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.as_str())
}

#[test]
fn every_route_answers_each_kind_of_credential_with_its_status_and_error_type() {
    let app = spawn_app("", "");
    let (status, _) = app.deliver(&alert("evt_seen"));
    assert_eq!(status, 200);
    let all = [
        Scope::EventsRead,
        Scope::EventsWrite,
        Scope::RefusedRead,
        Scope::RefusedWrite,
        Scope::KeysAdmin,
        Scope::AuditRead,
    ];
    let routes = [
        ("/admin/v1/events", Scope::EventsRead),
        ("/admin/v1/events/perf/evt_seen", Scope::EventsRead),
        ("/admin/v1/keys", Scope::KeysAdmin),
        ("/admin/v1/audit", Scope::AuditRead),
        ("/admin/v1/refused", Scope::RefusedRead),
    ];
    let unknown = {
        let made = api_key::generate(
            &KeySpec {
                name: "never stored".into(),
                scopes: all.to_vec(),
                mode: Mode::Live,
                expires_in: None,
                rate_limit_per_minute: 600,
            },
            T0,
        )
        .expect("key");
        made.key.to_string()
    };
    let revoked = key(&app, &all, Mode::Live, 600);
    let mut record = app
        .runtime_block(app.store.api_key(&revoked[..17]))
        .expect("get")
        .expect("stored");
    record.revoked_at = Some(T0);
    app.runtime_block(app.store.put_api_key(&record))
        .expect("revoke");
    let expired = {
        let made = api_key::generate(
            &KeySpec {
                name: "short-lived".into(),
                scopes: all.to_vec(),
                mode: Mode::Live,
                expires_in: Some(Duration::from_secs(1)),
                rate_limit_per_minute: 600,
            },
            T0 - 10,
        )
        .expect("key");
        app.runtime_block(app.store.put_api_key(&made.record))
            .expect("put");
        made.key.to_string()
    };
    for (path, scope) in routes {
        let lacking: Vec<Scope> = all.iter().copied().filter(|s| *s != scope).collect();
        let lacking = key(&app, &lacking, Mode::Live, 600);
        let holding = key(&app, &[scope], Mode::Live, 600);
        let cases: [(&str, Option<String>, u16, Option<&str>); 7] = [
            ("no key", None, 401, Some("authentication_required")),
            (
                "not bearer",
                Some(format!("Basic {holding}")),
                401,
                Some("invalid_api_key"),
            ),
            (
                "unknown key",
                Some(bearer(&unknown)),
                401,
                Some("invalid_api_key"),
            ),
            (
                "revoked key",
                Some(bearer(&revoked)),
                401,
                Some("invalid_api_key"),
            ),
            (
                "expired key",
                Some(bearer(&expired)),
                401,
                Some("invalid_api_key"),
            ),
            (
                "scope lacking",
                Some(bearer(&lacking)),
                403,
                Some("insufficient_scope"),
            ),
            ("scope held", Some(bearer(&holding)), 200, None),
        ];
        for (what, authorization, expected, error) in cases {
            let (status, headers, body) = app.admin_get(path, authorization.as_deref());
            assert_eq!(status, expected, "{path} with {what}: {body}");
            assert_eq!(
                body["error"]["type"].as_str(),
                error,
                "{path} with {what}: {body}"
            );
            if status == 401 {
                assert_eq!(header(&headers, "www-authenticate"), Some("Bearer"));
            }
            if status == 403 {
                assert!(body["error"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains(scope.name())));
            }
            if matches!(status, 200 | 403) {
                assert_eq!(header(&headers, "x-ratelimit-limit"), Some("600"), "{what}");
            }
        }
        // Failed authentications are limited per source: a minute later, a clean slate.
        app.clock.advance(Duration::from_secs(61));
    }

    // What the held scope returns.
    let reader = key(&app, &[Scope::EventsRead], Mode::Live, 600);
    let (_, _, listing) = app.admin_get("/admin/v1/events", Some(&bearer(&reader)));
    assert_eq!(listing["events"][0]["id"], "evt_seen");
    assert_eq!(listing["next_cursor"], serde_json::Value::Null);
    let (_, _, event) = app.admin_get("/admin/v1/events/perf/evt_seen", Some(&bearer(&reader)));
    assert_eq!(
        event["body"].as_str().map(str::as_bytes),
        Some(&alert("evt_seen")[..])
    );
    let (status, _, missing) =
        app.admin_get("/admin/v1/events/perf/evt_absent", Some(&bearer(&reader)));
    assert_eq!(
        (status, missing["error"]["type"].as_str()),
        (404, Some("not_found"))
    );
    let (status, _, bad) = app.admin_get("/admin/v1/events?limit=many", Some(&bearer(&reader)));
    assert_eq!(
        (status, bad["error"]["type"].as_str()),
        (400, Some("bad_request"))
    );
    let (status, _, elsewhere) = app.admin_get("/admin/v2/anything", None);
    assert_eq!(
        (status, elsewhere["error"]["type"].as_str()),
        (404, Some("not_found"))
    );

    // A key's use is recorded, and no listing shows a hash.
    let admin = key(&app, &[Scope::KeysAdmin], Mode::Live, 600);
    let (_, _, keys) = app.admin_get("/admin/v1/keys", Some(&bearer(&admin)));
    let listed = keys["keys"].as_array().expect("keys");
    let me = listed
        .iter()
        .find(|listed| listed["id"] == admin[..17])
        .expect("listed");
    assert_eq!(me["last_used_from"], "127.0.0.1");
    assert!(me["last_used_at"].as_u64().is_some());
    assert!(listed.iter().all(|listed| listed.get("sha256").is_none()));
    assert!(!keys.to_string().contains(&admin[17..]));
}

#[test]
fn a_key_over_its_limit_gets_429_with_retry_after_and_recovers() {
    let app = spawn_app("", "");
    let reader = key(&app, &[Scope::EventsRead], Mode::Live, 3);
    let get = || app.admin_get("/admin/v1/events", Some(&bearer(&reader)));
    for remaining in ["2", "1", "0"] {
        let (status, headers, _) = get();
        assert_eq!(status, 200);
        assert_eq!(header(&headers, "x-ratelimit-limit"), Some("3"));
        assert_eq!(header(&headers, "x-ratelimit-remaining"), Some(remaining));
        assert!(header(&headers, "x-ratelimit-reset").is_some());
    }
    let (status, headers, body) = get();
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["type"], "rate_limit_exceeded");
    assert_eq!(body["error"]["retry_after"], 20, "one request every 20 s");
    assert_eq!(header(&headers, "retry-after"), Some("20"));
    assert_eq!(header(&headers, "x-ratelimit-remaining"), Some("0"));
    app.clock.advance(Duration::from_secs(20));
    let (status, headers, _) = get();
    assert_eq!(status, 200, "one request back after Retry-After");
    assert_eq!(header(&headers, "x-ratelimit-remaining"), Some("0"));
    app.clock.advance(Duration::from_secs(60));
    let (status, headers, _) = get();
    assert_eq!(status, 200);
    assert_eq!(
        header(&headers, "x-ratelimit-remaining"),
        Some("2"),
        "reset"
    );
    assert_eq!(header(&headers, "x-ratelimit-reset"), Some("20"));
}

#[test]
fn a_source_that_keeps_failing_gets_429_for_its_failures_until_its_minute_passes() {
    let app = spawn_app("", "");
    let good = key(&app, &[Scope::EventsRead], Mode::Live, 600);
    let wrong = format!("{}{}", &good[..17], "x".repeat(good.len() - 17));
    for attempt in 0..10 {
        let (status, _, _) = app.admin_get("/admin/v1/events", Some(&bearer(&wrong)));
        assert_eq!(status, 401, "attempt {attempt}");
    }
    let (status, headers, body) = app.admin_get("/admin/v1/events", Some(&bearer(&wrong)));
    assert_eq!(
        (status, body["error"]["type"].as_str()),
        (429, Some("rate_limit_exceeded"))
    );
    assert!(header(&headers, "retry-after").is_some());
    let (status, _, _) = app.admin_get("/admin/v1/events", Some(&bearer(&good)));
    assert_eq!(
        status, 200,
        "a valid key still works: one process cannot lock others out"
    );
    let (status, _, _) = app.admin_get("/admin/v1/events", Some(&bearer(&wrong)));
    assert_eq!(status, 429, "further failures stay refused");
    app.clock.advance(Duration::from_secs(60));
    let (status, _, _) = app.admin_get("/admin/v1/events", Some(&bearer(&wrong)));
    assert_eq!(status, 401, "a minute later, a clean slate");
    // Eleven failures make two audit entries, the minute's first failure and the block, and
    // the failure a minute later one more; each key's first use from an address makes one.
    let auditor = key(&app, &[Scope::AuditRead], Mode::Live, 600);
    let (status, _, log) = app.admin_get("/admin/v1/audit?kind=auth", Some(&bearer(&auditor)));
    assert_eq!(status, 200, "{log}");
    let actions: Vec<&str> = log["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|entry| entry["action"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        actions,
        [
            "key.used_from_new_address",
            "auth.failed",
            "key.used_from_new_address",
            "auth.blocked",
            "auth.failed"
        ],
        "{log}"
    );
    assert_eq!(log["entries"][0]["key"], auditor[..17]);
    assert_eq!(log["entries"][4]["outcome"], "invalid_api_key");
    assert_eq!(log["entries"][4]["source"], "127.0.0.1");
    assert!(
        !log.to_string().contains(&wrong[17..]),
        "no presented key in the log"
    );
}

#[test]
fn a_test_key_sees_only_test_mode_endpoints() {
    let app = spawn_app("", "");
    let mut test_alert: serde_json::Value =
        serde_json::from_slice(&alert("evt_test_one")).expect("json");
    test_alert["livemode"] = false.into();
    let test_alert = serde_json::to_vec(&test_alert).expect("bytes");
    assert_eq!(app.deliver_to("/webhooks/perf-test", &test_alert).0, 200);
    assert_eq!(app.deliver(&alert("evt_live_one")).0, 200);
    let test_key = key(&app, &[Scope::EventsRead], Mode::Test, 600);
    let live_key = key(&app, &[Scope::EventsRead], Mode::Live, 600);
    let ids = |key: &str| {
        let (_, _, body) = app.admin_get("/admin/v1/events", Some(&bearer(key)));
        body["events"]
            .as_array()
            .expect("events")
            .iter()
            .map(|event| event["id"].as_str().unwrap_or_default().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&test_key), ["evt_test_one"]);
    let mut live_sees = ids(&live_key);
    live_sees.sort();
    assert_eq!(live_sees, ["evt_live_one", "evt_test_one"]);
    let (status, _, _) = app.admin_get("/admin/v1/events?endpoint=perf", Some(&bearer(&test_key)));
    assert_eq!(status, 404);
    let (status, _, _) = app.admin_get(
        "/admin/v1/events/perf/evt_live_one",
        Some(&bearer(&test_key)),
    );
    assert_eq!(status, 404);
    let (status, _, _) = app.admin_get(
        "/admin/v1/events/perf-test/evt_test_one",
        Some(&bearer(&test_key)),
    );
    assert_eq!(status, 200);
}

#[test]
fn the_openapi_document_lists_exactly_the_routes_that_answer() {
    let app = spawn_app("", "");
    let (status, _, document) = app.admin_get("/admin/v1/openapi.json", None);
    assert_eq!(status, 200, "the document needs no key");
    assert_eq!(document["openapi"].as_str().map(|v| &v[..2]), Some("3."));
    let paths = document["paths"].as_object().expect("paths");
    let mut operations: Vec<(String, String)> = paths
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .expect("path item")
                .keys()
                .map(move |method| (method.to_uppercase(), path.clone()))
        })
        .collect();
    operations.sort();
    let expected = [
        ("GET", "/admin/v1/audit"),
        ("GET", "/admin/v1/audit/verify"),
        ("GET", "/admin/v1/budgets"),
        ("GET", "/admin/v1/overview"),
        ("GET", "/admin/v1/events"),
        ("GET", "/admin/v1/events/{endpoint}/{id}"),
        ("GET", "/admin/v1/keys"),
        ("GET", "/admin/v1/openapi.json"),
        ("GET", "/admin/v1/refused"),
        ("GET", "/admin/v1/refused/{id}"),
        ("GET", "/admin/v1/refused/{id}/request"),
        ("DELETE", "/admin/v1/events"),
        ("DELETE", "/admin/v1/events/{endpoint}/{id}"),
        ("GET", "/admin/v1/outbox"),
        ("POST", "/admin/v1/events/{endpoint}/{id}/renotify"),
        ("POST", "/admin/v1/keys"),
        ("POST", "/admin/v1/keys/{id}/revoke"),
        ("POST", "/admin/v1/keys/{id}/rotate"),
        ("POST", "/admin/v1/outbox/{endpoint}/{id}/{notifier}/retry"),
        ("POST", "/admin/v1/refused/reverify"),
    ];
    let mut expected = expected.map(|(m, p)| (m.to_owned(), p.to_owned())).to_vec();
    expected.sort();
    assert_eq!(operations, expected, "the document lists the routes");
    // Every documented route answers (401 without a key, not 404) and names its scope.
    for (method, path) in &operations {
        if path.ends_with("openapi.json") {
            continue;
        }
        let concrete = path
            .replace("{endpoint}", "perf")
            .replace("{id}", "x")
            .replace("{notifier}", "log");
        let (status, _, body) = app.admin_call(method, &concrete, None);
        assert_eq!(
            (status, body["error"]["type"].as_str()),
            (401, Some("authentication_required")),
            "{method} {path}"
        );
        let operation = &paths[path.as_str()][method.to_lowercase().as_str()];
        let scopes = &operation["security"][0]["api_key"];
        assert!(
            scopes.as_array().is_some_and(|s| s.len() == 1),
            "{method} {path} names its scope: {operation}"
        );
    }
    assert_eq!(
        document["components"]["securitySchemes"]["api_key"]["scheme"],
        "bearer"
    );
    let (status, _, _) = app.admin_get("/admin/v1/nothing", None);
    assert_eq!(status, 404);
}

#[test]
fn metrics_count_admin_requests_per_key_and_keys_due_for_rotation() {
    let app = spawn_app("", "");
    let reader = key(&app, &[Scope::EventsRead], Mode::Live, 600);
    // An old key: made 91 days before the app's clock.
    let old = api_key::generate(
        &KeySpec {
            name: "old".into(),
            scopes: vec![Scope::AuditRead],
            mode: Mode::Live,
            expires_in: None,
            rate_limit_per_minute: 60,
        },
        T0 - 91 * 86_400,
    )
    .expect("key");
    app.runtime_block(app.store.put_api_key(&old.record))
        .expect("put");
    for _ in 0..2 {
        app.admin_get("/admin/v1/events", Some(&bearer(&reader)));
    }
    app.admin_get("/admin/v1/keys", Some(&bearer(&reader)));
    app.admin_get("/admin/v1/events", Some("Bearer phk_live_nope"));
    let wrong_secret = format!("{}{}", &reader[..17], "y".repeat(reader.len() - 17));
    app.admin_get("/admin/v1/events", Some(&bearer(&wrong_secret)));
    let body = alert("evt_forged");
    let forged = crate::server_helpers::signature_with("another-secret-0123456789", &body, T0);
    let (status, _) =
        crate::server_helpers::post(&app.agent, &app.url("/webhooks/perf"), &[forged], &body);
    assert_eq!(status, 401);
    let (status, text) = app.get("/metrics");
    assert_eq!(status, 200);
    let id = &reader[..17];
    for line in [
        format!("perfhook_admin_requests_total{{key=\"{id}\",outcome=\"ok\"}} 2"),
        format!("perfhook_admin_requests_total{{key=\"{id}\",outcome=\"insufficient_scope\"}} 1"),
        format!("perfhook_admin_requests_total{{key=\"{id}\",outcome=\"auth_failed\"}} 1"),
        "perfhook_admin_auth_failures_total{reason=\"invalid_api_key\"} 2".to_owned(),
        "perfhook_api_keys_due_for_rotation 1".to_owned(),
        "perfhook_refused_deliveries_total{endpoint=\"perf\",result=\"kept\"} 1".to_owned(),
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "{line} missing from:\n{text}"
        );
    }
    assert!(!text.contains(&reader[17..]), "no key in the metrics");
}

#[test]
fn an_event_can_be_notified_again_its_outbox_inspected_and_the_event_deleted() {
    let app = crate::app::spawn_app_with_failing_mail("\"log\", \"mail\"");
    let body = alert("evt_again");
    assert_eq!(app.deliver(&body).0, 200);
    assert!(app.eventually(|| app.log_lines().len() == 1), "logged once");
    let reader = key(&app, &[Scope::EventsRead], Mode::Live, 600);
    let writer = key(
        &app,
        &[Scope::EventsWrite, Scope::AuditRead],
        Mode::Live,
        600,
    );

    // The failing mail job waits in the outbox with its error.
    assert!(app.eventually(|| {
        let (_, _, outbox) =
            app.admin_get("/admin/v1/outbox?status=pending", Some(&bearer(&reader)));
        outbox["jobs"][0]["attempts"]
            .as_u64()
            .is_some_and(|a| a >= 1)
    }));
    let (_, _, outbox) = app.admin_get("/admin/v1/outbox?notifier=mail", Some(&bearer(&reader)));
    let job = &outbox["jobs"][0];
    assert_eq!(
        (job["event_id"].as_str(), job["notifier"].as_str()),
        (Some("evt_again"), Some("mail"))
    );
    assert!(
        job["last_error"].as_str().is_some_and(|e| !e.is_empty()),
        "{job}"
    );
    let (status, _, _) = app.admin_get("/admin/v1/outbox?status=lost", Some(&bearer(&reader)));
    assert_eq!(status, 400);

    // Re-notify: the delivered log job goes again, the pending mail job is left alone.
    let (status, _, answer) = app.admin_call(
        "POST",
        "/admin/v1/events/perf/evt_again/renotify",
        Some(&bearer(&writer)),
    );
    assert_eq!(
        (status, answer["queued"].as_u64()),
        (200, Some(1)),
        "{answer}"
    );
    assert!(
        app.eventually(|| app.log_lines().len() == 2),
        "logged again"
    );
    let (status, _, answer) = app.admin_call(
        "POST",
        "/admin/v1/events/perf/evt_again/renotify?notifier=pager",
        Some(&bearer(&writer)),
    );
    assert_eq!(
        (status, answer["error"]["type"].as_str()),
        (400, Some("bad_request"))
    );
    // A configured notifier this endpoint does not route to: no job is made for it.
    let mut test_event: serde_json::Value = serde_json::from_slice(&alert("evt_t")).expect("json");
    test_event["livemode"] = false.into();
    let test_event = serde_json::to_vec(&test_event).expect("bytes");
    assert_eq!(app.deliver_to("/webhooks/perf-test", &test_event).0, 200);
    let (status, _, answer) = app.admin_call(
        "POST",
        "/admin/v1/events/perf-test/evt_t/renotify?notifier=log",
        Some(&bearer(&writer)),
    );
    assert_eq!(status, 400, "{answer}");
    assert!(answer["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("has no notifier named \"log\"")));
    let (status, _, _) = app.admin_call(
        "POST",
        "/admin/v1/events/perf/evt_again/renotify",
        Some(&bearer(&reader)),
    );
    assert_eq!(status, 403, "re-notify needs events:write");
    let (status, _, answer) = app.admin_call(
        "POST",
        "/admin/v1/outbox/perf/evt_again/mail/retry",
        Some(&bearer(&writer)),
    );
    assert_eq!(
        (status, answer["queued"].as_u64()),
        (200, Some(0)),
        "still pending"
    );

    // Delete: gone with its dedupe key, so the same id is accepted again.
    let (status, _, _) = app.admin_call(
        "DELETE",
        "/admin/v1/events/perf/evt_again",
        Some(&bearer(&writer)),
    );
    assert_eq!(status, 200);
    let (status, _, _) = app.admin_get("/admin/v1/events/perf/evt_again", Some(&bearer(&reader)));
    assert_eq!(status, 404);
    let (status, _, _) = app.admin_call(
        "DELETE",
        "/admin/v1/events/perf/evt_again",
        Some(&bearer(&writer)),
    );
    assert_eq!(status, 404);
    app.clock.advance(Duration::from_secs(1));
    let (status, answer) = app.deliver(&body);
    assert_eq!((status, answer["status"].as_str()), (200, Some("accepted")));

    let (_, _, log) = app.admin_get("/admin/v1/audit?kind=update", Some(&bearer(&writer)));
    let actions: Vec<&str> = log["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|entry| entry["action"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(actions, ["outbox.retry", "event.renotify"], "{log}");
    let (_, _, log) = app.admin_get(
        "/admin/v1/audit?action=event.delete",
        Some(&bearer(&writer)),
    );
    assert_eq!(log["entries"][0]["target"], "perf/evt_again");
}

#[test]
fn every_event_of_a_project_or_organisation_can_be_deleted() {
    let app = spawn_app("", "");
    let event = |id: &str, organization: &str, project: &str| {
        format!(
            r#"{{"id":"{id}","type":"usage.threshold_reached","livemode":true,"data":{{"organization":{{"id":"org_{organization}","name":"{organization}"}},"project":{{"id":"proj_{project}","name":"{project}"}}}}}}"#
        )
        .into_bytes()
    };
    for (id, organization, project) in [
        ("evt_a", "acme", "bot"),
        ("evt_b", "acme", "bot"),
        ("evt_c", "acme", "search"),
        ("evt_d", "globex", "bot"),
    ] {
        assert_eq!(app.deliver(&event(id, organization, project)).0, 200);
    }
    let writer = key(
        &app,
        &[Scope::EventsWrite, Scope::EventsRead],
        Mode::Live,
        600,
    );
    let (status, _, answer) = app.admin_call("DELETE", "/admin/v1/events", Some(&bearer(&writer)));
    assert_eq!(
        (status, answer["error"]["type"].as_str()),
        (400, Some("bad_request"))
    );
    let (status, _, answer) = app.admin_call(
        "DELETE",
        "/admin/v1/events?organization=acme&project=proj_bot",
        Some(&bearer(&writer)),
    );
    assert_eq!(
        (status, answer["deleted"].as_u64()),
        (200, Some(2)),
        "{answer}"
    );
    let (_, _, answer) = app.admin_call(
        "DELETE",
        "/admin/v1/events?organization=org_globex",
        Some(&bearer(&writer)),
    );
    assert_eq!(answer["deleted"].as_u64(), Some(1));
    let (_, _, listing) = app.admin_get("/admin/v1/events", Some(&bearer(&writer)));
    let left: Vec<&str> = listing["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["id"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(left, ["evt_c"]);
}

#[test]
fn a_key_never_grants_more_than_it_holds_and_a_test_key_never_touches_live_keys() {
    let app = spawn_app("", "");
    let live_admin = key(
        &app,
        &[Scope::KeysAdmin, Scope::EventsRead],
        Mode::Live,
        600,
    );
    let test_admin = key(
        &app,
        &[Scope::KeysAdmin, Scope::EventsRead],
        Mode::Test,
        600,
    );
    let post = |path: &str, key: &str, body: serde_json::Value| {
        let url = format!("http://{}{path}", app.admin);
        let mut response = app
            .agent
            .post(&url)
            .header("Authorization", &bearer(key))
            .header("Content-Type", "application/json")
            .send(body.to_string().as_bytes())
            .expect("POST");
        let text = response.body_mut().read_to_string().expect("body");
        (
            response.status().as_u16(),
            serde_json::from_str::<serde_json::Value>(&text).expect("json"),
        )
    };
    // More than the caller holds: refused, naming what it lacks.
    let (status, answer) = post(
        "/admin/v1/keys",
        &live_admin,
        serde_json::json!({"name": "wide", "scopes": ["events:read", "audit:read"]}),
    );
    assert_eq!(
        (status, answer["error"]["type"].as_str()),
        (403, Some("not_allowed"))
    );
    assert!(answer["error"]["message"]
        .as_str()
        .is_some_and(|m| m.ends_with("lacks audit:read")));
    let (status, made) = post(
        "/admin/v1/keys",
        &live_admin,
        serde_json::json!({"name": "narrow", "scopes": ["events:read"]}),
    );
    assert_eq!(status, 201, "{made}");
    let live_id = made["id"].as_str().expect("id").to_owned();

    // A test key: test keys only, and live keys are invisible to it.
    let (status, answer) = post(
        "/admin/v1/keys",
        &test_admin,
        serde_json::json!({"name": "live", "scopes": ["events:read"]}),
    );
    assert_eq!(
        (status, answer["error"]["type"].as_str()),
        (403, Some("not_allowed"))
    );
    for path in [
        format!("/admin/v1/keys/{live_id}/rotate"),
        format!("/admin/v1/keys/{live_id}/revoke"),
    ] {
        let (status, _, answer) = app.admin_call("POST", &path, Some(&bearer(&test_admin)));
        assert_eq!(
            (status, answer["error"]["type"].as_str()),
            (404, Some("not_found")),
            "{path}"
        );
    }
    let (_, _, listed) = app.admin_get("/admin/v1/keys", Some(&bearer(&test_admin)));
    assert!(listed["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .all(|k| k["mode"] == "test"));

    // A key is rotated once; its replacement is rotated next.
    let (status, _, _) = app.admin_call(
        "POST",
        &format!("/admin/v1/keys/{live_id}/rotate"),
        Some(&bearer(&live_admin)),
    );
    assert_eq!(status, 201);
    let (status, _, answer) = app.admin_call(
        "POST",
        &format!("/admin/v1/keys/{live_id}/rotate"),
        Some(&bearer(&live_admin)),
    );
    assert_eq!(
        (status, answer["error"]["type"].as_str()),
        (400, Some("bad_request"))
    );
    assert!(answer["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("already rotated")));
}

/// A fixture body from `fixtures/events/`.
fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/fixtures/events/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("fixture")
}

#[test]
fn the_overview_counts_each_endpoints_answers_and_the_budgets_follow_the_usage() {
    let app = spawn_app("", "");
    for (name, days) in [
        ("usage.threshold_reached.50.json", 0),
        ("usage.threshold_reached.80.json", 5),
        ("usage.threshold_reached.100.json", 3),
    ] {
        app.clock.advance(Duration::from_secs(days * 86_400));
        assert_eq!(app.deliver(&fixture(name)).0, 200, "{name}");
    }
    // One duplicate, one refusal.
    assert_eq!(
        app.deliver(&fixture("usage.threshold_reached.100.json")).1["status"],
        "duplicate"
    );
    let body = fixture("budget.exceeded.json");
    let wrong =
        crate::server_helpers::signature_with("another-secret-0123456789", &body, app.now());
    let (status, _) = crate::server_helpers::post(
        &crate::server_helpers::client(),
        &app.url("/webhooks/perf"),
        &[wrong],
        &body,
    );
    assert_eq!(status, 401);
    let reader = bearer(&key(&app, &[Scope::EventsRead], Mode::Live, 600));

    let (status, _, overview) = app.admin_get("/admin/v1/overview", Some(&reader));
    assert_eq!(status, 200, "{overview}");
    let perf = overview["endpoints"]
        .as_array()
        .expect("endpoints")
        .iter()
        .find(|endpoint| endpoint["name"] == "perf")
        .expect("perf");
    assert_eq!(
        perf["last_24h"]["accepted"], 1,
        "{perf}: only the newest day"
    );
    assert_eq!(perf["last_24h"]["duplicate"], 1, "{perf}");
    assert_eq!(perf["last_24h"]["refused"], 1, "{perf}");
    assert_eq!(
        perf["last_delivery_at"],
        perfhook::notify::rfc3339(app.now()),
        "{perf}"
    );
    assert_eq!(perf["silent"], false);
    assert_eq!(overview["stored"]["events"], 3);

    let (status, _, budgets) = app.admin_get("/admin/v1/budgets", Some(&reader));
    assert_eq!(status, 200, "{budgets}");
    let list = budgets["budgets"].as_array().expect("budgets");
    assert_eq!(list.len(), 1, "{budgets}");
    let budget = &list[0];
    assert_eq!(budget["organization"], "Acme Robotics");
    assert_eq!(budget["project"], "support-bot");
    assert_eq!(budget["usage_percent"], 100);
    assert_eq!(budget["thresholds_fired"], serde_json::json!([50, 80, 100]));
    let usage: Vec<u64> = budget["points"]
        .as_array()
        .expect("points")
        .iter()
        .map(|point| point["usage_percent"].as_u64().expect("usage"))
        .collect();
    assert_eq!(usage, vec![50, 80, 100], "oldest first");
    assert_eq!(budget["period_start_unix"], 1_793_491_200_u64, "2026-11-01");
    assert_eq!(budgets["complete"], true);

    // The listing filters by project and mode, reading each body once.
    let (_, _, page) = app.admin_get(
        "/admin/v1/events?project=support-bot&mode=live",
        Some(&reader),
    );
    assert_eq!(page["events"].as_array().map(Vec::len), Some(3), "{page}");
    assert_eq!(page["events"][0]["usage_percent"], 100);
    let (_, _, page) = app.admin_get("/admin/v1/events?project=nobody", Some(&reader));
    assert_eq!(page["events"], serde_json::json!([]));
    let (_, _, page) = app.admin_get("/admin/v1/events?mode=test", Some(&reader));
    assert_eq!(page["events"], serde_json::json!([]));
    let (status, _, _) = app.admin_get("/admin/v1/events?mode=staging", Some(&reader));
    assert_eq!(status, 400);
    // Pages of one with a filter still walk every match, then end.
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let (_, _, page) = app.admin_get(
            &format!("/admin/v1/events?project=proj_4Fd9&limit=1{cursor}"),
            Some(&reader),
        );
        for event in page["events"].as_array().expect("events") {
            seen.push(event["id"].as_str().expect("id").to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 3, "{seen:?}");
}
