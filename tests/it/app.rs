//! `spawn_app`: the whole application in this process on 127.0.0.1:0, built from its parts
//! with a fixed clock, the memory store, a log notifier writing to a temp file and an email
//! notifier on lettre's stub transport. No port scraping, no sleeps for the clock.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use lettre::transport::stub::AsyncStubTransport;
use perfhook::api_key::{self, KeySpec, Scope};
use perfhook::clock::FixedClock;
use perfhook::config::Settings;
use perfhook::event::Mode;
use perfhook::notify::email::{EmailNotifier, EmailSettings};
use perfhook::notify::log::LogNotifier;
use perfhook::notify::{Notifier, Notifiers};
use perfhook::server::{Application, Parts};

use perfhook::store::memory::MemoryStore;
use perfhook::store::Store;

use crate::server_helpers::{client, post, signature, wait_until, SECRET};

/// The time every in-process app starts at.
pub const T0: u64 = 1_763_900_000;

/// A running in-process application.
pub struct TestApp {
    pub address: SocketAddr,
    /// The operator API's address.
    pub admin: SocketAddr,
    pub clock: Arc<FixedClock>,
    pub store: Arc<MemoryStore>,
    pub mail: AsyncStubTransport,
    pub log: PathBuf,
    pub agent: ureq::Agent,
    runtime: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
}

/// Starts the app. `notifiers` is the `perf` endpoint's list (of `log` and `mail`); `extra`
/// is appended to the config, with `{secret_file}` replaced by the quoted secret file's path
/// (for endpoints of its own).
pub fn spawn_app(notifiers: &str, extra: &str) -> TestApp {
    spawn_app_with("", notifiers, extra, AsyncStubTransport::new_ok())
}

/// [`spawn_app`] with extra lines in `[server]`.
pub fn spawn_app_with_server(server: &str, notifiers: &str, extra: &str) -> TestApp {
    spawn_app_with(server, notifiers, extra, AsyncStubTransport::new_ok())
}

/// The app with a mail transport that refuses every message (a retryable failure).
pub fn spawn_app_with_failing_mail(notifiers: &str) -> TestApp {
    spawn_app_with("", notifiers, "", AsyncStubTransport::new_error())
}

fn spawn_app_with(server: &str, notifiers: &str, extra: &str, mail: AsyncStubTransport) -> TestApp {
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = dir.path().join("secret");
    std::fs::write(&secret, SECRET).expect("write secret");
    let text = format!(
        r#"
[server]
listen = "127.0.0.1:0"
body_limit_bytes = 4096
body_read_timeout_ms = 1000
workers = 2
{server}

[outbox]
initial_backoff_ms = 200
max_backoff_ms = 1000

[admin]
listen = "127.0.0.1:0"

[[endpoints]]
name = "perf"
path = "/webhooks/perf"
notifiers = [{notifiers}]
secrets = [{{ name = "primary", file = {secret:?} }}]

[[endpoints]]
name = "perf-test"
path = "/webhooks/perf-test"
mode = "test"
notifiers = []
secrets = [{{ name = "primary", file = {secret:?} }}]

[notifiers.log]
kind = "log"

[notifiers.mail]
kind = "email"
host = "localhost"
tls = "none"
from = "perfhook <perfhook@example.test>"
to = ["oncall@example.test", "finance@example.test"]
{extra}
"#,
        secret = secret.display().to_string(),
        extra = extra.replace(
            "{secret_file}",
            &format!("{:?}", secret.display().to_string())
        ),
    );
    let config = Settings::from_toml(&text)
        .expect("config shape")
        .resolve()
        .expect("config");
    let log = dir.path().join("alerts.jsonl");
    let email: EmailSettings = toml::from_str(
        "host = \"localhost\"\ntls = \"none\"\nfrom = \"perfhook <perfhook@example.test>\"\nto = [\"oncall@example.test\", \"finance@example.test\"]",
    )
    .expect("email settings");
    let mut built: Notifiers = Notifiers::new();
    built.insert(
        "log".into(),
        Arc::new(LogNotifier::open(log.to_str().expect("path"), 0o600).expect("log"))
            as Arc<dyn Notifier>,
    );
    built.insert(
        "mail".into(),
        Arc::new(EmailNotifier::with_transport(&email, mail.clone()).expect("email")),
    );
    let clock = Arc::new(FixedClock::at(T0));
    let store = Arc::new(MemoryStore::new());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let app = runtime
        .block_on(async {
            Application::build_with(
                &config,
                Parts {
                    store: Arc::clone(&store) as Arc<dyn Store>,
                    clock: Arc::clone(&clock) as Arc<dyn perfhook::clock::Clock>,
                    notifiers: built,
                },
            )
        })
        .expect("build");
    let address = app.address();
    let admin = app.admin_address().expect("the admin API is served");
    runtime.spawn(app.run_until_stopped());
    TestApp {
        address,
        admin,
        clock,
        store,
        mail,
        log,
        agent: client(),
        runtime,
        _dir: dir,
    }
}

/// Makes a key in the app's store; returns the key.
pub fn key(app: &TestApp, scopes: &[Scope], mode: Mode, per_minute: u32) -> String {
    let made = api_key::generate(
        &KeySpec {
            name: "test".into(),
            scopes: scopes.to_vec(),
            mode,
            expires_in: Some(Duration::from_secs(3600)),
            rate_limit_per_minute: per_minute,
        },
        app.now(),
    )
    .expect("key");
    app.runtime_block(app.store.put_api_key(&made.record))
        .expect("put");
    made.key.to_string()
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// The signature header for `body` at the app's current time plus `skew` seconds.
    pub fn sign(&self, body: &[u8], skew: i64) -> (String, String) {
        signature(body, T0.max(self.now()).saturating_add_signed(skew))
    }

    pub fn now(&self) -> u64 {
        use perfhook::clock::Clock;
        self.clock.now()
    }

    /// POSTs `body` to `path` signed at the app's time.
    pub fn deliver_to(&self, path: &str, body: &[u8]) -> (u16, serde_json::Value) {
        post(&self.agent, &self.url(path), &[self.sign(body, 0)], body)
    }

    /// POSTs `body` to the live endpoint signed at the app's time.
    pub fn deliver(&self, body: &[u8]) -> (u16, serde_json::Value) {
        self.deliver_to("/webhooks/perf", body)
    }

    /// The log notifier's lines.
    pub fn log_lines(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|line| serde_json::from_str(line).expect("a log line is JSON"))
            .collect()
    }

    /// Mails sent, as raw text.
    pub fn mails(&self) -> Vec<String> {
        self.runtime
            .block_on(self.mail.messages())
            .into_iter()
            .map(|(_, text)| text)
            .collect()
    }

    /// Runs a future (a store call) to completion.
    pub fn runtime_block<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    /// Waits (up to 10 s) for `check`.
    pub fn eventually(&self, check: impl FnMut() -> bool) -> bool {
        wait_until(std::time::Duration::from_secs(10), check)
    }

    /// GET `path` on the operator API with `authorization` (a whole header value): the
    /// status, the headers perfhook sets and the JSON body.
    pub fn admin_get(
        &self,
        path: &str,
        authorization: Option<&str>,
    ) -> (u16, Vec<(String, String)>, serde_json::Value) {
        self.admin_call("GET", path, authorization)
    }

    /// [`TestApp::admin_get`] with any method (a POST sends no body).
    pub fn admin_call(
        &self,
        method: &str,
        path: &str,
        authorization: Option<&str>,
    ) -> (u16, Vec<(String, String)>, serde_json::Value) {
        let url = format!("http://{}{path}", self.admin);
        let response = if method == "DELETE" {
            let mut request = self.agent.delete(&url);
            if let Some(value) = authorization {
                request = request.header("Authorization", value);
            }
            request.call()
        } else if method == "POST" {
            let mut request = self.agent.post(&url);
            if let Some(value) = authorization {
                request = request.header("Authorization", value);
            }
            request.send_empty()
        } else {
            let mut request = self.agent.get(&url);
            if let Some(value) = authorization {
                request = request.header("Authorization", value);
            }
            request.call()
        };
        let mut response = response.expect(method);
        let headers = response
            .headers()
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    value.to_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        let text = response.body_mut().read_to_string().expect("body");
        (
            response.status().as_u16(),
            headers,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
        )
    }

    /// GET `path`: status and body.
    pub fn get(&self, path: &str) -> (u16, String) {
        let mut response = self.agent.get(&self.url(path)).call().expect("GET");
        (
            response.status().as_u16(),
            response.body_mut().read_to_string().expect("body"),
        )
    }
}
