//! The command line's side of the operator API: the URL (`--admin-url`, else the config's
//! `[admin] listen`), the key (`PERFHOOK_ADMIN_KEY` or `--admin-key-file`, never a flag
//! value that `ps` would show), and one request with its answer or a one-line error.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use zeroize::Zeroizing;

use crate::config::{Overrides, Settings};

/// How the command reaches the operator API.
#[derive(Debug, Clone, Args)]
pub struct AdminArgs {
    /// The operator API (default: http://[admin] listen from --config, else
    /// http://127.0.0.1:8081).
    #[arg(long, value_name = "URL")]
    pub admin_url: Option<String>,
    /// A file holding the API key (default: the PERFHOOK_ADMIN_KEY variable).
    #[arg(long, value_name = "FILE")]
    pub admin_key_file: Option<PathBuf>,
    /// The receiver's config file, for its `[admin] listen`.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// The variable holding the key.
pub const ADMIN_KEY_ENV: &str = "PERFHOOK_ADMIN_KEY";

/// A connection to the operator API.
pub struct AdminClient {
    base: String,
    key: Zeroizing<String>,
    agent: ureq::Agent,
}

/// What the API answered: status and body.
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// The body.
    pub body: Vec<u8>,
}

impl Answer {
    /// The body as JSON.
    ///
    /// # Errors
    /// When it is not JSON.
    pub fn json(&self) -> anyhow::Result<serde_json::Value> {
        serde_json::from_slice(&self.body)
            .context("the operator API answered something that is not JSON")
    }
}

impl AdminClient {
    /// Reads the URL and the key.
    ///
    /// # Errors
    /// No key, an unreadable key file, or a config that does not load.
    pub fn new(args: &AdminArgs) -> anyhow::Result<Self> {
        let base = match &args.admin_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => {
                let settings = Settings::load(args.config.as_deref(), &Overrides::default())?;
                let scheme = if settings.server.tls.is_some() {
                    "https"
                } else {
                    "http"
                };
                format!("{scheme}://{}", settings.admin.listen)
            }
        };
        let key = match &args.admin_key_file {
            Some(file) => Zeroizing::new(
                std::fs::read_to_string(file)
                    .with_context(|| format!("--admin-key-file {}: cannot read it", file.display()))?
                    .trim()
                    .to_owned(),
            ),
            None => Zeroizing::new(std::env::var(ADMIN_KEY_ENV).map_err(|_| {
                anyhow::anyhow!(
                    "no API key: set {ADMIN_KEY_ENV} or give --admin-key-file (`perfhook keys create` makes one)"
                )
            })?),
        };
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        Ok(Self { base, key, agent })
    }

    /// `GET /admin/v1/{path}`.
    ///
    /// # Errors
    /// When the API cannot be reached.
    pub fn get(&self, path: &str) -> anyhow::Result<Answer> {
        let url = format!("{}/admin/v1/{path}", self.base);
        let request = self
            .agent
            .get(&url)
            .header("Authorization", format!("Bearer {}", self.key.as_str()));
        answer(request.call(), &url)
    }

    /// `POST /admin/v1/{path}` with a JSON body.
    ///
    /// # Errors
    /// When the API cannot be reached.
    pub fn post_json(&self, path: &str, body: &serde_json::Value) -> anyhow::Result<Answer> {
        let url = format!("{}/admin/v1/{path}", self.base);
        let request = self
            .agent
            .post(&url)
            .header("Authorization", format!("Bearer {}", self.key.as_str()))
            .header("Content-Type", "application/json");
        answer(request.send(body.to_string().as_bytes()), &url)
    }

    /// `DELETE /admin/v1/{path}`.
    ///
    /// # Errors
    /// When the API cannot be reached.
    pub fn delete(&self, path: &str) -> anyhow::Result<Answer> {
        let url = format!("{}/admin/v1/{path}", self.base);
        let request = self
            .agent
            .delete(&url)
            .header("Authorization", format!("Bearer {}", self.key.as_str()));
        answer(request.call(), &url)
    }

    /// `POST /admin/v1/{path}` without a body.
    ///
    /// # Errors
    /// When the API cannot be reached.
    pub fn post(&self, path: &str) -> anyhow::Result<Answer> {
        let url = format!("{}/admin/v1/{path}", self.base);
        let request = self
            .agent
            .post(&url)
            .header("Authorization", format!("Bearer {}", self.key.as_str()));
        answer(request.send_empty(), &url)
    }
}

fn answer(
    result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    url: &str,
) -> anyhow::Result<Answer> {
    let mut response = result.map_err(|error| {
        anyhow::anyhow!("cannot reach the operator API at {url}: {error}; is `perfhook serve` running with [admin] enabled?")
    })?;
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .with_config()
        .limit(64 << 20)
        .read_to_vec()
        .context("cannot read the operator API's answer")?;
    Ok(Answer { status, body })
}

/// Percent-encodes a path segment or query value (everything but unreserved characters).
#[must_use]
pub fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A refusal by the API as one line: `403 insufficient_scope: this API key lacks …`. The
/// commands print it and exit 2, the code of every error that is not a verdict (so
/// `audit verify`'s 1 always means tampered).
#[must_use]
pub fn refusal_line(answer: &Answer) -> String {
    let parsed = answer.json().ok();
    let error = parsed.as_ref().map(|body| &body["error"]);
    match error {
        Some(error) if error.is_object() => format!(
            "{} {}: {}",
            answer.status,
            error["type"].as_str().unwrap_or("error"),
            error["message"].as_str().unwrap_or("")
        ),
        _ => format!("{} from the operator API", answer.status),
    }
}
