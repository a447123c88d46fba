//! The inspector as a person uses it: Debian's headless Chromium driven through
//! chromedriver (WebDriver) against the in-process app. Sign in (a wrong key first), read
//! the overview, budgets and events, filter, open an event and re-notify it, download a
//! refused delivery's request file, sign out. Each step saves a screenshot under
//! `target/ui-screenshots/`. Without chromium and chromedriver the test says so and passes,
//! unless `PERFHOOK_REQUIRE_BROWSER=1` (set by `.ci/run`) makes their absence a failure.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use perfhook::event::Mode;

use crate::app::{key, spawn_app, TestApp};
use crate::server_helpers::{client, free_port, post, signature_with, SECRET};
use crate::ui::ALL_SCOPES;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// chromedriver on a free port, stopped on drop.
struct Driver {
    child: Child,
    port: u16,
}

impl Driver {
    fn start() -> Self {
        let port = free_port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver never listened");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child, port }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether the browser is here; when it is not, whether that fails the test.
fn browser_available() -> bool {
    let present = Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists();
    if !present {
        assert!(
            std::env::var("PERFHOOK_REQUIRE_BROWSER").as_deref() != Ok("1"),
            "PERFHOOK_REQUIRE_BROWSER=1 but {CHROMIUM} or {CHROMEDRIVER} is missing: apt-get install chromium chromium-driver"
        );
        eprintln!(
            "SKIPPED: the inspector's browser tests need {CHROMIUM} and {CHROMEDRIVER} (apt-get install chromium chromium-driver)"
        );
    }
    present
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/fixtures/events/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("fixture")
}

/// The fixtures through the real webhook endpoints, days apart, and one refusal.
fn seed(app: &TestApp) {
    for (name, path, days) in [
        ("usage.threshold_reached.50.json", "/webhooks/perf", 0),
        ("usage.threshold_reached.80.json", "/webhooks/perf", 6),
        ("usage.threshold_reached.100.json", "/webhooks/perf", 4),
        ("budget.exceeded.json", "/webhooks/perf", 2),
        (
            "test_mode.usage.threshold_reached.json",
            "/webhooks/perf-test",
            0,
        ),
    ] {
        app.clock.advance(Duration::from_secs(days * 86_400));
        let (status, answer) = app.deliver_to(path, &fixture(name));
        assert_eq!(status, 200, "{name}: {answer}");
    }
    let body = fixture("budget.exceeded.json");
    let wrong = signature_with("an-old-secret-0123456789abcdef", &body, app.now());
    let (status, _) = post(&client(), &app.url("/webhooks/perf"), &[wrong], &body);
    assert_eq!(status, 401);
}

/// Saves numbered screenshots and every page's source.
struct Camera {
    dir: PathBuf,
    taken: usize,
    sources: String,
}

impl Camera {
    fn new() -> Self {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/ui-screenshots");
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        Self {
            dir,
            taken: 0,
            sources: String::new(),
        }
    }

    async fn shoot(&mut self, browser: &Client, name: &str) {
        self.taken += 1;
        let png = browser.screenshot().await.expect("screenshot");
        std::fs::write(self.dir.join(format!("{:02}-{name}.png", self.taken)), png)
            .expect("save screenshot");
        self.sources
            .push_str(&browser.source().await.expect("page source"));
    }
}

/// Clicks what `locator` finds and waits for the page it leads to (a click returns before
/// the navigation it starts has finished).
async fn follow(browser: &Client, locator: Locator<'_>) {
    let old = browser.find(Locator::Css("html")).await.expect("a page");
    browser
        .find(locator)
        .await
        .unwrap_or_else(|_| panic!("{locator:?} on the page"))
        .click()
        .await
        .expect("click");
    let deadline = Instant::now() + Duration::from_secs(10);
    while old.attr("lang").await.is_ok() {
        assert!(Instant::now() < deadline, "the click led nowhere");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    browser
        .wait()
        .for_element(Locator::Css("main"))
        .await
        .expect("the next page");
}

async fn path_of(browser: &Client) -> String {
    browser.current_url().await.expect("url").path().to_owned()
}

async fn text_of(browser: &Client, css: &str) -> String {
    browser
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|_| panic!("{css} on the page"))
        .text()
        .await
        .expect("text")
}

/// Reloads until `css`'s text contains `wanted` (the outbox works in real time).
async fn reload_until(browser: &Client, css: &str, wanted: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = text_of(browser, css).await;
        if text.contains(wanted) || Instant::now() > deadline {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        browser.refresh().await.expect("reload");
    }
}

/// A file that finished downloading into `dir`.
async fn downloaded(dir: &Path) -> Option<PathBuf> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let done = std::fs::read_dir(dir)
            .ok()?
            .flatten()
            .map(|e| e.path())
            .find(|path| path.extension().is_some_and(|ext| ext == "http"));
        if done.is_some() {
            return done;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

#[test]
fn a_person_signs_in_reads_the_alerts_renotifies_downloads_a_refusal_and_signs_out() {
    if !browser_available() {
        return;
    }
    let app = spawn_app("\"log\"", "");
    seed(&app);
    let operator = key(&app, &ALL_SCOPES, Mode::Live, 6_000);
    let driver = Driver::start();
    let downloads = tempfile::tempdir().expect("download dir");
    let base = format!("http://{}", app.admin);
    let mut camera = Camera::new();

    app.runtime_block(async {
        let capabilities = serde_json::json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1000"],
                "prefs": {
                    "download.default_directory": downloads.path().to_str().expect("utf-8 path"),
                    "download.prompt_for_download": false,
                },
            },
        });
        let serde_json::Value::Object(capabilities) = capabilities else {
            unreachable!("an object literal")
        };
        let browser = ClientBuilder::new(
            hyper_util::client::legacy::connect::HttpConnector::new(),
        )
        .capabilities(capabilities)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a WebDriver session");

        // A wrong key: the error shows, and nothing else is reachable.
        browser.goto(&format!("{base}/ui/")).await.expect("open");
        assert_eq!(path_of(&browser).await, "/ui/sign-in");
        let wrong = format!("{}0", &operator[..operator.len() - 1]);
        let wrong = if wrong == operator { format!("{}1", &operator[..operator.len() - 1]) } else { wrong };
        browser.find(Locator::Id("key")).await.expect("key field").send_keys(&wrong).await.expect("type");
        follow(&browser, Locator::Id("sign-in")).await;
        assert!(text_of(&browser, "#error").await.contains("not valid"));
        camera.shoot(&browser, "wrong-key").await;
        for page in ["/ui/overview", "/ui/events", "/ui/keys"] {
            browser.goto(&format!("{base}{page}")).await.expect("open");
            assert_eq!(path_of(&browser).await, "/ui/sign-in", "{page}");
        }

        // Sign in.
        browser.find(Locator::Id("key")).await.expect("key field").send_keys(&operator).await.expect("type");
        follow(&browser, Locator::Id("sign-in")).await;
        let landed = path_of(&browser).await;
        assert_eq!(landed, "/ui/overview", "{}", text_of(&browser, "main").await);
        let overview = text_of(&browser, "main").await;
        assert!(overview.contains("perf-test"), "{overview}");
        assert!(overview.contains("Accepted"), "{overview}");
        camera.shoot(&browser, "overview").await;

        // Budgets: a chart with the thresholds that fired.
        follow(&browser, Locator::LinkText("Budgets")).await;
        let chart = browser.find(Locator::Css("svg.chart")).await.expect("a chart");
        let described = chart.find(Locator::Css("title")).await.expect("title").html(true).await.expect("text");
        assert!(described.contains("50%, 80%, 100%"), "{described}");
        assert!(text_of(&browser, "main").await.contains("Acme Robotics / support-bot"));
        camera.shoot(&browser, "budgets").await;

        // Events: the seeded ones, newest first; then filtered by type.
        follow(&browser, Locator::LinkText("Events")).await;
        let timeline = text_of(&browser, "table.events").await;
        for id in ["evt_01JDX3K9Q4A50", "evt_01JDX3K9Q4A80", "evt_01JDX3K9Q4AA0", "evt_01JDX3K9Q4BEX"] {
            assert!(timeline.contains(id), "{id} in {timeline}");
        }
        camera.shoot(&browser, "events").await;
        browser.find(Locator::Id("f-type")).await.expect("type filter").send_keys("budget.exceeded").await.expect("type");
        follow(&browser, Locator::Id("filter")).await;
        let links = browser.find_all(Locator::Css("a.event-link")).await.expect("links");
        assert_eq!(links.len(), 1, "only the budget.exceeded event");
        camera.shoot(&browser, "events-filtered").await;

        // The event, its delivery history, and re-notify.
        follow(&browser, Locator::Css("a.event-link")).await;
        assert_eq!(text_of(&browser, "#event-id").await, "evt_01JDX3K9Q4BEX");
        let history = reload_until(&browser, "#notifications", "delivered").await;
        assert!(history.contains("log delivered"), "{history}");
        assert!(text_of(&browser, "pre.raw").await.contains("\"budget.exceeded\""));
        camera.shoot(&browser, "event").await;
        follow(&browser, Locator::Id("renotify")).await;
        assert!(text_of(&browser, "#notice").await.contains("Queued 1 notification(s) again"));
        camera.shoot(&browser, "renotified").await;
        let notified = || {
            app.log_lines()
                .iter()
                .filter(|line| line["id"] == "evt_01JDX3K9Q4BEX")
                .count()
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while notified() < 2 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(notified(), 2, "the log notifier ran again");

        // Refused: the reason, and the request file.
        follow(&browser, Locator::LinkText("Refused")).await;
        let refused = text_of(&browser, "#refused").await;
        assert!(refused.contains("signature"), "{refused}");
        camera.shoot(&browser, "refused").await;
        browser.find(Locator::Css("a.download")).await.expect("download link").click().await.expect("download");
        let file = downloaded(downloads.path()).await.expect("a request file was downloaded");
        let request = std::fs::read_to_string(&file).expect("read the download");
        assert!(request.starts_with("POST /webhooks/perf HTTP/1.1"), "{request}");

        // Outbox, keys and the audit log.
        follow(&browser, Locator::LinkText("Outbox")).await;
        camera.shoot(&browser, "outbox").await;
        follow(&browser, Locator::LinkText("Keys")).await;
        assert!(text_of(&browser, "#keys").await.contains("events:read"));
        camera.shoot(&browser, "keys").await;
        follow(&browser, Locator::LinkText("Audit log")).await;
        let audit = text_of(&browser, "#audit").await;
        for action in ["ui.sign_in", "event.renotify", "refused.export", "auth.failed"] {
            assert!(audit.contains(action), "{action} in {audit}");
        }
        camera.shoot(&browser, "audit").await;

        // At a phone's width nothing spills sideways but the tables' own scroll.
        browser.set_window_size(390, 844).await.expect("resize");
        follow(&browser, Locator::LinkText("Overview")).await;
        let fits = browser
            .execute("return document.documentElement.scrollWidth <= window.innerWidth + 1;", vec![])
            .await
            .expect("measure");
        assert_eq!(fits, serde_json::Value::Bool(true), "the overview fits a phone");
        camera.shoot(&browser, "overview-phone").await;
        browser.set_window_size(1280, 1000).await.expect("resize");

        // No page or cookie holds a secret.
        let cookies = browser.get_all_cookies().await.expect("cookies");
        let session = cookies.iter().find(|cookie| cookie.name() == "perfhook_ui").expect("session cookie");
        assert_eq!(session.http_only(), Some(true));
        for cookie in &cookies {
            assert!(!cookie.value().contains(&operator[10..]), "a cookie holds the key");
        }
        assert!(!camera.sources.contains(SECRET), "a page holds the webhook secret");
        assert!(!camera.sources.contains(&operator[10..]), "a page holds the API key");

        // Sign out: back to the sign-in page, and the pages are closed again.
        follow(&browser, Locator::Id("sign-out")).await;
        assert_eq!(path_of(&browser).await, "/ui/sign-in");
        browser.goto(&format!("{base}/ui/events")).await.expect("open");
        assert_eq!(path_of(&browser).await, "/ui/sign-in");
        camera.shoot(&browser, "signed-out").await;
        browser.close().await.expect("close the session");
    });
}
