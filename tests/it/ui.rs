//! The inspector over plain HTTP, in process: its security headers and cookie, sign-in and
//! what a wrong key reaches, CSRF on every form, sessions that end with their key, and no
//! secret or API key in any page, cookie or download. The browser tests are in `ui_browser`.

use perfhook::api_key::Scope;
use perfhook::event::Mode;
use perfhook::store::Store;

use crate::app::{key, spawn_app, TestApp};
use crate::server_helpers::{alert, client, post, signature_with, SECRET};

/// Every scope: what an operator's inspector key holds.
pub const ALL_SCOPES: [Scope; 6] = [
    Scope::EventsRead,
    Scope::EventsWrite,
    Scope::RefusedRead,
    Scope::RefusedWrite,
    Scope::KeysAdmin,
    Scope::AuditRead,
];

/// One answer: status, headers (lower-case names) and body.
pub struct Page {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Page {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(candidate, _)| candidate == name)
            .map(|(_, value)| value.as_str())
    }

    /// The value of the hidden field `name` in the page's first form holding it.
    pub fn field(&self, name: &str) -> Option<String> {
        let marker = format!("name=\"{name}\" value=\"");
        let start = self.body.find(&marker)? + marker.len();
        let rest = self.body.get(start..)?;
        Some(rest.get(..rest.find('"')?)?.to_owned())
    }
}

/// A browser without a browser: follows no redirects, keeps the cookies it is given.
pub struct Visitor {
    agent: ureq::Agent,
    base: String,
    cookies: Vec<(String, String)>,
    /// Every page and `Set-Cookie` seen, to search for secrets.
    pub seen: String,
}

impl Visitor {
    pub fn new(app: &TestApp) -> Self {
        Self {
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .max_redirects(0)
                .build()
                .into(),
            base: format!("http://{}", app.admin),
            cookies: Vec::new(),
            seen: String::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn keep(&mut self, mut response: ureq::http::Response<ureq::Body>) -> Page {
        let headers: Vec<(String, String)> = response
            .headers()
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_ascii_lowercase(),
                    value.to_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        for (_, set) in headers.iter().filter(|(name, _)| name == "set-cookie") {
            self.seen.push_str(set);
            let pair = set.split(';').next().unwrap_or_default();
            if let Some((name, value)) = pair.split_once('=') {
                self.cookies.retain(|(kept, _)| kept != name);
                if !set.contains("Max-Age=0") {
                    self.cookies.push((name.to_owned(), value.to_owned()));
                }
            }
        }
        let body = response.body_mut().read_to_string().unwrap_or_default();
        self.seen.push_str(&body);
        Page {
            status: response.status().as_u16(),
            headers,
            body,
        }
    }

    pub fn get(&mut self, path: &str) -> Page {
        let response = self
            .agent
            .get(format!("{}{path}", self.base))
            .header("Cookie", self.cookie_header())
            .call()
            .expect("GET");
        self.keep(response)
    }

    pub fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        self.post_with(path, form, &[])
    }

    /// [`Visitor::post`] with extra headers (`Origin`, `Sec-Fetch-Site`).
    pub fn post_with(
        &mut self,
        path: &str,
        form: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> Page {
        let mut request = self
            .agent
            .post(format!("{}{path}", self.base))
            .header("Cookie", self.cookie_header());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send_form(form.iter().copied()).expect("POST");
        self.keep(response)
    }

    /// Signs in with `key` through the form; returns the answer to the POST.
    pub fn sign_in(&mut self, key: &str) -> Page {
        let form = self.get("/ui/sign-in");
        let token = form.field("form_token").expect("the form has its token");
        self.post("/ui/sign-in", &[("key", key), ("form_token", &token)])
    }
}

#[test]
fn pages_carry_strict_security_headers_and_need_a_session() {
    let app = spawn_app("", "");
    let mut visitor = Visitor::new(&app);
    for path in [
        "/ui/overview",
        "/ui/events",
        "/ui/events/perf/evt_1",
        "/ui/audit",
    ] {
        let page = visitor.get(path);
        assert_eq!(page.status, 303, "{path}");
        assert_eq!(page.header("location"), Some("/ui/sign-in"), "{path}");
    }
    let page = visitor.get("/ui/sign-in");
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-security-policy"),
        Some(perfhook::ui::CONTENT_SECURITY_POLICY)
    );
    assert!(perfhook::ui::CONTENT_SECURITY_POLICY.contains("default-src 'none'"));
    assert!(!perfhook::ui::CONTENT_SECURITY_POLICY.contains("unsafe-inline"));
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
    assert_eq!(page.header("referrer-policy"), Some("no-referrer"));
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(page.header("cache-control"), Some("no-store"));
    assert!(!page.body.contains("<script"), "no script at all");
    let stylesheet = visitor.get("/ui/style.css");
    assert_eq!(stylesheet.status, 200);
    assert!(stylesheet
        .header("content-type")
        .is_some_and(|kind| kind.starts_with("text/css")));

    let reader = key(&app, &[Scope::EventsRead], Mode::Live, 600);
    let signed = visitor.sign_in(&reader);
    assert_eq!(signed.status, 303);
    assert_eq!(signed.header("location"), Some("/ui/overview"));
    let cookie = signed
        .headers
        .iter()
        .find(|(name, value)| name == "set-cookie" && value.starts_with("perfhook_ui="))
        .map(|(_, value)| value.clone())
        .expect("a session cookie");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/ui"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    assert!(
        !cookie.contains("Secure"),
        "plain HTTP: not Secure ({cookie})"
    );
    let overview = visitor.get("/ui/overview");
    assert_eq!(overview.status, 200);
    assert!(
        overview.body.contains("<h2 id=\"ep-1\">perf"),
        "{}",
        overview.body
    );
    // The key lacks refused:read, keys:admin and audit:read: no link, and 403 pages.
    assert!(!overview.body.contains("href=\"/ui/audit\""));
    assert_eq!(visitor.get("/ui/audit").status, 403);
    assert_eq!(visitor.get("/ui/refused").status, 403);
}

/// A sign-in form's token and the cookies that came with it.
fn other_form(app: &TestApp) -> (String, Vec<(String, String)>) {
    let mut visitor = Visitor::new(app);
    let page = visitor.get("/ui/sign-in");
    (page.field("form_token").expect("token"), visitor.cookies)
}

#[test]
fn a_wrong_key_shows_the_error_and_reaches_nothing() {
    let app = spawn_app("", "");
    let good = key(&app, &ALL_SCOPES, Mode::Live, 600);
    let mut visitor = Visitor::new(&app);
    // Its last character changed: to `y` when it already ends in `x` (1 key in 62), else the
    // "wrong" key would be the right one.
    let last = if good.ends_with('x') { 'y' } else { 'x' };
    let wrong = format!("{}{last}", &good[..good.len() - 1]);
    let page = visitor.sign_in(&wrong);
    assert_eq!(page.status, 401);
    assert!(page.body.contains("id=\"error\""), "{}", page.body);
    assert!(page.body.contains("not valid"));
    assert!(!page.body.contains(&wrong), "the key typed is not echoed");
    assert!(
        !visitor
            .cookies
            .iter()
            .any(|(name, _)| name == "perfhook_ui"),
        "no session"
    );
    for path in ["/ui/overview", "/ui/events", "/ui/keys", "/ui/outbox"] {
        assert_eq!(visitor.get(path).status, 303, "{path}");
    }
    // A key without events:read cannot sign in either.
    let auditor = key(&app, &[Scope::AuditRead], Mode::Live, 600);
    let page = visitor.sign_in(&auditor);
    assert_eq!(page.status, 401);
    assert!(page.body.contains("events:read"), "{}", page.body);
    // A sign-in posted from another origin is refused, with its tied cookie and token.
    let form = other_form(&app);
    let mut elsewhere = Visitor::new(&app);
    elsewhere.cookies = form.1;
    let page = elsewhere.post_with(
        "/ui/sign-in",
        &[("key", &good), ("form_token", &form.0)],
        &[("Origin", "http://127.0.0.1:3000")],
    );
    assert_eq!(page.status, 401);
    assert!(!elsewhere
        .cookies
        .iter()
        .any(|(name, _)| name == "perfhook_ui"));
    // A sign-in form without the cookie it was tied to is refused.
    let mut other = Visitor::new(&app);
    let page = other.post("/ui/sign-in", &[("key", &good), ("form_token", "0")]);
    assert_eq!(page.status, 401);
    assert!(page.body.contains("expired"));
    // The failure is audited like an API one.
    let log = app.runtime_block(app.store.audit_log()).expect("audit");
    assert!(log
        .iter()
        .filter_map(|stored| stored.entry.as_ref().ok())
        .any(|entry| entry.action == "auth.failed"));
}

#[test]
fn every_form_needs_its_csrf_token_and_renotify_queues_through_the_api() {
    let app = spawn_app("\"log\"", "");
    let (status, _) = app.deliver(&alert("evt_csrf"));
    assert_eq!(status, 200);
    assert!(
        app.eventually(|| app.log_lines().len() == 1),
        "delivered once"
    );
    let operator = key(&app, &ALL_SCOPES, Mode::Live, 600);
    let mut visitor = Visitor::new(&app);
    assert_eq!(visitor.sign_in(&operator).status, 303);
    let event = visitor.get("/ui/events/perf/evt_csrf");
    assert_eq!(event.status, 200);
    let csrf = event
        .field("csrf")
        .expect("the page's forms carry the token");

    for form in [
        vec![],
        vec![("csrf", "0".repeat(64))],
        vec![("csrf", String::new())],
    ] {
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        for path in [
            "/ui/events/perf/evt_csrf/renotify",
            "/ui/outbox/perf/evt_csrf/log/retry",
            "/ui/refused/reverify",
            "/ui/sign-out",
        ] {
            let page = visitor.post(path, &form);
            assert_eq!(page.status, 403, "{path} with {form:?}");
        }
    }
    // The right token from another web app on this host (another port) is refused too:
    // browsers share cookies across ports, so the origin is checked as well.
    let elsewhere = [
        ("Origin", "http://127.0.0.1:3000"),
        ("Sec-Fetch-Site", "same-site"),
    ];
    let page = visitor.post_with(
        "/ui/events/perf/evt_csrf/renotify",
        &[("csrf", &csrf)],
        &elsewhere,
    );
    assert_eq!(page.status, 403);
    assert_eq!(app.log_lines().len(), 1, "nothing was queued again");
    assert_eq!(visitor.get("/ui/overview").status, 200, "still signed in");
    let own = format!("http://{}", app.admin);
    let same = [("Origin", own.as_str()), ("Sec-Fetch-Site", "same-origin")];
    let page = visitor.post_with("/ui/events/perf/evt_csrf/renotify", &[("csrf", "0")], &same);
    assert_eq!(page.status, 403, "the right origin still needs the token");

    let page = visitor.post("/ui/events/perf/evt_csrf/renotify", &[("csrf", &csrf)]);
    assert_eq!(page.status, 303);
    assert_eq!(
        page.header("location"),
        Some("/ui/events/perf/evt_csrf?done=renotify:1")
    );
    assert!(
        app.eventually(|| app.log_lines().len() == 2),
        "notified again"
    );
    let log = app.runtime_block(app.store.audit_log()).expect("audit");
    let renotified = log
        .iter()
        .filter_map(|stored| stored.entry.as_ref().ok())
        .find(|entry| entry.action == "event.renotify")
        .expect("audited as an API call");
    assert!(renotified
        .key
        .as_deref()
        .is_some_and(|id| operator.starts_with(id)));
    let page = visitor.get("/ui/events/perf/evt_csrf?done=renotify:1");
    assert!(
        page.body.contains("Queued 1 notification(s) again"),
        "{}",
        page.body
    );
    // Text in the notice parameter never reaches the page.
    let page = visitor.get("/ui/events/perf/evt_csrf?done=%3Cscript%3E");
    assert!(!page.body.contains("<script>"));
}

#[test]
fn a_session_ends_at_sign_out_and_when_its_key_is_revoked() {
    let app = spawn_app("", "");
    let operator = key(&app, &ALL_SCOPES, Mode::Live, 600);
    let mut visitor = Visitor::new(&app);
    assert_eq!(visitor.sign_in(&operator).status, 303);
    let overview = visitor.get("/ui/overview");
    let csrf = overview.field("csrf").expect("sign-out form");
    let out = visitor.post("/ui/sign-out", &[("csrf", &csrf)]);
    assert_eq!(out.status, 303);
    assert_eq!(visitor.get("/ui/overview").status, 303);

    assert_eq!(visitor.sign_in(&operator).status, 303);
    assert_eq!(visitor.get("/ui/overview").status, 200);
    let id = perfhook::api_key::key_id(&operator).expect("id").to_owned();
    let mut record = app
        .runtime_block(app.store.api_key(&id))
        .expect("read")
        .expect("stored");
    record.revoked_at = Some(app.now());
    app.runtime_block(app.store.put_api_key(&record))
        .expect("revoke");
    let page = visitor.get("/ui/overview");
    assert_eq!(page.status, 303);
    assert_eq!(page.header("location"), Some("/ui/sign-in?ended=1"));
}

#[test]
fn no_page_cookie_or_download_holds_the_webhook_secret_or_the_api_key() {
    let app = spawn_app("\"log\"", "");
    for id in ["evt_a", "evt_b"] {
        assert_eq!(app.deliver(&alert(id)).0, 200);
    }
    // A refused delivery, kept with its headers: signed with another secret.
    let body = alert("evt_refused");
    let wrong = signature_with("another-secret-0123456789abcdef", &body, app.now());
    let (status, _) = post(&client(), &app.url("/webhooks/perf"), &[wrong], &body);
    assert_eq!(status, 401, "a signature that does not match");
    let operator = key(&app, &ALL_SCOPES, Mode::Live, 600);
    let mut visitor = Visitor::new(&app);
    assert_eq!(visitor.sign_in(&operator).status, 303);
    for path in [
        "/ui/overview",
        "/ui/budgets",
        "/ui/events",
        "/ui/events?type=usage.threshold_reached&mode=live",
        "/ui/events/perf/evt_a",
        "/ui/refused",
        "/ui/outbox",
        "/ui/keys",
        "/ui/audit",
    ] {
        let page = visitor.get(path);
        assert_eq!(page.status, 200, "{path}: {}", page.body);
    }
    let refused = visitor.get("/ui/refused");
    let marker = "class=\"download\" href=\"";
    let start = refused.body.find(marker).expect("a download link") + marker.len();
    let link = refused.body[start..]
        .split('"')
        .next()
        .expect("href")
        .to_owned();
    let download = visitor.get(&link);
    assert_eq!(download.status, 200);
    assert!(download
        .header("content-disposition")
        .is_some_and(|value| value.starts_with("attachment")));
    assert!(
        download.body.starts_with("POST /webhooks/perf"),
        "{}",
        download.body
    );
    assert!(!visitor.seen.contains(SECRET), "the webhook secret leaked");
    assert!(!visitor.seen.contains(&operator), "the API key leaked");
    let (_, secret_part) = operator.rsplit_once('_').expect("key shape");
    assert!(
        !visitor.seen.contains(secret_part),
        "the key's secret part leaked"
    );
}

#[test]
fn the_overview_warns_when_a_sender_is_silent_longer_than_expected() {
    let app = spawn_app(
        "",
        r#"
[[endpoints]]
name = "quiet"
path = "/webhooks/quiet"
notifiers = []
expect_delivery_within = "2h"
secrets = [{ name = "primary", file = {secret_file} }]
"#,
    );
    let warning = "The sender has been silent longer than expected (2 h 0 min)";
    let overview = |app: &TestApp| {
        let mut visitor = Visitor::new(app);
        let operator = key(app, &[Scope::EventsRead], Mode::Live, 600);
        assert_eq!(visitor.sign_in(&operator).status, 303);
        let page = visitor.get("/ui/overview");
        assert_eq!(page.status, 200);
        // The card of the `quiet` endpoint: from its heading to the next card.
        let start = page
            .body
            .find(">quiet <")
            .expect("the quiet endpoint's card");
        let card = &page.body[start..];
        card[..card.find("</section>").unwrap_or(card.len())].to_owned()
    };
    let card = overview(&app);
    assert!(card.contains(warning), "{card}");
    assert!(card.contains("no delivery on record"), "{card}");

    assert_eq!(app.deliver_to("/webhooks/quiet", &alert("evt_q")).0, 200);
    let card = overview(&app);
    assert!(!card.contains(warning), "just delivered: {card}");

    app.clock
        .advance(std::time::Duration::from_secs(2 * 3600 + 1));
    let card = overview(&app);
    assert!(card.contains(warning), "{card}");
    assert!(!card.contains("no delivery on record"), "{card}");
    // Endpoints without the setting never warn.
    let (_, _, answer) = app.admin_get(
        "/admin/v1/overview",
        Some(&format!(
            "Bearer {}",
            key(&app, &[Scope::EventsRead], Mode::Live, 600)
        )),
    );
    let perf = &answer["endpoints"]
        .as_array()
        .expect("endpoints")
        .iter()
        .find(|e| e["name"] == "perf")
        .cloned()
        .expect("perf");
    assert_eq!(perf["silent"], false);
    assert_eq!(perf["expect_delivery_within_secs"], serde_json::Value::Null);
}
