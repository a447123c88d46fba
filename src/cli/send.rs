//! `perfhook send`: sign a file with an endpoint's scheme and secret and POST it to a running
//! receiver, printing the answer; the whole path checked in one command.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use crate::clock::unix_now;
use crate::config::{Overrides, Settings};
use crate::signature::{sign_with_header, Delivery, Scheme};

/// Arguments of `send`.
#[derive(Debug, Clone, Args)]
pub struct SendArgs {
    /// The JSON body to send (a file from fixtures/events, or your own).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// The receiver's config file; its endpoint gives the scheme, secret and URL.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Which endpoint (default: the first).
    #[arg(long)]
    pub endpoint: Option<String>,
    /// Where to send (default: the endpoint's path on the configured listen address).
    #[arg(long)]
    pub url: Option<String>,
    /// Unix time to sign (default: now).
    #[arg(long, value_name = "UNIX")]
    pub timestamp: Option<u64>,
}

pub(super) fn run(args: &SendArgs) -> anyhow::Result<ExitCode> {
    let settings = Settings::load(args.config.as_deref(), &Overrides::default())?;
    let config = settings.resolve()?;
    let endpoint = match &args.endpoint {
        Some(name) => config
            .endpoints
            .iter()
            .find(|e| &e.name == name)
            .with_context(|| format!("no endpoint named {name:?} in the config"))?,
        None => config
            .endpoints
            .first()
            .context("the config has no endpoint")?,
    };
    let body = std::fs::read(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let body_id = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("id").and_then(|id| id.as_str()).map(str::to_owned));
    let scheme = endpoint.verifier.scheme();
    let id = match scheme {
        Scheme::Standard | Scheme::Github => {
            Some(body_id.unwrap_or_else(|| format!("msg_{}", unix_now())))
        }
        _ => None,
    };
    let key = endpoint
        .verifier
        .keys()
        .first()
        .context("the endpoint has no secret")?;
    let headers = sign_with_header(
        scheme,
        endpoint.verifier.signature_header(),
        std::slice::from_ref(key),
        Delivery {
            timestamp: args.timestamp.unwrap_or_else(unix_now),
            id: id.as_deref(),
            body: &body,
        },
    )?;
    let url = args
        .url
        .clone()
        .unwrap_or_else(|| format!("http://{}{}", config.listen, endpoint.path));
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let mut request = agent.post(&url).header("Content-Type", "application/json");
    for (name, value) in &headers {
        request = request.header(name.as_str(), value.as_str());
    }
    let mut response = request
        .send(&body[..])
        .with_context(|| format!("cannot POST to {url}"))?;
    let status = response.status();
    let answer = response
        .body_mut()
        .read_to_string()
        .context("cannot read the answer")?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    )?;
    writeln!(out, "{answer}")?;
    Ok(if status.is_success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
